// LlamaTrainer: forward, backward and the GGUF export of a small Llama-style model, from the
// layers in train_ops (see llama_trainer.h).
#include "train/llama_trainer.h"

#include <cassert>
#include <cmath>
#include <random>

#include "train/train_ops.h"

namespace kvscope {
namespace {

using namespace train;

enum : int { TOK, ATTN_NORM, QKV, WO, FFN_NORM, GATE_UP, DOWN, OUT_NORM, OUT };

// splitmix64: a well-mixed 64-bit hash, so each element's dropout draw is a pure function of
// (seed, index).
uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// keep[i] = 0 with probability p, else 1 / (1 - p).
void drawKeep(float* keep, size_t n, float p, uint64_t seed) {
    const float scale = 1.0f / (1.0f - p);
    const auto threshold = static_cast<uint64_t>(static_cast<double>(p) * 18446744073709551616.0);
    for (size_t i = 0; i < n; ++i) keep[i] = mix(seed + i) < threshold ? 0.0f : scale;
}

}  // namespace

void LlamaTrainer::setDropout(float p, uint64_t seed) {
    assert(p >= 0 && p < 1);
    dropout_ = p;
    dropoutSeed_ = mix(seed);
}

LlamaTrainer::LlamaTrainer(const LlamaShape& s, uint64_t seed, float initStd, ThreadPool& pool)
    : Trainer(pool), shape_(s) {
    assert(s.nEmbd % s.nHead == 0 && s.nHead % s.nHeadKv == 0 && s.headDim() % 2 == 0);
    const auto C = static_cast<size_t>(s.nEmbd), V = static_cast<size_t>(s.nVocab),
               F = static_cast<size_t>(s.nFf),
               KV = static_cast<size_t>(s.nHeadKv) * static_cast<size_t>(s.headDim());
    // name, offset (laid out later), size per layer (or whole), per layer, decayed. QKV holds
    // attn_q, attn_k and attn_v rows one after the other; GATE_UP ffn_gate's rows, then ffn_up's.
    layOut(
        {
            {"token_embd.weight", 0, V * C, false, true},
            {"blk.{l}.attn_norm.weight", 0, C, true, false},
            {"blk.{l}.attn_qkv", 0, (C + 2 * KV) * C, true, true},
            {"blk.{l}.attn_output.weight", 0, C * C, true, true},
            {"blk.{l}.ffn_norm.weight", 0, C, true, false},
            {"blk.{l}.ffn_gate_up", 0, 2 * F * C, true, true},
            {"blk.{l}.ffn_down.weight", 0, C * F, true, true},
            {"output_norm.weight", 0, C, false, false},
            {"output.weight", 0, s.tieOutput ? 0 : V * C, false, true},
        },
        s.nLayer);
    std::mt19937_64 rng(seed);
    const float residualStd = initStd / std::sqrt(2.0f * static_cast<float>(s.nLayer));
    fill(TOK, 0, initStd, rng);
    fill(QKV, 0, initStd, rng);
    fill(WO, 0, residualStd, rng);
    fill(GATE_UP, 0, initStd, rng);
    fill(DOWN, 0, residualStd, rng);
    fill(OUT, 0, initStd, rng);
    for (int t : {ATTN_NORM, FFN_NORM, OUT_NORM}) fill(t, 1, initStd > 0.05f ? initStd : 0, rng);

    // RoPE as the app's llama family reads it from the file toGguf() writes
    rope_.type = RopeType::Adjacent;
    rope_.nRot = s.headDim();
    rope_.freqBase = s.ropeBase;
    rope_.nCtxOrig = s.nCtx;
    const int pairs = rope_.nRot / 2;
    ropeCos_.resize(static_cast<size_t>(s.nCtx) * pairs);
    ropeSin_.resize(ropeCos_.size());
    for (int t = 0; t < s.nCtx; ++t)
        ropeCosSin(rope_, t, ropeCos_.data() + static_cast<size_t>(t) * pairs,
                   ropeSin_.data() + static_cast<size_t>(t) * pairs);
}

float LlamaTrainer::forward(const int32_t* inputs, const int32_t* targets, int B, int T) {
    const LlamaShape& s = shape_;
    const int C = s.nEmbd, L = s.nLayer, NH = s.nHead, NKV = s.nHeadKv, hd = s.headDim(), F = s.nFf,
              V = s.nVocab, R = (NH + 2 * NKV) * hd;
    assert(T <= s.nCtx);
    const int N = B * T;
    const auto NC = static_cast<size_t>(N) * C, Nz = static_cast<size_t>(N),
               Lz = static_cast<size_t>(L);
    if (B != B_ || T != T_) {
        B_ = B, T_ = T;
        resid_.resize((Lz + 1) * NC), res2_.resize(Lz * NC);
        ln1_.resize(Lz * NC), rstd1_.resize(Lz * Nz), ln2_.resize(Lz * NC), rstd2_.resize(Lz * Nz);
        qkv_.resize(Lz * Nz * R), att_.resize(Lz * B * NH * T * T), atty_.resize(Lz * NC);
        gu_.resize(Lz * Nz * 2 * F), swi_.resize(Lz * Nz * F);
        lnf_.resize(NC), rstdf_.resize(Nz);
        logits_.resize(Nz * V), probs_.resize(Nz * V);
    }
    inputs_.assign(inputs, inputs + N);
    targets_.assign(targets, targets + N);
    masked_ = dropout_ > 0;  // backward() uses this pass's masks, whatever is set after it
    if (masked_) {
        keep_.resize(Lz * 2 * NC);
        drawKeep(keep_.data(), keep_.size(), dropout_, dropoutSeed_);
    }
    const auto dropped = [&](float* branch, int l, int which) {  // branch ⊙ keep
        if (!masked_) return;
        const float* k = keep_.data() + (static_cast<size_t>(l) * 2 + which) * NC;
        for (size_t i = 0; i < NC; ++i) branch[i] *= k[i];
    };

    // 1. token embeddings (no positions: RoPE places the tokens)
    for (int i = 0; i < N; ++i) {
        const float* te = p(TOK) + static_cast<size_t>(inputs[i]) * C;
        std::copy(te, te + C, resid_.data() + static_cast<size_t>(i) * C);
    }
    std::vector<float> tmp(NC);
    // 2. the blocks
    for (int l = 0; l < L; ++l) {
        const float* x = resid_.data() + l * NC;
        float* ln1 = ln1_.data() + l * NC;
        float* qkv = qkv_.data() + l * Nz * R;
        float* atty = atty_.data() + l * NC;
        float* res2 = res2_.data() + l * NC;
        float* ln2 = ln2_.data() + l * NC;
        float* gu = gu_.data() + l * Nz * 2 * F;
        float* swi = swi_.data() + l * Nz * F;
        float* out = resid_.data() + (l + 1) * NC;
        // x + attention(RMSNorm(x)): q, k, v; RoPE on q and k; GQA; output projection
        rmsNormForward(ln1, rstd1_.data() + l * N, x, p(ATTN_NORM, l), N, C, s.normEps);
        matmulForward(qkv, ln1, p(QKV, l), nullptr, N, C, R, pool_);
        ropeRotate(qkv, rope_, ropeCos_.data(), ropeSin_.data(), B, T, R, NH + NKV, hd, false);
        attentionForward(atty, att_.data() + l * static_cast<size_t>(B) * NH * T * T, qkv, B, T, NH,
                         NKV, hd, pool_);
        matmulForward(tmp.data(), atty, p(WO, l), nullptr, N, C, C, pool_);
        dropped(tmp.data(), l, 0);
        for (size_t i = 0; i < NC; ++i) res2[i] = x[i] + tmp[i];
        // res2 + down(SiLU(gate·h) ⊙ up·h), h = RMSNorm(res2)
        rmsNormForward(ln2, rstd2_.data() + l * N, res2, p(FFN_NORM, l), N, C, s.normEps);
        matmulForward(gu, ln2, p(GATE_UP, l), nullptr, N, C, 2 * F, pool_);
        swigluForward(swi, gu, N, F);
        matmulForward(tmp.data(), swi, p(DOWN, l), nullptr, N, F, C, pool_);
        dropped(tmp.data(), l, 1);
        for (size_t i = 0; i < NC; ++i) out[i] = res2[i] + tmp[i];
    }
    // 3. final norm, output head, softmax and cross-entropy
    rmsNormForward(lnf_.data(), rstdf_.data(), resid_.data() + Lz * NC, p(OUT_NORM), N, C,
                   s.normEps);
    matmulForward(logits_.data(), lnf_.data(), p(s.tieOutput ? TOK : OUT), nullptr, N, C, V, pool_);
    return crossEntropyForward(probs_.data(), logits_.data(), targets, N, V, pool_);
}

void LlamaTrainer::backward() {
    const LlamaShape& s = shape_;
    const int B = B_, T = T_, C = s.nEmbd, L = s.nLayer, NH = s.nHead, NKV = s.nHeadKv,
              hd = s.headDim(), F = s.nFf, V = s.nVocab, R = (NH + 2 * NKV) * hd;
    const int N = B * T;
    const auto NC = static_cast<size_t>(N) * C, Nz = static_cast<size_t>(N),
               Lz = static_cast<size_t>(L);
    // 1. loss -> logits -> final norm
    std::vector<float> dlogits(probs_.size());
    crossEntropyBackward(dlogits.data(), probs_.data(), targets_.data(), N, V);
    const int head = s.tieOutput ? TOK : OUT;
    std::vector<float> dlnf(NC, 0.0f), dres(NC, 0.0f);
    matmulBackward(dlnf.data(), g(head), nullptr, dlogits.data(), lnf_.data(), p(head), N, C, V,
                   pool_);
    rmsNormBackward(dres.data(), g(OUT_NORM), dlnf.data(), resid_.data() + Lz * NC, p(OUT_NORM),
                    rstdf_.data(), N, C);
    // 2. the blocks, last first; dres carries d(residual stream)
    std::vector<float> dswi(Nz * F), dgu(Nz * 2 * F), dln(NC), datty(NC), dqkv(Nz * R);
    std::vector<float> dbranch(masked_ ? NC : 0);
    // d(branch output) = d(residual) ⊙ keep, with the forward pass's masks
    const auto branchGrad = [&](int l, int which) -> const float* {
        if (!masked_) return dres.data();
        const float* k = keep_.data() + (static_cast<size_t>(l) * 2 + which) * NC;
        for (size_t i = 0; i < NC; ++i) dbranch[i] = dres[i] * k[i];
        return dbranch.data();
    };
    for (int l = L - 1; l >= 0; --l) {
        const float* x = resid_.data() + l * NC;
        const float* ln1 = ln1_.data() + l * NC;
        const float* qkv = qkv_.data() + l * Nz * R;
        const float* atty = atty_.data() + l * NC;
        const float* res2 = res2_.data() + l * NC;
        const float* ln2 = ln2_.data() + l * NC;
        const float* gu = gu_.data() + l * Nz * 2 * F;
        const float* swi = swi_.data() + l * Nz * F;
        // out = res2 + down(swiglu(gate_up(RMSNorm(res2))))
        std::fill(dswi.begin(), dswi.end(), 0.0f);
        matmulBackward(dswi.data(), g(DOWN, l), nullptr, branchGrad(l, 1), swi, p(DOWN, l), N, F, C,
                       pool_);
        std::fill(dgu.begin(), dgu.end(), 0.0f);
        swigluBackward(dgu.data(), dswi.data(), gu, N, F);
        std::fill(dln.begin(), dln.end(), 0.0f);
        matmulBackward(dln.data(), g(GATE_UP, l), nullptr, dgu.data(), ln2, p(GATE_UP, l), N, C,
                       2 * F, pool_);
        rmsNormBackward(dres.data(), g(FFN_NORM, l), dln.data(), res2, p(FFN_NORM, l),
                        rstd2_.data() + l * N, N, C);
        // res2 = x + wo(attention(rope(qkv(RMSNorm(x)))))
        std::fill(datty.begin(), datty.end(), 0.0f);
        matmulBackward(datty.data(), g(WO, l), nullptr, branchGrad(l, 0), atty, p(WO, l), N, C, C,
                       pool_);
        std::fill(dqkv.begin(), dqkv.end(), 0.0f);
        attentionBackward(dqkv.data(), datty.data(),
                          att_.data() + l * static_cast<size_t>(B) * NH * T * T, qkv, B, T, NH, NKV,
                          hd, pool_);
        ropeRotate(dqkv.data(), rope_, ropeCos_.data(), ropeSin_.data(), B, T, R, NH + NKV, hd,
                   true);
        std::fill(dln.begin(), dln.end(), 0.0f);
        matmulBackward(dln.data(), g(QKV, l), nullptr, dqkv.data(), ln1, p(QKV, l), N, C, R, pool_);
        rmsNormBackward(dres.data(), g(ATTN_NORM, l), dln.data(), x, p(ATTN_NORM, l),
                        rstd1_.data() + l * N, N, C);
    }
    // 3. embeddings
    for (int i = 0; i < N; ++i) {
        float* dte = g(TOK) + static_cast<size_t>(inputs_[static_cast<size_t>(i)]) * C;
        for (int j = 0; j < C; ++j) dte[j] += dres[static_cast<size_t>(i) * C + j];
    }
}

GgufWriter LlamaTrainer::toGguf(const BpeVocabulary& vocab, const std::string& name) const {
    const LlamaShape& s = shape_;
    GgufWriter w;
    auto u32 = [](int v) { return GgufValue::u32(static_cast<uint32_t>(v)); };
    w.set("general.architecture", GgufValue::str("llama"));
    w.set("general.name", GgufValue::str(name));
    w.set("llama.block_count", u32(s.nLayer));
    w.set("llama.context_length", u32(s.nCtx));
    w.set("llama.embedding_length", u32(s.nEmbd));
    w.set("llama.feed_forward_length", u32(s.nFf));
    w.set("llama.attention.head_count", u32(s.nHead));
    w.set("llama.attention.head_count_kv", u32(s.nHeadKv));
    w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(s.normEps));
    w.set("llama.rope.dimension_count", u32(s.headDim()));
    w.set("llama.rope.freq_base", GgufValue::f32(s.ropeBase));
    w.set("llama.vocab_size", u32(s.nVocab));
    vocab.writeTo(w);

