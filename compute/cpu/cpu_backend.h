// CpuBackend: the reference backend. Weights stay in the host Model; the work of every matrix
// product and of the attention heads is spread over a thread pool.
#pragma once

#include <memory>

#include "core/thread_pool.h"
#include "runtime/backend.h"
#include "runtime/kv_cache.h"

namespace kvscope {

class CpuBackend final : public Backend {
  public:
    // The KV cache grows in blocks as tokens arrive, up to the model's context (config().nCtx).
    // Throws Error, allocating nothing, if the weights and a full cache would not fit the host's
    // available memory.
    explicit CpuBackend(std::shared_ptr<const Model> model, ThreadPool& pool = ThreadPool::shared(),
                        KvCacheOptions cache = {});

    std::string name() const override { return "cpu"; }
    std::string deviceName() const override;
    const ModelConfig& config() const override { return model_->config; }

    void doForward(std::span<const int32_t> tokens, bool allLogits, std::vector<float>& logits,
                   std::vector<StepTrace>* traces, int traceFrom = 0) override;

    void doAttentionMatrix(int layer, int head, std::span<const float> queries,
                           std::vector<float>& out) override;

    int cacheUsed() const override { return cache_.used(); }
    int cacheRows() const override { return cache_.rows(); }
    bool canTruncateCache(int n) const override { return cache_.canTruncate(n); }
    const KvCache* hostCache() const override { return &cache_; }
    const KvRows* cacheBook() const override { return &cache_.book(); }
    KvCacheOptions cacheOptions() const override { return options_; }
    std::shared_ptr<Backend> fork() const override;
    std::shared_ptr<Backend> withCache(const KvCacheOptions& options) const override {
        return std::make_shared<CpuBackend>(model_, pool_, options);
    }
    void doTruncateCache(int n) override { cache_.truncate(n); }
    size_t cacheBytesPerToken() const override { return cache_.bytesPerToken(); }
    size_t cacheAllocatedBytes() const override { return cache_.allocatedBytes(); }
    int cacheBlockTokens() const override { return cache_.blockTokens(); }
    bool swapSpareCache() override {
        std::swap(cache_, spare_);
        return true;
    }

    const KvCache& cache() const { return cache_; }

  protected:
    void doHeadLogits(std::span<const float> hidden, int rows, std::vector<float>& logits) override;

  private:
    // Final norm, output matrix and final soft-cap of `rows` rows of n_embd at x.
    void head(const float* x, int rows, std::vector<float>& logits);
    // Before anything is allocated: the weights and a full cache against the host's available
    // memory (availableHostMemory); Error with the figures, and the context that would fit.
    void checkHostMemory() const;
    void forwardPass(std::span<const int32_t> tokens, bool allLogits, std::vector<float>& logits,
                     std::vector<StepTrace>* traces, int traceFrom);
    // Step 4 of the forward pass under an eviction policy: each new token's attention over the
    // rows its policy lets it see (KvCache::visible), queries in order with heavy hitters.
    void attendWithPolicy(int layer, int p0, int n, const float* qkv, float* att, StepTrace* trace0,
                          int t0);
    std::shared_ptr<const Model> model_;
    ThreadPool& pool_;
    KvCacheOptions options_;
    KvCache cache_;
    KvCache spare_;  // swapSpareCache's other cache (allocates only when used)
};

}  // namespace kvscope
