// KvBytesChart and ContextChart: Qt Charts series filled from kvmem::Result values.
#include "charts/calculator_charts.h"

#include <QBarCategoryAxis>
#include <QBarSet>
#include <QChart>
#include <QHorizontalStackedBarSeries>
#include <QLegend>
#include <QLegendMarker>
#include <QLineSeries>
#include <QPen>
#include <QValueAxis>
#include <algorithm>

#include "charts/chart_theme.h"
#include "common/labels.h"
#include "common/theme.h"

namespace kvscope::viz {
namespace {

// The unit for a largest value: bytes below 4 KiB, KiB below 4 MiB, then MiB, then GiB.
double unitFor(double top) {
    if (top >= 4.0 * (1 << 30)) return double(1 << 30);
    if (top >= 4.0 * (1 << 20)) return double(1 << 20);
    if (top >= 4.0 * 1024) return 1024.0;
    return 1.0;
}
QString unitName(double unit) {
    if (unit == double(1 << 30)) return QStringLiteral("GiB");
    if (unit == double(1 << 20)) return QStringLiteral("MiB");
    if (unit == 1024.0) return QStringLiteral("KiB");
    return QStringLiteral("B");
}
QString human(double bytes) {
    return QString::fromStdString(kvmem::humanBytes(bytes));
}

}  // namespace

// -- KvBytesChart

KvBytesChart::KvBytesChart(QWidget* parent) : QChartView(parent) {
    auto* chart = new QChart;
    own_ = new QBarSet(tr("KV cache"));
    ghost_ = new QBarSet(tr("as if plain MHA (pale, dashed)"));
    auto* series = new QHorizontalStackedBarSeries;
    series->append(own_);
    series->append(ghost_);
    series->setBarWidth(0.7);
    chart->addSeries(series);
    names_ = new QBarCategoryAxis;
    values_ = new QValueAxis;
    values_->setLabelFormat("%.4g");
    chart->addAxis(names_, Qt::AlignLeft);
    chart->addAxis(values_, Qt::AlignBottom);
    series->attachAxis(names_);
    series->attachAxis(values_);
    names_->setTruncateLabels(false);  // the model names are the point: never "…"
    chart->legend()->setAlignment(Qt::AlignBottom);
    chart->legend()->hide();  // the title says what the ghost is, where it fits (fitTexts)
    chart->setMargins(QMargins(4, 4, 4, 4));
    setChart(chart);
    setRenderHint(QPainter::Antialiasing);
    setMinimumSize(300, 220);
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this, &KvBytesChart::applyTheme);
    connect(chart, &QChart::plotAreaChanged, this, &KvBytesChart::fitNamesFont);
    applyTheme();
}

void KvBytesChart::fitNamesFont() {
    // The axis leaves out every second name where a name is taller than its bar's slot (the
    // projector's type, 11 bars): the names' type steps down until each has its slot, to 7 pt.
    const int n = static_cast<int>(bars_.size());
    if (n == 0) return;
    const double slot = chart()->plotArea().height() / n;
    QFont font = currentTheme().smallFont;
    while (font.pointSizeF() > 7 && kNameSpacing * QFontMetricsF(font).height() > slot)
        font.setPointSizeF(font.pointSizeF() - 0.5);
    if (font != names_->labelsFont()) {
        names_->setLabelsFont(font);
        fitTexts();  // the names' widths changed
    }
}

void KvBytesChart::applyTheme() {
    const Theme& t = currentTheme();
    applyChartTheme(this, {values_});
    names_->setLabelsColor(t.text);
    names_->setLabelsFont(t.smallFont);
    fitNamesFont();
    fitTexts();  // measured in this theme's type
    names_->setGridLineVisible(false);
    const SeriesStyle st = seriesStyle(t);
    own_->setColor(st.second);
    own_->setBorderColor(st.second);
    QColor pale = t.mutedText;
    pale.setAlphaF(0.16f);
    ghost_->setColor(pale);
    ghost_->setPen(QPen(t.mutedText, penWidth(1), Qt::DashLine));
}

