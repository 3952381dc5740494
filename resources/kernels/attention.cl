// Causal attention of n new tokens over one layer's KV cache, one work group per (head, token).
// Group (h, j) runs new token i = i0 + j: a call may cover a slice of the new tokens.
//   out (n, n_head * headDim): the attended values, written at column head * headDim.
//   a (slice, n_head, rowStride): the attention rows of the slice's tokens (token i's row holds
//                             p0 + i + 1 weights): scratch, kept for the traces.
//   qkv (n, rowLen): the new queries from column 0 (after RoPE).
//   K, V (n_head_kv, n_ctx, headDim): the cache, already holding the new tokens' rows.
// Query head h reads KV head h / groupSize (grouped-query attention shares KV heads).
// Scores are scale · k·q, then cap · tanh(score / cap) when softcap > 0 (Gemma 2); with a
// window > 0 a query sees only the last `window` positions (its row is zero before them).
// red: local size floats (a power of two). Global size: (localSize * n_head, n).
// What query head h of new token i (i0: the slice's first) attends: positions j0 .. t-1 (all
// up to its own, or the window's last), its query, its KV head's cached keys and values, and its
// row of attention weights. Shared by attend and cpu_simd.cl's simd_attend.
typedef struct {
    int t, j0;
    __global const float* q;
    __global const float* K;
    __global const float* V;
    __global float* row;
} AttendTask;

inline AttendTask attend_task(const int h, const int i, const int i0, __global float* a,
                              __global const float* qkv, __global const float* K,
                              __global const float* V, const int p0, const int rowStride,
                              const int rowLen, const int nHead, const int groupSize,
                              const int nCtx, const int headDim, const int window) {
    AttendTask w;
    w.t = p0 + i + 1;
    w.j0 = window > 0 && w.t > window ? w.t - window : 0;
    const int g = h / groupSize;
    w.q = qkv + (size_t)i * rowLen + h * headDim;
    w.K = K + (size_t)g * nCtx * headDim;
    w.V = V + (size_t)g * nCtx * headDim;
    w.row = a + ((size_t)(i - i0) * nHead + h) * rowStride;
    return w;
}

