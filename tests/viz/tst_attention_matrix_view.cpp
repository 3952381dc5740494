// AttentionMatrixView on a real decode: one row per token equal to the trace's attention rows,
// the future masked, a step adds exactly one row and a step back removes it, a layer or head
// switch redraws that head's matrix, hovering names the pair and the weight, a click on a row
// inspects that query, and the new row is revealed only when animations are on.
#include <QTest>
#include <cmath>

#include "common/colormap.h"
#include "common/labels.h"
#include "common/theme.h"
#include "decoded_store.h"
#include "model_fixtures.h"
#include "view_checks.h"
#include "views/attention_matrix_view.h"

using namespace kvscope;
using namespace kvscope::viz;
using testing::DecodedStore;

namespace {

const char* kPrompt = "the cat sat on the mat";

// Every drawn cell equals the trace's weight (and is painted in its colour); the future is NaN.
bool matchesTheTrace(const AttentionMatrixView& view, const TraceStore& store, int layer,
                     int head) {
    if (view.rows() != store.count()) return false;
    const ColorScale scale = ColorScale::weights();
    for (int r = 0; r < view.rows(); ++r) {
        const std::span<const float> row = store.attentionRow(r, layer, head);
        for (int c = 0; c <= r; ++c) {
            if (view.cellValue(r, c) != row[static_cast<size_t>(c)]) return false;
            if (view.cellColor(r, c) != scale.rgb(row[static_cast<size_t>(c)])) return false;
        }
        if (r + 1 < view.rows() && !std::isnan(view.cellValue(r, r + 1))) return false;
    }
    return true;
}

QPoint cellCentre(const AttentionMatrixView& view, int r, int c) {
    const QRect m = view.matrixRect();
    const double cell = m.width() / static_cast<double>(view.rows());
    return {m.left() + static_cast<int>((c + 0.5) * cell),
            m.top() + static_cast<int>((r + 0.5) * cell)};
}

}  // namespace

