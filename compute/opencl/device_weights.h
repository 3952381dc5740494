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
// No OpenCL here: `kvscope info` and `devices` describe the rules without a device.
#pragma once

#include <cstdint>
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

// Bytes of w as held on the device (its rows in deviceWeightType(w)).
uint64_t deviceBytes(const WeightMatrix& w);

// The rows of w encoded as `to` (rows contiguous): the stored bytes when to == w.type(), else
// each row dequantized and quantized again.
std::vector<uint8_t> convertRows(const WeightMatrix& w, TensorType to);

// "F32, F16, Q8_0, Q4_0, Q4_K, Q6_K native; converted at upload: Q4_1, Q5_0, Q5_1, Q5_K → Q8_0,
// Q2_K → Q4_K, Q3_K → Q6_K, BF16 → F16"
std::string deviceWeightRules();

// What happens to this model's matrices: "weights on the device: Q4_K, Q6_K native; Q5_K
// converted to Q8_0 at upload (… MiB as uploaded)".
std::string deviceWeightNote(const Model& m);

// The bytes of the model's weights as uploaded: matrices in their device types, vectors float32.
uint64_t deviceWeightBytes(const Model& m);

}  // namespace kvscope::ocl
