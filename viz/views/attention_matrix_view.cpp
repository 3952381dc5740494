// AttentionMatrixView: incremental image of the causal matrix, axes with thinned token labels,
// the reveal of the new row, tooltips and row clicks.
#include "views/attention_matrix_view.h"

#include <QContextMenuEvent>
#include <QHelpEvent>
#include <QMenu>
#include <QMouseEvent>
#include <QPaintEngine>
#include <QPainter>
#include <QToolTip>
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/colormap.h"
#include "common/labels.h"
#include "common/theme.h"
#include "common/trace_store.h"
#include "common/transition.h"

namespace kvscope::viz {

namespace {

constexpr int kMargin = 16;
constexpr int kRowLabelW = 118;  // query token labels left of the matrix
constexpr int kColLabelH = 84;   // rotated key token labels above the matrix
// The colour bar: wide enough for its title at the small font in use.
int legendWidth() {
    return std::max(220, QFontMetrics(currentTheme().smallFont)
                                 .horizontalAdvance(QStringLiteral("weight (square-root scale)")) +
                             8);
}

// Every `step`-th of n labels counted back from the newest, so the newest is always labelled.
bool labelled(int j, int n, int step) {
    return (n - 1 - j) % step == 0;
}

}  // namespace

AttentionMatrixView::AttentionMatrixView(TraceStore* store, QWidget* parent)
    : QWidget(parent), store_(store), transition_(new Transition(this)) {
    setMouseTracking(true);
    setAttribute(Qt::WA_OpaquePaintEvent);
    connect(transition_, &Transition::progressed, this, [this] {
        if (transition_->progress() >= 1) animatedRow_ = -1;
        update();
    });
    connect(store_, &TraceStore::modelChanged, this, &AttentionMatrixView::rebuild);
    connect(store_, &TraceStore::tokensReset, this, &AttentionMatrixView::rebuild);
    connect(store_, &TraceStore::headMatrixReady, this, &AttentionMatrixView::rebuild);
    connect(store_, &TraceStore::tokenAppended, this, &AttentionMatrixView::appendRow);
    connect(store_, &TraceStore::truncated, this, [this](int n) {
        if (n > rows_) return rebuild();
        rows_ = n;
        values_.resize(static_cast<size_t>(n));
        while (labels_.size() > n) labels_.removeLast();
        if (animatedRow_ >= n) transition_->finish();
        scaledDirty_ = true;
        pooledRows_ = -1;
        if (n == 0) rebuild();  // the empty state's message
        update();
    });
    connect(store_, &TraceStore::selectionChanged, this, [this] {
        if (store_->layer() != layer_ || store_->head() != head_) {
            rebuild();
        } else {
            update();  // the inspected row moved
        }
    });
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this,
            &AttentionMatrixView::rebuild);
    rebuild();
}

QSize AttentionMatrixView::sizeHint() const {
    return {860, 860};
}
QSize AttentionMatrixView::minimumSizeHint() const {
    return {460, 460};
}

double AttentionMatrixView::transitionProgress() const {
    return transition_->progress();
}

float AttentionMatrixView::cellValue(int r, int c) const {
    if (r < 0 || r >= rows_ || c < 0 || c > r) return std::numeric_limits<float>::quiet_NaN();
    return values_[static_cast<size_t>(r)][static_cast<size_t>(c)];
}

void AttentionMatrixView::writeImageRow(int r) {
    const ColorScale scale = ColorScale::weights();
    const QRgb masked = currentTheme().panel.rgb();
    auto* line = reinterpret_cast<QRgb*>(image_.scanLine(r));
    const std::vector<float>& row = values_[static_cast<size_t>(r)];
    for (int c = 0; c < image_.width(); ++c)
        line[c] = c <= r ? scale.rgb(row[static_cast<size_t>(c)]) : masked;
}

