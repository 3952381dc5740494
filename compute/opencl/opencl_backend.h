// OpenClBackend: the Backend contract on any OpenCL device (a GPU, or PoCL on the CPU). Weights
// live in device buffers, one per weight, uploaded once; the KV cache in per-layer device
// buffers (n_head_kv, rows, row bytes) that grow in blocks as tokens arrive. The cache lab's
// policies (OpenClOptions::cache) run here as on the CPU: the same KvRows bookkeeping decides the
// rows each query sees and which leave (evicted rows are squeezed out of the device buffers
// after each pass, and the buffers shrink to the policy's budget); f16, q8_0 and q4_0 rows are
// stored on the device in their block formats (encoded on the host by the CPU's code, decoded
// by the attention kernel), so the bytes saved are real. Matrix products run through our
// kernels or CLBlast's Gemv/Gemm (whichever measured fastest on the device), the rest through
// our kernels in resources/kernels/*.cl. CpuBackend is the reference it is held to.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "opencl/matmul_choice.h"
#include "runtime/backend.h"

namespace kvscope {

struct OpenClOptions {
    int device = 0;  // index in ocl::listDevices() (`kvscope devices`)
    // The matrix-product paths to use; unset: the ones cached for this device, else measured
    // at this first use and cached.
    std::optional<ocl::MatMulChoice> matmul;
    // Folder of the cache file (matmul.txt); unset: ocl::defaultCacheDir(); "": none.
    std::optional<std::string> cacheDir;
    // Compile CLBlast's kernels on a worker thread while the weights upload, and run every
    // kernel once before the constructor returns, so the first real step is not late.
    bool warmUp = true;
    // Test hook: act as if the device had only this many bytes of memory (0: its real size).
    uint64_t deviceMemoryLimit = 0;
    // When set and true, the start-up stops between its phases (upload, measuring the matmul
    // paths, warm-up) with Error("stopped"): closing the window does not wait for a tuning.
    const std::atomic<bool>* stop = nullptr;
    // A forward's traces up to this many bytes (a decode step's) are gathered on the device and
    // read in two reads after the last layer; larger ones (a long prompt's) are read per layer.
    size_t traceGatherBytes = size_t{64} << 20;
    // Without traces the attention rows are scratch: at most this many floats of them, a slice
    // of the new tokens at a time (a long prompt needs no n_head × T² buffer).
    size_t attentionScratchFloats = size_t{16} << 20;
    // The KV cache's element type, block size and eviction policy (the cache lab).
    KvCacheOptions cache;
    // Widen the block types' float16 scales to float32 at upload (ocl/device_weights.h); unset:
    // on CPU devices (PoCL converts float16 in software), not on GPUs (the extra bytes cost).
    std::optional<bool> wideScales;
    // The products on the block types, and F16's decode steps, through cpu_simd.cl's x86
    // kernels, the block types with x rounded to 8 bits per block as the CPU backend rounds it
    // (its error: compute/cpu/quant_dot.h); those need the wide scales. Only CPU devices whose
    // OpenCL compiler targets AVX2 and F16C build them (PoCL on x86). Unset: wherever they
    // build; false: quant.cl's portable kernels, float32 activations.
    std::optional<bool> cpuSimd;
    // On CPU devices (which compute in host memory), the weights' buffers in host memory that
    // the kernel is asked to back with transparent huge pages (ocl::HostArena). Unset: true.
    // Not on GPUs: there the driver would keep a copy of its own beside the host's.
    std::optional<bool> hugePages;
    // Decode steps (one new token) with each decoder layer as one command (cpu_step.cl), on
    // PoCL's CPU device where the x86 kernels and the wide scales are on and every layer's
    // weights are of the types those kernels read. Unset: there; false: the separate kernels.
    std::optional<bool> fusedLayers;
    // Test hooks for the fused layers: work groups per command (0: the device's compute
    // units), and how long a group waits at a barrier before the step gives up (pause
    // instructions; 0: at once, so that the step runs again with the separate kernels).
    int stepGroups = 0;
    int stepSpins = 1 << 26;
};

// Device time of one forward(), from OpenCL profiling events, in milliseconds. A CLBlast call
// hands back the event of its last kernel only, so its helper kernels (padding, transposes of
// its indirect GEMM) are not counted.
struct DeviceMs {
    double matmul = 0;     // GEMV / GEMM, their bias adds and x's rounding (cpu_simd.cl)
    double attention = 0;  // scores, softmax and weighted sums over the cache
    double other = 0;      // embedding, norms, RoPE, activations, cache append
    double layers = 0;     // whole decoder layers in one command (OpenClOptions::fusedLayers)
    int kernels = 0;       // the kernels behind these (a CLBlast call counts once)
    double total() const { return matmul + attention + other + layers; }
};

// Where the constructor's time went, in milliseconds of wall time.
struct OpenClStartup {
    double openMs = 0;     // device, context, queue
    double buildMs = 0;    // our kernels' program (on the worker thread when warming up)
    double clblastMs = 0;  // CLBlast's kernels compiled ahead (worker thread); 0 without warm-up
    double uploadMs = 0;   // weights and cache allocation (main thread, beside the worker)
    double matmulMs = 0;   // measuring the matrix-product candidates; 0 when cached
    double warmMs = 0;     // one dummy pass to run every kernel once; 0 without warm-up
    double totalMs = 0;
    bool matmulMeasured = false;
    std::string matmulTrials;  // the candidates' timings when measured
};

class OpenClBackend final : public Backend {
  public:
    // Opens the device, uploads the weights, allocates the KV cache for the model's whole
    // context and builds the kernels. Throws Error: no such device (naming the index and the
    // count), not enough device memory (naming the bytes needed and available), a kernel build
    // failure (with the compiler's log), or any OpenCL/CLBlast call that fails (call, status).
    explicit OpenClBackend(std::shared_ptr<const Model> model, OpenClOptions options = {});
    ~OpenClBackend() override;
    OpenClBackend(const OpenClBackend&) = delete;
    OpenClBackend& operator=(const OpenClBackend&) = delete;

