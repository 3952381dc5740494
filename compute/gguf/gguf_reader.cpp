// GGUF reader. It trusts nothing: every count, length, dimension and offset is checked against
// the bytes that remain before it is used, so a damaged file ends in a kvscope::Error that names
// the field and its byte offset.
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

namespace {

class Cursor {
  public:
    Cursor(const uint8_t* data, uint64_t size, const std::string& name)
        : data_(data), size_(size), name_(name) {}

    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }
    void setContext(std::string context) { context_ = std::move(context); }

    // Throws unless n more bytes are available for `field`, which starts at the current offset.
    void need(uint64_t n, std::string_view field) const {
        if (n > remaining()) {
            fail(cat(field, " at offset ", pos_, withContext(),
                     " runs past the end of the file (size ", size_, ")"));
        }
    }

    template <typename T>
    T read(std::string_view field) {
        need(sizeof(T), field);
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    // A string: uint64 length, then the bytes. All strings together are held to kMaxStringBytes.
    std::string readString() {
        const uint64_t at = pos_;
        const uint64_t len = read<uint64_t>("string length");
        if (len > remaining()) {
            fail(cat("string length ", len, " at offset ", at, withContext(),
                     " runs past the end of the file (size ", size_, ")"));
        }
        if (len > stringBytesLeft_) {
            fail(cat("string length ", len, " at offset ", at, withContext(),
                     " exceeds the limit of ", kMaxStringBytes, " bytes for all strings"));
        }
        stringBytesLeft_ -= len;
        std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
        pos_ += len;
        return s;
    }

    std::string withContext() const { return context_.empty() ? "" : " (" + context_ + ")"; }

    [[noreturn]] void fail(const std::string& message) const {
        throw Error(name_ + ": " + message);
    }

  private:
    const uint8_t* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
    const std::string& name_;
    std::string context_;
    uint64_t stringBytesLeft_ = kMaxStringBytes;
};

// Reads metadata values; array elements of the whole file are held to kMaxMetadataValues.
class ValueReader {
  public:
    explicit ValueReader(Cursor& c) : c_(c) {}

    GgufValue read(GgufType type, int depth) {
        switch (type) {
            case GgufType::UINT8:
                return scalar<uint8_t>(&GgufValue::u8);
            case GgufType::INT8:
                return scalar<int8_t>(&GgufValue::i8);
            case GgufType::UINT16:
                return scalar<uint16_t>(&GgufValue::u16);
            case GgufType::INT16:
                return scalar<int16_t>(&GgufValue::i16);
            case GgufType::UINT32:
                return scalar<uint32_t>(&GgufValue::u32);
            case GgufType::INT32:
                return scalar<int32_t>(&GgufValue::i32);
            case GgufType::FLOAT32:
                return scalar<float>(&GgufValue::f32);
            case GgufType::UINT64:
                return scalar<uint64_t>(&GgufValue::u64);
            case GgufType::INT64:
                return scalar<int64_t>(&GgufValue::i64);
            case GgufType::FLOAT64:
                return scalar<double>(&GgufValue::f64);
            case GgufType::BOOL: {
                const uint64_t at = c_.pos();
                const uint8_t b = c_.read<uint8_t>("bool value");
                if (b > 1) {
                    c_.fail(cat("bool value ", b, " at offset ", at, c_.withContext(),
                                ", expected 0 or 1"));
                }
                return GgufValue::boolean(b == 1);
            }
            case GgufType::STRING:
                return GgufValue::str(c_.readString());
            case GgufType::ARRAY:
                return array(depth);
        }
        c_.fail(cat("value type ", static_cast<uint32_t>(type), " cannot be read"));  // unreachable
    }

  private:
    template <typename T>
    GgufValue scalar(GgufValue (*make)(T)) {
        return make(c_.read<T>("value"));
    }

    // { elem_type: uint32, count: uint64, count × value }
    GgufValue array(int depth) {
        const uint64_t at = c_.pos();
        if (depth >= kMaxArrayNesting) {
            c_.fail(cat("array at offset ", at, c_.withContext(), " is nested more than ",
                        kMaxArrayNesting, " deep"));
        }
        const uint32_t elem = c_.read<uint32_t>("array element type");
        if (!isKnownValueType(elem)) {
            c_.fail(cat("unknown array element type ", elem, " at offset ", at, c_.withContext(),
                        ", expected 0 to 12"));
        }
        const auto elemType = static_cast<GgufType>(elem);
        const uint64_t countAt = c_.pos();
        const uint64_t count = c_.read<uint64_t>("array count");
        const uint64_t minBytes = minValueBytes(elemType);
        if (count > c_.remaining() / minBytes) {
            c_.fail(cat("array count ", count, " at offset ", countAt, c_.withContext(),
                        " runs past the end of the file: ", count, " elements of type ",
                        typeName(elemType), " need at least ", minBytes, " bytes each but only ",
                        c_.remaining(), " bytes remain"));
        }
        if (count > valuesLeft_) {
            c_.fail(cat("array count ", count, " at offset ", countAt, c_.withContext(),
                        " exceeds the limit of ", kMaxMetadataValues,
                        " array elements in all metadata"));
        }
        valuesLeft_ -= count;
        GgufValue::Array elems;
        elems.reserve(static_cast<size_t>(std::min<uint64_t>(count, kMaxReserve)));
        for (uint64_t i = 0; i < count; ++i) elems.push_back(read(elemType, depth + 1));
        return GgufValue::array(elemType, std::move(elems));
    }

