// Pre-tokenizers: the split of text into pieces before byte-level BPE. See pretokenizer.h.
//
// The reference is llama.cpp's unicode_regex_split. It decodes the text to code points, then
// applies the pre-tokenizer's regexes in order: each one splits every piece of the one before
// into the stretches it matches and the stretches between matches, and never looks past the
// piece it works on. GPT-2's, Llama 3's and Qwen2's regexes run as hand-written matchers there;
// every other one runs as an ECMAScript std::regex search, either on the code points (a regex
// without \p{..}; non-ASCII whitespace is replaced by U+000B first) or on a "collapsed" text in
// which every non-ASCII code point stands for its class (whitespace, \p{L}, \p{N}, \p{P}, \p{M},
// \p{S} or none). The matchers below follow that: first alternative that matches wins, greedy
// quantifiers backtracking the way ECMAScript does, a search that skips positions where nothing
// matches (those become pieces of their own), and each match costing time linear in its length.
#include "text/pretokenizer.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/utf8.h"

namespace kvscope {
namespace {

// ---- Character classes ----

enum class Cat : uint8_t { Space, Letter, Number, Punct, Symbol, Mark, Other, None };

struct CategoryStart {
    char32_t first;
    Cat cat;
};

#include "text/unicode_tables.inc"

constexpr char32_t kMaxCodePoint = 0x10FFFF;

constexpr Cat lookupCategory(char32_t cp) {
    if (cp > kMaxCodePoint) return Cat::Other;  // llama.cpp: undefined, matches no class
    const CategoryStart* end = std::end(kCategoryStarts);
    const CategoryStart* it =
        std::upper_bound(std::begin(kCategoryStarts), end, cp,
                         [](char32_t value, const CategoryStart& s) { return value < s.first; });
    return (it - 1)->cat;
}

constexpr std::array<Cat, 128> kAsciiCategory = [] {
    std::array<Cat, 128> table{};
    for (char32_t cp = 0; cp < 128; ++cp) table[cp] = lookupCategory(cp);
    return table;
}();

Cat category(char32_t cp) {
    return cp < 128 ? kAsciiCategory[cp] : lookupCategory(cp);
}

// ---- Decoding, as llama.cpp's unicode_cpts_from_utf8 ----

constexpr char32_t kReplacement = 0xFFFD;

struct Decoded {
    char32_t cp;
    uint32_t length;
};

bool isContinuation(uint8_t b) {
    return (b & 0xC0) == 0x80;
}

// The lead byte's high bits give the length; the continuation bytes must be there and be
// continuation bytes. Nothing else is checked: an overlong form or a surrogate decodes to the
// code point it spells (possibly past U+10FFFF). Anything else is U+FFFD for that one byte.
Decoded decodeLikeLlama(std::string_view s, size_t i) {
    const auto at = [&](size_t k) { return uint8_t(s[k]); };
    const uint8_t b0 = at(i);
    if (b0 < 0x80) return {b0, 1};
    const size_t left = s.size() - i;
    if ((b0 & 0x40) == 0) return {kReplacement, 1};  // a continuation byte
    if ((b0 & 0x20) == 0) {
        if (left >= 2 && isContinuation(at(i + 1)))
            return {char32_t((b0 & 0x1Fu) << 6 | (at(i + 1) & 0x3Fu)), 2};
    } else if ((b0 & 0x10) == 0) {
        if (left >= 3 && isContinuation(at(i + 1)) && isContinuation(at(i + 2)))
            return {char32_t((b0 & 0x0Fu) << 12 | (at(i + 1) & 0x3Fu) << 6 | (at(i + 2) & 0x3Fu)),
                    3};
    } else if ((b0 & 0x08) == 0) {
        if (left >= 4 && isContinuation(at(i + 1)) && isContinuation(at(i + 2)) &&
            isContinuation(at(i + 3)))
            return {char32_t((b0 & 0x07u) << 18 | (at(i + 1) & 0x3Fu) << 12 |
                             (at(i + 2) & 0x3Fu) << 6 | (at(i + 3) & 0x3Fu)),
                    4};
    }
    return {kReplacement, 1};
}

struct Char {
    char32_t cp;
    Cat cat;
};

// One piece of the text being split: chars[begin, end). Outside it, a character reads as
// kNone / Cat::None, so that no matcher looks past its piece.
constexpr char32_t kNone = 0xFFFFFFFF;

struct Span {
    const Char* chars;
    size_t begin, end;

