// MainWindow's keys, focus and text size: what a lecturer's keyboard and clicker do, the prompt
// note, closing, and the views' text zoom.
#include "gui/main_window.h"

#include <QLabel>

#include <QApplication>
#include <QCloseEvent>
#include <QComboBox>
#include <QInputDialog>
#include <QKeyEvent>
#include <QLineEdit>
#include <QMessageBox>
#include <QMouseEvent>
#include <QPlainTextEdit>
#include <QTabBar>

#include "common/theme.h"

namespace kvscope::app {

// What the next step does with the prompt, when that is not the obvious "continue": the prompt
// was edited (the step restarts from the new text), or the cache was stepped back into the prompt
// (the step generates from there, and the prompt's later tokens are no longer in the cache).
void MainWindow::updatePromptNote() {
    QString note;
    const int n = store_->count();
    if (n > 0 && !decodedPrompt_.isNull() && prompt() != decodedPrompt_) {
        note =
            tr("The prompt has changed. The next step (F10) starts again from the new prompt; "
               "the %n token(s) decoded so far will be dropped.",
               nullptr, n);
    } else if (n > 0 && store_->promptLength() == n && store_->trace(n - 1).prompt &&
               n < promptTokenCount_) {
        note = tr("Stepped back into the prompt: the cache holds %1 of its %2 tokens. The next "
                  "step (F10) generates token %1 from there; Prefill runs the whole prompt again.")
                   .arg(n)
                   .arg(promptTokenCount_);
    }
    promptNote_->setText(note);
    promptNote_->setVisible(!note.isEmpty());
}

namespace {
bool takesText(const QWidget* w) {
    return qobject_cast<const QPlainTextEdit*>(w) || qobject_cast<const QLineEdit*>(w) ||
           qobject_cast<const QAbstractSpinBox*>(w) || qobject_cast<const QComboBox*>(w);
}
// The text-taking widget that w is, or is inside (a text edit's viewport, a spin box's line edit).
bool insideTextInput(const QWidget* w) {
    for (; w; w = w->parentWidget()) {
        if (takesText(w)) return true;
        if (w->isWindow()) return false;
    }
    return false;
}
}  // namespace

bool MainWindow::eventFilter(QObject* watched, QEvent* event) {
    // A click anywhere but a text field hands the keys back to stepping: the prompt must not keep
    // the focus (and type a clicker's Space into the prompt) after a click on a view or a chart.
    if (event->type() == QEvent::MouseButtonPress && watched->isWidgetType() && annotating_) {
        // placing an annotation: a click inside the current view's page names the point
        const auto* w = static_cast<QWidget*>(watched);
        std::optional<viz::Annotation> a =
            w->window() == this
                ? annotationAt(static_cast<QMouseEvent*>(event)->globalPosition().toPoint())
                : std::nullopt;
        if (a) {  // the point, as fractions of the view under it (the figure it exports to)
            annotating_ = false;
            bool ok = false;
            const QString text = QInputDialog::getText(this, tr("Annotate"),
                                                       tr("Label (an arrow points at the click):"),
                                                       QLineEdit::Normal, QString(), &ok);
            if (ok && !text.trimmed().isEmpty()) {
                a->text = text.trimmed();
                addAnnotation(*a);
            }
            return true;
        }
    }
    if (event->type() == QEvent::MouseButtonPress && watched->isWidgetType()) {
        auto* w = static_cast<QWidget*>(watched);
        QWidget* focus = QApplication::focusWidget();
        if (w->window() == this && insideTextInput(focus) && !insideTextInput(w)) {
            QWidget* target = w;
            while (target && !(target->focusPolicy() & Qt::ClickFocus) && !target->isWindow())
                target = target->parentWidget();
            if (!target || target->isWindow() || insideTextInput(target))
                target = tabs_->currentWidget();
            target->setFocus(Qt::MouseFocusReason);
        }
        return QMainWindow::eventFilter(watched, event);
    }
    if (event->type() != QEvent::KeyPress || !isActiveWindow())
        return QMainWindow::eventFilter(watched, event);
    auto* key = static_cast<QKeyEvent*>(event);
    if (key->modifiers() & (Qt::ControlModifier | Qt::AltModifier | Qt::MetaModifier))
        return QMainWindow::eventFilter(watched, event);
    // A clicker's keys (Page Down, Page Up) step wherever the focus is: they never edit or scroll
    // the prompt. The other stepping keys belong to whatever takes text, and the arrows to the
    // tab bar (switching views) when it has the focus.
    QWidget* focus = QApplication::focusWidget();
    const bool typing = insideTextInput(focus);
    const bool arrowsTaken = typing || qobject_cast<QTabBar*>(focus);
    // Scene mode: the stepping keys go from scene to scene (the clicker's, Space and arrows when
    // not typing).
    if (sceneMode_) {
        const int k = key->key();
        const bool forward = k == Qt::Key_PageDown || (!typing && k == Qt::Key_Space) ||
                             (!arrowsTaken && k == Qt::Key_Right);
        const bool back = k == Qt::Key_PageUp || (!typing && k == Qt::Key_Backspace) ||
                          (!arrowsTaken && k == Qt::Key_Left);
        if (forward || back) {
            goToScene(sceneIndex_ + (forward ? 1 : -1));
            return true;
        }
    }
    switch (key->key()) {
        case Qt::Key_Escape:
            if (!presenter_) break;
            setPresenterMode(false);
            return true;
        case Qt::Key_PageDown:
            step();
            return true;
        case Qt::Key_PageUp:
            stepBack();
            return true;
        case Qt::Key_Space:
            if (typing) break;
            step();
            return true;
        case Qt::Key_Backspace:
            if (typing) break;
            stepBack();
            return true;
        case Qt::Key_Right:
            if (arrowsTaken) break;
            step();
            return true;
        case Qt::Key_Left:
            if (arrowsTaken) break;
            stepBack();
            return true;
        default:
            break;
    }
    return QMainWindow::eventFilter(watched, event);
}

void MainWindow::closeEvent(QCloseEvent* event) {
    // Quitting loses the decoded tokens: ask first, in real use (tests and screenshots never ask).
    if (restoreSettings_ && store_->count() > store_->promptLength()) {
        const auto answer = QMessageBox::question(
            this, tr("Quit KVScope?"),
            tr("Quit KVScope? The %n generated token(s) of this run will be lost.", nullptr,
               store_->count() - store_->promptLength()),
            QMessageBox::Yes | QMessageBox::Cancel, QMessageBox::Cancel);
        if (answer != QMessageBox::Yes) {
            event->ignore();
            return;
        }
    }
    if (restoreSettings_) saveSettings();
    QMainWindow::closeEvent(event);
}

// Text in the views: the user's zoom times a factor that grows with the window (1 up to a
// 1280 × 760 window, 1.5 at 1920 × 1140), so the back row can read a token on a large screen.
void MainWindow::setTextZoom(double zoom) {
    textZoom_ = std::clamp(zoom, 0.6, 3.0);
    applyTextScale();
}

void MainWindow::applyTextScale() {
    const double fit = std::clamp(std::min(width() / 1280.0, height() / 760.0), 1.0, 1.6);
    const double scale = std::round(textZoom_ * fit * 20) / 20;  // steps of 5%: no jitter
    viz::ThemeSettings::instance().setTextScale(scale);
}

void MainWindow::resizeEvent(QResizeEvent* event) {
    QMainWindow::resizeEvent(event);
    applyTextScale();
}

}  // namespace kvscope::app
