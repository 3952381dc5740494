// OpenClBackend: start-up (device, memory check, weights, kernels, warm-up) and one batched
// forward pass, step by step as in CpuBackend::forward.
#include "opencl/opencl_backend.h"

#include <clblast.h>
#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "cpu/cpu_ops.h"
#include "opencl/cl_check.h"
#include "opencl/cl_device.h"
#include "opencl/cl_matmul.h"
#include "opencl/device_weights.h"
#include "opencl/matmul_tuner.h"

namespace kvscope {
using namespace ocl;

namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

size_t floorPow2(size_t n) {
    size_t p = 1;
    while (p * 2 <= n) p *= 2;
    return p;
}

std::string mib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
    return buf;
}

enum class Cat { MatMul, Attention, Other, Layer };

// cpu_step.cl's StepPlan: what a fused layer's command knows of its weights and shape.
struct StepPlan {
    cl_int qkvParts = 0;
    cl_int qkvType[3] = {}, qkvRowBytes[3] = {}, qkvRow0[3] = {}, qkvRows[3] = {};
    cl_int oType = 0, oRowBytes = 0, upType = 0, upRowBytes = 0, gateType = 0, gateRowBytes = 0,
           downType = 0, downRowBytes = 0;
    cl_int nEmbd = 0, nHead = 0, nHeadKv = 0, headDim = 0, nFf = 0, rowLen = 0;
    cl_int ffn = 0, layerNorm = 0;
    cl_int hasBqkv = 0, hasBo = 0, hasBUp = 0, hasBDown = 0;
    cl_int ropePairs = 0, ropeNeox = 0;
    cl_int window = 0;
};
static_assert(sizeof(StepPlan) == 36 * sizeof(cl_int), "StepPlan: cpu_step.cl's layout");

// The sync words of a fused step, after the logits' first row: the step's `failed` word, then
// kStepSyncStride ints per layer (a barrier's count and nine claims, 64 bytes apart), as
// cpu_step.cl's STEP_LINE and STEP_SYNC_STRIDE lay them out.
constexpr int kStepLine = 16, kStepSyncStride = 10 * kStepLine;

}  // namespace

struct OpenClBackend::Impl {
    // A weight matrix on the device, in the types of device_weights.h: one buffer per run of
    // consecutive parts (Q, K, V) of the same device type, rows contiguous, as the kernels read.
    struct DeviceWeight {
        struct Part {
            Buffer buf;
            TensorType type = TensorType::F32;
            bool wide = false;  // its float16 scales widened to float32 (device_weights.h)
            size_t rowBytes = 0;
            int row0 = 0, rows = 0;  // its rows within the stack
        };
        std::vector<Part> parts;
        explicit operator bool() const { return !parts.empty(); }
        // The float paths (CLBlast or gemv_rows/gemm_rows) take a single F32 part.
        bool isFloat() const { return parts.size() == 1 && parts[0].type == TensorType::F32; }
    };
    struct LayerOnDevice {  // a layer's weights on the device
        Buffer attnNormW, attnNormB, bqkv, bo, attnPostNormW, ffnNormW, ffnNormB, ffnPostNormW;
        Buffer bUp, bDown;
        DeviceWeight wqkv, wo, wUp, wGate, wDown;
    };
    struct LayerBuffers {
        Buffer k, v;  // the cache: (n_head_kv, cacheCap, rowBytes) each, rows as cache.type
    };
    // What a backend made by fork() or withCache() shares with the one it comes from: the
    // device (context and in-order queue), our kernels' program and the weights on the device,
    // uploaded once. The backends are driven from one thread at a time (the window's worker).
    struct Shared {
        explicit Shared(int device) : dev(device) {}
        ClDevice dev;
        Program program;
        bool wide = false;  // block types' scales widened to float32 (OpenClOptions::wideScales)
        // weights, one buffer each; output empty when tied to tokEmbd
        DeviceWeight tokEmbd, output;
        Buffer posEmbd, outNormW, outNormB, ropeTable;
        uint64_t uploadedBytes = 0;  // of the weights' buffers (the RoPE table not counted)
        // where set (OpenClOptions::hugePages), the weights' storage: host memory on huge pages
        std::optional<ocl::HostArena> arena;
        std::vector<LayerOnDevice> layers;
        // The full-context KV caches of the backends holding this (what checkMemory counts).
        uint64_t cacheBytes = 0;
    };

    std::shared_ptr<const Model> model;
    OpenClOptions options;
    OpenClStartup startup;
    std::shared_ptr<Shared> shared;  // never null
    const bool sharing;              // made from another backend: nothing to build or upload
    ClDevice& dev;
    Program& program;
    bool& wide;
    DeviceWeight &tokEmbd, &output;
    Buffer &posEmbd, &outNormW, &outNormB, &ropeTable;
    uint64_t& uploadedBytes;
    std::vector<LayerOnDevice>& layerWeights;
    uint64_t memLimit = 0, allocLimit = 0;  // the device's (or the test hook's) limits
    std::optional<MatMul> mm;
    Kernel embed, layerNorm, rmsNorm, gelu, swiglu, geglu, scaleK, addTo, softcapK, rope, kvAppend,
        attend, attendRows, kvGather;
    // cpu_simd.cl's attend (an item per head and token) and row norm (an item per row) for x86
    // CPU devices, where they are built and the SIMD kernels are on; else invalid
    Kernel attendSimd, normSimd;
    size_t normLocal = 64, attendLocal = 64, itemLocal = 64;
    // cpu_step.cl's decoder layer in one command (OpenClOptions::fusedLayers): the kernel, each
    // layer's StepPlan, the work groups per command and their scratch (h, x's roundings, of
    // stepCols values a region); stepLayer invalid where not used. stepGaveUp: a step's barrier
    // waited too long, so the separate kernels run from then on.
    Kernel stepLayer;
    Buffer stepPlans, stepH, stepQ, stepD, stepS;
    int stepGroups = 0, stepCols = 0;
    bool stepGaveUp = false;

    std::vector<LayerBuffers> layers;  // the KV cache, per layer
    // Which position each cache row holds (row r is position r without an eviction policy),
    // what the policy evicted and when: the same bookkeeping as the CPU's KvCache.
    KvRows book;
    // The cache policy's path (an eviction policy or a K/V type other than f32): rows stored as
    // options.cache.type, attention by attend_rows over the rows the host's mask lets each query
    // see, evicted rows squeezed out after each pass. Otherwise f32 rows, kv_append and attend.
    bool policy = false;
    size_t rowBytes = 0;  // of one cached row: kvRowBytes(type, head_dim)
    // The KV cache of each layer is (n_head_kv, cacheCap, rowBytes): it grows in blocks of
    // cacheBlock tokens as they arrive (moving the rows held to the larger buffers), and under an
    // eviction policy shrinks again to the blocks the rows held need.
    int cacheBlock = 256;
    int cacheCap = 0;
    Buffer mask, keptIdx, compactTmp;  // the policy path's scratch
    // swapSpareCache's other cache: its buffers, capacity and bookkeeping (empty until used).
    struct {
        std::vector<std::pair<Buffer, Buffer>> kv;
        int cap = 0;
        KvRows book{1, 1};
    } spare;

    // activations of up to rowsCap tokens (row-major, one row per token)
    int rowsCap = 0, logitRowsCap = 0;
    size_t attnCap = 0;
    Buffer ids;        // (rowsCap) int32
    Buffer x, h;       // (rowsCap, n_embd)
    Buffer qkv;        // (rowsCap, qkvRows)
    Buffer att;        // (rowsCap, n_head * head_dim)
    Buffer up, gate;   // (rowsCap, n_ff)
    Buffer logitsBuf;  // (logitRowsCap, n_vocab)
    Buffer attn;       // (slice, n_head, p0 + n) attention rows of the current layer
    // A decode step's traces gathered on the device, layer by layer, then read once:
    // (n_layer, traced, qkvRows) and (n_layer, traced, n_head, p0 + n).
    Buffer traceQkv, traceAttn, traceResid;
    std::vector<float> staging;

    std::vector<std::pair<Cat, Event>> events;
    std::vector<Event> mmEvents;
    DeviceMs last;

    // from: the Shared of the backend this one is made from (fork, withCache); null: its own.
    Impl(std::shared_ptr<const Model> m, OpenClOptions o, std::shared_ptr<Shared> from);
    ~Impl() { shared->cacheBytes -= counted; }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    uint64_t counted = 0;  // this backend's part of shared->cacheBytes

    const ModelConfig& cfg() const { return model->config; }
    size_t bytesPerToken() const {
        return 2 * static_cast<size_t>(cfg().nLayer) * static_cast<size_t>(cfg().nHeadKv) *
               rowBytes;
    }
    const DeviceWeight& outputWeights() const { return output ? output : tokEmbd; }

