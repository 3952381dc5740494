// Theme: dark, light and print palettes (accents from the Okabe–Ito colour-blind-safe set) and
// fonts sized for a projector.
#include "theme.h"

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

ThemeSettings::ThemeSettings() : theme_(Theme::dark()) {}

ThemeSettings& ThemeSettings::instance() {
    static ThemeSettings* settings = new ThemeSettings;  // never destroyed: views may outlive main
    return *settings;
}

void ThemeSettings::setTheme(const Theme& theme) {
    theme_ = theme;
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
