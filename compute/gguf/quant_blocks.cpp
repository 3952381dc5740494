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
#include "gguf/gguf_detail.h"

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

// The f16 nearest to t >= 0 that is not below it (the largest finite, 65504, where t is
// beyond): a scale stored this way still reaches the values it was computed for.
uint16_t f16AtLeast(float t) {
    uint16_t h = f32ToF16(t);
    if (h >= 0x7C00u) return 0x7BFFu;
    while (f16ToF32(h) < t && h < 0x7BFFu) ++h;
    return h;
}

// The f16 nearest to v that is not above it (-65504 where v is below): a block minimum stored
// this way keeps every value at or above it.
uint16_t f16AtMost(float v) {
    uint16_t h = f32ToF16(v);
    if ((h & 0x7FFFu) >= 0x7C00u) return (h & 0x8000u) ? 0xFBFFu : 0x7BFFu;
    if (f16ToF32(h) > v) {
        if ((h & 0x7FFFu) == 0) {
            h = 0x8001u;  // +0 or -0 above a negative v: the smallest negative subnormal
        } else if (h & 0x8000u) {
            if (h < 0xFBFFu) ++h;  // more negative
        } else {
            --h;
        }
    }
    return h;
}

// A signed step D for n values quantized to integers in [-qn, qp] with |x - D*q| <= |D|/2:
// the sign puts the value of largest magnitude on the -qn side, so |D| = max(amax / (qn + 1/2),
// b / (qp + 1/2)) with b the largest magnitude of the opposite sign. 0 for an all-zero block.
float signedStep(const float* x, int n, int qn, int qp) {
    float amax = 0.0f, v = 0.0f;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            v = x[i];
        }
    }
    if (amax == 0.0f) return 0.0f;
    float b = 0.0f;  // opposite sign to v
    for (int i = 0; i < n; ++i) {
        if ((v < 0.0f) ? x[i] > 0.0f : x[i] < 0.0f) b = std::max(b, std::fabs(x[i]));
    }
    const float mag =
        std::max(amax / (static_cast<float>(qn) + 0.5f), b / (static_cast<float>(qp) + 0.5f));
    return v < 0.0f ? mag : -mag;
}

// round(x / step) clamped to [lo, hi]; 0 where step is 0 (or x is NaN).
inline int quantOne(float x, float step, int lo, int hi) {
    if (step == 0.0f) return 0;
    const float q = std::round(x / step);
    if (!(q == q)) return 0;
    return static_cast<int>(std::clamp(q, static_cast<float>(lo), static_cast<float>(hi)));
}

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

// Q4_0 (bits 4) and Q5_0 (bits 5): signed d from signedStep over [-8, 7] / [-16, 15], stored
// as f16 rounded away from zero, q = round(x / d) with the stored d.
// Bound: |x - deq| <= |d|/2, |d| <= max|x| / 7.5 (Q4_0) or / 15.5 (Q5_0) times (1 + 2^-10).
void quantQ45_0(const float* x, uint8_t* block, int64_t nb, int bits) {
    const int qn = 1 << (bits - 1), qp = qn - 1;
    const int bytes = bits == 4 ? 18 : 22;
    for (int64_t b = 0; b < nb; ++b, x += QK, block += bytes) {
        const float t = signedStep(x, QK, qn, qp);
        const uint16_t d16 =
            static_cast<uint16_t>(f16AtLeast(std::fabs(t)) | (t < 0.0f ? 0x8000u : 0u));
        const float d = f16ToF32(d16);
        storeHalf(block, d16);
        uint8_t* qs = block + (bits == 4 ? 2 : 6);
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            const int u0 = quantOne(x[j], d, -qn, qp) + qn;
            const int u1 = quantOne(x[j + 16], d, -qn, qp) + qn;
            qs[j] = static_cast<uint8_t>((u0 & 0xF) | (u1 & 0xF) << 4);
            qh |= static_cast<uint32_t>(u0 >> 4) << j | static_cast<uint32_t>(u1 >> 4) << (j + 16);
        }
        if (bits == 5) std::memcpy(block + 2, &qh, 4);
    }
}

