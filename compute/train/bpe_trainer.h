// Learns a byte-level BPE vocabulary from text, as GPT-2's tokenizer was made: the text is split
// by the GPT-2 pre-tokenizer, identical pieces are counted once, and the most frequent adjacent
// pair of symbols is merged again and again.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

#include "text/tokenizer.h"

namespace kvscope {

// A learned vocabulary: tokens in id order (in the byte-to-unicode alphabet) and merges in rank
// order, as tokenizer.ggml.tokens and tokenizer.ggml.merges store them.
struct BpeVocabulary {
    std::vector<std::string> tokens;
    std::vector<std::string> merges;
    int32_t endOfText = 0;  // <|endoftext|>, the last token: BOS and EOS

    Tokenizer tokenizer() const { return Tokenizer(tokens, merges, endOfText, endOfText); }
    // Writes tokenizer.ggml.{model,tokens,merges,bos_token_id,eos_token_id}.
    void writeTo(GgufWriter& w) const;
};

// At most vocabSize tokens: the 256 byte symbols, up to vocabSize - 257 learned merges, and
// <|endoftext|> last. Ties between equally frequent pairs go to the pair with the smaller ids, so
// the result depends on the text alone. Stops early if no pair occurs twice.
// Precondition: vocabSize >= 257.
BpeVocabulary trainBpe(std::string_view text, int vocabSize);

}  // namespace kvscope
