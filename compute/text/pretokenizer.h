// Pre-tokenizers: how byte-level BPE (tokenizer.ggml.model = "gpt2") splits text into pieces
// before merges, chosen by the file's tokenizer.ggml.pre. Each is a hand-written matcher for the
// regular expressions llama.cpp's llama-vocab lists for that name (the reference for tokens);
// pieces never cross, and their concatenation is the text, for any bytes (invalid UTF-8 too).
#pragma once

#include <string_view>
#include <vector>

namespace kvscope {

enum class PreTokenizer {
    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    // ("default", "gpt-2", "phi-2"; and a file without tokenizer.ggml.pre)
    Gpt2,
};

// The pre-tokenizer tokenizer.ggml.pre names. Throws Error naming the value if it is unknown
// (never a silent fallback: its tokens would differ from llama.cpp's).
PreTokenizer preTokenizerFromName(std::string_view name);
std::string_view preTokenizerName(PreTokenizer pre);  // the first name that maps to it

std::vector<std::string_view> preTokenize(PreTokenizer pre, std::string_view text);

}  // namespace kvscope