    // Weights + the caches of the backends sharing them + this one's cache, against the
    // device's memory; records this cache in shared->cacheBytes when it fits.
    void checkMemory();
    Buffer upload(const std::vector<float>& v, const char* what);
    Buffer uploadBytes(const void* data, size_t bytes, const char* what);
    // A weight matrix (or Q, K and V stacked) in its device types (device_weights.h): the bytes
    // as stored for the types our kernels read, else converted once on the way up.
    DeviceWeight upload(std::span<const WeightMatrix> parts, const char* what);
    void uploadWeights();
    void makeKernels();
    // stepLayer and its plans where OpenClOptions::fusedLayers and the device allow.
    void makeStepLayer();
    // Layer l of a decode step of one token at position p0 (cache row r0), as one command
    // (cpu_step.cl).
    void stepLayerRun(int l, int p0, int r0, int T, bool gather);
    int syncFloats() const { return kStepLine + kStepSyncStride * cfg().nLayer; }
    void ensureScratch(int n, size_t attnFloats, int logitRows);
    void ensureCache(int tokens);
    // Moves the rows held (book.rows(), at most cap) to new buffers of cap rows.
    void resizeCache(int cap);
    // The policy path's steps 3 and 4 and its commit (see forwardPass).
    void appendEncoded(const LayerBuffers& w, int r0, int n);
    void attendPolicy(const LayerBuffers& w, int l, int p0, int n, int slice);
    void commitPolicy(int n);
    Buffer scratch(size_t bytes, const char* what);

    void track(Cat c, Event e) { events.emplace_back(c, std::move(e)); }
    // Runs a one-dimensional kernel over `count` items in work groups of itemLocal.
    void runItems(Cat c, const Kernel& k, size_t count) {
        const size_t global = (count + itemLocal - 1) / itemLocal * itemLocal;
        track(c, dev.queue().run(k, Range(global), Range(itemLocal)));
    }
    void norm(const Buffer& out, int outOff, const Buffer& in, int inOff, const Buffer& w,
              const Buffer& b, int rows);
    // out (n, outDim) = in (n, inDim) · wᵀ + bias (+ out when accumulate), from row 0. input:
    // in's rounding for the x86 kernels, shared by the products on the same in (Llama's gate
    // and up), else rounded afresh.
    void matmul(const Buffer& out, const Buffer& in, const DeviceWeight& w, const Buffer& bias,
                int n, int inDim, int outDim, bool accumulate, MatMul::Input* input = nullptr);
    // begin(), forwardPass, and abandon() if it throws: the cache as it was.
    void forward(std::span<const int32_t> tokens, bool allLogits, std::vector<float>& logits,
                 std::vector<StepTrace>* traces, int traceFrom);
    void forwardPass(std::span<const int32_t> tokens, bool allLogits, std::vector<float>& logits,
                     std::vector<StepTrace>* traces, int traceFrom);
    void collectDeviceTimes();
    // Layer l's traced rows (tokens t0..n-1, as the device holds them) into the StepTraces.
    void copyResidTraces(std::vector<StepTrace>& traces, size_t first, int l, int t0, int n,
                         const float* rows) const;
    // The model's head over `rows` host rows of n_embd (Backend::headLogits).
    void head(std::span<const float> hidden, int rows, std::vector<float>& logits);
    void copyQkvTraces(std::vector<StepTrace>& traces, size_t first, int l, int t0, int n,
                       const float* rows) const;
    // rows: (n - t0, n_head, stride); row r holds position pos[r] (r itself when pos is null).
    void copyAttnTraces(std::vector<StepTrace>& traces, size_t first, int l, int t0, int n, int p0,
                        const float* rows, const std::vector<int>* pos = nullptr) const;
    std::vector<float> readCache(const Buffer& b, int kvHead);
};

OpenClBackend::Impl::Impl(std::shared_ptr<const Model> m, OpenClOptions o,
                          std::shared_ptr<Shared> from)
    : model(std::move(m)),
      options(std::move(o)),
      shared(from ? std::move(from) : std::make_shared<Shared>(options.device)),
      sharing(shared.use_count() > 1),
      dev(shared->dev),
      program(shared->program),
      wide(shared->wide),
      tokEmbd(shared->tokEmbd),
      output(shared->output),
      posEmbd(shared->posEmbd),
      outNormW(shared->outNormW),
      outNormB(shared->outNormB),
      ropeTable(shared->ropeTable),
      uploadedBytes(shared->uploadedBytes),
      layerWeights(shared->layers),
      book(model->config.nLayer, model->config.nCtx, options.cache.eviction) {
    const KvCacheOptions& kv = options.cache;
    const std::string typeProblem = kvTypeProblem(kv.type, cfg().headDim);
    KVSCOPE_CHECK(typeProblem.empty(), "KV cache: " + typeProblem);
    KVSCOPE_CHECK(kv.blockTokens > 0, "KV cache: the block size must be positive, not " +
                                          std::to_string(kv.blockTokens));
    policy = kv.type != KvType::F32 || kv.eviction.evicts();
    rowBytes = kvRowBytes(kv.type, cfg().headDim);
    cacheBlock = std::min(kv.blockTokens, cfg().nCtx);
    layers.resize(static_cast<size_t>(cfg().nLayer));
    spare.book = book;
}

void OpenClBackend::Impl::checkMemory() {
    const ModelConfig& c = cfg();
    const DeviceInfo& d = dev.info();
    const uint64_t cache = bytesPerToken() * static_cast<uint64_t>(c.nCtx);
    const uint64_t weights = deviceWeightBytes(*model, wide);  // as uploaded: blocks stay small
    const uint64_t ropeTableBytes =
        c.rope.type != RopeType::None ? static_cast<uint64_t>(c.nCtx) * c.rope.nRot * sizeof(float)
                                      : 0;
    const uint64_t others = shared->cacheBytes;  // of the backends already sharing the weights
    const uint64_t needed = weights + others + cache + ropeTableBytes;
    const std::string device = "OpenCL device " + std::to_string(d.index) + " (" + d.name + ")";
    if (needed > memLimit)
        throw Error("not enough memory on " + device + ": the weights (" + std::to_string(weights) +
                    " bytes as uploaded) and the KV cache for " + std::to_string(c.nCtx) +
                    " tokens of context (" + std::to_string(cache) + " bytes)" +
                    (others ? ", beside the caches of the backends sharing the weights (" +
                                  std::to_string(others) + " bytes),"
                            : "") +
                    " need " + std::to_string(needed) + " bytes (" + mib(needed) +
                    "), the device has " + std::to_string(memLimit) + " bytes (" + mib(memLimit) +
                    ") of global memory");
    const uint64_t perLayer = cache / 2 / static_cast<uint64_t>(c.nLayer);
    if (perLayer > allocLimit)
        throw Error("the KV cache of one layer needs " + std::to_string(perLayer) +
                    " bytes in one buffer for " + std::to_string(c.nCtx) +
                    " tokens of context, and " + device + " allocates at most " +
                    std::to_string(allocLimit) + " bytes per buffer");
    counted = cache;
    shared->cacheBytes += cache;
}

Buffer OpenClBackend::Impl::upload(const std::vector<float>& v, const char* what) {
    return uploadBytes(v.data(), v.size() * sizeof(float), what);
}

Buffer OpenClBackend::Impl::uploadBytes(const void* data, size_t bytes, const char* what) {
    if (bytes == 0) return {};
    if (bytes > allocLimit)
        throw Error(std::string("weight ") + what + " needs " + std::to_string(bytes) +
                    " bytes in one buffer, and OpenCL device " + std::to_string(dev.info().index) +
                    " (" + dev.info().name + ") allocates at most " + std::to_string(allocLimit) +
                    " bytes per buffer");
    uploadedBytes += bytes;
    if (shared->arena) return shared->arena->buffer(dev.context(), bytes, CL_MEM_READ_ONLY, data);
    return Buffer(dev.context(), bytes, CL_MEM_READ_ONLY, data);
}

OpenClBackend::Impl::DeviceWeight OpenClBackend::Impl::upload(std::span<const WeightMatrix> parts,
                                                              const char* what) {
    DeviceWeight out;
    int row0 = 0;
    for (size_t i = 0; i < parts.size();) {
        if (parts[i].empty()) {
            ++i;
            continue;
        }
        // a run of parts with the same device type goes up as one buffer
        const TensorType type = deviceWeightType(parts[i]);
        std::vector<uint8_t> bytes;
        DeviceWeight::Part p;
        p.type = type;
        p.wide = wide && hasWideScales(type);
        p.row0 = row0;
        for (; i < parts.size() && !parts[i].empty() && deviceWeightType(parts[i]) == type; ++i) {
            const std::vector<uint8_t> rows = convertRows(parts[i], type, p.wide);
            bytes.insert(bytes.end(), rows.begin(), rows.end());
            p.rowBytes = rows.size() / static_cast<size_t>(parts[i].rows());
            p.rows += parts[i].rows();
        }
        row0 += p.rows;
        p.buf = uploadBytes(bytes.data(), bytes.size(), what);
        out.parts.push_back(std::move(p));
    }
    return out;
}

