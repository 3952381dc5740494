// Matrix products and the embedding gather on weights kept on the device in their GGUF block
// type (F16, Q8_0, Q4_0, Q4_K, Q6_K; F32 too, for a Q/K/V stack whose parts differ in type).
// Bit layouts as compute/gguf/quant_blocks.cpp writes them out (ggml's). Each weight row is a
// whole number of blocks, rowBytes apart. Every kernel works in units of 32 consecutive values
// of a row: unit_<type>(row, u, &q) reads values 32u .. 32u + 31 of the row as whole-number
// quants and their scales (below); products accumulate in float with float activations, so they
// are exact with respect to the stored weights up to the order and grouping of the sums.

// qgemm prefetches ahead of its row on CPU devices with gemv.cl's KVSCOPE_AHEAD (the files are
// one program, gemv.cl first).

inline float half_at(__global const uchar* p) {
    return vload_half(0, (__global const half*)p);
}

inline float hsum16(const float16 a) {
    const float8 b = a.lo + a.hi;
    const float4 c = b.lo + b.hi;
    const float2 d = c.lo + c.hi;
    return d.x + d.y;
}

// Each unit_T(row, u, &q) reads unit u of a row: the 32 values are q.lo * q.dlo (the first 16),
// q.hi * q.dhi (the next 16), each less q.m where the type has minimums; lo and hi hold the
// quants as whole numbers (the type's offset taken off) or, for F32 and F16, the values
// (scales 1). The products keep the scales out of the inner sums: udot multiplies 16 pairs,
// adds the two halves and scales once, so a unit costs one add on the accumulator's chain.
typedef struct {
    float16 lo, hi;
    float dlo, dhi, m;
} unit;

// The unit's dot product with x's 32 values x0, x1, as 16 partial sums. SPLIT: the halves have
// scales of their own (Q6_K); MIN: the type subtracts a minimum (Q4_K).
#define UDOT(q, x0, x1, SPLIT, MIN)                                                               \
    ((MIN) ? fma((float16)(-(q).m), (x0) + (x1), UDOT_SCALED(q, x0, x1, SPLIT))                 \
           : UDOT_SCALED(q, x0, x1, SPLIT))
#define UDOT_SCALED(q, x0, x1, SPLIT)                                                             \
    ((SPLIT) ? fma((float16)((q).dlo), (q).lo * (x0), (float16)((q).dhi) * ((q).hi * (x1)))     \
             : (float16)((q).dlo) * fma((q).lo, (x0), (q).hi * (x1)))

inline void unit_f32(__global const uchar* row, const int u, unit* q) {
    __global const float* p = (__global const float*)row + 32 * u;
    q->lo = vload16(0, p);
    q->hi = vload16(1, p);
    q->dlo = q->dhi = 1.0f;
    q->m = 0.0f;
}

inline void unit_f16(__global const uchar* row, const int u, unit* q) {
    __global const half* p = (__global const half*)row + 32 * u;
    q->lo = vload_half16(0, p);
    q->hi = vload_half16(1, p);
    q->dlo = q->dhi = 1.0f;
    q->m = 0.0f;
}

// The block types come in two layouts: as stored (ggml's, float16 scales) and "wide" (suffix
// w), with each float16 scale widened to a float32 in its place (device_weights.h: on CPU
// devices, where PoCL converts a float16 in software, a library call per block). SCALE(p) reads
// one: half_at for the stored layouts, a float for the wide ones; W is its size in bytes.
#define SCALE_STORED(p) half_at(p)
#define SCALE_WIDE(p) (*(__global const float*)(p))

// Q8_0 (34 B / 32): h d | int8 qs[32]; value q * d. Q8_0w (36 B): f d | qs[32].
#define KVSCOPE_UNIT_Q8_0(NAME, SCALE, W)                                                         \
    inline void unit_##NAME(__global const uchar* row, const int u, unit* q) {                    \
        __global const uchar* b = row + (W + 32) * u;                                             \
        __global const char* qs = (__global const char*)(b + W);                                  \
        q->lo = convert_float16(vload16(0, qs));                                                  \
        q->hi = convert_float16(vload16(1, qs));                                                  \
        q->dlo = q->dhi = SCALE(b);                                                               \
        q->m = 0.0f;                                                                              \
    }
KVSCOPE_UNIT_Q8_0(q8_0, SCALE_STORED, 2)
KVSCOPE_UNIT_Q8_0(q8_0w, SCALE_WIDE, 4)

// Q4_0 (18 B / 32): h d | qs[16]; element j < 16 the low nibble of qs[j], j + 16 the high one;
// value (q - 8) * d. Q4_0w (20 B): f d | qs[16].
#define KVSCOPE_UNIT_Q4_0(NAME, SCALE, W)                                                         \
    inline void unit_##NAME(__global const uchar* row, const int u, unit* q) {                    \
        __global const uchar* b = row + (W + 16) * u;                                             \
        const int16 qs = convert_int16(vload16(0, b + W));                                        \
        q->lo = convert_float16((qs & 15) - 8);                                                   \
        q->hi = convert_float16((qs >> 4) - 8);                                                   \
        q->dlo = q->dhi = SCALE(b);                                                               \
        q->m = 0.0f;                                                                              \
    }
