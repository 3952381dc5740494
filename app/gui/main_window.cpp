// MainWindow: widgets, keys, settings, and the queued requests to the decoding thread.
#include "gui/main_window.h"

#include <QActionGroup>
#include <QApplication>
#include <QChartView>
#include <QCheckBox>
#include <QClipboard>
#include <QCloseEvent>
#include <QComboBox>
#include <QDir>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QFrame>
#include <QGroupBox>
#include <QGuiApplication>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QMenuBar>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSaveFile>
#include <QScreen>
#include <QScrollArea>
#include <QScrollBar>
#include <QSettings>
#include <QSpinBox>
#include <QSplitter>
#include <QStandardItemModel>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTabBar>
#include <QTabWidget>
#include <QToolButton>
#include <QVBoxLayout>

#include "charts/latency_chart.h"
#include "charts/memory_chart.h"
#include "common/labels.h"
#include "common/theme.h"
#include "export/exporter.h"
#include "export/trace_export.h"
#include "views/all_heads_view.h"
#include "views/attention_matrix_view.h"
#include "views/cache_view.h"
#include "views/calculator_panel.h"
#include "views/step_view.h"
#include "views/token_strip.h"

namespace kvscope::app {
namespace {

// A tab's page: the view inside a frame that takes the focus on a click or Tab and shows a focus
// ring, so the keyboard's place is always visible and a click on a view leaves the prompt.
QWidget* focusPage(QWidget* content) {
    auto* page = new QFrame;
    page->setObjectName("viewPage");
    page->setFocusPolicy(Qt::StrongFocus);
    page->setStyleSheet(
        "QFrame#viewPage { border: 2px solid transparent; }"
        "QFrame#viewPage:focus { border: 2px solid palette(highlight); }");
    auto* layout = new QVBoxLayout(page);
    layout->setContentsMargins(2, 2, 2, 2);
    layout->addWidget(content);
    page->setFocusProxy(nullptr);
    return page;
}

QString bytesText(double bytes) {
    return viz::formatBytes(static_cast<size_t>(bytes));
}

QString thousands(size_t n) {
    return QLocale(QLocale::English).toString(static_cast<qulonglong>(n));
}

}  // namespace

MainWindow::MainWindow(const QString& modelPath, bool restoreSettings, QWidget* parent)
    : QMainWindow(parent),
      store_(new viz::TraceStore(this)),
      controller_(new DecodeController),
      restoreSettings_(restoreSettings),
      modelPath_(modelPath) {
    setWindowTitle("KVScope");
    controller_->moveToThread(&worker_);
    connect(&worker_, &QThread::finished, controller_, &QObject::deleteLater);
    worker_.start();
    buildUi();
    connectController();
    if (restoreSettings_) loadSettings();
    buildMenus();  // after the settings, so the theme and animation items show what is in use
    applyTextScale();
    sendSampler();
    request([c = controller_] { c->listDevices(); });
    setBackend(backendSpec_);
    openModel(modelPath_.isEmpty() ? QString(kBuiltinModel) : modelPath_);
}

MainWindow::~MainWindow() {
    playTimer_.stop();
    worker_.quit();
    worker_.wait();
}

template <typename F>
void MainWindow::request(F&& call) {
    ++pending_;
    QMetaObject::invokeMethod(controller_, std::forward<F>(call), Qt::QueuedConnection);
}

void MainWindow::buildUi() {
    auto* central = new QWidget;
    auto* outer = new QVBoxLayout(central);

    error_ = new QLabel;
    error_->setWordWrap(true);
    error_->setStyleSheet(
        "QLabel { background: #FDECEA; color: #8A1C12; border: 1px solid #E0A39C; padding: 6px; }");
    error_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    error_->hide();
    outer->addWidget(error_);

    // 1. the prompt (and what the next step will do with it) beside the step controls, with the
    // layer and head under them: two rows, so the views keep the height of a 720-line projector.
    auto* controls = new QHBoxLayout;
    auto* promptColumn = new QVBoxLayout;
    promptColumn->setSpacing(2);
    prompt_ = new QPlainTextEdit;
    prompt_->setObjectName("prompt");
    prompt_->setAccessibleName(tr("Prompt"));
    prompt_->setPlaceholderText(
        tr("Type a prompt, then Prefill, or Step (F10) one token at a time"));
    prompt_->setPlainText("In the beginning God created");
    prompt_->setTabChangesFocus(true);  // Tab leaves the prompt; a prompt has no use for tabs
    prompt_->setFixedHeight(prompt_->fontMetrics().lineSpacing() * 2 + 14);
    promptColumn->addWidget(prompt_);
    promptNote_ = new QLabel;
    promptNote_->setObjectName("promptNote");
    promptNote_->setWordWrap(true);
    promptNote_->setStyleSheet("QLabel { color: palette(highlight); font-weight: bold; }");
    promptNote_->hide();
    promptColumn->addWidget(promptNote_);
    controls->addLayout(promptColumn, 1);
    auto* rightColumn = new QVBoxLayout;
    rightColumn->setSpacing(4);
    auto* buttons = new QHBoxLayout;
    prefillButton_ = new QPushButton(tr("Prefill"));
    stepButton_ = new QPushButton(tr("Step ▶"));
    backButton_ = new QPushButton(tr("◀ Step back"));
    playButton_ = new QToolButton;
    playButton_->setText(tr("Play"));
    playButton_->setCheckable(true);
    speed_ = new QDoubleSpinBox;
    speed_->setRange(0.1, 100);  // wide enough that typing "50" gives 50, not 5 and a refusal
    speed_->setDecimals(1);
    speed_->setValue(2);
    speed_->setSuffix(tr(" tok/s"));
    speed_->setToolTip(tr("Play speed: tokens per second"));
    resetButton_ = new QPushButton(tr("Reset"));
    stepButton_->setToolTip(tr("One token (F10; Space, → or Page Down when not typing)"));
    backButton_->setToolTip(
        tr("Drop the newest token from the cache (F9; Backspace, ← or Page Up when not typing)"));
    prefillButton_->setToolTip(tr("Run the whole prompt in one pass"));
    for (QWidget* w : std::initializer_list<QWidget*>{prefillButton_, stepButton_, backButton_,
                                                      playButton_, speed_, resetButton_})
        buttons->addWidget(w);
    rightColumn->addLayout(buttons);

    // 2. selection: layer and head
    auto* select = new QHBoxLayout;
    layer_ = new QSpinBox;
    head_ = new QSpinBox;
    layer_->setAccessibleName(tr("Layer"));
    head_->setAccessibleName(tr("Head"));
    kvHeadNote_ = new QLabel;
    kvHeadNote_->setWordWrap(true);
    kvHeadNote_->setMinimumWidth(120);
    auto* layerLabel = new QLabel(tr("&Layer"));
    layerLabel->setBuddy(layer_);
    auto* headLabel = new QLabel(tr("&Head"));
    headLabel->setBuddy(head_);
    select->addWidget(layerLabel);
    select->addWidget(layer_);
    select->addWidget(headLabel);
    select->addWidget(head_);
    select->addWidget(kvHeadNote_, 1);
    rightColumn->addLayout(select);
    controls->addLayout(rightColumn);
    outer->addLayout(controls);

    // 3. tokens and views
    auto* strip = new viz::TokenStrip(store_);
    auto* stripScroll = new QScrollArea;
    stripScroll->setWidget(strip);
    stripScroll->setWidgetResizable(true);
    stripScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    stripScroll->setMinimumHeight(2 * strip->minimumSizeHint().height());
    stripScroll->setMaximumHeight(4 * strip->minimumSizeHint().height());
    // Follow the newest token down the strip.
    connect(store_, &viz::TraceStore::tokenAppended, stripScroll, [stripScroll] {
        QTimer::singleShot(0, stripScroll, [stripScroll] {
            stripScroll->verticalScrollBar()->setValue(stripScroll->verticalScrollBar()->maximum());
        });
    });
    tabs_ = new QTabWidget;
    tabs_->setObjectName("views");
    tabs_->addTab(focusPage(new viz::StepView(store_)), tr("Step: q · Kᵀ → weights → V"));
    auto* attention = new QSplitter(Qt::Horizontal);
    attention->addWidget(new viz::AttentionMatrixView(store_));
    attention->addWidget(new viz::AllHeadsView(store_));
    attention->setStretchFactor(0, 3);
    attention->setStretchFactor(1, 2);
    tabs_->addTab(focusPage(attention), tr("Attention matrix"));
    tabs_->addTab(focusPage(new viz::CacheView(store_)), tr("KV cache"));
    auto* charts = new QWidget;
    auto* chartsLayout = new QVBoxLayout(charts);
    auto* chartsSplit = new QSplitter(Qt::Horizontal);
    memoryChart_ = new viz::MemoryChart(store_);
    latencyChart_ = new viz::LatencyChart(store_);
    // each chart above its caption (the numbers behind the lines, in words)
    for (QChartView* chart :
         {static_cast<QChartView*>(memoryChart_), static_cast<QChartView*>(latencyChart_)}) {
        auto* box = new QWidget;
        auto* boxLayout = new QVBoxLayout(box);
        boxLayout->setContentsMargins(0, 0, 0, 0);
        boxLayout->addWidget(chart, 1);
        auto* caption = new QLabel;
        caption->setWordWrap(true);
        caption->setTextInteractionFlags(Qt::TextSelectableByMouse);
        boxLayout->addWidget(caption);
        chartsSplit->addWidget(box);
        if (chart == memoryChart_) {
            caption->setText(memoryChart_->caption());
            connect(memoryChart_, &viz::MemoryChart::captionChanged, caption, &QLabel::setText);
        } else {
            caption->setText(latencyChart_->caption());
            connect(latencyChart_, &viz::LatencyChart::captionChanged, caption, &QLabel::setText);
        }
    }
    chartsLayout->addWidget(chartsSplit, 1);
    auto* compareRow = new QHBoxLayout;
    compareButton_ = new QPushButton(tr("Compare without cache"));
    compareButton_->setObjectName("compare");
    compareButton_->setToolTip(
        tr("Replay the same prompt and the same tokens with no KV cache (every step recomputes "
           "all tokens) and draw its time per token beside the cached one"));
    connect(compareButton_, &QPushButton::clicked, this, &MainWindow::compareWithoutCache);
    compareRow->addWidget(compareButton_);
    auto* showWeights = new QCheckBox(tr("Draw the weights too"));
    showWeights->setObjectName("showWeights");
    showWeights->setToolTip(tr("The model's weights on the memory chart, to scale with the cache"));
    connect(showWeights, &QCheckBox::toggled, memoryChart_, &viz::MemoryChart::setShowWeights);
    compareRow->addWidget(showWeights);
    compareRow->addStretch(1);
    chartsLayout->addLayout(compareRow);
    tabs_->addTab(focusPage(charts), tr("Memory && latency"));
    tabs_->addTab(focusPage(new viz::CalculatorPanel(store_)), tr("Calculator"));
    auto* split = new QSplitter(Qt::Vertical);
    split->addWidget(stripScroll);
    split->addWidget(tabs_);
    split->setStretchFactor(1, 1);
    outer->addWidget(split, 1);
    setCentralWidget(central);

    // 4. side panel: model, backend, sampling
    auto* side = new QWidget;
    auto* sideLayout = new QVBoxLayout(side);
    auto* modelBox = new QGroupBox(tr("Model"));
    auto* modelLayout = new QVBoxLayout(modelBox);
    summary_ = new QLabel(tr("Loading…"));
    summary_->setObjectName("modelSummary");
    summary_->setTextFormat(Qt::RichText);
    summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    summary_->setWordWrap(true);
    modelLayout->addWidget(summary_);
    backend_ = new QComboBox;
    backend_->addItem(tr("Auto (first GPU, else CPU)"), "auto");
    backend_->addItem(tr("CPU (Eigen)"), "cpu");
    backend_->setToolTip(tr("Where the model runs. The OpenCL devices appear once listed."));
    backendNote_ = new QLabel;
    backendNote_->setWordWrap(true);
    backendNote_->setStyleSheet("color: gray");
    modelLayout->addWidget(new QLabel(tr("Backend")));
    modelLayout->addWidget(backend_);
    modelLayout->addWidget(backendNote_);
    sideLayout->addWidget(modelBox);

    auto* samplingBox = new QGroupBox(tr("Sampling"));
    auto* form = new QFormLayout(samplingBox);
    samplingMode_ = new QComboBox;
    samplingMode_->addItem(tr("Greedy (argmax)"));
    samplingMode_->addItem(tr("Sample"));
    temperature_ = new QDoubleSpinBox;
    temperature_->setRange(0.05, 5);
    temperature_->setSingleStep(0.1);
    temperature_->setValue(0.8);
    topK_ = new QSpinBox;
    topK_->setRange(0, 100000);
    topK_->setSpecialValueText(tr("off"));
    topK_->setValue(40);
    topP_ = new QDoubleSpinBox;
    topP_->setRange(0.01, 1);
    topP_->setSingleStep(0.05);
    topP_->setValue(0.95);
    seed_ = new QSpinBox;
    seed_->setRange(0, 1 << 30);
    form->addRow(tr("Mode"), samplingMode_);
    form->addRow(tr("Temperature"), temperature_);
    form->addRow(tr("Top-k"), topK_);
    form->addRow(tr("Top-p"), topP_);
    form->addRow(tr("Seed"), seed_);
    sideLayout->addWidget(samplingBox);
    sideLayout->addStretch(1);
    auto* sideScroll = new QScrollArea;
    sideScroll->setWidget(side);
    sideScroll->setWidgetResizable(true);
    sideScroll->setMinimumWidth(260);
    sideDock_ = new QDockWidget(tr("Model and sampling"), this);
    sideDock_->setObjectName("sideDock");
    sideDock_->setWidget(sideScroll);
    sideDock_->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable |
                           QDockWidget::DockWidgetClosable);
    addDockWidget(Qt::RightDockWidgetArea, sideDock_);

