// CpuBackend::forward: one batched pass of n tokens through the model, appending to the cache.
#include "cpu/cpu_backend.h"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "core/system_memory.h"
#include "cpu/cpu_ops.h"

namespace kvscope {

CpuBackend::CpuBackend(std::shared_ptr<const Model> model, ThreadPool& pool, KvCacheOptions cache)
    : model_(std::move(model)),
      pool_(pool),
      cache_(model_->config.nLayer, model_->config.nHeadKv, model_->config.nCtx,
             model_->config.headDim, cache),
      spare_(model_->config.nLayer, model_->config.nHeadKv, model_->config.nCtx,
             model_->config.headDim, cache) {
    checkHostMemory();
}

void CpuBackend::checkHostMemory() const {
    const std::optional<uint64_t> available = availableHostMemory();
    if (!available) return;
    const ModelConfig& c = model_->config;
    const uint64_t weights = model_->weightBytes();
    const uint64_t perToken = cache_.bytesPerToken();
    const uint64_t kv = perToken * static_cast<uint64_t>(c.nCtx);
    if (weights + kv <= *available) return;
    std::string fit;
    if (weights < *available) {
        const uint64_t tokens = (*available - weights) / perToken;
        fit = tokens >= 1 ? "; a context of " + std::to_string(tokens) +
                                " tokens would fit (--context " + std::to_string(tokens) + ")"
                          : "";
    }
    throw Error("not enough memory for " + c.name + ": the weights (" + memoryText(weights) + ", " +
                std::to_string(weights) + " bytes) and a KV cache of " + std::to_string(c.nCtx) +
                " tokens (" + memoryText(kv) + ", " + std::to_string(kv) + " bytes) need " +
                memoryText(weights + kv) + "; this machine has " + memoryText(*available) +
                " available" + fit);
}

namespace {

// One query's attention over the first t cached positions of (layer, kvHead), block by block:
//   a (t) = softmax(K · q / sqrt(head_dim)),  out (head_dim) = Σ_j a_j · V_j
void attendCached(float* out, float* a, const float* q, const KvCache& cache, int layer, int kvHead,
                  int t) {
    using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const int hd = cache.headDim(), B = cache.blockTokens();
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<size_t>(B) * hd);
    Eigen::Map<const Eigen::VectorXf> qv(q, hd);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const int blocks = (t + B - 1) / B;
    for (int b = 0; b < blocks; ++b) {
        const int rows = std::min(B, t - b * B);
        Eigen::Map<const RowMat> K(cache.keyBlock(layer, kvHead, b, scratch.data()), rows, hd);
        Eigen::Map<Eigen::VectorXf>(a + static_cast<size_t>(b) * B, rows).noalias() =
            (K * qv) * scale;
    }
    ops::softmax(a, t);
    Eigen::Map<Eigen::VectorXf> o(out, hd);
    o.setZero();
    for (int b = 0; b < blocks; ++b) {
        const int rows = std::min(B, t - b * B);
        Eigen::Map<const RowMat> V(cache.valueBlock(layer, kvHead, b, scratch.data()), rows, hd);
        o.noalias() +=
            V.transpose() * Eigen::Map<const Eigen::VectorXf>(a + static_cast<size_t>(b) * B, rows);
    }
}

}  // namespace

std::string CpuBackend::deviceName() const {
    return "CPU (Eigen, " + std::to_string(pool_.size()) + " threads)";
}

