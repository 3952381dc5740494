// The matrix products on x86 CPU devices (PoCL and other OpenCL implementations that compile
// for the host): every product on the wide block types and F16's decode steps (one row of x),
// written with the x86 SIMD instructions the compiler exposes as builtins, as compute/cpu's
// kernels are.
// Built only where the host asked for it (-DKVSCOPE_CPU_DEVICE, CPU devices) and the compiler
// targets AVX2 with F16C; the host finds out from the program's kernel names (Program::hasKernel)
// and otherwise runs quant.cl's portable kernels.
//
// The block types (Q8_0, Q4_0, Q4_K, Q6_K in their wide layouts, device_weights.h) take x
// rounded to 8 bits first, as the CPU backend does (compute/cpu/quant_dot.h, which states the
// error it adds): simd_quantize_x writes the quants of each 32 values with the scale of their
// 32 (Q8_0, Q4_0: amax / 127 rounded to float16, round half away from zero) or of their 256 (the
// K-quants: -max / 127, round half to even), and the scaled sums of each 16 quants; the rows are
// then integer dot products (pmaddubsw, pmaddwd) scaled once per block, exact with respect to
// the weights and the rounded x up to float32 rounding. F16 rows keep x in float32 (vcvtph2ps,
// exact products). One weight row per work item, each streaming its row with a prefetch 4 KiB
// ahead (the hardware prefetchers alone leave a thread at about half the memory bandwidth) and
// taking every row of x while it is in cache.
#if defined(KVSCOPE_CPU_DEVICE) && defined(__clang__) && defined(__AVX2__) && defined(__F16C__)
#define KVSCOPE_SIMD_KERNELS 1  // what cpu_step.cl builds on

typedef char simd_c32 __attribute__((ext_vector_type(32)));
typedef char simd_c32u __attribute__((ext_vector_type(32), aligned(1)));
typedef uchar simd_u32 __attribute__((ext_vector_type(32)));
typedef uchar simd_u16u __attribute__((ext_vector_type(16), aligned(1)));
typedef short simd_s8u __attribute__((ext_vector_type(8), aligned(1)));

#define SIMD_AHEAD 4096

// Prefetches the cache lines SIMD_AHEAD bytes past the `bytes` at p (a block or two of a row).
inline void simd_ahead(__global const uchar* p, const int bytes) {
    for (int at = 0; at < bytes; at += 64) __builtin_prefetch(p + SIMD_AHEAD + at);
}

inline simd_c32 simd_load32(__global const void* p) {
    return *(__global const simd_c32u*)p;
}

// v's bytes shifted right by n as unsigned bytes.
inline simd_c32 simd_shr(const simd_c32 v, const int n) {
    return __builtin_astype(__builtin_astype(v, simd_u32) >> (simd_u32)(uchar)n, simd_c32);
}

// 32 unsigned quants (at most 128) times 32 signed x quants (at most 127 in magnitude): 16 sums
// of adjacent pairs (pmaddubsw), within 2 * 128 * 127 = 32512, so none saturates.
inline short16 simd_pairs(const simd_c32 u, const simd_c32 x) {
    return __builtin_ia32_pmaddubsw256(u, x);
}

// Eight int32 sums of four products.
inline int8 simd_dot_u8(const simd_c32 u, const simd_c32 x) {
    return __builtin_ia32_pmaddwd256(simd_pairs(u, x), (short16)1);
}

// Signed quants: |w| (psignb of w by itself; -128 stays 0x80, 128 as unsigned) times x with
// w's sign (pair sums <= 2 * 128 * 127).
inline int8 simd_dot_s8(const simd_c32 w, const simd_c32 x) {
    return simd_dot_u8(__builtin_ia32_psignb256(w, w), __builtin_ia32_psignb256(x, w));
}

// 32 quants from 16 bytes: the low nibbles (values 0..15), then the high ones.
inline simd_c32 simd_nibbles(__global const uchar* p) {
    const uchar16 b = *(__global const simd_u16u*)p;
    const char16 lo = as_char16(b & (uchar16)15), hi = as_char16(b >> (uchar16)4);
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                   16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
}

