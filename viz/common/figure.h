// Figures: a view painted into an exported figure (PNG, SVG, PDF) leaves out what only works on
// a screen, such as the hints about the mouse ("click a head to inspect it").
#pragma once

class QWidget;

namespace kvscope::viz {

// Whether `widget` (or a widget it is inside) is being painted into a figure.
bool paintingFigure(const QWidget* widget);

// While alive, marks `widget` as painted into a figure (the exporter holds one per render).
class FigureMark {
  public:
    explicit FigureMark(QWidget* widget);
    ~FigureMark();
    FigureMark(const FigureMark&) = delete;
    FigureMark& operator=(const FigureMark&) = delete;

  private:
    QWidget* widget_;
};

}  // namespace kvscope::viz
