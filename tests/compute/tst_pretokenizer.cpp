// Tests of the byte-level BPE pre-tokenizers (compute/text/pretokenizer.h): hand-worked splits for
// each one, pieces that tile any bytes, the tokenizer.ggml.pre names, and linear time.
//
// Every expected split below is worked out by hand from the regexes llama.cpp's llama-vocab lists
// for that pre-tokenizer (quoted before each group), read the way llama.cpp runs them: each regex
// splits every piece of the one before into its matches and the stretches between them, never
// looking past the piece; first alternative that matches wins, quantifiers are greedy and back
// off as ECMAScript's do; \p{Lu}/\p{Ll}/... count as \p{L}; an invalid byte is one U+FFFD (\p{S})
// and an overlong form the code point it spells. The regex is the reason for each expectation,
// never this code's output.
#include <QElapsedTimer>
#include <QTest>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/pretokenizer.h"

using kvscope::PreTokenizer;

namespace {

QByteArray toQt(std::string_view s) {
    return QByteArray(s.data(), qsizetype(s.size()));
}

std::string toStd(const QByteArray& a) {
    return std::string(a.constData(), size_t(a.size()));
}

QList<QByteArray> split(PreTokenizer pre, const QByteArray& text) {
    const std::string input = toStd(text);
    QList<QByteArray> pieces;
    for (const std::string_view piece : kvscope::preTokenize(pre, input)) pieces << toQt(piece);
    return pieces;
}

// Where the characters start, as llama.cpp's decoder reads bytes: a lead byte's high bits give
// the length, and the continuation bytes must be there; anything else is one byte.
std::vector<bool> characterStarts(const std::string& s) {
    std::vector<bool> starts(s.size() + 1, false);
    for (size_t i = 0; i < s.size();) {
        starts[i] = true;
        const auto b = uint8_t(s[i]);
        size_t length = 1;
        if (b >= 0xC0 && b < 0xE0) length = 2;
        if (b >= 0xE0 && b < 0xF0) length = 3;
        if (b >= 0xF0 && b < 0xF8) length = 4;
        if (i + length > s.size()) length = 1;
        for (size_t k = 1; k < length; ++k)
            if ((uint8_t(s[i + k]) & 0xC0) != 0x80) length = 1;
        i += length;
    }
    starts[s.size()] = true;
    return starts;
}

// The pieces are non-empty, follow each other in the text without a gap, cover it exactly, and
// start and end on character boundaries.
void checkTiling(PreTokenizer pre, const std::string& text) {
    const std::vector<std::string_view> pieces = kvscope::preTokenize(pre, text);
    const std::vector<bool> starts = characterStarts(text);
    size_t offset = 0;
    for (const std::string_view piece : pieces) {
        QVERIFY2(!piece.empty(), "an empty piece");
        QVERIFY2(piece.data() == text.data() + offset, "a piece that does not follow the last");
        QVERIFY2(starts[offset], "a piece that starts inside a character");
        offset += piece.size();
    }
    QCOMPARE(offset, text.size());
    QVERIFY2(starts[offset], "the last piece ends inside a character");
}

}  // namespace

Q_DECLARE_METATYPE(PreTokenizer)

class TstPreTokenizer : public QObject {
    Q_OBJECT

  private slots:
    void split_data();
    void split();
    void tilesRandomBytes_data();
    void tilesRandomBytes();
    void linearTime_data();
    void linearTime();
    void names_data();
    void names();
    void unknownName_data();
    void unknownName();
    void ignoresMerges();
};

