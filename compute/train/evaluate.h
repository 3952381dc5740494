// Cross-entropy of a model on a text, in bits per byte: the figure that compares models whatever
// their tokenizers.
#pragma once

#include <cstddef>
#include <string_view>

#include "runtime/backend.h"
#include "text/tokenizer.h"

namespace kvscope {

struct TextScore {
    double bits = 0;    // Σ −log2 p(token) over the predicted tokens
    size_t bytes = 0;   // bytes of the predicted tokens
    size_t tokens = 0;  // tokens predicted
    double bitsPerByte() const { return bytes ? bits / static_cast<double>(bytes) : 0; }
};

// Encodes text and predicts every token but the first, in windows of the model's context that
// overlap by one token (each window starts from an empty cache). A model whose tokenizer adds
// BOS (llama files, the llama trainer's) sees each window as BOS + up to n_ctx − 1 tokens, as
// it was trained and as llama.cpp's perplexity runs it; then every token is predicted, the
// first one from BOS alone. Uses and clears the backend's cache. Throws Error if the text has
// fewer than two tokens.
TextScore scoreText(Backend& backend, const Tokenizer& tokenizer, std::string_view text);

}  // namespace kvscope
