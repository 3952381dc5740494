// trainModel: data split, vocabulary, windows, the loop of forward, backward, clip and AdamW,
// held-out losses, checkpoints and resuming.
#include "train/training_run.h"
#include "core/numeric.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include "core/error.h"

namespace kvscope {
namespace {

constexpr uint32_t kCheckpointVersion = 1;

// FNV-1a of the training text: a resumed run must be given the same text.
uint64_t fingerprint(const std::string& text) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
    return h;
}

std::unique_ptr<Trainer> makeTrainer(const TrainOptions& o, int nVocab) {
    if (o.arch == TrainArch::Gpt2) {
        Gpt2Shape shape = o.shape;
        shape.nVocab = nVocab;
        return std::make_unique<Gpt2Trainer>(shape, o.seed);
    }
    return std::make_unique<LlamaTrainer>(llamaShapeOf(o, nVocab), o.seed);
}

// The options that decide the weights, as checkpoint keys.
void writeOptions(GgufWriter& w, const TrainOptions& o) {
    auto i = [](int v) { return GgufValue::i32(v); };
    w.set("train.arch", GgufValue::str(o.arch == TrainArch::Llama ? "llama" : "gpt2"));
    w.set("train.layers", i(o.shape.nLayer));
    w.set("train.heads", i(o.shape.nHead));
    w.set("train.kv_heads", i(o.nHeadKv));
    w.set("train.width", i(o.shape.nEmbd));
    w.set("train.ffn", i(o.nFf));
    w.set("train.context", i(o.shape.nCtx));
    w.set("train.vocab", i(o.shape.nVocab));
    w.set("train.tie_output", GgufValue::boolean(o.tieOutput));
    w.set("train.batch", i(o.batch));
    w.set("train.steps", i(o.steps));
    w.set("train.lr", GgufValue::f32(o.lr));
    w.set("train.min_lr", GgufValue::f32(o.minLr));
    w.set("train.warmup", i(o.warmup));
    w.set("train.clip", GgufValue::f32(o.clip));
    w.set("train.weight_decay", GgufValue::f32(o.weightDecay));
    w.set("train.seed", GgufValue::u64(o.seed));
    w.set("train.held_out", GgufValue::f64(o.heldOut));
    w.set("train.eval_batches", i(o.evalBatches));
    w.set("train.line_windows", GgufValue::boolean(o.lineWindows));
    w.set("train.repeat_fraction", GgufValue::f32(o.repeatFraction));
    w.set("train.random_repeat_fraction", GgufValue::f32(o.randomRepeatFraction));
    w.set("train.random_repeat_by_frequency", GgufValue::boolean(o.randomRepeatByFrequency));
    w.set("train.any_start_fraction", GgufValue::f32(o.anyStartFraction));
    w.set("train.dropout", GgufValue::f32(o.dropout));
}

void writeCheckpoint(const std::string& path, const TrainOptions& o, const BpeVocabulary& vocab,
                     Trainer& model, int step, const std::mt19937_64& rng, uint64_t text) {
    GgufWriter w;
    w.set("general.architecture", GgufValue::str("kvscope-checkpoint"));
    w.set("train.checkpoint_version", GgufValue::u32(kCheckpointVersion));
    writeOptions(w, o);
    w.set("train.step", GgufValue::i32(step));
    w.set("train.text_fnv1a", GgufValue::u64(text));
    std::ostringstream state;
    state << rng;
    w.set("train.rng", GgufValue::str(state.str()));
    vocab.writeTo(w);
    const auto n = static_cast<uint64_t>(model.parameters().size());
    w.addTensorF32("train.parameters", {n}, model.parameters());
    w.addTensorF32("train.adam_m", {n}, model.firstMoments());
    w.addTensorF32("train.adam_v", {n}, model.secondMoments());
    w.write(path);  // to path.tmp, then renamed over path
}

int checkpointInt(const GgufFile& f, const std::string& key) {
    const GgufValue* v = f.find(key);
    if (!v || !v->asInt())
        throw Error(f.path() + ": " + key + " is missing or not an integer; not a checkpoint");
    return static_cast<int>(*v->asInt());
}

double checkpointFloat(const GgufFile& f, const std::string& key) {
    const GgufValue* v = f.find(key);
    if (!v || !v->asDouble())
        throw Error(f.path() + ": " + key + " is missing or not a number; not a checkpoint");
    return *v->asDouble();
}

bool checkpointBool(const GgufFile& f, const std::string& key) {
    const GgufValue* v = f.find(key);
    if (!v || !v->asUint()) throw Error(f.path() + ": " + key + " is missing; not a checkpoint");
    return *v->asUint() != 0;
}

GgufFile openCheckpoint(const std::string& path) {
    GgufFile f = GgufFile::open(path);
    if (f.getString("general.architecture").value_or("") != "kvscope-checkpoint")
        throw Error(path + ": not a KVScope training checkpoint (general.architecture = '" +
                    f.getString("general.architecture").value_or("") +
                    "', expected 'kvscope-checkpoint')");
    if (f.getUint("train.checkpoint_version").value_or(0) != kCheckpointVersion)
        throw Error(path + ": checkpoint version " +
                    std::to_string(f.getUint("train.checkpoint_version").value_or(0)) +
                    ", expected " + std::to_string(kCheckpointVersion));
    return f;
}

void readFloats(const GgufFile& f, const std::string& name, std::vector<float>& out) {
    const GgufTensorInfo* t = f.findTensor(name);
    if (!t || t->type != TensorType::F32 || t->elements() != out.size())
        throw Error(f.path() + ": tensor " + name + " is missing or not " +
                    std::to_string(out.size()) + " float32 values for this model");
    const std::span<const uint8_t> data = f.tensorData(*t);
    std::memcpy(out.data(), data.data(), out.size() * sizeof(float));
}

}  // namespace

