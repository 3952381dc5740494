// LogitLensPanel: asks for the lens of the inspected token and paints one row per layer.
#include "views/logit_lens_panel.h"

#include <QFontMetrics>
#include <QPainter>
#include <algorithm>
#include <cmath>

#include "common/labels.h"
#include "common/theme.h"
#include "common/trace_store.h"

namespace kvscope::viz {

namespace {

constexpr int kMargin = 12;

QString percentText(double p) {
    if (p >= 0.1) return QString::number(100 * p, 'f', 1) + "%";
    if (p >= 0.001) return QString::number(100 * p, 'f', 2) + "%";
    return formatValue(100 * p) + "%";
}

}  // namespace

LogitLensPanel::LogitLensPanel(TraceStore* store, QWidget* parent)
    : QWidget(parent), store_(store) {
    setObjectName("logitLens");
    setAccessibleName(tr("Logit lens"));
    setToolTip(
        tr("Logit lens: the model's final norm and output head applied to the residual "
           "stream after each layer, for the token before the inspected one. Each row "
           "shows what the model would have predicted had it stopped there; the last row "
           "is its real prediction."));
    auto forget = [this] {
        requested_ = -1;
        refresh();
    };
    connect(store_, &TraceStore::modelChanged, this, forget);
    connect(store_, &TraceStore::tokensReset, this, forget);
    connect(store_, &TraceStore::truncated, this, forget);
    connect(store_, &TraceStore::tokenAppended, this, &LogitLensPanel::refresh);
    connect(store_, &TraceStore::selectionChanged, this, &LogitLensPanel::refresh);
    connect(store_, &TraceStore::lensChanged, this, &LogitLensPanel::refresh);
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this,
            qOverload<>(&QWidget::update));
}

int LogitLensPanel::index() const {
    return store_->hasModel() && store_->count() > 0 ? store_->queryIndex() : -1;
}

QString LogitLensPanel::message() const {
    const int i = index();
    if (!store_->hasModel()) return tr("Load a model to look inside its layers.");
    if (i < 0) return tr("Prefill a prompt to see the prediction form layer by layer.");
    if (i == 0) return tr("Nothing predicts the first token: the lens starts at token 1.");
    if (!store_->trace(i - 1).hasResiduals())
        return tr("The traces of this run hold no residual stream, so there is no lens.");
    if (!store_->lens(i)) return tr("Computing the logit lens of token %1…").arg(i);
    return {};
}

void LogitLensPanel::showEvent(QShowEvent* event) {
    QWidget::showEvent(event);
    refresh();
}

void LogitLensPanel::refresh() {
    const int i = index();
    // Ask once per token (and per sequence length, so a token decoded again is asked again),
    // and only when seen: the lens costs the output head once per layer.
    if (isVisible() && i > 0 && !store_->lens(i) && store_->trace(i - 1).hasResiduals() &&
        (requested_ != i || requestedCount_ != store_->count())) {
        requested_ = i;
        requestedCount_ = store_->count();
        emit lensWanted(i);
    }
    update();
}

