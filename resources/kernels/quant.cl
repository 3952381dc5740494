// Matrix products and the embedding gather on weights kept on the device in their GGUF block
// type (F16, Q8_0, Q4_0, Q4_K, Q6_K; F32 too, for a Q/K/V stack whose parts differ in type).
// Bit layouts as compute/gguf/quant_blocks.cpp writes them out (ggml's). Each weight row is a
// whole number of blocks, rowBytes apart. Every kernel works in units of 32 consecutive values
// of a row: deq_<type>(row, u, lo, hi) writes values 32u .. 32u + 31 of the row as float32
// (two float16 vectors), computed as the scalar reference dequantizeRow computes them; products
// then accumulate in float with float activations, so they are exact with respect to the stored
// weights (up to the order of the sums).

inline float half_at(__global const uchar* p) {
    return vload_half(0, (__global const half*)p);
}

inline float hsum16(const float16 a) {
    const float8 b = a.lo + a.hi;
    const float4 c = b.lo + b.hi;
    const float2 d = c.lo + c.hi;
    return d.x + d.y;
}

// Each deq_T(row, u, lo, hi) writes values 32u .. 32u + 15 of the row to lo, the next 16 to hi.

inline void deq_f32(__global const uchar* row, const int u, float16* lo, float16* hi) {
    __global const float* p = (__global const float*)row + 32 * u;
    *lo = vload16(0, p);
    *hi = vload16(1, p);
}

inline void deq_f16(__global const uchar* row, const int u, float16* lo, float16* hi) {
    __global const half* p = (__global const half*)row + 32 * u;
    *lo = vload_half16(0, p);
    *hi = vload_half16(1, p);
}

// Q8_0 (34 B / 32): h d | int8 qs[32]; value q * d.
inline void deq_q8_0(__global const uchar* row, const int u, float16* lo, float16* hi) {
    __global const uchar* b = row + 34 * u;
    const float d = half_at(b);
    __global const char* q = (__global const char*)(b + 2);
    *lo = d * convert_float16(vload16(0, q));
    *hi = d * convert_float16(vload16(1, q));
}

// Q4_0 (18 B / 32): h d | qs[16]; element j < 16 the low nibble of qs[j], j + 16 the high one;
// value (q - 8) * d.
inline void deq_q4_0(__global const uchar* row, const int u, float16* lo, float16* hi) {
    __global const uchar* b = row + 18 * u;
    const float d = half_at(b);
    const int16 qs = convert_int16(vload16(0, b + 2));
    *lo = convert_float16((qs & 15) - 8) * d;
    *hi = convert_float16((qs >> 4) - 8) * d;
}

// Q4_K (144 B / 256): h d | h dmin | scales[12] | qs[128]. Unit u is sub-block b = u % 8 of
// super-block u / 8: nibbles of qs[32 * (b / 2) + l] (low for even b), value
// d * sc[b] * q - dmin * m[b] with the 6-bit sc, m packed as ggml's get_scale_min_k4.
inline void deq_q4_k(__global const uchar* row, const int u, float16* lo, float16* hi) {
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
    *lo = dl * convert_float16((convert_int16(vload16(0, qs)) >> shift) & 15) - ml;
    *hi = dl * convert_float16((convert_int16(vload16(1, qs)) >> shift) & 15) - ml;
}

