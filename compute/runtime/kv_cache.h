// KvCache: per-layer key and value storage of one sequence, the subject of the whole app.
// It grows as tokens arrive, in blocks of blockTokens() rows (as paged caches allocate it), up to
// nCtx() positions; nothing is allocated for rows that were never reached, so allocatedBytes() is
// what the engine really holds. A block holds, for each layer and KV head, blockTokens() rows of
// head_dim elements for K and the same for V, stored as f32, f16, q8_0 or q4_0 (the block formats
// of the weights, gguf/dequant.h).
//
// Cache policies (the cache lab, ARCHITECTURE.md): an eviction policy (a sliding window,
// attention sinks, heavy hitters) decides which earlier tokens a query still sees; the rows it
// drops leave the cache, and the rows that stay are compacted, in order of position, so that the
// memory held is that of the policy's budget. Without one, row r holds position r.
//
// Blocks are shared between a cache and its fork() (prefix sharing, as vLLM's block tables):
// each block has a reference count, and a block is copied before a write changes it while
// another cache still holds it (copy on write).
#pragma once

#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/kv_rows.h"

namespace kvscope {

enum class KvType { F32, F16, Q8_0, Q4_0 };

std::string kvTypeName(KvType t);                          // "f32", "f16", "q8_0", "q4_0"
std::optional<KvType> parseKvType(std::string_view name);  // one of those names
// Bytes of one row of headDim elements: 4·hd, 2·hd, 34·hd/32, 18·hd/32.
size_t kvRowBytes(KvType t, int headDim);
// Empty when rows of headDim elements can be stored as t, else why not (the block types need
// head_dim to be a multiple of 32).
std::string kvTypeProblem(KvType t, int headDim);
// What storing n floats as t gives back (the cache's own conversion, both ways): the values a
// query reads from a cache of that type. dst may equal src.
void kvRoundTrip(KvType t, const float* src, float* dst, int n);
// One row of n floats as a cache of type t stores it (kvRowBytes(t, n) bytes: the bytes
// KvCache::write keeps), and back to floats (what KvCache::readKey gives).
void kvEncodeRow(KvType t, const float* src, void* dst, int n);
void kvDecodeRow(KvType t, const void* src, float* dst, int n);

// EvictionPolicy (window, sinks, heavy hitters) and its bookkeeping: runtime/kv_rows.h.

struct KvCacheOptions {
    KvCacheOptions(KvType t = KvType::F32, int block = 256, EvictionPolicy e = {})
        : type(t), blockTokens(block), eviction(e) {}
    KvType type;
    int blockTokens;
    EvictionPolicy eviction;
};

class KvCache {
  public:
    // Allocates nothing yet; throws Error unless every dimension is positive, the type can store
    // rows of headDim and the policy is one (EvictionPolicy::problem).
    KvCache(int nLayer, int nHeadKv, int nCtx, int headDim, KvCacheOptions options = {});

    static constexpr int kHeld = KvRows::kHeld;  // evictedAt() of a position still held

    int nLayer() const { return nLayer_; }
    int nHeadKv() const { return nHeadKv_; }
    int nCtx() const { return nCtx_; }
    int headDim() const { return headDim_; }
    KvType type() const { return options_.type; }
    const EvictionPolicy& eviction() const { return options_.eviction; }
    int blockTokens() const { return options_.blockTokens; }  // at most nCtx()
    int blocksAllocated() const { return static_cast<int>(blocks_.size()); }

    // Makes room for rows [0, rows): allocates the blocks they need. Throws Error naming the
    // bytes, with the cache unchanged, if the memory is not there or rows > nCtx().
    void reserve(int rows);

    // Stores the key and value rows (head_dim floats each, converted to the element type) of
    // one layer and KV head at `row`, which must be reserved. Copies the block first when a fork
    // shares it.
    void write(int layer, int kvHead, int row, const float* key, const float* value);
    // The key (or value) rows of one block as float32: the stored rows themselves for f32, else
    // converted into `scratch` (blockTokens() × head_dim floats). Rows past the held ones are
    // unspecified.
    const float* keyBlock(int layer, int kvHead, int block, float* scratch) const;
    const float* valueBlock(int layer, int kvHead, int block, float* scratch) const;
    // One row as float32 into dst (head_dim floats).
    void readKey(int layer, int kvHead, int row, float* dst) const;
    void readValue(int layer, int kvHead, int row, float* dst) const;

