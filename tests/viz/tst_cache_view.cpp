// CacheView on a real decode: tokens held and bytes used and allocated equal the session's; a
// step fills one more slot of every block and a step back empties it; recompute mode holds
// nothing.
#include <QLocale>
#include <QTest>

#include "common/labels.h"
#include "common/theme.h"
#include "decoded_store.h"
#include "model_fixtures.h"
#include "view_checks.h"
#include "views/cache_view.h"

using namespace kvscope;
using namespace kvscope::viz;
using testing::DecodedStore;

namespace {

const char* kPrompt = "the cat sat on the mat";

}  // namespace

class TstCacheView : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase() { ThemeSettings::instance().setAnimationMs(0); }

    void models_data() { fixtures::addModelRows(); }

    void emptyCacheIsAllocatedButUnused() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        CacheView view(&d.store);
        view.resize(view.sizeHint());
        QCOMPARE(view.usedTokens(), 0);
        QCOMPARE(view.capacityTokens(), d.store.config().nCtx);
        QCOMPARE(view.usedBytes(), size_t{0});
        // nothing is allocated before the first token: the cache grows in blocks
        QCOMPARE(view.allocatedBytes(), size_t{0});
        QCOMPARE(d.store.model().cacheAllocatedBytes, size_t{0});
        QVERIFY(view.filledRect(0, false).width() == 0);
        QVERIFY(testing::pixelVariance(testing::render(view, "cache-empty")) > 1);
        QVERIFY(view.minimumSizeHint().height() <= view.sizeHint().height());
    }

    // With blocks of 4 slots the view hatches only what the backend allocated: ceil(tokens / 4)
    // × 4 slots, fewer than the context's.
    void onlyAllocatedSlotsAreHatched() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()), "fixture", {}, {KvType::F32, 4});
        CacheView view(&d.store);
        view.resize(view.sizeHint());
        QCOMPARE(view.allocatedTokens(), 0);
        d.prefill(kPrompt);
        d.steps(2);
        const int count = d.store.count();
        QCOMPARE(view.allocatedTokens(), (count + 3) / 4 * 4);
        QVERIFY(view.allocatedTokens() < view.capacityTokens());
        QCOMPARE(view.allocatedBytes(),
                 size_t(view.allocatedTokens()) * d.store.model().kvBytesPerToken);
    }

    void bytesEqualTheSession_data() { models_data(); }
    void bytesEqualTheSession() {
        QFETCH(QString, model);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        CacheView view(&d.store);
        view.resize(view.sizeHint());
        d.prefill(kPrompt);
        const ModelConfig& c = d.store.config();
        const size_t perToken = d.store.model().kvBytesPerToken;
        // 2 (K and V) × layers × kv heads × head dim × 4 B (float32 cache).
        QCOMPARE(perToken, size_t{2} * c.nLayer * c.nHeadKv * c.headDim * 4);
        QCOMPARE(view.usedTokens(), d.store.count());
        QCOMPARE(view.usedBytes(), d.store.kvBytes());
        QCOMPARE(view.usedBytes(), perToken * d.store.count());
        // the fixtures' context (64 tokens) fits one block, taken whole at the first token
        QCOMPARE(d.store.model().cacheBlockTokens, c.nCtx);
        QCOMPARE(view.allocatedBytes(), perToken * c.nCtx);
        QCOMPARE(view.blockUsedBytes(), view.usedBytes() / (2 * c.nLayer));
        QCOMPARE(view.blockAllocatedBytes(), view.allocatedBytes() / (2 * c.nLayer));
    }

    void stepFillsOneSlotAndStepBackEmptiesIt() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        CacheView view(&d.store);
        view.resize(1100, 520);
        d.prefill(kPrompt);
        const int before = view.usedTokens();
        const size_t bytes = view.usedBytes();
        const int width = view.filledRect(1, true).width();
        const QRgb empty = currentTheme().panel.rgb();
        QVERIFY(view.blockImage(1, false).pixel(before, 0) == empty);

        d.step();
        QCOMPARE(view.usedTokens(), before + 1);
        QCOMPARE(view.usedBytes(), bytes + d.store.model().kvBytesPerToken);
        QVERIFY(view.filledRect(1, true).width() > width);
        QVERIFY(view.filledRect(1, true).width() <= view.blockRect(1, true).width());
        // The new slot holds the new token's numbers (not the empty colour in every row).
        const QImage k = view.blockImage(1, false);
        bool filled = false;
        for (int r = 0; r < k.height(); ++r) filled |= k.pixel(before, r) != empty;
        QVERIFY(filled);

        d.stepBack();
        QCOMPARE(view.usedTokens(), before);
        QCOMPARE(view.usedBytes(), bytes);
        QCOMPARE(view.filledRect(1, true).width(), width);
    }

    void recomputeModeHoldsNothing() {
        SessionOptions o;
        o.useCache = false;
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()), "fixture", o);
        CacheView view(&d.store);
        view.resize(view.sizeHint());
        d.prefill(kPrompt);
        d.step();
        QVERIFY(view.recomputeMode());
        QCOMPARE(view.usedBytes(), size_t{0});
        QVERIFY(view.filledRect(0, false).isEmpty());
        QVERIFY(testing::pixelVariance(testing::render(view, "cache-recompute")) > 1);
    }

    void growsInOnlyWhenAnimationsAreOn() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        CacheView view(&d.store);
        view.resize(view.sizeHint());
        d.prefill(kPrompt);
        d.step();
        QCOMPARE(view.transitionProgress(), 1.0);
        ThemeSettings::instance().setAnimationMs(120);
        d.step();
        QVERIFY(view.transitionProgress() < 1.0);
        QTRY_COMPARE_WITH_TIMEOUT(view.transitionProgress(), 1.0, 3000);
        ThemeSettings::instance().setAnimationMs(0);
    }

    // Prefill vs decode: a prefill's K and V appear as one block, every prompt slice at once
    // (half way, the first and the last prompt slice are both partly shown), a step as one slice.
    void prefillAppearsAsOneBlockAndAStepAsOneSlice() {
        ThemeSettings::instance().setAnimationMs(2000);
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        CacheView view(&d.store);
        view.resize(view.sizeHint());
        d.prefill(kPrompt);
        QVERIFY(view.revealingPrefill());
        QTRY_VERIFY_WITH_TIMEOUT(view.transitionProgress() >= 0.3, 3000);
        const QImage mid = testing::render(view, "cache-prefill-mid");
        QTRY_VERIFY_WITH_TIMEOUT(!view.revealingPrefill(), 5000);
        const QImage done = testing::render(view, "cache-prefill-done");
        const QRect f = view.filledRect(0, false);
        QVERIFY(f.width() >= 2);
        const int y = f.top() + f.height() / 2;
        const QPoint first(f.left() + 1, y), last(f.right() - 1, y);
        QVERIFY(mid.pixel(first) != done.pixel(first));  // veiled at once, not left to right
        QVERIFY(mid.pixel(last) != done.pixel(last));
        d.step();
        QVERIFY(!view.revealingPrefill());
        QVERIFY(view.transitionProgress() < 1.0);  // the step's one slice grows in
        ThemeSettings::instance().setAnimationMs(0);
    }

    // At 4,000 tokens in a 4,096-token context the blocks have fewer pixels than slots: each
    // pixel column pools a whole number of slots (the smallest that fits), the blocks stay inside
    // the view, the filled part is to the same scale, every pooled pixel is the mean of its
    // slots' stripes, and the byte figures are the session's, exactly.
    void longContextIsPooledToScale() {
        RandomModelSpec spec = fixtures::gpt2Spec();
        spec.nCtx = 4096;
        spec.nHead = spec.nHeadKv = 1;  // keeps the traces' attention rows small
        DecodedStore d(fixtures::makeModel(spec), "fixture", {}, {KvType::F32, 256});
        CacheView view(&d.store);
        view.resize(1280, 720);
        d.prefill(kPrompt);
        d.steps(4000 - d.store.count());
        const int used = d.store.count(), capacity = d.store.config().nCtx;
        QCOMPARE(used, 4000);
        QCOMPARE(view.usedTokens(), used);
        QCOMPARE(view.capacityTokens(), capacity);
        QCOMPARE(view.usedBytes(), d.store.kvBytes());
        QCOMPARE(view.allocatedBytes(), d.store.kvAllocatedBytes());
        QCOMPARE(d.store.kvBytes(), size_t(used) * d.store.model().kvBytesPerToken);
        QCOMPARE(d.store.kvAllocatedBytes(),
                 size_t(capacity) * d.store.model().kvBytesPerToken);  // 16 blocks of 256

        const int tpp = view.tokensPerPixel();
        QVERIFY(tpp > 1);
        const QImage img =
            testing::render(view, "cache-4000").convertToFormat(QImage::Format_RGB32);
        for (int l = 0; l < d.store.config().nLayer; ++l)
            for (bool values : {false, true}) {
                const QRect b = view.blockRect(l, values);
                QVERIFY(view.rect().contains(b));
                // the block is the context to scale: tpp slots a pixel, the fewest that fit
                QCOMPARE(b.width(), (capacity + tpp - 1) / tpp);
                QVERIFY((tpp - 1) * b.width() < capacity);
                QCOMPARE(view.filledRect(l, values).width(), (used + tpp - 1) / tpp);
            }
        const QString text = view.scaleText();
        QVERIFY2(text.contains(QString("1 pixel = %1 token slots").arg(tpp)), qPrintable(text));
        const QLocale loc = QLocale::system();
        QVERIFY2(text.contains(loc.toString(qulonglong(d.store.kvBytes())) + " B used"),
                 qPrintable(text));
        QVERIFY2(
            text.contains(loc.toString(qulonglong(d.store.kvAllocatedBytes())) + " B allocated"),
            qPrintable(text));
        // Pooled pixels: the mean colour of the slots they hold (first and last stripe rows).
        const QRect b = view.blockRect(0, false);
        const QImage stripes = view.blockImage(0, false);
        const int cols = view.filledRect(0, false).width();
        for (int c = 0; c < cols - 3; ++c)  // the newest slice is outlined
            for (int y : {b.top(), b.bottom()}) {
                const int row = y == b.top() ? 0 : stripes.height() - 1;
                int red = 0, green = 0, blue = 0;
                for (int j = c * tpp; j < (c + 1) * tpp; ++j) {
                    const QRgb px = stripes.pixel(j, row);
                    red += qRed(px);
                    green += qGreen(px);
                    blue += qBlue(px);
                }
                const QRgb got = img.pixel(b.left() + c, y);
                QVERIFY2(std::abs(qRed(got) - red / tpp) <= 1 &&
                             std::abs(qGreen(got) - green / tpp) <= 1 &&
                             std::abs(qBlue(got) - blue / tpp) <= 1,
                         qPrintable(QString("pixel column %1, row %2").arg(c).arg(row)));
            }
    }

    void rendersReadably_data() { models_data(); }
    void rendersReadably() {
        QFETCH(QString, model);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        CacheView view(&d.store);
        view.resize(1100, 520);
        d.prefill(kPrompt);
        d.steps(6);
        QVERIFY(testing::pixelVariance(testing::render(view, "cache-" + model)) > 100);
    }

    // The lines under the title keep their numbers in a small view (export --size 600x400 had
    // cut "= 3.00 KiB", "256 of 256 allo…" and "not 12.0 Ki…"), and the scale line under the
    // blocks takes a shorter form rather than spilling out of its band.
    void smallViewKeepsTheNumbersWhole() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        CacheView view(&d.store);
        d.prefill(kPrompt);
        d.steps(2);
        const QString perToken = formatBytes(d.store.model().kvBytesPerToken);
        for (const QSize size : {QSize(1280, 720), QSize(600, 400), QSize(480, 360)}) {
            view.resize(size);
            testing::render(view, QString("cache-%1").arg(size.width()));
            const std::vector<QString>& lines = view.paintedHeaderLines();
            QCOMPARE(lines.size(), size_t{3});  // formula, allocation, GQA
            for (const QString& line : lines)
                QVERIFY2(!line.contains(QChar(0x2026)), qPrintable(line));
            QVERIFY2(lines[0].endsWith(perToken) || lines[0].contains(perToken + "."),
                     qPrintable(lines[0]));
            QVERIFY2(lines[2].contains(perToken), qPrintable(lines[2]));
            const QString scale = view.paintedScaleText();
            QVERIFY2(scale.contains(QLocale::system().toString(qulonglong(d.store.kvBytes())) +
                                    " B used"),
                     qPrintable(scale));
            QVERIFY2(view.scaleTextFits(), qPrintable(scale));
            if (size.width() == 1280) QCOMPARE(scale, view.scaleText());
        }
    }
};

QTEST_MAIN(TstCacheView)
#include "tst_cache_view.moc"
