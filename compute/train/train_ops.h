// The layers the trainers are made of, as free functions with their backward passes: outputs
// first, then inputs and weights, then sizes; shapes in the first comment lines (as llm.c's
// train_gpt2.c). Every backward *adds* into its gradient outputs. The tests check each one
// against finite differences.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "core/thread_pool.h"
#include "model/rope.h"

namespace kvscope::train {

// Splits [0, n) into chunks of at least `grain` and runs fn(begin, end) on the pool. The chunks
// depend on n and the pool size only, so a run repeats bit for bit on the same machine.
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
                   int OC, ThreadPool& pool);
// Given dout (N, OC) of matmulForward, adds dinp (N, C) += dout · w, dw (OC, C) += doutᵀ · inp,
// dbias (OC) += column sums of dout (dbias may be null).
void matmulBackward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                    const float* w, int N, int C, int OC, ThreadPool& pool);

// out (N, C) = LayerNorm(inp) · w + b; mean, rstd (N) kept for the backward pass.
void layerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                      const float* b, int N, int C, float eps);
// Adds dinp (N, C), dw (C), db (C) from dout (N, C) of layerNormForward.
void layerNormBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                       const float* w, const float* mean, const float* rstd, int N, int C);

// out (N, C) = inp / sqrt(mean(inp²) + eps) · w, as the CPU backend's rmsNorm; rstd (N) kept.
void rmsNormForward(float* out, float* rstd, const float* inp, const float* w, int N, int C,
                    float eps);
// Adds dinp (N, C), dw (C) from dout (N, C) of rmsNormForward.
void rmsNormBackward(float* dinp, float* dw, const float* dout, const float* inp, const float* w,
                     const float* rstd, int N, int C);

// out = GELU(inp) (tanh approximation), n values; dinp += GELU'(inp) · dout.
void geluForward(float* out, const float* inp, size_t n);
void geluBackward(float* dinp, const float* inp, const float* dout, size_t n);

// SwiGLU of gate and up side by side: gu (N, 2F) holds gate (N, F) then up (N, F) per row;
// out (N, F) = SiLU(gate) ⊙ up, computed as the CPU backend's swiglu.
void swigluForward(float* out, const float* gu, int N, int F);
// Adds dgu (N, 2F) from dout (N, F).
void swigluBackward(float* dgu, const float* dout, const float* gu, int N, int F);

// RoPE of the query and key heads of a packed qkv (B, T, R) in place, position t of each
// sequence at angle index t: heads 0..nHeads-1 of hd values each from the start of every row
// (the queries, then the keys). cosv, sinv (T, nRot/2) from ropeCosSin. inverse: rotate back,
// which is also the backward pass (a rotation's transpose is its inverse).
void ropeRotate(float* qkv, const RopeConfig& rope, const float* cosv, const float* sinv, int B,
                int T, int R, int nHeads, int hd, bool inverse);

// Causal self-attention over packed rows qkv (B, T, R), R = (NH + 2 NKV) hs: NH query heads,
// then NKV key heads, then NKV value heads of hs values each. Query head h reads K/V head
// h / (NH / NKV), as llama's grouped-query attention does (NKV == NH: plain multi-head).
//   out (B, T, NH·hs), att (B, NH, T, T) the softmax weights (zero above the diagonal).
void attentionForward(float* out, float* att, const float* qkv, int B, int T, int NH, int NKV,
                      int hs, ThreadPool& pool);
// Adds dqkv (B, T, R) from dout (B, T, NH·hs) of attentionForward.
void attentionBackward(float* dqkv, const float* dout, const float* att, const float* qkv, int B,
                       int T, int NH, int NKV, int hs, ThreadPool& pool);

// Softmax of logits (N, V) into probs and the mean cross-entropy (nats) of targets (N) over the
// rows whose target is >= 0 (a negative target is masked: not in the loss; 0 if all are).
float crossEntropyForward(float* probs, const float* logits, const int32_t* targets, int N, int V,
                          ThreadPool& pool);
// dlogits (N, V) = (probs − one-hot(targets)) / n over the n unmasked rows, zero on masked rows:
// the gradient of the mean loss (overwrites).
void crossEntropyBackward(float* dlogits, const float* probs, const int32_t* targets, int N, int V);

}  // namespace kvscope::train
