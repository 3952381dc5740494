// GGUF files: a reader (memory-mapped, every count and offset checked before use) and a writer.
//
// The format (little-endian throughout), versions 2 and 3:
//   1. magic            4 bytes  "GGUF"
//   2. version          uint32   2 or 3
//   3. tensor_count     uint64
//   4. kv_count         uint64
//   5. kv pairs         kv_count × { key: string, value_type: uint32, value }
//        string = { len: uint64, bytes[len] } (UTF-8, not NUL-terminated)
//        array  = { elem_type: uint32, count: uint64, count × value }  (arrays may nest)
//   6. tensor infos     tensor_count × { name: string, n_dims: uint32, ne[n_dims]: uint64,
//                                        type: uint32, offset: uint64 }
//        ne[0] is the contiguous dimension (ggml order); offset is relative to the data section
//        and a multiple of the alignment
//   7. padding to general.alignment (uint32 key, default 32, a power of two)
//   8. data section     the tensors' bytes
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kvscope {

enum class GgufType : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12,
};

// ggml tensor types. F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q2_K..Q6_K convert to float
// (gguf/dequant.h); the others are named here so that a refusal can say which type a file holds.
enum class TensorType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    BF16 = 30,
};

std::string_view typeName(GgufType t);
std::string typeName(TensorType t);  // "Q4_K", or "type 99" for an unknown number

// Bytes taken by `count` elements of type t, e.g. Q8_0 packs 32 values in 34 bytes.
// Returns nullopt if t is unknown, count is not a whole number of blocks, or the size overflows.
std::optional<uint64_t> tensorBytes(TensorType t, uint64_t count);

// One metadata value. Arrays keep their element type so that empty arrays round-trip.
class GgufValue {
  public:
    using Array = std::vector<GgufValue>;
    using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                                 std::string, Array, uint64_t, int64_t, double>;

    GgufValue() : type_(GgufType::UINT32), storage_(uint32_t{0}) {}
    static GgufValue u8(uint8_t v) { return {GgufType::UINT8, v}; }
    static GgufValue i8(int8_t v) { return {GgufType::INT8, v}; }
    static GgufValue u16(uint16_t v) { return {GgufType::UINT16, v}; }
    static GgufValue i16(int16_t v) { return {GgufType::INT16, v}; }
    static GgufValue u32(uint32_t v) { return {GgufType::UINT32, v}; }
    static GgufValue i32(int32_t v) { return {GgufType::INT32, v}; }
    static GgufValue f32(float v) { return {GgufType::FLOAT32, v}; }
    static GgufValue boolean(bool v) { return {GgufType::BOOL, v}; }
    static GgufValue str(std::string v) { return {GgufType::STRING, std::move(v)}; }
    static GgufValue u64(uint64_t v) { return {GgufType::UINT64, v}; }
    static GgufValue i64(int64_t v) { return {GgufType::INT64, v}; }
    static GgufValue f64(double v) { return {GgufType::FLOAT64, v}; }
    // All elements must have type elemType (throws Error otherwise).
    static GgufValue array(GgufType elemType, Array elems);
    static GgufValue stringArray(const std::vector<std::string>& v);
    static GgufValue f32Array(const std::vector<float>& v);
    static GgufValue i32Array(const std::vector<int32_t>& v);

    GgufType type() const { return type_; }
    GgufType elemType() const { return elemType_; }  // only meaningful for ARRAY
    const Storage& storage() const { return storage_; }

    // Integer of any integer type (and bool); nullopt for other types or a negative value.
    std::optional<uint64_t> asUint() const;
    // Any integer type as int64; nullopt for other types or a value past int64.
    std::optional<int64_t> asInt() const;
    // FLOAT32, FLOAT64 or any integer type.
    std::optional<double> asDouble() const;
    const std::string* asString() const;  // nullptr unless STRING
    const Array* asArray() const;         // nullptr unless ARRAY

    bool operator==(const GgufValue& o) const = default;

  private:
    GgufValue(GgufType t, Storage s) : type_(t), storage_(std::move(s)) {}
    GgufType type_;
    GgufType elemType_ = GgufType::UINT8;
    Storage storage_;
};

