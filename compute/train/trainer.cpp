// Trainer: parameter layout, clipping and AdamW, shared by the GPT-2 and Llama trainers.
#include "train/trainer.h"

#include <cmath>

namespace kvscope {

void Trainer::layOut(const std::vector<Tensor>& table, int nLayer) {
    nLayer_ = nLayer;
    tensors_.clear();
    size_t offset = 0;
    for (Tensor t : table) {
        t.offset = offset;
        tensors_.push_back(t);
        offset += t.size * (t.perLayer ? static_cast<size_t>(nLayer) : 1);
    }
    params_.assign(offset, 0.0f);
    grads_.assign(offset, 0.0f);
    m_.assign(offset, 0.0f);
    v_.assign(offset, 0.0f);
}

size_t Trainer::count(int t) const {
    const Tensor& x = tensors_[static_cast<size_t>(t)];
    return x.size * (x.perLayer ? static_cast<size_t>(nLayer_) : 1);
}

size_t Trainer::at(int t, int layer) const {
    const Tensor& x = tensors_[static_cast<size_t>(t)];
    return x.offset + (x.perLayer ? static_cast<size_t>(layer) * x.size : 0);
}

std::string Trainer::layerName(std::string name, int layer) {
    if (const size_t at = name.find("{l}"); at != std::string::npos)
        name.replace(at, 3, std::to_string(layer));
    return name;
}

void Trainer::addSlice(GgufWriter& w, const std::string& name, int t, int layer, size_t begin,
                       size_t n, std::vector<uint64_t> ne) const {
    const float* base = p(t, layer) + begin;
    w.addTensorF32(layerName(name, layer), std::move(ne), std::vector<float>(base, base + n));
}

void Trainer::zeroGrad() {
    std::fill(grads_.begin(), grads_.end(), 0.0f);
}

float Trainer::clipGradients(float maxNorm) {
    double ss = 0;
    for (float x : grads_) ss += static_cast<double>(x) * x;
    const auto norm = static_cast<float>(std::sqrt(ss));
    if (norm > maxNorm) {
        const float s = maxNorm / norm;
        for (float& x : grads_) x *= s;
    }
    return norm;
}

void Trainer::update(const AdamW& o, int step) {
    const float c1 = 1.0f - std::pow(o.beta1, static_cast<float>(step));
    const float c2 = 1.0f - std::pow(o.beta2, static_cast<float>(step));
    for (int t = 0; t < static_cast<int>(tensors_.size()); ++t) {
        const Tensor& x = tensors_[static_cast<size_t>(t)];
        const float wd = x.decay ? o.weightDecay : 0.0f;
        for (size_t i = x.offset; i < x.offset + count(t); ++i) {
            const float gr = grads_[i];
            m_[i] = o.beta1 * m_[i] + (1 - o.beta1) * gr;
            v_[i] = o.beta2 * v_[i] + (1 - o.beta2) * gr * gr;
            const float mh = m_[i] / c1, vh = v_[i] / c2;
            params_[i] -= o.lr * (mh / (std::sqrt(vh) + o.eps) + wd * params_[i]);
        }
    }
}

}  // namespace kvscope
