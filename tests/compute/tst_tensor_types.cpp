// Tests of the tensor types' conversions to float32: F16 (every bit pattern), BF16, Q8_0 blocks
// (a hand-computed block, the quantization error bound, partial blocks), and refusals of the types
// that are not supported or too short.
#include <QTest>

#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "gguf/dequant.h"
#include "gguf/gguf.h"
#include "gguf_images.h"

using namespace kvscope;
using namespace kvscope::gguf_testing;

namespace {

uint32_t bitsOf(float f) {
    return std::bit_cast<uint32_t>(f);
}

}  // namespace

class TstTensorTypes : public QObject {
    Q_OBJECT
  private slots:
    // Conversions
    void f16Decode_data();
    void f16Decode();
    void f16Encode_data();
    void f16Encode();
    void f16EveryPatternRoundTrips();
    void bf16_data();
    void bf16();
    void nanStaysNan();
    void q8_0KnownBlock();
    void q8_0QuantizationError();
    void q8_0RejectsPartialBlocks();
    void toFloatRefusesUnsupported_data();
    void toFloatRefusesUnsupported();
    void toFloatRefusesShortData();
};

void TstTensorTypes::f16Decode_data() {
    QTest::addColumn<int>("bits");
    QTest::addColumn<float>("expected");

    QTest::newRow("0x0000 = +0") << 0x0000 << 0.0f;
    QTest::newRow("0x8000 = -0") << 0x8000 << -0.0f;
    QTest::newRow("0x3C00 = 1") << 0x3C00 << 1.0f;
    QTest::newRow("0xC000 = -2") << 0xC000 << -2.0f;
    QTest::newRow("0x7BFF = 65504") << 0x7BFF << 65504.0f;
    QTest::newRow("0x3555 = 0.333251953125") << 0x3555 << 0.333251953125f;
    QTest::newRow("0x0400 = 2^-14 smallest normal") << 0x0400 << std::ldexp(1.0f, -14);
    QTest::newRow("0x0001 = 2^-24 smallest subnormal") << 0x0001 << std::ldexp(1.0f, -24);
    QTest::newRow("0x03FF = 1023 * 2^-24 largest subnormal") << 0x03FF << std::ldexp(1023.0f, -24);
    QTest::newRow("0x8001 = -2^-24") << 0x8001 << -std::ldexp(1.0f, -24);
    QTest::newRow("0x7C00 = inf") << 0x7C00 << std::numeric_limits<float>::infinity();
    QTest::newRow("0xFC00 = -inf") << 0xFC00 << -std::numeric_limits<float>::infinity();
}

void TstTensorTypes::f16Decode() {
    QFETCH(int, bits);
    QFETCH(float, expected);
    QCOMPARE(bitsOf(f16ToF32(static_cast<uint16_t>(bits))), bitsOf(expected));  // sign of 0 too
}

