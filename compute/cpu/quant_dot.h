// Dot products of GGUF weight rows stored in their file's type (F16, BF16, the legacy Q4_0..Q8_0
// blocks and the K-quants Q2_K..Q6_K) with a float32 vector, on the CPU, without expanding the
// weights to float32 in memory. Batch-1 GEMV is memory-bound: the kernels aim to stream the
// weight bytes at close to memory bandwidth.
//
// One binary runs on any x86-64: the AVX2 and AVX-512 kernels are compiled in their own files
// with their own target flags and chosen at run time (bestIsa()). The scalar path is the fallback
// everywhere else and the plain reference the others are tested against.
//
// Accuracy. F32, F16 and BF16 are exact products accumulated in float32 on every path. For the
// block types the SIMD paths (not the scalar one) first quantize x to 8 bits as llama.cpp does:
// per 32 values with a scale dx = max|x|/127 stored as f16 for the 32-value types (block_q8_0),
// per 256 values with a float32 scale for the K-quants (block_q8_K), then take integer dot
// products of the weight quants with the x quants. The result is the exact dot product of the
// weights with x̂ = dx·q, up to float32 rounding, so the added error is bounded by
//     |gemv - W·x| <= Σ_blocks max_block|x|·(1/254 + 1/2048) · Σ_block |w_i|  (+ float rounding)
// with 32-value blocks (the f16 scale's rounding is the 1/2048), and 256-value blocks without
// the 1/2048 for the K-quants.
// The bound is about 1% of Σ|w_i·x_i| for Gaussian x; the error itself is far smaller: on
// 4096-wide rows quantized from Gaussian data, max 4.8e-4 and mean 1.0e-4 of Σ|w_i·x_i| (every
// block type; bench_quant_dot prints it). Measured against the alternative (dequantizing the
// weights to float32 in registers and FMA with x, detail::gemvDequantFma below), the integer
// dot products stream 1.6x (Q8_0) to 2.5x (Q4_K) more weight bytes per second from cache and
// hold DRAM bandwidth where the float path falls below it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace kvscope::qdot {

enum class Isa { Scalar, Avx2, Avx512 };

// The best kernel set this CPU runs: Avx512 needs AVX-512 F/BW/VL/VNNI plus AVX2/FMA/F16C, Avx2
// needs AVX2, FMA and F16C. Detected once, at the first call.
Isa bestIsa();
// "scalar", "avx2+fma+f16c", "avx512"
std::string isaName(Isa isa);
// Whether this CPU can run `isa`'s kernels (Scalar always).
bool isaSupported(Isa isa);
// The types gemv takes: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
bool gemvSupports(TensorType type);

// out[r] = Σ_i W[r][i] · x[i] for r in [0, rows). W's rows are `rowBytes` apart, each n elements
// stored as `type` (n a whole number of the type's blocks). One call per chunk of rows (the caller
// splits rows across threads; each call quantizes x once for the block types, O(n)).
// Throws kvscope::Error for an unsupported type, an n that is not whole blocks, rowBytes smaller
// than a row, or an isa this CPU cannot run.
void gemv(TensorType type, const uint8_t* w, size_t rowBytes, int rows, const float* x, int64_t n,
          float* out, Isa isa = bestIsa());

// x made ready once for many gemv calls on rows of one type (the caller's chunks of rows): for
// the block types, x rounded to 8 bits per 32 values as gemv does (the same numbers); for F32,
// F16 and BF16 just x. Reusable: prepare() overwrites it and keeps its buffers.
class PreparedX {
  public:
    // Prepares x (n values; n a whole number of `type`'s blocks) for `isa`'s kernels. x must
    // outlive the gemv calls that use it. Throws Error like gemv.
    void prepare(TensorType type, const float* x, int64_t n, Isa isa = bestIsa());
    TensorType type() const { return type_; }
    int64_t size() const { return n_; }

  private:
    friend void gemv(const PreparedX& x, const uint8_t* w, size_t rowBytes, int rows, float* out);
    TensorType type_ = TensorType::F32;
    Isa isa_ = Isa::Scalar;
    const float* x_ = nullptr;
    int64_t n_ = 0;
    std::vector<int8_t> q_;
    std::vector<float> d_, s16_, s32_;
};

// gemv on a prepared x: rows of x.type(), each x.size() values.
void gemv(const PreparedX& x, const uint8_t* w, size_t rowBytes, int rows, float* out);

namespace detail {
// gemv through the other strategy: the weights dequantized to float32 in registers and FMA'd with
// the float x (no 8-bit x, no added error). Q8_0, Q4_0 and Q4_K on Avx2/Avx512 only; kept so that
// bench_quant_dot can show why gemv quantizes x instead. Throws Error for anything else.
void gemvDequantFma(TensorType type, const uint8_t* w, size_t rowBytes, int rows, const float* x,
                    int64_t n, float* out, Isa isa);
// The 8-bit x of the 32-value block types (kQuants: of the K-quants, per 256 values) as `isa`
// makes it (Scalar: the plain loop, which the vector versions must equal bit for bit): q, and per
// 32 values d, the two 16-value sums d·Σq and the 32-value sum. For tests.
struct QuantizedX {
    std::vector<int8_t> q;
    std::vector<float> d, s16, s32;
};
QuantizedX quantizeXForTesting(const float* x, int64_t n, Isa isa, bool kQuants = false);
}  // namespace detail

}  // namespace kvscope::qdot
