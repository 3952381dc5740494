// Tooltips: the shared answer to QEvent::ToolTip.
#include "common/tooltip.h"

#include <QHelpEvent>
#include <QToolTip>
#include <QWidget>

namespace kvscope::viz {

bool isToolTipEvent(const QEvent* event) {
    return event->type() == QEvent::ToolTip;
}

QPoint helpEventPos(const QEvent* helpEvent) {
    return static_cast<const QHelpEvent*>(helpEvent)->pos();
}

void showToolTipOrHide(QWidget* widget, QEvent* helpEvent, const QString& text) {
    if (text.isEmpty()) {
        QToolTip::hideText();
        helpEvent->ignore();
    } else {
        QToolTip::showText(static_cast<QHelpEvent*>(helpEvent)->globalPos(), text, widget);
    }
}

}  // namespace kvscope::viz
