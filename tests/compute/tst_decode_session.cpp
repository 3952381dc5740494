// DecodeSession on the CPU backend: cached decoding equals one full forward pass and equals
// recompute mode; grouped-query heads read the right KV head; rewind is exact; limits are errors.
#include <QTest>
#include <cmath>

#include "core/error.h"
#include "core/system_memory.h"
#include "cpu/cpu_backend.h"
#include "model_fixtures.h"
#include "numeric_checks.h"
#include "runtime/backend.h"
#include "runtime/decode_session.h"

using namespace kvscope;

namespace {

// The tolerance for float32 results of different summation orders (batched GEMM vs GEMV).
using testing::maxRelError;
constexpr double kTol = 1e-4;

DecodeSession makeSession(const std::shared_ptr<const Model>& m, bool cache,
                          SamplerParams sampler = {}) {
    SessionOptions o;
    o.useCache = cache;
    o.sampler = sampler;
    return DecodeSession(std::make_shared<CpuBackend>(m), m->tokenizer, o);
}

const char* kPrompt = "the cat sat on the mat";

// A CPU backend whose forward fails once, on a chosen call (an OpenCL error, an allocation that
// fails): every other call is the real thing.
class FailingBackend : public Backend {
  public:
    explicit FailingBackend(std::shared_ptr<const Model> m) : inner_(std::move(m)) {}
    // The n-th call from now fails, and the `count` - 1 calls after it too.
    void failOnCall(int n, int count = 1) {
        failAt_ = calls_ + n;
        failUntil_ = failAt_ + count - 1;
    }

    std::string name() const override { return "failing cpu"; }
    std::string deviceName() const override { return inner_.deviceName(); }
    const ModelConfig& config() const override { return inner_.config(); }
    int cacheUsed() const override { return inner_.cacheUsed(); }
    size_t cacheBytesPerToken() const override { return inner_.cacheBytesPerToken(); }
    size_t cacheAllocatedBytes() const override { return inner_.cacheAllocatedBytes(); }

  protected:
    void doForward(std::span<const int32_t> tokens, bool allLogits, std::vector<float>& logits,
                   std::vector<StepTrace>* traces, int traceFrom) override {
        ++calls_;
        if (calls_ >= failAt_ && calls_ <= failUntil_) {
            // fail half way, as a device would: the cache already written in part
            inner_.forward(tokens.first(1), allLogits, logits, nullptr);
            throw Error("simulated device failure");
        }
        inner_.forward(tokens, allLogits, logits, traces, traceFrom);
    }
    void doAttentionMatrix(int layer, int head, std::span<const float> queries,
                           std::vector<float>& out) override {
        inner_.attentionMatrix(layer, head, queries, out);
    }
    void doTruncateCache(int n) override { inner_.truncateCache(n); }
    void doHeadLogits(std::span<const float> hidden, int, std::vector<float>& logits) override {
        inner_.headLogits(hidden, logits);
    }

  private:
    CpuBackend inner_;
    int calls_ = 0, failAt_ = -1, failUntil_ = -1;
};

}  // namespace

class TstDecodeSession : public QObject {
    Q_OBJECT
  private slots:
    // The shared comparison cannot pass a NaN, an Inf or a size mismatch.
    void maxRelErrorFailsOnNanAndSizeMismatch() {
        const std::vector<float> b{1.0f, 2.0f, 3.0f};
        QCOMPARE(maxRelError(b, b), 0.0);
        QVERIFY(std::abs(maxRelError(std::vector<float>{1.0f, 2.0f, 3.3f}, b) - 0.1) < 1e-6);
        QVERIFY(!(maxRelError(std::vector<float>{1.0f, NAN, 3.0f}, b) < kTol));
        QVERIFY(!(maxRelError(b, std::vector<float>{1.0f, INFINITY, 3.0f}) < kTol));
        QVERIFY(!(maxRelError(std::vector<float>{1.0f, 2.0f}, b) < kTol));
    }

