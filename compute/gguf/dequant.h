// Conversions between the tensor types a GGUF file may hold and float32.
// Supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, with the
// block layouts of ggml (ggml-common.h). The block codecs live in gguf/quant_blocks.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

namespace kvscope {

float f16ToF32(uint16_t h);
uint16_t f32ToF16(float f);  // round to nearest even
float bf16ToF32(uint16_t b);
uint16_t f32ToBf16(float f);  // round to nearest even

// One block of a tensor type: `elems` values stored in `bytes` bytes. F32 {1,4}, F16 {1,2},
// BF16 {1,2}, Q8_0 {32,34}, Q4_0 {32,18}, Q4_1 {32,20}, Q5_0 {32,22}, Q5_1 {32,24},
// Q2_K {256,84}, Q3_K {256,110}, Q4_K {256,144}, Q5_K {256,176}, Q6_K {256,210}.
struct BlockLayout {
    int elems;
    int bytes;
};

// The block layout of t, or nullopt for a type KVScope cannot read (Q8_1, Q8_K, the IQ types,
// unknown numbers).
std::optional<BlockLayout> blockLayout(TensorType t);

// True for the types whose weights KVScope keeps natively: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
// Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (exactly those with a blockLayout).
bool isSupportedWeightType(TensorType t);

// Dequantizes n elements (n a whole number of blocks of t; the caller guarantees that src holds
// tensorBytes(t, n) bytes and dst n floats) to float32, bit layouts as ggml's dequantize_row_*.
// The scalar reference every fast kernel is tested against. Throws Error for a type without a
// blockLayout.
void dequantizeRow(TensorType t, const uint8_t* src, float* dst, int64_t n);

// Quantizes n floats (a whole number of blocks) into dst (tensorBytes(t, n) bytes). Scales come
// from each block's min/max (no search); every value is rounded with the scales as stored, so
// for finite inputs whose scales are normal f16 numbers (up to their rounding, < 2^-10; the
// per-step bounds D/2 hold for subnormal scales too):
//   F16/BF16: round to nearest even.
//   Q8_0, Q4_0, Q5_0: |x - deq| <= |d|/2 <= A/254, A/15, A/31 (A = max |x| of the block).
//   Q4_1, Q5_1: |x - deq| <= d/2 <= (max x - min x)/31, /63 (+ float rounding of q*d + m).
//   K-quants: |x - deq| <= |D|/2 with D the stored sub-block step (d*sc, d*(s - 32) for Q3_K,
//   d*scale for Q6_K), which the quantized scales make coarser than the ideal step; over a
//   super-block: Q2_K 0.163 R, Q3_K 0.148 A, Q4_K 0.0333 R, Q5_K 0.0164 R, Q6_K 0.0161 A
//   (R = max(0, max x) - min(0, min x), A = max |x| over the 256 values).
// Details at each encoder in gguf/quant_blocks.cpp. Throws Error for a type without a
// blockLayout.
void quantizeRow(TensorType t, const float* src, uint8_t* dst, int64_t n);

// Converts `count` elements stored as `type` in `data` to float32.
// Throws Error naming `tensorName` and the type if the type is not one of the supported
// (isSupportedWeightType), or if data is too short for count or count is not whole blocks.
std::vector<float> toFloat(TensorType type, std::span<const uint8_t> data, uint64_t count,
                           std::string_view tensorName);

// Encodes float32 values as `type` (any supported type; values.size() must be a whole number of
// blocks) with quantizeRow.
// Q8_0: per block d = max|x| / 127 stored as f16 (one f16 step up where rounding made it too
// small to reach max|x|), q = round(x / d) with the stored d, so |x - d*q| <= d/2; q is clamped
// to [-127, 127]. Other types throw Error. Used by tests and by the trainer's writer.
std::vector<uint8_t> fromFloat(TensorType type, std::span<const float> values);

}  // namespace kvscope
