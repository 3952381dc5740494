// SharingView: which query heads share which K/V head. The query heads are drawn in a row,
// coloured by the K/V head they read (grouped-query, multi-query or plain multi-head attention),
// above the cache blocks (K and V per K/V head, for the selected layer) each group reads, and the
// bytes per token that sharing saves, by the calculator's formula (compute/analysis/kv_memory.h).
// A click on a query head selects it; a click on a K or V block selects the group's first head.
#pragma once

#include <QColor>
#include <QRect>
#include <QWidget>
#include <cstdint>
#include <optional>

namespace kvscope::viz {

class TraceStore;

class SharingView : public QWidget {
    Q_OBJECT
  public:
    explicit SharingView(TraceStore* store, QWidget* parent = nullptr);

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    // -- what is drawn (read-only, for tests); all empty or 0 before a model is loaded
    // The K/V head (the group) query head `head` reads: head / (n_head / n_head_kv).
    int groupOf(int head) const;
    // The colour of group `kv` (Okabe–Ito hues, repeating after eight groups).
    static QColor groupColor(int kv);
    // Where query head `head` is drawn; where the K (value = false) or V block of K/V head `kv`.
    QRect headRect(int head) const;
    QRect blockRect(int kv, bool value) const;
    // The line that says what the blocks are (null where the view is too low for it), and the
    // bytes rows at the bottom.
    QRect blocksCaptionRect() const { return layout().blocksLabel; }
    QRect bytesRect() const { return layout().bytes; }
    // Bits per cached element the figures use: the engine's (its bytes per token over
    // 2 × layers × kv heads × head dim) when a whole number, else 32 (fp32, as the calculator).
    int elementBits() const;
    // kvmem::bytesPerToken and kvmem::mhaBytesPerToken of the loaded model at elementBits(), and
    // their difference: what sharing K/V heads saves per token (0 for plain multi-head attention).
    uint64_t bytesPerToken() const;
    uint64_t mhaBytesPerToken() const;
    uint64_t bytesSavedPerToken() const { return mhaBytesPerToken() - bytesPerToken(); }
    // "MHA", "GQA" or "MQA" for the loaded model.
    QString kindName() const;

  protected:
    void paintEvent(QPaintEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    bool event(QEvent* event) override;

  private:
    struct Layout {
        QRect title, subtitle, headsLabel, heads, blocksLabel, blocks, bytes;
    };
    Layout layout() const;
    QString subtitleText() const;  // what sharing means for the loaded model, in a sentence
    std::optional<int> headAt(const QPoint& pos) const;
    std::optional<std::pair<int, bool>> blockAt(const QPoint& pos) const;  // (kv, value)
    QString tooltipAt(const QPoint& pos) const;
    // The cached keys (value = false) or values of K/V head kv in the selected layer, one row
    // per token, as an image in the diverging map; null when nothing is decoded.
    QImage blockImage(int kv, bool value, double limit) const;

    TraceStore* store_;
};

}  // namespace kvscope::viz