    // 5. status bar
    statusTokens_ = new QLabel;
    statusCache_ = new QLabel;
    statusLatency_ = new QLabel;
    statusDevice_ = new QLabel;
    statusTokens_->setObjectName("statusTokens");
    statusCache_->setObjectName("statusCache");
    statusLatency_->setObjectName("statusLatency");
    statusDevice_->setObjectName("statusDevice");
    for (QLabel* l : {statusTokens_, statusCache_, statusLatency_}) statusBar()->addWidget(l);
    statusBar()->addPermanentWidget(statusDevice_);

    // wiring of the widgets
    connect(prefillButton_, &QPushButton::clicked, this, &MainWindow::prefill);
    connect(stepButton_, &QPushButton::clicked, this, &MainWindow::step);
    connect(backButton_, &QPushButton::clicked, this, &MainWindow::stepBack);
    connect(resetButton_, &QPushButton::clicked, this, &MainWindow::reset);
    connect(playButton_, &QToolButton::toggled, this, &MainWindow::setPlaying);
    connect(speed_, &QDoubleSpinBox::valueChanged, this,
            [this](double v) { playTimer_.setInterval(static_cast<int>(1000 / v)); });
    playTimer_.setInterval(500);
    connect(&playTimer_, &QTimer::timeout, this, [this] {
        if (pending_ == 0) step();
    });
    for (QObject* o :
         std::initializer_list<QObject*>{samplingMode_, temperature_, topK_, topP_, seed_}) {
        if (auto* c = qobject_cast<QComboBox*>(o))
            connect(c, &QComboBox::currentIndexChanged, this, &MainWindow::sendSampler);
        if (auto* d = qobject_cast<QDoubleSpinBox*>(o))
            connect(d, &QDoubleSpinBox::valueChanged, this, &MainWindow::sendSampler);
        if (auto* s = qobject_cast<QSpinBox*>(o))
            connect(s, &QSpinBox::valueChanged, this, &MainWindow::sendSampler);
    }
    connect(backend_, &QComboBox::activated, this,
            [this](int i) { setBackend(backend_->itemData(i).toString()); });
    connect(layer_, &QSpinBox::valueChanged, store_, &viz::TraceStore::setLayer);
    connect(head_, &QSpinBox::valueChanged, store_, &viz::TraceStore::setHead);
    connect(store_, &viz::TraceStore::selectionChanged, this, &MainWindow::updateSelectors);
    connect(store_, &viz::TraceStore::modelChanged, this, &MainWindow::updateSummary);
    for (auto signal : {&viz::TraceStore::tokensReset, &viz::TraceStore::selectionChanged})
        connect(store_, signal, this, &MainWindow::updateStatus);
    connect(store_, &viz::TraceStore::tokenAppended, this, &MainWindow::updateStatus);
    connect(store_, &viz::TraceStore::truncated, this, &MainWindow::updateStatus);
    connect(store_, &viz::TraceStore::tokensReset, this, &MainWindow::updatePromptNote);
    connect(store_, &viz::TraceStore::truncated, this, &MainWindow::updatePromptNote);
    connect(store_, &viz::TraceStore::tokenAppended, this, &MainWindow::updatePromptNote);
    connect(prompt_, &QPlainTextEdit::textChanged, this, &MainWindow::updatePromptNote);

