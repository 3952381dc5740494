// AllHeadsView: max-pooled thumbnails, the grid layout with layer and head labels and K/V
// groups, clicks and tooltips.
#include "views/all_heads_view.h"

#include <QMouseEvent>
#include <QPainter>
#include <algorithm>

#include "common/colormap.h"
#include "common/figure.h"
#include "common/labels.h"
#include "common/theme.h"
#include "common/tooltip.h"
#include "common/trace_store.h"

namespace kvscope::viz {

namespace {

constexpr int kMargin = 16;
// Room for "layer 00" at the label font in use (it grows with the window's text size).
int layerLabelWidth() {
    return std::max(
        74,
        QFontMetrics(currentTheme().labelFont).horizontalAdvance(QStringLiteral("layer 00")) + 14);
}
constexpr int kMaxSide = 150;

// The smallest thumbnail side: 12 px, less for deep models so that 32 layers still fit a
// 720-line screen (5 px at 32 layers: a coloured cell, the tooltip tells the rest).
int minSide(int nLayer) {
    return std::clamp(160 / std::max(1, nLayer), 3, 12);
}
// The gap between thumbnails of a side.
int gapFor(int side) {
    return side < 12 ? 1 : side < 40 ? 4 : 8;
}

int ceilDiv(int a, int b) {
    return (a + b - 1) / b;
}

}  // namespace

AllHeadsView::AllHeadsView(TraceStore* store, QWidget* parent) : QWidget(parent), store_(store) {
    setMouseTracking(true);
    setAttribute(Qt::WA_OpaquePaintEvent);
    connect(store_, &TraceStore::modelChanged, this, &AllHeadsView::rebuild);
    connect(store_, &TraceStore::tokensReset, this, &AllHeadsView::rebuild);
    connect(store_, &TraceStore::tokenAppended, this, &AllHeadsView::onAppended);
    connect(store_, &TraceStore::truncated, this, &AllHeadsView::onTruncated);
    connect(store_, &TraceStore::selectionChanged, this, qOverload<>(&QWidget::update));
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this, &AllHeadsView::rebuild);
    rebuild();
}

QSize AllHeadsView::sizeHint() const {
    const int n = std::max(1, std::max(nLayer_, nHead_));
    const int side = std::clamp(720 / n, 40, 96);
    return {std::max(600, kMargin * 2 + layerLabelWidth() + std::max(nHead_, 4) * (side + 8)),
            kMargin * 2 + 110 + std::max(nLayer_, 4) * (side + 8)};
}

QSize AllHeadsView::minimumSizeHint() const {
    const int side = minSide(nLayer_), gap = gapFor(side);
    return {kMargin * 2 + layerLabelWidth() + std::max(nHead_, 4) * (side + gap),
            kMargin * 2 + 110 + std::max(nLayer_, 4) * (side + gap)};
}

QImage AllHeadsView::thumbnail(int layer, int head) const {
    if (rows_ == 0 || layer < 0 || layer >= nLayer_ || head < 0 || head >= nHead_) return {};
    const int g = ceilDiv(rows_, block_);
    return thumbs_[static_cast<size_t>(layer * nHead_ + head)].copy(0, 0, g, g);
}

void AllHeadsView::rebuild() {
    emptyMessage_.clear();
    nLayer_ = store_->hasModel() ? store_->config().nLayer : 0;
    nHead_ = store_->hasModel() ? store_->config().nHead : 0;
    rows_ = 0;
    if (!store_->hasModel()) {
        emptyMessage_ = tr("Load a model to see all of its heads.");
    } else if (store_->count() == 0) {
        emptyMessage_ = tr("Prefill a prompt to see the attention of every layer and head.");
    } else if (!store_->trace(store_->count() - 1).hasTensors()) {
        emptyMessage_ = tr("These tokens were decoded without traces: no attention to show.");
    }
    // Filled with the masked colour: cells above the diagonal never change after that.
    thumbs_.clear();
    for (int k = 0; k < nLayer_ * nHead_; ++k) {
        QImage img(kThumbCells, kThumbCells, QImage::Format_RGB32);
        img.fill(currentTheme().panel);
        thumbs_.push_back(img);
    }
    if (emptyMessage_.isEmpty()) {
        rows_ = store_->count();
        block_ = blockFor(rows_);
        poolRowsFrom(0);
    }
    updateGeometry();
    update();
}