void OpenClBackend::Impl::uploadWeights() {
    const Model& m = *model;
    const ModelConfig& c = cfg();
    tokEmbd = upload(std::span(&m.tokEmbd, 1), "token_embd");
    posEmbd = upload(m.posEmbd, "position_embd");
    outNormW = upload(m.outNormW, "output_norm");
    outNormB = upload(m.outNormB, "output_norm bias");
    output = upload(std::span(&m.output, 1), "output");
    layerWeights.resize(static_cast<size_t>(c.nLayer));
    for (size_t l = 0; l < layerWeights.size(); ++l) {
        // a 7B model's upload takes seconds: closing the window stops it between layers
        if (options.stop && options.stop->load()) throw Error("stopped");
        const LayerWeights& w = m.layers[l];
        LayerOnDevice& b = layerWeights[l];
        b.attnNormW = upload(w.attnNormW, "attn_norm");
        b.attnNormB = upload(w.attnNormB, "attn_norm bias");
        b.wqkv = upload(w.qkv, "attn_qkv");
        b.bqkv = upload(w.bqkv, "attn_qkv bias");
        b.wo = upload(std::span(&w.wo, 1), "attn_output");
        b.bo = upload(w.bo, "attn_output bias");
        b.attnPostNormW = upload(w.attnPostNormW, "post_attention_norm");
        b.ffnPostNormW = upload(w.ffnPostNormW, "post_ffw_norm");
        b.ffnNormW = upload(w.ffnNormW, "ffn_norm");
        b.ffnNormB = upload(w.ffnNormB, "ffn_norm bias");
        b.wUp = upload(std::span(&w.wUp, 1), "ffn_up");
        b.bUp = upload(w.bUp, "ffn_up bias");
        b.wGate = upload(std::span(&w.wGate, 1), "ffn_gate");
        b.wDown = upload(std::span(&w.wDown, 1), "ffn_down");
        b.bDown = upload(w.bDown, "ffn_down bias");
    }
    if (c.rope.type != RopeType::None) {
        // cos and sin of every position and pair, as the CPU backend computes them (rope.h)
        const int pairs = c.rope.nRot / 2;
        std::vector<float> cosv(static_cast<size_t>(pairs)), sinv(static_cast<size_t>(pairs));
        std::vector<float> cs(static_cast<size_t>(c.nCtx) * pairs * 2);
        for (int pos = 0; pos < c.nCtx; ++pos) {
            ropeCosSin(c.rope, pos, cosv.data(), sinv.data());
            for (int i = 0; i < pairs; ++i) {
                const size_t at = (static_cast<size_t>(pos) * pairs + i) * 2;
                cs[at] = cosv[static_cast<size_t>(i)];
                cs[at + 1] = sinv[static_cast<size_t>(i)];
            }
        }
        const uint64_t weightsOnly = uploadedBytes;
        ropeTable = upload(cs, "RoPE table");
        uploadedBytes = weightsOnly;
    }
}

void OpenClBackend::Impl::makeKernels() {
    embed = Kernel(program, "embed");
    layerNorm = Kernel(program, "layer_norm");
    rmsNorm = Kernel(program, "rms_norm");
    gelu = Kernel(program, "gelu_tanh");
    swiglu = Kernel(program, "swiglu");
    geglu = Kernel(program, "geglu");
    scaleK = Kernel(program, "scale");
    addTo = Kernel(program, "add_to");
    softcapK = Kernel(program, "softcap");
    rope = Kernel(program, "rope");
    kvAppend = Kernel(program, "kv_append");
    attend = Kernel(program, "attend");
    if (mm->simd() && program.hasKernel("simd_attend") && cfg().headDim % 8 == 0)
        attendSimd = Kernel(program, "simd_attend");
    if (mm->simd() && program.hasKernel("simd_layer_norm"))
        normSimd =
            Kernel(program, cfg().norm == NormType::Layer ? "simd_layer_norm" : "simd_rms_norm");
    attendRows = Kernel(program, "attend_rows");
    kvGather = Kernel(program, "kv_gather");
    const Kernel& nk = cfg().norm == NormType::Layer ? layerNorm : rmsNorm;
    normLocal = floorPow2(std::min<size_t>(128, nk.maxWorkGroupSize(dev.id())));
    attendLocal = floorPow2(std::min<size_t>(
        {64, attend.maxWorkGroupSize(dev.id()), attendRows.maxWorkGroupSize(dev.id())}));
    itemLocal = 64;
    for (const Kernel* k :
         {&embed, &gelu, &swiglu, &geglu, &scaleK, &addTo, &softcapK, &rope, &kvAppend, &kvGather})
        itemLocal = std::min(itemLocal, floorPow2(k->maxWorkGroupSize(dev.id())));
    makeStepLayer();
}

void OpenClBackend::Impl::makeStepLayer() {
    const ModelConfig& c = cfg();
    const DeviceInfo& d = dev.info();
    // PoCL's pthread device ("pthread-…"; "cpu-…" from PoCL 4) runs a command's work groups on
    // its worker threads side by side when there are no more groups than workers.
    const bool pocl = d.platformName.find("Portable Computing Language") != std::string::npos &&
                      (d.name.rfind("pthread", 0) == 0 ||
                       (d.name.rfind("cpu", 0) == 0 && d.name.rfind("cpu-minimal", 0) != 0 &&
                        d.name.rfind("cpu-tbb", 0) != 0));
    if (!options.fusedLayers.value_or(pocl) || policy || !mm->simd() || !wide ||
        !program.hasKernel("simd_step_layer") || c.postNorms || c.headDim % 8 != 0)
        return;
    // The types cpu_step.cl reads: STEP_F32 .. STEP_Q6_K, the block types with wide scales.
    auto code = [](const DeviceWeight::Part& p) -> int {
        switch (p.type) {
            case TensorType::F32:
                return 0;
            case TensorType::F16:
                return 1;
            case TensorType::Q8_0:
                return p.wide ? 2 : -1;
            case TensorType::Q4_0:
                return p.wide ? 3 : -1;
            case TensorType::Q4_K:
                return p.wide ? 4 : -1;
            case TensorType::Q6_K:
                return p.wide ? 5 : -1;
            default:
                return -1;
        }
    };
    auto blockOf = [](int type) { return type >= 4 ? 256 : type >= 2 ? 32 : 1; };
    // one part of a readable type whose block divides the row: its (type, row bytes)
    auto single = [&](const DeviceWeight& w, int cols, cl_int& type, cl_int& bytes) {
        if (w.parts.size() != 1) return false;
        type = code(w.parts[0]);
        bytes = static_cast<cl_int>(w.parts[0].rowBytes);
        return type >= 0 && cols % blockOf(type) == 0;
    };
    const int E = c.nEmbd, Q = c.nHead * c.headDim, F = c.nFf;
    std::vector<StepPlan> plans(static_cast<size_t>(c.nLayer));
    for (int l = 0; l < c.nLayer; ++l) {
        const LayerOnDevice& w = layerWeights[static_cast<size_t>(l)];
        StepPlan& p = plans[static_cast<size_t>(l)];
        if (w.wqkv.parts.empty() || w.wqkv.parts.size() > 3) return;
        p.qkvParts = static_cast<cl_int>(w.wqkv.parts.size());
        for (size_t k = 0; k < w.wqkv.parts.size(); ++k) {
            const DeviceWeight::Part& part = w.wqkv.parts[k];
            p.qkvType[k] = code(part);
            if (p.qkvType[k] < 0 || E % blockOf(p.qkvType[k]) != 0) return;
            p.qkvRowBytes[k] = static_cast<cl_int>(part.rowBytes);
            p.qkvRow0[k] = part.row0;
            p.qkvRows[k] = part.rows;
        }
        const bool gated = c.ffn != FfnType::Gelu;
        if (!single(w.wo, Q, p.oType, p.oRowBytes) || !single(w.wUp, E, p.upType, p.upRowBytes) ||
            !single(w.wDown, F, p.downType, p.downRowBytes) ||
            (gated && !single(w.wGate, E, p.gateType, p.gateRowBytes)))
            return;
        p.nEmbd = E;
        p.nHead = c.nHead;
        p.nHeadKv = c.nHeadKv;
        p.headDim = c.headDim;
        p.nFf = F;
        p.rowLen = c.qkvRows();
        p.ffn = c.ffn == FfnType::Gelu ? 0 : c.ffn == FfnType::SiluGate ? 1 : 2;
        p.layerNorm = c.norm == NormType::Layer ? 1 : 0;
        p.hasBqkv = w.bqkv ? 1 : 0;
        p.hasBo = w.bo ? 1 : 0;
        p.hasBUp = w.bUp ? 1 : 0;
        p.hasBDown = w.bDown ? 1 : 0;
        p.ropePairs = c.rope.type != RopeType::None ? c.rope.nRot / 2 : 0;
        p.ropeNeox = c.rope.type == RopeType::Neox ? 1 : 0;
        p.window = c.windowOf(l);
    }
    stepGroups = options.stepGroups > 0 ? options.stepGroups : std::clamp(d.computeUnits, 1, 64);
    stepCols = (std::max({E, Q, F}) + 255) / 256 * 256;
    const auto G = static_cast<size_t>(stepGroups), C = static_cast<size_t>(stepCols);
    stepPlans =
        Buffer(dev.context(), plans.size() * sizeof(StepPlan), CL_MEM_READ_ONLY, plans.data());
    stepH = scratch(G * E * sizeof(float), "the fused layers' scratch");
    stepQ = scratch(2 * (G + 1) * C, "the fused layers' scratch");
    stepD = scratch(2 * (G + 1) * (C / 32) * sizeof(float), "the fused layers' scratch");
    stepS = scratch(2 * (G + 1) * (C / 16) * sizeof(float), "the fused layers' scratch");
    stepLayer = Kernel(program, "simd_step_layer");
}

