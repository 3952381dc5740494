// DriftChart: series rebuilt from the TraceStore's traces on each of its signals.
#include "charts/drift_chart.h"

#include <QChart>
#include <QLegend>
#include <QLineSeries>
#include <QPen>
#include <QScatterSeries>
#include <QValueAxis>
#include <algorithm>

#include "charts/chart_theme.h"
#include "common/theme.h"
#include "common/trace_store.h"

namespace kvscope::viz {

DriftChart::DriftChart(TraceStore* store, QWidget* parent) : QChartView(parent), store_(store) {
    auto* chart = new QChart;
    kl_ = new QLineSeries;
    kl_->setName(tr("KL(full ‖ policy)"));  // nats: the axis says so
    disagree_ = new QScatterSeries;
    disagree_->setName(tr("tokens differ"));
    fullChoice_ = new QLineSeries;
    fullChoice_->setName(tr("p(full's token)"));
    chart->addSeries(kl_);
    chart->addSeries(disagree_);
    chart->addSeries(fullChoice_);
    x_ = new QValueAxis;
    x_->setTitleText(tr("token position"));
    x_->setLabelFormat("%d");
    y_ = new QValueAxis;
    y_->setTitleText(tr("KL (nats)"));
    y_->setLabelFormat("%.3g");
    p_ = new QValueAxis;
    p_->setTitleText(tr("probability"));
    p_->setRange(0, 1);
    p_->setTickCount(6);            // 0, 0.2 … 1: each labelled with its own value in "%.1f"
    p_->setGridLineVisible(false);  // the KL axis draws the grid: one grid, not two
    p_->setLabelFormat("%.1f");
    chart->addAxis(x_, Qt::AlignBottom);
    chart->addAxis(y_, Qt::AlignLeft);
    chart->addAxis(p_, Qt::AlignRight);
    for (QAbstractSeries* s : std::initializer_list<QAbstractSeries*>{kl_, disagree_}) {
        s->attachAxis(x_);
        s->attachAxis(y_);
    }
    fullChoice_->attachAxis(x_);
    fullChoice_->attachAxis(p_);
    chart->legend()->setAlignment(Qt::AlignBottom);
    setChart(chart);
    setRenderHint(QPainter::Antialiasing);
    setMinimumSize(360, 260);
    connect(store_, &TraceStore::modelChanged, this, &DriftChart::rebuild);
    connect(store_, &TraceStore::tokensReset, this, &DriftChart::rebuild);
    connect(store_, &TraceStore::tokenAppended, this, &DriftChart::rebuild);
    connect(store_, &TraceStore::truncated, this, &DriftChart::rebuild);
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this, &DriftChart::applyTheme);
    applyTheme();
    rebuild();
}

void DriftChart::applyTheme() {
    applyChartTheme(this, {x_, y_, p_});
    const SeriesStyle st = seriesStyle(currentTheme());
    kl_->setPen(QPen(st.primary, penWidth(3)));
    disagree_->setColor(st.fifth);
    disagree_->setBorderColor(st.fifth);
    disagree_->setMarkerSize(8);
    fullChoice_->setPen(QPen(st.second, penWidth(2), Qt::DashLine));
}

void DriftChart::rebuild() {
    QList<QPointF> kl, p, off;
    measured_ = agreed_ = 0;
    double klSum = 0, klMax = 0;
    for (const StepTrace& t : store_->traces()) {
        if (!t.hasDrift()) continue;
        ++measured_;
        agreed_ += t.driftTop1 == 1 ? 1 : 0;
        klSum += t.driftKl;
        klMax = std::max(klMax, static_cast<double>(t.driftKl));
        kl << QPointF(t.position, t.driftKl);
        p << QPointF(t.position, t.driftFullChoiceProb);
        if (t.driftTop1 == 0) off << QPointF(t.position, t.driftKl);
    }
    kl_->replace(kl);
    fullChoice_->replace(p);
    disagree_->replace(off);
    // Whole token positions: at least 0..10 and nice numbers, so that every tick is an integer
    // ("%d" had labelled 2.75 as "2" at 11 tokens), as the latency chart's.
    x_->setRange(0, std::max(10, store_->count()));
    x_->applyNiceNumbers();
    y_->setRange(0, klMax > 0 ? klMax * 1.1 : 1e-3);
    y_->applyNiceNumbers();
    const std::string policy = store_->hasModel() ? store_->model().cache.eviction.text() : "none";
    const KvType type = store_->hasModel() ? store_->model().cache.type : KvType::F32;
    chart()->setTitle(tr("Drift from the full cache"));
    if (measured_ == 0) {
        caption_ =
            tr("Choose a cache policy or a K/V type below f32 (side panel): each token's "
               "next-token distribution is then compared with the full f32 cache's on the "
               "same tokens.");
    } else {
        caption_ =
            tr("Policy %1, K/V %2, against the full f32 cache on the same tokens, measured: "
               "the same first token at %3 of %4 tokens (%5%), mean KL %6 nats, largest "
               "%7. Dots: a token where the two put different tokens first.")
                .arg(QString::fromStdString(policy), QString::fromStdString(kvTypeName(type)))
                .arg(agreed_)
                .arg(measured_)
                .arg(100.0 * agreed_ / measured_, 0, 'f', 1)
                .arg(klSum / measured_, 0, 'g', 3)
                .arg(klMax, 0, 'g', 3);
    }
    emit captionChanged(caption_);
}

}  // namespace kvscope::viz
