// Dispatch, the scalar kernels, and the quantization of x for the SIMD kernels.
#include "cpu/quant_dot.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "core/error.h"
#include "cpu/quant_dot_impl.h"
#include "gguf/dequant.h"

namespace kvscope::qdot {

namespace {

using detail::Kind;

struct TypeInfo {
    Kind kind;
    int elems;  // values per block
    int bytes;  // bytes per block
};

std::optional<TypeInfo> info(TensorType t) {
    switch (t) {
        case TensorType::F32:
            return TypeInfo{Kind::F32, 1, 4};
        case TensorType::F16:
            return TypeInfo{Kind::F16, 1, 2};
        case TensorType::BF16:
            return TypeInfo{Kind::BF16, 1, 2};
        case TensorType::Q8_0:
            return TypeInfo{Kind::Q8_0, 32, 34};
        case TensorType::Q4_0:
            return TypeInfo{Kind::Q4_0, 32, 18};
        case TensorType::Q4_1:
            return TypeInfo{Kind::Q4_1, 32, 20};
        case TensorType::Q5_0:
            return TypeInfo{Kind::Q5_0, 32, 22};
        case TensorType::Q5_1:
            return TypeInfo{Kind::Q5_1, 32, 24};
        case TensorType::Q2_K:
            return TypeInfo{Kind::Q2_K, 256, 84};
        case TensorType::Q3_K:
            return TypeInfo{Kind::Q3_K, 256, 110};
        case TensorType::Q4_K:
            return TypeInfo{Kind::Q4_K, 256, 144};
        case TensorType::Q5_K:
            return TypeInfo{Kind::Q5_K, 256, 176};
        case TensorType::Q6_K:
            return TypeInfo{Kind::Q6_K, 256, 210};
        default:
            return std::nullopt;
    }
}

uint16_t load16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

float h(const uint8_t* p) {
    return f16ToF32(load16(p));
}

// The 8 six-bit scales and 8 six-bit mins of a Q4_K/Q5_K block (12 bytes).
void scaleMinK4(const uint8_t* s, uint8_t* sc, uint8_t* m) {
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            sc[j] = s[j] & 63;
            m[j] = s[j + 4] & 63;
        } else {
            sc[j] = static_cast<uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
            m[j] = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
        }
    }
}

