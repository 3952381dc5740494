// RoPE angles and rotation (see rope.h). Angles are computed in double; llama.cpp builds them
// by repeated float multiplication, which differs by about 1e-7 relative per pair.
#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/numeric.h"

namespace kvscope {
namespace {

// The pair index below which YaRN keeps the original (extrapolated) angle and above which it
// interpolates: where a pair turns `turns` times over nCtxOrig positions (the YaRN paper's
// correction dimension).
double yarnCorrDim(int nRot, int nCtxOrig, double turns, double base) {
    return nRot * std::log(nCtxOrig / (turns * 2 * kPi)) / (2 * std::log(base));
}

}  // namespace

std::string RopeConfig::describe() const {
    if (type == RopeType::None) return "none";
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s, %d dims, base %g",
                  type == RopeType::Neox ? "NEOX halves" : "adjacent pairs", nRot,
                  static_cast<double>(freqBase));
    std::string s = buf;
    if (yarn) {
        std::snprintf(buf, sizeof buf, ", YaRN ×%g from %d", 1.0 / freqScale, nCtxOrig);
        s += buf;
    } else if (freqScale != 1.0f) {
        std::snprintf(buf, sizeof buf, ", linear ×%g", 1.0 / freqScale);
        s += buf;
    }
    if (!freqFactors.empty()) s += ", frequency factors";
    return s;
}

void ropeCosSin(const RopeConfig& r, int pos, float* cosOut, float* sinOut) {
    const int pairs = r.nRot / 2;
    double lo = 0, hi = 0;
    double mscale = r.attnFactor;
    if (r.yarn) {
        lo = std::max(0.0, std::floor(yarnCorrDim(r.nRot, r.nCtxOrig, r.yarnBetaFast, r.freqBase)));
        hi = std::min(double(r.nRot - 1),
                      std::ceil(yarnCorrDim(r.nRot, r.nCtxOrig, r.yarnBetaSlow, r.freqBase)));
        mscale *= 1.0 + 0.1 * std::log(1.0 / r.freqScale);
    }
    for (int i = 0; i < pairs; ++i) {
        double extrap = pos * std::pow(static_cast<double>(r.freqBase), -2.0 * i / r.nRot);
        if (!r.freqFactors.empty()) extrap /= r.freqFactors[static_cast<size_t>(i)];
        const double interp = r.freqScale * extrap;
        double theta = interp;
        if (r.yarn) {
            // 1 below lo (keep the original angle), 0 above hi (interpolate), linear between
            const double y = (i - lo) / std::max(0.001, hi - lo);
            const double mix = 1.0 - std::clamp(y, 0.0, 1.0);
            theta = interp * (1 - mix) + extrap * mix;
        }
        cosOut[i] = static_cast<float>(std::cos(theta) * mscale);
        sinOut[i] = static_cast<float>(std::sin(theta) * mscale);
    }
}

void ropeApply(const RopeConfig& r, float* x, const float* cosv, const float* sinv) {
    const int pairs = r.nRot / 2;
    // adjacent: (x[2i], x[2i+1]); NEOX: (x[i], x[i + nRot/2])
    const int stride = r.type == RopeType::Neox ? 1 : 2;
    const int offset = r.type == RopeType::Neox ? pairs : 1;
    for (int i = 0; i < pairs; ++i) {
        float& a = x[i * stride];
        float& b = x[i * stride + offset];
        const float x0 = a, x1 = b;
        a = x0 * cosv[i] - x1 * sinv[i];
        b = x0 * sinv[i] + x1 * cosv[i];
    }
}

}  // namespace kvscope
