// MatMul: the matrix products of the OpenCL backend, on the paths the device's MatMulChoice
// names. One row (a decode step): our GEMV kernels or CLBlast Gemv; several rows (prefill,
// recompute): our gemm_rows kernel or CLBlast Gemm. Row-major, outermost first.
#pragma once

#include <map>
#include <vector>

#include "gguf/gguf.h"
#include "opencl/cl_device.h"
#include "opencl/matmul_choice.h"

namespace kvscope::ocl {

class MatMul {
  public:
    // simd: take cpu_simd.cl's x86 kernels for the wide block types' products and F16's decode
    // steps where the program has them (CPU devices whose compiler targets AVX2 and F16C).
    MatMul(ClDevice& device, const Program& program, MatMulChoice choice, bool simd = false);

    // Whether cpu_simd.cl's kernels take the products they cover (asked for and built).
    bool simd() const { return !simd_.empty(); }

    // A product's x as rounded to 8 bits for cpu_simd.cl's kernels, shared by the products on
    // the same unchanged x (the parts of a Q/K/V stack, Llama's gate and up); a fresh Input
    // wherever x may have changed since.
    struct Input {
        bool rounded32 = false;   // per 32 values (Q8_0, Q4_0)
        bool rounded256 = false;  // per 256 (the K-quants)
    };

    // out (n, outDim) = in (n, inDim) · wᵀ + bias (+ out when accumulate: a residual add).
    //   w: (outDim, inDim) from offset 0; bias: (outDim) or null; offsets count floats.
    // Enqueues on the device's queue and appends the commands' events to `events`.
    void run(const Buffer& out, size_t outOff, const Buffer& in, size_t inOff, const Buffer& w,
             const Buffer* bias, int n, int inDim, int outDim, bool accumulate,
             std::vector<Event>& events);

    // The same product on a weight held in a block type (compute/opencl/device_weights.h: F16,
    // Q8_0, Q4_0, Q4_K, Q6_K, or F32), rows of rowBytes bytes, through our quant.cl kernels:
    // CLBlast has no quantized GEMM, so the measured choice only picks among ours (GEMV: Rows
    // takes qgemm with one row of x, Groups and ClBlast take qgemv, a work group per row;
    // GEMM: qgemm, whatever the choice). out's rows are ldy floats apart and the product fills
    // columns outOff .. outOff + outDim of them (one part of a Q/K/V stack); bias from biasOff.
    // wide: the block type's scales are float32 (device_weights.h's wide-scale layouts).
    // With simd(), the wide block types take cpu_simd.cl's kernels after x is rounded to 8 bits
    // (once per Input), as the CPU backend rounds it for every product on blocks, and so does
    // F16 with one row of x (exact float32, as the CPU's decode step).
    void runQuant(const Buffer& out, size_t outOff, int ldy, const Buffer& in, size_t inOff,
                  const Buffer& w, TensorType type, bool wide, size_t rowBytes, const Buffer* bias,
                  size_t biasOff, int n, int inDim, int outDim, bool accumulate, Input& input,
                  std::vector<Event>& events);
    // x (n, cols) = rows ids[0..n) of w (a block type, as in runQuant) dequantized, plus rows
    // p0 .. p0 + n of pos (n_ctx, cols) when pos is not null (GPT-2's positions).
    void embedQuant(const Buffer& x, const Buffer& ids, const Buffer& w, TensorType type, bool wide,
                    size_t rowBytes, const Buffer* pos, int p0, int cols, int n,
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
    struct QuantKernels {
        Kernel gemm, gemv, embed;
        size_t gemvLocal = 64;
    };
    std::map<std::pair<TensorType, bool>, QuantKernels> quant_;  // by type and wide scales
    QuantKernels& quantKernels(TensorType type, bool wide);
    // cpu_simd.cl: the GEMV kernels by type and wide scales, x's rounding, and its outputs for
    // 32- and 256-value blocks (quants, scales, sums of 16), grown to the widest x seen
    std::map<std::pair<TensorType, bool>, Kernel> simd_;
    Kernel quantizeX_;
    struct Rounded {
        Buffer q, d, s;
        size_t values = 0;
    };
    Rounded rounded32_, rounded256_;
    size_t simdLocal_ = 16, quantizeLocal_ = 16;
    const Rounded& roundX(const Buffer& in, size_t inOff, int n, int cols, int block, bool& done,
                          std::vector<Event>& events);
    size_t biasLocal_ = 64;
    Buffer none_;  // bound where a kernel's bias is absent
};

// Runs CLBlast's Gemm (if `gemm`) in the shapes the backend uses (its direct kernel and its
// indirect one) and Gemv (if `gemv`) once on small zero buffers, on `queue`, so that CLBlast
// compiles them now and not in the first prefill. Throws Error naming the call and status.
void warmUpClBlast(const ClDevice& device, Queue& queue, bool gemm, bool gemv);

}  // namespace kvscope::ocl
