// CPU reference implementations of the transformer step's operations.
#include "cpu/cpu_ops.h"
#include "core/numeric.h"
#include "cpu/quant_dot.h"
#include "cpu/sgemm.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace kvscope::ops {
namespace {
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXf;
}  // namespace

namespace {

// out (n, rows; ldOut apart) = in (n, inDim) · wᵀ + bias, w (rows, inDim): one GEMM through
// sgemm's run-time-chosen kernels (Eigen here is built for baseline x86-64), on wᵀ copied into a
// per-thread buffer (the kernels read B row-major; the copy is 1/n of the product's work).
void gemmRows(float* out, int ldOut, const float* in, int n, int inDim, const float* w, int rows,
              const float* bias) {
    thread_local std::vector<float> wt;
    wt.resize(static_cast<size_t>(rows) * inDim);
    sgemm::transpose(wt.data(), rows, w, inDim, rows, inDim);
    sgemm::gemm(false, n, rows, inDim, in, inDim, wt.data(), rows, out, ldOut, false);
    if (wt.size() > (size_t{1} << 22)) std::vector<float>().swap(wt);  // not 16 MB+ per thread
    if (bias)
        for (int i = 0; i < n; ++i)
            for (int r = 0; r < rows; ++r) out[static_cast<size_t>(i) * ldOut + r] += bias[r];
}

}  // namespace

void matmul(float* out, const float* in, const float* w, const float* bias, int n, int inDim,
            int outDim, ThreadPool& pool) {
    // Chunks of rows of w: small enough to balance, large enough that a GEMM (n > 1) does not
    // re-pack `in` too often.
    int rows = 64;
    if (n > 1) rows = std::max(64, outDim / static_cast<int>(pool.size() * 2));
    const int chunks = (outDim + rows - 1) / rows;
    pool.parallelFor(static_cast<size_t>(chunks), [&](size_t c) {
        const int r0 = static_cast<int>(c) * rows;
        const int r1 = std::min(outDim, r0 + rows);
        const float* wr = w + static_cast<size_t>(r0) * inDim;
        if (n == 1) {
            // y (rows) = W x: one dot product per row, read once.
            Eigen::Map<const RowMat> W(wr, r1 - r0, inDim);
            Eigen::Map<Vec>(out + r0, r1 - r0).noalias() = W * Eigen::Map<const Vec>(in, inDim);
            if (bias)
                Eigen::Map<Vec>(out + r0, r1 - r0) += Eigen::Map<const Vec>(bias + r0, r1 - r0);
        } else {
            gemmRows(out + r0, outDim, in, n, inDim, wr, r1 - r0, bias ? bias + r0 : nullptr);
        }
    });
}