struct GgufTensorInfo {
    std::string name;
    TensorType type = TensorType::F32;
    std::vector<uint64_t> ne;  // ggml order: ne[0] is contiguous
    uint64_t offset = 0;       // relative to the data section
    uint64_t bytes = 0;        // size of the data
    uint64_t elements() const;
};

// A GGUF file opened for reading. The file is memory-mapped; tensor data are views into it.
// Construction validates the whole header: every length, count, dimension and offset is checked
// against the file size and sane limits; bad input throws kvscope::Error naming the field and
// its byte offset (never a crash, a hang or a huge allocation). Limits: n_dims 1..4, every
// dimension >= 1 with an element count that fits int64, arrays nested at most 8 deep, no
// duplicate keys or tensor names, general.alignment a UINT32 power of two, BOOL values 0 or 1.
// (A mapped file that another process truncates while it is open can still raise SIGBUS.)
class GgufFile {
  public:
    static GgufFile open(const std::string& path);  // throws Error (names the path)
    // Parse an in-memory image (tests, and files already read). The bytes are copied.
    static GgufFile fromBytes(std::vector<uint8_t> bytes, std::string name = "<memory>");

    GgufFile(GgufFile&&) noexcept;
    GgufFile& operator=(GgufFile&&) noexcept;
    ~GgufFile();

    const std::string& path() const;
    uint32_t version() const;
    uint32_t alignment() const;
    uint64_t fileSize() const;
    uint64_t dataOffset() const;  // where the data section starts (tensor offsets are from here)

    const std::map<std::string, GgufValue>& metadata() const;
    const std::vector<std::string>& keyOrder() const;   // keys in file order
    const GgufValue* find(std::string_view key) const;  // nullptr if missing

    // Typed getters: nullopt if missing; Error if present with the wrong type.
    std::optional<uint64_t> getUint(std::string_view key) const;
    std::optional<double> getFloat(std::string_view key) const;
    std::optional<std::string> getString(std::string_view key) const;
    std::optional<std::vector<std::string>> getStringArray(std::string_view key) const;
    // Required versions: Error naming the key if missing or of the wrong type.
    uint64_t requireUint(std::string_view key) const;
    double requireFloat(std::string_view key) const;
    std::string requireString(std::string_view key) const;

    const std::vector<GgufTensorInfo>& tensors() const;
    const GgufTensorInfo* findTensor(std::string_view name) const;  // nullptr if missing
    std::span<const uint8_t> tensorData(const GgufTensorInfo& t) const;

  private:
    struct Impl;
    explicit GgufFile(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Builds a GGUF file in memory and writes it. Keys keep insertion order (a repeated key
// replaces the earlier value in place); tensors are laid out in the order added.
class GgufWriter {
  public:
    explicit GgufWriter(uint32_t version = 3) : version_(version) {}

    void setAlignment(uint32_t alignment);  // also writes general.alignment; power of two
    // Setting general.alignment directly works like setAlignment (UINT32 power of two, or Error).
    void set(const std::string& key, GgufValue value);
    // Removes key (general.alignment: back to 32); false if it was not set.
    bool erase(const std::string& key);
    std::vector<std::string> keys() const;  // in the order they will be written
    // ne in ggml order (ne[0] contiguous); data.size() must equal tensorBytes(type, prod(ne)).
    // Throws Error on a repeated name, 0 or more than 4 dimensions, a zero dimension, an ne[0]
    // that is not a whole number of blocks, or a size mismatch.
    void addTensor(const std::string& name, TensorType type, std::vector<uint64_t> ne,
                   std::vector<uint8_t> data);
    void addTensorF32(const std::string& name, std::vector<uint64_t> ne,
                      const std::vector<float>& values);

    std::vector<uint8_t> toBytes() const;  // throws Error unless the version is 2 or 3
    // Writes to path + ".tmp" then renames, so a failure leaves no half-written file.
    void write(const std::string& path) const;  // throws Error naming the path

  private:
    struct Tensor {
        std::string name;
        TensorType type;
        std::vector<uint64_t> ne;
        std::vector<uint8_t> data;
    };
    uint32_t version_;
    uint32_t alignment_ = 32;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::vector<Tensor> tensors_;
};

}  // namespace kvscope
