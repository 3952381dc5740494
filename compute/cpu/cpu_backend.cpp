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
#include "cpu/quant_dot.h"

namespace kvscope {

CpuBackend::CpuBackend(std::shared_ptr<const Model> model, ThreadPool& pool, KvCacheOptions cache)
    : model_(std::move(model)),
      pool_(pool),
      options_(cache),
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

// One query's attention over the first t cached positions of (layer, kvHead), block by block,
// over the positions its window lets it see ([j0, t); a[0, j0) = 0):
//   a (t) = softmax(softcap(scale · K · q)),  out (head_dim) = Σ_j a_j · V_j
void attendCached(float* out, float* a, const float* q, const KvCache& cache, int layer, int kvHead,
                  int t, const ops::AttentionShape& shape) {
    using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const int hd = cache.headDim(), B = cache.blockTokens();
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<size_t>(B) * hd);
    Eigen::Map<const Eigen::VectorXf> qv(q, hd);
    const int j0 = shape.first(t - 1);
    const int b0 = j0 / B, blocks = (t + B - 1) / B;
    for (int b = b0; b < blocks; ++b) {
        const int rows = std::min(B, t - b * B);
        Eigen::Map<const RowMat> K(cache.keyBlock(layer, kvHead, b, scratch.data()), rows, hd);
        Eigen::Map<Eigen::VectorXf>(a + static_cast<size_t>(b) * B, rows).noalias() =
            (K * qv) * shape.scale;
    }
    std::fill(a, a + j0, 0.0f);
    if (shape.softcap > 0) ops::softcap(a + j0, static_cast<size_t>(t - j0), shape.softcap);
    ops::softmax(a + j0, t - j0);
    Eigen::Map<Eigen::VectorXf> o(out, hd);
    o.setZero();
    for (int b = b0; b < blocks; ++b) {
        const int r0 = std::max(b * B, j0) - b * B;  // rows of this block inside the window
        const int rows = std::min(B, t - b * B) - r0;
        Eigen::Map<const RowMat> V(cache.valueBlock(layer, kvHead, b, scratch.data()), r0 + rows,
                                   hd);
        o.noalias() += V.bottomRows(rows).transpose() *
                       Eigen::Map<const Eigen::VectorXf>(a + static_cast<size_t>(b) * B + r0, rows);
    }
}

// One query's attention over the `R` rows of a cache under an eviction policy: the rows that
// query (at position pos) may see (KvCache::visible, and the model's own window), the others
// weigh 0:  a (R) = masked softmax(softcap(scale · K · q)),  out (head_dim) = Σ_r a_r · V_r
void attendRows(float* out, float* a, const float* q, const KvCache& cache, int layer, int kvHead,
                int R, int pos, const ops::AttentionShape& shape) {
    using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const int hd = cache.headDim(), B = cache.blockTokens();
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<size_t>(B) * hd);
    Eigen::Map<const Eigen::VectorXf> qv(q, hd);
    const int blocks = (R + B - 1) / B;
    for (int b = 0; b < blocks; ++b) {
        const int rows = std::min(B, R - b * B);
        Eigen::Map<const RowMat> K(cache.keyBlock(layer, kvHead, b, scratch.data()), rows, hd);
        Eigen::Map<Eigen::VectorXf>(a + static_cast<size_t>(b) * B, rows).noalias() =
            (K * qv) * shape.scale;
    }
    if (shape.softcap > 0) ops::softcap(a, static_cast<size_t>(R), shape.softcap);
    const int first = shape.first(pos);
    for (int r = 0; r < R; ++r)
        if (cache.rowPosition(layer, r) < first || !cache.visible(layer, r, pos))
            a[r] = -std::numeric_limits<float>::infinity();
    ops::softmax(a, R);
    Eigen::Map<Eigen::VectorXf> o(out, hd);
    o.setZero();
    for (int b = 0; b < blocks; ++b) {
        const int rows = std::min(B, R - b * B);
        Eigen::Map<const RowMat> V(cache.valueBlock(layer, kvHead, b, scratch.data()), rows, hd);
        o.noalias() +=
            V.transpose() * Eigen::Map<const Eigen::VectorXf>(a + static_cast<size_t>(b) * B, rows);
    }
}

}  // namespace