void KvBytesChart::setResults(const std::vector<kvmem::Result>& results, const QString& dtypeName) {
    bars_.clear();
    double top = 1;
    for (const kvmem::Result& r : results) {
        bars_.push_back({QString::fromStdString(r.model.name), r.bytesPerToken,
                         std::max(r.mhaBytesPerToken, r.bytesPerToken)});
        top = std::max(top, double(bars_.back().mhaBytesPerToken));
    }
    unit_ = unitFor(top);
    // Horizontal bars: the first category is drawn at the bottom, so the list goes in reversed.
    QList<qreal> own, ghost;
    for (auto it = bars_.rbegin(); it != bars_.rend(); ++it) {
        own << double(it->bytesPerToken) / unit_;
        ghost << double(it->mhaBytesPerToken - it->bytesPerToken) / unit_;
    }
    own_->remove(0, own_->count());
    ghost_->remove(0, ghost_->count());
    own_->append(own);
    ghost_->append(ghost);
    dtypeName_ = dtypeName;
    fitTexts();
    fitNamesFont();
    values_->setRange(0, top / unit_ * 1.05);
    values_->applyNiceNumbers();
    values_->setTitleVisible(false);  // the title says the unit: more height for the bars
}

void KvBytesChart::resizeEvent(QResizeEvent* event) {
    QChartView::resizeEvent(event);
    fitTexts();
}

void KvBytesChart::fitTexts() {
    const QString unit = unitName(unit_);
    const QString title =
        tr("KV cache per token (%1, %2) · pale, dashed: as if plain MHA").arg(unit, dtypeName_);
    const bool whole =
        QFontMetrics(chart()->titleFont()).horizontalAdvance(title) <= titleRoom(this);
    // where the title cannot say what the ghost is, the legend does
    chart()->setTitle(whole ? title : tr("KV cache per token (%1, %2)").arg(unit, dtypeName_));
    chart()->legend()->setVisible(!whole);
    // Each bar's name with its bytes where the widest takes at most kNamesShare of the width
    // (the chart gives its axis no more and cuts the rest), else the names alone: the value
    // axis still reads the bytes.
    const QFontMetrics fm(names_->labelsFont());
    QStringList full, bare;
    int widest = 0;
    for (auto it = bars_.rbegin(); it != bars_.rend(); ++it) {
        full << tr("%1 · %2").arg(it->name, human(double(it->bytesPerToken)));
        bare << it->name;
        widest = std::max(widest, fm.horizontalAdvance(full.back()));
    }
    const QStringList& names = widest <= kNamesShare * width() ? full : bare;
    if (names_->categories() != names) names_->setCategories(names);
}

QStringList KvBytesChart::namesShown() const {
    return names_->categories();
}

QFont KvBytesChart::namesFont() const {
    return names_->labelsFont();
}

double KvBytesChart::drawnBytes(int bar) const {
    const int n = static_cast<int>(bars_.size());
    return bar >= 0 && bar < n ? own_->at(n - 1 - bar) * unit_ : 0.0;
}

double KvBytesChart::drawnMhaBytes(int bar) const {
    const int n = static_cast<int>(bars_.size());
    return bar >= 0 && bar < n ? (own_->at(n - 1 - bar) + ghost_->at(n - 1 - bar)) * unit_ : 0.0;
}

// -- ContextChart

ContextChart::ContextChart(QWidget* parent) : QChartView(parent) {
    auto* chart = new QChart;
    auto add = [chart](const QString& name) {
        auto* s = new QLineSeries;
        s->setName(name);
        chart->addSeries(s);
        return s;
    };
    mha_ = add(tr("as if plain MHA"));
    cache_ = add(tr("this model's cache"));
    gpuRoom_ = add(tr("GPU memory left after the weights"));
    device_ = add(tr("this device's memory"));
    x_ = new QValueAxis;
    x_->setTitleVisible(false);  // the title says it: more height for the curves
    x_->setTruncateLabels(false);
    x_->setLabelFormat("%d");
    y_ = new QValueAxis;
    y_->setLabelFormat("%.4g");
    chart->addAxis(x_, Qt::AlignBottom);
    chart->addAxis(y_, Qt::AlignLeft);
    for (QAbstractSeries* s : chart->series()) {
        s->attachAxis(x_);
        s->attachAxis(y_);
    }
    chart->legend()->setAlignment(Qt::AlignBottom);
    chart->setMargins(QMargins(4, 4, 4, 4));
    setChart(chart);
    setRenderHint(QPainter::Antialiasing);
    setMinimumSize(300, 160);
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this, &ContextChart::applyTheme);
    applyTheme();
}

