// kvscope bench: decode speed of a random-weight model of a chosen shape (GPT-2 124M by default)
// set against this machine's measured memory read bandwidth, all in one run, as ratios; with
// --backend opencl also the OpenCL backend beside the CPU one, and its start-up and first step.
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "analysis/memory_bandwidth.h"
#include "cli/cli.h"
#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "gguf/convert.h"
#include "gguf/dequant.h"
#include "model/random_model.h"
#if KVSCOPE_HAS_OPENCL
#include "opencl/opencl_backend.h"
#endif
#include "opencl/device_list.h"
#include "runtime/decode_session.h"

namespace kvscope::app {
namespace {

struct DecodeRun {
    double prefillMs = 0;
    double stepMs = 0;       // sum over steps
    double firstStepMs = 0;  // the first step alone
    int steps = 0;
    std::vector<int32_t> tokens;
    size_t kvBytes = 0;
    // device time per step by part (OpenCL profiling; zero on the CPU)
    struct {
        double matmul = 0, attention = 0, other = 0;
        double layers = 0;   // whole decoder layers in one command (OpenClOptions::fusedLayers)
        double kernels = 0;  // kernels enqueued per step (not the reads and writes)
        double total() const { return matmul + attention + other + layers; }
    } device;
    double tokensPerSecond() const { return stepMs > 0 ? steps * 1000.0 / stepMs : 0; }
    double laterStepMs() const { return steps > 1 ? (stepMs - firstStepMs) / (steps - 1) : 0; }
};

// A timed decode of `steps` steps after the prompt, run a few steps at a time.
class Decoding {
  public:
    Decoding(std::shared_ptr<Backend> backend, const Model& model, bool cache,
             const std::vector<int32_t>& prompt, int steps)
        : session_(std::move(backend), model.tokenizer, options(cache)) {
#if KVSCOPE_HAS_OPENCL
        opencl_ = dynamic_cast<const OpenClBackend*>(&session_.backend());
#endif
        session_.prefillTokens(prompt);
        run_.prefillMs = session_.prefillMs();
        run_.steps = steps;
    }
    // The next `count` steps (no further than `steps`).
    void run(int count) {
        for (; count > 0 && done_ < run_.steps; --count, ++done_) {
            const StepTrace t = session_.step();
            run_.stepMs += t.hostMs;
            if (done_ == 0) run_.firstStepMs = t.hostMs;
            run_.tokens.push_back(t.token);
#if KVSCOPE_HAS_OPENCL
            if (opencl_) {
                const DeviceMs d = opencl_->lastStepDeviceMs();
                run_.device.matmul += d.matmul / run_.steps;
                run_.device.attention += d.attention / run_.steps;
                run_.device.other += d.other / run_.steps;
                run_.device.layers += d.layers / run_.steps;
                run_.device.kernels += static_cast<double>(d.kernels) / run_.steps;
            }
#endif
        }
    }
    DecodeRun result() const {
        DecodeRun r = run_;
        const Backend& b = session_.backend();
        r.kvBytes = static_cast<size_t>(b.cacheUsed()) * b.cacheBytesPerToken();
        return r;
    }

