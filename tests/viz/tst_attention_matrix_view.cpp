// AttentionMatrixView on a real decode: one row per token equal to the trace's attention rows,
// the future masked, a step adds exactly one row and a step back removes it, a layer or head
// switch redraws that head's matrix, hovering names the pair and the weight, a click on a row
// inspects that query, and the new row is revealed only when animations are on. Zoomed: an
// exported region's pixels are its cells' colours, fitting again gives the pooled picture back,
// the view follows the newest row until panned away, and the keys, the wheel and a dragged band
// show the cells they say.
#include <QAction>
#include <QBuffer>
#include <QFile>
#include <QPushButton>
#include <QSvgGenerator>
#include <QTemporaryDir>
#include <QTest>
#include <QWheelEvent>
#include <cmath>

#include "common/colormap.h"
#include "common/labels.h"
#include "common/theme.h"
#include "decoded_store.h"
#include "export/exporter.h"
#include "model_fixtures.h"
#include "view_checks.h"
#include "views/all_heads_view.h"
#include "views/attention_matrix_view.h"
#include "views/sharing_view.h"

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

// Whether two colours differ by at most 2 per channel (scaling may round).
bool near(QRgb got, QRgb want) {
    return std::abs(qRed(got) - qRed(want)) <= 2 && std::abs(qGreen(got) - qGreen(want)) <= 2 &&
           std::abs(qBlue(got) - qBlue(want)) <= 2;
}

