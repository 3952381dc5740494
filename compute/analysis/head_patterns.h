// HeadPatterns: what each attention head of a decoded sequence looks at, on average, measured
// from the attention rows of its StepTraces: the previous token, the first token, itself, and the
// token after an earlier copy of the current token (an induction head's target).
#pragma once

#include <vector>

#include "core/step_trace.h"

namespace kvscope {

struct HeadPattern {
    int layer = 0, head = 0;
    double previous = 0;    // mean weight on position i − 1 (over i >= 1)
    double first = 0;       // mean weight on position 0 (over i >= 1)
    double self = 0;        // mean weight on position i
    double induction = 0;   // mean weight on j + 1 where token j == token i, j + 1 < i (0 if never)
    int inductionRows = 0;  // rows that had such an earlier copy
};

// One entry per (layer, head), layer-major. Traces must carry tensors and be the whole sequence
// from position 0 in order.
std::vector<HeadPattern> measureHeadPatterns(const std::vector<StepTrace>& traces);

}  // namespace kvscope
