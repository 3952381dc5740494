// Model: the configuration, weights (in the file's types) and tokenizer of a GGUF model.
// Families (general.architecture), as llama.cpp runs them:
//   gpt2    learned positions, LayerNorm with biases, fused QKV, GELU MLP
//   llama   RMSNorm, RoPE on adjacent pairs (rope_freqs factors, linear/YaRN scaling), GQA,
//           SwiGLU; optional Q/K/V/output biases (Llama 2/3, TinyLlama, Mistral, SmolLM)
//   qwen2   llama with Q/K/V biases and NEOX RoPE (rotating halves)
//   phi3    fused QKV and fused gate+up, NEOX RoPE over the first rope.dimension_count dims,
//           short/long RoPE factors
//   gemma   embeddings × sqrt(n_embd), GELU-gated MLP, head size from attention.key_length,
//           NEOX RoPE, output tied to the embeddings
//   gemma2  gemma with norms after attention and MLP, attention and final logit soft-capping,
//           a sliding window on alternate layers
// GGUF lists dimension 0 (the contiguous one) first; here every matrix is row-major with the
// outermost dimension first, so a GGUF weight of ne = [n_in, n_out] is (n_out, n_in) here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/rope.h"
#include "model/weights.h"
#include "text/tokenizer.h"

namespace kvscope {

class GgufFile;

enum class Arch { Gpt2, Llama, Qwen2, Phi3, Gemma, Gemma2 };
enum class NormType { Layer, Rms };  // LayerNorm with bias (gpt2) or RMSNorm
// The MLP: GELU(up·x) (gpt2), SiLU(gate·x) ⊙ up·x (llama, qwen2, phi3), GELU(gate·x) ⊙ up·x (gemma)
enum class FfnType { Gelu, SiluGate, GeluGate };

// Bytes of K and V one token adds to a cache: 2 × layers × KV heads × head_dim × bytes per
// element, for the element types of whole bytes (KvCache counts the bytes of its rows, which for
// the block types q8_0 and q4_0 are not a whole number per element).
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
    int headDim = 0;  // attention.key_length, else nEmbd / nHead
    NormType norm = NormType::Layer;
    FfnType ffn = FfnType::Gelu;
    float normEps = 1e-5f;
    RopeConfig rope;            // type None for gpt2 (learned positions)
    float attnScale = 0.0f;     // scores = scale · q·k (1 / sqrt(headDim) unless the family says)
    float attnSoftcap = 0.0f;   // > 0: scores = cap · tanh(scores / cap) before softmax
    float finalSoftcap = 0.0f;  // > 0: logits = cap · tanh(logits / cap)
    float embedScale = 1.0f;    // token embeddings are multiplied by it (gemma: sqrt(n_embd))
    bool postNorms = false;     // gemma2: RMSNorm of the attention and MLP outputs
    int slidingWindow = 0;      // > 0: the window of the layers in swaLayers
    std::vector<uint8_t> swaLayers;  // per layer: 1 = attends to the last slidingWindow tokens only
    bool addBos = false;             // prepend the BOS token to every prompt

    int qkvRows() const { return (nHead + 2 * nHeadKv) * headDim; }
    size_t kvBytesPerToken(size_t bytesPerElement) const {
        return kvscope::kvBytesPerToken(nLayer, nHeadKv, headDim, bytesPerElement);
    }
    // Which KV head query head h reads: heads are grouped in order, nHead / nHeadKv per group.
    int kvHeadOf(int h) const { return h / (nHead / nHeadKv); }
    // How many of the latest positions layer l attends to; 0 = all of them.
    int windowOf(int layer) const {
        return slidingWindow > 0 && static_cast<size_t>(layer) < swaLayers.size() &&
                       swaLayers[static_cast<size_t>(layer)]
                   ? slidingWindow
                   : 0;
    }
    // The first position a query at position pos attends to in layer l.
    int firstAttended(int layer, int pos) const {
        const int w = windowOf(layer);
        return w > 0 && pos + 1 > w ? pos + 1 - w : 0;
    }
    // "llama, RoPE (adjacent pairs), RMSNorm, SwiGLU, GQA 32/8": the family's traits in a line.
    std::string familyText() const;
};

// Matrices stay in the file's type (WeightMatrix); norm weights and biases are small and float32.
struct LayerWeights {
    std::vector<float> attnNormW, attnNormB;  // (n_embd); B only for LayerNorm
    // Q, K and V rows stacked in this order: (n_head*hd + 2*n_head_kv*hd, n_embd) in all: one
    // fused tensor (gpt2, phi3) or three that may differ in type.
    std::vector<WeightMatrix> qkv;
    std::vector<float> bqkv;                // (qkv rows) or empty: gpt2, qwen2, some llama
    WeightMatrix wo;                        // (n_embd, n_head*hd)
    std::vector<float> bo;                  // (n_embd) or empty
    std::vector<float> attnPostNormW;       // (n_embd) gemma2 only
    std::vector<float> ffnNormW, ffnNormB;  // (n_embd)
    WeightMatrix wUp;                       // (n_ff, n_embd)
    std::vector<float> bUp;                 // (n_ff) gpt2 only
    WeightMatrix wGate;                     // (n_ff, n_embd) gated MLPs; phi3: rows of ffn_up
    WeightMatrix wDown;                     // (n_embd, n_ff)
    std::vector<float> bDown;               // (n_embd) gpt2 only
    std::vector<float> ffnPostNormW;        // (n_embd) gemma2 only
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
