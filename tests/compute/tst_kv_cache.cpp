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
        for (KvType t : {KvType::F32, KvType::F16, KvType::Q8_0, KvType::Q4_0})
            QCOMPARE(parseKvType(kvTypeName(t)), std::optional<KvType>(t));
        QCOMPARE(kvTypeName(KvType::Q8_0), std::string("q8_0"));
        QVERIFY(!parseKvType("q5_0"));
        QVERIFY(!parseKvType("F16"));
    }

    // q8_0 and q4_0 rows are llama.cpp's blocks: 34 and 18 bytes per 32 values. GPT-2 small:
    // 2 × 12 layers × 12 heads × 2 blocks × 34 B = 19,584 B per token (q8_0), × 18 B = 10,368 B.
    void blockTypesCountTheirBlocks() {
        QCOMPARE(KvCache(12, 12, 1024, 64, {KvType::Q8_0}).bytesPerToken(), size_t{19584});
        QCOMPARE(KvCache(12, 12, 1024, 64, {KvType::Q4_0}).bytesPerToken(), size_t{10368});
        QCOMPARE(kvRowBytes(KvType::Q8_0, 128), size_t{4 * 34});
        // a head of 48 values is not whole blocks of 32: refused, saying why
        try {
            KvCache c(2, 2, 16, 48, {KvType::Q4_0});
            QFAIL("a q4_0 cache of head_dim 48 was accepted");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("multiple of 32"), e.what());
        }
        QVERIFY(kvTypeProblem(KvType::F16, 48).empty());
    }

    // What a quantized cache gives back is the block format's own round trip (the weights' codec,
    // gguf/dequant.h): the same numbers as encoding the row with fromFloat and decoding it with
    // toFloat, row by row, through the block and row readers alike.
    void quantizedRowsAreTheBlockFormats_data() {
        QTest::addColumn<int>("type");
        QTest::newRow("q8_0") << static_cast<int>(KvType::Q8_0);
        QTest::newRow("q4_0") << static_cast<int>(KvType::Q4_0);
    }
    void quantizedRowsAreTheBlockFormats() {
        QFETCH(int, type);
        const auto t = static_cast<KvType>(type);
        const TensorType tt = t == KvType::Q8_0 ? TensorType::Q8_0 : TensorType::Q4_0;
        const int L = 2, G = 2, D = 64, B = 4, T = 6;
        KvCache c(L, G, 32, D, {t, B});
        c.reserve(T);
        std::vector<float> k(D), v(D);
        for (int pos = 0; pos < T; ++pos)
            for (int l = 0; l < L; ++l)
                for (int g = 0; g < G; ++g) {
                    for (int d = 0; d < D; ++d) {
                        k[d] = std::sin(0.37f * static_cast<float>(d + 7 * pos + 3 * l + g));
                        v[d] = 0.5f * std::cos(0.23f * static_cast<float>(d * pos + l - g));
                    }
                    c.write(l, g, pos, k.data(), v.data());
                }
        c.commit(T);
        std::vector<float> got(D), scratch(static_cast<size_t>(B) * D);
        for (int pos = 0; pos < T; ++pos)
            for (int l = 0; l < L; ++l)
                for (int g = 0; g < G; ++g) {
                    for (int d = 0; d < D; ++d) {
                        k[d] = std::sin(0.37f * static_cast<float>(d + 7 * pos + 3 * l + g));
                        v[d] = 0.5f * std::cos(0.23f * static_cast<float>(d * pos + l - g));
                    }
                    const std::vector<float> refK = toFloat(tt, fromFloat(tt, k), D, "k");
                    const std::vector<float> refV = toFloat(tt, fromFloat(tt, v), D, "v");
                    c.readKey(l, g, pos, got.data());
                    QCOMPARE(got, refK);
                    c.readValue(l, g, pos, got.data());
                    QCOMPARE(got, refV);
                    const float* kb = c.keyBlock(l, g, pos / B, scratch.data());
                    QCOMPARE(std::vector<float>(kb + (pos % B) * D, kb + (pos % B + 1) * D), refK);
                    std::vector<float> trip(D);
                    kvRoundTrip(t, k.data(), trip.data(), D);
                    QCOMPARE(trip, refK);
                }
    }

    // Sinks + window, token by token (hand-checked): with sinks 2 and window 4 a query at p sees
    // 0, 1 and p-3 .. p; between steps the cache holds 0, 1 and the last 3, in order, each row
    // still holding its own token's numbers.
    void sinksAndWindowKeepWhatTheyName() {
        const int D = 4;
        KvCache c(2, 1, 64, D, {KvType::F32, 4, EvictionPolicy{4, 2, 0}});
        std::vector<float> k(D), v(D);
        for (int p = 0; p < 10; ++p) {
            c.reserve(c.rows() + 1);
            c.begin(1);
            for (int l = 0; l < 2; ++l) {
                for (int d = 0; d < D; ++d)
                    k[d] = tag(l, 0, p, d, true), v[d] = tag(l, 0, p, d, false);
                c.write(l, 0, c.rows(), k.data(), v.data());
                std::vector<int> seen;
                for (int r = 0; r <= c.rows(); ++r)
                    if (c.visible(l, r, p)) seen.push_back(c.rowPosition(l, r));
                std::vector<int> expected;
                for (int q = 0; q <= p; ++q)
                    if (q < 2 || q >= p - 3) expected.push_back(q);
                QCOMPARE(seen, expected);
            }
            c.commit(1);
        }
        QCOMPARE(c.used(), 10);
        QCOMPARE(c.rows(), 5);
        for (int l = 0; l < 2; ++l) {
            QCOMPARE(c.heldPositions(l), (std::vector<int>{0, 1, 7, 8, 9}));
            for (int r = 0; r < 5; ++r) {
                c.readKey(l, 0, r, k.data());
                QCOMPARE(k[1], tag(l, 0, c.heldPositions(l)[static_cast<size_t>(r)], 1, true));
            }
            // position 2 was last seen by the query at 5 (2 .. 5 is a window of 4)
            QCOMPARE(c.evictedAt(l, 2), 5);
            QCOMPARE(c.evictedAt(l, 6), 9);
            QCOMPARE(c.evictedAt(l, 7), KvCache::kHeld);
        }
        QCOMPARE(c.usedBytes(), 5 * c.bytesPerToken());
        // Going back to 9 tokens needs position 6, gone: refused; to 10 (no change) is fine.
        QVERIFY(!c.canTruncate(9));
        QVERIFY(c.canTruncate(10));
        QVERIFY_THROWS_EXCEPTION(Error, c.truncate(9));
    }

    // Heavy hitters (hand-checked, window 2, heavy 2, no sinks): the weights each query gives
    // accumulate; once more than 2 tokens have left the window the least attended one goes.
    //   p=3: scores 0:1.4 1:1.5 2:0.4 → 2 goes;  p=4: 0:1.45 1:1.55 3:0.8 → 3 goes;
    //   p=5: 0:1.95 1:1.55 4:1.05 → 4 goes.   Held after p=5: 0, 1, 5.
    // Run token by token and as one batched pass (rows are compacted only at the end): the same.
    void heavyHittersKeepTheMostAttended_data() {
        QTest::addColumn<bool>("batched");
        QTest::newRow("token by token") << false;
        QTest::newRow("one pass") << true;
    }
    void heavyHittersKeepTheMostAttended() {
        QFETCH(bool, batched);
        // weights[p][q]: what the query at p gives position q (q <= p)
        const std::vector<std::vector<float>> weights = {{1.0f},
                                                         {0.2f, 0.8f},
                                                         {0.1f, 0.6f, 0.3f},
                                                         {0.1f, 0.1f, 0.1f, 0.7f},
                                                         {0.05f, 0.05f, 0.0f, 0.1f, 0.8f},
                                                         {0.5f, 0.0f, 0.0f, 0.0f, 0.25f, 0.25f}};
        const int D = 4, T = 6;
        KvCache c(1, 1, 64, D, {KvType::F32, 8, EvictionPolicy{2, 0, 2}});
        std::vector<float> row(D, 0.0f);
        auto query = [&](int p) {  // the weights over the rows of the pass, by their positions
            const int R = c.rows() + c.pending();
            std::vector<float> w(static_cast<size_t>(R), 0.0f);
            for (int r = 0; r < R; ++r) {
                const int q = c.rowPosition(0, r);
                if (q <= p && c.visible(0, r, p)) w[static_cast<size_t>(r)] = weights[p][q];
            }
            c.noteQuery(0, p, w.data());
        };
        if (batched) {
            c.reserve(T);
            c.begin(T);
            for (int p = 0; p < T; ++p) c.write(0, 0, p, row.data(), row.data());
            for (int p = 0; p < T; ++p) query(p);
            QVERIFY(!c.visible(0, 2, 4));  // 2 went at p=3: the query at 4 no longer sees it
            QVERIFY(c.visible(0, 3, 4));
            c.commit(T);
        } else {
            for (int p = 0; p < T; ++p) {
                c.reserve(c.rows() + 1);
                c.begin(1);
                c.write(0, 0, c.rows(), row.data(), row.data());
                query(p);
                c.commit(1);
            }
        }
        QCOMPARE(c.heldPositions(0), (std::vector<int>{0, 1, 5}));
        QCOMPARE(c.evictedAt(0, 2), 3);
        QCOMPARE(c.evictedAt(0, 3), 4);
        QCOMPARE(c.evictedAt(0, 4), 5);
        QCOMPARE(c.scores(0)[0], 1.95f);
        QVERIFY(!c.canTruncate(4));  // scores cannot be taken back
    }

    // A pass that is abandoned leaves the cache as it was: rows, positions, evictions, scores.
    void anAbandonedPassChangesNothing() {
        const int D = 4;
        KvCache c(1, 1, 64, D, {KvType::F32, 4, EvictionPolicy{2, 0, 1}});
        std::vector<float> row(D, 1.0f), w(8, 0.25f);
        for (int p = 0; p < 4; ++p) {
            c.reserve(c.rows() + 1);
            c.begin(1);
            c.write(0, 0, c.rows(), row.data(), row.data());
            c.noteQuery(0, p, w.data());
            c.commit(1);
        }
        const std::vector<int> held = c.heldPositions(0);
        const std::vector<float> scores = c.scores(0);
        c.reserve(c.rows() + 2);
        c.begin(2);
        c.noteQuery(0, 4, w.data());
        c.noteQuery(0, 5, w.data());
        c.abandon();
        QCOMPARE(c.used(), 4);
        QCOMPARE(c.heldPositions(0), held);
        QCOMPARE(c.scores(0), scores);
        for (int p : held) QCOMPARE(c.evictedAt(0, p), KvCache::kHeld);
    }

    // A fork shares every block (two references each); writing to a shared block copies it for
    // the writer only, so the other cache keeps its numbers, and the bytes held once are counted.
    void aForkSharesBlocksUntilItWrites() {
        const int D = 4, B = 4;
        KvCache a(1, 1, 64, D, {KvType::F32, B});
        std::vector<float> k(D), v(D);
        a.reserve(6);
        for (int p = 0; p < 6; ++p) {
            for (int d = 0; d < D; ++d) k[d] = tag(0, 0, p, d, true), v[d] = tag(0, 0, p, d, false);
            a.write(0, 0, p, k.data(), v.data());
        }
        a.commit(6);
        KvCache b = a.fork();
        QCOMPARE(a.blockRefs(0), 2L);
        QCOMPARE(b.blockId(1), a.blockId(1));
        QCOMPARE(a.unsharedBytes(), size_t{0});
        // b appends position 6 into block 1 (rows 4..7): b gets its own copy of block 1
        b.reserve(7);
        for (int d = 0; d < D; ++d) k[d] = -5.0f, v[d] = 5.0f;
        b.write(0, 0, 6, k.data(), v.data());
        b.commit(1);
        QVERIFY(b.blockId(1) != a.blockId(1));
        QCOMPARE(b.blockId(0), a.blockId(0));  // the prompt's first block is still shared
        QCOMPARE(a.blockRefs(0), 2L);
        QCOMPARE(a.blockRefs(1), 1L);
        QCOMPARE(a.unsharedBytes(), a.blockBytes());
        std::vector<float> got(D);
        b.readKey(0, 0, 5, got.data());  // the copy kept the rows before it
        QCOMPARE(got[2], tag(0, 0, 5, 2, true));
        b.readKey(0, 0, 6, got.data());
        QCOMPARE(got[0], -5.0f);
        QCOMPARE(a.used(), 6);
    }
};

QTEST_GUILESS_MAIN(TstKvCache)
#include "tst_kv_cache.moc"
