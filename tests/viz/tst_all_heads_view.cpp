// AllHeadsView on a real decode: a click on a thumbnail selects that layer and head; the
// thumbnails are the heads' attention matrices (max-pooled beyond 64 tokens) and follow each
// step and step back.
#include <QTest>
#include <cmath>

#include "common/colormap.h"
#include "common/theme.h"
#include "decoded_store.h"
#include "model_fixtures.h"
#include "view_checks.h"
#include "views/all_heads_view.h"

using namespace kvscope;
using namespace kvscope::viz;
using testing::DecodedStore;

namespace {

const char* kPrompt = "the cat sat on the mat";

// Every thumbnail pixel is the colour of the largest weight of its block of cells (masked
// colour above the diagonal).
bool thumbnailsMatchTheTrace(const AllHeadsView& view, const TraceStore& store) {
    const ColorScale scale = ColorScale::weights();
    const int b = view.poolBlock(), t = store.count();
    const int g = (t + b - 1) / b;
    for (int l = 0; l < store.config().nLayer; ++l)
        for (int h = 0; h < store.config().nHead; ++h) {
            const QImage img = view.thumbnail(l, h);
            if (img.width() != g || img.height() != g) return false;
            for (int py = 0; py < g; ++py)
                for (int px = 0; px < g; ++px) {
                    float m = -1;
                    for (int r = py * b; r < std::min(t, (py + 1) * b); ++r)
                        for (int c = px * b; c < std::min(r + 1, (px + 1) * b); ++c)
                            m = std::max(m, store.attentionRow(r, l, h)[static_cast<size_t>(c)]);
                    const QRgb want = m < 0 ? currentTheme().panel.rgb() : scale.rgb(m);
                    if (img.pixel(px, py) != want) {
                        qWarning() << "layer" << l << "head" << h << "pixel" << px << py << "is"
                                   << Qt::hex << img.pixel(px, py) << "expected" << want;
                        return false;
                    }
                }
        }
    return true;
}

}  // namespace

class TstAllHeadsView : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase() { ThemeSettings::instance().setAnimationMs(0); }

    void emptyStateBeforePrefill() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        AllHeadsView view(&d.store);
        view.resize(view.sizeHint());
        QCOMPARE(view.rows(), 0);
        QVERIFY(view.thumbnail(0, 0).isNull());
        QVERIFY(testing::pixelVariance(testing::render(view, "heads-empty")) > 1);
        QVERIFY(view.minimumSizeHint().width() <= view.sizeHint().width());
    }

    void clickSelectsTheClickedHead_data() {
        QTest::addColumn<int>("layer");
        QTest::addColumn<int>("head");
        QTest::newRow("L0 H3") << 0 << 3;
        QTest::newRow("L1 H0") << 1 << 0;
        QTest::newRow("L1 H2") << 1 << 2;
    }
    void clickSelectsTheClickedHead() {
        QFETCH(int, layer);
        QFETCH(int, head);
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        AllHeadsView view(&d.store);
        view.resize(view.sizeHint());
        view.show();
        d.prefill(kPrompt);
        const QRect cell = view.cellRect(layer, head);
        QVERIFY(!cell.isEmpty());
        QVERIFY(view.rect().contains(cell));
        QTest::mouseClick(&view, Qt::LeftButton, {}, cell.center());
        QCOMPARE(d.store.layer(), layer);
        QCOMPARE(d.store.head(), head);
        const auto hit = view.headAt(cell.center());
        QVERIFY(hit && hit->first == layer && hit->second == head);
    }

    void thumbnailsFollowStepsAndStepBacks() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        AllHeadsView view(&d.store);
        view.resize(view.sizeHint());
        d.prefill(kPrompt);
        QCOMPARE(view.poolBlock(), 1);
        QVERIFY(thumbnailsMatchTheTrace(view, d.store));
        d.steps(2);
        QCOMPARE(view.rows(), d.store.count());
        QVERIFY(thumbnailsMatchTheTrace(view, d.store));
        d.stepBack();
        QCOMPARE(view.rows(), d.store.count());
        QVERIFY(thumbnailsMatchTheTrace(view, d.store));
        // Different heads draw different matrices.
        QVERIFY(view.thumbnail(0, 0) != view.thumbnail(1, 3));
    }

    void longContextsArePooled() {
        RandomModelSpec spec = fixtures::gpt2Spec();
        spec.nCtx = 160;
        DecodedStore d(fixtures::makeModel(spec));
        AllHeadsView view(&d.store);
        view.resize(view.sizeHint());
        d.prefill(kPrompt);
        d.steps(140 - d.store.count());
        QCOMPARE(view.rows(), 140);
        // ceil(140 / 64) = 3 tokens per pixel, rounded up to whole cells of the store's pooled
        // thumbnails (2 tokens a cell past 128 tokens)
        QCOMPARE(d.store.thumbnailPool(), 2);
        QCOMPARE(view.poolBlock(), 4);
        QVERIFY(thumbnailsMatchTheTrace(view, d.store));
        d.steps(3);  // appended rows update their pooled row only
        QVERIFY(thumbnailsMatchTheTrace(view, d.store));
        d.stepBack();
        QVERIFY(thumbnailsMatchTheTrace(view, d.store));
        QVERIFY(testing::pixelVariance(testing::render(view, "heads-pooled")) > 100);
    }

    void rendersReadably() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        AllHeadsView view(&d.store);
        view.resize(view.sizeHint());
        d.prefill(kPrompt);
        d.steps(4);
        d.store.setLayerHead(1, 1);
        QVERIFY(testing::pixelVariance(testing::render(view, "heads-llama_gqa")) > 100);
    }

    // The head labels are whole, apart and over their columns at any size: where only every
    // second one fits (export --size 600x400 of the built-in model), a column-wide box had cut
    // "head 2" to "ead 2".
    void headLabelsAreWholeAndApart() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        AllHeadsView view(&d.store);
        d.prefill(kPrompt);
        d.steps(4);
        std::vector<QSize> sizes{view.sizeHint()};
        for (int w = 300; w <= 1200; w += 60) sizes.emplace_back(w, 2 * w / 3);
        for (const QSize size : sizes) {
            view.resize(size);
            testing::render(view, QString("heads-labels-%1").arg(size.width()));
            const auto& labels = view.paintedHeadLabels();
            QVERIFY(!labels.empty());
            for (size_t i = 0; i < labels.size(); ++i) {
                const auto& [head, text, box, font] = labels[i];
                QVERIFY2(QFontMetrics(font).horizontalAdvance(text) <= box.width(),
                         qPrintable(text));
                QVERIFY(std::abs(box.center().x() - view.cellRect(0, head).center().x()) <= 1);
                if (i > 0) QVERIFY(labels[i - 1].box.right() < box.left());
            }
        }
    }
};

QTEST_MAIN(TstAllHeadsView)
#include "tst_all_heads_view.moc"
