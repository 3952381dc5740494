// A whole training run: split the text, learn the vocabulary, train a GPT-2 with a learning-rate
// schedule, evaluate on the held-out part, and hand back the model as GGUF.
#pragma once

#include <cmath>
#include <functional>
#include <string>

#include "gguf/gguf.h"
#include "train/bpe_trainer.h"
#include "train/gpt2_trainer.h"

namespace kvscope {

struct TrainOptions {
    Gpt2Shape shape;  // nVocab is the vocabulary size to learn
    int batch = 8;    // sequences per step, each shape.nCtx tokens
    int steps = 2000;
    float lr = 1e-3f;     // peak, after a linear warm-up
    float minLr = 1e-4f;  // end of the cosine decay
    int warmup = 100;
    float clip = 1.0f;  // global gradient norm
    float weightDecay = 0.1f;
    uint64_t seed = 1337;
    double heldOut = 0.05;  // the last fraction of the text, cut at a line break
    int evalEvery = 100;    // steps between held-out losses
    int evalBatches = 4;
    std::string name = "kvscope";
};

struct TrainLogRow {
    int step = 0;
    float trainLoss = 0;      // nats per token, this step's batch
    float heldOutLoss = NAN;  // nats per token, when evaluated at this step
    float lr = 0;
    float gradNorm = 0;
    double ms = 0;  // wall time of the step
};

struct TrainResult {
    BpeVocabulary vocab;
    GgufWriter model;
    std::string heldOutText;  // the part never trained on
    float finalHeldOutLoss = NAN;
};

// The learning rate at step (1-based): linear warm-up to lr, then cosine to minLr.
float scheduledLr(const TrainOptions& o, int step);

// Throws Error if the text is too small for the options.
TrainResult trainModel(const std::string& text, const TrainOptions& options,
                       const std::function<void(const TrainLogRow&)>& onLog);

}  // namespace kvscope
