// LatencyChart: series rebuilt from the TraceStore's traces and the comparison it was given.
#include "charts/latency_chart.h"

#include <QFontMetrics>
#include <QLegendMarker>

#include <QChart>
#include <QLineSeries>
#include <QPen>
#include <QScatterSeries>
#include <QValueAxis>
#include <algorithm>
#include <vector>

#include "charts/chart_theme.h"
#include "common/labels.h"
#include "common/theme.h"
#include "common/trace_store.h"

namespace kvscope::viz {

LatencyChart::LatencyChart(TraceStore* store, QWidget* parent) : QChartView(parent), store_(store) {
    auto* chart = new QChart;
    cached_ = new QLineSeries;
    cached_->setName(tr("cached"));
    recompute_ = new QLineSeries;
    recompute_->setName(tr("no cache"));
    device_ = new QLineSeries;
    device_->setName(tr("device time"));
    prefill_ = new QScatterSeries;
    prefill_->setName(tr("prefill"));
    recomputePrefill_ = new QScatterSeries;
    recomputePrefill_->setName(tr("no-cache prefill"));
    prefillPerToken_ = new QLineSeries;
    prefillPerToken_->setName(tr("per prompt token"));
    speculative_ = new QLineSeries;
    speculative_->setName(tr("speculative"));
    for (QAbstractSeries* s :
         std::initializer_list<QAbstractSeries*>{cached_, recompute_, device_, prefillPerToken_,
                                                 speculative_, prefill_, recomputePrefill_})
        chart->addSeries(s);
    x_ = new QValueAxis;
    x_->setTitleText(tr("token position"));
    x_->setLabelFormat("%d");
    y_ = new QValueAxis;
    y_->setTitleText(tr("host time (ms)"));
    chart->addAxis(x_, Qt::AlignBottom);
    chart->addAxis(y_, Qt::AlignLeft);
    for (QAbstractSeries* s : chart->series()) {
        s->attachAxis(x_);
        s->attachAxis(y_);
    }
    chart->legend()->setAlignment(Qt::AlignBottom);
    // the per-token prefill line is named in the caption: the legend stays one line at 1280×720
    for (QLegendMarker* marker : chart->legend()->markers(prefillPerToken_))
        marker->setVisible(false);
    setChart(chart);
    setRenderHint(QPainter::Antialiasing);
    setMinimumSize(360, 260);
    // the y axis's title as long as the plot is high: "ms" where "host time (ms)" would be cut
    // (presenter mode at 1024 x 768); the caption says whose time it is
    connect(chart, &QChart::plotAreaChanged, this, [this](const QRectF& plot) {
        const QString full = tr("host time (ms)");
        const QFontMetrics fm(y_->titleFont());
        const QString want =  // Qt Charts keeps about a line's height of the axis clear
            fm.horizontalAdvance(full) + fm.height() <= plot.height() ? full : tr("ms");
        if (y_->titleText() != want) y_->setTitleText(want);
    });

    connect(store_, &TraceStore::modelChanged, this, [this] {
        cmpTokens_.clear();
        rebuild();
    });
    connect(store_, &TraceStore::tokensReset, this, [this] {
        cmpTokens_.clear();
        rebuild();
    });
    connect(store_, &TraceStore::tokenAppended, this, &LatencyChart::rebuild);
    connect(store_, &TraceStore::truncated, this, &LatencyChart::rebuild);
    connect(store_, &TraceStore::roundChanged, this, &LatencyChart::rebuild);
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this, &LatencyChart::applyTheme);
    applyTheme();
    rebuild();
}

void LatencyChart::setComparison(const QList<int>& tokens, int promptLength, double prefillMs,
                                 const QList<double>& stepMs) {
    cmpTokens_ = tokens;
    cmpPromptLength_ = promptLength;
    cmpPrefillMs_ = prefillMs;
    cmpStepMs_ = stepMs;
    rebuild();
}

void LatencyChart::applyTheme() {
    const Theme& t = currentTheme();
    applyChartTheme(this, {x_, y_});
    // Every series its own colour and its own line or marker shape.
    const SeriesStyle st = seriesStyle(t);
    cached_->setPen(QPen(st.primary, penWidth(3)));
    recompute_->setPen(QPen(st.fifth, penWidth(3), Qt::DashLine));
    prefillPerToken_->setPen(QPen(st.second, penWidth(3), Qt::DotLine));
    speculative_->setPen(QPen(st.fourth, penWidth(3), Qt::DashDotLine));
    device_->setPen(QPen(t.mutedText, penWidth(2), Qt::DotLine));
    prefill_->setColor(st.second);
    prefill_->setBorderColor(t.text);
    prefill_->setMarkerSize(14);
    recomputePrefill_->setColor(st.third);
    recomputePrefill_->setBorderColor(t.text);
    recomputePrefill_->setMarkerSize(10);
    recomputePrefill_->setMarkerShape(QScatterSeries::MarkerShapeRectangle);
}

