// KvCache: per-layer key and value storage of one sequence, the subject of the whole app.
// Shapes: K and V of layer l are each (n_head_kv, n_ctx, head_dim), float32, allocated in full
// for the context when the cache is made, so allocatedBytes() is what the engine really holds.
#pragma once

#include <cstddef>
#include <vector>

namespace kvscope {

class KvCache {
  public:
    // Throws Error naming the bytes if the allocation fails.
    KvCache(int nLayer, int nHeadKv, int nCtx, int headDim);

    int nLayer() const { return nLayer_; }
    int nHeadKv() const { return nHeadKv_; }
    int nCtx() const { return nCtx_; }
    int headDim() const { return headDim_; }

    // Keys (or values) of one layer and KV head: (n_ctx, head_dim) row-major; rows [0, used())
    // hold cached tokens.
    float* keys(int layer, int kvHead);
    float* values(int layer, int kvHead);
    const float* keys(int layer, int kvHead) const;
    const float* values(int layer, int kvHead) const;

    int used() const { return used_; }  // tokens held
    // Marks `n` more tokens as held; call after their rows have been written.
    // Precondition: used() + n <= nCtx().
    void commit(int n);
    // Drops tokens so that `n` remain (the app's step back). Precondition: n <= used().
    void truncate(int n);
    void clear() { used_ = 0; }

    // Bytes of K and V for one token: 2 × layers × kv_heads × head_dim × 4.
    size_t bytesPerToken() const;
    size_t usedBytes() const { return bytesPerToken() * static_cast<size_t>(used_); }
    size_t allocatedBytes() const { return bytesPerToken() * static_cast<size_t>(nCtx_); }

  private:
    size_t offset(int layer, int kvHead) const;
    int nLayer_, nHeadKv_, nCtx_, headDim_;
    int used_ = 0;
    std::vector<float> k_;  // (n_layer, n_head_kv, n_ctx, head_dim)
    std::vector<float> v_;  // (n_layer, n_head_kv, n_ctx, head_dim)
};

}  // namespace kvscope
