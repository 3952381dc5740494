// The trainers' layers and their backward passes (see train_ops.h). The linear layers' products
// and attention's products go through sgemm's kernels, split over the thread pool; the rest are
// plain loops.
#include "train/train_ops.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/numeric.h"
#include "cpu/sgemm.h"

namespace kvscope::train {
namespace {

const float kGeluScale = static_cast<float>(std::sqrt(2.0 / kPi));

}  // namespace

void matmulForward(float* out, const float* inp, const float* w, const float* bias, int N, int C,
                   int OC, ThreadPool& pool) {
    // out = inp · wᵀ: the kernels take B row-major (K × N), so w (OC, C) goes in as wᵀ (C, OC)
    std::vector<float> wt(static_cast<size_t>(C) * OC);
    parallelRows(pool, OC, 64, [&](int b, int e) {
        sgemm::transpose(wt.data() + b, OC, w + static_cast<size_t>(b) * C, C, e - b, C);
    });
    parallelRows(pool, N, 16, [&](int b, int e) {
        float* o = out + static_cast<size_t>(b) * OC;
        sgemm::gemm(false, e - b, OC, C, inp + static_cast<size_t>(b) * C, C, wt.data(), OC, o, OC,
                    false);
        if (bias)
            for (int i = 0; i < e - b; ++i)
                for (int j = 0; j < OC; ++j) o[static_cast<size_t>(i) * OC + j] += bias[j];
    });
}

void matmulBackward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                    const float* w, int N, int C, int OC, ThreadPool& pool) {
    // dinp += dout · w; dw += doutᵀ · inp, a block of w's rows (dout's columns) per job
    parallelRows(pool, N, 16, [&](int b, int e) {
        sgemm::gemm(false, e - b, C, OC, dout + static_cast<size_t>(b) * OC, OC, w, C,
                    dinp + static_cast<size_t>(b) * C, C, true);
    });
    parallelRows(pool, OC, 8, [&](int b, int e) {
        sgemm::gemm(true, e - b, C, N, dout + b, OC, inp, C, dw + static_cast<size_t>(b) * C, C,
                    true);
        if (dbias)
            for (int i = 0; i < N; ++i) {
                const float* d = dout + static_cast<size_t>(i) * OC;
                for (int j = b; j < e; ++j) dbias[j] += d[j];
            }
    });
}

void layerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                      const float* b, int N, int C, float eps) {
    for (int i = 0; i < N; ++i) {
        const float* x = inp + static_cast<size_t>(i) * C;
        double m = 0, v = 0;
        for (int j = 0; j < C; ++j) m += x[j];
        m /= C;
        for (int j = 0; j < C; ++j) v += (x[j] - m) * (x[j] - m);
        v /= C;
        const auto s = static_cast<float>(1.0 / std::sqrt(v + eps));
        float* o = out + static_cast<size_t>(i) * C;
        for (int j = 0; j < C; ++j) o[j] = (x[j] - static_cast<float>(m)) * s * w[j] + b[j];
        mean[i] = static_cast<float>(m);
        rstd[i] = s;
    }
}

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

void rmsNormForward(float* out, float* rstd, const float* inp, const float* w, int N, int C,
                    float eps) {
    for (int i = 0; i < N; ++i) {
        const float* x = inp + static_cast<size_t>(i) * C;
        float* o = out + static_cast<size_t>(i) * C;
        double ss = 0;
        for (int j = 0; j < C; ++j) ss += static_cast<double>(x[j]) * x[j];
        const auto s = static_cast<float>(1.0 / std::sqrt(ss / C + eps));
        for (int j = 0; j < C; ++j) o[j] = x[j] * s * w[j];
        rstd[i] = s;
    }
}

void rmsNormBackward(float* dinp, float* dw, const float* dout, const float* inp, const float* w,
                     const float* rstd, int N, int C) {
    // y = x·s·w with s = (mean(x²) + eps)^(-1/2): dx = s·(w⊙dy) − x·s³·mean(x ⊙ w ⊙ dy)
    for (int i = 0; i < N; ++i) {
        const float* x = inp + static_cast<size_t>(i) * C;
        const float* d = dout + static_cast<size_t>(i) * C;
        float* dx = dinp + static_cast<size_t>(i) * C;
        const double s = rstd[i];
        double dot = 0;
        for (int j = 0; j < C; ++j) dot += static_cast<double>(w[j]) * d[j] * x[j];
        const double k = s * s * s * dot / C;
        for (int j = 0; j < C; ++j) {
            dw[j] += static_cast<float>(x[j] * s) * d[j];
            dx[j] += static_cast<float>(s * w[j] * d[j] - k * x[j]);
        }
    }
}

void geluForward(float* out, const float* inp, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const float x = inp[i];
        out[i] = 0.5f * x * (1.0f + std::tanh(kGeluScale * (x + 0.044715f * x * x * x)));
    }
}

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