void OpenClBackend::Impl::stepLayerRun(int l, int p0, int r0, int T, bool gather) {
    const ModelConfig& c = cfg();
    const LayerOnDevice& w = layerWeights[static_cast<size_t>(l)];
    const LayerBuffers& kv = layers[static_cast<size_t>(l)];
    const Buffer& none = stepPlans;  // any buffer, for the arguments a layer does without
    auto or_ = [&](const Buffer& b) -> const Buffer& { return b ? b : none; };
    const auto& qp = w.wqkv.parts;
    const Buffer& wq = qp[0].buf;
    const Buffer& wk = qp.size() > 1 ? qp[1].buf : wq;
    const Buffer& wv = qp.size() > 2 ? qp[2].buf : wk;
    const int rowFloats = c.nHead * T;
    stepLayer.setArgs(x, qkv, att, gather ? traceAttn : attn, gather ? l * rowFloats : 0, up,
                      or_(gate), kv.k, kv.v, stepH, stepQ, stepD, stepS, stepCols, logitsBuf,
                      c.nVocab, stepPlans, l, w.attnNormW, or_(w.attnNormB), w.ffnNormW,
                      or_(w.ffnNormB), wq, wk, wv, or_(w.bqkv), w.wo.parts[0].buf, or_(w.bo),
                      w.wUp.parts[0].buf, or_(w.bUp), w.wGate ? w.wGate.parts[0].buf : none,
                      w.wDown.parts[0].buf, or_(w.bDown), or_(ropeTable), gather ? traceQkv : none,
                      gather ? traceResid : none, p0, r0, T, cacheCap, gather ? l : -1, c.normEps,
                      c.attnScale, c.attnSoftcap, options.stepSpins);
    track(Cat::Layer, dev.queue().run(stepLayer, Range(static_cast<size_t>(stepGroups)), Range(1)));
}

Buffer OpenClBackend::Impl::scratch(size_t bytes, const char* what) {
    if (bytes > allocLimit)
        throw Error(std::string(what) + " needs " + std::to_string(bytes) +
                    " bytes in one buffer, and OpenCL device " + std::to_string(dev.info().index) +
                    " (" + dev.info().name + ") allocates at most " + std::to_string(allocLimit) +
                    " bytes per buffer; use a shorter prompt");
    // whole floats (the fill below writes floats): a q8_0 cache's or a mask's bytes may not be
    Buffer b(dev.context(), std::max<size_t>((bytes + 3) / 4 * 4, sizeof(float)),
             CL_MEM_READ_WRITE);
    // Zeros, never stale bytes: a product with beta = 0 may still read its output (0 · NaN).
    dev.queue().fillAsync(b, 0.0f);
    return b;
}

void OpenClBackend::Impl::ensureCache(int tokens) {
    if (tokens <= cacheCap) return;
    resizeCache(std::min(cfg().nCtx, (tokens + cacheBlock - 1) / cacheBlock * cacheBlock));
}

void OpenClBackend::Impl::resizeCache(int cap) {
    const ModelConfig& c = cfg();
    const size_t bytes = static_cast<size_t>(c.nHeadKv) * static_cast<size_t>(cap) * rowBytes;
    const int held = std::min(book.rows(), cap);
    // Allocate all of it first: a device that runs out leaves the cache as it was.
    std::vector<std::pair<Buffer, Buffer>> grown;
    for (size_t l = 0; l < layers.size(); ++l)
        grown.emplace_back(scratch(bytes, "the KV cache"), scratch(bytes, "the KV cache"));
    for (size_t l = 0; l < layers.size(); ++l) {
        for (int g = 0; g < c.nHeadKv && held > 0; ++g) {
            const size_t from = static_cast<size_t>(g) * cacheCap * rowBytes;
            const size_t to = static_cast<size_t>(g) * cap * rowBytes;
            dev.queue().copyAsync(layers[l].k, from, grown[l].first, to, held * rowBytes);
            dev.queue().copyAsync(layers[l].v, from, grown[l].second, to, held * rowBytes);
        }
    }
    dev.queue().finish();
    for (size_t l = 0; l < layers.size(); ++l) {
        layers[l].k = std::move(grown[l].first);
        layers[l].v = std::move(grown[l].second);
    }
    cacheCap = cap;
}

void OpenClBackend::Impl::ensureScratch(int n, size_t attnFloats, int logitRows) {
    const ModelConfig& c = cfg();
    if (n > rowsCap) {
        // Grow by doubling (recompute mode adds a token per pass), up to the context.
        const int cap = std::min(c.nCtx, std::max(n, 2 * rowsCap));
        const auto N = static_cast<size_t>(cap), F = sizeof(float);
        ids = scratch(N * sizeof(cl_int), "the token ids");
        x = scratch(N * c.nEmbd * F, "the activations");
        h = scratch(N * c.nEmbd * F, "the activations");
        qkv = scratch(N * c.qkvRows() * F, "the queries, keys and values");
        att = scratch(N * c.nHead * c.headDim * F, "the attention outputs");
        up = scratch(N * c.nFf * F, "the MLP activations");
        if (c.ffn != FfnType::Gelu) gate = scratch(N * c.nFf * F, "the MLP activations");
        rowsCap = cap;
    }
    if (attnFloats > attnCap) {
        const size_t most = static_cast<size_t>(c.nCtx) * c.nCtx * c.nHead;
        const size_t cap = std::min(most, std::max(attnFloats, 2 * attnCap));
        attn = scratch(cap * sizeof(float), "the attention rows");
        attnCap = cap;
    }
    if (logitRows > logitRowsCap) {
        // and after the first row, a fused step's sync words (stepLayerRun)
        logitsBuf = scratch(
            (static_cast<size_t>(logitRows) * c.nVocab + static_cast<size_t>(syncFloats())) *
                sizeof(float),
            "the logits");
        logitRowsCap = logitRows;
    }
}

void OpenClBackend::Impl::norm(const Buffer& out, int outOff, const Buffer& in, int inOff,
                               const Buffer& w, const Buffer& b, int rows) {
    const ModelConfig& c = cfg();
    if (normSimd.valid()) {  // an item per row
        if (c.norm == NormType::Layer)
            normSimd.setArgs(out, outOff, in, inOff, w, b, c.nEmbd, c.normEps, rows);
        else
            normSimd.setArgs(out, outOff, in, inOff, w, c.nEmbd, c.normEps, rows);
        track(Cat::Other, dev.queue().run(normSimd, Range(static_cast<size_t>(rows)), Range(1)));
        return;
    }
    const Kernel::Local red{normLocal * sizeof(float)};
    Kernel& k = c.norm == NormType::Layer ? layerNorm : rmsNorm;
    if (c.norm == NormType::Layer)
        k.setArgs(out, outOff, in, inOff, w, b, c.nEmbd, c.normEps, red);
    else
        k.setArgs(out, outOff, in, inOff, w, c.nEmbd, c.normEps, red);
    track(Cat::Other,
          dev.queue().run(k, Range(static_cast<size_t>(rows) * normLocal), Range(normLocal)));
}

void OpenClBackend::Impl::matmul(const Buffer& out, const Buffer& in, const DeviceWeight& w,
                                 const Buffer& bias, int n, int inDim, int outDim, bool accumulate,
                                 MatMul::Input* input) {
    mmEvents.clear();
    if (w.isFloat()) {
        mm->run(out, 0, in, 0, w.parts[0].buf, bias ? &bias : nullptr, n, inDim, outDim, accumulate,
                mmEvents);
    } else {
        // block types (or a Q/K/V stack of mixed types): our quant.cl (or cpu_simd.cl)
        // kernels, one per part, each filling its columns of out's rows
        MatMul::Input fresh;
        for (const DeviceWeight::Part& p : w.parts)
            mm->runQuant(out, static_cast<size_t>(p.row0), outDim, in, 0, p.buf, p.type, p.wide,
                         p.rowBytes, bias ? &bias : nullptr, static_cast<size_t>(p.row0), n, inDim,
                         p.rows, accumulate, input ? *input : fresh, mmEvents);
    }
    for (Event& e : mmEvents) track(Cat::MatMul, std::move(e));
}

void OpenClBackend::Impl::forward(std::span<const int32_t> tokens, bool allLogits,
                                  std::vector<float>& logits, std::vector<StepTrace>* traces,
                                  int traceFrom) {
    // n, positions and ids were checked by Backend::forward; room for the new rows comes first,
    // so that a cache that cannot grow fails before anything changed.
    ensureCache(book.rows() + static_cast<int>(tokens.size()));
    book.begin(static_cast<int>(tokens.size()));
    try {
        forwardPass(tokens, allLogits, logits, traces, traceFrom);
    } catch (...) {
        book.abandon();
        events.clear();
        throw;
    }
}

