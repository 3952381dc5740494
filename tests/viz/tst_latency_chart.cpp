// LatencyChart on a real decode: the cached curve is the traces' hostMs, the prefill is one
// point apart (time to first token); a recompute replay of the same tokens is drawn beside it
// with the ratio at the last step, and one of other tokens is not.
#include <QChart>
#include <QFontMetrics>
#include <QLineSeries>
#include <QScatterSeries>
#include <QTest>
#include <QValueAxis>
#include <algorithm>
#include <vector>

#include "charts/latency_chart.h"
#include "common/theme.h"
#include "decoded_store.h"
#include "model_fixtures.h"
#include "view_checks.h"

using namespace kvscope;
using namespace kvscope::viz;
using testing::DecodedStore;

namespace {
QList<int> tokensOf(const TraceStore& s) {
    QList<int> ids;
    for (const StepTrace& t : s.traces()) ids << t.token;
    return ids;
}
}  // namespace

class TstLatencyChart : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase() { ThemeSettings::instance().setAnimationMs(0); }

    void cachedCurveIsTheTraceTimes() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        LatencyChart chart(&d.store);
        d.prefill("the cat sat");
        d.steps(6);
        const TraceStore& s = d.store;
        const int prompt = s.promptLength();
        const QList<QPointF> cached = chart.cachedSeries()->points();
        QCOMPARE(cached.size(), 6);
        for (int k = 0; k < 6; ++k)
            QCOMPARE(cached[k], QPointF(prompt + k, s.trace(prompt + k).hostMs));
        QCOMPARE(chart.prefillSeries()->count(), 1);
        QCOMPARE(chart.prefillSeries()->at(0), QPointF(prompt - 1, s.prefillMs()));
        QCOMPARE(chart.recomputeSeries()->count(), 0);
        QCOMPARE(chart.measuredRatio(), 0.0);
        // prefill vs decode: the prompt's pass shared by its tokens, across their positions
        const double perToken = s.prefillMs() / prompt;
        QCOMPARE(chart.prefillPerTokenSeries()->count(), 2);
        QCOMPARE(chart.prefillPerTokenSeries()->at(0), QPointF(0, perToken));
        QCOMPARE(chart.prefillPerTokenSeries()->at(1), QPointF(prompt - 1, perToken));
        std::vector<double> steps;
        for (int k = 0; k < 6; ++k) steps.push_back(s.trace(prompt + k).hostMs);
        std::sort(steps.begin(), steps.end());
        QCOMPARE(chart.medianStepMs(), steps[3]);
        QVERIFY2(chart.caption().contains(QString::number(perToken, 'f', 3) + " ms, against " +
                                          QString::number(steps[3], 'f', 3) + " ms"),
                 qPrintable(chart.caption()));
        // every tick labelled with its own value, as few or many tokens as there are
        for (const int more : {0, 17}) {
            d.steps(more);
            const QString wrong = testing::misstatedTickIn(*chart.chart());
            QVERIFY2(wrong.isEmpty(), qPrintable(wrong));
        }
        d.stepBack();
        QCOMPARE(chart.cachedSeries()->count(), 22);
    }

    // The y axis is titled "host time (ms)" where the plot is high enough to show it whole, else
    // "ms" (Qt Charts elided it to "host time (…" in presenter mode at 1024 x 768).
    void yTitleIsNeverCut() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        LatencyChart chart(&d.store);
        d.prefill("the cat sat");
        d.steps(2);
        chart.show();
        QVERIFY(QTest::qWaitForWindowExposed(&chart));
        auto* y = qobject_cast<QValueAxis*>(chart.chart()->axes(Qt::Vertical).first());
        const QFontMetrics fm(y->titleFont());
        chart.resize(600, 600);
        QTRY_COMPARE(y->titleText(), QString("host time (ms)"));
        chart.resize(600, 4 * fm.height() + 160);  // a plot lower than the long title
        QTRY_COMPARE(y->titleText(), QString("ms"));
        QVERIFY(chart.chart()->plotArea().height() <
                fm.horizontalAdvance("host time (ms)") + fm.height());
        chart.resize(600, 600);
        QTRY_COMPARE(y->titleText(), QString("host time (ms)"));
    }

    // The prefill-against-step sentence says "N× less" only where the prompt's tokens were
    // cheaper: with a prefill of 4 ms for 4 tokens and steps of 5 ms, "5.0× less"; with steps
    // of 1 ms (the same as a prompt token), not "1.0× less".
    void prefillGainIsOnlyClaimedWhereMeasured() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        d.prefill("the cat sat");
        d.steps(3);
        const int prompt = d.store.promptLength();
        for (double stepMs : {5.0 * 4.0 / prompt, 4.0 / prompt}) {
            TraceStore s;
            s.setModel(d.store.model());
            s.setPrompt(
                std::vector<StepTrace>(d.store.traces().begin(), d.store.traces().begin() + prompt),
                4.0);
            LatencyChart chart(&s);
            for (int i = prompt; i < d.store.count(); ++i) {
                StepTrace t = d.store.trace(i);
                t.hostMs = stepMs;
                s.append(t);
            }
            const QString c = chart.caption();
            if (stepMs > 4.0 / prompt)
                QVERIFY2(c.contains(": 5.0× less, because"), qPrintable(c));
            else
                QVERIFY2(!c.contains("× less") && c.contains("no less this time"), qPrintable(c));
        }
    }

    // Device time is drawn where the backend measured it (OpenCL), and only there.
    void deviceCurveIsTheTraceDeviceTimes() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        LatencyChart cpuChart(&d.store);
        d.prefill("the cat sat");
        d.steps(4);
        QVERIFY(d.store.prefillMs() > 0);
        QCOMPARE(cpuChart.deviceSeries()->count(), 0);  // the CPU backend has no device timer
        QVERIFY(!cpuChart.deviceSeries()->isVisible());

        TraceStore withDevice;  // the same run as a device would report it
        withDevice.setModel(d.store.model());
        std::vector<StepTrace> prompt(d.store.traces().begin(),
                                      d.store.traces().begin() + d.store.promptLength());
        withDevice.setPrompt(prompt, d.store.prefillMs());
        LatencyChart chart(&withDevice);
        for (int i = d.store.promptLength(); i < d.store.count(); ++i) {
            StepTrace t = d.store.trace(i);
            t.deviceMs = 0.25 * (i + 1);
            withDevice.append(t);
        }
        const QList<QPointF> device = chart.deviceSeries()->points();
        QCOMPARE(device.size(), 4);
        for (int k = 0; k < 4; ++k) {
            const int i = d.store.promptLength() + k;
            QCOMPARE(device[k], QPointF(i, 0.25 * (i + 1)));
        }
        QVERIFY(chart.deviceSeries()->isVisible());
    }

    void comparisonOfTheSameTokens() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        LatencyChart chart(&d.store);
        d.prefill("the cat sat");
        d.steps(4);
        const TraceStore& s = d.store;
        const int prompt = s.promptLength();
        const QList<double> stepMs{1.0, 2.0, 3.0, 4.0};
        chart.setComparison(tokensOf(s), prompt, 7.5, stepMs);
        QVERIFY(chart.hasComparison());
        const QList<QPointF> recompute = chart.recomputeSeries()->points();
        QCOMPARE(recompute.size(), 4);
        for (int k = 0; k < 4; ++k) QCOMPARE(recompute[k], QPointF(prompt + k, stepMs[k]));
        QCOMPARE(chart.recomputePrefillSeries()->at(0), QPointF(prompt - 1, 7.5));
        // ratio at the last step: recompute time ÷ the cached trace's time
        QCOMPARE(chart.ratioPosition(), prompt + 3);
        QCOMPARE(chart.measuredRatio(), 4.0 / s.trace(prompt + 3).hostMs);
        QVERIFY(chart.caption().contains("without the cache"));
        // a step back keeps the shared tokens
        d.stepBack();
        QCOMPARE(chart.recomputeSeries()->count(), 3);
        QCOMPARE(chart.ratioPosition(), prompt + 2);
        // a new prompt forgets the comparison
        d.prefill("the cat sat");
        QVERIFY(!chart.hasComparison());
        QCOMPARE(chart.recomputeSeries()->count(), 0);
    }

    // At 1280 x 720 the chart is about 425 px wide: the title keeps the ratio whole ("4.1× slower
    // without the cache") instead of QChart cutting "Time per token: 4.1× slower without the ca…";
    // wide, the long title.
    void titleFitsTheChart() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        LatencyChart chart(&d.store);
        d.prefill("the cat sat");
        d.steps(4);
        chart.setComparison(tokensOf(d.store), d.store.promptLength(), 7.5, {1.0, 2.0, 3.0, 4.0});
        const QFontMetrics fm(chart.chart()->titleFont());
        chart.resize(2000, 300);
        chart.show();  // resize events reach a shown widget
        QVERIFY(QTest::qWaitForWindowExposed(&chart));
        const QString wide = chart.chart()->title();
        QVERIFY2(wide.startsWith("Time per token: ") && wide.endsWith("slower without the cache"),
                 qPrintable(wide));
        chart.resize(fm.horizontalAdvance(wide), 300);  // the long title no longer fits
        const QString narrow = chart.chart()->title();
        QVERIFY2(!narrow.startsWith("Time per token") &&
                     narrow.endsWith("slower without the cache") && !narrow.contains(QChar(0x2026)),
                 qPrintable(narrow));
        QVERIFY(fm.horizontalAdvance(narrow) < chart.width() - 40);
        chart.resize(2000, 300);  // and back
        QCOMPARE(chart.chart()->title(), wide);
    }

    void comparisonOfOtherTokensIsNotDrawn() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        LatencyChart chart(&d.store);
        d.prefill("the cat sat");
        d.steps(2);
        QList<int> other = tokensOf(d.store);
        other.last() = other.last() + 1;
        chart.setComparison(other, d.store.promptLength(), 1.0, {1.0, 2.0});
        QCOMPARE(chart.recomputeSeries()->count(), 0);
        QCOMPARE(chart.measuredRatio(), 0.0);
    }
};

QTEST_MAIN(TstLatencyChart)
#include "tst_latency_chart.moc"
