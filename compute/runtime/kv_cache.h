// KvCache: per-layer key and value storage of one sequence, the subject of the whole app.
// It grows as tokens arrive, in blocks of blockTokens() positions (as paged caches allocate
// it), up to nCtx() positions; nothing is allocated for positions that were never reached, so
// allocatedBytes() is what the engine really holds. A block of layer l holds, for each KV head,
// blockTokens() rows of head_dim elements for K and the same for V, stored as f32 or f16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvscope {

enum class KvType { F32, F16 };

std::string kvTypeName(KvType t);                          // "f32", "f16"
std::optional<KvType> parseKvType(std::string_view name);  // "f32" or "f16"
size_t kvElementBytes(KvType t);                           // 4 or 2

struct KvCacheOptions {
    KvType type = KvType::F32;
    int blockTokens = 256;
};

class KvCache {
  public:
    // Allocates nothing yet; throws Error unless every dimension is positive.
    KvCache(int nLayer, int nHeadKv, int nCtx, int headDim, KvCacheOptions options = {});

    int nLayer() const { return nLayer_; }
    int nHeadKv() const { return nHeadKv_; }
    int nCtx() const { return nCtx_; }
    int headDim() const { return headDim_; }
    KvType type() const { return options_.type; }
    int blockTokens() const { return options_.blockTokens; }  // at most nCtx()
    int blocksAllocated() const { return static_cast<int>(blocks_.size()); }

    // Makes room for positions [0, tokens): allocates the blocks they need. Throws Error naming
    // the bytes, with the cache unchanged, if tokens > nCtx() or the memory is not there.
    void reserve(int tokens);

    // Stores the key and value rows (head_dim floats each, converted to the element type) of the
    // token at `pos`, which must be reserved.
    void write(int layer, int kvHead, int pos, const float* key, const float* value);
    // The key (or value) rows of one block as float32: the stored rows themselves for f32, else
    // converted into `scratch` (blockTokens() × head_dim floats). Rows past used() are
    // unspecified.
    const float* keyBlock(int layer, int kvHead, int block, float* scratch) const;
    const float* valueBlock(int layer, int kvHead, int block, float* scratch) const;
    // One row as float32 into dst (head_dim floats).
    void readKey(int layer, int kvHead, int pos, float* dst) const;
    void readValue(int layer, int kvHead, int pos, float* dst) const;

    int used() const { return used_; }  // tokens held
    // Marks `n` more tokens as held; call after their rows have been written.
    // Throws Error unless used() + n fits the reserved blocks.
    void commit(int n);
    // Drops tokens so that `n` remain (the app's step back) and frees the blocks no longer
    // needed. Throws Error unless 0 <= n <= used().
    void truncate(int n);
    void clear() { truncate(0); }

    // Bytes of K and V for one token: 2 × layers × kv_heads × head_dim × element bytes.
    size_t bytesPerToken() const;
    size_t usedBytes() const { return bytesPerToken() * static_cast<size_t>(used_); }
    size_t allocatedBytes() const {
        return bytesPerToken() * static_cast<size_t>(blocks_.size()) *
               static_cast<size_t>(options_.blockTokens);
    }

  private:
    struct Block {
        std::unique_ptr<std::byte[]> k, v;  // each (n_layer, n_head_kv, blockTokens, head_dim)
    };
    size_t rowOffset(int layer, int kvHead, int row) const;  // elements into a block
    const std::byte* row(const std::unique_ptr<std::byte[]>& part, int layer, int kvHead,
                         int pos) const;
    const float* block(bool keys, int layer, int kvHead, int b, float* scratch) const;
    void read(bool keys, int layer, int kvHead, int pos, float* dst) const;

    int nLayer_, nHeadKv_, nCtx_, headDim_;
    KvCacheOptions options_;
    int used_ = 0;
    std::vector<Block> blocks_;
};

}  // namespace kvscope