void OpenClBackend::Impl::forwardPass(std::span<const int32_t> tokens, bool allLogits,
                                      std::vector<float>& logits, std::vector<StepTrace>* traces,
                                      int traceFrom) {
    const ModelConfig& c = cfg();
    const int n = static_cast<int>(tokens.size());
    // The new tokens' positions p0 .. p0+n-1 and cache rows r0 .. r0+n-1 (the same numbers
    // unless an eviction policy let rows go). Attention rows hold T weights: one per position
    // up to the last new token, or on the policy path one per row of the pass.
    const int p0 = book.used(), r0 = book.rows();

    const int E = c.nEmbd, hd = c.headDim, H = c.nHead, Hkv = c.nHeadKv, F = c.nFf;
    const int Q = H * hd, KV = Hkv * hd, R = c.qkvRows(), T = (policy ? r0 : p0) + n;
    const bool positions = !model->posEmbd.empty();  // gpt2's learned positions
    const auto N = static_cast<size_t>(n);
    const int rows = allLogits ? n : 1;
    // On the policy path, the positions of layer l's rows during the pass (for the traces).
    std::vector<std::vector<int>> rowPos(policy && traces ? static_cast<size_t>(c.nLayer) : 0);
    // Attention rows: every new token's when traced (the host takes them all), else a slice of
    // tokens at a time in a bounded scratch (a long prompt needs no T² buffer).
    const int t0 = std::clamp(traceFrom, 0, n);
    const bool traced = traces && t0 < n;
    const size_t rowFloats = static_cast<size_t>(H) * T;
    const int slice =
        traced ? n : std::clamp(static_cast<int>(options.attentionScratchFloats / rowFloats), 1, n);
    ensureScratch(n, static_cast<size_t>(slice) * rowFloats, rows);
    // A small trace (a decode step's) is gathered on the device and read once at the end; a
    // large one (a long prompt's) is read layer by layer rather than held twice on the device.
    const auto NT = static_cast<size_t>(n - t0);
    const size_t gatherFloats = static_cast<size_t>(c.nLayer) * NT * (R + rowFloats + E);
    const bool gather = traced && gatherFloats * sizeof(float) <= options.traceGatherBytes;
    if (gather) {
        const size_t qkvBytes = static_cast<size_t>(c.nLayer) * NT * R * sizeof(float);
        const size_t attnBytes = static_cast<size_t>(c.nLayer) * NT * rowFloats * sizeof(float);
        if (traceQkv.bytes() < qkvBytes) traceQkv = scratch(qkvBytes, "the traced q, k and v");
        if (traceAttn.bytes() < attnBytes) traceAttn = scratch(attnBytes, "the traced attention");
        const size_t residBytes = static_cast<size_t>(c.nLayer) * NT * E * sizeof(float);
        if (traceResid.bytes() < residBytes)
            traceResid = scratch(residBytes, "the traced residual stream");
    }
    events.clear();

    // Traces for tokens t0..n-1, filled from device reads.
    const size_t firstTrace = traces ? traces->size() : 0;
    if (traces) {
        for (int i = t0; i < n; ++i)
            traces->push_back(
                StepTrace::sized(tokens[static_cast<size_t>(i)], p0 + i, c.nLayer, H, Hkv, hd, E));
    }
    Queue& q = dev.queue();
    // A decode step of one token: a command per layer (cpu_step.cl) where made, its sync words
    // zeroed first
    const bool fused = stepLayer.valid() && !stepGaveUp && n == 1 && !policy && (!traced || gather);
    if (fused)
        track(Cat::Other,
              q.fillAsync(logitsBuf, 0.0f, static_cast<size_t>(c.nVocab) * sizeof(float),
                          static_cast<size_t>(syncFloats()) * sizeof(float)));

    // 1. token embeddings (scaled for gemma) and learned positions (gpt2)
    q.write(ids, 0, tokens.data(), N * sizeof(int32_t));
    const DeviceWeight::Part& te = tokEmbd.parts[0];
    if (tokEmbd.isFloat()) {
        embed.setArgs(x, ids, te.buf, positions ? posEmbd : te.buf, positions ? 1 : 0, p0, E, n);
        runItems(Cat::Other, embed, N * E);
    } else {  // the rows asked for, dequantized on the device
        mmEvents.clear();
        mm->embedQuant(x, ids, te.buf, te.type, te.wide, te.rowBytes,
                       positions ? &posEmbd : nullptr, p0, E, n, mmEvents);
        for (Event& e : mmEvents) track(Cat::Other, std::move(e));
    }
    if (c.embedScale != 1.0f) {
        scaleK.setArgs(x, c.embedScale, static_cast<int>(N * E));
        runItems(Cat::Other, scaleK, N * E);
    }

    for (int l = 0; l < c.nLayer && fused; ++l) stepLayerRun(l, p0, r0, T, gather);
    for (int l = 0; l < c.nLayer && !fused; ++l) {
        const LayerOnDevice& w = layerWeights[static_cast<size_t>(l)];
        const LayerBuffers& kv = layers[static_cast<size_t>(l)];
        // 2. attention input: norm, then q, k, v of the new tokens in one product
        norm(h, 0, x, 0, w.attnNormW, w.attnNormB, n);
        matmul(qkv, h, w.wqkv, w.bqkv, n, E, R, false);
        if (c.rope.type != RopeType::None) {  // rotates queries and keys (not values)
            const int pairs = c.rope.nRot / 2;
            rope.setArgs(qkv, ropeTable, p0, R, hd, pairs, c.rope.type == RopeType::Neox ? 1 : 0,
                         H + Hkv, n);
            runItems(Cat::Other, rope, N * (H + Hkv) * static_cast<size_t>(pairs));
        }
        // 3. append the new key and value rows to the cache (rows r0 .. r0+n-1), f32 on the
        //    device, else encoded on the host as the CPU's cache encodes them
        if (options.cache.type == KvType::F32) {
            const int vec = hd % 4 == 0 ? 4 : 1;
            kvAppend.setArgs(kv.k, kv.v, qkv, r0, R, Q, KV, cacheCap, hd, n, vec);
            runItems(Cat::Other, kvAppend, N * KV / static_cast<size_t>(vec));
        } else {
            appendEncoded(kv, r0, n);
        }
        const size_t qkvAt = static_cast<size_t>(t0) * R * sizeof(float);
        const size_t qkvBytes = NT * R * sizeof(float);
        if (gather) {
            q.copyAsync(qkv, qkvAt, traceQkv, static_cast<size_t>(l) * qkvBytes, qkvBytes);
        } else if (traced) {
            staging.resize(NT * R);
            q.read(qkv, qkvAt, staging.data(), qkvBytes);
            copyQkvTraces(*traces, firstTrace, l, t0, n, staging.data());
        }
        // 4. causal attention of each new token and head over the cache, a slice at a time
        if (policy) {
            attendPolicy(kv, l, p0, n, slice);
            if (!rowPos.empty())
                for (int r = 0; r < T; ++r)
                    rowPos[static_cast<size_t>(l)].push_back(book.rowPosition(l, r));
        }
        for (int i0 = 0; i0 < n && !policy; i0 += slice) {
            const int count = std::min(slice, n - i0);
            if (attendSimd.valid()) {
                attendSimd.setArgs(att, attn, qkv, kv.k, kv.v, p0, T, R, H, H / Hkv, cacheCap, hd,
                                   c.attnScale, c.attnSoftcap, c.windowOf(l), i0);
                track(Cat::Attention,
                      q.run(attendSimd, Range(static_cast<size_t>(H), static_cast<size_t>(count)),
                            Range(1, 1)));
                continue;
            }
            attend.setArgs(att, attn, qkv, kv.k, kv.v, p0, T, R, H, H / Hkv, cacheCap, hd,
                           c.attnScale, c.attnSoftcap, c.windowOf(l), i0,
                           Kernel::Local{attendLocal * sizeof(float)});
            track(Cat::Attention, q.run(attend, Range(attendLocal * H, static_cast<size_t>(count)),
                                        Range(attendLocal, 1)));
        }
        const size_t attnAt = static_cast<size_t>(t0) * rowFloats * sizeof(float);
        const size_t attnBytes = NT * rowFloats * sizeof(float);
        if (gather) {
            q.copyAsync(attn, attnAt, traceAttn, static_cast<size_t>(l) * attnBytes, attnBytes);
        } else if (traced) {
            staging.resize(NT * rowFloats);
            q.read(attn, attnAt, staging.data(), attnBytes);
            copyAttnTraces(*traces, firstTrace, l, t0, n, p0, staging.data(),
                           rowPos.empty() ? nullptr : &rowPos[static_cast<size_t>(l)]);
        }
        // 5. output projection, added to the residual stream (gemma2: its norm added)
        const auto residual = [&](const Buffer& postNorm) {
            norm(h, 0, h, 0, postNorm, Buffer{}, n);
            addTo.setArgs(x, h, static_cast<int>(N * E));
            runItems(Cat::Other, addTo, N * E);
        };
        if (c.postNorms) {
            matmul(h, att, w.wo, w.bo, n, Q, E, false);
            residual(w.attnPostNormW);
        } else {
            matmul(x, att, w.wo, w.bo, n, Q, E, true);
        }
        // 6. MLP, added to the residual stream
        norm(h, 0, x, 0, w.ffnNormW, w.ffnNormB, n);
        MatMul::Input hIn;  // h rounded once for the up and gate products
        matmul(up, h, w.wUp, w.bUp, n, E, F, false, &hIn);
        const size_t count = N * F;
        const Buffer* hidden = &up;
        if (c.ffn == FfnType::Gelu) {
            gelu.setArgs(up, static_cast<int>(count));
            runItems(Cat::Other, gelu, (count + 7) / 8);
        } else {
            matmul(gate, h, w.wGate, Buffer{}, n, E, F, false, &hIn);
            Kernel& act = c.ffn == FfnType::SiluGate ? swiglu : geglu;
            act.setArgs(gate, up, static_cast<int>(count));
            runItems(Cat::Other, act, (count + 7) / 8);
            hidden = &gate;
        }
        if (c.postNorms) {
            matmul(h, *hidden, w.wDown, w.bDown, n, F, E, false);
            residual(w.ffnPostNormW);
        } else {
            matmul(x, *hidden, w.wDown, w.bDown, n, F, E, true);
        }
        // the residual stream after this layer (the logit lens reads it)
        const size_t residAt = static_cast<size_t>(t0) * E * sizeof(float);
        const size_t residBytes = NT * E * sizeof(float);
        if (gather) {
            q.copyAsync(x, residAt, traceResid, static_cast<size_t>(l) * residBytes, residBytes);
        } else if (traced) {
            staging.resize(NT * E);
            q.read(x, residAt, staging.data(), residBytes);
            copyResidTraces(*traces, firstTrace, l, t0, n, staging.data());
        }
    }

    // 7. final norm and the output head, for the rows asked for
    norm(h, 0, x, (n - rows) * E, outNormW, outNormB, rows);
    matmul(logitsBuf, h, outputWeights(), Buffer{}, rows, E, c.nVocab, false);
    if (c.finalSoftcap > 0) {
        const size_t count = static_cast<size_t>(rows) * c.nVocab;
        softcapK.setArgs(logitsBuf, c.finalSoftcap, static_cast<int>(count));
        runItems(Cat::Other, softcapK, count);
    }
    // (a fused step's `failed` word read with the logits)
    logits.resize(static_cast<size_t>(rows) * c.nVocab + (fused ? 1 : 0));
    q.read(logitsBuf, 0, logits.data(), logits.size() * sizeof(float));
    if (fused) {
        cl_int failed = 0;
        std::memcpy(&failed, &logits.back(), sizeof failed);
        logits.pop_back();
        if (failed != 0) {  // a barrier gave up: this step again, and all later ones, unfused
            stepGaveUp = true;
            events.clear();
            if (traces) traces->resize(firstTrace);
            forwardPass(tokens, allLogits, logits, traces, traceFrom);
            return;
        }
    }
    if (gather) {  // the step's traces: two reads for all layers
        const size_t qkvFloats = NT * R, attnFloats = NT * rowFloats;
        staging.resize(static_cast<size_t>(c.nLayer) * (qkvFloats + attnFloats));
        float* qkvHost = staging.data();
        float* attnHost = qkvHost + static_cast<size_t>(c.nLayer) * qkvFloats;
        q.read(traceQkv, 0, qkvHost, static_cast<size_t>(c.nLayer) * qkvFloats * sizeof(float));
        q.read(traceAttn, 0, attnHost, static_cast<size_t>(c.nLayer) * attnFloats * sizeof(float));
        for (int l = 0; l < c.nLayer; ++l) {
            copyQkvTraces(*traces, firstTrace, l, t0, n, qkvHost + l * qkvFloats);
            copyAttnTraces(*traces, firstTrace, l, t0, n, p0, attnHost + l * attnFloats,
                           rowPos.empty() ? nullptr : &rowPos[static_cast<size_t>(l)]);
        }
        const size_t residFloats = NT * E;
        staging.resize(static_cast<size_t>(c.nLayer) * residFloats);
        q.read(traceResid, 0, staging.data(),
               static_cast<size_t>(c.nLayer) * residFloats * sizeof(float));
        for (int l = 0; l < c.nLayer; ++l)
            copyResidTraces(*traces, firstTrace, l, t0, n, staging.data() + l * residFloats);
    }
    if (policy)
        commitPolicy(n);
    else
        book.commit(n, {});
    collectDeviceTimes();
}

