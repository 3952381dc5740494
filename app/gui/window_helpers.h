// Small helpers the window's files share (inside app/gui only).
#pragma once

#include <QString>
#include <cstddef>

class QWidget;

namespace kvscope::app {

// A tab's page: the view inside a frame that takes the focus on a click or Tab and shows a focus
// ring, so the keyboard's place is always visible and a click on a view leaves the prompt.
QWidget* focusPage(QWidget* content);
QString bytesText(double bytes);
QString thousands(size_t n);

}  // namespace kvscope::app
