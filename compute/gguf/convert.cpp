#include "gguf/convert.h"

#include <cctype>

#include "core/error.h"
#include "gguf/dequant.h"

namespace kvscope {
namespace {

// llama.cpp's llama_ftype for a file whose matrices are all `t` (K-quants: the _S variant,
// which is what one type for every matrix is).
std::optional<uint32_t> llamaFileType(TensorType t) {
    switch (t) {
        case TensorType::F32:
            return 0;
        case TensorType::F16:
            return 1;
        case TensorType::Q4_0:
            return 2;
        case TensorType::Q4_1:
            return 3;
        case TensorType::Q8_0:
            return 7;
        case TensorType::Q5_0:
            return 8;
        case TensorType::Q5_1:
            return 9;
        case TensorType::Q2_K:
            return 10;
        case TensorType::Q3_K:
            return 11;
        case TensorType::Q4_K:
            return 14;
        case TensorType::Q5_K:
            return 16;
        case TensorType::Q6_K:
            return 18;
        case TensorType::BF16:
            return 32;
        default:
            return std::nullopt;
    }
}

bool keptAsItIs(const GgufTensorInfo& t) {
    return t.ne.size() < 2 || t.name == "position_embd.weight" || t.name == "token_types.weight";
}

bool splitsInto(TensorType t, uint64_t rowLength) {
    const std::optional<BlockLayout> layout = blockLayout(t);
    return layout && rowLength % static_cast<uint64_t>(layout->elems) == 0;
}

}  // namespace

TensorType fallbackType(TensorType to, uint64_t rowLength) {
    TensorType f = TensorType::F16;
    switch (to) {
        case TensorType::Q2_K:
        case TensorType::Q3_K:
            f = TensorType::Q4_0;
            break;
        case TensorType::Q4_K:
            f = TensorType::Q5_0;
            break;
        case TensorType::Q5_K:
            f = TensorType::Q5_1;
            break;
        case TensorType::Q6_K:
            f = TensorType::Q8_0;
            break;
        default:
            break;
    }
    return splitsInto(f, rowLength) ? f : TensorType::F16;
}

std::optional<TensorType> tensorTypeFromName(std::string_view name) {
    std::string lower(name);
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    for (uint32_t i = 0; i < 64; ++i) {
        const auto t = static_cast<TensorType>(i);
        if (!isSupportedWeightType(t)) continue;
        std::string candidate = typeName(t);
        for (char& ch : candidate)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (candidate == lower) return t;
    }
    return std::nullopt;
}

GgufWriter convertWeights(const GgufFile& in, TensorType to, ConvertReport* report) {
    const std::optional<BlockLayout> layout = blockLayout(to);
    if (!layout) throw Error("cannot write tensors as " + typeName(to));
    ConvertReport r;
    GgufWriter out(in.version());
    for (const std::string& key : in.keyOrder()) {
        if (key == "general.file_type") continue;  // set below, for the new type
        out.set(key, in.metadata().at(key));
    }
    if (const auto ftype = llamaFileType(to)) out.set("general.file_type", GgufValue::u32(*ftype));
    out.set("general.quantization_version", GgufValue::u32(2));  // ggml's GGML_QNT_VERSION
    for (const GgufTensorInfo& t : in.tensors()) {
        const std::span<const uint8_t> data = in.tensorData(t);
        r.bytesBefore += data.size();
        const TensorType type = keptAsItIs(t)             ? t.type
                                : splitsInto(to, t.ne[0]) ? to
                                                          : fallbackType(to, t.ne[0]);
        if (type == t.type) {
            out.addTensor(t.name, t.type, t.ne, std::vector<uint8_t>(data.begin(), data.end()));
            r.bytesAfter += data.size();
        } else {
            const std::vector<float> values = toFloat(t.type, data, t.elements(), t.name);
            std::vector<uint8_t> bytes = fromFloat(type, values);
            r.bytesAfter += bytes.size();
            out.addTensor(t.name, type, t.ne, std::move(bytes));
        }
        if (keptAsItIs(t)) {
            ++r.kept;
        } else if (type == to) {
            ++r.converted;
        } else {
            ++r.fellBack[type];
        }
    }
    if (report) *report = r;
    return out;
}

}  // namespace kvscope