void OpenClBackend::Impl::appendEncoded(const LayerBuffers& w, int r0, int n) {
    const ModelConfig& c = cfg();
    const int hd = c.headDim, Hkv = c.nHeadKv, Q = c.nHead * hd, KV = Hkv * hd, R = c.qkvRows();
    const auto N = static_cast<size_t>(n);
    Queue& q = dev.queue();
    staging.resize(N * R);
    q.read(qkv, 0, staging.data(), N * R * sizeof(float));
    // (2, n_head_kv, n, rowBytes): the rows of each KV head contiguous, as the cache holds them
    std::vector<uint8_t> bytes(2 * static_cast<size_t>(Hkv) * N * rowBytes);
    for (int part = 0; part < 2; ++part)
        for (int g = 0; g < Hkv; ++g)
            for (int i = 0; i < n; ++i)
                kvEncodeRow(
                    options.cache.type,
                    staging.data() + static_cast<size_t>(i) * R + Q + part * KV + g * hd,
                    bytes.data() + ((static_cast<size_t>(part) * Hkv + g) * N + i) * rowBytes, hd);
    for (int part = 0; part < 2; ++part)
        for (int g = 0; g < Hkv; ++g)
            q.write(part == 0 ? w.k : w.v, (static_cast<size_t>(g) * cacheCap + r0) * rowBytes,
                    bytes.data() + (static_cast<size_t>(part) * Hkv + g) * N * rowBytes,
                    N * rowBytes);
}

void OpenClBackend::Impl::attendPolicy(const LayerBuffers& w, int l, int p0, int n, int slice) {
    const ModelConfig& c = cfg();
    const int H = c.nHead, hd = c.headDim, Rq = c.qkvRows();
    const int Rr = book.rows() + book.pending();  // rows of the pass: held, then the new ones
    const int window = c.windowOf(l);             // the model's own sliding window, if any
    Queue& q = dev.queue();
    const int typeCode = static_cast<int>(options.cache.type);  // f32 0, f16 1, q8_0 2, q4_0 3
    // mask (count, Rr): which rows queries i0 .. i0+count-1 see (KvRows::visible, and the
    // model's window as ops::AttentionShape::first draws it)
    std::vector<uint8_t> m;
    auto sendMask = [&](int i0, int count) {
        m.assign(static_cast<size_t>(count) * Rr, 0);
        for (int i = i0; i < i0 + count; ++i) {
            const int pos = p0 + i;
            const int first = window > 0 && pos + 1 > window ? pos + 1 - window : 0;
            for (int r = 0; r < Rr; ++r)
                m[static_cast<size_t>(i - i0) * Rr + r] =
                    book.rowPosition(l, r) >= first && book.visible(l, r, pos) ? 1 : 0;
        }
        if (mask.bytes() < m.size())
            mask = scratch(std::max(m.size(), 2 * mask.bytes()), "the mask");
        q.write(mask, 0, m.data(), m.size());
    };
    auto run = [&](int i0, int count, int aBase) {
        attendRows.setArgs(att, attn, qkv, w.k, w.v, mask, Rr, Rq, H, H / c.nHeadKv, cacheCap, hd,
                           static_cast<int>(rowBytes), typeCode, c.attnScale, c.attnSoftcap, i0,
                           aBase, Kernel::Local{attendLocal * sizeof(float)});
        track(Cat::Attention, q.run(attendRows, Range(attendLocal * H, static_cast<size_t>(count)),
                                    Range(attendLocal, 1)));
    };
    if (options.cache.eviction.heavy == 0) {  // who is seen depends on positions only
        for (int i0 = 0; i0 < n; i0 += slice) {
            const int count = std::min(slice, n - i0);
            sendMask(i0, count);
            run(i0, count, i0);
        }
        return;
    }
    // Heavy hitters: each query's weights, summed over the heads in order, choose what the next
    // one sees (read back per query: a teaching tool can afford the round trips).
    std::vector<float> a(static_cast<size_t>(H) * Rr), sum(static_cast<size_t>(Rr));
    for (int i = 0; i < n; ++i) {
        const int aBase = slice == n ? 0 : i;  // all rows kept when traced, else one at a time
        sendMask(i, 1);
        run(i, 1, aBase);
        q.read(attn, static_cast<size_t>(i - aBase) * H * Rr * sizeof(float), a.data(),
               a.size() * sizeof(float));
        std::fill(sum.begin(), sum.end(), 0.0f);
        for (int hh = 0; hh < H; ++hh)
            for (int r = 0; r < Rr; ++r)
                sum[static_cast<size_t>(r)] += a[static_cast<size_t>(hh) * Rr + r];
        book.noteQuery(l, p0 + i, sum.data());
    }
}

void OpenClBackend::Impl::commitPolicy(int n) {
    const ModelConfig& c = cfg();
    const int before = book.rows() + book.pending();
    // kept[l][r]: the row that row r of layer l holds after the compaction (empty: none moved)
    std::vector<std::vector<int>> kept(static_cast<size_t>(c.nLayer));
    book.commit(n, [&](int l, int from, int to) {
        std::vector<int>& k = kept[static_cast<size_t>(l)];
        if (k.empty()) {
            k.resize(static_cast<size_t>(before));
            std::iota(k.begin(), k.end(), 0);
        }
        k[static_cast<size_t>(to)] = from;
    });
    const int held = book.rows();
    Queue& q = dev.queue();
    for (int l = 0; l < c.nLayer; ++l) {
        const std::vector<int>& k = kept[static_cast<size_t>(l)];
        if (k.empty() || held == 0) continue;
        // gather the rows kept into scratch, then copy them back to rows 0 .. held-1
        const size_t idxBytes = static_cast<size_t>(held) * sizeof(cl_int);
        if (keptIdx.bytes() < idxBytes) keptIdx = scratch(idxBytes, "the rows kept");
        q.write(keptIdx, 0, k.data(), idxBytes);
        const size_t tmpBytes = static_cast<size_t>(c.nHeadKv) * held * rowBytes;
        if (compactTmp.bytes() < tmpBytes) compactTmp = scratch(tmpBytes, "the rows kept");
        const size_t items = tmpBytes;
        for (const Buffer* b :
             {&layers[static_cast<size_t>(l)].k, &layers[static_cast<size_t>(l)].v}) {
            kvGather.setArgs(compactTmp, held, *b, cacheCap, keptIdx, 1, held,
                             static_cast<int>(rowBytes), c.nHeadKv);
            runItems(Cat::Other, kvGather, items);
            kvGather.setArgs(*b, cacheCap, compactTmp, held, keptIdx, 0, held,
                             static_cast<int>(rowBytes), c.nHeadKv);
            runItems(Cat::Other, kvGather, items);
        }
    }
    q.finish();  // before the device times are read
    // The blocks past the next token's row go back, as KvCache::commit frees them.
    if (options.cache.eviction.evicts()) {
        const int keep = std::min(
            c.nCtx, (std::min(held + 1, c.nCtx) + cacheBlock - 1) / cacheBlock * cacheBlock);
        if (cacheCap > keep) resizeCache(keep);
    }
}

