// KV-cache memory calculator: presets, GPUs and the arithmetic (TEACHING.md §3).
#include "analysis/kv_memory.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "core/error.h"

namespace kvscope::kvmem {
namespace {

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string format(const char* fmt, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}

ModelShape shape(std::string key, std::string name, int layers, int heads, int kvHeads, int headDim,
                 int width, Attention kind, int maxContext, double parameters, std::string note) {
    ModelShape m;
    m.key = std::move(key);
    m.name = std::move(name);
    m.layers = layers;
    m.heads = heads;
    m.kvHeads = kvHeads;
    m.headDim = headDim;
    m.width = width;
    m.kind = kind;
    m.maxContext = maxContext;
    m.parameters = parameters;
    m.activeParams = parameters;
    m.note = std::move(note);
    return m;
}

}  // namespace

const char* attentionName(Attention a) {
    switch (a) {
        case Attention::Mha:
            return "MHA";
        case Attention::Gqa:
            return "GQA";
        case Attention::Mqa:
            return "MQA";
        case Attention::Mla:
            return "MLA";
        case Attention::SlidingWindow:
            return "sliding window";
    }
    return "?";
}

// Shapes from each model's published config.json (Hugging Face) or paper; parameter counts
// are those of the released checkpoints (OPT-30B: the nominal 30B of the paper).
const std::vector<ModelShape>& presets() {
    static const std::vector<ModelShape> all = [] {
        std::vector<ModelShape> v;
        v.push_back(shape("gpt2", "GPT-2 small", 12, 12, 12, 64, 768, Attention::Mha, 1024,
                          124'439'808, "OpenAI GPT-2 124M"));
        v.push_back(shape("gpt2-xl", "GPT-2 XL", 48, 25, 25, 64, 1600, Attention::Mha, 1024,
                          1'557'611'200, "OpenAI GPT-2 1.5B"));
        v.push_back(shape("llama-2-7b", "Llama-2-7B", 32, 32, 32, 128, 4096, Attention::Mha, 4096,
                          6'738'415'616, "multi-head attention: 32 K/V heads"));
        v.push_back(shape("llama-2-13b", "Llama-2-13B", 40, 40, 40, 128, 5120, Attention::Mha, 4096,
                          13'015'864'320, "multi-head attention: 40 K/V heads"));
        v.push_back(shape("llama-3-8b", "Llama-3-8B", 32, 32, 8, 128, 4096, Attention::Gqa, 8192,
                          8'030'261'248, "grouped-query: 4 query heads per K/V head"));
        v.push_back(shape("llama-3-70b", "Llama-3-70B", 80, 64, 8, 128, 8192, Attention::Gqa, 8192,
                          70'553'706'496, "grouped-query: 8 query heads per K/V head"));
        ModelShape mistral = shape("mistral-7b", "Mistral-7B v0.1", 32, 32, 8, 128, 4096,
                                   Attention::SlidingWindow, 32768, 7'241'732'096,
                                   "grouped-query (8 K/V heads) and a 4,096-token sliding window");
        mistral.window = 4096;
        v.push_back(mistral);
        v.push_back(shape("qwen2.5-7b", "Qwen2.5-7B", 28, 28, 4, 128, 3584, Attention::Gqa, 32768,
                          7'615'616'512, "grouped-query: 7 query heads per K/V head"));
        // DeepSeek-V3: per token per layer it caches the compressed latent (kv_lora_rank 512)
        // and the decoupled RoPE key (64) = 576 values, shared by all 128 heads. Its as-if-MHA
        // comparison uses DeepSeek's own 2 × n_h × d_h × layers with d_h = 128.
        ModelShape ds = shape("deepseek-v3", "DeepSeek-V3", 61, 128, 128, 128, 7168, Attention::Mla,
                              163840, 671e9,
                              "multi-head latent attention: 512 latent + 64 RoPE key values per "
                              "token per layer; mixture of experts, 37B of 671B active");
        ds.latentValues = 512 + 64;
        ds.activeParams = 37e9;
        v.push_back(ds);
        v.push_back(shape("opt-30b", "OPT-30B", 48, 56, 56, 128, 7168, Attention::Mha, 2048, 30e9,
                          "multi-head attention; nominal 30B parameters"));
        return v;
    }();
    return all;
}

std::optional<ModelShape> findPreset(const std::string& key) {
    const std::string k = lower(key);
    for (const ModelShape& m : presets())
        if (m.key == k) return m;
    return std::nullopt;
}

ModelShape fromConfig(const ModelConfig& c, double parameters) {
    const Attention kind = c.nHeadKv == c.nHead ? Attention::Mha
                           : c.nHeadKv == 1     ? Attention::Mqa
                                                : Attention::Gqa;
    ModelShape m = shape("loaded", c.name.empty() ? "the loaded model" : c.name, c.nLayer, c.nHead,
                         c.nHeadKv, c.headDim, c.nEmbd, kind, c.nCtx, parameters,
                         "the model loaded in KVScope (" + c.archName + ")");
    return m;
}

// Datasheet figures from NVIDIA (A100, H100, H200, L4, RTX 4090 product pages): memory as
// marketed in GB (10^9 bytes; the usable amount the driver reports differs by a few percent)
// and peak memory bandwidth in TB/s (10^12 bytes per second).
const std::vector<Gpu>& gpus() {
    static const std::vector<Gpu> all{
        {"a100-40gb", "A100 40GB", 40e9, 1.555e12},    {"a100-80gb", "A100 80GB", 80e9, 2.039e12},
        {"h100-sxm", "H100 SXM 80GB", 80e9, 3.35e12},  {"h200", "H200 141GB", 141e9, 4.8e12},
        {"rtx-4090", "RTX 4090 24GB", 24e9, 1.008e12}, {"l4", "L4 24GB", 24e9, 0.3e12},
    };
    return all;
}

std::optional<Gpu> findGpu(const std::string& key) {
    const std::string k = lower(key);
    for (const Gpu& g : gpus())
        if (g.key == k) return g;
    return std::nullopt;
}

const std::vector<Dtype>& dtypes() {
    static const std::vector<Dtype> all{{"fp32", 32}, {"fp16", 16}, {"bf16", 16},
                                        {"fp8", 8},   {"int8", 8},  {"int4", 4}};
    return all;
}

std::optional<Dtype> findDtype(const std::string& key) {
    const std::string k = lower(key);
    for (const Dtype& d : dtypes())
        if (d.key == k) return d;
    return std::nullopt;
}

uint64_t valuesPerTokenPerLayer(const ModelShape& m) {
    if (m.kind == Attention::Mla) return static_cast<uint64_t>(m.latentValues);
    return 2 * static_cast<uint64_t>(m.kvHeads) * static_cast<uint64_t>(m.headDim);
}

uint64_t bytesPerToken(const ModelShape& m, int bits) {
    return static_cast<uint64_t>(m.layers) * valuesPerTokenPerLayer(m) *
           static_cast<uint64_t>(bits) / 8;
}

uint64_t mhaBytesPerToken(const ModelShape& m, int bits) {
    return 2 * static_cast<uint64_t>(m.layers) * static_cast<uint64_t>(m.heads) *
           static_cast<uint64_t>(m.headDim) * static_cast<uint64_t>(bits) / 8;
}

uint64_t tokensKept(uint64_t context, int window) {
    return window > 0 ? std::min(context, static_cast<uint64_t>(window)) : context;
}

uint64_t cacheBytes(const ModelShape& m, int bits, uint64_t context, uint64_t batch, int window) {
    return bytesPerToken(m, bits) * tokensKept(context, window) * batch;
}

double weightBytes(double parameters, int bits) {
    return parameters * bits / 8.0;
}

double decodeSecondsLowerBound(double bytesRead, double bandwidthBytesPerS) {
    return bandwidthBytesPerS > 0 ? bytesRead / bandwidthBytesPerS : 0;
}

double costPerMillionTokens(double pricePerHour, double stepSeconds, uint64_t batch) {
    if (stepSeconds <= 0 || batch == 0) return 0;
    const double tokensPerHour = static_cast<double>(batch) * 3600.0 / stepSeconds;
    return pricePerHour / tokensPerHour * 1e6;
}

std::string groupDigits(uint64_t n) {
    const std::string digits = std::to_string(n);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string humanBytes(double bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    double v = bytes;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    std::string s =
        format(u == 0 ? "%.0f " : (v < 10 ? "%.2f " : (v < 100 ? "%.1f " : "%.0f ")), v) + units[u];
    if (bytes >= 1e9) s += " (" + format("%.1f", bytes / 1e9) + " GB)";
    return s;
}

namespace {
std::string bytesText(int bits) {
    return bits % 8 == 0 ? std::to_string(bits / 8) + " B" : format("%.1f B", bits / 8.0);
}
}  // namespace

Result calculate(const ModelShape& m, const Inputs& in) {
    if (in.batch == 0) throw Error("batch must be at least 1");
    if (in.context == 0) throw Error("context must be at least 1 token");
    const std::optional<Gpu> gpu = findGpu(in.gpu);
    if (!gpu) throw Error("unknown GPU '" + in.gpu + "' (see kvscope memory --list)");
    Result r;
    r.model = m;
    r.gpu = *gpu;
    r.cacheBits = in.cacheBits;
    r.weightBits = in.weightBits;
    r.batch = in.batch;
    r.context = in.context;
    r.window = in.window.value_or(m.window);
    r.tokens = tokensKept(in.context, r.window);
    r.valuesPerTokenPerLayer = valuesPerTokenPerLayer(m);
    r.bytesPerToken = bytesPerToken(m, in.cacheBits);
    r.totalBytes = cacheBytes(m, in.cacheBits, in.context, in.batch, r.window);
    r.mhaBytesPerToken = mhaBytesPerToken(m, in.cacheBits);
    r.mhaTotalBytes = r.mhaBytesPerToken * in.context * in.batch;
    r.mhaRatio = r.bytesPerToken ? static_cast<double>(r.mhaBytesPerToken) /
                                       static_cast<double>(r.bytesPerToken)
                                 : 1;
    r.weightBytes =
        in.storedWeightBytes ? *in.storedWeightBytes : weightBytes(m.parameters, in.weightBits);
    r.weightsAsStored = in.storedWeightBytes.has_value();
    r.weightBitsPerParameter = r.weightsAsStored && m.parameters > 0
                                   ? r.weightBytes * 8 / m.parameters
                                   : static_cast<double>(in.weightBits);
    r.weightBytesRead = in.storedWeightBytes && m.parameters > 0
                            ? *in.storedWeightBytes * m.activeParams / m.parameters
                            : weightBytes(m.activeParams, in.weightBits);
    const double cache = static_cast<double>(r.totalBytes);
    r.weightShare = r.weightBytes / gpu->memoryBytes;
    r.cacheShare = cache / gpu->memoryBytes;
    r.gpuShare = r.weightShare + r.cacheShare;
    r.fits = r.gpuShare <= 1.0;
    const double seconds =
        decodeSecondsLowerBound(r.weightBytesRead + cache, gpu->bandwidthBytesPerS);
    r.decodeMsLowerBound = seconds * 1e3;
    r.tokensPerSecondUpperBound = seconds > 0 ? static_cast<double>(in.batch) / seconds : 0;
    r.pricePerHour = in.pricePerHour;
    r.costPerMillion = costPerMillionTokens(in.pricePerHour, seconds, in.batch);

    // The arithmetic, as a lecturer would write it on the board.
    const std::string b = bytesText(in.cacheBits);
    if (m.kind == Attention::Mla)
        r.perTokenArithmetic = std::to_string(m.layers) + " layers x " +
                               std::to_string(m.latentValues) + " latent values x " + b + " = " +
                               groupDigits(r.bytesPerToken) + " B per token";
    else
        r.perTokenArithmetic = "2 (K and V) x " + std::to_string(m.layers) + " layers x " +
                               std::to_string(m.kvHeads) + " kv heads x " +
                               std::to_string(m.headDim) + " head dim x " + b + " = " +
                               groupDigits(r.bytesPerToken) + " B per token";
    r.totalArithmetic = groupDigits(r.bytesPerToken) + " B x " + groupDigits(r.tokens) +
                        " tokens x batch " + groupDigits(in.batch) + " = " +
                        groupDigits(r.totalBytes) + " B = " + humanBytes(cache);
    if (r.window > 0 && r.tokens < in.context)
        r.totalArithmetic += " (the window keeps the last " + groupDigits(r.tokens) + " of " +
                             groupDigits(in.context) + " tokens)";
    r.mhaArithmetic = "2 x " + std::to_string(m.layers) + " layers x " + std::to_string(m.heads) +
                      " heads x " + std::to_string(m.headDim) + " x " + b + " = " +
                      groupDigits(r.mhaBytesPerToken) + " B per token; x " +
                      groupDigits(in.context) + " tokens x batch " + groupDigits(in.batch) + " = " +
                      humanBytes(static_cast<double>(r.mhaTotalBytes));
    switch (m.kind) {
        case Attention::Mha:
            r.whyDifferent = "plain multi-head attention: every query head has its own K and V";
            break;
        case Attention::Gqa:
        case Attention::Mqa:
        case Attention::SlidingWindow:
            r.whyDifferent = std::to_string(m.heads) + " query heads share " +
                             std::to_string(m.kvHeads) + " K/V head" + (m.kvHeads == 1 ? "" : "s") +
                             ": " + format("%.3g", r.mhaRatio) + "x less per token";
            if (m.kind == Attention::SlidingWindow)
                r.whyDifferent += "; the sliding window keeps only the last " +
                                  groupDigits(static_cast<uint64_t>(m.window)) + " tokens";
            break;
        case Attention::Mla:
            r.whyDifferent = "one compressed latent (" + std::to_string(m.latentValues) +
                             " values) per token per layer instead of K and V for " +
                             std::to_string(m.heads) + " heads: " + format("%.3g", r.mhaRatio) +
                             "x less per token";
            break;
    }
    const std::string params = m.parameters >= 1e9
                                   ? format("%.4g", m.parameters / 1e9) + " billion"
                                   : groupDigits(static_cast<uint64_t>(m.parameters));
    if (in.storedWeightBytes && m.parameters > 0)
        r.weightArithmetic = params + " parameters as the file stores them (" +
                             format("%.3g", r.weightBitsPerParameter) +
                             " bits each on average) = " + humanBytes(r.weightBytes);
    else
        r.weightArithmetic = params + " parameters x " + bytesText(in.weightBits) + " = " +
                             humanBytes(r.weightBytes);
    r.shareArithmetic = "(" + humanBytes(r.weightBytes) + " weights + " + humanBytes(cache) +
                        " cache) / " + format("%.0f", gpu->memoryBytes / 1e9) + " GB " + gpu->name +
                        " = " + format(r.gpuShare < 0.001 ? "%.2g" : "%.1f", 100 * r.gpuShare) +
                        "%" + (r.fits ? "" : " (does not fit on one GPU)");
    std::string read = humanBytes(r.weightBytesRead) + " weights";
    if (m.activeParams < m.parameters) read += " (active per token)";
    r.timeArithmetic = "estimate: (" + read + " + " + humanBytes(cache) + " cache) / " +
                       format("%.3g", gpu->bandwidthBytesPerS / 1e12) +
                       " TB/s >= " + format("%.3g", r.decodeMsLowerBound) + " ms per step (" +
                       groupDigits(in.batch) + " token" + (in.batch == 1 ? "" : "s") + ")";
    const double tokensPerHour = seconds > 0 ? static_cast<double>(in.batch) * 3600.0 / seconds : 0;
    r.costArithmetic = "estimate: $" + format("%.2f", in.pricePerHour) + " per hour / (" +
                       groupDigits(in.batch) + " x 3600 s / " + format("%.4g", seconds) +
                       " s per step = " + format("%.4g", tokensPerHour) +
                       " tokens per hour) x 10^6 = $" + format("%.4g", r.costPerMillion) +
                       " per million tokens";
    return r;
}

}  // namespace kvscope::kvmem
