// CacheView: the KV cache as memory. Per layer, a K block and a V block as wide as the allocated
// context (n_ctx token slots); each held token fills its slot with a stripe of its real key or
// value numbers, the empty capacity is hatched, and the newest slice is outlined and grows in.
// Bytes used and allocated come from the model summary and the traces (per layer: the totals
// divided by n_layer, split equally into K and V). Blocks are drawn to scale: when the context has
// more slots than the block has pixels, one pixel column holds tokensPerPixel() slots and shows
// the average of their colours (the caption says so); the byte figures stay exact.
#pragma once

#include <QImage>
#include <QWidget>
#include <vector>

namespace kvscope {
struct StepTrace;
}

namespace kvscope::viz {

class TraceStore;
class Transition;

class CacheView : public QWidget {
    Q_OBJECT
  public:
    static constexpr int kStripeRows = 24;  // most numbers of a token's K or V shown per slot

    explicit CacheView(TraceStore* store, QWidget* parent = nullptr);

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    // -- what is drawn (read-only, for tests)
    int usedTokens() const { return used_; }           // slots filled in every block
    int capacityTokens() const { return capacity_; }   // slots per block (n_ctx)
    bool recomputeMode() const { return recompute_; }  // tokens exist but no cache is kept
    size_t usedBytes() const;                          // K and V of all layers now
    size_t allocatedBytes() const;                     // what the backend allocated
    // Slots the backend has allocated (whole blocks), at most capacityTokens(): hatched when
    // empty; the slots past them are not allocated yet.
    int allocatedTokens() const;
    size_t blockUsedBytes() const;                   // one layer's K (or V) block, used
    size_t blockAllocatedBytes() const;              // one layer's K (or V) block, allocated
    QRect blockRect(int layer, bool values) const;   // the capacity of one block
    QRect filledRect(int layer, bool values) const;  // its part that holds tokens
    // One block's stripes (capacity × stripe rows; columns >= usedTokens() are not drawn).
    QImage blockImage(int layer, bool values) const;
    double transitionProgress() const;
    // A prefill's block is appearing (all prompt slices at once), not one step's slice.
    bool revealingPrefill() const { return revealingPrefill_ && transitionProgress() < 1; }
    // Token slots per pixel column of a block at the current width: 1 while every slot has at
    // least a pixel, else the smallest whole number that fits the context in the width.
    int tokensPerPixel() const;
    // The line under the blocks: the scale ("1 pixel = 8 token slots, colours averaged") and the
    // exact bytes used and allocated; empty with no model. In a small view a shorter form is
    // painted ("1 pixel = 8 slots · …", then the bytes alone): paintedScaleText().
    QString scaleText() const;
    QString paintedScaleText() const { return paintedScale_; }
    bool scaleTextFits() const { return scaleFits_; }  // its wrapped lines inside its band
    // The lines under the title as last painted (the per-token formula, the allocation, GQA's
    // saving): the longest forms that fit, elided only where even the shortest does not.
    const std::vector<QString>& paintedHeaderLines() const { return headerLines_; }

    // The cache lab: with a K/V type below f32, each slot shows what its stored numbers differ
    // by from the exact ones (kvRoundTrip of the trace's K and V, minus them: the cache's own
    // conversion) instead of the numbers. Ignored for an f32 cache.
    void setShowError(bool show);
    bool showsError() const;

  protected:
    void paintEvent(QPaintEvent* event) override;
    bool event(QEvent* event) override;

  private:
    struct Geometry {
        int top = 0, rowH = 0, gap = 0, blockW = 0, kLeft = 0, vLeft = 0;
        int tpp = 1;  // token slots per pixel column
        // the layer labels' and the bytes column's widths, from the fonts (whole at any size)
        int labelW = 0, bytesW = 0;
    };
    Geometry geometry() const;
    // Block `b`'s first `tokens` columns pooled tpp to a pixel column (the mean colour).
    QImage pooledImage(size_t b, int tokens, int tpp) const;
    void rebuild();
    void appendToken(int index);
    bool writeColumn(int token);  // false if the colour scale must grow (rebuild instead)
    // The numbers a block's column shows for token t: its K or V, or their storage error.
    const float* columnValues(const StepTrace& t, int layer, bool values,
                              std::vector<float>& scratch) const;
    int stripeRows() const;
    int gqaLines() const;  // 1 when the model uses grouped-query attention (one more note line)
    QStringList scaleTexts() const;  // the scale line, longest form first

    TraceStore* store_;
    Transition* transition_;
    int nLayer_ = 0, capacity_ = 0, used_ = 0;
    bool recompute_ = false;
    bool noTensors_ = false;
    std::vector<QImage> images_;  // (n_layer × 2): K of layer l at 2l, V at 2l + 1
    std::vector<float> limits_;   // (n_layer × 2): colour scale limit of each block
    int animatedToken_ = -1;
    bool revealingPrefill_ = false;
    bool showError_ = false;
    std::vector<QString> headerLines_;
    QString paintedScale_;
    bool scaleFits_ = true;
};

}  // namespace kvscope::viz
