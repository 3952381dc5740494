// Tests of the GPT-2 byte-level BPE tokenizer (compute/text/tokenizer.h): the pre-tokenizer split,
// merges applied by rank, the byte alphabet, exact round trips of any bytes, constructor
// validation and reading a vocabulary from GGUF metadata.
#include <QTest>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "gguf/gguf.h"
#include "text/tokenizer.h"

using kvscope::GgufValue;
using kvscope::Tokenizer;

namespace {

// The 256 single-byte symbols in byte order, so that a byte's token id is the byte value.
std::vector<std::string> byteSymbols() {
    std::vector<std::string> symbols;
    for (int b = 0; b < 256; ++b) symbols.push_back(Tokenizer::byteToSymbol(uint8_t(b)));
    return symbols;
}

// Fixture merges, in rank order; each appends its result to the vocabulary:
//   rank 0 "h e"    -> "he"    id 256
//   rank 1 "Ġ t"    -> "Ġt"    id 257
//   rank 2 "Ġt he"  -> "Ġthe"  id 258
//   rank 3 "l l"    -> "ll"    id 259
//   rank 4 "e ll"   -> "ell"   id 260
//   rank 5 "a 1"    -> "a1"    id 261
// then two special tokens: "<|endoftext|>" id 262 (bos and eos), "<|日本|>" id 263.
const std::vector<std::string> kMerges = {"h e", "Ġ t", "Ġt he", "l l", "e ll", "a 1"};
constexpr int kEndOfText = 262;
constexpr int kFixtureSize = 264;

std::vector<std::string> fixtureTokens() {
    std::vector<std::string> tokens = byteSymbols();
    for (const std::string& merge : kMerges) {
        const size_t space = merge.find(' ');
        tokens.push_back(merge.substr(0, space) + merge.substr(space + 1));
    }
    tokens.push_back("<|endoftext|>");
    tokens.push_back("<|日本|>");
    return tokens;
}

Tokenizer fixture() {
    return Tokenizer(fixtureTokens(), kMerges, kEndOfText, kEndOfText);
}

std::string toStd(const QByteArray& a) {
    return std::string(a.constData(), size_t(a.size()));
}

QByteArray toQt(std::string_view s) {
    return QByteArray(s.data(), qsizetype(s.size()));
}

QList<int> toList(const std::vector<int32_t>& ids) {
    return QList<int>(ids.begin(), ids.end());
}

// The message of the kvscope::Error that f throws, or an empty string if it throws none.
QString errorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const kvscope::Error& e) {
        return QString::fromUtf8(e.what());
    }
    return {};
}

// Every fragment must occur in message.
void checkMessage(const QString& message, const QStringList& fragments) {
    QVERIFY2(!message.isEmpty(), "expected a kvscope::Error, none was thrown");
    for (const QString& fragment : fragments) {
        QVERIFY2(message.contains(fragment),
                 qPrintable("'" + fragment + "' missing from: " + message));
    }
}

// Reference BPE, written the slow obvious way: repeatedly merge the leftmost of the
// lowest-ranked adjacent pairs. Returns the final symbols of one piece.
std::vector<std::string> naiveBpe(std::string_view piece,
                                  const std::map<std::pair<std::string, std::string>, int>& ranks) {
    std::vector<std::string> symbols;
    for (const char c : piece) symbols.push_back(Tokenizer::byteToSymbol(uint8_t(c)));
    while (true) {
        int bestRank = -1;
        size_t best = 0;
        for (size_t i = 0; i + 1 < symbols.size(); ++i) {
            const auto it = ranks.find({symbols[i], symbols[i + 1]});
            if (it != ranks.end() && (bestRank < 0 || it->second < bestRank)) {
                bestRank = it->second;
                best = i;
            }
        }
        if (bestRank < 0) break;
        symbols[best] += symbols[best + 1];
        symbols.erase(symbols.begin() + std::ptrdiff_t(best) + 1);
    }
    return symbols;
}