void TstPreTokenizer::split_data() {
    QTest::addColumn<PreTokenizer>("pre");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QList<QByteArray>>("pieces");
    using L = QList<QByteArray>;
    const auto row = [](const char* name, PreTokenizer pre, const QByteArray& text,
                        const L& pieces) { QTest::newRow(name) << pre << text << pieces; };

    // ---- GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    // (more rows in tst_tokenizer)
    constexpr PreTokenizer gpt2 = PreTokenizer::Gpt2;
    row("gpt2: empty", gpt2, "", L{});
    // Contractions are lower-case only: "'" is a punctuation run, then "LL" letters.
    row("gpt2: contraction upper", gpt2, "I'LL", L{"I", "'", "LL"});
    row("gpt2: contraction lower", gpt2, "don't", L{"don", "'t"});
    // "  " before "h": \s+(?!\S) backs off one space, which then joins " hello".
    row("gpt2: two leading spaces", gpt2, "  hello", L{" ", " hello"});
    // ` ?\p{N}+` takes any run of digits, space included.
    row("gpt2: seven digits", gpt2, "a 1234567", L{"a", " 1234567"});
    row("gpt2: crlf", gpt2, "a\r\nb", L{"a", "\r", "\n", "b"});

    // ---- Default (llama.cpp's fallback), four regexes in turn:
    //   [\p{P}\$\+<=>\^~\|]+ ; GPT-2's ; \p{N}+ ; [0-9][0-9][0-9]
    constexpr PreTokenizer def = PreTokenizer::Default;
    // The first regex takes "'" away before GPT-2's could see the contraction "'t".
    row("default: contraction", def, "don't", L{"don", "'", "t"});
    // "." is split off first: "x " is left, where GPT-2's takes the final space alone.
    row("default: space before punct", def, "x .y", L{"x", " ", ".", "y"});
    // GPT-2's gives " 12345"; \p{N}+ splits the space off; [0-9]{3} takes "123" and leaves "45"
    // (too short for a match) as a piece between matches.
    row("default: digits", def, "a 12345", L{"a", " ", "123", "45"});
    row("default: seven digits", def, "1234567", L{"123", "456", "7"});
    // ² ³ ¹ are \p{N} but not [0-9].
    row("default: superscripts", def, "x²³¹", L{"x", "²³¹"});
    // "$" is in the first regex's set, "€" (a non-ASCII \p{S}) is not: GPT-2's joins it to the
    // space before it.
    row("default: currency", def, "$5 €5", L{"$", "5", " €", "5"});
    // "^" is in the set, "`" is not.
    row("default: backtick", def, "a`b^c", L{"a", "`", "b", "^", "c"});
    row("default: words", def, "Hello, world!", L{"Hello", ",", " world", "!"});

    // ---- Falcon: [\p{P}\$\+<=>\^~\|`]+ ; GPT-2's ; [0-9][0-9][0-9]
    constexpr PreTokenizer falcon = PreTokenizer::Falcon;
    row("falcon: backtick", falcon, "a`b^c", L{"a", "`", "b", "^", "c"});
    row("falcon: contraction", falcon, "don't", L{"don", "'", "t"});
    // No \p{N}+ here: " 12" stays whole (too short for [0-9]{3}).
    row("falcon: two digits", falcon, " 12", L{" 12"});
    // [0-9]{3} finds "123" inside " 12345": " " before it and "45" after are pieces.
    row("falcon: five digits", falcon, "a 12345", L{"a", " ", "123", "45"});

    // ---- Starcoder (also smollm, refact, ...): \p{N} ; GPT-2's
    constexpr PreTokenizer star = PreTokenizer::Starcoder;
    // Each digit is a piece; "a " is left, where GPT-2's takes the final space alone.
    row("starcoder: digits", star, "a 123", L{"a", " ", "1", "2", "3"});
    row("starcoder: digit between letters", star, "x1y", L{"x", "1", "y"});
    row("starcoder: roman numeral", star, "Ⅻ2", L{"Ⅻ", "2"});
    row("starcoder: contractions", star, "I'LL don't", L{"I", "'", "LL", " don", "'t"});

    // ---- Llama 3: (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|
    //   [^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    constexpr PreTokenizer llama3 = PreTokenizer::Llama3;
    // Contractions in either case.
    row("llama3: contraction upper", llama3, "I'LL", L{"I", "'LL"});
    row("llama3: contraction lower", llama3, "don't", L{"don", "'t"});
    row("llama3: two contractions", llama3, "WE'VE'D", L{"WE", "'VE", "'D"});
    // \p{N}{1,3}: runs of digits in threes from the left.
    row("llama3: seven digits", llama3, "1234567", L{"123", "456", "7"});
    row("llama3: digits between letters", llama3, "abc1234def", L{"abc", "123", "4", "def"});
    // A space before digits is no prefix (` ?` belongs to the punctuation alternative only):
    // \s+(?!\S) fails on one space before "1", \s+ takes it.
    row("llama3: space digits", llama3, " 12", L{" ", "12"});
    row("llama3: two leading spaces", llama3, "  hello", L{" ", " hello"});
    // \s*[\r\n]+ runs through the last newline.
    row("llama3: newlines", llama3, "hello\n\n\nworld", L{"hello", "\n\n\n", "world"});
    // \s* backs off to " \r", [\r\n]+ takes "\n"; the last space prefixes "b".
    row("llama3: space crlf space", llama3, "a \r\n b", L{"a", " \r\n", " b"});
    row("llama3: spaces then newline at end", llama3, "a  \n", L{"a", "  \n"});
    // A tab is a prefix too ([^\r\n\p{L}\p{N}]), after \s+(?!\S) left it.
    row("llama3: tabs", llama3, "x\t\ty", L{"x", "\t", "\ty"});
    // So is a no-break space, and any punctuation mark.
    row("llama3: nbsp prefix", llama3, "\u00a0x", L{"\u00a0x"});
    row("llama3: parenthesis prefix", llama3, "(café)", L{"(café", ")"});
    // The punctuation alternative takes the newlines after it.
    row("llama3: punctuation newlines", llama3, "...\n\nok", L{"...\n\n", "ok"});
    row("llama3: cjk", llama3, "日本語123", L{"日本語", "123"});
    row("llama3: cjk space", llama3, "你好 世界", L{"你好", " 世界"});
    // An emoji and its skin tone are both \p{S}.
    row("llama3: emoji", llama3, "👍🏽 ok", L{"👍🏽", " ok"});
    // A combining mark (\p{M}) is no letter: it ends "nai" and prefixes "ve".
    row("llama3: combining mark", llama3, "nai\u0308ve", L{"nai", "\u0308ve"});
    // Invalid bytes are U+FFFD, a \p{S}: one prefixes a word; two make a run.
    row("llama3: invalid byte prefix", llama3,
        "\xff"
        "b",
        L{"\xff"
          "b"});
    row("llama3: invalid bytes", llama3,
        "a\xff\xfe"
        "b",
        L{"a", "\xff\xfe", "b"});

    // ---- Qwen2: as Llama 3 with \p{N} for \p{N}{1,3}
    constexpr PreTokenizer qwen2 = PreTokenizer::Qwen2;
    row("qwen2: seven digits", qwen2, "1234567", L{"1", "2", "3", "4", "5", "6", "7"});
    row("qwen2: digits after letters", qwen2, "abc123", L{"abc", "1", "2", "3"});
    row("qwen2: contraction upper", qwen2, "I'LL", L{"I", "'LL"});
    row("qwen2: space digits", qwen2, " 12", L{" ", "1", "2"});
    row("qwen2: newlines", qwen2, "a\r\n\r\nb", L{"a", "\r\n\r\n", "b"});

    // ---- DeepSeek LLM, six regexes in turn: [\r\n] ; \s?[A-Za-zµÀ-Ö...]+ (a set of cased
    //   letters) ; \s?[!-/:-~！-／：-～‘-‟　-。]+ ; \s+$ ; [一-龥ࠀ-一가-퟿]+ ;
    //   \p{N}+
    // (the regexes without \p{..} see non-ASCII whitespace as U+000B, in no set)
    constexpr PreTokenizer dsLlm = PreTokenizer::DeepseekLlm;
    row("deepseek-llm: words", dsLlm, "Hello world", L{"Hello", " world"});
    // "'" is no letter: the second regex leaves it between "don" and "t".
    row("deepseek-llm: contraction", dsLlm, "don't", L{"don", "'", "t"});
    row("deepseek-llm: crlf", dsLlm, "a\r\nb", L{"a", "\r", "\n", "b"});
    // The first space is followed by a space, not a letter: a piece between matches.
    row("deepseek-llm: two spaces", dsLlm, "Hi  there", L{"Hi", " ", " there"});
    // " 12345" matches neither set; \p{N}+ splits the digits from the space.
    row("deepseek-llm: digits", dsLlm, "x 12345", L{"x", " ", "12345"});
    // "，" (U+FF0C) is in ！-／; the ideographs are in 一-龥.
    row("deepseek-llm: fullwidth comma", dsLlm, "你好，世界", L{"你好", "，", "世界"});
    // Nothing before \s+$ splits "日本  ": it takes the trailing spaces.
    row("deepseek-llm: trailing spaces", dsLlm, "日本  ", L{"日本", "  "});
    // "—" (U+2014) is in neither set. The third regex's [:-~] holds the ASCII letters but not
    // "ï": it splits "naïve" again.
    row("deepseek-llm: em dash", dsLlm, "naïve—ok", L{"na", "ï", "ve", "—", "ok"});
    // U+3000 is \s, so it can lead a run of letters.
    row("deepseek-llm: ideographic space", dsLlm, "\u3000x", L{"\u3000x"});
    // ... but it never matches the 　-。 range (it is U+000B there): the third regex takes "。"
    // and then "\u3000。"; [ࠀ-一] (U+0800..U+4E00) holds "。" but not U+3000, so the fifth splits
    // the second piece again.
    row("deepseek-llm: ideographic space in punct", dsLlm, "。\u3000。", L{"。", "\u3000", "。"});
    // U+FFFD is in no set.
    row("deepseek-llm: invalid byte", dsLlm,
        "a\xff"
        "b",
        L{"a", "\xff", "b"});
    row("deepseek-llm: letters digits", dsLlm, "abc 123", L{"abc", " ", "123"});

    // ---- DeepSeek Coder: [\r\n] ; \s?\p{L}+ ; \s?\p{P}+ ; [一-龥ࠀ-一가-퟿]+ ; \p{N}
    constexpr PreTokenizer dsCoder = PreTokenizer::DeepseekCoder;
    // "=" is \p{S}, not \p{P}: " = " is left whole; each digit is a piece.
    row("deepseek-coder: assignment", dsCoder, "x = 12", L{"x", " = ", "1", "2"});
    row("deepseek-coder: call", dsCoder, "foo.bar()", L{"foo", ".", "bar", "()"});
    // " 語" matches \s?\p{L}+; the ideograph set then splits its space off.
    row("deepseek-coder: cjk", dsCoder, "日本 語", L{"日本", " ", "語"});
    row("deepseek-coder: crlf", dsCoder, "a\r\n", L{"a", "\r", "\n"});
    row("deepseek-coder: contraction", dsCoder, "don't", L{"don", "'", "t"});

    // ---- DeepSeek V3: \p{N}{1,3} ; [一-龥぀-ゟ゠-ヿ]+ ;
    //   [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
    //   ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    constexpr PreTokenizer dsV3 = PreTokenizer::DeepseekV3;
    row("deepseek-v3: words", dsV3, "Hello world", L{"Hello", " world"});
    row("deepseek-v3: seven digits", dsV3, "1234567", L{"123", "456", "7"});
    row("deepseek-v3: digits between letters", dsV3, "abc1234def", L{"abc", "123", "4", "def"});
    // Kanji and katakana are one run, split from the Latin letters after them.
    row("deepseek-v3: kanji katakana", dsV3, "日本語テキスト", L{"日本語テキスト"});
    row("deepseek-v3: kanji latin", dsV3, "日本語abc", L{"日本語", "abc"});
    // An ASCII punctuation mark and the ASCII letters after it.
    row("deepseek-v3: dot com", dsV3, "x.com", L{"x", ".com"});
    row("deepseek-v3: contraction", dsV3, "don't", L{"don", "'t"});
    row("deepseek-v3: contraction upper", dsV3, "I'LL", L{"I", "'LL"});
    // [\p{L}\p{M}]+ keeps a combining mark in its word.
    row("deepseek-v3: combining mark", dsV3, "nai\u0308ve", L{"nai\u0308ve"});
    row("deepseek-v3: comma", dsV3, "a, b", L{"a", ",", " b"});
    // "+=" is \p{S}; the last space ends its piece, so \s+(?!\S) takes it alone.
    row("deepseek-v3: operator", dsV3, "x += 1", L{"x", " +=", " ", "1"});
    // A zero-width joiner (\p{C}) matches nothing alone; before a letter it is a prefix.
    row("deepseek-v3: joiners", dsV3,
        "a\u200d\u200d"
        "b",
        L{"a", "\u200d",
          "\u200d"
          "b"});
    // Invalid bytes are \p{S}: one run with "!".
    row("deepseek-v3: invalid bytes", dsV3, "\xff\xfe!", L{"\xff\xfe!"});
    row("deepseek-v3: punct newlines", dsV3, "ok!\n\nyes", L{"ok", "!\n\n", "yes"});

    // ---- Tekken: [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|
    //   [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}|
    //   ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
    // "Upper" is a letter other than a-z, "lower" a letter other than A-Z: a non-ASCII letter
    // is both.
    constexpr PreTokenizer tekken = PreTokenizer::Tekken;
    row("tekken: camel case", tekken, "HelloWorld", L{"Hello", "World"});
    row("tekken: lower then upper", tekken, "iPhone", L{"i", "Phone"});
    // No lower after "HELLO": the second alternative takes the upper run.
    row("tekken: all caps", tekken, "HELLO world", L{"HELLO", " world"});
    // The first alternative's upper run "ÉCOLE" has no lower after it; it backs off until "É"
    // (a lower too) can be the lower run. "COLE" is the second alternative's.
    row("tekken: accented caps", tekken, "ÉCOLE", L{"É", "COLE"});
    row("tekken: caps then accent", tekken, "ABCé", L{"ABCé"});
    row("tekken: accent then caps", tekken, "ÀB", L{"À", "B"});
    row("tekken: sharp s", tekken, "Straße", L{"Straße"});
    row("tekken: cjk", tekken, "日本語", L{"日本語"});
    // No contractions: "'" is the prefix of "t".
    row("tekken: contraction", tekken, "don't", L{"don", "'t"});
    row("tekken: contraction upper", tekken, "I'LL", L{"I", "'LL"});
    row("tekken: digits", tekken, "123", L{"1", "2", "3"});
    row("tekken: slash prefix", tekken, "a/b", L{"a", "/b"});
    // [\r\n/]* after a punctuation run.
    row("tekken: punct newline slash", tekken, "!!\n/x", L{"!!\n/", "x"});
    // A combining mark is no letter here.
    row("tekken: combining mark", tekken, "e\u0301te", L{"e", "\u0301te"});
    row("tekken: two leading spaces", tekken, "  Hi", L{" ", " Hi"});
    row("tekken: invalid bytes", tekken,
        "\xff\xfe"
        "ab",
        L{"\xff\xfe", "ab"});

    // ---- GPT-4o (also llama4): Tekken's with \p{N}{1,3} and an optional
    //   (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]) after each word
    constexpr PreTokenizer gpt4o = PreTokenizer::Gpt4o;
    row("gpt-4o: contraction", gpt4o, "don't", L{"don't"});
    row("gpt-4o: contraction upper", gpt4o, "I'LL", L{"I'LL"});
    row("gpt-4o: contraction mixed", gpt4o, "They'RE here", L{"They'RE", " here"});
    row("gpt-4o: contraction then letter", gpt4o, "x'sy", L{"x's", "y"});
    row("gpt-4o: seven digits", gpt4o, "1234567", L{"123", "456", "7"});
    row("gpt-4o: accented caps", gpt4o, "ÉCOLE's", L{"É", "COLE's"});
    // The upper run "HELLOW" is followed by a-z: one word.
    row("gpt-4o: caps run", gpt4o, "HELLOWorld", L{"HELLOWorld"});
    row("gpt-4o: newline slash", gpt4o, "a\n/b", L{"a", "\n", "/b"});
    // \s*[\r\n]+ backs off to "  \n"; then \s+(?!\S) leaves one space to prefix "x".
    row("gpt-4o: spaces newline spaces", gpt4o, "  \n  x", L{"  \n", " ", " x"});
    // Overlong "A" (C1 81) is an upper-case letter after a lower-case one.
    row("gpt-4o: overlong letter", gpt4o, "x\xc1\x81", L{"x", "\xc1\x81"});
}