void matmul(float* out, int ldOut, const float* in, const WeightMatrix& w, const float* bias, int n,
            ThreadPool& pool) {
    const int outDim = w.rows(), inDim = w.cols();
    // A float32 decode step, and a batch of a few tokens (a speculative round's check), go
    // through qdot::gemv as well: its AVX2/AVX-512 loop is chosen at run time, where Eigen here is
    // compiled for baseline x86-64 (GPT-2-124M F32: 0.91x llama.cpp's decode through Eigen), and
    // each token's products are then those of a plain step, bit for bit. A longer batch (a
    // prompt) is one GEMM.
    constexpr int kF32GemvBatch = 16;
    if (const float* f = w.f32();
        f && ldOut == outDim && (n > kF32GemvBatch || qdot::bestIsa() == qdot::Isa::Scalar)) {
        matmul(out, in, f, bias, n, inDim, outDim, pool);
        return;
    }
    // Block types always go through qdot::gemv, which rounds the activations to 8 bits per block
    // (as llama.cpp does): a batch runs the same per-token products as a decode step, so
    // recompute mode and the cache give the same numbers. F16 and BF16 decode steps use it too
    // (exact float); their batches are a GEMM on dequantized chunks of rows below.
    const bool blocks = w.type() != TensorType::F16 && w.type() != TensorType::BF16;
    if (n == 1 || blocks) {
        // x of each token prepared once (rounded to 8 bits for the block types), then chunks of
        // rows: for a decode step (memory-bound) large enough to spread over the threads, for a
        // batch small enough to stay in cache while every token passes over them.
        thread_local std::vector<qdot::PreparedX> xs;
        if (xs.size() < static_cast<size_t>(n)) xs.resize(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i)
            xs[static_cast<size_t>(i)].prepare(w.type(), in + static_cast<size_t>(i) * inDim,
                                               inDim);
        const std::vector<qdot::PreparedX>& prepared = xs;  // the workers read the caller's
        const int rows = n == 1 ? std::max(64, outDim / static_cast<int>(pool.size() * 8)) : 64;
        const int chunks = (outDim + rows - 1) / rows;
        pool.parallelFor(static_cast<size_t>(chunks), [&](size_t c) {
            const int r0 = static_cast<int>(c) * rows;
            const int r1 = std::min(outDim, r0 + rows);
            for (int i = 0; i < n; ++i) {
                float* o = out + static_cast<size_t>(i) * ldOut;
                qdot::gemv(prepared[static_cast<size_t>(i)], w.row(r0), w.rowBytes(), r1 - r0,
                           o + r0);
                if (bias)
                    for (int r = r0; r < r1; ++r) o[r] += bias[r];
            }
        });
        return;
    }
    // A batch (prefill): a chunk of rows dequantized to float32, then one GEMM.
    const int rows = std::max(64, outDim / static_cast<int>(pool.size() * 2));
    const int chunks = (outDim + rows - 1) / rows;
    pool.parallelFor(static_cast<size_t>(chunks), [&](size_t c) {
        const int r0 = static_cast<int>(c) * rows;
        const int r1 = std::min(outDim, r0 + rows);
        thread_local std::vector<float> buffer;
        const float* wf = w.f32();
        if (wf) {
            wf += static_cast<size_t>(r0) * inDim;
        } else {
            buffer.resize(static_cast<size_t>(r1 - r0) * inDim);
            w.dequantizeRows(r0, r1 - r0, buffer.data());
            wf = buffer.data();
        }
        gemmRows(out + r0, ldOut, in, n, inDim, wf, r1 - r0, bias ? bias + r0 : nullptr);
    });
}

void layerNorm(float* out, const float* x, const float* w, const float* b, int n, int dim,
               float eps) {
    for (int i = 0; i < n; ++i) {
        const float* xi = x + static_cast<size_t>(i) * dim;
        float* oi = out + static_cast<size_t>(i) * dim;
        double mean = 0, var = 0;
        for (int j = 0; j < dim; ++j) mean += xi[j];
        mean /= dim;
        for (int j = 0; j < dim; ++j) var += (xi[j] - mean) * (xi[j] - mean);
        var /= dim;
        const auto inv = static_cast<float>(1.0 / std::sqrt(var + eps));
        const auto m = static_cast<float>(mean);
        for (int j = 0; j < dim; ++j) oi[j] = (xi[j] - m) * inv * w[j] + b[j];
    }
}

void rmsNorm(float* out, const float* x, const float* w, int n, int dim, float eps) {
    for (int i = 0; i < n; ++i) {
        const float* xi = x + static_cast<size_t>(i) * dim;
        float* oi = out + static_cast<size_t>(i) * dim;
        double ss = 0;
        for (int j = 0; j < dim; ++j) ss += static_cast<double>(xi[j]) * xi[j];
        const auto inv = static_cast<float>(1.0 / std::sqrt(ss / dim + eps));
        for (int j = 0; j < dim; ++j) oi[j] = xi[j] * inv * w[j];
    }
}

