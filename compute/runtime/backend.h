// Backend: the contract every compute backend keeps (CpuBackend with Eigen, OpenClBackend).
// A backend owns the model's weights where it computes and the KV cache of one sequence.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/step_trace.h"
#include "model/model.h"
#include "runtime/kv_cache.h"

namespace kvscope {

// The public operations check their arguments once, here, always (not assert: these checks guard
// the cache's memory), then call the backend's own implementation (doForward, ...).
class Backend {
  public:
    virtual ~Backend() = default;

    virtual std::string name() const = 0;        // "cpu", "opencl"
    virtual std::string deviceName() const = 0;  // what it runs on, in words
    virtual const ModelConfig& config() const = 0;

    // Runs `tokens` at positions [cacheUsed(), cacheUsed() + n) in one batched pass: computes
    // their queries, keys and values, appends the keys and values to the cache, attends causally
    // over the whole cache and returns logits.
    //   logits: (n, n_vocab) if allLogits, else (1, n_vocab) for the last token only.
    //   traces: if not null, gets one StepTrace (token, position, q, k, v, attention row) for
    //           each token whose index in `tokens` is >= traceFrom.
    // Throws Error unless n >= 1, cacheUsed() + n <= config().nCtx, every id is in the
    // vocabulary and 0 <= traceFrom <= n; the cache is unchanged then.
    void forward(std::span<const int32_t> tokens, bool allLogits, std::vector<float>& logits,
                 std::vector<StepTrace>* traces, int traceFrom = 0);

    // The full causal attention matrix of one query head over the cache, in one matrix product
    // (ARCHITECTURE.md decision 4): the stored queries against the cached keys.
    //   queries: (t, head_dim), the queries of tokens 0..t-1 for `head` (StepTrace::query).
    //   out:     (t, t), row i = softmax_j<=i(q_i · k_j / sqrt(head_dim)), zero above the diagonal.
    // Throws Error unless layer and head exist and queries hold t whole rows, 1 <= t <=
    // cacheUsed().
    void attentionMatrix(int layer, int head, std::span<const float> queries,
                         std::vector<float>& out);

    // The model's head (final norm, output matrix, final soft-cap) applied to rows of n_embd
    // floats as if each were the last layer's output: logits (rows, n_vocab). The logit lens
    // gives it each layer's residual stream (StepTrace::resid). Throws Error unless hidden holds
    // at least one whole row; the cache is not touched.
    void headLogits(std::span<const float> hidden, std::vector<float>& logits);

    virtual int cacheUsed() const = 0;  // tokens the cache has seen: the next one's position
    // Rows the cache holds per layer: cacheUsed() unless an eviction policy let some go.
    virtual int cacheRows() const { return cacheUsed(); }
    // Keeps the first n tokens; throws Error unless 0 <= n <= cacheUsed() and
    // canTruncateCache(n).
    void truncateCache(int n);
    // False when an eviction policy has let go of rows the cache held after n tokens, so that
    // only running those tokens again gives that cache back (DecodeSession does).
    virtual bool canTruncateCache(int n) const { return n >= 0 && n <= cacheUsed(); }
    // The host's KV cache (the CPU backend's), to read its policy, evictions and blocks; null
    // where the cache lives on a device.
    virtual const KvCache* hostCache() const { return nullptr; }
    // The eviction policy's bookkeeping (which position each row holds, when each position was
    // evicted), kept on the host by every backend that runs a policy; null where there is none.
    virtual const KvRows* cacheBook() const { return nullptr; }
    // The cache policy in force (KvCacheOptions: element type, eviction, block size).
    virtual KvCacheOptions cacheOptions() const { return {}; }
    // A second backend on the same weights whose cache holds the same tokens in the same blocks
    // (prefix sharing: a block is copied only when one side writes to it). Throws Error where the
    // backend cannot (OpenCL, for now).
    virtual std::shared_ptr<Backend> fork() const;
    // A backend on the same weights (held once) with an empty cache of other options: the full
    // cache a policy's drift is measured against. Throws Error where the backend cannot.
    virtual std::shared_ptr<Backend> withCache(const KvCacheOptions& options) const;
    virtual size_t cacheBytesPerToken() const = 0;
    virtual size_t cacheAllocatedBytes() const = 0;
    // The cache grows in blocks of this many tokens; 0 when it is allocated for the whole
    // context at once. (After a truncation the CPU frees the blocks it no longer needs; OpenCL
    // keeps its buffers.)
    virtual int cacheBlockTokens() const { return 0; }
    // Exchanges the live KV cache with a spare one (empty at first) and returns true; false where
    // the backend has none. "Compare without cache" runs its passes on the spare, so the live
    // cache is back as it was, without recomputing, after a pass fails or is stopped.
    virtual bool swapSpareCache() { return false; }
    // Device time of the last forward() from the device's own timers; nullopt where there are
    // none (the CPU backend: its time is the host's wall time).
    virtual std::optional<double> lastForwardDeviceMs() const { return std::nullopt; }
    // The memory of the device the backend runs on, when it is known.
    virtual std::optional<uint64_t> deviceMemoryBytes() const { return std::nullopt; }

  protected:
    // The backends' own work, called with arguments already checked.
    virtual void doForward(std::span<const int32_t> tokens, bool allLogits,
                           std::vector<float>& logits, std::vector<StepTrace>* traces,
                           int traceFrom) = 0;
    virtual void doAttentionMatrix(int layer, int head, std::span<const float> queries,
                                   std::vector<float>& out) = 0;
    virtual void doTruncateCache(int n) = 0;
    virtual void doHeadLogits(std::span<const float> hidden, int rows,
                              std::vector<float>& logits) = 0;
};

}  // namespace kvscope
