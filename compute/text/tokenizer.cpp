// GPT-2 byte-level BPE: pre-tokenizer, merges, byte alphabet. See tokenizer.h.
#include "text/tokenizer.h"

#include <algorithm>
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

// "0x2A"
std::string hexByte(unsigned b) {
    const char* digits = "0123456789ABCDEF";
    return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

std::string outOfRange(const std::string& what, int64_t id, size_t vocabSize) {
    return what + " " + std::to_string(id) + " is out of range: the vocabulary has " +
           std::to_string(vocabSize) + " tokens";
}

// Reads an optional token id key, which must fit in int32.
std::optional<int32_t> readTokenId(const GgufFile& file, std::string_view key) {
    const std::optional<uint64_t> value = file.getUint(key);
    if (!value) return std::nullopt;
    if (*value > uint64_t(std::numeric_limits<int32_t>::max())) {
        throw Error(std::string(key) + " = " + std::to_string(*value) + " is not a valid token id");
    }
    return int32_t(*value);
}

// What kind of tokenizer a tokenizer.ggml.model value names, for the refusal message.
std::string modelKind(const std::string& model) {
    if (model == "llama") return " (SentencePiece)";
    if (model == "bert") return " (WordPiece)";
    if (model == "t5") return " (Unigram)";
    if (model == "rwkv") return " (RWKV)";
    return "";
}

}  // namespace

// ---- Tokenizer ----

Tokenizer::Tokenizer(std::vector<std::string> tokens, const std::vector<std::string>& merges,
                     std::optional<int32_t> bos, std::optional<int32_t> eos, PreTokenizer pre)
    : tokens_(std::move(tokens)), bos_(bos), eos_(eos), pre_(pre) {
    constexpr size_t kMaxCount = size_t(std::numeric_limits<int32_t>::max());
    if (tokens_.size() > kMaxCount) {
        throw Error("tokenizer vocabulary has " + std::to_string(tokens_.size()) +
                    " tokens; at most " + std::to_string(kMaxCount) + " are supported");
    }
    if (merges.size() > kMaxCount) {
        throw Error("tokenizer has " + std::to_string(merges.size()) + " merges; at most " +
                    std::to_string(kMaxCount) + " are supported");
    }

    tokenIds_.reserve(tokens_.size());
    for (size_t i = 0; i < tokens_.size(); ++i) {
        const auto [it, inserted] = tokenIds_.emplace(tokens_[i], int32_t(i));
        if (!inserted) {
            throw Error("tokenizer vocabulary has the token '" + tokens_[i] + "' twice, at ids " +
                        std::to_string(it->second) + " and " + std::to_string(i));
        }
    }

    for (unsigned b = 0; b < 256; ++b) {
        const std::string symbol = byteToSymbol(uint8_t(b));
        const auto it = tokenIds_.find(symbol);
        if (it == tokenIds_.end()) {
            throw Error("tokenizer vocabulary lacks the symbol '" + symbol + "' for byte " +
                        hexByte(b) + "; byte-level BPE needs all 256 single-byte symbols");
        }
        byteIds_[b] = it->second;
    }

    merges_.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
        const std::string& line = merges[r];
        const size_t space = line.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
            line.find(' ', space + 1) != std::string::npos) {
            throw Error("tokenizer merge " + std::to_string(r) + " ('" + line +
                        "') is malformed: expected two non-empty symbols separated by one space");
        }
        const std::string left = line.substr(0, space);
        const std::string right = line.substr(space + 1);
        const auto leftIt = tokenIds_.find(left);
        const auto rightIt = tokenIds_.find(right);
        const auto resultIt = tokenIds_.find(left + right);
        if (leftIt == tokenIds_.end() || rightIt == tokenIds_.end() ||
            resultIt == tokenIds_.end()) {
            continue;
        }
        const uint64_t key = uint64_t(uint32_t(leftIt->second)) << 32 | uint32_t(rightIt->second);
        merges_.emplace(key, Merge{int32_t(r), resultIt->second});  // a repeat keeps its first rank
    }

    if (bos_ && (*bos_ < 0 || size_t(*bos_) >= tokens_.size())) {
        throw Error(outOfRange("tokenizer bos token id", *bos_, tokens_.size()));
    }
    if (eos_ && (*eos_ < 0 || size_t(*eos_) >= tokens_.size())) {
        throw Error(outOfRange("tokenizer eos token id", *eos_, tokens_.size()));
    }
}

