// The built-in model, files, and summaries.
#include "model_source/model_source.h"

#include <QFile>

#include "core/error.h"
#include "gguf/gguf.h"

namespace kvscope::app {

namespace {
// A person's first question about a file that will not load is whether it is a model at all:
// answer that before the parser's details.
void requireGgufMagic(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        throw Error("cannot open '" + path.toStdString() + "': " + f.errorString().toStdString());
    const QByteArray head = f.read(4);
    if (head != "GGUF")
        throw Error("'" + path.toStdString() +
                    "' is not a GGUF model file (a GGUF file begins with the bytes \"GGUF\"; this "
                    "one is " +
                    std::to_string(f.size()) + " bytes long and begins otherwise)");
}
}  // namespace

const std::vector<BuiltinModel>& builtinModels() {
    static const std::vector<BuiltinModel> models = {
        {"tiny", ":/models/kvscope-tiny.gguf", "KVScope tiny: GPT-2, 4 layers, 4 heads"},
        {"gqa", ":/models/kvscope-gqa.gguf",
         "KVScope GQA: Llama, 6 layers, 8 query heads over 2 K/V heads"},
    };
    return models;
}

std::vector<BuiltinModel> builtinModelsPresent() {
    std::vector<BuiltinModel> present;
    for (const BuiltinModel& m : builtinModels())
        if (QFile::exists(m.resource)) present.push_back(m);
    return present;
}

QString resolveBuiltin(const QString& path) {
    if (!path.startsWith("builtin:")) return path;
    const QString name = path.mid(8);
    QStringList names;
    for (const BuiltinModel& m : builtinModelsPresent()) {
        if (name == m.name) return m.resource;
        names << m.name;
    }
    throw Error(QString("there is no built-in model '%1': this binary has %2")
                    .arg(name, names.isEmpty() ? QString("none") : names.join(", "))
                    .toStdString());
}

GgufFile openGgufFile(const QString& named) {
    const QString path = resolveBuiltin(named);
    requireGgufMagic(path);
    if (path.startsWith(":")) {
        QFile f(path);
        if (!f.open(QIODevice::ReadOnly))
            throw Error("cannot open the built-in model " + path.toStdString());
        const QByteArray b = f.readAll();
        std::vector<uint8_t> bytes(b.begin(), b.end());
        return GgufFile::fromBytes(std::move(bytes), path.toStdString());
    }
    return GgufFile::open(path.toStdString());
}

std::shared_ptr<const Model> loadModelFile(const QString& named, int context) {
    const QString path = resolveBuiltin(named);
    if (path.startsWith(":"))
        return std::make_shared<const Model>(Model::fromGguf(openGgufFile(path), context));
    requireGgufMagic(path);
    return std::make_shared<const Model>(Model::load(path.toStdString(), context));
}

std::string tokenizerText(const Model& model) {
    return model.tokenizer.describe();
}

viz::ModelSummary summarize(const Model& model, const Backend& backend, const QString& path,
                            const std::string& note) {
    viz::ModelSummary s;
    s.config = model.config;
    s.path = path;
    s.tokenizer = tokenizerText(model);
    s.parameters = model.parameterCount();
    s.weightBytes = model.weightBytes();
    s.kvBytesPerToken = backend.cacheBytesPerToken();
    s.cacheAllocatedBytes = backend.cacheAllocatedBytes();
    s.cacheBlockTokens = backend.cacheBlockTokens();
    s.backend = QString::fromStdString(backend.name());
    s.device = QString::fromStdString(backend.deviceName());
    s.backendNote = QString::fromStdString(note);
    s.deviceMemoryBytes = backend.deviceMemoryBytes().value_or(0);
    s.cache = backend.cacheOptions();
    return s;
}

}  // namespace kvscope::app