void LogitLensPanel::paintEvent(QPaintEvent*) {
    const Theme& th = currentTheme();
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    p.fillRect(rect(), th.background);
    const int W = width(), H = height();
    const QFontMetrics fmT(th.titleFont), fmL(th.labelFont), fmS(th.smallFont);
    int y = 6;
    p.setPen(th.text);
    p.setFont(th.titleFont);
    const QString title = tr("Logit lens: the guess after each layer");
    p.drawText(QRect(kMargin, y, W - 2 * kMargin, fmT.height()), Qt::AlignLeft,
               firstThatFits(fmT, {title, tr("Logit lens, per layer")}, W - 2 * kMargin));
    y += fmT.height() + 2;
    const QString note = message();
    const int i = index();
    const LogitLens* lens = note.isEmpty() ? store_->lens(i) : nullptr;
    p.setFont(th.smallFont);
    p.setPen(th.mutedText);
    const QString sub =
        lens ? tr("The final norm and output head applied to token %1's residual stream after "
                  "each layer (“logit lens”, a way to look inside; early layers were not trained "
                  "to predict). Bar: p(“%2”), the token that came next.")
                   .arg(i - 1)
                   .arg(tokenLabel(store_->trace(i).text))
             : QString();
    const QRect subRect = fmS.boundingRect(QRect(kMargin, y, W - 2 * kMargin, H), Qt::TextWordWrap,
                                           sub.isEmpty() ? note : sub);
    p.drawText(subRect, Qt::TextWordWrap, sub.isEmpty() ? note : sub);
    y = subRect.bottom() + 8;
    topShown_ = 0;
    if (!lens) return;

    // one row per layer, or every k-th layer (and the last) when they do not fit
    const int L = static_cast<int>(lens->layers.size());
    const int minRow = fmS.height() + 2;
    const int avail = H - y - 6;
    int every = 1;
    while ((L + every - 1) / every * minRow > avail && every < L) ++every;
    std::vector<int> shown;
    for (int l = 0; l < L; l += every) shown.push_back(l);
    if (shown.back() != L - 1) shown.push_back(L - 1);
    const int rowH = std::clamp(avail / static_cast<int>(shown.size()), minRow, 2 * minRow);
    // the bar holds "p #rank": wide enough for the widest shown (the projector's larger font
    // had clipped the rank), short of the row's end
    const auto barText = [&](const LogitLensLayer& layer) {
        return tr("%1 #%2").arg(percentText(layer.targetProb)).arg(layer.targetRank + 1);
    };
    int barW = std::min(120, std::max(60, W / 5));
    for (const int l : shown)
        barW = std::max(barW,
                        fmS.horizontalAdvance(barText(lens->layers[static_cast<size_t>(l)])) + 8);
    // The row labels and top-token entries in the longest forms that leave room for each row's
    // first entry whole (a narrow panel, the projector's type): "layer 3" then "L3", "␣and
    // 82.2%" then "␣and".
    const auto rowLabel = [&](int l, bool brief) {
        if (l == L - 1) return brief ? tr("L%1 (out)").arg(l) : tr("layer %1 = output").arg(l);
        return brief ? tr("L%1").arg(l) : tr("layer %1").arg(l);
    };
    const auto entry = [&](const LogitLensLayer& layer, size_t k, bool withP) {
        const QString token = tokenLabel(layer.topText[k]);
        return withP ? QString("%1 %2").arg(token, percentText(layer.topProb[k])) : token;
    };
    bool brief = false, withP = true;
    int labelW = 0, textX = 0, textW = 0;
    const std::pair<bool, bool> forms[] = {{false, true}, {true, true}, {true, false}};
    for (const auto& [b, wp] : forms) {
        brief = b;
        withP = wp;
        labelW = 0;
        int firstW = 0;
        for (const int l : shown) {
            const LogitLensLayer& layer = lens->layers[static_cast<size_t>(l)];
            labelW = std::max(labelW, fmS.horizontalAdvance(rowLabel(l, brief)) + 6);
            if (!layer.top.empty())
                firstW = std::max(firstW, fmS.horizontalAdvance(entry(layer, 0, withP)));
        }
        const int bw = std::max(0, std::min(barW, W - 2 * kMargin - labelW - 8));
        textX = kMargin + labelW + bw + 8;
        textW = W - kMargin - textX;
        if (firstW <= textW) break;
    }
    barW = std::max(0, std::min(barW, W - 2 * kMargin - labelW - 8));
    const int barX = kMargin + labelW;
    topShown_ = 5;
    barTextsFit_ = true;
    topTokensWhole_ = true;
    briefLabels_ = brief;
    for (size_t r = 0; r < shown.size(); ++r) {
        const int l = shown[r];
        const LogitLensLayer& layer = lens->layers[static_cast<size_t>(l)];
        const QRect row(kMargin, y + static_cast<int>(r) * rowH, W - 2 * kMargin, rowH - 1);
        const bool last = l == L - 1;
        p.setFont(th.smallFont);
        p.setPen(last ? th.text : th.mutedText);
        p.drawText(QRect(row.left(), row.top(), labelW, row.height()),
                   Qt::AlignLeft | Qt::AlignVCenter, rowLabel(l, brief));
        // the bar: p(target) after this layer, with its rank
        const QRect bar(barX, row.top() + 2, barW, row.height() - 4);
        p.fillRect(bar, th.panel);
        const int filled =
            static_cast<int>(std::lround(layer.targetProb * static_cast<float>(barW)));
        p.fillRect(QRect(bar.left(), bar.top(), filled, bar.height()), last ? th.accent : th.fresh);
        p.setPen(th.text);
        p.drawText(bar.adjusted(4, 0, -2, 0), Qt::AlignLeft | Qt::AlignVCenter, barText(layer));
        barTextsFit_ = barTextsFit_ && fmS.horizontalAdvance(barText(layer)) + 6 <= barW;
        // the lens's top tokens, as many as fit
        QStringList parts;
        for (size_t k = 0; k < layer.top.size(); ++k) parts << entry(layer, k, withP);
        QString text = parts.join("  ·  ");
        while (parts.size() > 1 && fmS.horizontalAdvance(text) > textW) {
            parts.removeLast();
            text = parts.join("  ·  ");
        }
        topShown_ = std::min(topShown_, static_cast<int>(parts.size()));
        topTokensWhole_ = topTokensWhole_ && fmS.horizontalAdvance(text) <= textW;
        p.setPen(last ? th.text : th.mutedText);
        p.drawText(QRect(textX, row.top(), textW, row.height()), Qt::AlignLeft | Qt::AlignVCenter,
                   fmS.elidedText(text, Qt::ElideRight, textW));
    }
    if (every > 1) {
        p.setPen(th.mutedText);
        p.drawText(QRect(kMargin, H - fmS.height() - 2, W - 2 * kMargin, fmS.height()),
                   Qt::AlignRight, tr("every %1th layer shown, and the last").arg(every));
    }
}

}  // namespace kvscope::viz
