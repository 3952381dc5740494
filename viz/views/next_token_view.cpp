// NextTokenView: the candidates under the sampler's settings (the same cuts as
// runtime/sampler.cpp, applied to the stored top logits), the control row and the painting.
#include "views/next_token_view.h"

#include <QDoubleSpinBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPainter>
#include <QResizeEvent>
#include <QSpinBox>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

#include "common/labels.h"
#include "common/theme.h"
#include "common/trace_store.h"
#include "core/step_trace.h"
#include "views/logit_lens_panel.h"

namespace kvscope::viz {

std::vector<NextTokenBar> nextTokenBars(const StepTrace& t, const NextTokenSettings& s,
                                        bool* exact) {
    std::vector<NextTokenBar> bars;
    const size_t n = t.top.size();
    if (exact) *exact = true;
    if (n == 0) return bars;
    const bool greedy = s.temperature <= 0 || s.topK == 1;
    // T as the sampler holds it (a float), so that both cut at the same place
    const double T = s.temperature > 0 ? double(static_cast<float>(s.temperature)) : 1.0;
    const bool atOne = T == 1.0 && std::isfinite(t.logZ);
    // 1. probabilities at T: exact over the whole vocabulary at T = 1 (logZ), else renormalised
    //    over the stored candidates
    std::vector<double> prob(n);
    if (atOne) {
        for (size_t i = 0; i < n; ++i) prob[i] = std::exp(double(t.top[i].second) - t.logZ);
    } else {
        double sum = 0;
        for (size_t i = 0; i < n; ++i) {
            prob[i] = std::exp((double(t.top[i].second) - t.top[0].second) / T);
            sum += prob[i];
        }
        for (double& p : prob) p /= sum;
    }
    // 2. top-k candidates and their probabilities as the sampler sees them: renormalised over
    //    the top-k when there is a limit (exact: all of them are stored), else prob
    const bool kWithin = s.topK > 0 && static_cast<size_t>(s.topK) <= n;
    const size_t k = s.topK > 0 ? std::min(n, static_cast<size_t>(s.topK)) : n;
    std::vector<double> q(prob.begin(), prob.begin() + static_cast<std::ptrdiff_t>(k));
    if (kWithin) {
        double sum = 0;
        for (size_t i = 0; i < k; ++i) {
            q[i] = std::exp((double(t.top[i].second) - t.top[0].second) / T);
            sum += q[i];
        }
        for (double& p : q) p /= sum;
    }
    if (exact) *exact = greedy || atOne || kWithin;
    // 3. top-p: the smallest prefix whose mass reaches topP (all stored when it is not reached)
    size_t keep = k;
    if (s.topP < 1.0) {
        double mass = 0;
        for (size_t i = 0; i < k; ++i) {
            mass += q[i];
            if (mass >= static_cast<float>(s.topP)) {
                keep = i + 1;
                break;
            }
        }
    }
    // 4. min-p: those at least minP times as likely as the best
    if (s.minP > 0) {
        size_t m = 1;
        while (m < keep && q[m] >= double(static_cast<float>(s.minP)) * q[0]) ++m;
        keep = m;
    }
    if (greedy) keep = 1;
    double kept = 0;
    for (size_t i = 0; i < keep; ++i) kept += q[i];
    // No cutoff at all: the draw is over the whole vocabulary, so "after" is p itself (not p
    // renormalised over the stored candidates)
    if (!greedy && s.topK <= 0 && s.topP >= 1.0 && s.minP <= 0) kept = 1;
    for (size_t i = 0; i < n; ++i) {
        NextTokenBar b;
        b.id = t.top[i].first;
        b.label = tokenLabel(i < t.topText.size() ? t.topText[i] : std::string());
        b.special = i < t.topSpecial.size() && t.topSpecial[i];
        b.logit = t.top[i].second;
        b.prob = prob[i];
        b.kept = i < keep;
        b.keptProb = b.kept ? q[i] / kept : 0;
        b.chosen = b.id == t.token;
        b.argmax = i == 0;
        bars.push_back(b);
    }
    return bars;
}

class NextTokenCanvas : public QWidget {
  public:
    explicit NextTokenCanvas(NextTokenView* view) : QWidget(view), view_(view) {
        setAttribute(Qt::WA_OpaquePaintEvent);
        setMinimumSize(420, 260);
    }

