// Learns a byte-level BPE vocabulary from text, as GPT-2's tokenizer was made: the text is split
// by the GPT-2 pre-tokenizer, identical pieces are counted once, and the most frequent adjacent
// pair of symbols is merged again and again.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

#include "text/tokenizer.h"

namespace kvscope {

// A learned vocabulary: tokens in id order (in the byte-to-unicode alphabet) and merges in rank
// order, as tokenizer.ggml.tokens and tokenizer.ggml.merges store them. Or another model's
// tokenizer, copied as its tokenizer.* keys (fromGguf).
struct BpeVocabulary {
    std::vector<std::string> tokens;
    std::vector<std::string> merges;
    int32_t endOfText = 0;               // <|endoftext|>: EOS, and BOS unless beginOfText
    std::optional<int32_t> beginOfText;  // <|begin_of_text|>, a token of its own (llama)
    bool addBos = false;                 // tokenizer.ggml.add_bos_token: prompts start with BOS
    std::vector<std::pair<std::string, GgufValue>> copied;  // tokenizer.* of another model

    // Appends <|begin_of_text|> as the last token, the BOS that prompts start with.
    void addBeginOfText();
    // Makes prompts start with BOS (tokenizer.ggml.add_bos_token), the end-of-text token
    // doubling as BOS where the vocabulary has none; the ids stay as they are.
    void startPromptsWithBos();
    Tokenizer tokenizer() const;
    size_t size() const { return tokenizer().vocabSize(); }
    int32_t bos() const;  // the token a training window starts with
    // Writes tokenizer.ggml.{model,pre,tokens,merges,bos_token_id,eos_token_id} (and
    // token_type, add_bos_token with a BOS of its own), or the copied keys as they were.
    void writeTo(GgufWriter& w) const;
    // Every tokenizer.* key of file, copied (any tokenizer the app reads). Throws Error naming
    // the file if it has none or they do not make a tokenizer.
    static BpeVocabulary fromGguf(const GgufFile& file);
};

// At most vocabSize tokens: the 256 byte symbols, up to vocabSize - 257 learned merges, and
// <|endoftext|> last. Ties between equally frequent pairs go to the pair with the smaller ids, so
// the result depends on the text alone. Stops early if no pair occurs twice.
// Precondition: vocabSize >= 257.
BpeVocabulary trainBpe(std::string_view text, int vocabSize);

}  // namespace kvscope