void TstTensorTypes::f16Encode_data() {
    QTest::addColumn<float>("value");
    QTest::addColumn<int>("bits");

    const float inf = std::numeric_limits<float>::infinity();
    QTest::newRow("1 -> 0x3C00") << 1.0f << 0x3C00;
    QTest::newRow("-2 -> 0xC000") << -2.0f << 0xC000;
    QTest::newRow("65504 -> 0x7BFF") << 65504.0f << 0x7BFF;
    QTest::newRow("65519 rounds down to 65504") << 65519.0f << 0x7BFF;
    QTest::newRow("65520 ties to even: inf") << 65520.0f << 0x7C00;
    QTest::newRow("1e6 overflows to inf") << 1e6f << 0x7C00;
    QTest::newRow("-1e6 overflows to -inf") << -1e6f << 0xFC00;
    QTest::newRow("1 + 2^-11 ties to even 1") << 1.0f + std::ldexp(1.0f, -11) << 0x3C00;
    QTest::newRow("1 + 3*2^-11 ties to even 1 + 2^-9") << 1.0f + std::ldexp(3.0f, -11) << 0x3C02;
    QTest::newRow("1 + 2^-11 + 2^-20 rounds up")
        << 1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20) << 0x3C01;
    QTest::newRow("1 + 2^-11 - 2^-22 rounds down")
        << 1.0f + std::ldexp(1.0f, -11) - std::ldexp(1.0f, -22) << 0x3C00;
    QTest::newRow("2047.5 ... carries into the exponent") << 2047.5f << 0x6800;  // -> 2048
    QTest::newRow("1/3 -> 0x3555") << 1.0f / 3.0f << 0x3555;
    QTest::newRow("2^-14 smallest normal") << std::ldexp(1.0f, -14) << 0x0400;
    QTest::newRow("2^-24 smallest subnormal") << std::ldexp(1.0f, -24) << 0x0001;
    QTest::newRow("2^-25 ties to even 0") << std::ldexp(1.0f, -25) << 0x0000;
    QTest::newRow("1.5 * 2^-25 rounds up to 2^-24") << std::ldexp(1.5f, -25) << 0x0001;
    QTest::newRow("3 * 2^-25 ties to even 2 * 2^-24") << std::ldexp(3.0f, -25) << 0x0002;
    QTest::newRow("5 * 2^-25 ties to even 2 * 2^-24") << std::ldexp(5.0f, -25) << 0x0002;
    QTest::newRow("1023.5 * 2^-24 ties up to 2^-14") << std::ldexp(1023.5f, -24) << 0x0400;
    QTest::newRow("2^-30 underflows to 0") << std::ldexp(1.0f, -30) << 0x0000;
    QTest::newRow("-2^-30 underflows to -0") << -std::ldexp(1.0f, -30) << 0x8000;
    QTest::newRow("1e-40 (f32 subnormal) -> 0") << 1e-40f << 0x0000;
    QTest::newRow("-0 -> 0x8000") << -0.0f << 0x8000;
    QTest::newRow("inf -> 0x7C00") << inf << 0x7C00;
    QTest::newRow("-inf -> 0xFC00") << -inf << 0xFC00;
}

void TstTensorTypes::f16Encode() {
    QFETCH(float, value);
    QFETCH(int, bits);
    QCOMPARE(static_cast<int>(f32ToF16(value)), bits);
}

void TstTensorTypes::f16EveryPatternRoundTrips() {
    float previous = -1.0f;
    for (uint32_t h = 0; h <= 0xFFFF; ++h) {
        const auto h16 = static_cast<uint16_t>(h);
        const float f = f16ToF32(h16);
        const bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
        QCOMPARE(std::isnan(f), nan);
        if (!nan) QCOMPARE(static_cast<int>(f32ToF16(f)), static_cast<int>(h));
        if (h <= 0x7C00) {  // positive patterns decode in increasing order
            QVERIFY2(f > previous, qPrintable(QString::number(h, 16)));
            previous = f;
        }
    }
}

void TstTensorTypes::bf16_data() {
    QTest::addColumn<float>("value");
    QTest::addColumn<int>("bits");
    QTest::addColumn<bool>("exact");  // value is representable: bf16ToF32(bits) == value

    QTest::newRow("0x3F80 = 1") << 1.0f << 0x3F80 << true;
    QTest::newRow("0xC000 = -2") << -2.0f << 0xC000 << true;
    QTest::newRow("0x8000 = -0") << -0.0f << 0x8000 << true;
    QTest::newRow("0x7F80 = inf") << std::numeric_limits<float>::infinity() << 0x7F80 << true;
    QTest::newRow("0x0001 = smallest subnormal") << std::ldexp(1.0f, -133) << 0x0001 << true;
    QTest::newRow("1 + 2^-8 ties to even 1") << 1.0f + std::ldexp(1.0f, -8) << 0x3F80 << false;
    QTest::newRow("1 + 3*2^-8 ties to even 1 + 2^-6")
        << 1.0f + std::ldexp(3.0f, -8) << 0x3F82 << false;
    QTest::newRow("1 + 2^-8 + 2^-20 rounds up")
        << 1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20) << 0x3F81 << false;
    QTest::newRow("FLT_MAX rounds to inf") << std::numeric_limits<float>::max() << 0x7F80 << false;
    QTest::newRow("pi -> 0x4049") << 3.14159265f << 0x4049 << false;
}

