// StepView on a real decode of the fixtures: a step appends one Kᵀ column and one V row and a
// step back removes them; every number drawn equals the trace's (keys, values, query, weights)
// or follows from it (softmax of the scores = the weights, output = Σ a v); layer and head
// switches change what is drawn; grouped-query heads are named; long contexts keep the last
// tokens; the transition runs only when animations are on.
#include <QScrollBar>
#include <QSignalSpy>
#include <QTest>
#include <cmath>

#include "common/colormap.h"
#include "common/labels.h"
#include "common/theme.h"
#include "decoded_store.h"
#include "model_fixtures.h"
#include "view_checks.h"
#include "views/step_view.h"

using namespace kvscope;
using namespace kvscope::viz;
using testing::DecodedStore;

namespace {

constexpr double kSoftmaxTol = 1e-5;

bool equal(std::span<const float> a, const float* b, size_t n) {
    if (a.size() != n) return false;
    for (size_t k = 0; k < n; ++k)
        if (a[k] != b[k]) return false;
    return true;
}

std::vector<double> softmax(std::span<const float> x) {
    double m = -1e300, sum = 0;
    for (float v : x) m = std::max(m, static_cast<double>(v));
    std::vector<double> out;
    for (float v : x) out.push_back(std::exp(v - m));
    for (double v : out) sum += v;
    for (double& v : out) v /= sum;
    return out;
}

const char* kPrompt = "the cat sat on the mat";

// A gpt2 fixture with room for long contexts (the fixture's own context is 64 tokens).
RandomModelSpec longSpec() {
    RandomModelSpec s = fixtures::gpt2Spec();
    s.nCtx = 1024;
    return s;
}

// The window the view reports is the same in Kᵀ and V, inside 0..i, and what is drawn there is
// the trace's: the colour of each Kᵀ cell (position j, dim r) is the key of token j at dim r, and
// of each V cell the value of token j, on the view's diverging scales (recomputed here from the
// trace: ±max|q, k| and ±max|v|; the output Σ a v is a convex mix and never exceeds max|v|).
void checkWindowDrawsTheTrace(StepView& view, const TraceStore& store) {
    const QImage img = view.grab().toImage().convertToFormat(QImage::Format_RGB32);
    const auto [first, last] = view.keyWindow();
    QCOMPARE(view.valueWindow(), view.keyWindow());
    const int i = view.queryToken();
    QVERIFY2(first >= 0 && first <= last && last <= i,
             qPrintable(QString("window %1–%2, query %3").arg(first).arg(last).arg(i)));
    const int n = last - first + 1;
    const QRect k = view.blockRect(StepView::Block::Keys);
    const QRect v = view.blockRect(StepView::Block::Values);
    QCOMPARE(k.width() % n, 0);   // n columns of one width
    QCOMPARE(v.height() % n, 0);  // n rows of one height
    const int ct = k.width() / n, rv = v.height() / n, d = view.headDim();
    const int cd = k.height() / d;
    QCOMPARE(v.width(), d * cd);
    QVERIFY(k.right() < view.width() && v.right() < view.width());
    const int layer = view.layer(), kv = view.kvHead();
    float qkLimit = 0, vLimit = 0;
    const float* q = store.trace(i).query(layer, view.head());
    for (int r = 0; r < d; ++r) qkLimit = std::max(qkLimit, std::abs(q[r]));
    for (int j = 0; j <= i; ++j)
        for (int r = 0; r < d; ++r) {
            qkLimit = std::max(qkLimit, std::abs(store.trace(j).key(layer, kv)[r]));
            vLimit = std::max(vLimit, std::abs(store.trace(j).value(layer, kv)[r]));
        }
    const ColorScale qk = ColorScale::symmetric(qkLimit), vs = ColorScale::symmetric(vLimit);
    for (int j = first; j <= last; ++j) {
        if (j == i) continue;  // outlined: its edge covers thin cells
        for (int r : {0, d / 2, d - 1}) {
            const QPoint pk(k.left() + (j - first) * ct + ct / 2, k.top() + r * cd + cd / 2);
            QVERIFY2(img.pixel(pk) == qk.rgb(store.trace(j).key(layer, kv)[r]),
                     qPrintable(QString("Kᵀ cell of position %1, dim %2").arg(j).arg(r)));
            const QPoint pv(v.left() + r * cd + cd / 2, v.top() + (j - first) * rv + rv / 2);
            QVERIFY2(img.pixel(pv) == vs.rgb(store.trace(j).value(layer, kv)[r]),
                     qPrintable(QString("V cell of position %1, dim %2").arg(j).arg(r)));
        }
    }
    QVERIFY2(view.windowText().contains(
                 QString("positions %1–%2 of %3").arg(first).arg(last).arg(i + 1)),
             qPrintable(view.windowText()));
}

}  // namespace