// A GGUF image holding the fixture vocabulary; model empty leaves tokenizer.ggml.model out.
std::vector<uint8_t> fixtureGguf(const std::string& model, bool withTokens, bool withMerges) {
    kvscope::GgufWriter writer;
    writer.set("general.architecture", GgufValue::str("gpt2"));
    if (!model.empty()) writer.set("tokenizer.ggml.model", GgufValue::str(model));
    if (withTokens) writer.set("tokenizer.ggml.tokens", GgufValue::stringArray(fixtureTokens()));
    if (withMerges) writer.set("tokenizer.ggml.merges", GgufValue::stringArray(kMerges));
    writer.set("tokenizer.ggml.bos_token_id", GgufValue::u32(kEndOfText));
    writer.set("tokenizer.ggml.eos_token_id", GgufValue::u32(kEndOfText));
    return writer.toBytes();
}

}  // namespace

class TstTokenizer : public QObject {
    Q_OBJECT

  private slots:
    void encodesByHand_data();
    void encodesByHand();
    void matchesReferenceBpe();
    void preTokenize_data();
    void preTokenize();
    void roundTrip_data();
    void roundTrip();
    void roundTripsRandomBytes();
    void encodesLargeInput();
    void byteToSymbol_data();
    void byteToSymbol();
    void byteAlphabetIsABijection();
    void specialTokensDecodeAsTheirText();
    void acceptsFixture();
    void rejects_data();
    void rejects();
    void fromGgufReadsVocabulary();
    void fromGgufRefuses_data();
    void fromGgufRefuses();
};

void TstTokenizer::encodesByHand_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QList<int>>("ids");

    // Ids below 256 are single bytes ('t' = 116); merged tokens are listed above kMerges.
    // "the": t h e; the only ranked pair is (h,e) rank 0 -> t|he.
    QTest::newRow("the") << QByteArray("the") << QList<int>{116, 256};
    // " the": Ġ t h e; (h,e) rank 0 -> Ġ t he; (Ġ,t) rank 1 -> Ġt he; (Ġt,he) rank 2 -> Ġthe.
    QTest::newRow(" the") << QByteArray(" the") << QList<int>{258};
    // Two pieces, "the" and " the", encoded separately.
    QTest::newRow("the the") << QByteArray("the the") << QList<int>{116, 256, 258};
    // " th": Ġ t h; (Ġ,t) rank 1 -> Ġt h; (Ġt,h) is no merge.
    QTest::newRow(" th") << QByteArray(" th") << QList<int>{257, 104};
    // "hell": (h,e) rank 0 beats (l,l) rank 3 -> he l l -> he ll; "e ll" never sees its e.
    QTest::newRow("hell") << QByteArray("hell") << QList<int>{256, 259};
    // "ell": (l,l) rank 3 -> e ll; then (e,ll) rank 4 -> ell.
    QTest::newRow("ell") << QByteArray("ell") << QList<int>{260};
    // "lll": (l,l) at 0 and at 1 tie on rank 3; the leftmost merges -> ll l.
    QTest::newRow("lll leftmost tie") << QByteArray("lll") << QList<int>{259, 108};
    // "llll": ll l l, then the remaining (l,l) -> ll ll.
    QTest::newRow("llll") << QByteArray("llll") << QList<int>{259, 259};
    // "a1" splits into the pieces "a" and "1", so merge "a 1" cannot apply across them.
    QTest::newRow("a1 across pieces") << QByteArray("a1") << QList<int>{97, 49};
    // " é": one piece of bytes 20 C3 A9, no merges.
    QTest::newRow("accent") << QByteArray(" \xc3\xa9") << QList<int>{32, 0xC3, 0xA9};
    // "\n\n" is one whitespace piece (the run reaches the end); (Ċ,Ċ) is no merge.
    QTest::newRow("newlines") << QByteArray("\n\n") << QList<int>{10, 10};
    QTest::newRow("empty") << QByteArray() << QList<int>{};
}

void TstTokenizer::encodesByHand() {
    QFETCH(QByteArray, text);
    QFETCH(QList<int>, ids);
    const Tokenizer tok = fixture();
    QCOMPARE(toList(tok.encode(toStd(text))), ids);
}

