// Backend: the contract every compute backend keeps (CpuBackend with Eigen; OpenCL to come).
// A backend owns the model's weights where it computes and the KV cache of one sequence.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/step_trace.h"
#include "model/model.h"

namespace kvscope {

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
    // Precondition: cacheUsed() + n <= config().nCtx, n >= 1.
    virtual void forward(std::span<const int32_t> tokens, bool allLogits,
                         std::vector<float>& logits, std::vector<StepTrace>* traces,
                         int traceFrom = 0) = 0;

    // The full causal attention matrix of one query head over the cache, in one matrix product
    // (ARCHITECTURE.md decision 4): the stored queries against the cached keys.
    //   queries: (t, head_dim), the queries of tokens 0..t-1 for `head` (StepTrace::query).
    //   out:     (t, t), row i = softmax_j<=i(q_i · k_j / sqrt(head_dim)), zero above the diagonal.
    // Precondition: 1 <= t <= cacheUsed().
    virtual void attentionMatrix(int layer, int head, std::span<const float> queries,
                                 std::vector<float>& out) = 0;

    virtual int cacheUsed() const = 0;      // tokens the cache holds
    virtual void truncateCache(int n) = 0;  // keep the first n; n <= cacheUsed()
    virtual size_t cacheBytesPerToken() const = 0;
    virtual size_t cacheAllocatedBytes() const = 0;
    // Device time of the last forward() from the device's own timers; nullopt where there are
    // none (the CPU backend: its time is the host's wall time).
    virtual std::optional<double> lastForwardDeviceMs() const { return std::nullopt; }
    // The memory of the device the backend runs on, when it is known.
    virtual std::optional<uint64_t> deviceMemoryBytes() const {
        return std::nullopt;
    }  // what the backend really allocated
};

}  // namespace kvscope