// Q4_1 (bits 4) and Q5_1 (bits 5): m = min x stored as f16 rounded down, d = (max x - m) /
// (Q + 1/2) stored as f16 rounded up (Q = 15 or 31), q = round((x - m) / d) in [0, Q].
// Bound: |x - deq| <= d/2 (plus the float rounding of q*d + m), d <= (max x - min x +
// 2^-10 |min x|) / 15.5 (Q4_1) or / 31.5 (Q5_1) times (1 + 2^-10).
void quantQ45_1(const float* x, uint8_t* block, int64_t nb, int bits) {
    const int qmax = (1 << bits) - 1;
    const int bytes = bits == 4 ? 20 : 24;
    for (int64_t b = 0; b < nb; ++b, x += QK, block += bytes) {
        float lo = x[0], hi = x[0];
        for (int i = 1; i < QK; ++i) {
            lo = std::min(lo, x[i]);
            hi = std::max(hi, x[i]);
        }
        const uint16_t m16 = f16AtMost(lo);
        const float m = f16ToF32(m16);
        const uint16_t d16 = f16AtLeast((hi - m) / (static_cast<float>(qmax) + 0.5f));
        const float d = f16ToF32(d16);
        storeHalf(block, d16);
        storeHalf(block + 2, m16);
        uint8_t* qs = block + (bits == 4 ? 4 : 8);
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            const int u0 = quantOne(x[j] - m, d, 0, qmax);
            const int u1 = quantOne(x[j + 16] - m, d, 0, qmax);
            qs[j] = static_cast<uint8_t>((u0 & 0xF) | (u1 & 0xF) << 4);
            qh |= static_cast<uint32_t>(u0 >> 4) << j | static_cast<uint32_t>(u1 >> 4) << (j + 16);
        }
        if (bits == 5) std::memcpy(block + 4, &qh, 4);
    }
}

// The scales of an asymmetric K-quant super-block (Q2_K, Q4_K, Q5_K): `nsub` sub-blocks of
// `len` values, q in [0, qmax], 4- or 6-bit scale and min codes in [0, smax]. Sub-block i covers
// [lo_i, hi_i] with lo_i = min(0, min x): its offset code m_i = ceil(-lo_i / dmin) (so the stored
// offset dmin*m_i reaches lo_i), its scale code sc_i = ceil(need_i / (qmax + 1/2) / d) with
// need_i = hi_i + dmin*m_i, dmin and d the f16 super scales rounded up. Each value is then
// rounded with the stored step D_i = d*sc_i and offset: |x - deq| <= D_i/2.
struct AsymScales {
    uint16_t d16 = 0, dmin16 = 0;
    int sc[16] = {}, m[16] = {};
    float step[16] = {}, offset[16] = {};  // as the decoder computes them
};

AsymScales asymScales(const float* x, int nsub, int len, int qmax, int smax) {
    AsymScales a;
    float off[16], hi[16];
    float offMax = 0.0f;
    for (int i = 0; i < nsub; ++i) {
        float lo = 0.0f, h = x[i * len];
        for (int l = 0; l < len; ++l) {
            lo = std::min(lo, x[i * len + l]);
            h = std::max(h, x[i * len + l]);
        }
        off[i] = -lo;
        hi[i] = h;
        offMax = std::max(offMax, off[i]);
    }
    const float fs = static_cast<float>(smax);
    a.dmin16 = f16AtLeast(offMax / fs);
    const float dmin = f16ToF32(a.dmin16);
    float target[16], targetMax = 0.0f;
    for (int i = 0; i < nsub; ++i) {
        a.m[i] = dmin > 0.0f ? static_cast<int>(std::min(fs, std::ceil(off[i] / dmin))) : 0;
        a.offset[i] = dmin * static_cast<float>(a.m[i]);
        target[i] = std::max(0.0f, hi[i] + a.offset[i]) / (static_cast<float>(qmax) + 0.5f);
        targetMax = std::max(targetMax, target[i]);
    }
    a.d16 = f16AtLeast(targetMax / fs);
    const float d = f16ToF32(a.d16);
    for (int i = 0; i < nsub; ++i) {
        a.sc[i] = d > 0.0f ? static_cast<int>(std::min(fs, std::ceil(target[i] / d))) : 0;
        a.step[i] = d * static_cast<float>(a.sc[i]);
    }
    return a;
}

