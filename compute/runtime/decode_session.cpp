// DecodeSession: token bookkeeping, timing and sampling around Backend::forward.
#include "runtime/decode_session.h"

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "text/tokenizer.h"

namespace kvscope {
namespace {
double msSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Drift measureDrift(std::span<const float> policyLogits, std::span<const float> fullLogits) {
    KVSCOPE_CHECK(policyLogits.size() == fullLogits.size() && !fullLogits.empty(),
                  "drift: the two distributions differ in size");
    auto logZ = [](std::span<const float> l, size_t& best) {
        double mx = -std::numeric_limits<double>::infinity();
        best = 0;
        for (size_t v = 0; v < l.size(); ++v)
            if (l[v] > mx) mx = l[v], best = v;
        double sum = 0;
        for (float x : l) sum += std::exp(static_cast<double>(x) - mx);
        return mx + std::log(sum);
    };
    size_t bestPolicy = 0, bestFull = 0;
    const double zp = logZ(policyLogits, bestPolicy), zf = logZ(fullLogits, bestFull);
    Drift d;
    for (size_t v = 0; v < fullLogits.size(); ++v) {
        const double lf = fullLogits[v] - zf, lp = policyLogits[v] - zp;  // log-probabilities
        d.kl += std::exp(lf) * (lf - lp);
    }
    d.kl = std::max(0.0, d.kl);  // >= 0; rounding can dip below
    d.top1 = bestPolicy == bestFull;
    d.fullChoiceProb = std::exp(policyLogits[bestFull] - zp);
    return d;
}

namespace {
bool lossy(const KvCacheOptions& o) {
    return o.eviction.evicts() || o.type != KvType::F32;
}
}  // namespace

DecodeSession::DecodeSession(std::shared_ptr<Backend> backend, const Tokenizer& tokenizer,
                             SessionOptions options)
    : backend_(std::move(backend)), tokenizer_(tokenizer), options_(options) {
    const KvCacheOptions policy = backend_->cacheOptions();
    if (options_.drift && options_.useCache && lossy(policy))
        reference_ = backend_->withCache(KvCacheOptions(KvType::F32, policy.blockTokens));
}

size_t DecodeSession::kvBytes() const {
    return options_.useCache
               ? static_cast<size_t>(backend_->cacheRows()) * backend_->cacheBytesPerToken()
               : 0;
}

void DecodeSession::describeDrift(StepTrace& s, std::span<const float> policy,
                                  std::span<const float> full) const {
    const Drift d = measureDrift(policy, full);
    s.driftKl = static_cast<float>(d.kl);
    s.driftTop1 = d.top1 ? 1 : 0;
    s.driftFullChoiceProb = static_cast<float>(d.fullChoiceProb);
}

size_t DecodeSession::kvAllocatedBytes() const {
    return options_.useCache ? backend_->cacheAllocatedBytes() : 0;
}

void DecodeSession::run(size_t from, std::vector<StepTrace>* traces, std::vector<float>* all) {
    std::vector<float>& out = all ? *all : logits_;
    if (options_.useCache) {
        KVSCOPE_CHECK(static_cast<size_t>(backend_->cacheUsed()) == from,
                      "the cache holds " + std::to_string(backend_->cacheUsed()) +
                          " tokens where the session expects " + std::to_string(from));
        backend_->forward(std::span(tokens_).subspan(from), all != nullptr, out, traces);
    } else {
        // No cache: every pass starts from an empty cache and recomputes K and V of all tokens.
        backend_->truncateCache(0);
        backend_->forward(tokens_, all != nullptr, out, traces, static_cast<int>(from));
        backend_->truncateCache(0);
    }
    if (reference_) {  // the full cache follows the same tokens
        if (static_cast<size_t>(reference_->cacheUsed()) > from)
            reference_->truncateCache(static_cast<int>(from));
        const auto done = static_cast<size_t>(reference_->cacheUsed());
        std::vector<float> refAll;
        reference_->forward(std::span(tokens_).subspan(done), all != nullptr,
                            all ? refAll : referenceLogits_, nullptr);
        if (all) {
            referenceAll_ = std::move(refAll);
            const size_t nVocab = static_cast<size_t>(backend_->config().nVocab);
            referenceLogits_.assign(referenceAll_.end() - static_cast<std::ptrdiff_t>(nVocab),
                                    referenceAll_.end());
        }
    }
    if (traces)  // the thumbnails' pooled rows, here on the decoding thread
        for (StepTrace& t : *traces) t.poolAttentionRows();
    if (all) {  // the last row is the distribution for the next token
        const size_t nVocab = static_cast<size_t>(backend_->config().nVocab);
        KVSCOPE_CHECK(all->size() >= nVocab && all->size() % nVocab == 0,
                      "the backend returned " + std::to_string(all->size()) +
                          " logits, expected whole rows of " + std::to_string(nVocab));
        logits_.assign(all->end() - static_cast<std::ptrdiff_t>(nVocab), all->end());
    }
}

void DecodeSession::describe(StepTrace& s, std::span<const float> logits, int32_t token) const {
    // 1. the top logits with their text
    s.top = topLogits(logits, options_.topLogits);
    s.topText.clear();
    s.topSpecial.clear();
    for (const auto& [id, logit] : s.top) {
        s.topText.push_back(tokenizer_.tokenBytes(id));
        s.topSpecial.push_back(tokenizer_.isSpecial(id) ? 1 : 0);
    }
    // 2. log-sum-exp and entropy over the whole vocabulary (T = 1), in double (Eigen's packet
    // exp: the library's scalar exp over a 50,000-150,000 vocabulary was ~2% of a decode step)
    const Eigen::Map<const Eigen::ArrayXf> l(logits.data(),
                                             static_cast<Eigen::Index>(logits.size()));
    const double maxLogit = static_cast<double>(l.maxCoeff());
    double sum = 0, weighted = 0;
    if (std::isfinite(maxLogit)) {
        // a -inf logit has probability 0: the packet exp clamps its argument, so those are set
        // to 0 after it (a select() in the expression would make Eigen use the scalar exp)
        Eigen::ArrayXd ld = l.cast<double>();
        Eigen::ArrayXd e = (ld - maxLogit).exp();
        const float minusInf = -std::numeric_limits<float>::infinity();
        for (Eigen::Index i = 0; i < l.size(); ++i)
            if (l[i] == minusInf) e[i] = ld[i] = 0.0;
        sum = e.sum();
        weighted = (e * ld).sum();
    } else {  // an infinite logit: the loop's own answers (inf - inf is NaN either way)
        for (float x : logits) {
            const double e = std::exp(static_cast<double>(x) - maxLogit);
            sum += e;
            weighted += e * x;
        }
    }
    const double logZ = maxLogit + std::log(sum);
    s.logZ = static_cast<float>(logZ);
    s.entropy = static_cast<float>(logZ - weighted / sum);  // H = logZ - E[logit]
    // 3. the chosen token's logit and rank (ties: lower id first, as topLogits orders them)
    const float chosen = logits[static_cast<size_t>(token)];
    s.chosenLogit = chosen;
    int rank = 0;
    for (size_t v = 0; v < logits.size(); ++v)
        if (logits[v] > chosen || (logits[v] == chosen && static_cast<int32_t>(v) < token)) ++rank;
    s.chosenRank = rank;
}

LogitLens DecodeSession::logitLens(const StepTrace& trace, int32_t target, int topN) {
    const ModelConfig& c = backend_->config();
    if (!trace.hasResiduals())
        throw Error("token " + std::to_string(trace.position) +
                    " has no residual stream in its trace (traces were not captured)");
    if (trace.nLayer != c.nLayer || trace.nEmbd != c.nEmbd)
        throw Error("the trace of token " + std::to_string(trace.position) + " has " +
                    std::to_string(trace.nLayer) + " layers of " + std::to_string(trace.nEmbd) +
                    "; the model has " + std::to_string(c.nLayer) + " of " +
                    std::to_string(c.nEmbd));
    if (target >= c.nVocab)
        throw Error("token id " + std::to_string(target) + " is not in the vocabulary");
    std::vector<float> logits;
    backend_->headLogits(trace.resid, logits);
    LogitLens lens;
    lens.position = trace.position;
    lens.target = target;
    const auto V = static_cast<size_t>(c.nVocab);
    for (int l = 0; l < c.nLayer; ++l) {
        const std::span<const float> row(logits.data() + static_cast<size_t>(l) * V, V);
        LogitLensLayer out;
        out.top = topLogits(row, topN);
        double maxLogit = -std::numeric_limits<double>::infinity();
        for (float x : row) maxLogit = std::max(maxLogit, static_cast<double>(x));
        double sum = 0;
        for (float x : row) sum += std::exp(static_cast<double>(x) - maxLogit);
        const auto prob = [&](float x) {
            return static_cast<float>(std::exp(static_cast<double>(x) - maxLogit) / sum);
        };
        for (const auto& [id, logit] : out.top) {
            out.topText.push_back(tokenizer_.tokenBytes(id));
            out.topProb.push_back(prob(logit));
        }
        if (target >= 0) {
            const float t = row[static_cast<size_t>(target)];
            out.targetProb = prob(t);
            int rank = 0;  // ties: lower id first, as topLogits orders them
            for (size_t v = 0; v < V; ++v)
                if (row[v] > t || (row[v] == t && static_cast<int32_t>(v) < target)) ++rank;
            out.targetRank = rank;
        }
        lens.layers.push_back(std::move(out));
    }
    return lens;
}

std::vector<StepTrace> DecodeSession::prefill(std::string_view prompt) {
    std::vector<int32_t> ids;
    // BOS and EOS as llama.cpp's add_special adds them (the file's add_bos/add_eos_token)
    if (backend_->config().addBos) ids.push_back(*tokenizer_.bos());
    for (int32_t id : tokenizer_.encode(prompt, options_.parseSpecial)) ids.push_back(id);
    if (tokenizer_.addEos() && tokenizer_.eos()) ids.push_back(*tokenizer_.eos());
    if (ids.empty() && tokenizer_.bos()) ids.push_back(*tokenizer_.bos());
    return prefillTokens(ids);
}

std::vector<StepTrace> DecodeSession::prefillTokens(std::span<const int32_t> ids) {
    const int nCtx = backend_->config().nCtx;
    if (ids.empty())
        throw Error("the prompt is empty and the model has no BOS token to start from");
    if (ids.size() > static_cast<size_t>(nCtx))
        throw Error("the prompt is " + std::to_string(ids.size()) + " tokens; the context holds " +
                    std::to_string(nCtx) + " (the model was trained for " +
                    std::to_string(backend_->config().nCtxTrain) + "; --context sets it)");
    for (int32_t id : ids)
        if (id < 0 || static_cast<size_t>(id) >= tokenizer_.vocabSize())
            throw Error("prompt token id " + std::to_string(id) + " is outside the vocabulary");
    const Saved before = save();
    reset();
    tokens_.assign(ids.begin(), ids.end());
    std::vector<StepTrace> traces;
    const auto t0 = std::chrono::steady_clock::now();
    // Every position's logits when the traces keep distributions: prompt token i gets the
    // prediction made after token i - 1 (n × n_vocab floats for the moment of the prefill, so
    // only up to kMaxPrefillLogits of them; a longer prompt's tokens get no distribution).
    std::vector<float> all;
    const bool keepAll =
        options_.topLogits > 0 &&
        tokens_.size() * static_cast<size_t>(backend_->config().nVocab) <= kMaxPrefillLogits;
    try {
        run(0, options_.captureTrace ? &traces : nullptr, keepAll ? &all : nullptr);
    } catch (const std::exception& e) {
        restore(before, e);
    }
    prefillMs_ = msSince(t0);
    promptLength_ = tokens_.size();
    if (!options_.captureTrace) {  // still one value per token, without tensors
        for (size_t i = 0; i < tokens_.size(); ++i) {
            StepTrace s;
            s.token = tokens_[i];
            s.position = static_cast<int>(i);
            traces.push_back(std::move(s));
        }
    }
    for (StepTrace& s : traces) {
        s.text = tokenizer_.tokenBytes(s.token);
        s.special = tokenizer_.isSpecial(s.token);
        s.prompt = true;
        s.hostMs = prefillMs_;
        s.deviceMs = backend_->lastForwardDeviceMs().value_or(-1.0);
        s.kvBytes = kvBytes();
        s.kvAllocatedBytes = kvAllocatedBytes();
        if (reference_) s.fullKvBytes = referenceBytes();
        if (keepAll && s.position > 0) {
            const size_t nVocab = static_cast<size_t>(backend_->config().nVocab);
            const size_t at = static_cast<size_t>(s.position - 1) * nVocab;
            describe(s, std::span<const float>(all).subspan(at, nVocab), s.token);
            if (reference_ && referenceAll_.size() == all.size())
                describeDrift(s, std::span<const float>(all).subspan(at, nVocab),
                              std::span<const float>(referenceAll_).subspan(at, nVocab));
        }
    }
    referenceAll_.clear();
    referenceAll_.shrink_to_fit();
    noteEvictions(traces);
    return traces;
}

StepTrace DecodeSession::step() {
    return stepImpl(nullptr);
}

StepTrace DecodeSession::stepWith(int32_t token) {
    if (token < 0 || static_cast<size_t>(token) >= tokenizer_.vocabSize())
        throw Error("token id " + std::to_string(token) + " is outside the vocabulary");
    return stepImpl(&token);
}

StepTrace DecodeSession::stepImpl(const int32_t* forced) {
    if (tokens_.empty()) throw Error("nothing to continue from: prefill a prompt first");
    const int nCtx = backend_->config().nCtx;
    if (tokens_.size() >= static_cast<size_t>(nCtx))
        throw Error("the context is full (" + std::to_string(nCtx) +
                    " tokens): step back or start again");

    const auto t0 = std::chrono::steady_clock::now();
    const size_t pos = tokens_.size();
    const int32_t token = forced ? *forced : sampleToken(logits_, options_.sampler, pos);
    StepTrace described;
    if (options_.topLogits > 0) describe(described, logits_, token);
    if (reference_ && referenceLogits_.size() == logits_.size())
        describeDrift(described, logits_, referenceLogits_);
    std::vector<float> previous = logits_;
    tokens_.push_back(token);
    std::vector<StepTrace> traces;
    try {
        run(pos, options_.captureTrace ? &traces : nullptr);
    } catch (...) {
        tokens_.pop_back();
        if (options_.useCache) backend_->truncateCache(static_cast<int>(pos));
        logits_ = std::move(previous);
        throw;
    }
    StepTrace s = traces.empty() ? StepTrace{} : std::move(traces.back());
    s.token = token;
    s.position = static_cast<int>(pos);
    s.text = tokenizer_.tokenBytes(token);
    s.special = tokenizer_.isSpecial(token);
    s.top = std::move(described.top);
    s.topText = std::move(described.topText);
    s.topSpecial = std::move(described.topSpecial);
    s.logZ = described.logZ;
    s.chosenLogit = described.chosenLogit;
    s.chosenRank = described.chosenRank;
    s.entropy = described.entropy;
    s.driftKl = described.driftKl;
    s.driftTop1 = described.driftTop1;
    s.driftFullChoiceProb = described.driftFullChoiceProb;
    if (reference_) s.fullKvBytes = referenceBytes();
    s.hostMs = msSince(t0);
    s.deviceMs = backend_->lastForwardDeviceMs().value_or(-1.0);
    s.kvBytes = kvBytes();
    s.kvAllocatedBytes = kvAllocatedBytes();
    noteEvictions(std::span(&s, 1));
    return s;
}

void DecodeSession::noteEvictions(std::span<StepTrace> traces) const {
    const KvRows* cache = backend_->cacheBook();
    if (!options_.useCache || !cache || !cache->eviction().evicts() || traces.empty()) return;
    const int first = traces.front().position;
    for (int l = 0; l < cache->nLayer(); ++l)
        for (int p = 0; p < cache->used(); ++p) {
            const int at = cache->evictedAt(l, p);
            if (at != KvRows::kHeld && at >= first && at - first < static_cast<int>(traces.size()))
                traces[static_cast<size_t>(at - first)].evicted.push_back({l, p});
        }
}

std::vector<StepTrace> DecodeSession::appendBatch(std::span<const int32_t> batch) {
    if (tokens_.empty()) throw Error("nothing to continue from: prefill a prompt first");
    if (batch.empty()) throw Error("no tokens to append: the batch is empty");
    const size_t nCtx = static_cast<size_t>(backend_->config().nCtx);
    if (tokens_.size() + batch.size() > nCtx)
        throw Error("appending " + std::to_string(batch.size()) + " tokens to " +
                    std::to_string(tokens_.size()) + " would overflow the context of " +
                    std::to_string(nCtx) + " tokens: step back or start again");
    for (int32_t id : batch)
        if (id < 0 || static_cast<size_t>(id) >= tokenizer_.vocabSize())
            throw Error("token id " + std::to_string(id) + " is outside the vocabulary");

    const auto t0 = std::chrono::steady_clock::now();
    const size_t start = tokens_.size();
    std::vector<float> before = logits_;
    std::vector<float> referenceBefore = referenceLogits_;
    tokens_.insert(tokens_.end(), batch.begin(), batch.end());
    std::vector<StepTrace> traces;
    std::vector<float> all;  // (n, n_vocab) cached; (start + n, n_vocab) in recompute mode
    try {
        run(start, options_.captureTrace ? &traces : nullptr, &all);
    } catch (...) {
        tokens_.resize(start);
        if (options_.useCache && backend_->cacheUsed() > static_cast<int>(start))
            backend_->truncateCache(static_cast<int>(start));
        logits_ = std::move(before);
        if (reference_ && reference_->cacheUsed() > static_cast<int>(start))
            reference_->truncateCache(static_cast<int>(start));
        referenceLogits_ = std::move(referenceBefore);
        throw;
    }
    const double ms = msSince(t0);
    const size_t nVocab = static_cast<size_t>(backend_->config().nVocab);
    // 1. the batch's own rows: the last n of what the pass returned
    std::vector<float> rows(all.end() - static_cast<std::ptrdiff_t>(batch.size() * nVocab),
                            all.end());
    std::vector<float> referenceRows;  // the full cache's, when it measures drift
    if (reference_ && referenceAll_.size() >= rows.size())
        referenceRows.assign(referenceAll_.end() - static_cast<std::ptrdiff_t>(rows.size()),
                             referenceAll_.end());
    referenceAll_.clear();
    // 2. one trace per token, with the distribution that chose it
    if (!options_.captureTrace) {
        traces.clear();
        for (size_t i = 0; i < batch.size(); ++i) {
            StepTrace s;
            s.token = batch[i];
            s.position = static_cast<int>(start + i);
            traces.push_back(std::move(s));
        }
    }
    for (size_t i = 0; i < traces.size(); ++i) {
        StepTrace& s = traces[i];
        s.text = tokenizer_.tokenBytes(s.token);
        s.special = tokenizer_.isSpecial(s.token);
        s.hostMs = ms;
        s.deviceMs = backend_->lastForwardDeviceMs().value_or(-1.0);
        s.kvBytes = kvBytes();
        s.kvAllocatedBytes = kvAllocatedBytes();
        const std::span<const float> chose =
            i == 0 ? std::span<const float>(before)
                   : std::span<const float>(rows).subspan((i - 1) * nVocab, nVocab);
        if (options_.topLogits > 0) describe(s, chose, s.token);
        if (reference_) {
            s.fullKvBytes = referenceBytes();
            const std::span<const float> full =
                i == 0 ? std::span<const float>(referenceBefore)
                       : std::span<const float>(referenceRows).subspan((i - 1) * nVocab, nVocab);
            if (full.size() == chose.size()) describeDrift(s, chose, full);
        }
    }
    appended_ = {start,
                 tokens_,
                 std::move(before),
                 std::move(rows),
                 std::move(referenceBefore),
                 std::move(referenceRows)};
    return traces;
}

std::span<const float> DecodeSession::appendedLogits() const {
    if (appended_.tokens.empty() || tokens_ != appended_.tokens) return {};
    return appended_.rows;
}

void DecodeSession::keepAppended(size_t keep) {
    KVSCOPE_CHECK(!appended_.tokens.empty() && tokens_ == appended_.tokens,
                  "nothing to keep: the session's tokens are no longer those the last "
                  "appendBatch left");
    const size_t n = appended_.tokens.size() - appended_.start;
    KVSCOPE_CHECK(keep <= n, "cannot keep " + std::to_string(keep) + " tokens of a batch of " +
                                 std::to_string(n));
    const size_t total = appended_.start + keep;
    if (keep == n) {  // nothing to drop
        appended_ = {};
        return;
    }
    if (options_.useCache && !backend_->canTruncateCache(static_cast<int>(total))) {
        // the policy let go of rows held after the kept tokens: run them again, as rewind does
        const Saved before = save();
        appended_ = {};
        try {
            tokens_.resize(total);
            backend_->truncateCache(0);
            run(0, nullptr);
        } catch (const std::exception& e) {
            restore(before, e);
        }
        return;
    }
    if (options_.useCache) backend_->truncateCache(static_cast<int>(total));
    tokens_.resize(total);
    const size_t nVocab = static_cast<size_t>(backend_->config().nVocab);
    auto rowOf = [&](const std::vector<float>& rows) {
        return std::vector<float>(rows.begin() + static_cast<std::ptrdiff_t>((keep - 1) * nVocab),
                                  rows.begin() + static_cast<std::ptrdiff_t>(keep * nVocab));
    };
    logits_ = keep == 0 ? std::move(appended_.before) : rowOf(appended_.rows);
    if (reference_) {  // the full cache (drift) keeps the same tokens
        if (reference_->cacheUsed() > static_cast<int>(total))
            reference_->truncateCache(static_cast<int>(total));
        if (keep == 0)
            referenceLogits_ = std::move(appended_.referenceBefore);
        else if (appended_.referenceRows.size() == appended_.rows.size())
            referenceLogits_ = rowOf(appended_.referenceRows);
        else
            referenceLogits_.clear();  // not measured: the next step's drift is left out
    }
    appended_ = {};
}

void DecodeSession::rewind(size_t n) {
    KVSCOPE_CHECK(n <= tokens_.size(), "cannot step back " + std::to_string(n) + " of " +
                                           std::to_string(tokens_.size()) + " tokens");
    if (n == 0) return;
    const size_t keep = tokens_.size() - n;
    if (keep == 0) {
        reset();
        return;
    }
    const Saved before = save();
    tokens_.resize(keep);
    promptLength_ = std::min(promptLength_, keep);
    // The logits after the last kept token were not stored; run that token again (its K and V
    // come out the same), which costs one step.
    try {
        if (!options_.useCache) {
            run(keep - 1, nullptr);
        } else if (backend_->canTruncateCache(static_cast<int>(keep - 1))) {
            backend_->truncateCache(static_cast<int>(keep - 1));
            run(keep - 1, nullptr);
        } else {  // the policy let go of rows it held then: run the kept tokens again
            backend_->truncateCache(0);
            run(0, nullptr);
        }
    } catch (const std::exception& e) {
        restore(before, e);
    }
}

DecodeSession::Saved DecodeSession::save() const {
    return {tokens_, promptLength_, logits_, prefillMs_};
}

void DecodeSession::restore(const Saved& saved, const std::exception& cause) {
    // Put tokens, cache and logits back as they were: the cache by running the saved tokens
    // again in one pass (the same keys and values, within float rounding).
    try {
        tokens_ = saved.tokens;
        promptLength_ = saved.promptLength;
        prefillMs_ = saved.prefillMs;
        backend_->truncateCache(0);
        if (!tokens_.empty()) run(0, nullptr);
        logits_ = saved.logits;
    } catch (const std::exception& again) {
        reset();
        throw Error(std::string(cause.what()) +
                    "; the tokens before it could not be restored either (" + again.what() +
                    "), so the session was reset");
    }
    throw Error(cause.what());
}

void DecodeSession::reset() {
    tokens_.clear();
    promptLength_ = 0;
    logits_.clear();
    prefillMs_ = 0;
    backend_->truncateCache(0);
    if (reference_) reference_->truncateCache(0);
    referenceLogits_.clear();
}

std::unique_ptr<DecodeSession> DecodeSession::fork() const {
    SessionOptions o = options_;
    o.drift = false;  // the copy's reference comes from this one's, forked too
    auto copy = std::make_unique<DecodeSession>(backend_->fork(), tokenizer_, o);
    if (reference_) copy->reference_ = reference_->fork();
    copy->options_.drift = options_.drift;
    copy->tokens_ = tokens_;
    copy->promptLength_ = promptLength_;
    copy->logits_ = logits_;
    copy->referenceLogits_ = referenceLogits_;
    copy->prefillMs_ = prefillMs_;
    return copy;
}

size_t DecodeSession::referenceBytes() const {
    return static_cast<size_t>(reference_->cacheRows()) * reference_->cacheBytesPerToken();
}

ReplayTimes DecodeSession::replayWithoutCache(const std::function<void(int, int)>& progress) {
    if (tokens_.empty()) throw Error("nothing to replay: decode some tokens first");
    ReplayTimes r;
    r.tokens = tokens_;
    r.promptLength = promptLength_;
    const int total = static_cast<int>(tokens_.size() - promptLength_) + 1;
    std::vector<float> scratch;
    // Each pass starts from an empty cache and recomputes K and V of every token so far, on this
    // session's own backend (one copy of the weights). Where the backend has a spare cache the
    // passes run on it and the live one is swapped back afterwards, untouched; elsewhere the last
    // pass leaves the cache holding all the tokens, and a failure or a stop (progress may throw)
    // rebuilds it in one pass.
    const bool spare = backend_->swapSpareCache();
    auto pass = [&](size_t n) {
        const auto t0 = std::chrono::steady_clock::now();
        backend_->truncateCache(0);
        backend_->forward(std::span<const int32_t>(tokens_.data(), n), false, scratch, nullptr);
        return msSince(t0);
    };
    try {
        r.prefillMs = pass(promptLength_);
        if (progress) progress(1, total);
        for (size_t i = promptLength_; i < tokens_.size(); ++i) {
            r.stepMs.push_back(pass(i + 1));
            if (progress) progress(static_cast<int>(r.stepMs.size()) + 1, total);
        }
        if (spare) {
            backend_->truncateCache(0);
            backend_->swapSpareCache();
        } else if (!options_.useCache) {
            backend_->truncateCache(0);  // a recompute session keeps none
        }
    } catch (...) {
        if (spare) {
            backend_->truncateCache(0);
            backend_->swapSpareCache();
            throw;
        }
        try {
            backend_->truncateCache(0);
            if (options_.useCache) backend_->forward(tokens_, false, scratch, nullptr);
        } catch (const std::exception& again) {
            reset();
            throw Error(std::string("compare without cache failed and the cache could not be "
                                    "rebuilt (") +
                        again.what() + "), so the session was reset");
        }
        throw;
    }
    return r;
}

}  // namespace kvscope
