// CPU operations against plain loops written from their definitions, and the thread pool.
#include <QTest>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>

#include "core/thread_pool.h"
#include "cpu/cpu_ops.h"
#include "model/rope.h"

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

    // out = in · wᵀ + b against the triple loop, for a GEMV (n = 1) and GEMMs (sgemm), with sizes
    // that do not divide the 64-row chunks.
    void matmulEqualsTheDefinition_data() {
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("inDim");
        QTest::addColumn<int>("outDim");
        QTest::newRow("gemv 1x37->200") << 1 << 37 << 200;
        QTest::newRow("gemm 5x64->130") << 5 << 64 << 130;
        QTest::newRow("gemm 33x16->7") << 33 << 16 << 7;
        // sgemm's register blocks and k slices, with 64-row chunks and a 4-row one
        QTest::newRow("gemm 40x300->260") << 40 << 300 << 260;
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

    // The same, vectorised: 37 values (whole packets and a tail) from -12 to 12 against the
    // formulas in double, within a few float ulps.
    void geluAndSwigluOverManyValuesMatchTheirFormulas() {
        std::vector<float> x(37), gate(37), up(37);
        for (int i = 0; i < 37; ++i) {
            x[i] = -12.0f + 24.0f * static_cast<float>(i) / 36.0f;
            gate[i] = x[i];
            up[i] = 0.5f + static_cast<float>(i % 5);
        }
        std::vector<float> g = x;
        ops::geluTanh(g.data(), g.size());
        ops::swiglu(gate.data(), up.data(), gate.size());
        const double k = std::sqrt(2.0 / 3.14159265358979323846);
        for (int i = 0; i < 37; ++i) {
            const double v = x[i];
            const double gelu = 0.5 * v * (1.0 + std::tanh(k * (v + 0.044715 * v * v * v)));
            const double silu = v / (1.0 + std::exp(-v)) * up[i];
            QVERIFY2(std::abs(g[i] - gelu) <= 4e-7 * std::max(1.0, std::abs(gelu)),
                     qPrintable(QString("gelu(%1) = %2, formula %3").arg(v).arg(g[i]).arg(gelu)));
            QVERIFY2(
                std::abs(gate[i] - silu) <= 4e-7 * std::max(1.0, std::abs(silu)),
                qPrintable(QString("silu(%1) = %2, formula %3").arg(v).arg(gate[i]).arg(silu)));
        }
    }

    // NEOX RoPE pairs x[i] with x[i + nRot/2]; dimensions past nRot stay. Head of 6, nRot 4:
    // pairs (0,2) by p radians and (1,3) by p · 10000^(-2/4) = p / 100; x[4], x[5] untouched.
    void ropeNeoxRotatesHalvesOfTheRotatedPart() {
        RopeConfig r;
        r.type = RopeType::Neox;
        r.nRot = 4;
        std::vector<float> cs(2), sn(2);
        ropeCosSin(r, 3, cs.data(), sn.data());
        QVERIFY(std::abs(cs[0] - std::cos(3.0f)) < 1e-6 &&
                std::abs(sn[1] - std::sin(0.03f)) < 1e-6);
        std::vector<float> x{1, 1, 0, 0, 5, 7};
        ropeApply(r, x.data(), cs.data(), sn.data());
        QVERIFY(std::abs(x[0] - std::cos(3.0f)) < 1e-6 && std::abs(x[2] - std::sin(3.0f)) < 1e-6);
        QVERIFY(std::abs(x[1] - std::cos(0.03f)) < 1e-6 && std::abs(x[3] - std::sin(0.03f)) < 1e-6);
        QCOMPARE(x[4], 5.0f);
        QCOMPARE(x[5], 7.0f);
        // adjacent pairs from the same angles: (x0, x1) turn by p, (x2, x3) by p / 100
        r.type = RopeType::Adjacent;
        std::vector<float> y{1, 0, 1, 0};
        ropeApply(r, y.data(), cs.data(), sn.data());
        QVERIFY(std::abs(y[1] - std::sin(3.0f)) < 1e-6 && std::abs(y[3] - std::sin(0.03f)) < 1e-6);
    }

    // Angle of pair i at position p: p · base^(-2i/nRot) / factor_i · freqScale, as llama.cpp's
    // rope_yarn without the ramp; cos and sin scaled by attnFactor.
    void ropeAnglesTakeFactorsScaleAndAttnFactor() {
        RopeConfig r;
        r.type = RopeType::Adjacent;
        r.nRot = 4;
        r.freqScale = 0.5f;
        r.freqFactors = {1.0f, 4.0f};
        r.attnFactor = 2.0f;
        std::vector<float> cs(2), sn(2);
        ropeCosSin(r, 10, cs.data(), sn.data());
        QVERIFY(std::abs(cs[0] - 2 * std::cos(5.0f)) < 1e-5);     // 10 · 1 / 1 · 0.5
        QVERIFY(std::abs(sn[1] - 2 * std::sin(0.0125f)) < 1e-6);  // 10 / 100 / 4 · 0.5
    }

    // YaRN (Peng et al. 2023, as ggml's rope_yarn): pairs that turn more than beta_fast = 32 times
    // over the original context keep their angle, pairs that turn less than beta_slow = 1 time
    // are interpolated (× freqScale), and cos/sin grow by 1 + 0.1 ln(1/freqScale).
    // nRot 64, base 10000, original context 4096: the correction dims are
    // 64 · ln(4096 / (32 · 2π)) / (2 ln 10000) = 10.47 → floor 10, and
    // 64 · ln(4096 / (1 · 2π)) / (2 ln 10000) = 22.5 → ceil 23.
    void yarnKeepsFastPairsAndInterpolatesSlowOnes() {
        RopeConfig r;
        r.type = RopeType::Neox;
        r.nRot = 64;
        r.yarn = true;
        r.freqScale = 0.25f;
        r.nCtxOrig = 4096;
        std::vector<float> cs(32), sn(32);
        const int p = 100;
        ropeCosSin(r, p, cs.data(), sn.data());
        const double m = 1 + 0.1 * std::log(4.0);
        const auto angle = [&](int i) { return p * std::pow(10000.0, -2.0 * i / 64); };
        QVERIFY(std::abs(sn[1] - m * std::sin(angle(1))) < 1e-5);           // i < 10: kept
        QVERIFY(std::abs(sn[30] - m * std::sin(0.25 * angle(30))) < 1e-5);  // i > 23: scaled
        // between: pair 12 mixes by 1 - (12 - 10) / (23 - 10)
        const double mix = 1 - 2.0 / 13.0;
        const double theta = 0.25 * angle(12) * (1 - mix) + angle(12) * mix;
        QVERIFY(std::abs(sn[12] - m * std::sin(theta)) < 1e-5);
    }

    // Scores scaled, capped by cap · tanh(s / cap), softmaxed inside the window, zero outside.
    void attentionRowsApplyScaleSoftcapAndWindow() {
        // t = 3, window 2: row 2 sees columns 1 and 2 only; row 0 sees itself.
        std::vector<float> s{1, 9, 9, 2, 4, 9, 7, 0, 2};
        ops::attentionRows(s.data(), 3, {0.5f, 1.0f, 2});
        QCOMPARE(s[0], 1.0f);
        QCOMPARE(s[1], 0.0f);
        // row 1: capped scores tanh(1), tanh(2)
        const double a = std::exp(std::tanh(1.0)), b = std::exp(std::tanh(2.0));
        QVERIFY(std::abs(s[3] - a / (a + b)) < 1e-6 && std::abs(s[4] - b / (a + b)) < 1e-6);
        // row 2: column 0 is outside the window; columns 1, 2: tanh(0), tanh(1)
        const double c0 = 1.0, c1 = std::exp(std::tanh(1.0));
        QCOMPARE(s[6], 0.0f);
        QVERIFY(std::abs(s[7] - c0 / (c0 + c1)) < 1e-6 && std::abs(s[8] - c1 / (c0 + c1)) < 1e-6);
        std::vector<float> g{2.0f}, up{3.0f};
        ops::geglu(g.data(), up.data(), 1);
        // GELU(2) = 0.5 · 2 · (1 + tanh(sqrt(2/pi) (2 + 0.044715 · 8))) = 1.954598
        QVERIFY(std::abs(g[0] - 3 * 1.954598f) < 1e-5);
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
