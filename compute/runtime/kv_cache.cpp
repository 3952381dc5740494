// KvCache: flat K and V arrays with a fill level.
#include "runtime/kv_cache.h"

#include <cassert>
#include <new>
#include <string>

#include "core/error.h"

namespace kvscope {

KvCache::KvCache(int nLayer, int nHeadKv, int nCtx, int headDim)
    : nLayer_(nLayer), nHeadKv_(nHeadKv), nCtx_(nCtx), headDim_(headDim) {
    assert(nLayer > 0 && nHeadKv > 0 && nCtx > 0 && headDim > 0);
    const size_t n = static_cast<size_t>(nLayer) * nHeadKv * nCtx * headDim;
    try {
        k_.assign(n, 0.0f);
        v_.assign(n, 0.0f);
    } catch (const std::bad_alloc&) {
        throw Error("KV cache: cannot allocate " + std::to_string(2 * n * sizeof(float)) +
                    " bytes for " + std::to_string(nCtx) + " tokens of context");
    }
}

size_t KvCache::offset(int layer, int kvHead) const {
    assert(layer >= 0 && layer < nLayer_ && kvHead >= 0 && kvHead < nHeadKv_);
    return (static_cast<size_t>(layer) * nHeadKv_ + kvHead) * nCtx_ * headDim_;
}

float* KvCache::keys(int layer, int kvHead) {
    return k_.data() + offset(layer, kvHead);
}
float* KvCache::values(int layer, int kvHead) {
    return v_.data() + offset(layer, kvHead);
}
const float* KvCache::keys(int layer, int kvHead) const {
    return k_.data() + offset(layer, kvHead);
}
const float* KvCache::values(int layer, int kvHead) const {
    return v_.data() + offset(layer, kvHead);
}

void KvCache::commit(int n) {
    assert(n >= 0 && used_ + n <= nCtx_);
    used_ += n;
}

void KvCache::truncate(int n) {
    assert(n >= 0 && n <= used_);
    used_ = n;
}

size_t KvCache::bytesPerToken() const {
    return 2 * static_cast<size_t>(nLayer_) * nHeadKv_ * headDim_ * sizeof(float);
}

}  // namespace kvscope
