// Rewrites a GGUF model with its weight matrices stored as another tensor type, as llama.cpp's
// llama-quantize does for one type: the way a lecturer turns an F32 file into the F16 or Q8_0 a
// download would be, and how the built-in models are stored small.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gguf/gguf.h"

namespace kvscope {

struct ConvertReport {
    int converted = 0;  // tensors written as the new type
    int kept = 0;       // tensors kept as they were (vectors, rows that are not whole blocks)
    uint64_t bytesBefore = 0, bytesAfter = 0;  // tensor data only
};

// Every tensor of two or more dimensions whose rows (ne[0]) are a whole number of `to`'s blocks
// is decoded to float32 and encoded as `to` (quantizeRow); vectors (norms, biases) and tensors
// whose rows do not split into blocks keep their type and bytes. Metadata is kept in order, with
// general.file_type set to llama.cpp's number for `to` (erased for a type it has none for).
// Throws Error for a `to` without a block layout or a tensor whose type KVScope cannot read.
GgufWriter convertWeights(const GgufFile& in, TensorType to, ConvertReport* report = nullptr);

// The type named as llama.cpp and `kvscope bench --type` name it ("f16", "Q8_0", any case), or
// nullopt.
std::optional<TensorType> tensorTypeFromName(std::string_view name);

}  // namespace kvscope