void TstPreTokenizer::split() {
    QFETCH(PreTokenizer, pre);
    QFETCH(QByteArray, text);
    QFETCH(QList<QByteArray>, pieces);
    QCOMPARE(::split(pre, text), pieces);
}

void TstPreTokenizer::tilesRandomBytes_data() {
    QTest::addColumn<PreTokenizer>("pre");
    for (const PreTokenizer pre : kvscope::kAllPreTokenizers)
        QTest::newRow(std::string(kvscope::preTokenizerName(pre)).c_str()) << pre;
}

// Random strings, of any bytes or of fragments chosen to meet every class and rule (invalid
// bytes among them): the pieces tile each one.
void TstPreTokenizer::tilesRandomBytes() {
    QFETCH(PreTokenizer, pre);
    const std::vector<std::string> fragments = {"a",
                                                "Z",
                                                "e",
                                                "'",
                                                "s",
                                                "S",
                                                "ll",
                                                "LL",
                                                " ",
                                                " ",
                                                "  ",
                                                "\t",
                                                "\n",
                                                "\r\n",
                                                "\r",
                                                "\v",
                                                "1",
                                                "23",
                                                "!",
                                                "/",
                                                ".",
                                                "$",
                                                "`",
                                                "é",
                                                "É",
                                                "ß",
                                                "日",
                                                "テ",
                                                "가",
                                                "，",
                                                "。",
                                                "\u3000",
                                                "\u00a0",
                                                "\u0085",
                                                "\u0301",
                                                "\u200d",
                                                "²",
                                                "Ⅻ",
                                                "🙂",
                                                "🏽",
                                                "\ufe0f",
                                                "\x80",
                                                "\xff",
                                                "\xc3",
                                                "\xe6\x97",
                                                "\xc0\x80",
                                                "\xc1\x81",
                                                "\xed\xa0\x80",
                                                "\xf4\x90\x80\x80",
                                                "\xf7\xbf\xbf\xbf",
                                                std::string(1, '\0'),
                                                "\x1c"};
    std::mt19937 rng(20240611);
    for (int n = 0; n < 3000; ++n) {
        std::string text;
        const size_t length = rng() % (n % 10 == 0 ? 200 : 24);
        for (size_t i = 0; i < length; ++i) {
            if (n % 2 == 0) {
                text += char(rng() % 256);
            } else {
                text += fragments[rng() % fragments.size()];
            }
        }
        checkTiling(pre, text);
        if (QTest::currentTestFailed()) {
            qWarning("input: %s", toQt(text).toHex(' ').constData());
            return;
        }
    }
}

