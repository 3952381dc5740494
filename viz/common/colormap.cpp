// Colour maps: matplotlib's viridis table (CC0, by Stéfan van der Walt, Nathaniel Smith and Eric
// Firing) rounded to 8 bits, ColorBrewer's RdBu anchors, and the colour bar painter.
#include "common/colormap.h"

#include <QPainter>
#include <algorithm>
#include <array>
#include <cmath>

#include "common/labels.h"
#include "common/theme.h"

namespace kvscope::viz {

namespace {

// matplotlib _viridis_data, 256 entries, as 0xRRGGBB.
constexpr std::array<QRgb, 256> kViridis = {
    0x440154, 0x440256, 0x450457, 0x450559, 0x46075A, 0x46085C, 0x460A5D, 0x460B5E, 0x470D60,
    0x470E61, 0x471063, 0x471164, 0x471365, 0x481467, 0x481668, 0x481769, 0x48186A, 0x481A6C,
    0x481B6D, 0x481C6E, 0x481D6F, 0x481F70, 0x482071, 0x482173, 0x482374, 0x482475, 0x482576,
    0x482677, 0x482878, 0x482979, 0x472A7A, 0x472C7A, 0x472D7B, 0x472E7C, 0x472F7D, 0x46307E,
    0x46327E, 0x46337F, 0x463480, 0x453581, 0x453781, 0x453882, 0x443983, 0x443A83, 0x443B84,
    0x433D84, 0x433E85, 0x423F85, 0x424086, 0x424186, 0x414287, 0x414487, 0x404588, 0x404688,
    0x3F4788, 0x3F4889, 0x3E4989, 0x3E4A89, 0x3E4C8A, 0x3D4D8A, 0x3D4E8A, 0x3C4F8A, 0x3C508B,
    0x3B518B, 0x3B528B, 0x3A538B, 0x3A548C, 0x39558C, 0x39568C, 0x38588C, 0x38598C, 0x375A8C,
    0x375B8D, 0x365C8D, 0x365D8D, 0x355E8D, 0x355F8D, 0x34608D, 0x34618D, 0x33628D, 0x33638D,
    0x32648E, 0x32658E, 0x31668E, 0x31678E, 0x31688E, 0x30698E, 0x306A8E, 0x2F6B8E, 0x2F6C8E,
    0x2E6D8E, 0x2E6E8E, 0x2E6F8E, 0x2D708E, 0x2D718E, 0x2C718E, 0x2C728E, 0x2C738E, 0x2B748E,
    0x2B758E, 0x2A768E, 0x2A778E, 0x2A788E, 0x29798E, 0x297A8E, 0x297B8E, 0x287C8E, 0x287D8E,
    0x277E8E, 0x277F8E, 0x27808E, 0x26818E, 0x26828E, 0x26828E, 0x25838E, 0x25848E, 0x25858E,
    0x24868E, 0x24878E, 0x23888E, 0x23898E, 0x238A8D, 0x228B8D, 0x228C8D, 0x228D8D, 0x218E8D,
    0x218F8D, 0x21908D, 0x21918C, 0x20928C, 0x20928C, 0x20938C, 0x1F948C, 0x1F958B, 0x1F968B,
    0x1F978B, 0x1F988B, 0x1F998A, 0x1F9A8A, 0x1E9B8A, 0x1E9C89, 0x1E9D89, 0x1F9E89, 0x1F9F88,
    0x1FA088, 0x1FA188, 0x1FA187, 0x1FA287, 0x20A386, 0x20A486, 0x21A585, 0x21A685, 0x22A785,
    0x22A884, 0x23A983, 0x24AA83, 0x25AB82, 0x25AC82, 0x26AD81, 0x27AD81, 0x28AE80, 0x29AF7F,
    0x2AB07F, 0x2CB17E, 0x2DB27D, 0x2EB37C, 0x2FB47C, 0x31B57B, 0x32B67A, 0x34B679, 0x35B779,
    0x37B878, 0x38B977, 0x3ABA76, 0x3BBB75, 0x3DBC74, 0x3FBC73, 0x40BD72, 0x42BE71, 0x44BF70,
    0x46C06F, 0x48C16E, 0x4AC16D, 0x4CC26C, 0x4EC36B, 0x50C46A, 0x52C569, 0x54C568, 0x56C667,
    0x58C765, 0x5AC864, 0x5CC863, 0x5EC962, 0x60CA60, 0x63CB5F, 0x65CB5E, 0x67CC5C, 0x69CD5B,
    0x6CCD5A, 0x6ECE58, 0x70CF57, 0x73D056, 0x75D054, 0x77D153, 0x7AD151, 0x7CD250, 0x7FD34E,
    0x81D34D, 0x84D44B, 0x86D549, 0x89D548, 0x8BD646, 0x8ED645, 0x90D743, 0x93D741, 0x95D840,
    0x98D83E, 0x9BD93C, 0x9DD93B, 0xA0DA39, 0xA2DA37, 0xA5DB36, 0xA8DB34, 0xAADC32, 0xADDC30,
    0xB0DD2F, 0xB2DD2D, 0xB5DE2B, 0xB8DE29, 0xBADE28, 0xBDDF26, 0xC0DF25, 0xC2DF23, 0xC5E021,
    0xC8E020, 0xCAE11F, 0xCDE11D, 0xD0E11C, 0xD2E21B, 0xD5E21A, 0xD8E219, 0xDAE319, 0xDDE318,
    0xDFE318, 0xE2E418, 0xE5E419, 0xE7E419, 0xEAE51A, 0xECE51B, 0xEFE51C, 0xF1E51D, 0xF4E61E,
    0xF6E620, 0xF8E621, 0xFBE723, 0xFDE725,
};

// ColorBrewer RdBu, 9 classes, reversed: negative blue, zero near-white, positive red. The
// 9-class ends (not the darker 11-class ones) stay visible on a dark background.
constexpr std::array<QRgb, 9> kRdBu = {0x2166AC, 0x4393C3, 0x92C5DE, 0xD1E5F0, 0xF7F7F7,
                                       0xFDDBC7, 0xF4A582, 0xD6604D, 0xB2182B};

int channel(QRgb c, int shift) {
    return static_cast<int>((c >> shift) & 0xFFu);
}

QRgb mix(QRgb a, QRgb b, double f) {
    auto lerp = [f](int x, int y) { return static_cast<int>(std::lround(x + (y - x) * f)); };
    return qRgb(lerp(channel(a, 16), channel(b, 16)), lerp(channel(a, 8), channel(b, 8)),
                lerp(channel(a, 0), channel(b, 0)));
}

// ColorBrewer PuOr, 9 classes, ordered so that negative is purple and positive orange.
constexpr std::array<QRgb, 9> kPuOr = {0x542788, 0x8073AC, 0xB2ABD2, 0xD8DAEB, 0xF7F7F7,
                                       0xFEE0B6, 0xFDB863, 0xE08214, 0xB35806};

// Cividis (Nuñez, Anderton and Renslow 2018, PLOS ONE 13(7): e0199239; © 2017 Battelle
// Memorial Institute, redistributable with this notice) at t = 0, 0.2, ..., 1, rounded to 8
// bits; between them the map is interpolated in CIELAB, which keeps its lightness rising
// steadily (the original is within a few ΔE of it).
constexpr std::array<QRgb, 6> kCividis = {0x00224E, 0x35456C, 0x666970,
                                          0x948E77, 0xC8B866, 0xFEE838};

QRgb anchored(const QRgb* anchors, size_t n, double x) {  // x in [0, n - 1]
    const auto i = std::min(static_cast<size_t>(std::max(x, 0.0)), n - 2);
    return mix(anchors[i], anchors[i + 1], std::clamp(x - static_cast<double>(i), 0.0, 1.0));
}

// sRGB <-> CIELAB (D65), for the maps interpolated in Lab.
struct Lab {
    double l, a, b;
};
double toLinear(int c) {
    const double v = c / 255.0;
    return v <= 0.04045 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4);
}
int fromLinear(double v) {
    v = std::clamp(v, 0.0, 1.0);
    const double s = v <= 0.0031308 ? 12.92 * v : 1.055 * std::pow(v, 1 / 2.4) - 0.055;
    return static_cast<int>(std::lround(s * 255));
}
constexpr double kXn = 0.95047, kYn = 1.0, kZn = 1.08883;
Lab toLab(QRgb c) {
    const double r = toLinear(channel(c, 16)), g = toLinear(channel(c, 8)),
                 b = toLinear(channel(c, 0));
    const double x = 0.4124 * r + 0.3576 * g + 0.1805 * b;
    const double y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    const double z = 0.0193 * r + 0.1192 * g + 0.9505 * b;
    auto f = [](double t) {
        return t > 216.0 / 24389 ? std::cbrt(t) : (24389.0 / 27 * t + 16) / 116;
    };
    const double fx = f(x / kXn), fy = f(y / kYn), fz = f(z / kZn);
    return {116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)};
}
QRgb fromLab(const Lab& c) {
    const double fy = (c.l + 16) / 116, fx = fy + c.a / 500, fz = fy - c.b / 200;
    auto inv = [](double t) {
        return t * t * t > 216.0 / 24389 ? t * t * t : (116 * t - 16) * 27 / 24389;
    };
    const double x = kXn * inv(fx), y = kYn * inv(fy), z = kZn * inv(fz);
    const double r = 3.2406 * x - 1.5372 * y - 0.4986 * z;
    const double g = -0.9689 * x + 1.8758 * y + 0.0415 * z;
    const double b = 0.0557 * x - 0.2040 * y + 1.0570 * z;
    return qRgb(fromLinear(r), fromLinear(g), fromLinear(b));
}
QRgb cividis(double t) {
    if (!(t > 0)) t = 0;  // also NaN
    const double x = std::min(t, 1.0) * 5.0;
    const auto i = std::min<size_t>(static_cast<size_t>(x), 4);
    const double f = x - static_cast<double>(i);
    const Lab a = toLab(kCividis[i]), b = toLab(kCividis[i + 1]);
    return fromLab({a.l + (b.l - a.l) * f, a.a + (b.a - a.a) * f, a.b + (b.b - a.b) * f});
}

}  // namespace

