// bench_trace_memory: the memory the window's traces take on a long run, as the window keeps
// them (a TraceStore with the attention budget), against keeping every trace whole. Decodes a
// random model of a real shape (default: 16 layers, 32 heads, 8 KV heads, head dim 64, Q8_0
// weights) for N steps and prints the process RSS and the store's attention bytes as it goes.
// A benchmark, not a test:   build/tests/bench_trace_memory [steps] [budget MiB, 0 = none]
#include <QCoreApplication>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/trace_store.h"
#include "cpu/cpu_backend.h"
#include "model/random_model.h"
#include "runtime/decode_session.h"

using namespace kvscope;

namespace {

double rssMiB() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    return -1;
}

}  // namespace

int main(int argc, char** argv) {
    QCoreApplication app(argc, argv);
    const int steps = argc > 1 ? std::atoi(argv[1]) : 2048;
    const long budgetMiB = argc > 2 ? std::atol(argv[2]) : 512;
    RandomModelSpec s;
    s.arch = Arch::Llama;
    s.nLayer = 16;
    s.nHead = 32;
    s.nHeadKv = 8;
    s.nEmbd = 2048;
    s.nFf = 1024;  // small: the traces are measured, not the weights
    s.nCtx = steps + 16;
    s.nVocab = 1024;
    s.weightStd = 0.02f;
    s.weightType = TensorType::Q8_0;
    const std::string path = "/tmp/kvscope-bench-trace-memory.gguf";
    randomModel(s).write(path);
    auto model = std::make_shared<const Model>(Model::load(path));
    auto backend = std::make_shared<CpuBackend>(model);
    SessionOptions o;
    o.sampler.temperature = 0;
    DecodeSession session(backend, model->tokenizer, o);
    viz::TraceStore store;
    viz::ModelSummary summary;
    summary.config = model->config;
    store.setModel(summary);
    store.setAttentionBudget(budgetMiB > 0 ? static_cast<size_t>(budgetMiB) << 20 : SIZE_MAX);
    std::printf("16 layers x 32 heads (8 KV heads), head dim 64, Q8_0; attention budget %s\n",
                budgetMiB > 0 ? (std::to_string(budgetMiB) + " MiB").c_str() : "none");
    std::printf("RSS after loading: %.0f MiB\n", rssMiB());
    std::printf("%8s %10s %14s %10s %8s\n", "tokens", "RSS MiB", "attn rows MiB", "first row", "s");
    const auto t0 = std::chrono::steady_clock::now();
    store.setPrompt(session.prefill("the"), session.prefillMs());
    for (int i = 1; i <= steps; ++i) {
        store.append(session.step());
        if (i % 256 == 0 || i == steps)
            std::printf(
                "%8d %10.0f %14.0f %10d %8.0f\n", store.count(), rssMiB(),
                static_cast<double>(store.attentionBytes()) / (1 << 20), store.firstStoredRow(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        std::fflush(stdout);
    }
    return 0;
}
