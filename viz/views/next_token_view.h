// NextTokenView: how the model picked the inspected token. Horizontal bars of the stored top
// candidates of the distribution that chose it (token, logit, probability), the chosen one and the
// argmax marked, and live sampler controls (temperature, top-k, top-p, min-p) that redraw the
// distribution from the stored logits, greying out what each cutoff removes. For prompt tokens:
// what the model expected there (teacher forcing).
#pragma once

#include <QString>
#include <QWidget>
#include <cstdint>
#include <vector>

class QDoubleSpinBox;
class QSpinBox;

namespace kvscope {
struct StepTrace;
}

namespace kvscope::viz {

class LogitLensPanel;
class TraceStore;

// The sampler's settings as the view applies them (as runtime's SamplerParams, without the seed).
struct NextTokenSettings {
    double temperature = 1.0;  // <= 0: greedy
    int topK = 0;              // <= 0: no limit
    double topP = 1.0;         // 1: no limit
    double minP = 0.0;         // 0: no limit
};

// One candidate of the stored distribution under some settings.
struct NextTokenBar {
    int32_t id = 0;
    QString label;  // tokenLabel of its bytes
    bool special = false;
    float logit = 0;
    double prob = 0;      // softmax(logit / T): over the whole vocabulary at T = 1 (via logZ),
                          // else over the stored candidates
    bool kept = false;    // survives top-k, top-p and min-p (what the sampler may draw from)
    double keptProb = 0;  // renormalised over the kept (0 when removed)
    bool chosen = false;  // the token the sequence has
    bool argmax = false;  // the greedy choice (the first candidate)
};

// The bars of trace's distribution (trace.top, best first) under the settings, as the sampler
// (runtime/sampler.cpp) would cut them: top-k, then softmax(logit / T) over the candidates, the
// smallest prefix reaching top-p, those at least min-p × the best. Empty when the trace has no
// distribution. exact (if given): whether the cut and the kept probabilities ("after") are those
// the sampler computes over the whole vocabulary (T = 1 via logZ, greedy, or a top-k within the
// stored candidates) rather than over the stored ones alone.
std::vector<NextTokenBar> nextTokenBars(const StepTrace& trace, const NextTokenSettings& settings,
                                        bool* exact = nullptr);

class NextTokenView : public QWidget {
    Q_OBJECT
  public:
    explicit NextTokenView(TraceStore* store, QWidget* parent = nullptr);

    QSize sizeHint() const override;

    // -- the controls (each redraws; none decodes again)
    const NextTokenSettings& settings() const { return settings_; }
    void setSettings(const NextTokenSettings& settings);

    // -- what is drawn (read-only, for tests)
    int index() const;  // the inspected token, -1 when none
    const std::vector<NextTokenBar>& bars() const { return bars_; }  // all stored candidates
    bool exact() const { return exact_; }                            // as nextTokenBars' exact
    double keptMass() const;
    // Whether the cutoffs keep every stored candidate and may keep more of the vocabulary than
    // is stored (no top-k within the stored ones, top-p not reached among them; min-p cannot be
    // told from the stored logits alone).
    bool cutoffBeyondStored() const;  // the probability mass (at T) of the kept candidates
    // Entropy in bits of the distribution at T: the whole vocabulary at T = 1, else over the
    // stored candidates renormalised. NaN when there is no distribution.
    double entropyBits() const;
    QString summary() const;
    // The probabilities are exact over the whole vocabulary (T = 1, or greedy, read at T = 1).
    bool atTemperatureOne() const;                // the lines under the bars, in words
    int shownRows() const { return shownRows_; }  // bars that fit the canvas
    // Whether the summary's last line ended inside the canvas at the last paint (a small canvas
    // writes it in the small type).
    bool summaryWhole() const;
    // The title as last painted, and the width it had: the longest form that fits whole.
    QString paintedTitle() const { return paintedTitle_; }
    int paintedTitleRoom() const { return paintedTitleRoom_; }

    // The columns of the bars, left to right: rank · token · logit · bar · p · after · tags, in a
    // canvas W wide. The token column gets `labelW` (what its labels want) and the bar the rest;
    // where that leaves the bar under its minimum, the tags shorten to the first one ("chosen"),
    // then the token column narrows, then the tags go: nothing runs past the right margin.
    struct Columns {
        int xRank = 0, rankW = 0, xLabel = 0, labelW = 0, xLogit = 0, numW = 0, xBar = 0, barW = 0,
            xP = 0, xAfter = 0, pctW = 0, xTag = 0, tagW = 0;
        bool shortTags = false;  // the chosen row's tags cut to their first
        int right() const { return tagW > 0 ? xTag + tagW : xAfter + pctW; }
    };
    static Columns columns(int W, const QFontMetrics& label, const QFontMetrics& small, int labelW,
                           const QString& chosenTag);
    // Beside the bars: the same choice seen after each layer (it asks for the lens to be
    // computed through its lensWanted signal).
    LogitLensPanel* lensPanel() const { return lens_; }
    // Narrower than this, the lens is hidden and the bars take the whole width (an exported
    // figure of 600 pixels had cut the lens at its right edge).
    static constexpr int kLensFromWidth = 640;

  protected:
    void resizeEvent(QResizeEvent* event) override;

  private:
    friend class NextTokenCanvas;
    void refresh();
    void paintCanvas(QWidget* canvas);

    TraceStore* store_;
    NextTokenSettings settings_;
    std::vector<NextTokenBar> bars_;
    bool exact_ = true;
    int shownRows_ = 0;
    int summaryBottom_ = 0;
    QString paintedTitle_;
    int paintedTitleRoom_ = 0;
    QWidget* canvas_ = nullptr;
    LogitLensPanel* lens_ = nullptr;
    QDoubleSpinBox* temperature_ = nullptr;
    QSpinBox* topK_ = nullptr;
    QDoubleSpinBox* topP_ = nullptr;
    QDoubleSpinBox* minP_ = nullptr;
};

}  // namespace kvscope::viz
