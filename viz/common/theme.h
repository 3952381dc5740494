// Theme: the fonts and colours every view paints with (dark and light for the screen, a
// high-contrast print theme for exports) and the animation duration, kept in one place.
// ThemeSettings is the one shared instance; views repaint when it changes.
#pragma once

#include <QColor>
#include <QFont>
#include <QObject>
#include <QPalette>
#include <QString>

#include "common/colormap.h"

namespace kvscope::viz {

struct Theme {
    QString name;          // "dark", "light", "print"
    QColor background;     // a view's canvas
    QColor panel;          // boxes, masked (future) cells, allocated but empty cache
    QColor text;           // labels and numbers
    QColor mutedText;      // notes and axis ticks
    QColor grid;           // cell borders and frames
    QColor accent;         // the selection: the inspected query, the chosen head
    QColor fresh;          // the newest token's column, row or cache slice
    QFont titleFont;       // a view's heading
    QFont labelFont;       // block captions and token labels
    QFont smallFont;       // ticks and values written in cells
    double lineScale = 1;  // multiplies the width of chart lines and outlines (penWidth)

    static Theme dark();  // the default on screen
    static Theme light();
    static Theme print();
    // The presenter mode's: black canvas, white text, bright accents, larger fonts and lines
    // 1.6 times as thick, for a washed-out projector at the back of a room.
    static Theme projector();  // white paper, black text, thicker frames' colours
};

// `base` with the widget roles in the theme's colours (window, text, fields, buttons), for the
// widgets around the views in a figure: a dark figure's inputs had kept the light palette.
QPalette themePalette(const Theme& theme, QPalette base);

// Colours for the series of a chart, one each, distinct in colour-blind vision (Okabe–Ito hues)
// and readable on the theme's background; charts give each series a dash of its own too.
struct SeriesStyle {
    QColor primary, second, third, fourth, fifth;
};
SeriesStyle seriesStyle(const Theme& theme);

class ThemeSettings : public QObject {
    Q_OBJECT
  public:
    static constexpr int kDefaultAnimationMs = 330;

    // The shared instance (created on first use, lives until exit).
    static ThemeSettings& instance();

    // The theme in use: the one set, its fonts multiplied by textScale().
    const Theme& theme() const { return theme_; }
    void setTheme(const Theme& theme);
    // The views' text size relative to the theme's (1 = as designed; the window's zoom and its
    // size set it, exports keep 1).
    double textScale() const { return textScale_; }
    void setTextScale(double scale);
    // Length of the views' transitions in milliseconds; 0 turns them off (views jump to the
    // final state at once: tests and exports use it).
    int animationMs() const { return animationMs_; }
    void setAnimationMs(int ms);
    // The colour maps every view draws with (ColorScale): weights and other values in [lo, hi],
    // and signed values.
    SequentialMap sequentialMap() const { return sequential_; }
    DivergingMap divergingMap() const { return diverging_; }
    void setSequentialMap(SequentialMap map);
    void setDivergingMap(DivergingMap map);

  signals:
    void changed();  // the theme, the duration or a colour map changed

  private:
    ThemeSettings();
    void apply();
    Theme base_, theme_;
    double textScale_ = 1.0;
    int animationMs_ = kDefaultAnimationMs;
    SequentialMap sequential_ = SequentialMap::Viridis;
    DivergingMap diverging_ = DivergingMap::RdBu;
};

// Shorthands for ThemeSettings::instance().theme() and .animationMs().
const Theme& currentTheme();
int animationMs();
// A line `width` pixels wide in the current theme (thicker in the projector theme).
inline double penWidth(double width) {
    return width * currentTheme().lineScale;
}

}  // namespace kvscope::viz