TrainingWindows::TrainingWindows(const std::vector<int32_t>& ids, const Tokenizer& tok, int32_t bos,
                                 int T, bool lineWindows, float repeatFraction,
                                 float randomRepeatFraction, bool randomRepeatByFrequency,
                                 float anyStartFraction)
    : ids_(ids),
      bos_(bos),
      T_(T),
      lineWindows_(lineWindows),
      repeat_(repeatFraction),
      randomRepeat_(randomRepeatFraction),
      byFrequency_(randomRepeatByFrequency),
      anyStart_(anyStartFraction) {
    if (!lineWindows || ids.size() < static_cast<size_t>(T)) return;
    if (randomRepeat_ > 0) {
        std::vector<uint8_t> seen(tok.vocabSize());
        for (int32_t id : ids)
            if (id != bos && static_cast<size_t>(id) < seen.size())
                seen[static_cast<size_t>(id)] = 1;
        for (size_t id = 0; id < seen.size(); ++id)
            if (seen[id]) distinct_.push_back(static_cast<int32_t>(id));
    }
    std::vector<uint8_t> endsLine(tok.vocabSize());
    for (size_t id = 0; id < endsLine.size(); ++id) {
        const std::string& b = tok.tokenBytes(static_cast<int32_t>(id));
        endsLine[id] = !b.empty() && b.back() == '\n';
    }
    for (size_t i = 0; i + static_cast<size_t>(T) <= ids.size(); ++i)
        if (i == 0 || endsLine[static_cast<size_t>(ids[i - 1])]) starts_.push_back(i);
}

bool TrainingWindows::usable() const {
    return lineWindows_ ? !starts_.empty() : ids_.size() >= static_cast<size_t>(T_) + 1;
}

