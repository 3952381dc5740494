// Presenter mode as a lecturer uses it at 1920 × 1080: F5 enters (projector theme, larger text,
// the views alone), the clicker and F10 step with the menu bar hidden, Esc leaves and puts the
// theme, panel, menu bar and text back.
#include <QDockWidget>
#include <QMenuBar>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QTest>

#include "common/theme.h"
#include "gui/main_window.h"
#include "model_fixtures.h"

using namespace kvscope;
using app::MainWindow;

class TstPresenter : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    QString model_;

    static bool settle(MainWindow& w) {
        return QTest::qWaitFor([&] { return !w.busy(); }, 60000);
    }

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
};

QTEST_MAIN(TstPresenter)
#include "tst_presenter.moc"
