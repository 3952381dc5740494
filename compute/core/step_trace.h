// StepTrace: everything the views need about one token's pass through the model, as a value
// (no pointers into a backend). Attention rows are kept per token (length = position + 1);
// a full attention matrix is rebuilt from stored queries and cached keys on request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace kvscope {

struct StepTrace {
    int32_t token = 0;
    std::string text;      // the bytes this token stands for (may be part of a UTF-8 character)
    int position = 0;      // index of this token in the sequence
    bool prompt = false;   // true for the prompt's tokens, processed by prefill
    bool special = false;  // a control, user-defined or unknown token (BOS, <|im_start|>, ...)

    int nLayer = 0, nHead = 0, nHeadKv = 0, headDim = 0;
    // Filled only when the session captures traces (empty otherwise):
    std::vector<float> q;     // (n_layer, n_head, head_dim)   the new query (after RoPE)
    std::vector<float> k;     // (n_layer, n_head_kv, head_dim) the new key appended to the cache
    std::vector<float> v;     // (n_layer, n_head_kv, head_dim) the new value appended
    std::vector<float> attn;  // (n_layer, n_head, position + 1) the new attention row
    int nEmbd = 0;
    // (n_layer, n_embd) the residual stream after each layer, for this token: what the logit
    // lens reads (the model's head applied to each layer's output). Empty when not captured.
    std::vector<float> resid;

    // The distribution that chose this token: for a generated token the logits it was sampled
    // from; for prompt token i > 0 the model's prediction after token i - 1 (teacher forcing:
    // what the model expected there). Empty for the first prompt token, which nothing predicts.
    std::vector<std::pair<int32_t, float>> top;  // the top logits (id, logit), best first
    std::vector<std::string> topText;            // the bytes of each top id (as `text`)
    std::vector<uint8_t> topSpecial;             // 1 where that id is a special token
    // Over the whole vocabulary at temperature 1, so that p(id) = exp(logit - logZ) is exact for
    // any stored logit (NaN when top is empty):
    float logZ = std::numeric_limits<float>::quiet_NaN();         // log sum_v exp(logit_v)
    float chosenLogit = std::numeric_limits<float>::quiet_NaN();  // the logit of `token`
    int chosenRank = -1;  // 0: `token` had the largest logit (ties: lower id first); -1: unknown
    float entropy = std::numeric_limits<float>::quiet_NaN();  // nats, whole vocabulary, T = 1
    bool hasDistribution() const { return !top.empty(); }

    // (layer, position) of each key the cache's eviction policy let go of after this token
    // (KvCache: a sliding window, sinks, heavy hitters); empty without one.
    std::vector<std::pair<int, int>> evicted;

    // The cache lab's drift (SessionOptions::drift, under a lossy cache policy): the
    // distribution that chose this token against the full f32 cache's on the same tokens.
    float driftKl = std::numeric_limits<float>::quiet_NaN();  // KL(full || policy), nats, T = 1
    int driftTop1 = -1;  // 1: both ranked the same token first; 0: not; -1: not measured
    // The policy's probability of the token the full cache ranked first.
    float driftFullChoiceProb = std::numeric_limits<float>::quiet_NaN();
    bool hasDrift() const { return driftTop1 >= 0; }
    size_t fullKvBytes = 0;  // bytes the full cache holds after this step (0: not measured)

    double hostMs = 0;            // wall time of this step (for prompt tokens: the whole prefill)
    size_t kvBytes = 0;           // bytes of K and V the cache holds after this step
    size_t kvAllocatedBytes = 0;  // bytes the cache has allocated after it (whole blocks)
    double deviceMs = -1;  // the device's own time for it (OpenCL profiling); < 0: not measured

    // A trace for `token` at `position` with q, k, v, attention rows (and residuals when nEmbd >
    // 0) sized for the shapes (zero-filled); backends fill them during the forward pass.
    static StepTrace sized(int32_t token, int position, int nLayer, int nHead, int nHeadKv,
                           int headDim, int nEmbd = 0) {
        StepTrace s;
        s.token = token;
        s.position = position;
        s.nLayer = nLayer, s.nHead = nHead, s.nHeadKv = nHeadKv, s.headDim = headDim;
        s.q.resize(static_cast<size_t>(nLayer) * nHead * headDim);
        s.k.resize(static_cast<size_t>(nLayer) * nHeadKv * headDim);
        s.v.resize(static_cast<size_t>(nLayer) * nHeadKv * headDim);
        s.attn.resize(static_cast<size_t>(nLayer) * nHead * (position + 1));
        s.nEmbd = nEmbd;
        s.resid.resize(static_cast<size_t>(nLayer) * nEmbd);
        return s;
    }

    bool hasTensors() const { return !q.empty(); }
    const float* query(int layer, int head) const {
        return q.data() + (static_cast<size_t>(layer) * nHead + head) * headDim;
    }
    const float* key(int layer, int kvHead) const {
        return k.data() + (static_cast<size_t>(layer) * nHeadKv + kvHead) * headDim;
    }
    const float* value(int layer, int kvHead) const {
        return v.data() + (static_cast<size_t>(layer) * nHeadKv + kvHead) * headDim;
    }
    bool hasResiduals() const { return nEmbd > 0 && !resid.empty(); }

    // The attention rows max-pooled for thumbnails, computed where the trace is made (off the
    // GUI thread): row (l, h) of attention over keys 0..position in kPooledCells cells of
    // attnPool keys each (the smallest power of two with position + 1 <= kPooledCells ×
    // attnPool); -1 in cells past the row. (n_layer, n_head, kPooledCells). Empty until
    // poolAttentionRows().
    static constexpr int kPooledCells = 128;
    int attnPool = 0;
    std::vector<float> attnPooled;
    void poolAttentionRows() {
        if (attn.empty()) return;
        const int keys = position + 1;
        int pool = 1;
        while (keys > kPooledCells * pool) pool *= 2;
        attnPool = pool;
        attnPooled.assign(static_cast<size_t>(nLayer) * nHead * kPooledCells, -1.0f);
        for (int lh = 0; lh < nLayer * nHead; ++lh) {
            const float* row = attn.data() + static_cast<size_t>(lh) * keys;
            float* cells = attnPooled.data() + static_cast<size_t>(lh) * kPooledCells;
            for (int key = 0; key < keys; ++key) {
                float& cell = cells[key / pool];
                cell = row[key] > cell ? row[key] : cell;
            }
        }
    }
    const float* residual(int layer) const {
        return resid.data() + static_cast<size_t>(layer) * nEmbd;
    }
    const float* attention(int layer, int head) const {
        return attn.data() + (static_cast<size_t>(layer) * nHead + head) * (position + 1);
    }
};

}  // namespace kvscope
