// Labels: token text escaping (with the core's UTF-8 decoder) and number formatting.
#include "common/labels.h"

#include "core/utf8.h"

#include <cmath>

namespace kvscope::viz {

namespace {

QString hexByte(unsigned char b) {
    return QStringLiteral("\\x") + QString::number(static_cast<unsigned>(b), 16)
                                       .rightJustified(2, QLatin1Char('0'))
                                       .toUpper();
}

// Length of the valid UTF-8 sequence starting at s[i] and its code point, or 0 if invalid.
int decodeUtf8(const std::string& s, size_t i, char32_t& cp) {
    const utf8::Decoded d = utf8::decodeAt(s, i);
    if (d.cp == utf8::kInvalid) return 0;
    cp = d.cp;
    return static_cast<int>(d.length);
}

}  // namespace

QString tokenLabel(const std::string& bytes) {
    if (bytes.empty()) return QStringLiteral("∅");
    QString out;
    size_t i = 0;
    while (i < bytes.size()) {
        char32_t cp = 0;
        const int len = decodeUtf8(bytes, i, cp);
        if (len == 0) {
            out += hexByte(static_cast<unsigned char>(bytes[i]));
            ++i;
            continue;
        }
        if (cp == U' ') {
            out += QStringLiteral("␣");
        } else if (cp == U'\n') {
            out += QStringLiteral("↵");
        } else if (cp == U'\t') {
            out += QStringLiteral("⇥");
        } else if (cp < 0x20 || cp == 0x7F) {
            out += hexByte(static_cast<unsigned char>(cp));
        } else {
            const QString ch = QString::fromUcs4(&cp, 1);
            const QChar first = ch.at(0);
            const bool invisible = ch.size() == 1 && (!first.isPrint() || first.isSpace());
            if (invisible) {
                out += QStringLiteral("U+%1")
                           .arg(static_cast<unsigned>(cp), 4, 16, QLatin1Char('0'))
                           .toUpper();
            } else {
                out += ch;
            }
        }
        i += static_cast<size_t>(len);
    }
    return out;
}

QString formatValue(double value) {
    if (std::isnan(value)) return QStringLiteral("NaN");
    if (value == 0) return QStringLiteral("0");
    const double a = std::abs(value);
    if (a >= 1000 || a < 0.001) {
        // "1.23e+03" → "1.2e3", "5.24e-05" → "5.2e-5": short enough for a cell.
        QString e = QString::number(value, 'e', 1);
        e.replace(QLatin1String("e+0"), QLatin1String("e"))
            .replace(QLatin1String("e+"), QLatin1String("e"));
        e.replace(QLatin1String("e-0"), QLatin1String("e-"));
        return e;
    }
    const int decimals = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
    return QString::number(value, 'f', decimals);
}

QString formatBytes(size_t bytes) {
    const double b = static_cast<double>(bytes);
    if (bytes < 1024) return QStringLiteral("%1 B").arg(bytes);
    if (b < 1024.0 * 1024) return QStringLiteral("%1 KiB").arg(b / 1024, 0, 'f', b < 10240 ? 2 : 1);
    if (b < 1024.0 * 1024 * 1024)
        return QStringLiteral("%1 MiB").arg(b / (1024.0 * 1024), 0, 'f', 2);
    return QStringLiteral("%1 GiB").arg(b / (1024.0 * 1024 * 1024), 0, 'f', 2);
}

QString firstThatFits(const QFontMetrics& fm, std::initializer_list<QString> choices, int width) {
    QString last;
    for (const QString& c : choices) {
        if (fm.elidedText(c, Qt::ElideRight, width) == c) return c;
        last = c;
    }
    return fm.elidedText(last, Qt::ElideRight, width);
}

}  // namespace kvscope::viz
