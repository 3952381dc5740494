// CalculatorPanel: widgets in, kvmem::calculate out, one row of arithmetic per result.
#include "views/calculator_panel.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QFrame>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QResizeEvent>
#include <QScrollArea>
#include <QScrollBar>
#include <QSpinBox>
#include <QSplitter>
#include <QStyleOptionComboBox>
#include <QStylePainter>
#include <QVBoxLayout>
#include <algorithm>

#include "charts/calculator_charts.h"
#include "common/trace_store.h"

namespace kvscope::viz {

namespace {

// A box whose list shows each item's long text ("H100 SXM 80GB (80 GB, 3.350 TB/s)", sized by
// Qt to fit) while the closed box draws the item's short name (CalculatorPanel::kShortName),
// which fits the inputs column of a 1280 x 720 window: cut, the long one read "H100 SXM 80GB
// (80 GB, 3.350".
class ShortNameBox : public QComboBox {
  public:
    using QComboBox::QComboBox;

  protected:
    void paintEvent(QPaintEvent*) override {  // QComboBox's own, with the short name
        QStylePainter painter(this);
        painter.setPen(palette().color(QPalette::Text));
        QStyleOptionComboBox option;
        initStyleOption(&option);
        const QString name = currentData(CalculatorPanel::kShortName).toString();
        if (!name.isEmpty()) option.currentText = name;
        painter.drawComplexControl(QStyle::CC_ComboBox, option);
        painter.drawControl(QStyle::CE_ComboBoxLabel, option);
    }
};

}  // namespace

CalculatorPanel::CalculatorPanel(TraceStore* store, QWidget* parent)
    : QWidget(parent), store_(store) {
    // the text (inputs, then results with their arithmetic; it scrolls when the window is
    // small) on the left, the charts on the right, the divider between them movable
    auto* columns = new QHBoxLayout(this);
    columns->setContentsMargins(0, 0, 0, 0);
    // the panel may be narrower than both columns' minimums: resizeEvent then hides the text
    columns->setSizeConstraint(QLayout::SetNoConstraint);
    auto* split = new QSplitter(Qt::Horizontal);
    columns->addWidget(split);
    auto* text = new QWidget;
    auto* outer = new QVBoxLayout(text);
    auto* scroll = new QScrollArea;
    scroll->setWidget(text);
    scroll->setWidgetResizable(true);
    scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    scroll->setFrameShape(QFrame::NoFrame);
    scroll->verticalScrollBar()->setProperty("kvscopeScreenOnly", true);  // not in figures
    split->addWidget(scroll);
    textColumn_ = scroll;
    auto* charts = new QSplitter(Qt::Vertical);  // a bar per model needs the taller share
    bytesChart_ = new KvBytesChart;
    contextChart_ = new ContextChart;
    charts->addWidget(bytesChart_);
    charts->addWidget(contextChart_);
    charts->setStretchFactor(0, 3);
    charts->setStretchFactor(1, 2);
    charts->setSizes({300, 200});
    split->addWidget(charts);
    split->setStretchFactor(0, 2);
    split->setStretchFactor(1, 3);
    split->setSizes({400, 600});
    scroll->setMinimumWidth(300);
    auto* inputs = new QGroupBox(tr("Inputs"));
    auto* form = new QFormLayout(inputs);
    // The fields take the column's width, and the lists ask for no more than a short name: a
    // GPU's "H100 SXM 80GB (80 GB, 3.350 TB/s)" as its size hint made the column wider than its
    // share of a 1280 x 720 window, and the scroll area (no horizontal bar) cut it off. The
    // drop-down lists still show the whole names.
    form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    // and where a label and its field do not fit side by side (the column a 1024-pixel window
    // leaves), the field goes under its label rather than past the column's edge
    form->setRowWrapPolicy(QFormLayout::WrapLongRows);
    const auto narrowList = [](QComboBox* box) {
        box->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
        box->setMinimumContentsLength(12);
    };
    model_ = new QComboBox;
    narrowList(model_);
    model_->addItem(tr("the loaded model"), "loaded");
    for (const kvmem::ModelShape& m : kvmem::presets())
        model_->addItem(QString::fromStdString(m.name), QString::fromStdString(m.key));
    dtype_ = new QComboBox;
    for (const kvmem::Dtype& d : kvmem::dtypes())
        dtype_->addItem(QString::fromStdString(d.key), d.bits);
    gpu_ = new ShortNameBox;
    for (const kvmem::Gpu& g : kvmem::gpus()) {
        gpu_->addItem(tr("%1 (%2 GB, %3 TB/s)")
                          .arg(QString::fromStdString(g.name))
                          .arg(g.memoryBytes / 1e9, 0, 'f', 0)
                          .arg(g.bandwidthBytesPerS / 1e12, 0, 'f', 3),
                      QString::fromStdString(g.key));
        gpu_->setItemData(gpu_->count() - 1, QString::fromStdString(g.name), kShortName);
    }
    gpu_->setCurrentIndex(gpu_->findData("h100-sxm"));
    narrowList(gpu_);
    context_ = new QSpinBox;
    context_->setRange(1, 1 << 30);
    context_->setGroupSeparatorShown(true);
    batch_ = new QSpinBox;
    batch_->setRange(1, 1 << 20);
    window_ = new QSpinBox;
    window_->setRange(-1, 1 << 30);
    window_->setSpecialValueText(tr("the model's own"));
    window_->setValue(-1);
    window_->setToolTip(tr("Sliding window: the cache keeps only the last W tokens (0: none)"));
    price_ = new QDoubleSpinBox;
    price_->setRange(0, 1000);
    price_->setDecimals(2);
    price_->setPrefix("$");
    price_->setSuffix(tr(" per GPU-hour"));
    price_->setValue(2.0);
    shape_ = new QLabel;
    shape_->setWordWrap(true);
    form->addRow(tr("Model"), model_);
    form->addRow(shape_);
    form->addRow(tr("Cache dtype"), dtype_);
    form->addRow(tr("Context (tokens)"), context_);
    form->addRow(tr("Batch"), batch_);
    form->addRow(tr("Sliding window"), window_);
    form->addRow(tr("GPU"), gpu_);
    form->addRow(tr("Price"), price_);
    outer->addWidget(inputs);

    auto* results = new QGroupBox(tr("Results"));
    auto* out = new QFormLayout(results);
    out->setRowWrapPolicy(QFormLayout::WrapLongRows);
    const std::pair<const char*, QString> names[] = {{"per_token", tr("Bytes per token")},
                                                     {"total", tr("Cache total")},
                                                     {"as_if_mha", tr("As if plain MHA")},
                                                     {"why_different", tr("Why they differ")},
                                                     {"weights", tr("Weights")},
                                                     {"gpu_share", tr("Share of the GPU")},
                                                     {"decode_time", tr("Decode time (estimate)")},
                                                     {"cost", tr("Cost (estimate)")}};
    QFont mono("monospace");
    mono.setStyleHint(QFont::TypeWriter);
    for (const auto& [key, label] : names) {
        auto* value = new QLabel;
        value->setWordWrap(true);
        value->setTextInteractionFlags(Qt::TextSelectableByMouse);
        value->setFont(mono);
        rows_.emplace_back(key, value);
        out->addRow(label, value);
    }
    auto* note = new QLabel(
        tr("Estimates assume each decode step reads every weight and the whole cache once from "
           "memory at the GPU's peak bandwidth; real steps are slower. GPU figures: NVIDIA "
           "datasheets."));
    note->setWordWrap(true);
    note->setStyleSheet("color: gray");
    out->addRow(note);
    outer->addWidget(results, 1);

    connect(model_, &QComboBox::currentIndexChanged, this, [this] {
        const QString key = model_->currentData().toString();
        const std::optional<kvmem::ModelShape> m = kvmem::findPreset(key.toStdString());
        const int maxContext = m ? m->maxContext : (store_->hasModel() ? store_->config().nCtx : 0);
        if (maxContext > 0) {
            const QSignalBlocker block(context_);
            context_->setValue(maxContext);
        }
        const QSignalBlocker block(dtype_);  // KVScope's own model keeps its cache in fp32
        dtype_->setCurrentIndex(dtype_->findText(key == "loaded" ? "fp32" : "fp16"));
        recalculate();
    });
    for (QComboBox* c : {dtype_, gpu_})
        connect(c, &QComboBox::currentIndexChanged, this, &CalculatorPanel::recalculate);
    for (QSpinBox* s : {context_, batch_, window_})
        connect(s, &QSpinBox::valueChanged, this, &CalculatorPanel::recalculate);
    connect(price_, &QDoubleSpinBox::valueChanged, this, &CalculatorPanel::recalculate);
    connect(store_, &TraceStore::modelChanged, this, &CalculatorPanel::refillLoaded);
    refillLoaded();
}

void CalculatorPanel::refillLoaded() {
    if (model_->currentData().toString() == "loaded" && store_->hasModel()) {
        const QSignalBlocker block(context_);
        context_->setValue(store_->config().nCtx);
        const QSignalBlocker blockType(dtype_);
        dtype_->setCurrentIndex(dtype_->findText("fp32"));
    }
    recalculate();
}

void CalculatorPanel::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    textColumn_->setHidden(width() < kTextFromWidth);
    contextChart_->setHidden(height() < kBothChartsFromHeight);
}