std::shared_ptr<Backend> CpuBackend::fork() const {
    auto other = std::make_shared<CpuBackend>(model_, pool_, options_);
    other->cache_ = cache_.fork();
    return other;
}

void CpuBackend::attendWithPolicy(int layer, int p0, int n, const float* qkv, float* att,
                                  StepTrace* trace0, int t0) {
    const ModelConfig& c = config();
    const int H = c.nHead, hd = c.headDim, Q = H * hd, R = cache_.rows() + n;
    const int qkvStride = c.qkvRows();
    const ops::AttentionShape shape{c.attnScale, c.attnSoftcap, c.windowOf(layer)};
    // The weights of row r go to position rowPosition(r) of the trace's row (zeros elsewhere).
    auto trace = [&](int i, int hh, const float* a) {
        if (!trace0 || i < t0) return;
        const int pos = p0 + i;
        float* row = trace0[i - t0].attn.data() + (static_cast<size_t>(layer) * H + hh) * (pos + 1);
        std::fill(row, row + pos + 1, 0.0f);
        for (int r = 0; r < R; ++r) {
            const int p = cache_.rowPosition(layer, r);
            if (p <= pos) row[p] = a[r];
        }
    };
    auto one = [&](int i, int hh, float* a) {
        attendRows(att + static_cast<size_t>(i) * Q + hh * hd, a,
                   qkv + static_cast<size_t>(i) * qkvStride + hh * hd, cache_, layer,
                   c.kvHeadOf(hh), R, p0 + i, shape);
        trace(i, hh, a);
    };
    if (cache_.eviction().heavy == 0) {  // who is seen depends on positions only: all at once
        pool_.parallelFor(static_cast<size_t>(n) * H, [&](size_t job) {
            thread_local std::vector<float> a;
            a.resize(static_cast<size_t>(R));
            one(static_cast<int>(job / H), static_cast<int>(job % H), a.data());
        });
        return;
    }
    // Heavy hitters: each query's weights choose what the next one sees.
    std::vector<float> a(static_cast<size_t>(H) * R), sum(static_cast<size_t>(R));
    for (int i = 0; i < n; ++i) {
        pool_.parallelFor(static_cast<size_t>(H),
                          [&](size_t hh) { one(i, static_cast<int>(hh), a.data() + hh * R); });
        std::fill(sum.begin(), sum.end(), 0.0f);
        for (int hh = 0; hh < H; ++hh)
            for (int r = 0; r < R; ++r)
                sum[static_cast<size_t>(r)] += a[static_cast<size_t>(hh) * R + r];
        cache_.noteQuery(layer, p0 + i, sum.data());
    }
}

std::string CpuBackend::deviceName() const {
    // the kernels the weight matrices run on (qdot's, chosen for this CPU at run time)
    const qdot::Isa isa = qdot::bestIsa();
    return "CPU (" + (isa == qdot::Isa::Scalar ? std::string("portable") : qdot::isaName(isa)) +
           ", " + std::to_string(pool_.size()) + " threads)";
}

void CpuBackend::doForward(std::span<const int32_t> tokens, bool allLogits,
                           std::vector<float>& logits, std::vector<StepTrace>* traces,
                           int traceFrom) {
    const int n = static_cast<int>(tokens.size());
    // n, positions and ids were checked by Backend::forward; room for the new rows comes first,
    // so that a cache that cannot grow fails before anything changed.
    cache_.reserve(cache_.rows() + n);
    cache_.begin(n);
    try {
        forwardPass(tokens, allLogits, logits, traces, traceFrom);
    } catch (...) {
        cache_.abandon();
        throw;
    }
}

