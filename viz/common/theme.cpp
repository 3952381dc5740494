// Theme: dark, light and print palettes (accents from the Okabe–Ito colour-blind-safe set) and
// fonts sized for a projector.
#include "common/theme.h"

#include <algorithm>

namespace kvscope::viz {

namespace {

void setFonts(Theme& t) {
    const QString family = QStringLiteral("DejaVu Sans");
    t.titleFont = QFont(family, 15, QFont::Bold);
    t.labelFont = QFont(family, 12);
    t.smallFont = QFont(family, 10);
    for (QFont* f : {&t.titleFont, &t.labelFont, &t.smallFont}) f->setStyleHint(QFont::SansSerif);
}

}  // namespace

Theme Theme::dark() {
    Theme t;
    t.name = QStringLiteral("dark");
    t.background = QColor(0x1E, 0x1F, 0x24);
    t.panel = QColor(0x34, 0x36, 0x3E);
    t.text = QColor(0xF2, 0xF2, 0xF2);
    t.mutedText = QColor(0xB4, 0xB8, 0xC2);
    t.grid = QColor(0x5A, 0x5E, 0x6A);
    t.accent = QColor(0xFF, 0xA6, 0x1A);  // orange
    t.fresh = QColor(0xFF, 0x5F, 0xD2);   // pink
    setFonts(t);
    return t;
}

Theme Theme::light() {
    Theme t;
    t.name = QStringLiteral("light");
    t.background = QColor(0xFA, 0xFA, 0xF7);
    t.panel = QColor(0xE3, 0xE4, 0xE8);
    t.text = QColor(0x14, 0x14, 0x18);
    t.mutedText = QColor(0x50, 0x53, 0x5C);
    t.grid = QColor(0xA8, 0xAB, 0xB4);
    t.accent = QColor(0xD5, 0x5E, 0x00);  // vermillion
    t.fresh = QColor(0xB0, 0x1E, 0x8C);   // reddish purple
    setFonts(t);
    return t;
}

Theme Theme::print() {
    Theme t = light();
    t.name = QStringLiteral("print");
    t.background = Qt::white;
    t.panel = QColor(0xEB, 0xEB, 0xEB);
    t.text = Qt::black;
    t.mutedText = QColor(0x30, 0x30, 0x30);
    t.grid = QColor(0x80, 0x80, 0x80);
    return t;
}

Theme Theme::projector() {
    Theme t;
    t.name = QStringLiteral("projector");
    t.background = Qt::black;
    t.panel = QColor(0x2A, 0x2A, 0x2A);
    t.text = Qt::white;
    t.mutedText = QColor(0xDD, 0xDD, 0xDD);
    t.grid = QColor(0x9A, 0x9A, 0x9A);
    t.accent = QColor(0xFF, 0xB0, 0x00);  // amber
    t.fresh = QColor(0xFF, 0x6B, 0xE0);   // bright pink
    setFonts(t);
    for (QFont* f : {&t.titleFont, &t.labelFont, &t.smallFont})
        f->setPointSizeF(f->pointSizeF() * 1.2);
    t.lineScale = 1.6;
    return t;
}

QPalette themePalette(const Theme& t, QPalette p) {
    const bool darkCanvas = t.background.lightness() < 128;
    p.setColor(QPalette::Window, t.background);
    p.setColor(QPalette::WindowText, t.text);
    p.setColor(QPalette::Base, darkCanvas ? t.panel : t.background);
    p.setColor(QPalette::AlternateBase, t.panel);
    p.setColor(QPalette::Text, t.text);
    p.setColor(QPalette::Button, t.panel);
    p.setColor(QPalette::ButtonText, t.text);
    p.setColor(QPalette::PlaceholderText, t.mutedText);
    p.setColor(QPalette::Mid, t.grid);
    return p;
}

SeriesStyle seriesStyle(const Theme& t) {
    if (t.name == "dark" || t.name == "projector")
        return {t.accent, QColor(0x56, 0xB4, 0xE9), QColor(0x2E, 0xC4, 0x8F),
                QColor(0xF0, 0xE4, 0x42), t.fresh};
    return {t.accent, QColor(0x00, 0x72, 0xB2), QColor(0x00, 0x9E, 0x73), QColor(0xE6, 0x9F, 0x00),
            t.fresh};
}

ThemeSettings::ThemeSettings() : base_(Theme::dark()), theme_(base_) {}

ThemeSettings& ThemeSettings::instance() {
    static ThemeSettings* settings = new ThemeSettings;  // never destroyed: views may outlive main
    return *settings;
}

void ThemeSettings::setTheme(const Theme& theme) {
    base_ = theme;
    apply();
}

void ThemeSettings::setTextScale(double scale) {
    scale = std::clamp(scale, 0.5, 4.0);
    if (scale == textScale_) return;
    textScale_ = scale;
    apply();
}

void ThemeSettings::apply() {
    theme_ = base_;
    for (QFont* f : {&theme_.titleFont, &theme_.labelFont, &theme_.smallFont})
        f->setPointSizeF(f->pointSizeF() * textScale_);
    emit changed();
}

void ThemeSettings::setSequentialMap(SequentialMap map) {
    if (map == sequential_) return;
    sequential_ = map;
    emit changed();
}

void ThemeSettings::setDivergingMap(DivergingMap map) {
    if (map == diverging_) return;
    diverging_ = map;
    emit changed();
}

void ThemeSettings::setAnimationMs(int ms) {
    ms = std::max(0, ms);
    if (ms == animationMs_) return;
    animationMs_ = ms;
    emit changed();
}

const Theme& currentTheme() {
    return ThemeSettings::instance().theme();
}
int animationMs() {
    return ThemeSettings::instance().animationMs();
}

}  // namespace kvscope::viz
