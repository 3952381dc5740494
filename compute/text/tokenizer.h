// The tokenizers of GGUF files, matching llama.cpp's llama-vocab token for token:
//  - byte-level BPE (tokenizer.ggml.model = "gpt2"): text is split by the pre-tokenizer that
//    tokenizer.ggml.pre names, each piece's bytes are mapped to printable code points
//    (bytes_to_unicode), then merges are applied by rank;
//  - SentencePiece (tokenizer.ggml.model = "llama"): spaces become U+2581 "▁", a space is put
//    before the text (add_space_prefix), then adjacent pieces merge while the merged text is a
//    token, the highest-scoring first; what is left over falls back to byte tokens "<0xXX>".
// Special tokens (control, user-defined and unknown types) in the text are cut out first and
// become their own ids, the longest first, as llama.cpp's tokenizer_st_partition does.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/pretokenizer.h"

namespace kvscope {

class GgufFile;

enum class TokenizerKind {
    Bpe,            // "gpt2"
    SentencePiece,  // "llama"
};

// tokenizer.ggml.token_type values, numbered as llama.cpp's llama_token_type.
enum class TokenType : int32_t {
    Undefined = 0,  // also any number outside this list; decodes to nothing
    Normal = 1,
    Unknown = 2,
    Control = 3,      // <s>, <|begin_of_text|>: matched in text only when parsing specials
    UserDefined = 4,  // matched in text even when not parsing specials
    Unused = 5,       // decodes to nothing
    Byte = 6,         // <0xXX>: decodes to that byte
};

// What a tokenizer reads beside its vocabulary. Tokenizer::fromGguf fills it from the file
// with llama.cpp's defaults for the tokenizer type; an unset optional flag means that default.
struct TokenizerOptions {
    std::vector<TokenType> types;  // one per token, or empty: every token Normal
    std::optional<int32_t> bos, eos;
    std::optional<int32_t> unk;  // SentencePiece: for a character without a byte token
    // Whether a prompt starts with BOS / ends with EOS. Default: SentencePiece adds BOS; BPE
    // adds neither (llama.cpp's llama3-style pre-tokenizers add BOS, none of them read yet).
    std::optional<bool> addBos, addEos;
    // A space before the text and after each special token (SentencePiece), taken off again
    // by decode(). Default: SentencePiece yes, BPE no.
    std::optional<bool> addSpacePrefix;
    // BPE: a pre-tokenized piece that is itself a token is emitted whole, without merging
    // (llama.cpp's ignore_merges). Default: as llama.cpp sets it for the pre-tokenizer.
    std::optional<bool> ignoreMerges;
};

class Tokenizer {
  public:
    // Byte-level BPE. tokens: the vocabulary in id order, in the byte-to-unicode alphabet
    // ("Ġthe"). merges: "a b" pairs in rank order. Every one of the 256 single-byte symbols
    // must be a token, so that any input encodes; throws Error naming what is missing otherwise.
    Tokenizer(std::vector<std::string> tokens, const std::vector<std::string>& merges,
              std::optional<int32_t> bos = std::nullopt, std::optional<int32_t> eos = std::nullopt,
              PreTokenizer pre = PreTokenizer::Gpt2);
    Tokenizer(std::vector<std::string> tokens, const std::vector<std::string>& merges,
              PreTokenizer pre, TokenizerOptions options);

    // SentencePiece: tokens in id order ("▁the", "<0x41>"), a score per token (a higher score
    // merges first). Throws Error if the counts differ or an id in options is out of range.
    static Tokenizer sentencePiece(std::vector<std::string> tokens, std::vector<float> scores,
                                   TokenizerOptions options = {});

    // Reads tokenizer.ggml.{model,pre,tokens,scores,token_type,merges}, the special token ids
    // (bos, eos, unknown, eot, eom, fim_*) and add_{bos,eos}_token, add_space_prefix, with
    // llama.cpp's defaults where a key is absent or an id is out of range. Throws Error naming
    // the key and value for a model other than "gpt2" and "llama", an unknown pre-tokenizer,
    // or missing or malformed tokens/merges/scores/token types.
    static Tokenizer fromGguf(const GgufFile& file);