  private:
    static SessionOptions options(bool cache) {
        SessionOptions opt;
        opt.useCache = cache;
        opt.captureTrace = false;
        opt.topLogits = 0;  // timed: nothing but the decode
        return opt;
    }
    DecodeSession session_;
#if KVSCOPE_HAS_OPENCL
    const OpenClBackend* opencl_ = nullptr;
#endif
    DecodeRun run_;
    int done_ = 0;
};

DecodeRun decode(std::shared_ptr<Backend> backend, const Model& model, bool cache,
                 const std::vector<int32_t>& prompt, int steps) {
    Decoding d(std::move(backend), model, cache, prompt, steps);
    d.run(steps);
    return d.result();
}

// The top two logits (id, logit) of the CPU's greedy step `at` (0-based) on this prompt: an
// untimed run of its own, since describing a step's distribution costs time.
std::pair<std::pair<int32_t, float>, std::pair<int32_t, float>> topTwoAt(
    std::shared_ptr<Backend> backend, const Model& model, const std::vector<int32_t>& prompt,
    int at) {
    SessionOptions opt;
    opt.captureTrace = false;
    opt.topLogits = 2;
    DecodeSession s(std::move(backend), model.tokenizer, opt);
    s.prefillTokens(prompt);
    StepTrace t;
    for (int i = 0; i <= at; ++i) t = s.step();
    if (t.top.size() < 2) throw Error("bench: the step kept fewer than two top logits");
    return {t.top[0], t.top[1]};
}

// The resident set of this process (VmRSS), in bytes; 0 where /proc is not there.
double residentBytes() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "VmRSS: %lf kB", &kb) == 1) break;
    std::fclose(f);
    return kb * 1024;
}

// "q4_k" -> Q4_K: the weight types a matrix may have, by their lower-case names.
TensorType parseWeightType(const std::string& name) {
    if (const std::optional<TensorType> t = tensorTypeFromName(name)) return *t;
    throw UsageError("--type: '" + name +
                     "' is not a weight type (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, "
                     "q3_k, q4_k, q5_k, q6_k)");
}

}  // namespace

