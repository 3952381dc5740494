// Gpt2Trainer: forward, backward and AdamW for a small GPT-2, in the manner of llm.c's
// train_gpt2.c (our own code): free functions with outputs first and shapes on top, the big
// matrix products through Eigen and split over the thread pool.
#include "train/gpt2_trainer.h"
#include "core/numeric.h"

#include <Eigen/Core>
#include <cassert>
#include <cmath>
#include <cstring>
#include <random>

namespace kvscope {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using StridedMat = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;
using ConstStridedMat = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;

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
const float kGeluScale = static_cast<float>(std::sqrt(2.0 / kPi));

// Splits [0, n) into chunks of at least `grain` and runs fn(begin, end) on the pool.
template <typename F>
void parallelRows(ThreadPool& pool, int n, int grain, F fn) {
    const int chunks =
        std::max(1, std::min(static_cast<int>(pool.size()) * 4, n / std::max(1, grain)));
    const int per = (n + chunks - 1) / chunks;
    pool.parallelFor(static_cast<size_t>(chunks), [&](size_t c) {
        const int b = static_cast<int>(c) * per, e = std::min(n, b + per);
        if (b < e) fn(b, e);
    });
}

// out (N, OC) = inp (N, C) · wᵀ + bias, with w (OC, C), bias (OC) or null.
void matmulForward(float* out, const float* inp, const float* w, const float* bias, int N, int C,
                   int OC, ThreadPool& pool) {
    Eigen::Map<const RowMat> W(w, OC, C);
    parallelRows(pool, N, 16, [&](int b, int e) {
        Eigen::Map<const RowMat> X(inp + static_cast<size_t>(b) * C, e - b, C);
        Eigen::Map<RowMat> O(out + static_cast<size_t>(b) * OC, e - b, OC);
        O.noalias() = X * W.transpose();
        if (bias) O.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias, OC);
    });
}

// Given dout (N, OC) of matmulForward, adds dinp (N, C) += dout · w, dw (OC, C) += doutᵀ · inp,
// dbias (OC) += column sums of dout (dbias may be null).
void matmulBackward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                    const float* w, int N, int C, int OC, ThreadPool& pool) {
    Eigen::Map<const RowMat> W(w, OC, C), X(inp, N, C), D(dout, N, OC);
    parallelRows(pool, N, 16, [&](int b, int e) {
        Eigen::Map<RowMat>(dinp + static_cast<size_t>(b) * C, e - b, C).noalias() +=
            D.middleRows(b, e - b) * W;
    });
    parallelRows(pool, OC, 8, [&](int b, int e) {
        Eigen::Map<RowMat>(dw + static_cast<size_t>(b) * C, e - b, C).noalias() +=
            D.middleCols(b, e - b).transpose() * X;
        if (dbias)
            Eigen::Map<Eigen::RowVectorXf>(dbias + b, e - b) +=
                D.middleCols(b, e - b).colwise().sum();
    });
}

// out (N, C) = LayerNorm(inp) · w + b; mean, rstd (N) kept for the backward pass.
void layerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                      const float* b, int N, int C) {
    for (int i = 0; i < N; ++i) {
        const float* x = inp + static_cast<size_t>(i) * C;
        double m = 0, v = 0;
        for (int j = 0; j < C; ++j) m += x[j];
        m /= C;
        for (int j = 0; j < C; ++j) v += (x[j] - m) * (x[j] - m);
        v /= C;
        const auto s = static_cast<float>(1.0 / std::sqrt(v + kEps));
        float* o = out + static_cast<size_t>(i) * C;
        for (int j = 0; j < C; ++j) o[j] = (x[j] - static_cast<float>(m)) * s * w[j] + b[j];
        mean[i] = static_cast<float>(m);
        rstd[i] = s;
    }
}

// Adds dinp (N, C), dw (C), db (C) from dout (N, C) of layerNormForward.
void layerNormBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                       const float* w, const float* mean, const float* rstd, int N, int C) {
    for (int i = 0; i < N; ++i) {
        const float* x = inp + static_cast<size_t>(i) * C;
        const float* d = dout + static_cast<size_t>(i) * C;
        float* dx = dinp + static_cast<size_t>(i) * C;
        // 1. the two means the gradient of a normalisation needs
        double dnormMean = 0, dnormNormMean = 0;
        for (int j = 0; j < C; ++j) {
            const float norm = (x[j] - mean[i]) * rstd[i];
            const float dnorm = w[j] * d[j];
            dnormMean += dnorm;
            dnormNormMean += dnorm * norm;
        }
        dnormMean /= C;
        dnormNormMean /= C;
        // 2. accumulate
        for (int j = 0; j < C; ++j) {
            const float norm = (x[j] - mean[i]) * rstd[i];
            const float dnorm = w[j] * d[j];
            db[j] += d[j];
            dw[j] += norm * d[j];
            dx[j] +=
                (dnorm - static_cast<float>(dnormMean) - norm * static_cast<float>(dnormNormMean)) *
                rstd[i];
        }
    }
}

