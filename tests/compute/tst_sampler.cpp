// Sampler: greedy, temperature, top-k, top-p; deterministic for a seed and a position.
#include <QTest>
#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "runtime/sampler.h"

using namespace kvscope;

class TstSampler : public QObject {
    Q_OBJECT
  private slots:
    // A NaN logit is reported, never sampled (it has no place in the ordering); infinities are
    // ordered as usual.
    void nanLogitsAreAnError() {
        std::vector<float> logits{0.5f, NAN, 2.0f};
        SamplerParams greedy;
        QVERIFY_THROWS_EXCEPTION(Error, sampleToken(logits, greedy, 0));
        SamplerParams sample;
        sample.temperature = 0.8f;
        QVERIFY_THROWS_EXCEPTION(Error, sampleToken(logits, sample, 0));
        QVERIFY_THROWS_EXCEPTION(Error, topLogits(logits, 2));
        try {
            sampleToken(logits, greedy, 0);
        } catch (const Error& e) {
            QVERIFY2(std::string(e.what()).find("NaN") != std::string::npos, e.what());
            QVERIFY2(std::string(e.what()).find("token 1") != std::string::npos, e.what());
        }
        logits[1] = INFINITY;
        QCOMPARE(sampleToken(logits, greedy, 0), 1);
    }

    void greedyPicksTheLargestLogit() {
        const std::vector<float> logits{0.5f, 3.0f, -1.0f, 2.9f};
        QCOMPARE(sampleToken(logits, {}, 0), 1);
        SamplerParams p;
        p.temperature = 2.0f;
        p.topK = 1;  // top-1 is greedy whatever the temperature
        for (uint64_t pos = 0; pos < 50; ++pos) QCOMPARE(sampleToken(logits, p, pos), 1);
    }

    void topLogitsAreSortedWithTiesByLowerId() {
        const std::vector<float> logits{1.0f, 4.0f, 4.0f, -2.0f, 3.0f};
        const auto top = topLogits(logits, 3);
        QCOMPARE(top.size(), size_t{3});
        QCOMPARE(top[0].first, 1);
        QCOMPARE(top[1].first, 2);
        QCOMPARE(top[2].first, 4);
        QCOMPARE(topLogits(logits, 99).size(), logits.size());
    }

    // The one-pass selection (k <= 64) and the partial sort (larger k) both give the first k of
    // the whole vocabulary sorted by (logit descending, id ascending), checked against a full
    // sort here, on logits drawn from a few values (many ties) with infinities among them.
    void topLogitsEqualAFullSortAtEverySize() {
        std::vector<float> logits(5000);
        uint32_t s = 12345;
        for (float& l : logits) {
            s = s * 1664525u + 1013904223u;
            l = static_cast<float>((s >> 16) % 23) * 0.25f - 2.0f;
        }
        logits[17] = INFINITY;
        logits[4000] = INFINITY;
        logits[9] = -INFINITY;
        std::vector<std::pair<int32_t, float>> all;
        for (size_t i = 0; i < logits.size(); ++i)
            all.push_back({static_cast<int32_t>(i), logits[i]});
        std::stable_sort(all.begin(), all.end(),
                         [](const auto& a, const auto& b) { return a.second > b.second; });
        for (int k : {0, 1, 2, 10, 63, 64, 65, 300, 5000, 6000}) {
            const auto top = topLogits(logits, k);
            QCOMPARE(top.size(), std::min(all.size(), static_cast<size_t>(k)));
            for (size_t i = 0; i < top.size(); ++i) {
                QCOMPARE(top[i].first, all[i].first);
                QCOMPARE(top[i].second, all[i].second);
            }
        }
        QCOMPARE(topLogits(logits, 2)[1].first, 4000);  // the two infinities, lower id first
    }

    void sameSeedSameTokensOtherSeedOtherTokens() {
        std::vector<float> logits(50);
        for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(std::sin(i));
        SamplerParams a;
        a.temperature = 1.0f;
        a.seed = 42;
        SamplerParams b = a;
        b.seed = 43;
        std::vector<int32_t> run1, run2, other;
        for (uint64_t pos = 0; pos < 200; ++pos) {
            run1.push_back(sampleToken(logits, a, pos));
            run2.push_back(sampleToken(logits, a, pos));
            other.push_back(sampleToken(logits, b, pos));
        }
        QCOMPARE(run1, run2);
        QVERIFY(run1 != other);
        QVERIFY(std::set<int32_t>(run1.begin(), run1.end()).size() > 5);  // it does sample
    }

