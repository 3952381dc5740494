// The numeric building blocks of a transformer step on the CPU (Eigen + the thread pool).
// Outputs first, then inputs and weights, then sizes. All matrices row-major, outermost first.
// These are the reference that faster backends are held to.
#pragma once

#include "core/thread_pool.h"
#include "model/weights.h"

namespace kvscope::ops {

// out (n, outDim) = in (n, inDim) · wᵀ + bias, with w (outDim, inDim) and bias (outDim) or null.
// Rows of w are split across the pool: for n = 1 this is a memory-bound GEMV.
void matmul(float* out, const float* in, const float* w, const float* bias, int n, int inDim,
            int outDim, ThreadPool& pool);

// The same for a weight matrix in any of the file's types: out (n, ldOut) gets w.rows() columns
// from column 0, out[i][r] = in[i] · row r of w + bias[r]. F32 goes through Eigen; other types
// are dequantized inside the dot product for n = 1 (the memory-bound decode step) and a chunk of
// rows at a time into float32 for a batch (prefill), never the whole matrix.
void matmul(float* out, int ldOut, const float* in, const WeightMatrix& w, const float* bias, int n,
            ThreadPool& pool);

// out (n, dim) = LayerNorm(x) · w + b, per row.
void layerNorm(float* out, const float* x, const float* w, const float* b, int n, int dim,
               float eps);
// out (n, dim) = x / rms(x) · w, per row.
void rmsNorm(float* out, const float* x, const float* w, int n, int dim, float eps);

// x (count) = GELU(x), tanh approximation as in GPT-2.
void geluTanh(float* x, size_t count);
// gate (count) = SiLU(gate) · up
void swiglu(float* gate, const float* up, size_t count);
// gate (count) = GELU(gate) · up (tanh approximation; gemma's MLP)
void geglu(float* gate, const float* up, size_t count);
// x (count) = cap · tanh(x / cap): soft-capping of scores and logits (gemma2)
void softcap(float* x, size_t count, float cap);

// Rotates adjacent pairs (x[2i], x[2i+1]) of one head vector x (headDim) by pos · base^(-2i/d).
// (The plain case of model/rope.h, kept as the reference the general one is tested against.)
void ropeAdjacent(float* x, int headDim, int pos, float freqBase);

// x (n) = softmax(x), numerically stable.
void softmax(float* x, int n);

// s (t, t): each row i becomes softmax(scale · s[i][0..i]) with zeros after column i.
void causalSoftmaxRows(float* s, int t, float scale);

// How a query's scores become weights: scale, optional soft cap, and the window of positions
// it may see (0 = all before it and itself).
struct AttentionShape {
    float scale = 1.0f;
    float softcap = 0.0f;
    int window = 0;
    int first(int pos) const { return window > 0 && pos + 1 > window ? pos + 1 - window : 0; }
};
// s (t, t) of raw q·k: row i becomes the weights of query i (zeros outside its window).
void attentionRows(float* s, int t, const AttentionShape& shape);

// One query's attention over t cached positions of one head.
//   out (headDim) = Σ_j a_j · V_j,  a (t) = softmax(K · q / sqrt(headDim))
//   K, V: (t, headDim) rows of the cache; q: (headDim). `a` receives the weights.
void attendOne(float* out, float* a, const float* q, const float* K, const float* V, int t,
               int headDim);

}  // namespace kvscope::ops