inline float simd_hsum8(const float8 a) {
    const float4 b = a.lo + a.hi;
    return (b.x + b.y) + (b.z + b.w);
}

// The `block` values (32 or 256) at v rounded to 8 bits as compute/cpu/quant_dot.cpp's plain
// loops round them: q, their quants; d, the scale of each 32 (a 256-block's repeated); s, the
// scale times the sum of each 16 quants. A NaN or infinity in the block makes its scale NaN and
// its quants 0, so it reaches the products' output as it would without the rounding.
inline void simd_round_block(__global const float* v, const int block, __global char* q,
                             __global float* d, __global float* s) {
    // the largest |v| (NaN ignored, as by a > amax) and whether all are finite
    float8 am = 0.0f;
    int8 finite8 = (int8)(-1);
    for (int i = 0; i < block; i += 8) {
        const float8 x = vload8(0, v + i);
        am = fmax(am, fabs(x));
        finite8 &= isfinite(x);
    }
    const float4 am4 = fmax(am.lo, am.hi);
    const float amax = fmax(fmax(am4.x, am4.y), fmax(am4.z, am4.w));
    const bool finite = all(finite8);
    float max = 0.0f;  // the first value of that magnitude, with its sign
    if (amax > 0.0f)
        for (int i = 0; i < block; ++i)
            if (fabs(v[i]) == amax) {
                max = v[i];
                break;
            }
    float scale = NAN, id = 0.0f;
    if (block == 32 && finite) {  // amax / 127 rounded to float16 (llama.cpp's block_q8_0)
        const float d32 = amax / 127.0f;
        id = d32 > 0.0f ? 1.0f / d32 : 0.0f;
        const float4 h = __builtin_ia32_vcvtph2ps(__builtin_ia32_vcvtps2ph((float4)(d32), 0));
        scale = h.x;  // through float16, to nearest
    } else if (finite) {  // -max / 127 in float32 (block_q8_K)
        id = amax > 0.0f ? -127.0f / max : 0.0f;
        scale = amax > 0.0f ? 1.0f / id : 0.0f;
        if (!isfinite(id)) id = 0.0f;  // a subnormal max
    }
    for (int i = 0; i < block; i += 16) {
        int8 sum = 0;
        for (int h = 0; h < 16; h += 8) {
            // 0 · inf (a block of subnormals) is NaN: 0, as the CPU's; clamp's NaN is not
            const float8 p = vload8(0, v + i + h) * id;
            const float8 t = select(clamp(p, -127.0f, 127.0f), (float8)(0.0f), isnan(p));
            // 32-blocks: half away from zero (llama.cpp's roundf); 256-blocks: half to even
            const int8 c = block == 32 ? convert_int8(t + select((float8)(-0.5f), (float8)(0.5f),
                                                                 t >= (float8)(0.0f)))
                                       : convert_int8(rint(t));
            vstore8(convert_char8(c), 0, q + i + h);
            sum += c;
        }
        const int4 s4 = sum.lo + sum.hi;
        s[i / 16] = scale * (float)((s4.x + s4.y) + (s4.z + s4.w));
    }
    for (int k = 0; k < block / 32; ++k) d[k] = scale;
}

// x (n rows of cols values from x + xOff) rounded to 8 bits (simd_round_block), an item per
// block of `block` values.
__kernel void simd_quantize_x(__global const float* x, const int xOff, const int cols,
                              const int n, const int block, __global char* xq,
                              __global float* xd, __global float* xs) {
    const int blocks = cols / block;
    const int at = get_global_id(0);
    if (at >= n * blocks) return;
    const size_t first = (size_t)(at / blocks) * cols + (size_t)(at % blocks) * block;
    simd_round_block(x + xOff + first, block, xq + first, xd + first / 32, xs + first / 16);
}

