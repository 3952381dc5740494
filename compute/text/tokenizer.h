// Byte-level BPE tokenizer, as GPT-2 defines it (tokenizer.ggml.model = "gpt2").
// Text is split by the GPT-2 pre-tokenizer pattern, each piece's bytes are mapped to printable
// code points (bytes_to_unicode), then merges are applied by rank. Any byte string encodes and
// decodes back exactly, including invalid UTF-8.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/pretokenizer.h"

namespace kvscope {

class GgufFile;

class Tokenizer {
  public:
    // tokens: the vocabulary in id order, in the byte-to-unicode alphabet ("Ġthe").
    // merges: "a b" pairs in rank order. Every one of the 256 single-byte symbols must be a
    // token, so that any input encodes; throws Error naming what is missing otherwise.
    Tokenizer(std::vector<std::string> tokens, const std::vector<std::string>& merges,
              std::optional<int32_t> bos = std::nullopt, std::optional<int32_t> eos = std::nullopt,
              PreTokenizer pre = PreTokenizer::Gpt2);

    // Reads tokenizer.ggml.{model,pre,tokens,merges,bos_token_id,eos_token_id}. Throws Error if
    // the model is not "gpt2" or the pre-tokenizer is unknown (naming what it is) or if
    // tokens/merges are missing or malformed. No tokenizer.ggml.pre means GPT-2's split.
    static Tokenizer fromGguf(const GgufFile& file);

    std::vector<int32_t> encode(std::string_view text) const;
    std::string decode(std::span<const int32_t> ids) const;  // raw bytes, exactly
    std::string tokenBytes(int32_t id) const;                // the bytes one token stands for
    const std::string& tokenString(int32_t id) const;        // as stored in the vocabulary
    std::optional<int32_t> tokenId(const std::string& token) const;  // nullopt if not a token

    size_t vocabSize() const { return tokens_.size(); }
    std::optional<int32_t> bos() const { return bos_; }
    std::optional<int32_t> eos() const { return eos_; }

    PreTokenizer preTokenizer() const { return pre_; }
    // The GPT-2 pre-tokenizer split of text into pieces (the BPE trainer's split).
    static std::vector<std::string_view> preTokenize(std::string_view text) {
        return kvscope::preTokenize(PreTokenizer::Gpt2, text);
    }

    // The printable code point (as UTF-8) that byte b maps to in the token alphabet.
    static std::string byteToSymbol(uint8_t b);

  private:
    struct Merge {
        int32_t rank;    // position in the merges list; lower merges first
        int32_t result;  // id of the merged token
    };
    // Appends the BPE ids of one pre-tokenized piece to out.
    void encodePiece(std::string_view piece, std::vector<int32_t>& out) const;

    std::vector<std::string> tokens_;
    std::unordered_map<std::string, int32_t> tokenIds_;
    // key: left id << 32 | right id. A merge whose parts or result are not tokens is left out
    // (its result could not be looked up).
    std::unordered_map<uint64_t, Merge> merges_;
    std::array<int32_t, 256> byteIds_{};  // the token of each single-byte symbol
    std::optional<int32_t> bos_, eos_;
    PreTokenizer pre_ = PreTokenizer::Gpt2;
};

}  // namespace kvscope
