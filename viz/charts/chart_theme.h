// The one chart theme: background, title, legend and axes in the current Theme's colours and
// fonts, for every chart (the series' own pens stay with each chart).
#pragma once

#include <initializer_list>

class QChartView;
class QValueAxis;

namespace kvscope::viz {

void applyChartTheme(QChartView* view, std::initializer_list<QValueAxis*> axes);

// The width a chart's title can have before Qt Charts elides it ("…"): the view's less the
// chart's margins and a title-line height each side.
int titleRoom(const QChartView* view);

// The axis from 0 to `max` (a count: tokens) with a tick count that puts every tick on a whole
// number, five where it can (0, 64 … 256), else three to nine, else just the two ends: "%d"
// labels at ticks of 2.5 would misstate them.
void setWholeRange(QValueAxis* axis, int max);

}  // namespace kvscope::viz
