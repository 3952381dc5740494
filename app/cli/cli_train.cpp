// kvscope train and kvscope eval: train a small GPT-2 on your own text; score any model on a text
// in bits per byte.
#include <QFile>
#include <cstdio>

#include "cli/cli.h"
#include "core/error.h"
#include "cpu/cpu_backend.h"
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
    o.shape.nLayer = static_cast<int>(args.getInt("layers", 4, 1, 64));
    o.shape.nHead = static_cast<int>(args.getInt("heads", 4, 1, 64));
    o.shape.nEmbd = static_cast<int>(args.getInt("width", 128, 8, 4096));
    o.shape.nCtx = static_cast<int>(args.getInt("context", 256, 8, 8192));
    o.shape.nVocab = static_cast<int>(args.getInt("vocab", 1024, 257, 1 << 16));
    o.batch = static_cast<int>(args.getInt("batch", 8, 1, 4096));
    o.steps = static_cast<int>(args.getInt("steps", 2000, 1, 10000000));
    o.lr = static_cast<float>(args.getDouble("lr", 1e-3, 1e-7, 1));
    o.minLr = o.lr / 10;
    o.warmup = static_cast<int>(args.getInt("warmup", 100, 0, 10000000));
    o.seed = static_cast<uint64_t>(args.getInt("seed", 1337, 0, INT64_MAX));
    o.heldOut = args.getDouble("held-out", 0.05, 0.0, 0.5);
    o.evalEvery = static_cast<int>(args.getInt("eval-every", 100, 1, 10000000));
    o.name = args.get("name").value_or("kvscope");
    if (o.shape.nEmbd % o.shape.nHead != 0)
        throw UsageError("--width must be a multiple of --heads");

    FILE* log = nullptr;
    if (auto path = args.get("log")) {
        log = std::fopen(path->c_str(), "w");
        if (!log) throw Error("cannot write the loss log '" + *path + "'");
        std::fprintf(log, "step,train_loss,held_out_loss,lr,grad_norm,ms\n");
    }
    std::fprintf(
        stderr,
        "training a %d-layer, %d-head, width-%d gpt2 (context %d, vocabulary %d) on %zu bytes\n",
        o.shape.nLayer, o.shape.nHead, o.shape.nEmbd, o.shape.nCtx, o.shape.nVocab, text.size());
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
    auto model = loadModelFile(QString::fromStdString(resolveModelPath(args)));
    std::string note;
    auto backend = makeBackend(args, model, note);
    std::fprintf(stderr, "%s\n", note.c_str());
    const TextScore s = scoreText(*backend, model->tokenizer, text);
    std::printf("%.4f bits per byte (%.4f nats per token) over %zu bytes, %zu tokens\n",
                s.bitsPerByte(), s.bits * std::log(2.0) / static_cast<double>(s.tokens), s.bytes,
                s.tokens);
    return 0;
}

}  // namespace kvscope::app
