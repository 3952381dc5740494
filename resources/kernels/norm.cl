// Row norms of the OpenCL backend: one work group per row, partial sums added in local memory.
// x, out: (n, dim) from float offsets xOff and outOff; red: local size floats (a power of two).

// The sum of v over the work group; every item gets it. Call from all items of the group.
float group_sum(__local float* red, float v) {
    const int lid = get_local_id(0), ls = get_local_size(0);
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = ls / 2; stride > 0; stride /= 2) {
        if (lid < stride) red[lid] += red[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);  // red is reused by the next call
    return total;
}

// One row of LayerNorm by the work group: o = (xr - mean) / sqrt(var + eps) · w + b.
inline void layer_norm_row(__global float* o, __global const float* xr, __global const float* w,
                           __global const float* b, const int dim, const float eps,
                           __local float* red) {
    const int lid = get_local_id(0), ls = get_local_size(0);
    // 1. mean, 2. variance, 3. normalise, scale and shift
    float s = 0.0f;
    for (int j = lid; j < dim; j += ls) s += xr[j];
    const float mean = group_sum(red, s) / (float)dim;
    float v = 0.0f;
    for (int j = lid; j < dim; j += ls) {
        const float d = xr[j] - mean;
        v += d * d;
    }
    const float var = group_sum(red, v) / (float)dim;
    const float inv = 1.0f / sqrt(var + eps);
    for (int j = lid; j < dim; j += ls) o[j] = (xr[j] - mean) * inv * w[j] + b[j];
}

// One row of RMSNorm by the work group: o = xr / sqrt(mean(xr²) + eps) · w.
inline void rms_norm_row(__global float* o, __global const float* xr, __global const float* w,
                         const int dim, const float eps, __local float* red) {
    const int lid = get_local_id(0), ls = get_local_size(0);
    float s = 0.0f;
    for (int j = lid; j < dim; j += ls) s += xr[j] * xr[j];
    const float inv = 1.0f / sqrt(group_sum(red, s) / (float)dim + eps);
    for (int j = lid; j < dim; j += ls) o[j] = xr[j] * inv * w[j];
}

// out = (x - mean) / sqrt(var + eps) · w + b, per row (GPT-2's LayerNorm).
__kernel void layer_norm(__global float* out, const int outOff, __global const float* x,
                         const int xOff, __global const float* w, __global const float* b,
                         const int dim, const float eps, __local float* red) {
    const size_t row = get_group_id(0);
    layer_norm_row(out + outOff + row * dim, x + xOff + row * dim, w, b, dim, eps, red);
}

// out = x / sqrt(mean(x²) + eps) · w, per row (Llama's RMSNorm).
__kernel void rms_norm(__global float* out, const int outOff, __global const float* x,
                       const int xOff, __global const float* w, const int dim, const float eps,
                       __local float* red) {
    const size_t row = get_group_id(0);
    rms_norm_row(out + outOff + row * dim, x + xOff + row * dim, w, dim, eps, red);
}

#ifdef KVSCOPE_SIMD_ROUNDING
// The norms above (out from offset 0), each row then rounded to 8 bits in blocks of `block`
// values for cpu_simd.cl's products (xq, xd, xs as simd_quantize_x writes them).
__kernel void layer_norm_round(__global float* out, __global const float* x, const int xOff,
                               __global const float* w, __global const float* b, const int dim,
                               const float eps, __local float* red, const int block,
                               __global char* xq, __global float* xd, __global float* xs) {
    const int row = get_group_id(0);
    layer_norm_row(out + (size_t)row * dim, x + xOff + (size_t)row * dim, w, b, dim, eps, red);
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int k = get_local_id(0); k < dim / block; k += get_local_size(0))
        simd_round_at(out, dim, block, row, k, xq, xd, xs);
}

__kernel void rms_norm_round(__global float* out, __global const float* x, const int xOff,
                             __global const float* w, const int dim, const float eps,
                             __local float* red, const int block, __global char* xq,
                             __global float* xd, __global float* xs) {
    const int row = get_group_id(0);
    rms_norm_row(out + (size_t)row * dim, x + xOff + (size_t)row * dim, w, dim, eps, red);
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int k = get_local_id(0); k < dim / block; k += get_local_size(0))
        simd_round_at(out, dim, block, row, k, xq, xd, xs);
}
#endif