void OpenClBackend::Impl::copyResidTraces(std::vector<StepTrace>& traces, size_t first, int l,
                                          int t0, int n, const float* rows) const {
    const auto E = static_cast<size_t>(cfg().nEmbd);
    for (int i = t0; i < n; ++i)
        std::memcpy(traces[first + static_cast<size_t>(i - t0)].resid.data() + l * E,
                    rows + static_cast<size_t>(i - t0) * E, E * sizeof(float));
}

void OpenClBackend::Impl::head(std::span<const float> hidden, int rows,
                               std::vector<float>& logits) {
    const ModelConfig& c = cfg();
    const auto E = static_cast<size_t>(c.nEmbd), V = static_cast<size_t>(c.nVocab);
    logits.resize(static_cast<size_t>(rows) * V);
    Queue& q = dev.queue();
    events.clear();
    const int chunk = std::min(rows, c.nCtx);  // the activation buffers hold up to nCtx rows
    for (int r0 = 0; r0 < rows; r0 += chunk) {
        const int n = std::min(chunk, rows - r0);
        ensureScratch(n, 0, n);
        q.write(x, 0, hidden.data() + static_cast<size_t>(r0) * E, n * E * sizeof(float));
        norm(h, 0, x, 0, outNormW, outNormB, n);
        matmul(logitsBuf, h, outputWeights(), Buffer{}, n, c.nEmbd, c.nVocab, false);
        if (c.finalSoftcap > 0) {
            const size_t count = static_cast<size_t>(n) * V;
            softcapK.setArgs(logitsBuf, c.finalSoftcap, static_cast<int>(count));
            runItems(Cat::Other, softcapK, count);
        }
        q.read(logitsBuf, 0, logits.data() + static_cast<size_t>(r0) * V,
               static_cast<size_t>(n) * V * sizeof(float));
    }
    events.clear();
}

void OpenClBackend::Impl::copyQkvTraces(std::vector<StepTrace>& traces, size_t first, int l, int t0,
                                        int n, const float* rows) const {
    const ModelConfig& c = cfg();
    const int Q = c.nHead * c.headDim, KV = c.nHeadKv * c.headDim, R = c.qkvRows();
    for (int i = t0; i < n; ++i) {
        StepTrace& s = traces[first + static_cast<size_t>(i - t0)];
        const float* row = rows + static_cast<size_t>(i - t0) * R;
        std::copy(row, row + Q, s.q.begin() + static_cast<ptrdiff_t>(l) * Q);
        std::copy(row + Q, row + Q + KV, s.k.begin() + static_cast<ptrdiff_t>(l) * KV);
        std::copy(row + Q + KV, row + Q + 2 * KV, s.v.begin() + static_cast<ptrdiff_t>(l) * KV);
    }
}

void OpenClBackend::Impl::copyAttnTraces(std::vector<StepTrace>& traces, size_t first, int l,
                                         int t0, int n, int p0, const float* rows,
                                         const std::vector<int>* pos) const {
    const int H = cfg().nHead, T = pos ? static_cast<int>(pos->size()) : p0 + n;
    for (int i = t0; i < n; ++i) {
        StepTrace& s = traces[first + static_cast<size_t>(i - t0)];
        const int t = p0 + i + 1;
        for (int hh = 0; hh < H; ++hh) {
            const float* row = rows + (static_cast<size_t>(i - t0) * H + hh) * T;
            const auto to = s.attn.begin() + (static_cast<ptrdiff_t>(l) * H + hh) * t;
            if (!pos) {
                std::copy(row, row + t, to);
                continue;
            }
            // the weight of row r goes to its position (zeros at the positions evicted)
            std::fill(to, to + t, 0.0f);
            for (int r = 0; r < T; ++r) {
                const int p = (*pos)[static_cast<size_t>(r)];
                if (p < t) to[p] = row[r];
            }
        }
    }
}

void OpenClBackend::Impl::collectDeviceTimes() {
    last = DeviceMs{};
    last.kernels = static_cast<int>(events.size());
    for (const auto& [cat, e] : events) {
        const double ms = static_cast<double>(e.elapsedNs()) * 1e-6;
        (cat == Cat::MatMul      ? last.matmul
         : cat == Cat::Attention ? last.attention
         : cat == Cat::Layer     ? last.layers
                                 : last.other) += ms;
    }
    events.clear();
}

std::vector<float> OpenClBackend::Impl::readCache(const Buffer& b, int kvHead) {
    const ModelConfig& c = cfg();
    const auto held = static_cast<size_t>(book.rows()), hd = static_cast<size_t>(c.headDim);
    std::vector<uint8_t> bytes(held * rowBytes);
    if (!bytes.empty())
        dev.queue().read(b, static_cast<size_t>(kvHead) * cacheCap * rowBytes, bytes.data(),
                         bytes.size());
    std::vector<float> out(held * hd);
    for (size_t r = 0; r < held; ++r)
        kvDecodeRow(options.cache.type, bytes.data() + r * rowBytes, out.data() + r * hd,
                    c.headDim);
    return out;
}

// ---------------------------------------------------------------------------------------------

OpenClBackend::OpenClBackend(std::shared_ptr<const Model> model, OpenClOptions options) {
    const auto start = Clock::now();
    impl_ = std::make_unique<Impl>(std::move(model), std::move(options), nullptr);
    startUp(start);
}

OpenClBackend::OpenClBackend(const OpenClBackend& from, OpenClOptions options) {
    const auto start = Clock::now();
    impl_ = std::make_unique<Impl>(from.impl_->model, std::move(options), from.impl_->shared);
    startUp(start);
}

void OpenClBackend::startUp(std::chrono::steady_clock::time_point start) {
    Impl& m = *impl_;
    const OpenClOptions& o = m.options;
    OpenClStartup& s = m.startup;
    s.openMs = msSince(start);
    const DeviceInfo& info = m.dev.info();
    m.memLimit = o.deviceMemoryLimit ? std::min(o.deviceMemoryLimit, info.globalMemBytes)
                                     : info.globalMemBytes;
    m.allocLimit = o.deviceMemoryLimit ? std::min(o.deviceMemoryLimit, info.maxAllocBytes)
                                       : info.maxAllocBytes;
    if (!m.sharing) {
        m.wide = o.wideScales.value_or(info.type == "CPU");
        if (info.type == "CPU" && o.hugePages.value_or(true)) m.shared->arena.emplace();
    }
    m.checkMemory();

    // The matrix-product paths: forced, else remembered for this device, else measured below.
    const std::string cacheDir = o.cacheDir.value_or(defaultCacheDir());
    std::optional<MatMulChoice> choice = o.matmul;
    if (!choice) choice = loadMatMulChoice(cacheDir, info.key());
    // CLBlast's kernels are compiled ahead only if they will run (or be measured); a backend
    // sharing another's device finds them compiled.
    const bool clblastGemm = !m.sharing && (!choice || choice->gemm == GemmPath::ClBlast);
    const bool clblastGemv = !m.sharing && (!choice || choice->gemv == GemvPath::ClBlast);

    // 1. our kernels' program, and CLBlast's kernels when warming up, on a worker thread while
    //    this one uploads the weights (both take seconds on some drivers); none of it when
    //    sharing them
    std::exception_ptr workerError;
    auto compile = [&] {
        try {
            auto t0 = Clock::now();
            m.program = m.dev.buildKernels();
            s.buildMs = msSince(t0);
            if (o.warmUp && (clblastGemm || clblastGemv)) {
                t0 = Clock::now();
                Queue side(m.dev.context(), m.dev.id());
                warmUpClBlast(m.dev, side, clblastGemm, clblastGemv);
                s.clblastMs = msSince(t0);
            }
        } catch (...) {
            workerError = std::current_exception();
        }
    };
    if (!m.sharing) {
        std::jthread worker;
        if (o.warmUp)
            worker = std::jthread(compile);
        else
            compile();
        const auto t0 = Clock::now();
        m.uploadWeights();  // if this throws, the jthread joins before the error leaves
        s.uploadMs = msSince(t0);
    }
    if (workerError) std::rethrow_exception(workerError);
    auto stopRequested = [&o] {
        if (o.stop && o.stop->load()) throw Error("stopped");
    };
    stopRequested();

    // 2. the matrix-product paths, measured once per device and remembered
    if (!choice) {
        const auto t0 = Clock::now();
        MatMulChoice best;
        const std::vector<MatMulTrial> trials = measureMatMul(m.dev, m.program, best, o.stop);
        s.matmulMs = msSince(t0);
        s.matmulMeasured = true;
        s.matmulTrials = describeTrials(trials);
        storeMatMulChoice(cacheDir, info.key(), best, s.matmulTrials);
        choice = best;
    }
    m.mm.emplace(m.dev, m.program, *choice, o.cpuSimd.value_or(true));
    m.makeKernels();
    stopRequested();

    // 3. one pass of two tokens (the batched path) and one of one token (the GEMV path), so
    //    that drivers that compile kernels at their first launch (PoCL) do it now
    //    (not when sharing: the program's kernels have run)
    if (o.warmUp && !m.sharing && m.cfg().nCtx >= 3) {
        const auto t0 = Clock::now();
        std::vector<float> logits;
        const int32_t ids[2] = {0, 0};
        m.forward(ids, false, logits, nullptr, 0);
        m.forward(std::span(ids, 1), false, logits, nullptr, 0);
        m.book.clear();
        m.last = DeviceMs{};
        s.warmMs = msSince(t0);
    }
    s.totalMs = msSince(start);
}