    // The backend's checks are always on (Release too) and leave the cache as it was.
    void backendChecksItsArgumentsAlways() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        CpuBackend backend(m);
        std::vector<float> logits;
        const std::vector<int32_t> two{1, 2};
        backend.forward(two, false, logits, nullptr);
        QCOMPARE(backend.cacheUsed(), 2);
        const std::vector<int32_t> tooMany(static_cast<size_t>(m->config.nCtx), 1);
        QVERIFY_THROWS_EXCEPTION(Error, backend.forward(tooMany, false, logits, nullptr));
        QVERIFY_THROWS_EXCEPTION(Error,
                                 backend.forward(std::vector<int32_t>{}, false, logits, nullptr));
        QVERIFY_THROWS_EXCEPTION(
            Error, backend.forward(std::vector<int32_t>{m->config.nVocab}, false, logits, nullptr));
        QVERIFY_THROWS_EXCEPTION(Error, backend.truncateCache(3));
        QVERIFY_THROWS_EXCEPTION(Error, backend.truncateCache(-1));
        std::vector<float> out;
        const std::vector<float> q(static_cast<size_t>(m->config.headDim) * 3, 0.5f);  // 3 > used
        QVERIFY_THROWS_EXCEPTION(Error, backend.attentionMatrix(0, 0, q, out));
        QVERIFY_THROWS_EXCEPTION(
            Error,
            backend.attentionMatrix(m->config.nLayer, 0, std::span(q).first(q.size() / 3), out));
        QCOMPARE(backend.cacheUsed(), 2);  // nothing above touched the cache
        backend.forward(std::vector<int32_t>{3}, false, logits, nullptr);
        QCOMPARE(backend.cacheUsed(), 3);
    }

    // Weights and a full cache that do not fit the host's available memory: refused in the
    // constructor, before the cache takes a byte, with the figures and the context that fits.
    void aModelTooBigForMemoryIsRefusedWithTheFigures() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        const uint64_t weights = m->weightBytes();
        const uint64_t perToken =
            2ull * m->config.nLayer * m->config.nHeadKv * m->config.headDim * sizeof(float);
        const uint64_t full = weights + perToken * static_cast<uint64_t>(m->config.nCtx);
        setAvailableHostMemoryForTesting(full - 1);
        try {
            CpuBackend b(m);
            setAvailableHostMemoryForTesting(std::nullopt);
            QFAIL("a model larger than the available memory was accepted");
        } catch (const Error& e) {
            setAvailableHostMemoryForTesting(std::nullopt);
            const QString msg = e.what();
            QVERIFY2(msg.contains(QString::number(weights) + " bytes"), e.what());
            QVERIFY2(msg.contains(QString::number(perToken * m->config.nCtx) + " bytes"), e.what());
            // (full - 1 - weights) / perToken tokens fit: one fewer than the context
            QVERIFY2(msg.contains(QString("--context %1").arg(m->config.nCtx - 1)), e.what());
        }
        setAvailableHostMemoryForTesting(full);  // exactly enough
        CpuBackend fits(m);
        setAvailableHostMemoryForTesting(std::nullopt);
        QCOMPARE(fits.cacheAllocatedBytes(), size_t{0});
    }

    // An f16 cache holds half the bytes and gives the f32 cache's numbers within f16's rounding
    // of K and V (11 significant bits).
    void anF16CacheHalvesTheBytes() {
        auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        DecodeSession f32(std::make_shared<CpuBackend>(m), m->tokenizer);
        DecodeSession f16(
            std::make_shared<CpuBackend>(m, ThreadPool::shared(), KvCacheOptions{KvType::F16}),
            m->tokenizer);
        f32.prefill(kPrompt);
        f16.prefill(kPrompt);
        for (int i = 0; i < 4; ++i) {
            QVERIFY(maxRelError(f16.logits(), f32.logits()) < 1e-2);
            const int32_t t = f32.step().token;
            f16.stepWith(t);
        }
        QCOMPARE(f16.kvBytes() * 2, f32.kvBytes());
        QCOMPARE(f16.backend().cacheBytesPerToken(),
                 size_t{2} * m->config.nLayer * m->config.nHeadKv * m->config.headDim * 2);
    }

    void models_data() { fixtures::addModelRows(); }

    // Strong exception safety: a prefill, a step or a step back whose backend call fails leaves
    // tokens, cache and logits as they were, and the session goes on exactly as an untouched one.
    void aFailingBackendLeavesTheSessionAsItWas_data() {
        QTest::addColumn<QString>("operation");
        QTest::newRow("prefill") << "prefill";
        QTest::newRow("step") << "step";
        QTest::newRow("rewind") << "rewind";
        QTest::newRow("compare without cache") << "compare";
        QTest::newRow("compare, stopped") << "compare stopped";
    }
    void aFailingBackendLeavesTheSessionAsItWas() {
        QFETCH(QString, operation);
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        auto failing = std::make_shared<FailingBackend>(m);
        DecodeSession s(failing, m->tokenizer);
        DecodeSession control = makeSession(m, true);
        s.prefill(kPrompt);
        control.prefill(kPrompt);
        for (int i = 0; i < 3; ++i) QCOMPARE(s.step().token, control.step().token);
        const std::vector<int32_t> tokens = s.tokens();
        const size_t prompt = s.promptLength();
        const std::vector<float> logits(s.logits().begin(), s.logits().end());

        failing->failOnCall(1);
        if (operation == "prefill")
            QVERIFY_THROWS_EXCEPTION(Error, s.prefill("a different prompt"));
        else if (operation == "step")
            QVERIFY_THROWS_EXCEPTION(Error, s.step());
        else if (operation == "rewind")
            QVERIFY_THROWS_EXCEPTION(Error, s.rewind(2));
        else if (operation == "compare") {
            failing->failOnCall(3);  // the second step's pass, after the prompt's and the first
            QVERIFY_THROWS_EXCEPTION(Error, s.replayWithoutCache());
        } else {
            failing->failOnCall(1000);
            struct Stop {};
            bool stopped = false;
            try {
                s.replayWithoutCache([](int done, int) {
                    if (done == 2) throw Stop{};
                });
            } catch (const Stop&) {
                stopped = true;
            }
            QVERIFY(stopped);
        }
        QCOMPARE(s.tokens(), tokens);
        QCOMPARE(s.promptLength(), prompt);
        QCOMPARE(failing->cacheUsed(), static_cast<int>(tokens.size()));
        QVERIFY(maxRelError(s.logits(), logits) < kTol);
        // and it goes on as the session that never failed
        for (int i = 0; i < 3; ++i) {
            const StepTrace a = s.step(), b = control.step();
            QCOMPARE(a.token, b.token);
            QVERIFY(maxRelError(a.q, b.q) < kTol);
            QVERIFY(maxRelError(a.k, b.k) < kTol);
        }
    }

    // A backend that fails again while the session restores itself: the session is reset (never
    // half-restored: tokens and cache agree) and the error says so.
    void aRestoreThatFailsResetsAndSaysSo() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        auto failing = std::make_shared<FailingBackend>(m);
        DecodeSession s(failing, m->tokenizer);
        s.prefill(kPrompt);
        s.step();
        failing->failOnCall(1, 2);  // the prefill's run, then the restore's run
        try {
            s.prefill("another");
            QFAIL("the prefill did not fail");
        } catch (const Error& e) {
            const std::string what = e.what();
            QVERIFY2(what.find("simulated device failure") == 0, e.what());
            QVERIFY2(what.find("could not be restored") != std::string::npos, e.what());
            QVERIFY2(what.find("reset") != std::string::npos, e.what());
        }
        QVERIFY(s.tokens().empty());
        QCOMPARE(failing->cacheUsed(), 0);
        s.prefill(kPrompt);  // usable again
        QVERIFY(!s.tokens().empty());
    }

    // Compare without cache runs on the session's own backend (the weights held once): every
    // pass recomputes the whole sequence so far, and the session goes on afterwards as if it had
    // not run, in both modes.
    void replayWithoutCacheLeavesTheSessionAsItWas_data() {
        QTest::addColumn<bool>("cache");
        QTest::newRow("cached session") << true;
        QTest::newRow("recompute session") << false;
    }
    void replayWithoutCacheLeavesTheSessionAsItWas() {
        QFETCH(bool, cache);
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        DecodeSession s = makeSession(m, cache), control = makeSession(m, cache);
        s.prefill(kPrompt);
        control.prefill(kPrompt);
        for (int i = 0; i < 4; ++i) QCOMPARE(s.step().token, control.step().token);
        // a replay stopped half way (progress throws) leaves the cache as it was too
        struct Stop {};
        try {
            s.replayWithoutCache([](int done, int) {
                if (done == 3) throw Stop{};
            });
            QFAIL("the replay was not stopped");
        } catch (const Stop&) {
        }
        QCOMPARE(s.backend().cacheUsed(), cache ? static_cast<int>(s.tokens().size()) : 0);
        std::vector<std::pair<int, int>> calls;
        const ReplayTimes r =
            s.replayWithoutCache([&](int done, int total) { calls.emplace_back(done, total); });
        QCOMPARE(r.tokens, s.tokens());
        QCOMPARE(r.promptLength, s.promptLength());
        QCOMPARE(r.stepMs.size(), size_t{4});
        QCOMPARE(calls.size(), size_t{5});
        QCOMPARE(calls.back(), std::make_pair(5, 5));
        QCOMPARE(s.backend().cacheUsed(), cache ? static_cast<int>(s.tokens().size()) : 0);
        QVERIFY(maxRelError(s.logits(), control.logits()) < kTol);
        for (int i = 0; i < 3; ++i) {
            const StepTrace a = s.step(), b = control.step();
            QCOMPARE(a.token, b.token);
            QVERIFY(maxRelError(a.k, b.k) < kTol);
            QVERIFY(maxRelError(a.attn, b.attn) < kTol);
        }
    }

    // Special-token text in a prompt is that one token (marked special in its trace), or plain
    // text when the session is told so. The fixture's last token, <|endoftext|>, is a control
    // token (llama.cpp makes it one whatever the file says).
    void specialTokenTextInThePromptIsOneTokenUnlessTurnedOff() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        const int32_t eot = m->config.nVocab - 1;
        DecodeSession s(std::make_shared<CpuBackend>(m), m->tokenizer);
        std::vector<StepTrace> t = s.prefill("ee<|endoftext|>et");
        QCOMPARE(t.size(), size_t{3});  // "ee", <|endoftext|>, "et": the first merges e+e, e+t
        QCOMPARE(t[1].token, eot);
        QVERIFY(t[1].special && !t[0].special && !t[2].special);
        s.setParseSpecial(false);
        t = s.prefill("ee<|endoftext|>et");
        QVERIFY(t.size() > 3);
        for (const StepTrace& x : t) QVERIFY(x.token != eot && !x.special);
    }

    void prefillThenStepsEqualOneFullForward_data() { models_data(); }
    void prefillThenStepsEqualOneFullForward() {
        QFETCH(QString, model);
        auto m = fixtures::makeModel(fixtures::specFor(model.toStdString()));
        DecodeSession s = makeSession(m, true);
        s.prefill(kPrompt);
        std::vector<std::vector<float>> stepLogits{
            std::vector<float>(s.logits().begin(), s.logits().end())};
        for (int i = 0; i < 12; ++i) {
            s.step();
            stepLogits.emplace_back(s.logits().begin(), s.logits().end());
        }
        // One pass over every token with logits of every position.
        CpuBackend full(m);
        std::vector<float> all;
        full.forward(s.tokens(), true, all, nullptr);
        const size_t V = static_cast<size_t>(m->config.nVocab);
        QCOMPARE(all.size(), s.tokens().size() * V);
        const size_t p = s.promptLength();
        for (size_t i = 0; i < stepLogits.size(); ++i) {
            std::span<const float> row(all.data() + (p - 1 + i) * V, V);
            const double err = maxRelError(stepLogits[i], row);
            if (err > kTol) qWarning() << "position" << p - 1 + i << "relative error" << err;
            QVERIFY(err < kTol);
        }
    }

    // The logit lens reads each layer's residual stream: after layer l it is what the same model
    // cut after layer l predicts (an independent forward pass of fewer layers), and after the
    // last layer the step's own distribution.
    void logitLensEqualsTheModelCutAfterEachLayer_data() { models_data(); }
    void logitLensEqualsTheModelCutAfterEachLayer() {
        QFETCH(QString, model);
        auto m = fixtures::makeModel(fixtures::specFor(model.toStdString()));
        DecodeSession s = makeSession(m, true);
        const std::vector<StepTrace> prompt = s.prefill(kPrompt);
        const StepTrace next = s.step();
        const StepTrace& last = prompt.back();
        QVERIFY(last.hasResiduals());
        QCOMPARE(last.resid.size(), static_cast<size_t>(m->config.nLayer) * m->config.nEmbd);
        const size_t before = s.tokens().size();
        const LogitLens lens = s.logitLens(last, next.token, 5);
        QCOMPARE(s.tokens().size(), before);
        QCOMPARE(lens.position, last.position);
        QCOMPARE(static_cast<int>(lens.layers.size()), m->config.nLayer);
        for (int l = 0; l < m->config.nLayer; ++l) {
            Model cut = *m;
            cut.layers.resize(static_cast<size_t>(l + 1));
            cut.config.nLayer = l + 1;
            CpuBackend b(std::make_shared<const Model>(cut));
            std::vector<float> logits;
            b.forward(std::span(s.tokens()).first(prompt.size()), false, logits, nullptr);
            const auto ref = topLogits(logits, 5);
            const LogitLensLayer& got = lens.layers[static_cast<size_t>(l)];
            QCOMPARE(got.top.size(), ref.size());
            double maxLogit = -1e30, sum = 0;
            for (float x : logits) maxLogit = std::max(maxLogit, double(x));
            for (float x : logits) sum += std::exp(double(x) - maxLogit);
            for (size_t i = 0; i < ref.size(); ++i) {
                QCOMPARE(got.top[i].first, ref[i].first);
                QVERIFY(std::abs(got.top[i].second - ref[i].second) <=
                        kTol * (1 + std::abs(ref[i].second)));
                const double p = std::exp(double(ref[i].second) - maxLogit) / sum;
                QVERIFY(std::abs(got.topProb[i] - p) < 1e-5);
            }
            const double pt = std::exp(double(logits[size_t(next.token)]) - maxLogit) / sum;
            QVERIFY(std::abs(got.targetProb - pt) < 1e-5);
        }
        // after the last layer: the distribution the step sampled from
        const LogitLensLayer& out = lens.layers.back();
        for (size_t i = 0; i < out.top.size(); ++i) {
            QCOMPARE(out.top[i].first, next.top[i].first);
            QVERIFY(std::abs(out.topProb[i] - std::exp(next.top[i].second - next.logZ)) < 1e-5);
        }
        QCOMPARE(out.targetRank, next.chosenRank);
        // a trace without residuals is refused
        StepTrace bare = last;
        bare.resid.clear();
        QVERIFY_THROWS_EXCEPTION(Error, s.logitLens(bare, next.token));
    }

    void cachedEqualsRecompute_data() { models_data(); }
    void cachedEqualsRecompute() {
        QFETCH(QString, model);
        auto m = fixtures::makeModel(fixtures::specFor(model.toStdString()));
        DecodeSession cached = makeSession(m, true), recompute = makeSession(m, false);
        cached.prefill(kPrompt);
        recompute.prefill(kPrompt);
        QVERIFY(maxRelError(cached.logits(), recompute.logits()) < kTol);
        for (int i = 0; i < 16; ++i) {
            const StepTrace a = cached.step(), b = recompute.step();
            QCOMPARE(a.token, b.token);
            QVERIFY(maxRelError(cached.logits(), recompute.logits()) < kTol);
            // The same new query, key, value and attention row in both modes.
            QVERIFY(maxRelError(a.q, b.q) < kTol);
            QVERIFY(maxRelError(a.k, b.k) < kTol);
            QVERIFY(maxRelError(a.attn, b.attn) < kTol);
            // Only the cached session keeps K and V between steps.
            const size_t perToken = 2 * static_cast<size_t>(m->config.nLayer) * m->config.nHeadKv *
                                    m->config.headDim * sizeof(float);
            QCOMPARE(a.kvBytes, cached.tokens().size() * perToken);
            QCOMPARE(b.kvBytes, size_t{0});
        }
        QCOMPARE(cached.tokens(), recompute.tokens());
    }

    // stepWith replays a sampled sequence exactly: a recompute session forced through the cached
    // session's tokens (sampled at temperature 1) holds the same ids and the same logits.
    void stepWithReplaysTheTokens() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        SamplerParams hot;
        hot.temperature = 1.0f;
        hot.seed = 7;
        DecodeSession cached = makeSession(m, true, hot), replay = makeSession(m, false);
        cached.prefill(kPrompt);
        for (int i = 0; i < 8; ++i) cached.step();
        const std::vector<int32_t>& ids = cached.tokens();
        replay.prefillTokens(std::span<const int32_t>(ids.data(), cached.promptLength()));
        for (size_t i = cached.promptLength(); i < ids.size(); ++i)
            QCOMPARE(replay.stepWith(ids[i]).token, ids[i]);
        QCOMPARE(replay.tokens(), ids);
        QVERIFY(maxRelError(cached.logits(), replay.logits()) < kTol);
        QVERIFY_THROWS_EXCEPTION(Error, replay.stepWith(-1));
        QCOMPARE(replay.tokens(), ids);  // a rejected token changes nothing
    }

    // Each query head attends with the keys of KV head h / (n_head / n_head_kv); rebuild every
    // attention row from the traced queries and keys and compare.
    void groupedQueryHeadsReadTheirKvHead() {
        auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        const ModelConfig& c = m->config;
        QCOMPARE(c.nHead, 4);
        QCOMPARE(c.nHeadKv, 2);
        DecodeSession s = makeSession(m, true);
        std::vector<StepTrace> traces = s.prefill(kPrompt);
        for (int i = 0; i < 6; ++i) traces.push_back(s.step());

        auto rebuildRow = [&](const StepTrace& t, int layer, int head, int kvHead) {
            std::vector<float> row(static_cast<size_t>(t.position) + 1);
            for (int j = 0; j <= t.position; ++j) {
                double dot = 0;
                const float* k = traces[static_cast<size_t>(j)].key(layer, kvHead);
                for (int d = 0; d < c.headDim; ++d) dot += t.query(layer, head)[d] * k[d];
                row[static_cast<size_t>(j)] = static_cast<float>(dot / std::sqrt(c.headDim));
            }
            const float mx = *std::max_element(row.begin(), row.end());
            double sum = 0;
            for (float& x : row) sum += (x = std::exp(x - mx));
            for (float& x : row) x = static_cast<float>(x / sum);
            return row;
        };
        int wrongMappingDiffers = 0;
        for (const StepTrace& t : traces) {
            QCOMPARE(t.position, static_cast<int>(&t - traces.data()));
            for (int l = 0; l < c.nLayer; ++l)
                for (int h = 0; h < c.nHead; ++h) {
                    std::span<const float> got(t.attention(l, h),
                                               static_cast<size_t>(t.position) + 1);
                    QVERIFY(maxRelError(got, rebuildRow(t, l, h, h / 2)) < kTol);
                    if (t.position > 2 && maxRelError(got, rebuildRow(t, l, h, h % 2)) > 1e-2)
                        ++wrongMappingDiffers;
                }
        }
        QVERIFY(wrongMappingDiffers > 0);  // the check can tell the mappings apart
        // The cache holds exactly the traced keys and values, row by row.
        const auto& backend = dynamic_cast<const CpuBackend&>(s.backend());
        std::vector<float> key(static_cast<size_t>(c.headDim)), value(key.size());
        for (const StepTrace& t : traces)
            for (int l = 0; l < c.nLayer; ++l)
                for (int g = 0; g < c.nHeadKv; ++g) {
                    backend.cache().readKey(l, g, t.position, key.data());
                    backend.cache().readValue(l, g, t.position, value.data());
                    for (int d = 0; d < c.headDim; ++d) {
                        QCOMPARE(key[static_cast<size_t>(d)], t.key(l, g)[d]);
                        QCOMPARE(value[static_cast<size_t>(d)], t.value(l, g)[d]);
                    }
                }
    }

    // The whole matrix of a head on request, from the traced queries and the cached keys in one
    // product, holds the traced rows below the diagonal and zeros above; the first rows can be
    // asked for alone.
    void attentionMatrixOnRequestEqualsTheTracedRows_data() { models_data(); }
    void attentionMatrixOnRequestEqualsTheTracedRows() {
        QFETCH(QString, model);
        auto m = fixtures::makeModel(fixtures::specFor(model.toStdString()));
        auto backend = std::make_shared<CpuBackend>(m);
        DecodeSession s(backend, m->tokenizer);
        std::vector<StepTrace> traces = s.prefill(kPrompt);
        for (int i = 0; i < 5; ++i) traces.push_back(s.step());
        const ModelConfig& c = m->config;
        const size_t hd = static_cast<size_t>(c.headDim);
        for (size_t t : {traces.size(), size_t{3}})
            for (int l = 0; l < c.nLayer; ++l)
                for (int h = 0; h < c.nHead; ++h) {
                    std::vector<float> q, got;
                    for (size_t i = 0; i < t; ++i)
                        q.insert(q.end(), traces[i].query(l, h), traces[i].query(l, h) + hd);
                    backend->attentionMatrix(l, h, q, got);
                    QCOMPARE(got.size(), t * t);
                    for (size_t i = 0; i < t; ++i) {
                        std::span<const float> row(got.data() + i * t, i + 1);
                        QVERIFY(maxRelError(row, {traces[i].attention(l, h), i + 1}) < kTol);
                        for (size_t j = i + 1; j < t; ++j) QCOMPARE(got[i * t + j], 0.0f);
                    }
                }
    }

    void traceRowsAreCausalDistributions() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        DecodeSession s = makeSession(m, true);
        const std::vector<StepTrace> prompt = s.prefill(kPrompt);
        QCOMPARE(prompt.size(), s.tokens().size());
        for (const StepTrace& t : prompt) QVERIFY(t.prompt);
        const StepTrace t = s.step();
        QVERIFY(!t.prompt);
        QCOMPARE(t.position, static_cast<int>(prompt.size()));
        QCOMPARE(t.attn.size(), static_cast<size_t>(2 * 4 * (t.position + 1)));
        for (int l = 0; l < 2; ++l)
            for (int h = 0; h < 4; ++h) {
                double sum = 0;
                for (int j = 0; j <= t.position; ++j) {
                    QVERIFY(t.attention(l, h)[j] >= 0);
                    sum += t.attention(l, h)[j];
                }
                QVERIFY(std::abs(sum - 1) < 1e-5);
            }
        QCOMPARE(t.text, m->tokenizer.tokenBytes(t.token));
        QCOMPARE(t.top.front().first, t.token);  // greedy picks the best logit
    }

    // Every token but the first carries the distribution that chose it, the same in cached
    // and recompute mode: prompt tokens from the prefill's logits of every position (teacher
    // forcing), generated ones from the logits they were sampled from; topLogits 0 keeps none.
    void everyTokenCarriesItsDistribution() {
        const auto m = fixtures::makeModel(fixtures::gpt2Spec());
        std::vector<std::vector<StepTrace>> runs;
        for (bool cache : {true, false}) {
            SessionOptions o;
            o.useCache = cache;
            o.topLogits = 64;
            DecodeSession s(std::make_shared<CpuBackend>(m), m->tokenizer, o);
            std::vector<StepTrace> traces = s.prefill(kPrompt);
            for (int k = 0; k < 4; ++k) traces.push_back(s.step());
            runs.push_back(std::move(traces));
        }
        for (size_t i = 0; i < runs[0].size(); ++i) {
            const StepTrace &a = runs[0][i], &b = runs[1][i];
            QCOMPARE(a.hasDistribution(), i > 0);
            QCOMPARE(b.hasDistribution(), i > 0);
            if (i == 0) continue;
            QCOMPARE(a.top.size(), size_t{64});
            QCOMPARE(a.top.front().first, b.top.front().first);
            QVERIFY(std::abs(a.logZ - b.logZ) < kTol * std::max(1.0f, std::abs(a.logZ)));
            QVERIFY(std::abs(a.chosenLogit - b.chosenLogit) < 1e-3);
            QVERIFY(a.chosenRank >= 0);
            QVERIFY(std::exp(a.chosenLogit - a.logZ) <= 1.0f);
        }
        SessionOptions none;
        none.topLogits = 0;
        DecodeSession s(std::make_shared<CpuBackend>(m), m->tokenizer, none);
        for (const StepTrace& t : s.prefill(kPrompt)) QVERIFY(!t.hasDistribution());
        QVERIFY(!s.step().hasDistribution());
    }

    void rewindThenStepEqualsNeverHavingStepped_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<bool>("cache");
        QTest::addColumn<float>("temperature");
        QTest::newRow("gpt2 cached greedy") << "gpt2" << true << 0.0f;
        QTest::newRow("gpt2 recompute greedy") << "gpt2" << false << 0.0f;
        QTest::newRow("llama_gqa cached sampled") << "llama_gqa" << true << 1.0f;
    }
    void rewindThenStepEqualsNeverHavingStepped() {
        QFETCH(QString, model);
        QFETCH(bool, cache);
        QFETCH(float, temperature);
        auto m = fixtures::makeModel(fixtures::specFor(model.toStdString()));
        SamplerParams sp;
        sp.temperature = temperature;
        sp.seed = 5;
        DecodeSession straight = makeSession(m, cache, sp), wandering = makeSession(m, cache, sp);
        straight.prefill(kPrompt);
        wandering.prefill(kPrompt);
        for (int i = 0; i < 5; ++i) straight.step();
        const std::vector<float> logitsAfter5(straight.logits().begin(), straight.logits().end());
        for (int i = 0; i < 9; ++i) wandering.step();
        wandering.rewind(4);
        QCOMPARE(wandering.tokens(), straight.tokens());
        QVERIFY(maxRelError(wandering.logits(), logitsAfter5) < kTol);
        QCOMPARE(wandering.kvBytes(), straight.kvBytes());
        for (int i = 0; i < 4; ++i) QCOMPARE(wandering.step().token, straight.step().token);
        QCOMPARE(wandering.tokens(), straight.tokens());
    }

    void promptLongerThanContextIsAnErrorAndChangesNothing() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        DecodeSession s = makeSession(m, true);
        s.prefill(kPrompt);
        s.step();
        const std::vector<int32_t> before = s.tokens();
        const std::string tooLong(200, '!');  // '!' has no merges: one token per byte
        try {
            s.prefill(tooLong);
            QFAIL("a prompt of 200 tokens fit a context of 64");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("200 tokens") && QString(e.what()).contains("64"),
                     e.what());
        }
        QCOMPARE(s.tokens(), before);
        s.step();  // still usable
        QCOMPARE(s.tokens().size(), before.size() + 1);
    }

    void stepPastTheContextIsAnErrorAndRewindRecovers_data() {
        QTest::addColumn<bool>("cache");
        QTest::newRow("cached") << true;
        QTest::newRow("recompute") << false;
    }
    void stepPastTheContextIsAnErrorAndRewindRecovers() {
        QFETCH(bool, cache);
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        DecodeSession s = makeSession(m, cache);
        s.prefill(std::string(60, '!'));
        for (int i = 0; i < 4; ++i) s.step();
        QCOMPARE(s.tokens().size(), size_t{64});
        const std::vector<int32_t> full = s.tokens();
        QVERIFY_THROWS_EXCEPTION(Error, s.step());
        QCOMPARE(s.tokens(), full);
        s.rewind(1);
        QCOMPARE(s.step().token, full.back());
    }

    void stepBeforePrefillIsAnError() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        DecodeSession s = makeSession(m, true);
        QVERIFY_THROWS_EXCEPTION(Error, s.step());
        s.prefill(kPrompt);
        s.rewind(s.tokens().size());
        QVERIFY(s.tokens().empty());
        QVERIFY_THROWS_EXCEPTION(Error, s.step());
    }

    void resetForgetsTheCache() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        DecodeSession s = makeSession(m, true);
        s.prefill(kPrompt);
        s.step();
        QVERIFY(s.kvBytes() > 0);
        s.reset();
        QCOMPARE(s.kvBytes(), size_t{0});
        QVERIFY(s.tokens().empty());
    }
};

QTEST_GUILESS_MAIN(TstDecodeSession)
#include "tst_decode_session.moc"
