// Speculative decoding: prompt lookup and draft-model drafters, the rejection rule, and the rounds
// of draft, one verification pass and rollback on a DecodeSession.
#include "runtime/speculative.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "text/tokenizer.h"

namespace kvscope {
namespace {

double msSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The random streams of speculative decoding, each a seed of its own derived from the session's
// (uniformAt(seed ^ salt, position)): the acceptance coin, the replacement's draw and the draft
// model's draws never share a number with each other or with the plain sampler's stream.
constexpr uint64_t kAcceptSalt = 0x6163636570742121ULL;
constexpr uint64_t kResampleSalt = 0x726573616d706c65ULL;
constexpr uint64_t kDraftSalt = 0x6472616674212121ULL;

// One draw from a distribution whose probabilities sum to `total`, with u in [0, 1).
int32_t drawFrom(const TokenProbs& probs, double total, double u) {
    const double target = u * total;
    double acc = 0;
    for (const auto& [id, prob] : probs) {
        acc += prob;
        if (target < acc) return id;
    }
    // rounding left target at the very top: the last token with any mass
    for (auto it = probs.rbegin(); it != probs.rend(); ++it)
        if (it->second > 0) return it->first;
    return probs.back().first;
}

std::string quoted(const std::string& bytes) {
    std::string out = "'";
    for (unsigned char c : bytes) {
        if (c >= 0x20 && c < 0x7f && c != '\'') {
            out += static_cast<char>(c);
        } else {
            static const char* hex = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out + "'";
}

}  // namespace

// --- 1. Prompt lookup ------------------------------------------------------------------------

std::vector<int32_t> lookupDraft(std::span<const int32_t> context, int maxDraft, int maxNgram,
                                 int minNgram) {
    KVSCOPE_CHECK(minNgram >= 1 && minNgram <= maxNgram,
                  "lookup n-gram sizes must satisfy 1 <= min <= max, got min " +
                      std::to_string(minNgram) + " and max " + std::to_string(maxNgram));
    KVSCOPE_CHECK(maxDraft >= 0, "a draft of " + std::to_string(maxDraft) + " tokens");
    const size_t size = context.size();
    if (maxDraft == 0 || size < 2) return {};
    for (size_t n = std::min(static_cast<size_t>(maxNgram), size - 1);
         n >= static_cast<size_t>(minNgram); --n) {
        const std::span<const int32_t> suffix = context.subspan(size - n);
        // latest earlier occurrence first: starts size - n - 1 down to 0
        for (size_t start = size - n; start-- > 0;) {
            if (!std::equal(suffix.begin(), suffix.end(), context.begin() + start)) continue;
            // the continuation, read from the context extended by the draft itself
            std::vector<int32_t> draft;
            const size_t from = start + n;  // < size
            for (size_t j = 0; j < static_cast<size_t>(maxDraft); ++j) {
                const size_t at = from + j;
                draft.push_back(at < size ? context[at] : draft[at - size]);
            }
            return draft;
        }
        if (n == 1) break;
    }
    return {};
}

// --- 2. Acceptance ----------------------------------------------------------------------------

DraftVerdict acceptDraftToken(const TokenProbs& p, const TokenProbs& q, int32_t x, double uAccept,
                              double uResample) {
    KVSCOPE_CHECK(!p.empty(), "no target distribution to check a draft token against");
    // 1. p(x) and q(x); an empty q is a point mass at x
    double px = 0;
    for (const auto& [id, prob] : p)
        if (id == x) px = prob;
    double qx = q.empty() ? 1.0 : 0.0;
    for (const auto& [id, prob] : q)
        if (id == x) qx = prob;
    // 2. accept with probability min(1, p(x) / q(x))
    if (uAccept * qx < px) return {true, x};
    // 3. else a draw from normalize(max(0, p - q)), which has no mass at x
    std::unordered_map<int32_t, double> qOf;
    if (q.empty())
        qOf[x] = 1.0;
    else
        for (const auto& [id, prob] : q) qOf[id] += prob;
    TokenProbs residual;
    residual.reserve(p.size());
    double total = 0;
    for (const auto& [id, prob] : p) {
        const auto it = qOf.find(id);
        const double r = std::max(0.0, prob - (it == qOf.end() ? 0.0 : it->second));
        residual.emplace_back(id, r);
        total += r;
    }
    if (total <= 0) {  // p == q up to rounding: rejection had probability ~0; p itself is exact
        double all = 0;
        for (const auto& [id, prob] : p) all += prob;
        return {false, drawFrom(p, all, uResample)};
    }
    return {false, drawFrom(residual, total, uResample)};
}

// --- 3. Drafters -----------------------------------------------------------------------------

LookupDrafter::LookupDrafter(int maxNgram, int minNgram)
    : maxNgram_(maxNgram), minNgram_(minNgram) {
    KVSCOPE_CHECK(minNgram >= 1 && minNgram <= maxNgram,
                  "lookup n-gram sizes must satisfy 1 <= min <= max, got min " +
                      std::to_string(minNgram) + " and max " + std::to_string(maxNgram));
}

Draft LookupDrafter::propose(std::span<const int32_t> context, int maxTokens,
                             const SamplerParams&) {
    return {lookupDraft(context, std::max(maxTokens, 0), maxNgram_, minNgram_), {}};
}

void checkSameVocabulary(const Tokenizer& draft, int draftVocab, const Tokenizer& target,
                         int targetVocab) {
    if (draftVocab != targetVocab || draft.vocabSize() != target.vocabSize())
        throw Error("the draft model's vocabulary has " + std::to_string(draft.vocabSize()) +
                    " tokens (n_vocab " + std::to_string(draftVocab) + ") and the target's " +
                    std::to_string(target.vocabSize()) + " (n_vocab " +
                    std::to_string(targetVocab) +
                    "): a draft model must share the target's vocabulary (kvscope train "
                    "--vocab-from makes one)");
    for (size_t i = 0; i < target.vocabSize(); ++i) {
        const auto id = static_cast<int32_t>(i);
        if (draft.tokenBytes(id) != target.tokenBytes(id))
            throw Error("the draft model's vocabulary differs from the target's at token " +
                        std::to_string(id) + ": " + quoted(draft.tokenBytes(id)) +
                        " in the draft, " + quoted(target.tokenBytes(id)) +
                        " in the target (kvscope train --vocab-from makes a model that shares "
                        "one)");
    }
}

ModelDrafter::ModelDrafter(std::shared_ptr<Backend> draft, const Tokenizer& draftTokenizer,
                           const Tokenizer& targetTokenizer, int targetVocab, std::string name)
    : backend_(std::move(draft)), name_(std::move(name)) {
    KVSCOPE_CHECK(backend_ != nullptr, "no draft model backend");
    checkSameVocabulary(draftTokenizer, backend_->config().nVocab, targetTokenizer, targetVocab);
}

Draft ModelDrafter::propose(std::span<const int32_t> context, int maxTokens,
                            const SamplerParams& sampler) {
    Draft d;
    const size_t nCtx = static_cast<size_t>(backend_->config().nCtx);
    if (maxTokens <= 0 || context.empty() || context.size() > nCtx) return d;
    try {
        // 1. the draft's cache follows the context: keep the common prefix, run the rest
        size_t common = 0;
        while (common < tokens_.size() && common < context.size() &&
               tokens_[common] == context[common])
            ++common;
        if (common == context.size() && tokens_.size() != common) --common;  // logits needed
        if (common < tokens_.size() || tokens_.size() < context.size()) {
            backend_->truncateCache(static_cast<int>(common));
            tokens_.resize(common);
            backend_->forward(context.subspan(common), false, logits_, nullptr);
            tokens_.assign(context.begin(), context.end());
        }
        // 2. one token at a time from the draft's own distribution
        for (int i = 0; i < maxTokens; ++i) {
            const uint64_t pos = context.size() + static_cast<size_t>(i);  // x's position
            TokenProbs q = keptTokens(logits_, sampler);
            double total = 0;
            for (const auto& [id, prob] : q) total += prob;
            const int32_t x = q.size() == 1
                                  ? q.front().first
                                  : drawFrom(q, total, uniformAt(sampler.seed ^ kDraftSalt, pos));
            d.tokens.push_back(x);
            d.q.push_back(std::move(q));
            // run x for the next proposal, unless this was the last one or the context is full
            if (i + 1 == maxTokens || tokens_.size() + 1 >= nCtx) break;
            const int32_t one[1] = {x};
            backend_->forward(one, false, logits_, nullptr);
            tokens_.push_back(x);
        }
    } catch (...) {
        // the cache may hold part of a pass: start again from nothing next time
        tokens_.clear();
        logits_.clear();
        backend_->truncateCache(0);
        throw;
    }
    return d;
}

// --- 4. The decoder ---------------------------------------------------------------------------

SpeculativeDecoder::SpeculativeDecoder(DecodeSession& session, std::unique_ptr<Drafter> drafter,
                                       int maxDraft)
    : session_(session), drafter_(std::move(drafter)), maxDraft_(maxDraft) {
    KVSCOPE_CHECK(drafter_ != nullptr, "speculative decoding needs a drafter");
    KVSCOPE_CHECK(maxDraft >= 0,
                  "the draft length must be 0 or more, got " + std::to_string(maxDraft));
    KVSCOPE_CHECK(session.usesCache(),
                  "speculative decoding keeps the accepted drafts' K and V in the cache and "
                  "rolls back the rest: it needs a session that uses the cache");
}

std::optional<int32_t> SpeculativeDecoder::pending() const {
    if (pending_ && pendingAfter_ == session_.tokens()) return pending_;
    return std::nullopt;
}

std::optional<StepTrace> SpeculativeDecoder::flush() {
    const std::optional<int32_t> next = pending();
    if (!next) return std::nullopt;
    StepTrace s = session_.stepWith(*next);
    pending_.reset();
    return s;
}

SpeculativeStep SpeculativeDecoder::step(int maxNew) {
    KVSCOPE_CHECK(maxNew >= 1, "a speculative step must emit at least one token, asked for " +
                                   std::to_string(maxNew));
    if (session_.tokens().empty()) throw Error("nothing to continue from: prefill a prompt first");
    const auto t0 = std::chrono::steady_clock::now();
    const SamplerParams& sampler = session_.options().sampler;
    const size_t nCtx = static_cast<size_t>(session_.backend().config().nCtx);
    SpeculativeStep r;

    // 1. the token about to enter the cache: the pending one, or a draw from the session
    std::optional<int32_t> next = pending();
    if (!next) {
        next = sampleToken(session_.logits(), sampler, session_.tokens().size());
        r.emitted.push_back(*next);
    }
    const size_t start = session_.tokens().size();  // the position of `next`
    if (start + 1 > nCtx)
        throw Error("the context is full (" + std::to_string(nCtx) +
                    " tokens): step back or start again");

    // 2. the draft, as long as the emitted budget and the context allow
    const long long budget =
        static_cast<long long>(maxNew) - static_cast<long long>(r.emitted.size()) - 1;
    if (budget < 0) {  // the first token alone fills maxNew: it stays pending
        pending_ = next;
        pendingAfter_ = session_.tokens();
        r.hostMs = msSince(t0);
        return r;
    }
    const int nDraft = static_cast<int>(std::min<long long>(
        {static_cast<long long>(maxDraft_), budget, static_cast<long long>(nCtx - start - 1)}));
    std::vector<int32_t> context = session_.tokens();
    context.push_back(*next);
    const auto tDraft = std::chrono::steady_clock::now();
    Draft draft = nDraft > 0 ? drafter_->propose(context, nDraft, sampler) : Draft{};
    r.draftMs = msSince(tDraft);
    if (draft.tokens.size() > static_cast<size_t>(nDraft)) draft.tokens.resize(nDraft);
    KVSCOPE_CHECK(draft.q.empty() || draft.q.size() >= draft.tokens.size(),
                  "the drafter gave " + std::to_string(draft.q.size()) + " distributions for " +
                      std::to_string(draft.tokens.size()) + " tokens");

    // 3. one verification pass over the pending token and the drafts
    std::vector<int32_t> batch{*next};
    batch.insert(batch.end(), draft.tokens.begin(), draft.tokens.end());
    const auto tVerify = std::chrono::steady_clock::now();
    std::vector<StepTrace> traces = session_.appendBatch(batch);
    r.verifyMs = msSince(tVerify);
    r.verifyDeviceMs = session_.backend().lastForwardDeviceMs().value_or(-1.0);
    const std::span<const float> rows = session_.appendedLogits();
    const size_t nVocab = static_cast<size_t>(session_.backend().config().nVocab);
    auto row = [&](size_t i) { return rows.subspan(i * nVocab, nVocab); };

    // 4. accept a prefix of the drafts; the first rejected one is replaced by the target's token
    const TokenProbs pointMass;
    int accepted = 0;
    std::optional<int32_t> after;
    for (size_t i = 0; i < draft.tokens.size(); ++i) {
        const uint64_t pos = start + 1 + i;  // the drafted token's position
        const TokenProbs p = keptTokens(row(i), sampler);
        const DraftVerdict v =
            acceptDraftToken(p, draft.q.empty() ? pointMass : draft.q[i], draft.tokens[i],
                             uniformAt(sampler.seed ^ kAcceptSalt, pos),
                             uniformAt(sampler.seed ^ kResampleSalt, pos));
        if (!v.accepted) {
            after = v.token;
            break;
        }
        ++accepted;
    }
    if (!after)  // every draft accepted: one more token from the last row, as a plain step would
        after = sampleToken(row(draft.tokens.size()), sampler, start + 1 + draft.tokens.size());

    // 5. roll back the rejected drafts: their K and V leave the cache
    try {
        session_.keepAppended(static_cast<size_t>(1 + accepted));
    } catch (...) {
        // the session kept the whole batch: step back to before it, so that no rejected draft
        // stays in the sequence (the next round starts again from there)
        if (session_.tokens().size() == start + batch.size()) session_.rewind(batch.size());
        throw;
    }
    pending_ = after;
    pendingAfter_ = session_.tokens();

    r.draft = std::move(draft.tokens);
    r.accepted = accepted;
    r.emitted.insert(r.emitted.end(), r.draft.begin(), r.draft.begin() + accepted);
    r.emitted.push_back(*after);
    for (size_t i = 0; i < traces.size(); ++i) {
        if (i < static_cast<size_t>(1 + accepted)) {
            traces[i].kvBytes = session_.kvBytes();
            traces[i].kvAllocatedBytes = session_.kvAllocatedBytes();
            r.traces.push_back(std::move(traces[i]));
        } else {
            r.rejected.push_back(std::move(traces[i]));
        }
    }
    ++rounds_;
    drafted_ += r.drafted();
    accepted_ += accepted;
    r.hostMs = msSince(t0);
    return r;
}

}  // namespace kvscope