std::string mapName(SequentialMap map) {
    return map == SequentialMap::Cividis ? "cividis" : "viridis";
}
std::string mapName(DivergingMap map) {
    switch (map) {
        case DivergingMap::PuOr:
            return "puor";
        case DivergingMap::BlueYellow:
            return "blue-yellow";
        case DivergingMap::RdBu:
            break;
    }
    return "rdbu";
}
std::optional<SequentialMap> parseSequentialMap(const std::string& name) {
    for (SequentialMap m : {SequentialMap::Viridis, SequentialMap::Cividis})
        if (name == mapName(m)) return m;
    return std::nullopt;
}
std::optional<DivergingMap> parseDivergingMap(const std::string& name) {
    for (DivergingMap m : {DivergingMap::RdBu, DivergingMap::PuOr, DivergingMap::BlueYellow})
        if (name == mapName(m)) return m;
    return std::nullopt;
}

QRgb sequentialRgb(SequentialMap map, double t) {
    if (map == SequentialMap::Cividis) return cividis(t) | 0xFF000000u;
    if (!(t > 0)) return kViridis.front() | 0xFF000000u;  // also NaN
    if (t >= 1) return kViridis.back() | 0xFF000000u;
    const double x = t * 255.0;
    const auto i = static_cast<size_t>(x);
    return mix(kViridis[i], kViridis[std::min<size_t>(i + 1, 255)], x - static_cast<double>(i));
}