// simd_dot_T: row w of type T · x (cols values), from xq, xd, xs (x rounded, simd_round_block)
// and xv (x in float32). simd_gemv_T: y[yOff + i ldy + r] = row r of W · row i of x
// (+ bias[biasOff + r]) (+ y when accumulate), i < n, one weight row r per item, which takes
// every row of x while it is in cache. BODY sets `float val` from w, xq, xd, xs, xv and cols.
#define SIMD_GEMV(T, ...)                                                                         \
    inline float simd_dot_##T(__global const uchar* w, __global const char* xq,                  \
                              __global const float* xd, __global const float* xs,                 \
                              __global const float* xv, const int cols) {                         \
        float val;                                                                                \
        __VA_ARGS__                                                                               \
        return val;                                                                               \
    }                                                                                             \
    __kernel void simd_gemv_##T(                                                                  \
        __global float* y, const int yOff, const int ldy, __global const uchar* W,                \
        const int rowBytes, __global const float* x, const int xOff,                              \
        __global const char* xq0, __global const float* xd0, __global const float* xs0,           \
        __global const float* bias, const int biasOff, const int hasBias, const int accumulate,   \
        const int rows, const int cols, const int n) {                                            \
        const int r = get_global_id(0);                                                           \
        if (r >= rows) return;                                                                    \
        __global const uchar* w = W + (size_t)r * rowBytes;                                       \
        for (int i = 0; i < n; ++i) {                                                             \
            float val = simd_dot_##T(w, xq0 + (size_t)i * cols, xd0 + (size_t)i * (cols / 32),    \
                                     xs0 + (size_t)i * (cols / 16), x + xOff + (size_t)i * cols,  \
                                     cols);                                                       \
            if (hasBias) val += bias[biasOff + r];                                                \
            __global float* yr = y + yOff + (size_t)i * ldy + r;                                  \
            if (accumulate) val += *yr;                                                           \
            *yr = val;                                                                            \
        }                                                                                         \
    }

// F32 (the decode layer of cpu_step.cl only: float32 matrices otherwise go through CLBlast or
// gemv.cl): float32 products with x.
inline float simd_dot_f32(__global const uchar* w, __global const char* xq,
                          __global const float* xd, __global const float* xs,
                          __global const float* xv, const int cols) {
    __global const float* wf = (__global const float*)w;
    float8 a0 = 0.0f, a1 = 0.0f;
    int i = 0;
    for (; i + 16 <= cols; i += 16) {
        __builtin_prefetch((__global const uchar*)(wf + i) + SIMD_AHEAD);
        a0 = fma(vload8(0, wf + i), vload8(0, xv + i), a0);
        a1 = fma(vload8(1, wf + i), vload8(1, xv + i), a1);
    }
    float val = simd_hsum8(a0 + a1);
    for (; i < cols; ++i) val = fma(wf[i], xv[i], val);
    return val;
}

// F16: the values widened (vcvtph2ps), float32 products with x.
SIMD_GEMV(f16, {
    float8 a0 = 0.0f, a1 = 0.0f;
    for (int i = 0; i < cols; i += 32) {
        __global const short* p = (__global const short*)w + i;
        __builtin_prefetch((__global const uchar*)p + SIMD_AHEAD);
        a0 = fma(__builtin_ia32_vcvtph2ps256(*(__global const simd_s8u*)p), vload8(0, xv + i), a0);
        a1 = fma(__builtin_ia32_vcvtph2ps256(*(__global const simd_s8u*)(p + 8)), vload8(1, xv + i),
                 a1);
        a0 = fma(__builtin_ia32_vcvtph2ps256(*(__global const simd_s8u*)(p + 16)),
                 vload8(2, xv + i), a0);
        a1 = fma(__builtin_ia32_vcvtph2ps256(*(__global const simd_s8u*)(p + 24)),
                 vload8(3, xv + i), a1);
    }
    val = simd_hsum8(a0 + a1);
})

