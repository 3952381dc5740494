// The element-wise steps of the OpenCL backend: embedding gather, activations, RoPE and the
// cache append. Shapes row-major, outermost first. Each runs over a one-dimensional range
// rounded up to whole work groups (a fixed local size, so drivers that compile per local size
// compile once), and items past the end return.

// x (n, dim) = tok[ids[i]] (+ pos[p0 + i] when hasPos: GPT-2's learned positions).
// tok: (n_vocab, dim), pos: (n_ctx, dim). Items: n · dim.
__kernel void embed(__global float* x, __global const int* ids, __global const float* tok,
                    __global const float* pos, const int hasPos, const int p0, const int dim,
                    const int n) {
    const size_t at = get_global_id(0);
    if (at >= (size_t)n * dim) return;
    const int j = (int)(at % dim), i = (int)(at / dim);
    float v = tok[(size_t)ids[i] * dim + j];
    if (hasPos) v += pos[(size_t)(p0 + i) * dim + j];
    x[(size_t)i * dim + j] = v;
}

// x (count) = GELU(x), the tanh approximation GPT-2 uses (activation.cl). Items: count / 8
// rounded up, each eight values.
__kernel void gelu_tanh(__global float* x, const int count) {
    const size_t i = get_global_id(0) * 8;
    if (i >= (size_t)count) return;
    if (i + 8 <= (size_t)count) {
        vstore8(gelu8(vload8(0, x + i)), 0, x + i);
        return;
    }
    for (size_t j = i; j < (size_t)count; ++j) x[j] = gelu1(x[j]);
}

// gate (count) = SiLU(gate) · up (Llama's SwiGLU). Items: count / 8 rounded up, as gelu_tanh.
__kernel void swiglu(__global float* gate, __global const float* up, const int count) {
    const size_t i = get_global_id(0) * 8;
    if (i >= (size_t)count) return;
    if (i + 8 <= (size_t)count) {
        vstore8(silu8(vload8(0, gate + i)) * vload8(0, up + i), 0, gate + i);
        return;
    }
    for (size_t j = i; j < (size_t)count; ++j) gate[j] = silu1(gate[j]) * up[j];
}

// gate (count) = GELU(gate) · up (Gemma's GELU-gated MLP, tanh approximation). Items: count / 8
// rounded up, as gelu_tanh.
__kernel void geglu(__global float* gate, __global const float* up, const int count) {
    const size_t i = get_global_id(0) * 8;
    if (i >= (size_t)count) return;
    if (i + 8 <= (size_t)count) {
        vstore8(gelu8(vload8(0, gate + i)) * vload8(0, up + i), 0, gate + i);
        return;
    }
    for (size_t j = i; j < (size_t)count; ++j) gate[j] = gelu1(gate[j]) * up[j];
}

// x (count) *= s (Gemma's embedding scale).
__kernel void scale(__global float* x, const float s, const int count) {
    const size_t i = get_global_id(0);
    if (i >= (size_t)count) return;
    x[i] *= s;
}

// x (count) += y (a residual added after a norm of the sublayer's output: Gemma 2).
__kernel void add_to(__global float* x, __global const float* y, const int count) {
    const size_t i = get_global_id(0);
    if (i >= (size_t)count) return;
    x[i] += y[i];
}

// x (count) = cap · tanh(x / cap) (Gemma 2's soft-capped logits).
__kernel void softcap(__global float* x, const float cap, const int count) {
    const size_t i = get_global_id(0);
    if (i >= (size_t)count) return;
    x[i] = cap * tanh(x[i] / cap);
}

// Rotates pairs of the first 2 · pairs dimensions of every query and key head in the rows of
// qkv (n, rowLen), heads of headDim from column 0, by the angles of position p0 + i: adjacent
// pairs (x[2p], x[2p+1]) or, when neox, halves (x[p], x[p + pairs]).
// cs: (n_ctx, pairs, 2) cos and sin per position and pair (made on the host, model/rope.h).
// Items: n · heads · pairs, with heads = n_head + n_head_kv.
__kernel void rope(__global float* qkv, __global const float* cs, const int p0, const int rowLen,
                   const int headDim, const int pairs, const int neox, const int heads,
                   const int n) {
    const size_t at = get_global_id(0);
    if (at >= (size_t)n * heads * pairs) return;
    const int pair = (int)(at % pairs), head = (int)(at / pairs % heads);
    const int i = (int)(at / pairs / heads);
    __global float* xh = qkv + (size_t)i * rowLen + head * headDim;
    const size_t angle = ((size_t)(p0 + i) * pairs + pair) * 2;
    const float c = cs[angle], s = cs[angle + 1];
    const int a = neox ? pair : 2 * pair, b = neox ? pair + pairs : 2 * pair + 1;
    const float x0 = xh[a], x1 = xh[b];
    xh[a] = x0 * c - x1 * s;
    xh[b] = x0 * s + x1 * c;
}

// Appends the keys and values of n new tokens to one layer's cache.
//   qkv (n, rowLen): each row holds Q (qCols), then K (kvCols), then V (kvCols).
//   K, V (n_head_kv, n_ctx, headDim): rows p0 .. p0 + n - 1 are written.
// Items: n · kvCols / vec (kvCols = n_head_kv · headDim), each vec values (4 where headDim is
// a multiple of 4, else 1).
__kernel void kv_append(__global float* K, __global float* V, __global const float* qkv,
                        const int p0, const int rowLen, const int qCols, const int kvCols,
                        const int nCtx, const int headDim, const int n, const int vec) {
    const size_t at = get_global_id(0) * vec;  // the first of the item's values
    if (at >= (size_t)n * kvCols) return;
    const int d = (int)(at % headDim), g = (int)(at / headDim % (kvCols / headDim)),
              i = (int)(at / kvCols);
    __global const float* src = qkv + (size_t)i * rowLen + qCols + g * headDim + d;
    const size_t dst = ((size_t)g * nCtx + p0 + i) * headDim + d;
    if (vec == 4) {
        vstore4(vload4(0, src), 0, K + dst);
        vstore4(vload4(0, src + kvCols), 0, V + dst);
    } else {
        K[dst] = src[0];
        V[dst] = src[kvCols];
    }
}

// Copies cached rows between two cache buffers of rowBytes-byte rows (the compaction after an
// eviction goes through a scratch buffer: gather the kept rows there, then copy them back).
//   dst (heads, dstCap, rowBytes) row r = src (heads, srcCap, rowBytes) row idx[r] (r without
//   hasIdx), for r < rows. Items: heads · rows · rowBytes, one byte each.
__kernel void kv_gather(__global uchar* dst, const int dstCap, __global const uchar* src,
                        const int srcCap, __global const int* idx, const int hasIdx,
                        const int rows, const int rowBytes, const int heads) {
    const size_t at = get_global_id(0);
    if (at >= (size_t)heads * rows * rowBytes) return;
    const int b = (int)(at % rowBytes), r = (int)(at / rowBytes % rows),
              g = (int)(at / rowBytes / rows);
    const int from = hasIdx ? idx[r] : r;
    dst[((size_t)g * dstCap + r) * rowBytes + b] = src[((size_t)g * srcCap + from) * rowBytes + b];
}