void TstPreTokenizer::linearTime_data() {
    QTest::addColumn<PreTokenizer>("pre");
    for (const PreTokenizer pre : kvscope::kAllPreTokenizers)
        QTest::newRow(std::string(kvscope::preTokenizerName(pre)).c_str()) << pre;
}

// Long runs that a matcher backing off badly would take quadratic time on (a whitespace run
// before a word, an upper-case run after an accented capital, digits, punctuation): 200,000
// characters each, split well within a second (a quadratic one would take minutes).
void TstPreTokenizer::linearTime() {
    QFETCH(PreTokenizer, pre);
    // before + middle repeated `times` times + after.
    const auto run = [](const std::string& before, const std::string& middle, size_t times,
                        const std::string& after) {
        std::string out = before;
        out.reserve(before.size() + middle.size() * times + after.size());
        for (size_t i = 0; i < times; ++i) out += middle;
        out += after;
        return out;
    };
    const size_t n = 200000;
    const std::vector<std::string> inputs = {
        run("", " ", n, "x"),   run("\n", " ", n, "x"),     run("", "A", n, ""),
        run("É", "A", n, ""),   run("", "a", n, "'s"),      run("", "7", n, ""),
        run("", "!", n, "\n"),  run("", "\r\n", n / 2, ""), run("", "\u3000", n, "x"),
        run("", "\xff", n, ""), run("", "日", n, ""),       run("", "a ", n / 2, ""),
    };
    QElapsedTimer timer;
    timer.start();
    for (const std::string& text : inputs) {
        checkTiling(pre, text);
        if (QTest::currentTestFailed()) return;
    }
    QVERIFY2(timer.elapsed() < 10000, qPrintable(QString("took %1 ms").arg(timer.elapsed())));
}

