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
#include "core/utf8.h"
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

// ---- SentencePiece fixture ----

using kvscope::TokenizerOptions;
using kvscope::TokenType;

struct SpmToken {
    std::string text;
    float score;
    TokenType type;
};

// Ids of the SentencePiece fixture:
//   0 <unk> (unknown)   1 <s>, 2 </s> (control)
//   3..258 <0x00>..<0xFF> (byte tokens: the id of byte b is 3 + b)
//   normal pieces, with their scores (higher merges first):
//   259 ▁ -10   260 a -10   261 b -10   262 c -10   263 d -10
//   264 ab -3   265 bc -1   266 cd -2   267 ▁a -4   268 ▁ab -0.5   269 ▁▁ -7   270 aa -5
//   271 da -2
//   272 <start_of_turn>, 273 <end_of_turn>, 274 <|im_start|> (control)
//   275 im_start (user-defined)
constexpr int kSpmSize = 276;
constexpr int kByte0 = 3;  // <0x00>
std::vector<SpmToken> spmVocab() {
    std::vector<SpmToken> v = {{"<unk>", 0, TokenType::Unknown},
                               {"<s>", 0, TokenType::Control},
                               {"</s>", 0, TokenType::Control}};
    const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b)
        v.push_back({std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">", 0, TokenType::Byte});
    const std::vector<std::pair<std::string, float>> pieces = {
        {"▁", -10}, {"a", -10}, {"b", -10},     {"c", -10}, {"d", -10}, {"ab", -3}, {"bc", -1},
        {"cd", -2}, {"▁a", -4}, {"▁ab", -0.5f}, {"▁▁", -7}, {"aa", -5}, {"da", -2}};
    for (const auto& [text, score] : pieces) v.push_back({text, score, TokenType::Normal});
    v.push_back({"<start_of_turn>", 0, TokenType::Control});
    v.push_back({"<end_of_turn>", 0, TokenType::Control});
    v.push_back({"<|im_start|>", 0, TokenType::Control});
    v.push_back({"im_start", 0, TokenType::UserDefined});
    return v;
}

Tokenizer spmFrom(const std::vector<SpmToken>& vocab, TokenizerOptions options) {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    for (const SpmToken& t : vocab) {
        tokens.push_back(t.text);
        scores.push_back(t.score);
        options.types.push_back(t.type);
    }
    return Tokenizer::sentencePiece(std::move(tokens), std::move(scores), std::move(options));
}

Tokenizer spmFixture(bool addSpacePrefix = true) {
    TokenizerOptions options;
    options.bos = 1;
    options.eos = 2;
    options.unk = 0;
    options.addSpacePrefix = addSpacePrefix;
    return spmFrom(spmVocab(), options);
}

// A GGUF image of the SentencePiece fixture; more(writer) adds or replaces keys.
std::vector<uint8_t> spmGguf(const std::function<void(kvscope::GgufWriter&)>& more = {}) {
    kvscope::GgufWriter writer;
    writer.set("general.architecture", GgufValue::str("llama"));
    writer.set("tokenizer.ggml.model", GgufValue::str("llama"));
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    for (const SpmToken& t : spmVocab()) {
        tokens.push_back(t.text);
        scores.push_back(t.score);
        types.push_back(int32_t(t.type));
    }
    writer.set("tokenizer.ggml.tokens", GgufValue::stringArray(tokens));
    writer.set("tokenizer.ggml.scores", GgufValue::f32Array(scores));
    writer.set("tokenizer.ggml.token_type", GgufValue::i32Array(types));
    if (more) more(writer);
    return writer.toBytes();
}

Tokenizer spmFromGguf(const std::function<void(kvscope::GgufWriter&)>& more = {}) {
    return Tokenizer::fromGguf(kvscope::GgufFile::fromBytes(spmGguf(more)));
}

// The byte tokens of text, in the SentencePiece fixture.
QList<int> spmBytes(std::string_view text) {
    QList<int> ids;
    for (const char c : text) ids << kByte0 + int(uint8_t(c));
    return ids;
}

// Reference SentencePiece, written the slow obvious way: split into characters by the lead
// byte, then repeatedly merge the leftmost of the highest-scoring adjacent pairs whose joined
// text is a token. Returns the final symbols.
std::vector<std::string> naiveSpm(std::string_view text,
                                  const std::map<std::string, float>& scores) {
    std::vector<std::string> symbols;
    for (size_t i = 0; i < text.size();) {
        const uint8_t lead = uint8_t(text[i]);
        const size_t length = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
        symbols.emplace_back(text.substr(i, length));
        i += length;
    }
    while (true) {
        size_t best = symbols.size();
        float bestScore = 0;
        for (size_t i = 0; i + 1 < symbols.size(); ++i) {
            const auto it = scores.find(symbols[i] + symbols[i + 1]);
            if (it != scores.end() && (best == symbols.size() || it->second > bestScore)) {
                best = i;
                bestScore = it->second;
            }
        }
        if (best == symbols.size()) break;
        symbols[best] += symbols[best + 1];
        symbols.erase(symbols.begin() + std::ptrdiff_t(best) + 1);
    }
    return symbols;
}

std::string spacesToMarkers(std::string_view text) {
    std::string out;
    for (const char c : text) out += c == ' ' ? std::string("▁") : std::string(1, c);
    return out;
}

// The byte-level BPE fixture with typed special tokens added after it:
//   262 <|endoftext|> (normal in the file, control by llama.cpp's rule for its text)
//   263 <|日本|> (user-defined)   264 <|begin_of_text|> (control)   265 <tool> (user-defined)
//   266 <tool_call> (control)
constexpr int kBeginOfText = 264, kTool = 265, kToolCall = 266;
Tokenizer bpeSpecialFixture() {
    std::vector<std::string> tokens = fixtureTokens();
    tokens.insert(tokens.end(), {"<|begin_of_text|>", "<tool>", "<tool_call>"});
    TokenizerOptions options;
    options.types.assign(tokens.size(), TokenType::Normal);
    options.types[263] = TokenType::UserDefined;
    options.types[kBeginOfText] = TokenType::Control;
    options.types[kTool] = TokenType::UserDefined;
    options.types[kToolCall] = TokenType::Control;
    options.bos = kBeginOfText;
    options.eos = kEndOfText;
    return Tokenizer(tokens, kMerges, kvscope::PreTokenizer::Gpt2, options);
}

