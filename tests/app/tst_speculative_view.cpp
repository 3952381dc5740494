// Speculative decoding in the window: each press of Step shows one phase of a round (drafted,
// verified in one pass, resolved), and what the views show at each phase is checked against a
// plain greedy run of the same model, which is independent of the speculative code: an accepted
// draft is exactly the token plain decoding chose there, the first rejected one is not, the
// tokens kept are plain decoding's, and the rejected rows leave the store and the cache.
#include <QLabel>
#include <QLineSeries>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include "charts/latency_chart.h"
#include "gui/main_window.h"
#include "model_fixtures.h"
#include "views/token_strip.h"
#include "window_fixtures.h"

using namespace kvscope;
using app::MainWindow;
using Phase = viz::TraceStore::RoundPhase;

class TstSpeculativeView : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    QString gpt2_, llama_;
    const QString tiny_ = KVSCOPE_TINY_MODEL;  // the built-in model's file
    // Repeats itself, so that prompt lookup finds drafts; the built-in model continues it with
    // both accepted and rejected drafts.
    const QString prompt_ =
        "And God said, Let there be light: and there was light. And God saw the light, that it "
        "was good. And God said, Let there be";

    static std::unique_ptr<MainWindow> open(const QString& model) {
        return fixtures::openWindow(model);
    }
    static bool settle(MainWindow& w) { return fixtures::settle(w); }
    static std::vector<int32_t> tokens(const viz::TraceStore& s) {
        std::vector<int32_t> t;
        for (int i = 0; i < s.count(); ++i) t.push_back(s.trace(i).token);
        return t;
    }
    // Plain greedy decoding of `prompt` for n tokens in a window of its own: the reference.
    std::vector<int32_t> plainTokens(const QString& model, const QString& prompt, int n) {
        auto w = open(model);
        if (!w) return {};
        w->setPrompt(prompt);
        w->prefill();
        settle(*w);
        for (int k = 0; k < n; ++k) {
            w->step();
            settle(*w);
        }
        return tokens(*w->store());
    }

  private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY(dir_.isValid());
        gpt2_ = dir_.filePath("gpt2.gguf");
        llama_ = dir_.filePath("llama.gguf");
        fixtures::writeModel(fixtures::gpt2Spec(), gpt2_.toStdString());
        RandomModelSpec other = fixtures::llamaGqaSpec();
        other.nVocab += 40;  // another vocabulary
        fixtures::writeModel(other, llama_.toStdString());
    }

    void eachStepShowsOnePhaseOfARound() {
        const std::vector<int32_t> plain = plainTokens(tiny_, prompt_, 40);
        QVERIFY(plain.size() > 40);
        auto w = open(tiny_);
        QVERIFY(w);
        viz::TraceStore& s = *w->store();
        auto* strip = w->findChild<viz::TokenStrip*>("tokenStrip");
        QVERIFY(strip);
        w->setPrompt(prompt_);
        w->prefill();
        QVERIFY(settle(*w));
        const int prompt = s.count();
        // two plain steps first: the latency chart compares the rounds with them
        for (int k = 0; k < 2; ++k) {
            w->step();
            QVERIFY(settle(*w));
        }
        w->setSpeculative("lookup", 4);
        QVERIFY(settle(*w));
        QVERIFY(w->speculativeOn());
        int roundsSeen = 0, acceptedSeen = 0, rejectedSeen = 0;
        while (s.count() < prompt + 30) {
            const int first = s.count();
            // 1. drafted: nothing new in the store; the decided token and the drafts pending
            w->step();
            QVERIFY(settle(*w));
            QVERIFY2(w->errorText().isEmpty(), qPrintable(w->errorText()));
            QCOMPARE(s.roundPhase(), Phase::Drafted);
            QCOMPARE(s.count(), first);
            const viz::SpeculativeRound round = *s.round();
            QCOMPARE(round.first, first);
            QCOMPARE(round.verified.front().token, plain[static_cast<size_t>(first)]);
            const std::vector<viz::TokenStrip::Pending> drafted = strip->pendingChips();
            QCOMPARE(drafted.size(), round.verified.size());
            QVERIFY(!drafted[0].draft);
            for (size_t i = 1; i < drafted.size(); ++i) QVERIFY(drafted[i].draft);
            QVERIFY(w->speculativeNote()->text().contains("Drafted") ||
                    w->speculativeNote()->text().contains("No draft"));

            // 2. verified: every token of the pass at once, the drafts marked by the plain run
            w->step();
            QCOMPARE(s.roundPhase(), Phase::Verified);
            QCOMPARE(s.count(), first + static_cast<int>(round.verified.size()));
            QVERIFY(strip->pendingChips().empty());
            bool rejectedYet = false;
            for (int i = first + 1; i < s.count(); ++i) {
                const size_t d = static_cast<size_t>(i - first);
                const bool matches = !rejectedYet && round.verified[d].token == plain[size_t(i)];
                QCOMPARE(s.draftVerdict(i), matches ? 1 : -1);
                rejectedYet = rejectedYet || !matches;
                // its attention row is the pass's, there to see before the rollback
                const std::span<const float> row = s.attentionRow(i, 0, 0);
                QCOMPARE(static_cast<int>(row.size()), i + 1);
                QCOMPARE(row[0], round.verified[d].attn[0]);
            }
            QCOMPARE(s.draftVerdict(first), 0);  // the decided token is no draft

            // 3. resolved: the rejected drafts gone, the kept tokens plain decoding's
            w->step();
            QCOMPARE(s.roundPhase(), Phase::Resolved);
            QCOMPARE(s.count(), first + round.kept());
            const std::vector<int32_t> now = tokens(s);
            QVERIFY(std::equal(now.begin(), now.end(), plain.begin()));
            QCOMPARE(s.trace(s.count() - 1).kvBytes,
                     static_cast<size_t>(s.count()) * s.model().kvBytesPerToken);
            const std::vector<viz::TokenStrip::Pending> next = strip->pendingChips();
            QCOMPARE(next.size(), size_t{1});
            QCOMPARE(round.next, plain[static_cast<size_t>(s.count())]);
            ++roundsSeen;
            acceptedSeen += round.accepted;
            rejectedSeen += round.drafted() - round.accepted;
        }
        QVERIFY(acceptedSeen > 0);
        QVERIFY(rejectedSeen > 0);
        // the counter: the rounds' own totals
        QCOMPARE(static_cast<int>(s.rounds().size()), roundsSeen);
        QVERIFY2(
            w->speculativeNote()->text().contains(QString("Rounds %1 · drafted %2 · accepted %3")
                                                      .arg(roundsSeen)
                                                      .arg(acceptedSeen + rejectedSeen)
                                                      .arg(acceptedSeen)),
            qPrintable(w->speculativeNote()->text()));
        // the latency chart: one point per kept token at its round's time ÷ tokens kept, and
        // the plain steps apart
        const viz::LatencyChart* chart = w->latencyChart();
        QCOMPARE(chart->speculativeSeries()->count(), s.count() - prompt - 2);
        QCOMPARE(chart->cachedSeries()->count(), 2);
        for (const QPointF& p : chart->speculativeSeries()->points()) {
            const viz::TraceStore::RoundRecord* r = s.roundOf(static_cast<int>(p.x()));
            QVERIFY(r);
            QCOMPARE(p.y(), r->hostMs / r->kept());
        }
        QVERIFY(chart->plainStepMs() > 0);
        QVERIFY(chart->caption().contains("Plain steps in this run"));

        // a plain step after a round runs the decided token: plain decoding's next one
        w->setSpeculative(QString(), 4);
        const int before = s.count();
        w->step();
        QVERIFY(settle(*w));
        QCOMPARE(s.count(), before + 1);
        QCOMPARE(s.trace(before).token, plain[static_cast<size_t>(before)]);
        QCOMPARE(s.roundPhase(), Phase::None);
    }

    // Step back while a round is on show: the round ends as resolved, then one token goes, in
    // the store and in the session (the next step decodes plain decoding's token again).
    void stepBackDuringARoundDropsOneKeptToken() {
        const std::vector<int32_t> plain = plainTokens(tiny_, prompt_, 12);
        auto w = open(tiny_);
        QVERIFY(w);
        viz::TraceStore& s = *w->store();
        w->setPrompt(prompt_);
        w->setSpeculative("lookup", 3);
        // rounds until one keeps at least two tokens, left on show as drafted
        int first = 0, kept = 0;
        for (int round = 0; round < 8 && kept < 2; ++round) {
            s.finishRound();
            w->step();  // (the first one prefills first)
            QVERIFY(settle(*w));
            QCOMPARE(s.roundPhase(), Phase::Drafted);
            first = s.round()->first;
            kept = s.round()->kept();
        }
        QVERIFY(kept >= 2);
        const size_t roundsBefore = s.rounds().size();
        w->stepBack();
        QVERIFY(settle(*w));
        QCOMPARE(s.count(), first + kept - 1);
        QVERIFY(s.roundPhase() == Phase::None);
        // the cut round's record keeps only its tokens still there
        QCOMPARE(s.rounds().size(), roundsBefore + 1);
        QCOMPARE(s.rounds().back().inStore, kept - 1);
        w->setSpeculative(QString(), 3);
        w->step();
        QVERIFY(settle(*w));
        QVERIFY(!s.roundOf(first + kept - 1));  // a plain step's token, not the round's
        const std::vector<int32_t> now = tokens(s);
        QVERIFY(std::equal(now.begin(), now.end(), plain.begin()));
    }

    // The model as its own draft model: under greedy decoding every draft is the target's own
    // choice, so every one is accepted. A draft model of another vocabulary is refused with the
    // reason, and the drafter in use stays.
    void aDraftModelOfTheSameVocabulary() {
        const std::vector<int32_t> plain = plainTokens(gpt2_, "the cat sat", 12);
        auto w = open(gpt2_);
        QVERIFY(w);
        viz::TraceStore& s = *w->store();
        w->setPrompt("the cat sat");
        w->setSpeculative("model:" + gpt2_, 4);
        QVERIFY(settle(*w));
        QVERIFY2(w->errorText().isEmpty(), qPrintable(w->errorText()));
        for (int k = 0; k < 6; ++k) {
            w->step();
            QVERIFY(settle(*w));
        }
        QCOMPARE(s.rounds().size(), size_t{2});
        for (const viz::TraceStore::RoundRecord& r : s.rounds()) {
            QCOMPARE(r.drafted, 4);
            QCOMPARE(r.accepted, 4);
        }
        const std::vector<int32_t> now = tokens(s);
        QVERIFY(std::equal(now.begin(), now.end(), plain.begin()));

        w->setSpeculative("model:" + llama_, 4);
        QVERIFY(settle(*w));
        QVERIFY2(w->errorText().contains("vocabular"), qPrintable(w->errorText()));
        QVERIFY(w->errorText().contains(llama_));
        w->step();
        QVERIFY(settle(*w));
        QVERIFY(w->errorText().isEmpty());
        QCOMPARE(s.round()->drafter, "model:" + gpt2_);
    }
};

QTEST_MAIN(TstSpeculativeView)
#include "tst_speculative_view.moc"
