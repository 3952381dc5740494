// The types weight matrices are held in on an OpenCL device. The backend multiplies with its
// own kernels (resources/kernels/quant.cl) on F16, Q8_0, Q4_0, Q4_K and Q6_K weights as the
// GGUF file stores them (F32 stays F32, on the float paths, CLBlast included); every other type
// is converted once, at upload, to the nearest of those:
//   Q4_1, Q5_0, Q5_1 → Q8_0   (8.5 bits; the 32-value blocks as they were, one scale each)
//   Q2_K → Q4_K               (4.5 bits, the same 256-value super-blocks with scale and min)
//   Q3_K → Q6_K               (6.6 bits, symmetric as Q3_K)
//   Q5_K → Q8_0               (8.5 bits: requantizing to Q6_K would about double the error)
//   BF16 → F16                (exact for |x| in [2^-14, 65504], as weights are)
// A conversion dequantizes each row (dequantizeRow) and encodes it again (quantizeRow), so the
// device holds the converted rows' values exactly and its products are exact w.r.t. them. An
// F16 matrix whose rows are not whole 32-value units (the kernels' granule) goes up as F32.
// On CPU devices the block types' float16 scales are widened to float32 at upload ("wide
// scales"; OpenClOptions::wideScales): PoCL has no cl_khr_fp16 and converts each float16 in a
// library call, which cost about half of a Q8_0 block's time. The layouts are the stored ones
// with each scale 4 bytes in its place: Q8_0 36 B a block of 32, Q4_0 20 B, Q6_K 212 B a
// super-block of 256, and Q4_K 152 B (d, dmin, then its eight 6-bit scales and eight minimums
// unpacked to a byte each); the values are unchanged (float16 to float32 is exact).
// No OpenCL here: `kvscope info` and `devices` describe the rules without a device.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/weights.h"

namespace kvscope {
struct Model;
}

namespace kvscope::ocl {

// True for the types the device kernels read as stored: F32, F16, Q8_0, Q4_0, Q4_K, Q6_K.
bool hasDeviceKernel(TensorType t);

// The type rows of `t` with `cols` values each are held in on the device (see above).
TensorType deviceWeightType(TensorType t, int cols);
inline TensorType deviceWeightType(const WeightMatrix& w) {
    return deviceWeightType(w.type(), w.cols());
}

// True for the types that have a wide-scale layout: Q8_0, Q4_0, Q4_K, Q6_K.
bool hasWideScales(TensorType t);

// Bytes of a row of `cols` values of device type t, its scales wide where `wide` and t has a
// wide layout; nullopt when cols is not a whole number of t's blocks.
std::optional<uint64_t> deviceRowBytes(TensorType t, int cols, bool wide);

// Bytes of w as held on the device (its rows in deviceWeightType(w), scales wide if `wide`).
uint64_t deviceBytes(const WeightMatrix& w, bool wide = false);

// The rows of w encoded as `to` (rows contiguous): the stored bytes when to == w.type(), else
// each row dequantized and quantized again; then, where `wide`, each block's scales widened.
std::vector<uint8_t> convertRows(const WeightMatrix& w, TensorType to, bool wide = false);

// `rows` rows of type t (a type with hasWideScales) as stored, with every float16 scale
// widened to float32 in its place.
std::vector<uint8_t> widenScales(TensorType t, const uint8_t* rows, size_t bytes);

// "F32, F16, Q8_0, Q4_0, Q4_K, Q6_K native; converted at upload: Q4_1, Q5_0, Q5_1, Q5_K → Q8_0,
// Q2_K → Q4_K, Q3_K → Q6_K, BF16 → F16; on CPU devices the float16 scales of … widened …"
std::string deviceWeightRules();

// What happens to this model's matrices: "weights on the device: Q4_K, Q6_K native; Q5_K
// converted to Q8_0 at upload (… MiB as uploaded)"; with `wide`, "…; float16 scales widened to
// float32 (… MiB as uploaded)".
std::string deviceWeightNote(const Model& m, bool wide = false);

// The bytes of the model's weights as uploaded: matrices in their device types, vectors float32.
uint64_t deviceWeightBytes(const Model& m, bool wide = false);

}  // namespace kvscope::ocl
