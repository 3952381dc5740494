// MainWindow: widgets, keys, settings, and the queued requests to the decoding thread.
#include "main_window.h"

#include <QActionGroup>
#include <QApplication>
#include <QChartView>
#include <QClipboard>
#include <QCloseEvent>
#include <QComboBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
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
#include <QScrollArea>
#include <QScrollBar>
#include <QSettings>
#include <QShortcut>
#include <QSpinBox>
#include <QSplitter>
#include <QStandardItemModel>
#include <QStatusBar>
#include <QTabWidget>
#include <QToolButton>
#include <QVBoxLayout>

#include "all_heads_view.h"
#include "attention_matrix_view.h"
#include "cache_view.h"
#include "calculator_panel.h"
#include "exporter.h"
#include "latency_chart.h"
#include "memory_chart.h"
#include "step_view.h"
#include "theme.h"
#include "token_strip.h"
#include "trace_export.h"

namespace kvscope::app {
namespace {

QString bytesText(double bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        ++u;
    }
    return u == 0 ? QString("%1 B").arg(bytes, 0, 'f', 0)
                  : QString("%1 %2").arg(bytes, 0, 'f', bytes < 10 ? 2 : 1).arg(units[u]);
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

    // 1. prompt and the step controls
    auto* controls = new QHBoxLayout;
    prompt_ = new QPlainTextEdit;
    prompt_->setPlaceholderText(
        tr("Type a prompt, then Prefill, or Step (F10) one token at a time"));
    prompt_->setPlainText("In the beginning God created");
    prompt_->setFixedHeight(prompt_->fontMetrics().lineSpacing() * 3 + 14);
    controls->addWidget(prompt_, 1);
    auto* buttons = new QHBoxLayout;
    prefillButton_ = new QPushButton(tr("Prefill"));
    stepButton_ = new QPushButton(tr("Step ▶"));
    backButton_ = new QPushButton(tr("◀ Step back"));
    playButton_ = new QToolButton;
    playButton_->setText(tr("Play"));
    playButton_->setCheckable(true);
    speed_ = new QDoubleSpinBox;
    speed_->setRange(0.25, 30);
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
    controls->addLayout(buttons);
    outer->addLayout(controls);

    // 2. selection: layer and head
    auto* select = new QHBoxLayout;
    layer_ = new QSpinBox;
    head_ = new QSpinBox;
    kvHeadNote_ = new QLabel;
    select->addWidget(new QLabel(tr("Layer")));
    select->addWidget(layer_);
    select->addWidget(new QLabel(tr("Head")));
    select->addWidget(head_);
    select->addWidget(kvHeadNote_, 1);
    outer->addLayout(select);

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
    tabs_->addTab(new viz::StepView(store_), tr("Step: q · Kᵀ → weights → V"));
    auto* attention = new QSplitter(Qt::Horizontal);
    attention->addWidget(new viz::AttentionMatrixView(store_));
    attention->addWidget(new viz::AllHeadsView(store_));
    attention->setStretchFactor(0, 3);
    attention->setStretchFactor(1, 2);
    tabs_->addTab(attention, tr("Attention matrix"));
    tabs_->addTab(new viz::CacheView(store_), tr("KV cache"));
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
    compareButton_->setToolTip(
        tr("Replay the same prompt and the same tokens with no KV cache (every step recomputes "
           "all tokens) and draw its time per token beside the cached one"));
    connect(compareButton_, &QPushButton::clicked, this, &MainWindow::compareWithoutCache);
    compareRow->addWidget(compareButton_);
    compareRow->addStretch(1);
    chartsLayout->addLayout(compareRow);
    tabs_->addTab(charts, tr("Memory && latency"));
    tabs_->addTab(new viz::CalculatorPanel(store_), tr("Calculator"));
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
    sideScroll->setMinimumWidth(300);
    auto* dock = new QDockWidget(tr("Model and sampling"), this);
    dock->setObjectName("sideDock");
    dock->setWidget(sideScroll);
    dock->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable);
    addDockWidget(Qt::RightDockWidgetArea, dock);

    // 5. status bar
    statusTokens_ = new QLabel;
    statusCache_ = new QLabel;
    statusLatency_ = new QLabel;
    statusDevice_ = new QLabel;
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