void TstTokenizer::matchesReferenceBpe() {
    // A random vocabulary over a, b, c and space: each merge joins two existing tokens (a result
    // may come from several merges), then random texts must encode as the reference BPE does.
    std::mt19937 rng(20240611);
    std::vector<std::string> tokens = byteSymbols();
    std::vector<std::string> pool = {"a", "b", "c", "Ġ"};
    std::vector<std::string> merges;
    std::map<std::pair<std::string, std::string>, int> ranks;
    for (int k = 0; k < 120; ++k) {
        const std::string left = pool[rng() % pool.size()];
        const std::string right = pool[rng() % pool.size()];
        if (ranks.count({left, right}) > 0) continue;
        ranks[{left, right}] = int(merges.size());
        merges.push_back(left + " " + right);
        const std::string merged = left + right;
        if (std::find(tokens.begin(), tokens.end(), merged) == tokens.end()) {
            tokens.push_back(merged);
            pool.push_back(merged);
        }
    }
    QVERIFY(merges.size() > 80);
    std::map<std::string, int> ids;
    for (size_t i = 0; i < tokens.size(); ++i) ids[tokens[i]] = int(i);
    const Tokenizer tok(tokens, merges);

    const char alphabet[] = {'a', 'b', 'c', ' '};
    int mergedTokens = 0;
    for (int n = 0; n < 2000; ++n) {
        std::string text;
        const size_t length = rng() % (n % 10 == 0 ? 300 : 30);
        for (size_t i = 0; i < length; ++i) text += alphabet[rng() % (n % 3 == 0 ? 3 : 4)];

        std::vector<int32_t> expected;
        for (const std::string_view piece : Tokenizer::preTokenize(text)) {
            for (const std::string& symbol : naiveBpe(piece, ranks)) {
                expected.push_back(ids.at(symbol));
                if (ids.at(symbol) >= 256) ++mergedTokens;
            }
        }
        QCOMPARE(toList(tok.encode(text)), toList(expected));
    }
    QVERIFY(mergedTokens > 1000);  // the merges did fire
}