// The fixture's id of each byte of text (no merges apply to it).
QList<int> bpeBytes(std::string_view text) {
    QList<int> ids;
    for (const char c : text) ids << int(uint8_t(c));
    return ids;
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
    void invalidUtf8ComesBackAsLlamaCppReadsIt_data();
    void invalidUtf8ComesBackAsLlamaCppReadsIt();
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
    void spmEncodesByHand_data();
    void spmEncodesByHand();
    void spmMatchesReference();
    void spmUnknownWithoutByteTokens();
    void spmRefusesWithoutByteOrUnknown();
    void spmDecodes();
    void spmRoundTrip_data();
    void spmRoundTrip();
    void roundTripsRandomBytesBothKinds();
    void spmEncodesLargeInput();
    void specialTokensSpm_data();
    void specialTokensSpm();
    void specialTokensBpe_data();
    void specialTokensBpe();
    void tokenTypes();
    void llamaCppTextRules();
    void duplicatesFirstIdWins();
    void ignoreMerges();
    void mergeResultNotAToken();
    void describe();
    void fromGgufSentencePiece();
    void fromGgufDefaults();
    void fromGgufRefusesVocabulary_data();
    void fromGgufRefusesVocabulary();
    void phi3StripsSpaceAfterSpecials();
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
    QTest::newRow("surrogate") << QByteArray("\xed\xa0\x80");  // kept: llama.cpp reads U+D800
    QTest::newRow("special token text") << QByteArray("<|endoftext|> the hell");
}

// Bytes that are not UTF-8 come back as llama.cpp encodes them (it decodes the text to code
// points and encodes each piece again): an invalid byte is U+FFFD (EF BF BD), a truncated
// sequence too, an overlong form its shortest encoding (C0 AF spells 0x2F, "/").
void TstTokenizer::invalidUtf8ComesBackAsLlamaCppReadsIt_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QByteArray>("expected");
    const QByteArray fffd("\xef\xbf\xbd");
    QTest::newRow("ff fe") << QByteArray("\xff\xfe") << fffd + fffd;
    QTest::newRow("truncated") << QByteArray("\xc3") << fffd;
    QTest::newRow("truncated inside text") << QByteArray(
                                                  "a\xe6\x97"
                                                  "b")
                                           << "a" + fffd + fffd + "b";
    QTest::newRow("overlong") << QByteArray("\xc0\xaf") << QByteArray("/");
    QTest::newRow("lone continuation") << QByteArray("\x80") << fffd;
}

void TstTokenizer::invalidUtf8ComesBackAsLlamaCppReadsIt() {
    QFETCH(QByteArray, text);
    QFETCH(QByteArray, expected);
    const Tokenizer tok = fixture();
    QCOMPARE(toQt(tok.decode(tok.encode(toStd(text)))), expected);
}

void TstTokenizer::roundTrip() {
    QFETCH(QByteArray, text);
    const Tokenizer tok = fixture();
    const std::string input = toStd(text);
    // Without parsing specials, "<|endoftext|>" in the text is plain text.
    const std::vector<int32_t> ids = tok.encode(input, false);
    QCOMPARE(toQt(tok.decode(ids)), text);
    QVERIFY(std::find(ids.begin(), ids.end(), kEndOfText) == ids.end());
    // Parsed, it is the control token, which decodes as its text: still the same bytes.
    const std::vector<int32_t> parsed = tok.encode(input);
    QCOMPARE(toQt(tok.decode(parsed)), text);
    QCOMPARE(std::find(parsed.begin(), parsed.end(), kEndOfText) != parsed.end(),
             text.contains("<|endoftext|>"));
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
        // back as llama.cpp reads it (see invalidUtf8ComesBackAsLlamaCppReadsIt)
        const std::string canonical = kvscope::llamaCppUtf8(text);
        QCOMPARE(toQt(tok.decode(tok.encode(text))), toQt(canonical.empty() ? text : canonical));
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
    QCOMPARE(toQt(tok.tokenBytes(258)), QByteArray(" the"));
    QCOMPARE(tok.tokenString(258), std::string("Ġthe"));
    // A normal token is mapped back through the byte alphabet; 日 and 本 are not in it, so
    // each becomes llama.cpp's marker: its UTF-8 in hex, then the whole token text.
    QCOMPARE(toQt(tok.tokenBytes(263)), QByteArray("<|[UNK_BYTE_0xe697a5<|日本|>]"
                                                   "[UNK_BYTE_0xe69cac<|日本|>]|>"));
    // As a user-defined token it is its own text.
    std::vector<kvscope::TokenType> types(kFixtureSize, kvscope::TokenType::Normal);
    types[263] = kvscope::TokenType::UserDefined;
    kvscope::TokenizerOptions options;
    options.types = types;
    const Tokenizer typed(fixtureTokens(), kMerges, kvscope::PreTokenizer::Gpt2, options);
    QCOMPARE(toQt(typed.tokenBytes(263)), QByteArray("<|日本|>"));
    const std::vector<int32_t> ids = {kEndOfText, 258, 256, 259, 263};
    QCOMPARE(toQt(typed.decode(ids)), QByteArray("<|endoftext|> thehell<|日本|>"));
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
    // Every other tokenizer.ggml.model llama.cpp knows is refused, naming the key and value.
    const QString reads = "KVScope reads 'gpt2' (byte-level BPE) and 'llama' (SentencePiece)";
    for (const char* model : {"bert", "t5", "rwkv", "none", "no_vocab", "ugm", "plamo2", "gemma4",
                              "hybriddna", "GPT2"}) {
        QTest::newRow(model) << QByteArray(model) << true << true
                             << QStringList{"tokenizer.ggml.model = '" + QString(model) + "'",
                                            "is not supported", reads};
    }
    QTest::newRow("bert kind") << QByteArray("bert") << true << true
                               << QStringList{"'bert' (WordPiece)"};
    QTest::newRow("t5 kind") << QByteArray("t5") << true << true << QStringList{"'t5' (Unigram)"};
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

// ---- SentencePiece ----

void TstTokenizer::spmEncodesByHand_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<bool>("prefix");  // add_space_prefix
    QTest::addColumn<QList<int>>("ids");
    using L = QList<int>;
    // Ids and scores are listed above spmVocab(). Each text is split into characters; adjacent
    // symbols whose joined text is a token are candidates, the highest score merges first (the
    // leftmost on a tie) until no candidate is left; leftovers become byte tokens <0xXX>.
    // "abc": ab (-3) and bc (-1) are candidates; bc wins -> a bc; "abc" is no token.
    QTest::newRow("bc beats ab") << QByteArray("abc") << false << L{260, 265};
    // "bcd": bc (-1) beats cd (-2) -> bc d; "bcd" is no token.
    QTest::newRow("bc beats cd") << QByteArray("bcd") << false << L{265, 263};
    // "abcd": bc merges first; then "abc" and "bcd" are no tokens, and ab, cd lost a side.
    QTest::newRow("abcd") << QByteArray("abcd") << false << L{260, 265, 263};
    // "cda": cd (-2) at 0 and da (-2) at 1 tie: the leftmost merges -> cd a.
    QTest::newRow("tie cd da") << QByteArray("cda") << false << L{266, 260};
    // "aaa": aa at 0 and at 1 tie (-5): the leftmost -> aa a; "aaa" is no token.
    QTest::newRow("tie aaa") << QByteArray("aaa") << false << L{270, 260};
    // "aaaa": aa at 0, then the one at 1 is stale, then aa at 2 -> aa aa.
    QTest::newRow("aaaa") << QByteArray("aaaa") << false << L{270, 270};
    QTest::newRow("ab") << QByteArray("ab") << false << L{264};
    // With the prefix, "ab" is "▁ab": ab (-3) beats ▁a (-4) -> ▁ ab; then ▁ab (-0.5).
    QTest::newRow("prefix ab") << QByteArray("ab") << true << L{268};
    QTest::newRow("a") << QByteArray("a") << false << L{260};
    QTest::newRow("prefix a") << QByteArray("a") << true << L{267};
    // "▁a▁b": ▁a merges; "a▁", "▁b" and "▁a▁" are no tokens.
    QTest::newRow("prefix a b") << QByteArray("a b") << true << L{267, 259, 261};
    // A space is "▁" whether or not a prefix is added.
    QTest::newRow("space a") << QByteArray(" a") << false << L{267};
    // "▁▁▁a": ▁a (-4) first, then ▁▁ (-7) at 0 (the one at 1 lost its right side).
    QTest::newRow("prefix two spaces a") << QByteArray("  a") << true << L{269, 267};
    // "▁▁a": ▁a (-4) beats ▁▁ (-7), which then lost its right side -> ▁ ▁a.
    QTest::newRow("two spaces a") << QByteArray("  a") << false << L{259, 267};
    // "▁a▁▁": ▁a, then ▁▁ at 2.
    QTest::newRow("prefix trailing spaces") << QByteArray("a  ") << true << L{267, 269};
    QTest::newRow("prefix space") << QByteArray(" ") << true << L{269};
    QTest::newRow("space") << QByteArray(" ") << false << L{259};
    QTest::newRow("empty") << QByteArray() << false << L{};
    QTest::newRow("prefix empty") << QByteArray() << true << L{};  // no text, no prefix
    // "▁" typed in the text is the marker itself.
    QTest::newRow("marker in text") << QByteArray("▁a") << false << L{267};
    // Characters without a token fall back to their UTF-8 bytes: é = C3 A9.
    QTest::newRow("accent") << QByteArray("é") << false << spmBytes("é");
    QTest::newRow("prefix accent") << QByteArray("é") << true << L{259} + spmBytes("é");
    QTest::newRow("a accent") << QByteArray("aé") << false << L{260} + spmBytes("é");
    QTest::newRow("cjk") << QByteArray("日") << false << L{233, 154, 168};           // E6 97 A5
    QTest::newRow("emoji") << QByteArray("🙂") << false << L{243, 162, 156, 133};  // F0 9F 99 82
    QTest::newRow("newline") << QByteArray("\n") << false << L{13};
    // Invalid UTF-8: a lead byte takes as many bytes as it announces, whatever they are (and
    // no more than are left), as llama.cpp splits. FF announces 4 but is alone.
    QTest::newRow("ff") << QByteArray("\xff") << false << L{258};
    // C3 takes the "a" after it: the symbol C3 61 is no token -> <0xC3> <0x61>, not "a".
    QTest::newRow("c3 a") << QByteArray(
                                 "\xc3"
                                 "a")
                          << false << L{198, 100};
    QTest::newRow("c3 a b") << QByteArray(
                                   "\xc3"
                                   "ab")
                            << false << L{198, 100, 261};
    QTest::newRow("truncated at end") << QByteArray("\xe6\x97") << false << L{233, 154};
    // C3 takes the first byte of the "▁" a space became: symbols C3 E2, 96, 81, b, all bytes
    // (so decoding gives C3 "▁" b, not the space back, as in llama.cpp).
    QTest::newRow("c3 space") << QByteArray("\xc3 b") << false << L{198, 229, 153, 132, 261};
    QTest::newRow("continuation then a") << QByteArray(
                                                "\x80"
                                                "a")
                                         << false << L{131, 260};
}

