// The GGUF tokenizers (byte-level BPE and SentencePiece) and special tokens. See tokenizer.h.
// The reference is llama.cpp's src/llama-vocab.cpp: load() for the defaults and the token
// attributes, tokenizer_st_partition for special tokens, llm_tokenizer_spm_session and
// llm_tokenizer_bpe_session for the merges, token_to_piece and detokenize for decoding.
#include "text/tokenizer.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <queue>

#include "core/error.h"
#include "core/utf8.h"
#include "gguf/gguf.h"

namespace kvscope {

namespace {

// ---- the byte alphabet (bytes_to_unicode) ----

// Bytes that stand for themselves: 33..126, 161..172, 174..255.
constexpr bool isPrintableByte(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

constexpr int kShiftedBytes = 68;  // the others, mapped to U+0100.. in increasing byte order

constexpr std::array<char32_t, 256> makeByteToCodePoint() {
    std::array<char32_t, 256> table{};
    char32_t next = 256;
    for (unsigned b = 0; b < 256; ++b) table[b] = isPrintableByte(b) ? char32_t(b) : next++;
    return table;
}

constexpr std::array<uint8_t, kShiftedBytes> makeShiftedToByte() {
    std::array<uint8_t, kShiftedBytes> table{};
    int next = 0;
    for (unsigned b = 0; b < 256; ++b) {
        if (!isPrintableByte(b)) table[next++] = uint8_t(b);
    }
    return table;
}

constexpr std::array<char32_t, 256> kByteToCodePoint = makeByteToCodePoint();
constexpr std::array<uint8_t, kShiftedBytes> kShiftedToByte = makeShiftedToByte();
static_assert(kByteToCodePoint[0x20] == 0x120 && kByteToCodePoint[0x0A] == 0x10A);
static_assert(kByteToCodePoint[255] == 255 && kShiftedToByte[kShiftedBytes - 1] == 173);

// The byte a code point of the alphabet stands for, or -1 if it is not in the alphabet.
int symbolToByte(char32_t cp) {
    if (cp < 256) return isPrintableByte(cp) ? int(cp) : -1;
    if (cp < 256 + kShiftedBytes) return kShiftedToByte[cp - 256];
    return -1;
}

// The 256 symbols as UTF-8, indexed by byte.
const std::array<std::string, 256>& symbolTable() {
    static const std::array<std::string, 256> table = [] {
        std::array<std::string, 256> t;
        for (unsigned b = 0; b < 256; ++b) utf8::append(t[b], kByteToCodePoint[b]);
        return t;
    }();
    return table;
}

// ---- llama.cpp's token attributes (llama_token_attr bits) ----

constexpr uint16_t kAttrUnknown = 1 << 0;
constexpr uint16_t kAttrUnused = 1 << 1;
constexpr uint16_t kAttrNormal = 1 << 2;
constexpr uint16_t kAttrControl = 1 << 3;
constexpr uint16_t kAttrUserDefined = 1 << 4;
constexpr uint16_t kAttrByte = 1 << 5;
constexpr uint16_t kAttrLstrip = 1 << 7;
constexpr uint16_t kAttrRstrip = 1 << 8;
// The tokens cut out of the text before tokenizing (llama.cpp's cache_special_tokens).
constexpr uint16_t kAttrSpecial = kAttrControl | kAttrUserDefined | kAttrUnknown;

uint16_t attrOfType(TokenType type) {
    switch (type) {
        case TokenType::Normal:
            return kAttrNormal;
        case TokenType::Unknown:
            return kAttrUnknown;
        case TokenType::Control:
            return kAttrControl;
        case TokenType::UserDefined:
            return kAttrUserDefined;
        case TokenType::Unused:
            return kAttrUnused;
        case TokenType::Byte:
            return kAttrByte;
        case TokenType::Undefined:
            return 0;
    }
    return 0;  // a number outside the list: undefined, as llama.cpp
}

// Token texts llama.cpp recognises at load time (llama-vocab.cpp, load()).
using Names = std::span<const std::string_view>;
constexpr std::string_view kEotNames[] = {
    "<|eot_id|>",        "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>",   "<EOT>",      "_<EOT>",  "[EOT]",         "<｜end▁of▁sentence｜>",
    "<end_of_utterance>"};
constexpr std::string_view kEomNames[] = {"<|eom_id|>"};
constexpr std::string_view kFimPreNames[] = {"<|fim_prefix|>",  "<fim-prefix>", "<fim_prefix>",
                                             "<｜fim▁begin｜>", "<PRE>",        "▁<PRE>",
                                             "<|code_prefix|>", "<|prefix|>"};
constexpr std::string_view kFimSufNames[] = {"<|fim_suffix|>",  "<fim-suffix>", "<fim_suffix>",
                                             "<｜fim▁hole｜>",  "<SUF>",        "▁<SUF>",
                                             "<|code_suffix|>", "<|suffix|>"};
constexpr std::string_view kFimMidNames[] = {"<|fim_middle|>",  "<fim-middle>", "<fim_middle>",
                                             "<｜fim▁end｜>",   "<MID>",        "▁<MID>",
                                             "<|code_middle|>", "<|middle|>"};
constexpr std::string_view kFimPadNames[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
                                             "[PAD]"};
constexpr std::string_view kFimRepNames[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                             "<REPO>", "<reponame>"};
constexpr std::string_view kFimSepNames[] = {"<|file_sep|>"};
// clang-format off
constexpr std::string_view kEogNames[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~["};
// clang-format on
// gpt-oss: always shown, so made user-defined.
constexpr std::string_view kAlwaysRenderedNames[] = {"<|channel|>", "<|message|>", "<|start|>",
                                                     "<|constrain|>"};

bool isOneOf(std::string_view text, Names names) {
    return std::find(names.begin(), names.end(), text) != names.end();
}

bool containsAny(std::string_view text, std::initializer_list<std::string_view> parts) {
    return std::any_of(parts.begin(), parts.end(),
                       [&](std::string_view p) { return text.find(p) != std::string_view::npos; });
}

// llama.cpp's per-pre-tokenizer settings of byte-level BPE: its llama3 and tekken
// pre-tokenizers ignore merges and add BOS (unless tokenizer.ggml.add_bos_token says otherwise);
// the others do neither.
bool llamaCppIgnoresMerges(PreTokenizer pre) {
    return ignoresMerges(pre);
}

bool llamaCppAddsBos(PreTokenizer pre) {
    return pre == PreTokenizer::Llama3 || pre == PreTokenizer::Tekken;
}

// isspace() in the C locale, which llama.cpp's lstrip/rstrip use.
bool isCSpace(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

std::string replaceAll(std::string_view text, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        if (text.compare(i, from.size(), from) == 0) {
            out += to;
            i += from.size();
        } else {
            out += text[i++];
        }
    }
    return out;
}

// llama_decode_text: a normal BPE token's text back to bytes through the byte alphabet. Code
// points are read as llama.cpp's unicode_cpts_from_utf8 reads them (lead and continuation bits
// only; any other byte is U+FFFD); one outside the alphabet becomes llama.cpp's marker
// "[UNK_BYTE_0x<its UTF-8 in hex><the token's text>]".
std::string decodeBpeText(const std::string& text) {
    std::string out;
    const auto cont = [&](size_t k) {
        return k < text.size() && (uint8_t(text[k]) & 0xC0) == 0x80;
    };
    for (size_t i = 0; i < text.size();) {
        const auto at = [&](size_t k) { return char32_t(uint8_t(text[k])); };
        const uint8_t b0 = uint8_t(text[i]);
        char32_t cp = 0xFFFD;
        size_t length = 1;
        if (b0 < 0x80) {
            cp = b0;
        } else if ((b0 & 0xE0) == 0xC0 && cont(i + 1)) {
            cp = (at(i) & 0x1F) << 6 | (at(i + 1) & 0x3F);
            length = 2;
        } else if ((b0 & 0xF0) == 0xE0 && cont(i + 1) && cont(i + 2)) {
            cp = (at(i) & 0x0F) << 12 | (at(i + 1) & 0x3F) << 6 | (at(i + 2) & 0x3F);
            length = 3;
        } else if ((b0 & 0xF8) == 0xF0 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
            cp = (at(i) & 0x07) << 18 | (at(i + 1) & 0x3F) << 12 | (at(i + 2) & 0x3F) << 6 |
                 (at(i + 3) & 0x3F);
            length = 4;
        }
        const int b = symbolToByte(cp);
        if (b >= 0) {
            out += char(b);
        } else {
            std::string bytes;
            if (cp <= 0x10FFFF) {
                utf8::append(bytes, cp);
            } else {
                bytes = text.substr(i, length);  // llama.cpp cannot encode it (and fails to load)
            }
            static const char* digits = "0123456789abcdef";
            out += "[UNK_BYTE_0x";
            for (const char c : bytes) {
                out += digits[uint8_t(c) >> 4];
                out += digits[uint8_t(c) & 15];
            }
            out += text;
            out += ']';
        }
        i += length;
    }
    return out;
}

// "0x2A"
std::string hexByte(unsigned b) {
    const char* digits = "0123456789ABCDEF";
    return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

// "128,256"
std::string withThousands(size_t n) {
    const std::string digits = std::to_string(n);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string outOfRange(const std::string& what, int64_t id, size_t vocabSize) {
    return what + " " + std::to_string(id) + " is out of range: the vocabulary has " +
           std::to_string(vocabSize) + " tokens";
}

// What kind of tokenizer a tokenizer.ggml.model value names, for the refusal message.
std::string modelKind(const std::string& model) {
    if (model == "bert") return " (WordPiece)";
    if (model == "t5") return " (Unigram)";
    if (model == "rwkv") return " (RWKV)";
    if (model == "ugm") return " (Unigram)";
    if (model == "plamo2") return " (PLaMo-2)";
    if (model == "none" || model == "no_vocab") return " (no vocabulary)";
    return "";
}

// The length of the UTF-8 sequence a lead byte starts, from its top bits alone, as llama.cpp's
// unicode_len_utf8 (a continuation byte counts as 1; F8..FF as 4).
size_t leadLength(uint8_t b) {
    return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

constexpr size_t kNone = std::numeric_limits<size_t>::max();

TokenizerOptions bpeOptions(std::optional<int32_t> bos, std::optional<int32_t> eos) {
    TokenizerOptions options;
    options.bos = bos;
    options.eos = eos;
    return options;
}

}  // namespace

// ---- special tokens: which occur in a text ----

// A trie of the special tokens' texts. occurring() walks it from every position of a text to
// find the specials the text contains at all, so that partition() only splits by those (a
// vocabulary can have thousands, e.g. Gemma's <unusedN>).
struct Tokenizer::SpecialTrie {
    struct Node {
        std::vector<std::pair<uint8_t, uint32_t>> children;  // sorted by byte
        std::vector<uint32_t> ranks;                         // specials ending here
    };
    std::vector<Node> nodes = std::vector<Node>(1);

    uint32_t child(uint32_t node, uint8_t b) const {
        const auto& c = nodes[node].children;
        const auto it = std::lower_bound(c.begin(), c.end(), std::pair<uint8_t, uint32_t>(b, 0));
        return it != c.end() && it->first == b ? it->second : 0;  // 0: none (the root)
    }

    void insert(std::string_view text, uint32_t rank) {
        uint32_t node = 0;
        for (const char ch : text) {
            const uint8_t b = uint8_t(ch);
            uint32_t next = child(node, b);
            if (next == 0) {
                next = uint32_t(nodes.size());
                nodes.emplace_back();
                auto& c = nodes[node].children;
                c.insert(std::lower_bound(c.begin(), c.end(), std::pair<uint8_t, uint32_t>(b, 0)),
                         {b, next});
            }
            node = next;
        }
        nodes[node].ranks.push_back(rank);
    }

    // found[rank] is set for every special whose text occurs in text.
    void occurring(std::string_view text, std::vector<bool>& found) const {
        for (size_t i = 0; i < text.size(); ++i) {
            uint32_t node = 0;
            for (size_t j = i; j < text.size(); ++j) {
                node = child(node, uint8_t(text[j]));
                if (node == 0) break;
                for (const uint32_t rank : nodes[node].ranks) found[rank] = true;
            }
        }
    }
};

// ---- construction ----

struct Tokenizer::FileHints {
    // Ids from tokenizer.ggml.{eot,eom,fim_*}_token_id (in range); unset: found by text.
    std::optional<int32_t> eot, eom, fimPre, fimSuf, fimMid, fimPad, fimRep, fimSep;
    std::string modelName;  // general.name
    std::string arch;       // general.architecture
    std::string preName;    // tokenizer.ggml.pre as written; empty if absent
};

Tokenizer::Tokenizer(std::vector<std::string> tokens, const std::vector<std::string>& merges,
                     std::optional<int32_t> bos, std::optional<int32_t> eos, PreTokenizer pre)
    : Tokenizer(std::move(tokens), merges, pre, bpeOptions(bos, eos)) {}

Tokenizer::Tokenizer(std::vector<std::string> tokens, const std::vector<std::string>& merges,
                     PreTokenizer pre, TokenizerOptions options)
    : Tokenizer(TokenizerKind::Bpe, std::move(tokens), {}, merges, pre, std::move(options),
                FileHints{}) {}

Tokenizer Tokenizer::sentencePiece(std::vector<std::string> tokens, std::vector<float> scores,
                                   TokenizerOptions options) {
    return Tokenizer(TokenizerKind::SentencePiece, std::move(tokens), std::move(scores), {},
                     PreTokenizer::Gpt2, std::move(options), FileHints{});
}

Tokenizer::Tokenizer(TokenizerKind kind, std::vector<std::string> tokens, std::vector<float> scores,
                     const std::vector<std::string>& merges, PreTokenizer pre,
                     TokenizerOptions options, const FileHints& hints)
    : kind_(kind), tokens_(std::move(tokens)), pre_(pre), scores_(std::move(scores)) {
    const bool spm = kind_ == TokenizerKind::SentencePiece;
    constexpr size_t kMaxCount = size_t(std::numeric_limits<int32_t>::max());
    if (tokens_.size() > kMaxCount) {
        throw Error("tokenizer vocabulary has " + std::to_string(tokens_.size()) +
                    " tokens; at most " + std::to_string(kMaxCount) + " are supported");
    }
    if (spm && scores_.size() != tokens_.size()) {
        throw Error("SentencePiece tokenizer has " + std::to_string(scores_.size()) +
                    " scores for " + std::to_string(tokens_.size()) + " tokens");
    }
    if (!options.types.empty() && options.types.size() != tokens_.size()) {
        throw Error("tokenizer has " + std::to_string(options.types.size()) + " token types for " +
                    std::to_string(tokens_.size()) + " tokens");
    }

    // An empty token gets a placeholder text, as in llama.cpp (it could never match anyway).
    for (size_t i = 0; i < tokens_.size(); ++i) {
        if (tokens_[i].empty()) tokens_[i] = "[EMPTY_" + std::to_string(i) + "]";
    }
    tokenIds_.reserve(tokens_.size());
    for (size_t i = 0; i < tokens_.size(); ++i) tokenIds_.emplace(tokens_[i], int32_t(i));

    const auto checkOption = [&](const char* what, std::optional<int32_t> id) {
        if (id && (*id < 0 || size_t(*id) >= tokens_.size())) {
            throw Error(
                outOfRange(std::string("tokenizer ") + what + " token id", *id, tokens_.size()));
        }
        return id;
    };
    bos_ = checkOption("bos", options.bos);
    eos_ = checkOption("eos", options.eos);
    unk_ = checkOption("unknown", options.unk);
    addBos_ = options.addBos.value_or(spm || llamaCppAddsBos(pre));
    addEos_ = options.addEos.value_or(false);
    addSpacePrefix_ = options.addSpacePrefix.value_or(spm);
    ignoreMerges_ = !spm && options.ignoreMerges.value_or(llamaCppIgnoresMerges(pre));
    preName_ = hints.preName.empty() ? std::string(preTokenizerName(pre)) : hints.preName;

    if (spm) {
        for (unsigned b = 0; b < 256; ++b) {
            std::string hex = "<";
            hex += hexByte(b);
            hex += '>';
            std::optional<int32_t> id = tokenId(hex);
            if (!id) id = tokenId(std::string(1, char(b)));
            byteFallback_[b] = id.value_or(-1);
        }
    } else {
        for (unsigned b = 0; b < 256; ++b) {
            const std::string& symbol = symbolTable()[b];
            const std::optional<int32_t> id = tokenId(symbol);
            if (!id) {
                throw Error("tokenizer vocabulary lacks the symbol '" + symbol + "' for byte " +
                            hexByte(b) + "; byte-level BPE needs all 256 single-byte symbols");
            }
            byteIds_[b] = *id;
        }
        buildMerges(merges);
    }

    setAttributes(options.types, hints);
    buildPieces();
}

void Tokenizer::buildMerges(const std::vector<std::string>& merges) {
    constexpr size_t kMaxCount = size_t(std::numeric_limits<int32_t>::max());
    if (merges.size() > kMaxCount / 4) {
        throw Error("tokenizer has " + std::to_string(merges.size()) + " merges; at most " +
                    std::to_string(kMaxCount / 4) + " are supported");
    }
    // A string that is not a token gets an id past the vocabulary (see extraSymbols_).
    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> extraIds;
    const auto symbolId = [&](std::string_view s) {
        if (const auto it = tokenIds_.find(s); it != tokenIds_.end()) return it->second;
        const auto id = int32_t(tokens_.size() + extraSymbols_.size());
        const auto [it, inserted] = extraIds.emplace(std::string(s), id);
        if (inserted) extraSymbols_.emplace_back(s);
        return it->second;
    };

    merges_.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
        const std::string& line = merges[r];
        const size_t space = line.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
            line.find(' ', space + 1) != std::string::npos) {
            throw Error("tokenizer merge " + std::to_string(r) + " ('" + line +
                        "') is malformed: expected two non-empty symbols separated by one space");
        }
        const std::string_view left = std::string_view(line).substr(0, space);
        const std::string_view right = std::string_view(line).substr(space + 1);
        const int32_t leftId = symbolId(left);
        const int32_t rightId = symbolId(right);
        const int32_t result = symbolId(std::string(left) + std::string(right));
        const uint64_t key = uint64_t(uint32_t(leftId)) << 32 | uint32_t(rightId);
        merges_.emplace(key, Merge{int32_t(r), result});  // a repeat keeps its first rank
    }
}

void Tokenizer::setAttributes(const std::vector<TokenType>& types, const FileHints& hints) {
    const size_t n = tokens_.size();
    attrs_.assign(n, kAttrNormal);
    for (size_t i = 0; i < types.size(); ++i) attrs_[i] = attrOfType(types[i]);

    // llama.cpp's load-time fixes, by token text (it walks its string-to-id map, in hash order;
    // here ids go in increasing order, which only matters for two candidates of one kind).
    std::optional<int32_t> eot = hints.eot, eom = hints.eom, fimPre = hints.fimPre,
                           fimSuf = hints.fimSuf, fimMid = hints.fimMid, fimPad = hints.fimPad,
                           fimRep = hints.fimRep, fimSep = hints.fimSep;
    const std::pair<std::optional<int32_t>*, Names> detected[] = {
        {&eot, kEotNames},       {&eom, kEomNames},       {&fimPre, kFimPreNames},
        {&fimSuf, kFimSufNames}, {&fimMid, kFimMidNames}, {&fimPad, kFimPadNames},
        {&fimRep, kFimRepNames}, {&fimSep, kFimSepNames}};
    for (size_t i = 0; i < n; ++i) {
        const std::string& text = tokens_[i];
        for (const auto& [slot, names] : detected) {
            if (!*slot && isOneOf(text, names)) {
                *slot = int32_t(i);
                attrs_[i] |= kAttrControl;
            }
        }
    }
    // A control token named "unused" is unused too.
    for (size_t i = 0; i < n; ++i) {
        if ((attrs_[i] & kAttrControl) && tokens_[i].find("unused") != std::string::npos) {
            attrs_[i] |= kAttrUnused;
        }
    }
    // The tokens that end generation; those known by their text are control tokens.
    eog_.assign(n, false);
    for (const std::optional<int32_t>& id : {fimPad, fimRep, fimSep})
        if (id) eog_[size_t(*id)] = true;
    for (size_t i = 0; i < n; ++i) {
        if (isOneOf(tokens_[i], kEogNames)) {
            eog_[i] = true;
            attrs_[i] |= kAttrControl;
        }
        if (isOneOf(tokens_[i], kAlwaysRenderedNames)) attrs_[i] = kAttrUserDefined;
    }
    for (const std::optional<int32_t>& id : {eos_, eot, eom})
        if (id) eog_[size_t(*id)] = true;
    // o200k_harmony and solar-open: <|end|> ends a message, not generation.
    bool hasReturn = false, hasCall = false, hasFlush = false;
    std::optional<size_t> end, endOfSentence;
    bool hasToolResponse = false;
    for (size_t i = 0; i < n; ++i) {
        if (!eog_[i]) continue;
        const std::string& text = tokens_[i];
        hasReturn |= text == "<|return|>";
        hasCall |= text == "<|call|>" || text == "<|calls|>";
        hasFlush |= text == "<|flush|>";
        hasToolResponse |= text == "<|tool_response>";
        if (text == "<|end|>") end = i;
        if (text == "</s>") endOfSentence = i;
    }
    if (end && ((hasReturn && hasCall) || (hasCall && hasFlush))) {
        eog_[*end] = false;
        attrs_[*end] = kAttrUserDefined;
    }
    // Gemma 4 and PaddleOCR: </s> is an ordinary token.
    if (endOfSentence && hasToolResponse) {
        eog_[*endOfSentence] = false;
        attrs_[*endOfSentence] = kAttrNormal;
    }

    // The special tokens, in the order llama.cpp tries them: longest text first (std::sort on
    // the ids in increasing order, as llama.cpp does, so that ties fall the same way).
    specials_.clear();
    for (size_t i = 0; i < n; ++i)
        if (attrs_[i] & kAttrSpecial) specials_.push_back(int32_t(i));
    std::sort(specials_.begin(), specials_.end(), [&](int32_t a, int32_t b) {
        return tokens_[size_t(a)].size() > tokens_[size_t(b)].size();
    });

    // Whitespace stripping around some specials, chosen by model name as llama.cpp does.
    std::string name = hints.modelName;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; });
    const auto setAttr = [&](std::string_view text, uint16_t attr, bool on) {
        if (const std::optional<int32_t> id = tokenId(text)) {
            uint16_t& a = attrs_[size_t(*id)];
            a = on ? uint16_t(a | attr) : uint16_t(a & ~attr);
        }
    };
    if (containsAny(hints.preName, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
        containsAny(hints.arch, {"nomic-bert-moe", "jina-bert-v3"})) {
        setAttr("<mask>", kAttrLstrip, true);
    } else if (containsAny(name, {"phi-3", "phi3"})) {
        for (const int32_t id : specials_) attrs_[size_t(id)] |= kAttrRstrip;
        setAttr("</s>", kAttrRstrip, true);
        for (const std::string_view text : {"<unk>", "<s>", "<|endoftext|>"})
            setAttr(text, kAttrRstrip, false);
    } else if (containsAny(name, {"modern-bert"})) {
        setAttr("[MASK]", kAttrLstrip, true);
    }

    auto trie = std::make_shared<SpecialTrie>();
    for (size_t r = 0; r < specials_.size(); ++r)
        trie->insert(tokens_[size_t(specials_[r])], uint32_t(r));
    specialTrie_ = std::move(trie);
}

void Tokenizer::buildPieces() {
    pieces_.assign(tokens_.size(), std::string());
    for (size_t i = 0; i < tokens_.size(); ++i) {
        const uint16_t attr = attrs_[i];
        const std::string& text = tokens_[i];
        if (attr & kAttrSpecial) {
            pieces_[i] = text;
        } else if (attr & kAttrNormal) {
            pieces_[i] = kind_ == TokenizerKind::SentencePiece ? replaceAll(text, kSpaceMarker, " ")
                                                               : decodeBpeText(text);
        } else if (attr & kAttrByte) {
            // llama.cpp reads the two characters after "<0x" as hexadecimal (strtol).
            if (text.size() < 3) {
                throw Error("token " + std::to_string(i) + " ('" + text +
                            "') has the byte type but is not of the form <0xXX>");
            }
            pieces_[i] = std::string(1, char(std::strtol(text.substr(3, 2).c_str(), nullptr, 16)));
        }
        // Unused and undefined tokens stand for nothing.
    }
}

// ---- reading GGUF ----

namespace {

std::vector<float> readScores(const GgufFile& file, size_t count) {
    const char* key = "tokenizer.ggml.scores";
    const GgufValue* v = file.find(key);
    if (v == nullptr) return std::vector<float>(count, 0.0f);
    const GgufValue::Array* array = v->asArray();
    if (array == nullptr ||
        (v->elemType() != GgufType::FLOAT32 && v->elemType() != GgufType::INT32)) {
        throw Error(std::string(key) + " has type " +
                    std::string(array ? "array of " + std::string(typeName(v->elemType()))
                                      : std::string(typeName(v->type()))) +
                    "; expected an array of FLOAT32 or INT32");
    }
    if (array->size() < count) {
        throw Error(std::string(key) + " has " + std::to_string(array->size()) + " values for " +
                    std::to_string(count) + " tokens");
    }
    std::vector<float> scores(count);
    for (size_t i = 0; i < count; ++i) {
        const GgufValue& e = (*array)[i];
        if (const float* f = std::get_if<float>(&e.storage())) {
            scores[i] = *f;
        } else {
            scores[i] = float(std::get<int32_t>(e.storage()));
        }
    }
    return scores;
}

std::vector<TokenType> readTypes(const GgufFile& file, size_t count) {
    const char* key = "tokenizer.ggml.token_type";
    const GgufValue* v = file.find(key);
    if (v == nullptr) return {};
    const GgufValue::Array* array = v->asArray();
    if (array == nullptr || v->elemType() != GgufType::INT32) {
        throw Error(std::string(key) + " has type " +
                    std::string(array ? "array of " + std::string(typeName(v->elemType()))
                                      : std::string(typeName(v->type()))) +
                    "; expected an array of INT32");
    }
    if (array->size() < count) {
        throw Error(std::string(key) + " has " + std::to_string(array->size()) + " values for " +
                    std::to_string(count) + " tokens");
    }
    std::vector<TokenType> types(count);
    for (size_t i = 0; i < count; ++i)
        types[i] = TokenType(std::get<int32_t>((*array)[i].storage()));
    return types;
}

std::string readText(const GgufFile& file, std::string_view key) {
    const GgufValue* v = file.find(key);
    const std::string* s = v ? v->asString() : nullptr;
    return s ? *s : std::string();
}

}  // namespace

Tokenizer Tokenizer::fromGguf(const GgufFile& file) {
    const char* reads = "KVScope reads 'gpt2' (byte-level BPE) and 'llama' (SentencePiece)";
    const std::optional<std::string> model = file.getString("tokenizer.ggml.model");
    if (!model) throw Error(std::string("tokenizer.ggml.model is missing; ") + reads);
    TokenizerKind kind;
    if (*model == "gpt2") {
        kind = TokenizerKind::Bpe;
    } else if (*model == "llama") {
        kind = TokenizerKind::SentencePiece;
    } else {
        throw Error("tokenizer.ggml.model = '" + *model + "'" + modelKind(*model) +
                    " is not supported; " + reads);
    }
    const bool spm = kind == TokenizerKind::SentencePiece;

    FileHints hints;
    hints.modelName = readText(file, "general.name");
    hints.arch = readText(file, "general.architecture");
    // No tokenizer.ggml.pre: llama.cpp's "default" split (older files; it warns and uses it)
    PreTokenizer pre = PreTokenizer::Default;
    std::vector<std::string> merges;
    if (!spm) {
        const std::optional<std::string> preName = file.getString("tokenizer.ggml.pre");
        if (preName) pre = preTokenizerFromName(*preName);
        hints.preName = preName.value_or("");
    } else {
        hints.preName = readText(file, "tokenizer.ggml.pre");  // SentencePiece ignores it
    }
    std::optional<std::vector<std::string>> tokens = file.getStringArray("tokenizer.ggml.tokens");
    if (!tokens) throw Error("tokenizer.ggml.tokens is missing (the vocabulary)");
    if (!spm) {
        std::optional<std::vector<std::string>> m = file.getStringArray("tokenizer.ggml.merges");
        if (!m) throw Error("tokenizer.ggml.merges is missing (the BPE merges)");
        merges = std::move(*m);
    }
    const size_t n = tokens->size();
    std::vector<float> scores = readScores(file, n);
    if (!spm) scores.clear();

    TokenizerOptions o;
    o.types = readTypes(file, n);
    // llama.cpp's default ids, dropped when past the vocabulary; a key in range replaces one.
    const auto byDefault = [&](int32_t id) {
        return size_t(id) < n ? std::optional<int32_t>(id) : std::nullopt;
    };
    o.bos = byDefault(spm ? 1 : 11);
    o.eos = byDefault(spm ? 2 : 11);
    if (spm) o.unk = byDefault(0);
    const auto readId = [&](const char* key, std::optional<int32_t>& slot) {
        const std::optional<uint64_t> value = file.getUint(std::string("tokenizer.ggml.") + key);
        if (value && *value < n) slot = int32_t(*value);
    };
    readId("bos_token_id", o.bos);
    readId("eos_token_id", o.eos);
    readId("eot_token_id", hints.eot);
    readId("eom_token_id", hints.eom);
    readId("unknown_token_id", o.unk);
    readId("fim_pre_token_id", hints.fimPre);
    readId("fim_suf_token_id", hints.fimSuf);
    readId("fim_mid_token_id", hints.fimMid);
    readId("fim_pad_token_id", hints.fimPad);
    readId("fim_rep_token_id", hints.fimRep);
    readId("fim_sep_token_id", hints.fimSep);
    readId("prefix_token_id", hints.fimPre);  // the older names
    readId("suffix_token_id", hints.fimSuf);
    readId("middle_token_id", hints.fimMid);
    const auto readFlag = [&](const char* key) -> std::optional<bool> {
        const std::optional<uint64_t> value = file.getUint(std::string("tokenizer.ggml.") + key);
        if (!value) return std::nullopt;
        return *value != 0;
    };
    o.addBos = readFlag("add_bos_token");
    o.addEos = readFlag("add_eos_token");
    o.addSpacePrefix = readFlag("add_space_prefix");
    return Tokenizer(kind, std::move(*tokens), std::move(scores), merges, pre, std::move(o), hints);
}

// ---- encoding ----

std::vector<Tokenizer::Fragment> Tokenizer::partition(std::string_view text,
                                                      bool parseSpecial) const {
    std::vector<Fragment> fragments;
    if (text.empty()) return fragments;
    fragments.push_back({0, text.size(), -1});
    if (specials_.empty()) return fragments;

    std::vector<bool> found(specials_.size(), false);
    specialTrie_->occurring(text, found);
    std::vector<Fragment> next;
    for (size_t rank = 0; rank < specials_.size(); ++rank) {
        if (!found[rank]) continue;
        const int32_t id = specials_[rank];
        // Control and unknown tokens only when parsing specials; user-defined ones always.
        if (!parseSpecial && hasAttr(id, kAttrControl | kAttrUnknown)) continue;
        const std::string& special = tokens_[size_t(id)];
        const bool lstrip = hasAttr(id, kAttrLstrip), rstrip = hasAttr(id, kAttrRstrip);

        // Every raw fragment is cut at each occurrence, left to right.
        next.clear();
        for (const Fragment& f : fragments) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            size_t pos = f.offset;
            const size_t end = f.offset + f.length;
            const std::string_view window = text.substr(0, end);
            while (true) {
                const size_t match = window.find(special, pos);
                if (match == std::string_view::npos) {
                    if (end > pos) next.push_back({pos, end - pos, -1});
                    break;
                }
                size_t leftLength = match - pos;
                if (lstrip)
                    while (leftLength > 0 && isCSpace(text[pos + leftLength - 1])) --leftLength;
                if (leftLength > 0) next.push_back({pos, leftLength, -1});
                next.push_back({0, 0, id});
                pos = match + special.size();
                if (pos >= end) break;
                if (rstrip)
                    while (pos < end && isCSpace(text[pos])) ++pos;
            }
        }
        fragments.swap(next);
    }
    return fragments;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parseSpecial) const {
    std::vector<int32_t> ids;
    bool afterSpecial = true;  // the start counts as after a special (for add_space_prefix)
    for (const Fragment& f : partition(text, parseSpecial)) {
        if (f.token >= 0) {
            ids.push_back(f.token);
            afterSpecial = true;
            continue;
        }
        const std::string_view raw = text.substr(f.offset, f.length);
        if (kind_ == TokenizerKind::SentencePiece) {
            encodeSpm(raw, addSpacePrefix_ && afterSpecial, ids);
        } else {
            // llama.cpp re-encodes each piece from the code points it decoded: an invalid byte
            // becomes U+FFFD, an overlong form its shortest encoding (the same ids for any bytes)
            for (const std::string_view piece : kvscope::preTokenize(pre_, raw)) {
                const std::string canonical = llamaCppUtf8(piece);
                encodePiece(canonical.empty() ? piece : canonical, ids);
            }
        }
        afterSpecial = false;
    }
    return ids;
}

void Tokenizer::encodePiece(std::string_view piece, std::vector<int32_t>& out) const {
    const size_t n = piece.size();
    if (n == 0) return;
    if (ignoreMerges_) {
        std::string symbols;
        for (const char c : piece) symbols += symbolTable()[uint8_t(c)];
        if (const std::optional<int32_t> id = tokenId(symbols)) {
            out.push_back(*id);
            return;
        }
    }

    // Symbols form a linked list over the piece's bytes; a merge grows the left symbol and
    // unlinks the right one. Candidate pairs wait in a queue ordered by (rank, position), so the
    // lowest-ranked pair merges first and ties go to the leftmost; entries made stale by an
    // earlier merge are recognised by their ids and skipped. O(n log n) in the piece length.
    struct Symbol {
        int32_t id;  // -1 once merged into its left neighbour
        size_t prev, next;
    };
    struct Candidate {
        int32_t rank;
        size_t left;
        int32_t leftId, rightId, result;
    };
    const auto later = [](const Candidate& a, const Candidate& b) {
        return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
    };

    std::vector<Symbol> symbols(n);
    for (size_t i = 0; i < n; ++i) {
        symbols[i] = {byteIds_[uint8_t(piece[i])], i == 0 ? kNone : i - 1,
                      i + 1 == n ? kNone : i + 1};
    }

    std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
    const auto consider = [&](size_t left) {
        if (left == kNone || symbols[left].next == kNone) return;
        const int32_t leftId = symbols[left].id;
        const int32_t rightId = symbols[symbols[left].next].id;
        const auto it = merges_.find(uint64_t(uint32_t(leftId)) << 32 | uint32_t(rightId));
        if (it != merges_.end()) {
            queue.push({it->second.rank, left, leftId, rightId, it->second.result});
        }
    };
    for (size_t i = 0; i + 1 < n; ++i) consider(i);

    while (!queue.empty()) {
        const Candidate c = queue.top();
        queue.pop();
        Symbol& left = symbols[c.left];
        if (left.id != c.leftId || left.next == kNone) continue;
        Symbol& right = symbols[left.next];
        if (right.id != c.rightId) continue;
        left.id = c.result;
        right.id = -1;
        left.next = right.next;
        if (right.next != kNone) symbols[right.next].prev = c.left;
        consider(left.prev);
        consider(c.left);
    }

    for (size_t i = 0; i != kNone; i = symbols[i].next) {
        const int32_t id = symbols[i].id;
        if (size_t(id) < tokens_.size()) {
            out.push_back(id);
            continue;
        }
        // A merged string that is not a token: the tokens of its single bytes, if any.
        for (const char c : extraSymbols_[size_t(id) - tokens_.size()]) {
            if (const std::optional<int32_t> byte = tokenId(std::string_view(&c, 1)))
                out.push_back(*byte);
        }
    }
}

void Tokenizer::encodeSpm(std::string_view raw, bool spacePrefix, std::vector<int32_t>& out) const {
    // Spaces become "▁"; the prefix space too.
    std::string text;
    text.reserve(raw.size() + kSpaceMarker.size());
    if (spacePrefix) text += kSpaceMarker;
    for (const char c : raw) {
        if (c == ' ') {
            text += kSpaceMarker;
        } else {
            text += c;
        }
    }

    // One symbol per character, as the lead byte's top bits count it (so invalid UTF-8 makes
    // odd symbols, as in llama.cpp); cut short at the end of the text.
    struct Symbol {
        size_t start, length;  // length 0 once merged into its left neighbour
        size_t prev, next;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(text.size());
    for (size_t offset = 0; offset < text.size();) {
        const size_t length = std::min(leadLength(uint8_t(text[offset])), text.size() - offset);
        const size_t index = symbols.size();
        symbols.push_back({offset, length, index == 0 ? kNone : index - 1,
                           offset + length == text.size() ? kNone : index + 1});
        offset += length;
    }
    if (symbols.empty()) return;

    // Adjacent symbols whose joined text is a token are candidates; the highest score merges
    // first, the leftmost on a tie. A candidate is stale once either side has changed, which
    // shows in the lengths (a symbol only grows, or drops to 0). O(n log n).
    struct Bigram {
        float score;
        size_t left, right, length;
    };
    const auto lower = [](const Bigram& a, const Bigram& b) {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(lower)> queue(lower);
    const auto consider = [&](size_t left, size_t right) {
        if (left == kNone || right == kNone) return;
        const std::string_view joined(text.data() + symbols[left].start,
                                      symbols[left].length + symbols[right].length);
        const auto it = tokenIds_.find(joined);
        if (it == tokenIds_.end()) return;
        queue.push({scores_[size_t(it->second)], left, right, joined.size()});
    };
    for (size_t i = 1; i < symbols.size(); ++i) consider(i - 1, i);

    while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol& left = symbols[b.left];
        Symbol& right = symbols[b.right];
        if (left.length == 0 || right.length == 0 || left.length + right.length != b.length) {
            continue;
        }
        left.length += right.length;
        right.length = 0;
        left.next = right.next;
        if (right.next != kNone) symbols[right.next].prev = b.left;
        consider(left.prev, b.left);
        consider(b.left, left.next);
    }

    // Every merged symbol is a token; a single character that is not falls back to its bytes.
    for (size_t i = 0; i != kNone; i = symbols[i].next) {
        const std::string_view piece(text.data() + symbols[i].start, symbols[i].length);
        if (const auto it = tokenIds_.find(piece); it != tokenIds_.end()) {
            out.push_back(it->second);
            continue;
        }
        const bool allBytes = std::all_of(piece.begin(), piece.end(),
                                          [&](char c) { return byteFallback_[uint8_t(c)] >= 0; });
        if (allBytes) {
            for (const char c : piece) out.push_back(byteFallback_[uint8_t(c)]);
        } else if (unk_) {
            out.push_back(*unk_);  // (llama.cpp fails here: it has no byte token to use)
        } else {
            std::string bytes;
            for (const char c : piece) {
                if (!bytes.empty()) bytes += ' ';
                bytes += hexByte(uint8_t(c));
            }
            throw Error("SentencePiece tokenizer cannot encode the bytes " + bytes +
                        ": the vocabulary has no byte tokens <0xXX> for them and no unknown token");
        }
    }
}

// ---- decoding and lookups ----

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
    std::string text;
    for (size_t i = 0; i < ids.size(); ++i) {
        const std::string& piece = tokenBytes(ids[i]);
        // llama.cpp's detokenize strips one leading space of the first token only.
        if (i == 0 && addSpacePrefix_ && !piece.empty() && piece[0] == ' ') {
            text.append(piece, 1);
        } else {
            text += piece;
        }
    }
    return text;
}

void Tokenizer::checkId(int32_t id) const {
    if (id < 0 || size_t(id) >= tokens_.size()) {
        throw Error(outOfRange("token id", id, tokens_.size()));
    }
}

const std::string& Tokenizer::tokenBytes(int32_t id) const {
    checkId(id);
    return pieces_[size_t(id)];
}

const std::string& Tokenizer::tokenString(int32_t id) const {
    checkId(id);
    return tokens_[size_t(id)];
}

std::optional<int32_t> Tokenizer::tokenId(std::string_view token) const {
    const auto it = tokenIds_.find(token);
    if (it == tokenIds_.end()) return std::nullopt;
    return it->second;
}

TokenType Tokenizer::tokenType(int32_t id) const {
    checkId(id);
    const uint16_t attr = attrs_[size_t(id)];
    if (attr & kAttrControl) return TokenType::Control;
    if (attr & kAttrUserDefined) return TokenType::UserDefined;
    if (attr & kAttrUnknown) return TokenType::Unknown;
    if (attr & kAttrByte) return TokenType::Byte;
    if (attr & kAttrUnused) return TokenType::Unused;
    if (attr & kAttrNormal) return TokenType::Normal;
    return TokenType::Undefined;
}

bool Tokenizer::isSpecial(int32_t id) const {
    checkId(id);
    return hasAttr(id, kAttrSpecial);
}

bool Tokenizer::isEog(int32_t id) const {
    checkId(id);
    return eog_[size_t(id)];
}

std::string Tokenizer::describe() const {
    const std::string count = withThousands(tokens_.size()) + " tokens";
    if (kind_ == TokenizerKind::SentencePiece) return "SentencePiece (llama), " + count;
    return "byte-level BPE (gpt2, pre-tokenizer " + preName_ + "), " + count;
}

std::string Tokenizer::byteToSymbol(uint8_t b) {
    return symbolTable()[b];
}

}  // namespace kvscope
