// kvscope convert: a model's weight matrices rewritten as another type (F16, Q8_0, Q4_K, ...),
// as llama-quantize does with one type for every matrix. The input must be a model KVScope runs;
// the output is written through a temporary file and loaded back before it is reported.
#include <QFile>
#include <QFileInfo>
#include <cstdio>

#include "cli/cli.h"
#include "core/error.h"
#include "gguf/convert.h"
#include "gguf/dequant.h"
#include "model_source/model_source.h"

namespace kvscope::app {

int runConvert(const CliArgs& args) {
    const std::string typeArg = args.require("type");
    const std::optional<TensorType> to = tensorTypeFromName(typeArg);
    if (!to)
        throw UsageError("--type: '" + typeArg +
                         "' is not a weight type (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, "
                         "q2_k, q3_k, q4_k, q5_k, q6_k)");
    const std::string in = resolveModelPath(args);
    const std::string out = args.require("out");
    const QFileInfo outInfo(QString::fromStdString(out)), inInfo(QString::fromStdString(in));
    if (outInfo.absoluteFilePath() == inInfo.absoluteFilePath() ||
        (outInfo.exists() && outInfo.canonicalFilePath() == inInfo.canonicalFilePath()))
        throw UsageError("--out is the input model; write the converted model to another file");
    loadModelFile(QString::fromStdString(in));  // refuses a file that is not a model it runs
    ConvertReport report;
    const GgufFile file = openGgufFile(QString::fromStdString(in));
    convertWeights(file, *to, &report).write(out);
    std::shared_ptr<const Model> model;
    try {
        model = loadModelFile(QString::fromStdString(out));
    } catch (const Error&) {
        QFile::remove(QString::fromStdString(out));  // never leave a file that does not load
        throw;
    }
    std::string fellBack;
    for (const auto& [type, count] : report.fellBack)
        fellBack += ", " + std::to_string(count) + " as " + typeName(type);
    if (!fellBack.empty())
        fellBack += " (rows that are not whole blocks of " +
                    std::to_string(blockLayout(*to)->elems) + ", as llama-quantize falls back)";
    const double mib = 1024.0 * 1024.0;
    std::printf(
        "wrote %s: %d matrices as %s%s, %d tensors kept as they were; tensor data %.2f "
        "MiB -> %.2f MiB; %zu parameters\n",
        out.c_str(), report.converted, typeName(*to).c_str(), fellBack.c_str(), report.kept,
        static_cast<double>(report.bytesBefore) / mib, static_cast<double>(report.bytesAfter) / mib,
        model->parameterCount());
    return 0;
}

}  // namespace kvscope::app