void AttentionMatrixView::rebuild() {
    transition_->finish();
    animatedRow_ = -1;
    layer_ = store_->layer();
    head_ = store_->head();
    rows_ = 0;
    values_.clear();
    labels_.clear();
    scaledDirty_ = true;
    pooledRows_ = -1;
    emptyMessage_.clear();
    if (!store_->hasModel()) {
        emptyMessage_ = tr("Load a model to see its attention matrices.");
    } else if (store_->count() == 0) {
        emptyMessage_ = tr("Prefill a prompt to see the attention matrix fill row by row.");
    } else if (!store_->trace(store_->count() - 1).hasTensors()) {
        emptyMessage_ = tr("These tokens were decoded without traces: no attention rows to show.");
    } else if (!store_->hasAllRows(layer_, head_)) {
        // the attention budget let the oldest rows go: rebuilt from the queries and the cache
        store_->requestHeadMatrix(layer_, head_);
        emptyMessage_ = tr("Rebuilding the attention rows of layer %1, head %2 from the stored "
                           "queries and the cache…")
                            .arg(layer_)
                            .arg(head_);
    }
    if (!emptyMessage_.isEmpty()) {
        update();
        return;
    }
    const int n = store_->count();
    const int capacity = std::max(n, store_->config().nCtx);
    if (image_.width() != capacity) image_ = QImage(capacity, capacity, QImage::Format_RGB32);
    values_.reserve(static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
        const std::span<const float> row = store_->attentionRow(r, layer_, head_);
        values_.emplace_back(row.begin(), row.end());
        labels_.append(tokenLabel(store_->trace(r).text));
        writeImageRow(r);
    }
    rows_ = n;
    update();
}

void AttentionMatrixView::appendRow(int index) {
    if (index != rows_ || rows_ == 0 || store_->layer() != layer_ || store_->head() != head_ ||
        !store_->trace(index).hasTensors() || index >= image_.height()) {
        rebuild();
        return;
    }
    const std::span<const float> row = store_->attentionRow(index, layer_, head_);
    values_.emplace_back(row.begin(), row.end());
    labels_.append(tokenLabel(store_->trace(index).text));
    writeImageRow(index);
    rows_ = index + 1;
    scaledDirty_ = true;
    pooledRows_ = -1;
    animatedRow_ = index;
    transition_->start();
    update();
}

QRect AttentionMatrixView::titleRect() const {
    const Theme& th = currentTheme();
    const int h = QFontMetrics(th.titleFont).height() + 4 + QFontMetrics(th.labelFont).height();
    return {kMargin, kMargin, width() - 2 * kMargin, h};
}

int AttentionMatrixView::availableSide() const {
    const QRect title = titleRect();
    const int top = title.bottom() + 1 + 12 + kColLabelH;
    const int left = kMargin + kRowLabelW;
    return std::max(1, std::min(width() - left - kMargin, height() - top - kMargin));
}

int AttentionMatrixView::poolFactor() const {
    const int side = availableSide();
    return rows_ <= side ? 1 : (rows_ + side - 1) / side;
}

QRect AttentionMatrixView::matrixRect() const {
    if (rows_ == 0) return {};
    const QRect title = titleRect();
    const int top = title.bottom() + 1 + 12 + kColLabelH;
    const int left = kMargin + kRowLabelW;
    const int side = availableSide();
    const int k = poolFactor();
    if (k > 1) return {left, top, side, side};  // blocks of k × k cells fill the space
    // Whole pixels per cell when cells are large, so that every cell is drawn the same; small
    // cells fill the space (a pixel more or less per cell does not show).
    const int cell = side / rows_;
    const int drawn = cell >= 6 ? cell * rows_ : side;
    return {left, top, drawn, drawn};
}

void AttentionMatrixView::setPooling(Pooling pooling) {
    if (pooling == pooling_) return;
    pooling_ = pooling;
    update();
}

float AttentionMatrixView::pooledValue(int bi, int bj) const {
    const int k = poolFactor();
    float best = 0.0f;
    double sum = 0;
    int count = 0;
    for (int r = bi * k; r < std::min(rows_, (bi + 1) * k); ++r)
        for (int c = bj * k; c < std::min(r + 1, (bj + 1) * k); ++c) {
            const float v = values_[static_cast<size_t>(r)][static_cast<size_t>(c)];
            best = std::max(best, v);
            sum += v;
            ++count;
        }
    if (count == 0) return std::numeric_limits<float>::quiet_NaN();
    return pooling_ == Pooling::Max ? best : static_cast<float>(sum / count);
}

