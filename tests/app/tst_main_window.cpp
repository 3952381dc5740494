// The window, driven as a lecturer drives it: keys with the prompt focused and not, step back,
// errors that keep the last good state, play, settings, and a GUI thread that never blocks.
#include <QLineSeries>
#include <QPlainTextEdit>
#include <QScatterSeries>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>

#include "latency_chart.h"
#include "main_window.h"
#include "model_fixtures.h"
#include "opencl/device_list.h"

using namespace kvscope;
using app::MainWindow;

class TstMainWindow : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    QString gpt2_, llama_, big_;

    // A window on `model`, shown, active, with the model loaded.
    std::unique_ptr<MainWindow> open(const QString& model, bool settings = false) {
        auto w = std::make_unique<MainWindow>(model, settings);
        w->resize(1200, 800);
        w->show();
        QApplication::setActiveWindow(w.get());
        if (!QTest::qWaitForWindowActive(w.get())) qWarning("window not active");
        if (!QTest::qWaitFor([&] { return w->store()->hasModel() && !w->busy(); }, 20000))
            return nullptr;
        return w;
    }
    // Waits until every request sent has been answered.
    static bool settle(MainWindow& w) {
        return QTest::qWaitFor([&] { return !w.busy(); }, 20000);
    }
    // The token count after a prefill of the window's prompt.
    static int promptTokens(MainWindow& w) {
        w.prefill();
        settle(w);
        return w.store()->count();
    }

  private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY(dir_.isValid());
        gpt2_ = dir_.filePath("gpt2.gguf");
        llama_ = dir_.filePath("llama.gguf");
        big_ = dir_.filePath("big.gguf");
        fixtures::writeModel(fixtures::gpt2Spec(), gpt2_.toStdString());
        fixtures::writeModel(fixtures::llamaGqaSpec(), llama_.toStdString());
        RandomModelSpec big = fixtures::gpt2Spec();
        big.nLayer = 8;
        big.nEmbd = 256;
        big.nFf = 1024;
        big.nCtx = 512;
        big.nVocab = 8000;
        fixtures::writeModel(big, big_.toStdString());
    }

    void titleNamesTheModel() {
        auto w = open(llama_);
        QVERIFY(w);
        QCOMPARE(w->windowTitle(), QString("KVScope — random llama"));
        QCOMPARE(w->store()->config().nHeadKv, 2);
    }

    // "Compare without cache" replays the same prompt and tokens in recompute mode: the latency
    // chart draws a recompute time for every generated token only if the replayed ids equal the
    // store's; the cached sequence stays as it was.
    void compareWithoutCacheReplaysTheSameTokens() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("the cat sat");
        w->prefill();
        QVERIFY(settle(*w));
        for (int k = 0; k < 5; ++k) {
            w->step();
            QVERIFY(settle(*w));
        }
        const int count = w->store()->count(), prompt = w->store()->promptLength();
        QCOMPARE(count, prompt + 5);
        QVERIFY(!w->latencyChart()->hasComparison());
        w->compareWithoutCache();
        QVERIFY(settle(*w));
        QVERIFY2(w->errorText().isEmpty(), qPrintable(w->errorText()));
        QVERIFY(w->latencyChart()->hasComparison());
        QCOMPARE(w->latencyChart()->recomputeSeries()->count(), 5);
        QCOMPARE(w->latencyChart()->recomputePrefillSeries()->count(), 1);
        QCOMPARE(w->latencyChart()->ratioPosition(), count - 1);
        QVERIFY(w->latencyChart()->measuredRatio() > 0);
        QCOMPARE(w->store()->count(), count);  // the cached session is untouched
        w->step();
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), count + 1);
    }

    // F10 steps from anywhere, the prompt editor included; a step before the prefill prefills.
    void f10StepsWithThePromptFocused() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("the cat");
        const int n = promptTokens(*w);
        w->reset();
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), 0);
        w->promptEditor()->setFocus();
        QTest::keyClick(w->promptEditor(), Qt::Key_F10);
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), n + 1);
        QCOMPARE(w->store()->promptLength(), n);
        QTest::keyClick(w->promptEditor(), Qt::Key_F10);
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), n + 2);
        QTest::keyClick(w->promptEditor(), Qt::Key_F9);
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), n + 1);
        QCOMPARE(w->prompt(), QString("the cat"));  // the keys typed nothing
    }

    // Space, Right and Page Down step and Backspace, Left and Page Up step back, but only while
    // not typing: in the prompt they edit the text.
    void presentationKeysStepOnlyWhenNotTyping_data() {
        QTest::addColumn<int>("forward");
        QTest::addColumn<int>("back");
        QTest::newRow("space/backspace") << int(Qt::Key_Space) << int(Qt::Key_Backspace);
        QTest::newRow("right/left") << int(Qt::Key_Right) << int(Qt::Key_Left);
        QTest::newRow("pagedown/pageup (clicker)") << int(Qt::Key_PageDown) << int(Qt::Key_PageUp);
    }
    void presentationKeysStepOnlyWhenNotTyping() {
        QFETCH(int, forward);
        QFETCH(int, back);
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("hello");
        const int n = promptTokens(*w);
        QWidget* views = w->tabs()->currentWidget();
        views->setFocusPolicy(Qt::StrongFocus);
        views->setFocus();
        QTest::keyClick(views, Qt::Key(forward));
        QVERIFY(settle(*w));
        QTest::keyClick(views, Qt::Key(forward));
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), n + 2);
        QTest::keyClick(views, Qt::Key(back));
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), n + 1);

        w->promptEditor()->setFocus();
        QTest::keyClick(w->promptEditor(), Qt::Key(forward));
        QTest::keyClick(w->promptEditor(), Qt::Key(back));
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), n + 1);  // typing is not stepping
    }

    void stepBackNeverDropsTheFirstToken() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("a");
        QCOMPARE(promptTokens(*w), 1);
        w->step();
        w->stepBack();
        w->stepBack();
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), 1);
    }

    // A prompt longer than the context is refused in the window; what was shown stays.
    void errorsShowAndKeepTheLastGoodState() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("hello");
        const int n = promptTokens(*w);
        w->step();
        QVERIFY(settle(*w));
        w->setPrompt(QString(100, '!'));
        w->prefill();
        QVERIFY(settle(*w));
        QVERIFY2(w->errorText().contains("context"), qPrintable(w->errorText()));
        QCOMPARE(w->store()->count(), n + 1);
        w->step();  // still usable
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), n + 2);
        QVERIFY(w->errorText().isEmpty());

        w->openModel(dir_.filePath("missing.gguf"));
        QVERIFY(settle(*w));
        QVERIFY(w->errorText().contains("missing.gguf"));
        QCOMPARE(w->store()->count(), n + 2);  // the loaded model and its tokens stay
    }

    void playStepsByItselfUntilPaused() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("xy");
        const int n = promptTokens(*w);
        w->setPlaying(true);
        QTRY_VERIFY_WITH_TIMEOUT(w->store()->count() >= n + 2, 10000);
        w->setPlaying(false);
        QVERIFY(settle(*w));
        const int stopped = w->store()->count();
        QTest::qWait(1200);
        QCOMPARE(w->store()->count(), stopped);
    }

    // While a step of a larger model runs on the worker thread, the GUI thread still handles
    // timer events: a tick sees the window busy.
    void theGuiThreadKeepsRunningDuringASteps() {
        auto w = open(big_);
        QVERIFY(w);
        w->setPrompt(QString("one two three four five six seven eight nine ten ").repeated(8));
        int busyTicks = 0;
        QTimer tick;
        tick.setInterval(0);
        connect(&tick, &QTimer::timeout, [&] { busyTicks += w->busy() ? 1 : 0; });
        tick.start();
        w->prefill();
        for (int i = 0; i < 5; ++i) w->step();
        QVERIFY(settle(*w));
        tick.stop();
        QVERIFY(w->store()->count() > 0);
        QVERIFY2(busyTicks > 0, "no event was processed while decoding");
    }

    // The backend chooser moves the loaded model to an OpenCL device (PoCL here and in CI) and
    // the same prompt decodes to the same tokens there; a missing device is an error that keeps
    // the backend in use.
    void backendChooserMovesTheModel() {
        if (ocl::listDevices().devices.empty()) QSKIP("no OpenCL device on this machine");
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setBackend("cpu");
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->model().backend, QString("cpu"));
        w->setPrompt("the cat");
        w->prefill();
        for (int i = 0; i < 4; ++i) w->step();
        QVERIFY(settle(*w));
        std::vector<int32_t> cpuTokens;
        for (const StepTrace& t : w->store()->traces()) cpuTokens.push_back(t.token);

        w->setBackend("opencl:0");
        QVERIFY(QTest::qWaitFor([&] { return !w->busy(); }, 120000));  // first use tunes the device
        QVERIFY2(w->errorText().isEmpty(), qPrintable(w->errorText()));
        QCOMPARE(w->store()->model().backend, QString("opencl"));
        QCOMPARE(w->store()->count(), 0);
        w->prefill();
        for (int i = 0; i < 4; ++i) w->step();
        QVERIFY(settle(*w));
        std::vector<int32_t> clTokens;
        for (const StepTrace& t : w->store()->traces()) clTokens.push_back(t.token);
        QCOMPARE(clTokens, cpuTokens);

        w->setBackend("opencl:99");
        QVERIFY(settle(*w));
        QVERIFY2(w->errorText().contains("99"), qPrintable(w->errorText()));
        QCOMPARE(w->store()->model().backend, QString("opencl"));
    }

    void settingsPersist() {
        {
            auto w = open(gpt2_, true);
            QVERIFY(w);
            w->setPrompt("remember me");
            w->close();
        }
        auto w = open(QString(), true);  // no model named: the last one opened
        QVERIFY(w);
        QCOMPARE(w->prompt(), QString("remember me"));
        QCOMPARE(w->store()->model().path, gpt2_);
    }
};

QTEST_MAIN(TstMainWindow)
#include "tst_main_window.moc"
