// The trainers (gpt2 and llama): BPE learning, every layer's backward pass and each whole model's
// against finite differences, AdamW lowering the loss, the trained model's file computing the
// same logits in the app's CPU backend, training windows, and resuming from a checkpoint.
#include <QDir>
#include <QTemporaryDir>
#include <QTest>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "core/error.h"
#include "core/thread_pool.h"
#include "cpu/cpu_backend.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "runtime/decode_session.h"
#include "train/bpe_trainer.h"
#include "train/evaluate.h"
#include "train/gpt2_trainer.h"
#include "train/llama_trainer.h"
#include "train/train_ops.h"
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

LlamaShape tinyLlama(int kvHeads, bool tie) {
    LlamaShape s;
    s.nLayer = 2;
    s.nHead = 4;
    s.nHeadKv = kvHeads;
    s.nEmbd = 16;
    s.nFf = 24;
    s.nCtx = 6;
    s.nVocab = 300;
    s.tieOutput = tie;
    return s;
}

std::vector<float> randomVector(size_t n, unsigned seed, float sd = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, sd);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

// Checks d(Σ r ⊙ f(x))/dx from backward against central differences, for every element of x.
//   forward(out) computes f from x (which the check perturbs); backward(dx, r) adds the gradient.
void checkLayer(const char* what, std::vector<float>& x, size_t outSize,
                const std::function<void(std::vector<float>&)>& forward,
                const std::function<void(std::vector<float>&, const std::vector<float>&)>& backward,
                double h = 1e-2) {
    const std::vector<float> r = randomVector(outSize, 99);
    std::vector<float> out(outSize), dx(x.size(), 0.0f);
    forward(out);
    backward(dx, r);
    auto loss = [&] {
        forward(out);
        double l = 0;
        for (size_t i = 0; i < outSize; ++i) l += double(r[i]) * out[i];
        return l;
    };
    int large = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        const float keep = x[i];
        x[i] = keep + static_cast<float>(h);
        const double up = loss();
        x[i] = keep - static_cast<float>(h);
        const double down = loss();
        x[i] = keep;
        const double numeric = (up - down) / (2 * h);
        const double err = std::abs(numeric - dx[i]);
        if (err > 3e-3 + 2e-2 * std::abs(numeric))
            qWarning() << what << "element" << i << "numeric" << numeric << "analytic" << dx[i];
        QVERIFY(err <= 3e-3 + 2e-2 * std::abs(numeric));
        large += std::abs(numeric) > 1e-2;
    }
    QVERIFY2(large > static_cast<int>(x.size()) / 4, what);  // real gradients, not only zeros
}

// d(loss)/d(w) from backward() against central differences for a sample of weights of every
// tensor; returns how many had a gradient above 0.01.
int checkWholeModel(Trainer& t, int V, int stride) {
    const int B = 2, T = 6;
    const Batch batch = randomBatch(B, T, V, 4);
    t.forward(batch.inputs.data(), batch.targets.data(), B, T);
    t.zeroGrad();
    t.backward();
    const std::vector<float> grad = t.gradients();
    std::vector<float>& w = t.parameters();
    std::mt19937 rng(5);
    int large = 0;
    for (size_t i = 0; i < w.size(); i += 1 + rng() % static_cast<unsigned>(stride)) {
        const float keep = w[i], h = 1e-2f;
        w[i] = keep + h;
        const double up = t.forward(batch.inputs.data(), batch.targets.data(), B, T);
        w[i] = keep - h;
        const double down = t.forward(batch.inputs.data(), batch.targets.data(), B, T);
        w[i] = keep;
        const double numeric = (up - down) / (2.0 * h);
        const double err = std::abs(numeric - grad[i]);
        if (err > 2e-3 + 2e-2 * std::abs(numeric))
            qWarning() << "parameter" << i << "numeric" << numeric << "analytic" << grad[i];
        if (err > 2e-3 + 2e-2 * std::abs(numeric)) return -1;
        large += std::abs(numeric) > 1e-2;
    }
    return large;
}

// max |a − b| / max |b|
double relativeDiff(const std::vector<float>& a, const std::vector<float>& b) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, double(std::abs(a[i] - b[i])));
        scale = std::max(scale, double(std::abs(b[i])));
    }
    return diff / scale;
}

std::string repeatedText(int times) {
    std::string text;
    for (int i = 0; i < times; ++i) text += kText;
    return text;
}

