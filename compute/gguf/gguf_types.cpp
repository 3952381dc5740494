// GGUF value and tensor types: names, sizes and the metadata value helpers.
#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "gguf/gguf_detail.h"

static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes a little-endian host");

namespace kvscope {

using namespace gguf_detail;

// ---------------------------------------------------------------------------------------------
// Type names and sizes

std::string_view typeName(GgufType t) {
    switch (t) {
        case GgufType::UINT8:
            return "UINT8";
        case GgufType::INT8:
            return "INT8";
        case GgufType::UINT16:
            return "UINT16";
        case GgufType::INT16:
            return "INT16";
        case GgufType::UINT32:
            return "UINT32";
        case GgufType::INT32:
            return "INT32";
        case GgufType::FLOAT32:
            return "FLOAT32";
        case GgufType::BOOL:
            return "BOOL";
        case GgufType::STRING:
            return "STRING";
        case GgufType::ARRAY:
            return "ARRAY";
        case GgufType::UINT64:
            return "UINT64";
        case GgufType::INT64:
            return "INT64";
        case GgufType::FLOAT64:
            return "FLOAT64";
    }
    return "unknown value type";
}

std::string typeName(TensorType t) {
    switch (t) {
        case TensorType::F32:
            return "F32";
        case TensorType::F16:
            return "F16";
        case TensorType::Q4_0:
            return "Q4_0";
        case TensorType::Q4_1:
            return "Q4_1";
        case TensorType::Q5_0:
            return "Q5_0";
        case TensorType::Q5_1:
            return "Q5_1";
        case TensorType::Q8_0:
            return "Q8_0";
        case TensorType::Q8_1:
            return "Q8_1";
        case TensorType::Q2_K:
            return "Q2_K";
        case TensorType::Q3_K:
            return "Q3_K";
        case TensorType::Q4_K:
            return "Q4_K";
        case TensorType::Q5_K:
            return "Q5_K";
        case TensorType::Q6_K:
            return "Q6_K";
        case TensorType::Q8_K:
            return "Q8_K";
        case TensorType::BF16:
            return "BF16";
    }
    return cat("type ", static_cast<uint32_t>(t));
}

std::optional<uint64_t> tensorBytes(TensorType t, uint64_t count) {
    const auto layout = blockLayout(t);
    if (!layout || count % layout->elements != 0) return std::nullopt;
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(count / layout->elements, layout->bytes, &bytes)) {
        return std::nullopt;
    }
    return bytes;
}

// ---------------------------------------------------------------------------------------------
// GgufValue

GgufValue GgufValue::array(GgufType elemType, Array elems) {
    for (size_t i = 0; i < elems.size(); ++i) {
        if (elems[i].type() != elemType) {
            throw Error(cat("GgufValue::array: element ", i, " has type ",
                            typeName(elems[i].type()), ", expected ", typeName(elemType)));
        }
    }
    GgufValue v(GgufType::ARRAY, std::move(elems));
    v.elemType_ = elemType;
    return v;
}

GgufValue GgufValue::stringArray(const std::vector<std::string>& v) {
    Array a;
    a.reserve(v.size());
    for (const auto& s : v) a.push_back(str(s));
    return array(GgufType::STRING, std::move(a));
}

GgufValue GgufValue::f32Array(const std::vector<float>& v) {
    Array a;
    a.reserve(v.size());
    for (float f : v) a.push_back(f32(f));
    return array(GgufType::FLOAT32, std::move(a));
}

GgufValue GgufValue::i32Array(const std::vector<int32_t>& v) {
    Array a;
    a.reserve(v.size());
    for (int32_t i : v) a.push_back(i32(i));
    return array(GgufType::INT32, std::move(a));
}

std::optional<uint64_t> GgufValue::asUint() const {
    return std::visit(
        [](const auto& v) -> std::optional<uint64_t> {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, bool>) {
                return v ? 1 : 0;
            } else if constexpr (std::is_integral_v<T>) {
                if constexpr (std::is_signed_v<T>) {
                    if (v < 0) return std::nullopt;
                }
                return static_cast<uint64_t>(v);
            } else {
                return std::nullopt;
            }
        },
        storage_);
}

std::optional<int64_t> GgufValue::asInt() const {
    return std::visit(
        [](const auto& v) -> std::optional<int64_t> {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, bool>) {
                return std::nullopt;
            } else if constexpr (std::is_same_v<T, uint64_t>) {
                if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                    return std::nullopt;
                }
                return static_cast<int64_t>(v);
            } else if constexpr (std::is_integral_v<T>) {
                return static_cast<int64_t>(v);
            } else {
                return std::nullopt;
            }
        },
        storage_);
}

std::optional<double> GgufValue::asDouble() const {
    return std::visit(
        [](const auto& v) -> std::optional<double> {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, bool>) {
                return std::nullopt;
            } else if constexpr (std::is_arithmetic_v<T>) {
                return static_cast<double>(v);
            } else {
                return std::nullopt;
            }
        },
        storage_);
}

const std::string* GgufValue::asString() const {
    return std::get_if<std::string>(&storage_);
}
const GgufValue::Array* GgufValue::asArray() const {
    return std::get_if<Array>(&storage_);
}

uint64_t GgufTensorInfo::elements() const {
    uint64_t n = 1;
    for (uint64_t d : ne) n *= d;
    return n;
}

}  // namespace kvscope
