// A whole training run: split the text, learn the vocabulary (or reuse one), train a GPT-2 or a
// Llama-style model with a learning-rate schedule, evaluate on the held-out part, checkpoint and
// resume, and hand back the model as GGUF.
#pragma once

#include <cmath>
#include <functional>
#include <optional>
#include <random>
#include <string>

#include "gguf/gguf.h"
#include "train/bpe_trainer.h"
#include "train/gpt2_trainer.h"
#include "train/llama_trainer.h"

namespace kvscope {

enum class TrainArch { Gpt2, Llama };

struct TrainOptions {
    TrainArch arch = TrainArch::Gpt2;
    Gpt2Shape shape;         // nVocab is the vocabulary size to learn (llama: with its BOS)
    int nHeadKv = 0;         // llama: K/V heads, 0 = shape.nHead (plain multi-head attention)
    int nFf = 0;             // llama: SwiGLU hidden size, 0 = LlamaShape::defaultFf(width)
    bool tieOutput = false;  // llama: output head = token embeddings
    int batch = 8;           // sequences per step, each shape.nCtx tokens
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

    // Windows. Plain (gpt2's default): T + 1 tokens from anywhere in the text. Line windows
    // (llama always; gpt2 with lineWindows): the BOS token, then T tokens from the start of a
    // line (a token right after a '\n', or the first), so the model always sees BOS at
    // position 0 as it will at inference (the file sets add_bos_token). repeatFraction (line
    // windows only): each window is, with this probability, BOS + the first ⌊T/2⌋ tokens of a
    // line-start span + the same span again from its start until the window is full (the second
    // half is predictable by copying, which trains induction heads).
    // randomRepeatFraction (line windows only; drawn after repeatFraction's coin, for windows
    // that did not repeat a span): BOS + m tokens drawn uniformly from the distinct tokens of the
    // training text, then the same m again and again until the window is full, m drawn per
    // window from [max(2, T/8), T/2] so that no fixed offset finds the copy; the first copy's
    // targets and the second copy's first are masked (not in the loss): only the rest of the
    // copies can be predicted, by looking back at the token after the current token's earlier
    // occurrence, the induction test's task itself. randomRepeatByFrequency: the m tokens are
    // drawn as often as they occur in the text instead (tokens picked from random places of it),
    // so most are frequent ones whose embeddings the text trains: with a 2,048-token vocabulary
    // a small model learnt to copy those within 1,600 steps of random repeats alone, and not the
    // uniform ones (resources/models/README.md).
    bool lineWindows = false;
    float repeatFraction = 0.0f;
    float randomRepeatFraction = 0.0f;
    bool randomRepeatByFrequency = false;
    // anyStartFraction (line windows only): the share of text windows that start at any token
    // rather than at a line start (still after BOS). A model that only ever saw BOS followed by
    // a verse start scored held-out text cut into windows anywhere (kvscope eval) far worse than
    // its own held-out loss: 2.48 against 2.04 bits per byte for a 4-layer model whose random
    // repeats were drawn by frequency, half its windows starting anywhere (600 steps).
    float anyStartFraction = 0.0f;
    // Residual dropout (llama): each step's forward pass zeroes this share of the attention and
    // MLP outputs (LlamaTrainer::setDropout, masks drawn from the seed and the step); the
    // held-out loss and the written model use none.
    float dropout = 0.0f;
    // On resume: this repeatFraction, randomRepeatFraction, randomRepeatByFrequency,
    // anyStartFraction and dropout replace the checkpoint's
    // (the recipe changes from the resumed step on; later checkpoints record the new one).
    bool changeDataMix = false;
    // On resume: this steps replaces the checkpoint's (a longer or shorter cosine from the
    // resumed step on; the lr there jumps to the new schedule's value). A new length must be past
    // the checkpoint's step; the checkpoint's own length changes nothing. Later checkpoints
    // record it.
    bool changeSteps = false;

    std::optional<BpeVocabulary> vocab;  // use this vocabulary instead of learning one

    // Checkpoints: every checkpointEvery steps (and at the last step run), the whole state
    // (weights, AdamW moments, step, the window sampler's RNG, these options, the vocabulary)
    // is written to checkpointPath (through a temporary file and a rename).
    std::string checkpointPath;
    int checkpointEvery = 0;
    std::string resumeFrom;  // a checkpoint to continue from (see resumedOptions)
    int stopAfter = 0;       // > 0: end after this step, as if interrupted (the schedule is kept)
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

// The windows a run trains on (see TrainOptions: plain, or line windows with BOS and repeated
// spans), drawn from a token stream. Keeps a reference to ids.
class TrainingWindows {
  public:
    TrainingWindows(const std::vector<int32_t>& ids, const Tokenizer& tok, int32_t bos, int T,
                    bool lineWindows, float repeatFraction, float randomRepeatFraction = 0.0f,
                    bool randomRepeatByFrequency = false, float anyStartFraction = 0.0f);
    // Whether the stream has room for one window.
    bool usable() const;
    // B windows: inputs, targets (B, T), targets shifted by one (-1 where masked); draws from
    // rng.
    void fill(int32_t* inputs, int32_t* targets, int B, std::mt19937_64& rng) const;
    // Where line windows may start: tokens right after a '\n' (and the first).
    const std::vector<size_t>& lineStarts() const { return starts_; }

  private:
    const std::vector<int32_t>& ids_;
    int32_t bos_;
    int T_;
    bool lineWindows_;
    float repeat_;
    float randomRepeat_;
    bool byFrequency_;
    float anyStart_;
    std::vector<size_t> starts_;
    std::vector<int32_t> distinct_;  // the text's distinct tokens, for random repeats
};

// The Llama shape the options describe, with nVocab tokens.
LlamaShape llamaShapeOf(const TrainOptions& o, int nVocab);

// The learning rate at step (1-based): linear warm-up to lr, then cosine to minLr.
float scheduledLr(const TrainOptions& o, int step);

// The options a run resumed from the checkpoint at path trains with: the checkpoint's model
// shape, schedule, data and seed options; name, evalEvery, the checkpoint and stop options from
// `caller`. Throws Error naming the file if it is not a KVScope checkpoint.
TrainOptions resumedOptions(const std::string& path, const TrainOptions& caller);

// The step the checkpoint at path was written at. Throws Error naming the file if it is not one.
int checkpointStep(const std::string& path);

// A loss log (a CSV header, then one row per step, the step first) cut back to the rows of steps
// up to lastStep, for a run resumed from the checkpoint at lastStep: the rows a stopped run wrote
// after its last checkpoint would otherwise come twice. Rewritten through a temporary file and a
// rename; a missing log is left missing. Throws Error naming the file if it cannot be rewritten.
void trimLossLog(const std::string& path, int lastStep);

// Throws Error if the text is too small for the options. A resumed run (options.resumeFrom)
// continues from its checkpoint's step with the checkpoint's options (resumedOptions) and
// vocabulary, and ends with the weights an uninterrupted run would have.
TrainResult trainModel(const std::string& text, const TrainOptions& options,
                       const std::function<void(const TrainLogRow&)>& onLog);

}  // namespace kvscope