void TstTokenizer::spmEncodesByHand() {
    QFETCH(QByteArray, text);
    QFETCH(bool, prefix);
    QFETCH(QList<int>, ids);
    const Tokenizer tok = spmFixture(prefix);
    QCOMPARE(toList(tok.encode(toStd(text))), ids);
    QCOMPARE(toList(tok.encode(toStd(text), false)), ids);  // no special tokens in these
}

void TstTokenizer::spmMatchesReference() {
    // A random vocabulary over ▁, a, b, c and é, with few distinct scores (many ties); random
    // texts must encode as the reference does.
    std::mt19937 rng(424242);
    std::vector<SpmToken> vocab = {{"<unk>", 0, TokenType::Unknown},
                                   {"<s>", 0, TokenType::Control},
                                   {"</s>", 0, TokenType::Control}};
    for (const SpmToken& t : spmVocab())
        if (t.type == TokenType::Byte) vocab.push_back(t);
    std::vector<std::string> pool = {"▁", "a", "b", "c", "é"};
    std::map<std::string, float> scores;
    for (const std::string& p : pool) {
        scores[p] = -10;
        vocab.push_back({p, -10, TokenType::Normal});
    }
    const float levels[] = {-1, -2, -3, -4, -5};
    for (int k = 0; k < 400; ++k) {
        const std::string joined = pool[rng() % pool.size()] + pool[rng() % pool.size()];
        if (scores.count(joined) > 0 || joined.size() > 12) continue;
        const float score = levels[rng() % 5];
        scores[joined] = score;
        vocab.push_back({joined, score, TokenType::Normal});
        pool.push_back(joined);
    }
    QVERIFY(pool.size() > 60);
    std::map<std::string, int> ids;
    for (size_t i = 0; i < vocab.size(); ++i) ids.emplace(vocab[i].text, int(i));
    TokenizerOptions options;
    options.unk = 0;
    const Tokenizer tok = spmFrom(vocab, options);

    const std::string alphabet[] = {"a", "b", "c", " ", "é"};
    int merged = 0;
    for (int n = 0; n < 2000; ++n) {
        std::string text;
        const size_t length = rng() % (n % 10 == 0 ? 300 : 30);
        for (size_t i = 0; i < length; ++i) text += alphabet[rng() % (n % 3 == 0 ? 4 : 5)];
        std::vector<int32_t> expected;
        if (!text.empty()) {
            for (const std::string& symbol : naiveSpm("▁" + spacesToMarkers(text), scores)) {
                const auto it = ids.find(symbol);
                if (it != ids.end()) {
                    expected.push_back(it->second);
                    if (symbol.size() > 3) ++merged;
                } else {
                    for (const char c : symbol) expected.push_back(kByte0 + int(uint8_t(c)));
                }
            }
        }
        QCOMPARE(toList(tok.encode(text)), toList(expected));
    }
    QVERIFY(merged > 1000);  // the merges did fire
}

namespace {
// A vocabulary without byte tokens: 0 <unk>, 1 <s>, 2 </s>, 3 ▁, 4 a, 5 ▁a.
std::vector<SpmToken> noBytesVocab() {
    return {{"<unk>", 0, TokenType::Unknown}, {"<s>", 0, TokenType::Control},
            {"</s>", 0, TokenType::Control},  {"▁", -2, TokenType::Normal},
            {"a", -2, TokenType::Normal},     {"▁a", -1, TokenType::Normal}};
}
}  // namespace

