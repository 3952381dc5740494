// StepView: one attention step of the inspected query token i, for the selected layer and head:
// the query row q (1 × head_dim), Kᵀ (head_dim × (i+1)) whose newest column slides in, the
// scores q·Kᵀ/√d, the softmax weights (the trace's attention row), V ((i+1) × head_dim) whose
// newest row slides in, and the output Σ_j a_j V_j. Painted, not built from widgets; long
// contexts shrink the cells to a minimum and then show a window of positions, the same in Kᵀ and
// V (key j beside value j): it ends at the inspected query until the user moves it (the bar
// under Kᵀ, the wheel, Ctrl+← / Ctrl+→, Ctrl+Home); a moved window stays put until the inspected
// query changes (a step, a pinned token, a step back), which brings it back to end at the query,
// unless the window is pinned (the pin button beside the bar): then it keeps its positions across
// steps until unpinned.
#pragma once

#include <QList>
#include <QStringList>
#include <QWidget>
#include <span>
#include <utility>
#include <vector>

namespace kvscope::viz {

class TraceStore;
class Transition;
}  // namespace kvscope::viz

class QScrollBar;
class QToolButton;

namespace kvscope::viz {

class StepView : public QWidget {
    Q_OBJECT
  public:
    // The blocks of cells the view paints.
    enum class Block { Query, Keys, Scores, Weights, Values, Output };

    explicit StepView(TraceStore* store, QWidget* parent = nullptr);

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    // -- what is drawn (read-only, for tests); spans are empty when nothing is drawn
    bool hasStep() const { return shown_.valid; }
    int queryToken() const { return shown_.i; }  // -1 when nothing is drawn
    int layer() const { return shown_.layer; }
    int head() const { return shown_.head; }
    int kvHead() const { return shown_.kv; }
    int headDim() const { return shown_.d; }
    // The query heads that read this step's K/V head (grouped-query attention), in order.
    QList<int> sharedQueryHeads() const { return shown_.shared; }
    // The line under the title: which K/V head the head reads ("Head 5 reads K/V head 1 of 2:
    // grouped-query attention, …"), its own for plain multi-head attention; empty with no step.
    QString kvNoteText() const;
    // The same in a few words, where the sentence does not fit ("K/V head 1 of 2, shared by query
    // heads 4, 5, 6, 7").
    QString kvNoteShortText() const;
    int keyColumns() const { return shown_.valid ? shown_.i + 1 : 0; }  // columns of Kᵀ
    int valueRows() const { return shown_.valid ? shown_.i + 1 : 0; }   // rows of V
    // First token drawn on the t axis of Kᵀ, scores and weights, and in V (earlier ones do not
    // fit at the minimum cell size); 0 when everything fits. Valid after a layout (resize/paint).
    int firstShownKey() const { return layout_.first; }
    int firstShownValue() const { return layout_.first; }
    // The positions drawn as Kᵀ's columns and as V's rows, first and last inclusive ({0, -1} with
    // nothing drawn). Always the same window: key j stands above value j. Valid after a layout.
    std::pair<int, int> keyWindow() const;
    std::pair<int, int> valueWindow() const { return keyWindow(); }
    // True while the user has moved the window away from where the query puts it.
    bool windowHeld() const { return held_; }
    // True while the window keeps its positions across steps and query changes.
    bool windowPinned() const { return pinned_; }
    // "positions 412–507 of 905" (empty with nothing drawn).
    QString windowText() const;
    // The bar under Kᵀ that moves the window; hidden when every position fits.
    QScrollBar* windowBar() const { return bar_; }
    std::span<const float> displayedQuery() const { return shown_.q; }  // (head_dim)
    std::span<const float> keyColumn(int j) const;  // column j of Kᵀ: key of token j (head_dim)
    std::span<const float> valueRow(int j) const;   // row j of V: value of token j (head_dim)
    std::span<const float> displayedScores() const { return shown_.scores; }    // (i+1)
    std::span<const float> displayedWeights() const { return shown_.weights; }  // (i+1)
    std::span<const float> displayedOutput() const { return shown_.output; }    // (head_dim)
    // Where a block's cells are drawn, for the current size; empty when nothing is drawn.
    // Keys, Scores and Weights hold the columns firstShownKey()..queryToken(); Values the rows
    // firstShownValue()..queryToken().
    QRect blockRect(Block block) const;
    // 1 when the last change has finished animating.
    double transitionProgress() const;
    // The tooltip text for a point in the widget; empty where there is no value.
    QString toolTipAt(const QPoint& pos) const;
    // Texts that the last paint had to cut short ("…"): none where everything fits.
    QStringList elidedTexts() const { return elided_; }

  public slots:
    // Holds the window at first (clamped so it stays full and ends at or before the query).
    void moveWindowTo(int first);
    void moveWindowBy(int delta);
    // Lets the window end at the inspected query again (and unpins it).
    void followQuery();
    // Pinned: the window keeps its first position across steps; unpinned: back to the query.
    void setWindowPinned(bool pinned);

  protected:
    void wheelEvent(QWheelEvent* event) override;
    void paintEvent(QPaintEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;
    bool event(QEvent* event) override;

  private:
    // The step being drawn, copied from the store's traces.
    struct Snapshot {
        bool valid = false;
        QString emptyMessage;  // why nothing is drawn
        int i = -1, count = 0, layer = 0, head = 0, kv = 0, d = 0;
        bool pinned = false;
        std::vector<float> q;                           // (d)
        std::vector<float> keys;                        // (i+1, d) key j at row j
        std::vector<float> values;                      // (i+1, d)
        std::vector<float> scores;                      // (i+1)  q·k_j / √d
        std::vector<float> weights;                     // (i+1)  the trace's attention row
        std::vector<float> output;                      // (d)    Σ_j a_j v_j
        QStringList labels;                             // (i+1) token labels
        QList<int> shared;                              // query heads sharing kv
        float qkLimit = 1, scoreLimit = 1, vLimit = 1;  // diverging scales: ±limit
    };
    // Where everything goes for the current size and step.
    struct Layout {
        int first = 0, last = -1;  // the window of positions Kᵀ and V show (inclusive)
        QRect scroll;              // the bar that moves it (empty when everything fits)
        int band = 0;              // height of the rotated token labels
        int rowH = 0;              // height of the score and weight rows
        bool noteShown = true;     // room for the long-context note line
        int cd = 0;                // cell size along head_dim
        int ct = 0;                // width of a token column (Kᵀ, scores, weights)
        int rv = 0;                // height of a V row
        bool rotatedLabels = true;
        QRect title, subtitle;
        QRect kCaption, kTicks, kBlock, dimHint;
        QRect qCaption, qRow, sCaption, sRow, wCaption, wRow, labels, note;
        QRect vCaption, vLabelCol, aCol, vBlock, vArea;
        QRect oCaption, oRow;
        QRect legends;
    };

    void refresh(bool animate, bool force);
    Snapshot snapshot() const;
    Layout computeLayout(const Snapshot& s) const;
    void paintEmpty(QPainter& p, const QString& message);
    void paintStep(QPainter& p);
    void syncBar();

    TraceStore* store_;
    Transition* transition_;
    Snapshot shown_, previous_;
    Layout layout_;
    QStringList elided_;
    QScrollBar* bar_;
    QToolButton* pin_;
    bool pinned_ = false;
    bool held_ = false;  // the user moved the window: heldFirst_ is its first position
    int heldFirst_ = 0;
};

}  // namespace kvscope::viz
