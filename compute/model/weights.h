// WeightMatrix: one weight matrix as the GGUF file stores it (F32, F16, BF16 or a quantized block
// type), never expanded to float32 for the whole model (ARCHITECTURE.md decision 3). Where it
// can, it is a view into the memory-mapped file; `owner` keeps that memory alive.
// Shape: rows × cols, row-major, the outermost dimension first (a GGUF tensor of ne = [cols,
// rows]); each row is a whole number of the type's blocks, rowBytes() apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "gguf/gguf.h"

namespace kvscope {

class WeightMatrix {
  public:
    WeightMatrix() = default;
    // A view of rows × cols elements of `type` at `data`, kept alive by `owner`. Throws Error
    // unless cols is a whole number of the type's blocks.
    WeightMatrix(TensorType type, int rows, int cols, const uint8_t* data,
                 std::shared_ptr<const void> owner);
    // A float32 matrix that owns its values (values.size() == rows × cols).
    static WeightMatrix fromFloats(std::vector<float> values, int rows, int cols);

    TensorType type() const { return type_; }
    int rows() const { return rows_; }
    int cols() const { return cols_; }
    bool empty() const { return rows_ == 0; }
    size_t rowBytes() const { return rowBytes_; }
    size_t bytes() const { return rowBytes_ * static_cast<size_t>(rows_); }
    size_t elements() const { return static_cast<size_t>(rows_) * static_cast<size_t>(cols_); }
    const uint8_t* data() const { return data_; }
    const uint8_t* row(int r) const { return data_ + rowBytes_ * static_cast<size_t>(r); }
    // The values as float32 in place when the type is F32 (4-byte aligned), else nullptr.
    const float* f32() const;

    // A view of rows [r0, r0 + n) sharing this matrix's memory (phi3's fused gate and up).
    WeightMatrix rowsView(int r0, int n) const;

    // Rows [r0, r0 + n) as float32 into dst (n × cols floats).
    void dequantizeRows(int r0, int n, float* dst) const;
    std::vector<float> toFloats() const;

  private:
    TensorType type_ = TensorType::F32;
    int rows_ = 0, cols_ = 0;
    size_t rowBytes_ = 0;
    const uint8_t* data_ = nullptr;
    std::shared_ptr<const void> owner_;
};

}  // namespace kvscope
