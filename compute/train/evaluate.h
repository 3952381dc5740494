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

    // The cache after the longest window: rows it held × bytes per token (a policy's budget).
    size_t kvBytes = 0;
    // Against a reference backend (the full cache, same weights), over the same predictions:
    size_t fullKvBytes = 0;  // the reference's bytes after the longest window
    size_t agreeTop1 = 0;    // predictions whose first-ranked token is the reference's
    double klSum = 0;        // Σ KL(reference || backend), nats
    bool compared = false;
    double top1Agreement() const {
        return tokens ? static_cast<double>(agreeTop1) / static_cast<double>(tokens) : 0;
    }
    double meanKl() const { return tokens ? klSum / static_cast<double>(tokens) : 0; }
};

// Encodes text and predicts every token but the first, in windows of the model's context that
// overlap by one token (each window starts from an empty cache). A model whose tokenizer adds
// BOS (llama files, the llama trainer's) sees each window as BOS + up to n_ctx − 1 tokens, as
// it was trained and as llama.cpp's perplexity runs it; then every token is predicted, the
// first one from BOS alone. Uses and clears the backend's cache. Throws Error if the text has
// fewer than two tokens.
// With a reference (the full cache of a cache policy's drift), the same windows also run there
// and each prediction is compared with the reference's (measureDrift).
TextScore scoreText(Backend& backend, const Tokenizer& tokenizer, std::string_view text,
                    Backend* reference = nullptr);

}  // namespace kvscope