// Causal self-attention of (B, T) tokens, NH heads of size hs = C / NH.
//   out (B, T, C), att (B, NH, T, T) the softmax weights (zero above the diagonal);
//   qkv (B, T, 3C): queries, keys, values side by side.
void attentionForward(float* out, float* att, const float* qkv, int B, int T, int C, int NH,
                      ThreadPool& pool) {
    const int hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
    pool.parallelFor(static_cast<size_t>(B * NH), [&](size_t job) {
        const int b = static_cast<int>(job) / NH, h = static_cast<int>(job) % NH;
        const float* base = qkv + static_cast<size_t>(b) * T * C3;
        for (int t = 0; t < T; ++t) {
            const float* q = base + static_cast<size_t>(t) * C3 + h * hs;
            float* a = att + ((static_cast<size_t>(b) * NH + h) * T + t) * T;
            // 1. scores, 2. softmax over positions 0..t
            float mx = -1e30f;
            for (int t2 = 0; t2 <= t; ++t2) {
                const float* k = base + static_cast<size_t>(t2) * C3 + C + h * hs;
                float s = 0;
                for (int i = 0; i < hs; ++i) s += q[i] * k[i];
                a[t2] = s * scale;
                mx = std::max(mx, a[t2]);
            }
            float sum = 0;
            for (int t2 = 0; t2 <= t; ++t2) sum += (a[t2] = std::exp(a[t2] - mx));
            for (int t2 = 0; t2 <= t; ++t2) a[t2] /= sum;
            for (int t2 = t + 1; t2 < T; ++t2) a[t2] = 0;
            // 3. weighted sum of values
            float* o = out + (static_cast<size_t>(b) * T + t) * C + h * hs;
            for (int i = 0; i < hs; ++i) o[i] = 0;
            for (int t2 = 0; t2 <= t; ++t2) {
                const float* v = base + static_cast<size_t>(t2) * C3 + 2 * C + h * hs;
                for (int i = 0; i < hs; ++i) o[i] += a[t2] * v[i];
            }
        }
    });
}

// Adds dqkv (B, T, 3C) from dout (B, T, C) of attentionForward.
void attentionBackward(float* dqkv, const float* dout, const float* att, const float* qkv, int B,
                       int T, int C, int NH, ThreadPool& pool) {
    const int hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
    pool.parallelFor(static_cast<size_t>(B * NH), [&](size_t job) {
        const int b = static_cast<int>(job) / NH, h = static_cast<int>(job) % NH;
        const float* base = qkv + static_cast<size_t>(b) * T * C3;
        float* dbase = dqkv + static_cast<size_t>(b) * T * C3;
        std::vector<float> datt(static_cast<size_t>(T)), dpre(static_cast<size_t>(T));
        for (int t = 0; t < T; ++t) {
            const float* a = att + ((static_cast<size_t>(b) * NH + h) * T + t) * T;
            const float* d = dout + (static_cast<size_t>(b) * T + t) * C + h * hs;
            // 1. through the weighted sum: d weights and d values
            float dot = 0;
            for (int t2 = 0; t2 <= t; ++t2) {
                const float* v = base + static_cast<size_t>(t2) * C3 + 2 * C + h * hs;
                float* dv = dbase + static_cast<size_t>(t2) * C3 + 2 * C + h * hs;
                float s = 0;
                for (int i = 0; i < hs; ++i) {
                    s += d[i] * v[i];
                    dv[i] += a[t2] * d[i];
                }
                datt[static_cast<size_t>(t2)] = s;
                dot += a[t2] * s;
            }
            // 2. through the softmax: dpre = a ⊙ (datt − Σ a·datt)
            for (int t2 = 0; t2 <= t; ++t2)
                dpre[static_cast<size_t>(t2)] = a[t2] * (datt[static_cast<size_t>(t2)] - dot);
            // 3. through the scores: d queries and d keys
            const float* q = base + static_cast<size_t>(t) * C3 + h * hs;
            float* dq = dbase + static_cast<size_t>(t) * C3 + h * hs;
            for (int t2 = 0; t2 <= t; ++t2) {
                const float* k = base + static_cast<size_t>(t2) * C3 + C + h * hs;
                float* dk = dbase + static_cast<size_t>(t2) * C3 + C + h * hs;
                const float g = dpre[static_cast<size_t>(t2)] * scale;
                for (int i = 0; i < hs; ++i) {
                    dq[i] += g * k[i];
                    dk[i] += g * q[i];
                }
            }
        }
    });
}

