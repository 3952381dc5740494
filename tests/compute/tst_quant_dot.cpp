// Tests of qdot::gemv, the dot products of weight rows stored in their GGUF type: every type on
// every kernel set this CPU runs (scalar always, AVX2 and AVX-512 where present) against
// dequantizeRow + a float64 dot product, on quantized random rows, random bytes and extreme
// scales; the kernel sets against each other; a check that the tolerance is tight enough to see a
// wrong nibble order; and the refusals.
#include <QTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/quant_dot.h"
#include "gguf/dequant.h"
#include "gguf/gguf.h"
#include "quant_dot_data.h"

using namespace kvscope;
using namespace kvscope::qdot_testing;
using qdot::Isa;

namespace {

std::vector<Isa> availableIsas() {
    std::vector<Isa> isas;
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
        if (qdot::isaSupported(isa)) isas.push_back(isa);
    }
    return isas;
}

// The n values to try for t: 1..16 blocks and 4096 (F16/BF16/F32 also sizes off the vector width).
std::vector<int64_t> sizesFor(TensorType t) {
    const int64_t e = blockLayout(t)->elems;
    std::vector<int64_t> ns;
    if (e == 1) {
        ns = {1, 7, 8, 15, 16, 17, 31, 32, 33, 100, 255, 513};
    } else {
        for (int64_t b = 1; b <= 16; ++b) ns.push_back(b * e);
    }
    ns.push_back(4096);
    return ns;
}

std::string label(TensorType t, Isa isa, int64_t n, const char* what) {
    return typeName(t) + " " + qdot::isaName(isa) + " n=" + std::to_string(n) + " " + what;
}

// gemv on `isa` within tolerance of the reference for every row; an error message or "".
std::string check(TensorType t, Isa isa, const std::vector<uint8_t>& w, size_t rowBytes, int rows,
                  const std::vector<float>& x, int64_t n, const char* what) {
    std::vector<float> out(static_cast<size_t>(rows), std::nanf(""));
    qdot::gemv(t, w.data(), rowBytes, rows, x.data(), n, out.data(), isa);
    const auto ref = reference(t, w.data(), rowBytes, rows, x.data(), n);
    for (int r = 0; r < rows; ++r) {
        const Reference& rf = ref[static_cast<size_t>(r)];
        const double err = std::fabs(double(out[static_cast<size_t>(r)]) - rf.dot);
        const double tol = tolerance(t, isa, rf);
        if (!(err <= tol)) {
            return label(t, isa, n, what) + " row " + std::to_string(r) + ": got " +
                   std::to_string(out[static_cast<size_t>(r)]) + ", reference " +
                   std::to_string(rf.dot) + ", error " + std::to_string(err) + " > tolerance " +
                   std::to_string(tol) + " (sum |w x| " + std::to_string(rf.absDot) + ")";
        }
    }
    return {};
}

// "" when every vector set this CPU runs rounds x to 8 bits (per 256 values for the K-quants,
// else per 32) exactly as the plain loop does: the same q, d and sums, bit for bit.
QString vectorEqualsPlain(const std::vector<float>& x, bool kQuants) {
    const auto n = static_cast<int64_t>(x.size());
    const auto plain = qdot::detail::quantizeXForTesting(x.data(), n, Isa::Scalar, kQuants);
    auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
        return a.size() == b.size() &&
               std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    for (Isa isa : availableIsas()) {
        if (isa == Isa::Scalar) continue;
        const auto v = qdot::detail::quantizeXForTesting(x.data(), n, isa, kQuants);
        const QString name = QString::fromStdString(qdot::isaName(isa));
        for (size_t i = 0; i < plain.q.size(); ++i)
            if (v.q[i] != plain.q[i])
                return QString("%1 q[%2]: %3, plain %4")
                    .arg(name)
                    .arg(i)
                    .arg(v.q[i])
                    .arg(plain.q[i]);
        if (!same(v.d, plain.d) || !same(v.s16, plain.s16) || !same(v.s32, plain.s32))
            return name + ": the scales or block sums differ from the plain loop's";
    }
    return {};
}

}  // namespace