TrainOptions tinyRun(TrainArch arch) {
    TrainOptions o;
    o.arch = arch;
    o.shape = tinyShape();
    o.shape.nEmbd = 16;
    o.shape.nHead = 4;
    o.shape.nCtx = 16;
    o.shape.nVocab = 320;
    o.nHeadKv = 2;
    o.nFf = 32;
    o.steps = 60;
    o.batch = 4;
    o.lr = 1e-2f;
    o.minLr = 1e-3f;
    o.warmup = 5;
    o.evalEvery = 30;
    return o;
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

    // --- layers of the llama trainer, each against finite differences ---

    void rmsNormBackwardEqualsFiniteDifferences() {
        const int N = 3, C = 8;
        std::vector<float> x = randomVector(N * C, 1), w = randomVector(C, 2);
        for (float& v : w) v += 1.0f;
        std::vector<float> rstd(N);
        auto fwd = [&](std::vector<float>& out) {
            train::rmsNormForward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
        };
        std::vector<float> dw(C);
        checkLayer("RMSNorm input", x, N * C, fwd,
                   [&](std::vector<float>& dx, const std::vector<float>& r) {
                       train::rmsNormBackward(dx.data(), dw.data(), r.data(), x.data(), w.data(),
                                              rstd.data(), N, C);
                   });
        checkLayer("RMSNorm weight", w, N * C, fwd,
                   [&](std::vector<float>& dwOut, const std::vector<float>& r) {
                       std::vector<float> dx(N * C);
                       std::vector<float> out(N * C);
                       fwd(out);
                       train::rmsNormBackward(dx.data(), dwOut.data(), r.data(), x.data(), w.data(),
                                              rstd.data(), N, C);
                   });
    }

    void ropeBackwardEqualsFiniteDifferences() {
        const int B = 2, T = 5, hd = 4, heads = 3, R = heads * hd;
        RopeConfig rope;
        rope.type = RopeType::Adjacent;
        rope.nRot = hd;
        std::vector<float> cosv(T * hd / 2), sinv(cosv.size());
        for (int t = 0; t < T; ++t)
            ropeCosSin(rope, t, cosv.data() + t * hd / 2, sinv.data() + t * hd / 2);
        std::vector<float> x = randomVector(B * T * R, 3);
        checkLayer(
            "RoPE", x, x.size(),
            [&](std::vector<float>& out) {
                out = x;
                train::ropeRotate(out.data(), rope, cosv.data(), sinv.data(), B, T, R, heads, hd,
                                  false);
            },
            [&](std::vector<float>& dx, const std::vector<float>& r) {
                std::vector<float> d = r;
                train::ropeRotate(d.data(), rope, cosv.data(), sinv.data(), B, T, R, heads, hd,
                                  true);
                for (size_t i = 0; i < d.size(); ++i) dx[i] += d[i];
            });
        // the forward is the app's rotation: ropeApply on every head at its position
        std::vector<float> mine = x, app = x;
        train::ropeRotate(mine.data(), rope, cosv.data(), sinv.data(), B, T, R, heads, hd, false);
        for (int b = 0; b < B; ++b)
            for (int t = 0; t < T; ++t)
                for (int h = 0; h < heads; ++h)
                    ropeApply(rope, app.data() + (b * T + t) * R + h * hd, cosv.data() + t * hd / 2,
                              sinv.data() + t * hd / 2);
        QCOMPARE(mine, app);
    }

    void swigluBackwardEqualsFiniteDifferences() {
        const int N = 3, F = 5;
        std::vector<float> gu = randomVector(N * 2 * F, 4, 1.5f);
        checkLayer(
            "SwiGLU", gu, N * F,
            [&](std::vector<float>& out) { train::swigluForward(out.data(), gu.data(), N, F); },
            [&](std::vector<float>& dgu, const std::vector<float>& r) {
                train::swigluBackward(dgu.data(), r.data(), gu.data(), N, F);
            });
    }

    void gqaAttentionBackwardEqualsFiniteDifferences_data() {
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("B");
        QTest::addColumn<int>("T");
        QTest::addColumn<int>("hs");
        QTest::newRow("MHA 4/4") << 4 << 2 << 4 << 3;
        QTest::newRow("GQA 4/2") << 2 << 2 << 4 << 3;
        QTest::newRow("MQA 4/1") << 1 << 2 << 4 << 3;
        // 70 positions: three of the causal blocks of 32 query rows, the last partial; head size
        // 8 and 70 keys reach the vector kernels
        QTest::newRow("GQA 4/2, 70 positions") << 2 << 1 << 70 << 8;
    }
    void gqaAttentionBackwardEqualsFiniteDifferences() {
        QFETCH(int, kvHeads);
        QFETCH(int, B);
        QFETCH(int, T);
        QFETCH(int, hs);
        const int NH = 4, R = (NH + 2 * kvHeads) * hs;
        std::vector<float> qkv = randomVector(B * T * R, 5);
        std::vector<float> att(B * NH * T * T);
        checkLayer(
            "attention", qkv, B * T * NH * hs,
            [&](std::vector<float>& out) {
                train::attentionForward(out.data(), att.data(), qkv.data(), B, T, NH, kvHeads, hs,
                                        ThreadPool::shared());
            },
            [&](std::vector<float>& dqkv, const std::vector<float>& r) {
                train::attentionBackward(dqkv.data(), r.data(), att.data(), qkv.data(), B, T, NH,
                                         kvHeads, hs, ThreadPool::shared());
            });
    }

    void llamaBackwardEqualsFiniteDifferences_data() {
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<bool>("tie");
        QTest::addColumn<float>("dropout");
        QTest::newRow("GQA 4/2, own output") << 2 << false << 0.0f;
        QTest::newRow("MQA 4/1, tied output") << 1 << true << 0.0f;
        // the same masks in every pass of one seed, so finite differences see them too
        QTest::newRow("GQA 4/2, residual dropout 0.3") << 2 << false << 0.3f;
    }
    void llamaBackwardEqualsFiniteDifferences() {
        QFETCH(int, kvHeads);
        QFETCH(bool, tie);
        QFETCH(float, dropout);
        LlamaTrainer t(tinyLlama(kvHeads, tie), 3, 0.3f);
        t.setDropout(dropout, 17);
        const int large = checkWholeModel(t, 300, 23);
        QVERIFY(large > 50);
    }

    // Dropout: with p > 0 the loss of a batch changes with the seed and not within one seed;
    // setDropout(0) gives back the model's own loss.
    void llamaDropoutIsSeededAndOffForEvaluation() {
        LlamaTrainer t(tinyLlama(2, false), 7, 0.3f);
        const Batch batch = randomBatch(4, 6, 300, 8);
        const auto loss = [&] {
            return t.forward(batch.inputs.data(), batch.targets.data(), 4, 6);
        };
        const float plain = loss();
        t.setDropout(0.5f, 1);
        const float a = loss();
        QCOMPARE(loss(), a);
        t.setDropout(0.5f, 2);
        const float b = loss();
        QVERIFY(a != plain && b != plain && a != b);
        t.setDropout(0, 0);
        QCOMPARE(loss(), plain);
    }

    // The masks: a share p of zeros (8 × 2 × 24 × 16 = 6,144 draws at p = 0.3: within 5 sigma,
    // 0.03), the rest 1 / (1 - p) exactly, and other masks for another seed.
    void llamaDropoutMasksDropTheShareAsked() {
        LlamaTrainer t(tinyLlama(2, false), 7, 0.3f);
        const Batch batch = randomBatch(4, 6, 300, 8);
        t.setDropout(0.3f, 11);
        t.forward(batch.inputs.data(), batch.targets.data(), 4, 6);
        const std::vector<float> a = t.dropoutKeep();
        QVERIFY(!a.empty());
        size_t zeros = 0;
        for (float k : a) {
            if (k == 0)
                ++zeros;
            else
                QCOMPARE(k, 1.0f / (1.0f - 0.3f));
        }
        const double share = double(zeros) / double(a.size());
        QVERIFY2(std::abs(share - 0.3) < 5 * std::sqrt(0.3 * 0.7 / double(a.size())),
                 qPrintable(QString::number(share)));
        t.setDropout(0.3f, 12);
        t.forward(batch.inputs.data(), batch.targets.data(), 4, 6);
        QVERIFY(t.dropoutKeep() != a);
    }

    // In a run: each step draws its own masks (the training loss of one step differs from the
    // same step without dropout), while the held-out loss uses none: with a learning rate of 0
    // the weights stay as they are, so it equals the run without dropout's.
    void dropoutTrainsButNeverEvaluates() {
        TrainOptions o = tinyRun(TrainArch::Llama);
        o.steps = 2;
        o.evalEvery = 1;
        o.lr = 0.0f;
        o.minLr = 0.0f;
        const std::string text = repeatedText(20);
        std::vector<TrainLogRow> plain, dropped;
        trainModel(text, o, [&](const TrainLogRow& r) { plain.push_back(r); });
        o.dropout = 0.5f;
        trainModel(text, o, [&](const TrainLogRow& r) { dropped.push_back(r); });
        QCOMPARE(dropped.size(), size_t(2));
        for (size_t i = 0; i < 2; ++i) {
            QVERIFY(dropped[i].trainLoss != plain[i].trainLoss);
            QCOMPARE(dropped[i].heldOutLoss, plain[i].heldOutLoss);
        }
        o.dropout = 1.0f;
        QVERIFY_THROWS_EXCEPTION(Error, trainModel(text, o, [](const TrainLogRow&) {}));
    }

    void llamaAdamwStepsLowerTheLoss() {
        LlamaTrainer t(tinyLlama(2, false), 7);
        const Batch batch = randomBatch(4, 6, 300, 8);
        const float first = t.forward(batch.inputs.data(), batch.targets.data(), 4, 6);
        QVERIFY(std::abs(first - std::log(300.0f)) < 0.1f);
        AdamW opt;
        opt.lr = 1e-2f;
        float loss = first;
        for (int step = 1; step <= 20; ++step) {
            t.zeroGrad();
            t.backward();
            t.clipGradients(1.0f);
            t.update(opt, step);
            loss = t.forward(batch.inputs.data(), batch.targets.data(), 4, 6);
        }
        QVERIFY2(loss < first - 1.0f, qPrintable(QString("%1 -> %2").arg(first).arg(loss)));
    }

    // The llama trainer's file is an ordinary llama model (GQA, RoPE, BOS): the app's CPU
    // backend computes the trainer's logits from it, through the file written to disk.
    void llamaExportComputesTheTrainersLogits_data() {
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<bool>("tie");
        QTest::newRow("GQA 4/2, own output") << 2 << false;
        QTest::newRow("MQA 4/1, tied output") << 1 << true;
    }
    void llamaExportComputesTheTrainersLogits() {
        QFETCH(int, kvHeads);
        QFETCH(bool, tie);
        BpeVocabulary vocab = trainBpe(kText, 279);
        vocab.addBeginOfText();
        LlamaShape shape = tinyLlama(kvHeads, tie);
        shape.nVocab = static_cast<int>(vocab.tokens.size());
        LlamaTrainer t(shape, 11, 0.3f);
        Batch batch = randomBatch(1, 6, shape.nVocab, 12);
        batch.inputs[0] = *vocab.beginOfText;
        t.forward(batch.inputs.data(), batch.targets.data(), 1, 6);
        const std::vector<float> expected = t.logits();

        QTemporaryDir dir(QDir::currentPath() + "/llama-XXXXXX");
        const std::string path = (dir.path() + "/tiny-llama.gguf").toStdString();
        t.toGguf(vocab, "tiny llama").write(path);
        auto model = std::make_shared<const Model>(Model::load(path));
        const ModelConfig& c = model->config;
        QCOMPARE(c.archName, std::string("llama"));
        QVERIFY(c.arch == Arch::Llama);
        QCOMPARE(c.nHead, 4);
        QCOMPARE(c.nHeadKv, kvHeads);
        QCOMPARE(c.nFf, 24);
        QCOMPARE(c.nVocab, 280);
        QVERIFY(c.rope.type == RopeType::Adjacent);
        QCOMPARE(c.rope.nRot, 4);
        QCOMPARE(model->output.empty(), tie);
        QVERIFY(c.addBos);
        QCOMPARE(model->tokenizer.bos(), std::optional<int32_t>(279));
        QVERIFY(model->tokenizer.isSpecial(279));
        QCOMPARE(model->tokenizer.decode(model->tokenizer.encode(kText)), std::string(kText));
        CpuBackend backend(model);
        std::vector<float> got;
        backend.forward(batch.inputs, true, got, nullptr);
        QCOMPARE(got.size(), expected.size());
        const double rel = relativeDiff(got, expected);
        QVERIFY2(rel < 1e-4, qPrintable(QString::number(rel)));

        // Decoding: the session starts the prompt with BOS, and its cached step's distribution
        // is the trainer's at that position.
        DecodeSession session(std::make_shared<CpuBackend>(model), model->tokenizer);
        session.prefill("And God");
        QCOMPARE(session.tokens().front(), int32_t{279});
        session.step();
        const std::vector<int32_t> ids = session.tokens();  // BOS, the prompt, one new token
        QVERIFY(ids.size() <= 6);
        const std::vector<int32_t> none(ids.size(), 0);
        t.forward(ids.data(), none.data(), 1, static_cast<int>(ids.size()));
        const std::vector<float> last(t.logits().end() - shape.nVocab, t.logits().end());
        const std::vector<float> stepped(session.logits().begin(), session.logits().end());
        const double relStep = relativeDiff(stepped, last);
        QVERIFY2(relStep < 1e-4, qPrintable(QString::number(relStep)));
    }

    // Line windows start with BOS then a line's first token; repeated ones copy their span.
    void windowsStartAtLinesWithBosAndRepeatSpans() {
        BpeVocabulary vocab = trainBpe(kText, 279);
        vocab.addBeginOfText();
        const Tokenizer tok = vocab.tokenizer();
        const std::vector<int32_t> ids = tok.encode(repeatedText(4));
        const int T = 12, B = 64;
        std::vector<int32_t> in(B * T), tg(B * T);
        std::mt19937_64 rng(1);
        const TrainingWindows plain(ids, tok, vocab.bos(), T, true, 0.0f);
        const std::string lines = std::string(1, '\n').append(repeatedText(4));
        QVERIFY(plain.lineStarts().size() >= 4 * 4 - 1);
        plain.fill(in.data(), tg.data(), B, rng);
        for (int b = 0; b < B; ++b) {
            QCOMPARE(in[b * T], vocab.bos());
            // the window's text begins a line of the text
            std::string window = "\n";
            window +=
                tok.decode(std::vector<int32_t>(tg.begin() + b * T, tg.begin() + (b + 1) * T));
            QVERIFY(lines.find(window) != std::string::npos);
            for (int t = 1; t < T; ++t) QCOMPARE(in[b * T + t], tg[b * T + t - 1]);
        }
        const TrainingWindows repeats(ids, tok, vocab.bos(), T, true, 1.0f);
        repeats.fill(in.data(), tg.data(), B, rng);
        for (int b = 0; b < B; ++b) {
            QCOMPARE(in[b * T], vocab.bos());
            // sequence: BOS, s0..s5, s0..s5: the second half of the targets repeats the first
            for (int t = 0; t < T / 2; ++t) QCOMPARE(tg[b * T + T / 2 + t], tg[b * T + t]);
        }
    }

    // Random repeats: BOS, m tokens drawn from the text's own, the same m again and again; the
    // first copy's targets and the second copy's first are masked (-1), every later target is
    // the token m places back; m varies from window to window within [max(2, T/8), T/2].
    void randomRepeatWindowsCopyTokensOfTheText() {
        BpeVocabulary vocab = trainBpe(kText, 279);
        vocab.addBeginOfText();
        const Tokenizer tok = vocab.tokenizer();
        const std::vector<int32_t> ids = tok.encode(repeatedText(4));
        const std::set<int32_t> textTokens(ids.begin(), ids.end());
        const int T = 32, B = 64;
        std::vector<int32_t> in(B * T), tg(B * T);
        std::mt19937_64 rng(3);
        const TrainingWindows random(ids, tok, vocab.bos(), T, true, 0.0f, 1.0f);
        random.fill(in.data(), tg.data(), B, rng);
        std::set<std::vector<int32_t>> firstCopies;
        std::set<int> spans;
        for (int b = 0; b < B; ++b) {
            const int32_t* x = in.data() + b * T;
            const int32_t* y = tg.data() + b * T;
            QCOMPARE(x[0], vocab.bos());
            int masked = 0;  // the first copy and the second's first token: not in the loss
            while (masked < T && y[masked] == -1) ++masked;
            const int m = masked - 1;
            QVERIFY2(m >= T / 8 && m <= T / 2, qPrintable(QString::number(m)));
            QCOMPARE(x[m + 1], x[1]);  // the span starts over after m tokens
            spans.insert(m);
            for (int t = 1; t < T; ++t) {
                QVERIFY(textTokens.count(x[t]));
                QVERIFY(x[t] != vocab.bos());
            }
            // target t is token t + 1 of the window: the one m places back, x[t + 1 - m]
            for (int t = m + 1; t < T; ++t) QCOMPARE(y[t], x[t + 1 - m]);
            firstCopies.insert(std::vector<int32_t>(x + 1, x + 1 + m));
        }
        QVERIFY(firstCopies.size() > B / 2);  // drawn, not taken from one place
        QVERIFY(spans.size() >= 5);           // no fixed offset finds the copy
    }

    // Text windows start at a line start, or with anyStartFraction at any token: BOS first
    // either way. A window's start is found by its tokens in the stream (every occurrence of its
    // first 12 tokens starts at a line start or none does, the text being repeated whole).
    void textWindowsMayStartAnywhere() {
        BpeVocabulary vocab = trainBpe(kText, 279);
        vocab.addBeginOfText();
        const Tokenizer tok = vocab.tokenizer();
        const std::vector<int32_t> ids = tok.encode(repeatedText(4));
        const int T = 16, B = 400;
        const auto shareAtLineStarts = [&](float anyStart) {
            const TrainingWindows w(ids, tok, vocab.bos(), T, true, 0.0f, 0.0f, false, anyStart);
            const std::set<size_t> starts(w.lineStarts().begin(), w.lineStarts().end());
            std::vector<int32_t> in(size_t(B) * T), tg(in.size());
            std::mt19937_64 rng(9);
            w.fill(in.data(), tg.data(), B, rng);
            int atLineStart = 0, bos = 0;
            for (int b = 0; b < B; ++b) {
                const int32_t* x = in.data() + size_t(b) * T;
                bos += x[0] == vocab.bos() ? 1 : 0;
                const auto it = std::search(ids.begin(), ids.end(), x + 1, x + 13);
                if (it != ids.end() && starts.count(size_t(it - ids.begin()))) ++atLineStart;
            }
            return std::pair(double(atLineStart) / B, bos);
        };
        const auto [none, bos0] = shareAtLineStarts(0.0f);
        const auto [half, bos1] = shareAtLineStarts(0.5f);
        const auto [all, bos2] = shareAtLineStarts(1.0f);
        QCOMPARE(bos0 + bos1 + bos2, 3 * B);
        QCOMPARE(none, 1.0);
        // anywhere: a line start only as often as line starts are among the positions
        QVERIFY2(all < 0.3, qPrintable(QString::number(all)));
        // half of them at a line start, the other half as the "anywhere" ones (±4 sd)
        QVERIFY2(std::abs(half - (0.5 + all / 2)) < 0.1, qPrintable(QString::number(half)));
    }

    // Random repeats drawn by frequency take each token as often as it occurs in the text: the
    // share of every token among the first copies follows its count in the stream (a binomial
    // tolerance of 5 standard deviations), where the uniform draw gives each distinct token the
    // same share whatever its count. The windows' shape is the uniform draw's (the test above).
    void randomRepeatsDrawnByFrequencyFollowTheText() {
        BpeVocabulary vocab = trainBpe(kText, 279);
        vocab.addBeginOfText();
        const Tokenizer tok = vocab.tokenizer();
        const std::vector<int32_t> ids = tok.encode(repeatedText(4));
        std::map<int32_t, double> count;
        for (int32_t id : ids) count[id] += 1;
        const int T = 32, B = 2000;
        bool copies = true;
        const auto drawnShares =
            [&](bool byFrequency) -> std::pair<std::map<int32_t, double>, double> {
            std::vector<int32_t> in(size_t(B) * T), tg(in.size());
            std::mt19937_64 rng(5);
            TrainingWindows(ids, tok, vocab.bos(), T, true, 0.0f, 1.0f, byFrequency)
                .fill(in.data(), tg.data(), B, rng);
            std::map<int32_t, double> drawn;
            double total = 0;
            for (int b = 0; b < B; ++b) {
                const int32_t* x = in.data() + size_t(b) * T;
                const int32_t* y = tg.data() + size_t(b) * T;
                int masked = 0;  // the first copy (m tokens) and the second's first
                while (y[masked] == -1) ++masked;
                const int m = masked - 1;
                for (int t = m + 1; t < T; ++t) copies = copies && y[t] == x[t + 1 - m];
                for (int t = 1; t <= m; ++t) drawn[x[t]] += 1, total += 1;  // the first copy
            }
            for (auto& [id, n] : drawn) n /= total;
            return std::pair(drawn, total);
        };
        const auto [byFreq, n] = drawnShares(true);
        const auto [uniform, n2] = drawnShares(false);
        QVERIFY(copies);  // still the copy task
        const double all = double(ids.size());
        int32_t common = ids[0];
        for (const auto& [id, c] : count)
            if (c > count[common]) common = id;
        for (const auto& [id, c] : count) {
            const double p = c / all;
            const double sd = std::sqrt(p * (1 - p) / n);
            const double got = byFreq.count(id) ? byFreq.at(id) : 0.0;
            QVERIFY2(std::abs(got - p) <= 5 * sd + 1e-9,
                     qPrintable(QString("token %1: drawn %2, text %3").arg(id).arg(got).arg(p)));
        }
        QVERIFY(!byFreq.count(vocab.bos()));
        // the commonest token: its share of the text by frequency, 1 / distinct uniformly
        const double pu = 1.0 / double(count.size());
        QVERIFY(std::abs(uniform.at(common) - pu) <= 5 * std::sqrt(pu * (1 - pu) / n2));
        QVERIFY(count[common] / all > 3 * pu);  // so that the two draws differ in this text
    }

    // Masked targets (< 0) are not in the loss: the mean is over the others, worked out here
    // from the softmax by hand, and their rows of the gradient are zero.
    void crossEntropySkipsMaskedTargets() {
        const int N = 3, V = 4;
        const std::vector<float> logits{1, 2, 3, 4, 0, 0, 0, 0, -1, 0.5f, 2, 0};
        const std::vector<int32_t> targets{2, -1, 0};
        std::vector<float> probs(N * V), dl(N * V);
        const float loss = train::crossEntropyForward(probs.data(), logits.data(), targets.data(),
                                                      N, V, ThreadPool::shared());
        const auto nll = [&](int row, int target) {
            double sum = 0;
            for (int j = 0; j < V; ++j) sum += std::exp(double(logits[size_t(row * V + j)]));
            return -(double(logits[size_t(row * V + target)]) - std::log(sum));
        };
        QVERIFY(std::abs(loss - (nll(0, 2) + nll(2, 0)) / 2) < 1e-6);
        train::crossEntropyBackward(dl.data(), probs.data(), targets.data(), N, V);
        for (int j = 0; j < V; ++j) {
            QCOMPARE(dl[size_t(V + j)], 0.0f);
            const float want0 = (probs[size_t(j)] - (j == 2 ? 1.0f : 0.0f)) / 2;
            const float want2 = (probs[size_t(2 * V + j)] - (j == 0 ? 1.0f : 0.0f)) / 2;
            QVERIFY(std::abs(dl[size_t(j)] - want0) < 1e-7f);
            QVERIFY(std::abs(dl[size_t(2 * V + j)] - want2) < 1e-7f);
        }
        const std::vector<int32_t> none{-1, -1, -1};
        QCOMPARE(train::crossEntropyForward(probs.data(), logits.data(), none.data(), N, V,
                                            ThreadPool::shared()),
                 0.0f);
    }

    // A resumed run may change the data mix (changeDataMix): it trains on the new mix, which the
    // checkpoint then records, so that a later resume keeps it; without it the checkpoint's mix
    // stays whatever the caller says.
    void resumeCanChangeTheDataMix() {
        TrainOptions o = tinyRun(TrainArch::Llama);
        o.steps = 6;
        o.warmup = 2;
        o.evalEvery = 2;
        o.repeatFraction = 0.5f;
        const std::string text = repeatedText(20);
        QTemporaryDir dir(QDir::currentPath() + "/ckpt-XXXXXX");
        o.checkpointPath = (dir.path() + "/run.ckpt").toStdString();
        o.checkpointEvery = 1;
        o.stopAfter = 3;
        trainModel(text, o, [](const TrainLogRow&) {});
        const auto mixOf = [&] {
            const GgufFile f = GgufFile::open(o.checkpointPath);
            return std::pair(f.getFloat("train.repeat_fraction").value_or(-1),
                             f.getFloat("train.random_repeat_fraction").value_or(-1));
        };
        QCOMPARE(mixOf(), std::pair(0.5, 0.0));

        TrainOptions same;  // not changing: the checkpoint's mix, whatever is asked
        same.resumeFrom = o.checkpointPath;
        same.randomRepeatFraction = 1.0f;
        same.stopAfter = 3;  // nothing to run: the options only
        same.randomRepeatByFrequency = true;
        QCOMPARE(resumedOptions(o.checkpointPath, same).randomRepeatFraction, 0.0f);
        QVERIFY(!resumedOptions(o.checkpointPath, same).randomRepeatByFrequency);

        TrainOptions changed;
        changed.resumeFrom = o.checkpointPath;
        changed.checkpointPath = o.checkpointPath;
        changed.checkpointEvery = 1;
        changed.evalEvery = 2;
        changed.repeatFraction = 0.0f;
        changed.randomRepeatFraction = 1.0f;
        changed.dropout = 0.25f;
        changed.randomRepeatByFrequency = true;
        changed.anyStartFraction = 0.5f;
        changed.changeDataMix = true;
        changed.stopAfter = 4;
        std::vector<float> losses;
        trainModel(text, changed, [&](const TrainLogRow& r) { losses.push_back(r.trainLoss); });
        QCOMPARE(losses.size(), size_t(1));
        QCOMPARE(mixOf(), std::pair(0.0, 1.0));
        TrainOptions later;  // resumes with the recorded mix
        QCOMPARE(resumedOptions(o.checkpointPath, later).randomRepeatFraction, 1.0f);
        QCOMPARE(resumedOptions(o.checkpointPath, later).dropout, 0.25f);
        QVERIFY(resumedOptions(o.checkpointPath, later).randomRepeatByFrequency);
        QCOMPARE(resumedOptions(o.checkpointPath, later).anyStartFraction, 0.5f);
    }

    // A resumed run may stretch its schedule (changeSteps): it runs on to the new last step with
    // the cosine recomputed for that length (the lr jumps to the new curve's value), and the
    // checkpoint records the length; a length not past the checkpoint's step is refused.
    void resumeCanStretchTheSchedule() {
        TrainOptions o = tinyRun(TrainArch::Llama);
        o.steps = 6;
        o.warmup = 2;
        o.evalEvery = 100;
        const std::string text = repeatedText(20);
        QTemporaryDir dir(QDir::currentPath() + "/ckpt-XXXXXX");
        o.checkpointPath = (dir.path() + "/run.ckpt").toStdString();
        o.checkpointEvery = 1;
        o.stopAfter = 6;
        trainModel(text, o, [](const TrainLogRow&) {});

        TrainOptions longer;
        longer.resumeFrom = o.checkpointPath;
        longer.checkpointPath = o.checkpointPath;
        longer.checkpointEvery = 1;
        longer.evalEvery = 100;
        longer.steps = 12;
        longer.changeSteps = true;
        std::vector<TrainLogRow> rows;
        trainModel(text, longer, [&](const TrainLogRow& r) { rows.push_back(r); });
        QCOMPARE(rows.size(), size_t(6));  // steps 7..12
        for (size_t i = 0; i < rows.size(); ++i) {
            const int step = 7 + static_cast<int>(i);
            QCOMPARE(rows[i].step, step);
            // by hand: warm-up 2, then a cosine from 1e-2 to 1e-3 over steps 2..12
            const double want =
                1e-3 + (1e-2 - 1e-3) * 0.5 * (1 + std::cos(3.141592653589793 * (step - 2) / 10.0));
            QVERIFY2(
                std::abs(rows[i].lr - want) < 1e-7,
                qPrintable(QString("step %1: lr %2, want %3").arg(step).arg(rows[i].lr).arg(want)));
        }
        QCOMPARE(checkpointStep(o.checkpointPath), 12);
        TrainOptions later;  // a later resume keeps the stretched length
        QCOMPARE(resumedOptions(o.checkpointPath, later).steps, 12);

        TrainOptions same = longer;  // its own length again: nothing to change, nothing refused
        QCOMPARE(resumedOptions(o.checkpointPath, same).steps, 12);
        TrainOptions tooShort = longer;
        tooShort.steps = 10;  // the checkpoint is at step 12 now
        QVERIFY_THROWS_EXCEPTION(Error, resumedOptions(o.checkpointPath, tooShort));
    }

    // A run killed after step 5, its last checkpoint at step 3, left five rows in its loss log;
    // resuming cuts the log back to the checkpoint's step, so steps 4 and 5 are not logged twice.
    void resumingCutsTheLossLogBackToTheCheckpoint() {
        TrainOptions o = tinyRun(TrainArch::Llama);
        o.steps = 6;
        o.warmup = 2;
        QTemporaryDir dir(QDir::currentPath() + "/ckpt-XXXXXX");
        o.checkpointPath = (dir.path() + "/run.ckpt").toStdString();
        o.checkpointEvery = 2;
        o.stopAfter = 3;  // checkpoints at 2 and at the stop
        const std::string log = (dir.path() + "/log.csv").toStdString();
        {
            std::ofstream out(log);
            out << "step,train_loss,held_out_loss,lr,grad_norm,ms\n";
            trainModel(repeatedText(20), o, [&](const TrainLogRow& r) {
                out << r.step << "," << r.trainLoss << ",nan,0.001,1,1\n";
            });
            out << "4,3.5,nan,0.001,1,1\n5,3.4,nan,0.001,1,1\n";  // past the checkpoint
        }
        QCOMPARE(checkpointStep(o.checkpointPath), 3);
        trimLossLog(log, checkpointStep(o.checkpointPath));
        std::ifstream in(log);
        std::vector<std::string> lines;
        for (std::string line; std::getline(in, line);) lines.push_back(line);
        QCOMPARE(lines.size(), size_t{4});
        QCOMPARE(lines[0], std::string("step,train_loss,held_out_loss,lr,grad_norm,ms"));
        for (int k = 1; k <= 3; ++k)
            QVERIFY(lines[static_cast<size_t>(k)].rfind(std::to_string(k) + ",", 0) == 0);
        QVERIFY(!QFile::exists(QString::fromStdString(log + ".tmp")));
        trimLossLog(log + ".absent", 2);  // no log: nothing to cut, nothing made
        QVERIFY(!QFile::exists(QString::fromStdString(log + ".absent")));
        QVERIFY_THROWS_EXCEPTION(Error, checkpointStep(log));  // not a checkpoint
    }

    // A run of 6 steps equals one of 3 that wrote a checkpoint and a resumed one of 3 more,
    // bit for bit (the written model files are the same bytes).
    void resumedRunEqualsAnUninterruptedOne_data() {
        QTest::addColumn<bool>("llama");
        QTest::newRow("gpt2, line windows") << false;
        QTest::newRow("llama, repeated spans, random repeats, dropout") << true;
    }
    void resumedRunEqualsAnUninterruptedOne() {
        QFETCH(bool, llama);
        TrainOptions o = tinyRun(llama ? TrainArch::Llama : TrainArch::Gpt2);
        o.lineWindows = true;
        o.steps = 6;
        o.warmup = 2;
        o.evalEvery = 2;
        if (llama) {
            o.repeatFraction = 0.5f;
            o.randomRepeatFraction = 0.5f;
            o.dropout = 0.2f;  // each step's masks come from the seed and the step
        }
        const std::string text = repeatedText(20);
        const auto noLog = [](const TrainLogRow&) {};
        const std::vector<uint8_t> straight = trainModel(text, o, noLog).model.toBytes();

        QTemporaryDir dir(QDir::currentPath() + "/ckpt-XXXXXX");
        TrainOptions first = o;
        first.checkpointPath = (dir.path() + "/run.ckpt").toStdString();
        first.checkpointEvery = 2;
        first.stopAfter = 3;
        std::vector<int> steps;
        trainModel(text, first, [&](const TrainLogRow& r) { steps.push_back(r.step); });
        QCOMPARE(steps, (std::vector<int>{1, 2, 3}));
        QVERIFY(!QFile::exists(QString::fromStdString(first.checkpointPath + ".tmp")));

        TrainOptions second;  // everything else comes from the checkpoint
        second.resumeFrom = first.checkpointPath;
        second.evalEvery = 2;
        second.name = o.name;
        steps.clear();
        const TrainResult resumed =
            trainModel(text, second, [&](const TrainLogRow& r) { steps.push_back(r.step); });
        QCOMPARE(steps, (std::vector<int>{4, 5, 6}));
        QVERIFY(resumed.model.toBytes() == straight);
        // trained on windows that start with BOS, the model's prompts start with it (gpt2 too)
        QVERIFY(Model::fromGguf(GgufFile::fromBytes(straight, "run.gguf")).config.addBos);
        // another text cannot continue it
        QVERIFY_THROWS_EXCEPTION(Error, trainModel(text + "x", second, [](const TrainLogRow&) {}));
    }

    // A short llama run learns, and its file scores the held-out text through the app.
    void aShortLlamaRunLearns() {
        TrainOptions o = tinyRun(TrainArch::Llama);
        o.repeatFraction = 0.25f;
        std::vector<TrainLogRow> log;
        TrainResult r =
            trainModel(repeatedText(40), o, [&](const TrainLogRow& row) { log.push_back(row); });
        QCOMPARE(log.size(), size_t{60});
        QVERIFY(log.back().trainLoss < log.front().trainLoss - 2.0f);
        QVERIFY(log.back().heldOutLoss < log[29].heldOutLoss || log.back().heldOutLoss < 2.0f);
        auto model = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(r.model.toBytes(), "run.gguf")));
        QCOMPARE(model->config.nVocab, 320);
        QCOMPARE(model->tokenizer.bos(), std::optional<int32_t>(319));
        CpuBackend backend(model);
        // with BOS first, scoring predicts every held-out token, the first from BOS alone
        const TextScore s = scoreText(backend, model->tokenizer, r.heldOutText);
        QCOMPARE(s.tokens, model->tokenizer.encode(r.heldOutText).size());
        const double natsPerToken = s.bits / static_cast<double>(s.tokens) * std::log(2.0);
        // (Not compared with the trainer's held-out loss: its windows start at lines, these
        // every 15 tokens, mid-line, where a 16-token model has little to go on.)
        QVERIFY2(natsPerToken < std::log(320.0) - 1.5, qPrintable(QString::number(natsPerToken)));
    }

    // --vocab-from: another model's tokenizer, reused as it is (keys copied, same ids).
    void vocabularyFromAnotherModel() {
        const BpeVocabulary learned = trainBpe(kText, 300);
        Gpt2Shape shape = tinyShape();
        shape.nVocab = static_cast<int>(learned.tokens.size());
        const GgufFile file =
            GgufFile::fromBytes(Gpt2Trainer(shape, 1).toGguf(learned, "src").toBytes(), "src.gguf");
        const BpeVocabulary copied = BpeVocabulary::fromGguf(file);
        QCOMPARE(copied.tokenizer().encode(kText), learned.tokenizer().encode(kText));
        QCOMPARE(copied.bos(), learned.endOfText);
        TrainOptions o = tinyRun(TrainArch::Llama);
        o.vocab = copied;
        o.steps = 2;
        const TrainResult r = trainModel(repeatedText(20), o, [](const TrainLogRow&) {});
        const Model m = Model::fromGguf(GgufFile::fromBytes(r.model.toBytes(), "draft.gguf"));
        QCOMPARE(m.config.nVocab, static_cast<int>(learned.tokens.size()));
        // its windows started with BOS (the end-of-text token here), so its prompts do too
        QVERIFY(m.config.addBos);
        QCOMPARE(m.tokenizer.bos(), std::optional<int32_t>(learned.endOfText));
        QCOMPARE(m.tokenizer.encode(kText), learned.tokenizer().encode(kText));
    }
};

QTEST_GUILESS_MAIN(TstGpt2Trainer)
#include "tst_gpt2_trainer.moc"
