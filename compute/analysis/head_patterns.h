// HeadPatterns: what each attention head of a decoded sequence looks at, on average, measured
// from the attention rows of its StepTraces: the previous token, the first token, itself, and the
// token after an earlier copy of the current token (an induction head's target).
#pragma once

#include <optional>
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

// The standard induction test's sequence: a span of `period` tokens and then the same span again
// from position `secondCopy` on (token i == token i - period for every i >= secondCopy).
struct RepeatedSpan {
    int secondCopy = 0;
    int period = 0;
};

// One entry per (layer, head), layer-major. Traces must carry tensors and be the whole sequence
// from position 0 in order. With `repeat`, induction is measured as the test defines it: over
// the second copy's rows only, the weight on i - period + 1 (the token after this one's earlier
// copy), whatever else repeats; inductionRows is then the second copy's length.
std::vector<HeadPattern> measureHeadPatterns(const std::vector<StepTrace>& traces,
                                             std::optional<RepeatedSpan> repeat = std::nullopt);

}  // namespace kvscope
