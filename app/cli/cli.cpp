// The kvscope command line: dispatch, help, `info` and `decode` (ARCHITECTURE.md is the contract).
#include "cli/cli.h"

#include <QCoreApplication>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "model_source/model_source.h"
#include "opencl/device_list.h"
#include "runtime/backend_factory.h"
#include "runtime/decode_session.h"

namespace kvscope::app {
namespace {

const char* kHelp =
    R"(kvscope: watch a transformer decode, one token at a time, and see its KV cache.

usage:
  kvscope info    [--model PATH] [--json]
  kvscope devices [--json]
  kvscope decode  [--model PATH] --prompt TEXT [--steps N] [--backend auto|cpu|opencl]
                  [--device N] [--no-cache] [--temperature T] [--top-k K] [--top-p P]
                  [--seed S] [--top-logits K] [--json FILE|-]
  kvscope memory  --preset NAME | --model PATH | --list  [--dtype fp32|fp16|bf16|fp8|int8|int4]
                  [--weight-dtype T] [--context N] [--batch B] [--window W] [--gpu NAME]
                  [--price USD_PER_GPU_HOUR] [--json]      the KV-cache calculator
  kvscope bench   [--layers N] [--width N] [--heads N] [--context N] [--vocab N]
                  [--prompt-tokens N] [--steps N] [--keep-model PATH] [--json]
                  [--backend cpu|opencl] [--device N] [--no-warmup]

  kvscope train   --text FILE [--text FILE ...] --out MODEL.gguf [--log LOSS.csv]
                  [--layers 4] [--heads 4] [--width 128] [--context 256] [--vocab 1024]
                  [--batch 8] [--steps 2000] [--lr 1e-3] [--warmup 100] [--seed 1337]
                  [--held-out 0.05] [--held-out-text FILE] [--eval-every 100] [--name NAME]
  kvscope eval    [--model PATH] --text FILE [--backend ...]
  kvscope heads   [--model PATH] --prompt TEXT [--json]   what each attention head looks at
  kvscope export  [--model PATH] --prompt TEXT --out DIR [--steps 8] [--views all|step,attention,heads,cache]
                  [--layer L] [--head H] [--format png|svg|pdf] [--scale 1..4] [--theme light|dark]
                  [--size 1200x800] [--frames]

Without --model, commands use the built-in model.
Exit status: 0 success, 1 failure, 2 usage error.
)";

QJsonObject modelJson(const Model& m) {
    const ModelConfig& c = m.config;
    return QJsonObject{{"path", QString::fromStdString(m.path)},
                       {"arch", QString::fromStdString(c.archName)},
                       {"n_layer", c.nLayer},
                       {"n_head", c.nHead},
                       {"n_head_kv", c.nHeadKv},
                       {"n_embd", c.nEmbd},
                       {"n_ctx", c.nCtx},
                       {"n_vocab", c.nVocab}};
}

// Writes text to path ("-": stdout) through a temporary file, so a failure loses nothing.
void writeOutput(const std::string& path, const QByteArray& bytes) {
    if (path == "-") {
        std::fwrite(bytes.constData(), 1, static_cast<size_t>(bytes.size()), stdout);
        std::fflush(stdout);
        return;
    }
    QSaveFile f(QString::fromStdString(path));
    if (!f.open(QIODevice::WriteOnly) || f.write(bytes) != bytes.size() || !f.commit())
        throw Error("cannot write '" + path + "': " + f.errorString().toStdString());
}

std::shared_ptr<const Model> loadModel(const CliArgs& args) {
    return loadModelFile(QString::fromStdString(resolveModelPath(args)));
}

}  // namespace

std::string resolveModelPath(const CliArgs& args) {
    if (auto m = args.get("model")) {
        if (m->empty()) throw UsageError("--model needs a path");
        return *m;
    }
    if (!QFile::exists(kBuiltinModel))
        throw Error("no --model given and this binary has no built-in model; pass --model PATH");
    return kBuiltinModel;
}

std::shared_ptr<Backend> makeBackend(const CliArgs& args, std::shared_ptr<const Model> model,
                                     std::string& note) {
    const std::string which = args.get("backend").value_or("auto");
    if (which != "auto" && which != "cpu" && which != "opencl")
        throw UsageError("--backend must be auto, cpu or opencl, got '" + which + "'");
    if (args.has("device") && which != "opencl")
        throw UsageError("--device selects an OpenCL device: use it with --backend opencl");
    BackendChoice choice;
    if (which == "cpu") choice.kind = BackendChoice::Kind::Cpu;
    if (which == "opencl") {
        choice.kind = BackendChoice::Kind::OpenCl;
        choice.device = static_cast<int>(args.getInt("device", 0, 0, 1 << 16));
    }
    return createBackend(std::move(model), choice, note);
}

