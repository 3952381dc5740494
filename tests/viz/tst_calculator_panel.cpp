// CalculatorPanel: the loaded model comes from the TraceStore with the engine's bytes per
// token, and what the panel shows is what `kvscope memory --json` prints for the same inputs.
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTest>

#include "decoded_store.h"
#include "model_fixtures.h"
#include "views/calculator_panel.h"

using namespace kvscope;
using namespace kvscope::viz;
using testing::DecodedStore;

class TstCalculatorPanel : public QObject {
    Q_OBJECT
  private slots:
    // The loaded model: fp32 like KVScope's own cache, so the panel's bytes per token are
    // the backend's (2 × layers × kv heads × head dim × 4 B) and its total what a full context
    // holds.
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
};

QTEST_MAIN(TstCalculatorPanel)
#include "tst_calculator_panel.moc"
