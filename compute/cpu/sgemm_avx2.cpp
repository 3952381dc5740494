// The AVX2 + FMA GEMM kernel (this file alone is compiled with -mavx2 -mfma).
#if defined(__x86_64__)
#define SGEMM_NS avx2
#define SGEMM_512 0
#include "cpu/sgemm_simd.inc"

namespace kvscope::sgemm::detail {
void gemmAvx2(const Args& a) {
    avx2::run(a);
}
}  // namespace kvscope::sgemm::detail
#endif