int runInfo(const CliArgs& args) {
    auto model = loadModel(args);
    const ModelConfig& c = model->config;
    const size_t kvPerToken = c.kvBytesPerToken(sizeof(float));
    if (args.has("json")) {
        QJsonObject o = modelJson(*model);
        o["name"] = QString::fromStdString(c.name);
        o["n_ff"] = c.nFf;
        o["head_dim"] = c.headDim;
        o["parameters"] = static_cast<double>(model->parameterCount());
        o["weight_bytes"] = static_cast<double>(model->weightBytes());
        o["kv_bytes_per_token"] = static_cast<double>(kvPerToken);
        o["kv_bytes_full_context"] = static_cast<double>(kvPerToken * c.nCtx);
        o["tied_output"] = model->output.empty();
        writeOutput("-", QJsonDocument(o).toJson(QJsonDocument::Indented));
        return 0;
    }
    std::printf("model          %s\n", model->path.c_str());
    std::printf("name           %s\n", c.name.c_str());
    std::printf("architecture   %s\n", c.archName.c_str());
    std::printf("layers         %d\n", c.nLayer);
    std::printf("heads          %d query, %d key/value (head dim %d)%s\n", c.nHead, c.nHeadKv,
                c.headDim, c.nHeadKv < c.nHead ? ", grouped-query" : "");
    std::printf("width          %d (feed-forward %d)\n", c.nEmbd, c.nFf);
    std::printf("context        %d tokens\n", c.nCtx);
    std::printf("vocabulary     %d tokens\n", c.nVocab);
    std::printf("parameters     %zu (%.1f MiB as float32)\n", model->parameterCount(),
                static_cast<double>(model->weightBytes()) / (1 << 20));
    std::printf(
        "KV cache       %zu bytes per token = 2 x %d layers x %d kv heads x %d x 4 B;"
        " %.1f MiB for the full context\n",
        kvPerToken, c.nLayer, c.nHeadKv, c.headDim,
        static_cast<double>(kvPerToken * c.nCtx) / (1 << 20));
    return 0;
}

int runDecode(const CliArgs& args) {
    const std::string prompt = args.require("prompt");
    const int steps = static_cast<int>(args.getInt("steps", 16, 0, 1 << 20));
    SessionOptions opt;
    opt.useCache = !args.has("no-cache");
    opt.captureTrace = false;
    opt.topLogits = static_cast<int>(args.getInt("top-logits", 5, 0, 1000));
    opt.sampler.temperature = static_cast<float>(args.getDouble("temperature", 0, 0, 100));
    opt.sampler.topK = static_cast<int>(args.getInt("top-k", 0, 0, 1 << 24));
    opt.sampler.topP = static_cast<float>(args.getDouble("top-p", 1, 1e-6, 1));
    opt.sampler.seed = static_cast<uint64_t>(args.getInt("seed", 0, 0, INT64_MAX));
    const std::optional<std::string> jsonPath = args.get("json");
    if (jsonPath && jsonPath->empty()) throw UsageError("--json needs a file name or -");
    const bool streamText = !jsonPath || *jsonPath != "-";

    auto model = loadModel(args);
    std::string note;
    auto backend = makeBackend(args, model, note);
    std::fprintf(stderr, "%s\n", note.c_str());
    DecodeSession session(backend, model->tokenizer, opt);

    std::vector<StepTrace> promptTraces = session.prefill(prompt);
    if (streamText) {
        std::fputs(prompt.c_str(), stdout);
        std::fflush(stdout);
    }
    std::vector<StepTrace> generated;
    std::vector<int32_t> generatedIds;
    double stepMs = 0;
    for (int i = 0; i < steps; ++i) {
        generated.push_back(session.step());
        const StepTrace& s = generated.back();
        generatedIds.push_back(s.token);
        stepMs += s.hostMs;
        if (streamText) {
            std::fwrite(s.text.data(), 1, s.text.size(), stdout);
            std::fflush(stdout);
        }
    }
    if (streamText) std::fputc('\n', stdout);
    std::fprintf(stderr,
                 "%zu prompt tokens in %.1f ms; %d tokens in %.1f ms (%.2f tokens/s), %s; "
                 "KV cache holds %zu bytes\n",
                 promptTraces.size(), session.prefillMs(), steps, stepMs,
                 stepMs > 0 ? steps * 1000.0 / stepMs : 0.0,
                 opt.useCache ? "cached" : "no cache (recompute)", session.kvBytes());

    if (jsonPath) {
        QJsonArray promptIds;
        for (const StepTrace& s : promptTraces) promptIds.append(s.token);
        QJsonArray stepArray;
        for (const StepTrace& s : generated) {
            QJsonArray top;
            for (const auto& [id, logit] : s.top)
                top.append(QJsonArray{id, static_cast<double>(logit)});
            stepArray.append(QJsonObject{{"token", s.token},
                                         {"text", QString::fromUtf8(s.text)},
                                         {"latency_ms", s.hostMs},
                                         {"kv_bytes", static_cast<double>(s.kvBytes)},
                                         {"top", top}});
        }
        const std::string text = model->tokenizer.decode(generatedIds);
        QJsonObject o{
            {"model", modelJson(*model)},
            {"backend", QJsonObject{{"name", QString::fromStdString(backend->name())},
                                    {"device", QString::fromStdString(backend->deviceName())}}},
            {"cache", opt.useCache},
            {"prompt_tokens", promptIds},
            {"prefill_ms", session.prefillMs()},
            {"steps", stepArray},
            {"text", QString::fromUtf8(text)}};
        writeOutput(*jsonPath, QJsonDocument(o).toJson(QJsonDocument::Indented));
    }
    return 0;
}