__kernel void attend(__global float* out, __global float* a, __global const float* qkv,
                     __global const float* K, __global const float* V, const int p0,
                     const int rowStride, const int rowLen, const int nHead, const int groupSize,
                     const int nCtx, const int headDim, const float scale, const float softcap,
                     const int window, const int i0, __local float* red) {
    const int h = get_group_id(0), i = i0 + get_group_id(1);
    const int lid = get_local_id(0), ls = get_local_size(0);
    const AttendTask w = attend_task(h, i, i0, a, qkv, K, V, p0, rowStride, rowLen, nHead,
                                     groupSize, nCtx, headDim, window);
    const int t = w.t, j0 = w.j0;
    __global const float *q = w.q, *Kg = w.K, *Vg = w.V;
    __global float* row = w.row;

    // 1. scores K·q · scale (soft-capped), and their maximum
    float mx = -INFINITY;
    for (int j = lid; j < j0; j += ls) row[j] = 0.0f;
    for (int j = j0 + lid; j < t; j += ls) {
        __global const float* k = Kg + (size_t)j * headDim;
        float s = 0.0f;
        for (int d = 0; d < headDim; ++d) s = fma(k[d], q[d], s);
        s *= scale;
        if (softcap > 0.0f) s = softcap * tanh(s / softcap);
        row[j] = s;
        mx = fmax(mx, s);
    }
    red[lid] = mx;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = ls / 2; stride > 0; stride /= 2) {
        if (lid < stride) red[lid] = fmax(red[lid], red[lid + stride]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    mx = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);

    // 2. softmax: exponentials, their sum, then the division
    float sum = 0.0f;
    for (int j = j0 + lid; j < t; j += ls) {
        const float e = exp(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    red[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = ls / 2; stride > 0; stride /= 2) {
        if (lid < stride) red[lid] += red[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float inv = 1.0f / red[0];
    for (int j = j0 + lid; j < t; j += ls) row[j] *= inv;
    barrier(CLK_GLOBAL_MEM_FENCE);  // every item reads every weight below

    // 3. weighted sum of the cached values
    for (int d = lid; d < headDim; d += ls) {
        float acc = 0.0f;
        for (int j = j0; j < t; ++j) acc = fma(row[j], Vg[(size_t)j * headDim + d], acc);
        out[(size_t)i * nHead * headDim + h * headDim + d] = acc;
    }
}

// Element d of one cached row stored as `type` (0 f32, 1 f16, 2 q8_0, 3 q4_0: the block formats
// of gguf/quant_blocks.cpp), computed as the host's dequantizeRow computes it.
inline float kv_at(__global const uchar* row, const int d, const int type) {
    if (type == 0) return ((__global const float*)row)[d];
    if (type == 1) return vload_half(d, (__global const half*)row);
    const int b = d >> 5, j = d & 31;
    if (type == 2) {  // Q8_0 (34 B / 32): h d | int8 qs[32]
        __global const uchar* blk = row + 34 * b;
        return (float)((__global const char*)(blk + 2))[j] *
               vload_half(0, (__global const half*)blk);
    }
    // Q4_0 (18 B / 32): h d | qs[16], element j < 16 the low nibble of qs[j], else the high one
    __global const uchar* blk = row + 18 * b;
    const int q = j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4);
    return (float)(q - 8) * vload_half(0, (__global const half*)blk);
}

// Attention of new tokens over the rows a cache policy keeps, one work group per (head, token).
// Group (h, j) runs new token i = i0 + j.
//   out (n, n_head * headDim): the attended values, written at column head * headDim.
//   a (.., n_head, R): the attention rows; token i's at row i - aBase (zeros where masked).
//   qkv (n, rowLen): the new queries from column 0 (after RoPE).
//   K, V (n_head_kv, cap, rowBytes): the cached rows as `type`, rows 0 .. R-1 held.
//   mask (.., R): 1 where token i sees row r, at row i - i0 (the policy's and the model's
//                 window, decided on the host by KvRows::visible).
// red: local size floats (a power of two). Global size: (localSize * n_head, tokens).
__kernel void attend_rows(__global float* out, __global float* a, __global const float* qkv,
                          __global const uchar* K, __global const uchar* V,
                          __global const uchar* mask, const int R, const int rowLen,
                          const int nHead, const int groupSize, const int cap, const int headDim,
                          const int rowBytes, const int type, const float scale,
                          const float softcap, const int i0, const int aBase,
                          __local float* red) {
    const int h = get_group_id(0), i = i0 + get_group_id(1);
    const int lid = get_local_id(0), ls = get_local_size(0);
    const int g = h / groupSize;
    __global const float* q = qkv + (size_t)i * rowLen + h * headDim;
    __global const uchar* Kg = K + (size_t)g * cap * rowBytes;
    __global const uchar* Vg = V + (size_t)g * cap * rowBytes;
    __global const uchar* m = mask + (size_t)(i - i0) * R;
    __global float* row = a + ((size_t)(i - aBase) * nHead + h) * R;

    // 1. scores K·q · scale (soft-capped) of the rows seen, and their maximum
    float mx = -INFINITY;
    for (int r = lid; r < R; r += ls) {
        if (!m[r]) {
            row[r] = 0.0f;
            continue;
        }
        __global const uchar* k = Kg + (size_t)r * rowBytes;
        float s = 0.0f;
        for (int d = 0; d < headDim; ++d) s = fma(kv_at(k, d, type), q[d], s);
        s *= scale;
        if (softcap > 0.0f) s = softcap * tanh(s / softcap);
        row[r] = s;
        mx = fmax(mx, s);
    }
    red[lid] = mx;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = ls / 2; stride > 0; stride /= 2) {
        if (lid < stride) red[lid] = fmax(red[lid], red[lid + stride]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    mx = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);

    // 2. softmax over the rows seen
    float sum = 0.0f;
    for (int r = lid; r < R; r += ls) {
        if (!m[r]) continue;
        const float e = exp(row[r] - mx);
        row[r] = e;
        sum += e;
    }
    red[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = ls / 2; stride > 0; stride /= 2) {
        if (lid < stride) red[lid] += red[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float inv = 1.0f / red[0];
    for (int r = lid; r < R; r += ls)
        if (m[r]) row[r] *= inv;
    barrier(CLK_GLOBAL_MEM_FENCE);  // every item reads every weight below

    // 3. weighted sum of the cached values seen
    for (int d = lid; d < headDim; d += ls) {
        float acc = 0.0f;
        for (int r = 0; r < R; ++r)
            if (m[r]) acc = fma(row[r], kv_at(Vg + (size_t)r * rowBytes, d, type), acc);
        out[(size_t)i * nHead * headDim + h * headDim + d] = acc;
    }
}
