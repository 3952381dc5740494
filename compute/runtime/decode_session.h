// DecodeSession: decodes one sequence token by token on a backend, in cached mode (each step
// runs only the new token and appends its K and V) or recompute mode (no cache: each step runs
// every token of the sequence again). Both give the same logits within float rounding.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/logit_lens.h"
#include "core/step_trace.h"
#include "runtime/backend.h"
#include "runtime/sampler.h"

namespace kvscope {

// What a replay without the cache measured: the same tokens, every step recomputing all of them.
struct ReplayTimes {
    std::vector<int32_t> tokens;  // the replayed ids (prompt, then the generated ones, forced)
    size_t promptLength = 0;
    double prefillMs = 0;
    std::vector<double> stepMs;  // stepMs[i]: the token at promptLength + i
};

struct SessionOptions {
    bool useCache = true;      // false: recompute mode
    bool captureTrace = true;  // fill q, k, v and attention rows in each StepTrace
    // How many (id, logit) pairs each token's trace keeps (generated and prompt tokens); 0: no
    // distributions, and the prefill asks only for the last position's logits.
    int topLogits = 10;
    // Special-token text in a prompt ("<|begin_of_text|>", "<start_of_turn>") becomes that one
    // token, as llama.cpp's parse_special; false reads it as plain text.
    bool parseSpecial = true;
    // Under a lossy cache policy (eviction, or K/V stored below f32), also run every token on a
    // full f32 cache of the same weights (Backend::withCache) and measure each distribution's
    // drift from the full cache's (StepTrace::driftKl, ...). Costs a second pass per token.
    bool drift = false;
    SamplerParams sampler;
};

// How far one next-token distribution drifted from the full cache's (whole vocabulary, T = 1).
struct Drift {
    double kl = 0;              // KL(full || policy), nats
    bool top1 = false;          // the same token ranked first
    double fullChoiceProb = 0;  // the policy's probability of the full cache's first token
};
Drift measureDrift(std::span<const float> policyLogits, std::span<const float> fullLogits);

class DecodeSession {
  public:
    // The most logits (prompt tokens × n_vocab) a prefill keeps to give each prompt token the
    // distribution that predicted it (256 MiB of floats); past it prompt tokens get none.
    static constexpr size_t kMaxPrefillLogits = size_t{1} << 26;

    DecodeSession(std::shared_ptr<Backend> backend, const Tokenizer& tokenizer,
                  SessionOptions options = {});

    // Resets, then runs the prompt in one batched pass. Returns one trace per prompt token
    // (hostMs of each is the whole prefill; with topLogits > 0 token i > 0 carries the
    // distribution the model predicted after token i - 1, see StepTrace::top). Throws Error,
    // leaving the session as it was, if the prompt is empty or longer than the context, or if the
    // backend fails.
    std::vector<StepTrace> prefill(std::string_view prompt);
    std::vector<StepTrace> prefillTokens(std::span<const int32_t> ids);

    // Samples the next token from the current logits and runs it through the model.
    // Throws Error if nothing was prefilled or the context is full (the session stays usable:
    // rewind or reset).
    StepTrace step();
    // The same, but runs `token` instead of sampling one (to replay a sequence exactly, e.g. in
    // recompute mode for the latency comparison). Throws Error if token is outside the vocabulary.
    StepTrace stepWith(int32_t token);

    // Speculative decoding's verification pass (runtime/speculative.h): appends `tokens` and runs
    // them in one batched pass, as prefill does, keeping every position's logits
    // (appendedLogits()); logits() becomes those after the last of them. Returns one trace per
    // token (tensors when traces are captured; hostMs the whole pass; each token's distribution
    // is the one that chose it: logits() before the call for tokens[0], row i - 1 for
    // tokens[i]). Follow it with keepAppended(). Throws Error, the session unchanged, if nothing
    // was prefilled, `tokens` is empty, an id is outside the vocabulary or the context is full.
    std::vector<StepTrace> appendBatch(std::span<const int32_t> tokens);
    // The logits of the last appendBatch: (n, n_vocab), row i the distribution after tokens[i].
    // Empty once the session's tokens are no longer those the batch left.
    std::span<const float> appendedLogits() const;
    // Keeps the first `keep` tokens of the last appendBatch and drops the rest: their K and V
    // leave the cache (Backend::truncateCache, no recomputation) and logits() are those after the
    // last kept token. The session then equals one that stepped through the kept tokens. Where an
    // eviction policy has let go of rows the cache held after the kept tokens (a window the batch
    // moved past, heavy hitters' scores) the kept tokens are run again from the start instead, as
    // rewind does. Throws Error unless the session's tokens are still those the batch left and
    // keep <= its size; if running again fails, the session is as the batch left it.
    void keepAppended(size_t keep);

    // Drops the last n tokens (the app's step back): the cache forgets them and the logits are
    // those after the remaining tokens. Throws Error if n > tokens().size() or the backend
    // fails; the session is then as it was.
    void rewind(size_t n);
    void reset();  // forget everything

