// WeightMatrix: views of a file's tensors and their conversion to float32 on request.
#include "model/weights.h"

#include <cstring>
#include <span>

#include "core/error.h"
#include "gguf/dequant.h"

namespace kvscope {

WeightMatrix::WeightMatrix(TensorType type, int rows, int cols, const uint8_t* data,
                           std::shared_ptr<const void> owner)
    : type_(type), rows_(rows), cols_(cols), data_(data), owner_(std::move(owner)) {
    KVSCOPE_CHECK(rows >= 0 && cols > 0, "a weight matrix of " + std::to_string(rows) + " × " +
                                             std::to_string(cols) + " elements");
    const std::optional<uint64_t> b = tensorBytes(type, static_cast<uint64_t>(cols));
    if (!b)
        throw Error("rows of " + std::to_string(cols) + " elements are not a whole number of " +
                    typeName(type) + " blocks");
    rowBytes_ = static_cast<size_t>(*b);
}

WeightMatrix WeightMatrix::fromFloats(std::vector<float> values, int rows, int cols) {
    KVSCOPE_CHECK(values.size() == static_cast<size_t>(rows) * static_cast<size_t>(cols),
                  "fromFloats: " + std::to_string(values.size()) + " values for " +
                      std::to_string(rows) + " × " + std::to_string(cols));
    auto owned = std::make_shared<const std::vector<float>>(std::move(values));
    const auto* p = reinterpret_cast<const uint8_t*>(owned->data());
    return WeightMatrix(TensorType::F32, rows, cols, p, std::move(owned));
}

const float* WeightMatrix::f32() const {
    if (type_ != TensorType::F32 || reinterpret_cast<uintptr_t>(data_) % alignof(float) != 0)
        return nullptr;
    return reinterpret_cast<const float*>(data_);
}

WeightMatrix WeightMatrix::rowsView(int r0, int n) const {
    KVSCOPE_CHECK(r0 >= 0 && n >= 0 && r0 + n <= rows_, "rows " + std::to_string(r0) + ".." +
                                                            std::to_string(r0 + n) + " of " +
                                                            std::to_string(rows_));
    return WeightMatrix(type_, n, cols_, row(r0), owner_);
}

void WeightMatrix::dequantizeRows(int r0, int n, float* dst) const {
    KVSCOPE_CHECK(r0 >= 0 && n >= 0 && r0 + n <= rows_, "rows " + std::to_string(r0) + ".." +
                                                            std::to_string(r0 + n) + " of " +
                                                            std::to_string(rows_));
    if (n == 0) return;
    const size_t count = static_cast<size_t>(n) * static_cast<size_t>(cols_);
    if (type_ == TensorType::F32) {
        std::memcpy(dst, row(r0), count * sizeof(float));
        return;
    }
    dequantizeRow(type_, row(r0), dst, static_cast<int64_t>(count));
}

std::vector<float> WeightMatrix::toFloats() const {
    std::vector<float> v(elements());
    dequantizeRows(0, rows_, v.data());
    return v;
}

}  // namespace kvscope
