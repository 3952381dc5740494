// AttentionMatrixView: the t × t causal attention matrix of the selected layer and head, one
// row per query token (rows from the traces' attention rows), the future masked. Rendered into
// cached images (one pixel per cell, rows coloured when first drawn; pooled k × k per pixel where
// rows outnumber pixels, per k) that an appended token updates by one row, so it stays smooth at
// the model's full context. The new row is revealed left to right, the inspected query row is
// outlined, hovering tells the pair and the weight, clicking a row inspects that token's query.
// The wheel, Ctrl+= / Ctrl+- / Ctrl+0 and a dragged rubber band zoom down to single cells (their
// weights written in them); Shift+drag, middle-drag and the arrow keys pan (the window keeps
// Left and Right for stepping); while zoomed the view follows the newest row and a minimap shows
// where the view is.
#pragma once

#include <QImage>
#include <QRectF>
#include <QStringList>
#include <QWidget>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace kvscope::viz {

class TraceStore;
class Transition;

class AttentionMatrixView : public QWidget {
    Q_OBJECT
  public:
    // How cells share a pixel when the matrix has more rows than the view has pixels: the
    // largest weight of the block (a sharp head stays visible) or their mean.
    enum class Pooling { Max, Mean };

    explicit AttentionMatrixView(TraceStore* store, QWidget* parent = nullptr);

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    // -- what is drawn (read-only, for tests)
    int rows() const { return rows_; }  // query rows drawn (0 in the empty state)
    QString emptyMessage() const { return emptyMessage_; }  // what the empty state says
    int layer() const { return layer_; }
    int head() const { return head_; }
    // Weight of query row r on key column c; NaN where c > r (masked) or out of range.
    float cellValue(int r, int c) const;
    // The colour painted for cell (r, c) (one image pixel per cell). Precondition: r, c < rows().
    QRgb cellColor(int r, int c) const;
    // Where the visible cells (viewport()) are drawn: fitted, the whole matrix, never clipped.
    QRect matrixRect() const;
    // Cells per pixel side of the whole matrix fitted: 1 while every row has a pixel, else k
    // (a k × k block per pixel).
    int poolFactor() const;
    // Cells per pixel side as drawn now (poolFactor() when fitted; 1 once zoomed in to where
    // every cell has a pixel).
    int drawnPoolFactor() const;
    // -- zoom and pan (cell units: x = key column, y = query row)
    // The cells drawn in matrixRect(): (0, 0, n, n) when fitted (n rounded up to whole blocks
    // when pooled), a part of the matrix when zoomed.
    QRectF viewport() const;
    bool zoomed() const { return zoomed_; }
    double cellPixels() const;  // pixels per cell side as drawn
    // The rectangle cell (r, c) is drawn in (may lie outside matrixRect() when zoomed).
    QRectF cellRect(int r, int c) const;
    // Shows query rows r0..r1 and keys c0..c1 (inclusive, clamped to the matrix) as large as
    // they fit; the whole matrix again when they cover it.
    void zoomToCells(int r0, int r1, int c0, int c1);
    // Multiplies the visible rows and keys by `factor` (< 1 zooms in), keeping the cell under
    // `anchor` (a widget position; the centre of the matrix when null) where it is.
    void zoomBy(double factor, std::optional<QPointF> anchor = std::nullopt);
    void fit();                        // the whole matrix again
    void panBy(double dr, double dc);  // moves the viewport by rows and keys; stops following
    // While zoomed, each appended token scrolls the view so that its row is the bottom one.
    bool following() const { return follow_; }
    void setFollowing(bool on);
    // The thumbnail of the whole matrix drawn while zoomed (empty when not shown).
    QRect minimapRect() const;
    Pooling pooling() const { return pooling_; }
    void setPooling(Pooling pooling);
    // The value a k × k block is drawn with (block bi, bj: rows bi·k.., keys bj·k..), over its
    // visible cells (c <= r); NaN when none is visible.
    float pooledValue(int bi, int bj) const;
    std::optional<QPoint> cellAt(const QPoint& pos) const;  // (x = key c, y = query r)
    QString toolTipAt(const QPoint& pos) const;             // empty outside the cells
    double transitionProgress() const;
    // A prefill's rows are being revealed together (one pass), not one row (a step).
    bool revealingPrefill() const { return revealingPrefill_ && transitionProgress() < 1; }
    // The title that fits `width` pixels: layer, head and, for grouped-query attention, the K/V
    // head it reads ("reads K/V head 1 of 2"); shorter forms when the long one does not fit.
    QString titleText(int width) const;
    // The title as last painted, and whether the colour bar went under the subtitle (beside the
    // title it would have left the title too little: a 1024-pixel window's view).
    QString paintedTitle() const { return paintedTitle_; }
    bool legendBelow() const;