void swigluForward(float* out, const float* gu, int N, int F) {
    for (int i = 0; i < N; ++i) {
        const float* g = gu + static_cast<size_t>(i) * 2 * F;
        const float* u = g + F;
        float* o = out + static_cast<size_t>(i) * F;
        const Eigen::Map<const Eigen::ArrayXf> G(g, F), U(u, F);
        Eigen::Map<Eigen::ArrayXf>(o, F) = G / (1.0f + (-G).exp()) * U;
    }
}

void swigluBackward(float* dgu, const float* dout, const float* gu, int N, int F) {
    // SiLU(a) = a·σ(a), SiLU'(a) = σ(a)·(1 + a·(1 − σ(a)))
    for (int i = 0; i < N; ++i) {
        const float* g = gu + static_cast<size_t>(i) * 2 * F;
        const float* u = g + F;
        const float* d = dout + static_cast<size_t>(i) * F;
        float* dg = dgu + static_cast<size_t>(i) * 2 * F;
        float* du = dg + F;
        const Eigen::Map<const Eigen::ArrayXf> G(g, F), U(u, F), D(d, F);
        const Eigen::ArrayXf sig = 1.0f / (1.0f + (-G).exp());
        Eigen::Map<Eigen::ArrayXf>(du, F) += G * sig * D;
        Eigen::Map<Eigen::ArrayXf>(dg, F) += sig * (1.0f + G * (1.0f - sig)) * U * D;
    }
}

void ropeRotate(float* qkv, const RopeConfig& rope, const float* cosv, const float* sinv, int B,
                int T, int R, int nHeads, int hd, bool inverse) {
    const int pairs = rope.nRot / 2;
    std::vector<float> negSin(static_cast<size_t>(pairs));
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < T; ++t) {
            float* row = qkv + (static_cast<size_t>(b) * T + t) * R;
            const float* c = cosv + static_cast<size_t>(t) * pairs;
            const float* s = sinv + static_cast<size_t>(t) * pairs;
            if (inverse) {
                for (int i = 0; i < pairs; ++i) negSin[static_cast<size_t>(i)] = -s[i];
                s = negSin.data();
            }
            for (int h = 0; h < nHeads; ++h) ropeApply(rope, row + h * hd, c, s);
        }
}

namespace {

// Causal products in blocks of query rows: rows [r0, r1) need keys 0..r1-1 only, which halves
// the work of a full T × T product. fn(r0, r1) for each block.
constexpr int kCausalRows = 32;
template <typename F>
void causalBlocks(int T, F fn) {
    for (int r0 = 0; r0 < T; r0 += kCausalRows) fn(r0, std::min(T, r0 + kCausalRows));
}

}  // namespace

void attentionForward(float* out, float* att, const float* qkv, int B, int T, int NH, int NKV,
                      int hs, ThreadPool& pool) {
    const int R = (NH + 2 * NKV) * hs, C = NH * hs, group = NH / NKV;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
    pool.parallelFor(static_cast<size_t>(B * NH), [&](size_t job) {
        const int b = static_cast<int>(job) / NH, h = static_cast<int>(job) % NH;
        const int kvh = h / group;
        const float* base = qkv + static_cast<size_t>(b) * T * R;
        // Q, K, V of this head (T, hs), rows R apart; P its weights (T, T); O its output
        const float* Q = base + h * hs;
        const float* K = base + C + kvh * hs;
        const float* V = base + C + NKV * hs + kvh * hs;
        float* P = att + (static_cast<size_t>(b) * NH + h) * T * T;
        float* O = out + static_cast<size_t>(b) * T * C + h * hs;
        std::vector<float> kt(static_cast<size_t>(hs) * T);  // Kᵀ (hs, T)
        sgemm::transpose(kt.data(), T, K, R, T, hs);
        causalBlocks(T, [&](int r0, int r1) {
            // 1. scores of rows r0..r1-1 against keys 0..r1-1
            sgemm::gemm(false, r1 - r0, r1, hs, Q + static_cast<size_t>(r0) * R, R, kt.data(), T,
                        P + static_cast<size_t>(r0) * T, T, false);
            // 2. softmax of each row t over positions 0..t (zero above the diagonal)
            for (int t = r0; t < r1; ++t) {
                float* row = P + static_cast<size_t>(t) * T;
                auto w = Eigen::Map<Eigen::ArrayXf>(row, t + 1);
                w = ((w - w.maxCoeff()) * scale).exp();
                w /= w.sum();
                std::fill(row + t + 1, row + T, 0.0f);
            }
            // 3. weighted sum of values 0..r1-1
            sgemm::gemm(false, r1 - r0, hs, r1, P + static_cast<size_t>(r0) * T, T, V, R,
                        O + static_cast<size_t>(r0) * C, C, false);
        });
    });
}