    // keys: F10 and F9 from anywhere (as in a debugger), presentation keys while not typing
    auto* stepKey = new QShortcut(QKeySequence(Qt::Key_F10), this, this, &MainWindow::step,
                                  Qt::ApplicationShortcut);
    auto* backKey = new QShortcut(QKeySequence(Qt::Key_F9), this, this, &MainWindow::stepBack,
                                  Qt::ApplicationShortcut);
    Q_UNUSED(stepKey);
    Q_UNUSED(backKey);
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
    // Figures: the current view, or the whole window, as PNG (2×), SVG or PDF.
    auto exportFigure = [this](QWidget* what, const QString& title) {
        const QString path = QFileDialog::getSaveFileName(
            this, title, QString(),
            tr("PNG image, 2× (*.png);;SVG vector (*.svg);;PDF vector (*.pdf)"));
        if (path.isEmpty()) return;
        const auto format = viz::exportFormatFromName(QFileInfo(path).suffix());
        const QString error = viz::exportWidget(what, format ? path : path + ".png",
                                                format.value_or(viz::ExportFormat::Png), 2.0);
        if (error.isEmpty())
            statusBar()->showMessage(tr("Wrote %1").arg(path), 5000);
        else
            showError(error);
    };
    file->addAction(
        tr("&Export view…"), QKeySequence(Qt::CTRL | Qt::Key_E), this,
        [this, exportFigure] { exportFigure(tabs_->currentWidget(), tr("Export the view")); });
    file->addAction(tr("Export &window…"), this,
                    [this, exportFigure] { exportFigure(this, tr("Export the window")); });
    file->addAction(tr("&Copy view"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_C), this, [this] {
        QApplication::clipboard()->setPixmap(tabs_->currentWidget()->grab());
        statusBar()->showMessage(tr("The view is on the clipboard"), 3000);
    });
    file->addAction(tr("Export &trace (JSON or CSV)…"), this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export the trace"), QString(),
                                                          tr("JSON (*.json);;CSV (*.csv)"));
        if (path.isEmpty()) return;
        const QByteArray bytes = path.endsWith(".csv", Qt::CaseInsensitive)
                                     ? viz::traceCsv(*store_, store_->layer(), store_->head())
                                     : viz::traceJson(*store_, store_->layer(), store_->head());
        QSaveFile f(path);
        if (!f.open(QIODevice::WriteOnly) || f.write(bytes) != bytes.size() || !f.commit())
            showError(tr("Cannot write '%1': %2").arg(path, f.errorString()));
        else
            statusBar()->showMessage(tr("Wrote %1").arg(path), 5000);
    });
    file->addSeparator();
    file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);
    QMenu* decode = menuBar()->addMenu(tr("&Decode"));
    decode->addAction(tr("&Prefill"), this, &MainWindow::prefill);
    decode->addAction(tr("&Step"), this, &MainWindow::step)->setShortcutVisibleInContextMenu(true);
    decode->addAction(tr("Step &back"), this, &MainWindow::stepBack);
    decode->addAction(tr("&Reset"), this, &MainWindow::reset);
    QMenu* view = menuBar()->addMenu(tr("&View"));
    auto* themes = new QActionGroup(this);
    for (const viz::Theme& t : {viz::Theme::dark(), viz::Theme::light()}) {
        QAction* a = view->addAction(t.name == "dark" ? tr("&Dark theme") : tr("&Light theme"));
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
             {tr("Animations &normal"), viz::ThemeSettings::kDefaultAnimationMs},
             {tr("Animations &slow"), 1000}}) {
        QAction* a = view->addAction(label);
        a->setCheckable(true);
        a->setChecked(viz::animationMs() == ms);
        speeds->addAction(a);
        connect(a, &QAction::triggered, this,
                [ms] { viz::ThemeSettings::instance().setAnimationMs(ms); });
    }
    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&Keys"), this, [this] {
        QMessageBox::information(this, tr("Keys"),
                                 tr("F10: step one token (from anywhere)\nF9: step back one token\n"
                                    "Space, →, Page Down: step (when not typing in the prompt)\n"
                                    "Backspace, ←, Page Up: step back (when not typing)\n"
                                    "A presentation clicker sends Page Down / Page Up."));
    });
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
            [this](const std::vector<StepTrace>& t, double ms) {
                clearError();
                lastLatencyMs_ = ms;
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
    connect(controller_, &DecodeController::steppedBack, this,
            [this](int remaining) { store_->truncate(remaining); });
    connect(controller_, &DecodeController::wasReset, this, [this] { store_->clear(); });
    connect(controller_, &DecodeController::failed, this, [this](const QString& m) {
        showError(m);
        setPlaying(false);
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

bool MainWindow::eventFilter(QObject* watched, QEvent* event) {
    if (event->type() != QEvent::KeyPress || !isActiveWindow())
        return QMainWindow::eventFilter(watched, event);
    auto* key = static_cast<QKeyEvent*>(event);
    // Keys belong to whatever takes text input; elsewhere they drive the decoding.
    QWidget* focus = QApplication::focusWidget();
    const bool typing = qobject_cast<QPlainTextEdit*>(focus) || qobject_cast<QLineEdit*>(focus) ||
                        qobject_cast<QAbstractSpinBox*>(focus) || qobject_cast<QComboBox*>(focus);
    if (typing || key->modifiers() & (Qt::ControlModifier | Qt::AltModifier))
        return QMainWindow::eventFilter(watched, event);
    switch (key->key()) {
        case Qt::Key_Space:
        case Qt::Key_Right:
        case Qt::Key_PageDown:
            step();
            return true;
        case Qt::Key_Backspace:
        case Qt::Key_Left:
        case Qt::Key_PageUp:
            stepBack();
            return true;
        default:
            return QMainWindow::eventFilter(watched, event);
    }
}

void MainWindow::closeEvent(QCloseEvent* event) {
    if (restoreSettings_) saveSettings();
    QMainWindow::closeEvent(event);
}

void MainWindow::loadSettings() {
    QSettings s;
    if (s.contains("prompt")) prompt_->setPlainText(s.value("prompt").toString());
    // No model named on the command line: the last one opened, if it is still there.
    if (modelPath_.isEmpty()) {
        const QString m = s.value("model").toString();
        if (m.startsWith(":") || (!m.isEmpty() && QFile::exists(m))) modelPath_ = m;
    }
    restoreGeometry(s.value("geometry").toByteArray());
    restoreState(s.value("windowState").toByteArray());
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
}

}  // namespace kvscope::app