    // The ids of text. parseSpecial: control and unknown-type tokens written in the text (e.g.
    // "<|begin_of_text|>") become their ids; user-defined tokens always do. Never adds BOS or
    // EOS (addBos()/addEos() say whether a prompt should have them).
    std::vector<int32_t> encode(std::string_view text, bool parseSpecial = true) const;
    // The concatenated tokenBytes, less the one space that add_space_prefix put before the
    // first token, as llama.cpp's detokenize: decode(encode(text)) == text for byte-level BPE
    // (any bytes), and for SentencePiece when no byte lacks a token and no special token or
    // "▁" was in the text.
    std::string decode(std::span<const int32_t> ids) const;
    // What one token stands for, as llama.cpp's token_to_piece with specials shown: a special
    // token's text; a normal token's text with "▁" as a space (SentencePiece) or mapped back
    // through the byte alphabet (BPE); a byte token's byte; nothing for unused/undefined types.
    const std::string& tokenBytes(int32_t id) const;
    const std::string& tokenString(int32_t id) const;  // as stored in the vocabulary
    // The id of a token string, the first one if the vocabulary has it twice; nullopt if none.
    std::optional<int32_t> tokenId(std::string_view token) const;
    TokenType tokenType(int32_t id) const;  // as llama.cpp treats it after its load-time fixes
    // Control, user-defined or unknown: what the UI marks as special (the tokens a prompt can
    // name by their text).
    bool isSpecial(int32_t id) const;
    bool isEog(int32_t id) const;  // ends generation (EOS, EOT, <|im_end|>, ...), as llama.cpp

    TokenizerKind kind() const { return kind_; }
    // "SentencePiece (llama), 32,000 tokens", "byte-level BPE (gpt2, pre-tokenizer default),
    // 50,257 tokens".
    std::string describe() const;
    size_t vocabSize() const { return tokens_.size(); }
    std::optional<int32_t> bos() const { return bos_; }
    std::optional<int32_t> eos() const { return eos_; }
    std::optional<int32_t> unk() const { return unk_; }
    bool addBos() const { return addBos_; }
    bool addEos() const { return addEos_; }
    bool addSpacePrefix() const { return addSpacePrefix_; }
    bool ignoreMerges() const { return ignoreMerges_; }

    PreTokenizer preTokenizer() const { return pre_; }
    // The GPT-2 pre-tokenizer split of text into pieces (the BPE trainer's split).
    static std::vector<std::string_view> preTokenize(std::string_view text) {
        return kvscope::preTokenize(PreTokenizer::Gpt2, text);
    }

    // The printable code point (as UTF-8) that byte b maps to in the token alphabet.
    static std::string byteToSymbol(uint8_t b);

  private:
    struct FileHints;  // what only a GGUF file tells (tokenizer.cpp)
    struct StringHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    struct Merge {
        int32_t rank;    // position in the merges list; lower merges first
        int32_t result;  // id of the merged symbol
    };
    struct Fragment {
        size_t offset, length;  // of raw text, when token < 0
        int32_t token;
    };
    struct SpecialTrie;

    Tokenizer(TokenizerKind kind, std::vector<std::string> tokens, std::vector<float> scores,
              const std::vector<std::string>& merges, PreTokenizer pre, TokenizerOptions options,
              const FileHints& hints);
    void buildMerges(const std::vector<std::string>& merges);
    void setAttributes(const std::vector<TokenType>& types, const FileHints& hints);
    void buildPieces();

    // tokenizer_st_partition: the text cut into raw text and special tokens.
    std::vector<Fragment> partition(std::string_view text, bool parseSpecial) const;
    // Appends the BPE ids of one pre-tokenized piece to out.
    void encodePiece(std::string_view piece, std::vector<int32_t>& out) const;
    // Appends the SentencePiece ids of one raw text fragment to out.
    void encodeSpm(std::string_view text, bool spacePrefix, std::vector<int32_t>& out) const;
    bool hasAttr(int32_t id, uint16_t attr) const { return (attrs_[size_t(id)] & attr) != 0; }
    void checkId(int32_t id) const;

    TokenizerKind kind_ = TokenizerKind::Bpe;
    std::vector<std::string> tokens_;
    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> tokenIds_;
    std::vector<uint16_t> attrs_;      // llama.cpp's token attribute bits
    std::vector<std::string> pieces_;  // tokenBytes of each id
    std::vector<int32_t> specials_;    // matched in text in this order (longest first)
    std::shared_ptr<const SpecialTrie> specialTrie_;
    std::vector<bool> eog_;
    std::optional<int32_t> bos_, eos_, unk_;
    bool addBos_ = false, addEos_ = false, addSpacePrefix_ = false, ignoreMerges_ = false;

    // BPE. A merge's parts or result that are not tokens get ids from vocabSize() on (their
    // strings in extraSymbols_), as llama.cpp merges by string: such a symbol left at the end
    // falls back to the tokens of its single bytes.
    std::unordered_map<uint64_t, Merge> merges_;  // key: left id << 32 | right id
    std::vector<std::string> extraSymbols_;
    std::array<int32_t, 256> byteIds_{};  // the token of each single-byte symbol
    PreTokenizer pre_ = PreTokenizer::Gpt2;
    std::string preName_;

    // SentencePiece.
    std::vector<float> scores_;
    std::array<int32_t, 256> byteFallback_{};  // <0xXX>, else the byte itself; -1 if neither
};

}  // namespace kvscope