class TestQuantDot : public QObject {
    Q_OBJECT

  private slots:
    void isaDetection() {
        const Isa best = qdot::bestIsa();
        QVERIFY(qdot::isaSupported(Isa::Scalar));
        QVERIFY(qdot::isaSupported(best));
        QCOMPARE(qdot::bestIsa(), best);
        QCOMPARE(qdot::isaName(Isa::Scalar), std::string("scalar"));
        QCOMPARE(qdot::isaName(Isa::Avx2), std::string("avx2+fma+f16c"));
        QCOMPARE(qdot::isaName(Isa::Avx512), std::string("avx512"));
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
            __builtin_cpu_supports("f16c")) {
            QVERIFY(qdot::isaSupported(Isa::Avx2));
        }
#endif
        qInfo("best ISA here: %s", qdot::isaName(best).c_str());
        for (TensorType t : allTypes()) QVERIFY(qdot::gemvSupports(t));
        QVERIFY(!qdot::gemvSupports(TensorType::Q8_K));
        QVERIFY(!qdot::gemvSupports(TensorType::Q8_1));
    }

    // Rows from quantizeRow of Gaussian floats, Gaussian x, every size; rows padded to odd
    // strides (rowBytes > the row, misaligned).
    void quantizedRowsMatchReference() {
        std::mt19937 rng(1);
        for (TensorType t : allTypes()) {
            for (int64_t n : sizesFor(t)) {
                const int rows = n >= 4096 ? 5 : 3;
                const size_t rowBytes = *tensorBytes(t, static_cast<uint64_t>(n)) + 7;
                const auto w = makeRows(t, rows, n, rowBytes, Source::Quantized, rng);
                const auto x = makeX(n, 0.5f, rng);
                for (Isa isa : availableIsas()) {
                    const std::string e = check(t, isa, w, rowBytes, rows, x, n, "quantized");
                    QVERIFY2(e.empty(), e.c_str());
                }
            }
        }
    }

    // x of subnormal magnitude (found by the session fuzzer: 127 / max|x| overflows to
    // infinity, and the rounding to 8 bits must neither overflow an int nor lose the block): every
    // path stays finite and within the tolerance of the reference.
    void subnormalXStaysFinite() {
        std::mt19937 rng(5);
        for (TensorType t : allTypes()) {
            const int64_t n = 256;
            const size_t rowBytes = *tensorBytes(t, static_cast<uint64_t>(n));
            const auto w = makeRows(t, 2, n, rowBytes, Source::Quantized, rng);
            std::vector<float> x = makeX(n, 1.0f, rng);
            for (float& v : x) v *= 1e-39f;  // below FLT_MIN: subnormal
            x[3] = 0.0f;
            for (Isa isa : availableIsas()) {
                const std::string e = check(t, isa, w, rowBytes, 2, x, n, "subnormal x");
                QVERIFY2(e.empty(), e.c_str());
            }
        }
    }

    // Random bytes (finite scales of any magnitude and sign), x with a large mean so that the
    // offsets and mins carry much of the sum.
    void randomBytesMatchReference() {
        std::mt19937 rng(2);
        for (TensorType t : allTypes()) {
            for (int64_t n : sizesFor(t)) {
                const int rows = 4;
                const size_t rowBytes = *tensorBytes(t, static_cast<uint64_t>(n));
                const auto w = makeRows(t, rows, n, rowBytes, Source::Bytes, rng);
                auto x = makeX(n, 1.0f, rng);
                for (size_t i = 0; i < x.size(); i += 2) x[i] += 3.0f;
                for (Isa isa : availableIsas()) {
                    const std::string e = check(t, isa, w, rowBytes, rows, x, n, "bytes");
                    QVERIFY2(e.empty(), e.c_str());
                }
            }
        }
    }

    // Scales of ±65504, ±1, ±2^-24 and 0 with small x; zero blocks.
    void extremeScalesMatchReference() {
        std::mt19937 rng(3);
        for (TensorType t : allTypes()) {
            for (int64_t n : {int64_t(blockLayout(t)->elems * 8), int64_t(4096)}) {
                const int rows = 6;
                const size_t rowBytes = *tensorBytes(t, static_cast<uint64_t>(n)) + 1;
                const auto w = makeRows(t, rows, n, rowBytes, Source::Extreme, rng);
                const auto x = makeX(n, 1e-3f, rng);
                for (Isa isa : availableIsas()) {
                    const std::string e = check(t, isa, w, rowBytes, rows, x, n, "extreme");
                    QVERIFY2(e.empty(), e.c_str());
                }
            }
        }
    }

    // x that the 8-bit quantization keeps exactly: the SIMD kernels must then agree with the
    // reference to float rounding alone (no x-quantization allowance).
    void exactXLeavesOnlyRounding() {
        std::mt19937 rng(4);
        for (TensorType t : allTypes()) {
            for (int64_t n : {int64_t(blockLayout(t)->elems * 3), int64_t(4096)}) {
                const int rows = 4;
                const size_t rowBytes = *tensorBytes(t, static_cast<uint64_t>(n));
                for (Source src : {Source::Quantized, Source::Bytes}) {
                    const auto w = makeRows(t, rows, n, rowBytes, src, rng);
                    const auto x = makeExactX(n, rng);
                    const auto ref = reference(t, w.data(), rowBytes, rows, x.data(), n);
                    for (Isa isa : availableIsas()) {
                        std::vector<float> out(rows);
                        qdot::gemv(t, w.data(), rowBytes, rows, x.data(), n, out.data(), isa);
                        for (int r = 0; r < rows; ++r) {
                            const double err = std::fabs(out[r] - ref[r].dot);
                            const double tol = 2e-5 * ref[r].absDot + 1e-30;
                            QVERIFY2(err <= tol,
                                     (label(t, isa, n, "exact x") + " row " + std::to_string(r) +
                                      " error " + std::to_string(err / ref[r].absDot))
                                         .c_str());
                        }
                    }
                }
            }
        }
    }

    // Every kernel set gives the same answers: the SIMD sets share the quantized x, so they agree
    // to float rounding; each agrees with the scalar set within the x-quantization bound.
    void isasAgree() {
        std::mt19937 rng(5);
        const auto isas = availableIsas();
        for (TensorType t : allTypes()) {
            const int64_t n = 4096;
            const int rows = 8;
            const size_t rowBytes = *tensorBytes(t, n);
            const auto w = makeRows(t, rows, n, rowBytes, Source::Quantized, rng);
            const auto x = makeX(n, 2.0f, rng);
            const auto ref = reference(t, w.data(), rowBytes, rows, x.data(), n);
            std::vector<std::vector<float>> outs;
            for (Isa isa : isas) {
                outs.emplace_back(rows);
                qdot::gemv(t, w.data(), rowBytes, rows, x.data(), n, outs.back().data(), isa);
            }
            for (size_t a = 0; a < isas.size(); ++a) {
                for (size_t b = a + 1; b < isas.size(); ++b) {
                    for (int r = 0; r < rows; ++r) {
                        const bool bothSimd = isas[a] != Isa::Scalar;
                        const double tol = bothSimd ? 2e-5 * (ref[r].absDot + ref[r].xBound)
                                                    : tolerance(t, isas[b], ref[r]);
                        const double diff = std::fabs(double(outs[a][r]) - outs[b][r]);
                        QVERIFY2(diff <= tol,
                                 (typeName(t) + " " + qdot::isaName(isas[a]) + " vs " +
                                  qdot::isaName(isas[b]) + " row " + std::to_string(r) +
                                  " differ by " + std::to_string(diff))
                                     .c_str());
                    }
                }
            }
        }
    }

    // The checks above can fail: rows with a wrong layout (Q4_0 and Q4_K with their nibbles
    // swapped, Q6_K with its two 64-byte ql halves exchanged) are outside
    // exactXLeavesOnlyRounding's tolerance of the true reference at every size, and outside the
    // Gaussian-x tolerance (which allows for the 8-bit x) at the small sizes of
    // quantizedRowsMatchReference.
    void toleranceSeesWrongLayouts() {
        std::mt19937 rng(6);
        const int rows = 8;
        for (TensorType t : {TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K}) {
            const BlockLayout lay = *blockLayout(t);
            for (int64_t n : {int64_t(lay.elems), int64_t(4096)}) {
                const size_t rowBytes = *tensorBytes(t, n);
                const auto w = makeRows(t, rows, n, rowBytes, Source::Quantized, rng);
                auto bad = w;
                for (size_t b = 0; b < bad.size() / lay.bytes; ++b) {
                    uint8_t* blk = bad.data() + b * lay.bytes;
                    if (t == TensorType::Q4_0) {
                        for (int i = 2; i < 18; ++i)
                            blk[i] = uint8_t((blk[i] >> 4) | (blk[i] << 4));
                    } else if (t == TensorType::Q4_K) {
                        for (int i = 16; i < 144; ++i)
                            blk[i] = uint8_t((blk[i] >> 4) | (blk[i] << 4));
                    } else {
                        for (int i = 0; i < 64; ++i) std::swap(blk[i], blk[64 + i]);
                    }
                }
                const auto x = makeExactX(n, rng);
                const auto good = reference(t, w.data(), rowBytes, rows, x.data(), n);
                const auto wrong = reference(t, bad.data(), rowBytes, rows, x.data(), n);
                const auto gx = makeX(n, 1.0f, rng);
                const auto gGood = reference(t, w.data(), rowBytes, rows, gx.data(), n);
                const auto gWrong = reference(t, bad.data(), rowBytes, rows, gx.data(), n);
                int seenExact = 0, seenGauss = 0;
                for (int r = 0; r < rows; ++r) {
                    if (std::fabs(wrong[r].dot - good[r].dot) > 2e-5 * good[r].absDot) ++seenExact;
                    if (std::fabs(gWrong[r].dot - gGood[r].dot) >
                        tolerance(t, qdot::Isa::Avx2, gGood[r])) {
                        ++seenGauss;
                    }
                }
                const std::string what = typeName(t) + " n=" + std::to_string(n);
                QVERIFY2(seenExact == rows, what.c_str());
                if (n < 4096) QVERIFY2(seenGauss >= rows / 2, what.c_str());
            }
        }
    }

    // The other strategy (dequantize to float in registers, FMA with the float x), kept for the
    // benchmark's comparison: no 8-bit x, so float rounding alone.
    void dequantFmaMatchesReference() {
        std::mt19937 rng(8);
        for (TensorType t : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K}) {
            for (int64_t n : {int64_t(256), int64_t(768), int64_t(4096)}) {
                const int rows = 4;
                const size_t rowBytes = *tensorBytes(t, n) + 3;
                for (Source src : {Source::Quantized, Source::Bytes, Source::Extreme}) {
                    const auto w = makeRows(t, rows, n, rowBytes, src, rng);
                    const auto x = makeX(n, 1.0f, rng);
                    const auto ref = reference(t, w.data(), rowBytes, rows, x.data(), n);
                    for (Isa isa : availableIsas()) {
                        if (isa == Isa::Scalar) continue;
                        std::vector<float> out(rows);
                        qdot::detail::gemvDequantFma(t, w.data(), rowBytes, rows, x.data(), n,
                                                     out.data(), isa);
                        for (int r = 0; r < rows; ++r) {
                            const double err = std::fabs(out[r] - ref[r].dot);
                            QVERIFY2(err <= 2e-5 * ref[r].absDot + 1e-30,
                                     label(t, isa, n, "dequant+fma").c_str());
                        }
                    }
                }
            }
        }
    }

    void zeroRowsAndZeroX() {
        std::mt19937 rng(7);
        for (TensorType t : allTypes()) {
            const int64_t n = 512;
            const size_t rowBytes = *tensorBytes(t, n);
            const std::vector<uint8_t> zeros(rowBytes * 2, 0);
            const auto x = makeX(n, 1.0f, rng);
            const auto w = makeRows(t, 2, n, rowBytes, Source::Quantized, rng);
            const std::vector<float> zx(n, 0.0f);
            for (Isa isa : availableIsas()) {
                float out[2] = {1, 1};
                qdot::gemv(t, zeros.data(), rowBytes, 2, x.data(), n, out, isa);
                QCOMPARE(out[0], 0.0f);
                QCOMPARE(out[1], 0.0f);
                out[0] = out[1] = 1;
                qdot::gemv(t, w.data(), rowBytes, 2, zx.data(), n, out, isa);
                QCOMPARE(out[0], 0.0f);
                QCOMPARE(out[1], 0.0f);
                qdot::gemv(t, w.data(), rowBytes, 0, x.data(), n, out, isa);  // no rows: no-op
            }
        }
    }

    // The vector quantizers of x (32-value blocks) give the plain loop's numbers bit for bit: on
    // Gaussian x, on values that sit exactly halfway between two quants (round half away from
    // zero), on blocks of zeros, of subnormals, of huge values, of one value and zeros, and on
    // blocks with a NaN or an infinity (which go to the plain loop).
    void vectorQuantizersOfXEqualThePlainLoop() {
        std::mt19937 rng(11);
        std::normal_distribution<float> g(0.0f, 1.0f);
        const int blocks = 64;
        std::vector<float> x(32 * blocks);
        for (float& v : x) v = g(rng);
        // block 1: max 127, so d = 1 and x·(1/d) = x: every other value exactly k + 1/2
        for (int i = 0; i < 31; ++i) x[32 + i] = static_cast<float>(i - 16) + 0.5f;
        x[32 + 31] = 127.0f;
        // block 2: max 31.75, so d = 1/4 and x·4 = -(i + 1/2)
        for (int i = 0; i < 31; ++i) x[64 + i] = -(static_cast<float>(i) + 0.5f) / 4.0f;
        x[64 + 31] = 31.75f;
        for (int i = 0; i < 32; ++i) x[96 + i] = 0.0f;
        for (int i = 0; i < 32; ++i) x[128 + i] = g(rng) * 1e-39f;  // subnormal
        // finite and huge: the scale d = max/127 overflows f16 (to inf), and a 16-value half whose
        // quants sum to 0 gives inf * 0
        for (int i = 0; i < 32; ++i) x[160 + i] = std::clamp(g(rng), -1.0f, 1.0f) * 3e38f;
        for (int i = 0; i < 16; ++i) x[160 + i] = (i % 2 ? -3e38f : 3e38f);
        for (int i = 0; i < 32; ++i) x[192 + i] = i == 5 ? -2.5f : 0.0f;
        for (int i = 0; i < 32; ++i) x[224 + i] = g(rng) * 1e-6f;  // d below f16's normal range
        x[256 + 7] = std::nanf("");
        x[288 + 0] = INFINITY;
        x[320 + 31] = -INFINITY;
        for (int i = 0; i < 32; ++i) x[352 + i] = -0.0f;
        const auto plain = qdot::detail::quantizeXForTesting(x.data(), 32 * blocks, Isa::Scalar);
        const QString e = vectorEqualsPlain(x, false);
        QVERIFY2(e.isEmpty(), qPrintable(e));
        // halves round away from zero (by hand: -15.5 -> -16, -0.5 -> -1, 0.5 -> 1, 14.5 -> 15)
        QCOMPARE(plain.d[1], 1.0f);
        for (int i = 0; i < 31; ++i) QCOMPARE(int(plain.q[32 + i]), i < 16 ? i - 16 : i - 15);
        QCOMPARE(int(plain.q[63]), 127);
        QCOMPARE(plain.d[2], 0.25f);
        for (int i = 0; i < 31; ++i) QCOMPARE(int(plain.q[64 + i]), -(i + 1));
        QCOMPARE(int(plain.q[96]), 0);
        QVERIFY(std::isnan(plain.d[8]) && std::isnan(plain.d[9]) && std::isnan(plain.d[10]));
    }

    // The same for the K-quants' x (per 256 values: the value of largest magnitude keeps its
    // sign, the first one when +m and -m both occur; round half to even).
    void vectorQuantizersOfKQuantXEqualThePlainLoop() {
        std::mt19937 rng(12);
        std::normal_distribution<float> g(0.0f, 1.0f);
        const int blocks = 8;
        std::vector<float> x(256 * blocks);  // the last block: huge values and -0.0
        for (float& v : x) v = g(rng);
        x[300] = std::nanf("");  // block 1 goes to the plain loop
        x[512 + 3] = -5.0f;      // block 2: -5 before +5, so the scale is -127/-5
        x[512 + 100] = 5.0f;
        x[768] = -127.0f;  // block 3: scale 1, every other value k + 1/2
        for (int i = 1; i < 256; ++i) x[768 + i] = static_cast<float>(i % 200 - 100) + 0.5f;
        for (int i = 0; i < 256; ++i) x[1024 + i] = g(rng) * 1e-39f;  // subnormal
        for (int i = 0; i < 256; ++i) x[1280 + i] = 0.0f;
        x[1536 + 255] = INFINITY;
        for (int i = 0; i < 256; ++i)
            x[1792 + i] = i % 3 ? -0.0f : std::clamp(g(rng), -1.0f, 1.0f) * 3e38f;
        const auto plain =
            qdot::detail::quantizeXForTesting(x.data(), 256 * blocks, Isa::Scalar, true);
        const QString e = vectorEqualsPlain(x, true);
        QVERIFY2(e.isEmpty(), qPrintable(e));
        // by hand: block 2's scale d = 1/(-127/-5) = 5/127 > 0; block 3's is 1, and
        // 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2, -99.5 -> -100
        QCOMPARE(plain.d[16], 5.0f / 127.0f);
        QCOMPARE(plain.d[24], 1.0f);
        QCOMPARE(int(plain.q[768 + 100]), 0);     // 0.5
        QCOMPARE(int(plain.q[768 + 101]), 2);     // 1.5
        QCOMPARE(int(plain.q[768 + 102]), 2);     // 2.5
        QCOMPARE(int(plain.q[768 + 99]), 0);      // -0.5
        QCOMPARE(int(plain.q[768 + 98]), -2);     // -1.5
        QCOMPARE(int(plain.q[768 + 200]), -100);  // -99.5
        QCOMPARE(int(plain.q[768]), -127);
    }

    // A NaN or an infinity in x gives a non-finite result on every path (the 8-bit x must not
    // round it away).
    void nonFiniteXPropagates() {
        std::mt19937 rng(9);
        for (TensorType t : allTypes()) {
            const int64_t n = 512;
            const size_t rowBytes = *tensorBytes(t, n);
            const auto w = makeRows(t, 2, n, rowBytes, Source::Quantized, rng);
            for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
                auto x = makeX(n, 1.0f, rng);
                x[300] = bad;
                for (Isa isa : availableIsas()) {
                    float out[2] = {0, 0};
                    qdot::gemv(t, w.data(), rowBytes, 2, x.data(), n, out, isa);
                    QVERIFY2(!std::isfinite(out[0]) && !std::isfinite(out[1]),
                             label(t, isa, n, "non-finite x").c_str());
                }
            }
        }
    }

    void refusals() {
        const std::vector<uint8_t> w(1024, 0);
        const std::vector<float> x(512, 1.0f);
        float out[2];
        const auto throws = [&](auto f) {
            try {
                f();
            } catch (const Error&) {
                return true;
            }
            return false;
        };
        QVERIFY(
            throws([&] { qdot::gemv(TensorType::Q8_K, w.data(), 292, 1, x.data(), 256, out); }));
        QVERIFY(
            throws([&] { qdot::gemv(TensorType::Q4_K, w.data(), 144, 1, x.data(), 100, out); }));
        QVERIFY(throws([&] { qdot::gemv(TensorType::Q8_0, w.data(), 33, 1, x.data(), 32, out); }));
        if (!qdot::isaSupported(Isa::Avx512)) {
            QVERIFY(throws([&] {
                qdot::gemv(TensorType::Q8_0, w.data(), 34, 1, x.data(), 32, out, Isa::Avx512);
            }));
        }
    }
};

QTEST_GUILESS_MAIN(TestQuantDot)
#include "tst_quant_dot.moc"
