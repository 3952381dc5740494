// Speculative decoding (runtime/speculative.h): prompt lookup proposes the continuation of the
// latest match; the rejection rule keeps the target's distribution (chi-square); greedy rounds
// emit plain greedy decoding's tokens with either drafter, and after every round the cache and
// logits equal a plain session's (CPU, and OpenCL where a device exists); a fully rejected draft
// leaves the session as it was; a draft model must share the target's vocabulary.
#include <QTest>
#include <cmath>
#include <functional>
#include <map>
#include <random>

#include "core/error.h"
#include "core/thread_pool.h"
#include "cpu/cpu_backend.h"
#include "gguf/gguf.h"
#include "model/random_model.h"
#include "model_fixtures.h"
#include "numeric_checks.h"
#include "opencl/device_list.h"
#include "runtime/backend_factory.h"
#include "runtime/decode_session.h"
#include "runtime/speculative.h"

using namespace kvscope;

namespace {

using testing::maxRelError;
// float32 results of different summation orders (a batched pass against single steps)
constexpr double kTol = 1e-4;

#define VERIFY_CLOSE(what, a, b)                                                                 \
    do {                                                                                         \
        const double err_ = maxRelError(a, b);                                                   \
        QVERIFY2(                                                                                \
            err_ < kTol,                                                                         \
            qPrintable(                                                                          \
                QString("%1: relative error %2 (tolerance %3)").arg(what).arg(err_).arg(kTol))); \
    } while (0)

const char* kPrompt = "the cat sat on the mat";

std::vector<int32_t> ids(std::initializer_list<int32_t> l) {
    return l;
}

// Every key and value row of the first n positions, layer by layer (the cache as a flat vector).
std::vector<float> cacheRows(const KvCache& c, int n) {
    std::vector<float> out;
    std::vector<float> row(static_cast<size_t>(c.headDim()));
    for (int l = 0; l < c.nLayer(); ++l)
        for (int h = 0; h < c.nHeadKv(); ++h)
            for (int p = 0; p < n; ++p) {
                c.readKey(l, h, p, row.data());
                out.insert(out.end(), row.begin(), row.end());
                c.readValue(l, h, p, row.data());
                out.insert(out.end(), row.begin(), row.end());
            }
    return out;
}

// A drafter that proposes what it is told: `next(context)` gives the whole draft.
class ScriptedDrafter final : public Drafter {
  public:
    explicit ScriptedDrafter(std::function<std::vector<int32_t>(std::span<const int32_t>)> next)
        : next_(std::move(next)) {}
    std::string name() const override { return "scripted"; }
    Draft propose(std::span<const int32_t> context, int maxTokens, const SamplerParams&) override {
        std::vector<int32_t> d = next_(context);
        if (d.size() > static_cast<size_t>(maxTokens)) d.resize(static_cast<size_t>(maxTokens));
        return {d, {}};
    }

  private:
    std::function<std::vector<int32_t>(std::span<const int32_t>)> next_;
};

// A different random model with the target's vocabulary (the fixtures all have 300 tokens).
RandomModelSpec otherDraftSpec() {
    RandomModelSpec s = fixtures::gpt2Spec();
    s.nLayer = 1;
    s.seed = 77;
    return s;
}

// The chi-square statistic of observed counts against probabilities over the same cells.
double chiSquare(const std::vector<long>& observed, const std::vector<double>& p, long n) {
    double chi = 0;
    for (size_t i = 0; i < p.size(); ++i) {
        const double e = p[i] * static_cast<double>(n);
        chi += (static_cast<double>(observed[i]) - e) * (static_cast<double>(observed[i]) - e) / e;
    }
    return chi;
}

// The chi-square quantiles at 1 - 1e-4 for 1..8 degrees of freedom: a correct rule exceeds
// them with probability 1e-4 (the false-alarm rate of each row below, were the seed drawn).
double chiSquareCritical(int df) {
    static const double q[] = {0, 15.137, 18.421, 21.108, 23.513, 25.745, 27.856, 29.878, 31.828};
    return q[df];
}

}  // namespace

class TstSpeculative : public QObject {
    Q_OBJECT

    // The target models by fixture name, and the drafters of a data row.
    std::unique_ptr<Drafter> drafter(const QString& kind, const std::string& targetName) {
        if (kind == "lookup") return std::make_unique<LookupDrafter>(3, 1);
        const auto target = fixtures::makeModel(fixtures::specFor(targetName));
        const auto draft = fixtures::makeModel(kind == "model:same" ? fixtures::specFor(targetName)
                                                                    : otherDraftSpec());
        drafts_.push_back(draft);
        targets_.push_back(target);
        return std::make_unique<ModelDrafter>(std::make_shared<CpuBackend>(draft), draft->tokenizer,
                                              target->tokenizer, target->config.nVocab,
                                              kind.toStdString());
    }
    std::vector<std::shared_ptr<const Model>> drafts_, targets_;  // alive as long as the drafters
    int openClDevice_ = -1;
    QString noOpenCl_;

  private slots:
    void initTestCase() {
        const ocl::DeviceList list = ocl::listDevices();
        for (const ocl::DeviceInfo& d : list.devices)
            if (d.usable) {
                openClDevice_ = d.index;
                break;
            }
        if (list.devices.empty())
            noOpenCl_ = "no OpenCL device exists on this machine (" +
                        QString::fromStdString(list.problem) + ")";
    }

    // --- 1. prompt lookup, checked by hand -------------------------------------------------

