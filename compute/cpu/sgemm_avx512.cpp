// The AVX-512 GEMM kernel (this file alone is compiled with -mavx512f on top of AVX2 and FMA).
#if defined(__x86_64__)
#define SGEMM_NS avx512
#define SGEMM_512 1
#include "cpu/sgemm_simd.inc"

namespace kvscope::sgemm::detail {
void gemmAvx512(const Args& a) {
    avx512::run(a);
}
}  // namespace kvscope::sgemm::detail
#endif
