// MainWindow: construction of the widgets, the controller's signals, the requests it sends, and
// the status bar. Menus and file actions: window_menus.cpp; keys, focus and text size:
// window_input.cpp; the side panel and settings: window_panel.cpp.
#include "gui/main_window.h"

#include <QApplication>
#include <QChartView>
#include <QCheckBox>
#include <QComboBox>
#include <QDeadlineTimer>
#include <QDoubleSpinBox>
#include <QFrame>
#include <QHBoxLayout>
#include <QLabel>
#include <QLocale>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRadioButton>
#include <QScrollArea>
#include <QScrollBar>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QSplitter>
#include <QStackedWidget>
#include <QStandardItemModel>
#include <QStatusBar>
#include <QTabWidget>
#include <QToolButton>
#include <QVBoxLayout>
#include <atomic>

#include "charts/drift_chart.h"
#include "charts/latency_chart.h"
#include "charts/memory_chart.h"
#include "common/labels.h"
#include "gui/window_helpers.h"
#include "views/all_heads_view.h"
#include "views/attention_matrix_view.h"
#include "views/block_table_view.h"
#include "views/cache_view.h"
#include "views/calculator_panel.h"
#include "views/logit_lens_panel.h"
#include "views/next_token_view.h"
#include "views/sharing_view.h"
#include "views/step_view.h"
#include "views/token_strip.h"

