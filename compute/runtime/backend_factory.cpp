// createBackend: the auto rule and its explanation.
#include "runtime/backend_factory.h"

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "opencl/device_list.h"
#if KVSCOPE_HAS_OPENCL
#include "opencl/opencl_backend.h"
#endif

namespace kvscope {

std::string BackendChoice::cpuOnlyReason() const {
    std::string why;
    if (kvType != KvType::F32) why = "a " + kvTypeName(kvType) + " KV cache";
    if (eviction.evicts())
        why += (why.empty() ? "the " : " and the ") + eviction.text() + " policy";
    if (blockTokens != 256) why += (why.empty() ? "" : " and ") + std::string("--block");
    return why;
}

std::shared_ptr<Backend> createBackend(std::shared_ptr<const Model> model,
                                       const BackendChoice& choice, std::string& note) {
#if !KVSCOPE_HAS_OPENCL
    if (choice.kind == BackendChoice::Kind::OpenCl)
        throw Error("OpenCL device " + std::to_string(choice.device) + ": " +
                    ocl::listDevices().problem);
#else
    if (choice.kind == BackendChoice::Kind::OpenCl && !choice.cpuOnlyReason().empty())
        throw Error("the OpenCL backend keeps its KV cache in f32, with no policy; " +
                    choice.cpuOnlyReason() + " runs on the CPU backend (--backend cpu)");
    if (choice.kind == BackendChoice::Kind::OpenCl) {
        OpenClOptions o;
        o.device = choice.device;
        o.stop = choice.stop;
        auto backend = std::make_shared<OpenClBackend>(std::move(model), o);
        note = "backend: opencl, device " + std::to_string(o.device) + ": " + backend->deviceName();
        return backend;
    }
#endif
    std::string why;  // auto: the first usable GPU, else the CPU backend
    if (choice.kind == BackendChoice::Kind::Auto && !choice.cpuOnlyReason().empty()) {
        why = choice.cpuOnlyReason() + " runs on the CPU backend";
    } else if (choice.kind == BackendChoice::Kind::Auto) {
        const ocl::DeviceList list = ocl::listDevices();
        const ocl::DeviceInfo* gpu = nullptr;
        for (const ocl::DeviceInfo& d : list.devices)
            if (d.isGpu && d.usable && !gpu) gpu = &d;
        if (gpu) {
#if KVSCOPE_HAS_OPENCL
            try {
                OpenClOptions o;
                o.device = gpu->index;
                o.stop = choice.stop;
                auto backend = std::make_shared<OpenClBackend>(model, o);
                note = "backend: opencl, device " + std::to_string(gpu->index) + ": " +
                       backend->deviceName() + " (auto: the first GPU)";
                return backend;
            } catch (const Error& e) {
                why = "OpenCL on device " + std::to_string(gpu->index) + " (" + gpu->name +
                      ") failed, so the CPU backend runs instead: " + e.what();
            }
#endif
        } else if (list.devices.empty()) {
            why = "no OpenCL device (" + list.problem + ")";
        } else {
            why = "no usable OpenCL GPU among " + std::to_string(list.devices.size()) +
                  " OpenCL device(s)";
        }
    }
    auto backend =
        std::make_shared<CpuBackend>(std::move(model), ThreadPool::shared(), choice.cacheOptions());
    note = "backend: cpu, " + backend->deviceName();
    if (choice.kvType != KvType::F32) note += ", KV cache " + kvTypeName(choice.kvType);
    if (choice.eviction.evicts()) note += ", cache policy " + choice.eviction.text();
    if (choice.kind == BackendChoice::Kind::Auto) note += " (auto: " + why + ")";
    return backend;
}

}  // namespace kvscope