int AllHeadsView::blockFor(int rows) const {
    // Whole cells of the store's pooled thumbnails per pixel, so that a pixel is pooled from
    // them (cost: pixels, not tokens; and rows the traces let go are only there).
    const int block = std::max(1, ceilDiv(rows, kThumbCells));
    const int pool = store_->thumbnailPool();
    return pool * ceilDiv(block, pool);
}

void AllHeadsView::poolRowsFrom(int pixelRow) {
    const ColorScale scale = ColorScale::weights();
    const QRgb masked = currentTheme().panel.rgb();
    const int g = ceilDiv(rows_, block_);
    const int pool = store_->thumbnailPool(), side = store_->thumbnailSide();
    // Whole store thumbnail cells per pixel: pooling them costs pixels, not tokens, per head
    // (and rows the traces let go are only there).
    const bool fromThumbnails = block_ % pool == 0 && !store_->headThumbnail(0, 0).empty();
    const int k = fromThumbnails ? block_ / pool : 0;  // store cells per pixel side
    std::vector<float> pooled(static_cast<size_t>(g));
    for (int l = 0; l < nLayer_; ++l)
        for (int h = 0; h < nHead_; ++h) {
            QImage& img = thumbs_[static_cast<size_t>(l * nHead_ + h)];
            const std::span<const float> thumb = store_->headThumbnail(l, h);
            for (int py = pixelRow; py < g; ++py) {
                std::fill(pooled.begin(), pooled.end(), -1.0f);  // -1: masked
                if (fromThumbnails && !thumb.empty()) {
                    for (int tr = py * k; tr < std::min(side, (py + 1) * k); ++tr)
                        for (int tc = 0; tc <= tr; ++tc) {
                            float& cell = pooled[static_cast<size_t>(tc / k)];
                            cell = std::max(cell, thumb[static_cast<size_t>(tr) * side + tc]);
                        }
                }
                for (int r = py * block_; !fromThumbnails && r < std::min(rows_, (py + 1) * block_);
                     ++r) {
                    const std::span<const float> row = store_->attentionRow(r, l, h);
                    for (int c = 0; c <= r && static_cast<size_t>(c) < row.size(); ++c) {
                        float& cell = pooled[static_cast<size_t>(c / block_)];
                        cell = std::max(cell, row[static_cast<size_t>(c)]);
                    }
                }
                auto* line = reinterpret_cast<QRgb*>(img.scanLine(py));
                for (int px = 0; px < g; ++px) {
                    const float v = pooled[static_cast<size_t>(px)];
                    line[px] = v < 0 ? masked : scale.rgb(v);
                }
            }
        }
}

void AllHeadsView::onAppended(int index) {
    if (index != rows_ || rows_ == 0 || !store_->trace(index).hasTensors()) return rebuild();
    rows_ = index + 1;
    const int block = blockFor(rows_);
    if (block != block_) return rebuild();
    poolRowsFrom(index / block_);
    update();
}

void AllHeadsView::onTruncated(int count) {
    if (count == 0 || count > rows_) return rebuild();
    rows_ = count;
    const int block = blockFor(rows_);
    if (block != block_) return rebuild();
    poolRowsFrom((count - 1) / block_);
    update();
}

AllHeadsView::Grid AllHeadsView::grid() const {
    Grid gr;
    if (nLayer_ == 0 || nHead_ == 0) return gr;
    const Theme& th = currentTheme();
    const int titleH =
        QFontMetrics(th.titleFont).height() + 4 + QFontMetrics(th.labelFont).height();
    const int headLabelH = QFontMetrics(th.labelFont).height() * 2 + 10;
    gr.top = kMargin + titleH + 14 + headLabelH;
    gr.left = kMargin + layerLabelWidth();
    // The largest side whose own gap still fits both ways (a smaller side takes a smaller gap).
    gr.side = minSide(nLayer_);
    gr.gap = gapFor(gr.side);
    for (const int gap : {8, 4, 1}) {
        const int w = (width() - gr.left - kMargin - (nHead_ - 1) * gap) / nHead_;
        const int h = (height() - gr.top - kMargin - (nLayer_ - 1) * gap) / nLayer_;
        const int side = std::clamp(std::min(w, h), minSide(nLayer_), kMaxSide);
        if (gapFor(side) <= gap && side > gr.side) {
            gr.side = side;
            gr.gap = gapFor(side);
        }
    }
    return gr;
}