QRgb divergingRgb(DivergingMap map, double s) {
    if (std::isnan(s)) s = 0;
    const double u = (std::clamp(s, -1.0, 1.0) + 1.0) * 0.5;  // 0..1
    switch (map) {
        case DivergingMap::PuOr:
            return anchored(kPuOr.data(), kPuOr.size(), u * 8.0);
        case DivergingMap::BlueYellow:
            return cividis(u) | 0xFF000000u;
        case DivergingMap::RdBu:
            break;
    }
    return anchored(kRdBu.data(), kRdBu.size(), u * 8.0);
}

ColorScale ColorScale::sequential(double lo, double hi, double gamma) {
    return ColorScale(Kind::Sequential, lo, hi > lo ? hi : lo + 1, gamma > 0 ? gamma : 1);
}

ColorScale ColorScale::symmetric(double limit) {
    if (!(limit > 0) || !std::isfinite(limit)) limit = 1;
    return ColorScale(Kind::Diverging, -limit, limit, 1);
}

double ColorScale::fractionOf(double value) const {
    const double f = std::clamp((value - lo_) / (hi_ - lo_), 0.0, 1.0);
    return gamma_ == 1 ? f : std::pow(f, gamma_);
}

double ColorScale::valueAt(double fraction) const {
    const double f = std::clamp(fraction, 0.0, 1.0);
    return lo_ + (hi_ - lo_) * (gamma_ == 1 ? f : std::pow(f, 1 / gamma_));
}

