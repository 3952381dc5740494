// Model: the configuration, weights (in the file's types) and tokenizer of a GGUF model.
// Architectures: "gpt2" (learned positions, LayerNorm, fused QKV, GELU tanh) and "llama"
// (RMSNorm, RoPE on adjacent pairs, grouped-query attention, SwiGLU).
// GGUF lists dimension 0 (the contiguous one) first; here every matrix is row-major with the
// outermost dimension first, so a GGUF weight of ne = [n_in, n_out] is (n_out, n_in) here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/weights.h"
#include "text/tokenizer.h"

namespace kvscope {

class GgufFile;

enum class Arch { Gpt2, Llama };

// Bytes of K and V one token adds to a cache: 2 × layers × KV heads × head_dim × bytes per
// element. The one place the formula is written (ModelConfig::kvBytesPerToken and KvCache use it).
inline size_t kvBytesPerToken(int nLayer, int nHeadKv, int headDim, size_t bytesPerElement) {
    return 2 * static_cast<size_t>(nLayer) * static_cast<size_t>(nHeadKv) *
           static_cast<size_t>(headDim) * bytesPerElement;
}

struct ModelConfig {
    Arch arch = Arch::Gpt2;
    std::string archName;  // as in general.architecture
    std::string name;      // general.name, or the file name
    int nLayer = 0;
    int nHead = 0;
    int nHeadKv = 0;  // == nHead for plain multi-head attention
    int nEmbd = 0;
    int nFf = 0;
    int nCtx = 0;       // the context this load runs with: at most nCtxTrain
    int nCtxTrain = 0;  // <arch>.context_length, what the model was trained for
    int nVocab = 0;
    int headDim = 0;  // nEmbd / nHead
    float normEps = 1e-5f;
    float ropeFreqBase = 10000.0f;  // llama only
    bool addBos = false;            // prepend the BOS token to every prompt

    int qkvRows() const { return (nHead + 2 * nHeadKv) * headDim; }
    size_t kvBytesPerToken(size_t bytesPerElement) const {
        return kvscope::kvBytesPerToken(nLayer, nHeadKv, headDim, bytesPerElement);
    }
    // Which KV head query head h reads: heads are grouped in order, nHead / nHeadKv per group.
    int kvHeadOf(int h) const { return h / (nHead / nHeadKv); }
};

// Matrices stay in the file's type (WeightMatrix); norm weights and biases are small and float32.
struct LayerWeights {
    std::vector<float> attnNormW, attnNormB;  // (n_embd); B only for gpt2
    // Q, K and V rows stacked in this order: (n_head*hd + 2*n_head_kv*hd, n_embd) in all. gpt2
    // stores them fused (one matrix); llama in three tensors that may differ in type.
    std::vector<WeightMatrix> qkv;
    std::vector<float> bqkv;                // (qkv rows) gpt2 only
    WeightMatrix wo;                        // (n_embd, n_head*hd)
    std::vector<float> bo;                  // (n_embd) gpt2 only
    std::vector<float> ffnNormW, ffnNormB;  // (n_embd)
    WeightMatrix wUp;                       // (n_ff, n_embd)
    std::vector<float> bUp;                 // (n_ff) gpt2 only
    WeightMatrix wGate;                     // (n_ff, n_embd) llama only
    WeightMatrix wDown;                     // (n_embd, n_ff)
    std::vector<float> bDown;               // (n_embd) gpt2 only
};

struct Model {
    Tokenizer tokenizer;
    ModelConfig config;
    std::string path;
    std::shared_ptr<const GgufFile> file;  // the mapped file the weight views point into
    WeightMatrix tokEmbd;                  // (n_vocab, n_embd)
    std::vector<float> posEmbd;            // (n_ctx, n_embd) gpt2 only
    std::vector<LayerWeights> layers;
    std::vector<float> outNormW, outNormB;  // (n_embd); B gpt2 only
    WeightMatrix output;                    // (n_vocab, n_embd); empty: tied to tokEmbd

    // Loads and checks every tensor against the metadata. Throws Error naming the file and the
    // tensor or key at fault ("loading blk.3.attn_qkv.weight: ..."). The matrices stay views into
    // the mapped file: loading reads the header, not the weights.
    //   context: the context to run with (nCtx); 0 = the smaller of the model's and
    //   kDefaultContext. More than the model's context_length is an Error.
    static constexpr int kDefaultContext = 4096;
    static Model load(const std::string& path, int context = 0);
    static Model fromGguf(GgufFile file, int context = 0);

    // Calls f(matrix) for every weight matrix (an absent one too: empty()).
    template <typename F>
    void forEachMatrix(F f) const {
        f(tokEmbd);
        f(output);
        for (const LayerWeights& w : layers) {
            for (const WeightMatrix& part : w.qkv) f(part);
            f(w.wo);
            f(w.wUp);
            f(w.wGate);
            f(w.wDown);
        }
    }

    const WeightMatrix& outputWeights() const { return output.empty() ? tokEmbd : output; }
    size_t parameterCount() const;
    // Bytes the weights take as stored (quantized matrices at their block size).
    size_t weightBytes() const;
    // The tensor types of the matrices, most bytes first ("Q4_K 71%, Q6_K 29%").
    std::string weightTypesSummary() const;
};

}  // namespace kvscope