// The activations run on the calling thread between two matrix products that use every thread,
// so they are vectorised (Eigen's packet tanh and exp, a few ulp from std::tanh and std::exp):
// with the library's scalar tanhf, GPT-2's GELU was 5% of a Q8_0 decode step.
void geluTanh(float* x, size_t count) {
    const float k = static_cast<float>(std::sqrt(2.0 / kPi));
    Eigen::Map<Eigen::ArrayXf> v(x, static_cast<Eigen::Index>(count));
    v = 0.5f * v * (1.0f + (k * (v + 0.044715f * v.cube())).tanh());
}

void swiglu(float* gate, const float* up, size_t count) {
    const auto n = static_cast<Eigen::Index>(count);
    Eigen::Map<Eigen::ArrayXf> g(gate, n);
    g = g / (1.0f + (-g).exp()) * Eigen::Map<const Eigen::ArrayXf>(up, n);
}

void geglu(float* gate, const float* up, size_t count) {
    geluTanh(gate, count);
    for (size_t i = 0; i < count; ++i) gate[i] *= up[i];
}

void softcap(float* x, size_t count, float cap) {
    const float inv = 1.0f / cap;
    for (size_t i = 0; i < count; ++i) x[i] = cap * std::tanh(x[i] * inv);
}

void ropeAdjacent(float* x, int headDim, int pos, float freqBase) {
    for (int i = 0; i < headDim / 2; ++i) {
        const double theta =
            pos * std::pow(static_cast<double>(freqBase), -2.0 * i / static_cast<double>(headDim));
        const auto c = static_cast<float>(std::cos(theta)), s = static_cast<float>(std::sin(theta));
        const float x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = x0 * c - x1 * s;
        x[2 * i + 1] = x0 * s + x1 * c;
    }
}

void softmax(float* x, int n) {
    Eigen::Map<Eigen::ArrayXf> v(x, n);
    const float mx = v.maxCoeff();
    // Eigen's packet exp (every head of every layer runs this at each step) clamps its argument,
    // so a masked -inf would come out a tiny nonzero weight: those positions are noted first and
    // set to exactly 0 after. (A select() in the expression would make Eigen fall back to the
    // scalar exp for the whole row.)
    thread_local std::vector<int> masked;
    masked.clear();
    const float minusInf = -std::numeric_limits<float>::infinity();
    for (int i = 0; i < n; ++i)
        if (x[i] == minusInf) masked.push_back(i);
    v = (v - mx).exp();
    for (int i : masked) x[i] = 0.0f;
    const auto inv = static_cast<float>(1.0 / v.cast<double>().sum());
    v *= inv;
}

void causalSoftmaxRows(float* s, int t, float scale) {
    for (int i = 0; i < t; ++i) {
        float* row = s + static_cast<size_t>(i) * t;
        for (int j = 0; j <= i; ++j) row[j] *= scale;
        softmax(row, i + 1);
        for (int j = i + 1; j < t; ++j) row[j] = 0.0f;
    }
}

void attentionRows(float* s, int t, const AttentionShape& shape) {
    for (int i = 0; i < t; ++i) {
        float* row = s + static_cast<size_t>(i) * t;
        const int j0 = shape.first(i);
        for (int j = j0; j <= i; ++j) row[j] *= shape.scale;
        if (shape.softcap > 0) softcap(row + j0, static_cast<size_t>(i + 1 - j0), shape.softcap);
        softmax(row + j0, i + 1 - j0);
        for (int j = 0; j < j0; ++j) row[j] = 0.0f;
        for (int j = i + 1; j < t; ++j) row[j] = 0.0f;
    }
}

void attendOne(float* out, float* a, const float* q, const float* K, const float* V, int t,
               int headDim) {
    Eigen::Map<const RowMat> Km(K, t, headDim), Vm(V, t, headDim);
    Eigen::Map<const Vec> qv(q, headDim);
    Eigen::Map<Vec> av(a, t);
    // 1. scores, 2. softmax, 3. weighted sum of values
    av.noalias() = (Km * qv) * (1.0f / std::sqrt(static_cast<float>(headDim)));
    softmax(a, t);
    Eigen::Map<Vec>(out, headDim).noalias() = Vm.transpose() * av;
}

}  // namespace kvscope::ops