    // keys: F10 and F9 from anywhere (as in a debugger; the Decode menu's actions), the
    // presentation keys while not typing (eventFilter)
    qApp->installEventFilter(this);
    updateSelectors();
    updateStatus();
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(tr("&Open model…"), QKeySequence::Open, this, [this] {
        const QString path = QFileDialog::getOpenFileName(
            this, tr("Open a GGUF model"), QString(), tr("GGUF models (*.gguf);;All files (*)"));
        if (!path.isEmpty()) openModel(path);
    });
    file->addAction(tr("Open the &built-in model"), this, [this] { openModel(kBuiltinModel); });
    file->addSeparator();
    file->addAction(tr("&Export view…"), QKeySequence(Qt::CTRL | Qt::Key_E), this, [this] {
        exportFigure(tabs_->currentWidget(), viewName(tabs_->currentIndex()));
    });
    file->addAction(tr("Export &window…"), this, [this] { exportFigure(this, "window"); });
    file->addAction(tr("&Copy view"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_C), this, [this] {
        QApplication::clipboard()->setPixmap(tabs_->currentWidget()->grab());
        statusBar()->showMessage(tr("The view is on the clipboard"), 3000);
    });
    file->addAction(tr("Export &trace (JSON or CSV)…"), this, [this] {
        const QString path = QFileDialog::getSaveFileName(
            this, tr("Export the trace"),
            QDir(exportDir()).filePath(QString("kvscope-trace-%1.json").arg(store_->count())),
            tr("JSON (*.json);;CSV (*.csv)"));
        if (path.isEmpty()) return;
        rememberExportDir(path);
        const QByteArray bytes = path.endsWith(".csv", Qt::CaseInsensitive)
                                     ? viz::traceCsv(*store_, store_->layer(), store_->head())
                                     : viz::traceJson(*store_, store_->layer(), store_->head());
        QSaveFile f(path);
        if (!f.open(QIODevice::WriteOnly) || f.write(bytes) != bytes.size() || !f.commit())
            showError(tr("Cannot write '%1': %2").arg(path, f.errorString()));
        else
            statusBar()->showMessage(tr("Wrote %1").arg(path), 5000);
    });
    // Quit far from the export items, and it asks first when tokens would be lost (closeEvent).
    file->addSeparator();
    file->addSeparator();
    file->addAction(tr("&Quit KVScope"), QKeySequence::Quit, this, &QWidget::close);

