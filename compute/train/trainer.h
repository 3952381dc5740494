// Trainer: what the small-model trainers share: the weights as one flat vector of named tensors,
// their gradients, AdamW's moments, clipping and the update. Gpt2Trainer and LlamaTrainer add
// their forward and backward passes and how their model is written as GGUF.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "gguf/gguf.h"
#include "train/bpe_trainer.h"

namespace kvscope {

struct AdamW {
    float lr = 1e-3f;
    float beta1 = 0.9f;
    float beta2 = 0.95f;
    float eps = 1e-8f;
    float weightDecay = 0.1f;  // on the matrices only, not on biases and norm weights
};

class Trainer {
  public:
    explicit Trainer(ThreadPool& pool) : pool_(pool) {}
    virtual ~Trainer() = default;
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;

    std::vector<float>& parameters() { return params_; }  // all weights, flat
    const std::vector<float>& gradients() const { return grads_; }
    // AdamW's first and second moments, one per parameter (a checkpoint saves and restores them).
    std::vector<float>& firstMoments() { return m_; }
    std::vector<float>& secondMoments() { return v_; }

    // Mean cross-entropy (nats) of predicting targets (B, T) from inputs (B, T); keeps the
    // activations for backward(). Preconditions: T <= n_ctx, ids < n_vocab.
    virtual float forward(const int32_t* inputs, const int32_t* targets, int B, int T) = 0;
    const std::vector<float>& logits() const { return logits_; }  // (B, T, V) of the last forward
    // Adds d(mean loss)/d(parameters) of the last forward to gradients().
    virtual void backward() = 0;
    // The model as a GGUF file (float32) with the vocabulary's tokenizer.
    virtual GgufWriter toGguf(const BpeVocabulary& vocab, const std::string& name) const = 0;

    // Dropout for the following forward passes (0: none, as for evaluation): LlamaTrainer zeroes
    // each element of every residual branch's output (attention, MLP) with probability p and
    // scales the rest by 1 / (1 - p); the masks are a function of (seed, layer, element), so a
    // pass is reproducible and a resumed run draws the same masks. Other trainers ignore it.
    virtual void setDropout(float p, uint64_t seed) {
        (void)p;
        (void)seed;
    }

    void zeroGrad();
    // Scales the gradients so their global L2 norm is at most maxNorm; returns the norm before.
    float clipGradients(float maxNorm);
    // One AdamW update; step counts from 1.
    void update(const AdamW& opt, int step);

  protected:
    struct Tensor {
        std::string name;  // GGUF name, "{l}" replaced by the layer
        size_t offset, size;
        bool perLayer, decay;
    };
    // Lays out the tensors in table order (size per layer when perLayer) and zeroes everything.
    void layOut(const std::vector<Tensor>& table, int nLayer);
    // Fills tensor t (all its layers) with N(mean, sd), or with mean when sd is 0.
    template <typename Rng>
    void fill(int t, float mean, float sd, Rng& rng);
    size_t count(int t) const;  // elements of tensor t over all its layers
    float* p(int t, int layer = 0) { return params_.data() + at(t, layer); }
    float* g(int t, int layer = 0) { return grads_.data() + at(t, layer); }
    const float* p(int t, int layer = 0) const { return params_.data() + at(t, layer); }
    size_t at(int t, int layer) const;
    // Adds floats [begin, begin + n) of tensor t's layer to w as F32 of GGUF shape ne.
    void addSlice(GgufWriter& w, const std::string& name, int t, int layer, size_t begin, size_t n,
                  std::vector<uint64_t> ne) const;
    // name with "{l}" replaced by the layer
    static std::string layerName(std::string name, int layer);

    ThreadPool& pool_;
    int nLayer_ = 0;
    std::vector<Tensor> tensors_;
    std::vector<float> params_, grads_, m_, v_;
    std::vector<float> logits_, probs_;  // (B, T, V) ×2 of the last forward
};

template <typename Rng>
void Trainer::fill(int t, float mean, float sd, Rng& rng) {
    std::normal_distribution<float> d(mean, sd);
    const Tensor& x = tensors_[static_cast<size_t>(t)];
    for (size_t i = 0; i < count(t); ++i) params_[x.offset + i] = sd > 0 ? d(rng) : mean;
}

}  // namespace kvscope
