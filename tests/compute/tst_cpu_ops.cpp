// CPU operations against plain loops written from their definitions, and the thread pool.
#include <QTest>
#include <atomic>
#include <cmath>
#include <random>

#include "core/thread_pool.h"
#include "cpu/cpu_ops.h"

using namespace kvscope;

namespace {
std::vector<float> randomVector(size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0, 1);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}
}  // namespace

class TstCpuOps : public QObject {
    Q_OBJECT
  private slots:
    void parallelForRunsEveryChunkOnce() {
        ThreadPool pool(4);
        std::vector<std::atomic<int>> hits(1000);
        for (int round = 0; round < 20; ++round)
            pool.parallelFor(hits.size(), [&](size_t c) { hits[c].fetch_add(1); });
        for (auto& h : hits) QCOMPARE(h.load(), 20);
    }

    // out = in · wᵀ + b against the triple loop, for a GEMV (n = 1) and a GEMM, with sizes that
    // do not divide the 64-row chunks.
    void matmulEqualsTheDefinition_data() {
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("inDim");
        QTest::addColumn<int>("outDim");
        QTest::newRow("gemv 1x37->200") << 1 << 37 << 200;
        QTest::newRow("gemm 5x64->130") << 5 << 64 << 130;
        QTest::newRow("gemm 33x16->7") << 33 << 16 << 7;
    }
    void matmulEqualsTheDefinition() {
        QFETCH(int, n);
        QFETCH(int, inDim);
        QFETCH(int, outDim);
        const auto in = randomVector(static_cast<size_t>(n * inDim), 1);
        const auto w = randomVector(static_cast<size_t>(outDim * inDim), 2);
        const auto b = randomVector(static_cast<size_t>(outDim), 3);
        ThreadPool pool(3);
        std::vector<float> out(static_cast<size_t>(n * outDim));
        ops::matmul(out.data(), in.data(), w.data(), b.data(), n, inDim, outDim, pool);
        for (int i = 0; i < n; ++i)
            for (int o = 0; o < outDim; ++o) {
                double ref = b[o];
                for (int k = 0; k < inDim; ++k) ref += double(in[i * inDim + k]) * w[o * inDim + k];
                QVERIFY(std::abs(out[i * outDim + o] - ref) < 1e-4 * (1 + std::abs(ref)));
            }
    }

    void layerNormHasZeroMeanUnitVariance() {
        const auto x = randomVector(64, 4);
        std::vector<float> w(64, 1.0f), b(64, 0.0f), out(64);
        ops::layerNorm(out.data(), x.data(), w.data(), b.data(), 1, 64, 1e-5f);
        double mean = 0, var = 0;
        for (float v : out) mean += v;
        mean /= 64;
        for (float v : out) var += (v - mean) * (v - mean);
        QVERIFY(std::abs(mean) < 1e-5);
        QVERIFY(std::abs(var / 64 - 1) < 1e-3);
    }

    void rmsNormHasUnitRootMeanSquare() {
        const auto x = randomVector(48, 5);
        std::vector<float> w(48, 2.0f), out(48);
        ops::rmsNorm(out.data(), x.data(), w.data(), 1, 48, 0.0f);
        double ss = 0;
        for (float v : out) ss += v * v;
        QVERIFY(std::abs(std::sqrt(ss / 48) - 2.0) < 1e-5);  // rms 1, times weight 2
    }

    // RoPE at position p turns pair i by the angle p · base^(-2i/d): pair 0 by p radians.
    void ropeRotatesAdjacentPairs() {
        std::vector<float> x{1, 0, 1, 0, 0, 1, 0, 1};
        ops::ropeAdjacent(x.data(), 8, 0, 10000.0f);
        QCOMPARE(x, (std::vector<float>{1, 0, 1, 0, 0, 1, 0, 1}));
        std::vector<float> y{1, 0, 0, 0, 0, 0, 0, 0};
        ops::ropeAdjacent(y.data(), 8, 3, 10000.0f);
        QVERIFY(std::abs(y[0] - std::cos(3.0f)) < 1e-6);
        QVERIFY(std::abs(y[1] - std::sin(3.0f)) < 1e-6);
        // pair 1 turns by 3 · 10000^(-2/8) = 0.3 radians
        std::vector<float> z{0, 0, 1, 0, 0, 0, 0, 0};
        ops::ropeAdjacent(z.data(), 8, 3, 10000.0f);
        QVERIFY(std::abs(z[2] - std::cos(0.3f)) < 1e-6);
        QVERIFY(std::abs(z[3] - std::sin(0.3f)) < 1e-6);
    }

    void geluAndSwigluMatchTheirFormulas() {
        std::vector<float> g{-2.0f, 0.0f, 1.0f};
        ops::geluTanh(g.data(), g.size());
        // GELU(1) = 0.5 (1 + tanh(sqrt(2/pi) (1 + 0.044715))) = 0.841192
        QVERIFY(std::abs(g[2] - 0.841192f) < 1e-5);
        QCOMPARE(g[1], 0.0f);
        QVERIFY(std::abs(g[0] - (-0.045402f)) < 1e-5);
        std::vector<float> gate{1.0f}, up{3.0f};
        ops::swiglu(gate.data(), up.data(), 1);
        QVERIFY(std::abs(gate[0] - 3.0f / (1.0f + std::exp(-1.0f))) < 1e-6);
    }

    void attendOneIsSoftmaxWeightedValues() {
        // Two cached positions; q·k = 0 and 2·sqrt(d) so the weights are 1/(1+e²) and e²/(1+e²).
        const int d = 4;
        std::vector<float> q{1, 0, 0, 0}, K{0, 0, 0, 0, 4, 0, 0, 0}, V{1, 0, 0, 0, 0, 1, 0, 0};
        std::vector<float> out(4), a(2);
        ops::attendOne(out.data(), a.data(), q.data(), K.data(), V.data(), 2, d);
        const double e2 = std::exp(2.0);
        QVERIFY(std::abs(a[0] - 1 / (1 + e2)) < 1e-6);
        QVERIFY(std::abs(a[1] - e2 / (1 + e2)) < 1e-6);
        QVERIFY(std::abs(out[0] - a[0]) < 1e-6);
        QVERIFY(std::abs(out[1] - a[1]) < 1e-6);
    }
};

QTEST_GUILESS_MAIN(TstCpuOps)
#include "tst_cpu_ops.moc"
