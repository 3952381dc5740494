// Annotations: a short label a lecturer places on a view ("sink" on column 0), with an arrow
// from the label to the point it names. The point is kept as fractions of the view's width and
// height, so a figure exported at the window's aspect ratio has it at the same place; drawn by
// the window's overlay and by exports alike.
#pragma once

#include <QSize>
#include <QString>
#include <vector>

class QPainter;

namespace kvscope::viz {

struct Annotation {
    QString view;  // the view it belongs to: "step", "attention", "cache", ... (export names)
    double x = 0.5, y = 0.5;  // the point, as fractions of the view's width and height
    QString text;
    bool arrow = true;  // an arrow from the label to the point; else the label sits on it
};

// Draws the annotations of `view` over a figure of `size` (the painter's coordinates).
void paintAnnotations(QPainter& p, const QSize& size, const std::vector<Annotation>& notes,
                      const QString& view);

}  // namespace kvscope::viz