    QMenu* decode = menuBar()->addMenu(tr("&Decode"));
    auto keyHint = [](QAction* a) {
        a->setShortcutVisibleInContextMenu(true);
        return a;
    };
    keyHint(decode->addAction(tr("&Step one token"), QKeySequence(Qt::Key_F10), this,
                              &MainWindow::step))
        ->setToolTip(tr("Also Space, → or Page Down when not typing in the prompt"));
    keyHint(
        decode->addAction(tr("Step &back"), QKeySequence(Qt::Key_F9), this, &MainWindow::stepBack))
        ->setToolTip(tr("Also Backspace, ← or Page Up when not typing in the prompt"));
    keyHint(decode->addAction(tr("&Prefill the prompt"), QKeySequence(Qt::CTRL | Qt::Key_Return),
                              this, &MainWindow::prefill));
    keyHint(decode->addAction(tr("&Play / pause"), QKeySequence(Qt::Key_P), this,
                              [this] { setPlaying(!playTimer_.isActive()); }));
    keyHint(decode->addAction(tr("&Reset"), QKeySequence(Qt::CTRL | Qt::Key_R), this,
                              &MainWindow::reset));
    decode->addSeparator();
    keyHint(
        decode->addAction(tr("&Compare without cache"), this, &MainWindow::compareWithoutCache));