class TstAttentionMatrixView : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase() { ThemeSettings::instance().setAnimationMs(0); }

    // 905 tokens in a view with fewer pixels than rows: the matrix is fitted (never clipped),
    // each pixel block pools k × k cells, the caption says so, and the bottom of the drawn
    // matrix is the newest rows: its pixels are the colours of the largest (or mean) weight of
    // each block of those rows, computed here from the trace.
    void longContextIsFittedAndPooledDownToTheNewestRow() {
        RandomModelSpec spec = fixtures::gpt2Spec();
        spec.nCtx = 1024;
        DecodedStore d(fixtures::makeModel(spec));
        d.prefill(kPrompt);
        d.steps(905 - d.store.count());
        QCOMPARE(d.store.count(), 905);
        AttentionMatrixView view(&d.store);
        view.resize(900, 700);
        d.store.pinQuery(0);  // the inspected row's outline away from the newest rows
        const int k = view.poolFactor();
        QVERIFY2(k >= 2, qPrintable(QString::number(k)));
        const QRect m = view.matrixRect();
        QVERIFY(QRect(QPoint(0, 0), view.size()).contains(m));
        const int blocks = (905 + k - 1) / k;
        const ColorScale scale = ColorScale::weights();
        const int layer = d.store.layer(), head = d.store.head();
        for (const auto mode :
             {AttentionMatrixView::Pooling::Max, AttentionMatrixView::Pooling::Mean}) {
            view.setPooling(mode);
            const QImage shot = view.grab().toImage();
            const double px = m.width() / double(blocks);
            const int bi = blocks - 1;  // the last block row holds the newest token's row
            for (int bj = 0; bj <= bi; ++bj) {
                float best = 0;
                double sum = 0;
                int count = 0;
                for (int r = bi * k; r < 905; ++r) {
                    const std::span<const float> row = d.store.attentionRow(r, layer, head);
                    for (int c = bj * k; c < std::min(r + 1, (bj + 1) * k); ++c) {
                        best = std::max(best, row[static_cast<size_t>(c)]);
                        sum += row[static_cast<size_t>(c)];
                        ++count;
                    }
                }
                const float expected =
                    mode == AttentionMatrixView::Pooling::Max ? best : float(sum / count);
                QCOMPARE(view.pooledValue(bi, bj), expected);
                // the block's centre pixel (away from the outline of the inspected row)
                const QPoint at(m.left() + int((bj + 0.5) * px), m.top() + int((bi + 0.5) * px));
                const QRgb got = shot.pixel(at);
                const QRgb want = scale.rgb(expected);
                QVERIFY2(std::abs(qRed(got) - qRed(want)) <= 2 &&
                             std::abs(qGreen(got) - qGreen(want)) <= 2 &&
                             std::abs(qBlue(got) - qBlue(want)) <= 2,
                         qPrintable(QString("block %1: pixel %2, colour of %3 is %4")
                                        .arg(bj)
                                        .arg(got, 0, 16)
                                        .arg(expected)
                                        .arg(want, 0, 16)));
            }
        }
    }

    void models_data() { fixtures::addModelRows(); }

    void emptyStateBeforePrefill() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        AttentionMatrixView view(&d.store);
        view.resize(view.sizeHint());
        QCOMPARE(view.rows(), 0);
        QVERIFY(view.matrixRect().isEmpty());
        QVERIFY(testing::pixelVariance(testing::render(view, "matrix-empty")) > 1);
        QVERIFY(view.minimumSizeHint().width() <= view.sizeHint().width());
    }

    void rowsEqualTheTrace_data() { models_data(); }
    void rowsEqualTheTrace() {
        QFETCH(QString, model);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        AttentionMatrixView view(&d.store);
        view.resize(860, 860);
        d.prefill(kPrompt);
        d.steps(3);
        QVERIFY(matchesTheTrace(view, d.store, 0, 0));
        QVERIFY(std::isnan(view.cellValue(0, 1)));
        QVERIFY(std::isnan(view.cellValue(view.rows(), 0)));
    }

    void stepAddsOneRowAndStepBackRemovesIt_data() { models_data(); }
    void stepAddsOneRowAndStepBackRemovesIt() {
        QFETCH(QString, model);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        AttentionMatrixView view(&d.store);
        view.resize(860, 860);
        d.prefill(kPrompt);
        d.store.setLayerHead(1, 2);
        const int before = view.rows();
        d.step();
        QCOMPARE(view.rows(), before + 1);
        QVERIFY(matchesTheTrace(view, d.store, 1, 2));
        d.step();
        QCOMPARE(view.rows(), before + 2);
        d.stepBack();
        d.stepBack();
        QCOMPARE(view.rows(), before);
        QVERIFY(matchesTheTrace(view, d.store, 1, 2));
        d.step();  // the row after a step back is the new token's, not the old one
        QCOMPARE(view.rows(), before + 1);
        QVERIFY(matchesTheTrace(view, d.store, 1, 2));
    }

    void layerOrHeadSwitchRedrawsThatHead() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        AttentionMatrixView view(&d.store);
        view.resize(860, 860);
        d.prefill(kPrompt);
        d.steps(2);
        const float before = view.cellValue(view.rows() - 1, 0);
        d.store.setLayerHead(1, 3);
        QCOMPARE(view.layer(), 1);
        QCOMPARE(view.head(), 3);
        QVERIFY(matchesTheTrace(view, d.store, 1, 3));
        QVERIFY(view.cellValue(view.rows() - 1, 0) != before);
    }

    void hoverNamesThePairAndTheWeight() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        AttentionMatrixView view(&d.store);
        view.resize(860, 860);
        d.prefill(kPrompt);
        const int r = view.rows() - 1, c = 2;
        const std::optional<QPoint> cell = view.cellAt(cellCentre(view, r, c));
        QVERIFY(cell);
        QCOMPARE(*cell, QPoint(c, r));
        const QString tip = view.toolTipAt(cellCentre(view, r, c));
        QVERIFY2(tip.contains(QString("query %1").arg(r)) &&
                     tip.contains(QString("key %1").arg(c)) &&
                     tip.contains(formatValue(view.cellValue(r, c))),
                 qPrintable(tip));
        QVERIFY(tip.contains(tokenLabel(d.store.trace(c).text)));
        QVERIFY(view.toolTipAt(cellCentre(view, 1, 3)).contains("masked"));
        QVERIFY(view.toolTipAt(QPoint(1, 1)).isEmpty());
    }

    void clickOnARowInspectsThatQuery() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        AttentionMatrixView view(&d.store);
        view.resize(860, 860);
        view.show();
        d.prefill(kPrompt);
        QTest::mouseClick(&view, Qt::LeftButton, {}, cellCentre(view, 3, 1));
        QVERIFY(d.store.queryPinned());
        QCOMPARE(d.store.queryIndex(), 3);
        QTest::mouseClick(&view, Qt::LeftButton, {}, cellCentre(view, view.rows() - 1, 0));
        QVERIFY(!d.store.queryPinned());  // the newest row follows new tokens again
    }

    void newRowIsRevealedOnlyWhenAnimationsAreOn() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        AttentionMatrixView view(&d.store);
        view.resize(860, 860);
        d.prefill(kPrompt);
        d.step();
        QCOMPARE(view.transitionProgress(), 1.0);
        ThemeSettings::instance().setAnimationMs(120);
        d.step();
        QVERIFY(view.transitionProgress() < 1.0);
        QVERIFY(matchesTheTrace(view, d.store, 0, 0));  // the data is final; only the paint moves
        QTRY_COMPARE_WITH_TIMEOUT(view.transitionProgress(), 1.0, 3000);
        ThemeSettings::instance().setAnimationMs(0);
    }

    void fullContextStaysIncremental() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        AttentionMatrixView view(&d.store);
        view.resize(860, 860);
        d.prefill(kPrompt);
        d.steps(d.store.config().nCtx - d.store.count());
        QCOMPARE(view.rows(), d.store.config().nCtx);
        QVERIFY(matchesTheTrace(view, d.store, 0, 0));
        const QRect m = view.matrixRect();
        QVERIFY(m.right() < view.width() && m.bottom() < view.height());
        QVERIFY(testing::pixelVariance(testing::render(view, "matrix-full")) > 100);
    }

    void rendersReadably_data() { models_data(); }
    void rendersReadably() {
        QFETCH(QString, model);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        AttentionMatrixView view(&d.store);
        view.resize(860, 860);
        d.prefill(kPrompt);
        d.steps(4);
        QVERIFY(testing::pixelVariance(testing::render(view, "matrix-" + model)) > 100);
    }

    // The title says which K/V head the head reads where heads share them; plain multi-head
    // attention says nothing of K/V heads. Narrow widths keep the K/V head in a shorter title.
    void titleSaysWhichKvHeadTheHeadReads_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("head");
        QTest::addColumn<QString>("says");
        QTest::newRow("mha gpt2") << "gpt2" << 2 << "";
        QTest::newRow("gqa llama_gqa") << "llama_gqa" << 3 << "reads K/V head 1 of 2";
        QTest::newRow("mqa gemma") << "gemma" << 3 << "reads K/V head 0 of 1";
    }
    void titleSaysWhichKvHeadTheHeadReads() {
        QFETCH(QString, model);
        QFETCH(int, head);
        QFETCH(QString, says);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        AttentionMatrixView view(&d.store);
        view.resize(900, 900);
        d.prefill(kPrompt);
        d.store.setHead(head);
        const QString wide = view.titleText(10000);
        QVERIFY2(wide.contains(QString("head %1").arg(head)), qPrintable(wide));
        if (says.isEmpty()) {
            QVERIFY2(!wide.contains("K/V"), qPrintable(wide));
        } else {
            QVERIFY2(wide.contains(says), qPrintable(wide));
            const QString narrow = view.titleText(260);
            QVERIFY2(narrow.contains(QString("head %1").arg(head)) && narrow.contains("K/V"),
                     qPrintable(narrow));
        }
    }
};

QTEST_MAIN(TstAttentionMatrixView)
#include "tst_attention_matrix_view.moc"
