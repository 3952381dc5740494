// Random-weight models of any gpt2 or llama shape, written as GGUF through GgufWriter.
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
    bool tiedOutput = true;                   // false: write a separate output.weight
};

// A GGUF image of a model with normally distributed weights (norm weights near 1).
GgufWriter randomModel(const RandomModelSpec& spec);

}  // namespace kvscope