void TstTokenizer::preTokenize_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QList<QByteArray>>("pieces");

    // Alternatives, tried in order at each position:
    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    using L = QList<QByteArray>;
    QTest::newRow("empty") << QByteArray() << L{};
    // " world": the optional space then letters.
    QTest::newRow("hello world") << QByteArray("Hello world") << L{"Hello", " world"};
    // "'m" is a contraction; " here" a spaced letter run.
    QTest::newRow("contraction m") << QByteArray("I'm here") << L{"I", "'m", " here"};
    QTest::newRow("contraction t") << QByteArray("don't") << L{"don", "'t"};
    QTest::newRow("contraction re") << QByteArray("they're") << L{"they", "'re"};
    QTest::newRow("contraction ll") << QByteArray("we'll") << L{"we", "'ll"};
    // Contractions are case-sensitive: "'" is punctuation, then "S" letters.
    QTest::newRow("contraction upper") << QByteArray("IT'S") << L{"IT", "'", "S"};
    // "''" is no contraction; the punctuation run takes both quotes.
    QTest::newRow("two quotes") << QByteArray("x''s") << L{"x", "''", "s"};
    // "   " is followed by "b": \s+(?!\S) backs off one space, which then joins " b".
    QTest::newRow("space run") << QByteArray("a   b") << L{"a", "  ", " b"};
    // "\n\n" before "y": \s+(?!\S) takes one "\n"; the second "\n" is followed by "y", so
    // \s+(?!\S) fails and \s+ takes it alone (` ?` only takes a space, not "\n").
    QTest::newRow("blank line") << QByteArray("x\n\ny") << L{"x", "\n", "\n", "y"};
    QTest::newRow("tabs") << QByteArray("\t\tx") << L{"\t", "\t", "x"};
    QTest::newRow("space tab space") << QByteArray("a \t b") << L{"a", " \t", " b"};
    QTest::newRow("crlf between") << QByteArray("a\r\nb") << L{"a", "\r", "\n", "b"};
    // A whitespace run that reaches the end is taken whole.
    QTest::newRow("crlf at end") << QByteArray("\r\n") << L{"\r\n"};
    QTest::newRow("trailing spaces") << QByteArray("end  ") << L{"end", "  "};
    QTest::newRow("one space") << QByteArray(" ") << L{" "};
    QTest::newRow("spaces then bang") << QByteArray("  !") << L{" ", " !"};
    QTest::newRow("digits") << QByteArray("abc123") << L{"abc", "123"};
    QTest::newRow("spaced digits") << QByteArray("x 42") << L{"x", " 42"};
    QTest::newRow("punctuation") << QByteArray("hi!!! ok") << L{"hi", "!!!", " ok"};
    // Letters beyond ASCII (\p{L}): é (Ll), 日本語 (Lo).
    QTest::newRow("accented") << QByteArray("café au lait") << L{"café", " au", " lait"};
    QTest::newRow("cjk") << QByteArray("日本語") << L{"日本語"};
    QTest::newRow("cyrillic greek") << QByteArray("мир αβ") << L{"мир", " αβ"};
    // Numbers beyond ASCII (\p{N}): ² (No), Ⅻ (Nl), ٣ (Nd).
    QTest::newRow("superscript") << QByteArray("x²!") << L{"x", "²", "!"};
    QTest::newRow("roman numeral") << QByteArray("Ⅻ ٣!") << L{"Ⅻ", " ٣", "!"};
    // An emoji is neither letter nor number: a punctuation-class piece.
    QTest::newRow("emoji") << QByteArray("🙂") << L{"🙂"};
    QTest::newRow("emoji between") << QByteArray("a 🙂b") << L{"a", " 🙂", "b"};
    // Non-ASCII whitespace (\s): U+3000 ideographic space, U+00A0 no-break space.
    QTest::newRow("ideographic space")
        << QByteArray("a\u3000\u3000b") << L{"a", "\u3000", "\u3000", "b"};
    QTest::newRow("nbsp at end") << QByteArray("a\u00a0") << L{"a", "\u00a0"};
    // U+001C (file separator) is not White_Space, so not \s (though Python's isspace() says
    // so): the space joins it as punctuation instead of being split off a whitespace run.
    QTest::newRow("file separator") << QByteArray(
                                           "a \x1c"
                                           "b")
                                    << L{"a", " \x1c", "b"};
    // Invalid UTF-8: every bad byte is one "other" character.
    QTest::newRow("ff fe") << QByteArray(
                                  "a\xff\xfe"
                                  "b")
                           << L{"a", "\xff\xfe", "b"};
    QTest::newRow("space continuation") << QByteArray(" \x80") << L{" \x80"};
    QTest::newRow("truncated at end") << QByteArray("\xc3") << L{"\xc3"};
    QTest::newRow("truncated then letter") << QByteArray(
                                                  "\xc3"
                                                  "a")
                                           << L{"\xc3", "a"};
    // E6 97 lacks its third byte; C3 A9 after it is a whole é.
    QTest::newRow("truncated then accent")
        << QByteArray("\xe6\x97\xc3\xa9") << L{"\xe6\x97", "\xc3\xa9"};
    QTest::newRow("continuation then accent")
        << QByteArray("\x80\xc3\xa9") << L{"\x80", "\xc3\xa9"};
    QTest::newRow("surrogate") << QByteArray("x\xed\xa0\x80") << L{"x", "\xed\xa0\x80"};
    // Overlong forms, as llama.cpp decodes them (unicode_cpt_from_utf8 checks only the lead
    // byte's length bits and the continuation bytes), are the code point they spell: 'A' is a
    // letter that joins "x"; a space that " ?\p{L}+" puts before "b".
    QTest::newRow("overlong letter") << QByteArray("x\xc1\x81") << L{"x\xc1\x81"};
    QTest::newRow("overlong letter 3") << QByteArray("x\xe0\x81\x81") << L{"x\xe0\x81\x81"};
    QTest::newRow("overlong letter 4") << QByteArray("x\xf0\x80\x81\x81") << L{"x\xf0\x80\x81\x81"};
    QTest::newRow("overlong space") << QByteArray(
                                           "a\xc0\xa0"
                                           "b")
                                    << L{"a",
                                         "\xc0\xa0"
                                         "b"};
    QTest::newRow("past U+10FFFF") << QByteArray("a\xf4\x90\x80\x80") << L{"a", "\xf4\x90\x80\x80"};
}

void TstTokenizer::preTokenize() {
    QFETCH(QByteArray, text);
    QFETCH(QList<QByteArray>, pieces);
    const std::string input = toStd(text);
    QList<QByteArray> actual;
    for (const std::string_view piece : Tokenizer::preTokenize(input)) actual << toQt(piece);
    QCOMPARE(actual, pieces);
}

