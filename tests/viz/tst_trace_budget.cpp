// TraceStore's attention budget on a real decode: past the budget the oldest traces lose their
// attention rows; the per-head thumbnails stay the max-pool of every row (computed here from
// copies of the rows), one head's rows rebuilt by the backend from the stored queries equal the
// traced ones, and that head keeps them as more rows are let go; the attention matrix and the
// all-heads views draw through it.
#include <QSignalSpy>
#include <QTest>
#include <algorithm>
#include <cmath>

#include "common/labels.h"
#include "common/theme.h"
#include "common/trace_store.h"
#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "model_fixtures.h"
#include "runtime/decode_session.h"
#include "views/all_heads_view.h"
#include "views/attention_matrix_view.h"

using namespace kvscope;
using namespace kvscope::viz;

namespace {

// A decode into a store, keeping a copy of every trace's attention rows.
struct Run {
    explicit Run(size_t budget) : Run(fixtures::llamaGqaSpec(), budget) {}
    Run(const RandomModelSpec& spec, size_t budget, KvCacheOptions cache = {})
        : model(fixtures::makeModel(spec)),
          backend(std::make_shared<CpuBackend>(model, ThreadPool::shared(), cache)),
          session(backend, model->tokenizer) {
        ModelSummary s;
        s.config = model->config;
        store.setModel(s);
        store.setAttentionBudget(budget);
    }
    void prefill(const char* prompt) {
        std::vector<StepTrace> t = session.prefill(prompt);
        for (const StepTrace& x : t) rows.push_back(x.attn);
        store.setPrompt(std::move(t), session.prefillMs());
    }
    void steps(int n) {
        for (int k = 0; k < n; ++k) {
            StepTrace t = session.step();
            rows.push_back(t.attn);
            store.append(std::move(t));
        }
    }
    // The traced row of token i for (l, h), from the copies.
    std::vector<float> row(int i, int l, int h) const {
        const ModelConfig& c = model->config;
        const auto n = static_cast<size_t>(i) + 1;
        const float* p =
            rows[static_cast<size_t>(i)].data() + (static_cast<size_t>(l) * c.nHead + h) * n;
        return {p, p + n};
    }
    // Rebuilds (l, h) as the window's worker does: queries against the cache.
    bool rebuild(int l, int h) {
        const int t = store.count(), hd = model->config.headDim;
        std::vector<float> q(static_cast<size_t>(t) * hd), full;
        for (int i = 0; i < t; ++i)
            std::copy_n(store.trace(i).query(l, h), hd, q.begin() + static_cast<ptrdiff_t>(i) * hd);
        session.attentionMatrix(l, h, q, full);
        return store.setHeadMatrix(l, h, t, full);
    }
    size_t rowBytes(int i) const { return rows[static_cast<size_t>(i)].size() * sizeof(float); }

    std::shared_ptr<const Model> model;
    std::shared_ptr<CpuBackend> backend;
    DecodeSession session;
    TraceStore store;
    std::vector<std::vector<float>> rows;
};

double maxDiff(std::span<const float> a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - b[i]));
    return m;
}

const char* kPrompt = "the cat sat on the mat";

}  // namespace