void LatencyChart::rebuild() {
    const int n = store_->count();
    const int prompt = store_->promptLength();
    // The comparison counts only while it replayed the store's own tokens.
    bool same = !cmpTokens_.isEmpty() && cmpPromptLength_ == prompt;
    for (int i = 0; same && i < std::min(n, static_cast<int>(cmpTokens_.size())); ++i)
        same = cmpTokens_[i] == store_->trace(i).token;

    QList<QPointF> cached, recompute, device, speculative;
    double top = 0;
    // Tokens of a round still on show (verified, not yet resolved) are left out until it ends.
    const SpeculativeRound* open =
        store_->roundPhase() == TraceStore::RoundPhase::Verified ? store_->round() : nullptr;
    for (int i = prompt; i < n; ++i) {
        if (open && i >= open->first) break;
        if (const TraceStore::RoundRecord* r = store_->roundOf(i)) {
            const double per = r->hostMs / r->kept();
            speculative << QPointF(i, per);
            top = std::max(top, per);
            continue;
        }
        const double ms = store_->trace(i).hostMs;
        cached << QPointF(i, ms);
        if (store_->trace(i).deviceMs >= 0) device << QPointF(i, store_->trace(i).deviceMs);
        top = std::max(top, ms);
        const int k = i - prompt;
        if (same && k < cmpStepMs_.size()) {
            recompute << QPointF(i, cmpStepMs_[k]);
            top = std::max(top, cmpStepMs_[k]);
        }
    }
    cached_->replace(cached);
    speculative_->replace(speculative);
    recompute_->replace(recompute);
    device_->replace(device);
    device_->setVisible(!device.isEmpty());  // no legend entry for a time that was not measured
    for (QLegendMarker* marker : chart()->legend()->markers(device_))
        marker->setVisible(!device.isEmpty());
    prefill_->clear();
    recomputePrefill_->clear();
    prefillPerToken_->clear();
    if (prompt > 0) {
        // the prompt's one pass shared by its tokens, across their positions
        prefillPerToken_->append(0, prefillPerTokenMs());
        prefillPerToken_->append(prompt - 1, prefillPerTokenMs());
        prefill_->append(prompt - 1, store_->prefillMs());
        top = std::max(top, store_->prefillMs());
        if (same) {
            recomputePrefill_->append(prompt - 1, cmpPrefillMs_);
            top = std::max(top, cmpPrefillMs_);
        }
    }
    // the legend names only what is drawn: it stays one line at 1280 × 720
    for (QAbstractSeries* series :
         std::initializer_list<QAbstractSeries*>{speculative_, recompute_, recomputePrefill_}) {
        const bool drawn = static_cast<QXYSeries*>(series)->count() > 0;
        series->setVisible(drawn);
        for (QLegendMarker* marker : chart()->legend()->markers(series)) marker->setVisible(drawn);
    }
    ratio_ = 0;
    ratioPosition_ = -1;
    if (!recompute.isEmpty()) {
        const QPointF r = recompute.last();
        const double c = store_->trace(static_cast<int>(r.x())).hostMs;
        if (c > 0) {
            ratio_ = r.y() / c;
            ratioPosition_ = static_cast<int>(r.x());
        }
    }
    QString title = tr("Time per token (measured)"), shortTitle = tr("Time per token");
    if (n == 0) {
        title = tr("Time per token: nothing decoded yet");
        caption_ =
            tr("Press Prefill or Step (F10): the time of the prompt's one pass and of "
               "every new token appears here, measured on the host.");
    } else {
        caption_ = tr("Each dot and line is measured wall time on the host. The prefill runs the "
                      "%n prompt token(s) in one pass: %1 ms to the first new token (time to "
                      "first token, TTFT).",
                      nullptr, prompt)
                       .arg(store_->prefillMs(), 0, 'f', 2);
        // "1.0× less" (or "0.8× less") would misread a measurement where batching did not pay
        if (const double gain = medianStepMs() / std::max(prefillPerTokenMs(), 1e-9);
            medianStepMs() > 0 && prompt > 1 && gain >= 1.1)
            caption_ += tr(" Per prompt token (the dotted line across the prompt) that is %1 ms, "
                           "against %2 ms for a decode step (median): %3× less, because the "
                           "prefill multiplies all prompt tokens by each weight matrix at once, "
                           "while a step reads every weight for one token.")
                            .arg(prefillPerTokenMs(), 0, 'f', 3)
                            .arg(medianStepMs(), 0, 'f', 3)
                            .arg(gain, 0, 'f', 1);
        else if (medianStepMs() > 0 && prompt > 1)
            caption_ += tr(" Per prompt token (the dotted line across the prompt) that is %1 ms, "
                           "against %2 ms for a decode step (median): no less this time. A "
                           "prefill usually wins by multiplying all prompt tokens by each weight "
                           "matrix at once; here its time went elsewhere.")
                            .arg(prefillPerTokenMs(), 0, 'f', 3)
                            .arg(medianStepMs(), 0, 'f', 3);
    }
    if (ratioPosition_ >= 0) {
        title = tr("Time per token: %1× slower without the cache").arg(ratio_, 0, 'f', 1);
        shortTitle = tr("%1× slower without the cache").arg(ratio_, 0, 'f', 1);
        caption_ += tr(" Replayed without the cache (same tokens): at token %1, %2 ms vs %3 ms "
                       "with it = %4× (measured). Without a cache every step recomputes K and V "
                       "of all earlier tokens, so its time grows with the position.")
                        .arg(ratioPosition_)
                        .arg(recompute.last().y(), 0, 'f', 2)
                        .arg(store_->trace(ratioPosition_).hostMs, 0, 'f', 2)
                        .arg(ratio_, 0, 'f', 1);
    } else if (n > prompt) {
        caption_ += tr(" Press “Compare without cache” to replay these tokens without it.");
    }
    if (!store_->rounds().empty()) {
        long long drafted = 0, accepted = 0, kept = 0;
        for (const TraceStore::RoundRecord& r : store_->rounds())
            drafted += r.drafted, accepted += r.accepted, kept += r.kept();
        const double spec = speculativeMsPerToken(), plain = plainStepMs();
        caption_ += tr(" Speculative decoding: %n round(s), %1 tokens drafted, %2 accepted "
                       "(%3%), %4 tokens kept; each round's time ÷ its tokens is %5 ms a token "
                       "(the dash-dot line).",
                       nullptr, static_cast<int>(store_->rounds().size()))
                        .arg(drafted)
                        .arg(accepted)
                        .arg(drafted > 0 ? 100.0 * static_cast<double>(accepted) /
                                               static_cast<double>(drafted)
                                         : 0.0,
                             0, 'f', 0)
                        .arg(kept)
                        .arg(spec, 0, 'f', 2);
        if (plain > 0) {
            caption_ += tr(" Plain steps in this run: %1 ms a token (median), so speculative "
                           "decoding takes %2× the time per token.")
                            .arg(plain, 0, 'f', 2)
                            .arg(spec / plain, 0, 'f', 2);
            if (ratioPosition_ < 0) {
                title = tr("Time per token: speculative %1 ms, plain %2 ms")
                            .arg(spec, 0, 'f', 2)
                            .arg(plain, 0, 'f', 2);
                shortTitle =
                    tr("Speculative %1 ms, plain %2 ms").arg(spec, 0, 'f', 2).arg(plain, 0, 'f', 2);
            }
        } else {
            caption_ += tr(" Step without speculative decoding to measure plain steps beside it.");
        }
    }
    titles_ = {title, shortTitle};
    applyTitle();
    emit captionChanged(caption_);
    // Whole token positions: at least 0..10, so the ticks are integers even before a step.
    x_->setRange(0, std::max(n, 10));
    x_->applyNiceNumbers();
    y_->setRange(0, top > 0 ? top * 1.1 : 1);
    y_->applyNiceNumbers();
}

