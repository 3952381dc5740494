// Gpt2Trainer: trains a small GPT-2 on the CPU: forward pass with the activations kept, the
// backward pass written out layer by layer (checked against finite differences in the tests),
// gradient clipping and AdamW. Its model is the app's `gpt2` architecture: toGguf() writes a file
// the app's loader reads, and the app's CpuBackend computes the same logits from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/trainer.h"

namespace kvscope {

struct Gpt2Shape {
    int nLayer = 4;
    int nHead = 4;
    int nEmbd = 128;
    int nCtx = 256;
    int nVocab = 1024;
};

class Gpt2Trainer : public Trainer {
  public:
    // Weights as GPT-2 initialises them: N(0, 0.02), residual projections scaled by
    // 1/sqrt(2 n_layer), norm weights 1, biases 0. `initStd` replaces 0.02 (tests use larger).
    Gpt2Trainer(const Gpt2Shape& shape, uint64_t seed, float initStd = 0.02f,
                ThreadPool& pool = ThreadPool::shared());

    const Gpt2Shape& shape() const { return shape_; }

    float forward(const int32_t* inputs, const int32_t* targets, int B, int T) override;
    void backward() override;
    // The model as a gpt2 GGUF file (float32, tied output) with the vocabulary's tokenizer.
    GgufWriter toGguf(const BpeVocabulary& vocab, const std::string& name) const override;

  private:
    Gpt2Shape shape_;

    // Activations of the last forward (B, T as given then).
    int B_ = 0, T_ = 0;
    std::vector<int32_t> inputs_, targets_;
    std::vector<float> encoded_;                  // (B, T, C)
    std::vector<float> ln1_, ln1Mean_, ln1Rstd_;  // (L, B, T, C), (L, B, T) ×2
    std::vector<float> qkv_;                      // (L, B, T, 3C)
    std::vector<float> att_;                      // (L, B, NH, T, T) softmax weights
    std::vector<float> atty_;                     // (L, B, T, C)
    std::vector<float> residual2_;                // (L, B, T, C)
    std::vector<float> ln2_, ln2Mean_, ln2Rstd_;  // (L, B, T, C), (L, B, T) ×2
    std::vector<float> fch_, fchGelu_;            // (L, B, T, 4C) ×2
    std::vector<float> residual3_;                // (L, B, T, C)
    std::vector<float> lnf_, lnfMean_, lnfRstd_;  // (B, T, C), (B, T) ×2
};

}  // namespace kvscope
