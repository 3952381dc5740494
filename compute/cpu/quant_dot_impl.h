// Internal to compute/cpu/quant_dot*.cpp: what the dispatcher hands the per-ISA kernels.
// Deliberately free of standard-library headers: the per-ISA files are compiled with -mavx2 /
// -mavx512f, and an inline library function instantiated there could be the copy the linker keeps
// for the whole program (and then run on a CPU without those instructions).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvscope::qdot::detail {

enum class Kind { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K };

// x quantized to 8 bits per 32 values: x̂[i] = d[i/32] · q[i], d = max|x|/127 over the block.
// s16[k] = d · Σ q over the 16 values k*16 .. k*16+15 and s32[k] = d · Σ q over the 32 values of
// block k: the block sums the min/offset terms need.
struct QuantX {
    const int8_t* q;
    const float* d;
    const float* s16;
    const float* s32;
};

struct Args {
    Kind kind;
    const uint8_t* w;
    size_t rowBytes;
    int rows;
    const float* x;  // float x (F32, F16, BF16)
    QuantX xq;       // quantized x (block types)
    int64_t n;
    float* out;
    // Strategy (a) instead (Q8_0, Q4_0, Q4_K only; bench_quant_dot's comparison): weights to
    // float32 in registers, FMA with the float x; xSum32[k] = Σ x over block k (for Q4_K's mins).
    bool dequantFma = false;
    const float* xSum32 = nullptr;
};

void gemvAvx2(const Args& a);
void gemvAvx512(const Args& a);

// x to 8 bits per 32 values (QuantX), the same numbers as the plain quantizeX in quant_dot.cpp
// (bit for bit; tst_quant_dot checks it): 32 values at a time in vector registers. A block with a
// NaN or an infinity goes to `plain` (the plain routine, called for that block alone).
using QuantizeBlocks = void (*)(const float* x, int64_t n, int8_t* q, float* d, float* s16,
                                float* s32);
void quantizeXAvx2(const float* x, int64_t n, int8_t* q, float* d, float* s16, float* s32,
                   QuantizeBlocks plain);
void quantizeXAvx512(const float* x, int64_t n, int8_t* q, float* d, float* s16, float* s32,
                     QuantizeBlocks plain);
// The same for the K-quants' x (llama.cpp's q8_K: per 256 values, the plain quantizeXK's numbers).
void quantizeXKAvx2(const float* x, int64_t n, int8_t* q, float* d, float* s16, float* s32,
                    QuantizeBlocks plain);
void quantizeXKAvx512(const float* x, int64_t n, int8_t* q, float* d, float* s16, float* s32,
                      QuantizeBlocks plain);

}  // namespace kvscope::qdot::detail