  protected:
    void paintEvent(QPaintEvent*) override { view_->paintCanvas(this); }

  private:
    NextTokenView* view_;
};

namespace {

constexpr int kMargin = 16;

QDoubleSpinBox* spin(double lo, double hi, double step, double value, const QString& tip) {
    auto* b = new QDoubleSpinBox;
    b->setRange(lo, hi);
    b->setSingleStep(step);
    b->setDecimals(2);
    b->setValue(value);
    b->setToolTip(tip);
    return b;
}

QString percent(double p) {
    if (p >= 0.1) return QString::number(100 * p, 'f', 1) + "%";
    if (p >= 0.001) return QString::number(100 * p, 'f', 2) + "%";
    return formatValue(100 * p) + "%";
}

}  // namespace

NextTokenView::NextTokenView(TraceStore* store, QWidget* parent) : QWidget(parent), store_(store) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(2);
    auto* row = new QHBoxLayout;
    row->setContentsMargins(kMargin, 6, kMargin, 0);
    temperature_ = spin(0, 5, 0.1, settings_.temperature,
                        tr("Divide the logits by T before the softmax: below 1 sharper, above 1 "
                           "flatter; 0 is greedy (always the largest logit)"));
    temperature_->setObjectName("temperature");
    topK_ = new QSpinBox;
    topK_->setObjectName("topK");
    topK_->setRange(0, 64);
    topK_->setSpecialValueText(tr("off"));
    topK_->setToolTip(tr("Keep only the k most likely tokens (0: off)"));
    topP_ = spin(0.01, 1, 0.05, settings_.topP,
                 tr("Keep the fewest most likely tokens whose probabilities add up to p (1: off)"));
    topP_->setObjectName("topP");
    minP_ = spin(0, 0.99, 0.01, settings_.minP,
                 tr("Keep the tokens at least min-p times as likely as the best one (0: off)"));
    minP_->setObjectName("minP");
    const std::pair<QString, QWidget*> controls[] = {{tr("Temperature"), temperature_},
                                                     {tr("top-k"), topK_},
                                                     {tr("top-p"), topP_},
                                                     {tr("min-p"), minP_}};
    for (const auto& [name, w] : controls) {
        auto* label = new QLabel(name);
        label->setBuddy(w);
        row->addWidget(label);
        row->addWidget(w);
        row->addSpacing(12);
    }
    row->addStretch(1);
    layout->addLayout(row);
    canvas_ = new NextTokenCanvas(this);
    lens_ = new LogitLensPanel(store_, this);
    // its minimum is not the view's: narrower than kLensFromWidth it is hidden (resizeEvent)
    lens_->setMinimumWidth(1);
    auto* body = new QHBoxLayout;
    body->setSpacing(0);
    body->addWidget(canvas_, 3);
    body->addWidget(lens_, 2);
    layout->addLayout(body, 1);

    auto changed = [this] {
        NextTokenSettings s;
        s.temperature = temperature_->value();
        s.topK = topK_->value();
        s.topP = topP_->value();
        s.minP = minP_->value();
        settings_ = s;
        refresh();
    };
    connect(temperature_, &QDoubleSpinBox::valueChanged, this, changed);
    connect(topK_, &QSpinBox::valueChanged, this, changed);
    connect(topP_, &QDoubleSpinBox::valueChanged, this, changed);
    connect(minP_, &QDoubleSpinBox::valueChanged, this, changed);
    for (auto signal :
         {&TraceStore::modelChanged, &TraceStore::tokensReset, &TraceStore::selectionChanged})
        connect(store_, signal, this, &NextTokenView::refresh);
    connect(store_, &TraceStore::tokenAppended, this, &NextTokenView::refresh);
    connect(store_, &TraceStore::truncated, this, &NextTokenView::refresh);
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this, &NextTokenView::refresh);
    refresh();
}