OpenClBackend::~OpenClBackend() = default;

std::string OpenClBackend::deviceName() const {
    const DeviceInfo& d = impl_->dev.info();
    return d.name + " (" + d.platformName + ", OpenCL, " + impl_->mm->choice().text() +
           (!impl_->mm->simd() ? ""
            : impl_->wide
                ? "; x86 SIMD kernels, block types with 8-bit activations"
                : "; x86 SIMD kernels for F16 (block types with stored scales: portable)") +
           (fusedLayers() ? "; decode steps a layer per command" : "") + ")";
}

const ModelConfig& OpenClBackend::config() const {
    return impl_->cfg();
}

void OpenClBackend::doForward(std::span<const int32_t> tokens, bool allLogits,
                              std::vector<float>& logits, std::vector<StepTrace>* traces,
                              int traceFrom) {
    impl_->forward(tokens, allLogits, logits, traces, traceFrom);
}

int OpenClBackend::cacheUsed() const {
    return impl_->book.used();
}

int OpenClBackend::cacheRows() const {
    return impl_->book.rows();
}

bool OpenClBackend::canTruncateCache(int n) const {
    return impl_->book.canTruncate(n);
}

const KvRows* OpenClBackend::cacheBook() const {
    return &impl_->book;
}

KvCacheOptions OpenClBackend::cacheOptions() const {
    return impl_->options.cache;
}

std::shared_ptr<Backend> OpenClBackend::withCache(const KvCacheOptions& options) const {
    OpenClOptions o = impl_->options;
    o.cache = options;
    o.matmul = impl_->mm->choice();  // measured once is enough
    // the private constructor: make_shared cannot reach it
    return std::shared_ptr<OpenClBackend>(new OpenClBackend(*this, o));
}

std::shared_ptr<OpenClBackend> OpenClBackend::withFusedLayers(bool fused) const {
    OpenClOptions o = impl_->options;
    o.fusedLayers = fused;
    o.matmul = impl_->mm->choice();
    return std::shared_ptr<OpenClBackend>(new OpenClBackend(*this, o));
}

std::shared_ptr<Backend> OpenClBackend::fork() const {
    Impl& m = *impl_;
    KVSCOPE_CHECK(m.book.pending() == 0, "cannot fork during a pass");
    auto other = std::static_pointer_cast<OpenClBackend>(withCache(m.options.cache));
    Impl& o = *other->impl_;
    // the rows held, copied on the device (the two share its context and queue)
    o.book.clear();
    o.resizeCache(std::max(m.cacheCap, 1));
    const size_t held = static_cast<size_t>(m.book.rows()) * m.rowBytes;
    for (size_t l = 0; l < m.layers.size() && held > 0; ++l)
        for (int g = 0; g < m.cfg().nHeadKv; ++g) {
            const size_t from = static_cast<size_t>(g) * m.cacheCap * m.rowBytes;
            const size_t to = static_cast<size_t>(g) * o.cacheCap * o.rowBytes;
            o.dev.queue().copyAsync(m.layers[l].k, from, o.layers[l].k, to, held);
            o.dev.queue().copyAsync(m.layers[l].v, from, o.layers[l].v, to, held);
        }
    o.dev.queue().finish();
    o.book = m.book;
    return other;
}

void OpenClBackend::doHeadLogits(std::span<const float> hidden, int rows,
                                 std::vector<float>& logits) {
    impl_->head(hidden, rows, logits);
}

void OpenClBackend::doTruncateCache(int n) {
    impl_->book.truncate(n);  // the buffers stay; rows past the ones held are unused
}

bool OpenClBackend::swapSpareCache() {
    Impl& m = *impl_;
    m.spare.kv.resize(m.layers.size());
    for (size_t l = 0; l < m.layers.size(); ++l) {
        std::swap(m.layers[l].k, m.spare.kv[l].first);
        std::swap(m.layers[l].v, m.spare.kv[l].second);
    }
    std::swap(m.cacheCap, m.spare.cap);
    std::swap(m.book, m.spare.book);
    return true;
}

int OpenClBackend::cacheBlockTokens() const {
    return impl_->cacheBlock;
}

size_t OpenClBackend::cacheBytesPerToken() const {
    return impl_->bytesPerToken();
}

size_t OpenClBackend::cacheAllocatedBytes() const {
    return impl_->bytesPerToken() * static_cast<size_t>(impl_->cacheCap);
}

DeviceMs OpenClBackend::lastStepDeviceMs() const {
    return impl_->last;
}

const OpenClStartup& OpenClBackend::startup() const {
    return impl_->startup;
}

MatMulChoice OpenClBackend::matmulChoice() const {
    return impl_->mm->choice();
}

int OpenClBackend::deviceIndex() const {
    return impl_->dev.info().index;
}

void OpenClBackend::doAttentionMatrix(int layer, int head, std::span<const float> queries,
                                      std::vector<float>& out) {
    Impl& m = *impl_;
    const ModelConfig& c = m.cfg();
    KVSCOPE_CHECK(m.book.rows() == m.book.used(),
                  "the attention matrix is rebuilt from the cached keys, and the " +
                      m.options.cache.eviction.text() + " policy has let some of them go");
    const size_t hd = static_cast<size_t>(c.headDim);
    const size_t t = queries.size() / hd;
    if (m.options.cache.type != KvType::F32) {
        // keys stored in a block type: scores on the host from the keys as the cache gives them
        const std::vector<float> K =
            m.readCache(m.layers[static_cast<size_t>(layer)].k, c.kvHeadOf(head));
        out.assign(t * t, 0.0f);
        for (size_t i = 0; i < t; ++i)
            for (size_t j = 0; j < t; ++j) {
                float s = 0.0f;
                for (size_t d = 0; d < hd; ++d) s += queries[i * hd + d] * K[j * hd + d];
                out[i * t + j] = s;
            }
        ops::attentionRows(out.data(), static_cast<int>(t),
                           {c.attnScale, c.attnSoftcap, c.windowOf(layer)});
        return;
    }
    // scores (t, t) = Q (t, hd) · Kᵀ, K = rows 0..t-1 of the cached keys of this head's KV head
    Buffer q(m.dev.context(), queries.size() * sizeof(float),
             CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, queries.data());
    Buffer scores(m.dev.context(), t * t * sizeof(float), CL_MEM_READ_WRITE);
    const size_t kOffset = static_cast<size_t>(c.kvHeadOf(head)) * m.cacheCap * hd;
    cl_event e = nullptr;
    CL_CHECK(clblast::Gemm<float>(clblast::Layout::kRowMajor, clblast::Transpose::kNo,
                                  clblast::Transpose::kYes, t, t, hd, 1.0f, q.get(), 0, hd,
                                  m.layers[static_cast<size_t>(layer)].k.get(), kOffset, hd, 0.0f,
                                  scores.get(), 0, t, m.dev.queue().forClBlast(), &e));
    Event done(e);
    out.resize(t * t);
    m.dev.queue().read(scores, 0, out.data(), out.size() * sizeof(float));
    ops::attentionRows(out.data(), static_cast<int>(t),
                       {c.attnScale, c.attnSoftcap, c.windowOf(layer)});
}

std::string OpenClBackend::weightNote() const {
    return deviceWeightNote(*impl_->model, impl_->wide);
}

bool OpenClBackend::sharesWeightsWith(const OpenClBackend& other) const {
    return impl_->shared == other.impl_->shared;
}

bool OpenClBackend::wideScales() const {
    return impl_->wide;
}

bool OpenClBackend::cpuSimd() const {
    return impl_->mm->simd();
}

bool OpenClBackend::hugePageWeights() const {
    return impl_->shared->arena.has_value();
}

bool OpenClBackend::fusedLayers() const {
    return impl_->stepLayer.valid() && !impl_->stepGaveUp;
}

uint64_t OpenClBackend::uploadedWeightBytes() const {
    return impl_->uploadedBytes;
}

std::pair<TensorType, std::vector<uint8_t>> OpenClBackend::readFfnDown(int layer) const {
    KVSCOPE_CHECK(layer >= 0 && layer < impl_->cfg().nLayer, "no layer " + std::to_string(layer));
    const Impl::DeviceWeight::Part& p =
        impl_->layerWeights[static_cast<size_t>(layer)].wDown.parts[0];
    std::vector<uint8_t> bytes(p.buf.bytes());
    impl_->dev.queue().read(p.buf, 0, bytes.data(), bytes.size());
    return {p.type, std::move(bytes)};
}

std::optional<uint64_t> OpenClBackend::deviceMemoryBytes() const {
    return impl_->dev.info().globalMemBytes;
}

std::vector<float> OpenClBackend::readKeys(int layer, int kvHead) const {
    KVSCOPE_CHECK(
        layer >= 0 && layer < impl_->cfg().nLayer && kvHead >= 0 && kvHead < impl_->cfg().nHeadKv,
        "no K cache of layer " + std::to_string(layer) + ", KV head " + std::to_string(kvHead));
    return impl_->readCache(impl_->layers[static_cast<size_t>(layer)].k, kvHead);
}

std::vector<float> OpenClBackend::readValues(int layer, int kvHead) const {
    KVSCOPE_CHECK(
        layer >= 0 && layer < impl_->cfg().nLayer && kvHead >= 0 && kvHead < impl_->cfg().nHeadKv,
        "no V cache of layer " + std::to_string(layer) + ", KV head " + std::to_string(kvHead));
    return impl_->readCache(impl_->layers[static_cast<size_t>(layer)].v, kvHead);
}

}  // namespace kvscope