    // A second session that continues from here on its own: the same tokens, logits and options,
    // its backend a fork of this one's (Backend::fork: the cache's blocks shared until one side
    // writes to them, the weights held once). Throws Error where the backend cannot fork.
    std::unique_ptr<DecodeSession> fork() const;

    // Replays this session's tokens without the cache (the prompt in one pass, then each generated
    // token by running the whole sequence so far again), timing each pass: what "compare without
    // cache" draws. Runs on this session's own backend, so the weights are held once; afterwards
    // tokens, cache and logits are as they were, also when a pass fails or progress throws (to
    // stop it). progress(done, total) is called after the prompt and after each step, if given.
    ReplayTimes replayWithoutCache(const std::function<void(int, int)>& progress = {});

    // The logit lens of one token (ARCHITECTURE: teaching views): the model's head applied to
    // `trace`'s residual stream after each layer (StepTrace::resid, captured with the traces),
    // the top `topN` tokens of each with their probabilities (whole vocabulary, T = 1), and the
    // probability and rank of `target`, the token that followed (-1: none). After the last layer
    // it is the real prediction. Throws Error if the trace has no residuals or belongs to
    // another model shape; tokens, cache and logits are not touched.
    LogitLens logitLens(const StepTrace& trace, int32_t target, int topN = 5);

    // The attention rows of one head for the first t tokens, rebuilt from their stored queries
    // against the cached keys (Backend::attentionMatrix): what a view shows once its traces have
    // let the rows go. queries: (t, head_dim), t <= tokens().size().
    void attentionMatrix(int layer, int head, std::span<const float> queries,
                         std::vector<float>& out) {
        backend_->attentionMatrix(layer, head, queries, out);
    }

    const std::vector<int32_t>& tokens() const { return tokens_; }
    size_t promptLength() const { return promptLength_; }
    std::span<const float> logits() const { return logits_; }  // distribution for the next token
    double prefillMs() const { return prefillMs_; }
    // Bytes of K and V kept between steps (0 in recompute mode: nothing is kept).
    size_t kvBytes() const;
    // Bytes the cache has allocated (whole blocks; 0 in recompute mode).
    size_t kvAllocatedBytes() const;
    bool usesCache() const { return options_.useCache; }
    // Whether this session measures drift against a full cache (SessionOptions::drift and a
    // lossy policy), and that cache's backend.
    bool measuresDrift() const { return reference_ != nullptr; }
    const Backend* reference() const { return reference_.get(); }
    const Backend& backend() const { return *backend_; }
    const SessionOptions& options() const { return options_; }
    // Changes how the next tokens are sampled; the tokens so far stay.
    void setSampler(const SamplerParams& sampler) { options_.sampler = sampler; }
    // From the next prefill on.
    void setParseSpecial(bool parse) { options_.parseSpecial = parse; }

  private:
    // What a failed operation restores (strong exception safety: every public operation either
    // completes or leaves tokens, cache and logits as they were).
    struct Saved {
        std::vector<int32_t> tokens;
        size_t promptLength = 0;
        std::vector<float> logits;
        double prefillMs = 0;
    };
    Saved save() const;
    [[noreturn]] void restore(const Saved& saved, const std::exception& cause);
    StepTrace stepImpl(const int32_t* forced);
    // Runs tokens_ from `from` (cached mode) or from 0 (recompute mode); traces from `from`.
    // all: if not null, gets every position's logits (n, n_vocab) and logits_ the last row.
    void run(size_t from, std::vector<StepTrace>* traces, std::vector<float>* all = nullptr);
    // Fills s's distribution fields (top, topText, topSpecial, logZ, chosen*, entropy) from the
    // logits (n_vocab) that chose `token`.
    void describe(StepTrace& s, std::span<const float> logits, int32_t token) const;

    // Fills s's drift fields from the policy's and the full cache's logits that chose it.
    void describeDrift(StepTrace& s, std::span<const float> policy,
                       std::span<const float> full) const;

    std::shared_ptr<Backend> backend_;
    std::shared_ptr<Backend> reference_;  // the full cache, with SessionOptions::drift
    std::vector<float> referenceLogits_;  // its (n_vocab) after the last token
    std::vector<float> referenceAll_;     // its logits of every prompt position, in a prefill
    size_t referenceBytes() const;
    // Fills each trace's `evicted` (consecutive positions from traces[0]'s) from the cache.
    void noteEvictions(std::span<StepTrace> traces) const;
    const Tokenizer& tokenizer_;
    SessionOptions options_;
    std::vector<int32_t> tokens_;
    size_t promptLength_ = 0;
    std::vector<float> logits_;  // (n_vocab) after the last token
    double prefillMs_ = 0;
    // The last appendBatch: where it started, the tokens it left, the logits before it and its
    // rows (n, n_vocab). Valid while tokens_ == tokens.
    struct Appended {
        size_t start = 0;
        std::vector<int32_t> tokens;
        std::vector<float> before;
        std::vector<float> rows;
        // The full cache's (drift), the same way: its logits before and its rows.
        std::vector<float> referenceBefore;
        std::vector<float> referenceRows;
    };
    Appended appended_;
};

}  // namespace kvscope
