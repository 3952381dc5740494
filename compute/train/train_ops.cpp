// The trainers' layers and their backward passes (see train_ops.h). Matrix products go through
// Eigen, split over the thread pool; the rest are plain loops.
#include "train/train_ops.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/numeric.h"

namespace kvscope::train {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using StridedMat = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;
using ConstStridedMat = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
const float kGeluScale = static_cast<float>(std::sqrt(2.0 / kPi));

}  // namespace

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

void attentionForward(float* out, float* att, const float* qkv, int B, int T, int NH, int NKV,
                      int hs, ThreadPool& pool) {
    const int R = (NH + 2 * NKV) * hs, C = NH * hs, group = NH / NKV;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
    pool.parallelFor(static_cast<size_t>(B * NH), [&](size_t job) {
        const int b = static_cast<int>(job) / NH, h = static_cast<int>(job) % NH;
        const int kvh = h / group;
        const float* base = qkv + static_cast<size_t>(b) * T * R;
        // Q, K, V of this head (T, hs), rows R apart; P its weights (T, T); O its output
        const ConstStridedMat Q(base + h * hs, T, hs, Eigen::OuterStride<>(R));
        const ConstStridedMat K(base + C + kvh * hs, T, hs, Eigen::OuterStride<>(R));
        const ConstStridedMat V(base + C + NKV * hs + kvh * hs, T, hs, Eigen::OuterStride<>(R));
        Eigen::Map<RowMat> P(att + (static_cast<size_t>(b) * NH + h) * T * T, T, T);
        StridedMat O(out + static_cast<size_t>(b) * T * C + h * hs, T, hs, Eigen::OuterStride<>(C));
        // 1. scores, 2. softmax of each row t over positions 0..t (zero above the diagonal)
        P.noalias() = (Q * K.transpose()) * scale;
        for (int t = 0; t < T; ++t) {
            auto row = P.row(t).head(t + 1).array();
            row = (row - row.maxCoeff()).exp();
            row /= row.sum();
            P.row(t).tail(T - t - 1).setZero();
        }
        // 3. weighted sum of values
        O.noalias() = P * V;
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
        const ConstStridedMat K(base + kOff, T, hs, Eigen::OuterStride<>(R));
        const ConstStridedMat V(base + vOff, T, hs, Eigen::OuterStride<>(R));
        StridedMat dK(dbase + kOff, T, hs, Eigen::OuterStride<>(R));
        StridedMat dV(dbase + vOff, T, hs, Eigen::OuterStride<>(R));
        RowMat dP(T, T), dS(T, T);
        for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
            const ConstStridedMat Q(base + h * hs, T, hs, Eigen::OuterStride<>(R));
            StridedMat dQ(dbase + h * hs, T, hs, Eigen::OuterStride<>(R));
            const Eigen::Map<const RowMat> P(att + (static_cast<size_t>(b) * NH + h) * T * T, T, T);
            const ConstStridedMat dO(dout + static_cast<size_t>(b) * T * C + h * hs, T, hs,
                                     Eigen::OuterStride<>(C));
            // 1. through the weighted sum: d weights and d values
            dP.noalias() = dO * V.transpose();
            dV.noalias() += P.transpose() * dO;
            // 2. through the softmax: dS = P ⊙ (dP − Σ P·dP), zero where P is (above the diagonal)
            const Eigen::VectorXf dot = (P.array() * dP.array()).rowwise().sum();
            dS.array() = P.array() * (dP.array().colwise() - dot.array()) * scale;
            // 3. through the scores: d queries and d keys
            dQ.noalias() += dS * K;
            dK.noalias() += dS.transpose() * Q;
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
