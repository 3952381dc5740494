// A whole decoder layer of a decode step (one new token) in one command, for PoCL's CPU device
// (OpenClBackend's fused layers; built where cpu_simd.cl's kernels are).
//
// Why: PoCL 3.1 puts some 4 us between two commands of an in-order queue, and its second
// worker thread joins a command some 18 us after the first, so a GPT-2 step of 160 small
// commands lost about 1 ms of its 4.5 to the runtime. Here a layer is one command of as many
// work groups as the device has compute units (PoCL's worker threads), a single item each.
// The groups run side by side and meet at barriers of their own between the layer's phases
// (norm and q, k, v; RoPE and the cache append; attention; output; norm, up and gate; the
// activation; down): a counter in global memory that each group increments and then waits on.
// Rows, heads and activation blocks are handed out from counters, rows in shares of those left
// (step_take), so a group that starts late takes fewer. The products, attention and norms are
// cpu_simd.cl's functions, so the numbers are those of the separate kernels. (The host pins
// PoCL's workers one to a core, ocl::prepareRuntimes: two on one core would spend the waits
// at the barriers in each other's time slices.)
//
// OpenCL does not promise that the work groups of one command run at the same time. PoCL's
// pthread device does run them so when there are no more groups than workers and nothing else
// on the device waits on them, and that is the only device the host enables this for; should a
// barrier still wait too long (maxSpins pause instructions: the host's 2^26 are seconds, far
// longer than any phase of a layer), its group sets the step's `failed` word and every group
// returns, and the host runs the step again with the separate kernels.
#ifdef KVSCOPE_SIMD_KERNELS

// weight types (OpenClBackend's StepPlan; the block types in their wide layouts)
#define STEP_F32 0
#define STEP_F16 1
#define STEP_Q8_0 2
#define STEP_Q4_0 3
#define STEP_Q4_K 4
#define STEP_Q6_K 5

// What a layer's command needs to know of its weights and shape (host: opencl_backend.cpp,
// the same fields in the same order, all int).
typedef struct {
    int qkvParts;  // 1 to 3 runs of rows of one type each (Q, K, V stacked)
    int qkvType[3], qkvRowBytes[3], qkvRow0[3], qkvRows[3];
    int oType, oRowBytes, upType, upRowBytes, gateType, gateRowBytes, downType, downRowBytes;
    int nEmbd, nHead, nHeadKv, headDim, nFf, rowLen;
    int ffn;        // 0: GELU(up); 1: SiLU(gate) · up; 2: GELU(gate) · up
    int layerNorm;  // 1: LayerNorm (weight and bias); 0: RMSNorm
    int hasBqkv, hasBo, hasBUp, hasBDown;
    int ropePairs, ropeNeox;  // no RoPE when ropePairs is 0
    int window;               // the layer's sliding window (0: none)
} StepPlan;

// x rounded to 8 bits in blocks of 32 or 256 (simd_round_block's q, d, s).
typedef struct {
    __global char* q;
    __global float* d;
    __global float* s;
} StepRounding;

inline int step_block(const int type) {
    return type == STEP_Q4_K || type == STEP_Q6_K ? 256 : type >= STEP_Q8_0 ? 32 : 0;
}

// Region k (a group's own, or the shared one after them) of the rounding scratch, for blocks of
// `block` values: each region holds `cols` values rounded per block size.
inline StepRounding step_region(__global char* rq, __global float* rd, __global float* rs,
                                const int cols, const int k, const int block) {
    const size_t at = 2 * (size_t)k + (block == 256 ? 1 : 0);
    StepRounding r = {rq + at * cols, rd + at * (cols / 32), rs + at * (cols / 16)};
    return r;
}

inline StepRounding step_at(const StepRounding r, const int first) {
    StepRounding o = {r.q + first, r.d + first / 32, r.s + first / 16};
    return o;
}

inline void step_round(__global const float* v, const int count, const int block,
                       const StepRounding r) {
    for (int b = 0; b + block <= count; b += block)
        simd_round_block(v + b, block, r.q + b, r.d + b / 32, r.s + b / 16);
}

