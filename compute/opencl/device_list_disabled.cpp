// The device list of a CPU-only KVScope (-DKVSCOPE_OPENCL=OFF): no devices, and why.
#include "opencl/device_list.h"

namespace kvscope::ocl {

std::string DeviceInfo::key() const {
    return platformName + " | " + name + " | " + driverVersion;
}

bool builtWithOpenCl() {
    return false;
}

void prepareRuntimes() {}

DeviceList listDevices() {
    DeviceList list;
    list.problem =
        "this KVScope was built without OpenCL (-DKVSCOPE_OPENCL=OFF): the CPU backend "
        "is the only one";
    return list;
}

}  // namespace kvscope::ocl
