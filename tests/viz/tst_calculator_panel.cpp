// CalculatorPanel: the loaded model comes from the TraceStore with the engine's bytes per
// token, and what the panel shows is what `kvscope memory --json` prints for the same inputs.
#include <QAbstractItemView>
#include <QComboBox>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QScrollArea>
#include <QTemporaryDir>
#include <QTest>
#include <QValueAxis>

#include <QLegend>
#include <QLineSeries>
#include "charts/calculator_charts.h"
#include "charts/chart_theme.h"
#include "common/theme.h"
#include "decoded_store.h"
#include "export/exporter.h"
#include "model_fixtures.h"
#include "view_checks.h"
#include "views/calculator_panel.h"

using namespace kvscope;
using namespace kvscope::viz;
using testing::DecodedStore;

class TstCalculatorPanel : public QObject {
    Q_OBJECT
  private slots:
    // The loaded model: fp32 like KVScope's own cache, so the panel's bytes per token are
    // the backend's (2 × layers × kv heads × head dim × 4 B) and its total what a full context
    // holds; its weights take the bytes its file stores them in.
    void loadedModelMatchesTheEngine() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        CalculatorPanel panel(&d.store);
        QVERIFY(panel.result());
        const kvmem::Result& r = *panel.result();
        QCOMPARE(r.bytesPerToken, uint64_t(d.store.model().kvBytesPerToken));
        QCOMPARE(r.context, uint64_t(d.store.config().nCtx));
        QCOMPARE(r.totalBytes,
                 uint64_t(d.store.model().kvBytesPerToken) * uint64_t(d.store.config().nCtx));
        QCOMPARE(r.model.kind, kvmem::Attention::Gqa);
        QVERIFY(panel.rowText("per_token").contains("2 (K and V) x 2 layers x 2 kv heads"));
        // the weights in the bytes the file stores them in, as the engine holds them
        QCOMPARE(r.weightBytes, double(d.store.model().weightBytes));
        QVERIFY(panel.rowText("weights").contains("as the file stores them"));
    }

    void panelShowsWhatTheCliPrints_data() {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<QString>("dtype");
        QTest::addColumn<int>("context");
        QTest::addColumn<int>("batch");
        QTest::addColumn<QString>("gpu");
        QTest::newRow("llama-3-70b 4096") << "llama-3-70b"
                                          << "fp16" << 4096 << 1 << "h100-sxm";
        QTest::newRow("opt-30b batch 128") << "opt-30b"
                                           << "fp16" << 1024 << 128 << "a100-80gb";
        QTest::newRow("deepseek-v3 int8") << "deepseek-v3"
                                          << "int8" << 32768 << 4 << "h200";
        QTest::newRow("gpt2 fp32") << "gpt2"
                                   << "fp32" << 1024 << 8 << "l4";
    }
    void panelShowsWhatTheCliPrints() {
        QFETCH(QString, preset);
        QFETCH(QString, dtype);
        QFETCH(int, context);
        QFETCH(int, batch);
        QFETCH(QString, gpu);
        TraceStore store;
        CalculatorPanel panel(&store);
        QVERIFY(panel.selectModel(preset));
        panel.setDtype(dtype);
        panel.setContext(context);
        panel.setBatch(batch);
        panel.setGpu(gpu);
        panel.setPrice(2.5);
        QVERIFY(panel.result());
        const kvmem::Result& r = *panel.result();

        QProcess p;
        p.start(KVSCOPE_BIN, {"memory", "--preset", preset, "--dtype", dtype, "--context",
                              QString::number(context), "--batch", QString::number(batch), "--gpu",
                              gpu, "--price", "2.5", "--json"});
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitCode(), 0);
        const QJsonObject o = QJsonDocument::fromJson(p.readAllStandardOutput()).object();
        QCOMPARE(o["bytes_per_token"].toDouble(), double(r.bytesPerToken));
        QCOMPARE(o["total_bytes"].toDouble(), double(r.totalBytes));
        QCOMPARE(o["mha_bytes_per_token"].toDouble(), double(r.mhaBytesPerToken));
        QCOMPARE(o["weight_bytes"].toDouble(), r.weightBytes);
        QCOMPARE(o["gpu_share"].toDouble(), r.gpuShare);
        const QJsonObject e = o["estimates"].toObject();
        QCOMPARE(e["decode_ms_lower_bound"].toDouble(), r.decodeMsLowerBound);
        QCOMPARE(e["cost_per_million_tokens_usd"].toDouble(), r.costPerMillion);
        const QJsonObject a = o["arithmetic"].toObject();
        for (const char* row : {"per_token", "total", "as_if_mha", "why_different", "weights",
                                "gpu_share", "decode_time", "cost"})
            QCOMPARE(panel.rowText(row), a[QString::fromLatin1(row)].toString());
    }

    // The bar chart beside the text: one bar per preset and the loaded model, each the
    // calculator's bytes per token (and its as-if-MHA ghost) for the dtype on show.
    void barsAreTheCalculatorsResults_data() {
        QTest::addColumn<QString>("dtype");
        QTest::newRow("fp16") << "fp16";
        QTest::newRow("int4") << "int4";
    }
    void barsAreTheCalculatorsResults() {
        QFETCH(QString, dtype);
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        CalculatorPanel panel(&d.store);
        QVERIFY(panel.selectModel("llama-3-70b"));
        panel.setDtype(dtype);
        const int bits = kvmem::findDtype(dtype.toStdString())->bits;
        const auto& bars = panel.bytesChart()->bars();
        const auto& presets = kvmem::presets();
        QCOMPARE(bars.size(), presets.size() + 1);  // and the loaded model, last
        kvmem::Inputs in;
        in.cacheBits = bits;
        for (size_t i = 0; i < presets.size(); ++i) {
            const kvmem::Result r = kvmem::calculate(presets[i], in);
            QCOMPARE(bars[i].name, QString::fromStdString(presets[i].name));
            QCOMPARE(bars[i].bytesPerToken, r.bytesPerToken);
            QCOMPARE(bars[i].mhaBytesPerToken, r.mhaBytesPerToken);
            if (presets[i].kind != kvmem::Attention::Mla)  // 2 × layers × kv heads × dim × bytes
                QCOMPARE(bars[i].bytesPerToken, 2ull * presets[i].layers * presets[i].kvHeads *
                                                    presets[i].headDim * bits / 8);
            const int bar = static_cast<int>(i);
            QVERIFY(qAbs(panel.bytesChart()->drawnBytes(bar) - double(r.bytesPerToken)) <
                    1e-6 * double(r.bytesPerToken));
            QVERIFY(qAbs(panel.bytesChart()->drawnMhaBytes(bar) - double(r.mhaBytesPerToken)) <
                    1e-6 * double(r.mhaBytesPerToken));
        }
        const ModelConfig& c = d.store.config();
        QCOMPARE(bars.back().bytesPerToken, 2ull * c.nLayer * c.nHeadKv * c.headDim * bits / 8);
        QCOMPARE(bars.back().mhaBytesPerToken, 2ull * c.nLayer * c.nHead * c.headDim * bits / 8);

        // the curve: the chosen model's cache at each context, ending at its own context
        const ContextChart* curve = panel.contextChart();
        const QPointF end = curve->cacheSeries()->points().back();
        in.context = 8192;
        const kvmem::Result r = kvmem::calculate(*kvmem::findPreset("llama-3-70b"), in);
        QCOMPARE(end.x(), 8192.0);
        QVERIFY(qAbs(end.y() * curve->unitBytes() - double(r.totalBytes)) <
                1e-6 * double(r.totalBytes));
        QVERIFY(qAbs(curve->mhaSeries()->points().back().y() * curve->unitBytes() -
                     double(r.mhaTotalBytes)) < 1e-6 * double(r.mhaTotalBytes));
    }

    // Where the cache stops fitting: OPT-30B at batch 128 on an A100 80GB fits only short
    // contexts; the chart's last fitting context is one the calculator says fits.
    void contextChartShowsWhereItStopsFitting() {
        TraceStore store;
        CalculatorPanel panel(&store);
        QVERIFY(panel.selectModel("opt-30b"));
        panel.setDtype("fp16");
        panel.setBatch(128);
        panel.setGpu("a100-80gb");
        const ContextChart* curve = panel.contextChart();
        const uint64_t fitting = curve->lastFittingContext();
        QVERIFY(fitting > 0);
        QVERIFY(fitting < 2048);
        kvmem::Inputs in;
        in.batch = 128;
        in.gpu = "a100-80gb";
        in.context = fitting;
        QVERIFY(kvmem::calculate(*kvmem::findPreset("opt-30b"), in).fits);
        in.context = fitting + 2048 / 64 + 1;
        QVERIFY(!kvmem::calculate(*kvmem::findPreset("opt-30b"), in).fits);
        QCOMPARE(curve->gpuRoomSeries()->count(), 2);
        panel.resize(1280, 620);
        QVERIFY(testing::pixelVariance(testing::render(panel, "calculator-opt-30b")) > 100);
    }

    // At 1280 x 720 the calculator tab is about 945 px wide and the inputs and results get the
    // left 2/5: the column must fit that width (its horizontal scroll bar is off, so anything
    // wider is cut: the GPU list's "(80 GB, 3.350 TB/s)" and the ends of the results' lines were).
    // At 1024 x 768 (690 px) the fields go under their labels rather than past the edge.
    void inputsAndResultsFitTheirColumnAt720p() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        CalculatorPanel panel(&d.store);
        panel.resize(690, 540);
        panel.show();
        QVERIFY(QTest::qWaitForWindowExposed(&panel));
        auto* scroll = panel.findChild<QScrollArea*>();
        QVERIFY(scroll && scroll->widget());
        QApplication::processEvents();
        QVERIFY(panel.textShown());
        QVERIFY2(scroll->widget()->width() <= scroll->viewport()->width(),
                 qPrintable(QString("the column is %1 px wide in a %2 px viewport at 690")
                                .arg(scroll->widget()->width())
                                .arg(scroll->viewport()->width())));
        panel.resize(945, 480);
        QApplication::processEvents();
        const int viewport = scroll->viewport()->width();
        QVERIFY2(viewport < 420, qPrintable(QString("viewport %1").arg(viewport)));
        QVERIFY2(scroll->widget()->width() <= viewport,
                 qPrintable(QString("the column is %1 px wide in a %2 px viewport")
                                .arg(scroll->widget()->width())
                                .arg(viewport)));
        // the closed GPU box draws the name alone, which fits; its list, the whole texts
        QComboBox* gpu = nullptr;
        for (auto* box : panel.findChildren<QComboBox*>())
            if (box->currentData().toString() == "h100-sxm") gpu = box;
        QVERIFY(gpu);
        const QString name = gpu->currentData(CalculatorPanel::kShortName).toString();
        QCOMPARE(name, QString("H100 SXM 80GB"));
        QVERIFY2(gpu->fontMetrics().horizontalAdvance(name) < gpu->width() - 30,
                 qPrintable(QString("%1 px wide").arg(gpu->width())));
        QCOMPARE(gpu->currentText(), QString("H100 SXM 80GB (80 GB, 3.350 TB/s)"));
        // what the box paints: the same pixels as a plain box showing the name
        QComboBox plain;
        plain.setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
        plain.addItem(name);
        plain.setFont(gpu->font());
        plain.setPalette(gpu->palette());
        plain.resize(gpu->size());
        QCOMPARE(gpu->grab().toImage().convertToFormat(QImage::Format_RGB32),
                 plain.grab().toImage().convertToFormat(QImage::Format_RGB32));
        gpu->showPopup();
        QApplication::processEvents();
        const int longest = gpu->fontMetrics().horizontalAdvance(gpu->currentText());
        QVERIFY2(gpu->view()->viewport()->width() >= longest,
                 qPrintable(QString("the list is %1 px wide for %2 px of text")
                                .arg(gpu->view()->viewport()->width())
                                .arg(longest)));
        gpu->hidePopup();
    }

    // A panel never shown (the command line's figure) exports as it will look: its first figure
    // is its second (the first had been painted mid-resize, with the context chart's long title
    // elided, the shorter one set during that paint).
    void aFreshPanelExportsAsItWillLook() {
        ThemeSettings::instance().setAnimationMs(0);
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        CalculatorPanel panel(&d.store);
        panel.resize(800, 600);
        QTemporaryDir dir;
        const QString a = dir.filePath("a.png"), b = dir.filePath("b.png");
        QCOMPARE(exportWidget(&panel, a, ExportFormat::Png), QString());
        QCOMPARE(exportWidget(&panel, b, ExportFormat::Png), QString());
        QCOMPARE(QImage(a), QImage(b));
        QCOMPARE(panel.size(), QSize(800, 600));
    }

    // Every tick of the context chart is a whole context, whatever the one typed in (10 had put
    // "2" at 2.5), and every label says its own tick's value.
    void contextTicksAreWhole() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        CalculatorPanel panel(&d.store);
        for (const int context : {10, 77, 4096, 131072}) {
            panel.setContext(context);
            for (const QChartView* view : std::initializer_list<const QChartView*>{
                     panel.contextChart(), panel.bytesChart()}) {
                const QString wrong = testing::misstatedTickIn(*view->chart());
                QVERIFY2(wrong.isEmpty(),
                         qPrintable(QString("context %1: %2").arg(context).arg(wrong)));
            }
        }
    }

    // The charts' titles and the bars' names are never cut: where the full title does not fit
    // the bars' chart says what the ghost is in its legend, and the names drop their bytes
    // where those would take more than their share. A small figure (export --size 600x400)
    // is the bars' chart alone, at the size asked for (the columns' minimums had made the panel
    // 665 x 465 and the figure cut it).
    void chartsKeepTheirWordsWhole() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        CalculatorPanel panel(&d.store);
        const KvBytesChart* bars = panel.bytesChart();
        struct Restore {  // the theme back, also when a check below fails
            Theme before = ThemeSettings::instance().theme();
            ~Restore() { ThemeSettings::instance().setTheme(before); }
        } restore;
        // the projector's type: the presenter mode's tab at 1024 x 768 is about 1000 x 570
        const std::pair<QSize, bool> cases[] = {{QSize(1400, 800), false},
                                                {QSize(690, 540), false},
                                                {QSize(600, 400), false},
                                                {QSize(1000, 570), true}};
        for (const auto& [size, projector] : cases) {
            ThemeSettings::instance().setTheme(projector ? Theme::projector() : restore.before);
            panel.resize(size);
            testing::render(panel, QString("calculator-%1x%2%3")
                                       .arg(size.width())
                                       .arg(size.height())
                                       .arg(projector ? "-projector" : ""));
            QCOMPARE(panel.size(), size);
            const QFontMetrics title(bars->chart()->titleFont());
            QVERIFY2(title.horizontalAdvance(bars->chart()->title()) <= titleRoom(bars),
                     qPrintable(bars->chart()->title()));
            const bool saysGhost = bars->chart()->title().contains("as if plain MHA");
            QCOMPARE(bars->chart()->legend()->isVisible(), !saysGhost);
            const QFontMetrics names(bars->namesFont());
            for (const QString& name : bars->namesShown())
                QVERIFY2(names.horizontalAdvance(name) <= KvBytesChart::kNamesShare * bars->width(),
                         qPrintable(name));
            QCOMPARE(bars->namesShown().size(), static_cast<qsizetype>(bars->bars().size()));
            // each name no taller than its bar's slot (else the axis leaves out every second)
            QVERIFY(KvBytesChart::kNameSpacing * QFontMetricsF(bars->namesFont()).height() <=
                    bars->chart()->plotArea().height() / double(bars->bars().size()));
            const bool small = size == QSize(600, 400);
            QCOMPARE(panel.textShown(), !small);
            QCOMPARE(panel.contextChart()->isHidden(), small);
            if (!small) {
                QChart* context = panel.contextChart()->chart();
                QVERIFY2(QFontMetrics(context->titleFont()).horizontalAdvance(context->title()) <=
                             titleRoom(panel.contextChart()),
                         qPrintable(context->title()));
            }
        }
    }
};

QTEST_MAIN(TstCalculatorPanel)
#include "tst_calculator_panel.moc"