void CpuBackend::doForward(std::span<const int32_t> tokens, bool allLogits,
                           std::vector<float>& logits, std::vector<StepTrace>* traces,
                           int traceFrom) {
    const Model& m = *model_;
    const ModelConfig& c = m.config;
    const int n = static_cast<int>(tokens.size());
    const int p0 = cache_.used();
    // n, positions and ids were checked by Backend::forward; room for the new rows comes first,
    // so that a cache that cannot grow fails before anything changed.
    cache_.reserve(p0 + n);

    const int E = c.nEmbd, hd = c.headDim, H = c.nHead, Hkv = c.nHeadKv, F = c.nFf;
    const int Q = H * hd, KV = Hkv * hd, R = c.qkvRows();
    const bool gpt2 = c.arch == Arch::Gpt2;
    const auto N = static_cast<size_t>(n);
    std::vector<float> x(N * E), h(N * E), tmp(N * E), qkv(N * R), att(N * Q), up(N * F), gate;
    if (!gpt2) gate.resize(N * F);

    // Traces for tokens traceFrom..n-1.
    const int t0 = std::clamp(traceFrom, 0, n);
    if (traces) {
        for (int i = t0; i < n; ++i)
            traces->push_back(
                StepTrace::sized(tokens[static_cast<size_t>(i)], p0 + i, c.nLayer, H, Hkv, hd));
    }
    StepTrace* trace0 =
        traces ? traces->data() + (traces->size() - static_cast<size_t>(n - t0)) : nullptr;

    // 1. token (and position) embeddings
    for (int i = 0; i < n; ++i) {
        float* xi = x.data() + static_cast<size_t>(i) * E;
        m.tokEmbd.dequantizeRows(tokens[static_cast<size_t>(i)], 1, xi);
        if (gpt2) {
            const float* pe = m.posEmbd.data() + static_cast<size_t>(p0 + i) * E;
            for (int j = 0; j < E; ++j) xi[j] += pe[j];
        }
    }

    auto norm = [&](float* out, const float* in, const std::vector<float>& w,
                    const std::vector<float>& b, int rows) {
        if (gpt2)
            ops::layerNorm(out, in, w.data(), b.data(), rows, E, c.normEps);
        else
            ops::rmsNorm(out, in, w.data(), rows, E, c.normEps);
    };
    auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };

    for (int l = 0; l < c.nLayer; ++l) {
        const LayerWeights& w = m.layers[static_cast<size_t>(l)];
        // 2. attention input: norm, then q, k, v of the new tokens in one product
        norm(h.data(), x.data(), w.attnNormW, w.attnNormB, n);
        for (int part = 0, col = 0; part < static_cast<int>(w.qkv.size()); ++part) {
            const WeightMatrix& wp = w.qkv[static_cast<size_t>(part)];
            ops::matmul(qkv.data() + col, R, h.data(), wp,
                        w.bqkv.empty() ? nullptr : w.bqkv.data() + col, n, pool_);
            col += wp.rows();
        }
        for (int i = 0; i < n; ++i) {
            float* qi = qkv.data() + static_cast<size_t>(i) * R;
            if (!gpt2)  // RoPE rotates queries and keys (not values) by their position
                for (int hh = 0; hh < H + Hkv; ++hh)
                    ops::ropeAdjacent(qi + hh * hd, hd, p0 + i, c.ropeFreqBase);
            // 3. append the new key and value rows to the cache
            for (int g = 0; g < Hkv; ++g)
                cache_.write(l, g, p0 + i, qi + Q + g * hd, qi + Q + KV + g * hd);
            if (traces && i >= t0) {
                StepTrace& s = trace0[i - t0];
                std::memcpy(s.q.data() + static_cast<size_t>(l) * Q, qi, sizeof(float) * Q);
                std::memcpy(s.k.data() + static_cast<size_t>(l) * KV, qi + Q, sizeof(float) * KV);
                std::memcpy(s.v.data() + static_cast<size_t>(l) * KV, qi + Q + KV,
                            sizeof(float) * KV);
            }
        }
        // 4. causal attention of each new token and head over the cache
        pool_.parallelFor(N * H, [&](size_t job) {
            const int i = static_cast<int>(job / H), hh = static_cast<int>(job % H);
            const int g = c.kvHeadOf(hh), t = p0 + i + 1;
            thread_local std::vector<float> a;
            a.resize(static_cast<size_t>(t));
            attendCached(att.data() + static_cast<size_t>(i) * Q + hh * hd, a.data(),
                         qkv.data() + static_cast<size_t>(i) * R + hh * hd, cache_, l, g, t);
            if (traces && i >= t0)
                std::memcpy(trace0[i - t0].attn.data() + (static_cast<size_t>(l) * H + hh) * t,
                            a.data(), sizeof(float) * t);
        });
        // 5. output projection and residual
        ops::matmul(tmp.data(), E, att.data(), w.wo, bias(w.bo), n, pool_);
        for (size_t j = 0; j < N * E; ++j) x[j] += tmp[j];
        // 6. MLP and residual
        norm(h.data(), x.data(), w.ffnNormW, w.ffnNormB, n);
        ops::matmul(up.data(), F, h.data(), w.wUp, bias(w.bUp), n, pool_);
        if (gpt2) {
            ops::geluTanh(up.data(), up.size());
            ops::matmul(tmp.data(), E, up.data(), w.wDown, bias(w.bDown), n, pool_);
        } else {
            ops::matmul(gate.data(), F, h.data(), w.wGate, nullptr, n, pool_);
            ops::swiglu(gate.data(), up.data(), gate.size());
            ops::matmul(tmp.data(), E, gate.data(), w.wDown, nullptr, n, pool_);
        }
        for (size_t j = 0; j < N * E; ++j) x[j] += tmp[j];
    }
    cache_.commit(n);

    // 7. final norm and the output head, for the rows asked for
    const int rows = allLogits ? n : 1;
    const float* xr = x.data() + static_cast<size_t>(n - rows) * E;
    norm(h.data(), xr, m.outNormW, m.outNormB, rows);
    logits.resize(static_cast<size_t>(rows) * c.nVocab);
    ops::matmul(logits.data(), c.nVocab, h.data(), m.outputWeights(), nullptr, rows, pool_);
}

void CpuBackend::doAttentionMatrix(int layer, int head, std::span<const float> queries,
                                   std::vector<float>& out) {
    const ModelConfig& c = config();
    const int hd = c.headDim;
    const int t = static_cast<int>(queries.size()) / hd;
    using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    out.resize(static_cast<size_t>(t) * t);
    // 1. scores (t, t) = Q (t, hd) · Kᵀ, block by block of the cache, 2. causal softmax of rows
    Eigen::Map<const RowMat> Q(queries.data(), t, hd);
    Eigen::Map<RowMat> S(out.data(), t, t);
    const int B = cache_.blockTokens();
    std::vector<float> scratch(static_cast<size_t>(B) * hd);
    for (int b = 0; b * B < t; ++b) {
        const int rows = std::min(B, t - b * B);
        Eigen::Map<const RowMat> K(cache_.keyBlock(layer, c.kvHeadOf(head), b, scratch.data()),
                                   rows, hd);
        S.middleCols(b * B, rows).noalias() = Q * K.transpose();
    }
    ops::causalSoftmaxRows(out.data(), t, 1.0f / std::sqrt(static_cast<float>(hd)));
}

}  // namespace kvscope