void TstTensorTypes::bf16() {
    QFETCH(float, value);
    QFETCH(int, bits);
    QFETCH(bool, exact);
    QCOMPARE(static_cast<int>(f32ToBf16(value)), bits);
    if (exact) QCOMPARE(bitsOf(bf16ToF32(static_cast<uint16_t>(bits))), bitsOf(value));
}

void TstTensorTypes::nanStaysNan() {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const uint16_t h = f32ToF16(nan);
    QCOMPARE(h & 0x7C00, 0x7C00);
    QVERIFY((h & 0x3FF) != 0);
    QVERIFY(std::isnan(f16ToF32(h)));
    // A NaN whose payload lies only in the low mantissa bits must not become inf.
    const float lowPayload = std::bit_cast<float>(uint32_t{0x7F800001});
    QVERIFY(std::isnan(f16ToF32(f32ToF16(lowPayload))));
    QVERIFY(std::isnan(bf16ToF32(f32ToBf16(lowPayload))));
    QVERIFY(std::isnan(bf16ToF32(f32ToBf16(nan))));
}

void TstTensorTypes::q8_0KnownBlock() {
    // Block layout: f16 scale (little-endian) then 32 signed bytes; value = d * q.
    Bytes block(34);
    block[0] = 0x00;
    block[1] = 0x38;  // 0x3800 = 0.5
    const int8_t qs[4] = {-127, -2, 3, 127};
    for (int i = 0; i < 32; ++i) block[2 + i] = static_cast<uint8_t>(qs[i % 4]);
    const std::vector<float> v = toFloat(TensorType::Q8_0, block, 32, "known");
    QCOMPARE(v.size(), size_t{32});
    for (int i = 0; i < 32; ++i) QCOMPARE(v[i], 0.5f * static_cast<float>(qs[i % 4]));

    // Encoding a block whose largest magnitude is 127 gives d = 1 and q = x exactly.
    std::vector<float> x(32);
    for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i * 8 - 127);  // -127 ... 121
    const Bytes enc = fromFloat(TensorType::Q8_0, x);
    QCOMPARE(enc.size(), size_t{34});
    QCOMPARE(readAt<uint16_t>(enc, 0), uint16_t{0x3C00});
    for (int i = 0; i < 32; ++i)
        QCOMPARE(static_cast<int8_t>(enc[2 + i]), static_cast<int8_t>(x[i]));
}

