// Tests of the GGUF quantized block formats (gguf/quant_blocks.cpp): hand-built blocks whose
// values are worked out by hand here (every position with its own packing rule), the extremes
// of the scales, a per-element reference decoder written from ggml's layout description
// (independent of the implementation's loops) on random bytes, and the quantizers' error bounds.
#include <QTest>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "gguf/dequant.h"
#include "gguf/gguf.h"
#include "gguf_images.h"

using namespace kvscope;
using namespace kvscope::gguf_testing;

Q_DECLARE_METATYPE(kvscope::TensorType)

namespace {

const TensorType kQuantTypes[] = {
    TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1,
    TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};

void put16(Bytes& b, size_t off, uint16_t h) {
    b[off] = static_cast<uint8_t>(h & 0xFF);
    b[off + 1] = static_cast<uint8_t>(h >> 8);
}

float half(const Bytes& b, size_t off) {
    return f16ToF32(static_cast<uint16_t>(b[off] | b[off + 1] << 8));
}

std::vector<float> decode(TensorType t, const Bytes& block) {
    const int n = static_cast<int>(block.size()) / blockLayout(t)->bytes * blockLayout(t)->elems;
    std::vector<float> y(static_cast<size_t>(n));
    dequantizeRow(t, block.data(), y.data(), n);
    return y;
}

// The f16 scale fields of one block (byte offsets), to keep random blocks finite.
std::vector<size_t> halfFields(TensorType t) {
    switch (t) {
        case TensorType::Q8_0:
        case TensorType::Q4_0:
        case TensorType::Q5_0:
            return {0};
        case TensorType::Q4_1:
        case TensorType::Q5_1:
        case TensorType::Q4_K:
        case TensorType::Q5_K:
            return {0, 2};
        case TensorType::Q2_K:
            return {80, 82};
        case TensorType::Q3_K:
            return {108};
        case TensorType::Q6_K:
            return {208};
        default:
            return {};
    }
}

// One element of a block, decoded straight from the layout (ggml-common.h, dequantize_row_*),
// written per element rather than per loop as in the implementation. Also returns the step
// (the value of one quant) that the block stores for that element.
struct RefElem {
    float value;
    float step;
};

RefElem refElement(TensorType t, const Bytes& b, int e) {
    switch (t) {
        case TensorType::Q8_0: {
            const float d = half(b, 0);
            return {d * static_cast<float>(static_cast<int8_t>(b[2 + e])), d};
        }
        case TensorType::Q4_0:
        case TensorType::Q4_1:
        case TensorType::Q5_0:
        case TensorType::Q5_1: {
            const bool hasMin = t == TensorType::Q4_1 || t == TensorType::Q5_1;
            const bool five = t == TensorType::Q5_0 || t == TensorType::Q5_1;
            const size_t qsAt = (hasMin ? 4 : 2) + (five ? 4 : 0);
            const uint8_t byte = b[qsAt + static_cast<size_t>(e % 16)];
            int q = e < 16 ? (byte & 0xF) : (byte >> 4);
            if (five) {
                const size_t qhAt = hasMin ? 4 : 2;
                const int bit = (b[qhAt + static_cast<size_t>(e / 8)] >> (e % 8)) & 1;
                q |= bit << 4;
            }
            const float d = half(b, 0);
            if (hasMin) return {static_cast<float>(q) * d + half(b, 2), d};
            return {static_cast<float>(q - (five ? 16 : 8)) * d, d};
        }
        case TensorType::Q2_K: {
            const int sc = b[static_cast<size_t>(e / 16)];
            const int q = (b[16 + 32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
            const float dl = half(b, 80) * static_cast<float>(sc & 15);
            return {dl * static_cast<float>(q) - half(b, 82) * static_cast<float>(sc >> 4), dl};
        }
        case TensorType::Q3_K: {
            const int k = e / 16;
            const int low = (b[96 + k % 8] >> (k < 8 ? 0 : 4)) & 0xF;
            const int high = (b[104 + k % 4] >> (2 * (k / 4))) & 3;
            const int s = (low | high << 4) - 32;
            int q = (b[32 + 32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
            if (((b[static_cast<size_t>(e % 32)] >> (e / 32)) & 1) == 0) q -= 4;
            const float dl = half(b, 108) * static_cast<float>(s);
            return {dl * static_cast<float>(q), std::fabs(dl)};
        }
        case TensorType::Q4_K:
        case TensorType::Q5_K: {
            const bool five = t == TensorType::Q5_K;
            const int sb = e / 32;
            const uint8_t* s = b.data() + 4;
            int sc, m;
            if (sb < 4) {
                sc = s[sb] & 63;
                m = s[sb + 4] & 63;
            } else {
                sc = (s[sb + 4] & 15) | (s[sb - 4] >> 6) << 4;
                m = (s[sb + 4] >> 4) | (s[sb] >> 6) << 4;
            }
            const uint8_t byte = b[(five ? 48 : 16) + 32 * (e / 64) + e % 32];
            int q = sb % 2 == 0 ? (byte & 0xF) : (byte >> 4);
            if (five) q |= ((b[16 + static_cast<size_t>(e % 32)] >> sb) & 1) << 4;
            const float dl = half(b, 0) * static_cast<float>(sc);
            return {dl * static_cast<float>(q) - half(b, 2) * static_cast<float>(m), dl};
        }
        case TensorType::Q6_K: {
            const int n = e / 128, r = e % 128, l = r % 32, k = r / 32;
            const uint8_t lo = b[64 * n + 32 * (k & 1) + l];
            const int q = ((k < 2 ? lo : lo >> 4) & 0xF) | ((b[128 + 32 * n + l] >> (2 * k)) & 3)
                                                               << 4;
            const float dl =
                half(b, 208) * static_cast<float>(static_cast<int8_t>(b[192 + e / 16]));
            return {dl * static_cast<float>(q - 32), std::fabs(dl)};
        }
        default:
            return {NAN, NAN};
    }
}

}  // namespace

class TstQuantFormats : public QObject {
    Q_OBJECT
  private slots:
    void layouts();
    void unsupportedTypesThrow();
    void q4_0Block();
    void q4_1Block();
    void q5_0Block();
    void q5_1Block();
    void q2_KBlock();
    void q3_KBlock();
    void q4_KBlock();
    void q5_KBlock();
    void q6_KBlock();
    void scaleExtremes();
    void randomBytesMatchReference_data();
    void randomBytesMatchReference();
    void roundTripBounds_data();
    void roundTripBounds();
    void specialBlocks_data();
    void specialBlocks();
    void fromFloatToFloat();
};

void TstQuantFormats::layouts() {
    const std::pair<TensorType, BlockLayout> expected[] = {
        {TensorType::F32, {1, 4}},      {TensorType::F16, {1, 2}},
        {TensorType::BF16, {1, 2}},     {TensorType::Q8_0, {32, 34}},
        {TensorType::Q4_0, {32, 18}},   {TensorType::Q4_1, {32, 20}},
        {TensorType::Q5_0, {32, 22}},   {TensorType::Q5_1, {32, 24}},
        {TensorType::Q2_K, {256, 84}},  {TensorType::Q3_K, {256, 110}},
        {TensorType::Q4_K, {256, 144}}, {TensorType::Q5_K, {256, 176}},
        {TensorType::Q6_K, {256, 210}}};
    for (const auto& [t, l] : expected) {
        const auto got = blockLayout(t);
        QVERIFY2(got.has_value(), typeName(t).c_str());
        QCOMPARE(got->elems, l.elems);
        QCOMPARE(got->bytes, l.bytes);
        QVERIFY(isSupportedWeightType(t));
        QCOMPARE(tensorBytes(t, static_cast<uint64_t>(l.elems) * 3),
                 std::optional<uint64_t>(static_cast<uint64_t>(l.bytes) * 3));
    }
    for (uint32_t raw : {4u, 5u, 9u, 15u, 16u, 20u, 29u, 31u, 99u}) {
        const auto t = static_cast<TensorType>(raw);
        QVERIFY2(!blockLayout(t).has_value(), typeName(t).c_str());
        QVERIFY(!isSupportedWeightType(t));
    }
}

void TstQuantFormats::unsupportedTypesThrow() {
    std::vector<float> f(256);
    Bytes b(4096);
    for (TensorType t : {TensorType::Q8_1, TensorType::Q8_K, static_cast<TensorType>(20)}) {
        const auto m1 = errorOf([&] { dequantizeRow(t, b.data(), f.data(), 256); });
        const auto m2 = errorOf([&] { quantizeRow(t, f.data(), b.data(), 256); });
        const auto m3 = errorOf([&] { fromFloat(t, f); });
        QVERIFY(m1 && m2 && m3);
        QVERIFY2(contains(*m1, typeName(t)), m1->c_str());
        QVERIFY2(contains(*m3, typeName(t)), m3->c_str());
    }
    QVERIFY(errorOf([&] { fromFloat(TensorType::Q6_K, std::vector<float>(255)); }));
    QVERIFY(errorOf([&] { fromFloat(TensorType::Q4_1, std::vector<float>(48)); }));
    QVERIFY(errorOf([&] { toFloat(TensorType::Q3_K, Bytes(219), 512, "short"); }));
    QVERIFY(errorOf([&] { toFloat(TensorType::Q5_1, Bytes(48), 48, "partial"); }));
}

void TstQuantFormats::q4_0Block() {
    Bytes b(18, 0x88);    // every nibble 8: value 0
    put16(b, 0, 0x3800);  // d = 0.5
    b[2 + 0] = 0xF0;      // e0 = (0 - 8) * 0.5, e16 = (15 - 8) * 0.5
    b[2 + 15] = 0x93;     // e15 = (3 - 8) * 0.5, e31 = (9 - 8) * 0.5
    const auto y = decode(TensorType::Q4_0, b);
    QCOMPARE(y[0], -4.0f);
    QCOMPARE(y[16], 3.5f);
    QCOMPARE(y[15], -2.5f);
    QCOMPARE(y[31], 0.5f);
    QCOMPARE(y[1], 0.0f);
    QCOMPARE(y[17], 0.0f);
}

void TstQuantFormats::q4_1Block() {
    Bytes b(20, 0);
    put16(b, 0, 0x3400);  // d = 0.25
    put16(b, 2, 0xBC00);  // m = -1
    b[4 + 0] = 0xF0;      // e0 = 0*0.25 - 1, e16 = 15*0.25 - 1
    b[4 + 7] = 0x5A;      // e7 = 10*0.25 - 1, e23 = 5*0.25 - 1
    const auto y = decode(TensorType::Q4_1, b);
    QCOMPARE(y[0], -1.0f);
    QCOMPARE(y[16], 2.75f);
    QCOMPARE(y[7], 1.5f);
    QCOMPARE(y[23], 0.25f);
    QCOMPARE(y[31], -1.0f);
}

void TstQuantFormats::q5_0Block() {
    Bytes b(22, 0);
    put16(b, 0, 0x3C00);  // d = 1
    // qh bits 0, 8, 16, 31: one in each of its four bytes.
    b[2] = 0x01;
    b[3] = 0x01;
    b[4] = 0x01;
    b[5] = 0x80;
    b[6 + 0] = 0x21;   // e0 = (1 | 16) - 16, e16 = (2 | 16) - 16
    b[6 + 8] = 0x00;   // e8 = (0 | 16) - 16, e24 = 0 - 16
    b[6 + 15] = 0xFF;  // e15 = 15 - 16 (bit 15 clear), e31 = (15 | 16) - 16
    const auto y = decode(TensorType::Q5_0, b);
    QCOMPARE(y[0], 1.0f);
    QCOMPARE(y[16], 2.0f);
    QCOMPARE(y[8], 0.0f);
    QCOMPARE(y[24], -16.0f);
    QCOMPARE(y[15], -1.0f);
    QCOMPARE(y[31], 15.0f);
    QCOMPARE(y[5], -16.0f);
}

void TstQuantFormats::q5_1Block() {
    Bytes b(24, 0);
    put16(b, 0, 0x3800);  // d = 0.5
    put16(b, 2, 0x4000);  // m = 2
    b[4] = 0x08;          // qh bit 3
    b[6] = 0x10;          // qh bit 20
    b[8 + 3] = 0x0C;      // e3 = (12 | 16) * 0.5 + 2, e19 = 0 * 0.5 + 2
    b[8 + 4] = 0xC0;      // e4 = 0 + 2, e20 = (12 | 16) * 0.5 + 2
    const auto y = decode(TensorType::Q5_1, b);
    QCOMPARE(y[3], 16.0f);
    QCOMPARE(y[19], 2.0f);
    QCOMPARE(y[4], 2.0f);
    QCOMPARE(y[20], 16.0f);
}

void TstQuantFormats::q2_KBlock() {
    Bytes b(84, 0);
    put16(b, 80, 0x3C00);  // d = 1
    put16(b, 82, 0x3800);  // dmin = 0.5
    b[0] = 0x21;           // sub-block 0: scale 1, min 2
    b[1] = 0x03;           // sub-block 1: scale 3
    b[2] = 0x01;           // sub-block 2: scale 1
    b[4] = 0x01;           // sub-block 4: scale 1
    b[6] = 0x05;           // sub-block 6: scale 5
    b[15] = 0xF2;          // sub-block 15: scale 2, min 15
    b[16 + 0] = 0xE7;      // qs[0]: e0 = 3 (shift 0), e32 = 1 (2), e64 = 2 (4), e96 = 3 (6)
    b[16 + 16] = 0x02;     // qs[16]: e16 = 2
    b[16 + 63] = 0xC0;     // qs[63]: e255 = 3 (second half, byte 32 + 31, shift 6)
    const auto y = decode(TensorType::Q2_K, b);
    QCOMPARE(y[0], 1.0f * 3 - 0.5f * 2);
    QCOMPARE(y[32], 1.0f);
    QCOMPARE(y[64], 2.0f);
    QCOMPARE(y[96], 15.0f);
    QCOMPARE(y[16], 6.0f);
    QCOMPARE(y[255], 2.0f * 3 - 0.5f * 15);
    QCOMPARE(y[240], -7.5f);
    QCOMPARE(y[1], -1.0f);
}

void TstQuantFormats::q3_KBlock() {
    Bytes b(110, 0);
    put16(b, 108, 0x3800);  // d = 0.5
    // Six-bit codes (value code - 32): k0 = 40 (low 8 in scales[0] low nibble, high 2 in
    // scales[8] bits 0-1), k5 = 1 (scales[5] low nibble), k8 = 63 (scales[0] high nibble, high
    // 3 in scales[8] bits 4-5), k15 = 20 (low 4 in scales[7] high nibble, high 1 in scales[11]
    // bits 6-7). k9 = 36: low 4 in scales[1] high nibble, high 2 in scales[9] bits 4-5.
    b[96 + 0] = 0xF8;
    b[96 + 1] = 0x40;
    b[96 + 5] = 0x01;
    b[96 + 7] = 0x40;
    b[96 + 8] = 0x32;
    b[96 + 9] = 0x20;
    b[96 + 11] = 0x40;
    b[0] = 0x11;        // hmask[0]: bit 0 (e0) and bit 4 (e128) set
    b[32 + 0] = 0x03;   // qs[0] bits 0-1: e0 low bits 3
    b[32 + 16] = 0x20;  // qs[16] bits 4-5: e80 low bits 2 (hmask[16] bit 2 clear: -4)
    b[32 + 32] = 0x01;  // qs[32] bits 0-1: e128 low bits 1
    b[32 + 63] = 0xC0;  // qs[63] bits 6-7: e255 low bits 3
    b[31] = 0x80;       // hmask[31] bit 7: e255
    b[32 + 48] = 0x02;  // qs[48] bits 0-1: e144 low bits 2, hmask[16] bit 4 clear
    const auto y = decode(TensorType::Q3_K, b);
    QCOMPARE(y[0], 0.5f * 8 * 3);
    QCOMPARE(y[1], 0.5f * 8 * -4);
    QCOMPARE(y[80], 0.5f * -31 * -2);
    QCOMPARE(y[128], 0.5f * 31 * 1);
    QCOMPARE(y[144], 0.5f * 4 * -2);  // k9: 36 - 32
    QCOMPARE(y[255], 0.5f * -12 * 3);
    QCOMPARE(y[254], 0.5f * -12 * -4);
    QCOMPARE(y[16], 0.5f * -32 * -4);  // k1: code 0
}

namespace {

// The Q4_K / Q5_K test block: d = 1, dmin = 0.5 and scales in each packing position.
Bytes q45KBlock(bool five) {
    Bytes b(five ? 176 : 144, 0);
    put16(b, 0, 0x3C00);
    put16(b, 2, 0x3800);
    uint8_t* s = b.data() + 4;
    s[0] = 0x45;   // sc0 = 5; top bits: sc4 >> 4 = 1
    s[4] = 0x83;   // m0 = 3; top bits: m4 >> 4 = 2
    s[8] = 0x72;   // sc4 low 4 = 2, m4 low 4 = 7: sc4 = 18, m4 = 39
    s[1] = 0x02;   // sc1 = 2
    s[5] = 0x01;   // m1 = 1
    s[3] = 0x3F;   // sc3 = 63 (top bits 0: sc7 < 16)
    s[7] = 0xC0;   // m3 = 0; top bits: m7 >> 4 = 3
    s[11] = 0xA1;  // sc7 low 4 = 1, m7 low 4 = 10: sc7 = 1, m7 = 58
    uint8_t* qs = b.data() + (five ? 48 : 16);
    qs[0] = 0xF7;    // e0 (sub 0, low nibble) 7, e32 (sub 1, high nibble) 15
    qs[32] = 0x40;   // e96 (sub 3, high nibble of chunk 1) 4
    qs[64] = 0x0A;   // e128 (sub 4, low nibble of chunk 2) 10
    qs[127] = 0x30;  // e255 (sub 7, high nibble of chunk 3) 3
    return b;
}

}  // namespace

void TstQuantFormats::q4_KBlock() {
    const auto y = decode(TensorType::Q4_K, q45KBlock(false));
    QCOMPARE(y[0], 5.0f * 7 - 0.5f * 3);
    QCOMPARE(y[32], 2.0f * 15 - 0.5f * 1);
    QCOMPARE(y[96], 63.0f * 4);
    QCOMPARE(y[128], 18.0f * 10 - 0.5f * 39);
    QCOMPARE(y[159], -0.5f * 39);
    QCOMPARE(y[255], 1.0f * 3 - 0.5f * 58);
    QCOMPARE(y[224], -0.5f * 58);
}

void TstQuantFormats::q5_KBlock() {
    Bytes b = q45KBlock(true);
    b[16 + 0] = 0x13;   // qh[0]: bit 0 (e0), bit 1 (e32), bit 4 (e128)
    b[16 + 31] = 0x80;  // qh[31]: bit 7 (e255)
    const auto y = decode(TensorType::Q5_K, b);
    QCOMPARE(y[0], 5.0f * (7 + 16) - 0.5f * 3);
    QCOMPARE(y[32], 2.0f * 31 - 0.5f * 1);
    QCOMPARE(y[96], 63.0f * 4);
    QCOMPARE(y[128], 18.0f * 26 - 0.5f * 39);
    QCOMPARE(y[255], 1.0f * 19 - 0.5f * 58);
    QCOMPARE(y[224], -0.5f * 58);
}

void TstQuantFormats::q6_KBlock() {
    Bytes b(210, 0);
    put16(b, 208, 0x3400);  // d = 0.25
    b[192 + 0] = 2;
    b[192 + 5] = static_cast<uint8_t>(-3);
    b[192 + 8] = static_cast<uint8_t>(-128);
    b[192 + 10] = 1;
    b[192 + 15] = 127;
    b[0] = 0x0F;         // e0: ql[0] low nibble 15
    b[128 + 0] = 0x03;   // e0: qh[0] bits 0-1 = 3 -> q = 63
    b[16] = 0x50;        // e80 (k = 2): ql[16] high nibble 5
    b[128 + 16] = 0x20;  // e80: qh[16] bits 4-5 = 2 -> q = 37
    b[96] = 0x0A;        // e160 (second half, k = 1): ql[64 + 32] low nibble 10
    b[128 + 32] = 0x04;  // e160: qh[32] bits 2-3 = 1 -> q = 26; e128: bits 0-1 = 0
    b[127] = 0xF0;       // e255 (k = 3): ql[127] high nibble 15; qh[63] bits 6-7 = 0
    const auto y = decode(TensorType::Q6_K, b);
    QCOMPARE(y[0], 0.25f * 2 * 31);
    QCOMPARE(y[80], 0.25f * -3 * 5);
    QCOMPARE(y[160], 0.25f * 1 * -6);
    QCOMPARE(y[128], 0.25f * -128 * -32);
    QCOMPARE(y[255], 0.25f * 127 * (15 - 32));
    QCOMPARE(y[64], 0.0f);  // sub-block 4 has scale 0
}

void TstQuantFormats::scaleExtremes() {
    const float tiny = std::ldexp(1.0f, -24);  // f16 0x0001
    {
        Bytes b(18, 0x88);
        put16(b, 0, 0x7BFF);  // d = 65504
        b[2] = 0xF0;
        auto y = decode(TensorType::Q4_0, b);
        QCOMPARE(y[0], -524032.0f);
        QCOMPARE(y[16], 458528.0f);
        put16(b, 0, 0xB800);  // d = -0.5
        y = decode(TensorType::Q4_0, b);
        QCOMPARE(y[0], 4.0f);
        QCOMPARE(y[16], -3.5f);
    }
    {
        Bytes b(20, 0xFF);
        put16(b, 0, 0x0001);  // d = 2^-24
        put16(b, 2, 0x0000);
        const auto y = decode(TensorType::Q4_1, b);
        for (float v : y) QCOMPARE(v, 15 * tiny);
    }
    {
        Bytes b(22, 0xFF);
        for (uint16_t zero : {uint16_t{0x0000}, uint16_t{0x8000}}) {
            put16(b, 0, zero);
            for (float v : decode(TensorType::Q5_0, b)) QCOMPARE(v, 0.0f);
        }
    }
    {
        Bytes b(24, 0xFF);
        put16(b, 0, 0x7BFF);
        put16(b, 2, 0x7BFF);
        for (float v : decode(TensorType::Q5_1, b)) QCOMPARE(v, 32.0f * 65504);
    }
    {
        Bytes b(84, 0);
        for (int i = 0; i < 16; ++i) b[i] = 0xFF;
        b[16] = 0x03;  // e0: q = 3; e1: q = 0
        put16(b, 80, 0x7BFF);
        put16(b, 82, 0x7BFF);
        const auto y = decode(TensorType::Q2_K, b);
        QCOMPARE(y[0], 1965120.0f);  // 65504*15*3 - 65504*15
        QCOMPARE(y[1], -982560.0f);
    }
    {
        Bytes b(110, 0);
        put16(b, 108, 0xBC00);  // d = -1
        b[96 + 1] = 0x0F;       // k1 low 15
        b[96 + 9] = 0x03;       // k1 high 3 (scales[8 + 1] bits 0-1): code 63 -> 31
        b[32 + 16] = 0x03;      // e16: low bits 3
        b[16] = 0x01;           // hmask[16] bit 0: e16 = 3
        const auto y = decode(TensorType::Q3_K, b);
        QCOMPARE(y[0], -1.0f * -32 * -4);
        QCOMPARE(y[16], -1.0f * 31 * 3);
        QCOMPARE(y[17], -1.0f * 31 * -4);
    }
    {
        Bytes b(144, 0);
        put16(b, 0, 0x0001);
        put16(b, 2, 0x0001);
        b[4 + 0] = 63;
        b[4 + 4] = 63;
        b[16] = 0x0F;
        const auto y = decode(TensorType::Q4_K, b);
        QCOMPARE(y[0], 882 * tiny);
        QCOMPARE(y[1], -63 * tiny);
    }
    {
        Bytes b(176, 0);
        put16(b, 0, 0x7BFF);
        b[4 + 0] = 63;
        b[48] = 0x0F;
        b[16] = 0x01;
        const auto y = decode(TensorType::Q5_K, b);
        QCOMPARE(y[0], 127929312.0f);  // 65504*63*31
        QCOMPARE(y[1], 0.0f);
    }
    {
        Bytes b(210, 0);
        put16(b, 208, 0x7BFF);
        b[192 + 0] = static_cast<uint8_t>(-128);
        b[192 + 1] = 127;
        b[16] = 0x0F;        // e16: ql low 15
        b[128 + 16] = 0x03;  // e16: qh 3 -> q = 63
        auto y = decode(TensorType::Q6_K, b);
        QCOMPARE(y[0], 268304384.0f);   // 65504*-128*-32
        QCOMPARE(y[16], 257889248.0f);  // 65504*127*31
        put16(b, 208, 0x0001);
        y = decode(TensorType::Q6_K, b);
        QCOMPARE(y[16], 127 * 31 * tiny);
    }
    {
        Bytes b(34, 0);
        put16(b, 0, 0x7BFF);
        b[2] = 0x80;  // -128
        b[3] = 0x7F;
        const auto y = decode(TensorType::Q8_0, b);
        QCOMPARE(y[0], -8384512.0f);
        QCOMPARE(y[1], 8319008.0f);  // 65504*127
    }
}

void TstQuantFormats::randomBytesMatchReference_data() {
    QTest::addColumn<TensorType>("type");
    for (TensorType t : kQuantTypes) QTest::newRow(typeName(t).c_str()) << t;
}

void TstQuantFormats::randomBytesMatchReference() {
    QFETCH(TensorType, type);
    const BlockLayout l = *blockLayout(type);
    const int blocks = 64;
    std::mt19937 rng(1234 + static_cast<unsigned>(type));
    Bytes b(static_cast<size_t>(l.bytes) * blocks);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    for (int k = 0; k < blocks; ++k) {
        for (size_t off : halfFields(type)) {
            const size_t at = static_cast<size_t>(k) * l.bytes + off;
            uint16_t h = static_cast<uint16_t>(b[at] | b[at + 1] << 8);
            if ((h & 0x7C00u) == 0x7C00u) h &= 0xBFFFu;  // inf/NaN -> finite
            if (k == 0) h = 0x7BFF;                      // largest
            if (k == 1) h = 0x0001;                      // smallest subnormal
            if (k == 2) h = 0xFBFF;                      // most negative
            put16(b, at, h);
        }
    }
    const int n = blocks * l.elems;
    std::vector<float> y(static_cast<size_t>(n));
    dequantizeRow(type, b.data(), y.data(), n);
    for (int k = 0; k < blocks; ++k) {
        const Bytes block(b.begin() + static_cast<long>(k) * l.bytes,
                          b.begin() + static_cast<long>(k + 1) * l.bytes);
        for (int e = 0; e < l.elems; ++e) {
            const float got = y[static_cast<size_t>(k * l.elems + e)];
            const float want = refElement(type, block, e).value;
            QVERIFY2(std::isfinite(got), qPrintable(QString("block %1 element %2").arg(k).arg(e)));
            if (got != want) {
                QFAIL(qPrintable(QString("block %1 element %2: %3, expected %4")
                                     .arg(k)
                                     .arg(e)
                                     .arg(double(got))
                                     .arg(double(want))));
            }
        }
    }
    QCOMPARE(toFloat(type, b, static_cast<uint64_t>(n), "random"), y);
}

namespace {

// The data-relative bound each quantizer states (gguf/dequant.h): factor times R (true) or A.
struct StatedBound {
    double factor;
    bool overRange;      // R = max(0, max x) - min(0, min x); else A = max |x|
    double rmsFraction;  // RMS error / RMS of N(0, 1) data stays below this
};

StatedBound statedBound(TensorType t) {
    switch (t) {
        case TensorType::Q8_0:
            return {1.0 / 254, false, 0.008};
        case TensorType::Q4_0:
            return {1.0 / 15, false, 0.11};
        case TensorType::Q5_0:
            return {1.0 / 31, false, 0.055};
        case TensorType::Q4_1:
            return {1.0 / 31, true, 0.10};  // over max - min; R is at least that
        case TensorType::Q5_1:
            return {1.0 / 63, true, 0.05};
        case TensorType::Q2_K:
            return {0.163, true, 0.38};
        case TensorType::Q3_K:
            return {0.148, false, 0.19};
        case TensorType::Q4_K:
            return {0.0333, true, 0.10};
        case TensorType::Q5_K:
            return {0.0164, true, 0.05};
        case TensorType::Q6_K:
            return {0.0161, false, 0.025};
        default:
            return {0, false, 0};
    }
}

}  // namespace

void TstQuantFormats::roundTripBounds_data() {
    QTest::addColumn<TensorType>("type");
    QTest::addColumn<int>("dist");
    const char* names[] = {"normal",       "uniform -2..5", "heavy tails", "all positive",
                           "all negative", "scale 1e-3",    "scale 300"};
    for (TensorType t : kQuantTypes) {
        for (int d = 0; d < 7; ++d) {
            QTest::newRow((typeName(t) + " " + names[d]).c_str()) << t << d;
        }
    }
}

void TstQuantFormats::roundTripBounds() {
    QFETCH(TensorType, type);
    QFETCH(int, dist);
    const BlockLayout l = *blockLayout(type);
    const int n = 256 * 64;
    std::mt19937 rng(99 + static_cast<unsigned>(dist));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> uni(-2.0f, 5.0f);
    std::vector<float> x(n);
    for (auto& v : x) {
        switch (dist) {
            case 0:
                v = normal(rng);
                break;
            case 1:
                v = uni(rng);
                break;
            case 2:
                v = normal(rng) * std::exp(uni(rng));
                break;
            case 3:
                v = 3.0f + std::fabs(normal(rng));
                break;
            case 4:
                v = -1.0f - std::fabs(normal(rng));
                break;
            case 5:
                v = 1e-3f * normal(rng);
                break;
            default:
                v = 300.0f * normal(rng);
                break;
        }
    }
    Bytes q(*tensorBytes(type, n));
    quantizeRow(type, x.data(), q.data(), n);
    std::vector<float> y(n);
    dequantizeRow(type, q.data(), y.data(), n);

    const StatedBound sb = statedBound(type);
    double se = 0, sx = 0;
    for (int k = 0; k < n / l.elems; ++k) {
        const Bytes block(q.begin() + static_cast<long>(k) * l.bytes,
                          q.begin() + static_cast<long>(k + 1) * l.bytes);
        float lo = 0, hi = 0, amax = 0, bmin = x[k * l.elems], bmax = bmin;
        for (int e = 0; e < l.elems; ++e) {
            const float v = x[k * l.elems + e];
            lo = std::min(lo, v);
            hi = std::max(hi, v);
            bmin = std::min(bmin, v);
            bmax = std::max(bmax, v);
            amax = std::max(amax, std::fabs(v));
        }
        double scaleOf = sb.overRange ? double(hi) - lo : amax;
        if (type == TensorType::Q4_1 || type == TensorType::Q5_1) {
            // Over max - min, plus the f16 rounding of the stored minimum (2^-10 relative).
            scaleOf = double(bmax) - bmin + std::ldexp(std::fabs(bmin), -10);
        }
        for (int e = 0; e < l.elems; ++e) {
            const size_t i = static_cast<size_t>(k * l.elems + e);
            const double err = std::fabs(double(x[i]) - y[i]);
            se += err * err;
            sx += double(x[i]) * x[i];
            // The structural bound: half the step the block stores for this element.
            const RefElem r = refElement(type, block, e);
            QCOMPARE(y[i], r.value);
            const double slack = 1e-6 * (std::fabs(x[i]) + amax);
            if (err > 0.5 * std::fabs(r.step) * (1 + 1e-5) + slack) {
                QFAIL(qPrintable(QString("block %1 element %2: x %3 deq %4 step %5")
                                     .arg(k)
                                     .arg(e)
                                     .arg(double(x[i]))
                                     .arg(double(y[i]))
                                     .arg(double(r.step))));
            }
            // The stated data-relative bound, with the f16 rounding of the scales (not for the
            // 1e-3 data, whose K-quant super scales are f16 subnormals, coarser than that).
            if (dist != 5 && err > sb.factor * scaleOf * (1 + 4e-3) + slack) {
                QFAIL(qPrintable(QString("block %1 element %2: error %3 above %4 * %5")
                                     .arg(k)
                                     .arg(e)
                                     .arg(err)
                                     .arg(sb.factor)
                                     .arg(scaleOf)));
            }
        }
    }
    const double rel = std::sqrt(se / sx);
    if (dist == 0) {
        QVERIFY2(rel < sb.rmsFraction, qPrintable(QString("RMS error %1 of the RMS").arg(rel)));
    }
    QVERIFY2(rel < 4 * sb.rmsFraction, qPrintable(QString("RMS error %1 of the RMS").arg(rel)));
}

void TstQuantFormats::specialBlocks_data() {
    QTest::addColumn<TensorType>("type");
    for (TensorType t : kQuantTypes) QTest::newRow(typeName(t).c_str()) << t;
}

void TstQuantFormats::specialBlocks() {
    // Zeros stay exact zeros; a constant block comes back within the bound; one large value
    // among zeros keeps the zeros exact for the symmetric types.
    QFETCH(TensorType, type);
    const int n = 256;
    Bytes q(*tensorBytes(type, n));
    std::vector<float> y(n);

    std::vector<float> x(n, 0.0f);
    quantizeRow(type, x.data(), q.data(), n);
    dequantizeRow(type, q.data(), y.data(), n);
    for (float v : y) QCOMPARE(v, 0.0f);

    x.assign(n, 0.75f);
    quantizeRow(type, x.data(), q.data(), n);
    dequantizeRow(type, q.data(), y.data(), n);
    for (float v : y)
        QVERIFY2(std::fabs(v - 0.75f) <= 0.75f * 0.17f, qPrintable(QString::number(v)));

    x.assign(n, 0.0f);
    x[37] = -1000.0f;
    x[200] = 1e-7f;
    quantizeRow(type, x.data(), q.data(), n);
    dequantizeRow(type, q.data(), y.data(), n);
    for (int i = 0; i < n; ++i) QVERIFY(std::isfinite(y[i]));
    QVERIFY2(std::fabs(y[37] + 1000.0f) <= 1000.0f * 0.17f, qPrintable(QString::number(y[37])));
}

void TstQuantFormats::fromFloatToFloat() {
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(512);
    for (auto& v : x) v = normal(rng);
    for (TensorType t : kQuantTypes) {
        const Bytes enc = fromFloat(t, x);
        QCOMPARE(enc.size(), static_cast<size_t>(*tensorBytes(t, x.size())));
        Bytes direct(enc.size());
        quantizeRow(t, x.data(), direct.data(), static_cast<int64_t>(x.size()));
        QCOMPARE(enc, direct);
        const auto y = toFloat(t, enc, x.size(), "w");
        std::vector<float> z(x.size());
        dequantizeRow(t, enc.data(), z.data(), static_cast<int64_t>(x.size()));
        QCOMPARE(y, z);
    }
}

QTEST_GUILESS_MAIN(TstQuantFormats)
#include "tst_quant_formats.moc"
