// kv_memory: every preset's bytes per token against arithmetic written out by hand, and the
// worked figures of TEACHING.md §3.
#include <QTest>

#include "analysis/kv_memory.h"
#include "core/error.h"

using namespace kvscope;
using namespace kvscope::kvmem;

class TstKvMemory : public QObject {
    Q_OBJECT
  private slots:
    void everyPreset_data() {
        QTest::addColumn<QString>("key");
        QTest::addColumn<int>("bits");
        QTest::addColumn<qulonglong>("perToken");
        QTest::addColumn<qulonglong>("mhaPerToken");
        // gpt2: 2 × 12 layers × 12 kv heads × 64 × 2 B = 2 × 12 × 768 × 2 = 36,864
        QTest::newRow("gpt2 fp16") << "gpt2" << 16 << 36864ULL << 36864ULL;
        // gpt2 fp32: 2 × 12 × 768 × 4 = 73,728
        QTest::newRow("gpt2 fp32") << "gpt2" << 32 << 73728ULL << 73728ULL;
        // gpt2 int8: 2 × 12 × 768 × 1 = 18,432; int4: 2 × 12 × 768 × 0.5 = 9,216
        QTest::newRow("gpt2 int8") << "gpt2" << 8 << 18432ULL << 18432ULL;
        QTest::newRow("gpt2 int4") << "gpt2" << 4 << 9216ULL << 9216ULL;
        // gpt2-xl: 2 × 48 × 25 × 64 × 2 = 2 × 48 × 1600 × 2 = 307,200
        QTest::newRow("gpt2-xl") << "gpt2-xl" << 16 << 307200ULL << 307200ULL;
        // llama-2-7b (MHA): 2 × 32 × 32 × 128 × 2 = 524,288
        QTest::newRow("llama-2-7b") << "llama-2-7b" << 16 << 524288ULL << 524288ULL;
        // llama-2-13b (MHA): 2 × 40 × 40 × 128 × 2 = 819,200
        QTest::newRow("llama-2-13b") << "llama-2-13b" << 16 << 819200ULL << 819200ULL;
        // llama-3-8b (GQA 8): 2 × 32 × 8 × 128 × 2 = 131,072; as MHA 2 × 32 × 32 × 128 × 2
        QTest::newRow("llama-3-8b") << "llama-3-8b" << 16 << 131072ULL << 524288ULL;
        // llama-3-70b: 2 × 80 × 8 × 128 × 2 = 327,680; as MHA 2 × 80 × 8192 × 2 = 2,621,440
        QTest::newRow("llama-3-70b") << "llama-3-70b" << 16 << 327680ULL << 2621440ULL;
        // mistral-7b: 2 × 32 × 8 × 128 × 2 = 131,072; as MHA 2 × 32 × 32 × 128 × 2 = 524,288
        QTest::newRow("mistral-7b") << "mistral-7b" << 16 << 131072ULL << 524288ULL;
        // qwen2.5-7b: 2 × 28 × 4 × 128 × 2 = 57,344; as MHA 2 × 28 × 28 × 128 × 2 = 401,408
        QTest::newRow("qwen2.5-7b") << "qwen2.5-7b" << 16 << 57344ULL << 401408ULL;
        // deepseek-v3 (MLA): 61 × (512 + 64) × 2 = 70,272; as MHA 2 × 61 × 128 × 128 × 2
        // = 3,997,696
        QTest::newRow("deepseek-v3") << "deepseek-v3" << 16 << 70272ULL << 3997696ULL;
        // opt-30b: 2 × 48 × 56 × 128 × 2 = 2 × 48 × 7168 × 2 = 1,376,256
        QTest::newRow("opt-30b") << "opt-30b" << 16 << 1376256ULL << 1376256ULL;
    }
    void everyPreset() {
        QFETCH(QString, key);
        QFETCH(int, bits);
        QFETCH(qulonglong, perToken);
        QFETCH(qulonglong, mhaPerToken);
        const std::optional<ModelShape> m = findPreset(key.toStdString());
        QVERIFY(m);
        QCOMPARE(bytesPerToken(*m, bits), perToken);
        QCOMPARE(mhaBytesPerToken(*m, bits), mhaPerToken);
        Inputs in;
        in.cacheBits = bits;
        in.context = 1000;
        in.batch = 3;
        in.window = 0;
        const Result r = calculate(*m, in);
        QCOMPARE(r.bytesPerToken, perToken);
        QCOMPARE(r.totalBytes, perToken * 1000 * 3);
        QCOMPARE(r.mhaTotalBytes, mhaPerToken * 1000 * 3);
        QCOMPARE(r.mhaRatio, static_cast<double>(mhaPerToken) / static_cast<double>(perToken));
    }

