// GGUF writer: metadata and tensors laid out as the format says, written atomically.
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
// GgufWriter

namespace {

class Buffer {
  public:
    std::vector<uint8_t> bytes;

    void raw(const void* p, size_t n) {
        if (n == 0) return;
        // resize + memcpy rather than insert: GCC 12 warns falsely (-Wstringop-overflow) when it
        // inlines a small insert of a just-grown vector
        const size_t at = bytes.size();
        bytes.resize(at + n);
        std::memcpy(bytes.data() + at, p, n);
    }
    template <typename T>
    void put(T v) {
        raw(&v, sizeof v);
    }
    void str(const std::string& s) {
        put<uint64_t>(s.size());
        raw(s.data(), s.size());
    }
    void padTo(uint64_t alignment) { bytes.resize(alignUp(bytes.size(), alignment), 0); }

    void value(const GgufValue& v) {
        std::visit(
            [this, &v](const auto& x) {
                using T = std::decay_t<decltype(x)>;
                if constexpr (std::is_same_v<T, std::string>) {
                    str(x);
                } else if constexpr (std::is_same_v<T, GgufValue::Array>) {
                    put(static_cast<uint32_t>(v.elemType()));
                    put<uint64_t>(x.size());
                    for (const GgufValue& e : x) value(e);
                } else if constexpr (std::is_same_v<T, bool>) {
                    put<uint8_t>(x ? 1 : 0);
                } else {
                    put(x);
                }
            },
            v.storage());
    }
};

}  // namespace

void GgufWriter::setAlignment(uint32_t alignment) {
    set(kAlignmentKey, GgufValue::u32(alignment));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
    if (key == kAlignmentKey) {
        if (value.type() != GgufType::UINT32) {
            throw Error(cat("GgufWriter: key '", key, "' has type ", describeType(value),
                            ", expected UINT32"));
        }
        const uint32_t a = std::get<uint32_t>(value.storage());
        if (!isPowerOfTwo(a)) {
            throw Error(cat("GgufWriter: alignment ", a, " is not a power of two"));
        }
        alignment_ = a;
    }
    for (auto& [k, v] : kv_) {
        if (k == key) {
            v = std::move(value);
            return;
        }
    }
    kv_.emplace_back(key, std::move(value));
}

bool GgufWriter::erase(const std::string& key) {
    const auto it =
        std::find_if(kv_.begin(), kv_.end(), [&](const auto& kv) { return kv.first == key; });
    if (it == kv_.end()) return false;
    kv_.erase(it);
    if (key == kAlignmentKey) alignment_ = 32;
    return true;
}

std::vector<std::string> GgufWriter::keys() const {
    std::vector<std::string> out;
    out.reserve(kv_.size());
    for (const auto& kv : kv_) out.push_back(kv.first);
    return out;
}

void GgufWriter::addTensor(const std::string& name, TensorType type, std::vector<uint64_t> ne,
                           std::vector<uint8_t> data) {
    const std::string where = cat("GgufWriter: tensor '", name, "'");
    for (const Tensor& t : tensors_) {
        if (t.name == name) throw Error(where + " was already added");
    }
    if (ne.empty() || ne.size() > kMaxDims) {
        throw Error(cat(where, " has ", ne.size(), " dimensions, expected 1 to ", kMaxDims));
    }
    const auto layout = blockLayout(type);
    if (!layout) throw Error(cat(where, " has unknown type ", static_cast<uint32_t>(type)));
    uint64_t elements = 1;
    for (uint64_t n : ne) {
        if (n == 0 || __builtin_mul_overflow(elements, n, &elements)) {
            throw Error(cat(where, ": a dimension is zero or the element count overflows"));
        }
    }
    if (ne[0] % layout->elements != 0) {
        throw Error(cat(where, ": ne[0] ", ne[0], " is not a multiple of the block size ",
                        layout->elements, " of ", typeName(type)));
    }
    const auto bytes = tensorBytes(type, elements);
    if (!bytes || *bytes != data.size()) {
        throw Error(cat(where, " of type ", typeName(type), " with ", elements, " elements needs ",
                        bytes ? cat(*bytes) : std::string("too many"), " bytes, got ",
                        data.size()));
    }
    tensors_.push_back({name, type, std::move(ne), std::move(data)});
}

void GgufWriter::addTensorF32(const std::string& name, std::vector<uint64_t> ne,
                              const std::vector<float>& values) {
    std::vector<uint8_t> data(values.size() * sizeof(float));
    if (!values.empty()) std::memcpy(data.data(), values.data(), data.size());
    addTensor(name, TensorType::F32, std::move(ne), std::move(data));
}

std::vector<uint8_t> GgufWriter::toBytes() const {
    if (version_ != 2 && version_ != 3) {
        throw Error(cat("GgufWriter: version ", version_, ", expected 2 or 3"));
    }
    Buffer b;
    b.raw("GGUF", 4);
    b.put<uint32_t>(version_);
    b.put<uint64_t>(tensors_.size());
    b.put<uint64_t>(kv_.size());
    for (const auto& [key, value] : kv_) {
        b.str(key);
        b.put(static_cast<uint32_t>(value.type()));
        b.value(value);
    }

    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const Tensor& t : tensors_) {
        next = alignUp(next, alignment_);
        offsets.push_back(next);
        next += t.data.size();
    }
    for (size_t i = 0; i < tensors_.size(); ++i) {
        const Tensor& t = tensors_[i];
        b.str(t.name);
        b.put(static_cast<uint32_t>(t.ne.size()));
        for (uint64_t n : t.ne) b.put(n);
        b.put(static_cast<uint32_t>(t.type));
        b.put(offsets[i]);
    }

    b.padTo(alignment_);
    const uint64_t dataStart = b.bytes.size();
    for (size_t i = 0; i < tensors_.size(); ++i) {
        b.bytes.resize(dataStart + offsets[i], 0);
        b.raw(tensors_[i].data.data(), tensors_[i].data.size());
    }
    b.padTo(alignment_);  // as llama.cpp does: the file ends on an aligned size
    return std::move(b.bytes);
}

void GgufWriter::write(const std::string& path) const {
    const std::vector<uint8_t> bytes = toBytes();
    const std::string tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) throw Error(cat(path, ": cannot write ", tmp, ": ", std::strerror(errno)));
    bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    int err = ok ? 0 : errno;
    if (std::fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    std::error_code ec;
    if (!ok) {
        std::filesystem::remove(tmp, ec);
        throw Error(cat(path, ": cannot write ", tmp, ": ", std::strerror(err)));
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw Error(cat(path, ": cannot rename ", tmp, " to it: ", ec.message()));
    }
}

}  // namespace kvscope
