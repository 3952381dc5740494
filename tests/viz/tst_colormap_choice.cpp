// The colour maps a user can choose, checked with colour science written here, apart from the
// app's: CIELAB lightness from sRGB (D65), and deuteranopia simulated with Machado, Oliveira and
// Fernandes (2009), severity 1, on linear RGB.
//  - Sequential maps: lightness rises all the way (their order survives greyscale), in normal
//    and in deuteranope vision.
//  - Diverging maps: lightness rises from -1 to 0 and falls from 0 to +1 (RdBu, PuOr), or rises
//    all the way (blue-yellow, made for greyscale print); and in simulated deuteranopia the two
//    sides stay apart: ΔE*ab between s and -s is at least 20 for |s| >= 0.5 and 8 for 0.25.
//    (For scale: ΔE*ab of 2.3 is a just noticeable difference.)
//  - The choice reaches ColorScale and emits ThemeSettings::changed.
#include <QSignalSpy>
#include <QTest>
#include <array>
#include <cmath>

#include "common/colormap.h"
#include "common/theme.h"

using namespace kvscope::viz;

namespace {

struct Lab {
    double l, a, b;
};

double lin(double c8) {
    const double v = c8 / 255.0;
    return v <= 0.04045 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4);
}

Lab labOfLinear(double r, double g, double b) {
    const double x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047;
    const double y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
    const double z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883;
    auto f = [](double t) {
        const double e = 0.008856;
        return t > e ? std::cbrt(t) : 7.787 * t + 16.0 / 116.0;
    };
    return {116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))};
}

Lab lab(QRgb c) {
    return labOfLinear(lin(qRed(c)), lin(qGreen(c)), lin(qBlue(c)));
}

// Machado et al. 2009, deuteranomaly at severity 1.0 (deuteranopia), applied to linear RGB.
Lab deuteranopeLab(QRgb c) {
    const double r = lin(qRed(c)), g = lin(qGreen(c)), b = lin(qBlue(c));
    auto clamp = [](double v) { return std::clamp(v, 0.0, 1.0); };
    return labOfLinear(clamp(0.367322 * r + 0.860646 * g - 0.227968 * b),
                       clamp(0.280085 * r + 0.672501 * g + 0.047413 * b),
                       clamp(-0.011820 * r + 0.042940 * g + 0.968881 * b));
}

double deltaE(const Lab& x, const Lab& y) {
    return std::hypot(x.l - y.l, x.a - y.a, x.b - y.b);
}

constexpr int kSamples = 101;
// Lightness may dip by this much between neighbouring samples (8-bit rounding of the tables).
constexpr double kSlack = 0.6;

}  // namespace

class TstColormapChoice : public QObject {
    Q_OBJECT
  private slots:
    void namesRoundTrip() {
        for (SequentialMap m : {SequentialMap::Viridis, SequentialMap::Cividis})
            QCOMPARE(parseSequentialMap(mapName(m)), m);
        for (DivergingMap m : {DivergingMap::RdBu, DivergingMap::PuOr, DivergingMap::BlueYellow})
            QCOMPARE(parseDivergingMap(mapName(m)), m);
        QVERIFY(!parseSequentialMap("jet"));
        QVERIFY(!parseDivergingMap("viridis"));
    }

    void sequentialLightnessRises_data() {
        QTest::addColumn<int>("map");
        QTest::newRow("viridis") << static_cast<int>(SequentialMap::Viridis);
        QTest::newRow("cividis") << static_cast<int>(SequentialMap::Cividis);
    }
    void sequentialLightnessRises() {
        QFETCH(int, map);
        const auto m = static_cast<SequentialMap>(map);
        double prev = -1, prevCvd = -1;
        for (int i = 0; i < kSamples; ++i) {
            const QRgb c = sequentialRgb(m, i / double(kSamples - 1));
            const double l = lab(c).l, lc = deuteranopeLab(c).l;
            QVERIFY2(l >= prev - kSlack,
                     qPrintable(QString("L* %1 after %2 at %3").arg(l).arg(prev).arg(i)));
            QVERIFY2(lc >= prevCvd - kSlack,
                     qPrintable(QString("deuteranope L* %1 after %2").arg(lc).arg(prevCvd)));
            prev = std::max(prev, l);
            prevCvd = std::max(prevCvd, lc);
        }
        // the whole range is used: dark to light
        QVERIFY(lab(sequentialRgb(m, 1)).l - lab(sequentialRgb(m, 0)).l > 60);
    }

