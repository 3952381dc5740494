// kvscope info: the model's shape, parameters, weights and KV bytes per token.
#include <QJsonDocument>
#include <QJsonObject>
#include <cstdio>

#include "cli/cli.h"
#include "model/model.h"
#include "model_source/model_source.h"
#include "opencl/device_weights.h"

namespace kvscope::app {

int runInfo(const CliArgs& args) {
    auto model = loadModel(args);
    const ModelConfig& c = model->config;
    const size_t kvPerToken = c.kvBytesPerToken(sizeof(float));
    if (args.has("json")) {
        QJsonObject o = modelJson(*model);
        o["name"] = QString::fromStdString(c.name);
        o["family"] = QString::fromStdString(c.familyText());
        o["tokenizer"] = QString::fromStdString(app::tokenizerText(*model));
        o["n_ff"] = c.nFf;
        o["head_dim"] = c.headDim;
        o["parameters"] = static_cast<double>(model->parameterCount());
        o["weight_bytes"] = static_cast<double>(model->weightBytes());
        o["weight_types"] = QString::fromStdString(model->weightTypesSummary());
        o["opencl_weights"] = QString::fromStdString(ocl::deviceWeightNote(*model));
        o["opencl_weight_bytes"] = static_cast<double>(ocl::deviceWeightBytes(*model));
        // on a CPU device (PoCL) the block types' scales go up widened to float32
        o["opencl_weight_bytes_cpu_device"] =
            static_cast<double>(ocl::deviceWeightBytes(*model, true));
        o["n_ctx_train"] = c.nCtxTrain;
        o["kv_bytes_per_token"] = static_cast<double>(kvPerToken);
        o["kv_bytes_full_context"] = static_cast<double>(kvPerToken * c.nCtx);
        o["tied_output"] = model->output.empty();
        writeOutput("-", QJsonDocument(o).toJson(QJsonDocument::Indented));
        return 0;
    }
    std::printf("model          %s\n", model->path.c_str());
    std::printf("name           %s\n", c.name.c_str());
    std::printf("architecture   %s\n", c.familyText().c_str());
    std::printf("tokenizer      %s\n", app::tokenizerText(*model).c_str());
    std::printf("layers         %d\n", c.nLayer);
    std::printf("heads          %d query, %d key/value (head dim %d)%s\n", c.nHead, c.nHeadKv,
                c.headDim, c.nHeadKv < c.nHead ? ", grouped-query" : "");
    std::printf("width          %d (feed-forward %d)\n", c.nEmbd, c.nFf);
    std::printf("context        %d tokens (trained for %d; --context sets it)\n", c.nCtx,
                c.nCtxTrain);
    std::printf("vocabulary     %d tokens\n", c.nVocab);
    std::printf("parameters     %zu\n", model->parameterCount());
    std::printf("weights        %.1f MiB as stored: %s (kept in these types on the CPU)\n",
                static_cast<double>(model->weightBytes()) / (1 << 20),
                model->weightTypesSummary().c_str());
    std::printf("OpenCL         %s", ocl::deviceWeightNote(*model).c_str());
    if (const uint64_t wide = ocl::deviceWeightBytes(*model, true);
        wide != ocl::deviceWeightBytes(*model))
        std::printf("; on a CPU device %.1f MiB (float16 scales widened to float32)",
                    static_cast<double>(wide) / (1 << 20));
    std::printf("\n");
    std::printf(
        "KV cache       %zu bytes per token = 2 x %d layers x %d kv heads x %d x 4 B;"
        " %.1f MiB for the full context\n",
        kvPerToken, c.nLayer, c.nHeadKv, c.headDim,
        static_cast<double>(kvPerToken * c.nCtx) / (1 << 20));
    return 0;
}

}  // namespace kvscope::app