void TstTokenizer::roundTrip_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::newRow("ascii") << QByteArray("The quick brown fox jumps over the lazy dog. 123!");
    QTest::newRow("accents") << QByteArray("Ça déjà été élu, naïve façade");
    QTest::newRow("cjk") << QByteArray("日本語のテキスト、中文文本");
    QTest::newRow("emoji") << QByteArray("🙂👍🏽 family: 👨‍👩‍👧");
    QTest::newRow("mixed scripts") << QByteArray("hello мир 世界 مرحبا שלום 42");
    QTest::newRow("whitespace runs") << QByteArray("  a \t\t b\n\n\n  c   ");
    QTest::newRow("crlf") << QByteArray("line one\r\nline two\r\n");
    QTest::newRow("control bytes") << QByteArray("\x01\x02\x1b[0m\x7f");
    QTest::newRow("nul bytes") << QByteArray("a\0b\0", 4);
    QTest::newRow("empty") << QByteArray();
    QTest::newRow("ff fe") << QByteArray("\xff\xfe");
    QTest::newRow("truncated") << QByteArray("\xc3");
    QTest::newRow("surrogate") << QByteArray("\xed\xa0\x80");
    QTest::newRow("overlong") << QByteArray("\xc0\xaf");
    QTest::newRow("lone continuation") << QByteArray("\x80");
    QTest::newRow("special token text") << QByteArray("<|endoftext|> the hell");
}

void TstTokenizer::roundTrip() {
    QFETCH(QByteArray, text);
    const Tokenizer tok = fixture();
    const std::string input = toStd(text);
    const std::vector<int32_t> ids = tok.encode(input);
    QCOMPARE(toQt(tok.decode(ids)), text);
    // Text is never parsed into special tokens.
    QVERIFY(std::find(ids.begin(), ids.end(), kEndOfText) == ids.end());
}

void TstTokenizer::roundTripsRandomBytes() {
    // Random strings, half the bytes drawn from ones that make interesting UTF-8 and splits.
    const Tokenizer tok = fixture();
    std::mt19937 rng(12345);
    const uint8_t interesting[] = {' ',  'a',  'h',  'e',  'l',  '1',  '\'', 's',  '\n', '\t',
                                   '!',  0xC3, 0xA9, 0xE6, 0x97, 0xA5, 0xF0, 0x9F, 0x99, 0x82,
                                   0x80, 0xBF, 0xED, 0xA0, 0xC0, 0xC1, 0xF4, 0x90, 0xFF, 0xE3};
    for (int n = 0; n < 4000; ++n) {
        std::string text;
        const size_t length = rng() % 64;
        for (size_t i = 0; i < length; ++i) {
            text += char(rng() % 2 == 0 ? interesting[rng() % sizeof(interesting)] : rng() % 256);
        }
        std::string joined;
        for (const std::string_view piece : Tokenizer::preTokenize(text)) {
            QVERIFY(!piece.empty());
            joined += piece;
        }
        QCOMPARE(toQt(joined), toQt(text));
        QCOMPARE(toQt(tok.decode(tok.encode(text))), toQt(text));
    }
}

void TstTokenizer::encodesLargeInput() {
    const Tokenizer tok = fixture();

    // One 1 MiB piece with no break (quadratic merging would take minutes and trip CTest's
    // time-out; speed itself is measured outside the tests).
    const std::string giant(size_t(1) << 20, 'l');
    const std::vector<int32_t> ids = tok.encode(giant);
    QCOMPARE(ids.size(), giant.size() / 2);
    QVERIFY(std::all_of(ids.begin(), ids.end(), [](int32_t id) { return id == 259; }));

    // 1 MiB of ordinary mixed text.
    std::string text;
    const std::string paragraph =
        "The hell of it: he'll tell them 12 times, café 日本語 🙂!\r\n\tWell...  ok? ";
    while (text.size() < (size_t(1) << 20)) text += paragraph;
    const std::vector<int32_t> textIds = tok.encode(text);
    QCOMPARE(toQt(tok.decode(textIds)), toQt(text));
}

void TstTokenizer::byteToSymbol_data() {
    QTest::addColumn<int>("byte");
    QTest::addColumn<QString>("symbol");
    // Printable bytes stand for themselves; the other 68 map to U+0100.. in byte order:
    // 0x00..0x20 -> U+0100..U+0120, 0x7F..0xA0 -> U+0121..U+0142, 0xAD -> U+0143.
    QTest::newRow("space") << 0x20 << QString(QChar(0x0120));    // Ġ
    QTest::newRow("newline") << 0x0A << QString(QChar(0x010A));  // Ċ
    QTest::newRow("A") << int('A') << QStringLiteral("A");
    QTest::newRow("bang") << int('!') << QStringLiteral("!");
    QTest::newRow("tilde") << int('~') << QStringLiteral("~");
    QTest::newRow("nul") << 0x00 << QString(QChar(0x0100));
    QTest::newRow("del") << 0x7F << QString(QChar(0x0121));
    QTest::newRow("nbsp byte") << 0xA0 << QString(QChar(0x0142));
    QTest::newRow("soft hyphen byte") << 0xAD << QString(QChar(0x0143));
    QTest::newRow("inverted bang") << 0xA1 << QString(QChar(0x00A1));
    QTest::newRow("y diaeresis") << 0xFF << QString(QChar(0x00FF));
}

