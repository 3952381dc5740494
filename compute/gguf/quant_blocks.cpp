// The block codecs of the GGUF tensor types: dequantizeRow (the scalar reference, bit layouts as
// ggml's ggml-common.h block structs and dequantize_row_*) and quantizeRow (a simple, bounded
// encoder: scales from each block's min/max, no search).
//
// Layouts, all little-endian, h = f16:
//   Q4_0 (18 B / 32): h d | qs[16]. Element j < 16 is the low nibble of qs[j], element j + 16
//        the high nibble; value (q - 8) * d.
//   Q4_1 (20 B / 32): h d | h m | qs[16] as Q4_0; value q * d + m.
//   Q5_0 (22 B / 32): h d | u32 qh | qs[16]. Bit j of qh is bit 4 of element j; value
//        (q - 16) * d.
//   Q5_1 (24 B / 32): h d | h m | u32 qh | qs[16]; value q * d + m.
//   Q8_0 (34 B / 32): h d | int8 qs[32]; value q * d.
//   Super-blocks of 256 elements, e = 0..255, in 2 halves of 128 (the 2-bit and 6-bit types)
//   or 4 chunks of 64 (the 4-/5-bit types):
//   Q2_K (84 B):  scales[16] | qs[64] | h d | h dmin. Sub-block e/16 has scale byte
//        sc = scales[e/16]: value d * (sc & 15) * q - dmin * (sc >> 4), q = 2 bits of
//        qs[32 * (e/128) + e%32] at shift 2 * ((e/32) % 4).
//   Q3_K (110 B): hmask[32] | qs[64] | scales[12] | h d. Low 2 bits as Q2_K; bit e/32 of
//        hmask[e%32] set means +0, clear means -4: q in [-4, 3]. 16 six-bit scales s, value
//        d * (s - 32) * q: the low 4 bits of s for k = e/16 are in scales[k%8] (low nibble for
//        k < 8, high nibble for k >= 8), the high 2 bits in scales[8 + k%4] at shift 2*(k/4).
//   Q4_K (144 B): h d | h dmin | scales[12] | qs[128]. Sub-block b = e/32; element e is a
//        nibble of qs[32 * (e/64) + e%32] (low for even b, high for odd b); value
//        d * sc[b] * q - dmin * m[b] with the 6-bit sc, m packed as get_scale_min_k4:
//        b < 4: sc = scales[b] & 63, m = scales[b+4] & 63; b >= 4: sc = (scales[b+4] & 15) |
//        (scales[b-4] >> 6) << 4, m = (scales[b+4] >> 4) | (scales[b] >> 6) << 4.
//   Q5_K (176 B): h d | h dmin | scales[12] | qh[32] | qs[128]. As Q4_K plus bit 4 of q in bit
//        e/32 of qh[e%32]; q in [0, 31].
//   Q6_K (210 B): ql[128] | qh[64] | int8 scales[16] | h d. With n = e/128, r = e%128,
//        l = r%32, k = r/32: low 4 bits from ql[64n + 32*(k&1) + l] (low nibble for k < 2,
//        high for k >= 2), high 2 bits from qh[32n + l] at shift 2k; value
//        d * scales[e/16] * (q - 32).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "gguf/dequant.h"