QRgb ColorScale::rgb(double value) const {
    if (std::isnan(value)) value = kind_ == Kind::Sequential ? lo_ : 0;
    const ThemeSettings& maps = ThemeSettings::instance();
    if (kind_ == Kind::Sequential) return sequentialRgb(maps.sequentialMap(), fractionOf(value));
    return divergingRgb(maps.divergingMap(), value / hi_);
}

QColor textColorOn(QRgb background) {
    // Relative luminance (sRGB, approximate): dark text on light cells, white on dark ones.
    const double y =
        0.2126 * qRed(background) + 0.7152 * qGreen(background) + 0.0722 * qBlue(background);
    return y > 140 ? QColor(Qt::black) : QColor(Qt::white);
}

QSize colorBarSize(const Theme& theme, int barWidth) {
    const QFontMetrics small(theme.smallFont);
    const int barHeight = 14;
    return {barWidth, small.height() + 4 + barHeight + 4 + small.height()};
}

void paintColorBar(QPainter& p, const QRect& rect, const ColorScale& scale, const QString& title,
                   const Theme& theme) {
    p.save();
    const QFontMetrics small(theme.smallFont);
    const int barHeight = 14;
    p.setFont(theme.smallFont);
    p.setPen(theme.text);
    const QRect titleRect(rect.left(), rect.top(), rect.width(), small.height());
    p.drawText(titleRect, Qt::AlignLeft | Qt::AlignVCenter,
               small.elidedText(title, Qt::ElideRight, rect.width()));

    const QRect bar(rect.left(), titleRect.bottom() + 5, rect.width(), barHeight);
    for (int x = 0; x < bar.width(); ++x) {
        const double f = bar.width() > 1 ? x / static_cast<double>(bar.width() - 1) : 0.0;
        p.setPen(scale.color(scale.valueAt(f)));
        p.drawLine(bar.left() + x, bar.top(), bar.left() + x, bar.bottom());
    }
    p.setPen(theme.grid);
    p.setBrush(Qt::NoBrush);
    p.drawRect(bar.adjusted(0, 0, -1, -1));

    // Ticks: the ends and the middle of the bar (0 for a diverging scale).
    const double values[3] = {scale.lo(), scale.valueAt(0.5), scale.hi()};
    const Qt::Alignment aligns[3] = {Qt::AlignLeft, Qt::AlignHCenter, Qt::AlignRight};
    for (int k = 0; k < 3; ++k) {
        const int x = bar.left() + (k * (bar.width() - 1)) / 2;
        p.setPen(theme.text);
        p.drawLine(x, bar.bottom() + 1, x, bar.bottom() + 4);
        const QString label = formatValue(values[k]);
        const int w = small.horizontalAdvance(label) + 2;
        const int left = aligns[k] == Qt::AlignLeft    ? x
                         : aligns[k] == Qt::AlignRight ? x - w + 1
                                                       : x - w / 2;
        p.drawText(QRect(left, bar.bottom() + 5, w, small.height()), aligns[k] | Qt::AlignVCenter,
                   label);
    }
    p.restore();
}

}  // namespace kvscope::viz
