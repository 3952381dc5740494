// Sampling: argmax, or softmax(logits / T) restricted to the top-k, then to the smallest
// prefix whose mass reaches top-p, then to those at least min-p times the best, then one draw.
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/error.h"

namespace kvscope {
namespace {

uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

bool better(const std::pair<int32_t, float>& a, const std::pair<int32_t, float>& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
}

}  // namespace

double uniformAt(uint64_t seed, uint64_t position) {
    const uint64_t r = splitmix64(splitmix64(seed) ^ (position * 0xd1b54a32d192ed03ULL));
    return static_cast<double>(r >> 11) * 0x1.0p-53;
}

namespace {
// A NaN logit has no place in an ordering (the sort's comparison would be undefined behaviour):
// a model that produces one is reported, not sampled. +-Inf are ordered as usual.
void requireNoNan(std::span<const float> logits) {
    bool any = false;  // one branch-free pass (vectorised); the position only when there is one
    for (const float l : logits) any |= l != l;
    if (!any) return;
    for (size_t i = 0; i < logits.size(); ++i)
        if (std::isnan(logits[i]))
            throw Error("the model produced NaN for the logit of token " + std::to_string(i) +
                        ": its weights or the computation are broken, so there is nothing to "
                        "sample from");
}
}  // namespace

std::vector<std::pair<int32_t, float>> topLogits(std::span<const float> logits, int k) {
    requireNoNan(logits);
    const size_t kk = std::min(logits.size(), static_cast<size_t>(std::max(k, 0)));
    std::vector<std::pair<int32_t, float>> top;
    if (kk <= 64) {
        // One pass with the best kk so far, in order: a logit that does not beat the last kept
        // one costs one comparison (every decode step asks for a few of 32,000-150,000). Ids
        // arrive in increasing order, so an equal logit never displaces an earlier id.
        if (kk == 0) return top;
        top.reserve(kk + 1);
        for (size_t i = 0; i < logits.size(); ++i) {
            // ids rise, so an equal logit is not better than the last kept one either
            if (top.size() == kk && logits[i] <= top.back().second) continue;
            const std::pair<int32_t, float> c{static_cast<int32_t>(i), logits[i]};
            top.insert(std::upper_bound(top.begin(), top.end(), c, better), c);
            if (top.size() > kk) top.pop_back();
        }
        return top;
    }
    top.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) top[i] = {static_cast<int32_t>(i), logits[i]};
    std::partial_sort(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(kk), top.end(),
                      better);
    top.resize(kk);
    return top;
}

std::vector<std::pair<int32_t, double>> keptTokens(std::span<const float> logits,
                                                   const SamplerParams& p) {
    KVSCOPE_CHECK(!logits.empty(), "nothing to sample from: no logits");
    if (p.temperature <= 0.0f || p.topK == 1) return {{topLogits(logits, 1).front().first, 1.0}};

    // 1. candidates: the top-k (or all), best first
    const int k = p.topK > 0 ? p.topK : static_cast<int>(logits.size());
    std::vector<std::pair<int32_t, float>> cand = topLogits(logits, k);
    // 2. probabilities of softmax(logit / T) over the candidates
    std::vector<double> prob(cand.size());
    double sum = 0;
    for (size_t i = 0; i < cand.size(); ++i) {
        prob[i] = std::exp((static_cast<double>(cand[i].second) - cand[0].second) / p.temperature);
        sum += prob[i];
    }
    for (double& q : prob) q /= sum;
    // 3. top-p: keep the smallest prefix whose mass reaches topP
    size_t keep = cand.size();
    if (p.topP < 1.0f) {
        double mass = 0;
        for (size_t i = 0; i < cand.size(); ++i) {
            mass += prob[i];
            if (mass >= p.topP) {
                keep = i + 1;
                break;
            }
        }
    }
    // 4. min-p: keep those at least minP times as likely as the best (a prefix too)
    if (p.minP > 0.0f) {
        size_t n = 1;
        while (n < keep && prob[n] >= static_cast<double>(p.minP) * prob[0]) ++n;
        keep = n;
    }
    // 5. renormalised over the kept
    const double kept =
        std::accumulate(prob.begin(), prob.begin() + static_cast<std::ptrdiff_t>(keep), 0.0);
    std::vector<std::pair<int32_t, double>> out(keep);
    for (size_t i = 0; i < keep; ++i) out[i] = {cand[i].first, prob[i] / kept};
    return out;
}

int32_t sampleToken(std::span<const float> logits, const SamplerParams& p, uint64_t position) {
    const std::vector<std::pair<int32_t, double>> kept = keptTokens(logits, p);
    if (kept.size() == 1) return kept.front().first;
    // one draw over the kept mass
    const double u = uniformAt(p.seed, position);
    double acc = 0;
    for (const auto& [id, prob] : kept) {
        acc += prob;
        if (u < acc) return id;
    }
    return kept.back().first;
}

}  // namespace kvscope