// out = GELU(inp) (tanh approximation), n values.
void geluForward(float* out, const float* inp, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const float x = inp[i];
        out[i] = 0.5f * x * (1.0f + std::tanh(kGeluScale * (x + 0.044715f * x * x * x)));
    }
}

// dinp += GELU'(inp) · dout
void geluBackward(float* dinp, const float* inp, const float* dout, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const float x = inp[i];
        const float u = kGeluScale * (x + 0.044715f * x * x * x);
        const float th = std::tanh(u);
        const float sech2 = 1.0f - th * th;
        const float du = kGeluScale * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += (0.5f * (1.0f + th) + 0.5f * x * sech2 * du) * dout[i];
    }
}

}  // namespace

Gpt2Trainer::Gpt2Trainer(const Gpt2Shape& s, uint64_t seed, float initStd, ThreadPool& pool)
    : shape_(s), pool_(pool) {
    assert(s.nEmbd % s.nHead == 0);
    const auto C = static_cast<size_t>(s.nEmbd), V = static_cast<size_t>(s.nVocab),
               T = static_cast<size_t>(s.nCtx);
    // name, size per layer (or whole), per layer, decayed
    const std::vector<std::tuple<std::string, size_t, bool, bool>> table = {
        {"token_embd.weight", V * C, false, true},
        {"position_embd.weight", T * C, false, true},
        {"blk.{l}.attn_norm.weight", C, true, false},
        {"blk.{l}.attn_norm.bias", C, true, false},
        {"blk.{l}.attn_qkv.weight", 3 * C * C, true, true},
        {"blk.{l}.attn_qkv.bias", 3 * C, true, false},
        {"blk.{l}.attn_output.weight", C * C, true, true},
        {"blk.{l}.attn_output.bias", C, true, false},
        {"blk.{l}.ffn_norm.weight", C, true, false},
        {"blk.{l}.ffn_norm.bias", C, true, false},
        {"blk.{l}.ffn_up.weight", 4 * C * C, true, true},
        {"blk.{l}.ffn_up.bias", 4 * C, true, false},
        {"blk.{l}.ffn_down.weight", 4 * C * C, true, true},
        {"blk.{l}.ffn_down.bias", C, true, false},
        {"output_norm.weight", C, false, false},
        {"output_norm.bias", C, false, false},
    };
    size_t offset = 0;
    for (const auto& [name, size, perLayer, decay] : table) {
        tensors_.push_back({name, offset, size, perLayer, decay});
        offset += size * (perLayer ? static_cast<size_t>(s.nLayer) : 1);
    }
    params_.assign(offset, 0.0f);
    grads_.assign(offset, 0.0f);
    m_.assign(offset, 0.0f);
    v_.assign(offset, 0.0f);

    std::mt19937_64 rng(seed);
    auto fill = [&](int t, float mean, float sd) {
        std::normal_distribution<float> d(mean, sd);
        const Tensor& x = tensors_[static_cast<size_t>(t)];
        const size_t n = x.size * (x.perLayer ? static_cast<size_t>(s.nLayer) : 1);
        for (size_t i = 0; i < n; ++i) params_[x.offset + i] = sd > 0 ? d(rng) : mean;
    };
    const float residualStd = initStd / std::sqrt(2.0f * static_cast<float>(s.nLayer));
    fill(WTE, 0, initStd);
    fill(WPE, 0, initStd);
    fill(QKVW, 0, initStd);
    fill(PROJW, 0, residualStd);
    fill(FCW, 0, initStd);
    fill(FC2W, 0, residualStd);
    for (int t : {LN1W, LN2W, LNFW}) fill(t, 1, 0);
    if (initStd > 0.05f)  // tests: biases and norms away from their trivial values too
        for (int t : {LN1W, LN1B, QKVB, PROJB, LN2W, LN2B, FCB, FC2B, LNFW, LNFB})
            fill(t, t == LN1W || t == LN2W || t == LNFW ? 1.0f : 0.0f, initStd);
}

