// Model loading: metadata to ModelConfig, tensors to float32 with their shapes checked.
#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

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

Model Model::fromGguf(GgufFile file, int context) {
    auto shared = std::make_shared<const GgufFile>(std::move(file));
    const GgufFile& f = *shared;
    const std::string arch = f.requireString("general.architecture");
    ModelConfig c;
    c.archName = arch;
    if (arch == "gpt2") {
        c.arch = Arch::Gpt2;
    } else if (arch == "llama") {
        c.arch = Arch::Llama;
    } else {
        throw Error(f.path() + ": architecture '" + arch +
                    "' is not supported; KVScope runs 'gpt2' and 'llama'");
    }
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
    if (c.nEmbd % c.nHead != 0)
        throw Error(f.path() + ": embedding_length " + std::to_string(c.nEmbd) +
                    " is not a multiple of head_count " + std::to_string(c.nHead));
    if (c.nHead % c.nHeadKv != 0)
        throw Error(f.path() + ": head_count " + std::to_string(c.nHead) +
                    " is not a multiple of head_count_kv " + std::to_string(c.nHeadKv));
    c.headDim = c.nEmbd / c.nHead;
    if (c.arch == Arch::Gpt2) {
        c.normEps = static_cast<float>(f.requireFloat("gpt2.attention.layer_norm_epsilon"));
        if (c.nHeadKv != c.nHead)
            throw Error(f.path() + ": gpt2 models have head_count_kv == head_count");
    } else {
        c.normEps = static_cast<float>(f.requireFloat("llama.attention.layer_norm_rms_epsilon"));
        c.ropeFreqBase = static_cast<float>(f.getFloat("llama.rope.freq_base").value_or(10000.0));
        if (c.headDim % 2 != 0)
            throw Error(f.path() + ": RoPE needs an even head dimension, found " +
                        std::to_string(c.headDim));
    }
    if (const GgufValue* v = f.find("tokenizer.ggml.add_bos_token"); v && v->asUint())
        c.addBos = *v->asUint() != 0;

    Tokenizer tok = Tokenizer::fromGguf(f);
    c.nVocab = static_cast<int>(tok.vocabSize());
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
    const bool gpt2 = c.arch == Arch::Gpt2;

    m.tokEmbd = L.matrix("token_embd.weight", {E, V});
    if (gpt2) {  // positions beyond the context are never used: keep only those within it
        m.posEmbd = L.floats("position_embd.weight", {E, static_cast<uint64_t>(c.nCtxTrain)});
        m.posEmbd.resize(static_cast<size_t>(c.nCtx) * c.nEmbd);
    }
    m.outNormW = L.floats("output_norm.weight", {E});
    if (gpt2) m.outNormB = L.floats("output_norm.bias", {E});
    m.output = L.optionalMatrix("output.weight", {E, V});

    m.layers.resize(static_cast<size_t>(c.nLayer));
    for (int i = 0; i < c.nLayer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeights& w = m.layers[static_cast<size_t>(i)];
        w.attnNormW = L.floats(p + "attn_norm.weight", {E});
        w.ffnNormW = L.floats(p + "ffn_norm.weight", {E});
        w.wo = L.matrix(p + "attn_output.weight", {Q, E});
        w.wUp = L.matrix(p + "ffn_up.weight", {E, F});
        w.wDown = L.matrix(p + "ffn_down.weight", {F, E});
        if (gpt2) {
            w.attnNormB = L.floats(p + "attn_norm.bias", {E});
            w.ffnNormB = L.floats(p + "ffn_norm.bias", {E});
            w.qkv.push_back(L.matrix(p + "attn_qkv.weight", {E, Q + 2 * KV}));
            w.bqkv = L.floats(p + "attn_qkv.bias", {Q + 2 * KV});
            w.bo = L.floats(p + "attn_output.bias", {E});
            w.bUp = L.floats(p + "ffn_up.bias", {F});
            w.bDown = L.floats(p + "ffn_down.bias", {E});
        } else {
            w.qkv.push_back(L.matrix(p + "attn_q.weight", {E, Q}));
            w.qkv.push_back(L.matrix(p + "attn_k.weight", {E, KV}));
            w.qkv.push_back(L.matrix(p + "attn_v.weight", {E, KV}));
            w.wGate = L.matrix(p + "ffn_gate.weight", {E, F});
        }
    }
    return m;
}

size_t Model::parameterCount() const {
    size_t n = posEmbd.size() + outNormW.size() + outNormB.size();
    forEachMatrix([&](const WeightMatrix& w) { n += w.elements(); });
    for (const LayerWeights& w : layers)
        n += w.attnNormW.size() + w.attnNormB.size() + w.bqkv.size() + w.bo.size() +
             w.ffnNormW.size() + w.ffnNormB.size() + w.bUp.size() + w.bDown.size();
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
