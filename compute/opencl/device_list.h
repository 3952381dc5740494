// The OpenCL devices of this machine (a header without OpenCL's own: the CPU-only build has it), as
// `kvscope devices` lists them and `--device N` picks them: every device of every platform,
// numbered in that order, with whether KVScope can use it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvscope::ocl {

struct DeviceInfo {
    int index = 0;  // position in the list: what --device takes
    int platformIndex = 0;
    std::string platformName;
    std::string platformVersion;  // "OpenCL 3.0 PoCL 3.1+debian ..."
    std::string name;
    std::string vendor;
    std::string driverVersion;
    std::string version;  // the device's "OpenCL X.Y ..."
    std::string type;     // "GPU", "CPU", "accelerator", "custom" or "other"
    bool isGpu = false;
    int computeUnits = 0;
    uint64_t globalMemBytes = 0;
    uint64_t maxAllocBytes = 0;  // the largest single buffer
    size_t maxWorkGroupSize = 0;
    bool usable = false;
    std::string whyNot;  // why it is not usable; empty if it is

    // "platform | device | driver": what cached per-device choices are keyed by.
    std::string key() const;
};

struct DeviceList {
    std::vector<DeviceInfo> devices;
    std::string problem;  // why the list is empty or short (no runtime, a platform failing)
};

// Every platform's devices, numbered in order. Never throws: failures land in `problem` (in a
// build without OpenCL, -DKVSCOPE_OPENCL=OFF, the list is empty and `problem` says so).
DeviceList listDevices();

// Whether this KVScope was built with the OpenCL backend.
bool builtWithOpenCl();

// Settings of the OpenCL runtimes that must precede their first use; call once at the start of
// main, before any other thread exists (it sets environment variables). PoCL's worker threads
// are pinned one to a core (POCL_AFFINITY=1) unless the environment already says: a decode
// step's fused layers (OpenClOptions::fusedLayers) have its workers wait for each other at
// barriers, and two workers the kernel left on one core for a run made GPT-2 Q4_K steps run
// at 0.78-0.97x the CPU backend's speed from run to run, against 0.90-0.97x pinned.
void prepareRuntimes();

}  // namespace kvscope::ocl
