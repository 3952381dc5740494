// UTF-8 in one place: strict decoding of one character (no overlong forms, no surrogates, nothing
// past U+10FFFF; an invalid or truncated sequence is its first byte alone) and encoding. Used by
// the tokenizers and by the views' token labels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvscope::utf8 {

inline constexpr char32_t kInvalid = 0x110000;  // stands for one byte that is not valid UTF-8

struct Decoded {
    char32_t cp;    // kInvalid for an invalid byte
    size_t length;  // bytes consumed: 1 for an invalid byte
};

inline bool isContinuation(uint8_t b) {
    return (b & 0xC0) == 0x80;
}

// The character starting at s[i] (i < s.size()).
inline Decoded decodeAt(std::string_view s, size_t i) {
    const auto at = [&](size_t k) { return uint8_t(s[k]); };
    const uint8_t b0 = at(i);
    if (b0 < 0x80) return {b0, 1};
    const size_t left = s.size() - i;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (left >= 2 && isContinuation(at(i + 1)))
            return {char32_t((b0 & 0x1F) << 6 | (at(i + 1) & 0x3F)), 2};
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (left >= 3 && isContinuation(at(i + 1)) && isContinuation(at(i + 2))) {
            const char32_t cp =
                char32_t((b0 & 0x0F) << 12 | (at(i + 1) & 0x3F) << 6 | (at(i + 2) & 0x3F));
            if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) return {cp, 3};
        }
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (left >= 4 && isContinuation(at(i + 1)) && isContinuation(at(i + 2)) &&
            isContinuation(at(i + 3))) {
            const char32_t cp = char32_t((b0 & 0x07) << 18 | (at(i + 1) & 0x3F) << 12 |
                                         (at(i + 2) & 0x3F) << 6 | (at(i + 3) & 0x3F));
            if (cp >= 0x10000 && cp <= 0x10FFFF) return {cp, 4};
        }
    }
    return {kInvalid, 1};
}

inline void append(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

}  // namespace kvscope::utf8