    QMenu* inspect = menuBar()->addMenu(tr("&Inspect"));
    auto moveQuery = [this](int delta) {
        if (store_->count() == 0) return;
        store_->pinQuery(std::clamp(store_->queryIndex() + delta, 0, store_->count() - 1));
    };
    keyHint(inspect->addAction(tr("&Earlier token"), QKeySequence(Qt::Key_BracketLeft), this,
                               [moveQuery] { moveQuery(-1); }));
    keyHint(inspect->addAction(tr("&Later token"), QKeySequence(Qt::Key_BracketRight), this,
                               [moveQuery] { moveQuery(+1); }));
    keyHint(inspect->addAction(tr("&Follow the newest token"), QKeySequence(Qt::Key_End), this,
                               [this] { store_->pinQuery(-1); }));
    inspect->addSeparator();
    keyHint(inspect->addAction(tr("&Next head"), QKeySequence(Qt::Key_H), this,
                               [this] { store_->setHead(store_->head() + 1); }));
    keyHint(inspect->addAction(tr("&Previous head"), QKeySequence(Qt::SHIFT | Qt::Key_H), this,
                               [this] { store_->setHead(store_->head() - 1); }));
    keyHint(inspect->addAction(tr("Next la&yer"), QKeySequence(Qt::Key_L), this,
                               [this] { store_->setLayer(store_->layer() + 1); }));
    keyHint(inspect->addAction(tr("Previous l&ayer"), QKeySequence(Qt::SHIFT | Qt::Key_L), this,
                               [this] { store_->setLayer(store_->layer() - 1); }));

    QMenu* view = menuBar()->addMenu(tr("&View"));
    for (int i = 0; i < tabs_->count(); ++i) {
        QAction* a = view->addAction(tabs_->tabText(i).replace("&&", "&"));
        a->setShortcuts(
            {QKeySequence(Qt::CTRL | (Qt::Key_1 + i)), QKeySequence(Qt::ALT | (Qt::Key_1 + i))});
        a->setShortcutVisibleInContextMenu(true);
        connect(a, &QAction::triggered, this, [this, i] {
            tabs_->setCurrentIndex(i);
            tabs_->currentWidget()->setFocus(Qt::ShortcutFocusReason);
        });
    }
    view->addSeparator();
    QAction* side = sideDock_->toggleViewAction();
    side->setText(tr("Side &panel (model and sampling)"));
    side->setShortcut(QKeySequence(Qt::Key_F8));
    view->addAction(side);
    view->addSeparator();
    keyHint(view->addAction(tr("&Larger text"), QKeySequence::ZoomIn, this, [this] {
        setTextZoom(textZoom_ * 1.15);
    }))->setShortcuts({QKeySequence(Qt::CTRL | Qt::Key_Equal), QKeySequence::ZoomIn});
    keyHint(view->addAction(tr("&Smaller text"), QKeySequence::ZoomOut, this,
                            [this] { setTextZoom(textZoom_ / 1.15); }));
    keyHint(view->addAction(tr("&Normal text size"), QKeySequence(Qt::CTRL | Qt::Key_0), this,
                            [this] { setTextZoom(1.0); }));
    view->addSeparator();
    auto* themes = new QActionGroup(this);
    for (const viz::Theme& t : {viz::Theme::dark(), viz::Theme::light()}) {
        QAction* a = view->addAction(t.name == "dark" ? tr("&Dark theme") : tr("L&ight theme"));
        a->setCheckable(true);
        a->setChecked(viz::currentTheme().name == t.name);
        a->setData(t.name);
        themes->addAction(a);
        connect(a, &QAction::triggered, this, [t] { viz::ThemeSettings::instance().setTheme(t); });
    }
    view->addSeparator();
    auto* speeds = new QActionGroup(this);
    for (const auto& [label, ms] : std::initializer_list<std::pair<QString, int>>{
             {tr("Animations &off"), 0},
             {tr("Animations n&ormal"), viz::ThemeSettings::kDefaultAnimationMs},
             {tr("Animations slo&w"), 1000}}) {
        QAction* a = view->addAction(label);
        a->setCheckable(true);
        a->setChecked(viz::animationMs() == ms);
        speeds->addAction(a);
        connect(a, &QAction::triggered, this,
                [ms] { viz::ThemeSettings::instance().setAnimationMs(ms); });
    }
    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&Keys"), QKeySequence::HelpContents, this, [this] {
        QMessageBox::information(
            this, tr("Keys"),
            tr("F10: step one token (from anywhere)\nF9: step back one token\n"
               "Space, →, Page Down: step (when not typing in the prompt)\n"
               "Backspace, ←, Page Up: step back (when not typing)\n"
               "A presentation clicker sends Page Down / Page Up: they step even in the prompt.\n"
               "Ctrl+Return: prefill the prompt · P: play or pause · Ctrl+R: reset\n"
               "[ and ]: inspect the earlier or later token · End: follow the newest\n"
               "H / Shift+H: next or previous head · L / Shift+L: next or previous layer\n"
               "Ctrl+1…5 (or Alt+1…5): the views · F8: the side panel\n"
               "Ctrl+= and Ctrl+-: larger and smaller text · Ctrl+0: normal size\n"
               "Tab moves between controls; a click on a view gives the keys back to stepping."));
    });
}

