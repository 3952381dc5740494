// Tests of sgemm::gemm, the float32 products of the trainers: every kernel set this CPU runs
// (Eigen's product as "scalar", AVX2 and AVX-512 where present) against a float64 triple loop on
// random matrices, over sizes on and off the register blocks (rows, vector widths, the k slice),
// both forms of A, overwrite and accumulate, and leading dimensions wider than the matrices (the
// padding must stay untouched); then bit-for-bit repeatability, transpose, and the refusals.
#include <QTest>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/sgemm.h"

using namespace kvscope;
using qdot::Isa;

namespace {

std::vector<Isa> availableIsas() {
    std::vector<Isa> isas;
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
        if (qdot::isaSupported(isa)) isas.push_back(isa);
    return isas;
}

std::vector<float> randomVec(size_t n, std::mt19937& rng) {
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

constexpr float kPad = 12345.0f;  // what the padding of C holds before and must hold after

// One product on `isa` against the float64 loop; an error message or "".
std::string check(Isa isa, bool transA, int M, int N, int K, int pad, bool accumulate,
                  std::mt19937& rng) {
    const int lda = (transA ? M : K) + pad, ldb = N + pad, ldc = N + pad;
    const auto A = randomVec(static_cast<size_t>(transA ? K : M) * lda + 1, rng);
    const auto B = randomVec(static_cast<size_t>(K) * ldb + 1, rng);
    std::vector<float> C(static_cast<size_t>(M) * ldc, kPad);
    const auto C0 = randomVec(C.size(), rng);
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j)
            C[static_cast<size_t>(i) * ldc + j] = C0[static_cast<size_t>(i) * ldc + j];
    std::vector<float> before = C;
    sgemm::gemm(transA, M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc, accumulate, isa);
    const std::string what = qdot::isaName(isa) + (transA ? " Aᵀ" : " A") +
                             " M=" + std::to_string(M) + " N=" + std::to_string(N) +
                             " K=" + std::to_string(K) + " pad=" + std::to_string(pad) +
                             (accumulate ? " +=" : " =");
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < ldc; ++j) {
            const size_t at = static_cast<size_t>(i) * ldc + j;
            if (j >= N) {
                if (C[at] != kPad) return what + ": padding of C changed at " + std::to_string(at);
                continue;
            }
            double ref = accumulate ? before[at] : 0.0, mag = std::fabs(ref);
            for (int k = 0; k < K; ++k) {
                const double a = transA ? A[static_cast<size_t>(k) * lda + i]
                                        : A[static_cast<size_t>(i) * lda + k];
                const double p = a * B[static_cast<size_t>(k) * ldb + j];
                ref += p;
                mag += std::fabs(p);
            }
            // float32 accumulation of K + 1 terms: at most (K + 1)·2⁻²⁴ of Σ|terms| each step
            const double tol = (K + 2) * 6.0e-8 * mag + 1e-30;
            if (!(std::fabs(C[at] - ref) <= tol))
                return what + ": C(" + std::to_string(i) + "," + std::to_string(j) +
                       ") = " + std::to_string(C[at]) + ", float64 " + std::to_string(ref);
        }
    return "";
}

}  // namespace

class TestSgemm : public QObject {
    Q_OBJECT

  private slots:
    void everyIsaMatchesTheFloat64Product() {
        std::mt19937 rng(42);
        int checked = 0;
        for (Isa isa : availableIsas())
            for (bool transA : {false, true})
                for (int M : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 17})
                    for (int N : {1, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100})
                        for (int K : {0, 1, 3, 255, 256, 257, 600}) {
                            const bool acc = (M + N + K) % 2 == 0;
                            const int pad = (M * N + K) % 3;
                            const std::string err = check(isa, transA, M, N, K, pad, acc, rng);
                            if (!err.empty()) QFAIL(err.c_str());
                            ++checked;
                        }
        QVERIFY(checked >= 2 * 11 * 11 * 7);
    }

    void aTrainerShapeMatchesOnEveryIsa() {
        // the output head of a width-256 model on a batch of 8 × 64 tokens, both forms
        std::mt19937 rng(7);
        for (Isa isa : availableIsas()) {
            std::string err = check(isa, false, 512, 2048, 256, 0, false, rng);
            if (!err.empty()) QFAIL(err.c_str());
            err = check(isa, true, 96, 256, 512, 0, true, rng);
            if (!err.empty()) QFAIL(err.c_str());
        }
    }

    void repeatsBitForBit() {
        std::mt19937 rng(3);
        const int M = 37, N = 70, K = 300;
        const auto A = randomVec(static_cast<size_t>(M) * K, rng);
        const auto B = randomVec(static_cast<size_t>(K) * N, rng);
        for (Isa isa : availableIsas()) {
            std::vector<float> c1(static_cast<size_t>(M) * N), c2(c1.size());
            sgemm::gemm(false, M, N, K, A.data(), K, B.data(), N, c1.data(), N, false, isa);
            sgemm::gemm(false, M, N, K, A.data(), K, B.data(), N, c2.data(), N, false, isa);
            QVERIFY2(c1 == c2, qdot::isaName(isa).c_str());
        }
    }

    void transposeSwapsRowsAndColumns() {
        const int rows = 45, cols = 70, ldd = 50;  // across and off the 32 × 32 tiles
        std::vector<float> src(static_cast<size_t>(rows) * cols);
        for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i);
        std::vector<float> dst(static_cast<size_t>(cols) * ldd, -1.0f);
        sgemm::transpose(dst.data(), ldd, src.data(), cols, rows, cols);
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < cols; ++c)
                QCOMPARE(dst[static_cast<size_t>(c) * ldd + r], static_cast<float>(r * cols + c));
        for (int c = 0; c < cols; ++c)
            for (int r = rows; r < ldd; ++r) QCOMPARE(dst[static_cast<size_t>(c) * ldd + r], -1.0f);
    }

    void refusesWhatItCannotDo() {
        float a = 1, b = 1, c = 0;
        QVERIFY_THROWS_EXCEPTION(Error, sgemm::gemm(false, -1, 1, 1, &a, 1, &b, 1, &c, 1, false));
        if (!qdot::isaSupported(Isa::Avx512))
            QVERIFY_THROWS_EXCEPTION(
                Error, sgemm::gemm(false, 1, 1, 1, &a, 1, &b, 1, &c, 1, false, Isa::Avx512));
    }
};

QTEST_GUILESS_MAIN(TestSgemm)
#include "tst_sgemm.moc"
