// TokenStrip: the prompt and generated tokens as a wrapping row of chips. Prompt tokens and
// generated tokens look different; the inspected query token is outlined; clicking a chip makes
// its token the query the views inspect (clicking the newest follows new tokens again).
#pragma once

#include <QRect>
#include <QWidget>
#include <vector>

#include "common/trace_store.h"

namespace kvscope::viz {

class TokenStrip : public QWidget {
    Q_OBJECT
  public:
    explicit TokenStrip(TraceStore* store, QWidget* parent = nullptr);

    bool hasHeightForWidth() const override { return true; }
    int heightForWidth(int width) const override;
    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    // The chip rectangles at the current width (tests click their centres).
    std::vector<QRect> chipRects() const { return layoutChips(width()); }

  protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent* e) override;
    void resizeEvent(QResizeEvent* e) override;
    bool event(QEvent* e) override;

  private:
    std::vector<QRect> layoutChips(int width) const;
    int chipAt(const QPoint& p) const;
    TraceStore* store_;
};

}  // namespace kvscope::viz