QString MainWindow::viewName(int tab) {
    static const char* names[] = {"step", "attention", "cache", "memory", "calculator"};
    return tab >= 0 && tab < 5 ? names[tab] : "view";
}

QString MainWindow::exportDir() const {
    if (!exportDir_.isEmpty() && QDir(exportDir_).exists()) return exportDir_;
    const QString pictures = QStandardPaths::writableLocation(QStandardPaths::PicturesLocation);
    return QDir(pictures).exists() ? pictures : QDir::homePath();
}

void MainWindow::rememberExportDir(const QString& path) {
    exportDir_ = QFileInfo(path).absolutePath();
}

// Figures: the current view, or the whole window, as PNG (2×), SVG or PDF, under a name that says
// what and when (kvscope-attention-17.png) in the folder of the last export.
void MainWindow::exportFigure(QWidget* what, const QString& name) {
    const QString suggested =
        QDir(exportDir()).filePath(QString("kvscope-%1-%2.png").arg(name).arg(store_->count()));
    const QString path = QFileDialog::getSaveFileName(
        this, tr("Export the %1").arg(name), suggested,
        tr("PNG image, 2× (*.png);;SVG vector (*.svg);;PDF vector (*.pdf)"));
    if (path.isEmpty()) return;
    rememberExportDir(path);
    const auto format = viz::exportFormatFromName(QFileInfo(path).suffix());
    const QString error = viz::exportWidget(what, format ? path : path + ".png",
                                            format.value_or(viz::ExportFormat::Png), 2.0);
    if (error.isEmpty())
        statusBar()->showMessage(tr("Wrote %1").arg(path), 5000);
    else
        showError(error);
}

void MainWindow::connectController() {
    connect(controller_, &DecodeController::modelLoaded, this, [this](const viz::ModelSummary& s) {
        clearError();
        modelPath_ = s.path;
        store_->setModel(s);
        backendNote_->setText(s.backendNote);
        setWindowTitle(QString("KVScope — %1").arg(QString::fromStdString(s.config.name)));
    });
    connect(controller_, &DecodeController::prefilled, this,
            [this](const std::vector<StepTrace>& t, double ms, const QString& prompt) {
                clearError();
                lastLatencyMs_ = ms;
                decodedPrompt_ = prompt;
                promptTokenCount_ = static_cast<int>(t.size());
                store_->setPrompt(t, ms);
            });
    connect(controller_, &DecodeController::stepped, this, [this](const StepTrace& t) {
        clearError();
        lastLatencyMs_ = t.hostMs;
        store_->append(t);
    });
    connect(
        controller_, &DecodeController::devicesListed, this,
        [this](const QStringList& labels, const QStringList& specs, const QStringList& problems) {
            const QSignalBlocker block(backend_);
            backend_->clear();
            for (int i = 0; i < labels.size(); ++i) {
                backend_->addItem(labels[i], specs[i]);
                if (!problems[i].isEmpty()) {
                    // not usable: shown, greyed out, with the reason
                    auto* model = qobject_cast<QStandardItemModel*>(backend_->model());
                    if (QStandardItem* item = model ? model->item(i) : nullptr)
                        item->setEnabled(false);
                    backend_->setItemData(i, problems[i], Qt::ToolTipRole);
                }
            }
            backend_->setCurrentIndex(std::max(0, backend_->findData(backendSpec_)));
        });
    connect(controller_, &DecodeController::comparedWithoutCache, this,
            [this](const QList<int>& tokens, int promptLength, double prefillMs,
                   const QList<double>& stepMs) {
                clearError();
                latencyChart_->setComparison(tokens, promptLength, prefillMs, stepMs);
            });
    connect(controller_, &DecodeController::compareProgress, this, [this](int done, int total) {
        const bool running = done < total;
        compareButton_->setEnabled(!running);
        compareButton_->setText(
            running ? tr("Comparing without cache… %1 of %2 tokens replayed").arg(done).arg(total)
                    : tr("Compare without cache"));
    });
    connect(controller_, &DecodeController::steppedBack, this,
            [this](int remaining, qulonglong kvBytes) {
                store_->truncate(remaining, static_cast<size_t>(kvBytes));
            });
    connect(controller_, &DecodeController::wasReset, this, [this] {
        decodedPrompt_.clear();
        store_->clear();
    });
    connect(controller_, &DecodeController::failed, this, [this](const QString& m) {
        showError(m);
        setPlaying(false);
        compareButton_->setEnabled(true);
        compareButton_->setText(tr("Compare without cache"));
        updateSummary();  // a failed load leaves the model that is still loaded on show
    });
    connect(controller_, &DecodeController::busyChanged, this, [this](bool busy) {
        if (busy) return;
        pending_ = std::max(0, pending_ - 1);
        if (pending_ == 0) emit idle();
    });
}