int runDevices(const CliArgs& args);  // app/cli/cli_devices.cpp

int runCli(const std::vector<std::string>& argv) {
    try {
        if (argv.empty() || argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
            std::fputs(kHelp, argv.empty() ? stderr : stdout);
            return 0;
        }
        if (argv[0] == "--version") {
            std::printf("kvscope %s\n", KVSCOPE_VERSION);
            return 0;
        }
        const std::string cmd = argv[0];
        const std::vector<std::string> rest(argv.begin() + 1, argv.end());
        for (const std::string& a : rest)
            if (a == "--help" || a == "-h") {
                std::fputs(kHelp, stdout);
                return 0;
            }
        if (cmd == "info") return runInfo(CliArgs(rest, {"model"}, {"json"}));
        if (cmd == "devices") return runDevices(CliArgs(rest, {}, {"json"}));
        if (cmd == "decode")
            return runDecode(
                CliArgs(rest,
                        {"model", "prompt", "steps", "backend", "device", "temperature", "top-k",
                         "top-p", "seed", "top-logits", "json"},
                        {"no-cache"}));
        if (cmd == "train")
            return runTrain(CliArgs(rest,
                                    {"text", "out", "log", "layers", "heads", "width", "context",
                                     "vocab", "batch", "steps", "lr", "warmup", "seed", "held-out",
                                     "eval-every", "name", "held-out-text"},
                                    {}));
        if (cmd == "export")
            return runExport(
                CliArgs(rest,
                        {"model", "prompt", "steps", "views", "layer", "head", "format", "scale",
                         "theme", "out", "size", "backend", "device"},
                        {"frames"}));
        if (cmd == "heads")
            return runHeads(CliArgs(rest, {"model", "prompt", "backend", "device"}, {"json"}));
        if (cmd == "memory")
            return runMemory(CliArgs(rest,
                                     {"preset", "model", "dtype", "weight-dtype", "context",
                                      "batch", "window", "gpu", "price"},
                                     {"list", "json"}));
        if (cmd == "eval")
            return runEval(CliArgs(rest, {"model", "text", "backend", "device"}, {}));
        if (cmd == "bench")
            return runBench(CliArgs(rest,
                                    {"layers", "width", "heads", "context", "vocab",
                                     "prompt-tokens", "steps", "keep-model", "backend", "device"},
                                    {"json", "no-warmup"}));
        throw UsageError("unknown command '" + cmd + "'");
    } catch (const UsageError& e) {
        std::fprintf(stderr, "kvscope: %s (see kvscope --help)\n", e.what());
        return 2;
    } catch (const Error& e) {
        std::fprintf(stderr, "kvscope: %s\n", e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "kvscope: out of memory\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kvscope: %s\n", e.what());
        return 1;
    }
}

}  // namespace kvscope::app
