// measureHeadPatterns: averages over the rows of every head.
#include "analysis/head_patterns.h"

#include <cassert>

namespace kvscope {

std::vector<HeadPattern> measureHeadPatterns(const std::vector<StepTrace>& traces,
                                             std::optional<RepeatedSpan> repeat) {
    std::vector<HeadPattern> out;
    if (traces.empty() || !traces.front().hasTensors()) return out;
    const int L = traces.front().nLayer, H = traces.front().nHead;
    for (int l = 0; l < L; ++l)
        for (int h = 0; h < H; ++h) {
            HeadPattern p;
            p.layer = l;
            p.head = h;
            int rows = 0;
            for (size_t i = 1; i < traces.size(); ++i) {
                const StepTrace& t = traces[i];
                assert(t.position == static_cast<int>(i));
                const float* a = t.attention(l, h);
                p.previous += a[i - 1];
                p.first += a[0];
                p.self += a[i];
                ++rows;
                if (repeat) {  // the test's rows: the second copy's, against its span
                    if (static_cast<int>(i) >= repeat->secondCopy && repeat->period >= 2 &&
                        static_cast<int>(i) - repeat->period + 1 >= 0) {
                        p.induction += a[i - static_cast<size_t>(repeat->period) + 1];
                        ++p.inductionRows;
                    }
                    continue;
                }
                // the latest earlier copy of this token, if its successor is before i
                for (size_t j = i - 1; j-- > 0;) {
                    if (traces[j].token == t.token) {
                        if (j + 1 < i) {
                            p.induction += a[j + 1];
                            ++p.inductionRows;
                        }
                        break;
                    }
                }
            }
            if (rows) {
                p.previous /= rows;
                p.first /= rows;
                p.self /= rows;
            }
            if (p.inductionRows) p.induction /= p.inductionRows;
            out.push_back(p);
        }
    return out;
}

}  // namespace kvscope
