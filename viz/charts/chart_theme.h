// The one chart theme: background, title, legend and axes in the current Theme's colours and
// fonts, for every chart (the series' own pens stay with each chart).
#pragma once

#include <initializer_list>

class QChartView;
class QValueAxis;

namespace kvscope::viz {

void applyChartTheme(QChartView* view, std::initializer_list<QValueAxis*> axes);

}  // namespace kvscope::viz