    void everyPresetIsListedOnce() {
        QCOMPARE(presets().size(), size_t{10});
        for (const char* key : {"gpt2", "gpt2-xl", "llama-2-7b", "llama-3-8b", "llama-3-70b",
                                "mistral-7b", "qwen2.5-7b", "deepseek-v3", "opt-30b"})
            QVERIFY2(findPreset(key), key);
        QVERIFY(!findPreset("gpt5"));
        QCOMPARE(findPreset("LLAMA-3-70B")->kind, Attention::Gqa);
        QCOMPARE(findPreset("deepseek-v3")->kind, Attention::Mla);
        QCOMPARE(findPreset("mistral-7b")->kind, Attention::SlidingWindow);
    }

    // TEACHING.md: Llama-3-70B as if MHA, 4,096 tokens: 2,621,440 × 4,096 = 10,737,418,240 B
    // = exactly 10 GiB; with GQA 327,680 × 4,096 = 1,342,177,280 B (1.25 GiB), 8 times less.
    void llama3_70bGqaVersusMha() {
        Inputs in;
        in.context = 4096;
        const Result r = calculate(*findPreset("llama-3-70b"), in);
        QCOMPARE(r.mhaTotalBytes, 10737418240ULL);
        QCOMPARE(r.mhaTotalBytes, 10ULL << 30);
        QCOMPARE(r.totalBytes, 1342177280ULL);
        QCOMPARE(r.mhaRatio, 8.0);
        QVERIFY(QString::fromStdString(r.whyDifferent).contains("64 query heads share 8"));
        QVERIFY(QString::fromStdString(r.perTokenArithmetic)
                    .contains("2 (K and V) x 80 layers x 8 kv heads x 128 head dim x 2 B = "
                              "327,680 B per token"));
    }

    // TEACHING.md: OPT-30B fp16, batch 128, 1,024 tokens:
    // 2 × 2 B × 48 × 7168 × 1024 × 128 = 180,388,626,432 B ≈ 180 GB; weights 30e9 × 2 B = 60 GB.
    void opt30bBatch128() {
        Inputs in;
        in.context = 1024;
        in.batch = 128;
        in.gpu = "a100-80gb";
        const Result r = calculate(*findPreset("opt-30b"), in);
        QCOMPARE(r.totalBytes, 180388626432ULL);
        QCOMPARE(r.weightBytes, 60e9);
        const double ratio = static_cast<double>(r.totalBytes) / r.weightBytes;  // 3.0065
        QVERIFY(ratio > 3.0 && ratio < 3.01);
        QVERIFY(!r.fits);  // 240 GB on an 80 GB GPU
        QVERIFY(QString::fromStdString(r.totalArithmetic).contains("180.4 GB"));
    }

    // TEACHING.md: 470 GB at 3.3 TB/s: 470e9 / 3.3e12 = 0.14242 s ≈ 140 ms per token.
    void bandwidthBound() {
        QCOMPARE(decodeSecondsLowerBound(470e9, 3.3e12), 470e9 / 3.3e12);
        QVERIFY(std::abs(decodeSecondsLowerBound(470e9, 3.3e12) * 1e3 - 142.42) < 0.01);
        // $2/hour, 0.1 s per step of 1 token: 36,000 tokens per hour; 2 / 36,000 × 10^6 = $55.56
        QVERIFY(std::abs(costPerMillionTokens(2.0, 0.1, 1) - 55.5556) < 1e-3);
        // batch 10: ten times the tokens per hour, a tenth of the cost
        QVERIFY(std::abs(costPerMillionTokens(2.0, 0.1, 10) - 5.55556) < 1e-4);
    }

    // A loaded file's weights take the bytes it stores them in: Llama 2 7B as Q8_0 matrices
    // (34 B per 32 values) would be 6,738,415,616 × 8.5 / 8 = 7,159,566,592 B, 8.5 bits each.
    void storedWeightBytesReplaceTheDtype() {
        Inputs in;
        in.context = 4096;
        in.weightBits = 16;
        in.storedWeightBytes = 7159566592.0;
        const Result r = calculate(*findPreset("llama-2-7b"), in);
        QCOMPARE(r.weightBytes, 7159566592.0);
        QCOMPARE(r.weightBytesRead, 7159566592.0);
        QVERIFY(r.weightsAsStored);
        QCOMPARE(r.weightBitsPerParameter, 8.5);
        QVERIFY2(QString::fromStdString(r.weightArithmetic).contains("8.5 bits each"),
                 r.weightArithmetic.c_str());
        QCOMPARE(r.decodeMsLowerBound, (7159566592.0 + 2147483648.0) / 3.35e12 * 1e3);
        // a mixture of experts reads its active share of the stored bytes: 37/671 for DS-V3
        in.storedWeightBytes = 671e9;
        const Result moe = calculate(*findPreset("deepseek-v3"), in);
        QCOMPARE(moe.weightBytesRead, 37e9);
    }

