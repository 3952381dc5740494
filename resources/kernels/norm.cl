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

// out = (x - mean) / sqrt(var + eps) · w + b, per row (GPT-2's LayerNorm).
__kernel void layer_norm(__global float* out, const int outOff, __global const float* x,
                         const int xOff, __global const float* w, __global const float* b,
                         const int dim, const float eps, __local float* red) {
    const int row = get_group_id(0), lid = get_local_id(0), ls = get_local_size(0);
    __global const float* xr = x + xOff + (size_t)row * dim;
    __global float* o = out + outOff + (size_t)row * dim;
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

// out = x / sqrt(mean(x²) + eps) · w, per row (Llama's RMSNorm).
__kernel void rms_norm(__global float* out, const int outOff, __global const float* x,
                       const int xOff, __global const float* w, const int dim, const float eps,
                       __local float* red) {
    const int row = get_group_id(0), lid = get_local_id(0), ls = get_local_size(0);
    __global const float* xr = x + xOff + (size_t)row * dim;
    __global float* o = out + outOff + (size_t)row * dim;
    float s = 0.0f;
    for (int j = lid; j < dim; j += ls) s += xr[j] * xr[j];
    const float inv = 1.0f / sqrt(group_sum(red, s) / (float)dim + eps);
    for (int j = lid; j < dim; j += ls) o[j] = xr[j] * inv * w[j];
}
