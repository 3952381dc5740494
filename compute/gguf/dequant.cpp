// F16 / BF16 <-> float32 and the tensor-level toFloat / fromFloat (the block codecs are in
// gguf/quant_blocks.cpp). Bit-exact conversions (no reliance on the compiler's _Float16),
// round to nearest even, NaN kept as a quiet NaN.
#include "gguf/dequant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"

namespace kvscope {

namespace {

constexpr char kSupportedList[] =
    "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K";

std::string supportedMessage(TensorType type, std::string_view tensorName) {
    return "tensor '" + std::string(tensorName) + "' has type " + typeName(type) +
           "; KVScope reads " + kSupportedList;
}

}  // namespace

float f16ToF32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu;
    const uint32_t mant = h & 0x3FFu;
    if (exp == 0) {
        // Zero or subnormal: mant × 2^-24, exact in float32.
        const float v = std::ldexp(static_cast<float>(mant), -24);
        return sign != 0 ? -v : v;
    }
    if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf, NaN
    return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

uint16_t f32ToF16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t abs = x & 0x7FFFFFFFu;
    if (abs > 0x7F800000u) {  // NaN: keep the top mantissa bits, force quiet
        return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));
    }
    if (abs >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65536 or inf
    if (abs >= 0x38800000u) {
        // Normal in f16 (>= 2^-14). Rebias the exponent, keep 10 mantissa bits, round the
        // 13 dropped bits to nearest even; a carry may run into the exponent (up to inf).
        uint32_t h = ((abs >> 23) - 127 + 15) << 10 | ((abs >> 13) & 0x3FFu);
        const uint32_t rest = abs & 0x1FFFu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) != 0)) ++h;
        return static_cast<uint16_t>(sign | h);
    }
    // Subnormal in f16: the value in units of 2^-24 is m × 2^(e - 126), with m the 24-bit
    // significand; shift right and round to nearest even.
    const uint32_t e = abs >> 23;
    const uint32_t shift = 126 - e;  // >= 14 here
    if (shift > 24) return sign;     // below half of 2^-24: rounds to zero
    const uint32_t m = (abs & 0x7FFFFFu) | 0x800000u;
    uint32_t h = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1u) != 0)) ++h;  // may become the smallest normal
    return static_cast<uint16_t>(sign | h);
}

float bf16ToF32(uint16_t b) {
    return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

uint16_t f32ToBf16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN
    const uint32_t rounded = x + 0x7FFFu + ((x >> 16) & 1u);
    return static_cast<uint16_t>(rounded >> 16);
}

std::vector<float> toFloat(TensorType type, std::span<const uint8_t> data, uint64_t count,
                           std::string_view tensorName) {
    if (!isSupportedWeightType(type)) throw Error(supportedMessage(type, tensorName));
    const auto bytes = tensorBytes(type, count);
    if (!bytes || *bytes > data.size()) {
        throw Error("tensor '" + std::string(tensorName) + "' of type " + typeName(type) + ": " +
                    std::to_string(count) + " elements need " +
                    (bytes ? std::to_string(*bytes) + " bytes" : std::string("whole blocks")) +
                    ", the data holds " + std::to_string(data.size()));
    }
    std::vector<float> out(static_cast<size_t>(count));
    dequantizeRow(type, data.data(), out.data(), static_cast<int64_t>(count));
    return out;
}

std::vector<uint8_t> fromFloat(TensorType type, std::span<const float> values) {
    const auto layout = blockLayout(type);
    if (!layout) {
        throw Error("fromFloat: cannot encode type " + typeName(type) + "; KVScope writes " +
                    kSupportedList);
    }
    if (values.size() % static_cast<size_t>(layout->elems) != 0) {
        throw Error("fromFloat: " + typeName(type) + " needs a multiple of " +
                    std::to_string(layout->elems) + " values, got " +
                    std::to_string(values.size()));
    }
    std::vector<uint8_t> out(values.size() / static_cast<size_t>(layout->elems) *
                             static_cast<size_t>(layout->bytes));
    quantizeRow(type, values.data(), out.data(), static_cast<int64_t>(values.size()));
    return out;
}

}  // namespace kvscope
