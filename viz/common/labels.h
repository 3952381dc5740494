// Labels: how tokens, numbers and byte counts are written on screen, the same way in every view.
#pragma once

#include <QFontMetrics>
#include <QString>
#include <cstddef>
#include <initializer_list>
#include <string>

namespace kvscope::viz {

// A token's bytes made visible: "␣" for a space, "↵" for a newline, "⇥" for a tab, "\xNN" for
// control characters and for bytes that are not (yet) a whole UTF-8 character, "U+XXXX" for
// other invisible characters; "∅" for an empty token.
QString tokenLabel(const std::string& bytes);

// A float in a few characters: three significant digits ("0.123", "-1.52", "12.3", "0"), or two
// with a short exponent when very small or large ("5.2e-5", "1.2e3").
QString formatValue(double value);

// The first of `choices` (longest first) that fits `width` whole, judged as
// QFontMetrics::elidedText judges it (not horizontalAdvance <= width: text a pixel under the width
// can still be elided); when none does, the last one elided to the width.
QString firstThatFits(const QFontMetrics& fm, std::initializer_list<QString> choices, int width);

// Bytes in binary units: "512 B", "24.0 KiB", "1.50 MiB", "2.00 GiB".
QString formatBytes(size_t bytes);

}  // namespace kvscope::viz