class TstStepView : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase() { ThemeSettings::instance().setAnimationMs(0); }

    void models_data() { fixtures::addModelRows(); }

    void emptyStateBeforePrefill() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        StepView view(&d.store);
        view.resize(view.sizeHint());
        QVERIFY(!view.hasStep());
        QCOMPARE(view.keyColumns(), 0);
        QCOMPARE(view.queryToken(), -1);
        QVERIFY(view.displayedWeights().empty());
        QVERIFY(testing::pixelVariance(testing::render(view, "step-empty")) > 1);
        QVERIFY(view.minimumSizeHint().width() <= view.sizeHint().width());
        QVERIFY(view.minimumSizeHint().height() <= view.sizeHint().height());
    }

    void numbersEqualTheTrace_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("layer");
        QTest::addColumn<int>("head");
        QTest::newRow("gpt2 L0 H0") << "gpt2" << 0 << 0;
        QTest::newRow("gpt2 L1 H3") << "gpt2" << 1 << 3;
        QTest::newRow("llama_gqa L0 H1") << "llama_gqa" << 0 << 1;
        QTest::newRow("llama_gqa L1 H2") << "llama_gqa" << 1 << 2;
    }
    void numbersEqualTheTrace() {
        QFETCH(QString, model);
        QFETCH(int, layer);
        QFETCH(int, head);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        StepView view(&d.store);
        view.resize(1280, 720);
        d.prefill(kPrompt);
        d.steps(3);
        d.store.setLayerHead(layer, head);

        const int i = d.store.count() - 1;
        const StepTrace& ti = d.store.trace(i);
        const int kv = d.store.config().kvHeadOf(head);
        const auto hd = static_cast<size_t>(ti.headDim);
        QVERIFY(view.hasStep());
        QCOMPARE(view.queryToken(), i);
        QCOMPARE(view.layer(), layer);
        QCOMPARE(view.head(), head);
        QCOMPARE(view.kvHead(), kv);
        QCOMPARE(view.keyColumns(), i + 1);
        QCOMPARE(view.valueRows(), i + 1);
        QVERIFY(equal(view.displayedQuery(), ti.query(layer, head), hd));
        for (int j = 0; j <= i; ++j) {
            QVERIFY2(equal(view.keyColumn(j), d.store.trace(j).key(layer, kv), hd),
                     qPrintable(QString("K column %1").arg(j)));
            QVERIFY2(equal(view.valueRow(j), d.store.trace(j).value(layer, kv), hd),
                     qPrintable(QString("V row %1").arg(j)));
        }
        const std::span<const float> row = d.store.attentionRow(i, layer, head);
        QVERIFY(equal(view.displayedWeights(), row.data(), row.size()));
        // The scores, recomputed here from q and the keys, and their softmax = the weights.
        const std::vector<double> sm = softmax(view.displayedScores());
        QCOMPARE(sm.size(), row.size());
        for (size_t j = 0; j < sm.size(); ++j) {
            double dot = 0;
            for (size_t r = 0; r < hd; ++r)
                dot += static_cast<double>(ti.query(layer, head)[r]) *
                       d.store.trace(static_cast<int>(j)).key(layer, kv)[r];
            QVERIFY(std::abs(dot / std::sqrt(static_cast<double>(hd)) - view.displayedScores()[j]) <
                    1e-5);
            if (std::abs(sm[j] - row[j]) > kSoftmaxTol)
                qWarning() << "token" << j << "softmax" << sm[j] << "weight" << row[j];
            QVERIFY(std::abs(sm[j] - row[j]) <= kSoftmaxTol);
        }
        for (size_t r = 0; r < hd; ++r) {
            double out = 0;
            for (int j = 0; j <= i; ++j)
                out += static_cast<double>(row[static_cast<size_t>(j)]) *
                       d.store.trace(j).value(layer, kv)[r];
            QVERIFY(std::abs(out - view.displayedOutput()[r]) < 1e-5);
        }
    }

    void stepAppendsOneColumnAndOneRow_data() { models_data(); }
    void stepAppendsOneColumnAndOneRow() {
        QFETCH(QString, model);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        StepView view(&d.store);
        view.resize(1280, 720);
        d.prefill(kPrompt);
        d.store.setLayerHead(1, 1);
        const int before = view.keyColumns();
        const std::vector<float> lastKey(view.keyColumn(before - 1).begin(),
                                         view.keyColumn(before - 1).end());
        QCOMPARE(before, d.store.count());

        d.step();
        const int kv = d.store.kvHead();
        const StepTrace& added = d.store.trace(d.store.count() - 1);
        QCOMPARE(view.keyColumns(), before + 1);
        QCOMPARE(view.valueRows(), before + 1);
        QVERIFY(
            equal(view.keyColumn(before), added.key(1, kv), static_cast<size_t>(added.headDim)));
        QVERIFY(
            equal(view.valueRow(before), added.value(1, kv), static_cast<size_t>(added.headDim)));
        QCOMPARE(view.displayedWeights().size(), static_cast<size_t>(before + 1));
        // The earlier columns stay as they were: keys never change once cached.
        QVERIFY(equal(view.keyColumn(before - 1), lastKey.data(), lastKey.size()));

        d.stepBack();
        QCOMPARE(view.keyColumns(), before);
        QCOMPARE(view.valueRows(), before);
        QCOMPARE(view.queryToken(), before - 1);
        QVERIFY(view.keyColumn(before).empty());
        QVERIFY(equal(view.keyColumn(before - 1), lastKey.data(), lastKey.size()));
    }

    void changingLayerOrHeadChangesWhatIsDrawn() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        StepView view(&d.store);
        view.resize(1280, 720);
        d.prefill(kPrompt);
        d.steps(2);
        const std::vector<float> q00(view.displayedQuery().begin(), view.displayedQuery().end());
        const std::vector<float> w00(view.displayedWeights().begin(),
                                     view.displayedWeights().end());
        const QImage before = view.grab().toImage();

        d.store.setLayerHead(1, 3);
        QCOMPARE(view.layer(), 1);
        QCOMPARE(view.head(), 3);
        const int i = d.store.count() - 1;
        QVERIFY(equal(view.displayedQuery(), d.store.trace(i).query(1, 3), q00.size()));
        QVERIFY(!equal(view.displayedQuery(), q00.data(), q00.size()));
        QVERIFY(!equal(view.displayedWeights(), w00.data(), w00.size()));
        QVERIFY(view.grab().toImage() != before);

        d.store.setHead(0);
        QCOMPARE(view.head(), 0);
        QVERIFY(equal(view.displayedQuery(), d.store.trace(i).query(1, 0), q00.size()));
    }

    void groupedQueryHeadsAreNamed_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("head");
        QTest::addColumn<int>("kvHead");
        QTest::addColumn<QList<int>>("shared");
        QTest::newRow("llama_gqa head 0") << "llama_gqa" << 0 << 0 << QList<int>{0, 1};
        QTest::newRow("llama_gqa head 1") << "llama_gqa" << 1 << 0 << QList<int>{0, 1};
        QTest::newRow("llama_gqa head 2") << "llama_gqa" << 2 << 1 << QList<int>{2, 3};
        QTest::newRow("llama_gqa head 3") << "llama_gqa" << 3 << 1 << QList<int>{2, 3};
        QTest::newRow("gpt2 head 2") << "gpt2" << 2 << 2 << QList<int>{2};
    }
    void groupedQueryHeadsAreNamed() {
        QFETCH(QString, model);
        QFETCH(int, head);
        QFETCH(int, kvHead);
        QFETCH(QList<int>, shared);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        StepView view(&d.store);
        d.prefill(kPrompt);
        d.store.setHead(head);
        QCOMPARE(view.kvHead(), kvHead);
        QCOMPARE(view.sharedQueryHeads(), shared);
    }

    void headsSharingAKvHeadShowTheSameKeys() {
        DecodedStore d(fixtures::makeModel(fixtures::llamaGqaSpec()));
        StepView view(&d.store);
        d.prefill(kPrompt);
        d.store.setHead(0);
        const std::vector<float> k0(view.keyColumn(2).begin(), view.keyColumn(2).end());
        const std::vector<float> q0(view.displayedQuery().begin(), view.displayedQuery().end());
        d.store.setHead(1);
        QVERIFY(equal(view.keyColumn(2), k0.data(), k0.size()));       // one K/V head
        QVERIFY(!equal(view.displayedQuery(), q0.data(), q0.size()));  // two queries
        d.store.setHead(2);
        QVERIFY(!equal(view.keyColumn(2), k0.data(), k0.size()));
    }

    // An earlier token stays inspected until the next step, which shows the new token (a
    // lecturer who inspected token 2 and pressed F10 expects to see the step).
    void aStepFollowsTheNewestTokenAgain() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        StepView view(&d.store);
        d.prefill(kPrompt);
        d.store.pinQuery(2);
        QCOMPARE(view.queryToken(), 2);
        QCOMPARE(view.keyColumns(), 3);
        QVERIFY(equal(view.displayedWeights(), d.store.attentionRow(2, 0, 0).data(), 3));
        d.store.setHead(1);  // other selections keep the pinned token
        QCOMPARE(view.queryToken(), 2);
        d.step();
        QVERIFY(!d.store.queryPinned());
        QCOMPARE(view.queryToken(), d.store.count() - 1);
        QCOMPARE(view.keyColumns(), d.store.count());
    }

    void longContextKeepsTheLastTokens() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        StepView view(&d.store);
        view.resize(480, 360);  // smaller than the minimum hint: not every column fits
        d.prefill(kPrompt);
        d.steps(d.store.config().nCtx - d.store.count());
        const int t = d.store.count();
        QCOMPARE(t, d.store.config().nCtx);
        QCOMPARE(view.keyColumns(), t);
        QVERIFY(view.firstShownKey() > 0);
        // Kᵀ's columns and V's rows are the same tokens: key j stands beside value j.
        QCOMPARE(view.firstShownValue(), view.firstShownKey());
        const QRect keys = view.blockRect(StepView::Block::Keys);
        const int shown = t - view.firstShownKey();
        QVERIFY(keys.width() / shown >= 3);  // cells at their minimum, not thinner
        QVERIFY(keys.right() < view.width());
        // The newest column is drawn, and hovering it names the newest token.
        const QString tip = view.toolTipAt(QPoint(keys.right() - 1, keys.top() + 1));
        QVERIFY2(tip.contains(QString("token %1").arg(t - 1)), qPrintable(tip));
        QVERIFY(testing::pixelVariance(testing::render(view, "step-long")) > 1);
    }

    // Kᵀ and V show the same positions at every length, for the newest query and for queries
    // pinned early and late, before and after the user moves the window; a step brings a moved
    // window back to the newest token unless the query is pinned.
    void keysAndValuesShowTheSamePositions_data() {
        QTest::addColumn<int>("length");
        QTest::newRow("10 tokens") << 10;
        QTest::newRow("200 tokens") << 200;
        QTest::newRow("905 tokens") << 905;
    }
    void keysAndValuesShowTheSamePositions() {
        QFETCH(int, length);
        DecodedStore d(fixtures::makeModel(longSpec()));
        StepView view(&d.store);
        view.resize(1280, 720);
        d.prefill("the");
        QVERIFY(d.store.count() <= length);
        d.steps(length - d.store.count());
        QCOMPARE(d.store.count(), length);
        d.store.setLayerHead(1, 2);
        const int newest = length - 1;
        // the newest query: the window ends at it
        QCOMPARE(view.queryToken(), newest);
        QCOMPARE(view.keyWindow().second, newest);
        checkWindowDrawsTheTrace(view, d.store);
        const int size = view.keyWindow().second - view.keyWindow().first + 1;
        const bool windowed = size < length;
        QCOMPARE(view.windowBar()->isVisibleTo(&view), windowed);
        if (length > 100) QVERIFY(windowed);  // 905 × 3 px would not fit in 1280 × 720

        for (int pinned : {length / 10, length - 3}) {
            d.store.pinQuery(pinned);
            QCOMPARE(view.queryToken(), pinned);
            QCOMPARE(view.keyWindow().second, pinned);  // ends at the inspected query
            QVERIFY(view.keyWindow().first == 0 || pinned + 1 - view.keyWindow().first == size);
            checkWindowDrawsTheTrace(view, d.store);
        }
        if (!windowed) {
            view.moveWindowTo(0);  // everything fits: nothing to move
            QVERIFY(!view.windowHeld());
            QCOMPARE(view.keyWindow(), std::make_pair(0, length - 3));
            return;
        }
        // Moved to the start, then to the middle, with the query pinned late.
        const int wsize = view.keyWindow().second - view.keyWindow().first + 1;
        view.moveWindowTo(0);
        QVERIFY(view.windowHeld());
        QCOMPARE(view.keyWindow(), std::make_pair(0, wsize - 1));
        QCOMPARE(view.windowBar()->value(), 0);
        checkWindowDrawsTheTrace(view, d.store);
        const int mid = (length - 3) / 2 - wsize / 2;
        view.windowBar()->setValue(mid);  // the bar moves it as the user's drag does
        QCOMPARE(view.keyWindow(), std::make_pair(mid, mid + wsize - 1));
        checkWindowDrawsTheTrace(view, d.store);
        view.moveWindowBy(-1);
        QCOMPARE(view.keyWindow().first, mid - 1);
        // A step (it follows the newest token again) brings the moved window back to the newest.
        d.step();
        QCOMPARE(view.queryToken(), d.store.count() - 1);
        QVERIFY(!view.windowHeld());
        QCOMPARE(view.keyWindow().second, d.store.count() - 1);
        checkWindowDrawsTheTrace(view, d.store);
        // A pinned window keeps its positions across steps and query changes, until unpinned.
        view.moveWindowTo(3);
        view.setWindowPinned(true);
        const auto pinnedWindow = view.keyWindow();
        QCOMPARE(pinnedWindow.first, 3);
        d.steps(2);
        QCOMPARE(view.keyWindow(), pinnedWindow);
        checkWindowDrawsTheTrace(view, d.store);
        d.store.pinQuery(length - 1);
        QCOMPARE(view.keyWindow(), pinnedWindow);
        // pinned at the query's end, it stays there while new tokens arrive
        view.followQuery();
        QVERIFY(!view.windowPinned());
        view.setWindowPinned(true);
        const auto atEnd = view.keyWindow();
        d.step();
        QCOMPARE(view.keyWindow(), atEnd);
        QVERIFY(view.keyWindow().second < d.store.count() - 1);
        checkWindowDrawsTheTrace(view, d.store);
        view.setWindowPinned(false);
        QCOMPARE(view.keyWindow().second, d.store.count() - 1);
        // Moved, then back: Ctrl+End's slot.
        view.moveWindowTo(0);
        view.followQuery();
        QCOMPARE(view.keyWindow().second, d.store.count() - 1);
        // Tooltips name the positions of the moved window.
        view.moveWindowTo(5);
        view.grab();
        const QRect k = view.blockRect(StepView::Block::Keys);
        QVERIFY2(view.toolTipAt(QPoint(k.left() + 1, k.top() + 1)).contains("token 5 "),
                 qPrintable(view.toolTipAt(QPoint(k.left() + 1, k.top() + 1))));
        testing::render(view, QString("step-window-%1").arg(length));
    }

    void tooltipTellsTheValueUnderTheMouse() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        StepView view(&d.store);
        view.resize(1280, 720);
        d.prefill(kPrompt);
        d.step();
        view.grab();  // lays out
        const int t = view.keyColumns();
        const QRect s = view.blockRect(StepView::Block::Scores);
        const int ct = s.width() / (t - view.firstShownKey());
        const int j = 1;
        const QPoint inScore(s.left() + (j - view.firstShownKey()) * ct + ct / 2, s.center().y());
        QVERIFY2(view.toolTipAt(inScore).contains(formatValue(view.displayedScores()[j])),
                 qPrintable(view.toolTipAt(inScore)));
        const QRect w = view.blockRect(StepView::Block::Weights);
        const QPoint inWeight(inScore.x(), w.center().y());
        QVERIFY(view.toolTipAt(inWeight).contains(formatValue(view.displayedWeights()[j])));
        const QRect k = view.blockRect(StepView::Block::Keys);
        const QPoint inKey(inScore.x(), k.top() + 1);
        QVERIFY(view.toolTipAt(inKey).contains(formatValue(view.keyColumn(j)[0])));
        const QRect v = view.blockRect(StepView::Block::Values);
        const int rows = t - view.firstShownValue();
        const QPoint inValue(v.left() + 1, v.top() + (v.height() / rows) * j + 1);
        QVERIFY(view.toolTipAt(inValue).contains(formatValue(view.valueRow(j)[0])));
        QVERIFY(view.toolTipAt(QPoint(2, view.height() - 2)).isEmpty());
    }

    void newColumnSlidesInOnlyWhenAnimationsAreOn() {
        DecodedStore d(fixtures::makeModel(fixtures::gpt2Spec()));
        StepView view(&d.store);
        view.resize(1280, 720);
        d.prefill(kPrompt);
        d.step();
        QCOMPARE(view.transitionProgress(), 1.0);  // off: the final state at once

        ThemeSettings::instance().setAnimationMs(120);
        d.step();
        QVERIFY(view.transitionProgress() < 1.0);
        QCOMPARE(view.keyColumns(), d.store.count());  // the data is already the new step's
        const QImage during = view.grab().toImage();
        QTRY_COMPARE_WITH_TIMEOUT(view.transitionProgress(), 1.0, 3000);
        QVERIFY(view.grab().toImage() != during);
        // A layer switch is not a new token: no transition.
        d.store.setLayer(1);
        QCOMPARE(view.transitionProgress(), 1.0);
        ThemeSettings::instance().setAnimationMs(0);
    }

    void rendersAStepReadably_data() { models_data(); }
    void rendersAStepReadably() {
        QFETCH(QString, model);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        StepView view(&d.store);
        view.resize(1280, 720);
        d.prefill(kPrompt);
        d.steps(4);
        d.store.setLayerHead(1, 1);
        QVERIFY(testing::pixelVariance(testing::render(view, "step-" + model)) > 100);
        ThemeSettings::instance().setTheme(Theme::print());
        QVERIFY(testing::pixelVariance(testing::render(view, "step-" + model + "-print")) > 100);
        ThemeSettings::instance().setTheme(Theme::dark());
    }

    // On a grouped-query or multi-query model the view says which K/V head the head reads; on
    // a narrow canvas (the step tab of a 1024 x 768 window is some 690 px wide) in a few words,
    // and the title drops its note on the token: neither is cut.
    void saysWhichKvHeadTheHeadReads_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("head");
        QTest::addColumn<QString>("says");
        QTest::addColumn<QString>("saysShort");
        QTest::newRow("mha gpt2") << "gpt2" << 2 << "%1 reads K/V head 2, its own"
                                  << "K/V head 2, its own (multi-head)";
        QTest::newRow("gqa llama_gqa") << "llama_gqa" << 3 << "%1 reads K/V head 1 of 2"
                                       << "K/V head 1 of 2, shared by query heads 2, 3";
        QTest::newRow("mqa gemma") << "gemma" << 3 << "%1 reads K/V head 0, the only one"
                                   << "K/V head 0, shared by all 4 query heads";
    }
    void saysWhichKvHeadTheHeadReads() {
        QFETCH(QString, model);
        QFETCH(int, head);
        QFETCH(QString, says);
        QFETCH(QString, saysShort);
        DecodedStore d(fixtures::makeModel(fixtures::specFor(model.toStdString())));
        StepView view(&d.store);
        view.resize(1280, 720);
        d.prefill(kPrompt);
        d.steps(2);
        d.store.setHead(head);
        QVERIFY2(view.kvNoteText().contains(says.arg(QString("Head %1").arg(head))),
                 qPrintable(view.kvNoteText()));
        QCOMPARE(view.kvNoteShortText(), saysShort);
        view.resize(690, 540);
        testing::render(view, "step-narrow-" + model);
        QVERIFY2(view.elidedTexts().filter("K/V head").isEmpty() &&
                     view.elidedTexts().filter("Layer ").isEmpty(),
                 qPrintable(view.elidedTexts().join(" | ")));
    }
};

QTEST_MAIN(TstStepView)
#include "tst_step_view.moc"