    // calculate(): weights 6,738,415,616 × 2 B; cache 524,288 × 4,096 = 2,147,483,648 B;
    // time ≥ (13,476,831,232 + 2,147,483,648) / 3.35e12 s = 4.664 ms on an H100 SXM.
    void timeAndCostFromWeightsAndCache() {
        Inputs in;
        in.context = 4096;
        in.pricePerHour = 3.0;
        const Result r = calculate(*findPreset("llama-2-7b"), in);
        QCOMPARE(r.totalBytes, 2147483648ULL);
        QCOMPARE(r.weightBytes, 13476831232.0);
        const double seconds = (13476831232.0 + 2147483648.0) / 3.35e12;
        QCOMPARE(r.decodeMsLowerBound, seconds * 1e3);
        QCOMPARE(r.costPerMillion, 3.0 / (3600.0 / seconds) * 1e6);
        QCOMPARE(r.gpuShare, (13476831232.0 + 2147483648.0) / 80e9);
        QVERIFY(QString::fromStdString(r.timeArithmetic).startsWith("estimate:"));
        QVERIFY(QString::fromStdString(r.costArithmetic).startsWith("estimate:"));
    }

    // TEACHING.md: a 13B model on a 40 GB GPU: weights 13,015,864,320 × 2 B / 40e9 ≈ 65%.
    void thirteenBillionOnA100_40() {
        Inputs in;
        in.gpu = "a100-40gb";
        const Result r = calculate(*findPreset("llama-2-13b"), in);
        QVERIFY(std::abs(r.weightShare - 0.6508) < 1e-3);
    }

    // Mistral-7B keeps the last 4,096 tokens: at 32,768 tokens 131,072 × 4,096 B; a window of
    // 0 (none) keeps all 32,768.
    void slidingWindow() {
        Inputs in;
        in.context = 32768;
        const ModelShape m = *findPreset("mistral-7b");
        QCOMPARE(calculate(m, in).tokens, 4096ULL);
        QCOMPARE(calculate(m, in).totalBytes, 131072ULL * 4096);
        in.window = 0;
        QCOMPARE(calculate(m, in).totalBytes, 131072ULL * 32768);
        in.window = 1000;
        QCOMPARE(calculate(m, in).totalBytes, 131072ULL * 1000);
        QCOMPARE(tokensKept(500, 1000), 500ULL);
    }

    // DeepSeek-V3 (MLA): 61 × 576 × 2 = 70,272 B per token; as MHA 3,997,696: 56.9x less.
    void latentAttention() {
        const Result r = calculate(*findPreset("deepseek-v3"), Inputs{});
        QCOMPARE(r.valuesPerTokenPerLayer, 576ULL);
        QVERIFY(std::abs(r.mhaRatio - 3997696.0 / 70272.0) < 1e-9);
        // weights read per token: the 37B active parameters, not all 671B
        QCOMPARE(r.weightBytesRead, 74e9);
        QCOMPARE(r.weightBytes, 1342e9);
    }

    // The loaded model: its config gives the shape; 4 layers, 2 kv heads of 8, fp32:
    // 2 × 4 × 2 × 8 × 4 = 512 B per token (what KvCache allocates per token).
    void loadedModel() {
        ModelConfig c;
        c.nLayer = 4;
        c.nHead = 4;
        c.nHeadKv = 2;
        c.headDim = 8;
        c.nEmbd = 32;
        c.nCtx = 64;
        const ModelShape m = fromConfig(c, 1000);
        QCOMPARE(m.kind, Attention::Gqa);
        QCOMPARE(bytesPerToken(m, 32), 512ULL);
        QCOMPARE(mhaBytesPerToken(m, 32), 1024ULL);
        QCOMPARE(m.maxContext, 64);
        c.nHeadKv = 1;
        QCOMPARE(fromConfig(c, 1000).kind, Attention::Mqa);
    }

    void lookups() {
        QCOMPARE(findDtype("int4")->bits, 4);
        QCOMPARE(findDtype("BF16")->bits, 16);
        QVERIFY(!findDtype("fp6"));
        QCOMPARE(findGpu("h200")->bandwidthBytesPerS, 4.8e12);
        QCOMPARE(findGpu("a100-40gb")->bandwidthBytesPerS, 1.555e12);
        QVERIFY(!findGpu("tpu"));
        Inputs in;
        in.gpu = "tpu";
        QVERIFY_THROWS_EXCEPTION(Error, calculate(*findPreset("gpt2"), in));
        QCOMPARE(groupDigits(180388626432ULL), std::string("180,388,626,432"));
        QCOMPARE(groupDigits(512), std::string("512"));
        QCOMPARE(humanBytes(10737418240.0), std::string("10.0 GiB (10.7 GB)"));
        QCOMPARE(humanBytes(2621440.0), std::string("2.50 MiB"));
    }
};

QTEST_GUILESS_MAIN(TstKvMemory)
#include "tst_kv_memory.moc"
