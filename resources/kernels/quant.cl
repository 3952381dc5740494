// Matrix products and the embedding gather on weights kept on the device in their GGUF block
// type (F16, Q8_0, Q4_0, Q4_K, Q6_K; F32 too, for a Q/K/V stack whose parts differ in type).
// Bit layouts as compute/gguf/quant_blocks.cpp writes them out (ggml's). Each weight row is a
// whole number of blocks, rowBytes apart. Every kernel works in units of 32 consecutive values
// of a row: deq_<type>(row, u, v) writes values 32u .. 32u + 31 of the row as float32, computed
// as the scalar reference dequantizeRow computes them; products then accumulate in float with
// float activations, so they are exact with respect to the stored weights (up to the order of
// the sums).

inline float half_at(__global const uchar* p) {
    return vload_half(0, (__global const half*)p);
}

inline void deq_f32(__global const uchar* row, const int u, float* v) {
    __global const float* p = (__global const float*)row + 32 * u;
    for (int j = 0; j < 32; ++j) v[j] = p[j];
}

inline void deq_f16(__global const uchar* row, const int u, float* v) {
    __global const half* p = (__global const half*)row + 32 * u;
    for (int j = 0; j < 32; ++j) v[j] = vload_half(j, p);
}

// Q8_0 (34 B / 32): h d | int8 qs[32]; value q * d.
inline void deq_q8_0(__global const uchar* row, const int u, float* v) {
    __global const uchar* b = row + 34 * u;
    const float d = half_at(b);
    __global const char* q = (__global const char*)(b + 2);
    for (int j = 0; j < 32; ++j) v[j] = d * (float)q[j];
}

// Q4_0 (18 B / 32): h d | qs[16]; element j < 16 the low nibble of qs[j], j + 16 the high one;
// value (q - 8) * d.
inline void deq_q4_0(__global const uchar* row, const int u, float* v) {
    __global const uchar* b = row + 18 * u;
    const float d = half_at(b);
    __global const uchar* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        v[j] = (float)((int)(qs[j] & 15) - 8) * d;
        v[j + 16] = (float)((int)(qs[j] >> 4) - 8) * d;
    }
}

// Q4_K (144 B / 256): h d | h dmin | scales[12] | qs[128]. Unit u is sub-block b = u % 8 of
// super-block u / 8: nibbles of qs[32 * (b / 2) + l] (low for even b), value
// d * sc[b] * q - dmin * m[b] with the 6-bit sc, m packed as ggml's get_scale_min_k4.
inline void deq_q4_k(__global const uchar* row, const int u, float* v) {
    __global const uchar* s = row + 144 * (u >> 3);
    const int b = u & 7;
    const float d = half_at(s), dmin = half_at(s + 2);
    __global const uchar* p = s + 4;
    int sc, m;
    if (b < 4) {
        sc = p[b] & 63;
        m = p[b + 4] & 63;
    } else {
        sc = (p[b + 4] & 15) | ((p[b - 4] >> 6) << 4);
        m = (p[b + 4] >> 4) | ((p[b] >> 6) << 4);
    }
    const float dl = d * (float)sc, ml = dmin * (float)m;
    __global const uchar* qs = s + 16 + 32 * (b >> 1);
    const int shift = 4 * (b & 1);
    for (int l = 0; l < 32; ++l) v[l] = dl * (float)((qs[l] >> shift) & 15) - ml;
}

// Q6_K (210 B / 256): ql[128] | qh[64] | int8 scales[16] | h d. Unit u covers values
// 32k .. 32k + 31 of half nh of super-block u / 8 (k = u % 4, nh = (u / 4) % 2): low 4 bits
// from ql[64 nh + 32 (k & 1) + l] (low nibble for k < 2), high 2 bits from qh[32 nh + l] at
// shift 2k; value d * scales[8 nh + 2k + l / 16] * (q - 32).
inline void deq_q6_k(__global const uchar* row, const int u, float* v) {
    __global const uchar* s = row + 210 * (u >> 3);
    const int nh = (u >> 2) & 1, k = u & 3;
    const float d = half_at(s + 208);
    __global const uchar* ql = s + 64 * nh + 32 * (k & 1);
    __global const uchar* qh = s + 128 + 32 * nh;
    __global const char* sc = (__global const char*)(s + 192) + 8 * nh + 2 * k;
    const int loShift = k < 2 ? 0 : 4, hiShift = 2 * k;
    const float d0 = d * (float)sc[0], d1 = d * (float)sc[1];
    for (int l = 0; l < 32; ++l) {
        const int q = ((ql[l] >> loShift) & 15) | (((qh[l] >> hiShift) & 3) << 4);
        v[l] = (l < 16 ? d0 : d1) * (float)(q - 32);
    }
}