namespace kvscope::app {

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

MainWindow::MainWindow(const QString& modelPath, bool restoreSettings, QWidget* parent)
    : QMainWindow(parent),
      store_(new viz::TraceStore(this)),
      worker_(new QThread),
      controller_(new DecodeController),
      restoreSettings_(restoreSettings),
      modelPath_(modelPath) {
    setWindowTitle("KVScope");
    controller_->moveToThread(worker_);
    connect(worker_, &QThread::finished, controller_, &QObject::deleteLater);
    worker_->start();
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

namespace {
std::atomic<int> abandonedWorkers{0};
}  // namespace

int MainWindow::workersStillRunning() {
    return abandonedWorkers.load();
}

MainWindow::~MainWindow() {
    // Closing never waits for long work: a load, a tuning or the replay without the cache stops
    // at its next check, and requests still queued are dropped with the worker's event loop.
    playTimer_.stop();
    controller_->requestStop();
    worker_->quit();
    if (worker_->wait(QDeadlineTimer(kCloseWaitMs))) {
        delete worker_;
        return;
    }
    // The worker is inside a call that nothing can interrupt (a driver compiling kernels): the
    // window goes now, and the worker finishes that call on its own, then deletes the
    // controller (connected above) and its thread. main() exits without waiting for it.
    abandonedWorkers.fetch_add(1);
    QThread* worker = worker_;
    connect(
        worker, &QThread::finished, worker, [worker] { abandonedWorkers.fetch_sub(1); },
        Qt::DirectConnection);
    connect(worker, &QThread::finished, worker, &QObject::deleteLater);
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
    // speculative decoding: the round on show and what the next Step does, in one line
    statusSpeculative_ = new QLabel;
    statusSpeculative_->setObjectName("speculativeNote");
    statusSpeculative_->setWordWrap(true);
    statusSpeculative_->setStyleSheet("QLabel { font-weight: bold; }");
    statusSpeculative_->hide();
    promptColumn->addWidget(statusSpeculative_);
    // scene mode: the scene's caption, large enough for the back row
    sceneCaption_ = new QLabel;
    sceneCaption_->setObjectName("sceneCaption");
    sceneCaption_->setWordWrap(true);
    sceneCaption_->setStyleSheet(
        "QLabel { font-weight: bold; font-size: 14pt; color: palette(highlight); }");
    sceneCaption_->hide();
    promptColumn->addWidget(sceneCaption_);
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
    speed_->setAccessibleName(tr("Play speed"));
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
    strip->setObjectName("tokenStrip");
    strip->setAccessibleName(tr("Tokens"));
    strip->setAccessibleDescription(
        tr("The prompt's and the generated tokens; click one to inspect its query"));
    strip_ = strip;
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
    // "Go to token" on the wrapping strip: scroll its chip into view.
    connect(strip, &viz::TokenStrip::chipWanted, stripScroll, [stripScroll](const QRect& r) {
        stripScroll->ensureVisible(r.center().x(), r.center().y(), 0, r.height());
    });
    tabs_ = new QTabWidget;
    tabs_->setObjectName("views");
    tabs_->setAccessibleName(tr("Views"));
    tabs_->addTab(focusPage(new viz::StepView(store_)), tr("Step: q · Kᵀ → weights → V"));
    auto* attention = new QSplitter(Qt::Horizontal);
    attention->addWidget(new viz::AttentionMatrixView(store_));
    attention->addWidget(new viz::AllHeadsView(store_));
    attention->setStretchFactor(0, 3);
    attention->setStretchFactor(1, 2);
    tabs_->addTab(focusPage(attention), tr("Attention matrix"));
    auto* cachePage = new QWidget;
    auto* cacheLayout = new QVBoxLayout(cachePage);
    cacheLayout->setContentsMargins(0, 0, 0, 0);
    auto* cacheView = new viz::CacheView(store_);
    cacheLayout->addWidget(cacheView, 1);
    auto* showError =
        new QCheckBox(tr("Show the storage error (stored − exact) of a K/V type "
                         "below f32"));
    showError->setObjectName("showKvError");
    showError->setToolTip(
        tr("Each slot shows how far the numbers the cache stores (f16, q8_0 "
           "or q4_0) are from the exact ones, as a heat map"));
    connect(showError, &QCheckBox::toggled, cacheView, &viz::CacheView::setShowError);
    const auto enableError = [this, showError] {
        showError->setEnabled(store_->hasModel() && store_->model().cache.type != KvType::F32);
    };
    connect(store_, &viz::TraceStore::modelChanged, showError, enableError);
    enableError();
    cacheLayout->addWidget(showError);
    blockTables_ = new viz::BlockTableView;
    cacheLayout->addWidget(blockTables_);
    tabs_->addTab(focusPage(cachePage), tr("KV cache"));
    auto* charts = new QWidget;
    auto* chartsLayout = new QVBoxLayout(charts);
    auto* chartsSplit = new QSplitter(Qt::Horizontal);
    memoryChart_ = new viz::MemoryChart(store_);
    latencyChart_ = new viz::LatencyChart(store_);
    // each chart above its caption (the numbers behind the lines, in words)
    QWidget* latencyBox = nullptr;
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
        if (chart == memoryChart_) {
            chartsSplit->addWidget(box);
            caption->setText(memoryChart_->caption());
            connect(memoryChart_, &viz::MemoryChart::captionChanged, caption, &QLabel::setText);
        } else {
            latencyBox = box;
            caption->setText(latencyChart_->caption());
            connect(latencyChart_, &viz::LatencyChart::captionChanged, caption, &QLabel::setText);
        }
    }
    // The cache lab's drift from the full cache, while a lossy policy gives it figures, shares
    // the right-hand place with the time per token: a switch above picks one. (Three charts side
    // by side left each too narrow at 1280 x 720: legends cut to their markers, the axis title
    // cut.) The switch turns to the drift when a policy first gives figures, back when it goes.
    driftChart_ = new viz::DriftChart(store_);
    driftChart_->setObjectName("driftChart");
    for (QChartView* chart :
         std::initializer_list<QChartView*>{memoryChart_, latencyChart_, driftChart_})
        chart->setMinimumWidth(280);
    auto* driftBox = new QWidget;
    auto* driftLayout = new QVBoxLayout(driftBox);
    driftLayout->setContentsMargins(0, 0, 0, 0);
    driftLayout->addWidget(driftChart_, 1);
    auto* driftCaption = new QLabel(driftChart_->caption());
    driftCaption->setWordWrap(true);
    driftCaption->setTextInteractionFlags(Qt::TextSelectableByMouse);
    driftLayout->addWidget(driftCaption);
    auto* right = new QWidget;
    auto* rightLayout = new QVBoxLayout(right);
    rightLayout->setContentsMargins(0, 0, 0, 0);
    auto* chartSwitch = new QWidget;
    chartSwitch->setObjectName("chartSwitch");
    auto* switchLayout = new QHBoxLayout(chartSwitch);
    switchLayout->setContentsMargins(0, 0, 0, 0);
    auto* showLatency = showLatency_ = new QRadioButton(tr("Time per token"));
    showLatency->setObjectName("showLatency");
    auto* showDrift = new QRadioButton(tr("Drift from the full cache"));
    showDrift->setObjectName("showDrift");
    showLatency->setChecked(true);
    switchLayout->addWidget(showLatency);
    switchLayout->addWidget(showDrift);
    switchLayout->addStretch(1);
    chartSwitch->setHidden(true);
    auto* rightStack = new QStackedWidget;
    rightStack->addWidget(latencyBox);
    rightStack->addWidget(driftBox);
    connect(showDrift, &QRadioButton::toggled, rightStack,
            [rightStack](bool on) { rightStack->setCurrentIndex(on ? 1 : 0); });
    rightLayout->addWidget(chartSwitch);
    rightLayout->addWidget(rightStack, 1);
    chartsSplit->addWidget(right);
    // the memory chart's legend has up to six entries, the others' two or three
    chartsSplit->setStretchFactor(0, 7);
    chartsSplit->setStretchFactor(1, 6);
    connect(driftChart_, &viz::DriftChart::captionChanged, this,
            [this, chartSwitch, showLatency, showDrift, driftCaption](const QString& text) {
                driftCaption->setText(text);
                const bool figures = driftChart_->measured() > 0;
                if (figures == !chartSwitch->isHidden()) return;
                chartSwitch->setHidden(!figures);
                (figures ? showDrift : showLatency)->setChecked(true);
            });
    chartsLayout->addWidget(chartsSplit, 1);
    auto* compareRow = new QHBoxLayout;
    compareButton_ = new QPushButton(tr("Compare without cache"));
    compareButton_->setObjectName("compare");
    compareButton_->setToolTip(
        tr("Replay the same prompt and the same tokens with no KV cache (every step recomputes "
           "all tokens) and draw its time per token beside the cached one"));
    connect(compareButton_, &QPushButton::clicked, this, [this] {
        if (comparing_)
            controller_->requestStop();  // "Stop comparing": thread-safe, not queued
        else
            compareWithoutCache();
    });
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
    auto* nextToken = new viz::NextTokenView(store_);
    // The logit lens needs the weights: the panel asks, the worker computes, the store keeps it.
    connect(nextToken->lensPanel(), &viz::LogitLensPanel::lensWanted, this, [this](int index) {
        if (index < 1 || index >= store_->count()) return;
        const StepTrace& from = store_->trace(index - 1);
        request([c = controller_, index, position = from.position, resid = from.resid,
                 target = store_->trace(index).token] {
            c->computeLens(index, position, resid, target);
        });
    });
    tabs_->addTab(focusPage(nextToken), tr("Next token"));
    tabs_->addTab(focusPage(new viz::SharingView(store_)), tr("K/V sharing"));
    addAnnotationOverlays();
    // What each view shows, for the tab's tooltip and for screen readers (the page's accessible
    // name and description; the page takes the focus, so they are announced on Tab).
    const QString about[] = {
        tr("One step of one head: the query q times every cached key (the scores), their softmax "
           "(the weights) and the weighted sum of the cached values (the output)"),
        tr("Every query's attention weights over the keys before it, for the chosen layer and "
           "head, beside every head of every layer at a glance"),
        tr("The KV cache itself: each layer's K and V blocks, one slice per token, the bytes "
           "used and allocated, and the block tables"),
        tr("Cache memory against tokens (measured and the formula) and the time of each step, "
           "with the cache and without it"),
        tr("The KV cache calculator: bytes per token and totals for real model shapes and GPUs"),
        tr("Where the next token comes from: the probabilities of the top candidates, and the "
           "logit lens of each layer"),
        tr("Grouped-query attention: which query heads share each K/V head, and the bytes that "
           "saves")};
    for (int i = 0; i < tabs_->count() && i < 7; ++i) {
        tabs_->setTabToolTip(i, about[i]);
        QWidget* page = tabs_->widget(i);
        page->setAccessibleName(tabs_->tabText(i).replace("&&", "&"));
        page->setAccessibleDescription(about[i]);
    }
    auto* split = new QSplitter(Qt::Vertical);
    split->addWidget(stripScroll);
    split->addWidget(tabs_);
    split->setStretchFactor(1, 1);
    outer->addWidget(split, 1);
    setCentralWidget(central);

    buildSidePanel();

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
    const auto sendCache = [this] { setCacheOptions(context_->value(), panelCacheOptions()); };
    connect(context_, &QSpinBox::editingFinished, this, sendCache);
    connect(kvType_, &QComboBox::activated, this, sendCache);
    connect(policy_, &QComboBox::activated, this, sendCache);
    for (QSpinBox* b : {window_, sinks_, heavy_, block_})
        connect(b, &QSpinBox::editingFinished, this, sendCache);
    showCacheOptions(KvCacheOptions());
    connect(parseSpecial_, &QCheckBox::toggled, this,
            [this](bool on) { request([c = controller_, on] { c->setParseSpecial(on); }); });
    connect(layer_, &QSpinBox::valueChanged, store_, &viz::TraceStore::setLayer);
    connect(head_, &QSpinBox::valueChanged, store_, &viz::TraceStore::setHead);
    connect(store_, &viz::TraceStore::selectionChanged, this, &MainWindow::updateSelectors);
    connect(store_, &viz::TraceStore::modelChanged, this, &MainWindow::updateSummary);
    for (auto signal : {&viz::TraceStore::tokensReset, &viz::TraceStore::selectionChanged})
        connect(store_, signal, this, &MainWindow::updateStatus);
    connect(store_, &viz::TraceStore::tokenAppended, this, &MainWindow::updateStatus);
    connect(store_, &viz::TraceStore::roundChanged, this, &MainWindow::updateSpeculativeNote);
    connect(store_, &viz::TraceStore::truncated, this, &MainWindow::updateSpeculativeNote);
    connect(store_, &viz::TraceStore::tokensReset, this, &MainWindow::updateSpeculativeNote);
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

void MainWindow::connectController() {
    connect(controller_, &DecodeController::modelLoaded, this, [this](const viz::ModelSummary& s) {
        clearError();
        modelPath_ = s.path;
        store_->setModel(s);
        showCacheOptions(s.cache);
        backendNote_->setText(s.backendNote);
        setWindowTitle(QString("KVScope — %1").arg(QString::fromStdString(s.config.name)));
    });
    connect(controller_, &DecodeController::sessionOpened, this,
            [this](const QString& spec, int context) {
                backendSpec_ = spec;
                if (const int i = backend_->findData(spec); i >= 0) backend_->setCurrentIndex(i);
                const QSignalBlocker block(context_);
                context_->setValue(context);
            });
    connect(controller_, &DecodeController::warned, this,
            [this](const QString& m) { showError(m); });
    connect(controller_, &DecodeController::prefilled, this,
            [this](const std::vector<StepTrace>& t, double ms, const QString& prompt) {
                clearError();
                lastLatencyMs_ = ms;
                decodedPrompt_ = prompt;
                promptTokenCount_ = static_cast<int>(t.size());
                store_->setPrompt(t, ms);
            });
    connect(controller_, &DecodeController::speculated, this,
            [this](const viz::SpeculativeRound& r) {
                clearError();
                roundAsked_ = false;
                lastLatencyMs_ = r.hostMs;
                store_->finishRound();  // a round still open ends as it would have
                try {
                    store_->beginRound(r);
                } catch (const std::exception& e) {  // never expected: rounds come one at a time
                    showError(tr("Speculative step: the round does not follow the tokens on "
                                 "show (%1); Reset starts again")
                                  .arg(QString::fromUtf8(e.what())));
                }
            });
    connect(controller_, &DecodeController::speculateFailed, this, [this] { roundAsked_ = false; });
    connect(controller_, &DecodeController::drafterChanged, this,
            [this](const QString& spec, int draftTokens) {
                if (!speculativeOn()) return;  // switched off meanwhile
                speculativeSpec_ = spec;
                const QSignalBlocker a(speculative_), b(draftTokens_);
                speculative_->setCurrentIndex(spec == "lookup" ? 1 : 2);
                draftTokens_->setValue(draftTokens);
            });
    connect(controller_, &DecodeController::stepped, this, [this](const StepTrace& t) {
        clearError();
        lastLatencyMs_ = t.hostMs;
        try {
            store_->append(t);
        } catch (const std::exception& e) {  // never expected: results arrive in order
            showError(tr("Step: %1; Reset starts again").arg(QString::fromUtf8(e.what())));
        }
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
                showLatency_->setChecked(true);  // where the comparison is drawn
            });
    connect(controller_, &DecodeController::compareProgress, this, [this](int done, int total) {
        comparing_ = done < total;
        compareButton_->setText(
            comparing_ ? tr("Stop comparing (%1 of %2 tokens replayed)").arg(done).arg(total)
                       : tr("Compare without cache"));
    });
    connect(controller_, &DecodeController::compareStopped, this, [this] {
        comparing_ = false;
        compareButton_->setText(tr("Compare without cache"));
        statusBar()->showMessage(tr("Comparison stopped: nothing was drawn"), 5000);
    });
    connect(controller_, &DecodeController::headMatrixRebuilt, this,
            [this](int layer, int head, int t, const std::vector<float>& full) {
                store_->setHeadMatrix(layer, head, t, full);
            });
    // Rows the traces let go (the attention budget) are rebuilt from the stored queries.
    connect(store_, &viz::TraceStore::headMatrixWanted, this, [this](int layer, int head) {
        const int t = store_->count(), hd = store_->config().headDim;
        std::vector<float> queries(static_cast<size_t>(t) * hd);
        for (int i = 0; i < t; ++i) {
            if (!store_->trace(i).hasTensors()) return;  // decoded without traces
            const float* q = store_->trace(i).query(layer, head);
            std::copy(q, q + hd, queries.begin() + static_cast<std::ptrdiff_t>(i) * hd);
        }
        request([c = controller_, layer, head, queries = std::move(queries)] {
            c->rebuildHeadMatrix(layer, head, queries);
        });
    });
    connect(
        controller_, &DecodeController::blocksChanged, this,
        [this](const std::vector<viz::BlockTable>& tables, int blockTokens, qulonglong blockBytes) {
            blockTables_->setTables(tables, blockTokens, blockBytes);
        });
    connect(controller_, &DecodeController::lensComputed, this,
            [this](int index, const LogitLens& lens) { store_->setLens(index, lens); });
    connect(
        controller_, &DecodeController::steppedBack, this,
        [this](int remaining, qulonglong kvBytes, qulonglong kvAllocated) {
            try {
                store_->truncate(remaining, static_cast<size_t>(kvBytes),
                                 static_cast<size_t>(kvAllocated));
            } catch (const std::exception& e) {  // never expected: results arrive in order
                showError(tr("Step back: %1; Reset starts again").arg(QString::fromUtf8(e.what())));
            }
        });
    connect(controller_, &DecodeController::wasReset, this, [this] {
        decodedPrompt_.clear();
        store_->clear();
    });
    connect(controller_, &DecodeController::failed, this, [this](const QString& m) {
        viewWhenIdle_.reset();  // a session or scene that failed shows nothing of its own
        expectedTokens_.clear();
        showError(m);
        setPlaying(false);
        comparing_ = false;
        compareButton_->setText(tr("Compare without cache"));
        updateSummary();  // a failed load leaves the model that is still loaded on show
    });
    connect(controller_, &DecodeController::busyChanged, this, [this](bool busy) {
        if (busy) return;
        pending_ = std::max(0, pending_ - 1);
        if (pending_ > 0) return;
        if (viewWhenIdle_) {  // a session opened or a scene reached: its view, now
            const Scene view = *viewWhenIdle_;
            viewWhenIdle_.reset();
            applyView(view);
        }
        emit idle();
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

void MainWindow::openModel(const QString& named) {
    if (named.isEmpty()) return;
    QString path;
    try {
        path = resolveBuiltin(named);  // builtin:NAME is stored as its resource path
    } catch (const std::exception& e) {
        showError(QString::fromUtf8(e.what()));
        return;
    }
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

KvCacheOptions MainWindow::panelCacheOptions() const {
    KvCacheOptions o(
        parseKvType(kvType_->currentData().toString().toStdString()).value_or(KvType::F32),
        block_->value());
    const QString policy = policy_->currentData().toString();
    if (policy != "none") o.eviction.window = window_->value();
    if (policy == "sinks") o.eviction.sinks = sinks_->value();
    if (policy == "heavy") o.eviction.heavy = heavy_->value();
    return o;
}

void MainWindow::showCacheOptions(const KvCacheOptions& cache) {
    const QSignalBlocker a(kvType_), b(policy_), c(window_), d(sinks_), e(heavy_), f(block_);
    kvType_->setCurrentIndex(kvType_->findData(QString::fromStdString(kvTypeName(cache.type))));
    const EvictionPolicy& ev = cache.eviction;
    const QString policy = !ev.evicts()   ? "none"
                           : ev.heavy > 0 ? "heavy"
                           : ev.sinks > 0 ? "sinks"
                                          : "window";
    policy_->setCurrentIndex(policy_->findData(policy));
    if (ev.evicts()) window_->setValue(ev.window);
    if (ev.sinks > 0) sinks_->setValue(ev.sinks);
    if (ev.heavy > 0) heavy_->setValue(ev.heavy);
    block_->setValue(cache.blockTokens);
    window_->setEnabled(policy != "none");
    sinks_->setEnabled(policy == "sinks");
    heavy_->setEnabled(policy == "heavy");
}

void MainWindow::setCacheOptions(int context, const KvCacheOptions& cache) {
    setPlaying(false);
    {
        const QSignalBlocker a(context_);
        context_->setValue(context);
    }
    showCacheOptions(cache);
    request([c = controller_, context, cache] { c->setCacheOptions(context, cache); });
}

void MainWindow::prefill() {
    request([c = controller_, p = prompt()] { c->prefill(p); });
}

void MainWindow::step() {
    if (speculativeOn()) return speculativeStep();
    if (pending_ > 2) return;  // a held key must not pile up work
    request([c = controller_, p = prompt()] { c->step(p); });
}

void MainWindow::setSpeculative(const QString& spec, int draftTokens) {
    speculativeSpec_ = spec;
    {
        const QSignalBlocker a(speculative_), b(draftTokens_);
        speculative_->setCurrentIndex(spec.isEmpty() ? 0 : spec == "lookup" ? 1 : 2);
        draftTokens_->setValue(draftTokens);
    }
    if (!spec.isEmpty())
        request([c = controller_, spec, draftTokens] { c->setDrafter(spec, draftTokens); });
    updateSpeculativeNote();
}

void MainWindow::speculativeStep() {
    if (roundAsked_) return;  // the round asked for is on its way: one at a time
    if (store_->advanceRound()) return;
    roundAsked_ = true;
    request([c = controller_, p = prompt()] { c->speculate(p); });
}

void MainWindow::updateSpeculativeNote() {
    QString text;
    if (const viz::SpeculativeRound* r = store_->round()) {
        const int rejected = r->drafted() - r->accepted;
        switch (store_->roundPhase()) {
            case viz::TraceStore::RoundPhase::Drafted:
                text = r->drafted() == 0
                           ? tr("No draft: nothing earlier matches the last tokens; the pass runs "
                                "the decided token alone. Step: verify")
                           : tr("Drafted %n token(s) by %1 in %2 ms. Step: verify them in one "
                                "pass",
                                nullptr, r->drafted())
                                 .arg(r->drafter)
                                 .arg(r->draftMs, 0, 'f', 2);
                break;
            case viz::TraceStore::RoundPhase::Verified:
                text = r->drafted() == 0
                           ? tr("One pass of the decided token alone in %1 ms. Step: keep it")
                                 .arg(r->verifyMs, 0, 'f', 2)
                           : tr("One pass of %n token(s) in %1 ms: ✓ %2 accepted, ✗ %3 "
                                "rejected. Step: keep the accepted, roll back the rejected",
                                nullptr, static_cast<int>(r->verified.size()))
                                 .arg(r->verifyMs, 0, 'f', 2)
                                 .arg(r->accepted)
                                 .arg(rejected);
                break;
            default:
                text = tr("Kept %n token(s) from one pass; the model's next: “%1”. Step: the "
                          "next round",
                          nullptr, r->kept())
                           .arg(viz::tokenLabel(r->nextText));
                break;
        }
    }
    long long drafted = 0, accepted = 0;
    for (const viz::TraceStore::RoundRecord& r : store_->rounds())
        drafted += r.drafted, accepted += r.accepted;
    if (!store_->rounds().empty()) {
        const QString totals = tr("Rounds %1 · drafted %2 · accepted %3 (%4%)")
                                   .arg(store_->rounds().size())
                                   .arg(drafted)
                                   .arg(accepted)
                                   .arg(drafted > 0 ? 100.0 * static_cast<double>(accepted) /
                                                          static_cast<double>(drafted)
                                                    : 0.0,
                                        0, 'f', 0);
        text = text.isEmpty() ? totals : text + "  ·  " + totals;
    } else if (text.isEmpty() && speculativeOn()) {
        text = tr("Speculative decoding on: Step drafts, verifies and keeps");
    }
    statusSpeculative_->setText(text);
    statusSpeculative_->setVisible(!text.isEmpty());
}

void MainWindow::stepBack() {
    if (pending_ > 2) return;
    request([c = controller_] { c->stepBack(); });
}

void MainWindow::fork() {
    setPlaying(false);
    request([c = controller_] { c->fork(); });
}

void MainWindow::stepFork() {
    request([c = controller_] { c->stepFork(); });
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
    statusCache_->setText(tr("KV cache %1 used, %2 allocated")
                              .arg(bytesText(static_cast<double>(store_->kvBytes())),
                                   bytesText(static_cast<double>(store_->kvAllocatedBytes()))));
    statusLatency_->setText(store_->count() == 0 ? QString()
                            : store_->count() == store_->promptLength()
                                ? tr("Prefill %1 ms").arg(lastLatencyMs_, 0, 'f', 2)
                                : tr("Last step %1 ms").arg(lastLatencyMs_, 0, 'f', 2));
}

}  // namespace kvscope::app
