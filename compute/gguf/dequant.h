// Conversions between the tensor types a GGUF file may hold and float32.
// Supported: F32, F16, BF16, Q8_0 (blocks of 32 int8 with one f16 scale: 34 bytes a block).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

namespace kvscope {

float f16ToF32(uint16_t h);
uint16_t f32ToF16(float f);  // round to nearest even
float bf16ToF32(uint16_t b);
uint16_t f32ToBf16(float f);  // round to nearest even

// Converts `count` elements stored as `type` in `data` to float32.
// Throws Error naming `tensorName` and the type if the type is not one of the supported four,
// or if data is too short for count.
std::vector<float> toFloat(TensorType type, std::span<const uint8_t> data, uint64_t count,
                           std::string_view tensorName);

// Encodes float32 values as `type` (F32, F16, BF16 or Q8_0; Q8_0 needs count % 32 == 0).
// Q8_0: per block d = max|x| / 127 stored as f16 (one f16 step up where rounding made it too
// small to reach max|x|), q = round(x / d) with the stored d, so |x - d*q| <= d/2; q is clamped
// to [-127, 127]. Other types throw Error. Used by tests and by the trainer's writer.
std::vector<uint8_t> fromFloat(TensorType type, std::span<const float> values);

}  // namespace kvscope
