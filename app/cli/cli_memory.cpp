// `kvscope memory`: the KV-cache calculator (compute/analysis/kv_memory.h) on the command line, for
// a preset or a loaded model, as arithmetic a person can follow or as JSON with the same numbers.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <cstdio>

#include "analysis/kv_memory.h"
#include "cli/cli.h"
#include "model_source/model_source.h"

namespace kvscope::app {
namespace {

using namespace kvscope::kvmem;

QJsonObject shapeJson(const ModelShape& m) {
    return QJsonObject{{"key", QString::fromStdString(m.key)},
                       {"name", QString::fromStdString(m.name)},
                       {"layers", m.layers},
                       {"heads", m.heads},
                       {"kv_heads", m.kvHeads},
                       {"head_dim", m.headDim},
                       {"width", m.width},
                       {"attention", attentionName(m.kind)},
                       {"latent_values", m.latentValues},
                       {"window", m.window},
                       {"max_context", m.maxContext},
                       {"parameters", m.parameters},
                       {"active_parameters", m.activeParams},
                       {"note", QString::fromStdString(m.note)}};
}

QJsonObject gpuJson(const Gpu& g) {
    return QJsonObject{{"key", QString::fromStdString(g.key)},
                       {"name", QString::fromStdString(g.name)},
                       {"memory_bytes", g.memoryBytes},
                       {"bandwidth_bytes_per_s", g.bandwidthBytesPerS}};
}

QJsonObject resultJson(const Result& r, const std::string& dtype) {
    const auto n = [](uint64_t v) { return static_cast<double>(v); };
    return QJsonObject{
        {"model", shapeJson(r.model)},
        {"inputs", QJsonObject{{"cache_dtype", QString::fromStdString(dtype)},
                               {"cache_bits", r.cacheBits},
                               // the stored bytes' average when the weights are the file's
                               {"weight_bits", r.weightBitsPerParameter},
                               {"weights_as_stored", r.weightsAsStored},
                               {"batch", n(r.batch)},
                               {"context", n(r.context)},
                               {"window", r.window},
                               {"gpu", QString::fromStdString(r.gpu.key)},
                               {"price_per_hour_usd", r.pricePerHour}}},
        {"tokens_kept", n(r.tokens)},
        {"values_per_token_per_layer", n(r.valuesPerTokenPerLayer)},
        {"bytes_per_token", n(r.bytesPerToken)},
        {"total_bytes", n(r.totalBytes)},
        {"mha_bytes_per_token", n(r.mhaBytesPerToken)},
        {"mha_total_bytes", n(r.mhaTotalBytes)},
        {"mha_ratio", r.mhaRatio},
        {"weight_bytes", r.weightBytes},
        {"weight_bytes_read_per_step", r.weightBytesRead},
        {"gpu", gpuJson(r.gpu)},
        {"gpu_share", r.gpuShare},
        {"weight_share", r.weightShare},
        {"cache_share", r.cacheShare},
        {"fits", r.fits},
        {"estimates", QJsonObject{{"decode_ms_lower_bound", r.decodeMsLowerBound},
                                  {"tokens_per_second_upper_bound", r.tokensPerSecondUpperBound},
                                  {"cost_per_million_tokens_usd", r.costPerMillion}}},
        {"arithmetic", QJsonObject{{"per_token", QString::fromStdString(r.perTokenArithmetic)},
                                   {"total", QString::fromStdString(r.totalArithmetic)},
                                   {"as_if_mha", QString::fromStdString(r.mhaArithmetic)},
                                   {"why_different", QString::fromStdString(r.whyDifferent)},
                                   {"weights", QString::fromStdString(r.weightArithmetic)},
                                   {"gpu_share", QString::fromStdString(r.shareArithmetic)},
                                   {"decode_time", QString::fromStdString(r.timeArithmetic)},
                                   {"cost", QString::fromStdString(r.costArithmetic)}}}};
}

void printJson(const QJsonObject& o) {
    const QByteArray b = QJsonDocument(o).toJson(QJsonDocument::Indented);
    std::fwrite(b.constData(), 1, static_cast<size_t>(b.size()), stdout);
}

int listAll(bool json) {
    if (json) {
        QJsonArray models, gpuList, types;
        for (const ModelShape& m : presets()) models.append(shapeJson(m));
        for (const Gpu& g : gpus()) gpuList.append(gpuJson(g));
        for (const Dtype& d : dtypes())
            types.append(QJsonObject{{"key", QString::fromStdString(d.key)}, {"bits", d.bits}});
        printJson(QJsonObject{{"presets", models}, {"gpus", gpuList}, {"dtypes", types}});
        return 0;
    }
    std::printf("presets (--preset):\n");
    std::printf("  %-12s %-16s %6s %6s %8s %8s  %-15s %9s\n", "key", "name", "layers", "heads",
                "kv heads", "head dim", "attention", "context");
    for (const ModelShape& m : presets())
        std::printf("  %-12s %-16s %6d %6d %8d %8d  %-15s %9d\n", m.key.c_str(), m.name.c_str(),
                    m.layers, m.heads, m.kvHeads, m.headDim, attentionName(m.kind), m.maxContext);
    std::printf("\nGPUs (--gpu), memory and bandwidth from NVIDIA's datasheets:\n");
    for (const Gpu& g : gpus())
        std::printf("  %-12s %-16s %5.0f GB  %6.3f TB/s\n", g.key.c_str(), g.name.c_str(),
                    g.memoryBytes / 1e9, g.bandwidthBytesPerS / 1e12);
    std::printf("\ndtypes (--dtype, --weight-dtype):");
    for (const Dtype& d : dtypes()) std::printf(" %s", d.key.c_str());
    std::printf("\n");
    return 0;
}

Dtype dtypeArg(const CliArgs& args, const std::string& name, const std::string& fallback) {
    const std::string v = args.get(name).value_or(fallback);
    const std::optional<Dtype> d = findDtype(v);
    if (!d)
        throw UsageError("--" + name + " must be fp32, fp16, bf16, fp8, int8 or int4, got '" + v +
                         "'");
    return *d;
}

}  // namespace

int runMemory(const CliArgs& args) {
    const bool json = args.has("json");
    if (args.has("list")) return listAll(json);
    if (args.has("preset") == args.has("model"))
        throw UsageError("give one of --preset NAME, --model PATH or --list");

    ModelShape shape;
    std::string defaultDtype = "fp16";
    std::optional<double> storedWeightBytes;
    if (args.has("preset")) {
        const std::string key = args.require("preset");
        const std::optional<ModelShape> m = findPreset(key);
        if (!m) throw UsageError("unknown preset '" + key + "' (kvscope memory --list names them)");
        shape = *m;
    } else {
        // KVScope's cache is float32 by default, and it keeps the weights as the file stores
        // them: their bytes, unless --weight-dtype asks what another type would take.
        const auto model = loadModelFile(QString::fromStdString(resolveModelPath(args)));
        shape = fromConfig(model->config, static_cast<double>(model->parameterCount()));
        defaultDtype = "fp32";
        if (!args.has("weight-dtype"))
            storedWeightBytes = static_cast<double>(model->weightBytes());
    }
    const Dtype cache = dtypeArg(args, "dtype", defaultDtype);
    Inputs in;
    in.cacheBits = cache.bits;
    in.weightBits = dtypeArg(args, "weight-dtype", defaultDtype).bits;
    in.storedWeightBytes = storedWeightBytes;
    in.batch = static_cast<uint64_t>(args.getInt("batch", 1, 1, 1LL << 20));
    in.context = static_cast<uint64_t>(
        args.getInt("context", shape.maxContext > 0 ? shape.maxContext : 4096, 1, 1LL << 32));
    if (args.has("window")) in.window = static_cast<int>(args.getInt("window", 0, 0, 1 << 30));
    in.gpu = args.get("gpu").value_or(in.gpu);
    if (!findGpu(in.gpu))
        throw UsageError("unknown --gpu '" + in.gpu + "' (kvscope memory --list names them)");
    in.pricePerHour = args.getDouble("price", in.pricePerHour, 0, 1e6);
    const Result r = calculate(shape, in);

    if (json) {
        printJson(resultJson(r, cache.key));
        return 0;
    }
    const ModelShape& m = r.model;
    std::printf("%s: %d layers, %d query heads, %d K/V heads, head dim %d, %s\n", m.name.c_str(),
                m.layers, m.heads, m.kvHeads, m.headDim, attentionName(m.kind));
    std::printf("  (%s)\n", m.note.c_str());
    std::printf("cache in %s, context %s tokens, batch %s\n\n", cache.key.c_str(),
                groupDigits(r.context).c_str(), groupDigits(r.batch).c_str());
    std::printf("bytes per token   %s\n", r.perTokenArithmetic.c_str());
    std::printf("cache total       %s\n", r.totalArithmetic.c_str());
    std::printf("as if plain MHA   %s\n", r.mhaArithmetic.c_str());
    std::printf("                  %s\n", r.whyDifferent.c_str());
    std::printf("weights           %s\n", r.weightArithmetic.c_str());
    std::printf("GPU memory        %s\n", r.shareArithmetic.c_str());
    std::printf("decode time       %s\n", r.timeArithmetic.c_str());
    std::printf("cost              %s\n", r.costArithmetic.c_str());
    return 0;
}

}  // namespace kvscope::app
