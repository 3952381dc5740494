// ClDevice: one OpenCL device opened for KVScope: its description, a context and an in-order
// queue with profiling; it builds the program of our kernels (resources/kernels/*.cl, embedded).
#pragma once

#include "opencl/cl_handles.h"
#include "opencl/device_list.h"

namespace kvscope::ocl {

// The device of --device `index`, checked: throws Error naming the index and the count when
// there is no such device, and the reason when it is not usable.
cl_device_id openDevice(int index, DeviceInfo& info);

class ClDevice {
  public:
    // Opens device `index` of listDevices(). Throws Error naming the index and the count if
    // there is no such device, or the call and status that failed.
    explicit ClDevice(int index);
    ClDevice(const ClDevice&) = delete;
    ClDevice& operator=(const ClDevice&) = delete;

    const DeviceInfo& info() const { return info_; }
    cl_device_id id() const { return id_; }
    const Context& context() const { return context_; }
    Queue& queue() { return queue_; }

    // Compiles every kernel file into one program (seconds on some drivers: call it off the
    // main path). On CPU devices with -DKVSCOPE_CPU_DEVICE: the kernels that stream weight rows
    // (gemv.cl, quant.cl, cpu_simd.cl) then prefetch ahead, and cpu_simd.cl builds its x86
    // kernels where the compiler targets AVX2 and F16C.
    // Throws Error with the compiler's log on a build failure.
    Program buildKernels() const;

  private:
    DeviceInfo info_;
    cl_device_id id_ = nullptr;
    Context context_;
    Queue queue_;
};

}  // namespace kvscope::ocl