    // Logits (0, ln 3) at temperature 1 give probabilities 1/4 and 3/4; at temperature 2 they
    // give 1/(1+sqrt 3) and sqrt 3/(1+sqrt 3). 20000 draws estimate them within about 1%.
    void temperatureScalesTheDistribution_data() {
        QTest::addColumn<float>("temperature");
        QTest::addColumn<double>("expectedSecond");
        QTest::newRow("T=1") << 1.0f << 0.75;
        QTest::newRow("T=2") << 2.0f << std::sqrt(3.0) / (1 + std::sqrt(3.0));
    }
    void temperatureScalesTheDistribution() {
        QFETCH(float, temperature);
        QFETCH(double, expectedSecond);
        const std::vector<float> logits{0.0f, static_cast<float>(std::log(3.0))};
        SamplerParams p;
        p.temperature = temperature;
        p.seed = 9;
        int second = 0;
        const int n = 20000;
        for (int pos = 0; pos < n; ++pos)
            second += sampleToken(logits, p, static_cast<uint64_t>(pos));
        QVERIFY2(std::abs(second / double(n) - expectedSecond) < 0.015,
                 qPrintable(QString::number(second / double(n))));
    }

    void topKKeepsOnlyTheKBest() {
        const std::vector<float> logits{1.0f, 1.1f, 0.9f, 1.2f, 1.05f, 0.0f};
        SamplerParams p;
        p.temperature = 5.0f;  // nearly flat, so every kept id is drawn
        p.topK = 3;
        std::set<int32_t> seen;
        for (uint64_t pos = 0; pos < 2000; ++pos) seen.insert(sampleToken(logits, p, pos));
        QCOMPARE(seen, (std::set<int32_t>{1, 3, 4}));
    }

    // Probabilities 0.5, 0.3, 0.2 (logits are their logs): top-p 0.75 keeps the first two
    // (0.5 < 0.75 <= 0.8); top-p 0.45 keeps the first alone.
    void topPKeepsTheSmallestPrefixReachingP_data() {
        QTest::addColumn<float>("topP");
        QTest::addColumn<int>("kept");
        QTest::newRow("p=0.45") << 0.45f << 1;
        QTest::newRow("p=0.75") << 0.75f << 2;
        QTest::newRow("p=1") << 1.0f << 3;
    }
    void topPKeepsTheSmallestPrefixReachingP() {
        QFETCH(float, topP);
        QFETCH(int, kept);
        const std::vector<float> logits{static_cast<float>(std::log(0.2)),
                                        static_cast<float>(std::log(0.5)),
                                        static_cast<float>(std::log(0.3))};
        SamplerParams p;
        p.temperature = 1.0f;
        p.topP = topP;
        std::set<int32_t> seen;
        for (uint64_t pos = 0; pos < 3000; ++pos) seen.insert(sampleToken(logits, p, pos));
        const std::vector<int32_t> order{1, 2, 0};
        QCOMPARE(seen, std::set<int32_t>(order.begin(), order.begin() + kept));
    }

    // min-p keeps the tokens at least minP times as likely as the best (llama.cpp's min_p), and
    // keptTokens says which the draw may pick, renormalised; every draw is one of them.
    void minPKeepsTokensNearTheBest_data() {
        QTest::addColumn<float>("minP");
        QTest::addColumn<int>("kept");
        QTest::newRow("min-p=0") << 0.0f << 4;
        QTest::newRow("min-p=0.25") << 0.25f << 3;  // 0.5, 0.3 (0.6 of the best), 0.15 (0.3)
        QTest::newRow("min-p=0.35") << 0.35f << 2;
        QTest::newRow("min-p=0.9") << 0.9f << 1;
    }
    void minPKeepsTokensNearTheBest() {
        QFETCH(float, minP);
        QFETCH(int, kept);
        const std::vector<float> logits{
            static_cast<float>(std::log(0.15)), static_cast<float>(std::log(0.5)),
            static_cast<float>(std::log(0.05)), static_cast<float>(std::log(0.3))};
        SamplerParams p;
        p.temperature = 1.0f;
        p.minP = minP;
        const auto k = keptTokens(logits, p);
        const std::vector<int32_t> order{1, 3, 0, 2};
        QCOMPARE(static_cast<int>(k.size()), kept);
        double sum = 0;
        for (size_t i = 0; i < k.size(); ++i) {
            QCOMPARE(k[i].first, order[i]);
            sum += k[i].second;
        }
        QVERIFY(std::abs(sum - 1.0) < 1e-12);
        std::set<int32_t> seen;
        for (uint64_t pos = 0; pos < 3000; ++pos) seen.insert(sampleToken(logits, p, pos));
        QCOMPARE(seen, std::set<int32_t>(order.begin(), order.begin() + kept));
    }

    void uniformDrawsAreInRangeAndSpread() {
        double sum = 0;
        for (uint64_t i = 0; i < 10000; ++i) {
            const double u = uniformAt(1, i);
            QVERIFY(u >= 0 && u < 1);
            sum += u;
        }
        QVERIFY(std::abs(sum / 10000 - 0.5) < 0.02);
    }
};

QTEST_GUILESS_MAIN(TstSampler)
#include "tst_sampler.moc"
