// trainModel: data split, BPE, the loop of forward, backward, clip and AdamW, held-out losses.
#include "train/training_run.h"
#include "core/numeric.h"

#include <chrono>
#include <random>

#include "core/error.h"

namespace kvscope {

float scheduledLr(const TrainOptions& o, int step) {
    if (step <= o.warmup)
        return o.lr * static_cast<float>(step) / static_cast<float>(std::max(1, o.warmup));
    const double progress = static_cast<double>(step - o.warmup) / std::max(1, o.steps - o.warmup);
    const double cosine = 0.5 * (1 + std::cos(kPi * std::min(1.0, progress)));
    return static_cast<float>(o.minLr + (o.lr - o.minLr) * cosine);
}

TrainResult trainModel(const std::string& text, const TrainOptions& o,
                       const std::function<void(const TrainLogRow&)>& onLog) {
    // 1. split: the last fraction of the text, from a line break on, is held out
    size_t cut = static_cast<size_t>(static_cast<double>(text.size()) * (1.0 - o.heldOut));
    cut =
        std::min(text.size(), text.find('\n', cut) == std::string::npos ? text.size()
                                                                        : text.find('\n', cut) + 1);
    const std::string train = text.substr(0, cut);
    TrainResult result{{}, GgufWriter{}, text.substr(cut), NAN};

    // 2. vocabulary from the training part only
    result.vocab = trainBpe(train, o.shape.nVocab);
    const Tokenizer tok = result.vocab.tokenizer();
    const std::vector<int32_t> trainIds = tok.encode(train),
                               heldIds = tok.encode(result.heldOutText);
    const int T = o.shape.nCtx;
    if (trainIds.size() < static_cast<size_t>(T + 1) * 2)
        throw Error("the training text has " + std::to_string(trainIds.size()) +
                    " tokens; a context of " + std::to_string(T) + " needs at least " +
                    std::to_string((T + 1) * 2));
    Gpt2Shape shape = o.shape;
    shape.nVocab = static_cast<int>(tok.vocabSize());
    Gpt2Trainer model(shape, o.seed);

    // 3. batches of B random windows of T + 1 tokens (inputs, then targets shifted by one)
    std::mt19937_64 rng(o.seed);
    std::vector<int32_t> inputs(static_cast<size_t>(o.batch) * T), targets(inputs.size());
    auto fill = [&](const std::vector<int32_t>& ids, std::mt19937_64& r) {
        std::uniform_int_distribution<size_t> start(0, ids.size() - static_cast<size_t>(T) - 1);
        for (int b = 0; b < o.batch; ++b) {
            const size_t s = start(r);
            for (int t = 0; t < T; ++t) {
                inputs[static_cast<size_t>(b * T + t)] = ids[s + static_cast<size_t>(t)];
                targets[static_cast<size_t>(b * T + t)] = ids[s + static_cast<size_t>(t) + 1];
            }
        }
    };
    auto heldOutLoss = [&]() {
        if (heldIds.size() < static_cast<size_t>(T + 1)) return NAN;
        std::mt19937_64 fixed(o.seed + 1);  // the same windows every time
        double sum = 0;
        for (int i = 0; i < o.evalBatches; ++i) {
            fill(heldIds, fixed);
            sum += model.forward(inputs.data(), targets.data(), o.batch, T);
        }
        return static_cast<float>(sum / o.evalBatches);
    };

    AdamW adam;
    adam.weightDecay = o.weightDecay;
    for (int step = 1; step <= o.steps; ++step) {
        const auto t0 = std::chrono::steady_clock::now();
        TrainLogRow row;
        row.step = step;
        row.lr = adam.lr = scheduledLr(o, step);
        fill(trainIds, rng);
        row.trainLoss = model.forward(inputs.data(), targets.data(), o.batch, T);
        model.zeroGrad();
        model.backward();
        row.gradNorm = model.clipGradients(o.clip);
        model.update(adam, step);
        row.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count();
        if (step % o.evalEvery == 0 || step == o.steps) row.heldOutLoss = heldOutLoss();
        if (step == o.steps) result.finalHeldOutLoss = row.heldOutLoss;
        onLog(row);
    }
    result.model = model.toGguf(result.vocab, o.name);
    return result;
}

}  // namespace kvscope