// Q6_K (210 B / 256): ql[128] | qh[64] | int8 scales[16] | h d. Unit u covers values
// 32k .. 32k + 31 of half nh of super-block u / 8 (k = u % 4, nh = (u / 4) % 2): low 4 bits
// from ql[64 nh + 32 (k & 1) + l] (low nibble for k < 2), high 2 bits from qh[32 nh + l] at
// shift 2k; value d * scales[8 nh + 2k + l / 16] * (q - 32).
inline void deq_q6_k(__global const uchar* row, const int u, float16* lo, float16* hi) {
    __global const uchar* s = row + 210 * (u >> 3);
    const int nh = (u >> 2) & 1, k = u & 3;
    const float d = half_at(s + 208);
    __global const uchar* ql = s + 64 * nh + 32 * (k & 1);
    __global const uchar* qh = s + 128 + 32 * nh;
    __global const char* sc = (__global const char*)(s + 192) + 8 * nh + 2 * k;
    const int loShift = k < 2 ? 0 : 4, hiShift = 2 * k;
    const int16 q0 = ((convert_int16(vload16(0, ql)) >> loShift) & 15) |
                     (((convert_int16(vload16(0, qh)) >> hiShift) & 3) << 4);
    const int16 q1 = ((convert_int16(vload16(1, ql)) >> loShift) & 15) |
                     (((convert_int16(vload16(1, qh)) >> hiShift) & 3) << 4);
    *lo = (d * (float)sc[0]) * convert_float16(q0 - 32);
    *hi = (d * (float)sc[1]) * convert_float16(q1 - 32);
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
        float16 lo, hi;                                                                           \
        for (int i0 = 0; i0 < n; i0 += 4) {                                                       \
            const int m = min(4, n - i0);                                                         \
            __global const float* x0 = x + xOff + (size_t)i0 * cols;                              \
            __global const float* x1 = m > 1 ? x0 + cols : x0;                                    \
            __global const float* x2 = m > 2 ? x0 + 2 * cols : x0;                                \
            __global const float* x3 = m > 3 ? x0 + 3 * cols : x0;                                \
            float s[4];                                                                           \
            if (m == 1) {                                                                         \
                float16 a = (float16)(0.0f);                                                      \
                for (int u = 0; u < units; ++u) {                                                 \
                    deq_##T(w, u, &lo, &hi);                                                      \
                    a = fma(lo, vload16(2 * u, x0), a);                                           \
                    a = fma(hi, vload16(2 * u + 1, x0), a);                                       \
                }                                                                                 \
                s[0] = hsum16(a);                                                                 \
            } else {                                                                              \
                float16 a0 = (float16)(0.0f), a1 = a0, a2 = a0, a3 = a0;                          \
                for (int u = 0; u < units; ++u) {                                                 \
                    deq_##T(w, u, &lo, &hi);                                                      \
                    a0 = fma(lo, vload16(2 * u, x0), fma(hi, vload16(2 * u + 1, x0), a0));        \
                    a1 = fma(lo, vload16(2 * u, x1), fma(hi, vload16(2 * u + 1, x1), a1));        \
                    a2 = fma(lo, vload16(2 * u, x2), fma(hi, vload16(2 * u + 1, x2), a2));        \
                    a3 = fma(lo, vload16(2 * u, x3), fma(hi, vload16(2 * u + 1, x3), a3));        \
                }                                                                                 \
                s[0] = hsum16(a0);                                                                \
                s[1] = hsum16(a1);                                                                \
                s[2] = hsum16(a2);                                                                \
                s[3] = hsum16(a3);                                                                \
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
        float16 lo, hi, a = (float16)(0.0f);                                                      \
        for (int u = lid; u < units; u += ls) {                                                   \
            deq_##T(w, u, &lo, &hi);                                                              \
            a = fma(lo, vload16(2 * u, xv), fma(hi, vload16(2 * u + 1, xv), a));                  \
        }                                                                                         \
        part[lid] = hsum16(a);                                                                    \
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
        float16 lo, hi;                                                                           \
        deq_##T(W + (size_t)ids[i] * rowBytes, u, &lo, &hi);                                      \
        __global float* xi = x + (size_t)i * cols + 32 * u;                                       \
        if (hasPos) {                                                                             \
            __global const float* pi = pos + (size_t)(p0 + i) * cols + 32 * u;                    \
            lo += vload16(0, pi);                                                                 \
            hi += vload16(1, pi);                                                                 \
        }                                                                                         \
        vstore16(lo, 0, xi);                                                                      \
        vstore16(hi, 1, xi);                                                                      \
    }

KVSCOPE_QUANT_KERNELS(f32)
KVSCOPE_QUANT_KERNELS(f16)
KVSCOPE_QUANT_KERNELS(q8_0)
KVSCOPE_QUANT_KERNELS(q4_0)
KVSCOPE_QUANT_KERNELS(q4_k)
KVSCOPE_QUANT_KERNELS(q6_k)