void TstPreTokenizer::names_data() {
    QTest::addColumn<QString>("name");
    QTest::addColumn<PreTokenizer>("pre");
    const auto row = [](const char* name, PreTokenizer pre) {
        QTest::newRow(name) << QString(name) << pre;
    };
    row("default", PreTokenizer::Default);
    row("gpt-2", PreTokenizer::Gpt2);
    row("phi-2", PreTokenizer::Gpt2);
    row("llama-bpe", PreTokenizer::Llama3);
    row("llama3", PreTokenizer::Llama3);
    row("llama-v3", PreTokenizer::Llama3);
    row("falcon3", PreTokenizer::Llama3);
    row("pixtral", PreTokenizer::Llama3);
    row("qwen2", PreTokenizer::Qwen2);
    row("deepseek-r1-qwen", PreTokenizer::Qwen2);
    row("smollm", PreTokenizer::Starcoder);
    row("starcoder", PreTokenizer::Starcoder);
    row("refact", PreTokenizer::Starcoder);
    row("deepseek-llm", PreTokenizer::DeepseekLlm);
    row("deepseek-coder", PreTokenizer::DeepseekCoder);
    row("deepseek-v3", PreTokenizer::DeepseekV3);
    row("tekken", PreTokenizer::Tekken);
    row("gpt-4o", PreTokenizer::Gpt4o);
    row("llama4", PreTokenizer::Gpt4o);
    row("falcon", PreTokenizer::Falcon);
}