void TrainingWindows::fill(int32_t* inputs, int32_t* targets, int B, std::mt19937_64& rng) const {
    const auto T = static_cast<size_t>(T_);
    std::vector<int32_t> seq(T + 1);
    for (int b = 0; b < B; ++b) {
        if (!lineWindows_) {  // T + 1 tokens from anywhere
            std::uniform_int_distribution<size_t> start(0, ids_.size() - T - 1);
            const size_t s = start(rng);
            std::copy(ids_.begin() + static_cast<ptrdiff_t>(s),
                      ids_.begin() + static_cast<ptrdiff_t>(s + T + 1), seq.begin());
        } else {
            bool repeat = false, random = false;
            if (repeat_ > 0) repeat = std::uniform_real_distribution<float>(0, 1)(rng) < repeat_;
            if (!repeat && randomRepeat_ > 0 && !distinct_.empty())
                random = std::uniform_real_distribution<float>(0, 1)(rng) < randomRepeat_;
            seq[0] = bos_;
            if (random) {  // BOS, r0..r(m-1), r0..r(m-1), r0..: only the copies in the loss
                // A span length of its own per window, so that no fixed relative position holds
                // the answer: the copy must be found by content, as an induction head does.
                const size_t m =
                    std::uniform_int_distribution<size_t>(std::max<size_t>(2, T / 8), T / 2)(rng);
                std::uniform_int_distribution<size_t> token(0, distinct_.size() - 1);
                std::uniform_int_distribution<size_t> at(0, ids_.size() - 1);
                const auto draw = [&] {
                    if (!byFrequency_) return distinct_[token(rng)];
                    int32_t t = bos_;  // a token from a random place of the text
                    while (t == bos_) t = ids_[at(rng)];
                    return t;
                };
                for (size_t i = 0; i < T; ++i) seq[i + 1] = i < m ? draw() : seq[i + 1 - m];
                std::copy(seq.begin(), seq.end() - 1, inputs + static_cast<size_t>(b) * T);
                std::copy(seq.begin() + 1, seq.end(), targets + static_cast<size_t>(b) * T);
                // the first copy, and the second copy's first token (nothing before it tells that
                // the span starts over): neither can be predicted
                std::fill(targets + static_cast<size_t>(b) * T,
                          targets + static_cast<size_t>(b) * T + m + 1, -1);
                continue;
            }
            std::uniform_int_distribution<size_t> pick(0, starts_.size() - 1);
            size_t s = starts_[pick(rng)];
            // any s with s + T < size (a stream of exactly T tokens has s = 0 only; the bound is
            // what the shipped model was trained with, so its run repeats bit for bit)
            if (anyStart_ > 0 && std::uniform_real_distribution<float>(0, 1)(rng) < anyStart_)
                s = ids_.size() > T
                        ? std::uniform_int_distribution<size_t>(0, ids_.size() - T - 1)(rng)
                        : 0;
            const size_t half = repeat ? T / 2 : T;  // tokens before the span starts over
            for (size_t i = 0; i < T; ++i) seq[i + 1] = ids_[s + (i < half ? i : i - half)];
        }
        std::copy(seq.begin(), seq.end() - 1, inputs + static_cast<size_t>(b) * T);
        std::copy(seq.begin() + 1, seq.end(), targets + static_cast<size_t>(b) * T);
    }
}

LlamaShape llamaShapeOf(const TrainOptions& o, int nVocab) {
    LlamaShape s;
    s.nLayer = o.shape.nLayer;
    s.nHead = o.shape.nHead;
    s.nHeadKv = o.nHeadKv > 0 ? o.nHeadKv : o.shape.nHead;
    s.nEmbd = o.shape.nEmbd;
    s.nFf = o.nFf > 0 ? o.nFf : LlamaShape::defaultFf(o.shape.nEmbd);
    s.nCtx = o.shape.nCtx;
    s.nVocab = nVocab;
    s.tieOutput = o.tieOutput;
    return s;
}

float scheduledLr(const TrainOptions& o, int step) {
    if (step <= o.warmup)
        return o.lr * static_cast<float>(step) / static_cast<float>(std::max(1, o.warmup));
    const double progress = static_cast<double>(step - o.warmup) / std::max(1, o.steps - o.warmup);
    const double cosine = 0.5 * (1 + std::cos(kPi * std::min(1.0, progress)));
    return static_cast<float>(o.minLr + (o.lr - o.minLr) * cosine);
}

int checkpointStep(const std::string& path) {
    return checkpointInt(openCheckpoint(path), "train.step");
}

void trimLossLog(const std::string& path, int lastStep) {
    std::ifstream in(path);
    if (!in) return;
    std::string kept, line;
    bool header = true;
    while (std::getline(in, line)) {
        if (!header) {
            // the step is the row's first field; a row that does not start with one is kept
            char* end = nullptr;
            const long step = std::strtol(line.c_str(), &end, 10);
            if (end != line.c_str() && *end == ',' && step > lastStep) continue;
        }
        header = false;
        kept += line;
        kept += '\n';
    }
    in.close();
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << kept;
        out.flush();
        if (!out) throw Error("cannot rewrite the loss log '" + path + "' (through " + tmp + ")");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
        throw Error("cannot replace the loss log '" + path + "': " + std::strerror(errno));
}

