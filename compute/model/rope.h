// Rotary position embeddings as llama.cpp applies them (ggml_rope_ext): the angle of pair i at
// position p is p · base^(-2i/nRot) / factor_i, scaled by freqScale (linear and YaRN context
// extension, with YaRN's ramp between the two), and cos/sin are multiplied by attnFactor.
// Pairs are adjacent (x[2i], x[2i+1]) for llama, or halves (x[i], x[i + nRot/2]) for the NEOX
// families (qwen2, phi3, gemma); dimensions past nRot are left as they are.
#pragma once

#include <string>
#include <vector>

namespace kvscope {

enum class RopeType { None, Adjacent, Neox };

struct RopeConfig {
    RopeType type = RopeType::None;
    int nRot = 0;                    // rotated dimensions of a head: even, at most headDim
    float freqBase = 10000.0f;       // rope.freq_base
    float freqScale = 1.0f;          // 1 / rope.scaling.factor (linear and YaRN), else 1
    bool yarn = false;               // rope.scaling.type = yarn
    float yarnBetaFast = 32.0f;      // rope.scaling.yarn_beta_fast
    float yarnBetaSlow = 1.0f;       // rope.scaling.yarn_beta_slow
    int nCtxOrig = 0;                // rope.scaling.original_context_length (YaRN, long/short)
    float attnFactor = 1.0f;         // multiplies cos and sin (YaRN's and LongRoPE's mscale)
    std::vector<float> freqFactors;  // nRot/2 divisors of the angles (rope_freqs), or empty

    // "NEOX, 64 of 64 dims, base 1e+06, YaRN ×4": one line for the window and `kvscope info`.
    std::string describe() const;
};

// cos and sin of the nRot/2 angles at position pos (cosOut, sinOut: nRot/2 floats each).
void ropeCosSin(const RopeConfig& rope, int pos, float* cosOut, float* sinOut);

// Rotates one head vector x in place by the angles ropeCosSin gave for its position.
void ropeApply(const RopeConfig& rope, float* x, const float* cosv, const float* sinv);

}  // namespace kvscope