void TstTokenizer::spmUnknownWithoutByteTokens() {
    TokenizerOptions options;
    options.unk = 0;
    const Tokenizer tok = spmFrom(noBytesVocab(), options);
    // "▁aé": ▁a merges; é has no token and no byte tokens: one unknown token for it.
    QCOMPARE(toList(tok.encode("aé")), (QList<int>{5, 0}));
    QCOMPARE(toList(tok.encode("é é")), (QList<int>{3, 0, 3, 0}));
    QCOMPARE(toList(tok.encode("日本")), (QList<int>{3, 0, 0}));  // one per character
    // The symbol C3 61 (C3 takes the "a") is one unknown.
    QCOMPARE(toList(tok.encode("\xc3"
                               "a")),
             (QList<int>{3, 0}));
    QCOMPARE(toList(tok.encode("a")), (QList<int>{5}));
}

void TstTokenizer::spmRefusesWithoutByteOrUnknown() {
    const Tokenizer tok = spmFrom(noBytesVocab(), TokenizerOptions{});  // no unknown token
    QCOMPARE(toList(tok.encode("a")), (QList<int>{5}));
    checkMessage(errorOf([&] { tok.encode("aé"); }), {"0xC3 0xA9", "no unknown token"});
}

void TstTokenizer::spmDecodes() {
    const Tokenizer tok = spmFixture();
    QCOMPARE(tok.tokenString(268), std::string("▁ab"));
    QCOMPARE(toQt(tok.tokenBytes(268)), QByteArray(" ab"));
    QCOMPARE(toQt(tok.tokenBytes(269)), QByteArray("  "));
    QCOMPARE(toQt(tok.tokenBytes(kByte0 + 0x41)), QByteArray("A"));
    QCOMPARE(toQt(tok.tokenBytes(kByte0)), QByteArray(1, '\0'));
    QCOMPARE(toQt(tok.tokenBytes(kByte0 + 0xFF)), QByteArray("\xff"));
    QCOMPARE(toQt(tok.tokenBytes(0)), QByteArray("<unk>"));
    QCOMPARE(toQt(tok.tokenBytes(1)), QByteArray("<s>"));
    QCOMPARE(toQt(tok.tokenBytes(275)), QByteArray("im_start"));
    // decode takes off the one space the prefix added, before the first token only.
    using V = std::vector<int32_t>;
    QCOMPARE(toQt(tok.decode(V{267})), QByteArray("a"));
    QCOMPARE(toQt(tok.decode(V{267, 267})), QByteArray("a a"));
    QCOMPARE(toQt(tok.decode(V{269, 267})), QByteArray("  a"));
    QCOMPARE(toQt(tok.decode(V{1, 267})), QByteArray("<s> a"));
    QCOMPARE(toQt(tok.decode(V{kByte0 + 0xC3, kByte0 + 0xA9})), QByteArray("é"));
    QCOMPARE(toQt(tok.decode(V{})), QByteArray());
    QCOMPARE(toQt(spmFixture(false).decode(V{267})), QByteArray(" a"));

    // Unused and undefined tokens stand for nothing; a byte token is the number after "<0x"
    // read as hexadecimal, as llama.cpp reads it ("4>" is 4).
    TokenizerOptions options;
    const Tokenizer odd = spmFrom({{"x", 0, TokenType::Unused},
                                   {"y", 0, TokenType::Undefined},
                                   {"z", 0, TokenType(99)},
                                   {"<0x4>", 0, TokenType::Byte},
                                   {"▁z", 0, TokenType::Normal}},
                                  options);
    QCOMPARE(toQt(odd.tokenBytes(0)), QByteArray());
    QCOMPARE(toQt(odd.tokenBytes(1)), QByteArray());
    QCOMPARE(toQt(odd.tokenBytes(2)), QByteArray());
    QCOMPARE(odd.tokenType(2), TokenType::Undefined);
    QCOMPARE(toQt(odd.tokenBytes(3)), QByteArray("\x04"));
    QCOMPARE(toQt(odd.tokenBytes(4)), QByteArray(" z"));
}

void TstTokenizer::spmRoundTrip_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::newRow("ascii") << QByteArray("abcd dcba  bad cab, 123!");
    QTest::newRow("leading spaces") << QByteArray("   a b");
    QTest::newRow("only spaces") << QByteArray("    ");
    QTest::newRow("trailing spaces") << QByteArray("ab   ");
    QTest::newRow("whitespace") << QByteArray("a\tb\n\nc\r\n d");
    QTest::newRow("accents") << QByteArray("Ça déjà été élu");
    QTest::newRow("cjk") << QByteArray("日本語のテキスト");
    QTest::newRow("emoji") << QByteArray("🙂👍🏽 family: 👨‍👩‍👧");
    QTest::newRow("nul bytes") << QByteArray("a\0b\0", 4);
    // Lone continuation bytes, a surrogate, an overlong form, a lead byte at the end.
    QTest::newRow("invalid") << QByteArray("\x80\xbf x \xed\xa0\x80 \xc0\xaf y\xff");
    QTest::newRow("truncated at end") << QByteArray("ab \xf0\x9f\x99");
    QTest::newRow("empty") << QByteArray();
}

void TstTokenizer::spmRoundTrip() {
    QFETCH(QByteArray, text);
    for (const bool prefix : {true, false}) {
        const Tokenizer tok = spmFixture(prefix);
        QCOMPARE(toQt(tok.decode(tok.encode(toStd(text)))), text);
    }
}

