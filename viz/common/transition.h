// Transition: the 0 → 1 progress of a view's change (a new column sliding in, a new row
// revealed), driven by a QVariantAnimation of the theme's duration. The view's paint reads
// progress(); with the duration set to 0 the progress is 1 at once and nothing animates.
#pragma once

#include <QObject>

class QVariantAnimation;

namespace kvscope::viz {

class Transition : public QObject {
    Q_OBJECT
  public:
    explicit Transition(QObject* parent = nullptr);

    // Starts again from 0 and runs for animationMs(); with 0 ms, jumps to 1 and emits once.
    void start();
    // Jumps to the final state (progress 1).
    void finish();
    double progress() const { return progress_; }
    bool running() const;

  signals:
    void progressed();  // progress() moved: repaint

  private:
    QVariantAnimation* animation_;
    double progress_ = 1;
};

}  // namespace kvscope::viz
