// The cache lab on a real forward pass (CpuBackend + DecodeSession): eviction policies against a
// reference that masks the same keys without a cache, the keys each rule keeps as seen in the
// attention rows, quantized K/V against the full cache, forks against independent sessions,
// stepping back, and the drift readout.
#include <QTest>

#include <cmath>
#include <map>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "model_fixtures.h"
#include "numeric_checks.h"
#include "runtime/decode_session.h"

using namespace kvscope;
using testing::maxRelError;

namespace {
constexpr const char* kPrompt = "the cat sat on the mat and then";

std::shared_ptr<CpuBackend> cpu(const std::shared_ptr<const Model>& m, KvCacheOptions o = {}) {
    return std::make_shared<CpuBackend>(m, ThreadPool::shared(), o);
}

KvCacheOptions policy(int window, int sinks = 0, int heavy = 0, KvType t = KvType::F32) {
    return KvCacheOptions(t, 4, EvictionPolicy{window, sinks, heavy});
}

// A llama with heads of 32 values (whole q8_0/q4_0 blocks): 2 layers, 2 query heads, 1 K/V head.
RandomModelSpec blockSpec() {
    RandomModelSpec s = fixtures::llamaGqaSpec();
    s.nEmbd = 64;
    s.nHead = 2;
    s.nHeadKv = 1;
    s.nFf = 128;
    return s;
}

// The tokens a greedy decode of `steps` after kPrompt gives on a full cache.
std::vector<int32_t> greedyTokens(const std::shared_ptr<const Model>& m, int steps) {
    DecodeSession s(cpu(m), m->tokenizer);
    s.prefill(kPrompt);
    for (int i = 0; i < steps; ++i) s.step();
    return s.tokens();
}
}  // namespace

class TstCachePolicy : public QObject {
    Q_OBJECT
  private slots:
    // Window W: the same numbers as the full cache while the sequence is no longer than W; after
    // that the same as a model whose own sliding window of W masks those keys, computed without
    // a cache (every step recomputes every token).
    void aWindowEqualsTheMaskedReference() {
        const int W = 6;
        RandomModelSpec spec = fixtures::llamaGqaSpec();
        auto m = fixtures::makeModel(spec);
        spec.slidingWindow = W;  // the same weights, with a window of W in every layer
        auto masked = fixtures::makeModel(spec);
        QCOMPARE(masked->config.windowOf(0), W);
        const std::vector<int32_t> ids = greedyTokens(m, 12);

        DecodeSession windowed(cpu(m, policy(W)), m->tokenizer);
        DecodeSession full(cpu(m), m->tokenizer);
        SessionOptions noCache;
        noCache.useCache = false;
        DecodeSession reference(cpu(masked), masked->tokenizer, noCache);
        const std::vector<int32_t> first(ids.begin(), ids.begin() + 3);
        windowed.prefillTokens(first);
        full.prefillTokens(first);
        reference.prefillTokens(first);
        for (size_t i = first.size(); i < ids.size(); ++i) {
            const double toMasked = maxRelError(windowed.logits(), reference.logits());
            QVERIFY2(toMasked < 1e-5, qPrintable(QString("at %1: %2").arg(i).arg(toMasked)));
            if (i <= static_cast<size_t>(W))
                QVERIFY(maxRelError(windowed.logits(), full.logits()) < 1e-5);
            windowed.stepWith(ids[i]);
            full.stepWith(ids[i]);
            reference.stepWith(ids[i]);
        }
        // Past the window the policy really changed the numbers, and holds W - 1 tokens' rows.
        QVERIFY(maxRelError(windowed.logits(), full.logits()) > 1e-3);
        QCOMPARE(windowed.backend().cacheRows(), W - 1);
        QCOMPARE(windowed.kvBytes(), size_t(W - 1) * windowed.backend().cacheBytesPerToken());
        QCOMPARE(windowed.backend().cacheUsed(), static_cast<int>(ids.size()));
    }

    // A prompt longer than the window runs in one batched pass, each query seeing only its own
    // window: the same as feeding the tokens one by one.
    void aBatchedPassSeesWhatStepsSee_data() {
        QTest::addColumn<int>("sinks");
        QTest::addColumn<int>("heavy");
        QTest::newRow("window") << 0 << 0;
        QTest::newRow("sinks + window") << 2 << 0;
        QTest::newRow("heavy + window") << 0 << 3;
    }
    void aBatchedPassSeesWhatStepsSee() {
        QFETCH(int, sinks);
        QFETCH(int, heavy);
        auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        const std::vector<int32_t> ids = greedyTokens(m, 10);
        DecodeSession batched(cpu(m, policy(4, sinks, heavy)), m->tokenizer);
        DecodeSession stepped(cpu(m, policy(4, sinks, heavy)), m->tokenizer);
        batched.prefillTokens(ids);
        stepped.prefillTokens(std::span(ids).first(1));
        for (size_t i = 1; i < ids.size(); ++i) stepped.stepWith(ids[i]);
        QVERIFY(maxRelError(batched.logits(), stepped.logits()) < 1e-4);
        const KvCache& a = *batched.backend().hostCache();
        const KvCache& b = *stepped.backend().hostCache();
        for (int l = 0; l < m->config.nLayer; ++l) QCOMPARE(a.heldPositions(l), b.heldPositions(l));
    }

