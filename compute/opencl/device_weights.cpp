// The weight types of the OpenCL backend's device buffers and the conversions at upload.
#include "opencl/device_weights.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "core/error.h"
#include "gguf/dequant.h"
#include "model/model.h"

namespace kvscope::ocl {

namespace {

// The conversion rule for a type without a kernel (the table in device_weights.h).
TensorType convertedType(TensorType t) {
    switch (t) {
        case TensorType::Q4_1:
        case TensorType::Q5_0:
        case TensorType::Q5_1:
        case TensorType::Q5_K:
            return TensorType::Q8_0;
        case TensorType::Q2_K:
            return TensorType::Q4_K;
        case TensorType::Q3_K:
            return TensorType::Q6_K;
        case TensorType::BF16:
            return TensorType::F16;
        default:
            return t;
    }
}

}  // namespace

bool hasDeviceKernel(TensorType t) {
    switch (t) {
        case TensorType::F32:
        case TensorType::F16:
        case TensorType::Q8_0:
        case TensorType::Q4_0:
        case TensorType::Q4_K:
        case TensorType::Q6_K:
            return true;
        default:
            return false;
    }
}

TensorType deviceWeightType(TensorType t, int cols) {
    const TensorType d = convertedType(t);
    // the kernels work in units of 32 values; block types are whole units already
    if (d == TensorType::F16 && cols % 32 != 0) return TensorType::F32;
    return d;
}

bool hasWideScales(TensorType t) {
    return t == TensorType::Q8_0 || t == TensorType::Q4_0 || t == TensorType::Q4_K ||
           t == TensorType::Q6_K;
}

namespace {

// Where a block of t keeps its float16 scales: the block's bytes and the scales' offsets; for
// Q4_K also its 6-bit sub-block scales and minimums, packed in the 12 bytes after d and dmin,
// which the wide layout holds unpacked as 8 + 8 bytes (no bit-fiddling per unit).
struct ScaleSpots {
    size_t block = 0;
    std::vector<size_t> at;
    bool unpackK4 = false;
    size_t wideBlock() const { return block + 2 * at.size() + (unpackK4 ? 4 : 0); }
};

ScaleSpots scaleSpots(TensorType t) {
    switch (t) {
        case TensorType::Q8_0:
            return {34, {0}};
        case TensorType::Q4_0:
            return {18, {0}};
        case TensorType::Q4_K:
            return {144, {0, 2}, true};  // d, dmin, then the packed scales
        case TensorType::Q6_K:
            return {210, {208}};  // d after ql, qh and the int8 scales
        default:
            throw Error("no wide-scale layout for " + typeName(t));
    }
}

}  // namespace

std::optional<uint64_t> deviceRowBytes(TensorType t, int cols, bool wide) {
    const auto row = tensorBytes(t, static_cast<uint64_t>(cols));
    if (!row || !wide || !hasWideScales(t)) return row;
    const ScaleSpots s = scaleSpots(t);
    return *row / s.block * s.wideBlock();
}

uint64_t deviceBytes(const WeightMatrix& w, bool wide) {
    if (w.empty()) return 0;
    const auto row = deviceRowBytes(deviceWeightType(w), w.cols(), wide);
    KVSCOPE_CHECK(row.has_value(), "no device layout for " + typeName(w.type()));
    return *row * static_cast<uint64_t>(w.rows());
}

std::vector<uint8_t> widenScales(TensorType t, const uint8_t* rows, size_t bytes) {
    const ScaleSpots s = scaleSpots(t);
    KVSCOPE_CHECK(bytes % s.block == 0, "widening scales: " + std::to_string(bytes) +
                                            " bytes are not whole " + typeName(t) + " blocks");
    const size_t wideBlock = s.wideBlock();
    std::vector<uint8_t> out(bytes / s.block * wideBlock);
    for (size_t b = 0; b < bytes / s.block; ++b) {
        const uint8_t* from = rows + b * s.block;
        uint8_t* to = out.data() + b * wideBlock;
        size_t in = 0;  // the next byte of `from` to copy
        for (const size_t at : s.at) {
            std::memcpy(to, from + in, at - in);
            to += at - in;
            uint16_t h = 0;
            std::memcpy(&h, from + at, sizeof h);
            const float f = f16ToF32(h);
            std::memcpy(to, &f, sizeof f);
            to += sizeof f;
            in = at + sizeof h;
        }
        if (s.unpackK4) {  // ggml's get_scale_min_k4, once here instead of in every product
            const uint8_t* q = from + in;
            for (int j = 0; j < 8; ++j) {
                to[j] = j < 4 ? q[j] & 63 : (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
                to[8 + j] = j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
            }
            to += 16;
            in += 12;
        }
        std::memcpy(to, from + in, s.block - in);
    }
    return out;
}

std::vector<uint8_t> convertRows(const WeightMatrix& w, TensorType to, bool wide) {
    if (w.empty()) return {};
    if (wide && hasWideScales(to)) {
        const std::vector<uint8_t> stored = convertRows(w, to, false);
        return widenScales(to, stored.data(), stored.size());
    }
    if (to == w.type()) return {w.data(), w.data() + w.bytes()};
    const auto rowBytes = tensorBytes(to, static_cast<uint64_t>(w.cols()));
    KVSCOPE_CHECK(rowBytes.has_value(), "cannot convert rows of " + std::to_string(w.cols()) +
                                            " values to " + typeName(to));
    std::vector<uint8_t> out(*rowBytes * static_cast<size_t>(w.rows()));
    std::vector<float> row(static_cast<size_t>(w.cols()));
    for (int r = 0; r < w.rows(); ++r) {
        w.dequantizeRows(r, 1, row.data());
        if (to == TensorType::F32)
            std::memcpy(out.data() + *rowBytes * r, row.data(), *rowBytes);
        else
            quantizeRow(to, row.data(), out.data() + *rowBytes * r, w.cols());
    }
    return out;
}

std::string deviceWeightRules() {
    std::string native, converted;
    for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::Q8_0, TensorType::Q4_0,
                         TensorType::Q4_K, TensorType::Q6_K})
        native += (native.empty() ? "" : ", ") + typeName(t);
    std::map<TensorType, std::vector<TensorType>> to;
    for (TensorType t : {TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q5_K,
                         TensorType::Q2_K, TensorType::Q3_K, TensorType::BF16})
        to[convertedType(t)].push_back(t);
    for (TensorType target :
         {TensorType::Q8_0, TensorType::Q4_K, TensorType::Q6_K, TensorType::F16}) {
        std::string from;
        for (TensorType t : to[target]) from += (from.empty() ? "" : ", ") + typeName(t);
        converted += (converted.empty() ? "" : "; ") + from + " -> " + typeName(target);
    }
    return native + " native; converted at upload: " + converted +
           "; on CPU devices the float16 scales of Q8_0, Q4_0, Q4_K and Q6_K are widened to "
           "float32";
}