    void lookupProposesTheLatestMatchsContinuation_data() {
        QTest::addColumn<std::vector<int32_t>>("context");
        QTest::addColumn<int>("maxDraft");
        QTest::addColumn<int>("maxNgram");
        QTest::addColumn<int>("minNgram");
        QTest::addColumn<std::vector<int32_t>>("expected");
        // "1 2" occurs at 0 and 4: the later one's continuation 4 7 1 (3-gram "7 1 2" nowhere)
        QTest::newRow("latest of two matches")
            << ids({1, 2, 3, 9, 1, 2, 4, 7, 1, 2}) << 3 << 3 << 1 << ids({4, 7, 1});
        // "5 6 7" (3-gram, at 0) wins over the later 2-gram "6 7" (at 5)
        QTest::newRow("longest n-gram first")
            << ids({5, 6, 7, 8, 0, 6, 7, 9, 5, 6, 7}) << 3 << 3 << 1 << ids({8, 0, 6});
        QTest::newRow("2-gram when 3 is not allowed")
            << ids({5, 6, 7, 8, 0, 6, 7, 9, 5, 6, 7}) << 3 << 2 << 1 << ids({9, 5, 6});
        // the continuation runs into the draft itself: the cycle 3 1 2 repeats
        QTest::newRow("a cycle continues through the draft")
            << ids({1, 2, 3, 1, 2}) << 5 << 2 << 1 << ids({3, 1, 2, 3, 1});
        QTest::newRow("a run of one token") << ids({4, 4}) << 3 << 3 << 1 << ids({4, 4, 4});
        QTest::newRow("the draft stops at maxDraft")
            << ids({1, 2, 3, 4, 5, 1}) << 2 << 3 << 1 << ids({2, 3});
        QTest::newRow("no earlier occurrence") << ids({1, 2, 3, 4}) << 3 << 3 << 1 << ids({});
        QTest::newRow("only a 1-gram, min 2") << ids({1, 2, 3, 1}) << 3 << 3 << 2 << ids({});
        QTest::newRow("only a 1-gram, min 1") << ids({1, 2, 3, 1}) << 3 << 3 << 1 << ids({2, 3, 1});
        QTest::newRow("maxDraft 0") << ids({1, 2, 1}) << 0 << 3 << 1 << ids({});
        QTest::newRow("one token") << ids({1}) << 3 << 3 << 1 << ids({});
    }
    void lookupProposesTheLatestMatchsContinuation() {
        QFETCH(std::vector<int32_t>, context);
        QFETCH(int, maxDraft);
        QFETCH(int, maxNgram);
        QFETCH(int, minNgram);
        QFETCH(std::vector<int32_t>, expected);
        QCOMPARE(lookupDraft(context, maxDraft, maxNgram, minNgram), expected);
        LookupDrafter d(maxNgram, minNgram);
        const Draft draft = d.propose(context, maxDraft, {});
        QCOMPARE(draft.tokens, expected);
        QVERIFY(draft.q.empty());  // point masses
    }

    void lookupRejectsBadNgramSizes() {
        QVERIFY_THROWS_EXCEPTION(Error, lookupDraft(ids({1, 2, 1}), 3, 3, 0));
        QVERIFY_THROWS_EXCEPTION(Error, lookupDraft(ids({1, 2, 1}), 3, 2, 3));
        QVERIFY_THROWS_EXCEPTION(Error, lookupDraft(ids({1, 2, 1}), -1, 3, 1));
        QVERIFY_THROWS_EXCEPTION(Error, LookupDrafter(1, 2));
    }

    // --- 2. the rejection rule -------------------------------------------------------------

    // Tokens drawn from q, checked against p by acceptDraftToken: the output is distributed as
    // p (chi-square at a false-alarm rate of 1e-4; 200,000 draws from a fixed seed), tokens p
    // gives no mass never come out, and the acceptance rate is sum_x min(p(x), q(x)).
    // The same test on the drafted tokens themselves (no rule) must fail: it has the power.
    void acceptanceKeepsTheTargetDistribution_data() {
        QTest::addColumn<std::vector<double>>("p");
        QTest::addColumn<std::vector<double>>("q");  // empty: a point mass at `point`
        QTest::addColumn<int>("point");
        const std::vector<double> p{0.4, 0.25, 0.2, 0.1, 0.05, 0.0};
        QTest::newRow("q a different distribution")
            << p << std::vector<double>{0.1, 0.1, 0.3, 0.3, 0.1, 0.1} << -1;
        QTest::newRow("q puts mass where p has none")
            << p << std::vector<double>{0.05, 0.05, 0.05, 0.05, 0.05, 0.75} << -1;
        QTest::newRow("q close to p")
            << p << std::vector<double>{0.38, 0.27, 0.2, 0.1, 0.05, 0.0} << -1;
        QTest::newRow("lookup: a point mass on a likely token") << p << std::vector<double>{} << 0;
        QTest::newRow("lookup: a point mass on an unlikely token")
            << p << std::vector<double>{} << 4;
        QTest::newRow("lookup: a point mass where p has none") << p << std::vector<double>{} << 5;
    }
    void acceptanceKeepsTheTargetDistribution() {
        QFETCH(std::vector<double>, p);
        QFETCH(std::vector<double>, q);
        QFETCH(int, point);
        const int V = static_cast<int>(p.size());
        TokenProbs pp, qq;
        for (int i = 0; i < V; ++i)
            if (p[static_cast<size_t>(i)] > 0) pp.emplace_back(i, p[static_cast<size_t>(i)]);
        for (int i = 0; i < static_cast<int>(q.size()); ++i)
            if (q[static_cast<size_t>(i)] > 0) qq.emplace_back(i, q[static_cast<size_t>(i)]);

        std::mt19937_64 rng(20231);
        std::uniform_real_distribution<double> uni(0.0, 1.0);
        std::discrete_distribution<int> fromQ(q.begin(), q.end());
        const long n = 200000;
        std::vector<long> out(static_cast<size_t>(V)), drafted(static_cast<size_t>(V));
        long accepted = 0;
        for (long i = 0; i < n; ++i) {
            const int x = q.empty() ? point : fromQ(rng);
            const DraftVerdict v = acceptDraftToken(pp, qq, x, uni(rng), uni(rng));
            QVERIFY(v.token >= 0 && v.token < V);
            if (v.accepted) QCOMPARE(v.token, x);
            ++out[static_cast<size_t>(v.token)];
            ++drafted[static_cast<size_t>(x)];
            accepted += v.accepted ? 1 : 0;
        }
        // 1. tokens p gives no mass never come out
        std::vector<long> obs, draftObs;
        std::vector<double> probs;
        for (int i = 0; i < V; ++i) {
            if (p[static_cast<size_t>(i)] == 0) {
                QCOMPARE(out[static_cast<size_t>(i)], 0L);
                continue;
            }
            obs.push_back(out[static_cast<size_t>(i)]);
            draftObs.push_back(drafted[static_cast<size_t>(i)]);
            probs.push_back(p[static_cast<size_t>(i)]);
        }
        // 2. chi-square against p
        const int df = static_cast<int>(probs.size()) - 1;
        const double chi = chiSquare(obs, probs, n);
        QVERIFY2(chi < chiSquareCritical(df),
                 qPrintable(QString("chi-square %1 with %2 degrees of freedom exceeds %3")
                                .arg(chi)
                                .arg(df)
                                .arg(chiSquareCritical(df))));
        // 3. the drafted tokens themselves fail the same test: it would catch a rule that
        // accepted every draft
        QVERIFY(chiSquare(draftObs, probs, n) > chiSquareCritical(df));
        // 4. the acceptance rate is sum_x min(p(x), q(x)), within 5 standard deviations
        double rate = 0;
        for (int i = 0; i < V; ++i) {
            const double qi = q.empty() ? (i == point ? 1.0 : 0.0) : q[static_cast<size_t>(i)];
            rate += std::min(p[static_cast<size_t>(i)], qi);
        }
        const double sd = std::sqrt(rate * (1 - rate) / static_cast<double>(n));
        const double got = static_cast<double>(accepted) / static_cast<double>(n);
        QVERIFY2(std::abs(got - rate) <= 5 * sd + 1e-12,
                 qPrintable(QString("acceptance %1, expected %2").arg(got).arg(rate)));
    }

