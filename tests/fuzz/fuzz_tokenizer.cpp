// libFuzzer target: the tokenizer on arbitrary bytes (valid UTF-8 or not). Every input must
// encode, every id must be in the vocabulary, and decoding must give the input back, byte for
// byte (the byte-level BPE is lossless); every pre-tokenizer must split it into non-empty pieces
// that follow each other and concatenate to the input. A violation aborts, which libFuzzer
// reports.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz_models.h"
#include "text/pretokenizer.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const kvscope::Tokenizer& tok = kvscope::fuzz::tinyModel().tokenizer;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::vector<int32_t> ids = tok.encode(text);
    for (int32_t id : ids)
        if (id < 0 || static_cast<size_t>(id) >= tok.vocabSize()) std::abort();
    if (tok.decode(ids) != text) std::abort();
    for (const kvscope::PreTokenizer pre : kvscope::kAllPreTokenizers) {
        const char* next = text.data();
        for (std::string_view piece : kvscope::preTokenize(pre, text)) {
            if (piece.empty() || piece.data() != next) std::abort();
            next += piece.size();
        }
        if (next != text.data() + text.size()) std::abort();
    }
    return 0;
}