    char32_t cp(size_t k) const { return k < end ? chars[k].cp : kNone; }
    Cat cat(size_t k) const { return k < end ? chars[k].cat : Cat::None; }
    bool is(size_t k, Cat c) const { return cat(k) == c; }
    // [^\s\p{L}\p{N}] within the piece.
    bool isOther(size_t k) const {
        const Cat c = cat(k);
        return c != Cat::Space && c != Cat::Letter && c != Cat::Number && c != Cat::None;
    }
    bool isNewline(size_t k) const { return cp(k) == U'\r' || cp(k) == U'\n'; }
    // The end of the run of characters from k for which pred holds.
    template <typename Pred>
    size_t runEnd(size_t k, Pred pred) const {
        while (k < end && pred(k)) ++k;
        return k;
    }
    // The end of the run of numbers (\p{N}) from k, at most `most` of them.
    size_t numberRunEnd(size_t k, size_t most) const {
        const size_t stop = k < end && end - k > most ? k + most : end;
        while (k < stop && chars[k].cat == Cat::Number) ++k;
        return k;
    }
};

bool isAsciiLower(char32_t cp) {
    return cp >= U'a' && cp <= U'z';
}
bool isAsciiUpper(char32_t cp) {
    return cp >= U'A' && cp <= U'Z';
}
char32_t asciiLower(char32_t cp) {
    return isAsciiUpper(cp) ? cp + (U'a' - U'A') : cp;
}

// A matcher returns the end of the match that starts at p, or p when nothing matches there.
using Matcher = size_t (*)(const Span&, size_t);

// ---- Shared pieces of the regexes ----

// 's|'t|'re|'ve|'m|'ll|'d at p; case-insensitive when caseless (the (?i:...) / '[sS] forms).
size_t contraction(const Span& s, size_t p, bool caseless) {
    if (s.cp(p) != U'\'' || p + 1 >= s.end) return p;
    const auto fold = [&](size_t k) { return caseless ? asciiLower(s.cp(k)) : s.cp(k); };
    const char32_t c1 = fold(p + 1);
    if (c1 == U's' || c1 == U't' || c1 == U'm' || c1 == U'd') return p + 2;
    if (p + 2 >= s.end) return p;
    const char32_t c2 = fold(p + 2);
    if ((c1 == U'r' && c2 == U'e') || (c1 == U'v' && c2 == U'e') || (c1 == U'l' && c2 == U'l'))
        return p + 3;
    return p;
}

// \s*[\r\n]+|\s+(?!\S)|\s+ at p (a whitespace character): through the last \r or \n of the
// whitespace run when it has one; else the run less its last character when something follows
// in the piece and the run is longer than one; else the whole run.
size_t whitespaceRun(const Span& s, size_t p) {
    size_t end = p;
    size_t afterNewline = p;
    while (s.is(end, Cat::Space)) {
        if (s.isNewline(end)) afterNewline = end + 1;
        ++end;
    }
    if (afterNewline > p) return afterNewline;
    if (end - p > 1 && end < s.end) return end - 1;
    return end;
}

// ---- GPT-2 (llama.cpp's hand-written matcher, which ends with \s+ though its regex string
// does not) ----

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t matchGpt2(const Span& s, size_t p) {
    if (const size_t c = contraction(s, p, false); c > p) return c;

    // An optional space, then a run of letters, of numbers, or of anything else but whitespace.
    const bool space = s.cp(p) == U' ';
    const size_t start = space ? p + 1 : p;
    const Cat cls = s.cat(start);
    if (cls == Cat::Letter || cls == Cat::Number)
        return s.runEnd(start, [&](size_t k) { return s.is(k, cls); });
    if (s.isOther(start)) return s.runEnd(start, [&](size_t k) { return s.isOther(k); });

    if (s.is(p, Cat::Space)) {
        const size_t end = s.runEnd(p, [&](size_t k) { return s.is(k, Cat::Space); });
        return end - p > 1 && end < s.end ? end - 1 : end;
    }
    return p + 1;
}

// ---- Llama 3 and Qwen2 (llama.cpp's hand-written matchers) ----

// (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|
// \p{N}{1,maxDigits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
template <size_t maxDigits>
size_t matchLlama3Family(const Span& s, size_t p) {
    if (const size_t c = contraction(s, p, true); c > p) return c;

    const bool isLetter = s.is(p, Cat::Letter);
    if (!s.isNewline(p) && !s.is(p, Cat::Number) && (isLetter || s.is(p + 1, Cat::Letter)))
        return s.runEnd(p + 1, [&](size_t k) { return s.is(k, Cat::Letter); });

    if (s.is(p, Cat::Number)) return s.numberRunEnd(p, maxDigits);

    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`. As in llama.cpp, a space that ends the piece is taken here
    // too (alone: the same piece \s+ would give it).
    const Cat next = s.cp(p) == U' ' ? s.cat(p + 1) : s.cat(p);
    if (next != Cat::Space && next != Cat::Letter && next != Cat::Number) {
        size_t end = s.cp(p) == U' ' ? p + 1 : p;
        end = s.runEnd(end, [&](size_t k) { return s.isOther(k); });
        return s.runEnd(end, [&](size_t k) { return s.isNewline(k); });
    }

    if (s.is(p, Cat::Space)) return whitespaceRun(s, p);
    return p + 1;
}

// ---- Tekken and GPT-4o (std::regex on the collapsed text) ----

// ((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+ or, failing that,
// ((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))* from a letter at p. "Upper" (U) is a letter
// other than a-z, "lower" a letter other than A-Z; a non-ASCII letter is both. The first form
// takes the run of U greedily and needs a lower after it: an a-z there starts a run of lowers;
// otherwise it backs off to the last non-ASCII letter of the run (which is also a lower). When
// the run has none, the second form takes the run of U alone.
size_t casedWord(const Span& s, size_t p) {
    const auto upper = [&](size_t k) { return s.is(k, Cat::Letter) && !isAsciiLower(s.cp(k)); };
    const auto lower = [&](size_t k) { return s.is(k, Cat::Letter) && !isAsciiUpper(s.cp(k)); };
    size_t end = p;
    size_t lastBoth = p;  // one past the last non-ASCII letter of the run, p if none
    while (upper(end)) {
        if (s.cp(end) >= 0x80) lastBoth = end + 1;
        ++end;
    }
    if (s.is(end, Cat::Letter)) return s.runEnd(end, lower);  // an a-z after the U run
    if (lastBoth > p) return lastBoth;
    return end;
}

template <size_t maxDigits, bool contractions>
size_t matchTekkenFamily(const Span& s, size_t p) {
    // [^\r\n\p{L}\p{N}]? before the word: any one character but \r, \n, a letter or a number,
    // taken when a letter follows it.
    size_t word = p;
    if (!s.is(p, Cat::Letter) && !s.isNewline(p) && !s.is(p, Cat::Number) &&
        s.is(p + 1, Cat::Letter))
        word = p + 1;
    if (s.is(word, Cat::Letter)) {
        const size_t end = casedWord(s, word);
        return contractions ? contraction(s, end, true) : end;
    }

    if (s.is(p, Cat::Number)) return s.numberRunEnd(p, maxDigits);

    // ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
    const size_t start = s.cp(p) == U' ' && s.isOther(p + 1) ? p + 1 : p;
    if (s.isOther(start)) {
        const size_t end = s.runEnd(start, [&](size_t k) { return s.isOther(k); });
        return s.runEnd(end, [&](size_t k) { return s.isNewline(k) || s.cp(k) == U'/'; });
    }

    if (s.is(p, Cat::Space)) return whitespaceRun(s, p);
    return p;
}

// ---- DeepSeek V3 (its third regex, std::regex on the collapsed text) ----

bool isAsciiPunctOrSymbol(char32_t cp) {
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
           (cp >= 0x7B && cp <= 0x7E);
}
bool isAsciiLetter(char32_t cp) {
    return isAsciiLower(cp) || isAsciiUpper(cp);
}

// [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
// ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t matchDeepseekV3Words(const Span& s, size_t p) {
    if (isAsciiPunctOrSymbol(s.cp(p)) && isAsciiLetter(s.cp(p + 1)))
        return s.runEnd(p + 1, [&](size_t k) { return isAsciiLetter(s.cp(k)); });

    const auto letterOrMark = [&](size_t k) { return s.is(k, Cat::Letter) || s.is(k, Cat::Mark); };
    const Cat c = s.cat(p);
    const bool prefix = !s.isNewline(p) && c != Cat::Letter && c != Cat::Punct && c != Cat::Symbol;
    if (prefix && letterOrMark(p + 1)) return s.runEnd(p + 1, letterOrMark);
    if (letterOrMark(p)) return s.runEnd(p, letterOrMark);

    const auto punctOrSymbol = [&](size_t k) {
        return s.is(k, Cat::Punct) || s.is(k, Cat::Symbol);
    };
    const size_t start = s.cp(p) == U' ' && punctOrSymbol(p + 1) ? p + 1 : p;
    if (punctOrSymbol(start)) {
        const size_t end = s.runEnd(start, punctOrSymbol);
        return s.runEnd(end, [&](size_t k) { return s.isNewline(k); });
    }

    if (s.is(p, Cat::Space)) return whitespaceRun(s, p);
    return p;
}

// ---- Fixed sets of code points (regexes without \p{..}, searched on the code points) ----

struct CodeRange {
    char32_t first, last;
};

template <size_t N>
bool inRanges(const std::array<CodeRange, N>& ranges, char32_t cp) {
    return std::any_of(ranges.begin(), ranges.end(),
                       [&](const CodeRange& r) { return cp >= r.first && cp <= r.last; });
}

// llama.cpp replaces non-ASCII whitespace by U+000B before such a search, so a set that names
// one (U+3000 in the ranges below) never matches it.
char32_t searchedCodePoint(const Span& s, size_t k) {
    return s.cp(k) >= 0x80 && s.is(k, Cat::Space) ? U'\v' : s.cp(k);
}

// DeepSeek LLM's
// [A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚ
// Ḁ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳ
// Ꙁ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃],
// as code point ranges.
constexpr std::array<CodeRange, 84> kDeepseekLetters{{
    {0x0041, 0x005A},   {0x0061, 0x007A},   {0x00B5, 0x00B5},   {0x00C0, 0x00D6},
    {0x00D8, 0x00F6},   {0x00F8, 0x01BA},   {0x01BC, 0x01BF},   {0x01C4, 0x0293},
    {0x0295, 0x02AF},   {0x0370, 0x0373},   {0x0376, 0x0377},   {0x037B, 0x037D},
    {0x037F, 0x037F},   {0x0386, 0x0386},   {0x0388, 0x038A},   {0x038C, 0x038C},
    {0x038E, 0x03A1},   {0x03A3, 0x03F5},   {0x03F7, 0x0481},   {0x048A, 0x052F},
    {0x0531, 0x0556},   {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},
    {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
    {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},
    {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},
    {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
    {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},
    {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},
    {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
    {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
}};

// DeepSeek LLM's [!-/:-~！-／：-～‘-‟　-。] (ASCII punctuation, symbols and letters; their
// fullwidth forms; curly quotes; U+3000..U+3002).
constexpr std::array<CodeRange, 6> kDeepseekPunct{{
    {0x0021, 0x002F},
    {0x003A, 0x007E},
    {0xFF01, 0xFF0F},
    {0xFF1A, 0xFF5E},
    {0x2018, 0x201F},
    {0x3000, 0x3002},
}};

// DeepSeek LLM's and Coder's [一-龥ࠀ-一가-퟿]: U+0800..U+9FA5 (from Samaritan through the
// CJK ideographs, all scripts between) and Hangul syllables and Jamo.
constexpr std::array<CodeRange, 2> kDeepseekCjk{{
    {0x0800, 0x9FA5},
    {0xAC00, 0xD7FF},
}};

// DeepSeek V3's [一-龥぀-ゟ゠-ヿ]: CJK ideographs, hiragana, katakana.
constexpr std::array<CodeRange, 3> kDeepseekV3Cjk{{
    {0x4E00, 0x9FA5},
    {0x3040, 0x309F},
    {0x30A0, 0x30FF},
}};

// \s?[set]+ at p (the set already excludes whitespace).
template <typename InSet>
size_t spacedRun(const Span& s, size_t p, InSet inSet) {
    if (s.is(p, Cat::Space) && p + 1 < s.end && inSet(p + 1)) return s.runEnd(p + 1, inSet);
    return inSet(p) ? s.runEnd(p, inSet) : p;
}

template <const auto& ranges>
size_t matchSpacedSetRun(const Span& s, size_t p) {
    return spacedRun(s, p, [&](size_t k) { return inRanges(ranges, searchedCodePoint(s, k)); });
}

template <const auto& ranges>
size_t matchSetRun(const Span& s, size_t p) {
    return s.runEnd(p, [&](size_t k) { return inRanges(ranges, searchedCodePoint(s, k)); });
}

// ---- Single-class regexes ----

size_t matchNewline(const Span& s, size_t p) {  // [\r\n]
    return s.isNewline(p) ? p + 1 : p;
}

size_t matchNumber(const Span& s, size_t p) {  // \p{N}
    return s.is(p, Cat::Number) ? p + 1 : p;
}

size_t matchNumbers(const Span& s, size_t p) {  // \p{N}+
    return s.numberRunEnd(p, SIZE_MAX);
}

size_t matchNumbersUpTo3(const Span& s, size_t p) {  // \p{N}{1,3}
    return s.numberRunEnd(p, 3);
}

size_t matchThreeAsciiDigits(const Span& s, size_t p) {  // [0-9][0-9][0-9]
    const auto digit = [&](size_t k) { return s.cp(k) >= U'0' && s.cp(k) <= U'9'; };
    return digit(p) && digit(p + 1) && digit(p + 2) ? p + 3 : p;
}

size_t matchSpacedLetters(const Span& s, size_t p) {  // \s?\p{L}+
    return spacedRun(s, p, [&](size_t k) { return s.is(k, Cat::Letter); });
}

size_t matchSpacedPunct(const Span& s, size_t p) {  // \s?\p{P}+
    return spacedRun(s, p, [&](size_t k) { return s.is(k, Cat::Punct); });
}

// [\p{P}\$\+<=>\^~\|]+ (Default) and [\p{P}\$\+<=>\^~\|`]+ (Falcon): punctuation, and of the
// symbols only these ASCII ones.
template <bool backtick>
size_t matchPunctRun(const Span& s, size_t p) {
    return s.runEnd(p, [&](size_t k) {
        if (s.is(k, Cat::Punct)) return true;
        const char32_t cp = s.cp(k);
        return cp == U'$' || cp == U'+' || cp == U'<' || cp == U'=' || cp == U'>' || cp == U'^' ||
               cp == U'~' || cp == U'|' || (backtick && cp == U'`');
    });
}

// ---- Splitting ----

// One regex of a pre-tokenizer: a matcher searched along each piece, or \s+$.
struct Stage {
    Matcher match;  // nullptr: \s+$
};

constexpr Stage kTrailingSpace{nullptr};

using Ends = std::vector<size_t>;  // the end (character index) of each piece, in order

// Splits chars[begin, end) as a regex search does: a match at the first position where there is
// one, then on from its end; the characters between matches are a piece of their own.
void searchSplit(const Span& s, Matcher match, Ends& out) {
    size_t gap = s.begin;
    for (size_t p = s.begin; p < s.end;) {
        const size_t end = match(s, p);
        if (end > p) {
            if (gap < p) out.push_back(p);
            out.push_back(end);
            p = gap = end;
        } else {
            ++p;
        }
    }
    if (gap < s.end) out.push_back(s.end);
}

// \s+$: the whitespace that ends the piece is a piece of its own.
void trailingSpaceSplit(const Span& s, Ends& out) {
    size_t start = s.end;
    while (start > s.begin && s.is(start - 1, Cat::Space)) --start;
    if (start > s.begin) out.push_back(start);
    if (start < s.end) out.push_back(s.end);
}

template <typename... M>
constexpr auto stages(M... m) {
    return std::array<Stage, sizeof...(M)>{Stage{m}...};
}

constexpr auto kDefaultStages =
    stages(&matchPunctRun<false>, &matchGpt2, &matchNumbers, &matchThreeAsciiDigits);
constexpr auto kGpt2Stages = stages(&matchGpt2);
constexpr auto kLlama3Stages = stages(&matchLlama3Family<3>);
constexpr auto kQwen2Stages = stages(&matchLlama3Family<1>);
constexpr auto kStarcoderStages = stages(&matchNumber, &matchGpt2);
constexpr std::array<Stage, 6> kDeepseekLlmStages{{
    {&matchNewline},
    {&matchSpacedSetRun<kDeepseekLetters>},
    {&matchSpacedSetRun<kDeepseekPunct>},
    kTrailingSpace,
    {&matchSetRun<kDeepseekCjk>},
    {&matchNumbers},
}};
constexpr auto kDeepseekCoderStages = stages(&matchNewline, &matchSpacedLetters, &matchSpacedPunct,
                                             &matchSetRun<kDeepseekCjk>, &matchNumber);
constexpr auto kDeepseekV3Stages =
    stages(&matchNumbersUpTo3, &matchSetRun<kDeepseekV3Cjk>, &matchDeepseekV3Words);
constexpr auto kTekkenStages = stages(&matchTekkenFamily<1, false>);
constexpr auto kGpt4oStages = stages(&matchTekkenFamily<3, true>);
constexpr auto kFalconStages = stages(&matchPunctRun<true>, &matchGpt2, &matchThreeAsciiDigits);

std::span<const Stage> stagesOf(PreTokenizer pre) {
    switch (pre) {
        case PreTokenizer::Default:
            return kDefaultStages;
        case PreTokenizer::Gpt2:
            return kGpt2Stages;
        case PreTokenizer::Llama3:
            return kLlama3Stages;
        case PreTokenizer::Qwen2:
            return kQwen2Stages;
        case PreTokenizer::Starcoder:
            return kStarcoderStages;
        case PreTokenizer::DeepseekLlm:
            return kDeepseekLlmStages;
        case PreTokenizer::DeepseekCoder:
            return kDeepseekCoderStages;
        case PreTokenizer::DeepseekV3:
            return kDeepseekV3Stages;
        case PreTokenizer::Tekken:
            return kTekkenStages;
        case PreTokenizer::Gpt4o:
            return kGpt4oStages;
        case PreTokenizer::Falcon:
            return kFalconStages;
    }
    return kGpt2Stages;
}

// ---- Names ----

struct Named {
    std::string_view name;
    PreTokenizer pre;
};

// tokenizer.ggml.pre values, as llama.cpp's llama-vocab names them; a name is here only when
// llama.cpp gives it exactly this pre-tokenizer's regexes (and ignore_merges as ignoresMerges
// says). The first name of each is the one preTokenizerName gives.
constexpr std::array kNames{
    Named{"default", PreTokenizer::Default},
    Named{"gpt-2", PreTokenizer::Gpt2},
    Named{"phi-2", PreTokenizer::Gpt2},
    Named{"mpt", PreTokenizer::Gpt2},
    Named{"olmo", PreTokenizer::Gpt2},
    Named{"jais", PreTokenizer::Gpt2},
    Named{"trillion", PreTokenizer::Gpt2},
    Named{"granite-docling", PreTokenizer::Gpt2},
    Named{"jina-es", PreTokenizer::Gpt2},
    Named{"jina-de", PreTokenizer::Gpt2},
    Named{"jina-v2-es", PreTokenizer::Gpt2},
    Named{"jina-v2-de", PreTokenizer::Gpt2},
    Named{"gigachat", PreTokenizer::Gpt2},
    Named{"a.x-4.0", PreTokenizer::Gpt2},
    Named{"mellum", PreTokenizer::Gpt2},
    Named{"modern-bert", PreTokenizer::Gpt2},
    Named{"exaone4", PreTokenizer::Gpt2},
    Named{"llama-bpe", PreTokenizer::Llama3},
    Named{"llama3", PreTokenizer::Llama3},
    Named{"llama-v3", PreTokenizer::Llama3},
    Named{"falcon3", PreTokenizer::Llama3},
    Named{"falcon-h1", PreTokenizer::Llama3},
    Named{"pixtral", PreTokenizer::Llama3},
    Named{"midm-2.0", PreTokenizer::Llama3},
    Named{"lfm2", PreTokenizer::Llama3},
    Named{"jina-v5-nano", PreTokenizer::Llama3},
    Named{"qwen2", PreTokenizer::Qwen2},
    Named{"deepseek-r1-qwen", PreTokenizer::Qwen2},
    Named{"kormo", PreTokenizer::Qwen2},
    Named{"f2llmv2", PreTokenizer::Qwen2},
    Named{"megrez", PreTokenizer::Qwen2},
    Named{"stablelm2", PreTokenizer::Qwen2},
    Named{"hunyuan", PreTokenizer::Qwen2},
    Named{"solar-open", PreTokenizer::Qwen2},
    Named{"starcoder", PreTokenizer::Starcoder},
    Named{"smollm", PreTokenizer::Starcoder},
    Named{"refact", PreTokenizer::Starcoder},
    Named{"command-r", PreTokenizer::Starcoder},
    Named{"codeshell", PreTokenizer::Starcoder},
    Named{"exaone", PreTokenizer::Starcoder},
    Named{"minerva-7b", PreTokenizer::Starcoder},
    Named{"mellum2", PreTokenizer::Starcoder},
    Named{"deepseek-llm", PreTokenizer::DeepseekLlm},
    Named{"deepseek-coder", PreTokenizer::DeepseekCoder},
    Named{"deepseek-v3", PreTokenizer::DeepseekV3},
    Named{"hunyuan-dense", PreTokenizer::DeepseekV3},
    Named{"joyai-llm", PreTokenizer::DeepseekV3},
    Named{"hy_v4", PreTokenizer::DeepseekV3},
    Named{"tekken", PreTokenizer::Tekken},
    Named{"gpt-4o", PreTokenizer::Gpt4o},
    Named{"llama4", PreTokenizer::Gpt4o},
    Named{"kanana2", PreTokenizer::Gpt4o},
    Named{"talkie", PreTokenizer::Gpt4o},
    Named{"minimax-m2", PreTokenizer::Gpt4o},
    Named{"falcon", PreTokenizer::Falcon},
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

std::vector<std::string_view> preTokenizerNames(PreTokenizer pre) {
    std::vector<std::string_view> names;
    for (const Named& n : kNames)
        if (n.pre == pre) names.push_back(n.name);
    return names;
}

bool ignoresMerges(PreTokenizer pre) {
    return pre == PreTokenizer::Llama3 || pre == PreTokenizer::Tekken;
}

std::string llamaCppUtf8(std::string_view piece) {
    bool same = true;
    for (size_t i = 0; i < piece.size() && same;) {
        const Decoded d = decodeLikeLlama(piece, i);
        const uint32_t shortest = d.cp < 0x80 ? 1 : d.cp < 0x800 ? 2 : d.cp < 0x10000 ? 3 : 4;
        same = d.cp == kReplacement ? d.length == 3 : d.cp > 0x10FFFF || shortest == d.length;
        i += d.length;
    }
    if (same) return {};
    std::string out;
    out.reserve(piece.size() + 8);
    for (size_t i = 0; i < piece.size();) {
        const Decoded d = decodeLikeLlama(piece, i);
        if (d.cp > 0x10FFFF)
            out.append(piece.substr(i, d.length));
        else
            utf8::append(out, d.cp);
        i += d.length;
    }
    return out;
}

std::vector<std::string_view> preTokenize(PreTokenizer pre, std::string_view text) {
    std::vector<Char> chars;
    std::vector<size_t> offsets;  // byte offset of each character, then text.size()
    chars.reserve(text.size());
    offsets.reserve(text.size() + 1);
    for (size_t i = 0; i < text.size();) {
        const Decoded d = decodeLikeLlama(text, i);
        chars.push_back({d.cp, category(d.cp)});
        offsets.push_back(i);
        i += d.length;
    }
    offsets.push_back(text.size());

    Ends ends;
    if (!chars.empty()) ends.push_back(chars.size());
    Ends next;
    for (const Stage& stage : stagesOf(pre)) {
        next.clear();
        next.reserve(ends.size() * 2);
        size_t begin = 0;
        for (const size_t end : ends) {
            const Span span{chars.data(), begin, end};
            if (stage.match != nullptr) {
                searchSplit(span, stage.match, next);
            } else {
                trailingSpaceSplit(span, next);
            }
            begin = end;
        }
        ends.swap(next);
    }

    std::vector<std::string_view> pieces;
    pieces.reserve(ends.size());
    size_t begin = 0;
    for (const size_t end : ends) {
        pieces.push_back(text.substr(offsets[begin], offsets[end] - offsets[begin]));
        begin = end;
    }
    return pieces;
}

}  // namespace kvscope
