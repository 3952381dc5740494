// LogitLens: what the model would predict if it stopped after each layer. The model's head (the
// final norm, the output matrix and any final soft-cap) is applied to the residual stream after
// layer 0, 1, ..., n_layer - 1 of one token; after the last layer that is the model's real
// prediction. ("Logit lens", nostalgebraist 2020: a way to look inside, not what the layers were
// trained to output, so early layers' guesses are rough.)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kvscope {

struct LogitLensLayer {
    std::vector<std::pair<int32_t, float>> top;  // the top (id, logit) after this layer, best first
    std::vector<std::string> topText;            // the bytes of each top id
    std::vector<float> topProb;                  // softmax over the whole vocabulary (T = 1)
    float targetProb = 0;                        // the probability of `target` after this layer
    int targetRank = -1;                         // 0: target had the largest logit
};

struct LogitLens {
    int position = -1;                   // the token whose residual stream is read
    int32_t target = -1;                 // the token that followed it (-1: none yet)
    std::vector<LogitLensLayer> layers;  // one per layer, in order; the last is the real output
    bool empty() const { return layers.empty(); }
};

}  // namespace kvscope
