// kvscope convert: a model's weight matrices rewritten as another type (F16, Q8_0, Q4_K, ...),
// as llama-quantize does with one type for every matrix. The input must be a model KVScope runs;
// the output is written through a temporary file and loaded back before it is reported.
#include <QFileInfo>
#include <cstdio>

#include "cli/cli.h"
#include "core/error.h"
#include "gguf/convert.h"
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
    if (QFileInfo(QString::fromStdString(out)).absoluteFilePath() ==
        QFileInfo(QString::fromStdString(in)).absoluteFilePath())
        throw UsageError("--out is the input model; write the converted model to another file");
    loadModelFile(QString::fromStdString(in));  // refuses a file that is not a model it runs
    ConvertReport report;
    const GgufFile file = GgufFile::open(in);
    convertWeights(file, *to, &report).write(out);
    const auto model = loadModelFile(QString::fromStdString(out));
    const double mib = 1024.0 * 1024.0;
    std::printf(
        "wrote %s: %d tensors as %s, %d kept as they were; tensor data %.2f MiB -> %.2f "
        "MiB; %zu parameters\n",
        out.c_str(), report.converted, typeName(*to).c_str(), report.kept,
        static_cast<double>(report.bytesBefore) / mib, static_cast<double>(report.bytesAfter) / mib,
        model->parameterCount());
    return 0;
}

}  // namespace kvscope::app
