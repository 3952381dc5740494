// Model loading: configuration from metadata, tensor shapes checked, weight types converted.
#include <QTest>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "gguf/gguf.h"
#include "model_fixtures.h"
#include "runtime/decode_session.h"

using namespace kvscope;

namespace {
Model load(const GgufWriter& w) {
    return Model::fromGguf(GgufFile::fromBytes(w.toBytes(), "m.gguf"));
}

std::vector<float> logitsAfter(const std::shared_ptr<const Model>& m, const char* prompt) {
    SessionOptions o;
    o.captureTrace = false;
    DecodeSession s(std::make_shared<CpuBackend>(m), m->tokenizer, o);
    s.prefill(prompt);
    return {s.logits().begin(), s.logits().end()};
}
}  // namespace

class TstModel : public QObject {
    Q_OBJECT
  private slots:
    void configComesFromTheMetadata() {
        const Model m = load(randomModel(fixtures::llamaGqaSpec()));
        QCOMPARE(m.config.arch, Arch::Llama);
        QCOMPARE(m.config.nLayer, 2);
        QCOMPARE(m.config.nHead, 4);
        QCOMPARE(m.config.nHeadKv, 2);
        QCOMPARE(m.config.headDim, 8);
        QCOMPARE(m.config.nVocab, 300);
        QCOMPARE(m.config.nCtx, 64);
        // grouped heads in order: 0,1 -> 0 and 2,3 -> 1
        QCOMPARE(m.config.kvHeadOf(1), 0);
        QCOMPARE(m.config.kvHeadOf(2), 1);
        // stacked rows: 4 query heads, then 2 key heads, then 2 value heads of 8
        const std::vector<WeightMatrix>& qkv = m.layers[0].qkv;
        QCOMPARE(qkv.size(), size_t{3});
        QCOMPARE(qkv[0].rows(), 4 * 8);
        QCOMPARE(qkv[1].rows(), 2 * 8);
        QCOMPARE(qkv[2].rows(), 2 * 8);
        for (const WeightMatrix& w : qkv) QCOMPARE(w.cols(), 32);
        QVERIFY(m.output.empty());
        QCOMPARE(m.outputWeights().data(), m.tokEmbd.data());
    }

    void untiedOutputIsUsed() {
        RandomModelSpec s = fixtures::gpt2Spec();
        s.tiedOutput = false;
        const Model m = load(randomModel(s));
        QCOMPARE(m.output.elements(), m.tokEmbd.elements());
        QCOMPARE(m.outputWeights().data(), m.output.data());
    }

    void badModelsAreRefusedWithTheirFault_data() {
        QTest::addColumn<QString>("key");
        QTest::addColumn<int>("value");
        QTest::addColumn<QString>("expected");
        QTest::newRow("width disagrees with tensors")
            << "gpt2.embedding_length" << 64 << "token_embd.weight";
        QTest::newRow("more layers than tensors")
            << "gpt2.block_count" << 3 << "blk.2.attn_norm.weight";
        QTest::newRow("heads do not divide width")
            << "gpt2.attention.head_count" << 5 << "head_count";
        QTest::newRow("zero context") << "gpt2.context_length" << 0 << "context_length";
    }
    void badModelsAreRefusedWithTheirFault() {
        QFETCH(QString, key);
        QFETCH(int, value);
        QFETCH(QString, expected);
        GgufWriter w = randomModel(fixtures::gpt2Spec());
        w.set(key.toStdString(), GgufValue::u32(static_cast<uint32_t>(value)));
        try {
            load(w);
            QFAIL("loaded");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains(expected), e.what());
        }
    }

    void unsupportedArchitectureIsNamed() {
        GgufWriter w = randomModel(fixtures::gpt2Spec());
        w.set("general.architecture", GgufValue::str("mamba"));
        try {
            load(w);
            QFAIL("loaded");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("'mamba'"), e.what());
        }
    }

    void unsupportedTensorTypeNamesTensorAndType() {
        RandomModelSpec s = fixtures::gpt2Spec();
        GgufWriter w = randomModel(s);
        // output.weight (32 x 300) as Q4_0: 300 blocks of 18 bytes
        w.addTensor("output.weight", TensorType::Q4_0, {32, 300}, std::vector<uint8_t>(300 * 18));
        try {
            load(w);
            QFAIL("loaded");
        } catch (const Error& e) {
            QVERIFY2(
                QString(e.what()).contains("output.weight") && QString(e.what()).contains("Q4_0"),
                e.what());
        }
    }

    // The same random weights stored as F16, BF16 or Q8_0 give nearly the same logits.
    void quantisedWeightsDecodeLikeFloat32_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<double>("tolerance");
        QTest::newRow("F16") << int(TensorType::F16) << 1e-2;
        QTest::newRow("BF16") << int(TensorType::BF16) << 5e-2;
        QTest::newRow("Q8_0") << int(TensorType::Q8_0) << 5e-2;
    }
    void quantisedWeightsDecodeLikeFloat32() {
        QFETCH(int, type);
        QFETCH(double, tolerance);
        RandomModelSpec s = fixtures::gpt2Spec();
        const auto ref = logitsAfter(fixtures::makeModel(s), "hello there");
        s.weightType = static_cast<TensorType>(type);
        const auto q = logitsAfter(fixtures::makeModel(s), "hello there");
        double diff = 0, scale = 0;
        size_t exact = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
            diff = std::max(diff, double(std::abs(q[i] - ref[i])));
            scale = std::max(scale, double(std::abs(ref[i])));
            exact += q[i] == ref[i] ? 1 : 0;
        }
        QVERIFY2(diff / scale < tolerance, qPrintable(QString::number(diff / scale)));
        QVERIFY(exact < ref.size());  // the weights really were stored in the other type
    }
};

QTEST_GUILESS_MAIN(TstModel)
#include "tst_model.moc"