    Cursor& c_;
    uint64_t valuesLeft_ = kMaxMetadataValues;
};

std::string printableMagic(const uint8_t* p) {
    std::string s;
    for (int i = 0; i < 4; ++i) {
        const uint8_t ch = p[i];
        if (ch >= 0x20 && ch < 0x7F && ch != '\'' && ch != '\\') {
            s += static_cast<char>(ch);
        } else {
            static const char hex[] = "0123456789abcdef";
            s += "\\x";
            s += hex[ch >> 4];
            s += hex[ch & 15];
        }
    }
    return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// GgufFile

struct GgufFile::Impl {
    std::string path;
    void* map = nullptr;  // set when the file is memory-mapped
    size_t mapSize = 0;
    std::vector<uint8_t> owned;  // set by fromBytes
    const uint8_t* data = nullptr;
    uint64_t size = 0;

    uint32_t version = 0;
    uint32_t alignment = kDefaultAlignment;
    uint64_t dataStart = 0;
    std::map<std::string, GgufValue> metadata;
    std::vector<std::string> keyOrder;
    std::vector<GgufTensorInfo> tensors;
    std::unordered_map<std::string, size_t> tensorIndex;

    Impl() = default;
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl() {
        if (map != nullptr) munmap(map, mapSize);
    }

    void parse();
    [[noreturn]] void fail(const std::string& message) const { throw Error(path + ": " + message); }
    const GgufValue& typed(std::string_view key, const GgufValue* v, std::string_view expected,
                           bool ok) const {
        if (!ok) fail(cat("key '", key, "' has type ", describeType(*v), ", expected ", expected));
        return *v;
    }
};

void GgufFile::Impl::parse() {
    if (size == 0) fail("empty file (0 bytes), expected a GGUF header starting with 'GGUF'");
    Cursor c(data, size, path);

    c.need(4, "magic");
    if (std::memcmp(data, "GGUF", 4) != 0) {
        fail(cat("bad magic '", printableMagic(data), "' at offset 0, expected 'GGUF'"));
    }
    c.read<uint32_t>("magic");

    version = c.read<uint32_t>("version");
    if (version != 2 && version != 3) {
        std::string hint;
        if (version == 1) hint = " (version 1 used 32-bit counts and is no longer read)";
        const uint32_t swapped = __builtin_bswap32(version);
        if (swapped == 2 || swapped == 3) hint = " (a big-endian GGUF file?)";
        fail(cat("unsupported GGUF version ", version, " at offset 4, expected 2 or 3", hint));
    }

    const uint64_t tensorCount = c.read<uint64_t>("tensor_count");
    const uint64_t kvCount = c.read<uint64_t>("kv_count");
    const uint64_t rest = c.remaining();
    if (kvCount > rest / kMinKvBytes) {
        fail(cat("kv_count ", kvCount, " at offset 16 is impossible: each key-value pair takes ",
                 "at least ", kMinKvBytes, " bytes and only ", rest, " bytes follow the header ",
                 "(file size ", size, ")"));
    }
    if (tensorCount > rest / kMinTensorInfoBytes ||
        kvCount * kMinKvBytes + tensorCount * kMinTensorInfoBytes > rest) {
        fail(cat("tensor_count ", tensorCount, " at offset 8 is impossible: each tensor info ",
                 "takes at least ", kMinTensorInfoBytes, " bytes and only ", rest, " bytes ",
                 "follow the header, with ", kvCount, " key-value pairs (file size ", size, ")"));
    }
    if (kvCount > kMaxKvCount) {
        fail(cat("kv_count ", kvCount, " at offset 16 exceeds the limit of ", kMaxKvCount));
    }
    if (tensorCount > kMaxTensorCount) {
        fail(cat("tensor_count ", tensorCount, " at offset 8 exceeds the limit of ",
                 kMaxTensorCount));
    }

    // Key-value pairs.
    ValueReader values(c);
    keyOrder.reserve(static_cast<size_t>(std::min<uint64_t>(kvCount, kMaxReserve)));
    for (uint64_t i = 0; i < kvCount; ++i) {
        const uint64_t keyAt = c.pos();
        c.setContext(cat("key ", i));
        std::string key = c.readString();
        c.setContext(cat("key '", key, "'"));
        if (metadata.count(key) != 0) {
            fail(cat("duplicate key '", key, "' at offset ", keyAt, " (key ", i, ")"));
        }
        const uint64_t typeAt = c.pos();
        const uint32_t type = c.read<uint32_t>("value type");
        if (!isKnownValueType(type)) {
            fail(cat("unknown value type ", type, " at offset ", typeAt, " (key '", key,
                     "'), expected 0 to 12"));
        }
        GgufValue value = values.read(static_cast<GgufType>(type), 0);
        keyOrder.push_back(key);
        metadata.emplace(std::move(key), std::move(value));
    }
    c.setContext("");

    if (const auto it = metadata.find(kAlignmentKey); it != metadata.end()) {
        if (it->second.type() != GgufType::UINT32) {
            fail(cat("key '", kAlignmentKey, "' has type ", describeType(it->second),
                     ", expected UINT32"));
        }
        const uint32_t a = std::get<uint32_t>(it->second.storage());
        if (!isPowerOfTwo(a)) {
            fail(cat("key '", kAlignmentKey, "' is ", a, ", which is not a power of two"));
        }
        alignment = a;
    }

    // Tensor infos.
    std::vector<uint64_t> offsetFieldAt;
    tensors.reserve(static_cast<size_t>(std::min<uint64_t>(tensorCount, kMaxReserve)));
    for (uint64_t i = 0; i < tensorCount; ++i) {
        GgufTensorInfo t;
        const uint64_t nameAt = c.pos();
        c.setContext(cat("name of tensor ", i));
        t.name = c.readString();
        const std::string where = cat("tensor '", t.name, "'");
        c.setContext(where);
        if (tensorIndex.count(t.name) != 0) {
            fail(cat("duplicate tensor name '", t.name, "' at offset ", nameAt, " (tensor ", i,
                     ")"));
        }

        const uint64_t nDimsAt = c.pos();
        const uint32_t nDims = c.read<uint32_t>("n_dims");
        if (nDims < 1 || nDims > kMaxDims) {
            fail(cat("n_dims ", nDims, " at offset ", nDimsAt, " (", where,
                     ") is out of range, expected 1 to ", kMaxDims, " (GGML_MAX_DIMS)"));
        }
        uint64_t elements = 1;
        for (uint32_t d = 0; d < nDims; ++d) {
            const uint64_t dimAt = c.pos();
            const uint64_t n = c.read<uint64_t>("dimension");
            if (n == 0) {
                fail(cat("dimension ne[", d, "] 0 at offset ", dimAt, " (", where,
                         ") is zero, every dimension must be at least 1"));
            }
            if (__builtin_mul_overflow(elements, n, &elements) ||
                elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                fail(cat("dimension ne[", d, "] ", n, " at offset ", dimAt, " (", where,
                         ") makes the element count overflow int64"));
            }
            t.ne.push_back(n);
        }

        const uint64_t typeAt = c.pos();
        const uint32_t type = c.read<uint32_t>("tensor type");
        t.type = static_cast<TensorType>(type);
        const auto layout = blockLayout(t.type);
        if (!layout) {
            fail(cat(where, " has unknown type ", type, " at offset ", typeAt));
        }
        if (t.ne[0] % layout->elements != 0) {
            fail(cat(where, " of type ", typeName(t.type), ": ne[0] ", t.ne[0],
                     " is not a multiple of the block size ", layout->elements));
        }
        const auto bytes = tensorBytes(t.type, elements);
        if (!bytes) {
            fail(cat(where, " of type ", typeName(t.type), " with ", elements,
                     " elements: the byte size overflows 64 bits"));
        }
        t.bytes = *bytes;

        offsetFieldAt.push_back(c.pos());
        t.offset = c.read<uint64_t>("tensor offset");
        tensorIndex.emplace(t.name, tensors.size());
        tensors.push_back(std::move(t));
    }
    c.setContext("");

    dataStart = alignUp(c.pos(), alignment);
    const uint64_t dataSize = size > dataStart ? size - dataStart : 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const GgufTensorInfo& t = tensors[i];
        if (t.offset % alignment != 0) {
            fail(cat("tensor '", t.name, "' offset ", t.offset, " at offset ", offsetFieldAt[i],
                     " is misaligned: not a multiple of the alignment ", alignment));
        }
        if (t.offset > dataSize || t.bytes > dataSize - t.offset) {
            fail(cat("tensor '", t.name, "' (offset ", t.offset, " at offset ", offsetFieldAt[i],
                     ", ", t.bytes, " bytes) runs past the end of the data section (", dataSize,
                     " bytes from offset ", dataStart, "; file size ", size, ")"));
        }
    }
}

GgufFile::GgufFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::open(const std::string& path) {
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) impl->fail(cat("cannot open: ", std::strerror(errno)));
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        impl->fail(cat("cannot stat: ", std::strerror(err)));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        impl->fail("not a regular file");
    }
    impl->size = static_cast<uint64_t>(st.st_size);
    if (impl->size > 0) {
        void* p = mmap(nullptr, static_cast<size_t>(impl->size), PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            const int err = errno;
            ::close(fd);
            impl->fail(cat("cannot map ", impl->size, " bytes: ", std::strerror(err)));
        }
        impl->map = p;
        impl->mapSize = static_cast<size_t>(impl->size);
        impl->data = static_cast<const uint8_t*>(p);
    }
    ::close(fd);  // the mapping stays valid
    impl->parse();
    return GgufFile(std::move(impl));
}

