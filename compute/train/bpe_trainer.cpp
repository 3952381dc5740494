// trainBpe: count pieces, then merge the most frequent pair of symbols, one merge at a time.
#include "train/bpe_trainer.h"

#include <cassert>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace kvscope {

void BpeVocabulary::addBeginOfText() {
    tokens.push_back("<|begin_of_text|>");
    beginOfText = static_cast<int32_t>(tokens.size() - 1);
    addBos = true;
}

void BpeVocabulary::startPromptsWithBos() {
    addBos = true;
    if (copied.empty()) return;
    auto set = [&](const std::string& key, GgufValue value) {
        for (auto& [k, v] : copied)
            if (k == key) return void(v = std::move(value));
        copied.emplace_back(key, std::move(value));
    };
    const Tokenizer t = tokenizer();
    if (!t.bos())
        set("tokenizer.ggml.bos_token_id",
            GgufValue::u32(static_cast<uint32_t>(t.eos().value_or(0))));
    set("tokenizer.ggml.add_bos_token", GgufValue::boolean(true));
}

Tokenizer BpeVocabulary::tokenizer() const {
    if (!copied.empty()) {
        GgufWriter w;
        for (const auto& [key, value] : copied) w.set(key, value);
        return Tokenizer::fromGguf(GgufFile::fromBytes(w.toBytes(), "the copied tokenizer"));
    }
    TokenizerOptions o;
    o.bos = beginOfText.value_or(endOfText);
    o.eos = endOfText;
    o.addBos = addBos;
    if (beginOfText) {
        o.types.assign(tokens.size(), TokenType::Normal);
        o.types[static_cast<size_t>(endOfText)] = TokenType::Control;
        o.types[static_cast<size_t>(*beginOfText)] = TokenType::Control;
    }
    return Tokenizer(tokens, merges, PreTokenizer::Gpt2, o);
}

int32_t BpeVocabulary::bos() const {
    if (copied.empty()) return beginOfText.value_or(endOfText);
    const Tokenizer t = tokenizer();
    return t.bos().value_or(t.eos().value_or(0));
}

void BpeVocabulary::writeTo(GgufWriter& w) const {
    if (!copied.empty()) {
        for (const auto& [key, value] : copied) w.set(key, value);
        return;
    }
    w.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
    // The split it was learned with, named as llama.cpp names it (a file without the key means
    // llama.cpp's "default" split, which differs)
    w.set("tokenizer.ggml.pre", GgufValue::str("gpt-2"));
    w.set("tokenizer.ggml.tokens", GgufValue::stringArray(tokens));
    if (beginOfText) {
        std::vector<int32_t> types(tokens.size(), static_cast<int32_t>(TokenType::Normal));
        types[static_cast<size_t>(endOfText)] = static_cast<int32_t>(TokenType::Control);
        types[static_cast<size_t>(*beginOfText)] = static_cast<int32_t>(TokenType::Control);
        w.set("tokenizer.ggml.token_type", GgufValue::i32Array(types));
    }
    w.set("tokenizer.ggml.merges", GgufValue::stringArray(merges));
    w.set("tokenizer.ggml.bos_token_id",
          GgufValue::u32(static_cast<uint32_t>(beginOfText.value_or(endOfText))));
    w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(endOfText)));
    if (beginOfText || addBos) w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(addBos));
}

BpeVocabulary BpeVocabulary::fromGguf(const GgufFile& file) {
    BpeVocabulary v;
    for (const std::string& key : file.keyOrder())
        if (key.starts_with("tokenizer."))
            if (const GgufValue* value = file.find(key)) v.copied.emplace_back(key, *value);
    if (v.copied.empty())
        throw Error(file.path() + ": no tokenizer.* keys, so no vocabulary to reuse");
    try {
        const Tokenizer t = v.tokenizer();
        v.addBos = t.addBos();
    } catch (const Error& e) {
        throw Error(file.path() + ": its tokenizer: " + e.what());
    }
    return v;
}

BpeVocabulary trainBpe(std::string_view text, int vocabSize) {
    assert(vocabSize >= 257);
    // 1. distinct pieces with their counts, as sequences of byte symbols (ids 0..255)
    std::unordered_map<std::string_view, long> counts;
    for (std::string_view piece : Tokenizer::preTokenize(text)) ++counts[piece];
    struct Word {
        std::vector<int32_t> symbols;
        long count;
    };
    std::vector<Word> words;
    words.reserve(counts.size());
    for (const auto& [piece, count] : counts) {
        Word w{{}, count};
        for (unsigned char c : piece) w.symbols.push_back(c);
        words.push_back(std::move(w));
    }

    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b)
        tokens.push_back(Tokenizer::byteToSymbol(static_cast<uint8_t>(b)));
    std::vector<std::string> merges;
    std::unordered_map<std::string, int32_t> ids;
    for (int32_t i = 0; i < 256; ++i) ids.emplace(tokens[static_cast<size_t>(i)], i);
    auto key = [](int32_t a, int32_t b) {
        return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b);
    };

    // 2. merge the best pair until the vocabulary is full
    while (static_cast<int>(tokens.size()) < vocabSize - 1) {
        std::unordered_map<uint64_t, long> pairs;
        for (const Word& w : words)
            for (size_t i = 0; i + 1 < w.symbols.size(); ++i)
                pairs[key(w.symbols[i], w.symbols[i + 1])] += w.count;
        uint64_t best = 0;
        long bestCount = 1;  // a pair seen once is not worth a token
        for (const auto& [k, c] : pairs)
            if (c > bestCount || (c == bestCount && bestCount > 1 && k < best)) {
                best = k;
                bestCount = c;
            }
        if (bestCount < 2) break;
        const auto left = static_cast<int32_t>(best >> 32),
                   right = static_cast<int32_t>(best & 0xffffffffu);
        // The same string can come out of two different pairs ("th"+"e", "t"+"he"): it stays
        // one token, reached by both merges.
        std::string joined = tokens[static_cast<size_t>(left)] + tokens[static_cast<size_t>(right)];
        merges.push_back(tokens[static_cast<size_t>(left)] + " " +
                         tokens[static_cast<size_t>(right)]);
        auto [it, fresh] = ids.try_emplace(joined, static_cast<int32_t>(tokens.size()));
        if (fresh) tokens.push_back(std::move(joined));
        const int32_t merged = it->second;
        for (Word& w : words) {
            std::vector<int32_t>& s = w.symbols;
            size_t out = 0;
            for (size_t i = 0; i < s.size(); ++i) {
                if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
                    s[out++] = merged;
                    ++i;
                } else {
                    s[out++] = s[i];
                }
            }
            s.resize(out);
        }
    }
    tokens.push_back("<|endoftext|>");
    const auto eot = static_cast<int32_t>(tokens.size() - 1);
    BpeVocabulary v;
    v.tokens = std::move(tokens);
    v.merges = std::move(merges);
    v.endOfText = eot;
    return v;
}

}  // namespace kvscope