// One block of `kind` to float (the scalar path's own decoding; the tests hold it to
// dequantizeRow). `y` receives elems values.
void decodeBlock(Kind kind, const uint8_t* b, float* y) {
    switch (kind) {
        case Kind::Q8_0: {
            const float d = h(b);
            for (int i = 0; i < 32; ++i)
                y[i] = d * static_cast<float>(static_cast<int8_t>(b[2 + i]));
            break;
        }
        case Kind::Q4_0:
        case Kind::Q4_1: {
            const bool min = kind == Kind::Q4_1;
            const float d = h(b);
            const float m = min ? h(b + 2) : -8.0f * d;
            const uint8_t* qs = b + (min ? 4 : 2);
            for (int i = 0; i < 16; ++i) {
                y[i] = d * static_cast<float>(qs[i] & 0xF) + m;
                y[i + 16] = d * static_cast<float>(qs[i] >> 4) + m;
            }
            break;
        }
        case Kind::Q5_0:
        case Kind::Q5_1: {
            const bool min = kind == Kind::Q5_1;
            const float d = h(b);
            const float m = min ? h(b + 2) : -16.0f * d;
            uint32_t qh;
            std::memcpy(&qh, b + (min ? 4 : 2), 4);
            const uint8_t* qs = b + (min ? 8 : 6);
            for (int i = 0; i < 16; ++i) {
                const int lo = (qs[i] & 0xF) | static_cast<int>(((qh >> i) & 1u) << 4);
                const int hi = (qs[i] >> 4) | static_cast<int>(((qh >> (i + 16)) & 1u) << 4);
                y[i] = d * static_cast<float>(lo) + m;
                y[i + 16] = d * static_cast<float>(hi) + m;
            }
            break;
        }
        case Kind::Q2_K: {
            // Group k = 4h + j of 32 values: bits 2j of qs[32h ..]; scales per 16 values.
            const uint8_t* sc = b;
            const uint8_t* qs = b + 16;
            const float d = h(b + 80), dmin = h(b + 82);
            for (int k = 0; k < 8; ++k) {
                const uint8_t* q = qs + 32 * (k / 4);
                const int shift = 2 * (k % 4);
                for (int half = 0; half < 2; ++half) {
                    const uint8_t s = sc[2 * k + half];
                    const float dl = d * static_cast<float>(s & 0xF);
                    const float ml = dmin * static_cast<float>(s >> 4);
                    for (int l = 16 * half; l < 16 * half + 16; ++l) {
                        y[32 * k + l] = dl * static_cast<float>((q[l] >> shift) & 3) - ml;
                    }
                }
            }
            break;
        }
        case Kind::Q3_K: {
            // Group k = 4h + j: bits 2j of qs[32h ..], bit k of hmask; scales per 16 values.
            const uint8_t* hm = b;
            const uint8_t* qs = b + 32;
            const uint8_t* s = b + 96;
            const float d = h(b + 108);
            float dl[16];
            for (int g = 0; g < 16; ++g) {
                // Low 4 bits: bytes 0..7 (groups 0..7 low nibbles, 8..15 high nibbles);
                // high 2 bits: bytes 8..11, two bits per group.
                const int lo = g < 8 ? (s[g] & 0xF) : (s[g - 8] >> 4);
                const int hi = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
                dl[g] = d * static_cast<float>((lo | (hi << 4)) - 32);
            }
            for (int k = 0; k < 8; ++k) {
                const uint8_t* q = qs + 32 * (k / 4);
                const int shift = 2 * (k % 4);
                for (int half = 0; half < 2; ++half) {
                    const float scale = dl[2 * k + half];
                    for (int l = 16 * half; l < 16 * half + 16; ++l) {
                        const int v = ((q[l] >> shift) & 3) | (((hm[l] >> k) & 1) << 2);
                        y[32 * k + l] = scale * static_cast<float>(v - 4);
                    }
                }
            }
            break;
        }
        case Kind::Q4_K:
        case Kind::Q5_K: {
            // Group k: the low (k even) or high nibbles of qs[32·(k/2) ..], for Q5_K bit k of qh.
            const bool five = kind == Kind::Q5_K;
            const float d = h(b), dmin = h(b + 2);
            uint8_t sc[8], m[8];
            scaleMinK4(b + 4, sc, m);
            const uint8_t* qh = b + 16;
            const uint8_t* qs = b + (five ? 48 : 16);
            for (int k = 0; k < 8; ++k) {
                const float dl = d * static_cast<float>(sc[k]);
                const float ml = dmin * static_cast<float>(m[k]);
                const uint8_t* q = qs + 32 * (k / 2);
                const int shift = 4 * (k % 2);
                for (int l = 0; l < 32; ++l) {
                    int v = (q[l] >> shift) & 0xF;
                    if (five) v |= ((qh[l] >> k) & 1) << 4;
                    y[32 * k + l] = dl * static_cast<float>(v) - ml;
                }
            }
            break;
        }
        case Kind::Q6_K: {
            // In half h, group 4h + k: the low (k < 2) or high nibbles of ql[64h + 32·(k%2) ..]
            // with bits 2k of qh[32h ..] as bits 4-5; scales per 16 values.
            const uint8_t* ql = b;
            const uint8_t* qh = b + 128;
            const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
            const float d = h(b + 208);
            for (int g = 0; g < 8; ++g) {
                const int half = g / 4, k = g % 4;
                const uint8_t* lo = ql + 64 * half + 32 * (k % 2);
                const uint8_t* hi = qh + 32 * half;
                const int shift = 4 * (k / 2);
                for (int part = 0; part < 2; ++part) {
                    const float scale = d * static_cast<float>(sc[2 * g + part]);
                    for (int l = 16 * part; l < 16 * part + 16; ++l) {
                        const int v = ((lo[l] >> shift) & 0xF) | (((hi[l] >> (2 * k)) & 3) << 4);
                        y[32 * g + l] = scale * static_cast<float>(v - 32);
                    }
                }
            }
            break;
        }
        default:
            break;
    }
}

