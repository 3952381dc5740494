// NextTokenView on a real decode: the bars' probabilities are the softmax of the stored logits
// at each temperature (computed here independently, and against the full logits the session
// sampled from); top-k, top-p and min-p keep exactly the tokens runtime's sampler keeps, and the
// token a seeded draw picks is one of them; prompt rows carry the probability a full forward
// pass gives the actual next prompt token.
#include <QTest>
#include <algorithm>
#include <cmath>
#include <memory>

#include "common/labels.h"
#include "common/theme.h"
#include "common/trace_store.h"
#include "cpu/cpu_backend.h"
#include "model_fixtures.h"
#include "runtime/decode_session.h"
#include "runtime/sampler.h"
#include "view_checks.h"
#include "views/logit_lens_panel.h"
#include "views/next_token_view.h"

using namespace kvscope;
using namespace kvscope::viz;

namespace {

const char* kPrompt = "the cat sat on the mat";

// A session decoding into a store, keeping the full logits each generated token was drawn from.
struct Decode {
    explicit Decode(SamplerParams sampler = {}, int steps = 6)
        : model(fixtures::makeModel(fixtures::llamaGqaSpec())),
          backend(std::make_shared<CpuBackend>(model)),
          session(backend, model->tokenizer, options(sampler)) {
        ModelSummary s;
        s.config = model->config;
        s.path = "fixture";
        store.setModel(s);
        std::vector<StepTrace> traces = session.prefill(kPrompt);
        store.setPrompt(std::move(traces), session.prefillMs());
        for (int k = 0; k < steps; ++k) {
            const std::span<const float> l = session.logits();
            full.emplace_back(l.begin(), l.end());
            store.append(session.step());
        }
    }
    static SessionOptions options(SamplerParams sampler) {
        SessionOptions o;
        o.topLogits = 64;
        o.sampler = sampler;
        return o;
    }
    std::shared_ptr<const Model> model;
    std::shared_ptr<CpuBackend> backend;
    DecodeSession session;
    TraceStore store;
    std::vector<std::vector<float>> full;  // full[k]: the logits generated token k was drawn from
};

double logSumExp(const std::vector<float>& l, double T = 1.0) {
    double m = -INFINITY, s = 0;
    for (float x : l) m = std::max(m, x / T);
    for (float x : l) s += std::exp(x / T - m);
    return m + std::log(s);
}

SamplerParams params(double T, int topK, double topP, double minP, uint64_t seed = 7) {
    SamplerParams p;
    p.temperature = static_cast<float>(T);
    p.topK = topK;
    p.topP = static_cast<float>(topP);
    p.minP = static_cast<float>(minP);
    p.seed = seed;
    return p;
}

}  // namespace

