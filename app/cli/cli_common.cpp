// What the subcommands share: the model a command runs, the backend it asks for, the model as
// JSON, and writing output without losing what was there.
#include <QFile>
#include <QJsonObject>
#include <QSaveFile>
#include <cstdio>

#include "cli/cli.h"
#include "common/theme.h"
#include "core/error.h"
#include "model_source/model_source.h"
#include "runtime/backend_factory.h"

namespace kvscope::app {

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
    const int context = static_cast<int>(args.getInt("context", 0, 1, 1 << 24));
    return loadModelFile(QString::fromStdString(resolveModelPath(args)), context);
}

std::string resolveModelPath(const CliArgs& args) {
    if (auto m = args.get("model")) {
        if (m->empty()) throw UsageError("--model needs a path");
        return resolveBuiltin(QString::fromStdString(*m)).toStdString();  // builtin:NAME too
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
    const KvCacheOptions cache = parseCacheOptions(args, model->config.nCtx);
    const std::string problem = kvTypeProblem(cache.type, model->config.headDim);
    if (!problem.empty()) throw Error("--kv-type " + kvTypeName(cache.type) + ": " + problem);
    choice.kvType = cache.type;
    choice.eviction = cache.eviction;
    choice.blockTokens = cache.blockTokens;
    return createBackend(std::move(model), choice, note);
}

void applyColormapOption(const CliArgs& args) {
    const std::optional<std::string> list = args.get("colormap");
    if (!list) return;
    viz::ThemeSettings& theme = viz::ThemeSettings::instance();
    for (const QString& item : QString::fromStdString(*list).split(',', Qt::SkipEmptyParts)) {
        const std::string name = item.trimmed().toLower().toStdString();
        if (auto m = viz::parseSequentialMap(name)) {
            theme.setSequentialMap(*m);
        } else if (auto d = viz::parseDivergingMap(name)) {
            theme.setDivergingMap(*d);
        } else {
            throw UsageError("--colormap: '" + name +
                             "' is none of viridis, cividis (weights), rdbu, puor, blue-yellow "
                             "(signed values)");
        }
    }
}

KvCacheOptions parseCacheOptions(const CliArgs& args, int nCtx) {
    KvCacheOptions o;
    if (auto t = args.get("kv-type")) {
        const std::optional<KvType> kv = parseKvType(*t);
        if (!kv) throw UsageError("--kv-type must be f32, f16, q8_0 or q4_0, got '" + *t + "'");
        o.type = *kv;
    }
    o.eviction.window = static_cast<int>(args.getInt("window", 0, 0, nCtx));
    o.eviction.sinks = static_cast<int>(args.getInt("sinks", 0, 0, nCtx));
    o.eviction.heavy = static_cast<int>(args.getInt("heavy", 0, 0, nCtx));
    o.blockTokens = static_cast<int>(args.getInt("block", 256, 1, nCtx));
    const std::string problem = o.eviction.problem();
    if (!problem.empty()) throw UsageError("--window, --sinks, --heavy: " + problem);
    return o;
}

}  // namespace kvscope::app
