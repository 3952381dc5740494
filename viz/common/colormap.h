// Colour maps for the views: viridis for weights in [0, 1] and a blue–white–red diverging map for
// signed values (q, k, v, scores), both readable by colour-blind viewers and on a washed-out
// projector; plus a colour bar (legend) painter.
#pragma once

#include <QColor>
#include <QRect>
#include <QString>
#include <optional>
#include <string>

class QPainter;

namespace kvscope::viz {

struct Theme;

// The maps a user can choose (View ▸ Colour maps, export --colormap); every one is readable by
// colour-blind viewers, and tests/viz/tst_colormap checks each one's lightness order and its
// look in simulated deuteranopia.
enum class SequentialMap {
    Viridis,  // matplotlib's viridis (the default)
    Cividis,  // Nuñez et al. 2018: blue to yellow, nearly the same for red-green colour blindness
};
enum class DivergingMap {
    RdBu,        // ColorBrewer red–blue: -1 blue, 0 near-white, +1 red (the default)
    PuOr,        // ColorBrewer purple–orange: the two sides stay apart in deuteranopia
    BlueYellow,  // cividis's blue to yellow through grey: lightness rises from -1 to +1, so the
                 // sign survives greyscale print (0 is mid-grey, not white)
};
// Names as --colormap takes them: viridis, cividis, rdbu, puor, blue-yellow.
std::string mapName(SequentialMap map);
std::string mapName(DivergingMap map);
std::optional<SequentialMap> parseSequentialMap(const std::string& name);
std::optional<DivergingMap> parseDivergingMap(const std::string& name);

// t in [0, 1], clamped; NaN gives the lowest colour.
QRgb sequentialRgb(SequentialMap map, double t);
// s in [-1, 1], clamped; NaN gives the colour of 0.
QRgb divergingRgb(DivergingMap map, double s);
// Viridis (matplotlib's 256-entry table) and RdBu (9 classes, interpolated in sRGB).
inline QRgb viridis(double t) {
    return sequentialRgb(SequentialMap::Viridis, t);
}
inline QRgb diverging(double s) {
    return divergingRgb(DivergingMap::RdBu, s);
}

// A value-to-colour scale, in the maps chosen in ThemeSettings: either sequential over [lo, hi]
// (optionally through a power, so that small weights stay distinguishable: gamma 0.5 is a
// square-root scale) or diverging, symmetric around 0 over [-limit, +limit].
class ColorScale {
  public:
    enum class Kind { Sequential, Diverging };

    // Viridis over [lo, hi] at ((v - lo) / (hi - lo))^gamma; hi <= lo is treated as lo + 1.
    static ColorScale sequential(double lo, double hi, double gamma = 1);
    // Attention weights: viridis over [0, 1] on a square-root scale, the same in every view.
    static ColorScale weights() { return sequential(0, 1, 0.5); }
    // Diverging over [-limit, limit]; a limit <= 0 (all values zero) is treated as 1.
    static ColorScale symmetric(double limit);

    Kind kind() const { return kind_; }
    double lo() const { return lo_; }
    double hi() const { return hi_; }
    double gamma() const { return gamma_; }
    // Position of a value along the colour bar, in [0, 1], and its inverse.
    double fractionOf(double value) const;
    double valueAt(double fraction) const;
    QRgb rgb(double value) const;
    QColor color(double value) const { return QColor::fromRgb(rgb(value)); }

  private:
    ColorScale(Kind kind, double lo, double hi, double gamma)
        : kind_(kind), lo_(lo), hi_(hi), gamma_(gamma) {}
    Kind kind_;
    double lo_, hi_, gamma_;
};

// Black or white, whichever reads better on `background` (for numbers written in cells).
QColor textColorOn(QRgb background);

// A legend: `title` above a horizontal colour bar with ticks and their values below.
// colorBarSize() is the size paintColorBar() needs for a bar `barWidth` pixels wide.
QSize colorBarSize(const Theme& theme, int barWidth);
void paintColorBar(QPainter& painter, const QRect& rect, const ColorScale& scale,
                   const QString& title, const Theme& theme);

}  // namespace kvscope::viz
