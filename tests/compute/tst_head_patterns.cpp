// measureHeadPatterns on attention rows written by hand, every expected score worked out below.
#include <QTest>

#include "analysis/head_patterns.h"

using namespace kvscope;

namespace {

// Tokens [BOS, a, a, c, a, a, c]: a span of 3 and its copy from position 4 on. Head 0 puts all
// its weight on the previous token; head 1 on position 0 for rows 1-3, then on i - 2 (the token
// after the earlier copy: i - 3 + 1).
std::vector<StepTrace> handMadeTraces() {
    const std::vector<int32_t> tokens{9, 1, 1, 3, 1, 1, 3};
    std::vector<StepTrace> traces;
    for (int i = 0; i < static_cast<int>(tokens.size()); ++i) {
        StepTrace t = StepTrace::sized(tokens[size_t(i)], i, 1, 2, 1, 2);
        float* h0 = t.attn.data();
        float* h1 = t.attn.data() + (i + 1);
        h0[i > 0 ? i - 1 : 0] = 1;
        h1[i >= 4 ? i - 2 : 0] = 1;
        traces.push_back(std::move(t));
    }
    return traces;
}

}  // namespace

class TstHeadPatterns : public QObject {
    Q_OBJECT
  private slots:
    // Over rows 1..6: head 0's previous is 1, first 1/6 (row 1), self 0; head 1's previous 1/6
    // (row 1's previous is position 0), first 3/6 (rows 1-3).
    void previousFirstAndSelf() {
        const auto p = measureHeadPatterns(handMadeTraces());
        QCOMPARE(p.size(), size_t(2));
        QCOMPARE(p[0].previous, 1.0);
        QCOMPARE(p[0].first, 1.0 / 6);
        QCOMPARE(p[0].self, 0.0);
        QCOMPARE(p[1].previous, 1.0 / 6);
        QCOMPARE(p[1].first, 0.5);
    }

    // Without the test's span, each row looks for its token's latest copy j before i - 1 (the
    // token right before has i as its successor): row 2 (a) finds none; row 4 (a) finds j = 2,
    // target 3; row 5 (a) skips 4 and finds 2, target 3; row 6 (c) finds 3, target 4. Head 1
    // puts its weight on 2, 3, 4: (0 + 1 + 1) / 3; head 0 on 3, 4, 5: (1 + 0 + 0) / 3.
    void inductionByLatestCopy() {
        const auto p = measureHeadPatterns(handMadeTraces());
        QCOMPARE(p[1].inductionRows, 3);
        QCOMPARE(p[1].induction, 2.0 / 3);
        QCOMPARE(p[0].inductionRows, 3);
        QCOMPARE(p[0].induction, 1.0 / 3);
    }

    // With the span (second copy from 4, period 3): rows 4, 5, 6 against 2, 3, 4, where head 1
    // puts all its weight and head 0 none, whatever repeats inside the span.
    void inductionOnTheRepeatedSpan() {
        const auto p = measureHeadPatterns(handMadeTraces(), RepeatedSpan{4, 3});
        QCOMPARE(p[1].inductionRows, 3);
        QCOMPARE(p[1].induction, 1.0);
        QCOMPARE(p[0].inductionRows, 3);
        QCOMPARE(p[0].induction, 0.0);
        QCOMPARE(p[1].first, 0.5);  // the other scores do not change
    }
};

QTEST_GUILESS_MAIN(TstHeadPatterns)
#include "tst_head_patterns.moc"
