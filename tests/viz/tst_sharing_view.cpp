// SharingView on real decodes of an MHA (gpt2), a GQA (llama_gqa) and an MQA (gemma) fixture:
// groups and their colours, the bytes sharing saves (checked against the formula written out
// here and against the calculator), and clicks on heads and K/V blocks.
#include <QApplication>
#include <QHelpEvent>
#include <QTest>
#include <QToolTip>

#include "common/theme.h"
#include "decoded_store.h"
#include "model_fixtures.h"
#include "view_checks.h"
#include "views/calculator_panel.h"
#include "views/sharing_view.h"

using namespace kvscope;
using namespace kvscope::viz;
using testing::DecodedStore;

namespace {
const char* kPrompt = "the cat sat on the mat";

void addKindRows() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("kind");
    QTest::newRow("mha gpt2") << "gpt2"
                              << "MHA";
    QTest::newRow("gqa llama_gqa") << "llama_gqa"
                                   << "GQA";
    QTest::newRow("mqa gemma") << "gemma"
                               << "MQA";
}
}  // namespace

class TstSharingView : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase() { ThemeSettings::instance().setAnimationMs(0); }

    void emptyStoreDrawsAMessage() {
        TraceStore store;
        SharingView view(&store);
        view.resize(900, 600);
        QVERIFY(testing::pixelVariance(testing::render(view, "sharing-empty")) > 0);
        QCOMPARE(view.bytesPerToken(), uint64_t(0));
        QVERIFY(view.headRect(0).isNull());
    }

    // Query head h is in group h / (n_head / n_head_kv), and is drawn in that group's colour.
    void groupsAndTheirColours_data() { addKindRows(); }
    void groupsAndTheirColours() {
        QFETCH(QString, model);
        QFETCH(QString, kind);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        SharingView view(&d.store);
        view.resize(1280, 720);
        d.prefill(kPrompt);
        d.steps(3);
        const ModelConfig& c = d.store.config();
        QCOMPARE(view.kindName(), kind);
        const QImage image =
            testing::render(view, "sharing-" + model).convertToFormat(QImage::Format_RGB32);
        QVERIFY(testing::pixelVariance(image) > 100);
        const int per = c.nHead / c.nHeadKv;
        for (int h = 0; h < c.nHead; ++h) {
            QCOMPARE(view.groupOf(h), h / per);
            const QRect r = view.headRect(h);
            QVERIFY(!r.isEmpty());
            const QColor drawn = image.pixelColor(r.left() + 3, r.bottom() - 3);
            QCOMPARE(drawn.rgb(), SharingView::groupColor(h / per).rgb());
        }
        // different groups, different colours (the fixtures have at most 4 groups)
        for (int a = 0; a < c.nHeadKv; ++a)
            for (int b = a + 1; b < c.nHeadKv; ++b)
                QVERIFY(SharingView::groupColor(a) != SharingView::groupColor(b));
        // every K/V head's K and V blocks are drawn, framed in its group's colour
        for (int kv = 0; kv < c.nHeadKv; ++kv)
            for (bool value : {false, true}) {
                const QRect r = view.blockRect(kv, value);
                QVERIFY(!r.isEmpty());
                QCOMPARE(image.pixelColor(r.left() + 1, r.center().y()).rgb(),
                         SharingView::groupColor(kv).rgb());
            }
    }

    // What sharing saves per token: plain MHA's bytes minus this model's, both by the formula
    // 2 × layers × kv heads × head dim × bytes per element (fp32 here, the fixtures' cache).
    void bytesSavedIsMhaMinusShared_data() { addKindRows(); }
    void bytesSavedIsMhaMinusShared() {
        QFETCH(QString, model);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        SharingView view(&d.store);
        const ModelConfig& c = d.store.config();
        QCOMPARE(view.elementBits(), 32);
        const uint64_t mha = 2ull * c.nLayer * c.nHead * c.headDim * 4;
        const uint64_t own = 2ull * c.nLayer * c.nHeadKv * c.headDim * 4;
        QCOMPARE(view.mhaBytesPerToken(), mha);
        QCOMPARE(view.bytesPerToken(), own);
        QCOMPARE(view.bytesSavedPerToken(), mha - own);
        QCOMPARE(view.bytesPerToken(), uint64_t(d.store.model().kvBytesPerToken));
        if (c.nHeadKv == c.nHead) QCOMPARE(view.bytesSavedPerToken(), uint64_t(0));
        // the calculator, on the loaded model, says the same
        CalculatorPanel panel(&d.store);
        QVERIFY(panel.result());
        QCOMPARE(panel.result()->mhaBytesPerToken - panel.result()->bytesPerToken,
                 view.bytesSavedPerToken());
    }

    // A click on a K or V block selects the group's first query head; on a head, that head.
    void clicksSelectHeads_data() { addKindRows(); }
    void clicksSelectHeads() {
        QFETCH(QString, model);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        SharingView view(&d.store);
        view.resize(1280, 720);
        view.show();
        d.prefill(kPrompt);
        const ModelConfig& c = d.store.config();
        const int per = c.nHead / c.nHeadKv;
        for (int kv = c.nHeadKv - 1; kv >= 0; --kv)
            for (bool value : {true, false}) {
                d.store.setHead(c.nHead - 1 - kv * per);  // somewhere else first
                QTest::mouseClick(&view, Qt::LeftButton, {}, view.blockRect(kv, value).center());
                QCOMPARE(d.store.head(), kv * per);
                QCOMPARE(d.store.kvHead(), kv);
            }
        for (int h = c.nHead - 1; h >= 0; --h) {
            QTest::mouseClick(&view, Qt::LeftButton, {}, view.headRect(h).center());
            QCOMPARE(d.store.head(), h);
            QCOMPARE(d.store.kvHead(), h / per);
        }
    }

    // Hover explains: which K/V head a query head reads (or that it reads its own), and what a
    // block holds and who reads it.
    void tooltipsExplain_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("head");
        QTest::addColumn<QString>("headTip");
        QTest::newRow("mha") << "gpt2" << 2 << "reads K/V head 2, its own: nothing is shared";
        QTest::newRow("gqa") << "llama_gqa" << 3 << "reads K/V head 1 of 2, with query heads 2–3";
        QTest::newRow("mqa") << "gemma" << 3
                             << "reads K/V head 0, the only one, shared by all 4 query heads";
    }
    void tooltipsExplain() {
        QFETCH(QString, model);
        QFETCH(int, head);
        QFETCH(QString, headTip);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        SharingView view(&d.store);
        view.resize(1280, 720);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        d.prefill(kPrompt);
        auto tipAt = [&view](const QPoint& pos) {
            QHelpEvent help(QEvent::ToolTip, pos, view.mapToGlobal(pos));
            QApplication::sendEvent(&view, &help);
            return QToolTip::text();
        };
        const QString tip = tipAt(view.headRect(head).center());
        QVERIFY2(tip.contains(headTip), qPrintable(tip));
        const int kv = d.store.config().kvHeadOf(head);
        const QString block = tipAt(view.blockRect(kv, true).center());
        QVERIFY2(block.contains(QString("V (the values) of K/V head %1").arg(kv)),
                 qPrintable(block));
        QVERIFY2(block.contains(QString("%1 tokens × %2 dims × 32 bits")
                                    .arg(d.store.count())
                                    .arg(d.store.config().headDim)),
                 qPrintable(block));
    }

    // Small sizes and the print theme still draw every head and block.
    void smallAndPrint() {
        ThemeSettings::instance().setTheme(Theme::print());
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        SharingView view(&d.store);
        view.resize(view.minimumSizeHint());
        d.prefill(kPrompt);
        QVERIFY(testing::pixelVariance(testing::render(view, "sharing-small-print")) > 100);
        for (int h = 0; h < d.store.config().nHead; ++h)
            QVERIFY(view.rect().contains(view.headRect(h)));
        for (int kv = 0; kv < d.store.config().nHeadKv; ++kv)
            QVERIFY(view.rect().contains(view.blockRect(kv, true)));
        ThemeSettings::instance().setTheme(Theme::dark());
    }

    // Nothing is drawn over anything else however low the view: the K/V head's name under its
    // blocks, the line saying what they are, the bytes rows. At 600 x 400 (a small exported
    // figure) the name and that line had overprinted each other; there the line goes.
    void lowViewsOverprintNothing() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        SharingView view(&d.store);
        d.prefill(kPrompt);
        const int nameH = QFontMetrics(currentTheme().smallFont).height();
        for (const QSize size : {QSize(1280, 720), QSize(600, 400), view.minimumSizeHint()}) {
            view.resize(size);
            testing::render(view, QString("sharing-%1x%2").arg(size.width()).arg(size.height()));
            const QRect caption = view.blocksCaptionRect();
            const int floor = caption.isNull() ? view.bytesRect().top() : caption.top();
            for (int kv = 0; kv < d.store.config().nHeadKv; ++kv) {
                const QRect block = view.blockRect(kv, false);
                QVERIFY(block.height() >= 24);
                QVERIFY2(block.bottom() + 8 + nameH <= floor,
                         qPrintable(QString("%1x%2").arg(size.width()).arg(size.height())));
            }
            if (size == QSize(1280, 720)) QVERIFY(!caption.isNull());
        }
    }
};

QTEST_MAIN(TstSharingView)
#include "tst_sharing_view.moc"
