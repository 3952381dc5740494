// Tooltips that depend on where the pointer is: every view answers QEvent::ToolTip the same way.
#pragma once

#include <QPoint>
#include <QString>

class QEvent;
class QWidget;

namespace kvscope::viz {

// If `event` is a tooltip request, shows `textAt(position)` for `widget` at the pointer (or hides
// any tooltip where the text is empty) and returns true; otherwise returns false.
template <class TextAt>
bool answerToolTip(QWidget* widget, QEvent* event, TextAt&& textAt);

// The non-template part: shows `text` at the help event's global position, or hides.
void showToolTipOrHide(QWidget* widget, QEvent* helpEvent, const QString& text);
bool isToolTipEvent(const QEvent* event);
QPoint helpEventPos(const QEvent* helpEvent);

template <class TextAt>
bool answerToolTip(QWidget* widget, QEvent* event, TextAt&& textAt) {
    if (!isToolTipEvent(event)) return false;
    showToolTipOrHide(widget, event, textAt(helpEventPos(event)));
    return true;
}

}  // namespace kvscope::viz
