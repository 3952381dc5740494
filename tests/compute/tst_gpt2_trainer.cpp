// The trainer: BPE learning, the backward pass against finite differences, AdamW lowering the
// loss, and the trained model's file computing the same logits in the app's CPU backend.
#include <QTest>
#include <cmath>
#include <random>

#include "cpu/cpu_backend.h"
#include "model/model.h"
#include "train/bpe_trainer.h"
#include "train/evaluate.h"
#include "train/gpt2_trainer.h"
#include "train/training_run.h"

using namespace kvscope;

namespace {

const char* kText =
    "In the beginning God created the heaven and the earth.\n"
    "And the earth was without form, and void; and darkness was upon the face of the deep.\n"
    "And God said, Let there be light: and there was light.\n"
    "And God saw the light, that it was good: and God divided the light from the darkness.\n";

Gpt2Shape tinyShape() {
    Gpt2Shape s;
    s.nLayer = 2;
    s.nHead = 2;
    s.nEmbd = 8;
    s.nCtx = 6;
    s.nVocab = 300;
    return s;
}

struct Batch {
    std::vector<int32_t> inputs, targets;
};
Batch randomBatch(int B, int T, int V, unsigned seed) {
    std::mt19937 rng(seed);
    Batch b;
    for (int i = 0; i < B * T; ++i) {
        b.inputs.push_back(static_cast<int32_t>(rng() % static_cast<unsigned>(V)));
        b.targets.push_back(static_cast<int32_t>(rng() % static_cast<unsigned>(V)));
    }
    return b;
}

}  // namespace

class TstGpt2Trainer : public QObject {
    Q_OBJECT
  private slots:
    void bpeIsDeterministicAndRoundTrips() {
        const BpeVocabulary a = trainBpe(kText, 300), b = trainBpe(kText, 300);
        QCOMPARE(a.tokens, b.tokens);
        QCOMPARE(a.merges, b.merges);
        QVERIFY(a.tokens.size() <= 300);  // stops early when no pair occurs twice
        QCOMPARE(trainBpe(kText, 270).tokens.size(), size_t{270});
        QCOMPARE(a.tokens.back(), std::string("<|endoftext|>"));
        const Tokenizer tok = a.tokenizer();
        const std::string s = kText;
        QCOMPARE(tok.decode(tok.encode(s)), s);
        QVERIFY(tok.encode(s).size() <
                s.size() / 2);  // the merges compress the text they came from
        // Words of the text become single tokens once merged: " the" appears 7 times.
        QCOMPARE(tok.encode(" the").size(), size_t{1});
    }

    void bpeFirstMergeIsTheMostFrequentPair() {
        // "ab" occurs 3 times as a pair inside "abab ab", more than any other pair.
        const BpeVocabulary v = trainBpe("abab ab abc", 258);
        QCOMPARE(v.merges.front(), std::string("a b"));
        QCOMPARE(v.tokens[256], std::string("ab"));
    }

    // d(loss)/d(w) from backward() against (loss(w + h) − loss(w − h)) / 2h for a sample of
    // weights from every tensor.
    void backwardEqualsFiniteDifferences() {
        Gpt2Trainer t(tinyShape(), 3, 0.3f);
        const int B = 2, T = 6;
        const Batch batch = randomBatch(B, T, 300, 4);
        t.forward(batch.inputs.data(), batch.targets.data(), B, T);
        t.zeroGrad();
        t.backward();
        const std::vector<float> grad = t.gradients();
        std::vector<float>& w = t.parameters();
        std::mt19937 rng(5);
        int checked = 0, large = 0;
        double worst = 0;
        for (size_t i = 0; i < w.size(); i += 1 + rng() % 37) {
            const float keep = w[i], h = 1e-2f;
            w[i] = keep + h;
            const double up = t.forward(batch.inputs.data(), batch.targets.data(), B, T);
            w[i] = keep - h;
            const double down = t.forward(batch.inputs.data(), batch.targets.data(), B, T);
            w[i] = keep;
            const double numeric = (up - down) / (2.0 * h);
            const double err = std::abs(numeric - grad[i]);
            worst = std::max(worst, err / (std::abs(numeric) + 1e-3));
            if (err > 2e-3 + 2e-2 * std::abs(numeric))
                qWarning() << "parameter" << i << "numeric" << numeric << "analytic" << grad[i];
            QVERIFY(err <= 2e-3 + 2e-2 * std::abs(numeric));
            ++checked;
            large += std::abs(numeric) > 1e-2;
        }
        qInfo() << checked << "weights checked," << large
                << "with |grad| > 0.01; worst relative error" << worst;
        QVERIFY(large > 50);  // the check saw real gradients, not only zeros
    }

    void adamwStepsLowerTheLossOnAFixedBatch() {
        Gpt2Trainer t(tinyShape(), 7);
        const Batch batch = randomBatch(4, 6, 300, 8);
        const float first = t.forward(batch.inputs.data(), batch.targets.data(), 4, 6);
        QVERIFY(std::abs(first - std::log(300.0f)) < 0.1f);  // near-uniform at initialisation
        AdamW opt;
        opt.lr = 1e-2f;
        float loss = first;
        for (int step = 1; step <= 20; ++step) {
            t.zeroGrad();
            t.backward();
            t.clipGradients(1.0f);
            t.update(opt, step);
            const float next = t.forward(batch.inputs.data(), batch.targets.data(), 4, 6);
            if (step == 1) QVERIFY(next < first);  // one step already lowers it
            loss = next;
        }
        QVERIFY(loss < first - 1.0f);
    }