const QImage& AttentionMatrixView::pooledImage() const {
    const int k = poolFactor();
    if (pooledRows_ == rows_ && pooledK_ == k && pooledMode_ == pooling_) return pooled_;
    const int blocks = (rows_ + k - 1) / k;
    const ColorScale scale = ColorScale::weights();
    const QRgb masked = currentTheme().panel.rgb();
    pooled_ = QImage(blocks, blocks, QImage::Format_RGB32);
    for (int bi = 0; bi < blocks; ++bi) {
        auto* line = reinterpret_cast<QRgb*>(pooled_.scanLine(bi));
        for (int bj = 0; bj < blocks; ++bj) {
            const float v =
                bj <= bi ? pooledValue(bi, bj) : std::numeric_limits<float>::quiet_NaN();
            line[bj] = std::isnan(v) ? masked : scale.rgb(v);
        }
    }
    pooledRows_ = rows_;
    pooledK_ = k;
    pooledMode_ = pooling_;
    return pooled_;
}

std::optional<QPoint> AttentionMatrixView::cellAt(const QPoint& pos) const {
    const QRect m = matrixRect();
    if (rows_ == 0 || !m.contains(pos)) return std::nullopt;
    const int k = poolFactor();
    if (k > 1) {  // the block's first cell
        const double px = m.width() / static_cast<double>((rows_ + k - 1) / k);
        const int c = std::min(rows_ - 1, static_cast<int>((pos.x() - m.left()) / px) * k);
        const int r = std::min(rows_ - 1, static_cast<int>((pos.y() - m.top()) / px) * k);
        return QPoint(c, r);
    }
    const double cell = m.width() / static_cast<double>(rows_);
    const int c = std::min(rows_ - 1, static_cast<int>((pos.x() - m.left()) / cell));
    const int r = std::min(rows_ - 1, static_cast<int>((pos.y() - m.top()) / cell));
    return QPoint(c, r);
}

QString AttentionMatrixView::toolTipAt(const QPoint& pos) const {
    const std::optional<QPoint> cell = cellAt(pos);
    if (!cell) return {};
    const int r = cell->y(), c = cell->x();
    const QString q = tr("query %1 “%2”").arg(r).arg(labels_[r]);
    const QString k = tr("key %1 “%2”").arg(c).arg(labels_[c]);
    if (const int f = poolFactor(); f > 1) {
        const float v = pooledValue(r / f, c / f);
        if (std::isnan(v)) return tr("%1 → %2: masked (later tokens are not visible)").arg(q, k);
        return tr("queries %1–%2 → keys %3–%4: %5 weight %6")
            .arg(r)
            .arg(std::min(rows_, r + f) - 1)
            .arg(c)
            .arg(std::min(rows_, c + f) - 1)
            .arg(pooling_ == Pooling::Max ? tr("largest") : tr("mean"), formatValue(v));
    }
    if (c > r) return tr("%1 → %2: masked (a later token is not visible)").arg(q, k);
    return tr("%1 → %2: weight %3").arg(q, k, formatValue(cellValue(r, c)));
}

void AttentionMatrixView::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    scaledDirty_ = true;
    pooledRows_ = -1;
}

QString AttentionMatrixView::titleText(int width) const {
    const QFontMetrics fm(currentTheme().titleFont);
    const QString title = tr("Attention matrix · layer %1 · head %2").arg(layer_).arg(head_);
    const QString shortTitle = tr("Layer %1 · head %2").arg(layer_).arg(head_);
    // plain multi-head attention: each head reads its own K/V, nothing to add
    if (!store_->hasModel() || store_->config().nHeadKv >= store_->config().nHead)
        return fm.horizontalAdvance(title) <= width ? title : shortTitle;
    const ModelConfig& c = store_->config();
    const int kv = c.kvHeadOf(head_);
    for (const QString& t :
         {tr("%1 · reads K/V head %2 of %3").arg(title).arg(kv).arg(c.nHeadKv),
          tr("%1 · reads K/V head %2 of %3").arg(shortTitle).arg(kv).arg(c.nHeadKv),
          tr("%1 · K/V head %2 of %3").arg(shortTitle).arg(kv).arg(c.nHeadKv)})
        if (fm.horizontalAdvance(t) <= width) return t;
    return tr("L%1 · head %2 · K/V %3/%4").arg(layer_).arg(head_).arg(kv).arg(c.nHeadKv);
}

