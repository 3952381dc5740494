// Presenter mode as a lecturer uses it at 1920 × 1080: F5 enters (projector theme, larger text,
// the views alone), the clicker and F10 step with the menu bar hidden, Esc leaves and puts the
// theme, panel, menu bar and text back.
#include <QAbstractScrollArea>
#include <QAbstractSpinBox>
#include <QAccessible>
#include <QComboBox>
#include <QDockWidget>
#include <QMenuBar>
#include <QPlainTextEdit>
#include <QScrollBar>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTabBar>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>
#include <cmath>
#include <map>

#include "common/theme.h"
#include "gui/main_window.h"
#include "model_fixtures.h"
#include "window_fixtures.h"

using namespace kvscope;
using app::MainWindow;

class TstPresenter : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    QString model_;

    static bool settle(MainWindow& w) { return fixtures::settle(w); }

  private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY(dir_.isValid());
        model_ = dir_.filePath("gpt2.gguf");
        fixtures::writeModel(fixtures::gpt2Spec(), model_.toStdString());
    }

    void f5PresentsAndEscRestores() {
        viz::ThemeSettings::instance().setTheme(viz::Theme::light());
        MainWindow w(model_, false);
        w.setPresenterFullScreen(false);  // the offscreen screen is smaller than a projector's
        w.resize(1920, 1080);
        w.show();
        QApplication::setActiveWindow(&w);
        QVERIFY(QTest::qWaitForWindowActive(&w));
        QVERIFY(QTest::qWaitFor([&] { return w.store()->hasModel() && !w.busy(); }, 60000));
        w.prefill();
        QVERIFY(settle(w));
        const int prompt = w.store()->count();
        const double titlePoints = viz::currentTheme().titleFont.pointSizeF();
        w.tabs()->currentWidget()->setFocus();

        QTest::keyClick(&w, Qt::Key_F5);
        QVERIFY(w.presenterMode());
        QCOMPARE(viz::currentTheme().name, QString("projector"));
        QCOMPARE(viz::currentTheme().background, QColor(Qt::black));
        QVERIFY(viz::currentTheme().titleFont.pointSizeF() > titlePoints);
        QVERIFY(viz::currentTheme().lineScale > 1);
        QVERIFY(!w.sidePanel()->isVisible());
        QVERIFY(!w.menuBar()->isVisible());
        QVERIFY(w.styleSheet().contains("font-size"));

        // the clicker and F10 step with the menu bar hidden
        QTest::keyClick(QApplication::focusWidget(), Qt::Key_PageDown);
        QVERIFY(settle(w));
        QCOMPARE(w.store()->count(), prompt + 1);
        QTest::keyClick(QApplication::focusWidget(), Qt::Key_F10);
        QVERIFY(settle(w));
        QCOMPARE(w.store()->count(), prompt + 2);
        QTest::keyClick(QApplication::focusWidget(), Qt::Key_PageUp);
        QVERIFY(settle(w));
        QCOMPARE(w.store()->count(), prompt + 1);
        if (qEnvironmentVariableIsSet("KVSCOPE_VIEWS_DIR"))
            w.grab().save(qEnvironmentVariable("KVSCOPE_VIEWS_DIR") + "/presenter.png");

        QTest::keyClick(QApplication::focusWidget(), Qt::Key_Escape);
        QVERIFY(!w.presenterMode());
        QCOMPARE(viz::currentTheme().name, QString("light"));
        QVERIFY(w.sidePanel()->isVisible());
        QVERIFY(w.menuBar()->isVisible());
        QVERIFY(w.styleSheet().isEmpty());

        // F5 twice: in and out again
        QTest::keyClick(&w, Qt::Key_F5);
        QVERIFY(w.presenterMode());
        QTest::keyClick(&w, Qt::Key_F5);
        QVERIFY(!w.presenterMode());
        QCOMPARE(viz::currentTheme().name, QString("light"));
    }

    // On a 1024 × 768 projector every spin and combo box of the views reads light on dark in
    // presenter mode (F5 in a running window: they had stayed white under white text) and dark
    // on light again after Esc. Judged on the pixels: the box's commonest colour, and its text.
    void inputsAreLegibleInAndOutOfPresenterMode() {
        viz::ThemeSettings::instance().setTheme(viz::Theme::light());
        MainWindow w(model_, false);
        w.setPresenterFullScreen(false);
        w.resize(1024, 768);
        w.show();
        QVERIFY(QTest::qWaitFor([&] { return w.store()->hasModel() && !w.busy(); }, 60000));
        w.prefill();
        QVERIFY(settle(w));
        // darkOnLight false: the background dark and some text light
        auto check = [&](bool darkOnLight) {
            int seen = 0;
            for (int i = 0; i < w.tabs()->count(); ++i) {
                w.tabs()->setCurrentIndex(i);
                QVERIFY(settle(w));
                QList<QWidget*> inputs;
                for (auto* b : w.tabs()->currentWidget()->findChildren<QAbstractSpinBox*>())
                    inputs << b;
                for (auto* b : w.tabs()->currentWidget()->findChildren<QComboBox*>()) inputs << b;
                for (QWidget* b : inputs) {
                    if (!b->isVisible()) continue;
                    const QImage img = b->grab().toImage();
                    if (img.width() <= 6 || img.height() <= 6) continue;  // nothing inside
                    std::map<QRgb, int> counts;
                    for (int y = 3; y < img.height() - 3; ++y)
                        for (int x = 3; x < img.width() - 3; ++x) ++counts[img.pixel(x, y)];
                    const QRgb common =
                        std::max_element(counts.begin(), counts.end(), [](auto& l, auto& r) {
                            return l.second < r.second;
                        })->first;
                    const double bg = QColor(common).lightnessF();
                    // the value's glyphs: pixels far from the background in the left 60% (not
                    // the arrows or the drop-down button)
                    int text = 0;
                    for (int y = 3; y < img.height() - 3; ++y)
                        for (int x = 3; x < img.width() * 6 / 10; ++x)
                            text += std::abs(img.pixelColor(x, y).lightnessF() - bg) > 0.4;
                    const QString what = QString("%1 '%2' on %3: background lightness %4")
                                             .arg(b->metaObject()->className(), b->objectName(),
                                                  w.tabs()->tabText(i))
                                             .arg(bg);
                    QVERIFY2(darkOnLight ? bg > 0.7 : bg < 0.3, qPrintable(what));
                    QVERIFY2(text >= 6, qPrintable(what + ", no text drawn in contrast"));
                    ++seen;
                }
            }
            QVERIFY(seen >= 8);  // the calculator's and the sampling controls at least
        };
        check(true);
        if (QTest::currentTestFailed()) return;
        QTest::keyClick(&w, Qt::Key_F5);
        QVERIFY(w.presenterMode());
        check(false);
        if (QTest::currentTestFailed()) return;
        QTest::keyClick(QApplication::focusWidget(), Qt::Key_Escape);
        QVERIFY(!w.presenterMode());
        check(true);
    }

    // Presenter mode entered before the window is shown (kvscope --presenter) still gives the
    // side panel back on leaving.
    void presentingFromTheStartRestoresThePanel() {
        viz::ThemeSettings::instance().setTheme(viz::Theme::dark());
        MainWindow w(model_, false);
        w.setPresenterFullScreen(false);
        w.setPresenterMode(true);
        w.resize(1280, 720);
        w.show();
        QVERIFY(QTest::qWaitFor([&] { return w.store()->hasModel() && !w.busy(); }, 60000));
        QVERIFY(!w.sidePanel()->isVisible());
        w.setPresenterMode(false);
        QVERIFY(w.sidePanel()->isVisible());
        QCOMPARE(viz::currentTheme().name, QString("dark"));
    }

    // Accessibility: every control the keyboard reaches has a name a screen reader announces
    // (its own, a buddy label's or its text), every view's page a name and a description, and
    // every tab a tooltip saying what the view shows.
    void everyControlHasANameAndEveryViewSaysWhatItShows() {
        MainWindow w(model_, false);
        w.resize(1280, 720);
        w.show();
        QVERIFY(QTest::qWaitFor([&] { return w.store()->hasModel() && !w.busy(); }, 60000));
        QStringList unnamed;
        for (QWidget* c : w.findChildren<QWidget*>()) {
            if (!c->isVisibleTo(&w) || c->focusPolicy() == Qt::NoFocus) continue;
            if (qobject_cast<QScrollBar*>(c) || qobject_cast<QTabBar*>(c)) continue;  // no value
            if (qobject_cast<QAbstractSpinBox*>(c->parentWidget())) continue;  // the spin box is
            if (qobject_cast<QAbstractScrollArea*>(c) && !qobject_cast<QPlainTextEdit*>(c))
                continue;  // a scroll area's focus passes to what it scrolls
            QAccessibleInterface* a = QAccessible::queryAccessibleInterface(c);
            if (!a || a->text(QAccessible::Name).trimmed().isEmpty())
                unnamed << QString("%1 (%2)").arg(c->metaObject()->className(), c->objectName());
        }
        QVERIFY2(unnamed.isEmpty(), qPrintable(unnamed.join(", ")));
        for (int i = 0; i < w.tabs()->count(); ++i) {
            QVERIFY(!w.tabs()->tabToolTip(i).isEmpty());
            QVERIFY(!w.tabs()->widget(i)->accessibleName().isEmpty());
            QVERIFY(!w.tabs()->widget(i)->accessibleDescription().isEmpty());
        }
    }
};

QTEST_MAIN(TstPresenter)
#include "tst_presenter.moc"
