// The MLP's activations on eight values at a time, shared by elementwise.cl's kernels and
// cpu_step.cl's decode layer (vectors: CPU devices run an item at a time, and tanh or exp of
// eight at once).

// GELU, the tanh approximation GPT-2 uses.
inline float8 gelu8(const float8 v) {
    const float k = 0.7978845608f;  // sqrt(2 / pi)
    return 0.5f * v * (1.0f + tanh(k * (v + 0.044715f * v * v * v)));
}

inline float gelu1(const float v) {
    const float k = 0.7978845608f;
    return 0.5f * v * (1.0f + tanh(k * (v + 0.044715f * v * v * v)));
}

// SiLU (Llama's SwiGLU gate).
inline float8 silu8(const float8 g) {
    return g / (1.0f + exp(-g));
}

inline float silu1(const float g) {
    return g / (1.0f + exp(-g));
}