KVSCOPE_UNIT_Q4_0(q4_0, SCALE_STORED, 2)
KVSCOPE_UNIT_Q4_0(q4_0w, SCALE_WIDE, 4)

// Q4_K (144 B / 256): h d | h dmin | scales[12] | qs[128]. Unit u is sub-block b = u % 8 of
// super-block u / 8: nibbles of qs[32 * (b / 2) + l] (low for even b), value
// d * sc[b] * q - dmin * m[b] with the 6-bit sc, m packed as ggml's get_scale_min_k4.
#define KVSCOPE_UNIT_Q4_K(NAME, SCALE, W)                                                         \
    inline void unit_##NAME(__global const uchar* row, const int u, unit* q) {                    \
        __global const uchar* s = row + (140 + 2 * W) * (u >> 3);                                 \
        const int b = u & 7;                                                                      \
        const float d = SCALE(s), dmin = SCALE(s + W);                                            \
        __global const uchar* p = s + 2 * W;                                                      \
        int sc, m;                                                                                \
        if (b < 4) {                                                                              \
            sc = p[b] & 63;                                                                       \
            m = p[b + 4] & 63;                                                                    \
        } else {                                                                                  \
            sc = (p[b + 4] & 15) | ((p[b - 4] >> 6) << 4);                                        \
            m = (p[b + 4] >> 4) | ((p[b] >> 6) << 4);                                             \
        }                                                                                         \
        __global const uchar* qs = p + 12 + 32 * (b >> 1);                                        \
        const int shift = 4 * (b & 1);                                                            \
        q->lo = convert_float16((convert_int16(vload16(0, qs)) >> shift) & 15);                   \
        q->hi = convert_float16((convert_int16(vload16(1, qs)) >> shift) & 15);                   \
        q->dlo = q->dhi = d * (float)sc;                                                          \
        q->m = dmin * (float)m;                                                                   \
    }
KVSCOPE_UNIT_Q4_K(q4_k, SCALE_STORED, 2)

// Q4_Kw (152 B / 256): f d | f dmin | uchar sc[8] | uchar m[8] | qs[128]: the 6-bit scales and
// minimums unpacked at upload.
inline void unit_q4_kw(__global const uchar* row, const int u, unit* q) {
    __global const uchar* s = row + 152 * (u >> 3);
    const int b = u & 7;
    __global const uchar* qs = s + 24 + 32 * (b >> 1);
    const int shift = 4 * (b & 1);
    q->lo = convert_float16((convert_int16(vload16(0, qs)) >> shift) & 15);
    q->hi = convert_float16((convert_int16(vload16(1, qs)) >> shift) & 15);
    q->dlo = q->dhi = SCALE_WIDE(s) * (float)s[8 + b];
    q->m = SCALE_WIDE(s + 4) * (float)s[16 + b];
}

// Q6_K (210 B / 256): ql[128] | qh[64] | int8 scales[16] | h d. Unit u covers values
// 32k .. 32k + 31 of half nh of super-block u / 8 (k = u % 4, nh = (u / 4) % 2): low 4 bits
// from ql[64 nh + 32 (k & 1) + l] (low nibble for k < 2), high 2 bits from qh[32 nh + l] at
// shift 2k; value d * scales[8 nh + 2k + l / 16] * (q - 32). Q6_Kw (212 B): the same, f d.
#define KVSCOPE_UNIT_Q6_K(NAME, SCALE, W)                                                         \
    inline void unit_##NAME(__global const uchar* row, const int u, unit* q) {                    \
        __global const uchar* s = row + (208 + W) * (u >> 3);                                     \
        const int nh = (u >> 2) & 1, k = u & 3;                                                   \
        const float d = SCALE(s + 208);                                                           \
        __global const uchar* ql = s + 64 * nh + 32 * (k & 1);                                    \
        __global const uchar* qh = s + 128 + 32 * nh;                                             \
        __global const char* sc = (__global const char*)(s + 192) + 8 * nh + 2 * k;               \
        const int loShift = k < 2 ? 0 : 4, hiShift = 2 * k;                                       \
        const int16 q0 = ((convert_int16(vload16(0, ql)) >> loShift) & 15) |                      \
                         (((convert_int16(vload16(0, qh)) >> hiShift) & 3) << 4);                 \
        const int16 q1 = ((convert_int16(vload16(1, ql)) >> loShift) & 15) |                      \
                         (((convert_int16(vload16(1, qh)) >> hiShift) & 3) << 4);                 \
        q->lo = convert_float16(q0 - 32);                                                         \
        q->hi = convert_float16(q1 - 32);                                                         \
        q->dlo = d * (float)sc[0];                                                                \
        q->dhi = d * (float)sc[1];                                                                \
        q->m = 0.0f;                                                                              \
    }
