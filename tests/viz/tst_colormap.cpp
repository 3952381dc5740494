// Colour maps: viridis hits matplotlib's anchors, the diverging map is white at 0 and mirrors
// blue and red, luminance rises monotonically along viridis, the square-root weight scale and
// its inverse agree, and the colour bar paints.
#include <QPainter>
#include <QTest>

#include "common/colormap.h"
#include "common/theme.h"

using namespace kvscope::viz;

class TstColormap : public QObject {
    Q_OBJECT
  private slots:
    void viridisAnchors_data() {
        QTest::addColumn<double>("t");
        QTest::addColumn<QString>("hex");
        QTest::newRow("0") << 0.0 << "#440154";
        QTest::newRow("1/9") << 1.0 / 9 << "#482878";
        QTest::newRow("5/9") << 5.0 / 9 << "#1f9e89";
        QTest::newRow("1") << 1.0 << "#fde725";
        QTest::newRow("below") << -3.0 << "#440154";
        QTest::newRow("above") << 7.0 << "#fde725";
    }
    void viridisAnchors() {
        QFETCH(double, t);
        QFETCH(QString, hex);
        const QColor got = QColor::fromRgb(viridis(t)), want(hex);
        QVERIFY2(std::abs(got.red() - want.red()) <= 1 &&
                     std::abs(got.green() - want.green()) <= 1 &&
                     std::abs(got.blue() - want.blue()) <= 1,
                 qPrintable(got.name() + " vs " + hex));
    }

    void viridisLightnessRises() {
        int last = -1;
        for (int k = 0; k <= 100; ++k) {
            const int g = qGray(viridis(k / 100.0));
            QVERIFY(g >= last);
            last = g;
        }
    }

    void divergingIsSymmetric() {
        const QColor zero = QColor::fromRgb(diverging(0));
        QVERIFY(zero.lightness() > 240);
        QVERIFY(QColor::fromRgb(diverging(-1)).blue() > QColor::fromRgb(diverging(-1)).red());
        QVERIFY(QColor::fromRgb(diverging(1)).red() > QColor::fromRgb(diverging(1)).blue());
        for (double s : {0.2, 0.5, 0.9})
            QVERIFY(std::abs(qGray(diverging(s)) - qGray(diverging(-s))) < 40);
        const ColorScale sc = ColorScale::symmetric(2);
        QCOMPARE(sc.rgb(2), diverging(1));
        QCOMPARE(sc.rgb(-5), diverging(-1));
        QCOMPARE(ColorScale::symmetric(0).hi(), 1.0);  // all zeros: a usable scale
    }

    void weightScaleRoundTrips() {
        const ColorScale w = ColorScale::weights();
        for (double v : {0.0, 0.01, 0.25, 0.5, 1.0})
            QVERIFY(std::abs(w.valueAt(w.fractionOf(v)) - v) < 1e-12);
        QCOMPARE(w.fractionOf(0.25), 0.5);
        QCOMPARE(w.rgb(0.25), viridis(0.5));
    }

    void colorBarPaints() {
        const Theme th = Theme::dark();
        const QSize size = colorBarSize(th, 200);
        QImage img(size, QImage::Format_RGB32);
        img.fill(th.background);
        QPainter p(&img);
        paintColorBar(p, QRect(QPoint(0, 0), size), ColorScale::weights(), "weights", th);
        p.end();
        // Inside the frame, the bar's left end is near viridis' first colour, its right end near
        // the last (a pixel in, on the square-root scale).
        const int y = size.height() / 2;
        auto near = [](QRgb a, QRgb b) {
            return std::abs(qRed(a) - qRed(b)) + std::abs(qGreen(a) - qGreen(b)) +
                       std::abs(qBlue(a) - qBlue(b)) <
                   40;
        };
        QVERIFY(near(img.pixel(2, y), viridis(0)));
        QVERIFY(near(img.pixel(size.width() - 3, y), viridis(1)));
        QVERIFY(!near(img.pixel(2, y), img.pixel(size.width() - 3, y)));
    }
};

QTEST_MAIN(TstColormap)
#include "tst_colormap.moc"
