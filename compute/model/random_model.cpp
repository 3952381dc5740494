// randomModel: metadata, tokenizer and tensors named and shaped as llama.cpp's converters do.
#include "model/random_model.h"

#include <random>

#include "core/error.h"
#include "gguf/dequant.h"
#include "text/tokenizer.h"

namespace kvscope {
namespace {

class Filler {
  public:
    Filler(GgufWriter& w, const RandomModelSpec& s) : w_(w), s_(s), rng_(s.seed) {}

    // A tensor of ggml shape ne (ne[0] contiguous) with N(mean, std) values.
    void add(const std::string& name, std::vector<uint64_t> ne, float mean, float std,
             bool matrix) {
        uint64_t count = 1;
        for (uint64_t d : ne) count *= d;
        std::normal_distribution<float> dist(mean, std);
        std::vector<float> v(count);
        for (float& x : v) x = dist(rng_);
        const TensorType type = matrix ? s_.weightType : TensorType::F32;
        w_.addTensor(name, type, std::move(ne), fromFloat(type, v));
    }

  private:
    GgufWriter& w_;
    const RandomModelSpec& s_;
    std::mt19937_64 rng_;
};

}  // namespace

GgufWriter randomModel(const RandomModelSpec& s) {
    if (s.nVocab < 257) throw Error("randomModel: nVocab must be at least 257");
    if (s.nEmbd % s.nHead != 0 || s.nHead % s.nHeadKv != 0)
        throw Error("randomModel: nEmbd must divide by nHead and nHead by nHeadKv");
    const bool gpt2 = s.arch == Arch::Gpt2;
    const std::string a = gpt2 ? "gpt2" : "llama";

    GgufWriter w;
    w.set("general.architecture", GgufValue::str(a));
    w.set("general.name", GgufValue::str("random " + a));
    w.set(a + ".block_count", GgufValue::u32(static_cast<uint32_t>(s.nLayer)));
    w.set(a + ".context_length", GgufValue::u32(static_cast<uint32_t>(s.nCtx)));
    w.set(a + ".embedding_length", GgufValue::u32(static_cast<uint32_t>(s.nEmbd)));
    w.set(a + ".feed_forward_length", GgufValue::u32(static_cast<uint32_t>(s.nFf)));
    w.set(a + ".attention.head_count", GgufValue::u32(static_cast<uint32_t>(s.nHead)));
    if (gpt2) {
        w.set("gpt2.attention.layer_norm_epsilon", GgufValue::f32(1e-5f));
    } else {
        w.set("llama.attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(s.nHeadKv)));
        w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-5f));
        w.set("llama.rope.freq_base", GgufValue::f32(10000.0f));
    }

    // Tokenizer: byte symbols, then merged letter pairs "ab", then fillers, then <|endoftext|>.
    std::vector<std::string> tokens, merges;
    for (int b = 0; b < 256; ++b)
        tokens.push_back(Tokenizer::byteToSymbol(static_cast<uint8_t>(b)));
    const std::string letters = "etaoinshrdlucmfwypvbgkqjxz";
    for (char x : letters)
        for (char y : letters) {
            if (static_cast<int>(tokens.size()) >= s.nVocab - 1) break;
            tokens.push_back(std::string{x, y});
            merges.push_back(std::string{x, ' ', y});
        }
    while (static_cast<int>(tokens.size()) < s.nVocab - 1)
        tokens.push_back("<|filler " + std::to_string(tokens.size()) + "|>");
    tokens.push_back("<|endoftext|>");
    w.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
    w.set("tokenizer.ggml.tokens", GgufValue::stringArray(tokens));
    w.set("tokenizer.ggml.merges", GgufValue::stringArray(merges));
    w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(s.nVocab - 1)));
    w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(s.nVocab - 1)));

    const auto E = static_cast<uint64_t>(s.nEmbd), V = static_cast<uint64_t>(s.nVocab),
               F = static_cast<uint64_t>(s.nFf), hd = E / static_cast<uint64_t>(s.nHead),
               KV = hd * static_cast<uint64_t>(s.nHeadKv);
    const float sd = s.weightStd;
    Filler f(w, s);
    f.add("token_embd.weight", {E, V}, 0, sd, true);
    if (gpt2) f.add("position_embd.weight", {E, static_cast<uint64_t>(s.nCtx)}, 0, sd, false);
    for (int l = 0; l < s.nLayer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        f.add(p + "attn_norm.weight", {E}, 1, 0.1f, false);
        if (gpt2) {
            f.add(p + "attn_norm.bias", {E}, 0, 0.1f, false);
            f.add(p + "attn_qkv.weight", {E, 3 * E}, 0, sd, true);
            f.add(p + "attn_qkv.bias", {3 * E}, 0, 0.1f, false);
            f.add(p + "attn_output.weight", {E, E}, 0, sd, true);
            f.add(p + "attn_output.bias", {E}, 0, 0.1f, false);
            f.add(p + "ffn_norm.weight", {E}, 1, 0.1f, false);
            f.add(p + "ffn_norm.bias", {E}, 0, 0.1f, false);
            f.add(p + "ffn_up.weight", {E, F}, 0, sd, true);
            f.add(p + "ffn_up.bias", {F}, 0, 0.1f, false);
            f.add(p + "ffn_down.weight", {F, E}, 0, sd, true);
            f.add(p + "ffn_down.bias", {E}, 0, 0.1f, false);
        } else {
            f.add(p + "attn_q.weight", {E, E}, 0, sd, true);
            f.add(p + "attn_k.weight", {E, KV}, 0, sd, true);
            f.add(p + "attn_v.weight", {E, KV}, 0, sd, true);
            f.add(p + "attn_output.weight", {E, E}, 0, sd, true);
            f.add(p + "ffn_norm.weight", {E}, 1, 0.1f, false);
            f.add(p + "ffn_gate.weight", {E, F}, 0, sd, true);
            f.add(p + "ffn_up.weight", {E, F}, 0, sd, true);
            f.add(p + "ffn_down.weight", {F, E}, 0, sd, true);
        }
    }
    f.add("output_norm.weight", {E}, 1, 0.1f, false);
    if (gpt2) f.add("output_norm.bias", {E}, 0, 0.1f, false);
    if (!s.tiedOutput) f.add("output.weight", {E, V}, 0, sd, true);
    return w;
}

}  // namespace kvscope
