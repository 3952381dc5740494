// AllHeadsView: a layers × heads grid of small thumbnails of every head's attention matrix; a
// click selects that layer and head in the store, the selected one is outlined and the heads
// sharing its K/V head (grouped-query attention) are marked. Thumbnails are max-pooled to at
// most kThumbCells pixels a side and updated one pooled row per appended token.
#pragma once

#include <QFont>
#include <QImage>
#include <QWidget>
#include <optional>
#include <utility>
#include <vector>

namespace kvscope::viz {

class TraceStore;

class AllHeadsView : public QWidget {
    Q_OBJECT
  public:
    static constexpr int kThumbCells = 64;  // most pixels a side of one thumbnail image

    explicit AllHeadsView(TraceStore* store, QWidget* parent = nullptr);

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    // -- what is drawn (read-only, for tests)
    int rows() const { return rows_; }        // tokens in every thumbnail (0: empty state)
    int poolBlock() const { return block_; }  // tokens per thumbnail pixel along each axis
    // The thumbnail image of (layer, head): ceil(rows / poolBlock) pixels a side, each the
    // largest weight of its block of cells. Empty in the empty state.
    QImage thumbnail(int layer, int head) const;
    // Where the thumbnail of (layer, head) is drawn; empty in the empty state.
    QRect cellRect(int layer, int head) const;
    // The (layer, head) under a point, if any.
    std::optional<std::pair<int, int>> headAt(const QPoint& pos) const;
    // The head labels of the last paint: head, text, the box it was drawn in and its font.
    struct HeadLabel {
        int head = 0;
        QString text;
        QRect box;
        QFont font;
    };
    const std::vector<HeadLabel>& paintedHeadLabels() const { return headLabels_; }

  protected:
    void paintEvent(QPaintEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    bool event(QEvent* event) override;

  private:
    struct Grid {
        int left = 0, top = 0, side = 0, gap = 0;
    };
    Grid grid() const;
    void rebuild();
    void poolRowsFrom(int pixelRow);  // recomputes pooled rows >= pixelRow of every thumbnail
    // Tokens per pixel for `rows` rows: fitting kThumbCells, rounded up to a multiple of the
    // store's thumbnail pool.
    int blockFor(int rows) const;
    void onAppended(int index);
    void onTruncated(int count);

    TraceStore* store_;
    int nLayer_ = 0, nHead_ = 0, rows_ = 0, block_ = 1;
    std::vector<QImage> thumbs_;  // (n_layer, n_head) images of kThumbCells × kThumbCells
    QString emptyMessage_;
    std::vector<HeadLabel> headLabels_;
};

}  // namespace kvscope::viz
