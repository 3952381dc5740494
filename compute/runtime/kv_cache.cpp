// KvCache: flat K and V arrays with a fill level.
#include "runtime/kv_cache.h"

#include <new>
#include <string>

#include "core/error.h"
#include "model/model.h"

namespace kvscope {

KvCache::KvCache(int nLayer, int nHeadKv, int nCtx, int headDim)
    : nLayer_(nLayer), nHeadKv_(nHeadKv), nCtx_(nCtx), headDim_(headDim) {
    KVSCOPE_CHECK(nLayer > 0 && nHeadKv > 0 && nCtx > 0 && headDim > 0,
                  "KV cache: every dimension must be positive");
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
    KVSCOPE_CHECK(
        layer >= 0 && layer < nLayer_ && kvHead >= 0 && kvHead < nHeadKv_,
        "KV cache: no layer " + std::to_string(layer) + ", KV head " + std::to_string(kvHead));
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
    KVSCOPE_CHECK(n >= 0 && used_ + n <= nCtx_, "KV cache: " + std::to_string(used_) + " + " +
                                                    std::to_string(n) + " tokens exceed the " +
                                                    std::to_string(nCtx_) + " slots");
    used_ += n;
}

void KvCache::truncate(int n) {
    KVSCOPE_CHECK(n >= 0 && n <= used_, "KV cache: cannot keep " + std::to_string(n) + " of " +
                                            std::to_string(used_) + " tokens");
    used_ = n;
}

size_t KvCache::bytesPerToken() const {
    return kvBytesPerToken(nLayer_, nHeadKv_, headDim_, sizeof(float));
}

}  // namespace kvscope