QString MainWindow::prompt() const {
    return prompt_->toPlainText();
}
void MainWindow::setPrompt(const QString& text) {
    prompt_->setPlainText(text);
}
QString MainWindow::errorText() const {
    return error_->isVisible() || !error_->isHidden() ? error_->text() : QString();
}

void MainWindow::openModel(const QString& path) {
    if (path.isEmpty()) return;
    setPlaying(false);
    summary_->setText(tr("Loading %1…").arg(path.toHtmlEscaped()));
    request([c = controller_, path] { c->loadModel(path); });
}

void MainWindow::setBackend(const QString& spec) {
    setPlaying(false);
    backendSpec_ = spec;
    const int i = backend_->findData(spec);
    if (i >= 0) backend_->setCurrentIndex(i);
    request([c = controller_, spec] { c->setBackend(spec); });
}

void MainWindow::prefill() {
    request([c = controller_, p = prompt()] { c->prefill(p); });
}

void MainWindow::step() {
    if (pending_ > 2) return;  // a held key must not pile up work
    request([c = controller_, p = prompt()] { c->step(p); });
}

void MainWindow::stepBack() {
    if (pending_ > 2) return;
    request([c = controller_] { c->stepBack(); });
}

void MainWindow::reset() {
    setPlaying(false);
    request([c = controller_] { c->reset(); });
}

void MainWindow::compareWithoutCache() {
    setPlaying(false);
    request([c = controller_] { c->compareWithoutCache(); });
}

void MainWindow::setPlaying(bool playing) {
    if (playing)
        playTimer_.start();
    else
        playTimer_.stop();
    const QSignalBlocker block(playButton_);
    playButton_->setChecked(playing);
    playButton_->setText(playing ? tr("Pause") : tr("Play"));
}

void MainWindow::sendSampler() {
    SamplerParams s;
    const bool sample = samplingMode_->currentIndex() == 1;
    s.temperature = sample ? static_cast<float>(temperature_->value()) : 0.0f;
    s.topK = topK_->value();
    s.topP = static_cast<float>(topP_->value());
    s.seed = static_cast<uint64_t>(seed_->value());
    for (QWidget* w : std::initializer_list<QWidget*>{temperature_, topK_, topP_, seed_})
        w->setEnabled(sample);
    request([c = controller_, s] { c->setSampler(s); });
}

void MainWindow::showError(const QString& message) {
    error_->setText(message);
    error_->show();
    statusBar()->showMessage(message, 8000);
}

void MainWindow::clearError() {
    error_->hide();
}

void MainWindow::updateSummary() {
    if (!store_->hasModel()) {
        summary_->setText(tr("No model is loaded: File › Open model… or the built-in model."));
        return;
    }
    const viz::ModelSummary& s = store_->model();
    const ModelConfig& c = s.config;
    const QString row("<tr><td>%1</td><td align=right><b>%2</b></td></tr>");
    QString html = "<table cellspacing=2>";
    html += row.arg(tr("Name"), QString::fromStdString(c.name).toHtmlEscaped());
    html += row.arg(tr("Architecture"), QString::fromStdString(c.archName));
    html += row.arg(tr("Layers")).arg(c.nLayer);
    html += row.arg(tr("Heads")).arg(c.nHead);
    html += row.arg(tr("KV heads")).arg(c.nHeadKv);
    html += row.arg(tr("Head dim")).arg(c.headDim);
    html += row.arg(tr("Width")).arg(c.nEmbd);
    html += row.arg(tr("Context")).arg(c.nCtx);
    html += row.arg(tr("Vocabulary")).arg(c.nVocab);
    html += row.arg(tr("Parameters"), thousands(s.parameters));
    html += row.arg(tr("Weights"), bytesText(static_cast<double>(s.weightBytes)));
    html += row.arg(tr("KV per token"), thousands(s.kvBytesPerToken) + " B");
    html += row.arg(tr("KV allocated"), bytesText(static_cast<double>(s.cacheAllocatedBytes)));
    html += "</table>";
    html += tr("<p style='color:gray'>KV per token = 2 × %1 layers × %2 KV heads × %3 × 4 B</p>")
                .arg(c.nLayer)
                .arg(c.nHeadKv)
                .arg(c.headDim);
    summary_->setText(html);
    statusDevice_->setText(tr("%1 · %2").arg(s.backend, s.device));
    {
        const QSignalBlocker a(layer_), b(head_);
        layer_->setRange(0, c.nLayer - 1);
        head_->setRange(0, c.nHead - 1);
    }
    updateSelectors();
}

