// The calculator as pictures, beside its text (views/calculator_panel.h), both fed with the
// calculator's own results (kvmem::calculate), never re-deriving a number:
//  - KvBytesChart: KV bytes per token of every preset and the loaded model, each bar in front of
//    a pale, outlined ghost bar of the same model as if it had plain multi-head attention;
//  - ContextChart: the chosen model's cache against context length (and as if MHA), with the
//    room a GPU leaves for the cache after the weights, and the device's memory when known, as
//    horizontal lines: where the cache stops fitting is where the lines cross.
#pragma once

#include <QChartView>
#include <QString>
#include <cstdint>
#include <vector>

#include "analysis/kv_memory.h"

class QBarCategoryAxis;
class QBarSet;
class QLineSeries;
class QValueAxis;

namespace kvscope::viz {

class KvBytesChart : public QChartView {
    Q_OBJECT
  public:
    explicit KvBytesChart(QWidget* parent = nullptr);

    // One bar per result, in this order from the top: r.bytesPerToken, ghost r.mhaBytesPerToken.
    // `dtypeName` ("fp16") is the cache element type they were calculated with.
    void setResults(const std::vector<kvmem::Result>& results, const QString& dtypeName);

    // -- what is drawn (read-only, for tests)
    struct Bar {
        QString name;
        uint64_t bytesPerToken = 0, mhaBytesPerToken = 0;
    };
    const std::vector<Bar>& bars() const { return bars_; }
    double unitBytes() const { return unit_; }  // the value axis' unit: 1, 1024 or 2^20 bytes
    // The bar sets' values in unitBytes(), in bars() order: this model's, and the ghost's total
    // length (its set holds mha − own, stacked behind).
    double drawnBytes(int bar) const;
    double drawnMhaBytes(int bar) const;
    // The bars' labels as drawn, bottom first: "name · bytes", or the names alone where those
    // would take more than kNamesShare of the width.
    QStringList namesShown() const;
    QFont namesFont() const;
    static constexpr double kNamesShare = 0.38;
    // A name's slot is at least this many times its type's height (the axis leaves a name out
    // where its slot is less; 1.0 still lost every second one).
    static constexpr double kNameSpacing = 1.3;

  protected:
    void resizeEvent(QResizeEvent* event) override;

  private:
    void applyTheme();
    void fitTexts();      // the title and the bars' labels in the longest forms the width takes
    void fitNamesFont();  // the bars' names in a type no taller than a bar's slot

    QString dtypeName_;
    QBarSet *own_, *ghost_;
    QBarCategoryAxis* names_;
    QValueAxis* values_;
    std::vector<Bar> bars_;
    double unit_ = 1024;
};

class ContextChart : public QChartView {
    Q_OBJECT
  public:
    explicit ContextChart(QWidget* parent = nullptr);

    // One point per context length: the results of the same model and inputs at growing
    // contexts (totalBytes and mhaTotalBytes). The GPU's room for the cache is
    // gpu.memoryBytes − weightBytes of the last result; deviceMemoryBytes (0: unknown) is the
    // loaded model's device, drawn as it is.
    void setResults(const std::vector<kvmem::Result>& atContexts, const QString& deviceName,
                    uint64_t deviceMemoryBytes);

    // -- what is drawn (read-only, for tests); y values in unitBytes()
    const QLineSeries* cacheSeries() const { return cache_; }
    const QLineSeries* mhaSeries() const { return mha_; }
    const QLineSeries* gpuRoomSeries() const { return gpuRoom_; }
    const QLineSeries* deviceSeries() const { return device_; }
    double unitBytes() const { return unit_; }
    // The context at which the cache no longer fits beside the weights on the GPU (0: it fits
    // at every context drawn, or the weights alone do not fit).
    uint64_t lastFittingContext() const { return lastFitting_; }

  protected:
    void resizeEvent(QResizeEvent* event) override;

  private:
    void applyTheme();
    void fitTitle();  // "Cache by context (tokens): <status>", shorter where it does not fit

    QString status_;

    QLineSeries *cache_, *mha_, *gpuRoom_, *device_;
    QValueAxis *x_, *y_;
    double unit_ = 1 << 30;
    uint64_t lastFitting_ = 0;
};

}  // namespace kvscope::viz