// Q2_K. Bound: |x - deq| <= D/2 per sub-block of 16 (D = d * (scales & 15)); over the
// super-block D <= (16/15)^2 R / 3.5, so |x - deq| <= 0.163 R (R = max(0, max x) -
// min(0, min x)), up to the f16 rounding of d and dmin.
void quantQ2_K(const float* x, uint8_t* block, int64_t nb) {
    for (int64_t b = 0; b < nb; ++b, x += QKK, block += 84) {
        const AsymScales a = asymScales(x, 16, 16, 3, 15);
        for (int i = 0; i < 16; ++i) block[i] = static_cast<uint8_t>(a.sc[i] | a.m[i] << 4);
        uint8_t* qs = block + 16;
        std::memset(qs, 0, 64);
        for (int e = 0; e < QKK; ++e) {
            const int i = e / 16;
            const int q = quantOne(x[e] + a.offset[i], a.step[i], 0, 3);
            qs[32 * (e / 128) + e % 32] |= static_cast<uint8_t>(q << (2 * ((e / 32) % 4)));
        }
        storeHalf(block + 80, a.d16);
        storeHalf(block + 82, a.dmin16);
    }
}

// Q4_K (bits 4) and Q5_K (bits 5). Bound: |x - deq| <= D/2 per sub-block of 32 (D = d * sc);
// over the super-block D <= (64/63)^2 R / (Q + 1/2), so |x - deq| <= 0.0333 R (Q4_K) or
// 0.0164 R (Q5_K), R as for Q2_K, up to the f16 rounding of d and dmin.
void quantQ45_K(const float* x, uint8_t* block, int64_t nb, int bits) {
    const int qmax = (1 << bits) - 1;
    const bool five = bits == 5;
    for (int64_t b = 0; b < nb; ++b, x += QKK, block += five ? 176 : 144) {
        const AsymScales a = asymScales(x, 8, 32, qmax, 63);
        storeHalf(block, a.d16);
        storeHalf(block + 2, a.dmin16);
        uint8_t* scales = block + 4;
        for (int i = 0; i < 4; ++i) {
            scales[i] = static_cast<uint8_t>(a.sc[i] | (a.sc[i + 4] >> 4) << 6);
            scales[i + 4] = static_cast<uint8_t>(a.m[i] | (a.m[i + 4] >> 4) << 6);
            scales[i + 8] = static_cast<uint8_t>((a.sc[i + 4] & 0xF) | (a.m[i + 4] & 0xF) << 4);
        }
        uint8_t* qh = five ? block + 16 : nullptr;
        uint8_t* qs = block + (five ? 48 : 16);
        std::memset(qs, 0, 128);
        if (five) std::memset(qh, 0, 32);
        for (int e = 0; e < QKK; ++e) {
            const int i = e / 32;
            const int q = quantOne(x[e] + a.offset[i], a.step[i], 0, qmax);
            qs[32 * (e / 64) + e % 32] |= static_cast<uint8_t>((q & 0xF) << (4 * (i % 2)));
            if (five) qh[e % 32] |= static_cast<uint8_t>((q >> 4) << i);
        }
    }
}

// The signed scales of a symmetric K-quant super-block (Q3_K, Q6_K): 16 sub-blocks of 16, q in
// [-qn, qp], each sub-block's step from signedStep, its code s_i = +-ceil(|t_i| / d) in
// [-smax, smax] with d = max |t_i| / smax as f16 rounded up. Steps as the decoder computes them.
struct SymScales {
    uint16_t d16 = 0;
    int s[16] = {};
    float step[16] = {};
};

SymScales symScales(const float* x, int qn, int qp, int smax) {
    SymScales a;
    float t[16], tMax = 0.0f;
    for (int i = 0; i < 16; ++i) {
        t[i] = signedStep(x + 16 * i, 16, qn, qp);
        tMax = std::max(tMax, std::fabs(t[i]));
    }
    const float fs = static_cast<float>(smax);
    a.d16 = f16AtLeast(tMax / fs);
    const float d = f16ToF32(a.d16);
    for (int i = 0; i < 16; ++i) {
        const int mag =
            d > 0.0f ? static_cast<int>(std::min(fs, std::ceil(std::fabs(t[i]) / d))) : 0;
        a.s[i] = t[i] < 0.0f ? -mag : mag;
        a.step[i] = d * static_cast<float>(a.s[i]);
    }
    return a;
}

