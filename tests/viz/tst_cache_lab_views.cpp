// The cache lab in the views, on a real decode under an eviction policy: the store's evictions are
// the cache's own, also after a step back; the attention matrix stripes exactly the keys the policy
// had let go before each query (and those have no weight); the memory chart draws the policy's
// measured bytes against the full cache's, and its formula stops growing at the policy's budget.
#include <QLineSeries>
#include <QScatterSeries>
#include <QTest>
#include <QValueAxis>

#include "charts/drift_chart.h"
#include "charts/memory_chart.h"
#include "common/colormap.h"
#include "common/theme.h"
#include "decoded_store.h"
#include "model_fixtures.h"
#include "view_checks.h"
#include "views/attention_matrix_view.h"
#include "views/cache_view.h"
#include "views/next_token_view.h"

using namespace kvscope;
using namespace kvscope::viz;
using testing::DecodedStore;

namespace {
constexpr const char* kPrompt = "the cat sat on the mat";
const EvictionPolicy kPolicy{5, 1, 2};  // sinks 1 + heavy 2 + window 5: 7 rows between steps

std::unique_ptr<DecodedStore> decoded(int steps) {
    SessionOptions o;
    o.drift = true;
    auto d = std::make_unique<DecodedStore>(fixtures::makeModel(fixtures::llamaGqaSpec()),
                                            "fixture", o, KvCacheOptions(KvType::F32, 4, kPolicy));
    d->prefill(kPrompt);
    d->steps(steps);
    return d;
}
}  // namespace