// Q8_0w (36 B / 32: f d | int8 qs[32]): d · dx · Σ q·xq per block.
SIMD_GEMV(q8_0w, {
    const int nb = cols / 32;
    float8 a0 = 0.0f, a1 = 0.0f;
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        __global const uchar* p = w + 36 * b;
        simd_ahead(p, 72);
        a0 = fma(convert_float8(simd_dot_s8(simd_load32(p + 4), simd_load32(xq + 32 * b))),
                 (float8)(*(__global const float*)p * xd[b]), a0);
        a1 = fma(convert_float8(simd_dot_s8(simd_load32(p + 40), simd_load32(xq + 32 * b + 32))),
                 (float8)(*(__global const float*)(p + 36) * xd[b + 1]), a1);
    }
    for (; b < nb; ++b) {
        __global const uchar* p = w + 36 * b;
        a0 = fma(convert_float8(simd_dot_s8(simd_load32(p + 4), simd_load32(xq + 32 * b))),
                 (float8)(*(__global const float*)p * xd[b]), a0);
    }
    val = simd_hsum8(a0 + a1);
})

// Q4_0w (20 B / 32: f d | qs[16], nibbles q, value (q - 8) d): d · (dx Σ q·xq - 8 dx Σ xq).
SIMD_GEMV(q4_0w, {
    const int nb = cols / 32;
    float8 a0 = 0.0f, a1 = 0.0f;
    float c = 0.0f;
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        __global const uchar* p = w + 20 * b;
        __builtin_prefetch(p + SIMD_AHEAD);
        const float d0 = *(__global const float*)p, d1 = *(__global const float*)(p + 20);
        a0 = fma(convert_float8(simd_dot_u8(simd_nibbles(p + 4), simd_load32(xq + 32 * b))),
                 (float8)(d0 * xd[b]), a0);
        a1 = fma(convert_float8(simd_dot_u8(simd_nibbles(p + 24), simd_load32(xq + 32 * b + 32))),
                 (float8)(d1 * xd[b + 1]), a1);
        c += d0 * (xs[2 * b] + xs[2 * b + 1]) + d1 * (xs[2 * b + 2] + xs[2 * b + 3]);
    }
    for (; b < nb; ++b) {
        __global const uchar* p = w + 20 * b;
        const float d0 = *(__global const float*)p;
        a0 = fma(convert_float8(simd_dot_u8(simd_nibbles(p + 4), simd_load32(xq + 32 * b))),
                 (float8)(d0 * xd[b]), a0);
        c += d0 * (xs[2 * b] + xs[2 * b + 1]);
    }
    val = simd_hsum8(a0 + a1) - 8.0f * c;
})

// Sub-blocks 2k and 2k + 1 of a Q4_Kw super-block: the low and high nibbles of the same 32
// bytes, each sub-block's pair sums weighted by its scale.
inline int8 simd_q4k_pair(const simd_c32 bytes, __global const char* x, const short scLo,
                          const short scHi) {
    return __builtin_ia32_pmaddwd256(simd_pairs(bytes & (simd_c32)15, simd_load32(x)),
                                     (short16)scLo) +
           __builtin_ia32_pmaddwd256(simd_pairs(simd_shr(bytes, 4), simd_load32(x + 32)),
                                     (short16)scHi);
}

