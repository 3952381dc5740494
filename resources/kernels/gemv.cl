// The matrix products of the OpenCL backend (one row: gemv_*, a few rows: gemm_rows) and the
// bias add that follows CLBlast's.
// Row-major, outermost first: W (rows, cols), x (cols), y (rows). Offsets count floats.

// On CPU devices (-DKVSCOPE_CPU_DEVICE) the kernels that stream a row prefetch 4 KiB ahead of it:
// the hardware prefetchers alone leave a thread at about half the memory bandwidth (compute/cpu's
// kernels do the same). Elsewhere it is nothing. (quant.cl uses it too.)
#if defined(KVSCOPE_CPU_DEVICE) && defined(__clang__)
#define KVSCOPE_AHEAD(p) __builtin_prefetch((__global const char*)(p) + 4096)
#else
#define KVSCOPE_AHEAD(p)
#endif

// y = W · x (+ bias) (+ y when accumulate): one row per work item, eight floats per load.
// The fast path on CPU devices (PoCL), where each work item streams one row.
__kernel void gemv_rows(__global float* y, const int yOff, __global const float* W,
                        __global const float* x, const int xOff, __global const float* bias,
                        const int hasBias, const int accumulate, const int rows, const int cols) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* w = W + (size_t)r * cols;
    __global const float* xv = x + xOff;
    float8 acc = (float8)(0.0f);
    const int c8 = cols / 8;
    for (int i = 0; i < c8; ++i) {
        KVSCOPE_AHEAD(w + 8 * i);
        acc = fma(vload8(i, w), vload8(i, xv), acc);
    }
    float s = ((acc.s0 + acc.s1) + (acc.s2 + acc.s3)) + ((acc.s4 + acc.s5) + (acc.s6 + acc.s7));
    for (int c = c8 * 8; c < cols; ++c) s = fma(w[c], xv[c], s);
    if (hasBias) s += bias[r];
    if (accumulate) s += y[yOff + r];
    y[yOff + r] = s;
}

// The same product with one work group per row: its items stride over the columns (adjacent
// items read adjacent floats, as GPUs like) and add up their partial sums in local memory.
// part: local size floats; the local size is a power of two.
__kernel void gemv_groups(__global float* y, const int yOff, __global const float* W,
                          __global const float* x, const int xOff, __global const float* bias,
                          const int hasBias, const int accumulate, const int rows, const int cols,
                          __local float* part) {
    const int r = get_group_id(0);
    const int lid = get_local_id(0), ls = get_local_size(0);
    __global const float* w = W + (size_t)r * cols;
    __global const float* xv = x + xOff;
    float s = 0.0f;
    for (int c = lid; c < cols; c += ls) s = fma(w[c], xv[c], s);
    part[lid] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = ls / 2; stride > 0; stride /= 2) {
        if (lid < stride) part[lid] += part[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0 && r < rows) {
        float v = part[0];
        if (hasBias) v += bias[r];
        if (accumulate) v += y[yOff + r];
        y[yOff + r] = v;
    }
}

// y (n, dim) += bias (dim), row by row. Items: n · dim, rounded up to whole work groups.
__kernel void add_bias(__global float* y, const int yOff, __global const float* bias,
                       const int dim, const int n) {
    const size_t at = get_global_id(0);
    if (at >= (size_t)n * dim) return;
    y[yOff + at] += bias[at % dim];
}

// y (n, rows) = x (n, cols) · Wᵀ (+ bias) (+ y when accumulate), for a few rows of x at once
// (prefill): one row of W per work item, streamed once per four rows of x with float8 loads,
// so W is read from memory once while it sits in the item's cache.
__kernel void gemm_rows(__global float* y, const int yOff, __global const float* W,
                        __global const float* x, const int xOff, __global const float* bias,
                        const int hasBias, const int accumulate, const int rows, const int cols,
                        const int n) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* w = W + (size_t)r * cols;
    const int c8 = cols / 8;
    for (int i0 = 0; i0 < n; i0 += 4) {
        // rows of x past n repeat the last one and are not written
        __global const float* x0 = x + xOff + (size_t)i0 * cols;
        __global const float* x1 = i0 + 1 < n ? x0 + cols : x0;
        __global const float* x2 = i0 + 2 < n ? x0 + 2 * cols : x0;
        __global const float* x3 = i0 + 3 < n ? x0 + 3 * cols : x0;
        float8 a0 = (float8)(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < c8; ++c) {
            const float8 wv = vload8(c, w);
            a0 = fma(wv, vload8(c, x0), a0);
            a1 = fma(wv, vload8(c, x1), a1);
            a2 = fma(wv, vload8(c, x2), a2);
            a3 = fma(wv, vload8(c, x3), a3);
        }
        float s[4];
        s[0] = ((a0.s0 + a0.s1) + (a0.s2 + a0.s3)) + ((a0.s4 + a0.s5) + (a0.s6 + a0.s7));
        s[1] = ((a1.s0 + a1.s1) + (a1.s2 + a1.s3)) + ((a1.s4 + a1.s5) + (a1.s6 + a1.s7));
        s[2] = ((a2.s0 + a2.s1) + (a2.s2 + a2.s3)) + ((a2.s4 + a2.s5) + (a2.s6 + a2.s7));
        s[3] = ((a3.s0 + a3.s1) + (a3.s2 + a3.s3)) + ((a3.s4 + a3.s5) + (a3.s6 + a3.s7));
        for (int c = c8 * 8; c < cols; ++c) {
            s[0] = fma(w[c], x0[c], s[0]);
            s[1] = fma(w[c], x1[c], s[1]);
            s[2] = fma(w[c], x2[c], s[2]);
            s[3] = fma(w[c], x3[c], s[3]);
        }
        for (int k = 0; k < 4 && i0 + k < n; ++k) {
            float v = s[k];
            if (hasBias) v += bias[r];
            __global float* yk = y + yOff + (size_t)(i0 + k) * rows + r;
            if (accumulate) v += *yk;
            *yk = v;
        }
    }
}
