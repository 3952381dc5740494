// Checks shared by the view tests: is a rendering blank, and saving it to look at it
// (to $KVSCOPE_VIEWS_DIR when that is set; nothing is written otherwise).
#pragma once

#include <QDir>
#include <QImage>
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
