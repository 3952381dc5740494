// KvCache: blocks of positions allocated as the sequence grows, f32 or f16 elements.
#include "runtime/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "core/error.h"
#include "gguf/dequant.h"
#include "model/model.h"

namespace kvscope {

std::string kvTypeName(KvType t) {
    return t == KvType::F16 ? "f16" : "f32";
}

std::optional<KvType> parseKvType(std::string_view name) {
    if (name == "f32") return KvType::F32;
    if (name == "f16") return KvType::F16;
    return std::nullopt;
}

size_t kvElementBytes(KvType t) {
    return t == KvType::F16 ? 2 : 4;
}

KvCache::KvCache(int nLayer, int nHeadKv, int nCtx, int headDim, KvCacheOptions options)
    : nLayer_(nLayer), nHeadKv_(nHeadKv), nCtx_(nCtx), headDim_(headDim), options_(options) {
    KVSCOPE_CHECK(nLayer > 0 && nHeadKv > 0 && nCtx > 0 && headDim > 0 && options.blockTokens > 0,
                  "KV cache: every dimension must be positive");
    options_.blockTokens = std::min(options_.blockTokens, nCtx);  // never more than the context
}

void KvCache::reserve(int tokens) {
    KVSCOPE_CHECK(tokens >= 0 && tokens <= nCtx_, "KV cache: " + std::to_string(tokens) +
                                                      " tokens do not fit the context of " +
                                                      std::to_string(nCtx_));
    const int B = options_.blockTokens;
    const size_t need = static_cast<size_t>((tokens + B - 1) / B);
    if (need <= blocks_.size()) return;
    const size_t partBytes = bytesPerToken() / 2 * static_cast<size_t>(B);
    std::vector<Block> fresh;
    try {
        fresh.reserve(need - blocks_.size());
        for (size_t b = blocks_.size(); b < need; ++b) {
            Block blk;
            blk.k.reset(new std::byte[partBytes]);
            blk.v.reset(new std::byte[partBytes]);
            fresh.push_back(std::move(blk));
        }
        blocks_.reserve(need);
    } catch (const std::bad_alloc&) {
        throw Error("KV cache: cannot allocate " +
                    std::to_string(2 * partBytes * (need - blocks_.size())) + " bytes for " +
                    std::to_string(need - blocks_.size()) + " more blocks of " + std::to_string(B) +
                    " tokens (" + std::to_string(tokens) + " tokens in all)");
    }
    for (Block& blk : fresh) blocks_.push_back(std::move(blk));  // reserved: cannot throw
}

size_t KvCache::rowOffset(int layer, int kvHead, int row) const {
    KVSCOPE_CHECK(
        layer >= 0 && layer < nLayer_ && kvHead >= 0 && kvHead < nHeadKv_,
        "KV cache: no layer " + std::to_string(layer) + ", KV head " + std::to_string(kvHead));
    return ((static_cast<size_t>(layer) * nHeadKv_ + kvHead) * options_.blockTokens + row) *
           headDim_;
}

const std::byte* KvCache::row(const std::unique_ptr<std::byte[]>& part, int layer, int kvHead,
                              int pos) const {
    return part.get() +
           rowOffset(layer, kvHead, pos % options_.blockTokens) * kvElementBytes(options_.type);
}

void KvCache::write(int layer, int kvHead, int pos, const float* key, const float* value) {
    const int b = pos / options_.blockTokens;
    KVSCOPE_CHECK(pos >= 0 && b < blocksAllocated(),
                  "KV cache: position " + std::to_string(pos) + " is not reserved");
    Block& blk = blocks_[static_cast<size_t>(b)];
    auto* k = const_cast<std::byte*>(row(blk.k, layer, kvHead, pos));
    auto* v = const_cast<std::byte*>(row(blk.v, layer, kvHead, pos));
    if (options_.type == KvType::F32) {
        std::memcpy(k, key, sizeof(float) * static_cast<size_t>(headDim_));
        std::memcpy(v, value, sizeof(float) * static_cast<size_t>(headDim_));
        return;
    }
    for (int d = 0; d < headDim_; ++d) {
        const uint16_t hk = f32ToF16(key[d]), hv = f32ToF16(value[d]);
        std::memcpy(k + 2 * d, &hk, 2);
        std::memcpy(v + 2 * d, &hv, 2);
    }
}

const float* KvCache::block(bool keys, int layer, int kvHead, int b, float* scratch) const {
    KVSCOPE_CHECK(b >= 0 && b < blocksAllocated(), "KV cache: block " + std::to_string(b) + " of " +
                                                       std::to_string(blocksAllocated()));
    const Block& blk = blocks_[static_cast<size_t>(b)];
    const std::byte* p = row(keys ? blk.k : blk.v, layer, kvHead, 0);
    if (options_.type == KvType::F32) return reinterpret_cast<const float*>(p);
    const size_t n = static_cast<size_t>(options_.blockTokens) * headDim_;
    for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        scratch[i] = f16ToF32(h);
    }
    return scratch;
}

const float* KvCache::keyBlock(int layer, int kvHead, int b, float* scratch) const {
    return block(true, layer, kvHead, b, scratch);
}
const float* KvCache::valueBlock(int layer, int kvHead, int b, float* scratch) const {
    return block(false, layer, kvHead, b, scratch);
}

void KvCache::read(bool keys, int layer, int kvHead, int pos, float* dst) const {
    const int b = pos / options_.blockTokens;
    KVSCOPE_CHECK(pos >= 0 && b < blocksAllocated(),
                  "KV cache: position " + std::to_string(pos) + " is not reserved");
    const Block& blk = blocks_[static_cast<size_t>(b)];
    const std::byte* p = row(keys ? blk.k : blk.v, layer, kvHead, pos);
    if (options_.type == KvType::F32) {
        std::memcpy(dst, p, sizeof(float) * static_cast<size_t>(headDim_));
        return;
    }
    for (int d = 0; d < headDim_; ++d) {
        uint16_t h;
        std::memcpy(&h, p + 2 * d, 2);
        dst[d] = f16ToF32(h);
    }
}

void KvCache::readKey(int layer, int kvHead, int pos, float* dst) const {
    read(true, layer, kvHead, pos, dst);
}
void KvCache::readValue(int layer, int kvHead, int pos, float* dst) const {
    read(false, layer, kvHead, pos, dst);
}

void KvCache::commit(int n) {
    KVSCOPE_CHECK(n >= 0 && static_cast<int64_t>(used_) + n <=
                                static_cast<int64_t>(blocksAllocated()) * options_.blockTokens,
                  "KV cache: " + std::to_string(used_) + " + " + std::to_string(n) +
                      " tokens exceed the " + std::to_string(blocksAllocated()) +
                      " blocks reserved");
    used_ += n;
}

void KvCache::truncate(int n) {
    KVSCOPE_CHECK(n >= 0 && n <= used_, "KV cache: cannot keep " + std::to_string(n) + " of " +
                                            std::to_string(used_) + " tokens");
    used_ = n;
    const int B = options_.blockTokens;
    blocks_.resize(static_cast<size_t>((n + B - 1) / B));
}

size_t KvCache::bytesPerToken() const {
    return kvBytesPerToken(nLayer_, nHeadKv_, headDim_, kvElementBytes(options_.type));
}

}  // namespace kvscope
