// What the GGUF reader, writer and type tables share inside compute/gguf: the limits that keep
// a damaged file cheap, the block layouts of the tensor types, and small helpers. Not for use
// outside this folder.
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>

#include "gguf/gguf.h"

namespace kvscope::gguf_detail {

// Limits that keep a damaged or hostile file from costing much memory or time. Real files stay
// far below them (a 262k-token vocabulary takes about 1M metadata values).
constexpr uint32_t kMaxDims = 4;                            // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 8;                         // arrays of arrays of ... this deep
constexpr uint64_t kMaxKvCount = uint64_t{1} << 20;         // key-value pairs
constexpr uint64_t kMaxTensorCount = uint64_t{1} << 20;     // tensor infos
constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 24;  // array elements, all arrays together
constexpr uint64_t kMaxStringBytes = uint64_t{1} << 28;     // all strings together
constexpr size_t kMaxReserve = 4096;  // reserve no more than this ahead of reading elements
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                  // key length, value type, a u8 value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // name length, n_dims, ne[0],
                                                             // type, offset
inline constexpr char kAlignmentKey[] = "general.alignment";

// Joins the arguments into one string with operator<<; integers of one byte print as numbers.
template <typename... Args>
inline std::string cat(const Args&... args) {
    std::ostringstream os;
    auto put = [&os](const auto& a) {
        using T = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
            os << int{a};
        } else {
            os << a;
        }
    };
    (put(args), ...);
    return os.str();
}

inline bool isPowerOfTwo(uint64_t v) {
    return v != 0 && (v & (v - 1)) == 0;
}
inline uint64_t alignUp(uint64_t v, uint64_t alignment) {
    return (v + alignment - 1) / alignment * alignment;
}

struct BlockLayout {
    uint64_t elements;  // values per block
    uint64_t bytes;     // bytes per block
};

inline std::optional<BlockLayout> blockLayout(TensorType t) {
    switch (t) {
        case TensorType::F32:
            return BlockLayout{1, 4};
        case TensorType::F16:
            return BlockLayout{1, 2};
        case TensorType::BF16:
            return BlockLayout{1, 2};
        case TensorType::Q4_0:
            return BlockLayout{32, 18};
        case TensorType::Q4_1:
            return BlockLayout{32, 20};
        case TensorType::Q5_0:
            return BlockLayout{32, 22};
        case TensorType::Q5_1:
            return BlockLayout{32, 24};
        case TensorType::Q8_0:
            return BlockLayout{32, 34};
        case TensorType::Q8_1:
            return BlockLayout{32, 36};
        case TensorType::Q2_K:
            return BlockLayout{256, 84};
        case TensorType::Q3_K:
            return BlockLayout{256, 110};
        case TensorType::Q4_K:
            return BlockLayout{256, 144};
        case TensorType::Q5_K:
            return BlockLayout{256, 176};
        case TensorType::Q6_K:
            return BlockLayout{256, 210};
        case TensorType::Q8_K:
            return BlockLayout{256, 292};
    }
    return std::nullopt;
}

inline bool isKnownValueType(uint32_t t) {
    return t <= static_cast<uint32_t>(GgufType::FLOAT64);
}

// The fewest bytes one value of type t can take in a file (used to bound counts).
inline uint64_t minValueBytes(GgufType t) {
    switch (t) {
        case GgufType::UINT8:
        case GgufType::INT8:
        case GgufType::BOOL:
            return 1;
        case GgufType::UINT16:
        case GgufType::INT16:
            return 2;
        case GgufType::UINT32:
        case GgufType::INT32:
        case GgufType::FLOAT32:
            return 4;
        case GgufType::STRING:
            return 8;
        case GgufType::ARRAY:
            return 4 + 8;
        case GgufType::UINT64:
        case GgufType::INT64:
        case GgufType::FLOAT64:
            return 8;
    }
    return 1;
}

inline std::string describeType(const GgufValue& v) {
    if (v.type() != GgufType::ARRAY) return std::string(typeName(v.type()));
    return cat("ARRAY of ", typeName(v.elemType()));
}

// Reads little-endian fields from a byte range; every read checks the bytes that remain.
// `context_` (e.g. "key 'general.name'") is appended to error messages.

}  // namespace kvscope::gguf_detail
