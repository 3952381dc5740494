// Labels: token bytes made visible (spaces, newlines, control bytes, broken UTF-8), numbers in
// a few characters, bytes in binary units.
#include <QFont>
#include <QTest>

#include "common/labels.h"

using namespace kvscope::viz;

class TstLabels : public QObject {
    Q_OBJECT
  private slots:
    void tokenLabels_data() {
        QTest::addColumn<QByteArray>("bytes");
        QTest::addColumn<QString>("label");
        QTest::newRow("word") << QByteArray("cat") << "cat";
        QTest::newRow("leading space") << QByteArray(" the") << "␣the";
        QTest::newRow("newline") << QByteArray("\n") << "↵";
        QTest::newRow("tab") << QByteArray("\t") << "⇥";
        QTest::newRow("control") << QByteArray("\x1b") << "\\x1B";
        QTest::newRow("nul") << QByteArray("\0", 1) << "\\x00";
        QTest::newRow("utf8") << QByteArray("é") << "é";
        QTest::newRow("half a character") << QByteArray("\xC3") << "\\xC3";
        QTest::newRow("stray continuation") << QByteArray("a\x80") << "a\\x80";
        QTest::newRow("overlong") << QByteArray("\xC0\xAF") << "\\xC0\\xAF";
        QTest::newRow("no-break space") << QByteArray("\xC2\xA0") << "U+00A0";
        QTest::newRow("empty") << QByteArray() << "∅";
    }
    void tokenLabels() {
        QFETCH(QByteArray, bytes);
        QFETCH(QString, label);
        QCOMPARE(tokenLabel(bytes.toStdString()), label);
    }

    void values_data() {
        QTest::addColumn<double>("value");
        QTest::addColumn<QString>("text");
        QTest::newRow("zero") << 0.0 << "0";
        QTest::newRow("weight") << 0.1234 << "0.123";
        QTest::newRow("negative") << -1.517 << "-1.52";
        QTest::newRow("tens") << 12.34 << "12.3";
        QTest::newRow("tiny") << 5.24e-5 << "5.2e-5";
        QTest::newRow("large") << 1234.0 << "1.2e3";
    }
    void values() {
        QFETCH(double, value);
        QFETCH(QString, text);
        QCOMPARE(formatValue(value), text);
    }

    void bytes_data() {
        QTest::addColumn<qulonglong>("bytes");
        QTest::addColumn<QString>("text");
        QTest::newRow("B") << 512ull << "512 B";
        QTest::newRow("KiB") << 3328ull << "3.25 KiB";
        QTest::newRow("GPT-2 fp16 per token") << 36864ull << "36.0 KiB";
        QTest::newRow("MiB") << 1048576ull << "1.00 MiB";
        QTest::newRow("GiB") << 10737418240ull << "10.00 GiB";
    }
    void bytes() {
        QFETCH(qulonglong, bytes);
        QFETCH(QString, text);
        QCOMPARE(formatBytes(static_cast<size_t>(bytes)), text);
    }

    // Of a long and a short text, the long one wherever elision would keep it whole, else the
    // short one, else the short one elided: never a cut text while a whole one fits.
    void firstThatFitsPrefersTheLongestWholeText() {
        QFont font;
        font.setPixelSize(22);
        font.setBold(true);
        const QFontMetrics fm(font);
        const QString longText = "Layer 5 · head 0 · K/V head 0 of 2", shortText = "L5 · K/V 0/2";
        const auto whole = [&](const QString& t, int w) {
            return fm.elidedText(t, Qt::ElideRight, w) == t;
        };
        int longFrom = -1;
        for (int w = 0; w <= fm.horizontalAdvance(longText) + 40; ++w) {
            const QString got = firstThatFits(fm, {longText, shortText}, w);
            if (whole(longText, w)) {
                QCOMPARE(got, longText);
                if (longFrom < 0) longFrom = w;
            } else if (whole(shortText, w)) {
                QCOMPARE(got, shortText);
            } else {
                QCOMPARE(got, fm.elidedText(shortText, Qt::ElideRight, w));
                QVERIFY(got != shortText);
            }
        }
        QVERIFY(longFrom > fm.horizontalAdvance(shortText));  // both regimes were crossed
        QCOMPARE(firstThatFits(fm, {shortText}, 100000), shortText);
    }
};

QTEST_MAIN(TstLabels)
#include "tst_labels.moc"
