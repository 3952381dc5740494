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

std::string EvictionPolicy::text() const {
    if (!evicts()) return "none";
    std::string s;
    if (sinks > 0) s += "sinks " + std::to_string(sinks) + " + ";
    if (heavy > 0) s += "heavy " + std::to_string(heavy) + " + ";
    return s + "window " + std::to_string(window);
}

std::string EvictionPolicy::problem() const {
    if (window < 0 || sinks < 0 || heavy < 0)
        return "the window, sinks and heavy hitters are counts of tokens (0 or more)";
    if (window == 0 && (sinks > 0 || heavy > 0))
        return "attention sinks and heavy hitters are kept beside a window of recent tokens: give "
               "a window too";
    return {};
}

KvCache::KvCache(int nLayer, int nHeadKv, int nCtx, int headDim, KvCacheOptions options)
    : nLayer_(nLayer), nHeadKv_(nHeadKv), nCtx_(nCtx), headDim_(headDim), options_(options) {
    KVSCOPE_CHECK(nLayer > 0 && nHeadKv > 0 && nCtx > 0 && headDim > 0 && options.blockTokens > 0,
                  "KV cache: every dimension must be positive");
    const std::string typeProblem = kvTypeProblem(options.type, headDim);
    KVSCOPE_CHECK(typeProblem.empty(), "KV cache: " + typeProblem);
    const std::string policyProblem = options.eviction.problem();
    KVSCOPE_CHECK(policyProblem.empty(), "KV cache policy: " + policyProblem);
    options_.blockTokens = std::min(options_.blockTokens, nCtx);  // never more than the context
    rowBytes_ = kvRowBytes(options.type, headDim);
    rowPos_.resize(static_cast<size_t>(nLayer));
    score_.resize(static_cast<size_t>(nLayer));
    evictedAt_.resize(static_cast<size_t>(nLayer));
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

void KvCache::checkLayer(int layer) const {
    KVSCOPE_CHECK(layer >= 0 && layer < nLayer_, "KV cache: no layer " + std::to_string(layer));
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
    KVSCOPE_CHECK(pending_ == 0, "KV cache: a pass is already under way");
    KVSCOPE_CHECK(n >= 0 && static_cast<int64_t>(used_) + n <= nCtx_,
                  "KV cache: " + std::to_string(used_) + " + " + std::to_string(n) +
                      " tokens do not fit the context of " + std::to_string(nCtx_));
    KVSCOPE_CHECK(static_cast<int64_t>(rows_) + n <=
                      static_cast<int64_t>(blocksAllocated()) * options_.blockTokens,
                  "KV cache: " + std::to_string(rows_) + " + " + std::to_string(n) +
                      " rows exceed the " + std::to_string(blocksAllocated()) + " blocks reserved");
    if (options_.eviction.heavy > 0) savedScore_ = score_;
    for (int l = 0; l < nLayer_; ++l) {
        const auto L = static_cast<size_t>(l);
        for (int i = 0; i < n; ++i) {
            rowPos_[L].push_back(used_ + i);
            score_[L].push_back(0.0f);
            evictedAt_[L].push_back(kHeld);
        }
    }
    pending_ = n;
}

bool KvCache::visible(int layer, int row, int pos) const {
    const auto L = static_cast<size_t>(layer);
    const int p = rowPos_[L][static_cast<size_t>(row)];
    if (p > pos) return false;
    const EvictionPolicy& e = options_.eviction;
    if (!e.evicts() || p < e.sinks || p > pos - e.window) return true;
    return e.heavy > 0 && evictedAt_[L][static_cast<size_t>(p)] >= pos;
}

void KvCache::noteQuery(int layer, int pos, const float* rowWeights) {
    const EvictionPolicy& e = options_.eviction;
    if (e.heavy <= 0) return;
    checkLayer(layer);
    const auto L = static_cast<size_t>(layer);
    const int R = rows_ + pending_;
    std::vector<float>& s = score_[L];
    for (int r = 0; r < R; ++r) s[static_cast<size_t>(r)] += rowWeights[r];
    // The rows that have left the window after this query (not sinks, still held): past `heavy`
    // of them, the one with the least attention goes (ties: the earliest).
    int count = 0, worst = -1;
    for (int r = 0; r < R; ++r) {
        const int p = rowPos_[L][static_cast<size_t>(r)];
        if (p < e.sinks || p > pos - e.window + 1 || evictedAt_[L][static_cast<size_t>(p)] != kHeld)
            continue;
        ++count;
        if (worst < 0 || s[static_cast<size_t>(r)] < s[static_cast<size_t>(worst)]) worst = r;
    }
    if (count > e.heavy)
        evictedAt_[L][static_cast<size_t>(rowPos_[L][static_cast<size_t>(worst)])] = pos;
}

void KvCache::evictByPosition(int layer, int lastPos) {
    const EvictionPolicy& e = options_.eviction;
    const auto L = static_cast<size_t>(layer);
    for (int r = 0; r < rows_; ++r) {
        const int p = rowPos_[L][static_cast<size_t>(r)];
        if (p >= e.sinks && p <= lastPos - e.window + 1 &&
            evictedAt_[L][static_cast<size_t>(p)] == kHeld)
            evictedAt_[L][static_cast<size_t>(p)] = p + e.window - 1;  // the last query to see it
    }
}

void KvCache::compact() {
    int kept = -1;
    for (int l = 0; l < nLayer_; ++l) {
        const auto L = static_cast<size_t>(l);
        int dst = 0;
        for (int r = 0; r < rows_; ++r) {
            const int p = rowPos_[L][static_cast<size_t>(r)];
            if (evictedAt_[L][static_cast<size_t>(p)] != kHeld) continue;
            if (dst != r) {
                Block& to = writable(dst / options_.blockTokens);
                const Block& from = *blocks_[static_cast<size_t>(r / options_.blockTokens)];
                for (int g = 0; g < nHeadKv_; ++g) {
                    std::memmove(to.k.get() + rowOffset(l, g, dst),
                                 from.k.get() + rowOffset(l, g, r), rowBytes_);
                    std::memmove(to.v.get() + rowOffset(l, g, dst),
                                 from.v.get() + rowOffset(l, g, r), rowBytes_);
                }
                rowPos_[L][static_cast<size_t>(dst)] = p;
                score_[L][static_cast<size_t>(dst)] = score_[L][static_cast<size_t>(r)];
            }
            ++dst;
        }
        rowPos_[L].resize(static_cast<size_t>(dst));
        score_[L].resize(static_cast<size_t>(dst));
        KVSCOPE_CHECK(kept < 0 || kept == dst, "KV cache: layers kept different numbers of rows");
        kept = dst;
    }
    rows_ = kept;
    // Blocks past the next token's row go back (one spare row's block stays, so that a cache at
    // its budget does not free and allocate a block every step).
    const int B = options_.blockTokens;
    const size_t keep = static_cast<size_t>((std::min(rows_ + 1, nCtx_) + B - 1) / B);
    if (blocks_.size() > keep) blocks_.resize(keep);
}

void KvCache::commit(int n) {
    if (pending_ == 0 && n > 0) begin(n);
    KVSCOPE_CHECK(n == pending_, "KV cache: committing " + std::to_string(n) +
                                     " tokens of a pass of " + std::to_string(pending_));
    used_ += n;
    rows_ += n;
    pending_ = 0;
    savedScore_.clear();
    const EvictionPolicy& e = options_.eviction;
    if (!e.evicts()) return;
    if (e.heavy == 0)
        for (int l = 0; l < nLayer_; ++l) evictByPosition(l, used_ - 1);
    compact();
}

void KvCache::abandon() {
    if (pending_ == 0) return;
    for (int l = 0; l < nLayer_; ++l) {
        const auto L = static_cast<size_t>(l);
        rowPos_[L].resize(static_cast<size_t>(rows_));
        evictedAt_[L].resize(static_cast<size_t>(used_));
        for (int& at : evictedAt_[L])  // evictions decided by the pass's queries
            if (at != kHeld && at >= used_) at = kHeld;
    }
    if (options_.eviction.heavy > 0)
        score_ = savedScore_;
    else
        for (auto& s : score_) s.resize(static_cast<size_t>(rows_));
    savedScore_.clear();
    pending_ = 0;
}

std::vector<int> KvCache::heldPositions(int layer) const {
    checkLayer(layer);
    const auto& pos = rowPos_[static_cast<size_t>(layer)];
    return {pos.begin(), pos.begin() + rows_};
}

bool KvCache::canTruncate(int n) const {
    if (n < 0 || n > used_) return false;
    if (n == used_ || n == 0 || !options_.eviction.evicts()) return true;
    if (options_.eviction.heavy > 0) return false;
    for (const auto& at : evictedAt_)
        for (int p = 0; p < n; ++p)
            if (at[static_cast<size_t>(p)] != kHeld && at[static_cast<size_t>(p)] >= n)
                return false;
    return true;
}

void KvCache::truncate(int n) {
    KVSCOPE_CHECK(pending_ == 0, "KV cache: cannot truncate during a pass");
    KVSCOPE_CHECK(n >= 0 && n <= used_, "KV cache: cannot keep " + std::to_string(n) + " of " +
                                            std::to_string(used_) + " tokens");
    KVSCOPE_CHECK(canTruncate(n), "KV cache: the " + options_.eviction.text() +
                                      " policy has let go of rows held after " + std::to_string(n) +
                                      " tokens; run them again instead");
    if (n == 0) {
        clear();
        return;
    }
    int kept = 0;
    for (int l = 0; l < nLayer_; ++l) {
        const auto L = static_cast<size_t>(l);
        auto& pos = rowPos_[L];
        const auto cut = std::lower_bound(pos.begin(), pos.end(), n);
        kept = static_cast<int>(cut - pos.begin());
        pos.erase(cut, pos.end());
        score_[L].resize(pos.size());
        evictedAt_[L].resize(static_cast<size_t>(n));
    }
    used_ = n;
    rows_ = kept;
    const int B = options_.blockTokens;
    blocks_.resize(static_cast<size_t>((rows_ + B - 1) / B));
}

void KvCache::clear() {
    KVSCOPE_CHECK(pending_ == 0, "KV cache: cannot clear during a pass");
    used_ = rows_ = 0;
    for (int l = 0; l < nLayer_; ++l) {
        const auto L = static_cast<size_t>(l);
        rowPos_[L].clear();
        score_[L].clear();
        evictedAt_[L].clear();
    }
    blocks_.clear();
}

KvCache KvCache::fork() const {
    KVSCOPE_CHECK(pending_ == 0, "KV cache: cannot fork during a pass");
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