// Q3_K. Bound: |x - deq| <= |D|/2 per sub-block of 16 (D = d * (s - 32)); over the super-block
// |D| <= (32/31) A / 3.5, so |x - deq| <= 0.148 A (A = max |x|), up to the f16 rounding of d.
void quantQ3_K(const float* x, uint8_t* block, int64_t nb) {
    for (int64_t b = 0; b < nb; ++b, x += QKK, block += 110) {
        const SymScales a = symScales(x, 4, 3, 31);
        uint8_t* hmask = block;
        uint8_t* qs = block + 32;
        uint8_t* scales = block + 96;
        std::memset(block, 0, 108);
        for (int k = 0; k < 16; ++k) {
            const int u = a.s[k] + 32;
            scales[k % 8] |= static_cast<uint8_t>((u & 0xF) << (4 * (k / 8)));
            scales[8 + k % 4] |= static_cast<uint8_t>((u >> 4) << (2 * (k / 4)));
        }
        for (int e = 0; e < QKK; ++e) {
            const int u = quantOne(x[e], a.step[e / 16], -4, 3) + 4;  // 0..7
            qs[32 * (e / 128) + e % 32] |= static_cast<uint8_t>((u & 3) << (2 * ((e / 32) % 4)));
            hmask[e % 32] |= static_cast<uint8_t>((u >> 2) << (e / 32));
        }
        storeHalf(block + 108, a.d16);
    }
}

// Q6_K. Bound: |x - deq| <= |D|/2 per sub-block of 16 (D = d * scale); over the super-block
// |D| <= (128/127) A / 31.5, so |x - deq| <= 0.0161 A (A = max |x|), up to the f16 rounding of d.
void quantQ6_K(const float* x, uint8_t* block, int64_t nb) {
    for (int64_t b = 0; b < nb; ++b, x += QKK, block += 210) {
        const SymScales a = symScales(x, 32, 31, 127);
        std::memset(block, 0, 192);
        uint8_t* ql = block;
        uint8_t* qh = block + 128;
        for (int i = 0; i < 16; ++i)
            block[192 + i] = static_cast<uint8_t>(static_cast<int8_t>(a.s[i]));
        for (int e = 0; e < QKK; ++e) {
            const int u = quantOne(x[e], a.step[e / 16], -32, 31) + 32;  // 0..63
            const int n = e / 128, r = e % 128, l = r % 32, k = r / 32;
            ql[64 * n + 32 * (k & 1) + l] |= static_cast<uint8_t>((u & 0xF) << (k < 2 ? 0 : 4));
            qh[32 * n + l] |= static_cast<uint8_t>((u >> 4) << (2 * k));
        }
        storeHalf(block + 208, a.d16);
    }
}

[[noreturn]] void refuse(const char* what, TensorType t) {
    throw Error(std::string(what) + ": type " + typeName(t) + " is not supported");
}

}  // namespace

std::optional<BlockLayout> blockLayout(TensorType t) {
    // The file format's table (gguf_detail) also sizes ggml's activation types Q8_1 and Q8_K,
    // which no weight has.
    if (t == TensorType::Q8_1 || t == TensorType::Q8_K) return std::nullopt;
    const std::optional<gguf_detail::BlockLayout> b = gguf_detail::blockLayout(t);
    if (!b) return std::nullopt;
    return BlockLayout{static_cast<int>(b->elements), static_cast<int>(b->bytes)};
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
        case TensorType::Q4_0:
            return quantQ45_0(src, dst, n / QK, 4);
        case TensorType::Q5_0:
            return quantQ45_0(src, dst, n / QK, 5);
        case TensorType::Q4_1:
            return quantQ45_1(src, dst, n / QK, 4);
        case TensorType::Q5_1:
            return quantQ45_1(src, dst, n / QK, 5);
        case TensorType::Q2_K:
            return quantQ2_K(src, dst, n / QKK);
        case TensorType::Q3_K:
            return quantQ3_K(src, dst, n / QKK);
        case TensorType::Q4_K:
            return quantQ45_K(src, dst, n / QKK, 4);
        case TensorType::Q5_K:
            return quantQ45_K(src, dst, n / QKK, 5);
        case TensorType::Q6_K:
            return quantQ6_K(src, dst, n / QKK);
        default:
            break;
    }
    refuse("quantizeRow", t);
}

}  // namespace kvscope