    // Each rule, seen in the attention rows the forward pass really computed: the query at p puts
    // weight on exactly the positions its rule keeps (sinks 0..S-1, the window p-W+1..p, the heavy
    // hitters still held), zero on the others, and the weights still sum to 1. For heavy hitters
    // the keys let go are recomputed here from the traces' own attention: the scores are the sums
    // of the weights each key got over the queries and heads of its layer, and at each step the
    // least attended key past the window goes once more than `heavy` are there.
    void eachRuleShowsInTheAttention_data() {
        QTest::addColumn<int>("window");
        QTest::addColumn<int>("sinks");
        QTest::addColumn<int>("heavy");
        QTest::newRow("window 5") << 5 << 0 << 0;
        QTest::newRow("sinks 2 + window 4") << 4 << 2 << 0;
        QTest::newRow("heavy 3 + window 3") << 3 << 0 << 3;
        QTest::newRow("sinks 1 + heavy 2 + window 3") << 3 << 1 << 2;
    }
    void eachRuleShowsInTheAttention() {
        QFETCH(int, window);
        QFETCH(int, sinks);
        QFETCH(int, heavy);
        auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        const ModelConfig& c = m->config;
        DecodeSession s(cpu(m, policy(window, sinks, heavy)), m->tokenizer);
        std::vector<StepTrace> traces = s.prefill(kPrompt);
        for (int i = 0; i < 8; ++i) traces.push_back(s.step());
        const int T = static_cast<int>(traces.size());
        for (int l = 0; l < c.nLayer; ++l) {
            std::vector<double> score;  // per position
            std::vector<bool> held;     // per position, as the rule says
            for (int p = 0; p < T; ++p) {
                score.push_back(0);
                held.push_back(true);
                const StepTrace& t = traces[static_cast<size_t>(p)];
                for (int h = 0; h < c.nHead; ++h) {
                    const float* row =
                        t.attn.data() + (static_cast<size_t>(l) * c.nHead + h) * (p + 1);
                    double sum = 0;
                    for (int j = 0; j <= p; ++j) {
                        const bool seen = held[static_cast<size_t>(j)];
                        QVERIFY2(seen || row[j] == 0.0f,
                                 qPrintable(QString("layer %1 head %2: query %3 weighs evicted %4")
                                                .arg(l)
                                                .arg(h)
                                                .arg(p)
                                                .arg(j)));
                        if (seen) QVERIFY(row[j] > 0.0f);
                        sum += row[j];
                        score[static_cast<size_t>(j)] += row[j];
                    }
                    QVERIFY(std::abs(sum - 1.0) < 1e-5);
                }
                // what leaves after query p
                std::vector<int> past;  // held, not a sink, out of the window after p
                for (int j = sinks; j <= p - window + 1; ++j)
                    if (held[static_cast<size_t>(j)]) past.push_back(j);
                std::vector<int> gone;
                if (heavy == 0) {
                    gone = past;
                } else if (static_cast<int>(past.size()) > heavy) {
                    int worst = past[0];
                    for (int j : past)
                        if (score[static_cast<size_t>(j)] < score[static_cast<size_t>(worst)])
                            worst = j;
                    gone.push_back(worst);
                }
                std::vector<int> reported;
                for (const auto& [layer, pos] : t.evicted)
                    if (layer == l) reported.push_back(pos);
                std::sort(reported.begin(), reported.end());
                QCOMPARE(reported, gone);
                for (int j : gone) held[static_cast<size_t>(j)] = false;
            }
            std::vector<int> expect;
            for (int j = 0; j < T; ++j)
                if (held[static_cast<size_t>(j)]) expect.push_back(j);
            QCOMPARE(s.backend().hostCache()->heldPositions(l), expect);
            QCOMPARE(static_cast<int>(expect.size()), sinks + heavy + window - 1);
        }
    }