void TstPreTokenizer::names() {
    QFETCH(QString, name);
    QFETCH(PreTokenizer, pre);
    const std::string s = name.toStdString();
    QCOMPARE(kvscope::preTokenizerFromName(s), pre);
    const std::vector<std::string_view> all = kvscope::preTokenizerNames(pre);
    QVERIFY(std::find(all.begin(), all.end(), s) != all.end());
    // The first name reads back as the same pre-tokenizer.
    QCOMPARE(all.front(), kvscope::preTokenizerName(pre));
    QCOMPARE(kvscope::preTokenizerFromName(kvscope::preTokenizerName(pre)), pre);
}

void TstPreTokenizer::unknownName_data() {
    QTest::addColumn<QString>("name");
    QTest::newRow("made up") << "llama-5";
    QTest::newRow("case differs") << "LLAMA-BPE";
    QTest::newRow("empty") << "";
    // llama.cpp knows it, but its split or its tokenizer flags are not implemented here.
    QTest::newRow("qwen35") << "qwen35";
    QTest::newRow("dbrx") << "dbrx";
}

void TstPreTokenizer::unknownName() {
    QFETCH(QString, name);
    QString message;
    try {
        kvscope::preTokenizerFromName(name.toStdString());
    } catch (const kvscope::Error& e) {
        message = QString::fromUtf8(e.what());
    }
    QVERIFY2(message.contains("tokenizer.ggml.pre = '" + name + "'"), qPrintable(message));
    // It lists what it does read.
    QVERIFY2(message.contains("llama-bpe") && message.contains("qwen2"), qPrintable(message));
}

void TstPreTokenizer::ignoresMerges() {
    for (const PreTokenizer pre : kvscope::kAllPreTokenizers) {
        const bool expected = pre == PreTokenizer::Llama3 || pre == PreTokenizer::Tekken;
        QCOMPARE(kvscope::ignoresMerges(pre), expected);
    }
}

QTEST_GUILESS_MAIN(TstPreTokenizer)
#include "tst_pretokenizer.moc"
