// Model loading: metadata to ModelConfig, tensors to float32 with their shapes checked.
#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string_view>

#include "core/error.h"
#include "gguf/dequant.h"
#include "gguf/gguf.h"

namespace kvscope {
namespace {

std::string shapeText(const std::vector<uint64_t>& ne) {
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

// Reads a positive integer hyperparameter "<arch>.<key>", at most `limit`.
int hyper(const GgufFile& f, const std::string& arch, const std::string& key, uint64_t limit) {
    const std::string full = arch + "." + key;
    const uint64_t v = f.requireUint(full);
    if (v == 0 || v > limit)
        throw Error(f.path() + ": " + full + " = " + std::to_string(v) + ", expected 1.." +
                    std::to_string(limit));
    return static_cast<int>(v);
}

std::string supportedWeightTypesText() {
    std::string s;
    for (uint32_t i = 0; i < 64; ++i)
        if (isSupportedWeightType(static_cast<TensorType>(i))) {
            if (!s.empty()) s += ", ";
            s += typeName(static_cast<TensorType>(i));
        }
    return s;
}

class Loader {
  public:
    explicit Loader(std::shared_ptr<const GgufFile> f) : f_(std::move(f)) {}

    // The tensor `name`, whose ne must equal `ne` (ggml order), checked and found.
    const GgufTensorInfo& find(const std::string& name, const std::vector<uint64_t>& ne) const {
        const GgufTensorInfo* t = f_->findTensor(name);
        if (!t) throw Error(f_->path() + ": tensor '" + name + "' is missing");
        if (t->ne != ne)
            throw Error(f_->path() + ": tensor '" + name + "' has shape " + shapeText(t->ne) +
                        ", expected " + shapeText(ne) + " from the metadata");
        return *t;
    }

    // A small tensor (norm weights, biases, positions) as float32.
    std::vector<float> floats(const std::string& name, std::vector<uint64_t> ne) const {
        const GgufTensorInfo& t = find(name, ne);
        try {
            return toFloat(t.type, f_->tensorData(t), t.elements(), name);
        } catch (const Error& e) {
            throw Error(f_->path() + ": loading " + name + ": " + e.what());
        }
    }

    // A matrix of ne = [cols, rows], kept in the file's type as a view into the file.
    WeightMatrix matrix(const std::string& name, std::vector<uint64_t> ne) const {
        const GgufTensorInfo& t = find(name, ne);
        if (!isSupportedWeightType(t.type))
            throw Error(f_->path() + ": loading " + name + ": tensor '" + name + "' has type " +
                        typeName(t.type) + "; KVScope reads " + supportedWeightTypesText());
        try {
            WeightMatrix w(t.type, static_cast<int>(ne[1]), static_cast<int>(ne[0]),
                           f_->tensorData(t).data(), f_);
            // A float32 tensor at an offset that is not a multiple of 4 (general.alignment
            // 1 or 2) cannot be read in place: copy it.
            if (t.type == TensorType::F32 && !w.f32())
                return WeightMatrix::fromFloats(w.toFloats(), w.rows(), w.cols());
            return w;
        } catch (const Error& e) {
            throw Error(f_->path() + ": loading " + name + ": " + e.what());
        }
    }
    WeightMatrix optionalMatrix(const std::string& name, std::vector<uint64_t> ne) const {
        return f_->findTensor(name) ? matrix(name, std::move(ne)) : WeightMatrix{};
    }

  private:
    std::shared_ptr<const GgufFile> f_;
};

}  // namespace

Model Model::load(const std::string& path, int context) {
    return fromGguf(GgufFile::open(path), context);
}

namespace {

struct Family {
    const char* name;
    Arch arch;
};
constexpr Family kFamilies[] = {{"gpt2", Arch::Gpt2},   {"llama", Arch::Llama},
                                {"qwen2", Arch::Qwen2}, {"phi3", Arch::Phi3},
                                {"gemma", Arch::Gemma}, {"gemma2", Arch::Gemma2}};

std::string familiesText() {
    std::string s;
    for (const Family& f : kFamilies) {
        if (!s.empty()) s += ", ";
        s += std::string("'") + f.name + "'";
    }
    return s;
}

float optionalFloat(const GgufFile& f, const std::string& key, float dflt) {
    return static_cast<float>(f.getFloat(key).value_or(dflt));
}

// RoPE: type by family, rope.* keys as llama.cpp reads them (rope.h).
void readRope(const GgufFile& f, const std::string& a, ModelConfig& c) {
    RopeConfig& r = c.rope;
    r.type = c.arch == Arch::Llama ? RopeType::Adjacent : RopeType::Neox;
    r.nRot = c.headDim;
    if (f.find(a + ".rope.dimension_count")) r.nRot = hyper(f, a, "rope.dimension_count", 1 << 16);
    if (r.nRot > c.headDim || r.nRot % 2 != 0)
        throw Error(f.path() + ": " + a + ".rope.dimension_count = " + std::to_string(r.nRot) +
                    ": RoPE needs an even number of dimensions, at most the head size " +
                    std::to_string(c.headDim));
    if (c.arch == Arch::Llama && r.nRot != c.headDim)
        throw Error(f.path() + ": " + a + ".rope.dimension_count = " + std::to_string(r.nRot) +
                    ", expected the head size " + std::to_string(c.headDim) + " for llama");
    r.freqBase = optionalFloat(f, a + ".rope.freq_base", 10000.0f);
    if (!(r.freqBase > 1.0f))
        throw Error(f.path() + ": " + a + ".rope.freq_base = " + std::to_string(r.freqBase) +
                    ", expected more than 1");
    const std::string scaling = f.getString(a + ".rope.scaling.type").value_or("linear");
    float factor = optionalFloat(f, a + ".rope.scaling.factor", 0.0f);
    if (factor == 0.0f) factor = optionalFloat(f, a + ".rope.scale_linear", 0.0f);
    if (factor < 0.0f || !std::isfinite(factor))
        throw Error(f.path() + ": " + a + ".rope.scaling.factor = " + std::to_string(factor) +
                    ", expected a positive number");
    r.nCtxOrig = c.nCtxTrain;
    if (f.find(a + ".rope.scaling.original_context_length"))
        r.nCtxOrig = hyper(f, a, "rope.scaling.original_context_length", 1 << 24);
    r.attnFactor = optionalFloat(f, a + ".rope.scaling.attn_factor", 1.0f);
    if (scaling == "none") {
        r.freqScale = 1.0f;
    } else if (scaling == "linear" || scaling == "yarn" || scaling == "longrope") {
        r.freqScale = factor == 0.0f ? 1.0f : 1.0f / factor;
        r.yarn = scaling == "yarn";
    } else {
        throw Error(f.path() + ": " + a + ".rope.scaling.type = '" + scaling +
                    "' is not supported; KVScope reads none, linear, yarn and longrope");
    }
}

}  // namespace

std::string ModelConfig::familyText() const {
    std::string s = archName;
    s += norm == NormType::Layer ? ", LayerNorm" : ", RMSNorm";
    s += rope.type == RopeType::None ? ", learned positions" : ", RoPE " + rope.describe();
    s += ffn == FfnType::Gelu ? ", GELU MLP" : ffn == FfnType::SiluGate ? ", SwiGLU" : ", GeGLU";
    if (nHeadKv == 1 && nHead > 1)
        s += ", MQA " + std::to_string(nHead) + "/1";
    else if (nHeadKv < nHead)
        s += ", GQA " + std::to_string(nHead) + "/" + std::to_string(nHeadKv);
    if (slidingWindow > 0) {
        int n = 0;
        for (uint8_t v : swaLayers) n += v;
        s += ", window " + std::to_string(slidingWindow) + " on " + std::to_string(n) + " of " +
             std::to_string(nLayer) + " layers";
    }
    if (attnSoftcap > 0) s += ", soft-capped scores";
    if (finalSoftcap > 0) s += ", soft-capped logits";
    return s;
}

Model Model::fromGguf(GgufFile file, int context) {
    auto shared = std::make_shared<const GgufFile>(std::move(file));
    const GgufFile& f = *shared;
    const std::string arch = f.requireString("general.architecture");
    ModelConfig c;
    c.archName = arch;
    const Family* family = nullptr;
    for (const Family& fam : kFamilies)
        if (arch == fam.name) family = &fam;
    if (!family)
        throw Error(f.path() + ": general.architecture = '" + arch +
                    "' is not supported; KVScope runs " + familiesText());
    c.arch = family->arch;
    const bool gpt2 = c.arch == Arch::Gpt2;
    const bool gemma = c.arch == Arch::Gemma || c.arch == Arch::Gemma2;
    c.name =
        f.getString("general.name").value_or(std::filesystem::path(f.path()).filename().string());
    c.nLayer = hyper(f, arch, "block_count", 1024);
    c.nEmbd = hyper(f, arch, "embedding_length", 1 << 16);
    c.nFf = hyper(f, arch, "feed_forward_length", 1 << 18);
    c.nCtxTrain = hyper(f, arch, "context_length", 1 << 24);
    if (context < 0 || context > c.nCtxTrain)
        throw Error("a context of " + std::to_string(context) + " tokens was asked for; " +
                    f.path() + " was trained for " + std::to_string(c.nCtxTrain) + " (" + arch +
                    ".context_length), the most it can run with");
    c.nCtx = context > 0 ? context : std::min(c.nCtxTrain, kDefaultContext);
    c.nHead = hyper(f, arch, "attention.head_count", 4096);
    c.nHeadKv = f.find(arch + ".attention.head_count_kv")
                    ? hyper(f, arch, "attention.head_count_kv", 4096)
                    : c.nHead;
    if (c.nHead % c.nHeadKv != 0)
        throw Error(f.path() + ": head_count " + std::to_string(c.nHead) +
                    " is not a multiple of head_count_kv " + std::to_string(c.nHeadKv));
    if (f.find(arch + ".attention.key_length")) {
        c.headDim = hyper(f, arch, "attention.key_length", 1 << 14);
    } else {
        if (c.nEmbd % c.nHead != 0)
            throw Error(f.path() + ": embedding_length " + std::to_string(c.nEmbd) +
                        " is not a multiple of head_count " + std::to_string(c.nHead));
        c.headDim = c.nEmbd / c.nHead;
    }
    if (f.find(arch + ".attention.value_length") &&
        hyper(f, arch, "attention.value_length", 1 << 14) != c.headDim)
        throw Error(f.path() + ": " + arch + ".attention.value_length differs from key_length " +
                    std::to_string(c.headDim) + "; KVScope needs keys and values of one size");
    c.attnScale = 1.0f / std::sqrt(static_cast<float>(c.headDim));
    if (gpt2) {
        c.norm = NormType::Layer;
        c.ffn = FfnType::Gelu;
        c.normEps = static_cast<float>(f.requireFloat("gpt2.attention.layer_norm_epsilon"));
        if (c.nHeadKv != c.nHead)
            throw Error(f.path() + ": gpt2 models have head_count_kv == head_count");
    } else {
        c.norm = NormType::Rms;
        c.ffn = gemma ? FfnType::GeluGate : FfnType::SiluGate;
        c.normEps = static_cast<float>(f.requireFloat(arch + ".attention.layer_norm_rms_epsilon"));
        readRope(f, arch, c);
    }
    if (gemma) c.embedScale = std::sqrt(static_cast<float>(c.nEmbd));
    // Mistral's architecture slides a window over every layer. llama.cpp's converter does not
    // write it (and llama.cpp reads none for llama), so a file has it only when written by
    // hand; with it, every layer attends to the last `sliding_window` tokens.
    if (c.arch == Arch::Llama && f.getUint(arch + ".attention.sliding_window").value_or(0) > 0) {
        c.slidingWindow = hyper(f, arch, "attention.sliding_window", 1 << 24);
        c.swaLayers.assign(static_cast<size_t>(c.nLayer), 1);
    }
    if (c.arch == Arch::Gemma2) {
        c.postNorms = true;
        c.attnSoftcap = optionalFloat(f, arch + ".attn_logit_softcapping", 50.0f);
        c.finalSoftcap = optionalFloat(f, arch + ".final_logit_softcapping", 30.0f);
        c.slidingWindow = 4096;
        if (f.find(arch + ".attention.sliding_window"))
            c.slidingWindow = hyper(f, arch, "attention.sliding_window", 1 << 24);
        // even layers slide, odd layers see everything (llama.cpp's pattern 2)
        c.swaLayers.resize(static_cast<size_t>(c.nLayer));
        for (int l = 0; l < c.nLayer; ++l) c.swaLayers[static_cast<size_t>(l)] = l % 2 == 0;
        // Gemma 2 27B scales by n_embd / n_head rather than the head size (as llama.cpp does)
        if (c.nLayer == 46) c.attnScale = 1.0f / std::sqrt(static_cast<float>(c.nEmbd / c.nHead));
    }
    // The tokenizer's refusals name the key and value; this names the file too, as the model's
    // own do (the reader's errors, e.g. a key of the wrong type, name it already).
    Tokenizer tok = [&] {
        try {
            return Tokenizer::fromGguf(f);
        } catch (const Error& e) {
            const std::string prefix = f.path() + ": ";
            if (std::string_view(e.what()).starts_with(prefix)) throw;
            throw Error(prefix + e.what());
        }
    }();
    c.nVocab = static_cast<int>(tok.vocabSize());
    // tokenizer.ggml.add_bos_token, else llama.cpp's default for the tokenizer (SentencePiece
    // and Llama 3's BPE add it)
    c.addBos = tok.addBos();
    if (c.addBos && !tok.bos())
        throw Error(f.path() + ": tokenizer.ggml.add_bos_token is set but there is no BOS token");

    Model m{.tokenizer = std::move(tok),
            .config = c,
            .path = f.path(),
            .file = shared,
            .tokEmbd = {},
            .posEmbd = {},
            .layers = {},
            .outNormW = {},
            .outNormB = {},
            .output = {}};
    const Loader L(shared);
    const auto E = static_cast<uint64_t>(c.nEmbd), V = static_cast<uint64_t>(c.nVocab),
               F = static_cast<uint64_t>(c.nFf), Q = static_cast<uint64_t>(c.nHead * c.headDim),
               KV = static_cast<uint64_t>(c.nHeadKv * c.headDim);

    m.tokEmbd = L.matrix("token_embd.weight", {E, V});
    if (gpt2) {  // positions beyond the context are never used: keep only those within it
        m.posEmbd = L.floats("position_embd.weight", {E, static_cast<uint64_t>(c.nCtxTrain)});
        m.posEmbd.resize(static_cast<size_t>(c.nCtx) * c.nEmbd);
    }
    m.outNormW = L.floats("output_norm.weight", {E});
    if (gpt2) m.outNormB = L.floats("output_norm.bias", {E});
    if (!gemma) m.output = L.optionalMatrix("output.weight", {E, V});  // gemma: always tied

    // RoPE frequency factors: Llama 3.1+'s rope_freqs, phi3's short or long factors (long when
    // the context runs past the original one, as llama.cpp chooses)
    if (!gpt2) {
        const uint64_t half = static_cast<uint64_t>(m.config.rope.nRot / 2);
        std::string factors = "rope_freqs.weight";
        if (!f.findTensor(factors))
            factors = m.config.nCtx > m.config.rope.nCtxOrig ? "rope_factors_long.weight"
                                                             : "rope_factors_short.weight";
        if (f.findTensor(factors)) m.config.rope.freqFactors = L.floats(factors, {half});
        for (float ff : m.config.rope.freqFactors)
            if (!(ff > 0.0f) || !std::isfinite(ff))
                throw Error(f.path() + ": " + factors + " holds " + std::to_string(ff) +
                            "; RoPE frequency factors must be positive");
    }

    m.layers.resize(static_cast<size_t>(c.nLayer));
    for (int i = 0; i < c.nLayer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeights& w = m.layers[static_cast<size_t>(i)];
        w.attnNormW = L.floats(p + "attn_norm.weight", {E});
        w.ffnNormW = L.floats(p + "ffn_norm.weight", {E});
        w.wo = L.matrix(p + "attn_output.weight", {Q, E});
        w.wDown = L.matrix(p + "ffn_down.weight", {F, E});
        if (gpt2) {
            w.attnNormB = L.floats(p + "attn_norm.bias", {E});
            w.ffnNormB = L.floats(p + "ffn_norm.bias", {E});
            w.qkv.push_back(L.matrix(p + "attn_qkv.weight", {E, Q + 2 * KV}));
            w.bqkv = L.floats(p + "attn_qkv.bias", {Q + 2 * KV});
            w.bo = L.floats(p + "attn_output.bias", {E});
            w.wUp = L.matrix(p + "ffn_up.weight", {E, F});
            w.bUp = L.floats(p + "ffn_up.bias", {F});
            w.bDown = L.floats(p + "ffn_down.bias", {E});
            continue;
        }
        // Q, K, V: fused or three tensors (any family, as llama.cpp accepts), biases optional
        if (f.findTensor(p + "attn_qkv.weight")) {
            w.qkv.push_back(L.matrix(p + "attn_qkv.weight", {E, Q + 2 * KV}));
            if (f.findTensor(p + "attn_qkv.bias"))
                w.bqkv = L.floats(p + "attn_qkv.bias", {Q + 2 * KV});
        } else {
            w.qkv.push_back(L.matrix(p + "attn_q.weight", {E, Q}));
            w.qkv.push_back(L.matrix(p + "attn_k.weight", {E, KV}));
            w.qkv.push_back(L.matrix(p + "attn_v.weight", {E, KV}));
        }
        if (w.bqkv.empty() && (f.findTensor(p + "attn_q.bias") || f.findTensor(p + "attn_k.bias") ||
                               f.findTensor(p + "attn_v.bias"))) {
            w.bqkv.assign(Q + 2 * KV, 0.0f);  // an absent one adds nothing
            const std::pair<const char*, uint64_t> parts[] = {
                {"attn_q.bias", Q}, {"attn_k.bias", KV}, {"attn_v.bias", KV}};
            uint64_t at = 0;
            for (const auto& [name, n] : parts) {
                if (f.findTensor(p + name)) {
                    const std::vector<float> b = L.floats(p + name, {n});
                    std::copy(b.begin(), b.end(), w.bqkv.begin() + static_cast<ptrdiff_t>(at));
                }
                at += n;
            }
        }
        if (f.findTensor(p + "attn_output.bias")) w.bo = L.floats(p + "attn_output.bias", {E});
        if (c.arch == Arch::Phi3) {  // gate and up fused: the gate's rows first
            const WeightMatrix up = L.matrix(p + "ffn_up.weight", {E, 2 * F});
            w.wGate = up.rowsView(0, c.nFf);
            w.wUp = up.rowsView(c.nFf, c.nFf);
        } else {
            w.wGate = L.matrix(p + "ffn_gate.weight", {E, F});
            w.wUp = L.matrix(p + "ffn_up.weight", {E, F});
        }
        if (c.postNorms) {
            w.attnPostNormW = L.floats(p + "post_attention_norm.weight", {E});
            w.ffnPostNormW = L.floats(p + "post_ffw_norm.weight", {E});
        }
    }
    return m;
}

size_t Model::parameterCount() const {
    size_t n = posEmbd.size() + outNormW.size() + outNormB.size();
    forEachMatrix([&](const WeightMatrix& w) { n += w.elements(); });
    for (const LayerWeights& w : layers)
        n += w.attnNormW.size() + w.attnNormB.size() + w.bqkv.size() + w.bo.size() +
             w.attnPostNormW.size() + w.ffnNormW.size() + w.ffnNormB.size() + w.bUp.size() +
             w.bDown.size() + w.ffnPostNormW.size();
    return n;
}

size_t Model::weightBytes() const {
    // Every parameter as float32, then each matrix at its stored size instead.
    size_t n = parameterCount() * sizeof(float);
    forEachMatrix([&](const WeightMatrix& w) { n += w.bytes() - w.elements() * sizeof(float); });
    return n;
}

std::string Model::weightTypesSummary() const {
    std::map<std::string, size_t> bytes;
    size_t total = 0;
    forEachMatrix([&](const WeightMatrix& w) {
        if (w.empty()) return;
        bytes[typeName(w.type())] += w.bytes();
        total += w.bytes();
    });
    std::vector<std::pair<size_t, std::string>> order;
    for (const auto& [name, b] : bytes) order.emplace_back(b, name);
    std::sort(order.rbegin(), order.rend());
    std::string s;
    for (const auto& [b, name] : order) {
        if (!s.empty()) s += ", ";
        s += name;
        if (order.size() > 1) {
            const double percent = 100.0 * static_cast<double>(b) / static_cast<double>(total);
            s += ' ';
            s += std::to_string(std::lround(percent));
            s += '%';
        }
    }
    return s;
}

}  // namespace kvscope
