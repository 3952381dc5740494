// AttentionMatrixView: incremental image of the causal matrix (and pooled images per block size,
// updated a block row at a time), axes with thinned token labels, the reveal of the new row,
// zoom and pan with a minimap, tooltips and row clicks.
#include "views/attention_matrix_view.h"

#include <QContextMenuEvent>
#include <QKeyEvent>
#include <QMenu>
#include <QMouseEvent>
#include <QPaintEngine>
#include <QPainter>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/colormap.h"
#include "common/figure.h"
#include "common/labels.h"
#include "common/theme.h"
#include "common/tooltip.h"
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

// A weight in a cell: three decimals without the leading zero (".004", ".250"), so that the
// small weights of a long context still read as numbers.
QString cellText(float v) {
    if (v >= 0.9995f) return QStringLiteral("1.00");
    return QString::number(static_cast<double>(v), 'f', 3).mid(1);
}

}  // namespace

AttentionMatrixView::AttentionMatrixView(TraceStore* store, QWidget* parent)
    : QWidget(parent), store_(store), transition_(new Transition(this)) {
    setMouseTracking(true);
    setFocusPolicy(Qt::WheelFocus);  // the keys zoom and pan once the matrix is clicked
    setAttribute(Qt::WA_OpaquePaintEvent);
    connect(transition_, &Transition::progressed, this, [this] {
        if (transition_->progress() >= 1) {
            animatedRow_ = -1;
            revealingPrefill_ = false;
        }
        update();
    });
    // A new model or prompt starts fitted, following (a new layer or head keeps the zoom).
    auto restart = [this] {
        zoomed_ = false;
        follow_ = true;
        rebuild();
    };
    connect(store_, &TraceStore::modelChanged, this, restart);
    connect(store_, &TraceStore::tokensReset, this, [this, restart] {
        restart();
        // A prefill computes the whole triangle in one pass: every row is revealed at once
        // (a step then adds one row).
        if (rows_ > 0 && store_->promptLength() == store_->count() && animationMs() > 0) {
            revealingPrefill_ = true;
            transition_->start();
        }
    });
    connect(store_, &TraceStore::headMatrixReady, this, &AttentionMatrixView::rebuild);
    connect(store_, &TraceStore::tokenAppended, this, &AttentionMatrixView::appendRow);
    connect(store_, &TraceStore::roundChanged, this, qOverload<>(&QWidget::update));
    connect(store_, &TraceStore::truncated, this, [this](int n) {
        if (n > rows_) return rebuild();
        rows_ = n;
        values_.resize(static_cast<size_t>(n));
        while (labels_.size() > n) labels_.removeLast();
        if (animatedRow_ >= n) transition_->finish();
        scaledDirty_ = true;
        for (auto& [k, cache] : pooled_) cache.builtRows = std::min(cache.builtRows, n);
        if (n == 0) rebuild();  // the empty state's message
        clampViewport();
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

QRgb AttentionMatrixView::cellColor(int r, int c) const {
    ensureImageRows(r, r + 1);
    return image_.pixel(c, r);
}

void AttentionMatrixView::ensureImageRows(int r0, int r1) const {
    for (int r = std::max(0, r0); r < std::min(r1, rows_); ++r)
        if (!rowWritten_[static_cast<size_t>(r)]) writeImageRow(r);
}

namespace {
// A key the cache policy had let go before this query: diagonal stripes of the masked colour and
// the grid's, distinct from the causal mask (plain) and from any weight.
QRgb evictedRgb(int r, int c) {
    const Theme& th = currentTheme();
    return ((r + c) / 2) % 2 == 0 ? th.grid.rgb() : th.panel.rgb();
}
}  // namespace

void AttentionMatrixView::writeImageRow(int r) const {
    const ColorScale scale = ColorScale::weights();
    const QRgb masked = currentTheme().panel.rgb();
    auto* line = reinterpret_cast<QRgb*>(image_.scanLine(r));
    const std::vector<float>& row = values_[static_cast<size_t>(r)];
    const bool evictions = store_->hasEvictions();
    for (int c = 0; c < image_.width(); ++c) {
        if (c > r)
            line[c] = masked;
        else if (evictions && store_->evictedFor(layer_, c, r))
            line[c] = evictedRgb(r, c);
        else
            line[c] = scale.rgb(row[static_cast<size_t>(c)]);
    }
    rowWritten_[static_cast<size_t>(r)] = 1;
}

void AttentionMatrixView::rebuild() {
    transition_->finish();
    animatedRow_ = -1;
    revealingPrefill_ = false;
    layer_ = store_->layer();
    head_ = store_->head();
    rows_ = 0;
    values_.clear();
    labels_.clear();
    scaledDirty_ = true;
    invalidatePooled();
    emptyMessage_.clear();
    if (!store_->hasModel()) {
        emptyMessage_ = tr("Load a model to see its attention matrices.");
    } else if (store_->count() == 0) {
        emptyMessage_ = tr("Prefill a prompt to see the attention matrix fill row by row.");
    } else if (!store_->trace(store_->count() - 1).hasTensors()) {
        emptyMessage_ = tr("These tokens were decoded without traces: no attention rows to show.");
    } else if (!store_->hasAllRows(layer_, head_) && !store_->canRebuildRows()) {
        emptyMessage_ = store_->droppedRowsText();
    } else if (!store_->hasAllRows(layer_, head_)) {
        // the attention budget let the oldest rows go: rebuilt from the queries and the cache
        store_->requestHeadMatrix(layer_, head_);
        emptyMessage_ = tr("Rebuilding the attention rows of layer %1, head %2 from the stored "
                           "queries and the cache…")
                            .arg(layer_)
                            .arg(head_);
    }
    if (!emptyMessage_.isEmpty()) {
        zoomed_ = false;
        update();
        return;
    }
    const int n = store_->count();
    const int capacity = std::max(n, store_->config().nCtx);
    if (image_.width() != capacity) image_ = QImage(capacity, capacity, QImage::Format_RGB32);
    rowWritten_.assign(static_cast<size_t>(capacity), 0);  // coloured when first drawn
    values_.reserve(static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
        const std::span<const float> row = store_->attentionRow(r, layer_, head_);
        values_.emplace_back(row.begin(), row.end());
        labels_.append(tokenLabel(store_->trace(r).text));
    }
    rows_ = n;
    clampViewport();  // a zoom survives a new layer or head (compare heads at one place)
    followNewest();
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
    scaledDirty_ = true;  // the pooled images recompute their last block row when drawn
    followNewest();
    if (store_->roundPhase() == TraceStore::RoundPhase::Verified) {
        // a verification pass: its rows appear together (one pass), outlined while on show
        transition_->finish();
        animatedRow_ = -1;
    } else {
        animatedRow_ = index;
        transition_->start();
    }
    update();
}

QRect AttentionMatrixView::titleRect() const {
    const Theme& th = currentTheme();
    const int h = QFontMetrics(th.titleFont).height() + 4 + QFontMetrics(th.labelFont).height();
    return {kMargin, kMargin, width() - 2 * kMargin, legendBelow() ? 2 * h + 8 : h};
}

bool AttentionMatrixView::legendBelow() const {
    const int beside = width() - 2 * kMargin - legendWidth() - 16;
    const QString shortest = titleForms().back();
    return QFontMetrics(currentTheme().titleFont).elidedText(shortest, Qt::ElideRight, beside) !=
           shortest;
}

int AttentionMatrixView::titleTextWidth() const {
    return width() - 2 * kMargin - (legendBelow() ? 0 : legendWidth() + 16);
}

int AttentionMatrixView::availableSide() const {
    const QRect title = titleRect();
    const int top = title.bottom() + 1 + 12 + kColLabelH;
    const int left = kMargin + kRowLabelW;
    return std::max(1, std::min(width() - left - kMargin, height() - top - kMargin));
}

int AttentionMatrixView::minimapSide() const {
    return std::clamp(availableSide() / 4, 96, 180);
}

double AttentionMatrixView::zoomedCellPixels(double w, double h) const {
    // the whole height, and the width left of the minimap where the widget is wide enough
    const int left = kMargin + kRowLabelW;
    const int side = availableSide();
    int across = width() - left - kMargin;
    if (across - (minimapSide() + 20) >= side) across -= minimapSide() + 20;
    return std::min(std::max(1, across) / w, side / h);
}

int AttentionMatrixView::poolFactor() const {
    const int side = availableSide();
    return rows_ <= side ? 1 : (rows_ + side - 1) / side;
}

int AttentionMatrixView::drawnPoolFactor() const {
    if (!zoomed_) return poolFactor();
    const double px = cellPixels();
    return px >= 1 ? 1 : static_cast<int>(std::ceil(1 / px - 1e-9));
}

QRect AttentionMatrixView::matrixRect() const {
    if (rows_ == 0) return {};
    const QRect title = titleRect();
    const int top = title.bottom() + 1 + 12 + kColLabelH;
    const int left = kMargin + kRowLabelW;
    const int side = availableSide();
    if (zoomed_) {  // the visible cells as large as they fit, in their aspect
        const double px = cellPixels();
        return {left, top, std::max(1, static_cast<int>(std::lround(view_.width() * px))),
                std::max(1, static_cast<int>(std::lround(view_.height() * px)))};
    }
    const int k = poolFactor();
    if (k > 1) return {left, top, side, side};  // blocks of k × k cells fill the space
    // Whole pixels per cell when cells are large, so that every cell is drawn the same; small
    // cells fill the space (a pixel more or less per cell does not show).
    const int cell = side / rows_;
    const int drawn = cell >= 6 ? cell * rows_ : side;
    return {left, top, drawn, drawn};
}

QRectF AttentionMatrixView::viewport() const {
    if (rows_ == 0) return {};
    if (zoomed_) return view_;
    const int k = poolFactor();
    const int n = (rows_ + k - 1) / k * k;
    return {0, 0, double(n), double(n)};
}

double AttentionMatrixView::cellPixels() const {
    if (rows_ == 0) return 0;
    if (zoomed_) return zoomedCellPixels(view_.width(), view_.height());
    return matrixRect().width() / viewport().width();
}

QRectF AttentionMatrixView::cellRect(int r, int c) const {
    const QRect m = matrixRect();
    const QRectF v = viewport();
    const double px = cellPixels();
    return {m.left() + (c - v.x()) * px, m.top() + (r - v.y()) * px, px, px};
}

void AttentionMatrixView::clampViewport() {
    if (!zoomed_) return;
    if (rows_ == 0) {
        zoomed_ = false;
        return;
    }
    double w = std::min<double>(view_.width(), rows_), h = std::min<double>(view_.height(), rows_);
    // at least 4 cells along the longer side (single cells at a quarter of the view's side)
    const double least = std::min(4, rows_);
    if (std::max(w, h) < least) {
        const double grow = least / std::max({w, h, 1e-9});
        w = std::min<double>(rows_, std::max(1.0, w * grow));
        h = std::min<double>(rows_, std::max(1.0, h * grow));
    }
    // whole cells: no row or key is cut at the edges
    w = std::max(1.0, std::round(w));
    h = std::max(1.0, std::round(h));
    if (w >= rows_ && h >= rows_) {
        zoomed_ = false;  // the whole matrix: fitted again
        return;
    }
    const double x = std::clamp(std::round(view_.x()), 0.0, rows_ - w);
    const double y = std::clamp(std::round(view_.y()), 0.0, rows_ - h);
    view_ = QRectF(x, y, w, h);
}

void AttentionMatrixView::followNewest() {
    if (!zoomed_ || !follow_) return;
    // the new row at the bottom; the new key too when the view reached the last key before
    if (view_.right() >= rows_ - 1.5) view_.moveRight(rows_);
    view_.moveTop(std::max(0.0, rows_ - view_.height()));
    clampViewport();
}

void AttentionMatrixView::zoomToCells(int r0, int r1, int c0, int c1) {
    if (rows_ == 0) return;
    auto clampCell = [this](int v) { return std::clamp(v, 0, rows_ - 1); };
    r0 = clampCell(r0), r1 = clampCell(r1), c0 = clampCell(c0), c1 = clampCell(c1);
    if (r0 > r1) std::swap(r0, r1);
    if (c0 > c1) std::swap(c0, c1);
    zoomed_ = true;
    view_ = QRectF(c0, r0, c1 - c0 + 1, r1 - r0 + 1);
    const QPointF centre = view_.center();
    clampViewport();
    if (zoomed_ && (view_.width() > c1 - c0 + 1 || view_.height() > r1 - r0 + 1)) {
        view_.moveCenter(centre);  // grown to the smallest zoom: around the asked cells
        clampViewport();
    }
    follow_ = !zoomed_ || view_.bottom() >= rows_ - 0.5;
    scaledDirty_ = true;
    update();
}

void AttentionMatrixView::zoomBy(double factor, std::optional<QPointF> anchor) {
    if (rows_ == 0 || factor <= 0) return;
    const QRectF v = viewport();
    const QRect m = matrixRect();
    const double w = std::min<double>(rows_, v.width() * factor);
    const double h = std::min<double>(rows_, v.height() * factor);
    if (w >= rows_ && h >= rows_) return fit();
    QRectF next(0, 0, w, h);
    if (anchor) {  // the cell under the anchor stays under it
        const double px = cellPixels();
        const QPointF at((anchor->x() - m.left()) / px, (anchor->y() - m.top()) / px);
        const double nextPx = zoomedCellPixels(w, h);
        next.moveTopLeft(v.topLeft() + at - at * (px / nextPx));
    } else {
        next.moveCenter(v.center());
    }
    zoomed_ = true;
    view_ = next;
    clampViewport();
    follow_ = !zoomed_ || view_.bottom() >= rows_ - 0.5;
    scaledDirty_ = true;
    update();
}

void AttentionMatrixView::fit() {
    zoomed_ = false;
    scaledDirty_ = true;
    update();
}

void AttentionMatrixView::panBy(double dr, double dc) {
    if (!zoomed_) return;
    view_.translate(dc, dr);
    clampViewport();
    follow_ = view_.bottom() >= rows_ - 0.5;
    update();
}

void AttentionMatrixView::centreOnMinimap(const QPoint& pos) {
    const QRect mini = minimapRect();
    if (mini.isEmpty()) return;
    const int km = (rows_ + mini.width() - 1) / mini.width();
    const double cellsPerPixel = ((rows_ + km - 1) / km * km) / double(mini.width());
    const QPoint at(std::clamp(pos.x(), mini.left(), mini.right()),
                    std::clamp(pos.y(), mini.top(), mini.bottom()));
    const QPointF centre((at.x() - mini.left() + 0.5) * cellsPerPixel,
                         (at.y() - mini.top() + 0.5) * cellsPerPixel);
    panBy(centre.y() - view_.center().y(), centre.x() - view_.center().x());
}

void AttentionMatrixView::setFollowing(bool on) {
    follow_ = on;
    followNewest();
    update();
}

QRect AttentionMatrixView::minimapRect() const {
    if (!zoomed_ || rows_ == 0) return {};
    const QRect m = matrixRect();
    const int side = minimapSide();
    // right of the matrix where there is room, else over its top-right corner (the masked future)
    if (width() - kMargin - (m.right() + 20) >= side) return {m.right() + 20, m.top(), side, side};
    return {m.right() - side - 8, m.top() + 8, side, side};
}

void AttentionMatrixView::setPooling(Pooling pooling) {
    if (pooling == pooling_) return;
    pooling_ = pooling;
    invalidatePooled();
    update();
}

void AttentionMatrixView::invalidatePooled() {
    pooled_.clear();
}

float AttentionMatrixView::pooledValueAt(int k, int bi, int bj) const {
    float best = 0.0f;
    double sum = 0;
    int count = 0;
    for (int r = bi * k; r < std::min(rows_, (bi + 1) * k); ++r) {
        const float* row = values_[static_cast<size_t>(r)].data();
        for (int c = bj * k; c < std::min(r + 1, (bj + 1) * k); ++c) {
            best = std::max(best, row[c]);
            sum += row[c];
            ++count;
        }
    }
    if (count == 0) return std::numeric_limits<float>::quiet_NaN();
    return pooling_ == Pooling::Max ? best : static_cast<float>(sum / count);
}

float AttentionMatrixView::pooledValue(int bi, int bj) const {
    return pooledValueAt(poolFactor(), bi, bj);
}

const QImage& AttentionMatrixView::pooledImage(int k) const {
    PooledCache& cache = pooled_[k];
    const int blocks = (rows_ + k - 1) / k;
    if (cache.image.width() < blocks) {  // room for the whole context, or more when it grew
        const int capacity = (std::max(rows_, image_.width()) + k - 1) / k;
        cache.image = QImage(capacity, capacity, QImage::Format_RGB32);
        cache.builtRows = 0;
    }
    // Only block rows from the first row not yet built: an appended row redoes its block row.
    const int first = std::min(cache.builtRows, rows_) / k;
    const ColorScale scale = ColorScale::weights();
    const QRgb masked = currentTheme().panel.rgb();
    // One pass over each block row's cells, row by row (as pooledValueAt, in one sweep).
    std::vector<float> best(static_cast<size_t>(blocks));
    std::vector<double> sum(static_cast<size_t>(blocks));
    std::vector<int> count(static_cast<size_t>(blocks)), live(static_cast<size_t>(blocks));
    const bool evictions = store_->hasEvictions();
    for (int bi = first; bi < blocks; ++bi) {
        std::fill(best.begin(), best.end(), 0.0f);
        std::fill(sum.begin(), sum.end(), 0.0);
        std::fill(count.begin(), count.end(), 0);
        std::fill(live.begin(), live.end(), 0);
        for (int r = bi * k; r < std::min(rows_, (bi + 1) * k); ++r) {
            const float* row = values_[static_cast<size_t>(r)].data();
            for (int bj = 0; bj * k <= r; ++bj) {
                const int c1 = std::min(r + 1, (bj + 1) * k);
                float b = best[static_cast<size_t>(bj)];
                double s = 0;
                int seen = 0;
                for (int c = bj * k; c < c1; ++c) {
                    b = std::max(b, row[c]);
                    s += row[c];
                    if (!evictions || !store_->evictedFor(layer_, c, r)) ++seen;
                }
                best[static_cast<size_t>(bj)] = b;
                sum[static_cast<size_t>(bj)] += s;
                count[static_cast<size_t>(bj)] += c1 - bj * k;
                live[static_cast<size_t>(bj)] += seen;
            }
        }
        auto* line = reinterpret_cast<QRgb*>(cache.image.scanLine(bi));
        for (int bj = 0; bj < cache.image.width(); ++bj) {
            const size_t j = static_cast<size_t>(bj);
            if (bj >= blocks || count[j] == 0) {
                line[bj] = masked;
            } else if (live[j] == 0) {  // every key of the block was evicted for these queries
                line[bj] = evictedRgb(bi, bj);
            } else {
                line[bj] = scale.rgb(
                    pooling_ == Pooling::Max ? best[j] : static_cast<float>(sum[j] / count[j]));
            }
        }
    }
    cache.builtRows = rows_;
    return cache.image;
}

void AttentionMatrixView::drawCells(QPainter& p, const QRect& target, const QRectF& cells, int k,
                                    bool asImage) const {
    const QPaintEngine* engine = p.paintEngine();
    const bool vector =
        !asImage && engine &&
        (engine->type() == QPaintEngine::SVG || engine->type() == QPaintEngine::Pdf);
    const int n = (rows_ + k - 1) / k;                     // image cells (blocks) that hold data
    const double px = target.width() / cells.width() * k;  // pixels per image cell
    const int x0 = std::max(0, static_cast<int>(std::floor(cells.left() / k)));
    const int y0 = std::max(0, static_cast<int>(std::floor(cells.top() / k)));
    const int x1 = std::min(n, static_cast<int>(std::ceil(cells.right() / k - 1e-9)));
    const int y1 = std::min(n, static_cast<int>(std::ceil(cells.bottom() / k - 1e-9)));
    if (x1 <= x0 || y1 <= y0) return;
    if (k == 1) ensureImageRows(y0, y1);
    const QImage& source = k == 1 ? image_ : pooledImage(k);
    const QPointF origin(target.left() + (x0 * k - cells.left()) / k * px,
                         target.top() + (y0 * k - cells.top()) / k * px);
    p.save();
    p.setClipRect(target);
    p.setRenderHint(QPainter::SmoothPixmapTransform, false);
    if (vector) {  // SVG and PDF: one rectangle per cell, sharp at any zoom
        for (int r = y0; r < y1; ++r)
            for (int c = x0; c < x1; ++c)
                p.fillRect(QRectF(origin.x() + (c - x0) * px, origin.y() + (r - y0) * px, px, px),
                           QColor(source.pixel(c, r)));
    } else if (engine && engine->type() != QPaintEngine::Raster) {
        // SVG ignores a source rectangle (it embeds the whole image): the cells' part alone
        p.drawImage(QRectF(origin, QSizeF((x1 - x0) * px, (y1 - y0) * px)),
                    source.copy(x0, y0, x1 - x0, y1 - y0));
    } else {
        p.drawImage(QRectF(origin, QSizeF((x1 - x0) * px, (y1 - y0) * px)), source,
                    QRectF(x0, y0, x1 - x0, y1 - y0));
    }
    p.restore();
}

std::optional<QPoint> AttentionMatrixView::cellAt(const QPoint& pos) const {
    const QRect m = matrixRect();
    if (rows_ == 0 || !m.contains(pos)) return std::nullopt;
    const QRectF v = viewport();
    const double px = cellPixels();
    int c = std::min(rows_ - 1, static_cast<int>(v.x() + (pos.x() + 0.5 - m.left()) / px));
    int r = std::min(rows_ - 1, static_cast<int>(v.y() + (pos.y() + 0.5 - m.top()) / px));
    if (const int k = drawnPoolFactor(); k > 1) {  // the block's first cell
        c = c / k * k;
        r = r / k * k;
    }
    return QPoint(c, r);
}

QString AttentionMatrixView::toolTipAt(const QPoint& pos) const {
    const std::optional<QPoint> cell = cellAt(pos);
    if (!cell) return {};
    const int r = cell->y(), c = cell->x();
    const QString q = tr("query %1 “%2”").arg(r).arg(labels_[r]);
    const QString k = tr("key %1 “%2”").arg(c).arg(labels_[c]);
    if (const int f = drawnPoolFactor(); f > 1) {
        const float v = pooledValueAt(f, r / f, c / f);
        if (std::isnan(v)) return tr("%1 → %2: masked (later tokens are not visible)").arg(q, k);
        return tr("queries %1–%2 → keys %3–%4: %5 weight %6")
            .arg(r)
            .arg(std::min(rows_, r + f) - 1)
            .arg(c)
            .arg(std::min(rows_, c + f) - 1)
            .arg(pooling_ == Pooling::Max ? tr("largest") : tr("mean"), formatValue(v));
    }
    if (c > r) return tr("%1 → %2: masked (a later token is not visible)").arg(q, k);
    if (store_->evictedFor(layer_, c, r))
        return tr("%1 → %2: evicted by the cache policy (%3) after query %4, so not seen")
            .arg(q, k, QString::fromStdString(store_->model().cache.eviction.text()))
            .arg(store_->evictedAt(layer_, c));
    return tr("%1 → %2: weight %3").arg(q, k, formatValue(cellValue(r, c)));
}

void AttentionMatrixView::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    scaledDirty_ = true;
}

QStringList AttentionMatrixView::titleForms() const {
    const QString title = tr("Attention matrix · layer %1 · head %2").arg(layer_).arg(head_);
    const QString shortTitle = tr("Layer %1 · head %2").arg(layer_).arg(head_);
    // plain multi-head attention: each head reads its own K/V, nothing to add
    if (!store_->hasModel() || store_->config().nHeadKv >= store_->config().nHead)
        return {title, shortTitle};
    const ModelConfig& c = store_->config();
    const int kv = c.kvHeadOf(head_);
    return {tr("%1 · reads K/V head %2 of %3").arg(title).arg(kv).arg(c.nHeadKv),
            tr("%1 · reads K/V head %2 of %3").arg(shortTitle).arg(kv).arg(c.nHeadKv),
            tr("%1 · K/V head %2 of %3").arg(shortTitle).arg(kv).arg(c.nHeadKv),
            tr("%1 · K/V %2 of %3").arg(shortTitle).arg(kv).arg(c.nHeadKv),
            tr("L%1 · head %2 · K/V %3/%4").arg(layer_).arg(head_).arg(kv).arg(c.nHeadKv)};
}

QString AttentionMatrixView::titleText(int width) const {
    const QFontMetrics fm(currentTheme().titleFont);
    for (const QString& t : titleForms())
        if (fm.elidedText(t, Qt::ElideRight, width) == t) return t;
    return fm.elidedText(titleForms().back(), Qt::ElideRight, width);
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
    const int textW = titleTextWidth();
    paintedTitle_ = QFontMetrics(th.titleFont).elidedText(titleText(textW), Qt::ElideRight, textW);
    p.drawText(QRect(title.left(), title.top(), textW, titleH), Qt::AlignLeft | Qt::AlignVCenter,
               paintedTitle_);
    if (rows_ == 0) {
        p.setFont(th.labelFont);
        p.setPen(th.mutedText);
        p.drawText(rect().adjusted(kMargin, title.bottom() + 20, -kMargin, -kMargin),
                   Qt::AlignCenter | Qt::TextWordWrap, emptyMessage_);
        return;
    }
    const QRect m = matrixRect();
    const QRectF v = viewport();
    const double cell = cellPixels();
    const int f = drawnPoolFactor();
    // visible rows and keys: [r0, r1) × [c0, c1)
    const int r0 = std::max(0, static_cast<int>(std::floor(v.top())));
    const int r1 = std::min(rows_, static_cast<int>(std::ceil(v.bottom() - 1e-9)));
    const int c0 = std::max(0, static_cast<int>(std::floor(v.left())));
    const int c1 = std::min(rows_, static_cast<int>(std::ceil(v.right() - 1e-9)));
    auto xOf = [&](double c) { return m.left() + (c - v.left()) * cell; };
    auto yOf = [&](double r) { return m.top() + (r - v.top()) * cell; };

    p.setFont(th.labelFont);
    p.setPen(th.mutedText);
    const QRect sub(title.left(), title.top() + titleH + 4, textW, fmL.height());
    const int window = store_->hasModel() ? store_->config().windowOf(layer_) : 0;
    const bool screen = !paintingFigure(this);  // the mouse's hints on a screen only
    QString longSub =
        tr("Row = query token, column = key token; later tokens are masked.") +
        (screen ? tr(" Click a row to inspect it; drag or scroll to zoom.") : QString());
    QString shortSub =
        tr("Rows: queries · columns: keys") + (screen ? tr(" · click a row") : QString());
    const QString scaleText = tr("1 pixel = %1 × %1 cells, %2")
                                  .arg(f)
                                  .arg(pooling_ == Pooling::Max ? tr("max") : tr("mean"));
    if (zoomed_) {  // where the view is, and the scale while cells still share pixels
        const QString where = tr("rows %1–%2, keys %3–%4").arg(r0).arg(r1 - 1).arg(c0).arg(c1 - 1);
        shortSub = f > 1 ? tr("%1 · %2").arg(where, scaleText) : where;
        longSub = tr("%1 of %2 tokens%3")
                      .arg(f > 1 ? tr("%1 · %2").arg(where, scaleText) : where)
                      .arg(rows_)
                      .arg(follow_ ? tr(" · following the newest row") : QString());
        if (window > 0) longSub = tr("%1 · sliding window of %2 keys").arg(shortSub).arg(window);
    } else if (f > 1) {  // the scale, where cells share a pixel
        longSub = tr("%1 tokens · %2 · rows: queries, columns: keys").arg(rows_).arg(scaleText);
        shortSub = scaleText;
    }
    if (revealingPrefill_) {  // the prefill as one event
        longSub = tr("Prefill: all %1 prompt rows computed in one pass; each step then adds one "
                     "row")
                      .arg(rows_);
        shortSub = tr("Prefill: %1 rows in one pass").arg(rows_);
    } else if (window > 0 && !zoomed_) {  // a sliding-window layer says so first
        longSub = tr("Sliding window: each query sees the last %1 keys · rows: queries · "
                     "columns: keys")
                      .arg(window);
        shortSub = tr("Sliding window of %1 keys · rows: queries").arg(window);
    }
    if (store_->hasEvictions() && !revealingPrefill_) {  // the cache lab's policy says so first
        const QString policy = QString::fromStdString(store_->model().cache.eviction.text());
        longSub = tr("Cache policy %1: striped keys had left the cache before that query · "
                     "rows: queries, columns: keys")
                      .arg(policy);
        shortSub = tr("Policy %1 · striped: evicted").arg(policy);
    }
    if (const SpeculativeRound* round = store_->round()) {  // speculative decoding says so first
        const int rejected = round->drafted() - round->accepted;
        switch (store_->roundPhase()) {
            case TraceStore::RoundPhase::Drafted:
                longSub = tr("Drafted %n token(s) (%1): no attention rows until the model "
                             "verifies them, all in one pass",
                             nullptr, round->drafted())
                              .arg(round->drafter);
                shortSub = tr("Drafted %n token(s): not computed yet", nullptr, round->drafted());
                break;
            case TraceStore::RoundPhase::Verified:
                longSub = tr("Verification: %1 rows computed in one pass (the decided token and "
                             "%2 drafts) · ✓ %3 accepted, ✗ %4 rejected")
                              .arg(round->verified.size())
                              .arg(round->drafted())
                              .arg(round->accepted)
                              .arg(rejected);
                shortSub =
                    tr("Verified in one pass: ✓ %1, ✗ %2").arg(round->accepted).arg(rejected);
                break;
            case TraceStore::RoundPhase::Resolved:
                longSub = rejected > 0 ? tr("Rolled back: the %n rejected draft row(s) left; "
                                            "the accepted rows stay as if stepped one by one",
                                            nullptr, rejected)
                                       : tr("All %n draft(s) accepted: %1 tokens from one pass",
                                            nullptr, round->drafted())
                                             .arg(round->kept());
                shortSub = tr("Kept %1, rolled back %2").arg(round->kept()).arg(rejected);
                break;
            case TraceStore::RoundPhase::None:
                break;
        }
    }
    p.drawText(sub, Qt::AlignLeft | Qt::AlignVCenter,
               firstThatFits(fmL, {longSub, shortSub}, sub.width()));
    const int headH = titleH + 4 + fmL.height();  // the title's and subtitle's lines
    paintColorBar(p,
                  legendBelow()
                      ? QRect(title.left(), title.top() + headH + 8, legendWidth(), headH)
                      : QRect(title.right() - legendWidth(), title.top(), legendWidth(), headH),
                  ColorScale::weights(), tr("weight (square-root scale)"), th);

    const QPaintEngine* engine = p.paintEngine();
    const bool vector =
        engine && (engine->type() == QPaintEngine::SVG || engine->type() == QPaintEngine::Pdf);
    p.fillRect(m, th.panel);  // the masked future beyond the last row's blocks
    if (zoomed_ || f > 1 || vector) {
        drawCells(p, m, v, f);
    } else {  // fitted, a pixel or more per cell: image_ scaled once per size, then a blit
        if (scaledDirty_ || scaled_.size() != m.size()) {
            ensureImageRows(0, rows_);
            const QImage part = image_.copy(0, 0, rows_, rows_);
            scaled_ = part.scaled(m.size(), Qt::IgnoreAspectRatio, Qt::FastTransformation);
            scaledDirty_ = false;
        }
        p.drawImage(m.topLeft(), scaled_);
    }
    p.save();
    p.setClipRect(m);
    // The row being revealed: cells not yet reached are covered with the masked colour.
    if (animatedRow_ >= r0 && animatedRow_ < r1) {
        const double prog = transition_->progress();
        const double y0 = std::floor(yOf(animatedRow_));
        const double y1 = std::floor(yOf(animatedRow_ + 1));
        const double xShown = std::round(xOf(prog * (animatedRow_ + 1)));
        p.fillRect(QRectF(QPointF(xShown, y0), QPointF(m.right() + 1, std::max(y0 + 1, y1))),
                   th.panel);
        p.setPen(QPen(th.fresh, penWidth(2)));
        p.setBrush(Qt::NoBrush);
        p.drawRect(QRectF(xOf(0), y0, (animatedRow_ + 1) * cell, std::max(2.0, cell)));
    }
    // A prefill being revealed: every row at once, each up to the same fraction of its keys.
    if (revealingPrefill_ && transition_->progress() < 1) {
        const double prog = transition_->progress();
        for (int r = r0; r < r1; ++r) {
            const double y0 = std::floor(yOf(r)), y1 = std::floor(yOf(r + 1));
            const double xShown = std::round(xOf(prog * (r + 1)));
            p.fillRect(QRectF(QPointF(xShown, y0), QPointF(m.right() + 1, std::max(y0 + 1, y1))),
                       th.panel);
        }
        p.setPen(QPen(th.fresh, penWidth(2)));
        p.setBrush(Qt::NoBrush);
        p.drawPolygon(QPolygonF({QPointF(xOf(0), yOf(0)), QPointF(xOf(1), yOf(0)),
                                 QPointF(xOf(rows_), yOf(rows_ - 1)),
                                 QPointF(xOf(rows_), yOf(rows_)), QPointF(xOf(0), yOf(rows_))}));
    }
    // A verification pass on show: its rows outlined as one block, each draft's verdict after
    // its diagonal cell (✓ accepted, ✗ rejected: that row leaves with the rollback).
    if (store_->roundPhase() == TraceStore::RoundPhase::Verified) {
        const SpeculativeRound& round = *store_->round();
        const int from = round.first,
                  to = std::min(rows_, from + static_cast<int>(round.verified.size()));
        if (from < to && to > r0 && from < r1) {
            p.setPen(QPen(th.fresh, penWidth(2.5)));
            p.setBrush(Qt::NoBrush);
            p.drawPolygon(QPolygonF({QPointF(xOf(0), yOf(from)), QPointF(xOf(from + 1), yOf(from)),
                                     QPointF(xOf(to), yOf(to - 1)), QPointF(xOf(to), yOf(to)),
                                     QPointF(xOf(0), yOf(to))}));
            for (int r = std::max(from + 1, r0); r < std::min(to, r1); ++r) {
                if (store_->draftVerdict(r) >= 0) continue;
                QColor veil(0xC6, 0x28, 0x28);  // a rejected row: veiled in red over its keys
                veil.setAlphaF(0.3f);
                p.fillRect(QRectF(QPointF(xOf(0), yOf(r)), QPointF(xOf(r + 1), yOf(r + 1))), veil);
            }
        }
    }
    // Cell separators where cells are large.
    if (cell >= 14) {
        p.setPen(th.background);
        for (int k = c0 + 1; k < c1; ++k)
            p.drawLine(QPointF(xOf(k), m.top()), QPointF(xOf(k), m.bottom()));
        for (int k = r0 + 1; k < r1; ++k)
            p.drawLine(QPointF(m.left(), yOf(k)), QPointF(m.right(), yOf(k)));
    }
    p.restore();
    p.setPen(th.grid);
    p.setBrush(Qt::NoBrush);
    p.drawRect(m.adjusted(-1, -1, 0, 0));
    // A verification pass on show: each draft's verdict right of the matrix, on its row
    // (✓ accepted, ✗ rejected: that row leaves with the rollback).
    if (store_->roundPhase() == TraceStore::RoundPhase::Verified) {
        const double d = std::clamp(cell, 8.0, 20.0);
        QFont badgeFont = th.smallFont;
        badgeFont.setBold(true);
        badgeFont.setPixelSize(std::max(7, static_cast<int>(d * 0.75)));
        p.setFont(badgeFont);
        for (int r = r0; r < r1; ++r) {
            const int verdict = store_->draftVerdict(r);
            if (verdict == 0) continue;
            const QRectF badge(m.right() + 4, yOf(r) + cell / 2 - d / 2, d, d);
            p.setPen(Qt::NoPen);
            p.setBrush(verdict > 0 ? QColor(0x1B, 0x7F, 0x3A) : QColor(0xC6, 0x28, 0x28));
            p.drawEllipse(badge);
            p.setPen(Qt::white);
            p.drawText(badge, Qt::AlignCenter,
                       verdict > 0 ? QStringLiteral("✓") : QStringLiteral("✗"));
        }
    }
    if (m.width() >= 240 && !zoomed_) {
        p.setFont(th.labelFont);
        p.setPen(th.mutedText);
        p.drawText(QRect(m.left() + m.width() / 2, m.top(), m.width() / 2 - 8, m.height() / 3),
                   Qt::AlignRight | Qt::AlignVCenter | Qt::TextWordWrap,
                   tr("masked:\nlater tokens"));
    }
    // A sliding-window layer (Mistral, Gemma 2's even layers): the band's lower edge. Keys left
    // of it are older than the window and get no weight.
    if (window > 0 && window < rows_) {
        p.save();
        p.setClipRect(m);
        QPen edge(th.text, 2, Qt::DashLine);
        p.setPen(edge);
        p.drawLine(QPointF(xOf(0), yOf(window)), QPointF(xOf(rows_ - window), yOf(rows_)));
        p.restore();
        // the label where the triangle below the band has room for it (its legs are
        // (rows - window) cells long)
        if (!zoomed_ && m.width() >= 240 && (rows_ - window) * cell >= 0.75 * m.width()) {
            p.setFont(th.labelFont);
            p.setPen(th.mutedText);
            p.drawText(QRect(m.left() + 8, m.top() + m.height() * 2 / 3, m.width() / 2 - 8,
                             m.height() / 3 - 8),
                       Qt::AlignLeft | Qt::AlignBottom | Qt::TextWordWrap,
                       tr("outside the window:\nolder than %1 tokens").arg(window));
        }
    }
    // Numbers in the cells when they are large enough to read (only the visible ones).
    if (f == 1 && cell >= 24) {
        QFont font = th.smallFont;  // smaller where "0.00" would not fit in the cell
        for (int i = 0;
             i < 6 && QFontMetrics(font).horizontalAdvance(QStringLiteral(".000")) + 4 > cell; ++i)
            font.setPointSizeF(font.pointSizeF() * 0.9);
        p.save();
        p.setClipRect(m);
        p.setFont(font);
        for (int r = r0; r < r1; ++r)
            for (int c = c0; c <= std::min(r, c1 - 1); ++c) {
                if (r == animatedRow_ && transition_->progress() < 1) continue;
                if (revealingPrefill() && c + 1 > transition_->progress() * (r + 1))
                    continue;  // not revealed yet
                const QRectF cr(xOf(c), yOf(r), cell, cell);
                p.setPen(textColorOn(image_.pixel(c, r)));
                p.drawText(cr, Qt::AlignCenter, cellText(cellValue(r, c)));
            }
        p.restore();
    }

    // The inspected query row.
    const int q = store_->queryIndex();
    if (q >= r0 && q < r1) {
        const double y0 = yOf(q);
        const double h = std::max(cell, 3.0);
        p.save();
        p.setClipRect(m.adjusted(-14, -3, 3, 3));
        p.setPen(QPen(th.accent, penWidth(3)));
        p.setBrush(Qt::NoBrush);
        const double xl = std::max<double>(m.left() - 1, xOf(0) - 1);
        p.drawRect(QRectF(xl, y0 - (h - cell) / 2 - 1, xOf(q + 1) + 1 - xl, h + 2));
        // A marker in the margin, visible even when rows are a pixel high.
        QPolygonF arrow;
        const double cy = y0 + cell / 2;
        arrow << QPointF(m.left() - 3, cy) << QPointF(m.left() - 11, cy - 6)
              << QPointF(m.left() - 11, cy + 6);
        p.setPen(Qt::NoPen);
        p.setBrush(th.accent);
        p.drawPolygon(arrow);
        p.restore();
    }

    // Token labels: query rows on the left, key columns on top (rotated), thinned when dense;
    // only the visible ones (whole cells: a visible row's middle is inside the matrix).
    p.setFont(th.smallFont);
    const int step = std::max(1, static_cast<int>(std::ceil((fmS.height() + 1) / cell)));
    // "position  token" in `width`: the position always whole, the token cut at its end
    const auto rowLabel = [&](int j, int width) {
        const QString number = QString::number(j) + QStringLiteral("  ");
        return number + fmS.elidedText(labels_[j], Qt::ElideRight,
                                       std::max(0, width - fmS.horizontalAdvance(number)));
    };
    for (int j = std::min(r0, c0); j < std::max(r1, c1); ++j) {
        const bool inspected = j == q;
        if (!labelled(j, rows_, step) && !inspected) continue;
        if (!inspected && q >= 0 && std::abs(j - q) * cell < fmS.height() && j != q) continue;
        p.setPen(inspected ? th.accent : th.text);
        if (j >= r0 && j < r1) {
            const double cy = yOf(j + 0.5);
            const QRect lr(kMargin, static_cast<int>(cy) - fmS.height() / 2, kRowLabelW - 16,
                           fmS.height());
            p.drawText(lr, Qt::AlignRight | Qt::AlignVCenter, rowLabel(j, lr.width()));
        }
        if (j >= c0 && j < c1) {
            p.save();
            p.translate(xOf(j + 0.5), m.top() - 6);
            p.rotate(-90);
            p.drawText(QRect(0, -fmS.height() / 2, kColLabelH - 8, fmS.height()),
                       Qt::AlignLeft | Qt::AlignVCenter, rowLabel(j, kColLabelH - 8));
            p.restore();
        }
    }

    // The minimap: the whole matrix, pooled to its size, and where the view is.
    if (const QRect mini = minimapRect(); !mini.isEmpty()) {
        const int km = (rows_ + mini.width() - 1) / mini.width();
        const int n = (rows_ + km - 1) / km * km;
        p.fillRect(mini.adjusted(-3, -3, 3, 3), th.background);
        p.fillRect(mini, th.panel);
        drawCells(p, mini, QRectF(0, 0, n, n), km, true);  // an image even in SVG and PDF
        p.setPen(th.grid);
        p.setBrush(Qt::NoBrush);
        p.drawRect(mini.adjusted(-1, -1, 0, 0));
        const double s = mini.width() / double(n);
        QRectF where(mini.left() + v.left() * s, mini.top() + v.top() * s,
                     std::max(6.0, v.width() * s), std::max(6.0, v.height() * s));
        where.moveRight(std::min(where.right(), double(mini.right())));     // a small view's mark
        where.moveBottom(std::min(where.bottom(), double(mini.bottom())));  // stays inside
        p.setPen(QPen(th.accent, penWidth(2)));
        p.drawRect(where);
        p.setFont(th.smallFont);
        p.setPen(th.mutedText);
        if (mini.left() > m.right())
            p.drawText(QRect(mini.left(), mini.bottom() + 4, mini.width(), fmS.height()),
                       Qt::AlignLeft | Qt::AlignVCenter, tr("whole matrix"));
    }

    // The rubber band being dragged.
    if (drag_ == Drag::Band) {
        p.setPen(QPen(th.accent, penWidth(1.5), Qt::DashLine));
        p.setBrush(QColor(th.accent.red(), th.accent.green(), th.accent.blue(), 40));
        p.drawRect(QRect(pressPos_, lastPos_).normalized().intersected(m));
    }
}

void AttentionMatrixView::contextMenuEvent(QContextMenuEvent* event) {
    QMenu menu(this);
    QAction* byMax = menu.addAction(tr("Pool cells by their largest weight"));
    QAction* byMean = menu.addAction(tr("Pool cells by their mean weight"));
    for (QAction* a : {byMax, byMean}) a->setCheckable(true);
    byMax->setChecked(pooling_ == Pooling::Max);
    byMean->setChecked(pooling_ == Pooling::Mean);
    if (drawnPoolFactor() == 1) menu.addSection(tr("(every cell has its pixels now)"));
    menu.addSeparator();
    QAction* zoomIn = menu.addAction(tr("Zoom in\tCtrl+="));
    QAction* zoomOut = menu.addAction(tr("Zoom out\tCtrl+-"));
    QAction* fitAll = menu.addAction(tr("Fit the whole matrix\tCtrl+0"));
    QAction* follow = menu.addAction(tr("Follow the newest row"));
    follow->setCheckable(true);
    follow->setChecked(follow_);
    zoomIn->setEnabled(rows_ > 0);
    zoomOut->setEnabled(zoomed_);
    fitAll->setEnabled(zoomed_);
    follow->setEnabled(zoomed_);
    const QAction* chosen = menu.exec(event->globalPos());
    if (chosen == byMax) setPooling(Pooling::Max);
    if (chosen == byMean) setPooling(Pooling::Mean);
    if (chosen == zoomIn) zoomBy(0.5, QPointF(mapFromGlobal(event->globalPos())));
    if (chosen == zoomOut) zoomBy(2);
    if (chosen == fitAll) fit();
    if (chosen == follow) setFollowing(!follow_);
}

void AttentionMatrixView::mousePressEvent(QMouseEvent* event) {
    const QPoint pos = event->position().toPoint();
    if (event->button() == Qt::LeftButton && minimapRect().contains(pos)) {
        drag_ = Drag::Minimap;  // the view moves to where the minimap is pressed and dragged
        centreOnMinimap(pos);
        event->accept();
        return;
    }
    if (event->button() == Qt::LeftButton || event->button() == Qt::MiddleButton) {
        if (!matrixRect().contains(pos)) return QWidget::mousePressEvent(event);
        pressPos_ = lastPos_ = pos;
        panButton_ =
            event->button() == Qt::MiddleButton || (event->modifiers() & Qt::ShiftModifier) != 0;
        drag_ = event->button() == Qt::MiddleButton ? Drag::Pan : Drag::Pending;
        event->accept();
        return;
    }
    QWidget::mousePressEvent(event);
}

void AttentionMatrixView::mouseMoveEvent(QMouseEvent* event) {
    const QPoint pos = event->position().toPoint();
    if (drag_ == Drag::Pending && (pos - pressPos_).manhattanLength() > 4)
        drag_ = panButton_ ? Drag::Pan : Drag::Band;
    if (drag_ == Drag::Pan) {
        const double px = cellPixels();
        if (px > 0) panBy(-(pos.y() - lastPos_.y()) / px, -(pos.x() - lastPos_.x()) / px);
    }
    if (drag_ == Drag::Band) update();
    if (drag_ == Drag::Minimap) centreOnMinimap(pos);
    lastPos_ = pos;
    QWidget::mouseMoveEvent(event);
}

void AttentionMatrixView::mouseReleaseEvent(QMouseEvent* event) {
    const Drag drag = drag_;
    drag_ = Drag::None;
    if (drag == Drag::Pending) {  // a click: inspect that row's query
        if (const std::optional<QPoint> cell = cellAt(pressPos_)) store_->pinQuery(cell->y());
        event->accept();
        return;
    }
    if (drag == Drag::Band) {  // zoom to the dragged cells
        const QRect m = matrixRect();
        const QRect band = QRect(pressPos_, event->position().toPoint()).normalized();
        auto inside = [&](QPoint at) {
            return QPoint(std::clamp(at.x(), m.left(), m.right()),
                          std::clamp(at.y(), m.top(), m.bottom()));
        };
        const QRectF v = viewport();
        const double px = cellPixels();
        auto cellOf = [&](QPoint at) {
            const QPoint a = inside(at);
            return QPoint(static_cast<int>(v.x() + (a.x() + 0.5 - m.left()) / px),
                          static_cast<int>(v.y() + (a.y() + 0.5 - m.top()) / px));
        };
        const QPoint a = cellOf(band.topLeft()), b = cellOf(band.bottomRight());
        zoomToCells(a.y(), b.y(), a.x(), b.x());
        event->accept();
        return;
    }
    if (drag == Drag::Pan || drag == Drag::Minimap) {
        event->accept();
        return;
    }
    QWidget::mouseReleaseEvent(event);
}

void AttentionMatrixView::wheelEvent(QWheelEvent* event) {
    const double notches = event->angleDelta().y() / 120.0;
    if (notches == 0 || rows_ == 0) return QWidget::wheelEvent(event);
    const QPointF at = event->position();
    zoomBy(std::pow(0.8, notches),
           matrixRect().contains(at.toPoint()) ? std::optional<QPointF>(at) : std::nullopt);
    event->accept();
}

namespace {

// Ctrl+= (or Ctrl++), Ctrl+-, Ctrl+0: the matrix's zoom while it has the focus.
int zoomKey(const QKeyEvent* e) {
    if (!(e->modifiers() & Qt::ControlModifier)) return 0;
    switch (e->key()) {
        case Qt::Key_Equal:
        case Qt::Key_Plus:
            return 1;
        case Qt::Key_Minus:
        case Qt::Key_Underscore:
            return -1;
        case Qt::Key_0:
            return 2;
        default:
            return 0;
    }
}

}  // namespace

void AttentionMatrixView::keyPressEvent(QKeyEvent* event) {
    if (const int z = zoomKey(event)) {
        if (z == 1) zoomBy(0.5);
        if (z == -1) zoomBy(2);
        if (z == 2) fit();
        event->accept();
        return;
    }
    if (zoomed_ && !(event->modifiers() & Qt::ControlModifier)) {
        const QRectF v = viewport();
        const double dr = std::max(1.0, std::floor(v.height() / 8));
        const double dc = std::max(1.0, std::floor(v.width() / 8));
        switch (event->key()) {
            case Qt::Key_Up:
                return panBy(-dr, 0);
            case Qt::Key_Down:
                return panBy(dr, 0);
            case Qt::Key_Left:
                return panBy(0, -dc);
            case Qt::Key_Right:
                return panBy(0, dc);
            default:
                break;
        }
    }
    QWidget::keyPressEvent(event);
}

bool AttentionMatrixView::event(QEvent* event) {
    if (event->type() == QEvent::ShortcutOverride) {
        // The window's Ctrl+= / Ctrl+- / Ctrl+0 (text size) yield to the matrix's zoom while the
        // matrix has the focus.
        auto* key = static_cast<QKeyEvent*>(event);
        if (zoomKey(key) != 0 && rows_ > 0) {
            event->accept();
            return true;
        }
    }
    if (answerToolTip(this, event, [this](QPoint pos) { return toolTipAt(pos); })) return true;
    return QWidget::event(event);
}

}  // namespace kvscope::viz
