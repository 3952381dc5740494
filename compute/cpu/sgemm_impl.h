// Internal to compute/cpu/sgemm*.cpp. Free of standard-library headers, as quant_dot_impl.h and
// for the same reason: the per-ISA files are compiled with -mavx2 / -mavx512f.
#pragma once

namespace kvscope::sgemm::detail {

struct Args {
    bool transA;
    int M, N, K;
    const float* A;
    int lda;
    const float* B;
    int ldb;
    float* C;
    int ldc;
    bool accumulate;
};

void gemmAvx2(const Args& a);
void gemmAvx512(const Args& a);

}  // namespace kvscope::sgemm::detail