// v rounded for each block size that the `types` (up to three) take.
inline void step_round_for(__global const float* v, const int count, const int t0, const int t1,
                           const int t2, const StepRounding r32, const StepRounding r256) {
    const int b0 = step_block(t0), b1 = step_block(t1), b2 = step_block(t2);
    if (b0 == 32 || b1 == 32 || b2 == 32) step_round(v, count, 32, r32);
    if (b0 == 256 || b1 == 256 || b2 == 256) step_round(v, count, 256, r256);
}

inline float step_dot(const int type, __global const uchar* w, const StepRounding r32,
                      const StepRounding r256, __global const float* xv, const int cols) {
    switch (type) {
        case STEP_F32:
            return simd_dot_f32(w, r32.q, r32.d, r32.s, xv, cols);
        case STEP_F16:
            return simd_dot_f16(w, r32.q, r32.d, r32.s, xv, cols);
        case STEP_Q8_0:
            return simd_dot_q8_0w(w, r32.q, r32.d, r32.s, xv, cols);
        case STEP_Q4_0:
            return simd_dot_q4_0w(w, r32.q, r32.d, r32.s, xv, cols);
        case STEP_Q4_K:
            return simd_dot_q4_kw(w, r256.q, r256.d, r256.s, xv, cols);
        default:
            return simd_dot_q6_kw(w, r256.q, r256.d, r256.s, xv, cols);
    }
}

// Rows first .. end-1 of `rows` taken from the counter `claim`: a share of those left (guided
// scheduling, as PoCL deals work groups out), so that each group streams long runs of rows
// (the prefetchers follow a run; runs of 16 rows turn about between the groups and measured
// slower) while a group that starts late still finds rows. False when none are left.
#define STEP_CHUNK 16

inline bool step_take(volatile __global int* claim, const int rows, const int groups,
                      int* first, int* end) {
    int at = *claim;
    for (;;) {
        if (at >= rows) return false;
        const int n = max(STEP_CHUNK, (rows - at) / (2 * groups));
        const int seen = atomic_cmpxchg(claim, at, at + n);
        if (seen == at) {
            *first = at;
            *end = min(at + n, rows);
            return true;
        }
        at = seen;
    }
}

// The sync words, each on a cache line of its own (a group waiting at the barrier reads its
// line while others take rows from the claims): STEP_LINE ints apart, STEP_SYNC_STRIDE a layer.
#define STEP_LINE 16
#define STEP_SYNC_STRIDE (10 * STEP_LINE)  // OpenClBackend's kStepSyncStride

// y[r] = row r of W · x (+ bias[r]) (+ y[r] when accumulate) for r < rows, the rows taken
// from the counter `claim` by whichever group comes (step_take).
inline void step_rows(__global float* y, const int accumulate, __global const uchar* W,
                      const int type, const int rowBytes, const int rows,
                      __global const float* bias, const int hasBias, const StepRounding r32,
                      const StepRounding r256, __global const float* xv, const int cols,
                      volatile __global int* claim, const int groups) {
    int first, end;
    while (step_take(claim, rows, groups, &first, &end)) {
        for (int r = first; r < end; ++r) {
            float v = step_dot(type, W + (size_t)r * rowBytes, r32, r256, xv, cols);
            if (hasBias) v += bias[r];
            if (accumulate) v += y[r];
            y[r] = v;
        }
    }
}

typedef struct {
    volatile __global int* count;   // arrivals at this command's barriers
    volatile __global int* failed;  // the step's: a group gave up waiting
    int target, groups;
    int spins;  // turns of the wait before it gives up
} StepGrid;

// Waits until every group has arrived here; false (the step failed) when one gave up. It
// waits on plain reads (a locked instruction per turn would take the counter's cache line from
// the groups still at work); the atomics after it and before are full barriers on x86, for
// the compiler and the processor alike.
inline bool step_sync(StepGrid* g) {
    g->target += g->groups;
    atomic_inc(g->count);
    for (int spins = 0; *g->count < g->target; ++spins) {
        if (spins == g->spins || ((spins & 1023) == 1023 && *g->failed)) {
            atomic_xchg(g->failed, 1);
            return false;
        }
        __builtin_ia32_pause();
    }
    atomic_or(g->count, 0);
    return true;
}