// Q4_Kw (152 B / 256: f d | f dmin | uchar sc[8] | uchar m[8] | qs[128]; sub-block j's nibbles
// in qs[32 (j / 2) ..], low for even j; value d sc[j] q - dmin m[j]): the eight sub-blocks'
// integer sums weighted by sc[j] (pmaddwd), one float scaling per super-block, and the
// minimums through the x sums.
SIMD_GEMV(q4_kw, {
    const int ns = cols / 256;
    float8 acc = 0.0f;
    float8 mins = 0.0f;  // Σ dmin m[j] · (x sum of sub-block j), by sub-block
    for (int s = 0; s < ns; ++s) {
        __global const uchar* p = w + 152 * s;
        simd_ahead(p, 152);
        const short8 sc = convert_short8(vload8(0, p + 8));
        __global const uchar* qs = p + 24;
        __global const char* x8 = xq + 256 * s;
        int8 isum = simd_q4k_pair(simd_load32(qs), x8, sc.s0, sc.s1);
        isum += simd_q4k_pair(simd_load32(qs + 32), x8 + 64, sc.s2, sc.s3);
        isum += simd_q4k_pair(simd_load32(qs + 64), x8 + 128, sc.s4, sc.s5);
        isum += simd_q4k_pair(simd_load32(qs + 96), x8 + 192, sc.s6, sc.s7);
        const float d = *(__global const float*)p, dmin = *(__global const float*)(p + 4);
        acc = fma(convert_float8(isum), (float8)(d * xd[8 * s]), acc);
        const float16 xs16 = vload16(s, xs);
        mins = fma(convert_float8(vload8(0, p + 16)) * (float8)dmin, xs16.even + xs16.odd, mins);
    }
    val = simd_hsum8(acc) - simd_hsum8(mins);
})

// Q6_Kw (212 B / 256: ql[128] | qh[64] | int8 sc[16] | f d; unit u = 4 h + k of half h: low
// bits from ql[64 h + 32 (k & 1) ..] (low nibbles for k < 2), high 2 bits from qh[32 h ..] at
// shift 2k; value d sc (q - 32), a scale per 16): each unit's pair sums weighted by its two
// scales (pmaddwd), then d dx, less 32 d Σ sc · (x sums of 16). The shifts are constants.
inline int8 simd_q6_unit(const simd_c32 low4, const simd_c32 qh, const int shift,
                         __global const char* x, const short scLo, const short scHi) {
    const simd_c32 q = low4 | ((simd_shr(qh, shift) & (simd_c32)3) << (simd_c32)4);
    short16 scv = (short16)scHi;
    scv.lo = (short8)scLo;
    return __builtin_ia32_pmaddwd256(simd_pairs(q, simd_load32(x)), scv);
}

SIMD_GEMV(q6_kw, {
    const int ns = cols / 256;
    float8 acc = 0.0f;
    float16 corr = 0.0f;  // Σ d sc · (x sums of 16), by position in the super-block
    for (int s = 0; s < ns; ++s) {
        __global const uchar* p = w + 212 * s;
        simd_ahead(p, 212);
        __global const char* sc = (__global const char*)(p + 192);
        __global const char* xs8 = xq + 256 * s;
        int8 isum = 0;
        for (int h = 0; h < 2; ++h) {
            const simd_c32 ql0 = simd_load32(p + 64 * h), ql1 = simd_load32(p + 64 * h + 32);
            const simd_c32 qh = simd_load32(p + 128 + 32 * h);
            __global const char* xh = xs8 + 128 * h;
            __global const char* sh = sc + 8 * h;
            isum += simd_q6_unit(ql0 & (simd_c32)15, qh, 0, xh, sh[0], sh[1]);
            isum += simd_q6_unit(ql1 & (simd_c32)15, qh, 2, xh + 32, sh[2], sh[3]);
            isum += simd_q6_unit(simd_shr(ql0, 4), qh, 4, xh + 64, sh[4], sh[5]);
            isum += simd_q6_unit(simd_shr(ql1, 4), qh, 6, xh + 96, sh[6], sh[7]);
        }
        const float d = *(__global const float*)(p + 208);
        acc = fma(convert_float8(isum), (float8)(d * xd[8 * s]), acc);
        corr = fma(convert_float16(vload16(0, sc)) * (float16)d, vload16(s, xs), corr);
    }
    const float16 c2 = corr;
    val = simd_hsum8(acc) - 32.0f * simd_hsum8(c2.lo + c2.hi);
})

