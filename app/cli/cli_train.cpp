// kvscope train and kvscope eval: train a small GPT-2 or Llama-style model on your own text
// (checkpointed, resumable); score any model on a text in bits per byte.
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <cmath>
#include <cstdio>

#include "cli/cli.h"
#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "gguf/gguf.h"
#include "model_source/model_source.h"
#include "train/evaluate.h"
#include "train/training_run.h"

namespace kvscope::app {
namespace {

std::string readText(const std::string& path) {
    QFile f(QString::fromStdString(path));
    if (!f.open(QIODevice::ReadOnly))
        throw Error("cannot read '" + path + "': " + f.errorString().toStdString());
    const QByteArray bytes = f.readAll();
    return std::string(bytes.constData(), static_cast<size_t>(bytes.size()));
}

}  // namespace

int runTrain(const CliArgs& args) {
    const std::string out = args.require("out");
    std::string text;
    for (const std::string& path : args.getAll("text")) text += readText(path);
    if (text.empty()) throw UsageError("--text FILE is required (repeat it for several files)");

    TrainOptions o;
    const std::string arch = args.get("arch").value_or("gpt2");
    if (arch != "gpt2" && arch != "llama")
        throw UsageError("--arch " + arch + ": expected gpt2 or llama");
    o.arch = arch == "llama" ? TrainArch::Llama : TrainArch::Gpt2;
    o.shape.nLayer = static_cast<int>(args.getInt("layers", 4, 1, 64));
    o.shape.nHead = static_cast<int>(args.getInt("heads", 4, 1, 64));
    o.shape.nEmbd = static_cast<int>(args.getInt("width", 128, 8, 4096));
    o.shape.nCtx = static_cast<int>(args.getInt("context", 256, 8, 8192));
    o.shape.nVocab = static_cast<int>(args.getInt("vocab", 1024, 257, 1 << 16));
    o.nHeadKv = static_cast<int>(args.getInt("kv-heads", 0, 1, 64));
    o.nFf = static_cast<int>(args.getInt("ffn", 0, 1, 1 << 16));
    o.tieOutput = args.has("tie-output");
    o.batch = static_cast<int>(args.getInt("batch", 8, 1, 4096));
    o.steps = static_cast<int>(args.getInt("steps", 2000, 1, 10000000));
    o.lr = static_cast<float>(args.getDouble("lr", 1e-3, 1e-7, 1));
    o.minLr = o.lr / 10;
    o.warmup = static_cast<int>(args.getInt("warmup", 100, 0, 10000000));
    o.seed = static_cast<uint64_t>(args.getInt("seed", 1337, 0, INT64_MAX));
    o.heldOut = args.getDouble("held-out", 0.05, 0.0, 0.5);
    o.evalEvery = static_cast<int>(args.getInt("eval-every", 100, 1, 10000000));
    o.name = args.get("name").value_or("kvscope");
    o.lineWindows = args.has("line-windows");
    o.repeatFraction = static_cast<float>(args.getDouble("repeat-fraction", 0.0, 0.0, 1.0));
    o.randomRepeatFraction =
        static_cast<float>(args.getDouble("random-repeat-fraction", 0.0, 0.0, 1.0));
    o.dropout = static_cast<float>(args.getDouble("dropout", 0.0, 0.0, 0.9));
    o.anyStartFraction = static_cast<float>(args.getDouble("any-start-fraction", 0.0, 0.0, 1.0));
    if (auto draw = args.get("random-repeat-draw")) {
        if (*draw != "uniform" && *draw != "frequency")
            throw UsageError("--random-repeat-draw must be uniform or frequency, not '" + *draw +
                             "'");
        o.randomRepeatByFrequency = *draw == "frequency";
    }
    if (auto path = args.get("vocab-from"))
        o.vocab = BpeVocabulary::fromGguf(GgufFile::open(*path));
    if (auto path = args.get("checkpoint")) {
        o.checkpointPath = *path;
        o.checkpointEvery = static_cast<int>(args.getInt("checkpoint-every", 500, 1, 10000000));
    }
    o.stopAfter = static_cast<int>(args.getInt("stop-after", 0, 1, 10000000));
    if (auto path = args.get("resume")) {
        o.resumeFrom = *path;
        o.vocab.reset();
        const TrainOptions given = o;
        {
            TrainOptions schedule = o;  // --steps given with --resume: a schedule of that length
            schedule.changeSteps = args.has("steps");
            const int before = resumedOptions(*path, TrainOptions{}).steps;
            o = resumedOptions(*path, schedule);  // to print; trainModel reads it again
            o.changeSteps = schedule.changeSteps;
            if (o.steps != before)
                std::fprintf(stderr,
                             "changing the schedule from the resumed step on: %d -> %d steps "
                             "(the cosine from %g down to %g now ends there)\n",
                             before, o.steps, double(o.lr), double(o.minLr));
        }
        // A data mix given with --resume replaces the checkpoint's from here on.
        TrainOptions mix = o;
        if (args.has("repeat-fraction")) mix.repeatFraction = given.repeatFraction;
        if (args.has("random-repeat-fraction"))
            mix.randomRepeatFraction = given.randomRepeatFraction;
        if (args.has("dropout")) mix.dropout = given.dropout;
        if (args.has("random-repeat-draw"))
            mix.randomRepeatByFrequency = given.randomRepeatByFrequency;
        if (args.has("any-start-fraction")) mix.anyStartFraction = given.anyStartFraction;
        if (mix.dropout > 0 && mix.arch != TrainArch::Llama)
            throw UsageError("--dropout is for --arch llama");
        if (mix.repeatFraction != o.repeatFraction ||
            mix.randomRepeatFraction != o.randomRepeatFraction || mix.dropout != o.dropout ||
            mix.randomRepeatByFrequency != o.randomRepeatByFrequency ||
            mix.anyStartFraction != o.anyStartFraction) {
            const auto draw = [](bool f) { return f ? "by frequency" : "uniform"; };
            std::fprintf(stderr,
                         "changing the recipe from the resumed step on: repeated spans %g -> %g, "
                         "random repeats %g (%s) -> %g (%s), dropout %g -> %g, windows starting "
                         "anywhere %g -> %g\n",
                         double(o.repeatFraction), double(mix.repeatFraction),
                         double(o.randomRepeatFraction), draw(o.randomRepeatByFrequency),
                         double(mix.randomRepeatFraction), draw(mix.randomRepeatByFrequency),
                         double(o.dropout), double(mix.dropout), double(o.anyStartFraction),
                         double(mix.anyStartFraction));
            o = mix;
            o.changeDataMix = true;
        }
    }
    if (o.shape.nEmbd % o.shape.nHead != 0)
        throw UsageError("--width must be a multiple of --heads");
    if (o.arch == TrainArch::Llama) {
        if (o.shape.nVocab < 258 && !o.vocab)
            throw UsageError("--vocab must be at least 258 for llama (256 bytes, EOS and BOS)");
        const int kv = o.nHeadKv > 0 ? o.nHeadKv : o.shape.nHead;
        if (o.shape.nHead % kv != 0) throw UsageError("--heads must be a multiple of --kv-heads");
        if ((o.shape.nEmbd / o.shape.nHead) % 2 != 0)
            throw UsageError("llama needs an even head size (--width / --heads) for RoPE");
    } else if (args.has("kv-heads") || args.has("ffn") || args.has("tie-output")) {
        throw UsageError("--kv-heads, --ffn and --tie-output are for --arch llama");
    }
    if (o.repeatFraction > 0 && !o.lineWindows && o.arch == TrainArch::Gpt2)
        throw UsageError("--repeat-fraction needs line windows: add --line-windows for gpt2");
    if (o.dropout > 0 && o.arch != TrainArch::Llama)
        throw UsageError("--dropout is for --arch llama");
    if (o.anyStartFraction > 0 && !o.lineWindows && o.arch == TrainArch::Gpt2)
        throw UsageError("--any-start-fraction needs line windows: add --line-windows for gpt2");
    if (o.randomRepeatFraction > 0 && !o.lineWindows && o.arch == TrainArch::Gpt2)
        throw UsageError(
            "--random-repeat-fraction needs line windows: add --line-windows for gpt2");

    FILE* log = nullptr;
    if (auto path = args.get("log")) {
        // resumed: rows past the checkpoint (a run stopped after it) are dropped, not repeated
        if (!o.resumeFrom.empty()) trimLossLog(*path, checkpointStep(o.resumeFrom));
        log = std::fopen(path->c_str(), o.resumeFrom.empty() ? "w" : "a");
        if (!log) throw Error("cannot write the loss log '" + *path + "'");
        if (o.resumeFrom.empty())
            std::fprintf(log, "step,train_loss,held_out_loss,lr,grad_norm,ms\n");
    }
    const int vocab = o.vocab ? static_cast<int>(o.vocab->size()) : o.shape.nVocab;
    if (o.arch == TrainArch::Llama) {
        const LlamaShape s = llamaShapeOf(o, vocab);
        std::fprintf(stderr,
                     "training a %d-layer llama, %d query / %d K/V heads, width %d, SwiGLU %d, "
                     "%s output (context %d, vocabulary %d) on %zu bytes\n",
                     s.nLayer, s.nHead, s.nHeadKv, s.nEmbd, s.nFf, s.tieOutput ? "tied" : "own",
                     s.nCtx, s.nVocab, text.size());
    } else {
        std::fprintf(stderr,
                     "training a %d-layer, %d-head, width-%d gpt2 (context %d, vocabulary %d) on "
                     "%zu bytes\n",
                     o.shape.nLayer, o.shape.nHead, o.shape.nEmbd, o.shape.nCtx, vocab,
                     text.size());
    }
    TrainResult r = trainModel(text, o, [&](const TrainLogRow& row) {
        if (log) {
            std::fprintf(log, "%d,%.5f,%.5f,%.6g,%.4f,%.1f\n", row.step, row.trainLoss,
                         row.heldOutLoss, row.lr, row.gradNorm, row.ms);
            std::fflush(log);
        }
        if (!std::isnan(row.heldOutLoss) || row.step == 1)
            std::fprintf(stderr,
                         "step %6d  train %.4f  held-out %.4f  lr %.2e  |g| %.3f  %.0f ms\n",
                         row.step, row.trainLoss, row.heldOutLoss, row.lr, row.gradNorm, row.ms);
    });
    if (log) std::fclose(log);
    r.model.write(out);
    if (auto path = args.get("held-out-text")) {  // so that `kvscope eval` can score it later
        QFile f(QString::fromStdString(*path));
        if (!f.open(QIODevice::WriteOnly) ||
            f.write(r.heldOutText.data(), static_cast<qint64>(r.heldOutText.size())) !=
                static_cast<qint64>(r.heldOutText.size()))
            throw Error("cannot write the held-out text '" + *path + "'");
    }

    // The written file, scored on the held-out text through the app's own decoding path.
    auto model = std::make_shared<const Model>(Model::load(out));
    CpuBackend backend(model);
    const TextScore s = scoreText(backend, model->tokenizer, r.heldOutText);
    std::printf(
        "wrote %s: %zu parameters, vocabulary %d; held-out %.4f bits per byte (%zu bytes)\n",
        out.c_str(), model->parameterCount(), model->config.nVocab, s.bitsPerByte(), s.bytes);
    return 0;
}

int runEval(const CliArgs& args) {
    const std::string text = readText(args.require("text"));
    const std::optional<std::string> jsonPath = args.get("json");
    auto model = loadModel(args);
    std::string note;
    auto backend = makeBackend(args, model, note);
    std::fprintf(stderr, "%s\n", note.c_str());
    // Under a lossy cache policy the same windows run on a full f32 cache too, to compare.
    const KvCacheOptions cache = backend->cacheOptions();
    std::shared_ptr<Backend> full;
    if (cache.eviction.evicts() || cache.type != KvType::F32)
        full = backend->withCache(KvCacheOptions(KvType::F32, cache.blockTokens));
    const TextScore s = scoreText(*backend, model->tokenizer, text, full.get());
    FILE* out = jsonPath && *jsonPath == "-" ? stderr : stdout;  // stdout is the JSON's then
    const double natsPerToken = s.bits * std::log(2.0) / static_cast<double>(s.tokens);
    std::fprintf(out, "%.4f bits per byte (%.4f nats per token) over %zu bytes, %zu tokens\n",
                 s.bitsPerByte(), natsPerToken, s.bytes, s.tokens);
    const std::string policy = cache.eviction.text();
    std::fprintf(out, "KV cache %s, policy %s: %zu bytes held after a window of %d tokens",
                 kvTypeName(cache.type).c_str(), policy.c_str(), s.kvBytes, model->config.nCtx);
    if (s.compared)
        std::fprintf(out,
                     " (full f32 cache: %zu); top-1 agreement with the full cache %.2f%%, mean KL "
                     "%.5f nats",
                     s.fullKvBytes, 100.0 * s.top1Agreement(), s.meanKl());
    std::fprintf(out, "\n");
    if (jsonPath) {
        if (jsonPath->empty()) throw UsageError("--json needs a file name or -");
        QJsonObject o{{"model", modelJson(*model)},
                      {"bits_per_byte", s.bitsPerByte()},
                      {"nats_per_token", natsPerToken},
                      {"bytes", static_cast<double>(s.bytes)},
                      {"tokens", static_cast<double>(s.tokens)},
                      {"kv_type", QString::fromStdString(kvTypeName(cache.type))},
                      {"policy", QString::fromStdString(policy)},
                      {"kv_bytes", static_cast<double>(s.kvBytes)}};
        if (s.compared) {
            o["full_kv_bytes"] = static_cast<double>(s.fullKvBytes);
            o["top1_agreement"] = s.top1Agreement();
            o["mean_kl"] = s.meanKl();
        }
        writeOutput(*jsonPath, QJsonDocument(o).toJson(QJsonDocument::Indented));
    }
    return 0;
}

}  // namespace kvscope::app