TrainOptions resumedOptions(const std::string& path, const TrainOptions& caller) {
    const GgufFile f = openCheckpoint(path);
    TrainOptions o = caller;
    const std::string arch = f.getString("train.arch").value_or("");
    if (arch != "gpt2" && arch != "llama")
        throw Error(path + ": train.arch = '" + arch + "', expected gpt2 or llama");
    o.arch = arch == "llama" ? TrainArch::Llama : TrainArch::Gpt2;
    o.shape.nLayer = checkpointInt(f, "train.layers");
    o.shape.nHead = checkpointInt(f, "train.heads");
    o.nHeadKv = checkpointInt(f, "train.kv_heads");
    o.shape.nEmbd = checkpointInt(f, "train.width");
    o.nFf = checkpointInt(f, "train.ffn");
    o.shape.nCtx = checkpointInt(f, "train.context");
    o.shape.nVocab = checkpointInt(f, "train.vocab");
    o.tieOutput = checkpointBool(f, "train.tie_output");
    o.batch = checkpointInt(f, "train.batch");
    o.steps = checkpointInt(f, "train.steps");
    if (caller.changeSteps && caller.steps != o.steps) {  // the same length: nothing changes
        const int done = checkpointInt(f, "train.step");
        if (caller.steps <= done)
            throw Error(path + " is at step " + std::to_string(done) + "; a schedule of " +
                        std::to_string(caller.steps) + " steps would end before the next one");
        o.steps = caller.steps;
    }
    o.lr = static_cast<float>(checkpointFloat(f, "train.lr"));
    o.minLr = static_cast<float>(checkpointFloat(f, "train.min_lr"));
    o.warmup = checkpointInt(f, "train.warmup");
    o.clip = static_cast<float>(checkpointFloat(f, "train.clip"));
    o.weightDecay = static_cast<float>(checkpointFloat(f, "train.weight_decay"));
    o.seed = f.requireUint("train.seed");
    o.heldOut = checkpointFloat(f, "train.held_out");
    o.evalBatches = checkpointInt(f, "train.eval_batches");
    o.lineWindows = checkpointBool(f, "train.line_windows");
    if (caller.changeDataMix) {  // the caller's mix from here on
        o.repeatFraction = caller.repeatFraction;
        o.randomRepeatFraction = caller.randomRepeatFraction;
        o.randomRepeatByFrequency = caller.randomRepeatByFrequency;
        o.anyStartFraction = caller.anyStartFraction;
        o.dropout = caller.dropout;
    } else {
        o.dropout = static_cast<float>(f.getFloat("train.dropout").value_or(0.0));
        o.repeatFraction = static_cast<float>(checkpointFloat(f, "train.repeat_fraction"));
        // absent from checkpoints written before random repeats existed
        o.randomRepeatFraction =
            static_cast<float>(f.getFloat("train.random_repeat_fraction").value_or(0.0));
        // absent from checkpoints written before the draw by frequency existed
        o.randomRepeatByFrequency = f.getUint("train.random_repeat_by_frequency").value_or(0) != 0;
        o.anyStartFraction =
            static_cast<float>(f.getFloat("train.any_start_fraction").value_or(0.0));
    }
    o.vocab = BpeVocabulary::fromGguf(f);
    return o;
}

