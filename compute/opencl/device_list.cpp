// Device enumeration through clGetPlatformIDs / clGetDeviceIDs, and the usability checks.
#include "opencl/device_list.h"

#include "opencl/cl_device.h"

#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "opencl/cl_check.h"

namespace kvscope::ocl {
namespace {

std::string platformString(cl_platform_id p, cl_platform_info what) {
    size_t size = 0;
    if (clGetPlatformInfo(p, what, 0, nullptr, &size) != CL_SUCCESS || size == 0) return {};
    std::string s(size, '\0');
    if (clGetPlatformInfo(p, what, size, s.data(), nullptr) != CL_SUCCESS) return {};
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
}

std::string deviceString(cl_device_id d, cl_device_info what) {
    size_t size = 0;
    if (clGetDeviceInfo(d, what, 0, nullptr, &size) != CL_SUCCESS || size == 0) return {};
    std::string s(size, '\0');
    if (clGetDeviceInfo(d, what, size, s.data(), nullptr) != CL_SUCCESS) return {};
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
}

template <typename T>
T deviceValue(cl_device_id d, cl_device_info what) {
    T v{};
    if (clGetDeviceInfo(d, what, sizeof v, &v, nullptr) != CL_SUCCESS) return T{};
    return v;
}

// "OpenCL 1.2 ..." → 102; 0 if unreadable.
int openclVersion(const std::string& s) {
    int major = 0, minor = 0;
    if (std::sscanf(s.c_str(), "OpenCL %d.%d", &major, &minor) != 2) return 0;
    return major * 100 + minor;
}

DeviceInfo describe(cl_device_id d, int index, int platformIndex, const std::string& platformName,
                    const std::string& platformVersion) {
    DeviceInfo i;
    i.index = index;
    i.platformIndex = platformIndex;
    i.platformName = platformName;
    i.platformVersion = platformVersion;
    i.name = deviceString(d, CL_DEVICE_NAME);
    i.vendor = deviceString(d, CL_DEVICE_VENDOR);
    i.driverVersion = deviceString(d, CL_DRIVER_VERSION);
    i.version = deviceString(d, CL_DEVICE_VERSION);
    const auto type = deviceValue<cl_device_type>(d, CL_DEVICE_TYPE);
    i.isGpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    i.type = i.isGpu                               ? "GPU"
             : (type & CL_DEVICE_TYPE_CPU)         ? "CPU"
             : (type & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator"
             : (type & CL_DEVICE_TYPE_CUSTOM)      ? "custom"
                                                   : "other";
    i.computeUnits = static_cast<int>(deviceValue<cl_uint>(d, CL_DEVICE_MAX_COMPUTE_UNITS));
    i.globalMemBytes = deviceValue<cl_ulong>(d, CL_DEVICE_GLOBAL_MEM_SIZE);
    i.maxAllocBytes = deviceValue<cl_ulong>(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
    i.maxWorkGroupSize = deviceValue<size_t>(d, CL_DEVICE_MAX_WORK_GROUP_SIZE);

    const int version = openclVersion(i.version);
    const auto queueProps = deviceValue<cl_command_queue_properties>(d, CL_DEVICE_QUEUE_PROPERTIES);
    if (!deviceValue<cl_bool>(d, CL_DEVICE_AVAILABLE))
        i.whyNot = "the driver reports the device unavailable";
    else if (!deviceValue<cl_bool>(d, CL_DEVICE_COMPILER_AVAILABLE))
        i.whyNot = "the driver has no OpenCL C compiler for it";
    else if (version < 102)
        i.whyNot = "it offers '" + i.version + "'; KVScope needs OpenCL 1.2";
    else if (!(queueProps & CL_QUEUE_PROFILING_ENABLE))
        i.whyNot = "its queues cannot time commands (no CL_QUEUE_PROFILING_ENABLE)";
    else if (i.maxWorkGroupSize < 16)
        i.whyNot = "its work groups hold only " + std::to_string(i.maxWorkGroupSize) +
                   " items; KVScope needs 16";
    i.usable = i.whyNot.empty();
    return i;
}

struct Found {
    DeviceList list;
    std::vector<cl_device_id> ids;  // parallel to list.devices
};

Found enumerate() {
    Found f;
    cl_uint nPlatforms = 0;
    cl_int status = clGetPlatformIDs(0, nullptr, &nPlatforms);
    if (status != CL_SUCCESS || nPlatforms == 0) {
        f.list.problem =
            status != CL_SUCCESS
                ? "no OpenCL runtime answers: clGetPlatformIDs: " + statusName(status) + " (" +
                      std::to_string(status) + ")"
                : "no OpenCL platform is installed (clGetPlatformIDs found none)";
        return f;
    }
    std::vector<cl_platform_id> platforms(nPlatforms);
    status = clGetPlatformIDs(nPlatforms, platforms.data(), nullptr);
    if (status != CL_SUCCESS) {
        f.list.problem = "clGetPlatformIDs: " + statusName(status);
        return f;
    }
    for (cl_uint p = 0; p < nPlatforms; ++p) {
        const std::string pname = platformString(platforms[p], CL_PLATFORM_NAME);
        const std::string pversion = platformString(platforms[p], CL_PLATFORM_VERSION);
        cl_uint nDevices = 0;
        status = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 0, nullptr, &nDevices);
        if (status != CL_SUCCESS || nDevices == 0) {
            if (status != CL_DEVICE_NOT_FOUND && status != CL_SUCCESS)
                f.list.problem += (f.list.problem.empty() ? "" : "; ") + std::string("platform '") +
                                  pname + "': clGetDeviceIDs: " + statusName(status);
            continue;
        }
        std::vector<cl_device_id> ids(nDevices);
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, nDevices, ids.data(), nullptr) !=
            CL_SUCCESS)
            continue;
        for (cl_device_id d : ids) {
            f.list.devices.push_back(describe(d, static_cast<int>(f.list.devices.size()),
                                              static_cast<int>(p), pname, pversion));
            f.ids.push_back(d);
        }
    }
    if (f.list.devices.empty() && f.list.problem.empty())
        f.list.problem = "the OpenCL platforms list no devices";
    return f;
}

}  // namespace

std::string DeviceInfo::key() const {
    return platformName + " | " + name + " | " + driverVersion;
}

bool builtWithOpenCl() {
    return true;
}

void prepareRuntimes() {
    setenv("POCL_AFFINITY", "1", /*overwrite=*/0);
}

DeviceList listDevices() {
    return enumerate().list;
}

cl_device_id openDevice(int index, DeviceInfo& info) {
    Found f = enumerate();
    const auto count = static_cast<int>(f.list.devices.size());
    if (count == 0) throw Error("no OpenCL device to run on: " + f.list.problem);
    if (index < 0 || index >= count)
        throw Error("no OpenCL device " + std::to_string(index) + ": this machine has " +
                    std::to_string(count) + " (numbered 0 to " + std::to_string(count - 1) +
                    "; `kvscope devices` lists them)");
    info = f.list.devices[static_cast<size_t>(index)];
    if (!info.usable)
        throw Error("OpenCL device " + std::to_string(index) + " (" + info.name +
                    ") cannot be used: " + info.whyNot);
    return f.ids[static_cast<size_t>(index)];
}

}  // namespace kvscope::ocl