void TstTokenizer::byteToSymbol() {
    QFETCH(int, byte);
    QFETCH(QString, symbol);
    QCOMPARE(QString::fromStdString(Tokenizer::byteToSymbol(uint8_t(byte))), symbol);
}

void TstTokenizer::byteAlphabetIsABijection() {
    const Tokenizer tok = fixture();
    std::set<std::string> seen;
    for (int b = 0; b < 256; ++b) {
        const std::string symbol = Tokenizer::byteToSymbol(uint8_t(b));
        QVERIFY(seen.insert(symbol).second);
        QCOMPARE(tok.tokenId(symbol), std::optional<int32_t>(b));
        QCOMPARE(toQt(tok.tokenBytes(b)), QByteArray(1, char(b)));
    }
}

void TstTokenizer::specialTokensDecodeAsTheirText() {
    const Tokenizer tok = fixture();
    QCOMPARE(tok.tokenString(kEndOfText), std::string("<|endoftext|>"));
    QCOMPARE(toQt(tok.tokenBytes(kEndOfText)), QByteArray("<|endoftext|>"));
    // 日 and 本 are not in the byte alphabet: they decode as their own UTF-8.
    QCOMPARE(toQt(tok.tokenBytes(263)), QByteArray("<|日本|>"));
    QCOMPARE(toQt(tok.tokenBytes(258)), QByteArray(" the"));
    QCOMPARE(tok.tokenString(258), std::string("Ġthe"));
    const std::vector<int32_t> ids = {kEndOfText, 258, 256, 259, 263};
    QCOMPARE(toQt(tok.decode(ids)), QByteArray("<|endoftext|> thehell<|日本|>"));
}

void TstTokenizer::acceptsFixture() {
    // The unmodified fixture is valid, so each fault in rejects() is what throws.
    QCOMPARE(errorOf([] { fixture(); }), QString());
    const Tokenizer tok = fixture();
    QCOMPARE(int(tok.vocabSize()), kFixtureSize);
    QCOMPARE(tok.bos(), std::optional<int32_t>(kEndOfText));
    QCOMPARE(tok.eos(), std::optional<int32_t>(kEndOfText));
    QCOMPARE(tok.tokenId("he"), std::optional<int32_t>(256));
    QCOMPARE(tok.tokenId("no such token"), std::optional<int32_t>());
}

enum class Fault {
    MissingByte,
    MergeLine,
    DuplicateToken,
    BosOutOfRange,
    EosNegative,
    DecodeOutOfRange,
    DecodeNegative,
    TokenStringOutOfRange,
};

void TstTokenizer::rejects_data() {
    QTest::addColumn<int>("fault");
    QTest::addColumn<QByteArray>("detail");  // the byte symbol left out, or the merge line added
    QTest::addColumn<QStringList>("fragments");

    const auto row = [](const char* name, Fault fault, const QByteArray& detail,
                        const QStringList& fragments) {
        QTest::newRow(name) << int(fault) << detail << fragments;
    };
    row("missing A", Fault::MissingByte, "A", {"0x41", "'A'"});
    row("missing space", Fault::MissingByte, "Ġ", {"0x20", "'Ġ'"});
    // The added merge is rank 6, after the six fixture merges.
    row("merge without space", Fault::MergeLine, "Ġthe", {"merge 6", "'Ġthe'"});
    row("merge with two spaces", Fault::MergeLine, "h  e", {"merge 6", "'h  e'"});
    row("merge with empty left", Fault::MergeLine, " e", {"merge 6", "' e'"});
    row("merge with empty right", Fault::MergeLine, "h ", {"merge 6", "'h '"});
    row("merge with three parts", Fault::MergeLine, "a b c", {"merge 6", "'a b c'"});
    row("empty merge", Fault::MergeLine, "", {"merge 6"});
    row("duplicate token", Fault::DuplicateToken, {}, {"'he'", "256", "264"});
    row("bos out of range", Fault::BosOutOfRange, {}, {"bos", "1000", "264 tokens"});
    row("eos negative", Fault::EosNegative, {}, {"eos", "-1", "264 tokens"});
    row("decode out of range", Fault::DecodeOutOfRange, {}, {"token id 9999", "264 tokens"});
    row("decode negative", Fault::DecodeNegative, {}, {"token id -3", "264 tokens"});
    row("tokenString out of range", Fault::TokenStringOutOfRange, {},
        {"token id 264", "264 tokens"});
}

