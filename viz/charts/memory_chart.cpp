// MemoryChart: series rebuilt from the TraceStore on each of its signals.
#include "charts/memory_chart.h"

#include <QChart>
#include <QFontMetrics>
#include <QGraphicsLayout>
#include <QLegend>
#include <QLegendMarker>
#include <QLineSeries>
#include <QPen>
#include <QValueAxis>
#include <algorithm>

#include "analysis/kv_memory.h"
#include "charts/chart_theme.h"
#include "common/colormap.h"
#include "common/theme.h"
#include "common/trace_store.h"

namespace kvscope::viz {
namespace {
QLineSeries* addSeries(QChart* chart, const QString& name) {
    auto* s = new QLineSeries;
    s->setName(name);
    chart->addSeries(s);
    return s;
}
}  // namespace

MemoryChart::MemoryChart(TraceStore* store, QWidget* parent) : QChartView(parent), store_(store) {
    auto* chart = new QChart;
    allocated_ = addSeries(chart, tr("allocated"));
    used_ = addSeries(chart, tr("used"));
    formula_ = addSeries(chart, tr("formula"));  // over the measurement: where they agree
    projection_ = addSeries(chart, tr("projected"));
    weights_ = addSeries(chart, tr("weights"));
    full_ = addSeries(chart, tr("full cache"));  // measured, beside a lossy cache policy
    mha_ = addSeries(chart, tr("plain MHA"));    // beside a GQA or MQA model's
    weights_->setVisible(false);  // on request: it would set the scale, not the cache
    x_ = new QValueAxis;
    x_->setTitleText(tr("tokens in the cache"));
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
    setChart(chart);
    setShowWeights(false);
    setRenderHint(QPainter::Antialiasing);
    setMinimumSize(360, 260);

    connect(store_, &TraceStore::modelChanged, this, &MemoryChart::rebuild);
    connect(store_, &TraceStore::tokensReset, this, &MemoryChart::rebuild);
    connect(store_, &TraceStore::tokenAppended, this, &MemoryChart::rebuild);
    connect(store_, &TraceStore::truncated, this, &MemoryChart::rebuild);
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this, &MemoryChart::applyTheme);
    applyTheme();
    rebuild();
}

void MemoryChart::applyTheme() {
    const Theme& t = currentTheme();
    applyChartTheme(this, {x_, y_});
    // Every series its own colour and its own dash (Okabe–Ito hues: apart in colour-blind
    // vision and in greyscale print by the dash alone).
    const SeriesStyle st = seriesStyle(t);
    used_->setPen(QPen(st.primary, penWidth(5)));
    used_->setColor(st.primary);
    formula_->setPen(QPen(st.second, penWidth(2), Qt::DashLine));
    projection_->setPen(QPen(st.third, penWidth(2), Qt::DotLine));
    allocated_->setPen(QPen(t.mutedText, penWidth(2), Qt::DashDotLine));
    weights_->setPen(QPen(st.fourth, penWidth(2), Qt::DashDotDotLine));
    full_->setPen(QPen(st.fifth, penWidth(3), Qt::DashLine));
    // its own dash (long, short, long; allocated is dash-dot) and the full cache's colour (the
    // two are never drawn together: a cache policy's chart has no MHA line); grey, as allocated,
    // its legend square could not be told from allocated's
    QPen mha(st.fifth, penWidth(2), Qt::CustomDashLine);
    mha.setDashPattern({6, 2, 1, 2});
    mha_->setPen(mha);
}

void MemoryChart::resizeEvent(QResizeEvent* event) {
    placeLegend();  // first: the chart lays out once, at its new size, with the legend placed
    QChartView::resizeEvent(event);
}

void MemoryChart::placeLegend() {
    QLegend* legend = chart()->legend();
    const QFontMetrics fm(legend->font());
    int line = 0;  // an entry: its marker, a gap, its name and the space to the next
    for (QLegendMarker* marker : legend->markers())
        if (marker->isVisible() && marker->series()->isVisible())
            line += 2 * fm.height() + fm.horizontalAdvance(marker->label());
    const QMargins m = chart()->margins();
    const int room = width() - m.left() - m.right() - 2 * fm.height();
    const Qt::Alignment want = line <= room ? Qt::AlignBottom : Qt::AlignRight;
    if (legend->alignment() != want) legend->setAlignment(want);
    // the narrower plot beside it takes the short axis title (the chart's title says "tokens")
    x_->setTitleText(want == Qt::AlignBottom ? tr("tokens in the cache") : tr("tokens"));
}

