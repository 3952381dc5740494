// Checks shared by the view tests: is a rendering blank, and saving it to look at it
// (to $KVSCOPE_VIEWS_DIR when that is set; nothing is written otherwise).
#pragma once

#include <QChart>
#include <QDir>
#include <QImage>
#include <QValueAxis>
#include <QWidget>
#include <cmath>

namespace kvscope::viz::testing {

// Variance of the pixels' grey levels: 0 for a blank (one-colour) image.
inline double pixelVariance(const QImage& image) {
    const QImage img = image.convertToFormat(QImage::Format_RGB32);
    double sum = 0, sum2 = 0;
    const double n = static_cast<double>(img.width()) * img.height();
    for (int y = 0; y < img.height(); ++y) {
        const auto* line = reinterpret_cast<const QRgb*>(img.constScanLine(y));
        for (int x = 0; x < img.width(); ++x) {
            const double g = qGray(line[x]);
            sum += g;
            sum2 += g * g;
        }
    }
    if (n == 0) return 0;
    const double mean = sum / n;
    return sum2 / n - mean * mean;
}

// The first tick value of a chart axis whose label would misstate it: with fixed ticks at
// min + i (max − min) / (count − 1), a "%d" or "%.Nf" label is exact only where the value has no
// more digits than the format prints (ticks at 2.75 labelled "2", 0.25 labelled "0.3" misplace
// every point read against them). Empty when every label is exact.
template <class Axis>
QString misstatedTick(const Axis& axis) {
    const QString format = axis.labelFormat();
    int digits = -1;
    if (format == QStringLiteral("%d")) digits = 0;
    if (format.startsWith(QStringLiteral("%.")) && format.endsWith(QLatin1Char('f')))
        digits = format.mid(2, format.size() - 3).toInt();
    if (digits < 0) return {};  // %g and the like print what they need
    const int n = axis.tickCount();
    const double scale = std::pow(10.0, digits);
    for (int i = 0; i < n; ++i) {
        const double v = axis.min() + i * (axis.max() - axis.min()) / std::max(1, n - 1);
        if (std::abs(v * scale - std::round(v * scale)) > 1e-6)
            return QString::number(v) + QStringLiteral(" as ") + format;
    }
    return {};
}

// misstatedTick over a chart's value axes (its category axes have no ticks to state): "<axis
// title>: <value> as <format>" for the first misstated one, empty when all are exact.
inline QString misstatedTickIn(const QChart& chart) {
    for (QAbstractAxis* axis : chart.axes())
        if (const auto* v = qobject_cast<QValueAxis*>(axis))
            if (const QString wrong = misstatedTick(*v); !wrong.isEmpty())
                return v->titleText() + QStringLiteral(": ") + wrong;
    return {};
}

// Grabs the widget; also saves it as NAME.png in $KVSCOPE_VIEWS_DIR when that is set.
inline QImage render(QWidget& widget, const QString& name) {
    const QImage image = widget.grab().toImage();
    const QString dir = qEnvironmentVariable("KVSCOPE_VIEWS_DIR");
    if (!dir.isEmpty()) {
        QDir().mkpath(dir);
        image.save(dir + QLatin1Char('/') + name + QStringLiteral(".png"));
    }
    return image;
}

}  // namespace kvscope::viz::testing