QRect AllHeadsView::cellRect(int layer, int head) const {
    const Grid gr = grid();
    if (gr.side == 0 || layer < 0 || layer >= nLayer_ || head < 0 || head >= nHead_) return {};
    return {gr.left + head * (gr.side + gr.gap), gr.top + layer * (gr.side + gr.gap), gr.side,
            gr.side};
}

std::optional<std::pair<int, int>> AllHeadsView::headAt(const QPoint& pos) const {
    for (int l = 0; l < nLayer_; ++l)
        for (int h = 0; h < nHead_; ++h)
            if (cellRect(l, h).contains(pos)) return std::make_pair(l, h);
    return std::nullopt;
}

void AllHeadsView::paintEvent(QPaintEvent*) {
    QPainter p(this);
    const Theme& th = currentTheme();
    const QFontMetrics fmT(th.titleFont), fmL(th.labelFont), fmS(th.smallFont);
    p.fillRect(rect(), th.background);
    p.setFont(th.titleFont);
    p.setPen(th.text);
    const QString title = tr("All heads: layers × heads");
    const int titleW = width() - 2 * kMargin;
    p.drawText(QRect(kMargin, kMargin, titleW, fmT.height()), Qt::AlignLeft | Qt::AlignVCenter,
               firstThatFits(fmT, {title, tr("All heads")}, titleW));
    const QRect sub(kMargin, kMargin + fmT.height() + 4, width() - 2 * kMargin, fmL.height());
    p.setFont(th.labelFont);
    p.setPen(th.mutedText);
    if (nLayer_ == 0 || rows_ == 0) {
        p.drawText(rect().adjusted(kMargin, sub.bottom() + 20, -kMargin, -kMargin),
                   Qt::AlignCenter | Qt::TextWordWrap, emptyMessage_);
        return;
    }
    const ModelConfig& cfg = store_->config();
    const bool grouped = cfg.nHeadKv < cfg.nHead;
    // the mouse's hint on a screen only, not in a figure
    const bool screen = !paintingFigure(this);
    const QString longSub =
        (block_ > 1 ? tr("%1 tokens; a pixel is the largest weight of %2 × %2 cells.")
                          .arg(rows_)
                          .arg(block_)
                    : tr("%1 tokens.").arg(rows_)) +
        (screen ? tr(" Click a head to inspect it.") : QString());
    const QString shortSub =
        (block_ > 1 ? tr("%1 tokens · pixel = max of %2 × %2").arg(rows_).arg(block_)
                    : tr("%1 tokens").arg(rows_)) +
        (screen ? tr(" · click a head") : QString());
    p.drawText(sub, Qt::AlignLeft | Qt::AlignVCenter,
               firstThatFits(fmL, {longSub, shortSub}, sub.width()));

    const Grid gr = grid();
    const int g = ceilDiv(rows_, block_);
    const int selL = store_->layer(), selH = store_->head(), selKv = store_->kvHead();
    // Head labels, and the K/V groups above them when heads share K/V heads.
    p.setFont(gr.side >= 36 ? th.labelFont : th.smallFont);
    const QFontMetrics fmH(p.font());
    const int headLabelY = gr.top - fmH.height() - 4;
    headLabels_.clear();
    for (int h = 0; h < nHead_; ++h) {
        const QRect c = cellRect(0, h);
        const QString text = gr.side >= 36 ? tr("head %1").arg(h) : QString::number(h);
        // every head where the numbers fit, else every second, fourth … (the widest decides)
        const int pitch = c.width() + gr.gap;
        const int labelW = fmH.horizontalAdvance(gr.side >= 36 ? tr("head %1").arg(nHead_ - 1)
                                                               : QString::number(nHead_ - 1));
        int every = 1;
        while (every * pitch < labelW + 2 && every < nHead_) every *= 2;
        if (h % every != 0) continue;
        p.setPen(h == selH ? th.accent : th.text);
        // centred on its column, as wide as it needs (every second … one is labelled where it
        // is wider than a column; a column-wide box had cut "head 2" to "ead 2")
        const int w = std::max(pitch, labelW + 4);
        const QRect box(c.center().x() - w / 2, headLabelY, w, fmH.height());
        p.drawText(box, Qt::AlignCenter, text);
        headLabels_.push_back({h, text, box, p.font()});
    }
    if (grouped) {
        const int perGroup = cfg.nHead / cfg.nHeadKv;
        const int y = headLabelY - fmS.height() - 6;
        p.setFont(th.smallFont);
        for (int kv = 0; kv < cfg.nHeadKv; ++kv) {
            const QRect a = cellRect(0, kv * perGroup),
                        b = cellRect(0, kv * perGroup + perGroup - 1);
            const QRect span(a.left(), y, b.right() - a.left() + 1, fmS.height());
            p.setPen(QPen(kv == selKv ? th.accent : th.mutedText, 2));
            p.drawLine(span.left(), span.bottom() + 3, span.right(), span.bottom() + 3);
            p.drawText(
                span, Qt::AlignCenter,
                fmS.elidedText(gr.side >= 28 ? tr("K/V head %1").arg(kv) : tr("kv%1").arg(kv),
                               Qt::ElideRight, span.width()));
        }
    }
    // Layer labels and thumbnails.
    p.setFont(gr.side >= 36 ? th.labelFont : th.smallFont);
    for (int l = 0; l < nLayer_; ++l) {
        const QRect c0 = cellRect(l, 0);
        p.setPen(l == selL ? th.accent : th.text);
        const int every =
            std::max(1, (fmH.height() + c0.height() + gr.gap - 1) / (c0.height() + gr.gap));
        if (l % every == 0)
            p.drawText(QRect(kMargin, c0.top(), layerLabelWidth() - 10, c0.height()),
                       Qt::AlignRight | Qt::AlignVCenter,
                       gr.side >= 36 ? tr("layer %1").arg(l) : QString::number(l));
        for (int h = 0; h < nHead_; ++h) {
            const QRect c = cellRect(l, h);
            const QImage& img = thumbs_[static_cast<size_t>(l * nHead_ + h)];
            p.setRenderHint(QPainter::SmoothPixmapTransform, g > c.width());
            p.drawImage(c, img, QRect(0, 0, g, g));
            p.setPen(th.grid);
            p.setBrush(Qt::NoBrush);
            p.drawRect(c.adjusted(-1, -1, 0, 0));
        }
    }
    // The heads that read the selected K/V head (one group), then the selected head.
    if (grouped) {
        p.setPen(QPen(th.accent, penWidth(1), Qt::DashLine));
        for (int h = 0; h < nHead_; ++h)
            if (cfg.kvHeadOf(h) == selKv && h != selH)
                p.drawRect(cellRect(selL, h).adjusted(-3, -3, 2, 2));
    }
    p.setPen(QPen(th.accent, penWidth(3)));
    p.drawRect(cellRect(selL, selH).adjusted(-3, -3, 2, 2));
}

void AllHeadsView::mousePressEvent(QMouseEvent* event) {
    const auto hit = headAt(event->position().toPoint());
    if (event->button() == Qt::LeftButton && hit) {
        store_->setLayerHead(hit->first, hit->second);
        event->accept();
        return;
    }
    QWidget::mousePressEvent(event);
}

bool AllHeadsView::event(QEvent* event) {
    const bool tip = answerToolTip(this, event, [this](QPoint pos) {
        const auto hit = headAt(pos);
        if (!hit || !store_->hasModel()) return QString();
        return tr("layer %1 · head %2 (reads K/V head %3): click to inspect")
            .arg(hit->first)
            .arg(hit->second)
            .arg(store_->config().kvHeadOf(hit->second));
    });
    return tip || QWidget::event(event);
}

}  // namespace kvscope::viz