float dotScalar(const float* a, const float* b, int64_t n) {
    float acc[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

void gemvScalar(const TypeInfo& ti, const uint8_t* w, size_t rowBytes, int rows, const float* x,
                int64_t n, float* out) {
    float buf[256];
    for (int r = 0; r < rows; ++r) {
        const uint8_t* row = w + static_cast<size_t>(r) * rowBytes;
        float sum = 0.0f;
        if (ti.kind == Kind::F32) {
            for (int64_t i = 0; i < n; i += 256) {
                const int64_t m = std::min<int64_t>(256, n - i);
                std::memcpy(buf, row + 4 * i, static_cast<size_t>(m) * 4);
                sum += dotScalar(buf, x + i, m);
            }
        } else if (ti.kind == Kind::F16 || ti.kind == Kind::BF16) {
            const bool half = ti.kind == Kind::F16;
            for (int64_t i = 0; i < n; i += 256) {
                const int64_t m = std::min<int64_t>(256, n - i);
                for (int64_t k = 0; k < m; ++k) {
                    const uint16_t v = load16(row + 2 * (i + k));
                    buf[k] = half ? f16ToF32(v) : bf16ToF32(v);
                }
                sum += dotScalar(buf, x + i, m);
            }
        } else {
            const int64_t blocks = n / ti.elems;
            for (int64_t b = 0; b < blocks; ++b) {
                decodeBlock(ti.kind, row + b * ti.bytes, buf);
                sum += dotScalar(buf, x + b * ti.elems, ti.elems);
            }
        }
        out[r] = sum;
    }
}

// x to 8 bits per 32 values (see detail::QuantX), as llama.cpp's quantize_row_q8_0 does it:
// d = max|x| / 127, q = round(x · (1/d)) in [-127, 127], and d kept as f16 (as Q8_0 blocks store
// it), so that a Q8_0 matrix times x gives llama.cpp's very numbers. |x − d·q| ≤ d/2 + 127·|d −
// f16(d)| ≤ max|x| · (1/254 + 1/2048).
void quantizeX(const float* x, int64_t n, int8_t* q, float* d, float* s16, float* s32) {
    for (int64_t b = 0; b < n / 32; ++b) {
        const float* xb = x + 32 * b;
        float amax = 0.0f;
        bool finite = true;
        for (int i = 0; i < 32; ++i) {
            amax = std::max(amax, std::fabs(xb[i]));
            finite = finite && std::isfinite(xb[i]);
        }
        // A NaN or infinity in x makes the block's scale NaN, so that it reaches the output
        // (as it does on the scalar path) instead of vanishing in the rounding to 8 bits.
        const float d32 = finite ? amax / 127.0f : std::numeric_limits<float>::quiet_NaN();
        const float id = finite && d32 > 0.0f ? 1.0f / d32 : 0.0f;
        const float db = finite ? f16ToF32(f32ToF16(d32)) : d32;
        int sums[2] = {0, 0};
        for (int i = 0; i < 32; ++i) {
            // round half away from zero, as llama.cpp's roundf (no library call per value);
            // clamped as a float first: a block of subnormals makes id infinite (x·id is then
            // ±inf, or NaN for a zero), and a float past int's range must not reach the cast
            float t = xb[i] * id;
            t = t > 127.0f ? 127.0f : t < -127.0f ? -127.0f : t;
            if (t != t) t = 0.0f;  // NaN
            const int c = static_cast<int>(t + (t >= 0.0f ? 0.5f : -0.5f));
            q[32 * b + i] = static_cast<int8_t>(c);
            sums[i / 16] += c;
        }
        d[b] = db;
        s16[2 * b] = db * static_cast<float>(sums[0]);
        s16[2 * b + 1] = db * static_cast<float>(sums[1]);
        s32[b] = db * static_cast<float>(sums[0] + sums[1]);
    }
}

// The K-quants' x, as llama.cpp's quantize_row_q8_K_ref: per 256 values one float32 scale
// d = -max/127, where max is the value of largest magnitude (its sign kept, so d may be
// negative), and q = min(127, round-half-even(x / d)). Written per 32 values like quantizeX
// (each of a 256-block's eight entries of d is the same) so the kernels read it the same way.
void quantizeXK(const float* x, int64_t n, int8_t* q, float* d, float* s16, float* s32) {
    for (int64_t b = 0; b < n / 256; ++b) {
        const float* xb = x + 256 * b;
        float amax = 0.0f, max = 0.0f;
        bool finite = true;
        for (int i = 0; i < 256; ++i) {
            const float ax = std::fabs(xb[i]);
            if (ax > amax) {
                amax = ax;
                max = xb[i];
            }
            finite = finite && std::isfinite(xb[i]);
        }
        float db = 0.0f, iscale = 0.0f;
        if (!finite) {
            db = std::numeric_limits<float>::quiet_NaN();  // reaches the output, as in quantizeX
        } else if (amax > 0.0f) {
            iscale = -127.0f / max;
            db = 1.0f / iscale;
            if (!std::isfinite(iscale)) iscale = 0.0f;  // subnormal x: q rounds to 0 below
        }
        int sums[16] = {};
        for (int i = 0; i < 256; ++i) {
            float t = xb[i] * iscale;
            t = t > 127.0f ? 127.0f : t < -127.0f ? -127.0f : t;
            if (t != t) t = 0.0f;  // NaN
            // round to nearest, ties to even: 1.5·2^23 added leaves the integer in the mantissa
            const float biased = t + 12582912.0f;
            int32_t bits;
            std::memcpy(&bits, &biased, sizeof bits);
            const int c = std::min(127, (bits & 0x007fffff) - 0x00400000);
            q[256 * b + i] = static_cast<int8_t>(c);
            sums[i / 16] += c;
        }
        for (int k = 0; k < 8; ++k) {
            d[8 * b + k] = db;
            s16[16 * b + 2 * k] = db * static_cast<float>(sums[2 * k]);
            s16[16 * b + 2 * k + 1] = db * static_cast<float>(sums[2 * k + 1]);
            s32[8 * b + k] = db * static_cast<float>(sums[2 * k] + sums[2 * k + 1]);
        }
    }
}

// x to 8 bits for gemv: per 256 values for the K-quants (quantizeXK), else per 32 (quantizeX),
// on `isa`'s vector registers (the same numbers) or the plain loop.
void quantizeXFor(bool kQuants, const float* x, int64_t n, Isa isa, int8_t* q, float* d, float* s16,
                  float* s32) {
    const detail::QuantizeBlocks plain = kQuants ? quantizeXK : quantizeX;
#if defined(__x86_64__)
    if (isa == Isa::Avx512)
        return (kQuants ? detail::quantizeXKAvx512 : detail::quantizeXAvx512)(x, n, q, d, s16, s32,
                                                                              plain);
    if (isa == Isa::Avx2)
        return (kQuants ? detail::quantizeXKAvx2 : detail::quantizeXAvx2)(x, n, q, d, s16, s32,
                                                                          plain);
#endif
    plain(x, n, q, d, s16, s32);
}

Isa detect() {
#if !defined(__x86_64__)
    return Isa::Scalar;
#else
    __builtin_cpu_init();
    // F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports has no "f16c".
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    if (!avx2) return Isa::Scalar;
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    return avx512 ? Isa::Avx512 : Isa::Avx2;
#endif
}

}  // namespace

Isa bestIsa() {
    static const Isa best = detect();
    return best;
}

std::string isaName(Isa isa) {
    switch (isa) {
        case Isa::Scalar:
            return "scalar";
        case Isa::Avx2:
            return "avx2+fma+f16c";
        case Isa::Avx512:
            return "avx512";
    }
    return "unknown";
}

bool isaSupported(Isa isa) {
    return static_cast<int>(isa) <= static_cast<int>(bestIsa());
}

bool gemvSupports(TensorType type) {
    return info(type).has_value();
}

void PreparedX::prepare(TensorType type, const float* x, int64_t n, Isa isa) {
    const auto ti = info(type);
    if (!ti) throw Error("qdot::gemv: no kernel for type " + typeName(type));
    if (n < 0 || n % ti->elems != 0) {
        throw Error("qdot::gemv: " + typeName(type) + " rows of " + std::to_string(n) +
                    " values are not whole blocks of " + std::to_string(ti->elems));
    }
    if (!isaSupported(isa)) throw Error("qdot::gemv: this CPU cannot run " + isaName(isa));
    type_ = type;
    isa_ = isa;
    x_ = x;
    n_ = n;
    if (isa != Isa::Scalar && ti->elems > 1) {
        const auto un = static_cast<size_t>(n);
        if (q_.size() < un) {
            q_.resize(un);
            d_.resize(un / 32);
            s16_.resize(un / 16);
            s32_.resize(un / 32);
        }
        // the K-quants: llama.cpp's q8_K
        quantizeXFor(ti->elems == 256, x, n, isa, q_.data(), d_.data(), s16_.data(), s32_.data());
    }
}

void gemv(const PreparedX& x, const uint8_t* w, size_t rowBytes, int rows, float* out) {
    const auto ti = info(x.type_);
    KVSCOPE_CHECK(ti && x.x_, "qdot::gemv: x was not prepared");
    const int64_t n = x.n_;
    if (rowBytes < static_cast<size_t>(n / ti->elems * ti->bytes)) {
        throw Error("qdot::gemv: rows " + std::to_string(rowBytes) +
                    " bytes apart are shorter than a " + typeName(x.type_) + " row of " +
                    std::to_string(n) + " values");
    }
    if (rows <= 0) return;
    if (x.isa_ == Isa::Scalar) {
        gemvScalar(*ti, w, rowBytes, rows, x.x_, n, out);
        return;
    }
    detail::Args a{ti->kind, w, rowBytes, rows, x.x_, {}, n, out};
    if (ti->elems > 1) a.xq = {x.q_.data(), x.d_.data(), x.s16_.data(), x.s32_.data()};
#if defined(__x86_64__)
    if (x.isa_ == Isa::Avx512) {
        detail::gemvAvx512(a);
    } else {
        detail::gemvAvx2(a);
    }
#endif
}

void gemv(TensorType type, const uint8_t* w, size_t rowBytes, int rows, const float* x, int64_t n,
          float* out, Isa isa) {
    thread_local PreparedX prepared;
    prepared.prepare(type, x, n, isa);
    gemv(prepared, w, rowBytes, rows, out);
}

detail::QuantizedX detail::quantizeXForTesting(const float* x, int64_t n, Isa isa, bool kQuants) {
    KVSCOPE_CHECK(n % (kQuants ? 256 : 32) == 0 && isaSupported(isa),
                  "quantizeXForTesting: bad n or isa");
    const auto un = static_cast<size_t>(n);
    QuantizedX r{std::vector<int8_t>(un), std::vector<float>(un / 32), std::vector<float>(un / 16),
                 std::vector<float>(un / 32)};
    quantizeXFor(kQuants, x, n, isa, r.q.data(), r.d.data(), r.s16.data(), r.s32.data());
    return r;
}

void detail::gemvDequantFma(TensorType type, const uint8_t* w, size_t rowBytes, int rows,
                            const float* x, int64_t n, float* out, Isa isa) {
    const auto ti = info(type);
    const bool ok =
        (type == TensorType::Q8_0 || type == TensorType::Q4_0 || type == TensorType::Q4_K) &&
        isa != Isa::Scalar && isaSupported(isa) && n % ti->elems == 0 &&
        rowBytes >= static_cast<size_t>(n / ti->elems * ti->bytes);
    if (!ok)
        throw Error("qdot::detail::gemvDequantFma: not for " + typeName(type) + " on " +
                    isaName(isa));
    std::vector<float> sums(static_cast<size_t>(n / 32));
    for (size_t k = 0; k < sums.size(); ++k) {
        float s = 0.0f;
        for (int i = 0; i < 32; ++i) s += x[32 * k + i];
        sums[k] = s;
    }
    detail::Args a{ti->kind, w, rowBytes, rows, x, {}, n, out};
    a.dequantFma = true;
    a.xSum32 = sums.data();
#if defined(__x86_64__)
    if (isa == Isa::Avx512) {
        detail::gemvAvx512(a);
    } else {
        detail::gemvAvx2(a);
    }
#endif
}

}  // namespace kvscope::qdot