class TstTraceBudget : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase() { ThemeSettings::instance().setAnimationMs(0); }

    // Within the default budget nothing is let go.
    void aSmallRunKeepsEveryRow() {
        Run r(TraceStore::kDefaultAttentionBudget);
        r.prefill(kPrompt);
        r.steps(10);
        QCOMPARE(r.store.firstStoredRow(), 0);
        size_t bytes = 0;
        for (int i = 0; i < r.store.count(); ++i) bytes += r.rowBytes(i);
        QCOMPARE(r.store.attentionBytes(), bytes);
        QVERIFY(r.store.hasAllRows(1, 3));
    }

    void theOldestRowsGoAndOneHeadIsRebuiltExactly() {
        Run probe(TraceStore::kDefaultAttentionBudget);
        probe.prefill(kPrompt);
        const size_t budget =
            probe.store.attentionBytes() + 6 * probe.rowBytes(probe.store.count() - 1);
        Run r(budget);
        r.prefill(kPrompt);
        r.steps(25);
        const int n = r.store.count();
        QVERIFY(r.store.attentionBytes() <= budget);
        QVERIFY(r.store.firstStoredRow() > 0);
        // the traces that still hold rows are the newest, and they are whole
        for (int i = 0; i < n; ++i) {
            const bool kept = i >= r.store.firstStoredRow();
            QCOMPARE(!r.store.trace(i).attn.empty(), kept);
            QVERIFY(r.store.trace(i).hasTensors());  // q, k and v stay
        }
        size_t held = 0;
        for (int i = r.store.firstStoredRow(); i < n; ++i) held += r.rowBytes(i);
        QCOMPARE(r.store.attentionBytes(), held);
        QVERIFY(held + r.rowBytes(r.store.firstStoredRow() - 1) > budget);  // the fewest dropped

        // a dropped row is not readable until its head is rebuilt, asked for once
        const int L = 1, H = 3;
        QVERIFY(r.store.attentionRow(0, L, H).empty());
        QVERIFY(!r.store.hasAllRows(L, H));
        QSignalSpy wanted(&r.store, &TraceStore::headMatrixWanted);
        r.store.requestHeadMatrix(L, H);
        r.store.requestHeadMatrix(L, H);
        QCOMPARE(wanted.count(), 1);
        QVERIFY(r.rebuild(L, H));
        QVERIFY(r.store.hasAllRows(L, H));
        QVERIFY(!r.store.hasAllRows(L, 2));
        for (int i = 0; i < n; ++i)
            QVERIFY2(maxDiff(r.store.attentionRow(i, L, H), r.row(i, L, H)) < 1e-5,
                     qPrintable(QString("row %1").arg(i)));
        // more steps: the rebuilt head keeps each row the traces let go, as traced
        r.steps(15);
        QVERIFY(r.store.firstStoredRow() > n - 1);
        QVERIFY(r.store.hasAllRows(L, H));
        for (int i = 0; i < r.store.count(); ++i)
            QVERIFY(maxDiff(r.store.attentionRow(i, L, H), r.row(i, L, H)) < 1e-5);
        // a matrix that misses dropped rows is refused
        QVERIFY(!r.store.setHeadMatrix(0, 0, 2, std::vector<float>(4, 0.5f)));
        // stepping back keeps what remains readable
        r.store.truncate(r.store.count() - 5, 0, 0);
        for (int i = 0; i < r.store.count(); ++i)
            QVERIFY(maxDiff(r.store.attentionRow(i, L, H), r.row(i, L, H)) < 1e-5);
    }

    // Every head's thumbnail is the max-pool of all its rows, dropped ones included, also after
    // its cells were merged as the tokens grew past 128 and 256 (pool 4).
    void thumbnailsPoolEveryRow() {
        RandomModelSpec spec = fixtures::llamaGqaSpec();
        spec.nCtx = 320;
        Run r(spec, 200'000);
        r.prefill(kPrompt);
        r.steps(300 - r.store.count());
        QCOMPARE(r.store.thumbnailPool(), 4);
        QVERIFY(r.store.firstStoredRow() > 10);
        const ModelConfig& c = r.model->config;
        const int pool = r.store.thumbnailPool(), side = r.store.thumbnailSide();
        int expectPool = 1;  // the smallest power of two with count <= 128 × pool
        while (r.store.count() > TraceStore::kThumbnailCells * expectPool) expectPool *= 2;
        QCOMPARE(pool, expectPool);
        for (int l = 0; l < c.nLayer; ++l)
            for (int h = 0; h < c.nHead; ++h) {
                std::vector<float> want(static_cast<size_t>(side) * side, -1.0f);
                for (int i = 0; i < r.store.count(); ++i) {
                    const std::vector<float> row = r.row(i, l, h);
                    for (int k = 0; k <= i; ++k) {
                        float& cell = want[static_cast<size_t>(i / pool) * side + k / pool];
                        cell = std::max(cell, row[static_cast<size_t>(k)]);
                    }
                }
                const std::span<const float> got = r.store.headThumbnail(l, h);
                QVERIFY(std::equal(got.begin(), got.end(), want.begin(), want.end()));
            }
        // The session pooled each trace's rows on its own thread; the store merged them and let
        // them go. The same traces without them (pooled from the rows, on this thread) give the
        // same thumbnails.
        for (int i = 0; i < r.store.count(); ++i) QVERIFY(r.store.trace(i).attnPooled.empty());
        TraceStore plain;
        ModelSummary summary;
        summary.config = c;
        plain.setModel(summary);
        std::vector<StepTrace> prompt;
        for (int i = 0; i < r.store.count(); ++i) {
            StepTrace t = StepTrace::sized(0, i, c.nLayer, c.nHead, c.nHeadKv, c.headDim);
            t.attn = r.rows[static_cast<size_t>(i)];
            QVERIFY(t.attnPooled.empty());
            if (i < 5) {
                prompt.push_back(std::move(t));
                if (i == 4) plain.setPrompt(std::move(prompt), 1.0);
            } else {
                plain.append(std::move(t));
            }
        }
        QCOMPARE(plain.thumbnailPool(), pool);
        for (int l = 0; l < c.nLayer; ++l)
            for (int h = 0; h < c.nHead; ++h) {
                const std::span<const float> a = plain.headThumbnail(l, h),
                                             b = r.store.headThumbnail(l, h);
                QVERIFY(std::equal(a.begin(), a.end(), b.begin(), b.end()));
            }
    }

    // Under a cache policy that has let keys go, dropped rows cannot be rebuilt from the cache:
    // nothing is asked of the backend (which would refuse, and the window would stop playing
    // with an error), and the views say which rows went and why.
    void rowsLetGoUnderAnEvictingPolicyAreNotAskedFor() {
        Run probe(TraceStore::kDefaultAttentionBudget);
        probe.prefill(kPrompt);
        Run r(fixtures::llamaGqaSpec(), probe.store.attentionBytes() / 2,
              KvCacheOptions(KvType::F32, 4, EvictionPolicy{6, 1, 0}));
        r.prefill(kPrompt);
        r.steps(20);
        QVERIFY(r.store.firstStoredRow() > 0);
        QVERIFY(r.store.hasEvictions());
        QVERIFY(!r.store.canRebuildRows());
        r.store.setLayerHead(1, 2);
        QSignalSpy wanted(&r.store, &TraceStore::headMatrixWanted);
        AttentionMatrixView matrix(&r.store);
        matrix.resize(700, 700);
        r.store.requestHeadMatrix(1, 2);
        QCOMPARE(wanted.count(), 0);
        QCOMPARE(matrix.rows(), 0);
        const QString first = QString::number(r.store.firstStoredRow());
        QVERIFY2(matrix.emptyMessage().contains("tokens 0–" +
                                                QString::number(r.store.firstStoredRow() - 1)) &&
                     matrix.emptyMessage().contains("cannot be rebuilt") &&
                     matrix.emptyMessage().contains("tokens " + first + " on") &&
                     matrix.emptyMessage().contains(
                         "within " + formatBytes(probe.store.attentionBytes() / 2) + ","),
                 qPrintable(matrix.emptyMessage()));
        // the backend would indeed refuse
        QVERIFY_THROWS_EXCEPTION(Error, r.rebuild(1, 2));
    }

    // The views draw through the budget: the attention matrix asks for its head and then shows
    // the traced values; the all-heads grid pools the store's thumbnails.
    void viewsDrawThroughTheBudget() {
        Run probe(TraceStore::kDefaultAttentionBudget);
        probe.prefill(kPrompt);
        Run r(probe.store.attentionBytes() / 2);
        r.prefill(kPrompt);
        r.steps(20);
        QVERIFY(r.store.firstStoredRow() > 0);
        r.store.setLayerHead(1, 2);
        QSignalSpy wanted(&r.store, &TraceStore::headMatrixWanted);
        AttentionMatrixView matrix(&r.store);
        matrix.resize(700, 700);
        QCOMPARE(matrix.rows(), 0);  // waiting for the rows
        QVERIFY(wanted.count() >= 1);
        QCOMPARE(wanted.first().at(0).toInt(), 1);
        QCOMPARE(wanted.first().at(1).toInt(), 2);
        QVERIFY(r.rebuild(1, 2));
        QCOMPARE(matrix.rows(), r.store.count());
        for (int i = 0; i < matrix.rows(); ++i)
            for (int k = 0; k <= i; ++k)
                QVERIFY(std::abs(matrix.cellValue(i, k) - r.row(i, 1, 2)[size_t(k)]) < 1e-5);

        AllHeadsView all(&r.store);
        all.resize(900, 700);
        QCOMPARE(all.rows(), r.store.count());
        QCOMPARE(all.poolBlock() % r.store.thumbnailPool(), 0);
        QVERIFY(!all.thumbnail(0, 0).isNull());
    }
};

QTEST_MAIN(TstTraceBudget)
#include "tst_trace_budget.moc"
