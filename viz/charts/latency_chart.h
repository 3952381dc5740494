// LatencyChart: the time of each generated token (StepTrace::hostMs, measured), the prefill
// shown apart as the time to first token, and, after "compare without cache", the same tokens
// replayed in recompute mode on one chart with the measured ratio at the last step.
#pragma once

#include <QChartView>
#include <QList>

class QLineSeries;
class QScatterSeries;
class QValueAxis;

namespace kvscope::viz {

class TraceStore;

class LatencyChart : public QChartView {
    Q_OBJECT
  public:
    explicit LatencyChart(TraceStore* store, QWidget* parent = nullptr);

    // The recompute-mode replay (DecodeController::comparedWithoutCache): token ids, prompt
    // length, prefill time and stepMs[i] for position promptLength + i. Drawn for the tokens it
    // shares with the store; forgotten when the store is reset.
    void setComparison(const QList<int>& tokens, int promptLength, double prefillMs,
                       const QList<double>& stepMs);
    bool hasComparison() const { return !cmpTokens_.isEmpty(); }

    // Series: x = token position, y = milliseconds (measured).
    const QLineSeries* cachedSeries() const { return cached_; }
    const QLineSeries* recomputeSeries() const { return recompute_; }
    // The device's own time per token (OpenCL profiling); empty on the CPU backend.
    const QLineSeries* deviceSeries() const { return device_; }
    const QScatterSeries* prefillSeries() const { return prefill_; }
    // Speculative rounds: at each token a round kept, the round's time ÷ the tokens it kept
    // (measured per round: drafting, the verification pass, the rollback).
    const QLineSeries* speculativeSeries() const { return speculative_; }
    // All rounds' time ÷ all the tokens they kept; 0 before a round.
    double speculativeMsPerToken() const;
    // The median time of the plain steps (generated tokens not from a round); 0 without one.
    double plainStepMs() const;
    const QScatterSeries* recomputePrefillSeries() const { return recomputePrefill_; }
    // The prefill's time shared by its prompt tokens (prefill ms ÷ prompt tokens), drawn across
    // the prompt's positions beside the decode steps: what one token costs batched.
    const QLineSeries* prefillPerTokenSeries() const { return prefillPerToken_; }
    double prefillPerTokenMs() const;  // 0 before a prefill
    double medianStepMs() const;       // of the plain steps (plainStepMs); 0 before a step
    // recompute ÷ cached time at the last position both have; 0 when there is none.
    double measuredRatio() const { return ratio_; }
    int ratioPosition() const { return ratioPosition_; }
    // The numbers behind the curves, in words (the window shows it under the chart).
    QString caption() const { return caption_; }

  signals:
    void captionChanged(const QString& caption);

  protected:
    void resizeEvent(QResizeEvent* event) override;

  private:
    void rebuild();
    void applyTheme();
    // The title: the longest of titles_ that fits the chart's width whole (QChart would cut it).
    void applyTitle();

    TraceStore* store_;
    QLineSeries *cached_, *recompute_, *device_, *prefillPerToken_, *speculative_;
    QScatterSeries *prefill_, *recomputePrefill_;
    QValueAxis *x_, *y_;
    QList<int> cmpTokens_;
    int cmpPromptLength_ = 0;
    double cmpPrefillMs_ = 0;
    QList<double> cmpStepMs_;
    double ratio_ = 0;
    int ratioPosition_ = -1;
    QString caption_;
    QStringList titles_;  // the title, longest first
};

}  // namespace kvscope::viz
