// TokenStrip on a real decode: past kAutoCompactTokens (or when switched on) the strip is one
// line that shows the newest token after every step, with a scrubber over all positions; "go to
// token N" pins N and brings its chip into view; positions that do not exist are refused in words.
#include <QSignalSpy>
#include <QSlider>
#include <QTest>

#include "common/theme.h"
#include "decoded_store.h"
#include "model_fixtures.h"
#include "view_checks.h"
#include "views/token_strip.h"

using namespace kvscope;
using namespace kvscope::viz;
using testing::DecodedStore;

namespace {

const char* kPrompt = "the cat sat on the mat";

RandomModelSpec longSpec() {
    RandomModelSpec s = fixtures::gpt2Spec();
    s.nCtx = 1024;
    return s;
}

// Chip i is drawn, whole, inside the strip.
bool chipVisible(const TokenStrip& strip, int i) {
    const std::vector<QRect> r = strip.chipRects();
    if (i < 0 || i >= static_cast<int>(r.size())) return false;
    const QRect c = r[static_cast<size_t>(i)];
    return !c.isNull() && strip.rect().contains(c);
}

}  // namespace

class TstTokenStrip : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase() { ThemeSettings::instance().setAnimationMs(0); }

    void compactLineShowsTheNewestTokenAfterEachStep() {
        DecodedStore d(fixtures::makeModel(longSpec()));
        TokenStrip strip(&d.store);
        strip.resize(900, 200);
        QSignalSpy compact(&strip, &TokenStrip::compactChanged);
        d.prefill(kPrompt);
        QVERIFY(!strip.isCompact());
        QVERIFY(strip.scrubber()->isHidden());
        // Wrapping: every token has its chip.
        QCOMPARE(strip.visibleTokens(), std::make_pair(0, d.store.count() - 1));

        strip.setCompact(true);
        QVERIFY(strip.isCompact());
        QCOMPARE(compact.count(), 1);
        strip.resize(900, strip.heightForWidth(900));
        QVERIFY(!strip.scrubber()->isHidden());
        for (int k = 0; k < 120; ++k) {
            d.step();
            const int newest = d.store.count() - 1;
            QCOMPARE(strip.visibleTokens().second, newest);
            QVERIFY2(chipVisible(strip, newest), qPrintable(QString("token %1").arg(newest)));
            QCOMPARE(strip.scrubber()->maximum(), newest);
            QCOMPARE(strip.scrubber()->value(), newest);
        }
        // One line: every visible chip on the same row, and the line is short of all tokens.
        const auto [first, last] = strip.visibleTokens();
        QVERIFY(first > 0);
        const std::vector<QRect> r = strip.chipRects();
        for (int i = first; i <= last; ++i) {
            QCOMPARE(r[static_cast<size_t>(i)].top(), r[static_cast<size_t>(last)].top());
            QVERIFY(chipVisible(strip, i));
        }
        for (int i = 0; i < first; ++i) QVERIFY(r[static_cast<size_t>(i)].isNull());

        // The scrubber scrolls the line; a step shows the newest again.
        strip.scrubber()->setValue(40);
        QCOMPARE(strip.visibleTokens().second, 40);
        QVERIFY(chipVisible(strip, 40));
        QVERIFY(!chipVisible(strip, d.store.count() - 1));
        d.step();
        QCOMPARE(strip.visibleTokens().second, d.store.count() - 1);
        QVERIFY(testing::pixelVariance(testing::render(strip, "strip-compact")) > 1);

        // Clicking a chip on the line pins its token.
        const QRect c = strip.chipRects()[static_cast<size_t>(d.store.count() - 3)];
        QTest::mouseClick(&strip, Qt::LeftButton, {}, c.center());
        QCOMPARE(d.store.queryIndex(), d.store.count() - 3);
        QVERIFY(d.store.queryPinned());

        strip.setCompact(false);
        QVERIFY(!strip.isCompact());
        QCOMPARE(strip.visibleTokens(), std::make_pair(0, d.store.count() - 1));
    }

    void turnsCompactByItselfPastTheThreshold() {
        DecodedStore d(fixtures::makeModel(longSpec()));
        TokenStrip strip(&d.store);
        strip.resize(900, 200);
        QSignalSpy compact(&strip, &TokenStrip::compactChanged);
        d.prefill(kPrompt);
        d.steps(TokenStrip::kAutoCompactTokens - d.store.count());
        QCOMPARE(d.store.count(), TokenStrip::kAutoCompactTokens);
        QVERIFY(!strip.isCompact());
        const int wrapHeight = strip.heightForWidth(900);
        d.step();
        QVERIFY(strip.isCompact());
        QCOMPARE(compact.count(), 1);
        QCOMPARE(compact.last().at(0).toBool(), true);
        QVERIFY(strip.heightForWidth(900) < wrapHeight / 4);  // one line, not a wall of chips
        // The user's choice wins over the count, until given back.
        strip.setCompact(false);
        QVERIFY(!strip.isCompact());
        strip.clearCompactChoice();
        QVERIFY(strip.isCompact());
    }

    void goToTokenPinsItAndShowsIt_data() {
        QTest::addColumn<bool>("compact");
        QTest::newRow("compact") << true;
        QTest::newRow("wrapping") << false;
    }
    void goToTokenPinsItAndShowsIt() {
        QFETCH(bool, compact);
        DecodedStore d(fixtures::makeModel(longSpec()));
        TokenStrip strip(&d.store);
        strip.setCompact(compact);
        strip.resize(900, 200);
        d.prefill(kPrompt);
        d.steps(400);
        strip.resize(900, strip.heightForWidth(900));
        QSignalSpy wanted(&strip, &TokenStrip::chipWanted);
        for (int n : {12, 250, d.store.count() - 2, 0}) {
            QVERIFY(strip.goToToken(QString::number(n)).isEmpty());
            QCOMPARE(d.store.queryIndex(), n);
            if (compact) {
                QVERIFY2(chipVisible(strip, n), qPrintable(QString("token %1").arg(n)));
            } else {
                // the scroll area around the strip is asked to show chip n
                QVERIFY(!wanted.isEmpty());
                QCOMPARE(wanted.last().at(0).toRect(), strip.chipRects()[static_cast<size_t>(n)]);
            }
        }
        QVERIFY(strip.goToToken(" 7 ").isEmpty());
        QCOMPARE(d.store.queryIndex(), 7);
    }

    void goToTokenRefusesPositionsThatDoNotExist_data() {
        QTest::addColumn<QString>("text");
        QTest::newRow("past the end") << "count";
        QTest::newRow("far past the end") << "5000";
        QTest::newRow("negative") << "-1";
        QTest::newRow("not a number") << "twelve";
        QTest::newRow("empty") << "";
        QTest::newRow("fraction") << "3.5";
    }
    void goToTokenRefusesPositionsThatDoNotExist() {
        QFETCH(QString, text);
        DecodedStore d(fixtures::makeModel(longSpec()));
        TokenStrip strip(&d.store);
        strip.resize(900, 200);
        QVERIFY(!strip.goToToken("3").isEmpty());  // no tokens yet
        d.prefill(kPrompt);
        d.steps(20);
        d.store.pinQuery(4);
        const int count = d.store.count();
        if (text == "count") text = QString::number(count);
        const QString error = strip.goToToken(text);
        QVERIFY(!error.isEmpty());
        QVERIFY2(error.contains(QString("0 to %1").arg(count - 1)), qPrintable(error));
        QCOMPARE(d.store.queryIndex(), 4);  // nothing changed
    }
};

QTEST_MAIN(TstTokenStrip)
#include "tst_token_strip.moc"
