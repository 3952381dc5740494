// Rewrites a GGUF model with its weight matrices stored as another tensor type, as llama.cpp's
// llama-quantize does for one type: the way a lecturer turns an F32 file into the F16 or Q8_0 a
// download would be, and how the built-in models are stored small.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "gguf/gguf.h"

namespace kvscope {

struct ConvertReport {
    int converted = 0;  // tensors written as the type asked for
    // matrices whose rows do not split into its blocks, by the fallbackType they were written as
    std::map<TensorType, int> fellBack;
    int kept = 0;  // tensors kept as they were (vectors, position embeddings)
    uint64_t bytesBefore = 0, bytesAfter = 0;  // tensor data only
};

// The type llama-quantize writes a matrix as when its rows are not a whole number of `to`'s
// blocks: Q4_0 for Q2_K and Q3_K, Q5_0 for Q4_K, Q5_1 for Q5_K, Q8_0 for Q6_K; F16 when
// even that does not fit (rows not a multiple of 32) or for any other type.
TensorType fallbackType(TensorType to, uint64_t rowLength);

// Every matrix (two or more dimensions) is decoded to float32 and encoded as `to`
// (quantizeRow), or as fallbackType(to) when its rows do not split into `to`'s blocks, as
// llama-quantize does; vectors (norms, biases) and the position and token-type embeddings (which
// llama-quantize leaves alone) keep their type and bytes. Metadata is kept in order, with
// general.file_type set to llama.cpp's number for `to` and general.quantization_version 2.
// Throws Error for a `to` without a block layout or a tensor whose type KVScope cannot read.
GgufWriter convertWeights(const GgufFile& in, TensorType to, ConvertReport* report = nullptr);

// The type named as llama.cpp and `kvscope bench --type` name it ("f16", "Q8_0", any case), or
// nullopt.
std::optional<TensorType> tensorTypeFromName(std::string_view name);

}  // namespace kvscope
