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

const char* archName(Arch arch) {
    switch (arch) {
        case Arch::Gpt2:
            return "gpt2";
        case Arch::Llama:
            return "llama";
        case Arch::Qwen2:
            return "qwen2";
        case Arch::Phi3:
            return "phi3";
        case Arch::Gemma:
            return "gemma";
        case Arch::Gemma2:
            return "gemma2";
    }
    return "?";
}

GgufWriter randomModel(const RandomModelSpec& s) {
    if (s.nVocab < 257) throw Error("randomModel: nVocab must be at least 257");
    if (s.nHead % s.nHeadKv != 0 || (s.headDim == 0 && s.nEmbd % s.nHead != 0))
        throw Error("randomModel: nEmbd must divide by nHead and nHead by nHeadKv");
    const bool gpt2 = s.arch == Arch::Gpt2;
    const bool gemma = s.arch == Arch::Gemma || s.arch == Arch::Gemma2;
    const bool phi3 = s.arch == Arch::Phi3;
    const std::string a = archName(s.arch);
    const auto u32 = [](int v) { return GgufValue::u32(static_cast<uint32_t>(v)); };

    GgufWriter w;
    w.set("general.architecture", GgufValue::str(a));
    w.set("general.name", GgufValue::str("random " + a));
    w.set(a + ".block_count", u32(s.nLayer));
    w.set(a + ".context_length", u32(s.nCtx));
    w.set(a + ".embedding_length", u32(s.nEmbd));
    w.set(a + ".feed_forward_length", u32(s.nFf));
    w.set(a + ".attention.head_count", u32(s.nHead));
    if (gpt2) {
        w.set("gpt2.attention.layer_norm_epsilon", GgufValue::f32(1e-5f));
    } else {
        w.set(a + ".attention.head_count_kv", u32(s.nHeadKv));
        w.set(a + ".attention.layer_norm_rms_epsilon", GgufValue::f32(1e-5f));
        w.set(a + ".rope.freq_base", GgufValue::f32(s.ropeFreqBase));
        if (s.headDim > 0) {
            w.set(a + ".attention.key_length", u32(s.headDim));
            w.set(a + ".attention.value_length", u32(s.headDim));
        }
        if (s.nRot > 0) w.set(a + ".rope.dimension_count", u32(s.nRot));
        if (!s.ropeScaling.empty()) {
            w.set(a + ".rope.scaling.type", GgufValue::str(s.ropeScaling));
            w.set(a + ".rope.scaling.factor", GgufValue::f32(s.ropeScaleFactor));
        }
        if (s.ropeOrigContext > 0)
            w.set(a + ".rope.scaling.original_context_length", u32(s.ropeOrigContext));
    }
    if (s.arch == Arch::Llama && s.slidingWindow > 0)  // Mistral's window on every layer
        w.set(a + ".attention.sliding_window", u32(s.slidingWindow));
    if (s.arch == Arch::Gemma2) {
        w.set(a + ".attn_logit_softcapping", GgufValue::f32(s.attnSoftcap));
        w.set(a + ".final_logit_softcapping", GgufValue::f32(s.finalSoftcap));
        if (s.slidingWindow > 0) w.set(a + ".attention.sliding_window", u32(s.slidingWindow));
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
    w.set("tokenizer.ggml.pre", GgufValue::str("gpt-2"));
    w.set("tokenizer.ggml.tokens", GgufValue::stringArray(tokens));
    w.set("tokenizer.ggml.merges", GgufValue::stringArray(merges));
    w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(s.nVocab - 1)));
    w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(s.nVocab - 1)));

    const uint64_t hd = static_cast<uint64_t>(s.headDim > 0 ? s.headDim : s.nEmbd / s.nHead);
    const auto E = static_cast<uint64_t>(s.nEmbd), V = static_cast<uint64_t>(s.nVocab),
               F = static_cast<uint64_t>(s.nFf), Q = hd * static_cast<uint64_t>(s.nHead),
               KV = hd * static_cast<uint64_t>(s.nHeadKv);
    const float sd = s.weightStd;
    Filler f(w, s);
    f.add("token_embd.weight", {E, V}, 0, sd, true);
    if (gpt2) f.add("position_embd.weight", {E, static_cast<uint64_t>(s.nCtx)}, 0, sd, false);
    if (s.ropeFreqs) {  // divisors of each pair's angle, growing like Llama 3.1's
        const uint64_t pairs =
            static_cast<uint64_t>(s.nRot > 0 ? s.nRot : static_cast<int>(hd)) / 2;
        std::vector<float> factors(pairs);
        for (uint64_t i = 0; i < pairs; ++i) factors[i] = 1.0f + 3.0f * float(i) / float(pairs);
        w.addTensorF32("rope_freqs.weight", {pairs}, factors);
    }
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
            continue;
        }
        if (phi3 || s.fusedQkv) {
            f.add(p + "attn_qkv.weight", {E, Q + 2 * KV}, 0, sd, true);
        } else {
            f.add(p + "attn_q.weight", {E, Q}, 0, sd, true);
            f.add(p + "attn_k.weight", {E, KV}, 0, sd, true);
            f.add(p + "attn_v.weight", {E, KV}, 0, sd, true);
        }
        if (s.arch == Arch::Qwen2 || s.qkvBias) {
            f.add(p + "attn_q.bias", {Q}, 0, 0.1f, false);
            f.add(p + "attn_k.bias", {KV}, 0, 0.1f, false);
            f.add(p + "attn_v.bias", {KV}, 0, 0.1f, false);
        }
        f.add(p + "attn_output.weight", {Q, E}, 0, sd, true);
        if (s.arch == Arch::Gemma2) f.add(p + "post_attention_norm.weight", {E}, 1, 0.1f, false);
        f.add(p + "ffn_norm.weight", {E}, 1, 0.1f, false);
        if (phi3) {
            f.add(p + "ffn_up.weight", {E, 2 * F}, 0, sd, true);  // gate rows, then up rows
        } else {
            f.add(p + "ffn_gate.weight", {E, F}, 0, sd, true);
            f.add(p + "ffn_up.weight", {E, F}, 0, sd, true);
        }
        f.add(p + "ffn_down.weight", {F, E}, 0, sd, true);
        if (s.arch == Arch::Gemma2) f.add(p + "post_ffw_norm.weight", {E}, 1, 0.1f, false);
    }
    f.add("output_norm.weight", {E}, 1, 0.1f, false);
    if (gpt2) f.add("output_norm.bias", {E}, 0, 0.1f, false);
    if (!s.tiedOutput && !gemma) f.add("output.weight", {E, V}, 0, sd, true);
    return w;
}

}  // namespace kvscope
