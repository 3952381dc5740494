// KV-cache memory calculator: model presets with their true attention shapes, common GPUs, and
// the arithmetic of TEACHING.md §3 as plain functions (bytes per token, total, as if plain
// multi-head attention, weights, share of a GPU, a bandwidth lower bound on decode time, cost).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"

namespace kvscope::kvmem {

// How a model's attention stores keys and values.
enum class Attention {
    Mha,            // multi-head: one K/V head per query head
    Gqa,            // grouped-query: groups of query heads share one K/V head
    Mqa,            // multi-query: all query heads share one K/V head
    Mla,            // multi-head latent (DeepSeek-V2/V3): one compressed latent per token per layer
    SlidingWindow,  // keeps only the last `window` tokens (Mistral-7B v0.1); heads as its kvHeads
};
const char* attentionName(Attention a);  // "MHA", "GQA", "MQA", "MLA", "sliding window"

struct ModelShape {
    std::string key;   // "llama-3-70b": what --preset takes
    std::string name;  // "Llama-3-70B"
    int layers = 0;
    int heads = 0;    // query heads
    int kvHeads = 0;  // K/V heads (== heads for MHA, 1 for MQA; for MLA unused)
    int headDim = 0;  // per-head dimension (for MLA: the per-head dim of the as-if-MHA comparison)
    int width = 0;    // model width (n_embd)
    Attention kind = Attention::Mha;
    int latentValues = 0;     // MLA only: values cached per token per layer (latent + RoPE key)
    int window = 0;           // sliding window in tokens (0: attends to the whole context)
    int maxContext = 0;       // the context the model was trained for
    double parameters = 0;    // all parameters (weights bytes = parameters × bytes per weight)
    double activeParams = 0;  // read per token: == parameters for dense models, less for MoE
    std::string note;         // where the numbers come from, what is special
};

// Every preset (the loaded model is not among them: see fromConfig).
const std::vector<ModelShape>& presets();
// The preset with this key (case-insensitive), or nullopt.
std::optional<ModelShape> findPreset(const std::string& key);
// The shape of a loaded model; `parameters` from Model::parameterCount().
ModelShape fromConfig(const ModelConfig& config, double parameters);

struct Gpu {
    std::string key;   // "h100-sxm"
    std::string name;  // "H100 SXM 80GB"
    double memoryBytes = 0;
    double bandwidthBytesPerS = 0;
};
const std::vector<Gpu>& gpus();
std::optional<Gpu> findGpu(const std::string& key);  // case-insensitive; nullopt if unknown

// Element types for the cache and the weights, in bits so that int4 (half a byte) is exact.
struct Dtype {
    std::string key;  // "fp16"
    int bits = 16;
};
const std::vector<Dtype>& dtypes();  // fp32, fp16, bf16, fp8, int8, int4
std::optional<Dtype> findDtype(const std::string& key);

// -- the formulas, each exact in integers (bits / 8 at the end)

// Values (not bytes) each token adds to the cache per layer:
//   MHA/GQA/MQA/sliding window: 2 (K and V) × kv_heads × head_dim
//   MLA:                        latentValues (kv_lora_rank + RoPE key dim; 512 + 64 for DS-V3)
uint64_t valuesPerTokenPerLayer(const ModelShape& m);
// Bytes per token = layers × valuesPerTokenPerLayer × bits / 8
//   (= 2 × layers × kv_heads × head_dim × bytes per element).
uint64_t bytesPerToken(const ModelShape& m, int bits);
// The same model as if it had plain multi-head attention: 2 × layers × heads × head_dim × bits/8.
uint64_t mhaBytesPerToken(const ModelShape& m, int bits);
// Tokens the cache holds for a context: min(context, window) when window > 0, else context.
uint64_t tokensKept(uint64_t context, int window);
// Total = bytes per token × tokens kept × batch.
uint64_t cacheBytes(const ModelShape& m, int bits, uint64_t context, uint64_t batch, int window);
// Weights bytes = parameters × bits / 8.
double weightBytes(double parameters, int bits);
// Lower bound on the time of one decode step: it must read every byte once, so
//   seconds >= bytes read / bandwidth. An estimate (ignores compute, caches and overlap).
double decodeSecondsLowerBound(double bytesRead, double bandwidthBytesPerS);
// Cost of a million tokens when one step (of `batch` tokens) takes `stepSeconds` on a GPU
// rented at `pricePerHour`: price/hour ÷ (batch × 3600 / stepSeconds tokens/hour) × 10^6.
double costPerMillionTokens(double pricePerHour, double stepSeconds, uint64_t batch);

// The calculator's inputs.
struct Inputs {
    int cacheBits = 16;
    int weightBits = 16;
    // A loaded file's weights as it stores them (F16, Q8_0 or Q4_K matrices, F32 norms): when
    // set, the weights take these bytes instead of parameters x weightBits / 8, and the
    // arithmetic says the bits per parameter they come to.
    std::optional<double> storedWeightBytes;
    uint64_t batch = 1;
    uint64_t context = 4096;
    std::optional<int> window;  // nullopt: the model's own (0: none)
    std::string gpu = "h100-sxm";
    double pricePerHour = 2.0;  // USD per GPU-hour
};

// Everything the panel, the CLI and its JSON show, with the arithmetic as text.
struct Result {
    ModelShape model;
    Gpu gpu;
    int cacheBits = 16, weightBits = 16;
    bool weightsAsStored = false;        // weightBytes is the file's (Inputs::storedWeightBytes)
    double weightBitsPerParameter = 16;  // weightBits, or the stored bytes' average
    uint64_t batch = 1, context = 0, tokens = 0;  // tokens: kept per sequence
    int window = 0;
    uint64_t valuesPerTokenPerLayer = 0;
    uint64_t bytesPerToken = 0, totalBytes = 0;
    uint64_t mhaBytesPerToken = 0, mhaTotalBytes = 0;
    double mhaRatio = 1;  // mhaBytesPerToken / bytesPerToken
    double weightBytes = 0, weightBytesRead = 0;
    double gpuShare = 0;  // (weights + cache) / GPU memory
    double weightShare = 0, cacheShare = 0;
    bool fits = true;
    double decodeMsLowerBound = 0;  // estimate: (weights read + cache) / bandwidth
    double tokensPerSecondUpperBound = 0;
    double costPerMillion = 0;  // estimate, USD
    double pricePerHour = 0;
    std::string perTokenArithmetic, totalArithmetic, mhaArithmetic, weightArithmetic,
        shareArithmetic, timeArithmetic, costArithmetic, whyDifferent;
};

// Runs the calculator. Throws Error for an unknown GPU, a zero batch or context.
Result calculate(const ModelShape& m, const Inputs& in);

// "36,864" (thousands separated by commas).
std::string groupDigits(uint64_t n);
// "2.50 MiB", "10.0 GiB", "180.4 GB" style: binary units for sizes that are powers of two
// (MiB/GiB), and decimal GB beside them where marketing figures are compared.
std::string humanBytes(double bytes);

}  // namespace kvscope::kvmem
