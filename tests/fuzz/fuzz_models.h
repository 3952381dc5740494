// The tiny model the fuzz targets and their seeds share: gpt2, 1 layer, 2 heads, width 8,
// context 16, the 256 byte symbols plus merges (model/random_model.h).
#pragma once

#include "model/model.h"
#include "model/random_model.h"

namespace kvscope::fuzz {

inline RandomModelSpec tinySpec() {
    RandomModelSpec s;
    s.nLayer = 1;
    s.nHead = 2;
    s.nHeadKv = 2;
    s.nEmbd = 8;
    s.nFf = 16;
    s.nCtx = 16;
    s.nVocab = 270;
    s.seed = 5;
    return s;
}

inline const Model& tinyModel() {
    static const Model m =
        Model::fromGguf(GgufFile::fromBytes(randomModel(tinySpec()).toBytes(), "tiny"));
    return m;
}

}  // namespace kvscope::fuzz
