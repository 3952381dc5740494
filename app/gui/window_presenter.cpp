// MainWindow's presenter mode (F5, View ▸ Presenter mode): full screen, the projector theme
// (black canvas, white text, larger fonts, thicker lines), the views alone (no side panel, menu
// bar or status bar); the clicker's keys step as always, Esc or F5 leaves and puts back what was
// there before.
#include <QApplication>
#include <QDockWidget>
#include <QMenuBar>
#include <QStatusBar>

#include "common/theme.h"
#include "gui/main_window.h"

namespace kvscope::app {

void MainWindow::setPresenterMode(bool on) {
    if (on == presenter_) return;
    presenter_ = on;
    viz::ThemeSettings& theme = viz::ThemeSettings::instance();
    if (on) {
        before_.theme = theme.theme().name;
        before_.sidePanel = !sideDock_->isHidden();  // also before the window is shown
        before_.states = windowState();
        // the palette application-wide: widgets with a style sheet take the application's
        before_.palette = QApplication::palette();
        theme.setTheme(viz::Theme::projector());
        // the widgets around the views in the projector's colours too, set before the style
        // sheet below: set after it, the inputs under a page's own style sheet (the views' spin
        // and combo boxes) kept the light palette's base under the sheet's white text
        QPalette dark = QApplication::palette();
        dark.setColor(QPalette::Window, Qt::black);
        dark.setColor(QPalette::WindowText, Qt::white);
        dark.setColor(QPalette::Base, QColor(0x18, 0x18, 0x18));
        dark.setColor(QPalette::AlternateBase, QColor(0x3A, 0x3A, 0x3A));
        dark.setColor(QPalette::Text, Qt::white);
        dark.setColor(QPalette::Button, QColor(0x2A, 0x2A, 0x2A));
        dark.setColor(QPalette::ButtonText, Qt::white);
        dark.setColor(QPalette::Mid, QColor(0xBB, 0xBB, 0xBB));
        dark.setColor(QPalette::PlaceholderText, QColor(0xCC, 0xCC, 0xCC));
        dark.setColor(QPalette::Highlight, QColor(0xFF, 0xB0, 0x00));
        dark.setColor(QPalette::HighlightedText, Qt::black);
        QApplication::setPalette(dark);
        // larger text in every widget around the views (a style sheet reaches the widgets that
        // have one of their own, which a font set on the window does not)
        before_.styleSheet = styleSheet();
        const double points = QApplication::font().pointSizeF() * 1.3;
        setStyleSheet(QString("QWidget { font-size: %1pt; color: white; } "
                              "QScrollArea, QScrollArea > QWidget, QScrollArea > QWidget > QWidget "
                              "{ background: black; } "
                              "QPushButton, QToolButton { background: #2A2A2A; color: white; "
                              "border: 1px solid #BBBBBB; border-radius: 3px; padding: 3px 10px; } "
                              "QPushButton:pressed, QToolButton:checked { background: #FFB000; "
                              "color: black; }")
                          .arg(points, 0, 'f', 1));
        sideDock_->hide();
        menuBar()->hide();
        statusBar()->hide();
        if (presenterFullScreen_) showFullScreen();
    } else {
        theme.setTheme(before_.theme == "light" ? viz::Theme::light() : viz::Theme::dark());
        QApplication::setPalette(before_.palette);  // first, as on entering
        setStyleSheet(before_.styleSheet);
        sideDock_->setVisible(before_.sidePanel);
        menuBar()->show();
        statusBar()->show();
        setWindowState(before_.states);
    }
    applyTextScale();
    if (presenterAction_) presenterAction_->setChecked(on);
    emit presenterModeChanged(on);
}

}  // namespace kvscope::app