KVSCOPE_UNIT_Q6_K(q6_k, SCALE_STORED, 2)
KVSCOPE_UNIT_Q6_K(q6_kw, SCALE_WIDE, 4)

// For each type T (SPLIT and MIN as UDOT's):
//
// qgemm_T: y (n, ldy) from column yOff = x (n, cols) · Wᵀ (+ bias[biasOff ..]) (+ y when
// accumulate). One weight row per work item; each unit of the row is read once per four
// rows of x (n = 1: the decode step on CPU devices, where one item streaming one row is fast).
//
// qgemv_T: y (rows) from yOff = W · x, one work group per row: its items take every ls-th unit
// and add up their partial sums in local memory (part: local size floats, a power of two).
//
// qembed_T: x (n, cols) = W[ids[i]] (+ pos[p0 + i] when hasPos), the embedding gather on a
// weight table held as T. Items: n · cols / 32, one unit each.
#define KVSCOPE_QUANT_KERNELS(T, SPLIT, MIN)                                                      \
    __kernel void qgemm_##T(__global float* y, const int yOff, const int ldy,                     \
                            __global const uchar* W, const int rowBytes, __global const float* x, \
                            const int xOff, __global const float* bias, const int biasOff,        \
                            const int hasBias, const int accumulate, const int rows,              \
                            const int cols, const int n) {                                        \
        const int r = get_global_id(0);                                                           \
        if (r >= rows) return;                                                                    \
        __global const uchar* w = W + (size_t)r * rowBytes;                                       \
        const int units = cols / 32;                                                              \
        unit q;                                                                                   \
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
                    KVSCOPE_AHEAD(w + (size_t)u * rowBytes / units);                              \
                    unit_##T(w, u, &q);                                                           \
                    a += UDOT(q, vload16(2 * u, x0), vload16(2 * u + 1, x0), SPLIT, MIN);         \
                }                                                                                 \
                s[0] = hsum16(a);                                                                 \
            } else {                                                                              \
                float16 a0 = (float16)(0.0f), a1 = a0, a2 = a0, a3 = a0;                          \
                for (int u = 0; u < units; ++u) {                                                 \
                    KVSCOPE_AHEAD(w + (size_t)u * rowBytes / units);                              \
                    unit_##T(w, u, &q);                                                           \
                    a0 += UDOT(q, vload16(2 * u, x0), vload16(2 * u + 1, x0), SPLIT, MIN);        \
                    a1 += UDOT(q, vload16(2 * u, x1), vload16(2 * u + 1, x1), SPLIT, MIN);        \
                    a2 += UDOT(q, vload16(2 * u, x2), vload16(2 * u + 1, x2), SPLIT, MIN);        \
                    a3 += UDOT(q, vload16(2 * u, x3), vload16(2 * u + 1, x3), SPLIT, MIN);        \
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
        unit q;                                                                                   \
        float16 a = (float16)(0.0f);                                                              \
        for (int u = lid; u < units; u += ls) {                                                   \
            unit_##T(w, u, &q);                                                                   \
            a += UDOT(q, vload16(2 * u, xv), vload16(2 * u + 1, xv), SPLIT, MIN);                 \
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
        unit q;                                                                                   \
        unit_##T(W + (size_t)ids[i] * rowBytes, u, &q);                                           \
        float16 lo = q.lo * q.dlo - q.m, hi = q.hi * q.dhi - q.m;                                 \
        __global float* xi = x + (size_t)i * cols + 32 * u;                                       \
        if (hasPos) {                                                                             \
            __global const float* pi = pos + (size_t)(p0 + i) * cols + 32 * u;                    \
            lo += vload16(0, pi);                                                                 \
            hi += vload16(1, pi);                                                                 \
        }                                                                                         \
        vstore16(lo, 0, xi);                                                                      \
        vstore16(hi, 1, xi);                                                                      \
    }

KVSCOPE_QUANT_KERNELS(f32, 0, 0)
KVSCOPE_QUANT_KERNELS(f16, 0, 0)
KVSCOPE_QUANT_KERNELS(q8_0, 0, 0)
KVSCOPE_QUANT_KERNELS(q4_0, 0, 0)
KVSCOPE_QUANT_KERNELS(q4_k, 0, 1)
KVSCOPE_QUANT_KERNELS(q6_k, 1, 0)
KVSCOPE_QUANT_KERNELS(q8_0w, 0, 0)
KVSCOPE_QUANT_KERNELS(q4_0w, 0, 0)
KVSCOPE_QUANT_KERNELS(q4_kw, 0, 1)
KVSCOPE_QUANT_KERNELS(q6_kw, 1, 0)