double LatencyChart::prefillPerTokenMs() const {
    const int prompt = store_->promptLength();
    return prompt > 0 ? store_->prefillMs() / prompt : 0.0;
}

double LatencyChart::speculativeMsPerToken() const {
    double ms = 0;
    long long kept = 0;
    for (const TraceStore::RoundRecord& r : store_->rounds()) ms += r.hostMs, kept += r.kept();
    return kept > 0 ? ms / static_cast<double>(kept) : 0.0;
}

double LatencyChart::plainStepMs() const {
    // up to a round still on show (verified, not yet resolved)
    const int end = store_->roundPhase() == TraceStore::RoundPhase::Verified
                        ? store_->round()->first
                        : store_->count();
    std::vector<double> ms;
    for (int i = store_->promptLength(); i < end; ++i)
        if (!store_->roundOf(i)) ms.push_back(store_->trace(i).hostMs);
    if (ms.empty()) return 0.0;
    const auto mid = ms.begin() + static_cast<std::ptrdiff_t>(ms.size() / 2);
    std::nth_element(ms.begin(), mid, ms.end());
    return *mid;
}

double LatencyChart::medianStepMs() const {
    return plainStepMs();
}

void LatencyChart::applyTitle() {
    if (titles_.isEmpty()) return;
    const QMarginsF m = chart()->margins();
    const int room = width() - static_cast<int>(m.left() + m.right()) - 16;
    chart()->setTitle(titles_.size() > 1 ? firstThatFits(QFontMetrics(chart()->titleFont()),
                                                         {titles_[0], titles_[1]}, room)
                                         : titles_[0]);
}

void LatencyChart::resizeEvent(QResizeEvent* event) {
    QChartView::resizeEvent(event);
    applyTitle();
}

}  // namespace kvscope::viz