GgufFile GgufFile::fromBytes(std::vector<uint8_t> bytes, std::string name) {
    auto impl = std::make_unique<Impl>();
    impl->path = std::move(name);
    impl->owned = std::move(bytes);
    impl->data = impl->owned.data();
    impl->size = impl->owned.size();
    impl->parse();
    return GgufFile(std::move(impl));
}

const std::string& GgufFile::path() const {
    return impl_->path;
}
uint32_t GgufFile::version() const {
    return impl_->version;
}
uint32_t GgufFile::alignment() const {
    return impl_->alignment;
}
uint64_t GgufFile::fileSize() const {
    return impl_->size;
}
uint64_t GgufFile::dataOffset() const {
    return impl_->dataStart;
}

const std::map<std::string, GgufValue>& GgufFile::metadata() const {
    return impl_->metadata;
}
const std::vector<std::string>& GgufFile::keyOrder() const {
    return impl_->keyOrder;
}

const GgufValue* GgufFile::find(std::string_view key) const {
    const auto it = impl_->metadata.find(std::string(key));
    return it == impl_->metadata.end() ? nullptr : &it->second;
}

std::optional<uint64_t> GgufFile::getUint(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    const auto u = v->asUint();
    if (!u && v->asInt()) {
        impl_->fail(cat("key '", key, "' has negative value ", *v->asInt(),
                        ", expected an unsigned integer"));
    }
    impl_->typed(key, v, "an unsigned integer", u.has_value());
    return u;
}