void ContextChart::applyTheme() {
    const Theme& t = currentTheme();
    applyChartTheme(this, {x_, y_});
    const SeriesStyle st = seriesStyle(t);
    cache_->setPen(QPen(st.second, penWidth(4)));
    cache_->setColor(st.second);
    QColor pale = t.mutedText;
    mha_->setPen(QPen(pale, penWidth(2), Qt::DashLine));
    mha_->setColor(pale);
    gpuRoom_->setPen(QPen(st.primary, penWidth(2)));
    gpuRoom_->setColor(st.primary);
    device_->setPen(QPen(st.third, penWidth(2), Qt::DotLine));
    device_->setColor(st.third);
    fitTitle();  // measured in this theme's type
}

void ContextChart::setResults(const std::vector<kvmem::Result>& atContexts,
                              const QString& deviceName, uint64_t deviceMemoryBytes) {
    for (QLineSeries* s : {cache_, mha_, gpuRoom_, device_}) s->clear();
    lastFitting_ = 0;
    if (atContexts.empty()) return;
    const kvmem::Result& last = atContexts.back();
    double top = 1;
    for (const kvmem::Result& r : atContexts) {
        top = std::max({top, double(r.totalBytes), double(r.mhaTotalBytes)});
        if (r.fits) lastFitting_ = r.context;
    }
    // A line far above the curves would flatten them: drawn only within 20 times their top,
    // else said in the title.
    const double room = last.gpu.memoryBytes - last.weightBytes;
    const bool drawRoom = room > 0 && room <= 20 * top;
    const bool drawDevice = deviceMemoryBytes > 0 && double(deviceMemoryBytes) <= 20 * top;
    if (drawRoom) top = std::max(top, room);
    if (drawDevice) top = std::max(top, double(deviceMemoryBytes));
    unit_ = unitFor(top);
    QList<QPointF> cache, mha;
    for (const kvmem::Result& r : atContexts) {
        cache << QPointF(double(r.context), double(r.totalBytes) / unit_);
        mha << QPointF(double(r.context), double(r.mhaTotalBytes) / unit_);
    }
    cache_->replace(cache);
    mha_->replace(mha);
    const double x0 = double(atContexts.front().context), x1 = double(last.context);
    if (drawRoom) gpuRoom_->replace({{x0, room / unit_}, {x1, room / unit_}});
    if (drawDevice)
        device_->replace(
            {{x0, double(deviceMemoryBytes) / unit_}, {x1, double(deviceMemoryBytes) / unit_}});
    gpuRoom_->setName(tr("%1 after the weights (%2)")
                          .arg(QString::fromStdString(last.gpu.name), human(std::max(0.0, room))));
    device_->setName(tr("%1: %2").arg(deviceName, human(double(deviceMemoryBytes))));
    for (QLegendMarker* m : chart()->legend()->markers(gpuRoom_)) m->setVisible(drawRoom);
    for (QLegendMarker* m : chart()->legend()->markers(device_)) m->setVisible(drawDevice);
    setWholeRange(x_, static_cast<int>(last.context));
    y_->setRange(0, top / unit_ * 1.08);
    y_->applyNiceNumbers();
    y_->setTitleText(last.batch > 1 ? tr("%1, batch %2").arg(unitName(unit_)).arg(last.batch)
                                    : unitName(unit_));
    const QString model = QString::fromStdString(last.model.name);
    const QString gpu = QString::fromStdString(last.gpu.name);
    cache_->setName(tr("%1's cache").arg(model));
    QString status;
    if (room <= 0)
        status = tr("its weights alone overflow the %1").arg(gpu);
    else if (last.fits)
        status = tr("fits the %1 up to %L2").arg(gpu).arg(last.context);
    else
        status = tr("overflows the %1 after ~%L2").arg(gpu).arg(lastFitting_);
    status_ = status;
    fitTitle();
}

void ContextChart::resizeEvent(QResizeEvent* event) {
    QChartView::resizeEvent(event);
    fitTitle();
}

void ContextChart::fitTitle() {
    if (status_.isEmpty()) return;
    const QString title = firstThatFits(QFontMetrics(chart()->titleFont()),
                                        {tr("Cache by context (tokens): %1").arg(status_),
                                         tr("Cache by context: %1").arg(status_), status_},
                                        titleRoom(this));
    chart()->setTitle(title);
    // the status alone: the x axis says what it counts
    x_->setTitleText(tr("context (tokens)"));
    x_->setTitleVisible(title == status_);
}

}  // namespace kvscope::viz
