// Gpt2Trainer: forward and backward of a small GPT-2, in the manner of llm.c's train_gpt2.c (our
// own code), from the layers in train_ops; AdamW and clipping are Trainer's.
#include "train/gpt2_trainer.h"
#include "train/train_ops.h"

#include <cassert>
#include <cmath>
#include <random>

namespace kvscope {
namespace {

using namespace train;

enum : int {
    WTE,
    WPE,
    LN1W,
    LN1B,
    QKVW,
    QKVB,
    PROJW,
    PROJB,
    LN2W,
    LN2B,
    FCW,
    FCB,
    FC2W,
    FC2B,
    LNFW,
    LNFB
};

constexpr float kEps = 1e-5f;

}  // namespace

Gpt2Trainer::Gpt2Trainer(const Gpt2Shape& s, uint64_t seed, float initStd, ThreadPool& pool)
    : Trainer(pool), shape_(s) {
    assert(s.nEmbd % s.nHead == 0);
    const auto C = static_cast<size_t>(s.nEmbd), V = static_cast<size_t>(s.nVocab),
               T = static_cast<size_t>(s.nCtx);
    // name, offset (laid out later), size per layer (or whole), per layer, decayed
    layOut(
        {
            {"token_embd.weight", 0, V * C, false, true},
            {"position_embd.weight", 0, T * C, false, true},
            {"blk.{l}.attn_norm.weight", 0, C, true, false},
            {"blk.{l}.attn_norm.bias", 0, C, true, false},
            {"blk.{l}.attn_qkv.weight", 0, 3 * C * C, true, true},
            {"blk.{l}.attn_qkv.bias", 0, 3 * C, true, false},
            {"blk.{l}.attn_output.weight", 0, C * C, true, true},
            {"blk.{l}.attn_output.bias", 0, C, true, false},
            {"blk.{l}.ffn_norm.weight", 0, C, true, false},
            {"blk.{l}.ffn_norm.bias", 0, C, true, false},
            {"blk.{l}.ffn_up.weight", 0, 4 * C * C, true, true},
            {"blk.{l}.ffn_up.bias", 0, 4 * C, true, false},
            {"blk.{l}.ffn_down.weight", 0, 4 * C * C, true, true},
            {"blk.{l}.ffn_down.bias", 0, C, true, false},
            {"output_norm.weight", 0, C, false, false},
            {"output_norm.bias", 0, C, false, false},
        },
        s.nLayer);

    std::mt19937_64 rng(seed);
    const float residualStd = initStd / std::sqrt(2.0f * static_cast<float>(s.nLayer));
    fill(WTE, 0, initStd, rng);
    fill(WPE, 0, initStd, rng);
    fill(QKVW, 0, initStd, rng);
    fill(PROJW, 0, residualStd, rng);
    fill(FCW, 0, initStd, rng);
    fill(FC2W, 0, residualStd, rng);
    for (int t : {LN1W, LN2W, LNFW}) fill(t, 1, 0, rng);
    if (initStd > 0.05f)  // tests: biases and norms away from their trivial values too
        for (int t : {LN1W, LN1B, QKVB, PROJB, LN2W, LN2B, FCB, FC2B, LNFW, LNFB})
            fill(t, t == LN1W || t == LN2W || t == LNFW ? 1.0f : 0.0f, initStd, rng);
}

float Gpt2Trainer::forward(const int32_t* inputs, const int32_t* targets, int B, int T) {
    const int C = shape_.nEmbd, L = shape_.nLayer, NH = shape_.nHead, V = shape_.nVocab;
    assert(T <= shape_.nCtx);
    const int N = B * T;
    const auto NC = static_cast<size_t>(N) * C;
    if (B != B_ || T != T_) {
        B_ = B, T_ = T;
        encoded_.resize(NC);
        ln1_.resize(L * NC), ln1Mean_.resize(static_cast<size_t>(L) * N),
            ln1Rstd_.resize(static_cast<size_t>(L) * N);
        qkv_.resize(L * NC * 3);
        att_.resize(static_cast<size_t>(L) * B * NH * T * T);
        atty_.resize(L * NC), residual2_.resize(L * NC), residual3_.resize(L * NC);
        ln2_.resize(L * NC), ln2Mean_.resize(static_cast<size_t>(L) * N),
            ln2Rstd_.resize(static_cast<size_t>(L) * N);
        fch_.resize(L * NC * 4), fchGelu_.resize(L * NC * 4);
        lnf_.resize(NC), lnfMean_.resize(static_cast<size_t>(N)),
            lnfRstd_.resize(static_cast<size_t>(N));
        logits_.resize(static_cast<size_t>(N) * V), probs_.resize(static_cast<size_t>(N) * V);
    }
    inputs_.assign(inputs, inputs + N);
    targets_.assign(targets, targets + N);

    // 1. embeddings
    for (int i = 0; i < N; ++i) {
        const float* te = p(WTE) + static_cast<size_t>(inputs[i]) * C;
        const float* pe = p(WPE) + static_cast<size_t>(i % T) * C;
        for (int j = 0; j < C; ++j) encoded_[static_cast<size_t>(i) * C + j] = te[j] + pe[j];
    }
    std::vector<float> tmp(NC);
    // 2. the blocks
    for (int l = 0; l < L; ++l) {
        const float* residual = l == 0 ? encoded_.data() : residual3_.data() + (l - 1) * NC;
        float* ln1 = ln1_.data() + l * NC;
        float* qkv = qkv_.data() + l * NC * 3;
        float* atty = atty_.data() + l * NC;
        float* res2 = residual2_.data() + l * NC;
        float* ln2 = ln2_.data() + l * NC;
        float* fch = fch_.data() + l * NC * 4;
        float* fchg = fchGelu_.data() + l * NC * 4;
        float* res3 = residual3_.data() + l * NC;
        layerNormForward(ln1, ln1Mean_.data() + l * N, ln1Rstd_.data() + l * N, residual,
                         p(LN1W, l), p(LN1B, l), N, C, kEps);
        matmulForward(qkv, ln1, p(QKVW, l), p(QKVB, l), N, C, 3 * C, pool_);
        attentionForward(atty, att_.data() + static_cast<size_t>(l) * B * NH * T * T, qkv, B, T, NH,
                         NH, C / NH, pool_);
        matmulForward(tmp.data(), atty, p(PROJW, l), p(PROJB, l), N, C, C, pool_);
        for (size_t i = 0; i < NC; ++i) res2[i] = residual[i] + tmp[i];
        layerNormForward(ln2, ln2Mean_.data() + l * N, ln2Rstd_.data() + l * N, res2, p(LN2W, l),
                         p(LN2B, l), N, C, kEps);
        matmulForward(fch, ln2, p(FCW, l), p(FCB, l), N, C, 4 * C, pool_);
        geluForward(fchg, fch, NC * 4);
        matmulForward(tmp.data(), fchg, p(FC2W, l), p(FC2B, l), N, 4 * C, C, pool_);
        for (size_t i = 0; i < NC; ++i) res3[i] = res2[i] + tmp[i];
    }
    // 3. final norm, tied output head, softmax and cross-entropy
    layerNormForward(lnf_.data(), lnfMean_.data(), lnfRstd_.data(),
                     residual3_.data() + (L - 1) * NC, p(LNFW), p(LNFB), N, C, kEps);
    matmulForward(logits_.data(), lnf_.data(), p(WTE), nullptr, N, C, V, pool_);
    return crossEntropyForward(probs_.data(), logits_.data(), targets, N, V, pool_);
}

void Gpt2Trainer::backward() {
    const int B = B_, T = T_, C = shape_.nEmbd, L = shape_.nLayer, NH = shape_.nHead,
              V = shape_.nVocab;
    const int N = B * T;
    const auto NC = static_cast<size_t>(N) * C;
    // 1. loss -> logits: (probs − one-hot) / N
    std::vector<float> dlogits(probs_.size());
    crossEntropyBackward(dlogits.data(), probs_.data(), targets_.data(), N, V);
    // 2. output head (tied to the token embedding) and final norm
    std::vector<float> dlnf(NC, 0.0f), dres(NC, 0.0f);
    matmulBackward(dlnf.data(), g(WTE), nullptr, dlogits.data(), lnf_.data(), p(WTE), N, C, V,
                   pool_);
    layerNormBackward(dres.data(), g(LNFW), g(LNFB), dlnf.data(), residual3_.data() + (L - 1) * NC,
                      p(LNFW), lnfMean_.data(), lnfRstd_.data(), N, C);
    // 3. the blocks, last first; dres carries d(residual stream)
    std::vector<float> dfchg(NC * 4), dfch(NC * 4), dln2(NC), datty(NC), dqkv(NC * 3), dln1(NC);
    for (int l = L - 1; l >= 0; --l) {
        const float* residual = l == 0 ? encoded_.data() : residual3_.data() + (l - 1) * NC;
        const float* ln1 = ln1_.data() + l * NC;
        const float* qkv = qkv_.data() + l * NC * 3;
        const float* atty = atty_.data() + l * NC;
        const float* res2 = residual2_.data() + l * NC;
        const float* ln2 = ln2_.data() + l * NC;
        const float* fch = fch_.data() + l * NC * 4;
        const float* fchg = fchGelu_.data() + l * NC * 4;
        // res3 = res2 + fc2(gelu(fc(ln2(res2))))
        std::fill(dfchg.begin(), dfchg.end(), 0.0f);
        matmulBackward(dfchg.data(), g(FC2W, l), g(FC2B, l), dres.data(), fchg, p(FC2W, l), N,
                       4 * C, C, pool_);
        std::fill(dfch.begin(), dfch.end(), 0.0f);
        geluBackward(dfch.data(), fch, dfchg.data(), NC * 4);
        std::fill(dln2.begin(), dln2.end(), 0.0f);
        matmulBackward(dln2.data(), g(FCW, l), g(FCB, l), dfch.data(), ln2, p(FCW, l), N, C, 4 * C,
                       pool_);
        layerNormBackward(dres.data(), g(LN2W, l), g(LN2B, l), dln2.data(), res2, p(LN2W, l),
                          ln2Mean_.data() + l * N, ln2Rstd_.data() + l * N, N, C);
        // res2 = residual + proj(attention(qkv(ln1(residual))))
        std::fill(datty.begin(), datty.end(), 0.0f);
        matmulBackward(datty.data(), g(PROJW, l), g(PROJB, l), dres.data(), atty, p(PROJW, l), N, C,
                       C, pool_);
        std::fill(dqkv.begin(), dqkv.end(), 0.0f);
        attentionBackward(dqkv.data(), datty.data(),
                          att_.data() + static_cast<size_t>(l) * B * NH * T * T, qkv, B, T, NH, NH,
                          C / NH, pool_);
        std::fill(dln1.begin(), dln1.end(), 0.0f);
        matmulBackward(dln1.data(), g(QKVW, l), g(QKVB, l), dqkv.data(), ln1, p(QKVW, l), N, C,
                       3 * C, pool_);
        layerNormBackward(dres.data(), g(LN1W, l), g(LN1B, l), dln1.data(), residual, p(LN1W, l),
                          ln1Mean_.data() + l * N, ln1Rstd_.data() + l * N, N, C);
    }
    // 4. embeddings
    for (int i = 0; i < N; ++i) {
        float* dte = g(WTE) + static_cast<size_t>(inputs_[static_cast<size_t>(i)]) * C;
        float* dpe = g(WPE) + static_cast<size_t>(i % T) * C;
        for (int j = 0; j < C; ++j) {
            dte[j] += dres[static_cast<size_t>(i) * C + j];
            dpe[j] += dres[static_cast<size_t>(i) * C + j];
        }
    }
}

GgufWriter Gpt2Trainer::toGguf(const BpeVocabulary& vocab, const std::string& name) const {
    const Gpt2Shape& s = shape_;
    GgufWriter w;
    w.set("general.architecture", GgufValue::str("gpt2"));
    w.set("general.name", GgufValue::str(name));
    w.set("gpt2.block_count", GgufValue::u32(static_cast<uint32_t>(s.nLayer)));
    w.set("gpt2.context_length", GgufValue::u32(static_cast<uint32_t>(s.nCtx)));
    w.set("gpt2.embedding_length", GgufValue::u32(static_cast<uint32_t>(s.nEmbd)));
    w.set("gpt2.feed_forward_length", GgufValue::u32(static_cast<uint32_t>(4 * s.nEmbd)));
    w.set("gpt2.attention.head_count", GgufValue::u32(static_cast<uint32_t>(s.nHead)));
    w.set("gpt2.attention.layer_norm_epsilon", GgufValue::f32(kEps));
    vocab.writeTo(w);

    const auto C = static_cast<uint64_t>(s.nEmbd);
    // GGUF shapes, ne[0] first: a (rows, cols) matrix here is ne = [cols, rows].
    auto shapeOf = [&](int t) -> std::vector<uint64_t> {
        switch (t) {
            case WTE:
                return {C, static_cast<uint64_t>(s.nVocab)};
            case WPE:
                return {C, static_cast<uint64_t>(s.nCtx)};
            case QKVW:
                return {C, 3 * C};
            case QKVB:
                return {3 * C};
            case PROJW:
                return {C, C};
            case FCW:
                return {C, 4 * C};
            case FCB:
                return {4 * C};
            case FC2W:
                return {4 * C, C};
            default:
                return {C};
        }
    };
    for (int t = 0; t < static_cast<int>(tensors_.size()); ++t) {
        const Tensor& x = tensors_[static_cast<size_t>(t)];
        for (int l = 0; l < (x.perLayer ? s.nLayer : 1); ++l)
            addSlice(w, x.name, t, l, 0, x.size, shapeOf(t));
    }
    return w;
}

}  // namespace kvscope