bool CalculatorPanel::textShown() const {
    return !textColumn_->isHidden();
}

bool CalculatorPanel::selectModel(const QString& key) {
    const int i = model_->findData(key);
    if (i < 0) return false;
    model_->setCurrentIndex(i);
    return true;
}
void CalculatorPanel::setDtype(const QString& key) {
    dtype_->setCurrentIndex(dtype_->findText(key));
}
void CalculatorPanel::setContext(int tokens) {
    context_->setValue(tokens);
}
void CalculatorPanel::setBatch(int batch) {
    batch_->setValue(batch);
}
void CalculatorPanel::setWindow(int tokens) {
    window_->setValue(tokens);
}
void CalculatorPanel::setGpu(const QString& key) {
    gpu_->setCurrentIndex(gpu_->findData(key));
}
void CalculatorPanel::setPrice(double usdPerHour) {
    price_->setValue(usdPerHour);
}

QString CalculatorPanel::rowText(const QString& name) const {
    for (const auto& [key, label] : rows_)
        if (key == name) return label->text();
    return {};
}

void CalculatorPanel::recalculate() {
    const QString key = model_->currentData().toString();
    std::optional<kvmem::ModelShape> m;
    if (key == "loaded") {
        if (store_->hasModel())
            m = kvmem::fromConfig(store_->config(),
                                  static_cast<double>(store_->model().parameters));
    } else {
        m = kvmem::findPreset(key.toStdString());
    }
    result_.reset();
    kvmem::Inputs in;
    in.cacheBits = dtype_->currentData().toInt();
    in.weightBits = 16;  // the presets' weights: fp16, as their checkpoints ship
    in.batch = static_cast<uint64_t>(batch_->value());
    in.context = static_cast<uint64_t>(context_->value());
    if (window_->value() >= 0) in.window = window_->value();
    in.gpu = gpu_->currentData().toString().toStdString();
    in.pricePerHour = price_->value();
    // the loaded model's weights as its file stores them (KVScope keeps them so)
    kvmem::Inputs loaded = in;
    if (store_->hasModel())
        loaded.storedWeightBytes = static_cast<double>(store_->model().weightBytes);
    // the bars: every preset and the loaded model, with the same inputs
    std::vector<kvmem::Result> bars;
    for (const kvmem::ModelShape& preset : kvmem::presets())
        bars.push_back(kvmem::calculate(preset, in));
    if (store_->hasModel())
        bars.push_back(kvmem::calculate(
            kvmem::fromConfig(store_->config(), static_cast<double>(store_->model().parameters)),
            loaded));
    bytesChart_->setResults(bars, dtype_->currentText());
    if (!m) {
        shape_->setText(tr("no model loaded yet"));
        for (auto& row : rows_) row.second->clear();
        contextChart_->setResults({}, {}, 0);
        return;
    }
    // the curve: the chosen model at contexts up to the larger of the one asked and its own
    const uint64_t xMax = std::max<uint64_t>(in.context, uint64_t(std::max(0, m->maxContext)));
    std::vector<kvmem::Result> curve;
    constexpr int kPoints = 64;
    for (int k = 0; k <= kPoints; ++k) {
        kvmem::Inputs at = key == "loaded" ? loaded : in;
        at.context = std::max<uint64_t>(1, xMax * uint64_t(k) / kPoints);
        curve.push_back(kvmem::calculate(*m, at));
    }
    contextChart_->setResults(curve, store_->hasModel() ? store_->model().device : QString(),
                              store_->hasModel() ? store_->model().deviceMemoryBytes : 0);
    result_ = kvmem::calculate(*m, key == "loaded" ? loaded : in);
    const kvmem::Result& r = *result_;
    shape_->setText(tr("%1 layers, %2 query heads, %3 K/V heads, head dim %4, %5 — %6")
                        .arg(m->layers)
                        .arg(m->heads)
                        .arg(m->kvHeads)
                        .arg(m->headDim)
                        .arg(kvmem::attentionName(m->kind), QString::fromStdString(m->note)));
    const std::pair<const char*, const std::string*> texts[] = {
        {"per_token", &r.perTokenArithmetic}, {"total", &r.totalArithmetic},
        {"as_if_mha", &r.mhaArithmetic},      {"why_different", &r.whyDifferent},
        {"weights", &r.weightArithmetic},     {"gpu_share", &r.shareArithmetic},
        {"decode_time", &r.timeArithmetic},   {"cost", &r.costArithmetic}};
    for (const auto& [name, text] : texts)
        for (auto& [rowKey, label] : rows_)
            if (rowKey == name) label->setText(QString::fromStdString(*text));
}

}  // namespace kvscope::viz
