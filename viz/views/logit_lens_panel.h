// LogitLensPanel: what the model would have predicted had it stopped after each layer, for the
// token the next-token view inspects ("logit lens": the model's final norm and output head
// applied to the residual stream after every layer). One row per layer: the probability the
// lens gives the token that actually came next (a bar) and the lens's top tokens. Computing it
// needs the weights, so the panel asks for it (lensWanted) and paints what the TraceStore holds.
#pragma once

#include <QWidget>

namespace kvscope::viz {

class TraceStore;

class LogitLensPanel : public QWidget {
    Q_OBJECT
  public:
    explicit LogitLensPanel(TraceStore* store, QWidget* parent = nullptr);

    QSize sizeHint() const override { return {380, 400}; }
    QSize minimumSizeHint() const override { return {260, 200}; }

    // -- what is drawn (read-only, for tests)
    int index() const;  // the token whose choice is explained, -1 when none
    // The state in words when no rows are drawn ("Computing...", "nothing predicts the first
    // token", ...); empty when the lens is drawn.
    QString message() const;
    int topShown() const { return topShown_; }  // top tokens written per layer row
    // Whether each bar's "p #rank" fitted inside its bar at the last paint.
    bool barTextsFit() const { return barTextsFit_; }
    // Whether every row's top-token text was written whole (no ellipsis) at the last paint:
    // narrow panels take shorter row labels ("L3") and then the tokens without their p.
    bool topTokensWhole() const { return topTokensWhole_; }
    // Whether the last paint took the short row labels ("L3" for "layer 3").
    bool briefLabels() const { return briefLabels_; }

  signals:
    // The lens of token `index` is needed (the panel is visible and the store has none yet).
    void lensWanted(int index);

  protected:
    void paintEvent(QPaintEvent* event) override;
    void showEvent(QShowEvent* event) override;

  private:
    void refresh();

    TraceStore* store_;
    int requested_ = -1;  // the index last asked for, so a repaint does not ask again
    int requestedCount_ = -1;
    int topShown_ = 0;
    bool barTextsFit_ = true;
    bool topTokensWhole_ = true;
    bool briefLabels_ = false;
};

}  // namespace kvscope::viz