    // GGUF shapes, ne[0] first: a (rows, cols) matrix here is ne = [cols, rows].
    const auto C = static_cast<uint64_t>(s.nEmbd), V = static_cast<uint64_t>(s.nVocab),
               F = static_cast<uint64_t>(s.nFf),
               KV = static_cast<uint64_t>(s.nHeadKv) * static_cast<uint64_t>(s.headDim());
    addSlice(w, "token_embd.weight", TOK, 0, 0, V * C, {C, V});
    for (int l = 0; l < s.nLayer; ++l) {
        addSlice(w, "blk.{l}.attn_norm.weight", ATTN_NORM, l, 0, C, {C});
        addSlice(w, "blk.{l}.attn_q.weight", QKV, l, 0, C * C, {C, C});
        addSlice(w, "blk.{l}.attn_k.weight", QKV, l, C * C, KV * C, {C, KV});
        addSlice(w, "blk.{l}.attn_v.weight", QKV, l, (C + KV) * C, KV * C, {C, KV});
        addSlice(w, "blk.{l}.attn_output.weight", WO, l, 0, C * C, {C, C});
        addSlice(w, "blk.{l}.ffn_norm.weight", FFN_NORM, l, 0, C, {C});
        addSlice(w, "blk.{l}.ffn_gate.weight", GATE_UP, l, 0, F * C, {C, F});
        addSlice(w, "blk.{l}.ffn_up.weight", GATE_UP, l, F * C, F * C, {C, F});
        addSlice(w, "blk.{l}.ffn_down.weight", DOWN, l, 0, C * F, {F, C});
    }
    addSlice(w, "output_norm.weight", OUT_NORM, 0, 0, C, {C});
    if (!s.tieOutput) addSlice(w, "output.weight", OUT, 0, 0, V * C, {C, V});
    return w;
}

}  // namespace kvscope