    void clippingBoundsTheNorm() {
        Gpt2Trainer t(tinyShape(), 9, 0.3f);
        const Batch batch = randomBatch(2, 6, 300, 10);
        t.forward(batch.inputs.data(), batch.targets.data(), 2, 6);
        t.zeroGrad();
        t.backward();
        const float before = t.clipGradients(1e-3f);
        QVERIFY(before > 1e-3f);
        double ss = 0;
        for (float g : t.gradients()) ss += double(g) * g;
        QVERIFY(std::abs(std::sqrt(ss) - 1e-3) < 1e-6);
    }

    // The trainer's file is an ordinary gpt2 model: the app's CPU backend computes the logits
    // the trainer computed for the same tokens.
    void exportedModelComputesTheTrainersLogits() {
        const BpeVocabulary vocab = trainBpe(kText, 280);
        Gpt2Shape shape = tinyShape();
        shape.nVocab = static_cast<int>(vocab.tokens.size());
        Gpt2Trainer t(shape, 11, 0.3f);
        const Batch batch = randomBatch(1, 6, shape.nVocab, 12);
        t.forward(batch.inputs.data(), batch.targets.data(), 1, 6);
        const std::vector<float> expected = t.logits();

        auto model = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(t.toGguf(vocab, "tiny").toBytes(), "tiny.gguf")));
        QCOMPARE(model->config.nCtx, 6);
        QCOMPARE(model->config.nVocab, 280);
        CpuBackend backend(model);
        std::vector<float> got;
        backend.forward(batch.inputs, true, got, nullptr);
        QCOMPARE(got.size(), expected.size());
        double diff = 0, scale = 0;
        for (size_t i = 0; i < got.size(); ++i) {
            diff = std::max(diff, double(std::abs(got[i] - expected[i])));
            scale = std::max(scale, double(std::abs(expected[i])));
        }
        QVERIFY2(diff / scale < 1e-4, qPrintable(QString::number(diff / scale)));
    }

    void learningRateWarmsUpThenDecays() {
        TrainOptions o;
        o.lr = 1e-3f;
        o.minLr = 1e-4f;
        o.warmup = 10;
        o.steps = 110;
        QCOMPARE(scheduledLr(o, 5), 5e-4f);
        QCOMPARE(scheduledLr(o, 10), 1e-3f);
        QVERIFY(std::abs(scheduledLr(o, 60) - 5.5e-4f) < 1e-7f);  // half-way: the mean of both
        QVERIFY(std::abs(scheduledLr(o, 110) - 1e-4f) < 1e-9f);
    }

    // A short run on a repeated text: the held-out loss falls and the written model scores the
    // held-out text in bits per byte through the ordinary decoding path.
    void aShortRunLearns() {
        std::string text;
        for (int i = 0; i < 40; ++i) text += kText;
        TrainOptions o;
        o.shape = tinyShape();
        o.shape.nEmbd = 16;
        o.shape.nCtx = 16;
        o.shape.nVocab = 320;
        o.steps = 60;
        o.batch = 4;
        o.lr = 1e-2f;
        o.minLr = 1e-3f;
        o.warmup = 5;
        o.evalEvery = 30;
        std::vector<TrainLogRow> log;
        TrainResult r = trainModel(text, o, [&](const TrainLogRow& row) { log.push_back(row); });
        QCOMPARE(log.size(), size_t{60});
        QVERIFY(std::isnan(log[0].heldOutLoss));
        QVERIFY(!std::isnan(log[29].heldOutLoss));
        QVERIFY(log.back().heldOutLoss < log[29].heldOutLoss || log.back().heldOutLoss < 2.0f);
        QVERIFY(log.back().trainLoss < log.front().trainLoss - 2.0f);
        auto model = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(r.model.toBytes(), "run.gguf")));
        CpuBackend backend(model);
        const TextScore s = scoreText(backend, model->tokenizer, r.heldOutText);
        QVERIFY(s.bytes > 0);
        // The text repeats, so what was held out was seen in training: well below uniform
        // (log2 320 = 8.3 bits per token), and the file scores as the trainer measured it
        // (both are held-out cross-entropies, over differently placed windows).
        const double bitsPerToken = s.bits / static_cast<double>(s.tokens);
        QVERIFY2(bitsPerToken < std::log2(320.0) - 2, qPrintable(QString::number(bitsPerToken)));
        const double natsPerToken = bitsPerToken * std::log(2.0);
        QVERIFY2(std::abs(natsPerToken - r.finalHeldOutLoss) < 0.25 * r.finalHeldOutLoss,
                 qPrintable(QString("%1 vs %2").arg(natsPerToken).arg(r.finalHeldOutLoss)));
    }
};

QTEST_GUILESS_MAIN(TstGpt2Trainer)
#include "tst_gpt2_trainer.moc"