class TstNextTokenView : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase() { ThemeSettings::instance().setAnimationMs(0); }

    // Each step stores 64 candidates with logZ, entropy and the chosen token's logit and rank,
    // equal to what the full logits say.
    void stepsStoreTheirDistribution() {
        Decode d(params(1.3, 0, 1, 0));
        const int P = d.store.promptLength();
        for (size_t k = 0; k < d.full.size(); ++k) {
            const StepTrace& t = d.store.trace(P + static_cast<int>(k));
            const std::vector<float>& l = d.full[k];
            QCOMPARE(t.top.size(), size_t{64});
            QCOMPARE(t.topText.size(), size_t{64});
            QCOMPARE(t.topSpecial.size(), size_t{64});
            const double logZ = logSumExp(l);
            QVERIFY(std::abs(t.logZ - logZ) < 1e-4);
            double h = 0;
            for (float x : l) h -= std::exp(x - logZ) * (x - logZ);
            QVERIFY(std::abs(t.entropy - h) < 1e-4);
            QCOMPARE(t.chosenLogit, l[static_cast<size_t>(t.token)]);
            int rank = 0;
            for (size_t v = 0; v < l.size(); ++v)
                rank += l[v] > t.chosenLogit || (l[v] == t.chosenLogit && int(v) < t.token);
            QCOMPARE(t.chosenRank, rank);
        }
    }

    void barsAreTheSoftmaxOfTheStoredLogits_data() {
        QTest::addColumn<double>("T");
        QTest::addColumn<int>("topK");
        QTest::newRow("T=1") << 1.0 << 0;
        QTest::newRow("T=0.5") << 0.5 << 0;
        QTest::newRow("T=1.7") << 1.7 << 0;
        QTest::newRow("T=0.7 top-k=20") << 0.7 << 20;
    }
    // Greedy (T = 0) reads the distribution at T = 1, so the entropy is the whole vocabulary's,
    // computed here from the step's full logits, as at T = 1.
    void greedyReadsTheWholeVocabularyAtTemperatureOne() {
        Decode d(params(1.3, 0, 1, 0));
        NextTokenView view(&d.store);
        view.resize(900, 620);
        view.setSettings({0.0, 0, 1.0, 0.0});
        const int P = d.store.promptLength();
        d.store.pinQuery(P);
        const std::vector<float>& l = d.full[0];
        const double mx = *std::max_element(l.begin(), l.end());
        double z = 0;
        for (float v : l) z += std::exp(v - mx);
        double h = 0;
        for (float v : l) {
            const double p = std::exp(v - mx) / z;
            if (p > 0) h -= p * std::log2(p);
        }
        QVERIFY2(std::abs(view.entropyBits() - h) < 1e-4,
                 qPrintable(QString("%1 vs %2").arg(view.entropyBits()).arg(h)));
        QVERIFY(view.summary().contains("whole vocabulary"));
    }

    void barsAreTheSoftmaxOfTheStoredLogits() {
        QFETCH(double, T);
        QFETCH(int, topK);
        Decode d(params(1.3, 0, 1, 0));
        NextTokenView view(&d.store);
        view.resize(900, 620);
        view.setSettings({T, topK, 1.0, 0.0});
        const int P = d.store.promptLength();
        for (int i = P; i < d.store.count(); ++i) {
            d.store.pinQuery(i);
            const StepTrace& t = d.store.trace(i);
            const std::vector<NextTokenBar>& bars = view.bars();
            QCOMPARE(bars.size(), t.top.size());
            // independently: exact over the vocabulary at T = 1, else over the stored 64
            const std::vector<float>& l = d.full[static_cast<size_t>(i - P)];
            double z = 0;
            for (const auto& [id, logit] : t.top) z += std::exp(logit / T);
            for (size_t r = 0; r < bars.size(); ++r) {
                const double want = T == 1.0 ? std::exp(t.top[r].second - logSumExp(l))
                                             : std::exp(t.top[r].second / T) / z;
                QVERIFY2(
                    std::abs(bars[r].prob - want) < 1e-6,
                    qPrintable(QString("row %1: %2 vs %3").arg(r).arg(bars[r].prob).arg(want)));
                QCOMPARE(bars[r].logit, t.top[r].second);
                QCOMPARE(bars[r].chosen, t.top[r].first == t.token);
            }
            QCOMPARE(bars.front().argmax, true);
            QCOMPARE(view.exact(), T == 1.0 || topK > 0);
            QVERIFY(view.summary().contains(T == 1.0 ? "whole vocabulary" : "renormalised"));
        }
    }

    void cutoffsKeepWhatTheSamplerKeeps_data() {
        QTest::addColumn<double>("T");
        QTest::addColumn<int>("topK");
        QTest::addColumn<double>("topP");
        QTest::addColumn<double>("minP");
        QTest::newRow("greedy") << 0.0 << 0 << 1.0 << 0.0;
        QTest::newRow("T=1") << 1.0 << 0 << 1.0 << 0.0;
        QTest::newRow("T=1 top-p=0.5") << 1.0 << 0 << 0.5 << 0.0;
        QTest::newRow("T=1 min-p=0.1") << 1.0 << 0 << 1.0 << 0.1;
        QTest::newRow("T=0.6 top-k=10") << 0.6 << 10 << 1.0 << 0.0;
        QTest::newRow("T=1.5 top-k=40 top-p=0.8") << 1.5 << 40 << 0.8 << 0.0;
        QTest::newRow("T=0.8 top-k=64 min-p=0.05") << 0.8 << 64 << 1.0 << 0.05;
        QTest::newRow("T=1.2 top-k=30 top-p=0.9 min-p=0.2") << 1.2 << 30 << 0.9 << 0.2;
        QTest::newRow("top-k=1") << 1.0 << 1 << 1.0 << 0.0;
    }
    void cutoffsKeepWhatTheSamplerKeeps() {
        QFETCH(double, T);
        QFETCH(int, topK);
        QFETCH(double, topP);
        QFETCH(double, minP);
        Decode d(params(1.3, 0, 1, 0), 8);
        NextTokenView view(&d.store);
        view.setSettings({T, topK, topP, minP});
        const SamplerParams sp = params(T, topK, topP, minP);
        const int P = d.store.promptLength();
        for (int i = P; i < d.store.count(); ++i) {
            d.store.pinQuery(i);
            const std::vector<float>& l = d.full[static_cast<size_t>(i - P)];
            const auto want = keptTokens(l, sp);
            std::vector<std::pair<int32_t, double>> got;
            for (const NextTokenBar& b : view.bars())
                if (b.kept) got.emplace_back(b.id, b.keptProb);
            // the sampler may keep more than the 64 stored: the view keeps all it has and says so
            const bool beyond = want.size() > view.bars().size();
            QCOMPARE(got.size(), beyond ? view.bars().size() : want.size());
            if (beyond) QVERIFY(view.cutoffBeyondStored());
            QCOMPARE(view.summary().contains("more than the stored"), view.cutoffBeyondStored());
            double mass = 0;
            for (size_t r = 0; r < got.size(); ++r) {
                QCOMPARE(got[r].first, want[r].first);
                if (!beyond) QVERIFY(std::abs(got[r].second - want[r].second) < 1e-5);
                mass += view.bars()[r].prob;
            }
            QVERIFY(std::abs(view.keptMass() - mass) < 1e-12);
            // every seeded draw lands on a kept token
            for (uint64_t seed = 0; seed < 20; ++seed) {
                SamplerParams s = sp;
                s.seed = seed;
                const int32_t drawn = sampleToken(l, s, static_cast<uint64_t>(i));
                if (beyond) continue;  // it may be one of those not stored
                QVERIFY(std::any_of(got.begin(), got.end(),
                                    [&](const auto& g) { return g.first == drawn; }));
            }
        }
    }

    // Without a top-k limit at T != 1 the view cuts the stored 64 as the sampler cuts a
    // vocabulary of just those 64 (the caption says so).
    void inexactCutsMatchTheSamplerOverTheStoredCandidates() {
        Decode d(params(1.3, 0, 1, 0));
        NextTokenView view(&d.store);
        view.setSettings({1.4, 0, 0.7, 0.02});
        const int i = d.store.count() - 1;
        const StepTrace& t = d.store.trace(i);
        std::vector<float> only(static_cast<size_t>(d.model->config.nVocab), -INFINITY);
        for (const auto& [id, logit] : t.top) only[static_cast<size_t>(id)] = logit;
        const auto want = keptTokens(only, params(1.4, 0, 0.7, 0.02));
        std::vector<int32_t> got;
        for (const NextTokenBar& b : view.bars())
            if (b.kept) got.push_back(b.id);
        QCOMPARE(got.size(), want.size());
        for (size_t r = 0; r < got.size(); ++r) QCOMPARE(got[r], want[r].first);
        QVERIFY(!view.exact());
        QVERIFY(view.summary().contains("stored top 64"));
    }

    // Prompt token i holds the prediction after token i - 1: the stored probability of the
    // actual token i equals the softmax of a full forward pass's logits at position i - 1.
    void promptRowsAreTeacherForcing() {
        Decode d({}, 0);
        const int P = d.store.promptLength();
        QVERIFY(P >= 3);
        auto backend = std::make_shared<CpuBackend>(d.model);
        std::vector<int32_t> ids;
        for (int i = 0; i < P; ++i) ids.push_back(d.store.trace(i).token);
        std::vector<float> all;
        backend->forward(ids, true, all, nullptr);
        const size_t V = static_cast<size_t>(d.model->config.nVocab);
        QCOMPARE(all.size(), V * static_cast<size_t>(P));
        QVERIFY(!d.store.trace(0).hasDistribution());  // nothing predicts the first token
        NextTokenView view(&d.store);
        view.resize(900, 620);
        for (int i = 1; i < P; ++i) {
            const StepTrace& t = d.store.trace(i);
            QVERIFY(t.prompt);
            const std::vector<float> row(all.begin() + static_cast<std::ptrdiff_t>((i - 1) * V),
                                         all.begin() + static_cast<std::ptrdiff_t>(i * V));
            const double want = std::exp(row[static_cast<size_t>(t.token)] - logSumExp(row));
            const double got = std::exp(double(t.chosenLogit) - t.logZ);
            QVERIFY2(std::abs(got - want) < 1e-5,
                     qPrintable(QString("token %1: %2 vs %3").arg(i).arg(got).arg(want)));
            const int argmax =
                static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
            QCOMPARE(t.top.front().first, argmax);
            d.store.pinQuery(i);
            QVERIFY(view.summary().contains("expected"));
        }
    }

    void rendersEveryState() {
        Decode d(params(1.3, 0, 1, 0));
        NextTokenView view(&d.store);
        view.resize(900, 620);
        QVERIFY(testing::pixelVariance(testing::render(view, "next-token")) > 1);
        QVERIFY(view.shownRows() >= 10);
        view.setSettings({0.8, 10, 0.6, 0.05});  // some candidates greyed out
        QVERIFY(testing::pixelVariance(testing::render(view, "next-token-cut")) > 1);
        view.setSettings({});
        d.store.pinQuery(0);  // the first token: nothing predicted it
        QVERIFY(testing::pixelVariance(testing::render(view, "next-token-first")) > 1);
        d.store.pinQuery(2);
        QVERIFY(testing::pixelVariance(testing::render(view, "next-token-prompt")) > 1);
        TraceStore empty;
        NextTokenView none(&empty);
        none.resize(600, 400);
        QCOMPARE(none.index(), -1);
        QVERIFY(none.bars().empty());
        QVERIFY(testing::pixelVariance(testing::render(none, "next-token-empty")) > 0);
    }

    // The bars' columns fit the canvas at any width a window gives it: at 1280 x 720 the canvas
    // is about 410-570 px wide, where "chosen · argmax" and even the "after" column ran off its
    // edge. Wide: every column at its natural width and the full tags; narrower: the tags
    // shorten, then go (the chosen row is outlined, rank #1 is the argmax), and only then the
    // token column narrows (at 1024 x 600 it had cut "␣and" to "␣a…" beside a "chosen" tag);
    // never past the right margin.
    void columnsFitTheCanvas() {
        const QFontMetrics label(currentTheme().labelFont), small(currentTheme().smallFont);
        const int wantLabel = label.horizontalAdvance(QStringLiteral("MMMMMMMM"));
        const auto wide = NextTokenView::columns(1200, label, small, wantLabel, "chosen");
        QVERIFY(!wide.shortTags);
        QCOMPARE(wide.labelW, wantLabel);
        QVERIFY(wide.tagW >= small.horizontalAdvance("chosen · argmax"));
        bool sawShort = false, sawNarrowLabel = false;
        for (int w = 410; w <= 1200; w += 2) {  // under ~405 px the numbers alone do not fit
            const auto c = NextTokenView::columns(w, label, small, wantLabel, "chosen");
            QVERIFY2(c.right() <= w - 16,  // kMargin
                     qPrintable(QString("width %1: columns end at %2").arg(w).arg(c.right())));
            QVERIFY(c.xRank < c.xLabel && c.xLabel < c.xLogit && c.xLogit < c.xBar &&
                    c.xBar < c.xP && c.xP < c.xAfter);
            QVERIFY(c.barW >= 40);
            if (c.tagW > 0)
                QVERIFY(c.tagW >=
                        small.horizontalAdvance(c.shortTags ? "chosen" : "chosen · argmax"));
            sawShort |= c.shortTags && c.labelW == wantLabel && c.tagW > 0;
            sawNarrowLabel |= c.labelW < wantLabel;
            if (c.labelW < wantLabel) QCOMPARE(c.tagW, 0);  // the tags went first
        }
        QVERIFY(sawShort && sawNarrowLabel);  // both fallbacks were reached
    }

    // The title names the chosen token whole at any width: in full where it fits ("how the
    // model picked “␣x”"), else the short form ("Token N: “␣x”"); at 1024 x 768 the full one
    // had run off the canvas mid-token. The subtitle wraps rather than being cut.
    void titleNamesTheTokenWhole() {
        Decode d(params(1.0, 0, 1, 0));
        NextTokenView view(&d.store);
        const StepTrace& t = d.store.trace(d.store.count() - 1);
        const QString token = "“" + tokenLabel(t.text) + "”";
        const QFontMetrics title(currentTheme().titleFont);
        for (const int w : {1400, 700, 560}) {
            view.resize(w, 620);
            testing::render(view, QString("next-token-%1").arg(w));
            const QString shown = view.paintedTitle();
            QVERIFY2(shown.contains(token) && !shown.contains(QChar(0x2026)), qPrintable(shown));
            QVERIFY2(title.horizontalAdvance(shown) <= view.paintedTitleRoom(),
                     qPrintable(QString("%1 px: %2").arg(w).arg(shown)));
            if (w == 1400) QVERIFY(shown.contains("how the model picked"));
            // 700: the bars' three fifths beside the lens (560: the lens hidden, the whole width)
            if (w == 700) QVERIFY(!shown.contains("how the model picked"));
        }
    }

    // A small figure (export --size 600x400): the view is the size asked for, the lens is left
    // out rather than cut at the right edge, and the summary under the bars ends inside the
    // canvas. With the lens (690 pixels: what a 1024-pixel window leaves the view), a low one
    // writes the summary in the small type rather than past the bottom.
    void smallFigureKeepsTheBarsAndTheSummaryWhole() {
        Decode d(params(1.0, 0, 1, 0));
        NextTokenView view(&d.store);
        view.resize(600, 400);
        testing::render(view, "next-token-600x400");
        QCOMPARE(view.width(), 600);  // the lens's minimum had made it 680, cut at 600
        QVERIFY(view.lensPanel()->isHidden());
        QVERIFY(view.shownRows() >= 1);
        QVERIFY(view.summaryWhole());
        for (const QSize size : {QSize(900, 620), QSize(690, 560), QSize(690, 400)}) {
            view.resize(size);
            testing::render(view, QString("next-token-%1").arg(size.width()));
            QVERIFY(!view.lensPanel()->isHidden());
            QVERIFY(view.summaryWhole());
            QVERIFY(view.lensPanel()->width() >= 240);
        }
    }

    // The lens panel asks for the inspected token's lens once, only while shown; the store
    // keeps a lens only while it matches the tokens (a stale one, after a step back and another
    // token, is refused); its last row is the distribution the token was drawn from.
    void lensPanelAsksOnceAndTheStoreKeepsOnlyMatchingLenses() {
        Decode d;
        LogitLensPanel panel(&d.store);
        int asked = -1, times = 0;
        connect(&panel, &LogitLensPanel::lensWanted, [&](int i) {
            asked = i;
            ++times;
        });
        d.store.pinQuery(-1);
        QCOMPARE(times, 0);  // not shown: nothing asked
        panel.resize(420, 360);
        panel.show();
        QVERIFY(QTest::qWaitForWindowExposed(&panel));
        const int i = d.store.count() - 1;
        QCOMPARE(asked, i);
        QCOMPARE(times, 1);
        QVERIFY(panel.message().startsWith("Computing"));
        d.store.pinQuery(-1);  // the same selection again: not asked twice
        QCOMPARE(times, 1);
        LogitLens lens = d.session.logitLens(d.store.trace(i - 1), d.store.trace(i).token, 5);
        LogitLens stale = lens;
        stale.target = (lens.target + 1) % d.model->config.nVocab;
        QVERIFY(!d.store.setLens(i, stale));  // another token followed: refused
        QVERIFY(d.store.lens(i) == nullptr);
        QVERIFY(d.store.setLens(i, lens));
        QVERIFY(panel.message().isEmpty());
        const StepTrace& t = d.store.trace(i);
        const LogitLensLayer& out = d.store.lens(i)->layers.back();
        QCOMPARE(out.top.front().first, t.top.front().first);
        QVERIFY(std::abs(out.targetProb - std::exp(t.chosenLogit - t.logZ)) < 1e-5);
        QCOMPARE(out.targetRank, t.chosenRank);
        QVERIFY(testing::pixelVariance(testing::render(panel, "logit-lens")) > 1);
        QVERIFY(panel.topShown() >= 2);
        QVERIFY(panel.barTextsFit());
        QVERIFY(panel.topTokensWhole());
        QVERIFY(!panel.briefLabels());  // room for "layer 3"
        // at its narrowest, "L3" and each row's top token whole (it had read "␣an…" at the
        // width a 1024-pixel window leaves it)
        panel.resize(panel.minimumSizeHint().width(), 360);
        testing::render(panel, "logit-lens-narrow");
        QVERIFY(panel.briefLabels());
        QVERIFY(panel.topTokensWhole());
        QVERIFY(panel.topShown() >= 1);
        // in the projector's larger type at the width a 1024-pixel screen leaves it, the bars
        // still hold "p #rank" (they had clipped the rank at a fixed fifth of the width)
        struct Restore {  // the theme back, also when a check below fails
            Theme before = ThemeSettings::instance().theme();
            ~Restore() { ThemeSettings::instance().setTheme(before); }
        } restore;
        ThemeSettings::instance().setTheme(Theme::projector());
        panel.resize(300, 360);
        testing::render(panel, "logit-lens-projector");
        QVERIFY(panel.barTextsFit());
        QVERIFY(panel.topTokensWhole());
        panel.resize(panel.minimumSizeHint().width(), 360);  // there, the tokens without their p
        testing::render(panel, "logit-lens-projector-narrow");
        QVERIFY(panel.topTokensWhole());
        d.store.pinQuery(0);
        QVERIFY(panel.message().contains("first token"));
        d.store.truncate(i, 0, 0);  // the lens of a token that is gone goes with it
        QVERIFY(d.store.lens(i) == nullptr);
    }
};

QTEST_MAIN(TstNextTokenView)
#include "tst_next_token_view.moc"
