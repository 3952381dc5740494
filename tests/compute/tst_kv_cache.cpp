// KvCache: blocks allocated as tokens arrive, their layout, truncation, byte counts, f16 rows.
#include <QTest>

#include <cmath>

#include "core/error.h"
#include "gguf/dequant.h"
#include "runtime/kv_cache.h"

using namespace kvscope;

namespace {
// A value that names its layer, head, position, element and K or V.
float tag(int l, int g, int pos, int d, bool key) {
    return (key ? 1.0f : -1.0f) *
           (static_cast<float>(1000 * l + 100 * g + pos) + 0.001f * static_cast<float>(d));
}
}  // namespace

class TstKvCache : public QObject {
    Q_OBJECT
  private slots:
    // Bytes per token = 2 (K and V) × layers × kv heads × head dim × element bytes.
    void bytesFollowTheFormula_data() {
        QTest::addColumn<int>("layers");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("headDim");
        QTest::addColumn<bool>("f16");
        QTest::addColumn<qulonglong>("perToken");
        // GPT-2 small: 2 × 12 × 768 × 4 = 73,728 B (TEACHING.md, fp32)
        QTest::newRow("gpt2-small") << 12 << 12 << 64 << false << 73728ULL;
        QTest::newRow("gpt2-small f16") << 12 << 12 << 64 << true << 36864ULL;
        // 4 layers, 2 kv heads of 8: 2 × 4 × 2 × 8 × 4 = 512 B
        QTest::newRow("tiny-gqa") << 4 << 2 << 8 << false << 512ULL;
    }
    void bytesFollowTheFormula() {
        QFETCH(int, layers);
        QFETCH(int, kvHeads);
        QFETCH(int, headDim);
        QFETCH(bool, f16);
        QFETCH(qulonglong, perToken);
        KvCache c(layers, kvHeads, 1000, headDim, {f16 ? KvType::F16 : KvType::F32, 16});
        QCOMPARE(c.bytesPerToken(), perToken);
        QCOMPARE(c.allocatedBytes(), size_t{0});  // nothing until tokens arrive
        c.reserve(3);
        c.commit(3);
        QCOMPARE(c.usedBytes(), 3 * perToken);
        QCOMPARE(c.allocatedBytes(), 16 * perToken);  // one block of 16
        c.reserve(40);
        QCOMPARE(c.blocksAllocated(), 3);
        QCOMPARE(c.allocatedBytes(), 48 * perToken);
        c.commit(37);
        c.truncate(17);  // 17 tokens need two blocks: the third is freed
        QCOMPARE(c.used(), 17);
        QCOMPARE(c.blocksAllocated(), 2);
        QCOMPARE(c.usedBytes(), 17 * perToken);
        c.clear();
        QCOMPARE(c.used(), 0);
        QCOMPARE(c.allocatedBytes(), size_t{0});
    }

    // A header that declares a huge context costs nothing until tokens arrive.
    void aHugeContextAllocatesOnlyWhatIsUsed() {
        KvCache c(32, 8, 131072, 128);  // Llama 3.1 8B's cache: 16 GiB if allocated up front
        QCOMPARE(c.allocatedBytes(), size_t{0});
        c.reserve(5);
        QCOMPARE(c.allocatedBytes(), c.bytesPerToken() * 256);
        QVERIFY_THROWS_EXCEPTION(Error, c.reserve(131073));
        QVERIFY_THROWS_EXCEPTION(Error, c.commit(257));  // past the reserved block
        QCOMPARE(c.used(), 0);
    }

    // Rows of every layer, head and position land where they are read back, across blocks.
    void layersHeadsAndBlocksDoNotOverlap_data() {
        QTest::addColumn<bool>("f16");
        QTest::newRow("f32") << false;
        QTest::newRow("f16") << true;
    }
    void layersHeadsAndBlocksDoNotOverlap() {
        QFETCH(bool, f16);
        const int L = 3, G = 2, T = 11, D = 4, B = 4;
        KvCache c(L, G, 20, D, {f16 ? KvType::F16 : KvType::F32, B});
        c.reserve(T);
        std::vector<float> k(D), v(D);
        for (int pos = 0; pos < T; ++pos)
            for (int l = 0; l < L; ++l)
                for (int g = 0; g < G; ++g) {
                    for (int d = 0; d < D; ++d) {
                        k[static_cast<size_t>(d)] = tag(l, g, pos, d, true);
                        v[static_cast<size_t>(d)] = tag(l, g, pos, d, false);
                    }
                    c.write(l, g, pos, k.data(), v.data());
                }
        c.commit(T);
        // f16 keeps 11 significant bits: the tags (up to ~2,110) round to within 1 part in 2048
        const float tol = f16 ? 2.0f : 0.0f;
        std::vector<float> scratch(static_cast<size_t>(B * D));
        for (int l = 0; l < L; ++l)
            for (int g = 0; g < G; ++g)
                for (int pos = 0; pos < T; ++pos) {
                    c.readKey(l, g, pos, k.data());
                    c.readValue(l, g, pos, v.data());
                    const float* kb = c.keyBlock(l, g, pos / B, scratch.data());
                    for (int d = 0; d < D; ++d) {
                        QVERIFY(std::abs(k[static_cast<size_t>(d)] - tag(l, g, pos, d, true)) <=
                                tol);
                        QVERIFY(std::abs(v[static_cast<size_t>(d)] - tag(l, g, pos, d, false)) <=
                                tol);
                        QCOMPARE(kb[(pos % B) * D + d], k[static_cast<size_t>(d)]);
                    }
                }
        if (f16) {  // rounded as f16 is: to nearest even
            c.readKey(2, 1, 10, k.data());
            QCOMPARE(k[3], f16ToF32(f32ToF16(tag(2, 1, 10, 3, true))));
        }
    }

    void kvTypesHaveNames() {
        QCOMPARE(parseKvType("f16"), std::optional<KvType>(KvType::F16));
        QCOMPARE(parseKvType("f32"), std::optional<KvType>(KvType::F32));
        QVERIFY(!parseKvType("q8_0"));
        QCOMPARE(kvTypeName(KvType::F16), std::string("f16"));
    }
};

QTEST_GUILESS_MAIN(TstKvCache)
#include "tst_kv_cache.moc"
