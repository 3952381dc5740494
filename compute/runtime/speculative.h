// Speculative decoding on a DecodeSession (Leviathan et al. 2023; Chen et al. 2023): a drafter
// proposes the next few tokens cheaply, the target model checks them all in one batched pass (a
// small prefill), the accepted ones stay and the rejected tail's K and V leave the cache.
// Drafters: prompt lookup (n-gram matches in the text so far, no second model) and a draft model
// that shares the target's vocabulary.
#pragma once

#include <climits>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/step_trace.h"
#include "runtime/backend.h"
#include "runtime/decode_session.h"
#include "runtime/sampler.h"

namespace kvscope {

class Tokenizer;

// A distribution over some tokens as (id, probability), as keptTokens returns it.
using TokenProbs = std::vector<std::pair<int32_t, double>>;

// --- 1. Prompt lookup drafting -------------------------------------------------------------

// Prompt lookup: for n = maxNgram down to minNgram, the last n tokens of `context` are searched
// for in the earlier text, latest occurrence first; the first match proposes the tokens that
// followed it, up to maxDraft. The continuation is read from the context extended by the draft
// itself, so a match just before the end repeats its cycle (context "a b c a b", n = 2 matches
// "a b" at 0 and proposes "c a b c ..."). Empty when no suffix of at least minNgram tokens occurs
// earlier. Throws Error unless 1 <= minNgram <= maxNgram and maxDraft >= 0.
std::vector<int32_t> lookupDraft(std::span<const int32_t> context, int maxDraft, int maxNgram,
                                 int minNgram = 1);

// --- 2. Acceptance --------------------------------------------------------------------------

// What the rejection rule decided about one drafted token.
struct DraftVerdict {
    bool accepted = false;
    int32_t token = 0;  // the drafted token if accepted, else the target's replacement
};

// The rejection rule that keeps the target's distribution exact. x was drafted from q; the
// target's distribution at that position is p (keptTokens of its logits under the session's
// sampler). x is accepted with probability min(1, p(x) / q(x)) (accepted iff uAccept · q(x) <
// p(x)); otherwise the replacement is drawn, with uResample, from normalize(max(0, p - q)). The
// output token is then distributed exactly as p. An empty q is a point mass at x (a lookup
// draft): x is accepted with probability p(x), else replaced by a draw from p without x. Greedy
// p (one token, probability 1) accepts x iff it is that token and replaces it by that token.
// uAccept, uResample in [0, 1). Throws Error if p is empty.
DraftVerdict acceptDraftToken(const TokenProbs& p, const TokenProbs& q, int32_t x, double uAccept,
                              double uResample);

// --- 3. Drafters -----------------------------------------------------------------------------

struct Draft {
    std::vector<int32_t> tokens;
    // q[i]: the distribution tokens[i] was drawn from (the draft model's kept tokens); empty when
    // the tokens are point masses (lookup).
    std::vector<TokenProbs> q;
};

class Drafter {
  public:
    virtual ~Drafter() = default;
    virtual std::string name() const = 0;  // "lookup", "model:PATH"
    // At most maxTokens proposals to follow `context` (the target's tokens so far, the token
    // about to enter the cache last). Draws, where the drafter samples, follow `sampler`.
    virtual Draft propose(std::span<const int32_t> context, int maxTokens,
                          const SamplerParams& sampler) = 0;
};

// Prompt lookup (lookupDraft) as a Drafter.
class LookupDrafter final : public Drafter {
  public:
    // Throws Error unless 1 <= minNgram <= maxNgram.
    explicit LookupDrafter(int maxNgram = 3, int minNgram = 1);
    std::string name() const override { return "lookup"; }
    Draft propose(std::span<const int32_t> context, int maxTokens,
                  const SamplerParams& sampler) override;

  private:
    int maxNgram_, minNgram_;
};

// A smaller model on its own backend that shares the target's vocabulary: it decodes greedily,
// or samples from its own kept tokens (the session's sampler on its logits, a stream of its own
// from the seed), one token at a time. Its cache follows the context it is given: the common
// prefix with what it held is kept, the rest truncated and the new tokens run in one pass.
class ModelDrafter final : public Drafter {
  public:
    // Throws Error naming the first difference if the vocabularies differ (their size, the
    // models' n_vocab, or any token's bytes).
    ModelDrafter(std::shared_ptr<Backend> draft, const Tokenizer& draftTokenizer,
                 const Tokenizer& targetTokenizer, int targetVocab, std::string name);
    std::string name() const override { return name_; }
    // Fewer than maxTokens (or none) when the draft model's context is full.
    Draft propose(std::span<const int32_t> context, int maxTokens,
                  const SamplerParams& sampler) override;
    const Backend& backend() const { return *backend_; }