void MemoryChart::setShowWeights(bool show) {
    showWeights_ = show;
    weights_->setVisible(show);
    for (QLegendMarker* marker : chart()->legend()->markers(weights_)) marker->setVisible(show);
    rebuild();  // places the legend for the entries now shown
}

void MemoryChart::rebuild() {
    for (QLineSeries* s : {used_, allocated_, formula_, projection_, weights_, full_, mha_})
        s->clear();
    if (!store_->hasModel()) {
        for (QLegendMarker* marker : chart()->legend()->markers(mha_)) marker->setVisible(false);
        return;
    }
    const ModelSummary& m = store_->model();
    const ModelConfig& c = m.config;
    // The formula for the loaded model's cache: 2 × layers × kv heads × head dim × the bytes of
    // the element type the backend stores (4 for f32, 2 for f16, 34/32 and 18/32 for the q8_0
    // and q4_0 blocks of 32 values).
    const KvType type = m.cache.type;
    const double elementBytes = static_cast<double>(kvRowBytes(type, 32)) / 32.0;
    const double perToken = 2.0 * c.nLayer * c.nHeadKv * c.headDim * elementBytes;
    const QString typeText = type == KvType::F32 ? QStringLiteral("float32")
                             : type == KvType::F16
                                 ? QStringLiteral("f16")
                                 : QString::fromStdString(kvTypeName(type)) + tr(" blocks of 32");
    // An eviction policy holds at most S + H + W − 1 tokens' rows between steps.
    const EvictionPolicy& policy = m.cache.eviction;
    const double held = policy.evicts() ? policy.budget() - 1 : 1e300;
    const double nCtx = c.nCtx;
    const double xMax = nCtx;  // the axis ends where the context does
    // The scale is made for the cache: its full-context size or its allocation. The weights
    // (often far larger) draw only on request and are stated in the caption.
    size_t fullTop = 0;
    for (const StepTrace& t : store_->traces()) fullTop = std::max(fullTop, t.fullKvBytes);
    // What plain multi-head attention would hold: one K/V head per query head. Not under a
    // cache policy, whose own comparison (the full cache, measured) the chart then shows.
    const bool shared = c.nHeadKv < c.nHead && !policy.evicts();
    const double mhaPerToken = perToken * c.nHead / c.nHeadKv;
    // It sets the scale up to 4 times the cache's (a quarter-size cache then fills a quarter of
    // the height, the point of the line); beyond that it runs off the top, its figure in words.
    const double cacheTop = perToken * std::min(xMax, held);
    const double top =
        std::max({cacheTop, shared ? std::min(mhaPerToken * xMax, 4 * cacheTop) : 0.0,
                  static_cast<double>(store_->kvAllocatedBytes()), static_cast<double>(fullTop),
                  showWeights_ ? static_cast<double>(m.weightBytes) : 0.0});
    unit_ = top >= 4.0 * (1 << 30)   ? double(1 << 30)
            : top >= 4.0 * (1 << 20) ? double(1 << 20)
                                     : 1024.0;
    const QString unitName = unit_ == double(1 << 30)   ? "GiB"
                             : unit_ == double(1 << 20) ? "MiB"
                                                        : "KiB";
    const auto y = [this](double bytes) { return bytes / unit_; };

    // Measured: the prompt enters the cache in one prefill, then one token per step.
    // Allocated, measured too: a step up each time the cache takes another block (or one level
    // line when the backend reserves the whole context).
    QList<QPointF> used{{0, 0}}, full;
    QList<QPointF> allocated{{0, y(static_cast<double>(m.cacheAllocatedBytes))}};
    const int n = store_->count();
    double lastX = 0;
    for (int i = 0; i < n; ++i) {
        const StepTrace& t = store_->trace(i);
        if (t.prompt && i + 1 < store_->promptLength()) continue;
        used << QPointF(i + 1, y(static_cast<double>(t.kvBytes)));
        if (t.fullKvBytes > 0) {
            if (full.isEmpty()) full << QPointF(0, 0);
            full << QPointF(i + 1, y(static_cast<double>(t.fullKvBytes)));
        }
        // the tokens from lastX to i + 1 took the new blocks: the step stands where they begin
        const double a = y(static_cast<double>(t.kvAllocatedBytes));
        if (allocated.back().y() != a) {
            if (allocated.back().x() != lastX) allocated << QPointF(lastX, allocated.back().y());
            allocated << QPointF(lastX, a);
        }
        lastX = i + 1;
    }
    allocated << QPointF(m.cacheBlockTokens > 0 ? double(n) : nCtx, allocated.back().y());
    used_->replace(used);
    allocated_->replace(allocated);
    full_->replace(full);
    for (QLegendMarker* marker : chart()->legend()->markers(full_))
        marker->setVisible(!full.isEmpty());
    // the formula (under a policy: capped at what it holds), then projected to the context
    const auto formulaAt = [&](double tokens) { return y(perToken * std::min(tokens, held)); };
    QList<QPointF> formula{{0, 0}}, projection{{double(n), formulaAt(n)}};
    if (held < n) formula << QPointF(held, formulaAt(held));
    formula << QPointF(n, formulaAt(n));
    if (held > n && held < xMax) projection << QPointF(held, formulaAt(held));
    projection << QPointF(xMax, formulaAt(xMax));
    formula_->replace(formula);
    projection_->replace(projection);
    if (shared) mha_->replace({{0, 0}, {xMax, y(mhaPerToken * xMax)}});
    for (QLegendMarker* marker : chart()->legend()->markers(mha_)) marker->setVisible(shared);
    // a marker shown again after being hidden keeps no room in the legend until it lays out
    if (QGraphicsLayout* layout = chart()->legend()->layout()) layout->invalidate();
    placeLegend();
    weights_->replace({{0, y(static_cast<double>(m.weightBytes))},
                       {xMax, y(static_cast<double>(m.weightBytes))}});
    setWholeRange(x_, static_cast<int>(xMax));
    y_->setRange(0, y(top) * 1.08);
    y_->setTitleText(tr("bytes (%1)").arg(unitName));
    y_->applyNiceNumbers();
    chart()->setTitle(tr("KV cache memory: %L1 of %L2 tokens").arg(n).arg(c.nCtx));
    const auto human = [](double b) { return QString::fromStdString(kvmem::humanBytes(b)); };
    caption_ =
        tr("Formula: 2 (K and V) × %1 layers × %2 kv heads × %3 head dim × %10 B (%11) = "
           "%L4 B per token. Measured now: %5 used by %L6 tokens, %7 allocated %8. "
           "Dotted: the formula projected to the full context. The weights take %9, not "
           "drawn to this scale.")
            .arg(c.nLayer)
            .arg(c.nHeadKv)
            .arg(c.headDim)
            .arg(static_cast<qulonglong>(perToken))
            .arg(human(static_cast<double>(store_->kvBytes())))
            .arg(n)
            .arg(human(static_cast<double>(store_->kvAllocatedBytes())))
            .arg(m.cacheBlockTokens > 0
                     ? tr("in blocks of %L1 tokens, as tokens arrive").arg(m.cacheBlockTokens)
                     : tr("for all %L1 tokens of the context at once").arg(c.nCtx))
            .arg(human(static_cast<double>(m.weightBytes)))
            .arg(elementBytes)
            .arg(typeText);
    if (shared)
        caption_ += tr(" Long-short dashes: plain multi-head attention, one K/V head for each "
                       "of the %1 query heads, would take %L2 B per token, %3× as much; here "
                       "%4 query heads share each K/V head.")
                        .arg(c.nHead)
                        .arg(static_cast<qulonglong>(mhaPerToken))
                        .arg(static_cast<double>(c.nHead) / c.nHeadKv)
                        .arg(c.nHead / c.nHeadKv);
    if (policy.evicts())
        caption_ += tr(" Cache policy %1: at most %L2 tokens' K and V are held between steps; "
                       "the full cache on the same tokens holds %3.")
                        .arg(QString::fromStdString(policy.text()))
                        .arg(policy.budget() - 1)
                        .arg(human(static_cast<double>(
                            store_->traces().empty() ? 0 : store_->traces().back().fullKvBytes)));
    if (m.deviceMemoryBytes > 0) {
        // The device's memory dwarfs a small model's cache: said in words, not drawn to scale.
        const double whole = static_cast<double>(m.weightBytes) + perToken * nCtx;
        caption_ += tr(" The device has %1 of memory; weights and full cache take %2 of it.")
                        .arg(human(static_cast<double>(m.deviceMemoryBytes)))
                        .arg(QString::number(
                                 100.0 * whole / static_cast<double>(m.deviceMemoryBytes), 'g', 3) +
                             "%");
    }
    emit captionChanged(caption_);
}

}  // namespace kvscope::viz