QSize NextTokenView::sizeHint() const {
    return {900, 620};
}

void NextTokenView::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    const bool hide = width() < kLensFromWidth;
    if (lens_->isHidden() == hide) return;
    lens_->setHidden(hide);
    layout()->activate();  // the bars take the width now, not at the next event loop turn
}

bool NextTokenView::summaryWhole() const {
    return summaryBottom_ <= canvas_->height();
}

void NextTokenView::setSettings(const NextTokenSettings& s) {
    // the controls hold the settings; each setValue redraws through `changed`
    const QSignalBlocker b1(temperature_), b2(topK_), b3(topP_), b4(minP_);
    temperature_->setValue(s.temperature);
    topK_->setValue(std::max(0, s.topK));
    topP_->setValue(s.topP);
    minP_->setValue(s.minP);
    settings_ = s;
    refresh();
}

int NextTokenView::index() const {
    return store_->count() > 0 ? store_->queryIndex() : -1;
}

void NextTokenView::refresh() {
    const int i = index();
    bars_ =
        i >= 0 ? nextTokenBars(store_->trace(i), settings_, &exact_) : std::vector<NextTokenBar>{};
    if (i < 0) exact_ = true;
    canvas_->update();
}

double NextTokenView::keptMass() const {
    double m = 0;
    for (const NextTokenBar& b : bars_)
        if (b.kept) m += b.prob;
    return m;
}

bool NextTokenView::cutoffBeyondStored() const {
    const int i = index();
    if (i < 0 || bars_.empty() || !bars_.back().kept) return false;
    const NextTokenSettings& s = settings_;
    if (s.temperature <= 0 || (s.topK > 0 && static_cast<size_t>(s.topK) <= bars_.size()))
        return false;
    if (bars_.size() >= static_cast<size_t>(store_->config().nVocab)) return false;
    // top-p reached exactly at the last stored candidate ends the cut there
    if (s.topP < 1.0 && keptMass() >= static_cast<float>(s.topP)) return false;
    return true;  // min-p: the unstored tokens may or may not pass it
}

double NextTokenView::entropyBits() const {
    const int i = index();
    if (i < 0 || bars_.empty()) return std::nan("");
    const StepTrace& t = store_->trace(i);
    const bool atOne = atTemperatureOne() && std::isfinite(t.entropy);
    if (atOne) return t.entropy / std::log(2.0);
    double sum = 0, h = 0;  // over the stored candidates, renormalised
    for (const NextTokenBar& b : bars_) sum += b.prob;
    for (const NextTokenBar& b : bars_)
        if (b.prob > 0) h -= (b.prob / sum) * std::log2(b.prob / sum);
    return h;
}

bool NextTokenView::atTemperatureOne() const {
    return settings_.temperature <= 0 || settings_.temperature == 1.0;  // greedy reads T = 1
}