void TstTokenizer::roundTripsRandomBytesBothKinds() {
    // Random strings, half the bytes drawn from ones that make interesting UTF-8, merges,
    // spaces, "▁" (E2 96 81) and special token texts. Every id must be a token; byte-level BPE
    // gives any bytes back exactly; SentencePiece does when the text is valid UTF-8 without
    // "▁" or special token texts in it, and otherwise up to "▁" read as a space (a space
    // after an incomplete character is taken into that character's bytes, as in llama.cpp).
    const Tokenizer bpe = bpeSpecialFixture();
    const Tokenizer spm = spmFixture(), spmNoPrefix = spmFixture(false);
    const std::vector<std::string> specials = {"<unk>",           "<s>",           "</s>",
                                               "<start_of_turn>", "<end_of_turn>", "im_start"};
    std::mt19937 rng(777);
    const uint8_t interesting[] = {' ',  'a',  'b',  'c',  'd',  'h',  'e',  'l',  '<',  's',
                                   '>',  '/',  '|',  '\n', 0xE2, 0x96, 0x81, 0xC3, 0xA9, 0xE6,
                                   0x97, 0xA5, 0xF0, 0x9F, 0x80, 0xBF, 0xED, 0xA0, 0xC0, 0xFF};
    const auto markersToSpaces = [](std::string_view s) {
        std::string out;
        for (size_t i = 0; i < s.size();) {
            const bool marker = s.substr(i, 3) == "▁";
            out += marker ? ' ' : s[i];
            i += marker ? 3 : 1;
        }
        return out;
    };
    int exact = 0;
    for (int n = 0; n < 3000; ++n) {
        std::string text;
        const size_t length = rng() % 64;
        for (size_t i = 0; i < length; ++i) {
            text += char(rng() % 2 == 0 ? interesting[rng() % sizeof(interesting)] : rng() % 256);
        }
        if (n % 50 == 0) text += "<s>";
        bool valid = true;
        for (size_t i = 0; i < text.size();) {
            const kvscope::utf8::Decoded d = kvscope::utf8::decodeAt(text, i);
            valid = valid && d.cp != kvscope::utf8::kInvalid;
            i += d.length;
        }
        const bool hasSpecial = std::any_of(specials.begin(), specials.end(), [&](auto& s) {
            return text.find(s) != std::string::npos;
        });
        for (const bool parse : {true, false}) {
            const std::vector<int32_t> bpeIds = bpe.encode(text, parse);
            for (const int32_t id : bpeIds) QVERIFY(id >= 0 && size_t(id) < bpe.vocabSize());
            const std::string canonical = kvscope::llamaCppUtf8(text);
            QCOMPARE(toQt(bpe.decode(bpeIds)), toQt(canonical.empty() ? text : canonical));
            for (const Tokenizer* tok : {&spm, &spmNoPrefix}) {
                const std::vector<int32_t> ids = tok->encode(text, parse);
                for (const int32_t id : ids) QVERIFY(id >= 0 && id < kSpmSize);
                if (hasSpecial) continue;
                const std::string decoded = tok->decode(ids);
                QCOMPARE(toQt(markersToSpaces(decoded)), toQt(markersToSpaces(text)));
                if (valid && text.find("▁") == std::string::npos) {
                    QCOMPARE(toQt(decoded), toQt(text));
                    ++exact;
                }
            }
        }
    }
    QVERIFY(exact > 100);
}

void TstTokenizer::spmEncodesLargeInput() {
    const Tokenizer tok = spmFixture();
    // One 1 MiB run of "a" (a quadratic merge loop would take minutes): "▁aaaa...": ▁a (-4)
    // merges first, then the aa pairs (-5, all tied) left to right; the last "a" is alone.
    const size_t n = size_t(1) << 20;
    const std::vector<int32_t> ids = tok.encode(std::string(n, 'a'));
    QCOMPARE(ids.size(), n / 2 + 1);
    QCOMPARE(ids.front(), 267);
    QCOMPARE(ids.back(), 260);
    QVERIFY(std::all_of(ids.begin() + 1, ids.end() - 1, [](int32_t id) { return id == 270; }));

    // 1 MiB of mixed text and special tokens.
    std::string text;
    const std::string paragraph = "abcd cab<s> dab, 日本語 🙂!\r\n\tbad... <end_of_turn> ok? ";
    while (text.size() < n) text += paragraph;
    const std::vector<int32_t> textIds = tok.encode(text, false);
    QCOMPARE(toQt(tok.decode(textIds)), toQt(text));
    QVERIFY(tok.encode(text).size() < textIds.size());
}

// ---- special tokens ----

void TstTokenizer::specialTokensSpm_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<bool>("parseSpecial");
    QTest::addColumn<QList<int>>("ids");
    using L = QList<int>;
    // The text is cut at special tokens first (control and unknown ones only when parsing
    // specials, user-defined ones always, the longest first); each piece of text between them
    // gets the space prefix when it starts the text or follows a special token.
    QTest::newRow("bos") << QByteArray("<s>") << true << L{1};
    // Not parsed: "▁<s>", all bytes but ▁ (< = 3C, s = 73, > = 3E).
    QTest::newRow("bos as text") << QByteArray("<s>") << false << L{259, 63, 118, 65};
    QTest::newRow("adjacent") << QByteArray("<s></s>") << true << L{1, 2};
    QTest::newRow("same twice") << QByteArray("<s><s>") << true << L{1, 1};
    // Text between specials follows one: "▁a".
    QTest::newRow("start and end") << QByteArray("<s>a</s>") << true << L{1, 267, 2};
    QTest::newRow("text first") << QByteArray("a<s>") << true << L{267, 1};
    // "▁a▁" -> ▁a ▁; then " b" after <s> -> "▁▁b": ▁▁ merges, "▁b" is no token.
    QTest::newRow("spaces around") << QByteArray("a <s> b") << true << L{267, 259, 1, 269, 261};
    QTest::newRow("ab around") << QByteArray("ab<s>ab") << true << L{268, 1, 268};
    QTest::newRow("turns") << QByteArray("<start_of_turn>ab<end_of_turn>") << true
                           << L{272, 268, 273};
    // <|im_start|> (12 bytes) is tried before im_start (8), which it contains.
    QTest::newRow("longest first") << QByteArray("<|im_start|>") << true << L{274};
    // Not parsed, the control token is text, but the user-defined im_start is still cut out:
    // "▁<|" (| = 7C), im_start, then "▁|>".
    QTest::newRow("user-defined unparsed")
        << QByteArray("<|im_start|>") << false << L{259, 63, 127, 275, 259, 127, 65};
    QTest::newRow("user-defined") << QByteArray("im_start") << false << L{275};
    QTest::newRow("user-defined parsed") << QByteArray("im_start") << true << L{275};
    // The unknown-type token is special too (< u n k > = 3C 75 6E 6B 3E).
    QTest::newRow("unk") << QByteArray("<unk>") << true << L{0};
    QTest::newRow("unk as text") << QByteArray("<unk>") << false << L{259, 63, 120, 113, 110, 65};
    QTest::newRow("partial") << QByteArray("<s") << true << L{259, 63, 118};
}

void TstTokenizer::specialTokensSpm() {
    QFETCH(QByteArray, text);
    QFETCH(bool, parseSpecial);
    QFETCH(QList<int>, ids);
    QCOMPARE(toList(spmFixture().encode(toStd(text), parseSpecial)), ids);
}

void TstTokenizer::specialTokensBpe_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<bool>("parseSpecial");
    QTest::addColumn<QList<int>>("ids");
    using L = QList<int>;
    // Ids of bpeSpecialFixture(); below 256 a byte. No merge applies to "<|begin_of_text|>".
    QTest::newRow("begin of text")
        << QByteArray("<|begin_of_text|> the") << true << L{kBeginOfText, 258};
    QTest::newRow("begin of text unparsed")
        << QByteArray("<|begin_of_text|> the") << false << bpeBytes("<|begin_of_text|>") + L{258};
    // <|endoftext|> is normal in the vocabulary; llama.cpp makes it control by its text.
    QTest::newRow("endoftext") << QByteArray("<|endoftext|>") << true << L{kEndOfText};
    QTest::newRow("endoftext unparsed")
        << QByteArray("<|endoftext|>") << false << bpeBytes("<|endoftext|>");
    QTest::newRow("adjacent") << QByteArray("<|endoftext|><|endoftext|>") << true
                              << L{kEndOfText, kEndOfText};
    QTest::newRow("at end") << QByteArray("x<|endoftext|>") << true << L{'x', kEndOfText};
    // " " alone before the special: a whitespace piece.
    QTest::newRow("around") << QByteArray(" <|endoftext|> the") << true << L{' ', kEndOfText, 258};
    // User-defined tokens are cut out with or without parsing specials.
    QTest::newRow("user-defined") << QByteArray("<tool>x") << false << L{kTool, 'x'};
    QTest::newRow("user-defined parsed") << QByteArray("<tool>x") << true << L{kTool, 'x'};
    QTest::newRow("user-defined cjk") << QByteArray("<|日本|>") << false << L{263};
    QTest::newRow("control") << QByteArray("<tool_call>") << true << L{kToolCall};
    // Unparsed: pieces "<", "tool", "_", "call", ">"; "call" merges l l (rank 3).
    QTest::newRow("control unparsed") << QByteArray("<tool_call>") << false
                                      << L{'<', 't', 'o', 'o', 'l', '_', 'c', 'a', 259, '>'};
}

