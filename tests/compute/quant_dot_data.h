// Weight rows and x vectors for tst_quant_dot and bench_quant_dot: rows in each type from
// quantizeRow of random floats, from random bytes, or with extreme scales, and the float64
// reference dot products through dequantizeRow.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/quant_dot.h"
#include "gguf/dequant.h"
#include "gguf/gguf.h"

namespace kvscope::qdot_testing {

inline const std::vector<TensorType>& allTypes() {
    static const std::vector<TensorType> types = {
        TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0,
        TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q2_K, TensorType::Q3_K,
        TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};
    return types;
}

// Byte offsets of the f16 scale fields in one block of t (d, and dmin/m where the type has one).
inline std::vector<int> scaleOffsets(TensorType t) {
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

inline bool isBlockType(TensorType t) {
    return blockLayout(t)->elems > 1;
}

enum class Source {
    Quantized,  // quantizeRow of Gaussian floats
    Bytes,      // random bytes, f16 scale fields made finite (F16/BF16: every value finite)
    Extreme,    // random quants, scales from {±65504, ±1, ±2^-24, 0}, some blocks all zero
};

inline void put16(uint8_t* p, uint16_t v) {
    std::memcpy(p, &v, 2);
}
inline uint16_t get16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

// `rows` rows of n values of type t, `rowBytes` apart (rowBytes >= the row's size).
inline std::vector<uint8_t> makeRows(TensorType t, int rows, int64_t n, size_t rowBytes, Source src,
                                     std::mt19937& rng) {
    const BlockLayout lay = *blockLayout(t);
    const size_t blocks = static_cast<size_t>(n / lay.elems);
    std::vector<uint8_t> w(rowBytes * static_cast<size_t>(rows), 0xA5);  // padding: garbage
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int r = 0; r < rows; ++r) {
        uint8_t* row = w.data() + rowBytes * static_cast<size_t>(r);
        if (src == Source::Quantized) {
            std::vector<float> v(static_cast<size_t>(n));
            const float scale = std::exp(gauss(rng));  // rows of different magnitudes
            const float shift = 0.3f * gauss(rng);     // and means (the mins matter)
            for (auto& f : v) f = scale * (gauss(rng) + shift);
            quantizeRow(t, v.data(), row, n);
            continue;
        }
        for (size_t i = 0; i < blocks * static_cast<size_t>(lay.bytes); ++i) {
            row[i] = static_cast<uint8_t>(byte(rng));
        }
        if (t == TensorType::F32) {
            for (int64_t i = 0; i < n; ++i) {
                const float f = src == Source::Extreme ? 1e30f * gauss(rng) : gauss(rng);
                std::memcpy(row + 4 * i, &f, 4);
            }
            continue;
        }
        if (t == TensorType::F16) {
            for (int64_t i = 0; i < n; ++i) {
                uint16_t v = get16(row + 2 * i);
                if ((v & 0x7C00u) == 0x7C00u) v &= 0xBFFFu;  // inf/NaN -> finite
                if (src == Source::Extreme && (v & 1u)) v = (v & 0x8000u) | 0x7BFFu;
                put16(row + 2 * i, v);
            }
            continue;
        }
        if (t == TensorType::BF16) {
            for (int64_t i = 0; i < n; ++i) {
                uint16_t v = get16(row + 2 * i);
                const int e = src == Source::Extreme ? 60 + (v >> 7) % 130 : 107 + (v >> 7) % 40;
                v = static_cast<uint16_t>((v & 0x807Fu) | (e << 7));
                put16(row + 2 * i, v);
            }
            continue;
        }
        static const uint16_t kExtreme[] = {0x7BFF, 0xFBFF, 0x3C00, 0xBC00, 0x0001, 0x8001, 0x0000};
        for (size_t b = 0; b < blocks; ++b) {
            uint8_t* blk = row + b * static_cast<size_t>(lay.bytes);
            if (src == Source::Extreme && byte(rng) < 32) {
                std::memset(blk, 0, static_cast<size_t>(lay.bytes));  // a zero block
                continue;
            }
            for (int off : scaleOffsets(t)) {
                uint16_t v = get16(blk + off);
                if (src == Source::Extreme) {
                    v = kExtreme[byte(rng) % 7];
                } else if ((v & 0x7C00u) == 0x7C00u) {
                    v &= 0xBFFFu;
                }
                put16(blk + off, v);
            }
        }
    }
    return w;
}

inline std::vector<float> makeX(int64_t n, float scale, std::mt19937& rng) {
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = scale * gauss(rng);
    return x;
}

// x that the SIMD kernels' 8-bit quantization keeps exactly, per 32 values (Q8_0-style x) and
// per 256 (the K-quants' q8_K x): per 256 values one power of two times integers in
// [-127, 127], with a ±127 in every 32.
inline std::vector<float> makeExactX(int64_t n, std::mt19937& rng) {
    std::uniform_int_distribution<int> k(-127, 127), e(-6, 3);
    std::vector<float> x(static_cast<size_t>(n));
    float s = 1.0f;
    for (int64_t b = 0; b < n; b += 32) {
        if (b % 256 == 0) s = std::ldexp(1.0f, e(rng));
        for (int64_t i = b; i < std::min<int64_t>(n, b + 32); ++i) {
            x[static_cast<size_t>(i)] = s * static_cast<float>(k(rng));
        }
        x[static_cast<size_t>(b + k(rng) % 2 + 1)] = (k(rng) < 0 ? -127.0f : 127.0f) * s;
    }
    return x;
}

struct Reference {
    double dot = 0;     // Σ w_i x_i in float64 over dequantizeRow's w
    double absDot = 0;  // Σ |w_i x_i|
    // The SIMD kernels' 8-bit x error bound: for 32-value block types
    // Σ_32-blocks max|x|·(1/254 + 1/2048)·Σ|w_i| (half a step of d = max|x|/127, plus 127 steps of
    // d's rounding to f16, at most 2^-11·d); for the K-quants (q8_K: a float32 d per 256 values)
    // Σ_256-blocks max|x|·(1/254 + 2^-20)·Σ|w_i|.
    double xBound = 0;
};

inline std::vector<Reference> reference(TensorType t, const uint8_t* w, size_t rowBytes, int rows,
                                        const float* x, int64_t n) {
    std::vector<Reference> out(static_cast<size_t>(rows));
    std::vector<float> deq(static_cast<size_t>(n));
    for (int r = 0; r < rows; ++r) {
        dequantizeRow(t, w + rowBytes * static_cast<size_t>(r), deq.data(), n);
        Reference& ref = out[static_cast<size_t>(r)];
        const bool k = blockLayout(t) && blockLayout(t)->elems == 256;
        const int64_t xBlock = k ? 256 : 32;
        const double slack = k ? std::ldexp(1.0, -20) : 1.0 / 2048.0;
        for (int64_t b = 0; b < n; b += xBlock) {
            double amax = 0, wabs = 0;
            for (int64_t i = b; i < std::min<int64_t>(n, b + xBlock); ++i) {
                const double wi = deq[static_cast<size_t>(i)], xi = x[i];
                ref.dot += wi * xi;
                ref.absDot += std::fabs(wi * xi);
                amax = std::max(amax, std::fabs(xi));
                wabs += std::fabs(wi);
            }
            ref.xBound += amax * (1.0 / 254.0 + slack) * wabs;
        }
    }
    return out;
}

// How far gemv on `isa` may be from the float64 reference: float32 rounding (relative to Σ|w·x|)
// plus, for block types on the SIMD paths, the 8-bit x quantization bound.
inline double tolerance(TensorType t, qdot::Isa isa, const Reference& ref) {
    const bool quantX = isa != qdot::Isa::Scalar && isBlockType(t);
    const double q = quantX ? ref.xBound : 0.0;
    return 2e-5 * (ref.absDot + q) + 1.001 * q + 1e-30;
}

}  // namespace kvscope::qdot_testing
