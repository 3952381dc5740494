// The figure mark: a dynamic property on the widget being exported.
#include "common/figure.h"

#include <QVariant>
#include <QWidget>

namespace kvscope::viz {

namespace {
constexpr const char* kFigure = "kvscopeFigure";
}

bool paintingFigure(const QWidget* widget) {
    for (const QWidget* w = widget; w; w = w->parentWidget())
        if (w->property(kFigure).toBool()) return true;
    return false;
}

FigureMark::FigureMark(QWidget* widget) : widget_(widget) {
    widget_->setProperty(kFigure, true);
}

FigureMark::~FigureMark() {
    widget_->setProperty(kFigure, QVariant());
}

}  // namespace kvscope::viz