// One decoder layer for one new token at position p0 (cache row r0), as OpenClBackend's
// separate kernels compute it:
//   x (nEmbd): the residual stream, updated in place. qkv (rowLen), att (nHead · headDim),
//   up, gate (nFf): the layer's activations. a + aOff (nHead, T): the attention rows.
//   K, V (nHeadKv, cacheCap, headDim): this layer's cache; row r0 is written.
//   hs (groups, nEmbd), rq, rd, rs: scratch (the norms and roundings; step_region).
//   sync + syncBase: the step's `failed` word, then STEP_SYNC_STRIDE ints per layer, zero at
//   the start (this command's: the barrier's count, then nine claims, a cache line each).
//   plans[layer]: the layer's weights and shape. maxSpins: a barrier's wait before it gives
//   up. traceAt >= 0: the rows of q, k, v and of x after the layer copied to
//   traceQkv + traceAt · rowLen and traceResid + traceAt · nEmbd.
// Work groups of one item; as many groups as the device has compute units.
__kernel void simd_step_layer(
    __global float* x, __global float* qkv, __global float* att, __global float* a,
    const int aOff, __global float* up, __global float* gate, __global float* K,
    __global float* V, __global float* hs, __global char* rq, __global float* rd,
    __global float* rs, const int rCols, __global int* sync, const int syncBase,
    __global const StepPlan* plans, const int layer, __global const float* normW,
    __global const float* normB,
    __global const float* ffnNormW, __global const float* ffnNormB, __global const uchar* wq,
    __global const uchar* wk, __global const uchar* wv, __global const float* bqkv,
    __global const uchar* wo, __global const float* bo, __global const uchar* wUp,
    __global const float* bUp, __global const uchar* wGate, __global const uchar* wDown,
    __global const float* bDown, __global const float* ropeTable, __global float* traceQkv,
    __global float* traceResid, const int p0, const int r0, const int T, const int cacheCap,
    const int traceAt, const float eps, const float scale, const float softcap,
    const int maxSpins) {
    const int g = get_group_id(0), groups = get_num_groups(0);
    volatile __global int* failed = (volatile __global int*)sync + syncBase;
    if (atomic_or(failed, 0)) return;  // an earlier layer gave up: the host runs the step again
    volatile __global int* count = failed + STEP_LINE + STEP_SYNC_STRIDE * layer;
    StepGrid grid = {count, failed, 0, groups, maxSpins};
    // the claims: q, k, v parts (0-2), heads (3), output (4), up (5), gate (6), activation
    // (7), down (8)
    volatile __global int* claim[9];
    for (int k = 0; k < 9; ++k) claim[k] = count + (k + 1) * STEP_LINE;
    const StepPlan p = plans[layer];
    const int E = p.nEmbd, H = p.nHead, Hkv = p.nHeadKv, hd = p.headDim, F = p.nFf;
    const int R = p.rowLen, Q = H * hd, KV = Hkv * hd;
    __global float* h = hs + (size_t)g * E;
    const StepRounding m32 = step_region(rq, rd, rs, rCols, g, 32);
    const StepRounding m256 = step_region(rq, rd, rs, rCols, g, 256);
    const StepRounding s32 = step_region(rq, rd, rs, rCols, groups, 32);
    const StepRounding s256 = step_region(rq, rd, rs, rCols, groups, 256);

    // 1. the attention norm and its rounding, each group its own; then q, k, v
    if (p.layerNorm)
        simd_layer_norm_row(h, x, normW, normB, E, eps);
    else
        simd_rms_norm_row(h, x, normW, E, eps);
    step_round_for(h, E, p.qkvType[0], p.qkvParts > 1 ? p.qkvType[1] : STEP_F32,
                   p.qkvParts > 2 ? p.qkvType[2] : STEP_F32, m32, m256);
    for (int k = 0; k < p.qkvParts; ++k) {
        __global const uchar* w = k == 0 ? wq : k == 1 ? wk : wv;
        step_rows(qkv + p.qkvRow0[k], 0, w, p.qkvType[k], p.qkvRowBytes[k], p.qkvRows[k],
                  bqkv + p.qkvRow0[k], p.hasBqkv, m32, m256, h, E, claim[k], groups);
    }
    if (!step_sync(&grid)) return;

    // 2. RoPE on the queries and keys, the new key and value into the cache (one group)
    if (g == 0) {
        for (int head = 0; head < H + Hkv && p.ropePairs > 0; ++head) {
            __global float* xh = qkv + head * hd;
            for (int pair = 0; pair < p.ropePairs; ++pair) {
                const size_t angle = ((size_t)p0 * p.ropePairs + pair) * 2;
                const float c = ropeTable[angle], sn = ropeTable[angle + 1];
                const int i0 = p.ropeNeox ? pair : 2 * pair;
                const int i1 = p.ropeNeox ? pair + p.ropePairs : 2 * pair + 1;
                const float v0 = xh[i0], v1 = xh[i1];
                xh[i0] = v0 * c - v1 * sn;
                xh[i1] = v0 * sn + v1 * c;
            }
        }
        for (int kvh = 0; kvh < Hkv; ++kvh) {
            const size_t dst = ((size_t)kvh * cacheCap + r0) * hd;
            for (int d = 0; d < hd; ++d) {
                K[dst + d] = qkv[Q + kvh * hd + d];
                V[dst + d] = qkv[Q + KV + kvh * hd + d];
            }
        }
        if (traceAt >= 0)
            for (int c = 0; c < R; ++c) traceQkv[(size_t)traceAt * R + c] = qkv[c];
    }
    if (!step_sync(&grid)) return;

    // 3. attention, a head at a time
    for (int head = atomic_inc(claim[3]); head < H; head = atomic_inc(claim[3]))
        simd_attend_head(att, a + aOff, qkv, K, V, p0, T, R, H, H / Hkv, cacheCap, hd, scale,
                         softcap, p.window, 0, head, 0);
    if (!step_sync(&grid)) return;

    // 4. the output projection, added to x
    step_round_for(att, Q, p.oType, STEP_F32, STEP_F32, m32, m256);
    step_rows(x, 1, wo, p.oType, p.oRowBytes, E, bo, p.hasBo, m32, m256, att, Q, claim[4],
              groups);
    if (!step_sync(&grid)) return;

    // 5. the MLP's norm and its rounding (each group its own), up and gate
    if (p.layerNorm)
        simd_layer_norm_row(h, x, ffnNormW, ffnNormB, E, eps);
    else
        simd_rms_norm_row(h, x, ffnNormW, E, eps);
    step_round_for(h, E, p.upType, p.ffn != 0 ? p.gateType : STEP_F32, STEP_F32, m32, m256);
    step_rows(up, 0, wUp, p.upType, p.upRowBytes, F, bUp, p.hasBUp, m32, m256, h, E, claim[5],
              groups);
    if (p.ffn != 0)
        step_rows(gate, 0, wGate, p.gateType, p.gateRowBytes, F, bUp, 0, m32, m256, h, E,
                  claim[6], groups);
    if (!step_sync(&grid)) return;

    // 6. the activation, 256 values at a time, and their rounding for down (shared)
    __global float* hidden = p.ffn == 0 ? up : gate;
    const int db = step_block(p.downType);
    for (int first = atomic_add(claim[7], 256); first < F; first = atomic_add(claim[7], 256)) {
        const int end = min(first + 256, F);
        int j = first;
        for (; j + 8 <= end; j += 8) {
            const float8 v = vload8(0, hidden + j);
            const float8 o = p.ffn == 0   ? gelu8(v)
                             : p.ffn == 1 ? silu8(v) * vload8(0, up + j)
                                          : gelu8(v) * vload8(0, up + j);
            vstore8(o, 0, hidden + j);
        }
        for (; j < end; ++j) {
            const float v = hidden[j];
            hidden[j] = p.ffn == 0 ? gelu1(v) : p.ffn == 1 ? silu1(v) * up[j] : gelu1(v) * up[j];
        }
        if (db > 0)
            step_round(hidden + first, end - first, db, step_at(db == 32 ? s32 : s256, first));
    }
    if (!step_sync(&grid)) return;

    // 7. down, added to x; the residual stream's row for the traces
    step_rows(x, 1, wDown, p.downType, p.downRowBytes, E, bDown, p.hasBDown, s32, s256, hidden,
              F, claim[8], groups);
    if (traceAt >= 0) {
        if (!step_sync(&grid)) return;
        if (g == 0)
            for (int c = 0; c < E; ++c) traceResid[(size_t)traceAt * E + c] = x[c];
    }
}

#endif