    // Greedy p (one token, probability 1): a draft is accepted iff it is that token, whatever the
    // random numbers, and a rejected one is replaced by it.
    void greedyAcceptanceIsExact() {
        const TokenProbs p{{7, 1.0}};
        for (double u : {0.0, 0.5, 0.999999}) {
            QCOMPARE(acceptDraftToken(p, {}, 7, u, u).accepted, true);
            const DraftVerdict v = acceptDraftToken(p, {}, 3, u, u);
            QCOMPARE(v.accepted, false);
            QCOMPARE(v.token, 7);
            const DraftVerdict w = acceptDraftToken(p, TokenProbs{{3, 0.6}, {7, 0.4}}, 3, u, u);
            QCOMPARE(w.accepted, false);
            QCOMPARE(w.token, 7);
        }
        QVERIFY_THROWS_EXCEPTION(Error, acceptDraftToken({}, {}, 1, 0.5, 0.5));
    }

    // --- 3. greedy rounds against plain decoding ------------------------------------------

    void greedyEqualsPlainDecodingAndTheCacheFollows_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("drafter");
        QTest::addColumn<int>("draft");
        for (const char* model : {"gpt2", "llama_gqa", "mistral", "gemma2"})
            for (const char* d : {"lookup", "model:same", "model:other"})
                for (int n : {1, 4})
                    QTest::newRow(qPrintable(QString("%1 %2 %3").arg(model, d).arg(n)))
                        << QString(model) << QString(d) << n;
    }
    void greedyEqualsPlainDecodingAndTheCacheFollows() {
        QFETCH(QString, model);
        QFETCH(QString, drafter);
        QFETCH(int, draft);
        const auto m = fixtures::makeModel(fixtures::specFor(model.toStdString()));
        // 1. plain greedy decoding to the end of the context, with the logits after every length
        auto plainBackend = std::make_shared<CpuBackend>(m);
        DecodeSession plain(plainBackend, m->tokenizer);
        plain.prefill(kPrompt);
        const size_t promptLength = plain.tokens().size();
        const size_t nCtx = static_cast<size_t>(m->config.nCtx);
        std::map<size_t, std::vector<float>> logitsAt;
        logitsAt[promptLength].assign(plain.logits().begin(), plain.logits().end());
        while (plain.tokens().size() < nCtx) {
            plain.step();
            logitsAt[plain.tokens().size()].assign(plain.logits().begin(), plain.logits().end());
        }
        const std::vector<int32_t>& want = plain.tokens();

        // 2. speculative rounds, each checked against the plain run
        auto backend = std::make_shared<CpuBackend>(m);
        DecodeSession session(backend, m->tokenizer);
        session.prefill(kPrompt);
        SpeculativeDecoder dec(session, this->drafter(drafter, model.toStdString()), draft);
        std::vector<int32_t> emitted = session.tokens();
        long long drafted = 0, accepted = 0;
        while (emitted.size() < nCtx) {
            const size_t before = session.tokens().size();
            const SpeculativeStep r = dec.step(static_cast<int>(nCtx - emitted.size()));
            // the tokens are plain greedy decoding's
            emitted.insert(emitted.end(), r.emitted.begin(), r.emitted.end());
            QVERIFY(emitted.size() <= nCtx);
            QVERIFY(std::equal(emitted.begin(), emitted.end(), want.begin()));
            QVERIFY(r.drafted() <= draft);
            // the accepted drafts are exactly the prefix that agrees with greedy decoding
            int agree = 0;
            while (agree < r.drafted() && r.draft[static_cast<size_t>(agree)] ==
                                              want[before + 1 + static_cast<size_t>(agree)])
                ++agree;
            QCOMPARE(r.accepted, agree);
            if (drafter == "model:same")  // the target's own weights: every draft is right
                QCOMPARE(r.accepted, r.drafted());
            drafted += r.drafted();
            accepted += r.accepted;
            // the session holds the emitted tokens but the pending one, like a plain session
            const std::vector<int32_t>& t = session.tokens();
            QCOMPARE(t.size(), emitted.size() - 1);
            QVERIFY(std::equal(t.begin(), t.end(), want.begin()));
            QCOMPARE(dec.pending(), std::optional<int32_t>(emitted.back()));
            QCOMPARE(static_cast<size_t>(backend->cacheUsed()), t.size());
            QCOMPARE(session.kvBytes(), t.size() * backend->cacheBytesPerToken());
            const int used = backend->cacheUsed();
            VERIFY_CLOSE("cache", cacheRows(backend->cache(), used),
                         cacheRows(plainBackend->cache(), used));
            VERIFY_CLOSE("logits", session.logits(), logitsAt.at(t.size()));
            // one trace per token that entered the cache, each chosen greedily by its own row
            QCOMPARE(r.traces.size(), static_cast<size_t>(1 + r.accepted));
            QCOMPARE(r.rejected.size(), static_cast<size_t>(r.drafted() - r.accepted));
            for (size_t i = 0; i < r.traces.size(); ++i) {
                const StepTrace& s = r.traces[i];
                QCOMPARE(s.position, static_cast<int>(before + i));
                QCOMPARE(s.token, want[before + i]);
                QVERIFY(s.hasTensors());
                QCOMPARE(s.chosenRank, 0);
                QCOMPARE(s.kvBytes, session.kvBytes());
            }
            for (size_t i = 0; i < r.rejected.size(); ++i) {
                QCOMPARE(r.rejected[i].position, static_cast<int>(before + r.traces.size() + i));
                QVERIFY(r.rejected[i].chosenRank != 0 || i > 0);  // the first one was wrong
            }
        }
        QCOMPARE(dec.draftedTotal(), drafted);
        QCOMPARE(dec.acceptedTotal(), accepted);
        // 3. the last token runs alone: the session is the plain one
        const std::optional<StepTrace> last = dec.flush();
        QVERIFY(last.has_value());
        QCOMPARE(session.tokens(), want);
        QCOMPARE(backend->cacheUsed(), static_cast<int>(nCtx));
        VERIFY_CLOSE("cache", cacheRows(backend->cache(), static_cast<int>(nCtx)),
                     cacheRows(plainBackend->cache(), static_cast<int>(nCtx)));
        VERIFY_CLOSE("logits", session.logits(), plain.logits());
        QVERIFY(!dec.flush().has_value());
        qInfo("%lld of %lld drafted tokens accepted in %d rounds", accepted, drafted, dec.rounds());
        if (drafter == "model:same") QVERIFY(accepted > 0);
    }

    // Under a cache policy (an element type below f32, a sliding window, sinks, heavy hitters)
    // greedy rounds still give plain greedy decoding's tokens, and after each round the cache
    // (rows held, their positions and contents) and logits are those of a plain session with
    // the same policy that stepped through the same tokens. Where the window moved past rows
    // the kept tokens needed, the session ran them again (DecodeSession::keepAppended).
    void greedyUnderACachePolicyEqualsPlainDecoding_data() {
        QTest::addColumn<int>("type");  // KvType
        QTest::addColumn<int>("window");
        QTest::addColumn<int>("sinks");
        QTest::addColumn<int>("heavy");
        QTest::addColumn<QString>("drafter");
        struct Policy {
            const char* name;
            KvType type;
            int window, sinks, heavy;
        };
        const Policy policies[] = {{"f16", KvType::F16, 0, 0, 0},
                                   {"window 8", KvType::F32, 8, 0, 0},
                                   {"sinks 2 + window 6", KvType::F32, 6, 2, 0},
                                   {"heavy 2 + window 6", KvType::F32, 6, 0, 2}};
        for (const Policy& p : policies)
            for (const char* d : {"lookup", "model:same"})
                QTest::newRow(qPrintable(QString("%1, %2").arg(p.name, d)))
                    << static_cast<int>(p.type) << p.window << p.sinks << p.heavy << QString(d);
    }
    void greedyUnderACachePolicyEqualsPlainDecoding() {
        QFETCH(int, type);
        QFETCH(int, window);
        QFETCH(int, sinks);
        QFETCH(int, heavy);
        QFETCH(QString, drafter);
        const auto m = fixtures::makeModel(fixtures::gpt2Spec());
        EvictionPolicy policy;
        policy.window = window;
        policy.sinks = sinks;
        policy.heavy = heavy;
        const KvCacheOptions cacheOptions(static_cast<KvType>(type), 16, policy);
        auto newBackend = [&] {
            return std::make_shared<CpuBackend>(m, ThreadPool::shared(), cacheOptions);
        };
        // 1. plain greedy decoding under the policy
        DecodeSession plain(newBackend(), m->tokenizer);
        plain.prefill(kPrompt);
        const size_t nCtx = static_cast<size_t>(m->config.nCtx);
        while (plain.tokens().size() < nCtx) plain.step();
        const std::vector<int32_t>& want = plain.tokens();
        // 2. rounds, with a plain session kept in step to compare against
        auto backend = newBackend();
        DecodeSession session(backend, m->tokenizer);
        session.prefill(kPrompt);
        auto shadowBackend = newBackend();
        DecodeSession shadow(shadowBackend, m->tokenizer);
        shadow.prefill(kPrompt);
        SpeculativeDecoder dec(session, this->drafter(drafter, "gpt2"), 4);
        std::vector<int32_t> emitted = session.tokens();
        while (emitted.size() < nCtx) {
            const SpeculativeStep r = dec.step(static_cast<int>(nCtx - emitted.size()));
            emitted.insert(emitted.end(), r.emitted.begin(), r.emitted.end());
            QVERIFY(std::equal(emitted.begin(), emitted.end(), want.begin()));
            while (shadow.tokens().size() < session.tokens().size())
                shadow.stepWith(want[shadow.tokens().size()]);
            QCOMPARE(session.tokens(), shadow.tokens());
            const KvCache& a = backend->cache();
            const KvCache& b = shadowBackend->cache();
            QCOMPARE(a.used(), b.used());
            QCOMPARE(a.rows(), b.rows());
            for (int l = 0; l < a.nLayer(); ++l) QCOMPARE(a.heldPositions(l), b.heldPositions(l));
            VERIFY_CLOSE("cache", cacheRows(a, a.rows()), cacheRows(b, b.rows()));
            VERIFY_CLOSE("logits", session.logits(), shadow.logits());
            QCOMPARE(session.kvBytes(), shadow.kvBytes());
        }
        dec.flush();
        QCOMPARE(session.tokens(), want);
        if (drafter == "model:same") QVERIFY(dec.acceptedTotal() > 0);
    }

    // Measuring drift (a full f32 cache beside an f16 one): every token the rounds keep carries
    // the drift of the distribution that chose it, as a plain session's steps do, and after the
    // rounds the full cache follows the session (its next step's drift is a plain session's).
    void driftIsMeasuredThroughTheRounds() {
        const auto m = fixtures::makeModel(fixtures::gpt2Spec());
        SessionOptions o;
        o.drift = true;
        const KvCacheOptions f16(KvType::F16, 16);
        auto newSession = [&] {
            return DecodeSession(std::make_shared<CpuBackend>(m, ThreadPool::shared(), f16),
                                 m->tokenizer, o);
        };
        DecodeSession s = newSession();
        QVERIFY(s.measuresDrift());
        s.prefill(kPrompt);
        DecodeSession plain = newSession();
        plain.prefill(kPrompt);
        std::map<int, float> plainDrift;
        SpeculativeDecoder dec(s, std::make_unique<LookupDrafter>(), 4);
        bool rejected = false;  // a round that kept part of its batch (the rows' path)
        for (int round = 0; round < 12; ++round) {
            const SpeculativeStep r = dec.step();
            rejected = rejected || r.accepted < r.drafted();
            for (const StepTrace& t : r.traces) {
                while (plain.tokens().size() <= static_cast<size_t>(t.position)) {
                    const StepTrace p = plain.stepWith(s.tokens()[plain.tokens().size()]);
                    plainDrift[p.position] = p.driftKl;
                }
                QVERIFY2(std::isfinite(t.driftKl), "a kept token without its drift");
                QVERIFY2(std::abs(t.driftKl - plainDrift.at(t.position)) < 1e-4,
                         qPrintable(QString("position %1: drift %2, plain %3")
                                        .arg(t.position)
                                        .arg(t.driftKl)
                                        .arg(plainDrift.at(t.position))));
                QVERIFY(t.fullKvBytes > 0);
            }
            QCOMPARE(s.reference()->cacheUsed(), static_cast<int>(s.tokens().size()));
        }
        QVERIFY(dec.acceptedTotal() > 0 && rejected);
        dec.flush();
        while (plain.tokens().size() < s.tokens().size())
            plain.stepWith(s.tokens()[plain.tokens().size()]);
        const StepTrace a = s.step(), b = plain.step();
        QCOMPARE(a.token, b.token);
        QVERIFY(std::isfinite(a.driftKl));
        QVERIFY(std::abs(a.driftKl - b.driftKl) < 1e-4);
    }

    // --- 4. rollback ------------------------------------------------------------------------

    // A batch whose every token is rejected (keep 0) leaves tokens, cache and logits exactly as
    // they were, and the next step is the one that would have come without it.
    void aFullyRejectedDraftLeavesTheSessionAsItWas_data() { fixtures::addModelRows(); }
    void aFullyRejectedDraftLeavesTheSessionAsItWas() {
        QFETCH(QString, model);
        const auto m = fixtures::makeModel(fixtures::specFor(model.toStdString()));
        auto backend = std::make_shared<CpuBackend>(m);
        DecodeSession s(backend, m->tokenizer);
        s.prefill(kPrompt);
        for (int i = 0; i < 5; ++i) s.step();
        const std::vector<int32_t> tokens = s.tokens();
        const std::vector<float> logits(s.logits().begin(), s.logits().end());
        const int used = backend->cacheUsed();
        const std::vector<float> rows = cacheRows(backend->cache(), used);
        const size_t kvBytes = s.kvBytes();

        const std::vector<StepTrace> traces = s.appendBatch(ids({5, 6, 7, 8}));
        QCOMPARE(traces.size(), size_t{4});
        QCOMPARE(backend->cacheUsed(), used + 4);
        QCOMPARE(s.appendedLogits().size(), size_t{4} * static_cast<size_t>(m->config.nVocab));
        s.keepAppended(0);
        QCOMPARE(s.tokens(), tokens);
        QCOMPARE(backend->cacheUsed(), used);
        QCOMPARE(s.kvBytes(), kvBytes);
        QCOMPARE(maxRelError(cacheRows(backend->cache(), used), rows), 0.0);
        QCOMPARE(maxRelError(s.logits(), logits), 0.0);
        QVERIFY(s.appendedLogits().empty());

        // the next step equals one on a session that never saw the draft
        DecodeSession fresh(std::make_shared<CpuBackend>(m), m->tokenizer);
        fresh.prefill(kPrompt);
        for (int i = 0; i < 6; ++i) fresh.step();
        const StepTrace a = s.step();
        QCOMPARE(a.token, fresh.tokens().back());
        VERIFY_CLOSE("logits after the next step", s.logits(), fresh.logits());
    }

    // Keeping k of a batch equals having stepped through those k tokens; the rows of the batch
    // are the logits after each token.
    void keepingPartOfABatchEqualsSteppingThroughIt() {
        const auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        auto backend = std::make_shared<CpuBackend>(m);
        DecodeSession s(backend, m->tokenizer);
        s.prefill(kPrompt);
        const std::vector<int32_t> batch = ids({40, 41, 42, 43, 44});
        s.appendBatch(batch);
        const std::vector<float> rows(s.appendedLogits().begin(), s.appendedLogits().end());
        const size_t V = static_cast<size_t>(m->config.nVocab);
        s.keepAppended(3);

        auto stepBackend = std::make_shared<CpuBackend>(m);
        DecodeSession stepped(stepBackend, m->tokenizer);
        stepped.prefill(kPrompt);
        for (size_t i = 0; i < batch.size(); ++i) {
            stepped.stepWith(batch[i]);
            VERIFY_CLOSE(QString("row %1").arg(i), std::span<const float>(rows).subspan(i * V, V),
                         stepped.logits());
            if (i == 2) {
                QCOMPARE(s.tokens(), stepped.tokens());
                QCOMPARE(backend->cacheUsed(), stepBackend->cacheUsed());
                VERIFY_CLOSE("cache", cacheRows(backend->cache(), backend->cacheUsed()),
                             cacheRows(stepBackend->cache(), backend->cacheUsed()));
                VERIFY_CLOSE("logits", s.logits(), stepped.logits());
            }
        }
    }

    // The hook's limits are errors that change nothing.
    void appendBatchLimitsAreErrors() {
        const auto m = fixtures::makeModel(fixtures::gpt2Spec());
        auto backend = std::make_shared<CpuBackend>(m);
        DecodeSession s(backend, m->tokenizer);
        QVERIFY_THROWS_EXCEPTION(Error, s.appendBatch(ids({1})));  // nothing prefilled
        s.prefill(kPrompt);
        const std::vector<int32_t> tokens = s.tokens();
        QVERIFY_THROWS_EXCEPTION(Error, s.appendBatch(ids({})));
        QVERIFY_THROWS_EXCEPTION(Error, s.appendBatch(ids({1, m->config.nVocab})));
        const std::vector<int32_t> tooMany(static_cast<size_t>(m->config.nCtx), 1);
        QVERIFY_THROWS_EXCEPTION(Error, s.appendBatch(tooMany));
        QCOMPARE(s.tokens(), tokens);
        QCOMPARE(static_cast<size_t>(backend->cacheUsed()), tokens.size());
        QVERIFY_THROWS_EXCEPTION(Error, s.keepAppended(0));  // no batch
        s.appendBatch(ids({1, 2}));
        QVERIFY_THROWS_EXCEPTION(Error, s.keepAppended(3));
        s.step();  // the session moved on: the batch can no longer be cut
        QVERIFY(s.appendedLogits().empty());
        QVERIFY_THROWS_EXCEPTION(Error, s.keepAppended(1));
        QCOMPARE(s.tokens().size(), tokens.size() + 3);
    }

    // A drafter that is always wrong: every round keeps only the pending token, and the session
    // after each round is the plain session's (tokens, cache, logits).
    void alwaysRejectedDraftsRollBackEveryRound() {
        const auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        auto plainBackend = std::make_shared<CpuBackend>(m);
        DecodeSession plain(plainBackend, m->tokenizer);
        plain.prefill(kPrompt);
        std::vector<std::vector<float>> logitsAfter;
        for (int i = 0; i < 12; ++i) {
            plain.step();
            logitsAfter.emplace_back(plain.logits().begin(), plain.logits().end());
        }
        const std::vector<int32_t>& want = plain.tokens();
        // propose the token after greedy's, repeated: wrong at the first position
        const int V = m->config.nVocab;
        auto backend = std::make_shared<CpuBackend>(m);
        DecodeSession s(backend, m->tokenizer);
        s.prefill(kPrompt);
        const size_t prompt = s.tokens().size();
        SpeculativeDecoder dec(s,
                               std::make_unique<ScriptedDrafter>([&](std::span<const int32_t> c) {
                                   const int32_t wrong = (want[c.size()] + 1) % V;
                                   return std::vector<int32_t>(3, wrong);
                               }),
                               3);
        for (int round = 0; round < 10; ++round) {
            const SpeculativeStep r = dec.step();
            QCOMPARE(r.drafted(), 3);
            QCOMPARE(r.accepted, 0);
            QCOMPARE(r.rejected.size(), size_t{3});
            QCOMPARE(s.tokens().size(), prompt + static_cast<size_t>(round) + 1);
            QVERIFY(std::equal(s.tokens().begin(), s.tokens().end(), want.begin()));
            QCOMPARE(static_cast<size_t>(backend->cacheUsed()), s.tokens().size());
            VERIFY_CLOSE("cache", cacheRows(backend->cache(), backend->cacheUsed()),
                         cacheRows(plainBackend->cache(), backend->cacheUsed()));
            VERIFY_CLOSE("logits", s.logits(), logitsAfter[static_cast<size_t>(round)]);
            QCOMPARE(*dec.pending(), want[s.tokens().size()]);
        }
    }

    // --- 5. sampling ------------------------------------------------------------------------

    // With a temperature, rounds keep the cache of a plain session fed the same tokens, and a
    // draft model with the target's own weights is accepted almost always (q = p).
    void samplingRoundsKeepAPlainSessionsCache_data() {
        QTest::addColumn<QString>("drafter");
        QTest::newRow("lookup") << "lookup";
        QTest::newRow("model:same") << "model:same";
        QTest::newRow("model:other") << "model:other";
    }
    void samplingRoundsKeepAPlainSessionsCache() {
        QFETCH(QString, drafter);
        const auto m = fixtures::makeModel(fixtures::gpt2Spec());
        SessionOptions o;
        o.sampler.temperature = 0.8f;
        o.sampler.topK = 20;
        o.sampler.seed = 5;
        auto backend = std::make_shared<CpuBackend>(m);
        DecodeSession s(backend, m->tokenizer, o);
        s.prefill(kPrompt);
        auto plainBackend = std::make_shared<CpuBackend>(m);
        DecodeSession plain(plainBackend, m->tokenizer, o);
        plain.prefill(kPrompt);
        SpeculativeDecoder dec(s, this->drafter(drafter, "gpt2"), 4);
        std::map<size_t, std::vector<float>> logitsAt;
        logitsAt[plain.tokens().size()].assign(plain.logits().begin(), plain.logits().end());
        const size_t nCtx = static_cast<size_t>(m->config.nCtx);
        while (s.tokens().size() + 1 + (dec.pending() ? 1 : 0) < nCtx) {
            const SpeculativeStep r = dec.step(static_cast<int>(nCtx - s.tokens().size() - 1));
            for (int32_t t : r.emitted) {
                plain.stepWith(t);
                logitsAt[plain.tokens().size()].assign(plain.logits().begin(),
                                                       plain.logits().end());
            }
            QVERIFY(std::equal(s.tokens().begin(), s.tokens().end(), plain.tokens().begin()));
            const int used = backend->cacheUsed();
            QCOMPARE(static_cast<size_t>(used), s.tokens().size());
            VERIFY_CLOSE("cache", cacheRows(backend->cache(), used),
                         cacheRows(plainBackend->cache(), used));
            VERIFY_CLOSE("logits", s.logits(), logitsAt.at(s.tokens().size()));
        }
        qInfo("%lld of %lld drafted tokens accepted", dec.acceptedTotal(), dec.draftedTotal());
        if (drafter == "model:same") QVERIFY(dec.acceptedTotal() >= dec.draftedTotal() * 8 / 10);
    }

    // End to end on the fixture model: over many seeds the first two tokens of a speculative run
    // whose one-token draft is a fixed point mass are distributed as plain sampling's
    // p(t1) p(t2 | t1) (chi-square, false-alarm rate 1e-4).
    void sampledTokensFollowTheTargetDistribution() {
        const auto m = fixtures::makeModel(fixtures::gpt2Spec());
        SessionOptions o;
        o.captureTrace = false;
        o.topLogits = 0;
        o.sampler.temperature = 1.0f;
        o.sampler.topK = 3;
        DecodeSession s(std::make_shared<CpuBackend>(m), m->tokenizer, o);
        s.prefill(kPrompt);
        const size_t prompt = s.tokens().size();
        // 1. the target's joint distribution over (t1, t2), from plain sessions
        const TokenProbs p1 = keptTokens(s.logits(), o.sampler);
        QCOMPARE(p1.size(), size_t{3});
        std::map<std::pair<int32_t, int32_t>, double> joint;
        for (const auto& [a, pa] : p1) {
            DecodeSession one(std::make_shared<CpuBackend>(m), m->tokenizer, o);
            one.prefill(kPrompt);
            one.stepWith(a);
            for (const auto& [b, pb] : keptTokens(one.logits(), o.sampler)) joint[{a, b}] = pa * pb;
        }
        // the draft: always one token that the target gives less than 0.9 after the likeliest
        // first token (so accepted sometimes, not always)
        int32_t fixed = -1;
        for (const auto& [cell, prob] : joint)
            if (cell.first == p1[0].first && fixed < 0 && prob < p1[0].second * 0.9)
                fixed = cell.second;
        QVERIFY(fixed >= 0);
        SpeculativeDecoder dec(s, std::make_unique<ScriptedDrafter>([&](std::span<const int32_t>) {
                                   return std::vector<int32_t>{fixed};
                               }),
                               1);
        // 2. one round per seed: t1 drawn, the draft checked, t2 accepted or replaced
        const long n = 20000;
        std::map<std::pair<int32_t, int32_t>, long> counts;
        for (long seed = 0; seed < n; ++seed) {
            SamplerParams sp = o.sampler;
            sp.seed = static_cast<uint64_t>(seed) + 1000;
            s.setSampler(sp);
            const SpeculativeStep r = dec.step(3);
            QVERIFY(r.emitted.size() >= 2);
            ++counts[{r.emitted[0], r.emitted[1]}];
            s.rewind(s.tokens().size() - prompt);
        }
        std::vector<long> obs;
        std::vector<double> probs;
        for (const auto& [cell, prob] : joint) {
            obs.push_back(counts[cell]);
            probs.push_back(prob);
        }
        long inJoint = 0;
        for (long c : obs) inJoint += c;
        QCOMPARE(inJoint, n);  // nothing outside the kept tokens
        const int df = static_cast<int>(probs.size()) - 1;
        QVERIFY(df <= 8);
        const double chi = chiSquare(obs, probs, n);
        QVERIFY2(chi < chiSquareCritical(df),
                 qPrintable(QString("chi-square %1 with %2 degrees of freedom exceeds %3")
                                .arg(chi)
                                .arg(df)
                                .arg(chiSquareCritical(df))));
        QVERIFY(dec.acceptedTotal() > 0 && dec.acceptedTotal() < dec.draftedTotal());
    }

    // --- 6. drafters ------------------------------------------------------------------------

    void aDraftModelMustShareTheVocabulary() {
        const auto target = fixtures::makeModel(fixtures::gpt2Spec());
        // 1. another size
        RandomModelSpec bigger = otherDraftSpec();
        bigger.nVocab = 320;
        const auto wrongSize = fixtures::makeModel(bigger);
        try {
            ModelDrafter d(std::make_shared<CpuBackend>(wrongSize), wrongSize->tokenizer,
                           target->tokenizer, target->config.nVocab, "model:x");
            QFAIL("a draft model with 320 tokens was accepted for a target with 300");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("320") && QString(e.what()).contains("300"),
                     e.what());
        }
        // 2. the same size, two tokens swapped
        GgufWriter w = randomModel(otherDraftSpec());
        const GgufFile f = GgufFile::fromBytes(randomModel(otherDraftSpec()).toBytes(), "d.gguf");
        std::vector<std::string> tokens;
        for (const GgufValue& v : *f.find("tokenizer.ggml.tokens")->asArray())
            tokens.push_back(*v.asString());
        std::swap(tokens[256], tokens[257]);
        w.set("tokenizer.ggml.tokens", GgufValue::stringArray(tokens));
        const auto swapped = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(w.toBytes(), "swapped.gguf")));
        try {
            ModelDrafter d(std::make_shared<CpuBackend>(swapped), swapped->tokenizer,
                           target->tokenizer, target->config.nVocab, "model:x");
            QFAIL("a draft model with other token bytes was accepted");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("token 256"), e.what());
        }
        // 3. the same vocabulary: accepted
        const auto same = fixtures::makeModel(otherDraftSpec());
        ModelDrafter ok(std::make_shared<CpuBackend>(same), same->tokenizer, target->tokenizer,
                        target->config.nVocab, "model:x");
        QCOMPARE(ok.name(), std::string("model:x"));
    }

    // The draft model proposes its own greedy continuation, and follows a context that changes
    // (a rejected tail, a different prefix) by keeping only the common prefix of its cache.
    void aDraftModelProposesItsGreedyContinuation() {
        const auto target = fixtures::makeModel(fixtures::gpt2Spec());
        const auto draft = fixtures::makeModel(otherDraftSpec());
        auto draftBackend = std::make_shared<CpuBackend>(draft);
        ModelDrafter d(draftBackend, draft->tokenizer, target->tokenizer, target->config.nVocab,
                       "model:other");
        auto greedy = [&](const std::vector<int32_t>& context, int n) {
            DecodeSession s(std::make_shared<CpuBackend>(draft), draft->tokenizer);
            s.prefillTokens(context);
            std::vector<int32_t> out;
            for (int i = 0; i < n; ++i) out.push_back(s.step().token);
            return out;
        };
        const std::vector<int32_t> a = ids({10, 20, 30, 40});
        QCOMPARE(d.propose(a, 5, {}).tokens, greedy(a, 5));
        std::vector<int32_t> b = a;  // the same context with two of the drafts and one more
        const std::vector<int32_t> first = greedy(a, 2);
        b.insert(b.end(), first.begin(), first.end());
        b.push_back(7);
        QCOMPARE(d.propose(b, 4, {}).tokens, greedy(b, 4));
        const std::vector<int32_t> c = ids({10, 21, 30});  // a different prefix
        QCOMPARE(d.propose(c, 3, {}).tokens, greedy(c, 3));
        QCOMPARE(d.propose(c, 3, {}).tokens, greedy(c, 3));  // the same again
        QCOMPARE(d.propose(c, 0, {}).tokens, ids({}));
        QVERIFY(draftBackend->cacheUsed() <= static_cast<int>(c.size() + 2));
    }

    // With a temperature the draft model draws from its own kept tokens: each q is that
    // distribution (it sums to 1 and holds the drawn token), and the same seed draws the same.
    void aDraftModelSamplesFromItsKeptTokens() {
        const auto target = fixtures::makeModel(fixtures::gpt2Spec());
        const auto draft = fixtures::makeModel(otherDraftSpec());
        SamplerParams sp;
        sp.temperature = 1.0f;
        sp.topK = 6;
        sp.seed = 4;
        auto propose = [&] {
            ModelDrafter d(std::make_shared<CpuBackend>(draft), draft->tokenizer, target->tokenizer,
                           target->config.nVocab, "model:other");
            return d.propose(ids({10, 20, 30, 40}), 5, sp);
        };
        const Draft a = propose();
        QCOMPARE(a.tokens.size(), size_t{5});
        QCOMPARE(a.q.size(), size_t{5});
        DecodeSession s(std::make_shared<CpuBackend>(draft), draft->tokenizer);
        s.prefillTokens(ids({10, 20, 30, 40}));
        for (size_t i = 0; i < a.tokens.size(); ++i) {
            const TokenProbs want = keptTokens(s.logits(), sp);
            QCOMPARE(a.q[i].size(), want.size());
            double sum = 0;
            bool holds = false;
            for (size_t j = 0; j < want.size(); ++j) {
                QCOMPARE(a.q[i][j].first, want[j].first);
                QVERIFY(std::abs(a.q[i][j].second - want[j].second) < 1e-5);
                sum += a.q[i][j].second;
                holds = holds || a.q[i][j].first == a.tokens[i];
            }
            QVERIFY(std::abs(sum - 1.0) < 1e-9);
            QVERIFY(holds);
            s.stepWith(a.tokens[i]);
        }
        QCOMPARE(propose().tokens, a.tokens);
    }

    // A session changed between rounds (a step back) drops the pending token: the next round
    // decides afresh from the session, and the session still follows plain decoding.
    void aSessionChangedBetweenRoundsDropsThePendingToken() {
        const auto m = fixtures::makeModel(fixtures::gpt2Spec());
        DecodeSession plain(std::make_shared<CpuBackend>(m), m->tokenizer);
        plain.prefill(kPrompt);
        for (int i = 0; i < 20; ++i) plain.step();
        auto backend = std::make_shared<CpuBackend>(m);
        DecodeSession s(backend, m->tokenizer);
        s.prefill(kPrompt);
        SpeculativeDecoder dec(s, std::make_unique<LookupDrafter>(), 4);
        dec.step();
        dec.step();
        QVERIFY(dec.pending().has_value());
        s.rewind(2);
        QVERIFY(!dec.pending().has_value());
        QVERIFY(!dec.flush().has_value());
        const size_t at = s.tokens().size();
        const SpeculativeStep r = dec.step();
        QCOMPARE(r.emitted.front(), plain.tokens()[at]);  // decided afresh, then run
        QCOMPARE(r.traces.front().position, static_cast<int>(at));
        QVERIFY(std::equal(s.tokens().begin(), s.tokens().end(), plain.tokens().begin()));
        QCOMPARE(static_cast<size_t>(backend->cacheUsed()), s.tokens().size());
    }

    // --- 7. OpenCL --------------------------------------------------------------------------

    // The same rounds on the OpenCL backend: plain greedy decoding's tokens, the cache size and
    // logits of a plain OpenCL session after every round.
    void openClGreedyEqualsPlainDecoding_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("drafter");
        for (const char* model : {"gpt2", "llama_gqa"})
            for (const char* d : {"lookup", "model:other"})
                QTest::newRow(qPrintable(QString("%1 %2").arg(model, d)))
                    << QString(model) << QString(d);
    }
    void openClGreedyEqualsPlainDecoding() {
        if (openClDevice_ < 0) {
            if (!noOpenCl_.isEmpty()) QSKIP(qPrintable(noOpenCl_));
            QFAIL("OpenCL devices exist but none is usable");
        }
        QFETCH(QString, model);
        QFETCH(QString, drafter);
        const auto m = fixtures::makeModel(fixtures::specFor(model.toStdString()));
        BackendChoice choice;
        choice.kind = BackendChoice::Kind::OpenCl;
        choice.device = openClDevice_;
        std::string note;
        DecodeSession plain(createBackend(m, choice, note), m->tokenizer);
        plain.prefill(kPrompt);
        const size_t nCtx = static_cast<size_t>(m->config.nCtx);
        std::map<size_t, std::vector<float>> logitsAt;
        logitsAt[plain.tokens().size()].assign(plain.logits().begin(), plain.logits().end());
        while (plain.tokens().size() < nCtx) {
            plain.step();
            logitsAt[plain.tokens().size()].assign(plain.logits().begin(), plain.logits().end());
        }
        const std::vector<int32_t>& want = plain.tokens();

        auto backend = createBackend(m, choice, note);
        QCOMPARE(QString::fromStdString(backend->name()), QString("opencl"));
        DecodeSession session(backend, m->tokenizer);
        session.prefill(kPrompt);
        SpeculativeDecoder dec(session, this->drafter(drafter, model.toStdString()), 4);
        std::vector<int32_t> emitted = session.tokens();
        while (emitted.size() < nCtx) {
            const SpeculativeStep r = dec.step(static_cast<int>(nCtx - emitted.size()));
            emitted.insert(emitted.end(), r.emitted.begin(), r.emitted.end());
            QVERIFY(std::equal(emitted.begin(), emitted.end(), want.begin()));
            QCOMPARE(static_cast<size_t>(backend->cacheUsed()), session.tokens().size());
            VERIFY_CLOSE("logits", session.logits(), logitsAt.at(session.tokens().size()));
        }
        dec.flush();
        QCOMPARE(session.tokens(), want);
        VERIFY_CLOSE("logits", session.logits(), plain.logits());
        qInfo("%lld of %lld drafted tokens accepted", dec.acceptedTotal(), dec.draftedTotal());
    }
};

QTEST_GUILESS_MAIN(TstSpeculative)
#include "tst_speculative.moc"