void attentionBackward(float* dqkv, const float* dout, const float* att, const float* qkv, int B,
                       int T, int NH, int NKV, int hs, ThreadPool& pool) {
    const int R = (NH + 2 * NKV) * hs, C = NH * hs, group = NH / NKV;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
    // One job per sequence and K/V head: the query heads of a group add into the same dK, dV.
    pool.parallelFor(static_cast<size_t>(B * NKV), [&](size_t job) {
        const int b = static_cast<int>(job) / NKV, kvh = static_cast<int>(job) % NKV;
        const float* base = qkv + static_cast<size_t>(b) * T * R;
        float* dbase = dqkv + static_cast<size_t>(b) * T * R;
        const int kOff = C + kvh * hs, vOff = C + NKV * hs + kvh * hs;
        const float* K = base + kOff;
        float* dK = dbase + kOff;
        float* dV = dbase + vOff;
        std::vector<float> vt(static_cast<size_t>(hs) * T), dP(static_cast<size_t>(T) * T),
            dS(static_cast<size_t>(T) * T);
        sgemm::transpose(vt.data(), T, base + vOff, R, T, hs);  // Vᵀ (hs, T)
        for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
            const float* Q = base + h * hs;
            float* dQ = dbase + h * hs;
            const float* P = att + (static_cast<size_t>(b) * NH + h) * T * T;
            const float* dO = dout + static_cast<size_t>(b) * T * C + h * hs;
            causalBlocks(T, [&](int r0, int r1) {
                const auto rows = static_cast<size_t>(r0);
                // 1. through the weighted sum: d weights of rows r0..r1-1 (keys 0..r1-1)
                sgemm::gemm(false, r1 - r0, r1, hs, dO + rows * C, C, vt.data(), T,
                            dP.data() + rows * T, T, false);
                // 2. through the softmax: dS = P ⊙ (dP − Σ P·dP), zero above the diagonal
                for (int t = r0; t < r1; ++t) {
                    const float* p = P + static_cast<size_t>(t) * T;
                    const float* dp = dP.data() + static_cast<size_t>(t) * T;
                    float* ds = dS.data() + static_cast<size_t>(t) * T;
                    float dot = 0;
                    for (int j = 0; j <= t; ++j) dot += p[j] * dp[j];
                    for (int j = 0; j <= t; ++j) ds[j] = p[j] * (dp[j] - dot) * scale;
                    std::fill(ds + t + 1, ds + T, 0.0f);
                }
                // 3. through the scores: d queries of rows r0..r1-1 from keys 0..r1-1
                sgemm::gemm(false, r1 - r0, hs, r1, dS.data() + rows * T, T, K, R, dQ + rows * R, R,
                            true);
            });
            // d values and d keys of rows r0..r1-1: from the queries r0..T-1 that see them
            causalBlocks(T, [&](int r0, int r1) {
                const auto rows = static_cast<size_t>(r0);
                sgemm::gemm(true, r1 - r0, hs, T - r0, P + rows * T + rows, T, dO + rows * C, C,
                            dV + rows * R, R, true);
                sgemm::gemm(true, r1 - r0, hs, T - r0, dS.data() + rows * T + rows, T, Q + rows * R,
                            R, dK + rows * R, R, true);
            });
        }
    });
}

float crossEntropyForward(float* probs, const float* logits, const int32_t* targets, int N, int V,
                          ThreadPool& pool) {
    std::vector<double> losses(static_cast<size_t>(N));
    parallelRows(pool, N, 8, [&](int b, int e) {
        for (int i = b; i < e; ++i) {
            const float* z = logits + static_cast<size_t>(i) * V;
            float* pr = probs + static_cast<size_t>(i) * V;
            const Eigen::Map<const Eigen::ArrayXf> Z(z, V);
            Eigen::Map<Eigen::ArrayXf> Pr(pr, V);
            const float mx = Z.maxCoeff();
            Pr = (Z - mx).exp();
            const double sum = Pr.cast<double>().sum();
            Pr *= static_cast<float>(1.0 / sum);
            if (targets[i] >= 0)
                losses[static_cast<size_t>(i)] = -(z[targets[i]] - mx - std::log(sum));
        }
    });
    double total = 0;
    int counted = 0;
    for (int i = 0; i < N; ++i)
        if (targets[i] >= 0) {
            total += losses[static_cast<size_t>(i)];
            ++counted;
        }
    return counted ? static_cast<float>(total / counted) : 0.0f;
}

void crossEntropyBackward(float* dlogits, const float* probs, const int32_t* targets, int N,
                          int V) {
    int counted = 0;
    for (int i = 0; i < N; ++i) counted += targets[i] >= 0 ? 1 : 0;
    const float scale = counted ? 1.0f / static_cast<float>(counted) : 0.0f;
    for (int i = 0; i < N; ++i) {
        float* d = dlogits + static_cast<size_t>(i) * V;
        const float* pr = probs + static_cast<size_t>(i) * V;
        if (targets[i] < 0) {
            std::fill(d, d + V, 0.0f);
            continue;
        }
        for (int j = 0; j < V; ++j) d[j] = pr[j] * scale;
        d[targets[i]] -= scale;
    }
}

}  // namespace kvscope::train