namespace kvscope {

namespace {

constexpr int QK = 32;    // elements of a Q4_0 .. Q8_0 block
constexpr int QKK = 256;  // elements of a K-quant super-block

inline float loadHalf(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16ToF32(h);
}

inline void storeHalf(uint8_t* p, uint16_t h) {
    std::memcpy(p, &h, 2);
}

// ---------------------------------------------------------------------------------------------
// Dequantization: one function a type, whole blocks, plain loops.

void dequantF16(const uint8_t* src, float* dst, int64_t n, bool half) {
    for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        dst[i] = half ? f16ToF32(v) : bf16ToF32(v);
    }
}

void dequantQ8_0(const uint8_t* src, float* dst, int64_t nb) {
    for (int64_t b = 0; b < nb; ++b, src += 34, dst += QK) {
        const float d = loadHalf(src);
        const auto* q = reinterpret_cast<const int8_t*>(src + 2);
        for (int i = 0; i < QK; ++i) dst[i] = d * static_cast<float>(q[i]);
    }
}

// Q4_0 (offset false: (q - 8) * d) and Q4_1 (offset true: q * d + m).
void dequantQ4(const uint8_t* src, float* dst, int64_t nb, bool offset) {
    const int bytes = offset ? 20 : 18;
    for (int64_t b = 0; b < nb; ++b, src += bytes, dst += QK) {
        const float d = loadHalf(src);
        const uint8_t* qs = src + (offset ? 4 : 2);
        if (offset) {
            const float m = loadHalf(src + 2);
            for (int j = 0; j < 16; ++j) {
                dst[j] = static_cast<float>(qs[j] & 0xF) * d + m;
                dst[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
            }
        } else {
            for (int j = 0; j < 16; ++j) {
                dst[j] = static_cast<float>((qs[j] & 0xF) - 8) * d;
                dst[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
            }
        }
    }
}

// Q5_0 (offset false: (q - 16) * d) and Q5_1 (offset true: q * d + m).
void dequantQ5(const uint8_t* src, float* dst, int64_t nb, bool offset) {
    const int bytes = offset ? 24 : 22;
    for (int64_t b = 0; b < nb; ++b, src += bytes, dst += QK) {
        const float d = loadHalf(src);
        const float m = offset ? loadHalf(src + 2) : 0.0f;
        const uint8_t* p = src + (offset ? 4 : 2);
        uint32_t qh;
        std::memcpy(&qh, p, 4);
        const uint8_t* qs = p + 4;
        const int bias = offset ? 0 : 16;
        for (int j = 0; j < 16; ++j) {
            const int q0 = ((qs[j] & 0xF) | static_cast<int>((qh >> j) & 1u) << 4) - bias;
            const int q1 = ((qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1u) << 4) - bias;
            if (offset) {
                dst[j] = static_cast<float>(q0) * d + m;
                dst[j + 16] = static_cast<float>(q1) * d + m;
            } else {
                dst[j] = static_cast<float>(q0) * d;
                dst[j + 16] = static_cast<float>(q1) * d;
            }
        }
    }
}

void dequantQ2_K(const uint8_t* src, float* dst, int64_t nb) {
    for (int64_t b = 0; b < nb; ++b, src += 84) {
        const uint8_t* scales = src;
        const float d = loadHalf(src + 80);
        const float dmin = loadHalf(src + 82);
        for (int half = 0; half < 2; ++half) {
            const uint8_t* q = src + 16 + 32 * half;
            for (int shift = 0; shift < 8; shift += 2) {
                for (int g = 0; g < 2; ++g) {  // two sub-blocks of 16 share this shift
                    const uint8_t sc = *scales++;
                    const float dl = d * static_cast<float>(sc & 0xF);
                    const float ml = dmin * static_cast<float>(sc >> 4);
                    for (int l = 0; l < 16; ++l) {
                        *dst++ = dl * static_cast<float>((q[16 * g + l] >> shift) & 3) - ml;
                    }
                }
            }
        }
    }
}

// The 16 six-bit Q3_K scales, unpacked from their 12 bytes (see the layout at the top).
inline void unpackQ3Scales(const uint8_t* p, int* s) {
    for (int k = 0; k < 16; ++k) {
        const int low = k < 8 ? (p[k % 8] & 0xF) : (p[k % 8] >> 4);
        const int high = (p[8 + k % 4] >> (2 * (k / 4))) & 3;
        s[k] = (low | high << 4) - 32;
    }
}

void dequantQ3_K(const uint8_t* src, float* dst, int64_t nb) {
    for (int64_t b = 0; b < nb; ++b, src += 110) {
        const uint8_t* hmask = src;
        const float d = loadHalf(src + 108);
        int s[16];
        unpackQ3Scales(src + 96, s);
        int k = 0;
        for (int half = 0; half < 2; ++half) {
            const uint8_t* q = src + 32 + 32 * half;
            for (int j = 0; j < 4; ++j) {
                const int shift = 2 * j;
                const uint8_t bit = static_cast<uint8_t>(1u << (4 * half + j));
                for (int g = 0; g < 2; ++g) {
                    const float dl = d * static_cast<float>(s[k++]);
                    for (int l = 0; l < 16; ++l) {
                        const int i = 16 * g + l;
                        const int v = ((q[i] >> shift) & 3) - ((hmask[i] & bit) ? 0 : 4);
                        *dst++ = dl * static_cast<float>(v);
                    }
                }
            }
        }
    }
}

// The 6-bit scale and min of sub-block b (0..7) of a Q4_K/Q5_K super-block.
inline void scaleMinK4(int b, const uint8_t* p, int& sc, int& m) {
    if (b < 4) {
        sc = p[b] & 63;
        m = p[b + 4] & 63;
    } else {
        sc = (p[b + 4] & 0xF) | (p[b - 4] >> 6) << 4;
        m = (p[b + 4] >> 4) | (p[b] >> 6) << 4;
    }
}

// Q4_K (qh == nullptr) and Q5_K.
void dequantQ45_K(const uint8_t* src, float* dst, int64_t nb, bool five) {
    const int bytes = five ? 176 : 144;
    for (int64_t b = 0; b < nb; ++b, src += bytes) {
        const float d = loadHalf(src);
        const float dmin = loadHalf(src + 2);
        const uint8_t* scales = src + 4;
        const uint8_t* qh = five ? src + 16 : nullptr;
        const uint8_t* qs = src + (five ? 48 : 16);
        for (int chunk = 0; chunk < 4; ++chunk, qs += 32) {
            for (int g = 0; g < 2; ++g) {
                int sc, m;
                scaleMinK4(2 * chunk + g, scales, sc, m);
                const float dl = d * static_cast<float>(sc);
                const float ml = dmin * static_cast<float>(m);
                const int shift = 4 * g;
                if (five) {
                    const uint8_t bit = static_cast<uint8_t>(1u << (2 * chunk + g));
                    for (int l = 0; l < 32; ++l) {
                        const int q = ((qs[l] >> shift) & 0xF) | ((qh[l] & bit) ? 16 : 0);
                        *dst++ = dl * static_cast<float>(q) - ml;
                    }
                } else {
                    for (int l = 0; l < 32; ++l) {
                        *dst++ = dl * static_cast<float>((qs[l] >> shift) & 0xF) - ml;
                    }
                }
            }
        }
    }
}

void dequantQ6_K(const uint8_t* src, float* dst, int64_t nb) {
    for (int64_t b = 0; b < nb; ++b, src += 210, dst += QKK) {
        const float d = loadHalf(src + 208);
        const auto* scales = reinterpret_cast<const int8_t*>(src + 192);
        for (int half = 0; half < 2; ++half) {
            const uint8_t* ql = src + 64 * half;
            const uint8_t* qh = src + 128 + 32 * half;
            float* y = dst + 128 * half;
            for (int k = 0; k < 4; ++k) {
                const uint8_t* lo = ql + 32 * (k & 1);
                const int loShift = k < 2 ? 0 : 4;
                for (int g = 0; g < 2; ++g) {
                    const float dl = d * static_cast<float>(scales[8 * half + 2 * k + g]);
                    for (int l = 16 * g; l < 16 * g + 16; ++l) {
                        const int q = (((lo[l] >> loShift) & 0xF) | ((qh[l] >> (2 * k)) & 3) << 4);
                        y[32 * k + l] = dl * static_cast<float>(q - 32);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quantization

// Q8_0: per block d = max|x| / 127 stored as f16 (one f16 step up where rounding made it too
// small to reach max|x|), q = round(x / d) with the stored d, clamped to [-127, 127].
// Bound: |x - d*q| <= d/2 (d the stored scale, <= max|x|/127 * (1 + 2^-10)), for max|x| up to
// 127 * 65504.
void quantQ8_0(const float* x, uint8_t* block, int64_t nb) {
    for (int64_t b = 0; b < nb; ++b, x += QK, block += 34) {
        float amax = 0.0f;
        for (int i = 0; i < QK; ++i) amax = std::max(amax, std::fabs(x[i]));
        // Quantise against the scale as stored (f16), so |x - d*q| <= d/2. Where f16
        // rounding (coarse for subnormal scales) left d too small for amax to reach
        // 127.5 * d, take the next f16 up so that no value is clamped.
        uint16_t d16 = f32ToF16(amax / 127.0f);
        if (f16ToF32(d16) * 127.5f < amax && d16 < 0x7C00u) ++d16;
        const float d = f16ToF32(d16);
        const float id = d > 0.0f && std::isfinite(d) ? 1.0f / d : 0.0f;
        storeHalf(block, d16);
        for (int i = 0; i < QK; ++i) {
            const float q = std::round(x[i] * id);
            const float clamped = std::isnan(q) ? 0.0f : std::clamp(q, -127.0f, 127.0f);
            block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(clamped));
        }
    }
}

[[noreturn]] void refuse(const char* what, TensorType t) {
    throw Error(std::string(what) + ": type " + typeName(t) + " is not supported");
}

}  // namespace

std::optional<BlockLayout> blockLayout(TensorType t) {
    switch (t) {
        case TensorType::F32:
            return BlockLayout{1, 4};
        case TensorType::F16:
        case TensorType::BF16:
            return BlockLayout{1, 2};
        case TensorType::Q4_0:
            return BlockLayout{32, 18};
        case TensorType::Q4_1:
            return BlockLayout{32, 20};
        case TensorType::Q5_0:
            return BlockLayout{32, 22};
        case TensorType::Q5_1:
            return BlockLayout{32, 24};
        case TensorType::Q8_0:
            return BlockLayout{32, 34};
        case TensorType::Q2_K:
            return BlockLayout{256, 84};
        case TensorType::Q3_K:
            return BlockLayout{256, 110};
        case TensorType::Q4_K:
            return BlockLayout{256, 144};
        case TensorType::Q5_K:
            return BlockLayout{256, 176};
        case TensorType::Q6_K:
            return BlockLayout{256, 210};
        case TensorType::Q8_1:
        case TensorType::Q8_K:
            break;
    }
    return std::nullopt;
}

bool isSupportedWeightType(TensorType t) {
    return blockLayout(t).has_value();
}

void dequantizeRow(TensorType t, const uint8_t* src, float* dst, int64_t n) {
    switch (t) {
        case TensorType::F32:
            if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
            return;
        case TensorType::F16:
            return dequantF16(src, dst, n, true);
        case TensorType::BF16:
            return dequantF16(src, dst, n, false);
        case TensorType::Q8_0:
            return dequantQ8_0(src, dst, n / QK);
        case TensorType::Q4_0:
            return dequantQ4(src, dst, n / QK, false);
        case TensorType::Q4_1:
            return dequantQ4(src, dst, n / QK, true);
        case TensorType::Q5_0:
            return dequantQ5(src, dst, n / QK, false);
        case TensorType::Q5_1:
            return dequantQ5(src, dst, n / QK, true);
        case TensorType::Q2_K:
            return dequantQ2_K(src, dst, n / QKK);
        case TensorType::Q3_K:
            return dequantQ3_K(src, dst, n / QKK);
        case TensorType::Q4_K:
            return dequantQ45_K(src, dst, n / QKK, false);
        case TensorType::Q5_K:
            return dequantQ45_K(src, dst, n / QKK, true);
        case TensorType::Q6_K:
            return dequantQ6_K(src, dst, n / QKK);
        default:
            break;
    }
    refuse("dequantizeRow", t);
}

void quantizeRow(TensorType t, const float* src, uint8_t* dst, int64_t n) {
    switch (t) {
        case TensorType::F32:
            if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
            return;
        case TensorType::F16:
        case TensorType::BF16:
            for (int64_t i = 0; i < n; ++i) {
                storeHalf(dst + 2 * i, t == TensorType::F16 ? f32ToF16(src[i]) : f32ToBf16(src[i]));
            }
            return;
        case TensorType::Q8_0:
            return quantQ8_0(src, dst, n / QK);
        default:
            break;
    }
    refuse("quantizeRow", t);
}

}  // namespace kvscope
