// Pre-tokenizers: the split of text into pieces before byte-level BPE. See pretokenizer.h.
#include "text/pretokenizer.h"

#include <algorithm>
#include <array>
#include <vector>

#include "core/error.h"
#include "core/utf8.h"

namespace kvscope {
namespace {

struct CodeRange {
    char32_t first, last;
};

#include "text/unicode_tables.inc"

// ---- UTF-8 decoding and character classes ----

using utf8::decodeAt;
using utf8::Decoded;
using utf8::kInvalid;

template <size_t N>
bool inRanges(const CodeRange (&ranges)[N], char32_t cp) {
    const CodeRange* end = ranges + N;
    const CodeRange* it = std::upper_bound(
        ranges, end, cp, [](char32_t value, const CodeRange& r) { return value < r.first; });
    return it != ranges && cp <= (it - 1)->last;
}

enum class CharClass : uint8_t { Letter, Number, Space, Other };

CharClass classify(char32_t cp) {
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::Letter;
        if (cp >= '0' && cp <= '9') return CharClass::Number;
        if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20) return CharClass::Space;
        return CharClass::Other;
    }
    if (cp == kInvalid) return CharClass::Other;
    if (inRanges(kLetterRanges, cp)) return CharClass::Letter;
    if (inRanges(kNumberRanges, cp)) return CharClass::Number;
    if (inRanges(kWhitespaceRanges, cp)) return CharClass::Space;
    return CharClass::Other;
}

struct Char {
    size_t offset;  // byte offset in the text
    char32_t cp;    // kInvalid for an invalid byte
    CharClass cls;
};

// The end (index into chars) of the regex match that starts at chars[i]. Alternatives in order:
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t matchEnd(const std::vector<Char>& chars, size_t i) {
    const size_t n = chars.size();
    const auto cpAt = [&](size_t k) { return k < n ? chars[k].cp : kInvalid; };

    // Contractions (case-sensitive, as in GPT-2).
    if (cpAt(i) == U'\'') {
        const char32_t c1 = cpAt(i + 1);
        if (c1 == U's' || c1 == U't' || c1 == U'm' || c1 == U'd') return i + 2;
        const char32_t c2 = cpAt(i + 2);
        if ((c1 == U'r' && c2 == U'e') || (c1 == U'v' && c2 == U'e') ||
            (c1 == U'l' && c2 == U'l')) {
            return i + 3;
        }
    }

    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
    size_t start = i;
    if (chars[i].cp == U' ' && i + 1 < n && chars[i + 1].cls != CharClass::Space) start = i + 1;
    const CharClass cls = chars[start].cls;
    if (cls != CharClass::Space) {
        size_t end = start + 1;
        while (end < n && chars[end].cls == cls) ++end;
        return end;
    }

    // `\s+(?!\S)`: a whitespace run up to the end, or all but its last character when
    // non-whitespace follows; else `\s+` takes a single whitespace character.
    size_t end = i;
    while (end < n && chars[end].cls == CharClass::Space) ++end;
    if (end == n) return end;
    if (end - i >= 2) return end - 1;
    return end;
}

std::vector<std::string_view> splitGpt2(std::string_view text) {
    std::vector<Char> chars;
    chars.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        const Decoded d = decodeAt(text, i);
        chars.push_back({i, d.cp, classify(d.cp)});
        i += d.length;
    }

    std::vector<std::string_view> pieces;
    for (size_t i = 0; i < chars.size();) {
        const size_t end = matchEnd(chars, i);
        const size_t endOffset = end < chars.size() ? chars[end].offset : text.size();
        pieces.push_back(text.substr(chars[i].offset, endOffset - chars[i].offset));
        i = end;
    }
    return pieces;
}

struct Named {
    std::string_view name;
    PreTokenizer pre;
};

// tokenizer.ggml.pre values, as llama.cpp's llama-vocab names them.
constexpr std::array kNames{
    Named{"gpt-2", PreTokenizer::Gpt2},
    Named{"default", PreTokenizer::Gpt2},
    Named{"phi-2", PreTokenizer::Gpt2},
};

}  // namespace

PreTokenizer preTokenizerFromName(std::string_view name) {
    for (const Named& n : kNames)
        if (n.name == name) return n.pre;
    std::string known;
    for (const Named& n : kNames) {
        if (!known.empty()) known += ", ";
        known += n.name;
    }
    throw Error("tokenizer.ggml.pre = '" + std::string(name) +
                "' is a pre-tokenizer KVScope does not know; it reads " + known);
}

std::string_view preTokenizerName(PreTokenizer pre) {
    for (const Named& n : kNames)
        if (n.pre == pre) return n.name;
    return "?";
}

std::vector<std::string_view> preTokenize(PreTokenizer pre, std::string_view text) {
    switch (pre) {
        case PreTokenizer::Gpt2:
            return splitGpt2(text);
    }
    return splitGpt2(text);
}

}  // namespace kvscope