Tokenizer Tokenizer::fromGguf(const GgufFile& file) {
    const char* expected =
        "KVScope reads byte-level BPE tokenizers (tokenizer.ggml.model = \"gpt2\")";
    const std::optional<std::string> model = file.getString("tokenizer.ggml.model");
    if (!model) throw Error(std::string("tokenizer.ggml.model is missing; ") + expected);
    if (*model != "gpt2") {
        throw Error("tokenizer '" + *model + "'" + modelKind(*model) + " is not supported; " +
                    expected);
    }
    const std::optional<std::string> preName = file.getString("tokenizer.ggml.pre");
    const PreTokenizer pre = preName ? preTokenizerFromName(*preName) : PreTokenizer::Gpt2;
    std::optional<std::vector<std::string>> tokens = file.getStringArray("tokenizer.ggml.tokens");
    if (!tokens) throw Error("tokenizer.ggml.tokens is missing (the vocabulary)");
    const std::optional<std::vector<std::string>> merges =
        file.getStringArray("tokenizer.ggml.merges");
    if (!merges) throw Error("tokenizer.ggml.merges is missing (the BPE merges)");
    const std::optional<int32_t> bos = readTokenId(file, "tokenizer.ggml.bos_token_id");
    const std::optional<int32_t> eos = readTokenId(file, "tokenizer.ggml.eos_token_id");
    return Tokenizer(std::move(*tokens), *merges, bos, eos, pre);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
    std::vector<int32_t> ids;
    for (const std::string_view piece : kvscope::preTokenize(pre_, text)) encodePiece(piece, ids);
    return ids;
}

void Tokenizer::encodePiece(std::string_view piece, std::vector<int32_t>& out) const {
    // Symbols form a linked list over the piece's bytes; a merge grows the left symbol and
    // unlinks the right one. Candidate pairs wait in a queue ordered by (rank, position), so the
    // lowest-ranked pair merges first and ties go to the leftmost; entries made stale by an
    // earlier merge are recognised by their ids and skipped. O(n log n) in the piece length.
    constexpr size_t kNone = std::numeric_limits<size_t>::max();
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

    const size_t n = piece.size();
    if (n == 0) return;
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

    for (size_t i = 0; i != kNone; i = symbols[i].next) out.push_back(symbols[i].id);
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
    std::string text;
    for (const int32_t id : ids) text += tokenBytes(id);
    return text;
}

std::string Tokenizer::tokenBytes(int32_t id) const {
    const std::string& token = tokenString(id);
    std::string bytes;
    bytes.reserve(token.size());
    for (size_t i = 0; i < token.size();) {
        const utf8::Decoded d = utf8::decodeAt(token, i);
        const int b = d.cp == utf8::kInvalid ? -1 : symbolToByte(d.cp);
        if (b >= 0) {
            bytes += char(b);
        } else {
            bytes.append(token, i, d.length);  // not in the byte alphabet: its own UTF-8
        }
        i += d.length;
    }
    return bytes;
}

const std::string& Tokenizer::tokenString(int32_t id) const {
    if (id < 0 || size_t(id) >= tokens_.size()) {
        throw Error(outOfRange("token id", id, tokens_.size()));
    }
    return tokens_[size_t(id)];
}

std::optional<int32_t> Tokenizer::tokenId(const std::string& token) const {
    const auto it = tokenIds_.find(token);
    if (it == tokenIds_.end()) return std::nullopt;
    return it->second;
}

std::string Tokenizer::byteToSymbol(uint8_t b) {
    std::string symbol;
    utf8::append(symbol, kByteToCodePoint[b]);
    return symbol;
}

}  // namespace kvscope
