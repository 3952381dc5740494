// Model loading: metadata to ModelConfig, tensors to float32 with their shapes checked.
#include "model/model.h"

#include <filesystem>

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

class Loader {
  public:
    explicit Loader(const GgufFile& f) : f_(f) {}

    // The tensor `name` as float32; its ne must equal `ne` (ggml order).
    std::vector<float> tensor(const std::string& name, std::vector<uint64_t> ne) const {
        const GgufTensorInfo* t = f_.findTensor(name);
        if (!t) throw Error(f_.path() + ": tensor '" + name + "' is missing");
        if (t->ne != ne)
            throw Error(f_.path() + ": tensor '" + name + "' has shape " + shapeText(t->ne) +
                        ", expected " + shapeText(ne) + " from the metadata");
        try {
            return toFloat(t->type, f_.tensorData(*t), t->elements(), name);
        } catch (const Error& e) {
            throw Error(f_.path() + ": loading " + name + ": " + e.what());
        }
    }
    std::vector<float> optional(const std::string& name, std::vector<uint64_t> ne) const {
        return f_.findTensor(name) ? tensor(name, std::move(ne)) : std::vector<float>{};
    }

  private:
    const GgufFile& f_;
};

void append(std::vector<float>& dst, const std::vector<float>& src) {
    dst.insert(dst.end(), src.begin(), src.end());
}

}  // namespace

Model Model::load(const std::string& path) {
    return fromGguf(GgufFile::open(path));
}

Model Model::fromGguf(const GgufFile& f) {
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
    c.nCtx = hyper(f, arch, "context_length", 1 << 20);
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

    Model m{std::move(tok), c, f.path(), {}, {}, {}, {}, {}, {}};
    const Loader L(f);
    const auto E = static_cast<uint64_t>(c.nEmbd), V = static_cast<uint64_t>(c.nVocab),
               F = static_cast<uint64_t>(c.nFf), Q = static_cast<uint64_t>(c.nHead * c.headDim),
               KV = static_cast<uint64_t>(c.nHeadKv * c.headDim);
    const bool gpt2 = c.arch == Arch::Gpt2;

    m.tokEmbd = L.tensor("token_embd.weight", {E, V});
    if (gpt2) m.posEmbd = L.tensor("position_embd.weight", {E, static_cast<uint64_t>(c.nCtx)});
    m.outNormW = L.tensor("output_norm.weight", {E});
    if (gpt2) m.outNormB = L.tensor("output_norm.bias", {E});
    m.output = L.optional("output.weight", {E, V});

    m.layers.resize(static_cast<size_t>(c.nLayer));
    for (int i = 0; i < c.nLayer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeights& w = m.layers[static_cast<size_t>(i)];
        w.attnNormW = L.tensor(p + "attn_norm.weight", {E});
        w.ffnNormW = L.tensor(p + "ffn_norm.weight", {E});
        w.wo = L.tensor(p + "attn_output.weight", {Q, E});
        w.wUp = L.tensor(p + "ffn_up.weight", {E, F});
        w.wDown = L.tensor(p + "ffn_down.weight", {F, E});
        if (gpt2) {
            w.attnNormB = L.tensor(p + "attn_norm.bias", {E});
            w.ffnNormB = L.tensor(p + "ffn_norm.bias", {E});
            w.wqkv = L.tensor(p + "attn_qkv.weight", {E, Q + 2 * KV});
            w.bqkv = L.tensor(p + "attn_qkv.bias", {Q + 2 * KV});
            w.bo = L.tensor(p + "attn_output.bias", {E});
            w.bUp = L.tensor(p + "ffn_up.bias", {F});
            w.bDown = L.tensor(p + "ffn_down.bias", {E});
        } else {
            w.wqkv = L.tensor(p + "attn_q.weight", {E, Q});
            append(w.wqkv, L.tensor(p + "attn_k.weight", {E, KV}));
            append(w.wqkv, L.tensor(p + "attn_v.weight", {E, KV}));
            w.wGate = L.tensor(p + "ffn_gate.weight", {E, F});
        }
    }
    return m;
}

size_t Model::parameterCount() const {
    size_t n = tokEmbd.size() + posEmbd.size() + outNormW.size() + outNormB.size() + output.size();
    for (const LayerWeights& w : layers)
        n += w.attnNormW.size() + w.attnNormB.size() + w.wqkv.size() + w.bqkv.size() + w.wo.size() +
             w.bo.size() + w.ffnNormW.size() + w.ffnNormB.size() + w.wUp.size() + w.bUp.size() +
             w.wGate.size() + w.wDown.size() + w.bDown.size();
    return n;
}

}  // namespace kvscope