    // Stepping back past evictions runs the kept tokens again: the session is then the same as a
    // fresh one given those tokens, logits and kept rows alike.
    void steppingBackPastAnEvictionRunsAgain_data() {
        QTest::addColumn<int>("heavy");
        QTest::newRow("window") << 0;
        QTest::newRow("heavy hitters") << 2;
    }
    void steppingBackPastAnEvictionRunsAgain() {
        QFETCH(int, heavy);
        auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        DecodeSession s(cpu(m, policy(4, 1, heavy)), m->tokenizer);
        s.prefill(kPrompt);
        for (int i = 0; i < 5; ++i) s.step();
        QVERIFY(!s.backend().canTruncateCache(static_cast<int>(s.tokens().size()) - 4));
        s.rewind(3);
        DecodeSession fresh(cpu(m, policy(4, 1, heavy)), m->tokenizer);
        fresh.prefillTokens(s.tokens());
        QVERIFY(maxRelError(s.logits(), fresh.logits()) < 1e-4);
        for (int l = 0; l < m->config.nLayer; ++l)
            QCOMPARE(s.backend().hostCache()->heldPositions(l),
                     fresh.backend().hostCache()->heldPositions(l));
    }

    // Quantized K/V: each type changes the logits by less than its bound, and the coarser the
    // format the larger the change (f16 < q8_0 < q4_0), on the same forced tokens.
    void quantizedKvDriftsInOrder() {
        auto m = fixtures::makeModel(blockSpec());
        const std::vector<int32_t> ids = greedyTokens(m, 8);
        DecodeSession full(cpu(m), m->tokenizer);
        std::map<KvType, std::unique_ptr<DecodeSession>> q;
        for (KvType t : {KvType::F16, KvType::Q8_0, KvType::Q4_0})
            q[t] = std::make_unique<DecodeSession>(cpu(m, KvCacheOptions(t)), m->tokenizer);
        full.prefillTokens(std::span(ids).first(4));
        for (auto& [t, s] : q) s->prefillTokens(std::span(ids).first(4));
        std::map<KvType, double> worst;
        for (size_t i = 4; i <= ids.size(); ++i) {
            for (auto& [t, s] : q)
                worst[t] = std::max(worst[t], maxRelError(s->logits(), full.logits()));
            if (i == ids.size()) break;
            full.stepWith(ids[i]);
            for (auto& [t, s] : q) s->stepWith(ids[i]);
        }
        qInfo("worst relative change of the logits: f16 %g, q8_0 %g, q4_0 %g", worst[KvType::F16],
              worst[KvType::Q8_0], worst[KvType::Q4_0]);
        // Each format's worst error per element, relative to its block's largest value: f16
        // 2^-11, q8_0 1/254, q4_0 1/15 (gguf/dequant.h). Through two layers and the head this
        // small model may amplify it, by at most 16 times here.
        const double amplification = 16;
        QVERIFY(worst[KvType::F16] < amplification * std::ldexp(1.0, -11));
        QVERIFY(worst[KvType::Q8_0] < amplification / 254);
        QVERIFY(worst[KvType::Q4_0] < amplification / 15);
        QVERIFY(worst[KvType::F16] < worst[KvType::Q8_0]);
        QVERIFY(worst[KvType::Q8_0] < worst[KvType::Q4_0]);
        // and the bytes: 32 values in 64, 34 and 18 bytes against 128
        const size_t f32Bytes = full.backend().cacheBytesPerToken();
        QCOMPARE(q[KvType::F16]->backend().cacheBytesPerToken() * 2, f32Bytes);
        QCOMPARE(q[KvType::Q8_0]->backend().cacheBytesPerToken() * 128, f32Bytes * 34);
        QCOMPARE(q[KvType::Q4_0]->backend().cacheBytesPerToken() * 128, f32Bytes * 18);
    }

    // What a quantized cache holds is what a query reads: the cached rows equal the trace's own
    // keys and values sent through the format's round trip (kvRoundTrip, what the cache view's
    // error map shows).
    void theCacheHoldsTheRoundTripOfTheTracedRows() {
        auto m = fixtures::makeModel(blockSpec());
        const ModelConfig& c = m->config;
        DecodeSession s(cpu(m, KvCacheOptions(KvType::Q4_0)), m->tokenizer);
        std::vector<StepTrace> traces = s.prefill(kPrompt);
        traces.push_back(s.step());
        const KvCache& cache = *s.backend().hostCache();
        std::vector<float> got(static_cast<size_t>(c.headDim)), trip(got.size());
        for (const StepTrace& t : traces)
            for (int l = 0; l < c.nLayer; ++l)
                for (int g = 0; g < c.nHeadKv; ++g) {
                    cache.readKey(l, g, t.position, got.data());
                    kvRoundTrip(KvType::Q4_0, t.key(l, g), trip.data(), c.headDim);
                    QCOMPARE(got, trip);
                    cache.readValue(l, g, t.position, got.data());
                    kvRoundTrip(KvType::Q4_0, t.value(l, g), trip.data(), c.headDim);
                    QCOMPARE(got, trip);
                }
    }