// A decode of n tokens (context 1024) of the GPT-2 fixture.
std::unique_ptr<DecodedStore> decodeTokens(int n) {
    RandomModelSpec spec = fixtures::gpt2Spec();
    spec.nCtx = 1024;
    auto d = std::make_unique<DecodedStore>(fixtures::makeModel(spec));
    d->prefill(kPrompt);
    d->steps(n - d->store.count());
    return d;
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

    // A region exported to PNG: each of its cells is drawn in the colour of its weight (the
    // masked future in the panel colour), with no pooling, fitted into the figure; the caption's
    // rows and keys are the region's.
    void zoomedExportOfARegionEqualsItsCells_data() {
        QTest::addColumn<int>("r0");
        QTest::addColumn<int>("r1");
        QTest::addColumn<int>("c0");
        QTest::addColumn<int>("c1");
        QTest::newRow("diagonal 40x40") << 560 << 599 << 560 << 599;
        QTest::newRow("first keys 20x12") << 500 << 519 << 0 << 11;  // cells with their numbers
    }
    void zoomedExportOfARegionEqualsItsCells() {
        QFETCH(int, r0);
        QFETCH(int, r1);
        QFETCH(int, c0);
        QFETCH(int, c1);
        auto d = decodeTokens(600);
        AttentionMatrixView view(&d->store);
        view.resize(900, 700);
        d->store.pinQuery(0);  // the inspected row's outline away from the region
        QVERIFY(view.poolFactor() >= 2);
        view.zoomToCells(r0, r1, c0, c1);
        QVERIFY(view.zoomed());
        QCOMPARE(view.viewport(), QRectF(c0, r0, c1 - c0 + 1, r1 - r0 + 1));
        QCOMPARE(view.drawnPoolFactor(), 1);
        QTemporaryDir dir;
        const QString path = dir.filePath("region.png");
        QCOMPARE(exportWidget(&view, path, ExportFormat::Png), QString());
        const QImage shot(path);
        QCOMPARE(shot.size(), view.size());
        const QRect m = view.matrixRect();
        QVERIFY(QRect(QPoint(0, 0), view.size()).contains(m));
        const ColorScale scale = ColorScale::weights();
        const QRgb masked = currentTheme().panel.rgb();
        const double px = view.cellPixels();
        QVERIFY2(px >= 10, qPrintable(QString::number(px)));
        const int layer = d->store.layer(), head = d->store.head();
        int checked = 0;
        for (int r = r0; r <= r1; ++r) {
            const std::span<const float> row = d->store.attentionRow(r, layer, head);
            for (int c = c0; c <= c1; ++c) {
                const QRectF cell = view.cellRect(r, c);
                QVERIFY(QRectF(m).adjusted(-0.5, -0.5, 0.5, 0.5).contains(cell));
                // a point clear of the separators and of the number in the cell's middle
                const QPoint at(int(cell.left() + px * 0.15) + 1, int(cell.top() + px * 0.15) + 1);
                if (view.minimapRect().adjusted(-4, -4, 4, 4).contains(at)) continue;
                const QRgb want = c <= r ? scale.rgb(row[size_t(c)]) : masked;
                QVERIFY2(near(shot.pixel(at), want),
                         qPrintable(QString("cell (%1, %2): pixel %3, want %4")
                                        .arg(r)
                                        .arg(c)
                                        .arg(shot.pixel(at), 0, 16)
                                        .arg(want, 0, 16)));
                ++checked;
            }
        }
        QVERIFY(checked >= (r1 - r0 + 1) * (c1 - c0 + 1) / 2);
        testing::render(view, QString("matrix-region-%1-%2").arg(r0).arg(c0));
    }

    // Zoomed in to single cells (their weights readable), then fitted again: the same pooled
    // picture as before, pixel for pixel.
    void zoomInToCellsThenFitGivesThePooledPictureBack() {
        auto d = decodeTokens(905);
        AttentionMatrixView view(&d->store);
        view.resize(900, 700);
        const QImage fitted = view.grab().toImage();
        const int k = view.poolFactor();
        QVERIFY(k >= 2);
        QCOMPARE(view.drawnPoolFactor(), k);
        for (int i = 0; i < 12 && view.drawnPoolFactor() > 1; ++i) view.zoomBy(0.5);
        for (int i = 0; i < 12 && view.cellPixels() < 24; ++i) view.zoomBy(0.5);
        QVERIFY(view.zoomed());
        QCOMPARE(view.drawnPoolFactor(), 1);
        QVERIFY2(view.cellPixels() >= 24, qPrintable(QString::number(view.cellPixels())));
        // the viewport shrank around the centre of the matrix (each step rounds to whole cells)
        const double n = (905 + k - 1) / k * k;
        QVERIFY(std::abs(view.viewport().center().x() - n / 2) <= 3);
        QVERIFY(std::abs(view.viewport().center().y() - n / 2) <= 3);
        const QImage zoomed = testing::render(view, "matrix-zoomed-cells");
        QVERIFY(zoomed != fitted);
        view.fit();
        QVERIFY(!view.zoomed());
        QCOMPARE(view.drawnPoolFactor(), k);
        QCOMPARE(view.viewport(), QRectF(0, 0, n, n));
        QVERIFY(view.minimapRect().isEmpty());
        QVERIFY(view.grab().toImage() == fitted);
    }

    // Zoomed on the newest rows, each appended token scrolls the view so that the new row is
    // the bottom one (drawn in its weights' colours); panning away stops that, and the menu's
    // toggle (setFollowing) starts it again.
    void followingKeepsTheNewestRowInViewUntilPanned() {
        auto d = decodeTokens(120);
        AttentionMatrixView view(&d->store);
        view.resize(860, 860);
        const int n = d->store.count();
        view.zoomToCells(n - 20, n - 1, n - 30, n - 1);
        QVERIFY(view.zoomed());
        QVERIFY(view.following());
        const ColorScale scale = ColorScale::weights();
        for (int i = 1; i <= 3; ++i) {
            d->step();
            const int newest = d->store.count() - 1;
            QCOMPARE(view.viewport().bottom(), double(newest + 1));
            QCOMPARE(view.viewport().height(), 20.0);
            const QImage shot = view.grab().toImage();
            const std::span<const float> row =
                d->store.attentionRow(newest, d->store.layer(), d->store.head());
            const QRectF cell = view.cellRect(newest, newest);
            QVERIFY(QRectF(view.matrixRect()).adjusted(-0.5, -0.5, 0.5, 0.5).contains(cell));
            const QPoint at(int(cell.left() + cell.width() * 0.2),
                            int(cell.top() + cell.height() * 0.5));
            QVERIFY(near(shot.pixel(at), scale.rgb(row[size_t(newest)])));
        }
        // Shift+drag downwards pans up to older rows: following stops
        view.show();
        const QRectF before = view.viewport();
        const QPoint from = view.matrixRect().center();
        QTest::mousePress(&view, Qt::LeftButton, Qt::ShiftModifier, from);
        QTest::mouseMove(&view, from + QPoint(0, 40));
        QTest::mouseMove(&view, from + QPoint(0, 120));
        QTest::mouseRelease(&view, Qt::LeftButton, Qt::ShiftModifier, from + QPoint(0, 120));
        QVERIFY(!view.following());
        QVERIFY(view.viewport().top() < before.top());
        QCOMPARE(view.viewport().left(), before.left());
        const QRectF panned = view.viewport();
        d->step();
        QCOMPARE(view.viewport(), panned);                      // it stays where it was panned to
        QCOMPARE(d->store.queryIndex(), d->store.count() - 1);  // a drag is not a click
        view.setFollowing(true);
        QCOMPARE(view.viewport().bottom(), double(d->store.count()));
        // a click on the minimap's top-left corner moves the view to the first tokens
        const QRect mini = view.minimapRect();
        QVERIFY(!mini.isEmpty());
        QTest::mouseClick(&view, Qt::LeftButton, {}, mini.topLeft() + QPoint(1, 1));
        QCOMPARE(view.viewport().topLeft(), QPointF(0, 0));
        QVERIFY(!view.following());
        QCOMPARE(d->store.queryIndex(), d->store.count() - 1);  // the minimap inspects nothing
        view.setFollowing(true);
        view.panBy(-5, 0);  // the arrow keys' and the API's pan likewise
        QVERIFY(!view.following());
        // another head keeps the zoom; a new prompt starts fitted and following again
        const QRectF zoomedAt = view.viewport();
        d->store.setLayerHead(1, 1);
        QCOMPARE(view.viewport(), zoomedAt);
        d->prefill("a new prompt");
        QVERIFY(!view.zoomed());
        QVERIFY(view.following());
    }

    // Ctrl+= halves the visible rows and keys around the centre, Ctrl+- doubles them, Ctrl+0
    // fits; the wheel zooms by 0.8 per notch keeping the cell under the cursor; the arrow keys
    // pan by an eighth; a dragged band shows exactly its cells; a click still inspects a row.
    void keysWheelAndBandZoomAsStated() {
        auto d = decodeTokens(64);
        AttentionMatrixView view(&d->store);
        view.resize(860, 860);
        view.show();
        view.setFocus();
        QCOMPARE(view.poolFactor(), 1);
        QCOMPARE(view.viewport(), QRectF(0, 0, 64, 64));
        QTest::keyClick(&view, Qt::Key_Equal, Qt::ControlModifier);
        QCOMPARE(view.viewport(), QRectF(16, 16, 32, 32));
        QTest::keyClick(&view, Qt::Key_Equal, Qt::ControlModifier);
        QCOMPARE(view.viewport(), QRectF(24, 24, 16, 16));
        QTest::keyClick(&view, Qt::Key_Up);
        QCOMPARE(view.viewport(), QRectF(24, 22, 16, 16));
        QTest::keyClick(&view, Qt::Key_Minus, Qt::ControlModifier);
        QCOMPARE(view.viewport(), QRectF(16, 14, 32, 32));
        QTest::keyClick(&view, Qt::Key_0, Qt::ControlModifier);
        QVERIFY(!view.zoomed());
        QCOMPARE(view.viewport(), QRectF(0, 0, 64, 64));

        // the wheel: one notch up, around a cell away from the centre
        const QPoint at = view.cellRect(40, 10).center().toPoint();
        const std::optional<QPoint> under = view.cellAt(at);
        const double fittedPixels = view.cellPixels();
        QWheelEvent wheel(at, view.mapToGlobal(at), QPoint(), QPoint(0, 120), Qt::NoButton,
                          Qt::NoModifier, Qt::NoScrollPhase, false);
        QCoreApplication::sendEvent(&view, &wheel);
        QVERIFY(view.zoomed());
        QCOMPARE(view.viewport().width(), std::round(64 * 0.8));  // whole cells
        const QPoint now = *view.cellAt(at);  // the same cell, up to the rounding to whole cells
        QVERIFY2(std::abs(now.x() - under->x()) <= 1 && std::abs(now.y() - under->y()) <= 1,
                 qPrintable(QString("(%1, %2)").arg(now.x()).arg(now.y())));
        QVERIFY(view.cellPixels() > fittedPixels * 1.2);
        const QString tip = view.toolTipAt(at);  // hovering still names the pair at any zoom
        QVERIFY2(tip.contains("query 40") && tip.contains("key 10"), qPrintable(tip));
        view.fit();

        // a band dragged from cell (10, 2) to cell (30, 20)
        QTest::mousePress(&view, Qt::LeftButton, {}, cellCentre(view, 10, 2));
        QTest::mouseMove(&view, cellCentre(view, 20, 10));
        QTest::mouseMove(&view, cellCentre(view, 30, 20));
        QTest::mouseRelease(&view, Qt::LeftButton, {}, cellCentre(view, 30, 20));
        QCOMPARE(view.viewport(), QRectF(2, 10, 19, 21));
        QVERIFY(!view.following());  // the newest row (63) is not in the band
        // a click inspects the row under it, zoomed too
        QTest::mouseClick(&view, Qt::LeftButton, {}, view.cellRect(25, 5).center().toPoint());
        QCOMPARE(d->store.queryIndex(), 25);
    }

    // The window binds Ctrl+= to larger text: while the matrix has the focus the key zooms the
    // matrix instead; with the focus elsewhere the window's shortcut still fires.
    void zoomKeysWinOverTheWindowsShortcutWhileFocused() {
        auto d = decodeTokens(64);
        QWidget window;
        int larger = 0;
        auto* action = new QAction(&window);
        action->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Equal));
        connect(action, &QAction::triggered, &window, [&larger] { ++larger; });
        window.addAction(action);
        auto* view = new AttentionMatrixView(&d->store, &window);
        auto* button = new QPushButton("other", &window);
        view->setGeometry(0, 40, 860, 860);
        window.resize(860, 900);
        window.show();
        QVERIFY(QTest::qWaitForWindowActive(&window));
        view->setFocus();
        QTest::keyClick(view, Qt::Key_Equal, Qt::ControlModifier);
        QCOMPARE(larger, 0);
        QCOMPARE(view->viewport(), QRectF(16, 16, 32, 32));
        button->setFocus();
        QTest::keyClick(button, Qt::Key_Equal, Qt::ControlModifier);
        QCOMPARE(larger, 1);
        QCOMPARE(view->viewport(), QRectF(16, 16, 32, 32));
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

    // Prefill vs decode: a prefill's rows are revealed together (one pass, and the subtitle says
    // so), a step reveals its one row; half way through the prefill every row shows about half
    // of its keys.
    void prefillIsRevealedAsOneEventAndAStepAsOneRow() {
        ThemeSettings::instance().setAnimationMs(2000);
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        AttentionMatrixView view(&d.store);
        view.resize(700, 700);
        d.prefill(kPrompt);
        QVERIFY(view.revealingPrefill());
        const QImage early = testing::render(view, "matrix-prefill-early");
        QTRY_VERIFY_WITH_TIMEOUT(view.transitionProgress() >= 0.4, 3000);
        QVERIFY(view.revealingPrefill());
        const QImage mid = testing::render(view, "matrix-prefill-mid");
        QTRY_VERIFY_WITH_TIMEOUT(!view.revealingPrefill(), 5000);
        const QImage done = testing::render(view, "matrix-prefill-done");
        // the last row: early it shows less of its keys than half way, and half way less than
        // at the end (its first cell is the same; its last key cell is masked until the end)
        const QRect m = view.matrixRect();
        const int n = view.rows();
        const double cell = double(m.width()) / n;
        const QPoint lastKey(m.left() + int((n - 0.5) * cell), m.top() + int((n - 0.5) * cell));
        QVERIFY(early.pixel(lastKey) != done.pixel(lastKey));
        QVERIFY(mid.pixel(lastKey) != done.pixel(lastKey));
        const QPoint firstKey(m.left() + int(0.5 * cell), lastKey.y());
        QCOMPARE(mid.pixel(firstKey), done.pixel(firstKey));
        d.step();  // a step: one row, not the prefill's reveal
        QVERIFY(!view.revealingPrefill());
        QVERIFY(view.transitionProgress() < 1);
        ThemeSettings::instance().setAnimationMs(0);
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
        // paintEvent elides the title to its width; the title chosen for a width never needs it
        // (it did at 1280 x 720 beside the all-heads panel: "… K/V head 0 of…")
        const QFontMetrics fm(currentTheme().titleFont);
        for (int w = 260; w <= 700; ++w) {  // 260: the shortest forms fit
            const QString t = view.titleText(w);
            QVERIFY2(fm.elidedText(t, Qt::ElideRight, w) == t && !t.contains(QChar(0x2026)),
                     qPrintable(QString("width %1: '%2' is elided").arg(w).arg(t)));
        }
        // painted whole at any view width: where the colour bar beside it would leave the title
        // less than its shortest form, the bar goes under the subtitle (beside the all-heads
        // panel of a 1024 x 768 window the title had read "L0 · head 0 · K/…")
        bool sawBelow = false, sawBeside = false;
        for (int w = 300; w <= 900; w += 20) {
            view.resize(w, 700);
            testing::render(view, QString("attention-title-%1").arg(w));
            const QString t = view.paintedTitle();
            QVERIFY2(!t.contains(QChar(0x2026)) && t.contains(QString("head %1").arg(head)),
                     qPrintable(QString("width %1: '%2'").arg(w).arg(t)));
            (view.legendBelow() ? sawBelow : sawBeside) = true;
        }
        QVERIFY(sawBelow && sawBeside);
    }

    // A figure leaves out the hints about the mouse ("click a row", "click a head", "click one
    // to inspect it"), which a screen shows: the text of the views painted to SVG, on a screen
    // and through the exporter.
    void figuresLeaveOutTheMouseHints() {
        auto d = decodeTokens(12);
        AttentionMatrixView attention(&d->store);
        AllHeadsView heads(&d->store);
        SharingView sharing(&d->store);
        QTemporaryDir dir;
        for (QWidget* view : std::initializer_list<QWidget*>{&attention, &heads, &sharing}) {
            view->resize(1400, 800);  // the longest forms of every line
            QBuffer screen;
            screen.open(QIODevice::WriteOnly);
            QSvgGenerator svg;
            svg.setOutputDevice(&screen);
            svg.setSize(view->size());
            view->render(&svg);
            const QString name = view->metaObject()->className();
            QVERIFY2(QString::fromUtf8(screen.data()).contains("lick"), qPrintable(name));
            const QString path = dir.filePath("figure.svg");
            QCOMPARE(exportWidget(view, path, ExportFormat::Svg), QString());
            QFile figure(path);
            QVERIFY(figure.open(QIODevice::ReadOnly));
            const QString text = QString::fromUtf8(figure.readAll());
            QVERIFY2(text.contains("<text") && !text.contains("lick"), qPrintable(name));
        }
    }
};

QTEST_MAIN(TstAttentionMatrixView)
#include "tst_attention_matrix_view.moc"