int runBench(const CliArgs& args) {
    RandomModelSpec spec;
    const std::string arch = args.get("arch").value_or("gpt2");
    if (arch != "gpt2" && arch != "llama")
        throw UsageError("--arch must be gpt2 or llama, got '" + arch + "'");
    spec.arch = arch == "llama" ? Arch::Llama : Arch::Gpt2;
    spec.weightType = parseWeightType(args.get("type").value_or("f32"));
    spec.nLayer = static_cast<int>(args.getInt("layers", 12, 1, 256));
    spec.nEmbd = static_cast<int>(args.getInt("width", 768, 8, 16384));
    spec.nHead = static_cast<int>(args.getInt("heads", 12, 1, 256));
    spec.nHeadKv = static_cast<int>(args.getInt("kv-heads", spec.nHead, 1, spec.nHead));
    if (spec.arch == Arch::Gpt2 && spec.nHeadKv != spec.nHead)
        throw UsageError("--kv-heads goes with --arch llama");
    if (spec.nHead % spec.nHeadKv != 0)
        throw UsageError("--heads must be a multiple of --kv-heads");
    spec.nFf = static_cast<int>(args.getInt("ff", 4 * spec.nEmbd, 8, 1 << 18));
    const std::optional<BlockLayout> layout = blockLayout(spec.weightType);
    if (spec.nEmbd % layout->elems != 0 || spec.nFf % layout->elems != 0)
        throw UsageError("--width and --ff must be multiples of " + std::to_string(layout->elems) +
                         " for " + typeName(spec.weightType));
    spec.nCtx = static_cast<int>(args.getInt("context", 1024, 8, 1 << 20));
    spec.nVocab = static_cast<int>(args.getInt("vocab", 50257, 257, 1 << 20));
    spec.weightStd = 0.02f;
    const int promptTokens = static_cast<int>(args.getInt("prompt-tokens", 16, 1, 1 << 20));
    const int steps = static_cast<int>(args.getInt("steps", 32, 1, 1 << 20));
    const std::string backendName = args.get("backend").value_or("cpu");
    if (backendName != "cpu" && backendName != "opencl")
        throw UsageError("--backend must be cpu or opencl, got '" + backendName + "'");
    if ((args.has("device") || args.has("no-warmup") || args.has("scales") ||
         args.has("cpu-simd") || args.has("huge-pages") || args.has("fused")) &&
        backendName != "opencl")
        throw UsageError(
            "--device, --no-warmup, --scales, --cpu-simd, --huge-pages and --fused go with "
            "--backend opencl");
    const auto onOff = [&args](const char* name) {
        const std::string v = args.get(name).value_or("");
        if (!v.empty() && v != "on" && v != "off")
            throw UsageError(std::string("--") + name + " must be on or off, got '" + v + "'");
        return v;
    };
    const std::string cpuSimd = onOff("cpu-simd"), hugePages = onOff("huge-pages");
    const std::string fused = onOff("fused");
    const std::string scales = args.get("scales").value_or("");
    if (!scales.empty() && scales != "stored" && scales != "wide")
        throw UsageError("--scales must be stored or wide, got '" + scales + "'");
    if (spec.nEmbd % spec.nHead != 0) throw UsageError("--width must be a multiple of --heads");
    if (promptTokens + steps > spec.nCtx)
        throw UsageError("--prompt-tokens plus --steps must fit in --context");

    // 1. the model, written as GGUF and loaded through the same path as any model file
    QTemporaryDir tmp;
    std::string path = args.get("keep-model").value_or("");
    if (path.empty()) {
        if (!tmp.isValid()) throw Error("cannot create a temporary folder for the model");
        path = (tmp.path() + "/bench.gguf").toStdString();
    }
    std::fprintf(stderr,
                 "writing a random %s model (%s, %d layers, width %d, %d heads, %d KV heads, FF "
                 "%d, context %d, vocabulary %d) to %s\n",
                 arch.c_str(), typeName(spec.weightType).c_str(), spec.nLayer, spec.nEmbd,
                 spec.nHead, spec.nHeadKv, spec.nFf, spec.nCtx, spec.nVocab, path.c_str());
    randomModel(spec).write(path);
    const double rssBefore = residentBytes();
    auto model = std::make_shared<const Model>(Model::load(path));
    const double rssLoaded = residentBytes();
    const double fileBytes = static_cast<double>(std::filesystem::file_size(path));

    // 2. this machine's memory read bandwidth, with the same threads
    ThreadPool& pool = ThreadPool::shared();
    ThreadPool single(1);
    const double bandwidth = measureReadBandwidth(pool);
    const double bandwidth1 = measureReadBandwidth(single);

    // 3. decoding: cached with all threads, cached with one, recompute with all
    std::mt19937 rng(7);
    std::vector<int32_t> prompt(static_cast<size_t>(promptTokens));
    for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % static_cast<unsigned>(spec.nVocab));
    const DecodeRun cached =
        decode(std::make_shared<CpuBackend>(model, pool), *model, true, prompt, steps);
    // --cached-only: the cached decode alone (a large model's recompute takes minutes)
    const bool cachedOnly = args.has("cached-only");
    const DecodeRun cached1 = cachedOnly ? cached
                                         : decode(std::make_shared<CpuBackend>(model, single),
                                                  *model, true, prompt, steps);
    const DecodeRun recompute = cachedOnly ? cached
                                           : decode(std::make_shared<CpuBackend>(model, pool),
                                                    *model, false, prompt, steps);

    // 4. the OpenCL backend, cached, beside the CPU backend: its start-up, then the two decoding
    //    in turns of kRound steps (the machine's other load falls on both alike)
    constexpr int kRound = 4;
    std::optional<DecodeRun> cl, cpuBeside;
    std::string clDevice, clWeights;
    bool clSimd = false;
