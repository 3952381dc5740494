// Sampler: picks the next token from logits. Greedy, or temperature with top-k, top-p, min-p.
// Random draws are a pure function of (seed, position), so the same seed gives the same tokens
// and stepping back then forward again gives the same token.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace kvscope {

struct SamplerParams {
    float temperature = 0.0f;  // <= 0: greedy (argmax)
    int topK = 0;              // <= 0: no limit
    float topP = 1.0f;         // in (0, 1]; 1: no limit
    float minP = 0.0f;         // in [0, 1); keeps tokens with p >= minP * p(best); 0: no limit
    uint64_t seed = 0;
};

// The token to emit at sequence position `position` from `logits` (n_vocab). Throws Error when a
// logit is NaN (a broken model is reported, never sampled) or there are none.
int32_t sampleToken(std::span<const float> logits, const SamplerParams& params, uint64_t position);

// The tokens a draw at `position` may pick from (the kept candidates after top-k, top-p and
// min-p), best first, each with its probability renormalised over them. Greedy: the argmax alone.
// Throws as sampleToken.
std::vector<std::pair<int32_t, double>> keptTokens(std::span<const float> logits,
                                                   const SamplerParams& params);

// The k largest logits as (id, logit), largest first (ties: lower id first). Throws Error on NaN.
std::vector<std::pair<int32_t, float>> topLogits(std::span<const float> logits, int k);

// A uniform double in [0, 1) from (seed, position): splitmix64 of both.
double uniformAt(uint64_t seed, uint64_t position);

}  // namespace kvscope
