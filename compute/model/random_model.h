// Random-weight models of any family's shape (gpt2, llama, qwen2, phi3, gemma, gemma2), written
// as GGUF through GgufWriter with the tensor names and metadata llama.cpp's converters write.
// Tests use small ones as fixtures; the benchmark uses a GPT-2-124M-shaped one. Their tokenizer
// has the 256 byte symbols, merges of lower-case letter pairs, and <|endoftext|> as the last token.
#pragma once

#include <cstdint>
#include <string>

#include "gguf/gguf.h"
#include "model/model.h"

namespace kvscope {

struct RandomModelSpec {
    Arch arch = Arch::Gpt2;
    int nLayer = 2;
    int nHead = 4;
    int nHeadKv = 4;  // llama: fewer than nHead for grouped-query attention
    int nEmbd = 32;
    int nFf = 128;
    int nCtx = 64;
    int nVocab = 300;  // at least 257
    float weightStd = 0.2f;
    uint64_t seed = 1;
    TensorType weightType = TensorType::F32;  // of the 2-D matrices: any supported weight type
    bool tiedOutput = true;                   // false: write a separate output.weight (not gemma)
    int headDim = 0;  // > 0: attention.key_length/value_length (gemma's 256 ≠ E/H)
    int nRot = 0;     // > 0: rope.dimension_count below the head size (partial rotary)
    float ropeFreqBase = 10000.0f;
    std::string ropeScaling;  // "", "linear" or "yarn" (with ropeScaleFactor, nCtxOrig)
    float ropeScaleFactor = 1.0f;
    int ropeOrigContext = 0;     // rope.scaling.original_context_length, 0 = not written
    bool ropeFreqs = false;      // llama: a rope_freqs.weight tensor (Llama 3.1's factors)
    bool qkvBias = false;        // llama: Q/K/V biases (qwen2 always writes them)
    bool fusedQkv = false;       // llama/qwen2: one attn_qkv tensor (phi3 always fuses)
    int slidingWindow = 0;       // gemma2: attention.sliding_window (0 = not written)
    float attnSoftcap = 50.0f;   // gemma2's attn_logit_softcapping
    float finalSoftcap = 30.0f;  // gemma2's final_logit_softcapping
};

// The general.architecture name of a family.
const char* archName(Arch arch);

// A GGUF image of a model with normally distributed weights (norm weights near 1).
GgufWriter randomModel(const RandomModelSpec& spec);

}  // namespace kvscope