  protected:
    void paintEvent(QPaintEvent* event) override;
    void contextMenuEvent(QContextMenuEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void wheelEvent(QWheelEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;
    bool event(QEvent* event) override;

  private:
    void rebuild();                   // every row again (new selection, tokens reset, theme)
    void appendRow(int index);        // one new row at the end
    void writeImageRow(int r) const;  // colours of row r into image_
    // Writes the rows of [r0, r1) that image_ does not hold yet: rows are coloured when first
    // drawn one pixel per cell (fitted small matrices, zoomed views), not for every row at once.
    void ensureImageRows(int r0, int r1) const;
    QStringList titleForms() const;  // longest first
    QRect titleRect() const;         // title, subtitle and, where legendBelow(), the colour bar
    int titleTextWidth() const;      // the title's and subtitle's: beside the colour bar or not
    int availableSide() const;       // pixels the matrix may take on each side (fitted)
    int minimapSide() const;
    // Pixels per cell side when w × h cells are shown zoomed: as large as they fit in the
    // height and in the width beside the minimap.
    double zoomedCellPixels(double w, double h) const;
    // (blocks × blocks, blocks = ⌈rows / k⌉) the whole matrix pooled k × k (k >= 2), cached per
    // k; an appended row recomputes only its block row.
    const QImage& pooledImage(int k) const;
    float pooledValueAt(int k, int bi, int bj) const;
    void invalidatePooled();
    void clampViewport();
    void followNewest();
    void centreOnMinimap(const QPoint& pos);  // the viewport's centre to that minimap pixel
    // The pixels of the cells in `cells` (a rectangle in cell units) drawn into `target`, from
    // image_ or the pooled image at k (whole blocks); in SVG and PDF one rectangle per cell
    // unless asImage (the minimap).
    void drawCells(QPainter& p, const QRect& target, const QRectF& cells, int k,
                   bool asImage = false) const;

    TraceStore* store_;
    Transition* transition_;
    int layer_ = 0, head_ = 0, rows_ = 0;
    int animatedRow_ = -1;
    bool revealingPrefill_ = false;            // the row being revealed, -1 when none
    std::vector<std::vector<float>> values_;   // row r: weights over keys 0..r
    QStringList labels_;                       // token labels
    mutable QImage image_;                     // (capacity, capacity) one pixel per cell
    mutable std::vector<uint8_t> rowWritten_;  // per image_ row: 1 once its colours are in
    mutable QImage scaled_;                    // image_'s top-left rows_ × rows_ at the drawn size
    mutable bool scaledDirty_ = true;
    Pooling pooling_ = Pooling::Max;
    struct PooledCache {
        QImage image;  // (capacity / k, capacity / k) one pixel per block; valid for builtRows
        int builtRows = 0;
    };
    mutable std::map<int, PooledCache> pooled_;  // by k
    // zoom: the visible cells (x = key, y = query row) when zoomed_
    bool zoomed_ = false;
    QRectF view_;
    bool follow_ = true;
    // mouse: a press that becomes a click (inspect the row), a rubber band or a pan
    enum class Drag { None, Pending, Band, Pan, Minimap };
    Drag drag_ = Drag::None;
    QPoint pressPos_, lastPos_;
    bool panButton_ = false;  // the press was a pan (Shift or the middle button)
    QString emptyMessage_;
    QString paintedTitle_;
};

}  // namespace kvscope::viz
