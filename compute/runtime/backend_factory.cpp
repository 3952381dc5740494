// createBackend: the auto rule and its explanation.
#include "runtime/backend_factory.h"

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "opencl/device_list.h"
#if KVSCOPE_HAS_OPENCL
#include "opencl/opencl_backend.h"
#endif

namespace kvscope {

namespace {
// ", KV cache q8_0, cache policy window 64" for the note; empty for a full f32 cache.
std::string cacheNote(const BackendChoice& choice) {
    std::string s;
    if (choice.kvType != KvType::F32) s += ", KV cache " + kvTypeName(choice.kvType);
    if (choice.eviction.evicts()) s += ", cache policy " + choice.eviction.text();
    return s;
}
}  // namespace

std::shared_ptr<Backend> createBackend(std::shared_ptr<const Model> model,
                                       const BackendChoice& choice, std::string& note) {
#if !KVSCOPE_HAS_OPENCL
    if (choice.kind == BackendChoice::Kind::OpenCl)
        throw Error("OpenCL device " + std::to_string(choice.device) + ": " +
                    ocl::listDevices().problem);
#else
    if (choice.kind == BackendChoice::Kind::OpenCl) {
        OpenClOptions o;
        o.device = choice.device;
        o.stop = choice.stop;
        o.cache = choice.cacheOptions();
        auto backend = std::make_shared<OpenClBackend>(std::move(model), o);
        note = "backend: opencl, device " + std::to_string(o.device) + ": " +
               backend->deviceName() + cacheNote(choice);
        return backend;
    }
#endif
    std::string why;  // auto: the first usable GPU, else the CPU backend
    if (choice.kind == BackendChoice::Kind::Auto) {
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
                o.cache = choice.cacheOptions();
                auto backend = std::make_shared<OpenClBackend>(model, o);
                note = "backend: opencl, device " + std::to_string(gpu->index) + ": " +
                       backend->deviceName() + cacheNote(choice) + " (auto: the first GPU)";
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
    note = "backend: cpu, " + backend->deviceName() + cacheNote(choice);
    if (choice.kind == BackendChoice::Kind::Auto) note += " (auto: " + why + ")";
    return backend;
}

}  // namespace kvscope