void CpuBackend::forwardPass(std::span<const int32_t> tokens, bool allLogits,
                             std::vector<float>& logits, std::vector<StepTrace>* traces,
                             int traceFrom) {
    const Model& m = *model_;
    const ModelConfig& c = m.config;
    const int n = static_cast<int>(tokens.size());
    const int p0 = cache_.used(), r0 = cache_.rows();

    const int E = c.nEmbd, hd = c.headDim, H = c.nHead, Hkv = c.nHeadKv, F = c.nFf;
    const int Q = H * hd, KV = Hkv * hd, R = c.qkvRows();
    const bool gated = c.ffn != FfnType::Gelu;
    const auto N = static_cast<size_t>(n);
    std::vector<float> x(N * E), h(N * E), tmp(N * E), qkv(N * R), att(N * Q), up(N * F), gate;
    if (gated) gate.resize(N * F);

    // Traces for tokens traceFrom..n-1.
    const int t0 = std::clamp(traceFrom, 0, n);
    if (traces) {
        for (int i = t0; i < n; ++i)
            traces->push_back(
                StepTrace::sized(tokens[static_cast<size_t>(i)], p0 + i, c.nLayer, H, Hkv, hd, E));
    }
    StepTrace* trace0 =
        traces ? traces->data() + (traces->size() - static_cast<size_t>(n - t0)) : nullptr;

    // 1. token embeddings (scaled for gemma), plus learned positions (gpt2)
    for (int i = 0; i < n; ++i) {
        float* xi = x.data() + static_cast<size_t>(i) * E;
        m.tokEmbd.dequantizeRows(tokens[static_cast<size_t>(i)], 1, xi);
        if (c.embedScale != 1.0f)
            for (int j = 0; j < E; ++j) xi[j] *= c.embedScale;
        if (!m.posEmbd.empty()) {
            const float* pe = m.posEmbd.data() + static_cast<size_t>(p0 + i) * E;
            for (int j = 0; j < E; ++j) xi[j] += pe[j];
        }
    }
    // RoPE angles of the new positions, shared by every layer and head
    const int pairs = c.rope.nRot / 2;
    std::vector<float> ropeCos(N * pairs), ropeSin(N * pairs);
    if (c.rope.type != RopeType::None)
        for (int i = 0; i < n; ++i)
            ropeCosSin(c.rope, p0 + i, ropeCos.data() + static_cast<size_t>(i) * pairs,
                       ropeSin.data() + static_cast<size_t>(i) * pairs);

    auto norm = [&](float* out, const float* in, const std::vector<float>& w,
                    const std::vector<float>& b, int rows) {
        if (c.norm == NormType::Layer)
            ops::layerNorm(out, in, w.data(), b.data(), rows, E, c.normEps);
        else
            ops::rmsNorm(out, in, w.data(), rows, E, c.normEps);
    };
    auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
    const std::vector<float> noBias;

    for (int l = 0; l < c.nLayer; ++l) {
        const LayerWeights& w = m.layers[static_cast<size_t>(l)];
        // 2. attention input: norm, then q, k, v of the new tokens
        norm(h.data(), x.data(), w.attnNormW, w.attnNormB, n);
        for (int part = 0, col = 0; part < static_cast<int>(w.qkv.size()); ++part) {
            const WeightMatrix& wp = w.qkv[static_cast<size_t>(part)];
            ops::matmul(qkv.data() + col, R, h.data(), wp,
                        w.bqkv.empty() ? nullptr : w.bqkv.data() + col, n, pool_);
            col += wp.rows();
        }
        for (int i = 0; i < n; ++i) {
            float* qi = qkv.data() + static_cast<size_t>(i) * R;
            if (c.rope.type != RopeType::None)  // rotates queries and keys (not values)
                for (int hh = 0; hh < H + Hkv; ++hh)
                    ropeApply(c.rope, qi + hh * hd, ropeCos.data() + static_cast<size_t>(i) * pairs,
                              ropeSin.data() + static_cast<size_t>(i) * pairs);
            // 3. append the new key and value rows to the cache
            for (int g = 0; g < Hkv; ++g)
                cache_.write(l, g, r0 + i, qi + Q + g * hd, qi + Q + KV + g * hd);
            if (traces && i >= t0) {
                StepTrace& s = trace0[i - t0];
                std::memcpy(s.q.data() + static_cast<size_t>(l) * Q, qi, sizeof(float) * Q);
                std::memcpy(s.k.data() + static_cast<size_t>(l) * KV, qi + Q, sizeof(float) * KV);
                std::memcpy(s.v.data() + static_cast<size_t>(l) * KV, qi + Q + KV,
                            sizeof(float) * KV);
            }
        }
        // 4. causal attention of each new token and head over the cache (its window of it)
        const ops::AttentionShape shape{c.attnScale, c.attnSoftcap, c.windowOf(l)};
        if (cache_.eviction().evicts())
            attendWithPolicy(l, p0, n, qkv.data(), att.data(), trace0, t0);
        else  // row j holds position j
            pool_.parallelFor(N * H, [&](size_t job) {
                const int i = static_cast<int>(job / H), hh = static_cast<int>(job % H);
                const int g = c.kvHeadOf(hh), t = p0 + i + 1;
                thread_local std::vector<float> a;
                a.resize(static_cast<size_t>(t));
                attendCached(att.data() + static_cast<size_t>(i) * Q + hh * hd, a.data(),
                             qkv.data() + static_cast<size_t>(i) * R + hh * hd, cache_, l, g, t,
                             shape);
                if (traces && i >= t0)
                    std::memcpy(trace0[i - t0].attn.data() + (static_cast<size_t>(l) * H + hh) * t,
                                a.data(), sizeof(float) * t);
            });
        // 5. output projection (and gemma2's norm of it) and residual
        ops::matmul(tmp.data(), E, att.data(), w.wo, bias(w.bo), n, pool_);
        if (c.postNorms) norm(tmp.data(), tmp.data(), w.attnPostNormW, noBias, n);
        for (size_t j = 0; j < N * E; ++j) x[j] += tmp[j];
        // 6. MLP (and gemma2's norm of it) and residual
        norm(h.data(), x.data(), w.ffnNormW, w.ffnNormB, n);
        ops::matmul(up.data(), F, h.data(), w.wUp, bias(w.bUp), n, pool_);
        if (!gated) {
            ops::geluTanh(up.data(), up.size());
            ops::matmul(tmp.data(), E, up.data(), w.wDown, bias(w.bDown), n, pool_);
        } else {
            ops::matmul(gate.data(), F, h.data(), w.wGate, nullptr, n, pool_);
            if (c.ffn == FfnType::SiluGate)
                ops::swiglu(gate.data(), up.data(), gate.size());
            else
                ops::geglu(gate.data(), up.data(), gate.size());
            ops::matmul(tmp.data(), E, gate.data(), w.wDown, nullptr, n, pool_);
        }
        if (c.postNorms) norm(tmp.data(), tmp.data(), w.ffnPostNormW, noBias, n);
        for (size_t j = 0; j < N * E; ++j) x[j] += tmp[j];
        if (traces)  // the residual stream after this layer (the logit lens reads it)
            for (int i = t0; i < n; ++i)
                std::memcpy(trace0[i - t0].resid.data() + static_cast<size_t>(l) * E,
                            x.data() + static_cast<size_t>(i) * E, sizeof(float) * E);
    }
    cache_.commit(n);
    // 7. final norm and the output head (soft-capped for gemma2), for the rows asked for
    const int rows = allLogits ? n : 1;
    head(x.data() + static_cast<size_t>(n - rows) * E, rows, logits);
}

