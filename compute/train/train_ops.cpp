// The trainers' layers and their backward passes (see train_ops.h). Matrix products go through
// Eigen, split over the thread pool; the rest are plain loops.
#include "train/train_ops.h"

#include <Eigen/Core>
#include <cmath>
#include <vector>

#include "core/numeric.h"

namespace kvscope::train {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
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
        for (int j = 0; j < F; ++j) o[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
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
        for (int j = 0; j < F; ++j) {
            const float sig = 1.0f / (1.0f + std::exp(-g[j]));
            du[j] += g[j] * sig * d[j];
            dg[j] += sig * (1.0f + g[j] * (1.0f - sig)) * u[j] * d[j];
        }
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
        const int kOff = C + kvh * hs, vOff = C + NKV * hs + kvh * hs;
        for (int t = 0; t < T; ++t) {
            const float* q = base + static_cast<size_t>(t) * R + h * hs;
            float* a = att + ((static_cast<size_t>(b) * NH + h) * T + t) * T;
            // 1. scores, 2. softmax over positions 0..t
            float mx = -1e30f;
            for (int t2 = 0; t2 <= t; ++t2) {
                const float* k = base + static_cast<size_t>(t2) * R + kOff;
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
                const float* v = base + static_cast<size_t>(t2) * R + vOff;
                for (int i = 0; i < hs; ++i) o[i] += a[t2] * v[i];
            }
        }
    });
}

void attentionBackward(float* dqkv, const float* dout, const float* att, const float* qkv, int B,
                       int T, int NH, int NKV, int hs, ThreadPool& pool) {
    const int R = (NH + 2 * NKV) * hs, C = NH * hs, group = NH / NKV;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
    // One job per sequence and K/V head: the query heads of a group add into the same dk, dv.
    pool.parallelFor(static_cast<size_t>(B * NKV), [&](size_t job) {
        const int b = static_cast<int>(job) / NKV, kvh = static_cast<int>(job) % NKV;
        const float* base = qkv + static_cast<size_t>(b) * T * R;
        float* dbase = dqkv + static_cast<size_t>(b) * T * R;
        const int kOff = C + kvh * hs, vOff = C + NKV * hs + kvh * hs;
        std::vector<float> datt(static_cast<size_t>(T)), dpre(static_cast<size_t>(T));
        for (int h = kvh * group; h < (kvh + 1) * group; ++h)
            for (int t = 0; t < T; ++t) {
                const float* a = att + ((static_cast<size_t>(b) * NH + h) * T + t) * T;
                const float* d = dout + (static_cast<size_t>(b) * T + t) * C + h * hs;
                // 1. through the weighted sum: d weights and d values
                float dot = 0;
                for (int t2 = 0; t2 <= t; ++t2) {
                    const float* v = base + static_cast<size_t>(t2) * R + vOff;
                    float* dv = dbase + static_cast<size_t>(t2) * R + vOff;
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
                const float* q = base + static_cast<size_t>(t) * R + h * hs;
                float* dq = dbase + static_cast<size_t>(t) * R + h * hs;
                for (int t2 = 0; t2 <= t; ++t2) {
                    const float* k = base + static_cast<size_t>(t2) * R + kOff;
                    float* dk = dbase + static_cast<size_t>(t2) * R + kOff;
                    const float g = dpre[static_cast<size_t>(t2)] * scale;
                    for (int i = 0; i < hs; ++i) {
                        dq[i] += g * k[i];
                        dk[i] += g * q[i];
                    }
                }
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

void crossEntropyBackward(float* dlogits, const float* probs, const int32_t* targets, int N,
                          int V) {
    const auto n = static_cast<size_t>(N) * static_cast<size_t>(V);
    for (size_t i = 0; i < n; ++i) dlogits[i] = probs[i];
    for (int i = 0; i < N; ++i) dlogits[static_cast<size_t>(i) * V + targets[i]] -= 1.0f;
    for (size_t i = 0; i < n; ++i) dlogits[i] /= static_cast<float>(N);
}

}  // namespace kvscope::train
