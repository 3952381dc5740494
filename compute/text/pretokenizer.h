// Pre-tokenizers: how byte-level BPE (tokenizer.ggml.model = "gpt2") splits text into pieces
// before merges, chosen by the file's tokenizer.ggml.pre. Each is a hand-written matcher for the
// regular expressions llama.cpp's llama-vocab lists for that name (the reference for tokens),
// applied one after another on the pieces of the previous one as llama.cpp does, with its
// character classes (unicode_regex_split: \p{Lu}, \p{Ll}, ... count as \p{L}) and its decoding
// of invalid UTF-8 (an invalid byte is one U+FFFD, a \p{S}; an overlong form or a surrogate is
// the code point it spells). Pieces are non-empty views into the text, never cross, and their
// concatenation is the text, for any bytes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kvscope {

enum class PreTokenizer {
    // llama.cpp's fallback ("default", and a file without tokenizer.ggml.pre), four regexes:
    // [\p{P}\$\+<=>\^~\|]+ ; then GPT-2's ; then \p{N}+ ; then [0-9][0-9][0-9]
    Default,
    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    Gpt2,
    // (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|
    // \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+        (ignores merges)
    Llama3,
    // As Llama3 with \p{N} (one digit) for \p{N}{1,3}.
    Qwen2,
    // \p{N} ; then GPT-2's (digits one by one, never joined to a space)
    Starcoder,
    // [\r\n] ; \s?[A-Za-zµÀ-Ö...]+ (a fixed set of cased letters) ; \s?[!-/:-~！-／：-～‘-‟　-。]+
    // ;
    // \s+$ ; [一-龥ࠀ-一가-퟿]+ ; \p{N}+
    DeepseekLlm,
    // [\r\n] ; \s?\p{L}+ ; \s?\p{P}+ ; [一-龥ࠀ-一가-퟿]+ ; \p{N}
    DeepseekCoder,
    // \p{N}{1,3} ; [一-龥぀-ゟ゠-ヿ]+ ; [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|
    // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    DeepseekV3,
    // [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|
    // [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}|
    // ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+                  (ignores merges)
    // (llama.cpp's rewrite of \p{Lu}/\p{Ll}: "upper" is a letter other than a-z, "lower" a
    // letter other than A-Z, so a non-ASCII letter is both; \p{M} is not part of a word)
    Tekken,
    // As Tekken with \p{N}{1,3}, and an optional contraction (?:'[sS]|'[tT]|...) after each word.
    Gpt4o,
    // [\p{P}\$\+<=>\^~\|`]+ ; GPT-2's ; [0-9][0-9][0-9]
    Falcon,
};

// Every value, for tests and the fuzz target.
inline constexpr PreTokenizer kAllPreTokenizers[] = {
    PreTokenizer::Default,       PreTokenizer::Gpt2,       PreTokenizer::Llama3,
    PreTokenizer::Qwen2,         PreTokenizer::Starcoder,  PreTokenizer::DeepseekLlm,
    PreTokenizer::DeepseekCoder, PreTokenizer::DeepseekV3, PreTokenizer::Tekken,
    PreTokenizer::Gpt4o,         PreTokenizer::Falcon,
};

// The pre-tokenizer tokenizer.ggml.pre names. Throws Error naming the value if it is unknown
// (never a silent fallback: its tokens would differ from llama.cpp's). llama.cpp reads a file
// without the key as "default".
PreTokenizer preTokenizerFromName(std::string_view name);
std::string_view preTokenizerName(PreTokenizer pre);  // the first name that maps to it
std::vector<std::string_view> preTokenizerNames(PreTokenizer pre);  // every name, in order

// llama.cpp's ignore_merges for these names: a piece that is itself a vocabulary token becomes
// that token whole, without applying merges (true for Llama3 and Tekken).
bool ignoresMerges(PreTokenizer pre);

std::vector<std::string_view> preTokenize(PreTokenizer pre, std::string_view text);

// The bytes llama.cpp makes of a piece before its merges: the code points it decoded (above),
// each encoded again, so an invalid byte becomes EF BF BD and an overlong form its shortest
// encoding. Empty when the piece is already so (the common case); a code point past U+10FFFF
// (where llama.cpp gives up) keeps its bytes.
std::string llamaCppUtf8(std::string_view piece);

}  // namespace kvscope
