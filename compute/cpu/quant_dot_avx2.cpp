// The AVX2 + FMA + F16C kernels (this file alone is compiled with -mavx2 -mfma -mf16c).
#if defined(__x86_64__)
#define QDOT_NS avx2
#define QDOT_VNNI 0
#define QDOT_512 0
#include "cpu/quant_dot_simd.inc"

namespace kvscope::qdot::detail {
void gemvAvx2(const Args& a) {
    avx2::run(a);
}
void quantizeXAvx2(const float* x, int64_t n, int8_t* q, float* d, float* s16, float* s32,
                   QuantizeBlocks plain) {
    avx2::quantizeX(x, n, q, d, s16, s32, plain);
}
void quantizeXKAvx2(const float* x, int64_t n, int8_t* q, float* d, float* s16, float* s32,
                    QuantizeBlocks plain) {
    avx2::quantizeXK(x, n, q, d, s16, s32, plain);
}
}  // namespace kvscope::qdot::detail
#endif
