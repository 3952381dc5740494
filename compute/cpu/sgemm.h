// Float32 matrix products for the trainers (and anything else with row-major float matrices):
// C (M×N) = or += op(A) · B, where B is (K×N) row-major and op(A) is A (M×K) or Aᵀ of A (K×M).
// Together with a transpose of B these are all the products a linear layer's forward and
// backward passes need (X·Wᵀ, D·W, Dᵀ·X) and those of attention.
//
// Like qdot's gemv, one binary runs on any x86-64: register-blocked AVX2+FMA and AVX-512
// kernels, each compiled in its own file with its own flags, chosen at run time (qdot::bestIsa()).
// The scalar path is Eigen's product (built for baseline x86-64), which the kernels are tested
// against. The kernels accumulate each output in float32 over k in order, with FMA: results
// differ from Eigen's in the last bits, and repeat bit for bit for the same arguments and isa.
#pragma once

#include "cpu/quant_dot.h"

namespace kvscope::sgemm {

// C[i·ldc + j] = (accumulate ? C[i·ldc + j] : 0) + Σ_k op(A)(i, k) · B[k·ldb + j]
// for i < M, j < N, k < K; op(A)(i, k) = A[i·lda + k], or A[k·lda + i] when transA.
// Leading dimensions are in elements. Throws Error for an isa this CPU cannot run.
void gemm(bool transA, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
          float* C, int ldc, bool accumulate, qdot::Isa isa = qdot::bestIsa());

// dst (cols × rows, row-major, ldd) = srcᵀ of src (rows × cols, lds).
void transpose(float* dst, int ldd, const float* src, int lds, int rows, int cols);

}  // namespace kvscope::sgemm
