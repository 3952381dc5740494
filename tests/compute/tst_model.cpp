// Model loading: configuration from metadata, tensor shapes checked, weight types converted.
#include <QTest>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "gguf/dequant.h"
#include "gguf/gguf.h"
#include "model_fixtures.h"
#include "numeric_checks.h"
#include "runtime/decode_session.h"

using namespace kvscope;

namespace {
Model load(const GgufWriter& w) {
    return Model::fromGguf(GgufFile::fromBytes(w.toBytes(), "m.gguf"));
}

// Logits of a native model against its dequantized float32 copy, relative to the largest
// logit. F16 and BF16: only the order of the sums differs (measured ~1e-6). Block types: qdot::gemv
// rounds the activations to 8 bits per block of 32 as llama.cpp does, which adds up to 5e-4 of
// Σ|w·x| to each dot product (tst_quant_dot); a sum of random-signed terms is ~sqrt(n) times
// smaller than Σ|w·x|, so through this model the logits moved by up to 2.2% of the largest one
// (mean 0.5%).
double quantTolerance(TensorType t) {
    return t == TensorType::F16 || t == TensorType::BF16 ? 1e-4 : 4e-2;
}

// The same GGUF image with every tensor that is not F32 converted to F32 by the scalar
// reference (toFloat).
std::vector<uint8_t> dequantizedCopy(const std::vector<uint8_t>& image) {
    const GgufFile f = GgufFile::fromBytes(image, "q.gguf");
    GgufWriter w;
    for (const std::string& key : f.keyOrder()) w.set(key, *f.find(key));
    for (const GgufTensorInfo& t : f.tensors())
        w.addTensorF32(t.name, t.ne, toFloat(t.type, f.tensorData(t), t.elements(), t.name));
    return w.toBytes();
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

    // A header that declares a Llama-3.1-sized context (131,072 tokens) costs nothing for it:
    // the context runs at 4,096 unless asked, the cache takes blocks as tokens arrive, and the
    // whole context can be asked for without allocating it.
    void aHugeDeclaredContextAllocatesOnlyWhatIsUsed() {
        RandomModelSpec s = fixtures::llamaGqaSpec();
        s.nCtx = 131072;
        const std::vector<uint8_t> image = randomModel(s).toBytes();
        const Model m = Model::fromGguf(GgufFile::fromBytes(image, "long.gguf"));
        QCOMPARE(m.config.nCtxTrain, 131072);
        QCOMPARE(m.config.nCtx, Model::kDefaultContext);
        auto full = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(image, "long.gguf"), 131072));
        QCOMPARE(full->config.nCtx, 131072);
        auto backend = std::make_shared<CpuBackend>(full);
        QCOMPARE(backend->cacheAllocatedBytes(), size_t{0});
        DecodeSession session(backend, full->tokenizer);
        session.prefill("the cat sat");
        session.step();
        // one block of 256 tokens of 2 (K, V) × 2 layers × 2 KV heads × 8 dims × 4 bytes
        QCOMPARE(backend->cacheAllocatedBytes(), size_t{256} * 2 * 2 * 2 * 8 * 4);
        try {
            Model::fromGguf(GgufFile::fromBytes(image, "long.gguf"), 131073);
            QFAIL("a context past the model's was accepted");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("trained for 131072"), e.what());
        }
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
            QVERIFY2(QString(e.what()).contains("general.architecture = 'mamba'"), e.what());
        }
    }

    // The tokenizer's refusals name the file before the key and value, once: the model's own
    // refusals do, and so do the reader's (a key of the wrong type).
    void tokenizerRefusalsNameTheFile_data() {
        QTest::addColumn<QString>("key");
        QTest::addColumn<bool>("asString");
        QTest::addColumn<QString>("expected");
        QTest::newRow("unknown pre-tokenizer")
            << "tokenizer.ggml.pre" << true
            << "m.gguf: tokenizer.ggml.pre = 'x' is a pre-tokenizer";
        QTest::newRow("unsupported tokenizer model")
            << "tokenizer.ggml.model" << true
            << "m.gguf: tokenizer.ggml.model = 'x' is not supported";
        QTest::newRow("wrong type")
            << "tokenizer.ggml.pre" << false << "m.gguf: key 'tokenizer.ggml.pre' has type UINT32";
    }
    void tokenizerRefusalsNameTheFile() {
        QFETCH(QString, key);
        QFETCH(bool, asString);
        QFETCH(QString, expected);
        GgufWriter w = randomModel(fixtures::gpt2Spec());
        w.set(key.toStdString(), asString ? GgufValue::str("x") : GgufValue::u32(1));
        try {
            load(w);
            QFAIL("loaded");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).startsWith(expected), e.what());
            QCOMPARE(QString(e.what()).count("m.gguf"), 1);
        }
    }

    // Each family's traits come from its metadata and tensors, as llama.cpp reads them.
    void familiesReadTheirTraits() {
        const Model qwen = load(randomModel(fixtures::familySpec("qwen2")));
        QCOMPARE(qwen.config.rope.type, RopeType::Neox);
        QCOMPARE(qwen.config.rope.freqBase, 1e6f);
        QVERIFY(!qwen.layers[0].bqkv.empty());
        const Model phi = load(randomModel(fixtures::familySpec("phi3")));
        QCOMPARE(phi.config.rope.nRot, 4);
        QCOMPARE(phi.layers[0].qkv.size(), size_t{1});
        // the fused ffn_up: the gate's 96 rows, then up's 96, views into one tensor
        QCOMPARE(phi.layers[0].wUp.data(), phi.layers[0].wGate.row(96));
        const Model gemma = load(randomModel(fixtures::familySpec("gemma")));
        QCOMPARE(gemma.config.headDim, 16);
        QCOMPARE(gemma.config.embedScale, std::sqrt(32.0f));
        QCOMPARE(gemma.config.ffn, FfnType::GeluGate);
        QCOMPARE(gemma.config.attnScale, 0.25f);
        QVERIFY(gemma.output.empty());
        const Model g2 = load(randomModel(fixtures::familySpec("gemma2")));
        QCOMPARE(g2.config.windowOf(0), 4);
        QCOMPARE(g2.config.windowOf(1), 0);
        QCOMPARE(g2.config.firstAttended(0, 10), 7);
        QCOMPARE(g2.config.attnSoftcap, 5.0f);
        QCOMPARE(g2.config.finalSoftcap, 3.0f);
        QVERIFY(g2.config.postNorms && !g2.layers[1].ffnPostNormW.empty());
        const Model lr = load(randomModel(fixtures::familySpec("llama_rope")));
        QCOMPARE(lr.config.rope.type, RopeType::Adjacent);
        QVERIFY(lr.config.rope.yarn);
        QCOMPARE(lr.config.rope.freqScale, 0.25f);
        QCOMPARE(lr.config.rope.nCtxOrig, 16);
        QCOMPARE(lr.config.rope.freqFactors.size(), size_t{4});
        QVERIFY(QString::fromStdString(g2.config.familyText()).contains("window 4 on 1 of 2"));
        const Model mistral = load(randomModel(fixtures::familySpec("mistral")));
        QCOMPARE(mistral.config.windowOf(0), 5);
        QCOMPARE(mistral.config.windowOf(1), 5);
    }

    void unsupportedRopeScalingIsNamed() {
        GgufWriter w = randomModel(fixtures::familySpec("qwen2"));
        w.set("qwen2.rope.scaling.type", GgufValue::str("dynamic"));
        try {
            load(w);
            QFAIL("loaded");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("qwen2.rope.scaling.type") &&
                         QString(e.what()).contains("'dynamic'"),
                     e.what());
        }
    }

    void unsupportedTensorTypeNamesTensorAndType() {
        RandomModelSpec s = fixtures::gpt2Spec();
        GgufWriter w = randomModel(s);
        // output.weight (32 x 300) as Q8_1 (ggml's activation type, never a weight's): 300
        // blocks of 36 bytes
        w.addTensor("output.weight", TensorType::Q8_1, {32, 300}, std::vector<uint8_t>(300 * 36));
        try {
            load(w);
            QFAIL("loaded");
        } catch (const Error& e) {
            QVERIFY2(
                QString(e.what()).contains("output.weight") && QString(e.what()).contains("Q8_1"),
                e.what());
        }
    }

    // Every weight type is kept native and computes what its own values computed in float32
    // do: a model of each type against the same file with every matrix dequantized to F32 (the
    // scalar reference), in cached and recompute mode, gpt2 and llama (width 256: whole
    // K-quant blocks). Same greedy tokens, logits within the tolerance.
    void eachWeightTypeComputesItsDequantizedValues_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<bool>("llama");
        for (TensorType t :
             {TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0,
              TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q2_K,
              TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K})
            for (bool llama : {false, true})
                QTest::newRow((typeName(t) + (llama ? " llama" : " gpt2")).c_str())
                    << int(t) << llama;
    }
    void eachWeightTypeComputesItsDequantizedValues() {
        QFETCH(int, type);
        QFETCH(bool, llama);
        RandomModelSpec s = llama ? fixtures::llamaGqaSpec() : fixtures::gpt2Spec();
        s.nEmbd = 256;
        s.nHead = 4;
        s.nFf = 512;
        // 0.05 × sqrt(256) = 0.8: each product keeps the scale of its input, as trained models'
        // layers do (the fixtures' 0.2 would amplify every rounding threefold per product)
        s.weightStd = 0.05f;
        s.tiedOutput = llama;  // both the tied table and a separate head
        s.weightType = static_cast<TensorType>(type);
        const std::vector<uint8_t> image = randomModel(s).toBytes();
        auto native = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(image, "native.gguf")));
        auto reference = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(dequantizedCopy(image), "f32.gguf")));
        QCOMPARE(native->tokEmbd.type(), s.weightType);
        QCOMPARE(native->layers[0].wDown.type(), s.weightType);
        QCOMPARE(reference->layers[0].wDown.type(), TensorType::F32);
        // held at the type's size, not expanded: the matrices' bytes are the file's
        QVERIFY(native->weightBytes() < reference->weightBytes() ||
                s.weightType == TensorType::F32);
        SessionOptions o;
        o.captureTrace = false;
        DecodeSession cached(std::make_shared<CpuBackend>(native), native->tokenizer, o);
        DecodeSession ref(std::make_shared<CpuBackend>(reference), reference->tokenizer, o);
        o.useCache = false;
        DecodeSession recompute(std::make_shared<CpuBackend>(native), native->tokenizer, o);
        for (DecodeSession* x : {&cached, &ref, &recompute}) x->prefill("the cat sat on");
        for (int i = 0; i < 6; ++i) {
            const double err = testing::maxRelError(cached.logits(), ref.logits());
            QVERIFY2(err < quantTolerance(s.weightType), qPrintable(QString::number(err)));
            // the cache and recompute mode run the same per-token products: the same numbers
            QVERIFY(testing::maxRelError(cached.logits(), recompute.logits()) < 1e-5);
            const int32_t token = cached.step().token;
            QCOMPARE(recompute.step().token, token);
            ref.stepWith(token);  // the reference follows, whatever it would have chosen
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