// attention.cl's attend on x86 CPU devices: an item per (head, new token) and no barriers (a
// work group of 64 items with barriers, which PoCL runs as loops over the items between them,
// took 40-60 us per GPT-2 layer for a few hundred multiply-adds). The same arguments but the
// local memory; headDim a multiple of 8. Scores as float8 products summed once, the softmax in
// the row, then the weighted sums 32 dimensions at a time.
// Query head h of new token i (simd_attend's item; cpu_step.cl's decode layer calls it too).
inline void simd_attend_head(__global float* out, __global float* a, __global const float* qkv,
                             __global const float* K, __global const float* V, const int p0,
                             const int rowStride, const int rowLen, const int nHead,
                             const int groupSize, const int nCtx, const int headDim,
                             const float scale, const float softcap, const int window,
                             const int i0, const int h, const int i) {
    const AttendTask w = attend_task(h, i, i0, a, qkv, K, V, p0, rowStride, rowLen, nHead,
                                     groupSize, nCtx, headDim, window);
    const int t = w.t, j0 = w.j0;
    __global const float *q = w.q, *Kg = w.K, *Vg = w.V;
    __global float* row = w.row;
    for (int j = 0; j < j0; ++j) row[j] = 0.0f;
    // scores four positions at a time (four independent chains of fma, not one)
    float mx = -INFINITY;
    int j = j0;
    for (; j + 4 <= t; j += 4) {
        __global const float* k = Kg + (size_t)j * headDim;
        simd_ahead((__global const uchar*)k, 16 * headDim);
        float8 a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (int d = 0; d < headDim; d += 8) {
            const float8 qd = vload8(0, q + d);
            a0 = fma(vload8(0, k + d), qd, a0);
            a1 = fma(vload8(0, k + headDim + d), qd, a1);
            a2 = fma(vload8(0, k + 2 * headDim + d), qd, a2);
            a3 = fma(vload8(0, k + 3 * headDim + d), qd, a3);
        }
        float4 s4 = (float4)(simd_hsum8(a0), simd_hsum8(a1), simd_hsum8(a2), simd_hsum8(a3)) * scale;
        if (softcap > 0.0f) s4 = softcap * tanh(s4 / softcap);
        vstore4(s4, 0, row + j);
        mx = fmax(mx, fmax(fmax(s4.x, s4.y), fmax(s4.z, s4.w)));
    }
    for (; j < t; ++j) {
        __global const float* k = Kg + (size_t)j * headDim;
        float8 acc = 0.0f;
        for (int d = 0; d < headDim; d += 8) acc = fma(vload8(0, k + d), vload8(0, q + d), acc);
        float s = simd_hsum8(acc) * scale;
        if (softcap > 0.0f) s = softcap * tanh(s / softcap);
        row[j] = s;
        mx = fmax(mx, s);
    }
    // exp eight at a time (a scalar exp is a call on PoCL)
    float8 sum8 = 0.0f;
    for (j = j0; j + 8 <= t; j += 8) {
        const float8 e = exp(vload8(0, row + j) - mx);
        vstore8(e, 0, row + j);
        sum8 += e;
    }
    float sum = simd_hsum8(sum8);
    for (; j < t; ++j) {
        const float e = exp(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
    for (j = j0; j < t; ++j) row[j] *= inv;
    __global float* o = out + (size_t)i * nHead * headDim + h * headDim;
    int d = 0;
    for (; d + 32 <= headDim; d += 32) {
        float8 a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (int j = j0; j < t; ++j) {
            __global const float* v = Vg + (size_t)j * headDim + d;
            __builtin_prefetch((__global const uchar*)v + SIMD_AHEAD);
            const float8 w = (float8)(row[j]);
            a0 = fma(w, vload8(0, v), a0);
            a1 = fma(w, vload8(1, v), a1);
            a2 = fma(w, vload8(2, v), a2);
            a3 = fma(w, vload8(3, v), a3);
        }
        vstore8(a0, 0, o + d);
        vstore8(a1, 1, o + d);
        vstore8(a2, 2, o + d);
        vstore8(a3, 3, o + d);
    }
    for (; d < headDim; d += 8) {
        float8 a0 = 0.0f;
        for (int j = j0; j < t; ++j)
            a0 = fma((float8)(row[j]), vload8(0, Vg + (size_t)j * headDim + d), a0);
        vstore8(a0, 0, o + d);
    }
}

__kernel void simd_attend(__global float* out, __global float* a, __global const float* qkv,
                          __global const float* K, __global const float* V, const int p0,
                          const int rowStride, const int rowLen, const int nHead,
                          const int groupSize, const int nCtx, const int headDim,
                          const float scale, const float softcap, const int window,
                          const int i0) {
    const int h = get_global_id(0), i = i0 + get_global_id(1);
    if (h >= nHead) return;
    simd_attend_head(out, a, qkv, K, V, p0, rowStride, rowLen, nHead, groupSize, nCtx, headDim,
                     scale, softcap, window, i0, h, i);
}

// Σ (x - shift) over dim values, or Σ (x - shift)² when squares, eight at a time.
inline float simd_row_sum(__global const float* x, const int dim, const float shift,
                          const bool squares) {
    const int d8 = dim / 8 * 8;
    float8 s8 = 0.0f;
    float s = 0.0f;
    for (int j = 0; j < d8; j += 8) {
        const float8 d = vload8(0, x + j) - shift;
        s8 = squares ? fma(d, d, s8) : s8 + d;
    }
    for (int j = d8; j < dim; ++j) s += squares ? (x[j] - shift) * (x[j] - shift) : x[j] - shift;
    return simd_hsum8(s8) + s;
}

// The row norms of norm.cl, an item per row in float8 (norm.cl's work group of 64 items with
// barriers runs on PoCL as loops over the items between barriers: 5 µs for a 768-value row).
// rows: n; in place (out == x) as norm.cl's.
// One row's norms: o (dim) from xr (dim); o may be xr.
inline void simd_layer_norm_row(__global float* o, __global const float* xr,
                                __global const float* w, __global const float* b, const int dim,
                                const float eps) {
    const float mean = simd_row_sum(xr, dim, 0.0f, false) / (float)dim;
    const float inv = 1.0f / sqrt(simd_row_sum(xr, dim, mean, true) / (float)dim + eps);
    const int d8 = dim / 8 * 8;
    for (int j = 0; j < d8; j += 8)
        vstore8((vload8(0, xr + j) - mean) * inv * vload8(0, w + j) + vload8(0, b + j), 0, o + j);
    for (int j = d8; j < dim; ++j) o[j] = (xr[j] - mean) * inv * w[j] + b[j];
}

inline void simd_rms_norm_row(__global float* o, __global const float* xr,
                              __global const float* w, const int dim, const float eps) {
    const float inv = 1.0f / sqrt(simd_row_sum(xr, dim, 0.0f, true) / (float)dim + eps);
    const int d8 = dim / 8 * 8;
    for (int j = 0; j < d8; j += 8)
        vstore8(vload8(0, xr + j) * inv * vload8(0, w + j), 0, o + j);
    for (int j = d8; j < dim; ++j) o[j] = xr[j] * inv * w[j];
}

__kernel void simd_layer_norm(__global float* out, const int outOff, __global const float* x,
                              const int xOff, __global const float* w, __global const float* b,
                              const int dim, const float eps, const int rows) {
    const int row = get_global_id(0);
    if (row >= rows) return;
    simd_layer_norm_row(out + outOff + (size_t)row * dim, x + xOff + (size_t)row * dim, w, b, dim,
                        eps);
}

__kernel void simd_rms_norm(__global float* out, const int outOff, __global const float* x,
                            const int xOff, __global const float* w, const int dim,
                            const float eps, const int rows) {
    const int row = get_global_id(0);
    if (row >= rows) return;
    simd_rms_norm_row(out + outOff + (size_t)row * dim, x + xOff + (size_t)row * dim, w, dim,
                      eps);
}

#endif
