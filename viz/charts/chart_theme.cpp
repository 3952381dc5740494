// applyChartTheme: the shared part of the charts' looks.
#include "charts/chart_theme.h"

#include <QChart>
#include <QChartView>
#include <QFontMetrics>
#include <QLegend>
#include <QValueAxis>

#include <algorithm>

#include "common/theme.h"

namespace kvscope::viz {

void applyChartTheme(QChartView* view, std::initializer_list<QValueAxis*> axes) {
    const Theme& t = currentTheme();
    QChart* c = view->chart();
    c->setBackgroundBrush(t.background);
    c->setTitleBrush(t.text);
    c->setTitleFont(t.labelFont);
    c->legend()->setLabelColor(t.text);
    c->legend()->setFont(t.smallFont);
    for (QValueAxis* a : axes) {
        a->setLabelsColor(t.mutedText);
        a->setTitleBrush(t.text);
        a->setGridLineColor(t.grid);
        a->setLabelsFont(t.smallFont);
        a->setTitleFont(t.labelFont);
    }
    view->setBackgroundBrush(t.background);
}

int titleRoom(const QChartView* view) {
    const QChart* c = view->chart();
    const QMargins m = c->margins();
    return view->width() - m.left() - m.right() - 2 * QFontMetrics(c->titleFont()).height();
}

void setWholeRange(QValueAxis* axis, int max) {
    max = std::max(1, max);
    int ticks = 2;
    for (const int n : {5, 4, 6, 3, 7, 8, 9})
        if (max % (n - 1) == 0) {
            ticks = n;
            break;
        }
    axis->setRange(0, max);
    axis->setTickCount(ticks);
}

}  // namespace kvscope::viz
