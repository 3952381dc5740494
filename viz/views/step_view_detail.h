// Constants the step view's layout and painting share (inside viz/views only).
#pragma once

#include <QFontMetrics>
#include <QString>

namespace kvscope::viz::step_view_detail {

constexpr int kMargin = 16;
constexpr int kGap = 10;
constexpr int kBigGap = 36;    // between the t-axis blocks and the V panel
constexpr int kMinCell = 3;    // smallest cell along any axis before tokens are left out
constexpr int kMaxCellD = 22;  // largest cell along head_dim
constexpr int kMaxCellT = 56;  // widest token column
constexpr int kMaxRowV = 28;   // tallest V row
constexpr int kTokenLabelW = 120;
constexpr int kLabelBand = 92;  // room for rotated token labels under the weights row

// The widest value text a score or weight cell may need ("-0.123", "1.2e-5").
inline int valueTextWidth(const QFontMetrics& fm) {
    return fm.horizontalAdvance(QStringLiteral("-0.000")) + 4;
}

}  // namespace kvscope::viz::step_view_detail
