// CalculatorPanel: the KV-cache calculator (compute/analysis/kv_memory.h) behind widgets: a preset
// or the loaded model (from the TraceStore's ModelSummary), the cache dtype, batch, context and
// window, a GPU and a price; it shows each result with its arithmetic, estimates labelled, and
// beside the text the same results as charts (charts/calculator_charts.h).
#pragma once

#include <QWidget>
#include <optional>

#include "analysis/kv_memory.h"

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QSpinBox;

namespace kvscope::viz {

class ContextChart;
class KvBytesChart;
class TraceStore;

class CalculatorPanel : public QWidget {
    Q_OBJECT
  public:
    explicit CalculatorPanel(TraceStore* store, QWidget* parent = nullptr);
    // The role of the GPU list's items that holds the short name the closed box shows ("H100
    // SXM 80GB"); the item text is the long one the list shows ("… (80 GB, 3.350 TB/s)").
    static constexpr int kShortName = Qt::UserRole + 1;

    // Picks a preset by key ("llama-3-70b") or "loaded"; false if there is no such entry.
    bool selectModel(const QString& key);
    void setDtype(const QString& key);  // "fp16"
    void setContext(int tokens);
    void setBatch(int batch);
    void setWindow(int tokens);  // -1: the model's own, 0: none
    void setGpu(const QString& key);
    void setPrice(double usdPerHour);

    // The result on show (nullopt before a model is chosen) and the text of one of its rows:
    // "per_token", "total", "as_if_mha", "why_different", "weights", "gpu_share",
    // "decode_time", "cost" (the names of `kvscope memory --json`'s "arithmetic").
    const std::optional<kvmem::Result>& result() const { return result_; }
    QString rowText(const QString& name) const;
    // The charts beside the text: bytes per token of every preset and the loaded model (with
    // the inputs on show), and the chosen model's cache against context length.
    const KvBytesChart* bytesChart() const { return bytesChart_; }
    const ContextChart* contextChart() const { return contextChart_; }
    // Narrower than this the text column is hidden and the charts take the width (a small
    // exported figure: the text's 300 and the charts' 360 pixels had been cut at 600).
    static constexpr int kTextFromWidth = 640;
    // Lower than this the context chart is hidden and the bars take the height (at 400 pixels
    // the bars' names were every second one and the context chart's axis read "…").
    static constexpr int kBothChartsFromHeight = 480;
    bool textShown() const;

  protected:
    void resizeEvent(QResizeEvent* event) override;

  private:
    void refillLoaded();
    void recalculate();

    TraceStore* store_;
    QComboBox *model_, *dtype_, *gpu_;
    QSpinBox *context_, *batch_, *window_;
    QDoubleSpinBox* price_;
    QLabel* shape_;
    std::vector<std::pair<QString, QLabel*>> rows_;
    std::optional<kvmem::Result> result_;
    KvBytesChart* bytesChart_;
    ContextChart* contextChart_;
    QWidget* textColumn_ = nullptr;
};

}  // namespace kvscope::viz
