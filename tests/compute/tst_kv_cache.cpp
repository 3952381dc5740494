// KvCache: layout, fill level, truncation and its byte counts.
#include <QTest>

#include "runtime/kv_cache.h"

using namespace kvscope;

class TstKvCache : public QObject {
    Q_OBJECT
  private slots:
    // Bytes per token = 2 (K and V) × layers × kv heads × head dim × 4 bytes (float32).
    void bytesFollowTheFormula_data() {
        QTest::addColumn<int>("layers");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("headDim");
        QTest::addColumn<int>("ctx");
        QTest::addColumn<qulonglong>("perToken");
        // GPT-2 small: 2 × 12 × 768 × 4 = 73,728 B (TEACHING.md, fp32)
        QTest::newRow("gpt2-small") << 12 << 12 << 64 << 1024 << 73728ULL;
        // 4 layers, 2 kv heads of 8: 2 × 4 × 2 × 8 × 4 = 512 B
        QTest::newRow("tiny-gqa") << 4 << 2 << 8 << 16 << 512ULL;
    }
    void bytesFollowTheFormula() {
        QFETCH(int, layers);
        QFETCH(int, kvHeads);
        QFETCH(int, headDim);
        QFETCH(int, ctx);
        QFETCH(qulonglong, perToken);
        KvCache c(layers, kvHeads, ctx, headDim);
        QCOMPARE(c.bytesPerToken(), perToken);
        QCOMPARE(c.allocatedBytes(), perToken * ctx);
        QCOMPARE(c.usedBytes(), size_t{0});
        c.commit(3);
        QCOMPARE(c.usedBytes(), 3 * perToken);
        c.truncate(1);
        QCOMPARE(c.used(), 1);
        QCOMPARE(c.usedBytes(), perToken);
        c.clear();
        QCOMPARE(c.used(), 0);
    }

    void layersAndHeadsDoNotOverlap() {
        KvCache c(3, 2, 5, 4);
        for (int l = 0; l < 3; ++l)
            for (int g = 0; g < 2; ++g)
                for (int i = 0; i < 5 * 4; ++i) {
                    c.keys(l, g)[i] =
                        static_cast<float>(100 * l + 10 * g) + 0.01f * static_cast<float>(i);
                    c.values(l, g)[i] = -c.keys(l, g)[i];
                }
        for (int l = 0; l < 3; ++l)
            for (int g = 0; g < 2; ++g)
                for (int i = 0; i < 5 * 4; ++i) {
                    QCOMPARE(c.keys(l, g)[i],
                             static_cast<float>(100 * l + 10 * g) + 0.01f * static_cast<float>(i));
                    QCOMPARE(c.values(l, g)[i], -c.keys(l, g)[i]);
                }
    }
};

QTEST_GUILESS_MAIN(TstKvCache)
#include "tst_kv_cache.moc"