void TstTensorTypes::q8_0QuantizationError() {
    std::mt19937 rng(1234);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const size_t blocks = 70;
    std::vector<float> x(blocks * 32);
    for (size_t b = 0; b < blocks; ++b) {
        const float scale = std::pow(10.0f, static_cast<float>(b % 7) - 3.0f);
        for (size_t i = 0; i < 32; ++i) x[b * 32 + i] = normal(rng) * scale;
    }
    for (size_t i = 0; i < 32; ++i) x[5 * 32 + i] = 0.0f;                     // an all-zero block
    for (size_t i = 0; i < 32; ++i) x[6 * 32 + i] = i == 9 ? -127.0f : 0.0f;  // d = 1
    // max/127 = 1.4 * 2^-24 rounds down to the subnormal 2^-24: values would reach q = 178.
    for (size_t i = 0; i < 32; ++i) {
        x[7 * 32 + i] = std::ldexp(127.0f * 1.4f, -24) * static_cast<float>(i) / 31.0f;
    }

    const Bytes enc = fromFloat(TensorType::Q8_0, x);
    QCOMPARE(enc.size(), blocks * 34);
    const std::vector<float> y = toFloat(TensorType::Q8_0, enc, x.size(), "random");
    QCOMPARE(y.size(), x.size());
    for (size_t b = 0; b < blocks; ++b) {
        float amax = 0.0f;
        size_t argmax = 0;
        for (size_t i = 0; i < 32; ++i) {
            if (std::fabs(x[b * 32 + i]) > amax) {
                amax = std::fabs(x[b * 32 + i]);
                argmax = i;
            }
        }
        const float d = f16ToF32(readAt<uint16_t>(enc, b * 34));
        // d is max|x| / 127 to within one f16 step (2^-10 relative, 2^-24 for subnormals).
        const float step = std::max(amax / 127.0f * std::ldexp(1.0f, -10), std::ldexp(1.0f, -24));
        QVERIFY2(std::fabs(d - amax / 127.0f) <= step,
                 qPrintable(QStringLiteral("block %1: d %2, amax %3").arg(b).arg(d).arg(amax)));
        if (d >= std::ldexp(1.0f, -14)) {  // a normal f16 scale: the largest value maps to 127
            QCOMPARE(std::abs(static_cast<int>(static_cast<int8_t>(enc[b * 34 + 2 + argmax]))),
                     127);
        }
        for (size_t i = 0; i < 32; ++i) {
            const float err = std::fabs(x[b * 32 + i] - y[b * 32 + i]);
            QVERIFY2(err <= d / 2 * (1.0f + 1e-6f),
                     qPrintable(QStringLiteral("block %1 value %2: error %3 > d/2 = %4")
                                    .arg(b)
                                    .arg(i)
                                    .arg(double(err))
                                    .arg(double(d / 2))));
        }
    }
    for (size_t i = 0; i < 32; ++i) QCOMPARE(y[5 * 32 + i], 0.0f);
    QCOMPARE(y[6 * 32 + 9], -127.0f);
}

void TstTensorTypes::q8_0RejectsPartialBlocks() {
    const std::vector<float> x(33, 1.0f);
    QVERIFY(errorOf([&] { fromFloat(TensorType::Q8_0, x); }).has_value());
    QVERIFY(errorOf([&] { fromFloat(TensorType::Q4_K, x); }).has_value());
    QVERIFY(errorOf([&] { toFloat(TensorType::Q8_0, Bytes(68), 33, "partial"); }).has_value());
}

void TstTensorTypes::toFloatRefusesUnsupported_data() {
    QTest::addColumn<int>("type");
    QTest::addColumn<QString>("name");
    QTest::newRow("Q8_1") << static_cast<int>(TensorType::Q8_1) << "Q8_1";
    QTest::newRow("Q8_K") << static_cast<int>(TensorType::Q8_K) << "Q8_K";
    for (int t = 16; t <= 29; ++t) {  // IQ2_XXS .. the IQ and ternary types: no layout here
        const std::string name = "type " + std::to_string(t);
        QTest::newRow(name.c_str()) << t << QString::fromStdString(name);
    }
    QTest::newRow("type 4 (removed Q4_2)") << 4 << "type 4";
    QTest::newRow("type 99") << 99 << "type 99";
}

void TstTensorTypes::toFloatRefusesUnsupported() {
    QFETCH(int, type);
    QFETCH(QString, name);
    const Bytes data(4096);
    const auto message =
        errorOf([&] { toFloat(static_cast<TensorType>(type), data, 256, "blk.0.attn_q.weight"); });
    QVERIFY(message.has_value());
    QCOMPARE(QString::fromStdString(*message),
             QStringLiteral("tensor 'blk.0.attn_q.weight' has type %1; KVScope reads F32, F16, "
                            "BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K")
                 .arg(name));
}

void TstTensorTypes::toFloatRefusesShortData() {
    const auto message = errorOf([] { toFloat(TensorType::F32, Bytes(15), 4, "short.weight"); });
    QVERIFY(message.has_value());
    QVERIFY2(contains(*message, "'short.weight'"), message->c_str());
    QVERIFY(errorOf([] { toFloat(TensorType::Q8_0, Bytes(67), 64, "q"); }).has_value());
    QCOMPARE(toFloat(TensorType::F16, Bytes{0x00, 0x3C, 0xFF}, 1, "longer is fine"),
             std::vector<float>{1.0f});
}

QTEST_GUILESS_MAIN(TstTensorTypes)
#include "tst_tensor_types.moc"