class TstCacheLabViews : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase() { ThemeSettings::instance().setAnimationMs(0); }

    void theStoreKnowsWhatTheCacheLetGo() {
        auto d = decoded(10);
        const KvCache& cache = *d->backend().hostCache();
        QVERIFY(d->store.hasEvictions());
        const int n = d->store.count();
        auto same = [&] {
            for (int l = 0; l < cache.nLayer(); ++l)
                for (int p = 0; p < n; ++p)
                    if (d->store.evictedAt(l, p) != cache.evictedAt(l, p)) return false;
            return true;
        };
        QVERIFY(same());
        d->stepBack();  // runs the kept tokens again under the policy
        QCOMPARE(d->store.count(), n - 1);
        QVERIFY(same());
    }

    // Each cell of the shown head: a key let go before the query is striped (the grid's or the
    // panel's colour) and weighs 0 in the trace; every other cell left of the diagonal has its
    // weight's colour.
    void theMatrixStripesEvictedKeys() {
        auto d = decoded(10);
        AttentionMatrixView view(&d->store);
        view.resize(600, 600);
        const Theme& th = currentTheme();
        const ColorScale scale = ColorScale::weights();
        for (int layer = 0; layer < d->store.config().nLayer; ++layer) {
            d->store.setLayerHead(layer, 1);
            int striped = 0;
            for (int r = 0; r < d->store.count(); ++r) {
                const std::span<const float> row = d->store.attentionRow(r, layer, 1);
                for (int c = 0; c <= r; ++c) {
                    const QRgb got = view.cellColor(r, c);
                    if (d->store.evictedAt(layer, c) < r) {
                        ++striped;
                        QCOMPARE(row[static_cast<size_t>(c)], 0.0f);
                        QVERIFY(got == th.grid.rgb() || got == th.panel.rgb());
                    } else {
                        QCOMPARE(got, scale.rgb(row[static_cast<size_t>(c)]));
                    }
                }
            }
            QVERIFY(striped > 0);
        }
    }

    void theMemoryChartDrawsThePolicyAgainstTheFullCache() {
        auto d = decoded(10);
        MemoryChart chart(&d->store);
        const double unit = chart.unitBytes();
        const size_t perToken = d->store.model().kvBytesPerToken;
        const QList<QPointF> full = chart.fullSeries()->points();
        const QList<QPointF> used = chart.usedSeries()->points();
        QCOMPARE(full.size(), used.size());
        for (int i = 1; i < full.size(); ++i) {  // the full cache holds every token
            QCOMPARE(full[i].y() * unit, full[i].x() * static_cast<double>(perToken));
            QVERIFY(used[i].y() <= full[i].y());
        }
        // the policy holds sinks + heavy + window - 1 = 7 tokens' rows once past them
        QCOMPARE(used.last().y() * unit, 7.0 * static_cast<double>(perToken));
        QCOMPARE(chart.formulaSeries()->points().last().y() * unit,
                 7.0 * static_cast<double>(perToken));
        QCOMPARE(chart.projectionSeries()->points().last().y() * unit,
                 7.0 * static_cast<double>(perToken));
        QVERIFY2(chart.caption().contains("sinks 1 + heavy 2 + window 5"),
                 qPrintable(chart.caption()));
    }

    // The drift chart draws each token's measured drift: KL and the policy's probability of the
    // full cache's first token per position, a dot where the first tokens differ, and says how
    // many agreed; without a lossy policy it has nothing to draw.
    void theDriftChartDrawsEachTokensDrift() {
        auto d = decoded(10);
        DriftChart chart(&d->store);
        const QList<QPointF> kl = chart.klSeries()->points();
        const QList<QPointF> p = chart.fullChoiceSeries()->points();
        int k = 0, agreed = 0, disagreed = 0;
        for (const StepTrace& t : d->store.traces()) {
            if (!t.hasDrift()) continue;
            QCOMPARE(kl[k], QPointF(t.position, t.driftKl));
            QCOMPARE(p[k], QPointF(t.position, t.driftFullChoiceProb));
            agreed += t.driftTop1;
            disagreed += 1 - t.driftTop1;
            ++k;
        }
        QCOMPARE(k, d->store.count() - 1);  // every token but the first has a distribution
        QCOMPARE(chart.measured(), k);
        QCOMPARE(chart.agreed(), agreed);
        QCOMPARE(chart.disagreeSeries()->points().size(), disagreed);
        QVERIFY2(chart.caption().contains(QString("%1 of %2 tokens").arg(agreed).arg(k)),
                 qPrintable(chart.caption()));
        // every tick labelled with its own value (11 tokens had put "2" at 2.75, "0.3" at 0.25)
        const QString wrong = testing::misstatedTickIn(*chart.chart());
        QVERIFY2(wrong.isEmpty(), qPrintable(wrong));

        DecodedStore full(fixtures::makeModel(fixtures::llamaGqaSpec()));
        full.prefill(kPrompt);
        full.steps(3);
        DriftChart none(&full.store);
        QCOMPARE(none.measured(), 0);
        QVERIFY(none.klSeries()->points().isEmpty());
    }

    // A q4_0 cache's error map: each stripe pixel is the colour of (what the cache really stores,
    // read back from it) minus (the exact number in the trace), on the block's own symmetric
    // scale; an f32 cache has no error to show.
    void theCacheViewMapsTheStorageError() {
        RandomModelSpec spec = fixtures::llamaGqaSpec();
        spec.nEmbd = 64;
        spec.nHead = 2;
        spec.nHeadKv = 1;  // heads of 32 values: whole q4_0 blocks
        DecodedStore d(fixtures::makeModel(spec), "fixture", {}, KvCacheOptions(KvType::Q4_0));
        d.prefill(kPrompt);
        d.steps(3);
        CacheView view(&d.store);
        view.resize(900, 600);
        view.setShowError(true);
        QVERIFY(view.showsError());
        const KvCache& cache = *d.backend().hostCache();
        const int hd = d.store.config().headDim, n = d.store.count();
        const int rows = view.blockImage(0, false).height();
        for (int l = 0; l < d.store.config().nLayer; ++l) {
            std::vector<std::vector<float>> err(static_cast<size_t>(n));
            float limit = 0;
            for (int t = 0; t < n; ++t) {
                std::vector<float> stored(static_cast<size_t>(hd));
                cache.readKey(l, 0, t, stored.data());
                const float* exact = d.store.trace(t).key(l, 0);
                for (int k = 0; k < hd; ++k) {
                    err[t].push_back(stored[k] - exact[k]);
                    limit = std::max(limit, std::abs(err[t].back()));
                }
            }
            QVERIFY(limit > 0);
            const ColorScale scale = ColorScale::symmetric(limit);
            const QImage img = view.blockImage(l, false);
            for (int t = 0; t < n; ++t)
                for (int r = 0; r < rows; ++r)
                    QCOMPARE(img.pixel(t, r),
                             scale.rgb(err[t][static_cast<size_t>(r * hd / rows)]));
        }
        DecodedStore exact(fixtures::makeModel(spec));
        exact.prefill(kPrompt);
        CacheView plain(&exact.store);
        plain.setShowError(true);
        QVERIFY(!plain.showsError());
    }

    // The next-token view's lines under the bars give the inspected token's drift figures.
    void theNextTokenViewReadsOutTheDrift() {
        auto d = decoded(6);
        NextTokenView view(&d->store);
        const StepTrace& t = d->store.trace(d->store.count() - 1);
        QVERIFY(t.hasDrift());
        const QString s = view.summary();
        QVERIFY2(s.contains(QString("KL %1 nats").arg(QString::number(t.driftKl, 'g', 3))),
                 qPrintable(s));
        QVERIFY2(
            s.contains(t.driftTop1 == 1 ? "the same first choice" : "a different first choice"),
            qPrintable(s));
        QVERIFY(s.contains("sinks 1 + heavy 2 + window 5"));
    }
};

QTEST_MAIN(TstCacheLabViews)
#include "tst_cache_lab_views.moc"