void AttentionMatrixView::paintEvent(QPaintEvent*) {
    QPainter p(this);
    const Theme& th = currentTheme();
    const QFontMetrics fmL(th.labelFont), fmS(th.smallFont);
    p.fillRect(rect(), th.background);
    const QRect title = titleRect();
    p.setFont(th.titleFont);
    p.setPen(th.text);
    const int titleH = QFontMetrics(th.titleFont).height();
    p.drawText(QRect(title.left(), title.top(), title.width() - legendWidth() - 16, titleH),
               Qt::AlignLeft | Qt::AlignVCenter,
               QFontMetrics(th.titleFont)
                   .elidedText(titleText(title.width() - legendWidth() - 16), Qt::ElideRight,
                               title.width() - legendWidth() - 16));
    if (rows_ == 0) {
        p.setFont(th.labelFont);
        p.setPen(th.mutedText);
        p.drawText(rect().adjusted(kMargin, title.bottom() + 20, -kMargin, -kMargin),
                   Qt::AlignCenter | Qt::TextWordWrap, emptyMessage_);
        return;
    }
    p.setFont(th.labelFont);
    p.setPen(th.mutedText);
    const QRect sub(title.left(), title.top() + titleH + 4, title.width() - legendWidth() - 16,
                    fmL.height());
    const int window = store_->hasModel() ? store_->config().windowOf(layer_) : 0;
    QString longSub =
        tr("Row = query token, column = key token; later tokens are masked. "
           "Click a row to inspect it.");
    QString shortSub = tr("Rows: queries · columns: keys · click a row");
    if (const int f = poolFactor(); f > 1) {  // the scale, where cells share a pixel
        const QString scaleText = tr("1 pixel = %1 × %1 cells, %2")
                                      .arg(f)
                                      .arg(pooling_ == Pooling::Max ? tr("max") : tr("mean"));
        longSub = tr("%1 tokens · %2 · rows: queries, columns: keys").arg(rows_).arg(scaleText);
        shortSub = scaleText;
    }
    if (window > 0) {  // a sliding-window layer says so first
        longSub = tr("Sliding window: each query sees the last %1 keys · rows: queries · "
                     "columns: keys")
                      .arg(window);
        shortSub = tr("Sliding window of %1 keys · rows: queries").arg(window);
    }
    p.drawText(sub, Qt::AlignLeft | Qt::AlignVCenter,
               fmL.elidedText(fmL.horizontalAdvance(longSub) <= sub.width() ? longSub : shortSub,
                              Qt::ElideRight, sub.width()));
    paintColorBar(p,
                  QRect(title.right() - legendWidth(), title.top(), legendWidth(), title.height()),
                  ColorScale::weights(), tr("weight (square-root scale)"), th);

    const QRect m = matrixRect();
    const double cell = m.width() / static_cast<double>(rows_);
    const QPaintEngine* engine = p.paintEngine();
    const bool vector =
        engine && (engine->type() == QPaintEngine::SVG || engine->type() == QPaintEngine::Pdf);
    if (const int f = poolFactor(); f > 1) {
        // more rows than pixels: one block of f × f cells per pixel group, pooled
        const QImage& pooled = pooledImage();
        const double px = m.width() / static_cast<double>(pooled.width());
        if (vector) {
            p.fillRect(m, th.panel);  // the masked future, then the visible blocks
            for (int r = 0; r < pooled.height(); ++r)
                for (int c = 0; c <= r; ++c)
                    p.fillRect(QRectF(m.left() + c * px, m.top() + r * px, px, px),
                               QColor(pooled.pixel(c, r)));
        } else {
            p.drawImage(m, pooled);
        }
    } else if (vector) {
        // SVG and PDF exports: one rectangle per cell, so the figure stays sharp at any zoom.
        for (int r = 0; r < rows_; ++r)
            for (int c = 0; c < rows_; ++c)
                p.fillRect(QRectF(m.left() + c * cell, m.top() + r * cell, cell, cell),
                           QColor(image_.pixel(c, r)));
    } else {
        if (scaledDirty_ || scaled_.size() != m.size()) {
            const QImage part = image_.copy(0, 0, rows_, rows_);
            scaled_ = part.scaled(m.size(), Qt::IgnoreAspectRatio,
                                  cell >= 1 ? Qt::FastTransformation : Qt::SmoothTransformation);
            scaledDirty_ = false;
        }
        p.drawImage(m.topLeft(), scaled_);
    }
    // The row being revealed: cells not yet reached are covered with the masked colour.
    if (animatedRow_ >= 0 && animatedRow_ < rows_) {
        const double prog = transition_->progress();
        const int y0 = m.top() + static_cast<int>(std::floor(animatedRow_ * cell));
        const int y1 = m.top() + static_cast<int>(std::floor((animatedRow_ + 1) * cell));
        const int xShown =
            m.left() + static_cast<int>(std::lround(prog * (animatedRow_ + 1) * cell));
        p.fillRect(QRect(QPoint(xShown, y0), QPoint(m.right(), std::max(y0, y1 - 1))), th.panel);
        p.setPen(QPen(th.fresh, 2));
        p.setBrush(Qt::NoBrush);
        p.drawRect(QRectF(m.left(), y0, (animatedRow_ + 1) * cell, std::max(2.0, cell)));
    }
    // Cell separators where cells are large.
    if (cell >= 14) {
        p.setPen(th.background);
        for (int k = 1; k < rows_; ++k) {
            const int o = static_cast<int>(std::lround(k * cell));
            p.drawLine(m.left() + o, m.top(), m.left() + o, m.bottom());
            p.drawLine(m.left(), m.top() + o, m.right(), m.top() + o);
        }
    }
    p.setPen(th.grid);
    p.setBrush(Qt::NoBrush);
    p.drawRect(m.adjusted(-1, -1, 0, 0));
    if (m.width() >= 240) {
        p.setFont(th.labelFont);
        p.setPen(th.mutedText);
        p.drawText(QRect(m.left() + m.width() / 2, m.top(), m.width() / 2 - 8, m.height() / 3),
                   Qt::AlignRight | Qt::AlignVCenter | Qt::TextWordWrap,
                   tr("masked:\nlater tokens"));
    }
    // A sliding-window layer (Mistral, Gemma 2's even layers): the band's lower edge. Keys left
    // of it are older than the window and get no weight.
    if (window > 0 && window < rows_) {
        QPen edge(th.text, 2, Qt::DashLine);
        p.setPen(edge);
        p.drawLine(QPointF(m.left(), m.top() + window * cell),
                   QPointF(m.left() + (rows_ - window) * cell, m.top() + rows_ * cell));
        // the label where the triangle below the band has room for it (its legs are
        // (rows - window) cells long)
        if (m.width() >= 240 && (rows_ - window) * cell >= 0.75 * m.width()) {
            p.setFont(th.labelFont);
            p.setPen(th.mutedText);
            p.drawText(QRect(m.left() + 8, m.top() + m.height() * 2 / 3, m.width() / 2 - 8,
                             m.height() / 3 - 8),
                       Qt::AlignLeft | Qt::AlignBottom | Qt::TextWordWrap,
                       tr("outside the window:\nolder than %1 tokens").arg(window));
        }
    }
    // Numbers in the cells when they are large enough to read.
    if (cell >= fmS.horizontalAdvance(QStringLiteral("0.00")) + 6 && cell >= fmS.height() + 4) {
        p.setFont(th.smallFont);
        for (int r = 0; r < rows_; ++r)
            for (int c = 0; c <= r; ++c) {
                if (r == animatedRow_ && transition_->progress() < 1) continue;
                const QRectF cr(m.left() + c * cell, m.top() + r * cell, cell, cell);
                p.setPen(textColorOn(image_.pixel(c, r)));
                p.drawText(cr, Qt::AlignCenter, QString::number(cellValue(r, c), 'f', 2));
            }
    }

    // The inspected query row.
    const int q = store_->queryIndex();
    if (q >= 0 && q < rows_) {
        const double y0 = m.top() + q * cell;
        const double h = std::max(cell, 3.0);
        p.setPen(QPen(th.accent, 3));
        p.setBrush(Qt::NoBrush);
        p.drawRect(QRectF(m.left() - 1, y0 - (h - cell) / 2 - 1, (q + 1) * cell + 2, h + 2));
        // A marker in the margin, visible even when rows are a pixel high.
        QPolygonF arrow;
        const double cy = y0 + cell / 2;
        arrow << QPointF(m.left() - 3, cy) << QPointF(m.left() - 11, cy - 6)
              << QPointF(m.left() - 11, cy + 6);
        p.setPen(Qt::NoPen);
        p.setBrush(th.accent);
        p.drawPolygon(arrow);
    }

    // Token labels: query rows on the left, key columns on top (rotated), thinned when dense.
    p.setFont(th.smallFont);
    const int step = std::max(1, static_cast<int>(std::ceil((fmS.height() + 1) / cell)));
    for (int j = 0; j < rows_; ++j) {
        const bool inspected = j == q;
        if (!labelled(j, rows_, step) && !inspected) continue;
        if (!inspected && q >= 0 && std::abs(j - q) * cell < fmS.height() && j != q) continue;
        p.setPen(inspected ? th.accent : th.text);
        const double cy = m.top() + (j + 0.5) * cell;
        const QRect lr(kMargin, static_cast<int>(cy) - fmS.height() / 2, kRowLabelW - 16,
                       fmS.height());
        p.drawText(lr, Qt::AlignRight | Qt::AlignVCenter,
                   fmS.elidedText(QStringLiteral("%1  %2").arg(j).arg(labels_[j]), Qt::ElideLeft,
                                  lr.width()));
        p.save();
        p.translate(m.left() + (j + 0.5) * cell, m.top() - 6);
        p.rotate(-90);
        p.drawText(QRect(0, -fmS.height() / 2, kColLabelH - 8, fmS.height()),
                   Qt::AlignLeft | Qt::AlignVCenter,
                   fmS.elidedText(QStringLiteral("%1  %2").arg(j).arg(labels_[j]), Qt::ElideRight,
                                  kColLabelH - 8));
        p.restore();
    }
}

