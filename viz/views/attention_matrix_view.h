// AttentionMatrixView: the t × t causal attention matrix of the selected layer and head, one
// row per query token (rows from the traces' attention rows), the future masked. Rendered into a
// cached image (one pixel per cell) that grows by one row per appended token and is rebuilt when
// the layer or head changes, so it stays smooth at the model's full context. The new row is
// revealed left to right, the inspected query row is outlined, hovering tells the pair and the
// weight, and clicking a row inspects that token's query.
#pragma once

#include <QImage>
#include <QStringList>
#include <QWidget>
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
    int layer() const { return layer_; }
    int head() const { return head_; }
    // Weight of query row r on key column c; NaN where c > r (masked) or out of range.
    float cellValue(int r, int c) const;
    // The colour painted for cell (r, c) (one image pixel per cell). Precondition: r, c < rows().
    QRgb cellColor(int r, int c) const { return image_.pixel(c, r); }
    QRect matrixRect() const;  // where the rows() × rows() cells are drawn (fitted, never clipped)
    // Cells per pixel side: 1 while every row has a pixel, else k (a k × k block per pixel).
    int poolFactor() const;
    Pooling pooling() const { return pooling_; }
    void setPooling(Pooling pooling);
    // The value a k × k block is drawn with (block bi, bj: rows bi·k.., keys bj·k..), over its
    // visible cells (c <= r); NaN when none is visible.
    float pooledValue(int bi, int bj) const;
    std::optional<QPoint> cellAt(const QPoint& pos) const;  // (x = key c, y = query r)
    QString toolTipAt(const QPoint& pos) const;             // empty outside the cells
    double transitionProgress() const;
    // The title that fits `width` pixels: layer, head and, for grouped-query attention, the K/V
    // head it reads ("reads K/V head 1 of 2"); shorter forms when the long one does not fit.
    QString titleText(int width) const;

  protected:
    void paintEvent(QPaintEvent* event) override;
    void contextMenuEvent(QContextMenuEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    bool event(QEvent* event) override;

  private:
    void rebuild();             // every row again (new selection, tokens reset, theme)
    void appendRow(int index);  // one new row at the end
    void writeImageRow(int r);  // colours of row r into image_
    QRect titleRect() const;
    int availableSide() const;          // pixels the matrix may take on each side
    const QImage& pooledImage() const;  // (blocks × blocks) at poolFactor(), cached

    TraceStore* store_;
    Transition* transition_;
    int layer_ = 0, head_ = 0, rows_ = 0;
    int animatedRow_ = -1;                    // the row being revealed, -1 when none
    std::vector<std::vector<float>> values_;  // row r: weights over keys 0..r
    QStringList labels_;                      // token labels
    QImage image_;                            // (capacity, capacity) one pixel per cell
    mutable QImage scaled_;                   // image_'s top-left rows_ × rows_ at the drawn size
    mutable bool scaledDirty_ = true;
    Pooling pooling_ = Pooling::Max;
    mutable QImage pooled_;
    mutable int pooledRows_ = -1, pooledK_ = 0;
    mutable Pooling pooledMode_ = Pooling::Max;
    QString emptyMessage_;
};

}  // namespace kvscope::viz