QString NextTokenView::summary() const {
    const int i = index();
    if (i < 0 || bars_.empty()) return {};
    const StepTrace& t = store_->trace(i);
    const QString chosen = "“" + tokenLabel(t.text) + "”";
    const QString best = "“" + bars_.front().label + "”";
    const double pChosen = std::exp(double(t.chosenLogit) - t.logZ);
    QStringList lines;
    const QString rank = t.chosenRank >= 0 ? tr("#%1").arg(t.chosenRank + 1) : tr("unknown");
    if (t.prompt) {
        lines << tr("The prompt has %1 here; the model expected %2 (%3). It gave %1 %4, rank %5 "
                    "of the whole vocabulary.")
                     .arg(chosen, best, percent(bars_.front().prob), percent(pChosen), rank);
    } else {
        lines << tr("Chosen %1: p = %2 at T = 1, rank %3. Greedy (argmax) would pick %4%5.")
                     .arg(chosen, percent(pChosen), rank, best,
                          bars_.front().chosen ? tr(": the same token") : QString());
    }
    int kept = 0;
    for (const NextTokenBar& b : bars_) kept += b.kept;
    const double T = settings_.temperature > 0 ? settings_.temperature : 1.0;
    lines << tr("Kept after the cutoffs: %1 of the %2 stored candidates, %3 of the probability "
                "mass at T = %4%5; a draw picks among them in proportion to “after”.")
                 .arg(kept)
                 .arg(bars_.size())
                 .arg(percent(keptMass()))
                 .arg(settings_.temperature <= 0 ? tr("1 (greedy)") : QString::number(T))
                 .arg(atTemperatureOne() ? QString() : tr(" (of the stored ones)"));
    const bool entropyExact = atTemperatureOne() && std::isfinite(t.entropy);
    lines << tr("Entropy %1 bits (%2).")
                 .arg(QString::number(entropyBits(), 'f', 2),
                      entropyExact
                          ? tr("whole vocabulary, T = 1")
                          : tr("over the stored %1 candidates, renormalised").arg(bars_.size()));
    if (!t.prompt && cutoffBeyondStored())
        lines << tr("These cutoffs may keep more than the stored %1 candidates: a draw may also "
                    "pick a token not shown here.")
                     .arg(bars_.size());
    if (!exact_)
        lines << tr("At T ≠ 1 without a top-k limit the probabilities are renormalised over the "
                    "stored top %1 only (the rest of the vocabulary is not kept).")
                     .arg(bars_.size());
    if (t.hasDrift())  // the cache lab: this distribution against the full cache's
        lines << tr("Against the full f32 cache on the same tokens (cache policy %1, K/V %2): KL "
                    "%3 nats; %4; the full cache's first choice has p = %5 here.")
                     .arg(QString::fromStdString(store_->model().cache.eviction.text()),
                          QString::fromStdString(kvTypeName(store_->model().cache.type)))
                     .arg(QString::number(t.driftKl, 'g', 3))
                     .arg(t.driftTop1 == 1 ? tr("the same first choice")
                                           : tr("a different first choice"))
                     .arg(percent(t.driftFullChoiceProb));
    return lines.join('\n');
}

NextTokenView::Columns NextTokenView::columns(int W, const QFontMetrics& label,
                                              const QFontMetrics& small, int labelW,
                                              const QString& chosenTag) {
    constexpr int kMinBar = 40;
    Columns c;
    c.rankW = label.horizontalAdvance(QStringLiteral("#1000")) + 8;
    c.numW = label.horizontalAdvance(QStringLiteral("-00.00")) + 10;
    c.pctW = label.horizontalAdvance(QStringLiteral("100.0%")) + 12;
    const int fullTag = small.horizontalAdvance(chosenTag + tr(" · argmax")) + 12;
    const int shortTag = small.horizontalAdvance(chosenTag) + 12;
    const int minLabel = label.horizontalAdvance(QStringLiteral("MMM")) + 8;
    // what the token column, the bar and the tags share
    const int room = W - 2 * kMargin - c.rankW - c.numW - 8 - 6 - 2 * c.pctW;
    c.labelW = labelW;
    c.tagW = fullTag;
    if (c.labelW + kMinBar + c.tagW > room) {
        c.tagW = shortTag;
        c.shortTags = true;
    }
    // then the tags go (the chosen row is outlined, rank #1 is the argmax) before the tokens
    // themselves are cut
    if (c.labelW + kMinBar + c.tagW > room) c.tagW = 0;
    if (c.labelW + kMinBar > room) c.labelW = std::max(minLabel, room - kMinBar);
    c.barW = std::max(kMinBar, room - c.labelW - c.tagW);
    c.xRank = kMargin;
    c.xLabel = c.xRank + c.rankW;
    c.xLogit = c.xLabel + c.labelW;
    c.xBar = c.xLogit + c.numW + 8;
    c.xP = c.xBar + c.barW + 6;
    c.xAfter = c.xP + c.pctW;
    c.xTag = c.xAfter + c.pctW;
    return c;
}