void CpuBackend::head(const float* x, int rows, std::vector<float>& logits) {
    const Model& m = *model_;
    const ModelConfig& c = m.config;
    std::vector<float> h(static_cast<size_t>(rows) * c.nEmbd);
    if (c.norm == NormType::Layer)
        ops::layerNorm(h.data(), x, m.outNormW.data(), m.outNormB.data(), rows, c.nEmbd, c.normEps);
    else
        ops::rmsNorm(h.data(), x, m.outNormW.data(), rows, c.nEmbd, c.normEps);
    logits.resize(static_cast<size_t>(rows) * c.nVocab);
    ops::matmul(logits.data(), c.nVocab, h.data(), m.outputWeights(), nullptr, rows, pool_);
    if (c.finalSoftcap > 0) ops::softcap(logits.data(), logits.size(), c.finalSoftcap);
}

void CpuBackend::doHeadLogits(std::span<const float> hidden, int rows, std::vector<float>& logits) {
    head(hidden.data(), rows, logits);
}

void CpuBackend::doAttentionMatrix(int layer, int head, std::span<const float> queries,
                                   std::vector<float>& out) {
    const ModelConfig& c = config();
    KVSCOPE_CHECK(cache_.rows() == cache_.used(),
                  "the attention matrix is rebuilt from the cached keys, and the " +
                      cache_.eviction().text() + " policy has let some of them go");
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
    ops::attentionRows(out.data(), t, {c.attnScale, c.attnSoftcap, c.windowOf(layer)});
}

}  // namespace kvscope