std::string deviceWeightNote(const Model& m, bool wide) {
    std::set<std::string> native;
    std::map<std::string, std::set<std::string>> converted;  // to -> from
    bool widened = false;
    m.forEachMatrix([&](const WeightMatrix& w) {
        if (w.empty()) return;
        const TensorType d = deviceWeightType(w);
        widened = widened || (wide && hasWideScales(d));
        if (d == w.type())
            native.insert(typeName(d));
        else
            converted[typeName(d)].insert(typeName(w.type()));
    });
    auto join = [](const std::set<std::string>& s) {
        std::string out;
        for (const std::string& x : s) out += (out.empty() ? "" : ", ") + x;
        return out;
    };
    std::string note = "weights on the device: ";
    if (!native.empty()) note += join(native) + " native";
    for (const auto& [to, from] : converted)
        note +=
            (note.back() == ' ' ? "" : "; ") + join(from) + " converted to " + to + " at upload";
    if (widened) note += "; float16 scales widened to float32";
    char buf[64];
    std::snprintf(buf, sizeof buf, " (%.1f MiB as uploaded)",
                  static_cast<double>(deviceWeightBytes(m, wide)) / (1 << 20));
    return note + buf;
}

uint64_t deviceWeightBytes(const Model& m, bool wide) {
    uint64_t n = m.weightBytes();
    m.forEachMatrix([&](const WeightMatrix& w) { n += deviceBytes(w, wide) - w.bytes(); });
    return n;
}

}  // namespace kvscope::ocl
