// MainWindow's side panel (the model, its backend, the sampling) and the settings it keeps.
#include "gui/main_window.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileDialog>
#include <QFormLayout>
#include <QGroupBox>
#include <QGuiApplication>
#include <QLabel>
#include <QPlainTextEdit>
#include <QScreen>
#include <QScrollArea>
#include <QSettings>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QStatusBar>
#include <QVBoxLayout>

#include "common/theme.h"
#include "gui/window_helpers.h"

namespace kvscope::app {

void MainWindow::buildSidePanel() {
    // 4. side panel: model, backend, sampling
    auto* side = new QWidget;
    auto* sideLayout = new QVBoxLayout(side);
    // never squeezed below what its rows need: past that the panel scrolls (a 720-line screen)
    sideLayout->setSizeConstraint(QLayout::SetMinimumSize);
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
    backend_->addItem(tr("CPU"), "cpu");
    backend_->setToolTip(tr("Where the model runs. The OpenCL devices appear once listed."));
    backendNote_ = new QLabel;
    backendNote_->setWordWrap(true);
    backendNote_->setStyleSheet("color: gray");
    modelLayout->addWidget(new QLabel(tr("Backend")));
    modelLayout->addWidget(backend_);
    modelLayout->addWidget(backendNote_);
    auto* cacheForm = new QFormLayout;
    context_ = new QSpinBox;
    context_->setObjectName("context");
    context_->setRange(0, 1 << 24);
    context_->setSpecialValueText(tr("model's (≤ 4,096)"));
    context_->setSuffix(tr(" tokens"));
    context_->setToolTip(
        tr("The context to run with: the KV cache grows in blocks up to it. "
           "At most what the model was trained for."));
    context_->setAccessibleName(tr("Context"));
    kvType_ = new QComboBox;
    kvType_->setObjectName("kvType");
    kvType_->addItem(tr("f32 (exact)"), "f32");
    kvType_->addItem(tr("f16 (half the bytes)"), "f16");
    kvType_->addItem(tr("q8_0 (34 bytes per 32)"), "q8_0");
    kvType_->addItem(tr("q4_0 (18 bytes per 32)"), "q4_0");
    kvType_->setToolTip(
        tr("The KV cache's element type: q8_0 and q4_0 are llama.cpp's blocks of 32 values, as "
           "the weights' types."));
    kvType_->setAccessibleName(tr("KV cache type"));
    policy_ = new QComboBox;
    policy_->setObjectName("cachePolicy");
    policy_->addItem(tr("Keep everything"), "none");
    policy_->addItem(tr("Sliding window"), "window");
    policy_->addItem(tr("Sinks + window"), "sinks");
    policy_->addItem(tr("Heavy hitters + window"), "heavy");
    policy_->setToolTip(
        tr("Which earlier tokens' K and V the cache keeps. A window keeps the last W; sinks also "
           "the first S (StreamingLLM); heavy hitters also the H tokens with the most attention "
           "so far (H2O). The rest leave the cache. The same tokens run again under the policy, "
           "and each step is compared with the full cache."));
    policy_->setAccessibleName(tr("Cache policy"));
    auto spin = [](const char* name, int lo, int value, const QString& tip) {
        auto* b = new QSpinBox;
        b->setObjectName(name);
        b->setRange(lo, 1 << 20);
        b->setValue(value);
        b->setSuffix(QObject::tr(" tokens"));
        b->setToolTip(tip);
        b->setAccessibleName(tip);
        return b;
    };
    window_ = spin("cacheWindow", 1, 32, tr("Window: the last W tokens a query sees"));
    sinks_ = spin("cacheSinks", 0, 4, tr("Sinks: the first S tokens, always kept"));
    heavy_ = spin("cacheHeavy", 0, 8, tr("Heavy hitters: the H most attended tokens kept"));
    block_ = spin("cacheBlock", 1, 256, tr("Block: the cache grows in blocks of this many tokens"));
    cacheForm->addRow(tr("Context"), context_);
    cacheForm->addRow(tr("KV cache"), kvType_);
    cacheForm->addRow(tr("Cache policy"), policy_);
    cacheForm->addRow(tr("Window"), window_);
    cacheForm->addRow(tr("Sinks"), sinks_);
    cacheForm->addRow(tr("Heavy"), heavy_);
    cacheForm->addRow(tr("Block"), block_);
    modelLayout->addLayout(cacheForm);
    parseSpecial_ = new QCheckBox(tr("Special tokens in the prompt"));
    parseSpecial_->setObjectName("parseSpecial");
    parseSpecial_->setChecked(true);
    parseSpecial_->setToolTip(
        tr("On: text such as <|begin_of_text|> or <start_of_turn> in the prompt is that one "
           "special token, as llama.cpp reads it. Off: it is plain text, spelled out in "
           "ordinary tokens."));
    parseSpecial_->setAccessibleName(tr("Special tokens in the prompt"));
    modelLayout->addWidget(parseSpecial_);
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
    samplingMode_->setToolTip(tr("Greedy takes the most likely token; Sample draws one"));
    temperature_->setToolTip(tr("Above 1 flattens the distribution, below 1 sharpens it"));
    topK_->setToolTip(tr("Draw only among the K most likely tokens"));
    topP_->setToolTip(tr("Draw only among the most likely tokens that make up probability P"));
    seed_->setToolTip(tr("The same seed draws the same tokens again"));
    backend_->setAccessibleName(tr("Backend"));
    form->addRow(tr("Mode"), samplingMode_);
    form->addRow(tr("Temperature"), temperature_);
    form->addRow(tr("Top-k"), topK_);
    form->addRow(tr("Top-p"), topP_);
    form->addRow(tr("Seed"), seed_);
    sideLayout->addWidget(samplingBox);

    // Speculative decoding: while on, Step shows a round's phases
    auto* specBox = new QGroupBox(tr("Speculative decoding"));
    auto* specForm = new QFormLayout(specBox);
    speculative_ = new QComboBox;
    speculative_->setObjectName("speculative");
    speculative_->addItem(tr("Off (one token a step)"), QString());
    speculative_->addItem(tr("Prompt lookup (n-grams)"), QString("lookup"));
    speculative_->addItem(tr("Draft model…"), QString("model:"));
    speculative_->setToolTip(
        tr("On: each Step drafts tokens cheaply (prompt lookup repeats what followed the same "
           "tokens earlier; a draft model is a smaller model with the same vocabulary), then "
           "the model checks them all in one pass; the accepted ones stay in the cache and the "
           "rest are rolled back. Step shows each phase: drafted, verified, resolved."));
    speculative_->setAccessibleName(tr("Speculative decoding"));
    draftTokens_ = new QSpinBox;
    draftTokens_->setObjectName("draftTokens");
    draftTokens_->setRange(1, 16);
    draftTokens_->setValue(4);
    draftTokens_->setSuffix(tr(" tokens"));
    draftTokens_->setToolTip(tr("Tokens drafted per round"));
    draftTokens_->setAccessibleName(tr("Tokens drafted per round"));
    specForm->addRow(tr("Drafts"), speculative_);
    specForm->addRow(tr("Per round"), draftTokens_);
    const auto sendSpeculative = [this] {
        QString spec = speculative_->currentData().toString();
        if (spec == "model:") {
            const QString path =
                QFileDialog::getOpenFileName(this, tr("Draft model (same vocabulary as the model)"),
                                             QString(), tr("GGUF models (*.gguf)"));
            if (path.isEmpty()) {  // cancelled: back to what was in use
                const QSignalBlocker block(speculative_);
                speculative_->setCurrentIndex(speculativeSpec_.isEmpty()     ? 0
                                              : speculativeSpec_ == "lookup" ? 1
                                                                             : 2);
                return;
            }
            spec += path;
        }
        setSpeculative(spec, draftTokens_->value());
    };
    connect(speculative_, &QComboBox::activated, this, sendSpeculative);
    connect(draftTokens_, &QSpinBox::editingFinished, this, [this] {
        if (speculativeOn()) setSpeculative(speculativeSpec_, draftTokens_->value());
    });
    sideLayout->addWidget(specBox);
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
    html += row.arg(tr("Context"), tr("%L1 of %L2").arg(c.nCtx).arg(c.nCtxTrain));
    html += row.arg(tr("Vocabulary")).arg(c.nVocab);
    html += row.arg(tr("Parameters"), thousands(s.parameters));
    html += row.arg(tr("Weights"), bytesText(static_cast<double>(s.weightBytes)));
    html += row.arg(tr("KV per token"), thousands(s.kvBytesPerToken) + " B");
    html += row.arg(tr("KV at full context"),
                    bytesText(static_cast<double>(s.kvBytesPerToken) * c.nCtx));
    html += "</table>";
    html += tr("<p style='color:gray'>%1.<br>Tokenizer: %2.</p>")
                .arg(QString::fromStdString(c.familyText()).toHtmlEscaped(),
                     QString::fromStdString(s.tokenizer).toHtmlEscaped());
    const size_t elements = c.kvBytesPerToken(1);
    html += tr("<p style='color:gray'>KV per token = 2 × %1 layers × %2 KV heads × %3 × %4 B</p>")
                .arg(c.nLayer)
                .arg(c.nHeadKv)
                .arg(c.headDim)
                .arg(elements > 0 ? s.kvBytesPerToken / elements : 4);
    summary_->setText(html);
    // An OpenCL device's name with its paths and kernels runs to 190 characters (PoCL), which
    // the status bar of a 1280-pixel window cut off mid-word: it shows at most
    // kStatusDeviceWidth of it, elided, and the tooltip all of it.
    constexpr int kStatusDeviceWidth = 420;
    const QString device = tr("%1 · %2").arg(s.backend, s.device);
    statusDevice_->setToolTip(device);
    statusDevice_->setText(
        statusDevice_->fontMetrics().elidedText(device, Qt::ElideRight, kStatusDeviceWidth));
    {
        const QSignalBlocker a(layer_), b(head_);
        layer_->setRange(0, c.nLayer - 1);
        context_->setRange(0, c.nCtxTrain);
        head_->setRange(0, c.nHead - 1);
    }
    updateSelectors();
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
    theme.setSequentialMap(
        viz::parseSequentialMap(s.value("colormap/weights").toString().toStdString())
            .value_or(viz::SequentialMap::Viridis));
    theme.setDivergingMap(
        viz::parseDivergingMap(s.value("colormap/signed").toString().toStdString())
            .value_or(viz::DivergingMap::RdBu));
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
    s.setValue(
        "colormap/weights",
        QString::fromStdString(viz::mapName(viz::ThemeSettings::instance().sequentialMap())));
    s.setValue("colormap/signed",
               QString::fromStdString(viz::mapName(viz::ThemeSettings::instance().divergingMap())));
    s.setValue("exportDir", exportDir_);
    s.setValue("textZoom", textZoom_);
}

}  // namespace kvscope::app