void TstTokenizer::specialTokensBpe() {
    QFETCH(QByteArray, text);
    QFETCH(bool, parseSpecial);
    QFETCH(QList<int>, ids);
    QCOMPARE(toList(bpeSpecialFixture().encode(toStd(text), parseSpecial)), ids);
}

void TstTokenizer::tokenTypes() {
    const Tokenizer spm = spmFixture();
    QCOMPARE(spm.tokenType(0), TokenType::Unknown);
    QCOMPARE(spm.tokenType(1), TokenType::Control);
    QCOMPARE(spm.tokenType(kByte0 + 7), TokenType::Byte);
    QCOMPARE(spm.tokenType(260), TokenType::Normal);
    QCOMPARE(spm.tokenType(275), TokenType::UserDefined);
    for (const int id : {0, 1, 2, 272, 273, 274, 275}) QVERIFY(spm.isSpecial(id));
    for (const int id : {kByte0, kByte0 + 255, 259, 268}) QVERIFY(!spm.isSpecial(id));
    // End of generation: the EOS id, and <end_of_turn> by its text.
    QVERIFY(spm.isEog(2));
    QVERIFY(spm.isEog(273));
    QVERIFY(!spm.isEog(1));
    QVERIFY(!spm.isEog(272));
    checkMessage(errorOf([&] { spm.tokenType(kSpmSize); }),
                 {"token id 276", QString::number(kSpmSize) + " tokens"});
    checkMessage(errorOf([&] { spm.isSpecial(-1); }), {"token id -1"});

    const Tokenizer bpe = fixture();  // no token types: every token normal
    QCOMPARE(bpe.tokenType(256), TokenType::Normal);
    QCOMPARE(bpe.tokenType(kEndOfText), TokenType::Control);  // by its text, as llama.cpp
    QVERIFY(bpe.isSpecial(kEndOfText));
    QVERIFY(bpe.isEog(kEndOfText));
    QVERIFY(!bpe.isSpecial(263));  // <|日本|> is just a normal token
}

void TstTokenizer::llamaCppTextRules() {
    // llama.cpp's load-time fixes by token text, on a vocabulary whose file says "normal"
    // (or "control") for all of them.
    const std::vector<std::pair<std::string, TokenType>> extra = {
        {"<|im_end|>", TokenType::Normal},     {"<|im_start|>", TokenType::Normal},
        {"<unused0>", TokenType::Control},     {"<|channel|>", TokenType::Control},
        {"<|fim_prefix|>", TokenType::Normal}, {"<|fim_pad|>", TokenType::Normal},
        {"<|return|>", TokenType::Normal},     {"<|call|>", TokenType::Normal},
        {"<|end|>", TokenType::Normal}};
    std::vector<std::string> tokens = byteSymbols();
    TokenizerOptions options;
    options.types.assign(tokens.size(), TokenType::Normal);
    for (const auto& [text, type] : extra) {
        tokens.push_back(text);
        options.types.push_back(type);
    }
    const Tokenizer tok(tokens, {}, kvscope::PreTokenizer::Gpt2, options);
    const auto id = [&](const char* text) { return *tok.tokenId(text); };
    // End-of-generation texts become control tokens.
    QCOMPARE(tok.tokenType(id("<|im_end|>")), TokenType::Control);
    QVERIFY(tok.isEog(id("<|im_end|>")));
    QCOMPARE(tok.tokenType(id("<|im_start|>")), TokenType::Normal);  // not in any list
    QVERIFY(!tok.isSpecial(id("<|im_start|>")));
    // A control token named "unused" stays special.
    QCOMPARE(tok.tokenType(id("<unused0>")), TokenType::Control);
    QVERIFY(tok.isSpecial(id("<unused0>")));
    // gpt-oss's <|channel|> is made user-defined: cut out even without parsing specials.
    QCOMPARE(tok.tokenType(id("<|channel|>")), TokenType::UserDefined);
    QCOMPARE(toList(tok.encode("<|channel|>", false)), QList<int>{id("<|channel|>")});
    // Fill-in-the-middle tokens: control; the pad one also ends generation.
    QCOMPARE(tok.tokenType(id("<|fim_prefix|>")), TokenType::Control);
    QVERIFY(!tok.isEog(id("<|fim_prefix|>")));
    QVERIFY(tok.isEog(id("<|fim_pad|>")));
    // With <|return|> and <|call|>, <|end|> ends a message, not generation (o200k_harmony).
    QVERIFY(tok.isEog(id("<|return|>")));
    QVERIFY(!tok.isEog(id("<|end|>")));
    QCOMPARE(tok.tokenType(id("<|end|>")), TokenType::UserDefined);

    // Without them <|end|> ends generation.
    std::vector<std::string> plain = byteSymbols();
    plain.push_back("<|end|>");
    const Tokenizer phi(plain, {});
    QVERIFY(phi.isEog(256));
    QCOMPARE(phi.tokenType(256), TokenType::Control);
    // Gemma 4: with <|tool_response>, </s> is an ordinary token.
    std::vector<std::string> gemma = byteSymbols();
    gemma.insert(gemma.end(), {"<|tool_response>", "</s>"});
    const Tokenizer g(gemma, {});
    QVERIFY(g.isEog(256));
    QVERIFY(!g.isEog(257));
    QCOMPARE(g.tokenType(257), TokenType::Normal);
}

