// libFuzzer target: the tokenizers on arbitrary bytes (valid UTF-8 or not), with and without
// parsing special tokens, and every pre-tokenizer. Every input must encode and every id must be
// in the vocabulary. The byte-level BPE must give the input back as llama.cpp reads it (invalid
// bytes as U+FFFD); the SentencePiece one byte for byte, up to
// "▁" read as a space, when no special token's text is in the input (a special decodes as its
// text but the space put after it does not go away). A violation aborts, which libFuzzer
// reports.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_models.h"
#include "text/tokenizer.h"

namespace {

// A small SentencePiece vocabulary: specials, the 256 byte tokens, pieces with scores (some
// tied), and specials whose texts overlap.
kvscope::Tokenizer makeSpm() {
    using kvscope::TokenType;
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<float> scores = {0, 0, 0};
    std::vector<TokenType> types = {TokenType::Unknown, TokenType::Control, TokenType::Control};
    const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
        tokens.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
        scores.push_back(0);
        types.push_back(TokenType::Byte);
    }
    const std::pair<const char*, float> pieces[] = {
        {"▁", -10},      {"a", -10},        {"b", -10}, {"e", -10},   {"h", -10}, {"l", -10},
        {"ab", -3},      {"ba", -3},        {"▁a", -2}, {"▁▁", -5},   {"he", -1}, {"ll", -1},
        {"hell", -0.5f}, {"▁hell", -0.25f}, {"é", -4},  {"日本", -1}, {"日", -6}, {"本", -6}};
    for (const auto& [text, score] : pieces) {
        tokens.push_back(text);
        scores.push_back(score);
        types.push_back(TokenType::Normal);
    }
    const std::pair<const char*, TokenType> specials[] = {{"<start_of_turn>", TokenType::Control},
                                                          {"<end_of_turn>", TokenType::Control},
                                                          {"<a>", TokenType::Control},
                                                          {"<a><b>", TokenType::Control},
                                                          {"b>", TokenType::UserDefined}};
    for (const auto& [text, type] : specials) {
        tokens.push_back(text);
        scores.push_back(0);
        types.push_back(type);
    }
    kvscope::TokenizerOptions options;
    options.types = types;
    options.bos = 1;
    options.eos = 2;
    options.unk = 0;
    return kvscope::Tokenizer::sentencePiece(tokens, scores, options);
}

std::string markersToSpaces(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
        const bool marker = s.substr(i, 3) == "\xE2\x96\x81";
        out += marker ? ' ' : s[i];
        i += marker ? 3 : 1;
    }
    return out;
}

void checkIds(const kvscope::Tokenizer& tok, const std::vector<int32_t>& ids) {
    for (int32_t id : ids)
        if (id < 0 || static_cast<size_t>(id) >= tok.vocabSize()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const kvscope::Tokenizer& bpe = kvscope::fuzz::tinyModel().tokenizer;
    static const kvscope::Tokenizer spm = makeSpm();
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    // byte-level BPE gives back the bytes llama.cpp encodes: the text with each invalid byte as
    // U+FFFD and overlong forms shortest (pieces never cut a character, so per piece = whole)
    const std::string canonical = kvscope::llamaCppUtf8(text);
    const std::string_view expected = canonical.empty() ? text : std::string_view(canonical);
    for (const bool parseSpecial : {true, false}) {
        const std::vector<int32_t> ids = bpe.encode(text, parseSpecial);
        checkIds(bpe, ids);
        if (bpe.decode(ids) != expected) std::abort();
    }
    // every pre-tokenizer tiles the text with non-empty pieces, in order
    for (const kvscope::PreTokenizer pre : kvscope::kAllPreTokenizers) {
        const char* next = text.data();
        for (std::string_view piece : kvscope::preTokenize(pre, text)) {
            if (piece.empty() || piece.data() != next) std::abort();
            next += piece.size();
        }
        if (next != text.data() + text.size()) std::abort();
    }

    bool hasSpecial = false;
    for (const char* special :
         {"<unk>", "<s>", "</s>", "<start_of_turn>", "<end_of_turn>", "<a>", "b>"})
        hasSpecial = hasSpecial || text.find(special) != std::string_view::npos;
    for (const bool parseSpecial : {true, false}) {
        const std::vector<int32_t> ids = spm.encode(text, parseSpecial);
        checkIds(spm, ids);
        if (!hasSpecial && markersToSpaces(spm.decode(ids)) != markersToSpaces(text)) std::abort();
    }
    return 0;
}