size_t Gpt2Trainer::at(int t, int layer) const {
    const Tensor& x = tensors_[static_cast<size_t>(t)];
    return x.offset + (x.perLayer ? static_cast<size_t>(layer) * x.size : 0);
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
                         p(LN1W, l), p(LN1B, l), N, C);
        matmulForward(qkv, ln1, p(QKVW, l), p(QKVB, l), N, C, 3 * C, pool_);
        attentionForward(atty, att_.data() + static_cast<size_t>(l) * B * NH * T * T, qkv, B, T, C,
                         NH, pool_);
        matmulForward(tmp.data(), atty, p(PROJW, l), p(PROJB, l), N, C, C, pool_);
        for (size_t i = 0; i < NC; ++i) res2[i] = residual[i] + tmp[i];
        layerNormForward(ln2, ln2Mean_.data() + l * N, ln2Rstd_.data() + l * N, res2, p(LN2W, l),
                         p(LN2B, l), N, C);
        matmulForward(fch, ln2, p(FCW, l), p(FCB, l), N, C, 4 * C, pool_);
        geluForward(fchg, fch, NC * 4);
        matmulForward(tmp.data(), fchg, p(FC2W, l), p(FC2B, l), N, 4 * C, C, pool_);
        for (size_t i = 0; i < NC; ++i) res3[i] = res2[i] + tmp[i];
    }
    // 3. final norm, tied output head, softmax and cross-entropy
    layerNormForward(lnf_.data(), lnfMean_.data(), lnfRstd_.data(),
                     residual3_.data() + (L - 1) * NC, p(LNFW), p(LNFB), N, C);
    matmulForward(logits_.data(), lnf_.data(), p(WTE), nullptr, N, C, V, pool_);
    std::vector<double> losses(static_cast<size_t>(N));
    parallelRows(pool_, N, 8, [&](int b, int e) {
        for (int i = b; i < e; ++i) {
            const float* z = logits_.data() + static_cast<size_t>(i) * V;
            float* pr = probs_.data() + static_cast<size_t>(i) * V;
            const float mx = *std::max_element(z, z + V);
            double sum = 0;
            for (int j = 0; j < V; ++j) sum += (pr[j] = std::exp(z[j] - mx));
            for (int j = 0; j < V; ++j) pr[j] = static_cast<float>(pr[j] / sum);
            losses[static_cast<size_t>(i)] = -(z[targets[i]] - mx - std::log(sum));
        }
    });
    double total = 0;
    for (double x : losses) total += x;
    return static_cast<float>(total / N);
}

void Gpt2Trainer::zeroGrad() {
    std::fill(grads_.begin(), grads_.end(), 0.0f);
}

void Gpt2Trainer::backward() {
    const int B = B_, T = T_, C = shape_.nEmbd, L = shape_.nLayer, NH = shape_.nHead,
              V = shape_.nVocab;
    const int N = B * T;
    const auto NC = static_cast<size_t>(N) * C;
    // 1. loss -> logits: (probs − one-hot) / N
    std::vector<float> dlogits(probs_);
    for (int i = 0; i < N; ++i) dlogits[static_cast<size_t>(i) * V + targets_[i]] -= 1.0f;
    for (float& x : dlogits) x /= static_cast<float>(N);
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
                          att_.data() + static_cast<size_t>(l) * B * NH * T * T, qkv, B, T, C, NH,
                          pool_);
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

float Gpt2Trainer::clipGradients(float maxNorm) {
    double ss = 0;
    for (float x : grads_) ss += static_cast<double>(x) * x;
    const auto norm = static_cast<float>(std::sqrt(ss));
    if (norm > maxNorm) {
        const float s = maxNorm / norm;
        for (float& x : grads_) x *= s;
    }
    return norm;
}

void Gpt2Trainer::update(const AdamW& o, int step) {
    const float c1 = 1.0f - std::pow(o.beta1, static_cast<float>(step));
    const float c2 = 1.0f - std::pow(o.beta2, static_cast<float>(step));
    for (const Tensor& t : tensors_) {
        const size_t n = t.size * (t.perLayer ? static_cast<size_t>(shape_.nLayer) : 1);
        const float wd = t.decay ? o.weightDecay : 0.0f;
        for (size_t i = t.offset; i < t.offset + n; ++i) {
            const float gr = grads_[i];
            m_[i] = o.beta1 * m_[i] + (1 - o.beta1) * gr;
            v_[i] = o.beta2 * v_[i] + (1 - o.beta2) * gr * gr;
            const float mh = m_[i] / c1, vh = v_[i] / c2;
            params_[i] -= o.lr * (mh / (std::sqrt(vh) + o.eps) + wd * params_[i]);
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
        for (int l = 0; l < (x.perLayer ? s.nLayer : 1); ++l) {
            std::string n = x.name;
            if (const size_t at = n.find("{l}"); at != std::string::npos)
                n.replace(at, 3, std::to_string(l));
            const float* begin =
                params_.data() + x.offset + (x.perLayer ? static_cast<size_t>(l) * x.size : 0);
            w.addTensorF32(n, shapeOf(t), std::vector<float>(begin, begin + x.size));
        }
    }
    return w;
}

}  // namespace kvscope
