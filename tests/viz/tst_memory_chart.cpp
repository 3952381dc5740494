// MemoryChart on a real decode: the measured series are the trace's bytes (StepTrace::kvBytes)
// and the backend's allocation; the formula's line has the engine's bytes per token; a step
// back removes the last point.
#include <QChart>
#include <QFontMetrics>
#include <QLegend>
#include <QLegendMarker>
#include <QLineSeries>
#include <QTest>
#include <QValueAxis>

#include <cmath>

#include "charts/memory_chart.h"
#include "common/theme.h"
#include "decoded_store.h"
#include "model_fixtures.h"
#include "view_checks.h"

using namespace kvscope;
using namespace kvscope::viz;
using testing::DecodedStore;

class TstMemoryChart : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase() { ThemeSettings::instance().setAnimationMs(0); }

    void models_data() { fixtures::addModelRows(); }

    // With blocks of 4 tokens the allocated line is a staircase: after x tokens it stands at
    // ceil(x / 4) × 4 tokens' bytes, each step where the block's first token enters.
    void allocatedGrowsInBlocks() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()), "fixture", {}, {KvType::F32, 4});
        MemoryChart chart(&d.store);
        d.prefill("the cat sat");
        d.steps(9);
        const double unit = chart.unitBytes(), perToken = double(d.store.model().kvBytesPerToken);
        const QList<QPointF> alloc = chart.allocatedSeries()->points();
        const auto expected = [&](double x) { return std::ceil(x / 4) * 4 * perToken; };
        const int prompt = d.store.promptLength(), count = d.store.count();
        int steps = 0;
        for (qsizetype i = 1; i < alloc.size(); ++i) {
            if (alloc[i].x() != alloc[i - 1].x()) continue;
            ++steps;  // a vertical step: the prompt's blocks at 0, then one block at a time
            if (alloc[i].x() == 0) {
                QCOMPARE(alloc[i].y() * unit, expected(prompt));
            } else {
                QCOMPARE(std::fmod(alloc[i].x(), 4.0), 0.0);
                QCOMPARE(alloc[i].y() * unit, expected(alloc[i].x() + 1));
            }
        }
        int boundaries = 0;  // decoded tokens that begin a block
        for (int x = prompt; x < count; ++x) boundaries += x % 4 == 0 ? 1 : 0;
        QVERIFY(boundaries >= 2);
        QCOMPARE(steps, 1 + boundaries);
        QCOMPARE(alloc.last().x(), double(d.store.count()));
        QCOMPARE(alloc.last().y() * unit, expected(d.store.count()));
        QCOMPARE(double(d.store.kvAllocatedBytes()), expected(d.store.count()));
        QVERIFY(chart.caption().contains("in blocks of 4 tokens"));
    }

    // An f16 cache: the formula's element is 2 bytes, its line runs through the measured bytes.
    void theFormulaFollowsTheCachesElementType() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()), "fixture", {},
                       {KvType::F16, 256});
        MemoryChart chart(&d.store);
        d.prefill("the cat sat");
        d.steps(3);
        const ModelConfig& c = d.store.config();
        const double perToken = 2.0 * c.nLayer * c.nHeadKv * c.headDim * 2;
        const QList<QPointF> formula = chart.formulaSeries()->points();
        QCOMPARE(formula.last().y() * chart.unitBytes(), perToken * d.store.count());
        QCOMPARE(double(d.store.kvBytes()), perToken * d.store.count());
        QVERIFY2(chart.caption().contains("× 2 B (f16)"), qPrintable(chart.caption()));
    }

    // A GQA model (4 query heads over 2 K/V heads): the "as if plain MHA" line is the formula
    // with every query head's own K and V, 2 × layers × 4 heads × head dim × 4 B per token, twice
    // the measured bytes, to the full context; an MHA model has no such line.
    void gqaShowsWhatPlainMhaWouldTake() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        MemoryChart chart(&d.store);
        d.prefill("the cat sat");
        d.steps(3);
        const ModelConfig& c = d.store.config();
        QCOMPARE(c.nHead, 4);
        QCOMPARE(c.nHeadKv, 2);
        const double mhaPerToken = 2.0 * c.nLayer * 4 * c.headDim * 4;
        const QList<QPointF> mha = chart.mhaSeries()->points();
        QVERIFY(!mha.isEmpty());
        QCOMPARE(mha.last().x(), double(c.nCtx));
        QCOMPARE(mha.last().y() * chart.unitBytes(), mhaPerToken * c.nCtx);
        QCOMPARE(mhaPerToken * d.store.count(), 2.0 * double(d.store.kvBytes()));
        QVERIFY2(chart.caption().contains("2× as much"), qPrintable(chart.caption()));

        QVERIFY(chart.chart()
                    ->legend()
                    ->markers(const_cast<QLineSeries*>(chart.mhaSeries()))
                    .first()
                    ->isVisible());

        DecodedStore plain(fixtures::makeModel(fixtures::gpt2Spec()));
        MemoryChart mhaChart(&plain.store);
        plain.prefill("the cat sat");
        QVERIFY(mhaChart.mhaSeries()->points().isEmpty());
        QVERIFY(!mhaChart.caption().contains("multi-head"));
        QVERIFY(!mhaChart.chart()
                     ->legend()
                     ->markers(const_cast<QLineSeries*>(mhaChart.mhaSeries()))
                     .first()
                     ->isVisible());

        // under a cache policy the chart compares with the full cache instead: no MHA line
        DecodedStore windowed(fixtures::makeModel(fixtures::llamaGqaSpec()), "fixture", {},
                              {KvType::F32, 256, EvictionPolicy{4, 0, 0}});
        MemoryChart policyChart(&windowed.store);
        windowed.prefill("the cat sat on the mat");
        QVERIFY(policyChart.mhaSeries()->points().isEmpty());
        QVERIFY(!policyChart.caption().contains("multi-head"));

        // MQA (8 query heads, one K/V head: 8×): the line runs off the top, the scale stays at 4
        // times the cache's, and the caption gives the figure
        RandomModelSpec mqa = fixtures::llamaGqaSpec();
        mqa.nHead = 8;
        mqa.nHeadKv = 1;
        DecodedStore one(fixtures::makeModel(mqa));
        MemoryChart mqaChart(&one.store);
        one.prefill("the cat sat");
        const ModelConfig& m = one.store.config();
        const double cachePerToken = 2.0 * m.nLayer * 1 * m.headDim * 4;
        auto* y = qobject_cast<QValueAxis*>(mqaChart.chart()->axes(Qt::Vertical).first());
        QVERIFY(y->max() * mqaChart.unitBytes() < 8 * cachePerToken * m.nCtx);
        QVERIFY(y->max() * mqaChart.unitBytes() >= 4 * cachePerToken * m.nCtx);
        QVERIFY2(mqaChart.caption().contains("8× as much"), qPrintable(mqaChart.caption()));
    }

    // Each line of the legend has a colour of its own in every theme: its marker is a square of
    // the line's colour, so two lines of one colour cannot be told apart there (allocated and
    // plain MHA had both been the muted grey).
    void everyLegendEntryHasItsOwnColour() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        MemoryChart chart(&d.store);
        chart.resize(1000, 500);  // room for every entry in the projector's type
        chart.show();
        QVERIFY(QTest::qWaitForWindowExposed(&chart));
        d.prefill("the cat sat");
        struct Restore {  // the theme back, also when a check below fails
            Theme before = ThemeSettings::instance().theme();
            ~Restore() { ThemeSettings::instance().setTheme(before); }
        } restore;
        const auto shown = [&chart] {
            QList<QLegendMarker*> markers;
            for (QLegendMarker* marker : chart.chart()->legend()->markers())
                if (marker->isVisible()) markers << marker;
            return markers;
        };
        const auto named = [&shown](const QString& name) {
            for (QLegendMarker* marker : shown())
                if (marker->label() == name) return true;
            return false;
        };
        for (const Theme& theme : {Theme::dark(), Theme::print(), Theme::projector()}) {
            ThemeSettings::instance().setTheme(theme);
            // the legend laid out again in this theme's type
            QTRY_VERIFY(named("allocated") && named("plain MHA"));
            std::vector<QColor> seen;
            for (QLegendMarker* marker : shown()) {
                const QColor c = static_cast<QLineSeries*>(marker->series())->pen().color();
                for (const QColor& other : seen) QVERIFY2(c != other, qPrintable(marker->label()));
                seen.push_back(c);
            }
        }
    }

    // Every tick of the token axis is a whole token, whatever the context (a context of 10 had
    // ticks at 2.5 labelled "2"), and every label says its own tick's value.
    void everyTickIsAWholeToken() {
        for (const int context : {10, 64, 77, 256}) {
            RandomModelSpec spec = fixtures::llamaGqaSpec();
            spec.nCtx = context;
            DecodedStore d(fixtures::makeModel(spec));
            MemoryChart chart(&d.store);
            d.prefill("the cat");
            const QString wrong = testing::misstatedTickIn(*chart.chart());
            QVERIFY2(wrong.isEmpty(),
                     qPrintable(QString("context %1, %2").arg(context).arg(wrong)));
            auto* x = qobject_cast<QValueAxis*>(chart.chart()->axes(Qt::Horizontal).first());
            QCOMPARE(x->max(), double(context));
            QVERIFY(x->tickCount() >= 3);  // more than the two ends, for each of these
        }
    }

    // The legend names every shown line whole (Qt Charts elides the names of a legend too narrow
    // for them: "plain M…" at 1024 px): under the plot where the five entries of a GQA model
    // (allocated, used, formula, projected, plain MHA) fit on one line, else beside it, an entry
    // a line, as wide as the longest name, the x axis then titled "tokens".
    void legendNamesEveryLineWhole() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        MemoryChart chart(&d.store);
        d.prefill("the cat sat");
        chart.show();
        QVERIFY(QTest::qWaitForWindowExposed(&chart));
        auto* x = qobject_cast<QValueAxis*>(chart.chart()->axes(Qt::Horizontal).first());
        QLegend* legend = chart.chart()->legend();
        chart.resize(1400, 500);
        QCOMPARE(legend->alignment(), Qt::AlignBottom);
        QCOMPARE(x->titleText(), QString("tokens in the cache"));
        chart.resize(360, 400);
        QCOMPARE(legend->alignment(), Qt::AlignRight);
        QCOMPARE(x->titleText(), QString("tokens"));
        QTRY_VERIFY(legend->geometry().width() >=
                    QFontMetrics(legend->font()).horizontalAdvance("plain MHA"));
        chart.resize(1400, 500);
        QCOMPARE(legend->alignment(), Qt::AlignBottom);
    }

    void usedEqualsTheTraceBytes_data() { models_data(); }
    void usedEqualsTheTraceBytes() {
        QFETCH(QString, model);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        MemoryChart chart(&d.store);
        d.prefill("the cat sat");
        d.steps(5);
        const TraceStore& s = d.store;
        const int prompt = s.promptLength();
        const double unit = chart.unitBytes();
        // (0, 0), then the prompt's tokens together, then one point per generated token
        const QList<QPointF> used = chart.usedSeries()->points();
        QCOMPARE(used.size(), 1 + 1 + 5);
        QCOMPARE(used[0], QPointF(0, 0));
        QCOMPARE(used[1].x(), double(prompt));
        QCOMPARE(used[1].y() * unit, double(s.trace(prompt - 1).kvBytes));
        for (int k = 0; k < 5; ++k) {
            QCOMPARE(used[2 + k].x(), double(prompt + k + 1));
            QCOMPARE(used[2 + k].y() * unit, double(s.trace(prompt + k).kvBytes));
        }
        QCOMPARE(used.last().y() * unit, double(s.kvBytes()));
        // allocated: the fixture's context (64) is one block, taken when the prompt arrives
        const QList<QPointF> alloc = chart.allocatedSeries()->points();
        QCOMPARE(alloc.size(), 3);
        QCOMPARE(alloc[0], QPointF(0, 0));
        QCOMPARE(alloc[1].x(), 0.0);
        QCOMPARE(alloc[1].y() * unit, double(s.model().kvBytesPerToken) * s.config().nCtx);
        QCOMPARE(alloc[2].x(), double(s.count()));
        // the formula's slope is the engine's bytes per token: 2 × layers × kv heads × hd × 4
        const ModelConfig& c = s.config();
        const double perToken = 2.0 * c.nLayer * c.nHeadKv * c.headDim * 4;
        QCOMPARE(perToken, double(s.model().kvBytesPerToken));
        const QList<QPointF> formula = chart.formulaSeries()->points();
        QCOMPARE(formula.last().x(), double(s.count()));
        QCOMPARE(formula.last().y() * unit, perToken * s.count());
        // the projection starts where the measurement ends and ends with the context, as the
        // x axis does
        const QList<QPointF> projection = chart.projectionSeries()->points();
        QCOMPARE(projection.first(), formula.last());
        QCOMPARE(projection.last().x(), double(c.nCtx));
        QCOMPARE(projection.last().y() * unit, perToken * projection.last().x());
        auto* x = qobject_cast<QValueAxis*>(chart.chart()->axes(Qt::Horizontal).first());
        auto* y = qobject_cast<QValueAxis*>(chart.chart()->axes(Qt::Vertical).first());
        QCOMPARE(x->max(), double(c.nCtx));
        // The scale is the cache's: its largest figure (for GQA and MQA, what plain MHA would
        // take, up to 4 times the cache) fills most of the height, and the weights (here larger
        // than the cache) are not drawn until asked for.
        const double cacheTop = std::max(perToken * c.nCtx * std::min(4, c.nHead / c.nHeadKv),
                                         double(s.model().cacheAllocatedBytes));
        QVERIFY(double(s.model().weightBytes) > 1.5 * cacheTop);
        QVERIFY(!chart.weightsSeries()->isVisible());
        QVERIFY(y->max() * unit >= cacheTop);
        QVERIFY(y->max() * unit <= 1.5 * cacheTop);
        chart.setShowWeights(true);
        QVERIFY(chart.weightsSeries()->isVisible());
        QCOMPARE(chart.weightsSeries()->points().first().y() * chart.unitBytes(),
                 double(s.model().weightBytes));
        QVERIFY(y->max() * chart.unitBytes() >= double(s.model().weightBytes));
        QVERIFY(chart.caption().contains(QString::number(c.nLayer) + " layers"));
    }

    // The device's memory, when the backend knows it, is stated with the share the model takes.
    void deviceMemoryIsStatedWhenKnown() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        MemoryChart chart(&d.store);
        QVERIFY(!chart.caption().contains("device has"));
        ModelSummary s = d.store.model();
        s.deviceMemoryBytes = uint64_t{8} << 30;
        d.store.setModel(s);
        QVERIFY2(chart.caption().contains("The device has 8"), qPrintable(chart.caption()));
    }

    void stepBackAndResetFollowTheStore() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        MemoryChart chart(&d.store);
        d.prefill("the cat sat");
        d.steps(3);
        QCOMPARE(chart.usedSeries()->count(), 1 + 1 + 3);
        d.stepBack();
        QCOMPARE(chart.usedSeries()->count(), 1 + 1 + 2);
        QCOMPARE(chart.usedSeries()->points().last().y() * chart.unitBytes(),
                 double(d.store.kvBytes()));
        d.store.clear();
        QCOMPARE(chart.usedSeries()->count(), 1);
    }
};

QTEST_MAIN(TstMemoryChart)
#include "tst_memory_chart.moc"