    // A fork at the current step: both branches decode exactly what two independent sessions
    // given the same prefix decode, and until they diverge in a block they hold it once.
    void aForkDecodesAsTwoIndependentSessions() {
        auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        DecodeSession a(cpu(m, KvCacheOptions(KvType::F32, 4)), m->tokenizer);
        a.prefill(kPrompt);  // more than one block of 4
        const std::vector<int32_t> prefix = a.tokens();
        std::unique_ptr<DecodeSession> b = a.fork();
        const KvCache& ca = *a.backend().hostCache();
        const KvCache& cb = *b->backend().hostCache();
        QCOMPARE(cb.blocksAllocated(), ca.blocksAllocated());
        for (int i = 0; i < ca.blocksAllocated(); ++i) QCOMPARE(ca.blockRefs(i), 2L);
        QCOMPARE(ca.unsharedBytes() + cb.unsharedBytes(), size_t{0});

        SamplerParams sampled;
        sampled.temperature = 1.0f;
        sampled.seed = 7;
        b->setSampler(sampled);  // a goes on greedily, b samples: they diverge
        for (int i = 0; i < 6; ++i) {
            a.step();
            b->step();
        }
        QVERIFY(a.tokens() != b->tokens());
        for (DecodeSession* branch : {&a, b.get()}) {
            DecodeSession alone(cpu(m, KvCacheOptions(KvType::F32, 4)), m->tokenizer);
            alone.prefillTokens(prefix);
            for (size_t i = prefix.size(); i < branch->tokens().size(); ++i)
                alone.stepWith(branch->tokens()[i]);
            QCOMPARE(maxRelError(branch->logits(), alone.logits()), 0.0);
        }
        // The blocks wholly inside the prompt are still shared (stored once); the one each branch
        // wrote into was copied.
        const int whole = static_cast<int>(prefix.size()) / 4;
        QVERIFY(whole >= 1);
        for (int i = 0; i < whole; ++i) {
            QCOMPARE(ca.blockId(i), cb.blockId(i));
            QCOMPARE(ca.blockRefs(i), 2L);
        }
        QVERIFY(ca.blockId(whole) != cb.blockId(whole));
        const size_t stored = ca.allocatedBytes() + cb.allocatedBytes() - whole * ca.blockBytes();
        QCOMPARE(ca.unsharedBytes() + cb.unsharedBytes() + whole * ca.blockBytes(), stored);
    }

    // measureDrift by hand: full p = (3/4, 1/4), policy p = (1/2, 1/2):
    // KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812; both rank token 0 first (the policy's tie goes
    // to the lower id); the policy gives it 1/2.
    void driftByHand() {
        const std::vector<float> full = {std::log(3.0f), 0.0f}, pol = {0.0f, 0.0f};
        const Drift d = measureDrift(pol, full);
        QVERIFY(std::abs(d.kl - 0.130812) < 1e-5);
        QVERIFY(d.top1);
        QVERIFY(std::abs(d.fullChoiceProb - 0.5) < 1e-6);
        QCOMPARE(measureDrift(full, full).kl, 0.0);
    }

    // The session's drift readout under a window: none while the window holds everything, then
    // some; each token's figures are measureDrift of the two sessions' own distributions.
    void theSessionMeasuresDrift() {
        auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        SessionOptions o;
        o.drift = true;
        DecodeSession s(cpu(m, policy(5)), m->tokenizer, o);
        QVERIFY(s.measuresDrift());
        DecodeSession full(cpu(m), m->tokenizer);
        const std::vector<int32_t> ids = greedyTokens(m, 10);
        std::vector<StepTrace> traces = s.prefillTokens(std::span(ids).first(2));
        full.prefillTokens(std::span(ids).first(2));
        QVERIFY(traces[1].hasDrift());
        double later = 0;
        for (size_t i = 2; i < ids.size(); ++i) {
            const Drift d = measureDrift(s.logits(), full.logits());
            const StepTrace t = s.stepWith(ids[i]);
            full.stepWith(ids[i]);
            QVERIFY(t.hasDrift());
            QVERIFY(std::abs(t.driftKl - d.kl) < 1e-6 + 1e-4 * d.kl);
            QCOMPARE(t.driftTop1, d.top1 ? 1 : 0);
            QVERIFY(std::abs(t.driftFullChoiceProb - d.fullChoiceProb) < 1e-5);
            QCOMPARE(t.fullKvBytes, (i + 1) * full.backend().cacheBytesPerToken());
            if (i <= 5) QVERIFY2(t.driftKl < 1e-8, qPrintable(QString::number(t.driftKl)));
            if (i > 5) later = std::max(later, static_cast<double>(t.driftKl));
        }
        QVERIFY(later > 1e-6);
        // A lossless cache has nothing to measure against.
        QVERIFY(!DecodeSession(cpu(m), m->tokenizer, o).measuresDrift());
    }
};

QTEST_GUILESS_MAIN(TstCachePolicy)
#include "tst_cache_policy.moc"
