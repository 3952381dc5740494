// The AVX-512 kernels (this file alone is compiled with AVX-512 F/BW/VL/VNNI on top of AVX2, FMA
// and F16C): VNNI integer dots for the block types (512-bit for Q4_K/Q5_K/Q6_K), 512-bit loops for
// F32/F16/BF16.
#if defined(__x86_64__)
#define QDOT_NS avx512
#define QDOT_VNNI 1
#define QDOT_512 1
#include "cpu/quant_dot_simd.inc"

namespace kvscope::qdot::detail {
void gemvAvx512(const Args& a) {
    avx512::run(a);
}
void quantizeXAvx512(const float* x, int64_t n, int8_t* q, float* d, float* s16, float* s32,
                     QuantizeBlocks plain) {
    avx512::quantizeX(x, n, q, d, s16, s32, plain);
}
void quantizeXKAvx512(const float* x, int64_t n, int8_t* q, float* d, float* s16, float* s32,
                      QuantizeBlocks plain) {
    avx512::quantizeXK(x, n, q, d, s16, s32, plain);
}
}  // namespace kvscope::qdot::detail
#endif
