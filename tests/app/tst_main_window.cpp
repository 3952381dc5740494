// The window, driven as a lecturer drives it: keys with the prompt focused and not, step back,
// errors that keep the last good state, play, settings, and a GUI thread that never blocks.
#include <QAction>
#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QElapsedTimer>
#include <QFile>
#include <QLabel>
#include <QLegend>
#include <QLegendMarker>
#include <QLineSeries>
#include <QPlainTextEdit>
#include <QPointer>
#include <QPushButton>
#include <QRadioButton>
#include <QScatterSeries>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTabBar>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QTest>
#include <QThread>
#include <QTimer>
#include <algorithm>
#include <chrono>
#include <thread>

#include "charts/drift_chart.h"
#include "charts/latency_chart.h"
#include "charts/memory_chart.h"
#include "common/labels.h"
#include "common/theme.h"
#include "core/system_memory.h"
#include "gui/decode_controller.h"
#include "gui/main_window.h"
#include "model_fixtures.h"
#include "opencl/device_list.h"
#include "views/all_heads_view.h"
#include "views/block_table_view.h"
#include "views/cache_view.h"
#include "views/step_view.h"
#include "views/token_strip.h"

using namespace kvscope;
using app::MainWindow;

namespace {
// "" when a chart's legend has room for every visible entry's label (on one line under or over
// the plot, or an entry a line beside it) and its plot is more than 200 x 100 px, else what is
// short.
QString chartFits(QChartView* view) {
    const QLegend* legend = view->chart()->legend();
    const QFontMetrics fm(legend->font());
    const bool oneLine = legend->alignment() & (Qt::AlignTop | Qt::AlignBottom);
    int needed = 0;
    QStringList labels;
    for (QLegendMarker* m : legend->markers())
        if (m->isVisible() && m->series()->isVisible()) {
            const int entry = fm.horizontalAdvance(m->label()) + 2 * fm.height();
            needed = oneLine ? needed + entry : std::max(needed, entry);
            labels << m->label();
        }
    if (needed > legend->geometry().width())
        return QString("%1: legend needs %2 px, has %3 (%4)")
            .arg(view->objectName())
            .arg(needed)
            .arg(legend->geometry().width())
            .arg(labels.join(", "));
    const QRectF plot = view->chart()->plotArea();
    if (plot.height() <= 100 || plot.width() <= 200)
        return QString("%1: plot %2 x %3")
            .arg(view->objectName())
            .arg(plot.width())
            .arg(plot.height());
    return {};
}
}  // namespace

