// Backend: the argument checks every backend shares.
#include "runtime/backend.h"

#include "core/error.h"

namespace kvscope {

void Backend::forward(std::span<const int32_t> tokens, bool allLogits, std::vector<float>& logits,
                      std::vector<StepTrace>* traces, int traceFrom) {
    const ModelConfig& c = config();
    const size_t n = tokens.size();
    const int used = cacheUsed();
    KVSCOPE_CHECK(n >= 1, "forward: no tokens to run");
    KVSCOPE_CHECK(static_cast<size_t>(used) + n <= static_cast<size_t>(c.nCtx),
                  std::to_string(used) + " cached tokens and " + std::to_string(n) +
                      " new ones do not fit the context of " + std::to_string(c.nCtx) + " tokens");
    for (int32_t id : tokens)
        KVSCOPE_CHECK(id >= 0 && id < c.nVocab, "token id " + std::to_string(id) +
                                                    " is outside the vocabulary (" +
                                                    std::to_string(c.nVocab) + " tokens)");
    KVSCOPE_CHECK(
        traceFrom >= 0 && static_cast<size_t>(traceFrom) <= n,
        "forward: traceFrom " + std::to_string(traceFrom) + " outside 0.." + std::to_string(n));
    doForward(tokens, allLogits, logits, traces, traceFrom);
}

void Backend::attentionMatrix(int layer, int head, std::span<const float> queries,
                              std::vector<float>& out) {
    const ModelConfig& c = config();
    KVSCOPE_CHECK(layer >= 0 && layer < c.nLayer, "attention matrix: no layer " +
                                                      std::to_string(layer) + " (the model has " +
                                                      std::to_string(c.nLayer) + ")");
    KVSCOPE_CHECK(head >= 0 && head < c.nHead, "attention matrix: no head " + std::to_string(head) +
                                                   " (the model has " + std::to_string(c.nHead) +
                                                   ")");
    const size_t hd = static_cast<size_t>(c.headDim);
    const size_t t = queries.size() / hd;
    KVSCOPE_CHECK(queries.size() % hd == 0 && t >= 1 && t <= static_cast<size_t>(cacheUsed()),
                  "attention matrix: " + std::to_string(queries.size()) +
                      " query numbers are not 1.." + std::to_string(cacheUsed()) + " rows of " +
                      std::to_string(hd));
    doAttentionMatrix(layer, head, queries, out);
}

void Backend::truncateCache(int n) {
    KVSCOPE_CHECK(n >= 0 && n <= cacheUsed(), "cannot keep " + std::to_string(n) + " of " +
                                                  std::to_string(cacheUsed()) + " cached tokens");
    KVSCOPE_CHECK(canTruncateCache(n), "cannot go back to " + std::to_string(n) +
                                           " tokens: the cache policy has let go of rows it held "
                                           "then");
    doTruncateCache(n);
}

std::shared_ptr<Backend> Backend::fork() const {
    throw Error("the " + name() +
                " backend cannot fork its cache (prefix sharing runs on the CPU "
                "backend)");
}

void Backend::headLogits(std::span<const float> hidden, std::vector<float>& logits) {
    const auto E = static_cast<size_t>(config().nEmbd);
    KVSCOPE_CHECK(!hidden.empty() && hidden.size() % E == 0,
                  "the model's head takes whole rows of " + std::to_string(E) + " floats, got " +
                      std::to_string(hidden.size()));
    doHeadLogits(hidden, static_cast<int>(hidden.size() / E), logits);
}

std::shared_ptr<Backend> Backend::withCache(const KvCacheOptions&) const {
    throw Error("the " + name() +
                " backend cannot make a second cache on its weights (the cache "
                "lab's drift runs on the CPU backend)");
}

}  // namespace kvscope
