// F16 / BF16 / Q8_0 <-> float32. Bit-exact conversions (no reliance on the compiler's _Float16),
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

constexpr size_t kQ8Block = 32;           // values per Q8_0 block
constexpr size_t kQ8BlockBytes = 2 + 32;  // f16 scale + 32 int8

std::string supportedMessage(TensorType type, std::string_view tensorName) {
    return "tensor '" + std::string(tensorName) + "' has type " + typeName(type) +
           "; KVScope reads F32, F16, BF16 and Q8_0";
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
    if (type != TensorType::F32 && type != TensorType::F16 && type != TensorType::BF16 &&
        type != TensorType::Q8_0) {
        throw Error(supportedMessage(type, tensorName));
    }
    const auto bytes = tensorBytes(type, count);
    if (!bytes || *bytes > data.size()) {
        throw Error("tensor '" + std::string(tensorName) + "' of type " + typeName(type) + ": " +
                    std::to_string(count) + " elements need " +
                    (bytes ? std::to_string(*bytes) + " bytes" : std::string("whole blocks")) +
                    ", the data holds " + std::to_string(data.size()));
    }
    std::vector<float> out(static_cast<size_t>(count));
    const uint8_t* p = data.data();
    switch (type) {
        case TensorType::F32:
            if (count > 0) std::memcpy(out.data(), p, out.size() * sizeof(float));
            break;
        case TensorType::F16:
        case TensorType::BF16: {
            const bool half = type == TensorType::F16;
            for (size_t i = 0; i < out.size(); ++i) {
                uint16_t v;
                std::memcpy(&v, p + 2 * i, 2);
                out[i] = half ? f16ToF32(v) : bf16ToF32(v);
            }
            break;
        }
        case TensorType::Q8_0:
            for (size_t b = 0; b < out.size() / kQ8Block; ++b) {
                const uint8_t* block = p + b * kQ8BlockBytes;
                uint16_t d16;
                std::memcpy(&d16, block, 2);
                const float d = f16ToF32(d16);
                for (size_t i = 0; i < kQ8Block; ++i) {
                    const auto q = static_cast<int8_t>(block[2 + i]);
                    out[b * kQ8Block + i] = d * static_cast<float>(q);
                }
            }
            break;
        default:
            break;  // refused above
    }
    return out;
}

std::vector<uint8_t> fromFloat(TensorType type, std::span<const float> values) {
    std::vector<uint8_t> out;
    switch (type) {
        case TensorType::F32:
            out.resize(values.size() * sizeof(float));
            if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
            return out;
        case TensorType::F16:
        case TensorType::BF16: {
            out.resize(values.size() * 2);
            const bool half = type == TensorType::F16;
            for (size_t i = 0; i < values.size(); ++i) {
                const uint16_t v = half ? f32ToF16(values[i]) : f32ToBf16(values[i]);
                std::memcpy(out.data() + 2 * i, &v, 2);
            }
            return out;
        }
        case TensorType::Q8_0: {
            if (values.size() % kQ8Block != 0) {
                throw Error("fromFloat: Q8_0 needs a multiple of 32 values, got " +
                            std::to_string(values.size()));
            }
            out.resize(values.size() / kQ8Block * kQ8BlockBytes);
            for (size_t b = 0; b < values.size() / kQ8Block; ++b) {
                const float* x = values.data() + b * kQ8Block;
                uint8_t* block = out.data() + b * kQ8BlockBytes;
                float amax = 0.0f;
                for (size_t i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(x[i]));
                // Quantise against the scale as stored (f16), so |x - d*q| <= d/2. Where f16
                // rounding (coarse for subnormal scales) left d too small for amax to reach
                // 127.5 * d, take the next f16 up so that no value is clamped.
                uint16_t d16 = f32ToF16(amax / 127.0f);
                if (f16ToF32(d16) * 127.5f < amax && d16 < 0x7C00u) ++d16;
                const float d = f16ToF32(d16);
                const float id = d > 0.0f && std::isfinite(d) ? 1.0f / d : 0.0f;
                std::memcpy(block, &d16, 2);
                for (size_t i = 0; i < kQ8Block; ++i) {
                    const float q = std::round(x[i] * id);
                    const float clamped = std::isnan(q) ? 0.0f : std::clamp(q, -127.0f, 127.0f);
                    block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(clamped));
                }
            }
            return out;
        }
        default:
            throw Error("fromFloat: cannot encode type " + typeName(type) +
                        "; KVScope writes F32, F16, BF16 and Q8_0");
    }
}

}  // namespace kvscope