void TstTokenizer::duplicatesFirstIdWins() {
    // Byte-level BPE: "he" again at 264 and <|endoftext|> again at 265.
    std::vector<std::string> tokens = fixtureTokens();
    tokens.insert(tokens.end(), {"he", "<|endoftext|>"});
    const Tokenizer bpe(tokens, kMerges, kEndOfText, kEndOfText);
    QCOMPARE(int(bpe.vocabSize()), kFixtureSize + 2);
    QCOMPARE(bpe.tokenId("he"), std::optional<int32_t>(256));
    QCOMPARE(toList(bpe.encode("the")), (QList<int>{116, 256}));
    QCOMPARE(toList(bpe.encode("<|endoftext|>")), QList<int>{kEndOfText});
    QCOMPARE(bpe.tokenString(264), std::string("he"));
    QCOMPARE(toQt(bpe.tokenBytes(264)), QByteArray("he"));
    QCOMPARE(toQt(bpe.decode(std::vector<int32_t>{265})), QByteArray("<|endoftext|>"));

    // SentencePiece: "ab" again at 276 with score 5, which would beat bc (-1). The first id
    // wins, with its score (-3): "abc" is still a bc.
    std::vector<SpmToken> vocab = spmVocab();
    vocab.push_back({"ab", 5, TokenType::Normal});
    TokenizerOptions options;
    options.addSpacePrefix = false;
    const Tokenizer spm = spmFrom(vocab, options);
    QCOMPARE(spm.tokenId("ab"), std::optional<int32_t>(264));
    QCOMPARE(toList(spm.encode("abc")), (QList<int>{260, 265}));
    QCOMPARE(toList(spm.encode("ab")), QList<int>{264});
    QCOMPARE(toQt(spm.decode(std::vector<int32_t>{276})), QByteArray("ab"));
}

void TstTokenizer::ignoreMerges() {
    // "hell" is a token (264) that no merge makes: merges give he ll.
    std::vector<std::string> tokens = fixtureTokens();
    tokens.push_back("hell");
    const Tokenizer merging(tokens, kMerges);
    QVERIFY(!merging.ignoreMerges());  // GPT-2's pre-tokenizer merges, as in llama.cpp
    QCOMPARE(toList(merging.encode("hell")), (QList<int>{256, 259}));
    TokenizerOptions options;
    options.ignoreMerges = true;
    const Tokenizer whole(tokens, kMerges, kvscope::PreTokenizer::Gpt2, options);
    QVERIFY(whole.ignoreMerges());
    // A piece that is a token is taken whole.
    QCOMPARE(toList(whole.encode("hell")), QList<int>{264});
    QCOMPARE(toList(whole.encode(" the")), QList<int>{258});
    // A piece that is not is merged as usual: "hello" -> he ll o.
    QCOMPARE(toList(whole.encode("hello")), (QList<int>{256, 259, 'o'}));
    QCOMPARE(toList(whole.encode("hell hell")), (QList<int>{264, 32, 256, 259}));
}

void TstTokenizer::mergeResultNotAToken() {
    // llama.cpp merges by string: "a b" makes "ab" though it is no token, and "ab c" then
    // makes the token "abc". A merged string left over that is no token falls back to the
    // tokens of its single bytes.
    std::vector<std::string> tokens = byteSymbols();
    tokens.push_back("abc");
    const Tokenizer tok(tokens, {"a b", "ab c"});
    QCOMPARE(toList(tok.encode("abc")), QList<int>{256});
    QCOMPARE(toList(tok.encode("ab")), (QList<int>{'a', 'b'}));
    QCOMPARE(toList(tok.encode("abd")), (QList<int>{'a', 'b', 'd'}));
}

void TstTokenizer::describe() {
    QCOMPARE(fixture().kind(), kvscope::TokenizerKind::Bpe);
    QCOMPARE(fixture().describe(), std::string("byte-level BPE (gpt2, pre-tokenizer gpt-2), "
                                               "264 tokens"));
    QCOMPARE(spmFixture().kind(), kvscope::TokenizerKind::SentencePiece);
    QCOMPARE(spmFixture().describe(), std::string("SentencePiece (llama), 276 tokens"));
    std::vector<std::string> many;
    for (int i = 0; i < 32000; ++i) many.push_back(std::to_string(i) + "t");
    QCOMPARE(Tokenizer::sentencePiece(many, std::vector<float>(many.size(), 0.0f)).describe(),
             std::string("SentencePiece (llama), 32,000 tokens"));
    std::vector<std::string> bpeTokens = byteSymbols();
    while (bpeTokens.size() < 128256) bpeTokens.push_back(std::to_string(bpeTokens.size()) + "t");
    QCOMPARE(Tokenizer(bpeTokens, {}).describe(),
             std::string("byte-level BPE (gpt2, pre-tokenizer gpt-2), 128,256 tokens"));
    // From a file, the pre-tokenizer as the file names it.
    kvscope::GgufWriter writer;
    writer.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
    writer.set("tokenizer.ggml.pre", GgufValue::str("gpt-2"));
    writer.set("tokenizer.ggml.tokens", GgufValue::stringArray(fixtureTokens()));
    writer.set("tokenizer.ggml.merges", GgufValue::stringArray(kMerges));
    QCOMPARE(Tokenizer::fromGguf(kvscope::GgufFile::fromBytes(writer.toBytes())).describe(),
             std::string("byte-level BPE (gpt2, pre-tokenizer gpt-2), 264 tokens"));
}

void TstTokenizer::fromGgufSentencePiece() {
    const Tokenizer tok = spmFromGguf();
    QCOMPARE(tok.kind(), kvscope::TokenizerKind::SentencePiece);
    QCOMPARE(int(tok.vocabSize()), kSpmSize);
    // llama.cpp's defaults for "llama": BOS 1, EOS 2, unknown 0; BOS added, EOS not; prefix.
    QCOMPARE(tok.bos(), std::optional<int32_t>(1));
    QCOMPARE(tok.eos(), std::optional<int32_t>(2));
    QCOMPARE(tok.unk(), std::optional<int32_t>(0));
    QVERIFY(tok.addBos());
    QVERIFY(!tok.addEos());
    QVERIFY(tok.addSpacePrefix());
    QCOMPARE(tok.tokenType(275), TokenType::UserDefined);
    QCOMPARE(tok.tokenType(kByte0), TokenType::Byte);
    const Tokenizer expected = spmFixture();
    for (const char* text : {"ab", "a  <s> b", "abcd é 日本", "<|im_start|>",
                             "\xc3"
                             "a"}) {
        QCOMPARE(toList(tok.encode(text)), toList(expected.encode(text)));
        QCOMPARE(toList(tok.encode(text, false)), toList(expected.encode(text, false)));
    }

    // Scores may be INT32: bc (-1) still beats ab (-3).
    const Tokenizer ints = spmFromGguf([](kvscope::GgufWriter& w) {
        std::vector<int32_t> scores;
        for (const SpmToken& t : spmVocab()) scores.push_back(int32_t(t.score));
        w.set("tokenizer.ggml.scores", GgufValue::i32Array(scores));
        w.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
    });
    QVERIFY(!ints.addSpacePrefix());
    QCOMPARE(toList(ints.encode("abc")), (QList<int>{260, 265}));
    // Without scores every score is 0: all ties, the leftmost pair merges first -> ab c.
    kvscope::GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::str("llama"));
    std::vector<std::string> tokens;
    for (const SpmToken& t : spmVocab()) tokens.push_back(t.text);
    w.set("tokenizer.ggml.tokens", GgufValue::stringArray(tokens));
    w.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
    const Tokenizer flat = Tokenizer::fromGguf(kvscope::GgufFile::fromBytes(w.toBytes()));
    QCOMPARE(toList(flat.encode("abc")), (QList<int>{264, 262}));
    QCOMPARE(flat.tokenType(0), TokenType::Normal);  // no token types: all normal
}