  private:
    std::shared_ptr<Backend> backend_;
    std::string name_;
    std::vector<int32_t> tokens_;  // what the draft's cache holds
    std::vector<float> logits_;    // (n_vocab) after tokens_, when tokens_ is not empty
};

// Throws Error naming the first difference unless the two tokenizers have the same tokens (count
// and bytes of every id) and both models the same n_vocab.
void checkSameVocabulary(const Tokenizer& draft, int draftVocab, const Tokenizer& target,
                         int targetVocab);

// --- 4. The decoder ---------------------------------------------------------------------------

// One round: draft, verify in one pass, keep the accepted, decide the next token.
struct SpeculativeStep {
    std::vector<int32_t> draft;  // the proposed tokens
    int accepted = 0;            // how many of them the target accepted (a prefix of draft)
    // The tokens this round produced, in order: the first token after the prompt (first round
    // only), the accepted drafts, then the target's own next token (the replacement of the first
    // rejected draft, or one more after a fully accepted draft).
    std::vector<int32_t> emitted;
    // The tokens the verification pass left in the cache: the previous round's last token, then
    // the accepted drafts; each with the distribution that chose it, kvBytes after the rollback.
    std::vector<StepTrace> traces;
    std::vector<StepTrace> rejected;  // the rejected drafts' traces (their K/V were removed)
    double draftMs = 0;               // proposing
    double verifyMs = 0;  // the verification pass (DecodeSession::appendBatch), host wall time
    double verifyDeviceMs = -1;  // its device time (OpenCL profiling); < 0: not measured
    double hostMs = 0;           // the whole round: drafting, verification, acceptance, rollback
    int drafted() const { return static_cast<int>(draft.size()); }
};

// Decodes on `session` (already prefilled) by speculative rounds. Between rounds the last emitted
// token is pending: decided, not yet run (the next round's pass runs it with the drafts, as
// llama.cpp's speculative decoding does); flush() runs it alone. After each round the session
// equals a plain session that decoded its tokens (the emitted ones but the pending); greedy
// rounds emit exactly the tokens of plain greedy decoding. With sampling the emitted tokens
// follow the session's sampler distribution exactly (acceptDraftToken), from the session's seed.
// Under an eviction policy (a sliding window, heavy hitters) a round that rejects drafts also
// runs the kept sequence again from the start: the batch moved the window past rows the kept
// tokens need (DecodeSession::keepAppended), so speculative decoding is exact there but slow.
class SpeculativeDecoder {
  public:
    // The session must outlive the decoder. Throws Error unless maxDraft >= 0 and the session
    // uses the cache.
    SpeculativeDecoder(DecodeSession& session, std::unique_ptr<Drafter> drafter, int maxDraft);

    // One round, emitting at most maxNew >= 1 tokens (drafts are shortened to fit it and the
    // context). If the session was changed since the last round (rewind, prefill), the pending
    // token is dropped and the next one decided afresh from the session. Throws Error as
    // DecodeSession::appendBatch does (nothing prefilled, context full), the session unchanged.
    SpeculativeStep step(int maxNew = INT_MAX);
    // Runs the pending token through the session (DecodeSession::stepWith), so that the session
    // holds every emitted token; its trace, or nullopt when none is pending.
    std::optional<StepTrace> flush();

    std::optional<int32_t> pending() const;
    const Drafter& drafter() const { return *drafter_; }
    int maxDraft() const { return maxDraft_; }
    // Totals over every round so far.
    int rounds() const { return rounds_; }
    long long draftedTotal() const { return drafted_; }
    long long acceptedTotal() const { return accepted_; }

  private:
    DecodeSession& session_;
    std::unique_ptr<Drafter> drafter_;
    int maxDraft_;
    std::optional<int32_t> pending_;
    std::vector<int32_t> pendingAfter_;  // the session's tokens when pending_ was decided
    int rounds_ = 0;
    long long drafted_ = 0, accepted_ = 0;
};

}  // namespace kvscope