void TstTokenizer::rejects() {
    QFETCH(int, fault);
    QFETCH(QByteArray, detail);
    QFETCH(QStringList, fragments);

    std::vector<std::string> tokens = fixtureTokens();
    std::vector<std::string> merges = kMerges;
    const QString message = errorOf([&] {
        switch (Fault(fault)) {
            case Fault::MissingByte:
                tokens.erase(std::find(tokens.begin(), tokens.end(), toStd(detail)));
                (void)Tokenizer(tokens, merges);
                break;
            case Fault::MergeLine:
                merges.push_back(toStd(detail));
                (void)Tokenizer(tokens, merges);
                break;
            case Fault::DuplicateToken:
                tokens.push_back("he");
                (void)Tokenizer(tokens, merges);
                break;
            case Fault::BosOutOfRange:
                (void)Tokenizer(tokens, merges, 1000, std::nullopt);
                break;
            case Fault::EosNegative:
                (void)Tokenizer(tokens, merges, std::nullopt, -1);
                break;
            case Fault::DecodeOutOfRange:
                fixture().decode(std::vector<int32_t>{5, 9999});
                break;
            case Fault::DecodeNegative:
                fixture().decode(std::vector<int32_t>{-3});
                break;
            case Fault::TokenStringOutOfRange:
                fixture().tokenString(kFixtureSize);
                break;
        }
    });
    checkMessage(message, fragments);
}

void TstTokenizer::fromGgufReadsVocabulary() {
    const kvscope::GgufFile file = kvscope::GgufFile::fromBytes(fixtureGguf("gpt2", true, true));
    const Tokenizer tok = Tokenizer::fromGguf(file);
    const Tokenizer expected = fixture();
    QCOMPARE(int(tok.vocabSize()), kFixtureSize);
    QCOMPARE(tok.bos(), std::optional<int32_t>(kEndOfText));
    QCOMPARE(tok.eos(), std::optional<int32_t>(kEndOfText));
    QCOMPARE(tok.tokenString(263), std::string("<|日本|>"));
    const std::string text = "the hell of it, the lll";
    QCOMPARE(toList(tok.encode(text)), toList(expected.encode(text)));
    QCOMPARE(toList(tok.encode(" the")), QList<int>{258});  // the merges came through
}

void TstTokenizer::fromGgufRefuses_data() {
    QTest::addColumn<QByteArray>("model");  // empty: the key is left out
    QTest::addColumn<bool>("withTokens");
    QTest::addColumn<bool>("withMerges");
    QTest::addColumn<QStringList>("fragments");
    QTest::newRow("llama") << QByteArray("llama") << true << true
                           << QStringList{"tokenizer 'llama' (SentencePiece) is not supported",
                                          "tokenizer.ggml.model = \"gpt2\""};
    QTest::newRow("bert") << QByteArray("bert") << true << true
                          << QStringList{"'bert'", "not supported"};
    QTest::newRow("no model") << QByteArray() << true << true
                              << QStringList{"tokenizer.ggml.model", "missing"};
    QTest::newRow("no tokens") << QByteArray("gpt2") << false << true
                               << QStringList{"tokenizer.ggml.tokens", "missing"};
    QTest::newRow("no merges") << QByteArray("gpt2") << true << false
                               << QStringList{"tokenizer.ggml.merges", "missing"};
}

void TstTokenizer::fromGgufRefuses() {
    QFETCH(QByteArray, model);
    QFETCH(bool, withTokens);
    QFETCH(bool, withMerges);
    QFETCH(QStringList, fragments);
    const kvscope::GgufFile file =
        kvscope::GgufFile::fromBytes(fixtureGguf(toStd(model), withTokens, withMerges));
    checkMessage(errorOf([&] { Tokenizer::fromGguf(file); }), fragments);
}

QTEST_GUILESS_MAIN(TstTokenizer)
#include "tst_tokenizer.moc"