    int used() const { return book_.used(); }  // tokens seen: the position of the next one
    int rows() const { return book_.rows(); }  // rows held per layer (used() when none evicted)
    // Which position each row holds and what the policy evicted (shared with the OpenCL backend).
    const KvRows& book() const { return book_; }

    // A forward pass of n new tokens, at positions used() .. used()+n-1 and rows rows() ..
    // rows()+n-1 (reserve them first, then write them):
    //   begin(n), then for each query in order, visible() says which rows it attends to, and
    //   with heavy hitters noteQuery() gives its weights (in position order: the choice of each
    //   query depends on the ones before); then commit() (evicts, compacts) or abandon().
    // Throws Error if a pass is under way or used() + n > nCtx().
    void begin(int n);
    int pending() const { return book_.pending(); }
    // The position of `row` in `layer` (rows of a pass under way included).
    int rowPosition(int layer, int row) const { return book_.rowPosition(layer, row); }
    // Whether the query at position pos (a token of the pass under way) attends to `row`.
    bool visible(int layer, int row, int pos) const { return book_.visible(layer, row, pos); }
    // Heavy hitters: adds the query's weights (one per row of the pass, rows() + pending(), summed
    // over the layer's heads) to the rows' scores, then lets go of the lowest-scoring row that
    // has left the window, if there are more than `heavy` of them. A no-op without heavy hitters.
    void noteQuery(int layer, int pos, const float* rowWeights) {
        book_.noteQuery(layer, pos, rowWeights);
    }
    // Marks the pass's tokens as held (their rows written), evicts what the policy drops after
    // the last of them and compacts the rows that stay. Without begin(), begin(n) is implied (a
    // cache without a policy can be filled as reserve, write, commit).
    void commit(int n);
    // Forgets the pass under way: the cache is as it was before begin().
    void abandon() { book_.abandon(); }

    // The last query position that saw `pos` in `layer`, or kHeld if the cache still holds it.
    int evictedAt(int layer, int pos) const { return book_.evictedAt(layer, pos); }
    // The positions of `layer` whose rows this cache still holds, in order.
    std::vector<int> heldPositions(int layer) const { return book_.heldPositions(layer); }
    // The accumulated attention of each row held in `layer` (heavy hitters; zeros otherwise).
    const std::vector<float>& scores(int layer) const { return book_.scores(layer); }

    // Whether truncate(n) can give back the cache as it was after n tokens: not when the policy
    // has since let go of one of the rows it held then, nor with heavy hitters (their scores
    // cannot be taken back) unless n is 0 or used(). The session runs the tokens again otherwise.
    bool canTruncate(int n) const { return book_.canTruncate(n); }
    // Drops tokens so that `n` remain (the app's step back) and frees the blocks no longer
    // needed. Throws Error unless 0 <= n <= used() and canTruncate(n).
    void truncate(int n);
    void clear();

    // A second cache holding the same tokens in the same blocks (prefix sharing): each side copies
    // a shared block before it writes to it.
    KvCache fork() const;
    // The id of block b (unique over every cache of the process; a copy made on write gets a
    // new one) and how many caches hold it.
    uint64_t blockId(int b) const;
    long blockRefs(int b) const;

    // Bytes of K and V for one token: 2 × layers × kv_heads × kvRowBytes(type, head_dim).
    size_t bytesPerToken() const;
    size_t usedBytes() const { return bytesPerToken() * static_cast<size_t>(rows()); }
    size_t blockBytes() const {
        return bytesPerToken() * static_cast<size_t>(options_.blockTokens);
    }
    size_t allocatedBytes() const { return blockBytes() * blocks_.size(); }
    // Bytes of the blocks this cache holds that no other cache shares.
    size_t unsharedBytes() const;

  private:
    struct Block {
        std::unique_ptr<std::byte[]> k, v;  // each (n_layer, n_head_kv, blockTokens, row bytes)
        uint64_t id = 0;
    };
    std::shared_ptr<Block> newBlock() const;
    Block& writable(int b);  // block b, copied first if another cache shares it
    size_t rowOffset(int layer, int kvHead, int row) const;  // bytes into a block part
    const float* block(bool keys, int layer, int kvHead, int b, float* scratch) const;
    void read(bool keys, int layer, int kvHead, int row, float* dst) const;
    void moveRow(int layer, int from, int to);  // KvRows::commit's compaction, in the blocks

    int nLayer_, nHeadKv_, nCtx_, headDim_;
    KvCacheOptions options_;
    size_t rowBytes_;
    KvRows book_;
    std::vector<std::shared_ptr<Block>> blocks_;
};

}  // namespace kvscope
