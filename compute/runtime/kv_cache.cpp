// KvCache: blocks of rows allocated as the sequence grows, f32, f16, q8_0 or q4_0 elements; the
// eviction policies and copy-on-write blocks of the cache lab.
#include "runtime/kv_cache.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>

#include "core/error.h"
#include "gguf/dequant.h"
#include "model/model.h"

namespace kvscope {

namespace {

TensorType tensorTypeOf(KvType t) {
    switch (t) {
        case KvType::F16:
            return TensorType::F16;
        case KvType::Q8_0:
            return TensorType::Q8_0;
        case KvType::Q4_0:
            return TensorType::Q4_0;
        case KvType::F32:
            break;
    }
    return TensorType::F32;
}

std::atomic<uint64_t> nextBlockId{1};

}  // namespace

std::string kvTypeName(KvType t) {
    switch (t) {
        case KvType::F16:
            return "f16";
        case KvType::Q8_0:
            return "q8_0";
        case KvType::Q4_0:
            return "q4_0";
        case KvType::F32:
            break;
    }
    return "f32";
}

std::optional<KvType> parseKvType(std::string_view name) {
    for (KvType t : {KvType::F32, KvType::F16, KvType::Q8_0, KvType::Q4_0})
        if (name == kvTypeName(t)) return t;
    return std::nullopt;
}

size_t kvRowBytes(KvType t, int headDim) {
    const BlockLayout b = *blockLayout(tensorTypeOf(t));
    return static_cast<size_t>(headDim / b.elems) * static_cast<size_t>(b.bytes);
}

std::string kvTypeProblem(KvType t, int headDim) {
    const BlockLayout b = *blockLayout(tensorTypeOf(t));
    if (headDim % b.elems == 0) return {};
    return "a " + kvTypeName(t) + " KV cache stores blocks of " + std::to_string(b.elems) +
           " values, and this model's head_dim (" + std::to_string(headDim) +
           ") is not a multiple of " + std::to_string(b.elems);
}

void kvRoundTrip(KvType t, const float* src, float* dst, int n) {
    if (t == KvType::F32) {
        if (dst != src) std::memmove(dst, src, sizeof(float) * static_cast<size_t>(n));
        return;
    }
    std::vector<uint8_t> bytes(kvRowBytes(t, n));
    quantizeRow(tensorTypeOf(t), src, bytes.data(), n);
    dequantizeRow(tensorTypeOf(t), bytes.data(), dst, n);
}

void kvEncodeRow(KvType t, const float* src, void* dst, int n) {
    if (t == KvType::F32)
        std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
    else
        quantizeRow(tensorTypeOf(t), src, static_cast<uint8_t*>(dst), n);
}

void kvDecodeRow(KvType t, const void* src, float* dst, int n) {
    if (t == KvType::F32)
        std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
    else
        dequantizeRow(tensorTypeOf(t), static_cast<const uint8_t*>(src), dst, n);
}

KvCache::KvCache(int nLayer, int nHeadKv, int nCtx, int headDim, KvCacheOptions options)
    : nLayer_(nLayer),
      nHeadKv_(nHeadKv),
      nCtx_(nCtx),
      headDim_(headDim),
      options_(options),
      book_(1, 1) {
    KVSCOPE_CHECK(nLayer > 0 && nHeadKv > 0 && nCtx > 0 && headDim > 0 && options.blockTokens > 0,
                  "KV cache: every dimension must be positive");
    const std::string typeProblem = kvTypeProblem(options.type, headDim);
    KVSCOPE_CHECK(typeProblem.empty(), "KV cache: " + typeProblem);
    book_ = KvRows(nLayer, nCtx, options.eviction);               // checks the policy
    options_.blockTokens = std::min(options_.blockTokens, nCtx);  // never more than the context
    rowBytes_ = kvRowBytes(options.type, headDim);
}

std::shared_ptr<KvCache::Block> KvCache::newBlock() const {
    auto blk = std::make_shared<Block>();
    const size_t partBytes = blockBytes() / 2;
    blk->k.reset(new std::byte[partBytes]);
    blk->v.reset(new std::byte[partBytes]);
    blk->id = nextBlockId++;
    return blk;
}

void KvCache::reserve(int rows) {
    KVSCOPE_CHECK(rows >= 0 && rows <= nCtx_, "KV cache: " + std::to_string(rows) +
                                                  " tokens do not fit the context of " +
                                                  std::to_string(nCtx_));
    const int B = options_.blockTokens;
    const size_t need = static_cast<size_t>((rows + B - 1) / B);
    if (need <= blocks_.size()) return;
    std::vector<std::shared_ptr<Block>> fresh;
    try {
        fresh.reserve(need - blocks_.size());
        for (size_t b = blocks_.size(); b < need; ++b) fresh.push_back(newBlock());
        blocks_.reserve(need);
    } catch (const std::bad_alloc&) {
        throw Error("KV cache: cannot allocate " +
                    std::to_string(blockBytes() * (need - blocks_.size())) + " bytes for " +
                    std::to_string(need - blocks_.size()) + " more blocks of " + std::to_string(B) +
                    " tokens (" + std::to_string(rows) + " tokens in all)");
    }
    for (auto& blk : fresh) blocks_.push_back(std::move(blk));  // reserved: cannot throw
}

size_t KvCache::rowOffset(int layer, int kvHead, int row) const {
    KVSCOPE_CHECK(
        layer >= 0 && layer < nLayer_ && kvHead >= 0 && kvHead < nHeadKv_,
        "KV cache: no layer " + std::to_string(layer) + ", KV head " + std::to_string(kvHead));
    return ((static_cast<size_t>(layer) * nHeadKv_ + kvHead) * options_.blockTokens +
            static_cast<size_t>(row % options_.blockTokens)) *
           rowBytes_;
}

KvCache::Block& KvCache::writable(int b) {
    std::shared_ptr<Block>& blk = blocks_[static_cast<size_t>(b)];
    if (blk.use_count() > 1) {  // another cache holds it: copy before writing
        std::shared_ptr<Block> copy = newBlock();
        const size_t partBytes = blockBytes() / 2;
        std::memcpy(copy->k.get(), blk->k.get(), partBytes);
        std::memcpy(copy->v.get(), blk->v.get(), partBytes);
        blk = std::move(copy);
    }
    return *blk;
}

void KvCache::write(int layer, int kvHead, int row, const float* key, const float* value) {
    const int b = row / options_.blockTokens;
    KVSCOPE_CHECK(row >= 0 && b < blocksAllocated(),
                  "KV cache: row " + std::to_string(row) + " is not reserved");
    const size_t off = rowOffset(layer, kvHead, row);
    Block& blk = writable(b);
    std::byte* k = blk.k.get() + off;
    std::byte* v = blk.v.get() + off;
    if (options_.type == KvType::F32) {
        std::memcpy(k, key, rowBytes_);
        std::memcpy(v, value, rowBytes_);
        return;
    }
    const TensorType t = tensorTypeOf(options_.type);
    quantizeRow(t, key, reinterpret_cast<uint8_t*>(k), headDim_);
    quantizeRow(t, value, reinterpret_cast<uint8_t*>(v), headDim_);
}

const float* KvCache::block(bool keys, int layer, int kvHead, int b, float* scratch) const {
    KVSCOPE_CHECK(b >= 0 && b < blocksAllocated(), "KV cache: block " + std::to_string(b) + " of " +
                                                       std::to_string(blocksAllocated()));
    const Block& blk = *blocks_[static_cast<size_t>(b)];
    const std::byte* p = (keys ? blk.k : blk.v).get() + rowOffset(layer, kvHead, 0);
    if (options_.type == KvType::F32) return reinterpret_cast<const float*>(p);
    dequantizeRow(tensorTypeOf(options_.type), reinterpret_cast<const uint8_t*>(p), scratch,
                  static_cast<int64_t>(options_.blockTokens) * headDim_);
    return scratch;
}

const float* KvCache::keyBlock(int layer, int kvHead, int b, float* scratch) const {
    return block(true, layer, kvHead, b, scratch);
}
const float* KvCache::valueBlock(int layer, int kvHead, int b, float* scratch) const {
    return block(false, layer, kvHead, b, scratch);
}

void KvCache::read(bool keys, int layer, int kvHead, int row, float* dst) const {
    const int b = row / options_.blockTokens;
    KVSCOPE_CHECK(row >= 0 && b < blocksAllocated(),
                  "KV cache: row " + std::to_string(row) + " is not reserved");
    const Block& blk = *blocks_[static_cast<size_t>(b)];
    const std::byte* p = (keys ? blk.k : blk.v).get() + rowOffset(layer, kvHead, row);
    if (options_.type == KvType::F32) {
        std::memcpy(dst, p, rowBytes_);
        return;
    }
    dequantizeRow(tensorTypeOf(options_.type), reinterpret_cast<const uint8_t*>(p), dst, headDim_);
}

void KvCache::readKey(int layer, int kvHead, int row, float* dst) const {
    read(true, layer, kvHead, row, dst);
}
void KvCache::readValue(int layer, int kvHead, int row, float* dst) const {
    read(false, layer, kvHead, row, dst);
}

void KvCache::begin(int n) {
    KVSCOPE_CHECK(pending() == 0, "KV cache: a pass is already under way");
    KVSCOPE_CHECK(n >= 0 && static_cast<int64_t>(used()) + n <= nCtx_,
                  "KV cache: " + std::to_string(used()) + " + " + std::to_string(n) +
                      " tokens do not fit the context of " + std::to_string(nCtx_));
    KVSCOPE_CHECK(static_cast<int64_t>(rows()) + n <=
                      static_cast<int64_t>(blocksAllocated()) * options_.blockTokens,
                  "KV cache: " + std::to_string(rows()) + " + " + std::to_string(n) +
                      " rows exceed the " + std::to_string(blocksAllocated()) + " blocks reserved");
    book_.begin(n);
}

void KvCache::moveRow(int layer, int from, int to) {
    Block& dst = writable(to / options_.blockTokens);
    const Block& src = *blocks_[static_cast<size_t>(from / options_.blockTokens)];
    for (int g = 0; g < nHeadKv_; ++g) {
        std::memmove(dst.k.get() + rowOffset(layer, g, to), src.k.get() + rowOffset(layer, g, from),
                     rowBytes_);
        std::memmove(dst.v.get() + rowOffset(layer, g, to), src.v.get() + rowOffset(layer, g, from),
                     rowBytes_);
    }
}

void KvCache::commit(int n) {
    if (pending() == 0 && n > 0) begin(n);
    book_.commit(n, [this](int layer, int from, int to) { moveRow(layer, from, to); });
    if (!options_.eviction.evicts()) return;
    // Blocks past the next token's row go back (one spare row's block stays, so that a cache at
    // its budget does not free and allocate a block every step).
    const int B = options_.blockTokens;
    const size_t keep = static_cast<size_t>((std::min(rows() + 1, nCtx_) + B - 1) / B);
    if (blocks_.size() > keep) blocks_.resize(keep);
}

void KvCache::truncate(int n) {
    book_.truncate(n);  // checks n and the policy
    const int B = options_.blockTokens;
    blocks_.resize(static_cast<size_t>((rows() + B - 1) / B));
}

void KvCache::clear() {
    book_.clear();
    blocks_.clear();
}

KvCache KvCache::fork() const {
    KVSCOPE_CHECK(pending() == 0, "KV cache: cannot fork during a pass");
    return *this;  // the same blocks, shared: each side copies one before writing to it
}

uint64_t KvCache::blockId(int b) const {
    KVSCOPE_CHECK(b >= 0 && b < blocksAllocated(), "KV cache: no block " + std::to_string(b));
    return blocks_[static_cast<size_t>(b)]->id;
}

long KvCache::blockRefs(int b) const {
    KVSCOPE_CHECK(b >= 0 && b < blocksAllocated(), "KV cache: no block " + std::to_string(b));
    return blocks_[static_cast<size_t>(b)].use_count();
}

size_t KvCache::unsharedBytes() const {
    size_t n = 0;
    for (const auto& blk : blocks_)
        if (blk.use_count() == 1) n += blockBytes();
    return n;
}

size_t KvCache::bytesPerToken() const {
    return 2 * static_cast<size_t>(nLayer_) * static_cast<size_t>(nHeadKv_) * rowBytes_;
}

}  // namespace kvscope