void MainWindow::updateSelectors() {
    const QSignalBlocker a(layer_), b(head_);
    layer_->setValue(store_->layer());
    head_->setValue(store_->head());
    if (!store_->hasModel()) return;
    const ModelConfig& c = store_->config();
    const int g = store_->kvHead();
    const int group = c.nHead / c.nHeadKv;
    if (group == 1) {
        kvHeadNote_->setText(tr("KV head %1 (one K/V head per query head)").arg(g));
    } else {
        QStringList heads;
        for (int h = g * group; h < (g + 1) * group; ++h) heads << QString::number(h);
        kvHeadNote_->setText(tr("KV head %1, shared by query heads %2 (grouped-query attention)")
                                 .arg(g)
                                 .arg(heads.join(", ")));
    }
}

void MainWindow::updateStatus() {
    if (!store_->hasModel()) {
        statusTokens_->setText(tr("No model"));
        return;
    }
    const ModelConfig& c = store_->config();
    statusTokens_->setText(tr("Tokens %1 / %2").arg(store_->count()).arg(c.nCtx));
    statusCache_->setText(
        tr("KV cache %1 of %2")
            .arg(bytesText(static_cast<double>(store_->kvBytes())),
                 bytesText(static_cast<double>(store_->model().cacheAllocatedBytes))));
    statusLatency_->setText(store_->count() == 0 ? QString()
                            : store_->count() == store_->promptLength()
                                ? tr("Prefill %1 ms").arg(lastLatencyMs_, 0, 'f', 2)
                                : tr("Last step %1 ms").arg(lastLatencyMs_, 0, 'f', 2));
}

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
    switch (key->key()) {
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

void MainWindow::loadSettings() {
    QSettings s;
    if (s.contains("prompt")) prompt_->setPlainText(s.value("prompt").toString());
    // No model named on the command line: the last one opened, if it is still there.
    if (modelPath_.isEmpty()) {
        const QString m = s.value("model").toString();
        if (m.startsWith(":") || (!m.isEmpty() && QFile::exists(m))) modelPath_ = m;
    }
    if (!restoreGeometry(s.value("geometry").toByteArray())) {
        // First launch: most of the screen, whatever its size (a 1280 × 720 projector too).
        if (const QScreen* screen = QGuiApplication::primaryScreen()) {
            const QRect avail = screen->availableGeometry();
            resize(avail.width() * 9 / 10, avail.height() * 9 / 10);
        }
    }
    restoreState(s.value("windowState").toByteArray());
    exportDir_ = s.value("exportDir").toString();
    textZoom_ = std::clamp(s.value("textZoom", 1.0).toDouble(), 0.6, 3.0);
    samplingMode_->setCurrentIndex(s.value("sampling/mode", 0).toInt());
    temperature_->setValue(s.value("sampling/temperature", 0.8).toDouble());
    topK_->setValue(s.value("sampling/topK", 40).toInt());
    topP_->setValue(s.value("sampling/topP", 0.95).toDouble());
    seed_->setValue(s.value("sampling/seed", 0).toInt());
    speed_->setValue(s.value("playSpeed", 2.0).toDouble());
    tabs_->setCurrentIndex(s.value("tab", 0).toInt());
    backendSpec_ = s.value("backend", "auto").toString();
    viz::ThemeSettings& theme = viz::ThemeSettings::instance();
    theme.setTheme(s.value("theme", "dark").toString() == "light" ? viz::Theme::light()
                                                                  : viz::Theme::dark());
    theme.setAnimationMs(s.value("animationMs", viz::ThemeSettings::kDefaultAnimationMs).toInt());
}

void MainWindow::saveSettings() {
    QSettings s;
    s.setValue("prompt", prompt());
    s.setValue("model", modelPath_);
    s.setValue("geometry", saveGeometry());
    s.setValue("windowState", saveState());
    s.setValue("sampling/mode", samplingMode_->currentIndex());
    s.setValue("sampling/temperature", temperature_->value());
    s.setValue("sampling/topK", topK_->value());
    s.setValue("sampling/topP", topP_->value());
    s.setValue("sampling/seed", seed_->value());
    s.setValue("playSpeed", speed_->value());
    s.setValue("tab", tabs_->currentIndex());
    s.setValue("backend", backendSpec_);
    s.setValue("theme", viz::currentTheme().name);
    s.setValue("animationMs", viz::animationMs());
    s.setValue("exportDir", exportDir_);
    s.setValue("textZoom", textZoom_);
}

}  // namespace kvscope::app
