// The dispatcher of sgemm.h: the per-ISA kernels (sgemm_simd.inc) or Eigen's product.
#include "cpu/sgemm.h"

#include <Eigen/Core>

#include "core/error.h"
#include "cpu/sgemm_impl.h"

namespace kvscope::sgemm {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMat = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
using Mat = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;

void gemmEigen(const detail::Args& a) {
    Mat C(a.C, a.M, a.N, Eigen::OuterStride<>(a.ldc));
    const ConstMat B(a.B, a.K, a.N, Eigen::OuterStride<>(a.ldb));
    if (!a.accumulate) C.setZero();
    if (a.K == 0) return;
    if (a.transA)
        C.noalias() += ConstMat(a.A, a.K, a.M, Eigen::OuterStride<>(a.lda)).transpose() * B;
    else
        C.noalias() += ConstMat(a.A, a.M, a.K, Eigen::OuterStride<>(a.lda)) * B;
}

}  // namespace

void gemm(bool transA, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
          float* C, int ldc, bool accumulate, qdot::Isa isa) {
    if (!qdot::isaSupported(isa)) throw Error("sgemm: this CPU cannot run " + qdot::isaName(isa));
    KVSCOPE_CHECK(M >= 0 && N >= 0 && K >= 0, "sgemm: negative size");
    if (M == 0 || N == 0) return;
    const detail::Args a{transA, M, N, K, A, lda, B, ldb, C, ldc, accumulate};
#if defined(__x86_64__)
    if (isa == qdot::Isa::Avx512) return detail::gemmAvx512(a);
    if (isa == qdot::Isa::Avx2) return detail::gemmAvx2(a);
#endif
    gemmEigen(a);
}

void transpose(float* dst, int ldd, const float* src, int lds, int rows, int cols) {
    constexpr int kTile = 32;  // tiles, so that both sides are read and written in cache lines
    for (int r0 = 0; r0 < rows; r0 += kTile)
        for (int c0 = 0; c0 < cols; c0 += kTile)
            for (int r = r0; r < std::min(rows, r0 + kTile); ++r)
                for (int c = c0; c < std::min(cols, c0 + kTile); ++c)
                    dst[static_cast<size_t>(c) * ldd + r] = src[static_cast<size_t>(r) * lds + c];
}

}  // namespace kvscope::sgemm
