// ClDevice: opening a device and building the embedded kernel sources.
#include "opencl/cl_device.h"

#include "opencl_kernel_sources.h"

namespace kvscope::ocl {

ClDevice::ClDevice(int index)
    : id_(openDevice(index, info_)), context_(id_), queue_(context_, id_) {}

Program ClDevice::buildKernels() const {
    std::vector<const char*> sources;
    std::string files;
    for (const KernelSource& s : kKernelSources) {
        sources.push_back(s.text);
        files += (files.empty() ? "" : ", ") + std::string(s.file);
    }
    return Program(context_, id_, sources,
                   "the KVScope kernels (" + files + ") for '" + info_.name + "'",
                   info_.type == "CPU" ? "-DKVSCOPE_CPU_DEVICE" : "");
}

}  // namespace kvscope::ocl
