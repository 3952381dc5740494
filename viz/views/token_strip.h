// TokenStrip: the prompt and generated tokens as a wrapping row of chips. Prompt tokens and
// generated tokens look different; the inspected query token is outlined; clicking a chip makes
// its token the query the views inspect (clicking the newest follows new tokens again). At long
// contexts (more than kAutoCompactTokens, or when switched on) the strip is compact: one line of
// chips ending at the newest token, with a scrubber over all positions that scrolls the line.
#pragma once

#include <QRect>
#include <QString>
#include <QWidget>
#include <utility>
#include <vector>

#include "common/trace_store.h"

class QSlider;

namespace kvscope::viz {

class TokenStrip : public QWidget {
    Q_OBJECT
  public:
    // Above this many tokens the strip turns compact by itself (unless the user chose).
    static constexpr int kAutoCompactTokens = 300;

    explicit TokenStrip(TraceStore* store, QWidget* parent = nullptr);

    bool hasHeightForWidth() const override { return true; }
    int heightForWidth(int width) const override;
    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    // The chip rectangles at the current width, one per token (tests click their centres); in
    // compact mode the tokens off the line have empty rectangles.
    std::vector<QRect> chipRects() const {
        std::vector<QRect> r = layoutChips(width());
        r.resize(static_cast<size_t>(store_->count()));
        return r;
    }
    // Speculative decoding: the chips drawn after the tokens for the round on show (the decided
    // token and the drafts before the verification pass; the next decided token after it).
    struct Pending {
        QString text;
        bool draft = false;  // a drafted token (hatched); else the decided token (dashed edge)
    };
    std::vector<Pending> pendingChips() const;
    std::vector<QRect> pendingChipRects() const {
        std::vector<QRect> r = layoutChips(width());
        r.erase(r.begin(), r.begin() + store_->count());
        return r;
    }

    // True when the strip is one line with a scrubber (chosen, or automatic past
    // kAutoCompactTokens while the user has not chosen).
    bool isCompact() const;
    // The user's choice: compact or wrapping, whatever the count; clearCompactChoice() gives the
    // choice back to the count.
    void setCompact(bool compact);
    void clearCompactChoice();
    // The first and last tokens drawn ({0, -1} with none): all of them when wrapping.
    std::pair<int, int> visibleTokens() const;
    // The scrubber under the compact line (hidden when wrapping); its value is the last token
    // on the line.
    QSlider* scrubber() const { return scrubber_; }
    // Brings token i onto the line (compact) or asks the scroll area around to show it
    // (chipWanted). Out-of-range indices are ignored.
    void scrollToToken(int i);
    // "Go to token N": parses text as a token position, pins it for inspection and scrolls to
    // it. Returns an empty string on success, else the reason in words (nothing changes).
    QString goToToken(const QString& text);

  signals:
    void compactChanged(bool compact);
    // A chip to make visible inside a scroll area around the strip (wrapping mode).
    void chipWanted(const QRect& rect);

  protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent* e) override;
    void resizeEvent(QResizeEvent* e) override;
    bool event(QEvent* e) override;

  private:
    enum class Choice { Auto, Wrap, Compact };
    std::vector<QRect> layoutChips(int width) const;
    int chipWidth(int i) const;
    int total() const;       // tokens and pending chips
    int lastOnLine() const;  // the last token of the compact line
    int chipAt(const QPoint& p) const;
    void relayout();
    void syncScrubber();
    QRect scrubberLabelRect() const;
    TraceStore* store_;
    QSlider* scrubber_;
    Choice choice_ = Choice::Auto;
    bool wasCompact_ = false;
    int end_ = -1;  // the compact line's last token; -1: the newest (follows new tokens)
};

}  // namespace kvscope::viz