void AttentionMatrixView::contextMenuEvent(QContextMenuEvent* event) {
    QMenu menu(this);
    QAction* byMax = menu.addAction(tr("Pool cells by their largest weight"));
    QAction* byMean = menu.addAction(tr("Pool cells by their mean weight"));
    for (QAction* a : {byMax, byMean}) a->setCheckable(true);
    byMax->setChecked(pooling_ == Pooling::Max);
    byMean->setChecked(pooling_ == Pooling::Mean);
    if (poolFactor() == 1) menu.addSection(tr("(every cell has its pixels now)"));
    const QAction* chosen = menu.exec(event->globalPos());
    if (chosen == byMax) setPooling(Pooling::Max);
    if (chosen == byMean) setPooling(Pooling::Mean);
}

void AttentionMatrixView::mousePressEvent(QMouseEvent* event) {
    const std::optional<QPoint> cell = cellAt(event->position().toPoint());
    if (event->button() == Qt::LeftButton && cell) {
        store_->pinQuery(cell->y());
        event->accept();
        return;
    }
    QWidget::mousePressEvent(event);
}

bool AttentionMatrixView::event(QEvent* event) {
    if (event->type() == QEvent::ToolTip) {
        auto* help = static_cast<QHelpEvent*>(event);
        const QString text = toolTipAt(help->pos());
        if (text.isEmpty()) {
            QToolTip::hideText();
            event->ignore();
        } else {
            QToolTip::showText(help->globalPos(), text, this);
        }
        return true;
    }
    return QWidget::event(event);
}

}  // namespace kvscope::viz