#if KVSCOPE_HAS_OPENCL
    OpenClStartup clStartup;
    if (backendName == "opencl") {
        OpenClOptions o;
        o.device = static_cast<int>(args.getInt("device", 0, 0, 1 << 16));
        o.warmUp = !args.has("no-warmup");
        if (!scales.empty()) o.wideScales = scales == "wide";
        if (!cpuSimd.empty()) o.cpuSimd = cpuSimd == "on";
        if (!hugePages.empty()) o.hugePages = hugePages == "on";
        if (!fused.empty()) o.fusedLayers = fused == "on";
        auto backend = std::make_shared<OpenClBackend>(model, o);
        clDevice = backend->deviceName();
        clWeights = backend->weightNote();
        clSimd = backend->cpuSimd();
        clStartup = backend->startup();
        Decoding gpu(std::move(backend), *model, true, prompt, steps);
        Decoding cpu(std::make_shared<CpuBackend>(model, pool), *model, true, prompt, steps);
        for (int done = 0; done < steps; done += kRound) {
            cpu.run(kRound);
            gpu.run(kRound);
        }
        cl = gpu.result();
        cpuBeside = cpu.result();
    }
#else
    struct {
        double totalMs = 0, buildMs = 0, clblastMs = 0, uploadMs = 0, matmulMs = 0, warmMs = 0;
        bool matmulMeasured = false;
        std::string matmulTrials;
    } clStartup;
    if (backendName == "opencl") throw Error("--backend opencl: " + ocl::listDevices().problem);