std::optional<double> GgufFile::getFloat(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    const auto d = v->asDouble();
    impl_->typed(key, v, "FLOAT32 or FLOAT64", d.has_value());
    return d;
}

std::optional<std::string> GgufFile::getString(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    impl_->typed(key, v, "STRING", v->asString() != nullptr);
    return *v->asString();
}

std::optional<std::vector<std::string>> GgufFile::getStringArray(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    impl_->typed(key, v, "ARRAY of STRING",
                 v->type() == GgufType::ARRAY && v->elemType() == GgufType::STRING);
    std::vector<std::string> out;
    out.reserve(v->asArray()->size());
    for (const GgufValue& e : *v->asArray()) out.push_back(*e.asString());
    return out;
}

uint64_t GgufFile::requireUint(std::string_view key) const {
    const auto v = getUint(key);
    if (!v) impl_->fail(cat("key '", key, "' is missing (expected an unsigned integer)"));
    return *v;
}

double GgufFile::requireFloat(std::string_view key) const {
    const auto v = getFloat(key);
    if (!v) impl_->fail(cat("key '", key, "' is missing (expected FLOAT32 or FLOAT64)"));
    return *v;
}

std::string GgufFile::requireString(std::string_view key) const {
    auto v = getString(key);
    if (!v) impl_->fail(cat("key '", key, "' is missing (expected STRING)"));
    return std::move(*v);
}

const std::vector<GgufTensorInfo>& GgufFile::tensors() const {
    return impl_->tensors;
}

const GgufTensorInfo* GgufFile::findTensor(std::string_view name) const {
    const auto it = impl_->tensorIndex.find(std::string(name));
    return it == impl_->tensorIndex.end() ? nullptr : &impl_->tensors[it->second];
}

std::span<const uint8_t> GgufFile::tensorData(const GgufTensorInfo& t) const {
    const uint64_t dataSize = impl_->size - std::min(impl_->size, impl_->dataStart);
    if (t.offset > dataSize || t.bytes > dataSize - t.offset) {
        impl_->fail(cat("tensor '", t.name, "' (offset ", t.offset, ", ", t.bytes,
                        " bytes) lies outside the data section (", dataSize, " bytes)"));
    }
    return {impl_->data + impl_->dataStart + t.offset, static_cast<size_t>(t.bytes)};
}

}  // namespace kvscope
