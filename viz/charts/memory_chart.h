// MemoryChart: the KV cache's bytes against tokens, live. Measured bytes used (each StepTrace's
// kvBytes) and allocated (ModelSummary::cacheAllocatedBytes) beside the formula's line
// 2 × layers × kv_heads × head_dim × 4 B × tokens and a dotted projection of the formula to the
// model's full context, where the x axis ends. The weights' bytes are drawn only on request.
#pragma once

#include <QChartView>

class QLineSeries;
class QValueAxis;

namespace kvscope::viz {

class TraceStore;

class MemoryChart : public QChartView {
    Q_OBJECT
  public:
    explicit MemoryChart(TraceStore* store, QWidget* parent = nullptr);

    // The series (y in unitBytes()): for tests and exports. Points are (tokens held, bytes).
    const QLineSeries* usedSeries() const { return used_; }            // measured, from the traces
    const QLineSeries* allocatedSeries() const { return allocated_; }  // measured, the backend
    const QLineSeries* formulaSeries() const { return formula_; }      // up to the tokens held
    const QLineSeries* projectionSeries() const { return projection_; }  // beyond them
    const QLineSeries* weightsSeries() const { return weights_; }        // hidden unless asked for
    // Grouped-query or multi-query attention: the same model's cache if every query head had
    // its own K and V (the formula × heads / kv heads), to the full context; empty for MHA.
    const QLineSeries* mhaSeries() const { return mha_; }
    // The cache lab: the full f32 cache's bytes on the same tokens, measured beside a lossy
    // policy (StepTrace::fullKvBytes); empty otherwise.
    const QLineSeries* fullSeries() const { return full_; }
    // Draws the weights' bytes too (and lets them set the scale); off by default, so the scale
    // is the cache's.
    void setShowWeights(bool show);
    bool showsWeights() const { return showWeights_; }
    double unitBytes() const { return unit_; }  // 1024 (KiB), 2^20 (MiB) or 2^30 (GiB)
    // The numbers behind the lines, in words (the window shows it under the chart).
    QString caption() const { return caption_; }

  signals:
    void captionChanged(const QString& caption);

  protected:
    void resizeEvent(QResizeEvent* event) override;

  private:
    void rebuild();  // from the store: every series at once
    void applyTheme();
    // The legend under the plot where its shown entries fit on one line at this width, else
    // beside it, an entry a line (the x axis then titled "tokens"): Qt Charts elides what does
    // not fit ("plain M…" at 1024 px).
    void placeLegend();

    TraceStore* store_;
    QLineSeries *full_ = nullptr, *used_, *allocated_, *formula_, *projection_, *weights_, *mha_;
    bool showWeights_ = false;
    QValueAxis *x_, *y_;
    double unit_ = 1024;
    QString caption_;
};

}  // namespace kvscope::viz