#endif

    // Bytes one cached step must read: every weight but the two embedding tables (one row each
    // is gathered; the tied output head reads the token table in full), plus the cache.
    const ModelConfig& c = model->config;
    const double weights =
        static_cast<double>(model->weightBytes()) -
        static_cast<double>(model->posEmbd.size() * sizeof(float)) -
        (model->output.empty() ? 0.0 : static_cast<double>(model->tokEmbd.bytes()));
    const double meanCache =
        static_cast<double>(c.kvBytesPerToken(sizeof(float))) * (promptTokens + steps / 2.0);
    const double bytesPerStep = weights + meanCache;
    const double bound = bandwidth / bytesPerStep;
    const double rssDecoded = residentBytes();
    // The CPU's runs must agree to the token (the same kernels, in a fixed order), the run beside
    // OpenCL included. The OpenCL backend's sums run in another order, and for the block types
    // the CPU rounds activations to 8 bits where OpenCL's portable kernels keep them float (its
    // x86 kernels round them as the CPU does, but one rounding that falls the other way on a sum
    // taken in another order moves the next layer's x): on a random model, whose top logits can
    // be a hair apart, greedy decoding may then part. That is a near tie, not a fault, when OpenCL
    // took the CPU's runner-up and the CPU's margin there is within kTieShare of its top logit
    // (8-bit activations moved random models' logits by up to 2-4% of the largest: README, "Model
    // files"). Anything else fails the run.
    constexpr float kTieShare = 0.04f;
    const bool sameTokens = cached.tokens == recompute.tokens && cached.tokens == cached1.tokens &&
                            (!cpuBeside || cpuBeside->tokens == cached.tokens);
    int clSame = 0;  // leading steps on which OpenCL picked the CPU's token
    float clMargin = NAN;
    bool clAgrees = true;
    if (cl) {
        while (clSame < steps && cl->tokens[static_cast<size_t>(clSame)] ==
                                     cached.tokens[static_cast<size_t>(clSame)])
            ++clSame;
        if (clSame < steps) {
            const auto [first, second] =
                topTwoAt(std::make_shared<CpuBackend>(model, pool), *model, prompt, clSame);
            clMargin = first.second - second.second;
            clAgrees = second.first == cl->tokens[static_cast<size_t>(clSame)] &&
                       clMargin <= kTieShare * std::abs(first.second);
        }
    }

    if (args.has("json")) {
        QJsonObject o{{"threads", static_cast<int>(pool.size())},
                      {"arch", QString::fromStdString(arch)},
                      {"weight_type", QString::fromStdString(typeName(spec.weightType))},
                      {"file_bytes", fileBytes},
                      {"rss_before_load_bytes", rssBefore},
                      {"rss_after_load_bytes", rssLoaded},
                      {"rss_after_decode_bytes", rssDecoded},
                      {"bandwidth_gb_s", bandwidth / 1e9},
                      {"bandwidth_1_thread_gb_s", bandwidth1 / 1e9},
                      {"bytes_per_step", bytesPerStep},
                      {"bound_tokens_per_s", bound},
                      {"cached_tokens_per_s", cached.tokensPerSecond()},
                      {"cached_1_thread_tokens_per_s", cached1.tokensPerSecond()},
                      {"recompute_tokens_per_s", recompute.tokensPerSecond()},
                      {"prefill_ms", cached.prefillMs},
                      {"native_build", bool(KVSCOPE_NATIVE_BUILD)},
                      {"same_tokens", sameTokens}};
        if (cl) {
            o["opencl_same_steps"] = clSame;
            // the CPU's top-two margin where OpenCL parted from it (null: it never did)
            o["opencl_margin_where_parted"] =
                std::isnan(clMargin) ? QJsonValue() : QJsonValue(static_cast<double>(clMargin));
        }
        if (cl)
            o["opencl"] =
                QJsonObject{{"device", QString::fromStdString(clDevice)},
                            {"weights", QString::fromStdString(clWeights)},
                            {"warm_up", !args.has("no-warmup")},
                            {"startup_ms", clStartup.totalMs},
                            {"startup_build_ms", clStartup.buildMs},
                            {"startup_clblast_ms", clStartup.clblastMs},
                            {"startup_upload_ms", clStartup.uploadMs},
                            {"startup_matmul_ms", clStartup.matmulMs},
                            {"startup_warm_ms", clStartup.warmMs},
                            {"prefill_ms", cl->prefillMs},
                            {"first_step_ms", cl->firstStepMs},
                            {"later_step_ms", cl->laterStepMs()},
                            {"cached_tokens_per_s", cl->tokensPerSecond()},
                            {"cpu_simd", clSimd},
                            // the CPU backend decoding in turns with OpenCL (the ratio's base)
                            {"cpu_beside_tokens_per_s", cpuBeside->tokensPerSecond()},
                            {"ratio_to_cpu", cl->tokensPerSecond() / cpuBeside->tokensPerSecond()},
                            {"device_matmul_ms", cl->device.matmul},
                            {"device_attention_ms", cl->device.attention},
                            {"device_other_ms", cl->device.other},
                            {"device_layers_ms", cl->device.layers},
                            {"device_kernels_per_step", cl->device.kernels}};
        std::fputs(QJsonDocument(o).toJson().constData(), stdout);
        return sameTokens && clAgrees ? 0 : 1;
    }
    std::printf("build                   %s\n",
                KVSCOPE_NATIVE_BUILD
                    ? "-march=native (KVSCOPE_NATIVE=ON): tuned for this CPU"
                    : "portable x86-64 (KVSCOPE_NATIVE=OFF; ON tunes for this CPU)");
    std::printf(
        "weights                 %s, file %.1f MB; RSS %.1f MB before loading, %.1f MB "
        "loaded, %.1f MB after decoding\n",
        typeName(spec.weightType).c_str(), fileBytes / 1e6, rssBefore / 1e6, rssLoaded / 1e6,
        rssDecoded / 1e6);
    std::printf("memory read bandwidth   %.1f GB/s with %u threads, %.1f GB/s with 1\n",
                bandwidth / 1e9, pool.size(), bandwidth1 / 1e9);
    std::printf("bytes read per step     %.1f MB (weights %.1f MB + mean KV cache %.2f MB)\n",
                bytesPerStep / 1e6, weights / 1e6, meanCache / 1e6);
    std::printf("bandwidth bound         %.1f tokens/s\n", bound);
    std::printf("prefill                 %d tokens in %.1f ms\n", promptTokens, cached.prefillMs);
    std::printf("cached decode           %.2f tokens/s = %.0f%% of the bound (%.1f GB/s)\n",
                cached.tokensPerSecond(), 100 * cached.tokensPerSecond() / bound,
                cached.tokensPerSecond() * bytesPerStep / 1e9);
    if (!cachedOnly)
        std::printf("cached, 1 thread        %.2f tokens/s; %u threads are %.2fx faster\n",
                    cached1.tokensPerSecond(), pool.size(),
                    cached.tokensPerSecond() / cached1.tokensPerSecond());
    if (!cachedOnly)
        std::printf(
            "recompute (no cache)    %.2f tokens/s; the cache is %.2fx faster over %d steps "
            "after %d prompt tokens\n",
            recompute.tokensPerSecond(), cached.tokensPerSecond() / recompute.tokensPerSecond(),
            steps, promptTokens);
    if (cl) {
        std::printf("opencl device           %s\n", clDevice.c_str());
        std::printf("opencl weights          %s\n", clWeights.c_str());
        std::printf(
            "opencl start-up         %.0f ms: kernels %.0f ms and CLBlast %.0f ms on a worker "
            "beside the weight upload %.0f ms; matmul paths %s %.0f ms; warm-up pass %.0f ms%s\n",
            clStartup.totalMs, clStartup.buildMs, clStartup.clblastMs, clStartup.uploadMs,
            clStartup.matmulMeasured ? "measured" : "cached", clStartup.matmulMs, clStartup.warmMs,
            args.has("no-warmup") ? " (--no-warmup)" : "");
        if (clStartup.matmulMeasured)
            std::printf("opencl matmul paths     %s\n", clStartup.matmulTrials.c_str());
        std::printf(
            "first token             opencl: prefill %.1f ms + first step %.1f ms (later steps "
            "%.1f ms); cpu: %.1f + %.1f ms (later %.1f ms)\n",
            cl->prefillMs, cl->firstStepMs, cl->laterStepMs(), cached.prefillMs, cached.firstStepMs,
            cached.laterStepMs());
        std::printf(
            "opencl cached decode    %.2f tokens/s = %.2fx the CPU backend's %.2f tokens/s (the "
            "two in turns of %d steps)\n",
            cl->tokensPerSecond(), cl->tokensPerSecond() / cpuBeside->tokensPerSecond(),
            cpuBeside->tokensPerSecond(), kRound);
        if (cl->device.layers > 0)
            std::printf(
                "opencl device time      %.2f ms per step: whole layers %.2f, the products and "
                "kernels outside them %.2f (host wall %.2f ms); %.0f kernels\n",
                cl->device.total(), cl->device.layers,
                cl->device.matmul + cl->device.attention + cl->device.other, cl->stepMs / cl->steps,
                cl->device.kernels);
        else
            std::printf(
                "opencl device time      %.2f ms per step: matrix products %.2f, attention "
                "%.2f, the rest %.2f (host wall %.2f ms); %.0f kernels\n",
                cl->device.total(), cl->device.matmul, cl->device.attention, cl->device.other,
                cl->stepMs / cl->steps, cl->device.kernels);
    }
    std::printf("same greedy tokens      %s\n",
                sameTokens ? (cachedOnly ? "yes (CPU, cached only)"
                                         : "yes (CPU: cached, one thread, recompute)")
                           : "NO (the CPU's runs parted)");
    if (cl) {
        if (clSame == steps)
            std::printf("opencl greedy tokens    the CPU's, all %d steps\n", steps);
        else
            std::printf(
                "opencl greedy tokens    the CPU's for %d of %d steps, then parted where the "
                "CPU's top two logits are %.4f apart: %s\n",
                clSame, steps, double(clMargin),
                clAgrees ? "OpenCL took the runner-up, a near tie (sums in another order; "
                           "activations rounded to 8 bits for block types on the CPU and in "
                           "OpenCL's x86 kernels)"
                         : "NOT a near tie (OpenCL did not take the runner-up, or the margin is "
                           "wide)");
    }
    return sameTokens && clAgrees ? 0 : 1;
}

}  // namespace kvscope::app