void NextTokenView::paintCanvas(QWidget* canvas) {
    const Theme& th = currentTheme();
    QPainter p(canvas);
    p.setRenderHint(QPainter::Antialiasing);
    const int W = canvas->width(), H = canvas->height();
    p.fillRect(canvas->rect(), th.background);
    const QFontMetrics fmT(th.titleFont), fmL(th.labelFont), fmS(th.smallFont);
    const int i = index();
    if (!store_->hasModel() || i < 0) {
        p.setPen(th.mutedText);
        p.setFont(th.labelFont);
        p.drawText(canvas->rect(), Qt::AlignCenter,
                   store_->hasModel() ? tr("Prefill a prompt to see how each token was picked.")
                                      : tr("Load a model to see its next-token distribution."));
        shownRows_ = 0;
        summaryBottom_ = 0;
        return;
    }
    const StepTrace& t = store_->trace(i);
    // title and subtitle
    p.setPen(th.text);
    p.setFont(th.titleFont);
    // the longest form that fits the canvas: a title cut off mid-token shows nothing
    const int textW = W - 2 * kMargin;
    const QString label = tokenLabel(t.text);
    const QString title =
        t.prompt ? firstThatFits(fmT,
                                 {tr("Token %1 (prompt): what the model expected here").arg(i),
                                  tr("Token %1 (prompt)").arg(i)},
                                 textW)
                 : firstThatFits(fmT,
                                 {tr("Token %1: how the model picked “%2”").arg(i).arg(label),
                                  tr("Token %1: “%2”").arg(i).arg(label)},
                                 textW);
    p.drawText(QRect(kMargin, 6, textW, fmT.height()), Qt::AlignLeft, title);
    paintedTitle_ = title;
    paintedTitleRoom_ = textW;
    p.setFont(th.labelFont);
    p.setPen(th.mutedText);
    const QString sub = t.prompt ? tr("Teacher forcing: the logits after token %1 against the "
                                      "token the prompt actually has")
                                       .arg(i - 1)
                                 : tr("softmax(logit / T) over the vocabulary; bars of the top "
                                      "candidates, grey where a cutoff removes them");
    int y = 6 + fmT.height() + 2;
    // the subtitle wrapped where one line is too narrow, not cut (the rows below make room)
    const int subH =
        fmL.boundingRect(QRect(kMargin, y, textW, H), Qt::TextWordWrap | Qt::AlignLeft, sub)
            .height();
    p.drawText(QRect(kMargin, y, textW, subH), Qt::AlignLeft | Qt::TextWordWrap, sub);
    y += subH + 8;
    if (bars_.empty()) {
        p.drawText(QRect(kMargin, y, W - 2 * kMargin, H - y), Qt::AlignLeft | Qt::AlignTop,
                   i == 0 ? tr("The first token: nothing came before it, so nothing predicted it.")
                          : tr("This token was decoded without its distribution (top logits "
                               "were not kept)."));
        shownRows_ = 0;
        summaryBottom_ = 0;
        return;
    }
    // rows: the best candidates, and the chosen token on a row of its own when it is not
    // among them (a prompt token the model did not expect)
    int chosenAt = -1;
    for (size_t r = 0; r < bars_.size(); ++r)
        if (bars_[r].chosen) chosenAt = static_cast<int>(r);
    const int rowH = std::max(fmL.height() + 6, 20);
    const int headerH = fmS.height() + 4;
    // summary below the bars: measured first, in the small type where the label type leaves
    // no room for two rows (a small exported figure)
    const QString text = summary();
    const QRect textBox(kMargin, 0, W - 2 * kMargin, H);
    const int leastRows = H - y - headerH - 2 * rowH - fmS.height() - 8;
    const QFont& summaryFont =
        fmL.boundingRect(textBox, Qt::TextWordWrap | Qt::AlignLeft, text).height() + 12 > leastRows
            ? th.smallFont
            : th.labelFont;
    const QFontMetrics fmSum(summaryFont);
    const QRect need = fmSum.boundingRect(textBox, Qt::TextWordWrap | Qt::AlignLeft, text);
    const int summaryH = need.height() + 12;
    const int avail = H - y - headerH - summaryH - fmS.height() - 8;
    shownRows_ = std::clamp(avail / rowH, 1, static_cast<int>(bars_.size()));
    const bool extraRow = chosenAt < 0 || chosenAt >= shownRows_;
    if (extraRow && shownRows_ > 1) --shownRows_;
    // columns: rank · token · logit · bar · p · after · tags
    int wantLabelW = fmL.horizontalAdvance(QStringLiteral("MMMMMMMM"));
    for (int r = 0; r < shownRows_; ++r)
        wantLabelW =
            std::max(wantLabelW, fmL.horizontalAdvance(bars_[static_cast<size_t>(r)].label) + 8);
    wantLabelW = std::min(wantLabelW, W / 4);
    const QString chosenTag = t.prompt ? tr("in the prompt") : tr("chosen");
    const Columns cols = columns(W, fmL, fmS, wantLabelW, chosenTag);
    const int xRank = cols.xRank, rankW = cols.rankW, xLabel = cols.xLabel, labelW = cols.labelW,
              xLogit = cols.xLogit, numW = cols.numW, xBar = cols.xBar, barW = cols.barW,
              xP = cols.xP, xAfter = cols.xAfter, pctW = cols.pctW, xTag = cols.xTag,
              tagW = cols.tagW;
    p.setFont(th.smallFont);
    p.setPen(th.mutedText);
    p.drawText(QRect(xLabel, y, labelW, headerH), Qt::AlignLeft, tr("token"));
    p.drawText(QRect(xLogit, y, numW, headerH), Qt::AlignRight, tr("logit"));
    const double T = settings_.temperature > 0 ? settings_.temperature : 1.0;
    const QString barHead =
        tr("probability at T = %1%2")
            .arg(T)
            .arg(atTemperatureOne() ? tr(" (whole vocabulary)")
                                    : tr(" (over the stored %1)").arg(bars_.size()));
    const int barHeadW = barW + pctW - fmS.horizontalAdvance(QStringLiteral("p")) - 8;
    p.drawText(QRect(xBar, y, barHeadW, headerH), Qt::AlignLeft,
               firstThatFits(fmS, {barHead, tr("probability at T = %1").arg(T), tr("probability")},
                             barHeadW));
    p.drawText(QRect(xP, y, pctW, headerH), Qt::AlignRight, tr("p"));
    p.drawText(QRect(xAfter, y, pctW, headerH), Qt::AlignRight, tr("after"));
    y += headerH;
    const double maxP = std::max(1e-12, bars_.front().prob);
    const SeriesStyle series = seriesStyle(th);
    // one row; a NaN prob: not known at this temperature
    auto drawRow = [&](int top, int rank, const NextTokenBar& b) {
        if (b.chosen) {
            QColor hl = th.accent;
            hl.setAlpha(50);
            p.fillRect(QRect(kMargin - 4, top, W - 2 * kMargin + 8, rowH - 1), hl);
            p.setPen(QPen(th.accent, penWidth(1.5)));
            p.setBrush(Qt::NoBrush);
            p.drawRect(QRectF(kMargin - 4, top, W - 2 * kMargin + 8, rowH - 1));
        }
        const QColor textColor = b.kept || b.chosen ? th.text : th.mutedText;
        p.setFont(th.smallFont);
        p.setPen(th.mutedText);
        p.drawText(QRect(xRank, top, rankW, rowH), Qt::AlignLeft | Qt::AlignVCenter,
                   QString("#%1").arg(rank));
        p.setFont(th.labelFont);
        QRect labelRect(xLabel, top + 2, labelW - 6, rowH - 4);
        if (b.special)  // special tokens on amber, as the token strip marks them
            p.fillRect(labelRect, QColor(255, 191, 0, 90));
        p.setPen(textColor);
        p.drawText(labelRect.adjusted(3, 0, 0, 0), Qt::AlignLeft | Qt::AlignVCenter,
                   fmL.elidedText(b.label, Qt::ElideRight, labelRect.width() - 4));
        p.drawText(QRect(xLogit, top, numW, rowH), Qt::AlignRight | Qt::AlignVCenter,
                   QString::number(b.logit, 'f', 2));
        if (std::isfinite(b.prob)) {
            const int len = std::max(1, static_cast<int>(std::round(barW * b.prob / maxP)));
            p.fillRect(QRect(xBar, top + 3, len, rowH - 6), b.kept ? series.primary : th.grid);
        }
        p.setPen(textColor);
        p.drawText(QRect(xP, top, pctW, rowH), Qt::AlignRight | Qt::AlignVCenter,
                   std::isfinite(b.prob) ? percent(b.prob) : QStringLiteral("–"));
        p.drawText(QRect(xAfter, top, pctW, rowH), Qt::AlignRight | Qt::AlignVCenter,
                   b.kept ? percent(b.keptProb) : QStringLiteral("–"));
        QStringList tags;
        if (b.chosen) tags << chosenTag;
        if (b.argmax) tags << tr("argmax");
        if (!tags.isEmpty() && tagW > 0) {  // short tags: the first (chosen; it is rank #1 when
            p.setFont(th.smallFont);        // it is also the argmax)
            p.setPen(b.chosen ? th.accent : th.mutedText);
            p.drawText(QRect(xTag + 6, top, tagW - 6, rowH), Qt::AlignLeft | Qt::AlignVCenter,
                       firstThatFits(fmS, {tags.join(" · "), tags.front()}, tagW - 6));
        }
    };
    for (int r = 0; r < shownRows_; ++r)
        drawRow(y + r * rowH, r + 1, bars_[static_cast<size_t>(r)]);
    y += shownRows_ * rowH;
    p.setFont(th.smallFont);
    p.setPen(th.mutedText);
    if (shownRows_ < static_cast<int>(bars_.size())) {
        p.drawText(QRect(xLabel, y + 2, W - xLabel - kMargin, fmS.height()), Qt::AlignLeft,
                   tr("⋮ %1 more stored candidates not drawn").arg(bars_.size() - shownRows_));
        y += fmS.height() + 4;
    }
    if (extraRow) {
        NextTokenBar c;
        if (chosenAt >= 0) {
            c = bars_[static_cast<size_t>(chosenAt)];
        } else {  // not among the stored: its logit and rank were stored on their own
            c.id = t.token;
            c.label = tokenLabel(t.text);
            c.special = t.special;
            c.logit = t.chosenLogit;
            c.prob = atTemperatureOne() ? std::exp(double(t.chosenLogit) - t.logZ) : std::nan("");
            c.chosen = true;
        }
        drawRow(y, chosenAt >= 0 ? chosenAt + 1 : t.chosenRank + 1, c);
        y += rowH;
    }
    y += 4;
    p.setFont(summaryFont);
    p.setPen(th.text);
    p.drawText(QRect(kMargin, y + 4, W - 2 * kMargin, H - y - 4),
               Qt::TextWordWrap | Qt::AlignLeft | Qt::AlignTop, text);
    summaryBottom_ = y + 4 + need.height();
}

}  // namespace kvscope::viz
