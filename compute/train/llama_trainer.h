// LlamaTrainer: trains a small Llama-style model on the CPU: RMSNorm, RoPE on adjacent pairs
// (model/rope.h, the rotation the app's llama family decodes with), grouped-query attention,
// SwiGLU MLP, tied or separate output. Backward written out layer by layer as Gpt2Trainer's;
// toGguf() writes a `llama` file the app's loader reads and its CpuBackend computes the same
// logits from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/rope.h"
#include "train/trainer.h"

namespace kvscope {

struct LlamaShape {
    int nLayer = 6;
    int nHead = 8;    // query heads
    int nHeadKv = 2;  // K/V heads: query head h reads K/V head h / (nHead / nHeadKv)
    int nEmbd = 192;
    int nFf = 512;  // SwiGLU hidden size
    int nCtx = 256;
    int nVocab = 2048;
    bool tieOutput = false;  // output head = token embeddings (no output.weight)
    float ropeBase = 10000.0f;
    float normEps = 1e-5f;

    int headDim() const { return nEmbd / nHead; }
    // SwiGLU's usual size for a width: 8/3 of it, rounded up to a multiple of 32.
    static int defaultFf(int nEmbd) { return (8 * nEmbd / 3 + 31) / 32 * 32; }
};

class LlamaTrainer : public Trainer {
  public:
    // Weights N(0, initStd), the residual projections (attn_output, ffn_down) scaled by
    // 1/sqrt(2 n_layer), norm weights 1 (tests use a larger initStd, and then randomise the
    // norm weights too). Preconditions: nEmbd % nHead == 0, nHead % nHeadKv == 0, even head size.
    LlamaTrainer(const LlamaShape& shape, uint64_t seed, float initStd = 0.02f,
                 ThreadPool& pool = ThreadPool::shared());

    const LlamaShape& shape() const { return shape_; }
    const RopeConfig& rope() const { return rope_; }

    float forward(const int32_t* inputs, const int32_t* targets, int B, int T) override;
    void backward() override;
    void setDropout(float p, uint64_t seed) override;
    // The last forward pass's dropout multipliers (L, 2, N, C): 0 or 1 / (1 - p); for tests.
    const std::vector<float>& dropoutKeep() const { return keep_; }
    // general.architecture = llama: llama.* keys, separate attn_q/k/v and ffn_gate/up tensors,
    // output.weight unless tied, the vocabulary's tokenizer (with its BOS).
    GgufWriter toGguf(const BpeVocabulary& vocab, const std::string& name) const override;

  private:
    LlamaShape shape_;
    RopeConfig rope_;
    std::vector<float> ropeCos_, ropeSin_;  // (n_ctx, head_dim/2) ×2

    // Activations of the last forward (B, T as given then); N = B·T, R = (NH + 2 NKV)·hd.
    int B_ = 0, T_ = 0;
    std::vector<int32_t> inputs_, targets_;
    std::vector<float> resid_;        // (L + 1, N, C): the stream into each layer, then out
    std::vector<float> res2_;         // (L, N, C): after attention
    std::vector<float> ln1_, rstd1_;  // (L, N, C), (L, N)
    std::vector<float> qkv_;          // (L, N, R), queries and keys rotated
    std::vector<float> att_;          // (L, B, NH, T, T) softmax weights
    std::vector<float> atty_;         // (L, N, C)
    std::vector<float> ln2_, rstd2_;  // (L, N, C), (L, N)
    std::vector<float> gu_;           // (L, N, 2F): gate, then up
    std::vector<float> swi_;          // (L, N, F)
    std::vector<float> lnf_, rstdf_;  // (N, C), (N)
    float dropout_ = 0;
    uint64_t dropoutSeed_ = 0;
    bool masked_ = false;      // the last forward pass applied keep_
    std::vector<float> keep_;  // (L, 2, N, C): each branch's 0 or 1 / (1 - p), when dropout_ > 0
};

}  // namespace kvscope