TrainResult trainModel(const std::string& text, const TrainOptions& options,
                       const std::function<void(const TrainLogRow&)>& onLog) {
    const TrainOptions o =
        options.resumeFrom.empty() ? options : resumedOptions(options.resumeFrom, options);
    const bool lineWindows = o.lineWindows || o.arch == TrainArch::Llama;
    if (o.randomRepeatFraction > 0 && !lineWindows)
        throw Error("random repeats need line windows, which start with BOS");
    if (o.anyStartFraction > 0 && !lineWindows)
        throw Error("windows starting anywhere are an option of line windows");
    if (o.randomRepeatFraction > 0 && o.shape.nCtx < 4)
        throw Error("random repeats need a context of at least 4 tokens");
    if (!(o.dropout >= 0 && o.dropout < 1))
        throw Error("dropout must be at least 0 and below 1, got " + std::to_string(o.dropout));
    if (o.dropout > 0 && o.arch != TrainArch::Llama)
        throw Error("dropout is implemented for llama only");
    if (o.repeatFraction > 0 && !lineWindows)
        throw Error("repeated spans (repeat fraction " + std::to_string(o.repeatFraction) +
                    ") need line windows, which start with BOS");
    // 1. split: the last fraction of the text, from a line break on, is held out
    size_t cut = static_cast<size_t>(static_cast<double>(text.size()) * (1.0 - o.heldOut));
    cut =
        std::min(text.size(), text.find('\n', cut) == std::string::npos ? text.size()
                                                                        : text.find('\n', cut) + 1);
    const std::string train = text.substr(0, cut);
    TrainResult result{{}, GgufWriter{}, text.substr(cut), NAN};

    // 2. vocabulary: given, or learned from the training part only (llama: plus its own BOS)
    if (o.vocab) {
        result.vocab = *o.vocab;
    } else if (o.arch == TrainArch::Llama) {
        result.vocab = trainBpe(train, o.shape.nVocab - 1);
        result.vocab.addBeginOfText();
    } else {
        result.vocab = trainBpe(train, o.shape.nVocab);
    }
    // line windows start with BOS, so the model's prompts must too
    if (lineWindows && !result.vocab.addBos) result.vocab.startPromptsWithBos();
    const Tokenizer tok = result.vocab.tokenizer();
    const std::vector<int32_t> trainIds = tok.encode(train),
                               heldIds = tok.encode(result.heldOutText);
    const int T = o.shape.nCtx;
    if (trainIds.size() < static_cast<size_t>(T + 1) * 2)
        throw Error("the training text has " + std::to_string(trainIds.size()) +
                    " tokens; a context of " + std::to_string(T) + " needs at least " +
                    std::to_string((T + 1) * 2));
    const int32_t bos = result.vocab.bos();
    const TrainingWindows trainWindows(trainIds, tok, bos, T, lineWindows, o.repeatFraction,
                                       o.randomRepeatFraction, o.randomRepeatByFrequency,
                                       o.anyStartFraction),
        heldWindows(heldIds, tok, bos, T, lineWindows, 0.0f);
    if (!trainWindows.usable())
        throw Error("no line of the training text starts " + std::to_string(T) +
                    " tokens before its end: no window to train on");
    std::unique_ptr<Trainer> model = makeTrainer(o, static_cast<int>(tok.vocabSize()));

    // 3. batches of B windows; a resumed run takes its state from the checkpoint
    std::mt19937_64 rng(o.seed);
    int first = 1;
    if (!options.resumeFrom.empty()) {
        const GgufFile f = openCheckpoint(options.resumeFrom);
        readFloats(f, "train.parameters", model->parameters());
        readFloats(f, "train.adam_m", model->firstMoments());
        readFloats(f, "train.adam_v", model->secondMoments());
        first = checkpointInt(f, "train.step") + 1;
        if (f.requireUint("train.text_fnv1a") != fingerprint(text))  // once, at the start
            throw Error(options.resumeFrom +
                        ": the checkpoint was trained on another text; give "
                        "--text the same files, in the same order");
        std::istringstream state(f.requireString("train.rng"));
        state >> rng;
        if (state.fail()) throw Error(options.resumeFrom + ": train.rng is not a generator state");
    }
    std::vector<int32_t> inputs(static_cast<size_t>(o.batch) * T), targets(inputs.size());
    auto heldOutLoss = [&]() {
        if (!heldWindows.usable()) return NAN;
        std::mt19937_64 fixed(o.seed + 1);  // the same windows every time
        model->setDropout(0, 0);            // the model as it will be used
        double sum = 0;
        for (int i = 0; i < o.evalBatches; ++i) {
            heldWindows.fill(inputs.data(), targets.data(), o.batch, fixed);
            sum += model->forward(inputs.data(), targets.data(), o.batch, T);
        }
        return static_cast<float>(sum / o.evalBatches);
    };

    AdamW adam;
    adam.weightDecay = o.weightDecay;
    const uint64_t textPrint = fingerprint(text);
    const int last = o.stopAfter > 0 ? std::min(o.steps, o.stopAfter) : o.steps;
    for (int step = first; step <= last; ++step) {
        const auto t0 = std::chrono::steady_clock::now();
        TrainLogRow row;
        row.step = step;
        row.lr = adam.lr = scheduledLr(o, step);
        trainWindows.fill(inputs.data(), targets.data(), o.batch, rng);
        model->setDropout(o.dropout, o.seed * 0x100000001b3ULL + static_cast<uint64_t>(step));
        row.trainLoss = model->forward(inputs.data(), targets.data(), o.batch, T);
        model->zeroGrad();
        model->backward();
        row.gradNorm = model->clipGradients(o.clip);
        model->update(adam, step);
        row.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count();
        if (!o.checkpointPath.empty() && o.checkpointEvery > 0 &&
            (step % o.checkpointEvery == 0 || step == last))
            writeCheckpoint(o.checkpointPath, o, result.vocab, *model, step, rng, textPrint);
        if (step % o.evalEvery == 0 || step == o.steps) row.heldOutLoss = heldOutLoss();
        if (step == o.steps) result.finalHeldOutLoss = row.heldOutLoss;
        onLog(row);
    }
    result.model = model->toGguf(result.vocab, o.name);
    return result;
}

}  // namespace kvscope