void TstTokenizer::fromGgufDefaults() {
    // Keys replace the defaults; an id past the vocabulary keeps the default.
    const Tokenizer keyed = spmFromGguf([](kvscope::GgufWriter& w) {
        w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(272));
        w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(9999));
        w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(3));
        w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
        w.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(true));
    });
    QCOMPARE(keyed.bos(), std::optional<int32_t>(272));
    QCOMPARE(keyed.eos(), std::optional<int32_t>(2));
    QCOMPARE(keyed.unk(), std::optional<int32_t>(3));
    QVERIFY(!keyed.addBos());
    QVERIFY(keyed.addEos());
    QVERIFY(keyed.isEog(2));

    // A default id past a tiny vocabulary is dropped.
    kvscope::GgufWriter tiny;
    tiny.set("tokenizer.ggml.model", GgufValue::str("llama"));
    tiny.set("tokenizer.ggml.tokens", GgufValue::stringArray({"<unk>", "<s>"}));
    const Tokenizer small = Tokenizer::fromGguf(kvscope::GgufFile::fromBytes(tiny.toBytes()));
    QCOMPARE(small.bos(), std::optional<int32_t>(1));
    QCOMPARE(small.eos(), std::optional<int32_t>());
    QCOMPARE(small.unk(), std::optional<int32_t>(0));

    // Byte-level BPE without the keys: llama.cpp's defaults (BOS = EOS = 11, no unknown, nothing
    // added, no prefix).
    const Tokenizer bpe = Tokenizer::fromGguf(kvscope::GgufFile::fromBytes([] {
        kvscope::GgufWriter w;
        w.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
        w.set("tokenizer.ggml.tokens", GgufValue::stringArray(fixtureTokens()));
        w.set("tokenizer.ggml.merges", GgufValue::stringArray(kMerges));
        return w.toBytes();
    }()));
    QCOMPARE(bpe.bos(), std::optional<int32_t>(11));
    QCOMPARE(bpe.eos(), std::optional<int32_t>(11));
    QCOMPARE(bpe.unk(), std::optional<int32_t>());
    QVERIFY(!bpe.addBos());
    QVERIFY(!bpe.addEos());
    QVERIFY(!bpe.addSpacePrefix());
    const Tokenizer bpeBos = Tokenizer::fromGguf(kvscope::GgufFile::fromBytes([] {
        std::vector<uint8_t> bytes = fixtureGguf("gpt2", true, true);
        kvscope::GgufFile f = kvscope::GgufFile::fromBytes(bytes);
        kvscope::GgufWriter w;
        for (const std::string& key : f.keyOrder()) w.set(key, *f.find(key));
        w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(true));
        return w.toBytes();
    }()));
    QVERIFY(bpeBos.addBos());
    QCOMPARE(bpeBos.bos(), std::optional<int32_t>(kEndOfText));
}

enum class VocabFault { ScoresType, ScoresShort, TypesType, TypesShort, NoTokens, ByteText };

void TstTokenizer::fromGgufRefusesVocabulary_data() {
    QTest::addColumn<int>("fault");
    QTest::addColumn<QStringList>("fragments");
    const auto row = [](const char* name, VocabFault fault, const QStringList& fragments) {
        QTest::newRow(name) << int(fault) << fragments;
    };
    row("scores type", VocabFault::ScoresType,
        {"tokenizer.ggml.scores", "array of STRING", "FLOAT32 or INT32"});
    row("scores short", VocabFault::ScoresShort,
        {"tokenizer.ggml.scores has 5 values for 276 tokens"});
    row("types type", VocabFault::TypesType,
        {"tokenizer.ggml.token_type", "array of FLOAT32", "INT32"});
    row("types short", VocabFault::TypesShort,
        {"tokenizer.ggml.token_type has 3 values for 276 tokens"});
    row("no tokens", VocabFault::NoTokens, {"tokenizer.ggml.tokens", "missing"});
    row("byte type text", VocabFault::ByteText, {"token 260 ('a')", "byte type", "<0xXX>"});
}

void TstTokenizer::fromGgufRefusesVocabulary() {
    QFETCH(int, fault);
    QFETCH(QStringList, fragments);
    const QString message = errorOf([&] {
        spmFromGguf([&](kvscope::GgufWriter& w) {
            switch (VocabFault(fault)) {
                case VocabFault::ScoresType:
                    w.set("tokenizer.ggml.scores", GgufValue::stringArray({"1"}));
                    break;
                case VocabFault::ScoresShort:
                    w.set("tokenizer.ggml.scores", GgufValue::f32Array({1, 2, 3, 4, 5}));
                    break;
                case VocabFault::TypesType:
                    w.set("tokenizer.ggml.token_type", GgufValue::f32Array({1}));
                    break;
                case VocabFault::TypesShort:
                    w.set("tokenizer.ggml.token_type", GgufValue::i32Array({1, 1, 1}));
                    break;
                case VocabFault::NoTokens:
                    w.set("tokenizer.ggml.tokens", GgufValue::u32(1));  // replaced below
                    break;
                case VocabFault::ByteText: {
                    std::vector<int32_t> types;
                    for (const SpmToken& t : spmVocab()) types.push_back(int32_t(t.type));
                    types[260] = int32_t(TokenType::Byte);
                    w.set("tokenizer.ggml.token_type", GgufValue::i32Array(types));
                    break;
                }
            }
        });
    });
    if (VocabFault(fault) == VocabFault::NoTokens) {
        kvscope::GgufWriter w;
        w.set("tokenizer.ggml.model", GgufValue::str("llama"));
        checkMessage(
            errorOf([&] { Tokenizer::fromGguf(kvscope::GgufFile::fromBytes(w.toBytes())); }),
            fragments);
        return;
    }
    checkMessage(message, fragments);
}

void TstTokenizer::phi3StripsSpaceAfterSpecials() {
    // llama.cpp strips the spaces after Phi-3's special tokens (rstrip), except after <unk>,
    // <s> and <|endoftext|>; it knows Phi-3 by general.name.
    const Tokenizer phi3 = spmFromGguf(
        [](kvscope::GgufWriter& w) { w.set("general.name", GgufValue::str("Phi-3 mini 4k")); });
    // "</s>  ab": the spaces go; "ab" follows a special -> "▁ab".
    QCOMPARE(toList(phi3.encode("</s>  ab")), (QList<int>{2, 268}));
    QCOMPARE(toList(phi3.encode("<end_of_turn>  ab")), (QList<int>{273, 268}));
    // <s> keeps them: "▁▁▁ab": ab, then ▁ab, then ▁▁ at 0 -> ▁▁ ▁ab.
    QCOMPARE(toList(phi3.encode("<s>  ab")), (QList<int>{1, 269, 268}));
    // Another model keeps them after </s> too.
    QCOMPARE(toList(spmFromGguf().encode("</s>  ab")), (QList<int>{2, 269, 268}));
}

QTEST_GUILESS_MAIN(TstTokenizer)
#include "tst_tokenizer.moc"