class TstMainWindow : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    QString gpt2_, llama_, big_, deep_;

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
        deep_ = dir_.filePath("deep.gguf");
        RandomModelSpec deep = fixtures::gpt2Spec();
        deep.nLayer = 32;
        deep.nCtx = 1024;
        fixtures::writeModel(deep, deep_.toStdString());
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

    // Space, Right and Page Down step and Backspace, Left and Page Up step back; Space, Backspace
    // and the arrows only while not typing: in the prompt they edit the text.
    void presentationKeysStepOnlyWhenNotTyping_data() {
        QTest::addColumn<int>("forward");
        QTest::addColumn<int>("back");
        QTest::newRow("space/backspace") << int(Qt::Key_Space) << int(Qt::Key_Backspace);
        QTest::newRow("right/left") << int(Qt::Key_Right) << int(Qt::Key_Left);
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

    // A clicker sends Page Down and Page Up: they step wherever the focus is and never edit
    // the prompt.
    void clickerKeysStepEvenInThePrompt() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("hello");
        const int n = promptTokens(*w);
        w->promptEditor()->setFocus();
        QTest::keyClick(w->promptEditor(), Qt::Key_PageDown);
        QVERIFY(settle(*w));
        QTest::keyClick(w->promptEditor(), Qt::Key_PageDown);
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), n + 2);
        QTest::keyClick(w->promptEditor(), Qt::Key_PageUp);
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), n + 1);
        QCOMPARE(w->prompt(), QString("hello"));
    }

    // The lecturer's defect: with the prompt focused, a click on a view (or a chart) and then the
    // clicker's Space typed into the prompt. Now the click hands the keys to stepping.
    void aClickOnAViewHandsTheKeysToStepping_data() {
        QTest::addColumn<int>("tab");
        QTest::newRow("step view") << 0;
        QTest::newRow("attention matrix") << 1;
        QTest::newRow("memory chart") << 3;
    }
    void aClickOnAViewHandsTheKeysToStepping() {
        QFETCH(int, tab);
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("light");
        const int n = promptTokens(*w);
        w->tabs()->setCurrentIndex(tab);
        w->promptEditor()->setFocus();
        QVERIFY(w->promptEditor()->hasFocus());
        // the deepest widget under the middle of the view, as a real click would hit it
        QWidget* page = w->tabs()->currentWidget();
        QWidget* target = page->childAt(page->width() / 3, page->height() / 3);
        QVERIFY(target);
        QTest::mouseClick(target, Qt::LeftButton, {}, target->rect().center());
        QVERIFY(!w->promptEditor()->hasFocus());
        QWidget* focus = QApplication::focusWidget();
        QVERIFY(focus);
        QTest::keyClick(focus, Qt::Key_Space);
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), n + 1);
        QCOMPARE(w->prompt(), QString("light"));
    }

    // Tab leaves the prompt (it types no tab character); with the tab bar focused the arrows
    // switch views instead of stepping; Ctrl+N and Alt+N pick view N; tokens, heads and layers
    // have keys of their own.
    void keyboardReachesEveryView() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("abc def");
        const int n = promptTokens(*w);
        QVERIFY(n >= 3);
        w->promptEditor()->setFocus();
        QTest::keyClick(w->promptEditor(), Qt::Key_Tab);
        QCOMPARE(w->prompt(), QString("abc def"));
        QVERIFY(!w->promptEditor()->hasFocus());

        QTabBar* bar = w->tabs()->tabBar();
        w->tabs()->setCurrentIndex(0);
        bar->setFocus();
        QTest::keyClick(bar, Qt::Key_Right);
        QVERIFY(settle(*w));
        QCOMPARE(w->tabs()->currentIndex(), 1);
        QCOMPARE(w->store()->count(), n);

        w->promptEditor()->setFocus();
        QTest::keyClick(w->promptEditor(), Qt::Key_3, Qt::ControlModifier);
        QCOMPARE(w->tabs()->currentIndex(), 2);
        w->promptEditor()->setFocus();
        QTest::keyClick(w->promptEditor(), Qt::Key_5, Qt::AltModifier);
        QCOMPARE(w->tabs()->currentIndex(), 4);
        QCOMPARE(w->prompt(), QString("abc def"));  // Alt+5 typed nothing
        // earlier and later tokens, heads, away from the prompt
        QWidget* page = w->tabs()->currentWidget();
        page->setFocus();
        QTest::keyClick(page, Qt::Key_BracketLeft);
        QVERIFY(w->store()->queryPinned());
        QCOMPARE(w->store()->queryIndex(), n - 2);
        QTest::keyClick(page, Qt::Key_End);
        QVERIFY(!w->store()->queryPinned());
        QTest::keyClick(page, Qt::Key_H);
        QCOMPARE(w->store()->head(), 1);
        QTest::keyClick(page, Qt::Key_L);
        QCOMPARE(w->store()->layer(), 1);
    }

    // Every byte count the window shows is the cache's real used bytes, tokens × bytes per token,
    // at every position: after each step back too, into the prompt as well.
    void bytesFollowEveryStepBackIntoThePrompt() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("In the beginning God created the heaven");
        const int n = promptTokens(*w);
        QVERIFY(n >= 4);
        for (int k = 0; k < 3; ++k) w->step();
        QVERIFY(settle(*w));
        const ModelConfig& c = w->store()->config();
        const size_t perToken = 2 * size_t(c.nLayer) * size_t(c.nHeadKv) * size_t(c.headDim) * 4;
        auto* status = w->findChild<QLabel*>("statusCache");
        QVERIFY(status);
        auto* cache = w->findChild<viz::CacheView*>();
        QVERIFY(cache);
        while (w->store()->count() > 1) {
            w->stepBack();
            QVERIFY(settle(*w));
            const int count = w->store()->count();
            const size_t expected = perToken * size_t(count);
            QCOMPARE(w->store()->kvBytes(), expected);
            // the fixture's 64-token context is one block, held while any token is
            const QString text = "KV cache " + viz::formatBytes(expected) + " used, " +
                                 viz::formatBytes(perToken * size_t(c.nCtx)) + " allocated";
            QVERIFY2(status->text() == text, qPrintable(status->text()));
            QCOMPARE(cache->usedBytes(), expected);
            QCOMPARE(cache->blockUsedBytes(), expected / size_t(c.nLayer) / 2);
            const QList<QPointF> used = w->memoryChart()->usedSeries()->points();
            QCOMPARE(used.last().x(), double(count));
            QCOMPARE(used.last().y() * w->memoryChart()->unitBytes(), double(expected));
            if (count < n) {
                QVERIFY(w->promptNote()->isVisibleTo(w.get()));
                QVERIFY2(w->promptNote()->text().contains("Stepped back into the prompt"),
                         qPrintable(w->promptNote()->text()));
            }
        }
        // Stepping on from inside the prompt: one point per token position, the bytes of two.
        w->step();
        QVERIFY(settle(*w));
        const QList<QPointF> used = w->memoryChart()->usedSeries()->points();
        for (int i = 1; i < used.size(); ++i) QVERIFY(used[i].x() > used[i - 1].x());
        QCOMPARE(used.last().y() * w->memoryChart()->unitBytes(), double(perToken * 2));
        QCOMPARE(w->store()->kvBytes(), perToken * 2);
    }

    // An edited prompt is not silently ignored: the window says the next step restarts from it,
    // and F10 does exactly that.
    void anEditedPromptRestartsOnTheNextStep() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("the cat sat");
        w->prefill();
        w->step();
        QVERIFY(settle(*w));
        QVERIFY(!w->promptNote()->isVisibleTo(w.get()));
        w->setPrompt("a dog ran far");
        QVERIFY(w->promptNote()->isVisibleTo(w.get()));
        QVERIFY2(w->promptNote()->text().contains("starts again from the new prompt"),
                 qPrintable(w->promptNote()->text()));
        QTest::keyClick(w->promptEditor(), Qt::Key_F10);
        QVERIFY(settle(*w));
        const viz::TraceStore& s = *w->store();
        std::string promptText;
        for (int i = 0; i < s.promptLength(); ++i) promptText += s.trace(i).text;
        QCOMPARE(QString::fromStdString(promptText), QString("a dog ran far"));
        QCOMPARE(s.count(), s.promptLength() + 1);
        QVERIFY(!w->promptNote()->isVisibleTo(w.get()));
    }

    // A file that is not a model: the message says so first, and the side panel goes back to
    // the model that is still loaded.
    void aFailedOpenKeepsThePanelOfTheLoadedModel() {
        auto w = open(gpt2_);
        QVERIFY(w);
        const QString notModel = dir_.filePath("hostname");
        {
            QFile f(notModel);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("box\n");
        }
        auto* summary = w->findChild<QLabel*>("modelSummary");
        QVERIFY(summary);
        const QString before = summary->text();
        w->openModel(notModel);
        QVERIFY(settle(*w));
        QVERIFY2(w->errorText().contains("is not a GGUF model file"), qPrintable(w->errorText()));
        QCOMPARE(summary->text(), before);
        QCOMPARE(w->store()->model().path, gpt2_);
    }

    // The side panel's context and KV type reach the engine: the model starts again with them,
    // the summary and the views follow, and a context past the model's is refused.
    void contextAndKvTypeComeFromThePanel() {
        auto w = open(llama_);
        QVERIFY(w);
        const size_t f32PerToken = w->store()->model().kvBytesPerToken;
        w->setCacheOptions(32, KvType::F16);
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->config().nCtx, 32);
        QCOMPARE(w->store()->model().kvBytesPerToken * 2, f32PerToken);
        QVERIFY(w->errorText().isEmpty());
        w->setCacheOptions(65, KvType::F16);  // the fixture was trained for 64
        QVERIFY(settle(*w));
        QVERIFY2(w->errorText().contains("trained for 64"), qPrintable(w->errorText()));
        QCOMPARE(w->store()->config().nCtx, 32);  // the running model stays
        w->setCacheOptions(0, KvType::F32);
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->config().nCtx, 64);
        QCOMPARE(w->store()->model().kvBytesPerToken, f32PerToken);
    }

    // The cache lab from the panel: a policy runs the same tokens again from the start under it;
    // the store then holds those tokens with the policy's evictions and bytes, and each token's
    // drift from the full cache; "Keep everything" brings the full cache back.
    void aCachePolicyRunsTheSameTokensAgain() {
        auto w = open(llama_);
        QVERIFY(w);
        w->prefill();
        QVERIFY(settle(*w));
        for (int k = 0; k < 8; ++k) {
            w->step();
            QVERIFY(settle(*w));
        }
        std::vector<int32_t> before;
        for (const StepTrace& t : w->store()->traces()) before.push_back(t.token);
        const size_t perToken = w->store()->model().kvBytesPerToken;
        w->setCacheOptions(0, KvCacheOptions(KvType::F32, 256, EvictionPolicy{4, 1, 0}));
        QVERIFY(settle(*w));
        QVERIFY2(w->errorText().isEmpty(), qPrintable(w->errorText()));
        std::vector<int32_t> after;
        for (const StepTrace& t : w->store()->traces()) after.push_back(t.token);
        QCOMPARE(after, before);
        QCOMPARE(w->store()->model().cache.eviction.window, 4);
        QVERIFY(w->store()->hasEvictions());
        QCOMPARE(w->store()->kvBytes(), 4 * perToken);  // sinks 1 + window 4, minus 1
        QVERIFY(w->store()->traces().back().hasDrift());
        QCOMPARE(w->findChild<QComboBox*>("cachePolicy")->currentData().toString(),
                 QString("sinks"));
        w->setCacheOptions(0, KvCacheOptions());
        QVERIFY(settle(*w));
        QVERIFY(!w->store()->hasEvictions());
        QCOMPARE(w->store()->kvBytes(), before.size() * perToken);
        QCOMPARE(w->findChild<QComboBox*>("cachePolicy")->currentData().toString(),
                 QString("none"));
    }

    // Prefix sharing in the window: a fork at this step continues on the same blocks; the KV cache
    // tab's block tables then show both sequences, the blocks wholly before the fork shared (the
    // same ids, 2 references) and the ones each side wrote into its own.
    void aForkSharesBlocksInTheBlockTables() {
        auto w = open(llama_);
        QVERIFY(w);
        w->setCacheOptions(0, KvCacheOptions(KvType::F32, 4));
        QVERIFY(settle(*w));
        w->prefill();
        QVERIFY(settle(*w));
        for (int k = 0; k < 3; ++k) {
            w->step();
            QVERIFY(settle(*w));
        }
        const int forkAt = w->store()->count();
        QCOMPARE(w->blockTables()->tables().size(), size_t{1});
        w->fork();
        QVERIFY(settle(*w));
        for (int k = 0; k < 3; ++k) {
            w->stepFork();
            QVERIFY(settle(*w));
            w->step();
            QVERIFY(settle(*w));
        }
        QVERIFY2(w->errorText().isEmpty(), qPrintable(w->errorText()));
        const auto& tables = w->blockTables()->tables();
        QCOMPARE(tables.size(), size_t{2});
        QCOMPARE(tables[0].rows, forkAt + 3);
        QCOMPARE(tables[1].rows, forkAt + 3);
        const size_t shared = static_cast<size_t>(forkAt / 4);
        QVERIFY(shared >= 1);
        for (size_t b = 0; b < tables[0].ids.size(); ++b) {
            QCOMPARE(tables[0].ids[b] == tables[1].ids[b], b < shared);
            QCOMPARE(tables[0].refs[b], b < shared ? 2L : 1L);
        }
        QCOMPARE(w->blockTables()->storedBlocks(),
                 w->blockTables()->separateBlocks() - static_cast<int>(shared));
        QVERIFY(!tables[1].continuation.isEmpty());
        if (qEnvironmentVariableIsSet("KVSCOPE_VIEWS_DIR"))
            w->blockTables()->grab().save(qEnvironmentVariable("KVSCOPE_VIEWS_DIR") +
                                          "/block_tables.png");
        w->reset();  // a reset drops the fork
        QVERIFY(settle(*w));
        QVERIFY(w->blockTables()->tables().size() <= 1);
    }

    // A model that does not fit the machine's memory is refused before anything is allocated,
    // with the figures; the window keeps the model it has.
    void aModelTooBigForMemoryIsRefusedAndTheLoadedOneStays() {
        auto w = open(gpt2_);
        QVERIFY(w);
        const QString before = w->findChild<QLabel*>("modelSummary")->text();
        setAvailableHostMemoryForTesting(20'000);  // less than the llama fixture's weights
        w->openModel(llama_);
        QVERIFY(settle(*w));
        setAvailableHostMemoryForTesting(std::nullopt);
        QVERIFY2(w->errorText().contains("not enough memory"), qPrintable(w->errorText()));
        QVERIFY2(w->errorText().contains("available"), qPrintable(w->errorText()));
        QCOMPARE(w->findChild<QLabel*>("modelSummary")->text(), before);
        QCOMPARE(w->store()->model().path, gpt2_);
    }

    // The views' text: Ctrl+= and Ctrl+- zoom it, Ctrl+0 resets, and a larger window scales it
    // up (1 at 1280 × 720, 1.5 at 1920 × 1140).
    void textGrowsWithZoomAndWindow() {
        auto w = open(gpt2_);
        QVERIFY(w);
        viz::ThemeSettings& theme = viz::ThemeSettings::instance();
        w->resize(1280, 720);
        QTRY_COMPARE(theme.textScale(), 1.0);
        const double base = theme.theme().labelFont.pointSizeF();
        QTest::keyClick(w.get(), Qt::Key_Equal, Qt::ControlModifier);
        QVERIFY(theme.textScale() > 1.1);
        QCOMPARE(theme.theme().labelFont.pointSizeF(), base * theme.textScale());
        QTest::keyClick(w.get(), Qt::Key_Minus, Qt::ControlModifier);
        QTest::keyClick(w.get(), Qt::Key_Minus, Qt::ControlModifier);
        QVERIFY(theme.textScale() < 1.0);
        QTest::keyClick(w.get(), Qt::Key_0, Qt::ControlModifier);
        QCOMPARE(theme.textScale(), 1.0);
        w->resize(1920, 1140);
        QTRY_COMPARE(theme.textScale(), 1.5);
        w->resize(1280, 720);
        QTRY_COMPARE(theme.textScale(), 1.0);
    }

    // "Compare without cache" can be stopped from its button, and closing the window stops it:
    // the window is gone within a second, whatever the replay had left to do.
    void aLongReplayStopsOnRequestAndOnClose() {
        auto w = open(big_);
        QVERIFY(w);
        w->setPrompt(QString("one two three four five six seven eight nine ten ").repeated(2));
        w->prefill();
        QVERIFY(settle(*w));
        for (int i = 0; i < 300; ++i) {  // a replay of these takes seconds (checked by hand)
            w->step();
            if (i % 3 == 2) QVERIFY(settle(*w));  // at most 3 requests pending: a step each
        }
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), w->store()->promptLength() + 300);
        auto* button = w->findChild<QPushButton*>("compare");
        QVERIFY(button);
        QSignalSpy progress(w->controller(), &app::DecodeController::compareProgress);
        button->click();
        QVERIFY(QTest::qWaitFor([&] { return progress.count() >= 2; }, 20000));
        QVERIFY2(button->text().startsWith("Stop comparing"), qPrintable(button->text()));
        button->click();  // stop
        QVERIFY(settle(*w));
        QVERIFY(!w->latencyChart()->hasComparison());
        QCOMPARE(button->text(), QString("Compare without cache"));
        QVERIFY(w->errorText().isEmpty());

        button->click();  // again, and close the window while it runs
        QVERIFY(QTest::qWaitFor([&] { return w->controller()->busy(); }, 20000));
        QElapsedTimer t;
        t.start();
        w.reset();
        QVERIFY2(t.elapsed() < 1000, qPrintable(QString("closing took %1 ms").arg(t.elapsed())));
    }

    // Showing the next-token tab asks the worker for the inspected token's logit lens; its last
    // layer is the distribution that token was drawn from.
    void theNextTokenTabShowsTheLogitLens() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("the cat");
        w->prefill();
        QVERIFY(settle(*w));
        for (int k = 0; k < 3; ++k) w->step();
        QVERIFY(settle(*w));
        const int i = w->store()->count() - 1;
        QVERIFY(w->store()->lens(i) == nullptr);  // nothing computed while the tab is hidden
        for (int t = 0; t < w->tabs()->count(); ++t)
            if (app::MainWindow::viewName(t) == "next") w->tabs()->setCurrentIndex(t);
        QTRY_VERIFY_WITH_TIMEOUT(w->store()->lens(i) != nullptr, 10000);
        const LogitLens& lens = *w->store()->lens(i);
        QCOMPARE(static_cast<int>(lens.layers.size()), w->store()->config().nLayer);
        const StepTrace& t = w->store()->trace(i);
        QCOMPARE(lens.layers.back().top.front().first, t.top.front().first);
        QVERIFY(std::abs(lens.layers.back().targetProb - std::exp(t.chosenLogit - t.logZ)) < 1e-5);
        QVERIFY(w->errorText().isEmpty());
    }

    // A call that nothing can interrupt (a driver compiling kernels: clBuildProgram has no
    // cancel) still cannot hold the window: closing returns within a second, and the worker,
    // left to finish the call, then deletes its controller and itself.
    void closingDuringAnUninterruptibleCallIsQuick() {
        auto w = open(gpt2_);
        QVERIFY(w);
        QVERIFY(settle(*w));
        QCOMPARE(app::MainWindow::workersStillRunning(), 0);
        QPointer<const app::DecodeController> controller = w->controller();
        std::atomic<bool> entered{false}, left{false};
        QTimer::singleShot(0, controller.data(), [&] {  // runs on the worker thread
            entered.store(true);
            std::this_thread::sleep_for(std::chrono::seconds(3));  // ignores every stop
            left.store(true);
        });
        QVERIFY(QTest::qWaitFor([&] { return entered.load(); }, 5000));
        QElapsedTimer t;
        t.start();
        w.reset();
        const qint64 ms = t.elapsed();
        QVERIFY2(ms < 1000, qPrintable(QString("closing took %1 ms").arg(ms)));
        QVERIFY(!left.load());
        QCOMPARE(app::MainWindow::workersStillRunning(), 1);
        QVERIFY(
            QTest::qWaitFor([&] { return app::MainWindow::workersStillRunning() == 0; }, 10000));
        QVERIFY(left.load());
        QTRY_VERIFY_WITH_TIMEOUT(controller.isNull(), 5000);  // deleted on its own thread
    }

    // The first use of an OpenCL device measures its matrix-product paths (seconds on PoCL):
    // closing the window during that measurement returns within a second. (A driver call such as
    // compiling the kernels cannot be interrupted: the first round below compiles them into
    // PoCL's cache, so the timed round is the measurement, which stops between its trials.)
    void closingDuringAnOpenClTuningIsQuick() {
        if (ocl::listDevices().devices.empty()) QSKIP("no OpenCL device on this machine");
        QTemporaryDir pocl, firstChoices, secondChoices;
        qputenv("POCL_CACHE_DIR", pocl.path().toUtf8());
        qputenv("XDG_CACHE_HOME", firstChoices.path().toUtf8());
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setBackend("opencl:0");  // compiles the kernels, measures, remembers in firstChoices
        QVERIFY(QTest::qWaitFor([&] { return !w->busy(); }, 300000));
        QVERIFY2(w->errorText().isEmpty(), qPrintable(w->errorText()));
        w->setBackend("cpu");
        QVERIFY(settle(*w));
        qputenv("XDG_CACHE_HOME", secondChoices.path().toUtf8());  // nothing measured here yet
        w->setBackend("opencl:0");
        QVERIFY(QTest::qWaitFor([&] { return w->controller()->busy(); }, 20000));
        QTest::qWait(300);  // into the start-up
        QElapsedTimer t;
        t.start();
        w.reset();
        const qint64 ms = t.elapsed();
        qunsetenv("XDG_CACHE_HOME");
        qunsetenv("POCL_CACHE_DIR");
        QVERIFY2(ms < 1000, qPrintable(QString("closing took %1 ms").arg(ms)));
        // the stopped start-up remembered nothing
        QVERIFY(!QFile::exists(secondChoices.filePath("kvscope/matmul.txt")));
    }

    // The play speed takes what is typed: 50 is 50 tokens per second, not 5.
    void playSpeedTakesWhatIsTyped() {
        auto w = open(gpt2_);
        QVERIFY(w);
        auto* speed = w->findChild<QDoubleSpinBox*>();
        QVERIFY(speed);
        speed->setFocus();
        speed->selectAll();
        QTest::keyClicks(speed, "50");
        QTest::keyClick(speed, Qt::Key_Enter);
        QCOMPARE(speed->value(), 50.0);
    }

    // A 1280 × 720 projector: the window fits, nothing in the status bar is cut, the step view's
    // titles and captions are whole, and the chart legends have room for every label.
    void fitsA720LineProjector() {
        auto w = open(gpt2_);
        QVERIFY(w);
        QVERIFY2(w->minimumSizeHint().width() <= 1280 && w->minimumSizeHint().height() <= 720,
                 qPrintable(QString("minimum %1 x %2")
                                .arg(w->minimumSizeHint().width())
                                .arg(w->minimumSizeHint().height())));
        w->resize(1280, 720);
        w->setPrompt("In the beginning God created the heaven and the earth");
        w->prefill();
        for (int k = 0; k < 12; ++k) w->step();
        QVERIFY(settle(*w));
        QCOMPARE(w->size(), QSize(1280, 720));
        for (int tab = 0; tab < w->tabs()->count(); ++tab) {
            w->tabs()->setCurrentIndex(tab);
            w->grab();  // lays out and paints the tab
            if (tab == 0) {
                auto* step = w->findChild<viz::StepView*>();
                QVERIFY(step);
                QVERIFY2(step->elidedTexts().isEmpty(),
                         qPrintable(step->elidedTexts().join(" | ")));
            }
            if (tab == 3) {
                for (QChartView* view : {static_cast<QChartView*>(w->memoryChart()),
                                         static_cast<QChartView*>(w->latencyChart())}) {
                    const QString e = chartFits(view);
                    QVERIFY2(e.isEmpty(), qPrintable(e));
                }
            }
        }
        QCoreApplication::processEvents();  // the status bar's layout requests
        for (const char* name : {"statusTokens", "statusCache", "statusLatency", "statusDevice"}) {
            auto* l = w->findChild<QLabel*>(name);
            QVERIFY(l);
            QVERIFY2(l->fontMetrics().horizontalAdvance(l->text()) <= l->width(),
                     qPrintable(QString("%1: '%2' in %3 px").arg(name, l->text()).arg(l->width())));
        }
        // The side panel can be hidden from the View menu, and the views take its width.
        const int before = w->tabs()->width();
        w->sidePanel()->toggleViewAction()->trigger();
        QVERIFY(w->sidePanel()->isHidden());
        QTRY_VERIFY(w->tabs()->width() > before);
    }

    // The same projector with a cache policy: the drift from the full cache shares the right-hand
    // place with the time per token (a switch, turned to the drift when the policy gives its
    // first figures), so every chart on the tab keeps room for its legend and its plot; with
    // the full cache back the switch goes and the time per token returns.
    void theCacheLabsChartsFitA720LineProjector() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->resize(1280, 720);
        w->setPrompt("In the beginning God created the heaven and the earth");
        w->prefill();
        for (int k = 0; k < 12; ++k) w->step();
        QVERIFY(settle(*w));
        w->setCacheOptions(0, KvCacheOptions(KvType::F32, 256, EvictionPolicy{8, 2, 0}));
        QVERIFY(settle(*w));
        QVERIFY2(w->errorText().isEmpty(), qPrintable(w->errorText()));
        QCOMPARE(w->size(), QSize(1280, 720));
        w->tabs()->setCurrentIndex(3);
        w->grab();
        auto* chartSwitch = w->findChild<QWidget*>("chartSwitch");
        auto* showDrift = w->findChild<QRadioButton*>("showDrift");
        auto* showLatency = w->findChild<QRadioButton*>("showLatency");
        QVERIFY(chartSwitch && showDrift && showLatency);
        QVERIFY(chartSwitch->isVisible());
        QVERIFY(showDrift->isChecked());
        QVERIFY(w->driftChart()->isVisible());
        QVERIFY(!w->latencyChart()->isVisible());
        for (QChartView* view : {static_cast<QChartView*>(w->memoryChart()),
                                 static_cast<QChartView*>(w->driftChart())}) {
            const QString e = chartFits(view);
            QVERIFY2(e.isEmpty(), qPrintable(e));
        }
        // "Compare without cache" draws on the time per token: it comes to the front
        w->compareWithoutCache();
        QVERIFY(settle(*w));
        w->grab();
        QVERIFY(showLatency->isChecked());
        QVERIFY(w->latencyChart()->isVisible() && !w->driftChart()->isVisible());
        const QString e = chartFits(w->latencyChart());
        QVERIFY2(e.isEmpty(), qPrintable(e));
        showDrift->click();
        w->grab();
        QVERIFY(w->driftChart()->isVisible() && !w->latencyChart()->isVisible());
        w->setCacheOptions(0, KvCacheOptions());
        QVERIFY(settle(*w));
        w->grab();
        QVERIFY(!chartSwitch->isVisible());
        QVERIFY(w->latencyChart()->isVisible());
    }

    // 32 layers at 320 tokens still fit 1280 × 720: the all-heads grid and the cache view
    // shrink their rows instead of growing the window; the cache blocks stay inside their view,
    // the strip turned compact and shows the newest token, and "go to token" pins the one asked.
    void thirtyTwoLayersAtLongContextFitA720LineProjector() {
        auto w = open(deep_);
        QVERIFY(w);
        QCOMPARE(w->store()->config().nLayer, 32);
        QVERIFY2(w->minimumSizeHint().height() <= 720,
                 qPrintable(QString("minimum height %1").arg(w->minimumSizeHint().height())));
        w->resize(1280, 720);
        w->setPrompt("In the beginning God created the heaven and the earth");
        w->prefill();
        QVERIFY(settle(*w));
        while (w->store()->count() <= viz::TokenStrip::kAutoCompactTokens + 10) {
            w->step();
            QVERIFY(settle(*w));
        }
        QCOMPARE(w->size(), QSize(1280, 720));
        auto* strip = w->findChild<viz::TokenStrip*>("tokenStrip");
        QVERIFY(strip);
        QVERIFY(strip->isCompact());
        QCOMPARE(strip->visibleTokens().second, w->store()->count() - 1);
        auto* compact = w->findChild<QAction*>("compactStrip");
        QVERIFY(compact && compact->isChecked());
        for (int tab = 0; tab < w->tabs()->count(); ++tab) {
            w->tabs()->setCurrentIndex(tab);
            w->grab();
            QCOMPARE(w->size(), QSize(1280, 720));
        }
        auto* cache = w->findChild<viz::CacheView*>();
        QVERIFY(cache);
        for (int l : {0, 31}) QVERIFY(cache->rect().contains(cache->blockRect(l, true)));
        auto* heads = w->findChild<viz::AllHeadsView*>();
        QVERIFY(heads);
        QVERIFY(heads->rect().contains(heads->cellRect(31, 3)));
        QVERIFY(strip->goToToken("200").isEmpty());
        QCOMPARE(w->store()->queryIndex(), 200);
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
        w->step();  // the long prompt is still in the box: the step tries it again, and fails
        QVERIFY(settle(*w));
        QVERIFY(w->errorText().contains("context"));
        QCOMPARE(w->store()->count(), n + 1);
        w->setPrompt("hello");  // the decoded prompt again: the step continues the run
        w->step();
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
    // timer events: a tick sees the controller itself inside a request (its own busy flag, set
    // only while it computes), which cannot happen if the controller ran on the GUI thread.
    void theGuiThreadKeepsRunningDuringASteps() {
        auto w = open(big_);
        QVERIFY(w);
        QVERIFY(w->controller()->thread() != QThread::currentThread());
        w->setPrompt(QString("one two three four five six seven eight nine ten ").repeated(8));
        int computingTicks = 0;
        QTimer tick;
        tick.setInterval(0);
        connect(&tick, &QTimer::timeout,
                [&] { computingTicks += w->controller()->busy() ? 1 : 0; });
        tick.start();
        w->prefill();
        for (int i = 0; i < 5; ++i) w->step();
        QVERIFY(settle(*w));
        tick.stop();
        QVERIFY(w->store()->count() > 0);
        QVERIFY2(computingTicks > 0, "no GUI event was handled while the controller computed");
    }

    // The backend chooser moves the loaded model to an OpenCL device (PoCL here and in CI) and
    // the same prompt decodes to the same tokens there; a missing device is an error that keeps
    // the backend in use. The device's long name (PoCL's, with its paths and kernels) fits the
    // status bar of a 1280-pixel projector, elided (it was cut off), and the tooltip has it
    // whole.
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
        auto* device = w->findChild<QLabel*>("statusDevice");
        QVERIFY(device);
        QVERIFY2(device->toolTip().contains("OpenCL, gemv"), qPrintable(device->toolTip()));
        QVERIFY(device->fontMetrics().horizontalAdvance(device->text()) <= 420);
        QVERIFY2(w->minimumSizeHint().width() <= 1280,
                 qPrintable(QString("minimum width %1 with '%2'")
                                .arg(w->minimumSizeHint().width())
                                .arg(device->toolTip())));
        w->resize(1280, 720);
        QCoreApplication::processEvents();
        QCOMPARE(w->size(), QSize(1280, 720));
        QVERIFY2(device->fontMetrics().horizontalAdvance(device->text()) <= device->width(),
                 qPrintable(QString("'%1' in %2 px").arg(device->text()).arg(device->width())));

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