    std::string name() const override { return "opencl"; }
    // "<device> (<platform>, OpenCL, gemv <path>, gemm <path>[; x86 SIMD kernels, …])": the
    // SIMD note says which products take them (cpuSimd()).
    std::string deviceName() const override;
    const ModelConfig& config() const override;

    void doForward(std::span<const int32_t> tokens, bool allLogits, std::vector<float>& logits,
                   std::vector<StepTrace>* traces, int traceFrom = 0) override;

    // The GEMM runs on the device through CLBlast against the cached keys; the causal softmax
    // of the (t, t) scores runs on the host.
    void doAttentionMatrix(int layer, int head, std::span<const float> queries,
                           std::vector<float>& out) override;

    int cacheUsed() const override;
    int cacheRows() const override;
    bool canTruncateCache(int n) const override;
    const KvRows* cacheBook() const override;
    KvCacheOptions cacheOptions() const override;
    // A second backend on the same device and model with a copy of this cache (read back and
    // written through the host). It shares this one's device, program and weights (uploaded
    // once, freed with the last backend holding them); its cache blocks are its own.
    std::shared_ptr<Backend> fork() const override;
    // A backend with an empty cache of other options (the drift readout's full cache), sharing
    // the device and weights as fork() does.
    std::shared_ptr<Backend> withCache(const KvCacheOptions& options) const override;
    // A backend as withCache(cacheOptions()) makes, with decode steps in fused layers or not
    // (OpenClOptions::fusedLayers): the two paths side by side on the same weights.
    std::shared_ptr<OpenClBackend> withFusedLayers(bool fused) const;
    // Whether the two hold the same weight buffers on the device (one came from the other).
    bool sharesWeightsWith(const OpenClBackend& other) const;
    void doTruncateCache(int n) override;
    void doHeadLogits(std::span<const float> hidden, int rows, std::vector<float>& logits) override;
    size_t cacheBytesPerToken() const override;
    size_t cacheAllocatedBytes() const override;
    int cacheBlockTokens() const override;
    bool swapSpareCache() override;

    DeviceMs lastStepDeviceMs() const;  // of the last forward()
    std::optional<double> lastForwardDeviceMs() const override {
        return lastStepDeviceMs().total();
    }
    std::optional<uint64_t> deviceMemoryBytes() const override;
    const OpenClStartup& startup() const;    // the constructor's time, by part
    ocl::MatMulChoice matmulChoice() const;  // the paths matrix products take
    int deviceIndex() const;
    // The types the weights are held in on the device and which were converted at upload
    // (ocl::deviceWeightNote: "weights on the device: Q4_K, Q6_K native; Q5_K converted to Q8_0
    // at upload (… MiB as uploaded)").
    std::string weightNote() const;
    // Whether the block types' scales went up widened to float32 (OpenClOptions::wideScales).
    bool wideScales() const;
    // Whether cpu_simd.cl's kernels are in use (OpenClOptions::cpuSimd): for F16's decode steps,
    // and for every product on the block types when their scales are wide (wideScales()).
    bool cpuSimd() const;
    // Whether the weights are in huge-page host memory (OpenClOptions::hugePages).
    bool hugePageWeights() const;
    // Whether decode steps run a decoder layer per command (OpenClOptions::fusedLayers), and
    // whether they still do: false from the first step whose barrier gave up (then the
    // separate kernels ran that step again and run every later one).
    bool fusedLayers() const;
    // Bytes of the weights' device buffers (matrices in their device types, vectors float32).
    uint64_t uploadedWeightBytes() const;
    // Reads back layer's ffn_down weight as it sits on the device: its type and raw rows.
    std::pair<TensorType, std::vector<uint8_t>> readFfnDown(int layer) const;

    // Reads back the cached keys (or values) of one layer and KV head: (cacheRows(), head_dim),
    // decoded to float32 when the cache stores a block type.
    std::vector<float> readKeys(int layer, int kvHead) const;
    std::vector<float> readValues(int layer, int kvHead) const;

  private:
    // A backend on `from`'s device, program and weights, with options of its own.
    OpenClBackend(const OpenClBackend& from, OpenClOptions options);
    void startUp(std::chrono::steady_clock::time_point start);

    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace kvscope
