// MatMul: the matrix products of the OpenCL backend, on the paths the device's MatMulChoice
// names. One row (a decode step): our GEMV kernels or CLBlast Gemv; several rows (prefill,
// recompute): our gemm_rows kernel or CLBlast Gemm. Row-major, outermost first.
#pragma once

#include <vector>

#include "opencl/cl_device.h"
#include "opencl/matmul_choice.h"

namespace kvscope::ocl {

class MatMul {
  public:
    MatMul(ClDevice& device, const Program& program, MatMulChoice choice);

    // out (n, outDim) = in (n, inDim) · wᵀ + bias (+ out when accumulate: a residual add).
    //   w: (outDim, inDim) from offset 0; bias: (outDim) or null; offsets count floats.
    // Enqueues on the device's queue and appends the commands' events to `events`.
    void run(const Buffer& out, size_t outOff, const Buffer& in, size_t inOff, const Buffer& w,
             const Buffer* bias, int n, int inDim, int outDim, bool accumulate,
             std::vector<Event>& events);

    const MatMulChoice& choice() const { return choice_; }

  private:
    void runOwn(const Buffer& out, size_t outOff, const Buffer& in, size_t inOff, const Buffer& w,
                const Buffer* bias, int n, int inDim, int outDim, bool accumulate,
                std::vector<Event>& events);
    void addBias(const Buffer& out, size_t outOff, const Buffer& bias, int n, int outDim,
                 std::vector<Event>& events);

    ClDevice& device_;
    MatMulChoice choice_;
    Kernel rows_, groups_, gemmRows_, addBias_;
    size_t biasLocal_ = 64;
    Buffer none_;  // bound where a kernel's bias is absent
};

// Runs CLBlast's Gemm (if `gemm`) in the shapes the backend uses (its direct kernel and its
// indirect one) and Gemv (if `gemv`) once on small zero buffers, on `queue`, so that CLBlast
// compiles them now and not in the first prefill. Throws Error naming the call and status.
void warmUpClBlast(const ClDevice& device, Queue& queue, bool gemm, bool gemv);

}  // namespace kvscope::ocl