    void divergingLightness_data() {
        QTest::addColumn<int>("map");
        QTest::addColumn<bool>("monotonic");  // rises across the whole range (greyscale print)
        QTest::newRow("rdbu") << static_cast<int>(DivergingMap::RdBu) << false;
        QTest::newRow("puor") << static_cast<int>(DivergingMap::PuOr) << false;
        QTest::newRow("blue-yellow") << static_cast<int>(DivergingMap::BlueYellow) << true;
    }
    void divergingLightness() {
        QFETCH(int, map);
        QFETCH(bool, monotonic);
        const auto m = static_cast<DivergingMap>(map);
        double prev = -1;
        for (int i = 0; i < kSamples; ++i) {
            const double s = -1 + 2 * i / double(kSamples - 1);
            const double l = lab(divergingRgb(m, s)).l;
            if (monotonic || s <= 0) {
                QVERIFY2(l >= prev - kSlack,
                         qPrintable(QString("L* %1 after %2 at s %3").arg(l).arg(prev).arg(s)));
                prev = std::max(prev, l);
            } else {
                QVERIFY2(l <= prev + kSlack,
                         qPrintable(QString("L* %1 after %2 at s %3").arg(l).arg(prev).arg(s)));
                prev = std::min(prev, l);
            }
        }
        if (monotonic) {  // greyscale keeps the sign: the two sides' lightness apart
            for (double s : {0.25, 0.5, 1.0})
                QVERIFY(lab(divergingRgb(m, s)).l - lab(divergingRgb(m, -s)).l > 20 * s);
        } else {  // zero is the lightest
            QVERIFY(lab(divergingRgb(m, 0)).l > 90);
        }
    }

    void divergingSidesStayApartInDeuteranopia_data() {
        QTest::addColumn<int>("map");
        QTest::newRow("rdbu") << static_cast<int>(DivergingMap::RdBu);
        QTest::newRow("puor") << static_cast<int>(DivergingMap::PuOr);
        QTest::newRow("blue-yellow") << static_cast<int>(DivergingMap::BlueYellow);
    }
    void divergingSidesStayApartInDeuteranopia() {
        QFETCH(int, map);
        const auto m = static_cast<DivergingMap>(map);
        for (double s : {0.25, 0.5, 0.75, 1.0}) {
            const double d =
                deltaE(deuteranopeLab(divergingRgb(m, s)), deuteranopeLab(divergingRgb(m, -s)));
            qInfo("%s: deuteranope ΔE*ab(%+.2f, %+.2f) = %.1f", mapName(m).c_str(), s, -s, d);
            QVERIFY2(d >= (s >= 0.5 ? 20.0 : 8.0), qPrintable(QString::number(d)));
        }
    }

    // The light print theme in greyscale print (lightness alone): text and frames stand off the
    // paper, and the inspected (accent) and newest (fresh) marks differ from the paper and from
    // each other. (Chart series differ by their dash patterns as well as by hue.)
    void thePrintThemeReadsInGreyscale() {
        const Theme t = Theme::print();
        auto l = [](const QColor& c) { return lab(c.rgb()).l; };
        QVERIFY(l(t.background) - l(t.text) >= 70);
        QVERIFY(l(t.background) - l(t.mutedText) >= 50);
        QVERIFY(l(t.background) - l(t.grid) >= 25);
        QVERIFY(l(t.background) - l(t.accent) >= 30);
        QVERIFY(l(t.background) - l(t.fresh) >= 30);
        QVERIFY(std::abs(l(t.accent) - l(t.fresh)) >= 8);
        QVERIFY(l(t.background) - l(t.panel) >= 5);  // masked cells still show as a tint
    }

    void theChoiceReachesEveryScale() {
        ThemeSettings& t = ThemeSettings::instance();
        QSignalSpy changed(&t, &ThemeSettings::changed);
        const QRgb viridisMid = ColorScale::sequential(0, 1).rgb(0.5);
        t.setSequentialMap(SequentialMap::Cividis);
        QCOMPARE(changed.count(), 1);
        QCOMPARE(ColorScale::sequential(0, 1).rgb(0.5), sequentialRgb(SequentialMap::Cividis, 0.5));
        QVERIFY(ColorScale::sequential(0, 1).rgb(0.5) != viridisMid);
        t.setDivergingMap(DivergingMap::PuOr);
        QCOMPARE(changed.count(), 2);
        QCOMPARE(ColorScale::symmetric(2).rgb(-2), divergingRgb(DivergingMap::PuOr, -1));
        t.setSequentialMap(SequentialMap::Viridis);
        t.setDivergingMap(DivergingMap::RdBu);
        QCOMPARE(ColorScale::sequential(0, 1).rgb(0.5), viridisMid);
    }
};

QTEST_MAIN(TstColormapChoice)
#include "tst_colormap_choice.moc"