// For each type T:
//
// qgemm_T: y (n, ldy) from column yOff = x (n, cols) · Wᵀ (+ bias[biasOff ..]) (+ y when
// accumulate). One weight row per work item; each unit of the row is dequantized once per four
// rows of x (n = 1: the decode step on CPU devices, where one item streaming one row is fast).
//
// qgemv_T: y (rows) from yOff = W · x, one work group per row: its items take every ls-th unit
// and add up their partial sums in local memory (part: local size floats, a power of two).
//
// qembed_T: x (n, cols) = W[ids[i]] (+ pos[p0 + i] when hasPos), the embedding gather on a
// weight table held as T. Items: n · cols / 32, one unit each.
#define KVSCOPE_QUANT_KERNELS(T)                                                                  \
    __kernel void qgemm_##T(__global float* y, const int yOff, const int ldy,                     \
                            __global const uchar* W, const int rowBytes, __global const float* x, \
                            const int xOff, __global const float* bias, const int biasOff,        \
                            const int hasBias, const int accumulate, const int rows,              \
                            const int cols, const int n) {                                        \
        const int r = get_global_id(0);                                                           \
        if (r >= rows) return;                                                                    \
        __global const uchar* w = W + (size_t)r * rowBytes;                                       \
        const int units = cols / 32;                                                              \
        float v[32];                                                                              \
        for (int i0 = 0; i0 < n; i0 += 4) {                                                       \
            const int m = min(4, n - i0);                                                         \
            __global const float* x0 = x + xOff + (size_t)i0 * cols;                              \
            __global const float* x1 = m > 1 ? x0 + cols : x0;                                    \
            __global const float* x2 = m > 2 ? x0 + 2 * cols : x0;                                \
            __global const float* x3 = m > 3 ? x0 + 3 * cols : x0;                                \
            float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};                                                \
            if (m == 1) {                                                                         \
                for (int u = 0; u < units; ++u) {                                                 \
                    deq_##T(w, u, v);                                                             \
                    __global const float* xa = x0 + 32 * u;                                       \
                    float a = 0.0f;                                                               \
                    for (int j = 0; j < 32; ++j) a = fma(v[j], xa[j], a);                         \
                    s[0] += a;                                                                    \
                }                                                                                 \
            } else {                                                                              \
                for (int u = 0; u < units; ++u) {                                                 \
                    deq_##T(w, u, v);                                                             \
                    const int c = 32 * u;                                                         \
                    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;                             \
                    for (int j = 0; j < 32; ++j) {                                                \
                        a0 = fma(v[j], x0[c + j], a0);                                            \
                        a1 = fma(v[j], x1[c + j], a1);                                            \
                        a2 = fma(v[j], x2[c + j], a2);                                            \
                        a3 = fma(v[j], x3[c + j], a3);                                            \
                    }                                                                             \
                    s[0] += a0;                                                                   \
                    s[1] += a1;                                                                   \
                    s[2] += a2;                                                                   \
                    s[3] += a3;                                                                   \
                }                                                                                 \
            }                                                                                     \
            for (int k = 0; k < m; ++k) {                                                         \
                float val = s[k];                                                                 \
                if (hasBias) val += bias[biasOff + r];                                            \
                __global float* yk = y + yOff + (size_t)(i0 + k) * ldy + r;                       \
                if (accumulate) val += *yk;                                                       \
                *yk = val;                                                                        \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    __kernel void qgemv_##T(__global float* y, const int yOff, __global const uchar* W,           \
                            const int rowBytes, __global const float* x, const int xOff,          \
                            __global const float* bias, const int biasOff, const int hasBias,     \
                            const int accumulate, const int rows, const int cols,                 \
                            __local float* part) {                                                \
        const int r = get_group_id(0);                                                            \
        const int lid = get_local_id(0), ls = get_local_size(0);                                  \
        __global const uchar* w = W + (size_t)r * rowBytes;                                       \
        __global const float* xv = x + xOff;                                                      \
        const int units = cols / 32;                                                              \
        float v[32];                                                                              \
        float s = 0.0f;                                                                           \
        for (int u = lid; u < units; u += ls) {                                                   \
            deq_##T(w, u, v);                                                                     \
            __global const float* xa = xv + 32 * u;                                               \
            float a = 0.0f;                                                                       \
            for (int j = 0; j < 32; ++j) a = fma(v[j], xa[j], a);                                 \
            s += a;                                                                               \
        }                                                                                         \
        part[lid] = s;                                                                            \
        barrier(CLK_LOCAL_MEM_FENCE);                                                             \
        for (int stride = ls / 2; stride > 0; stride /= 2) {                                      \
            if (lid < stride) part[lid] += part[lid + stride];                                    \
            barrier(CLK_LOCAL_MEM_FENCE);                                                         \
        }                                                                                         \
        if (lid == 0 && r < rows) {                                                               \
            float val = part[0];                                                                  \
            if (hasBias) val += bias[biasOff + r];                                                \
            if (accumulate) val += y[yOff + r];                                                   \
            y[yOff + r] = val;                                                                    \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    __kernel void qembed_##T(__global float* x, __global const int* ids, __global const uchar* W, \
                             const int rowBytes, __global const float* pos, const int hasPos,     \
                             const int p0, const int cols, const int n) {                         \
        const int units = cols / 32;                                                              \
        const size_t at = get_global_id(0);                                                       \
        if (at >= (size_t)n * units) return;                                                      \
        const int i = (int)(at / units), u = (int)(at % units);                                   \
        float v[32];                                                                              \
        deq_##T(W + (size_t)ids[i] * rowBytes, u, v);                                             \
        __global float* xi = x + (size_t)i * cols + 32 * u;                                       \
        __global const float* pi = pos + (size_t)(p0 + i) * cols + 32 * u;                        \
        for (int j = 0; j < 32; ++j) xi[j] = hasPos ? v[j] + pi[j] : v[j];                        \
    }

KVSCOPE_QUANT_KERNELS(f32)
KVSCOPE_QUANT_KERNELS(f16)
KVSCOPE_QUANT_KERNELS(q8_0)
KVSCOPE_QUANT_KERNELS(q4_0)
KVSCOPE_QUANT_KERNELS(q4_k)
KVSCOPE_QUANT_KERNELS(q6_k)
