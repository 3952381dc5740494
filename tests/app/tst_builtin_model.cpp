// The built-in models inside the kvscope binary: the default (tiny) loads with no --model,
// decodes, and scores a fixed held-out passage at the figure resources/models/README.md records;
// the second (builtin:gqa) is a Llama with grouped-query attention: its passage score, its KV
// bytes (a quarter of plain multi-head attention's) and its classic heads (previous-token,
// induction, attention sink), checked on the shipped file.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QTest>

namespace {

// Revelation 21:1-7 (King James Version, public domain): from the held-out end of the corpus,
// never trained on.
const char* kPassage =
    "And I saw a new heaven and a new earth: for the first heaven and the first earth were passed "
    "away; and "
    "there was no more sea.\n"
    "And I John saw the holy city, new Jerusalem, coming down from God out of heaven, prepared as "
    "a bride "
    "adorned for her husband.\n"
    "And I heard a great voice out of heaven saying, Behold, the tabernacle of God is with men, "
    "and he will "
    "dwell with them, and they shall be his people, and God himself shall be with them, and be "
    "their God.\n"
    "And God shall wipe away all tears from their eyes; and there shall be no more death, neither "
    "sorrow, nor "
    "crying, neither shall there be any more pain: for the former things are passed away.\n"
    "And he that sat upon the throne said, Behold, I make all things new. And he said unto me, "
    "Write: for these "
    "words are true and faithful.\n"
    "And he said unto me, It is done. I am Alpha and Omega, the beginning and the end. I will give "
    "unto him that "
    "is athirst of the fountain of the water of life freely.\n"
    "He that overcometh shall inherit all things; and I will be his God, and he shall be my son.\n";

// The figures resources/models/README.md records for this passage, per model.
constexpr double kPassageBitsPerByte = 1.3991;
constexpr double kGqaPassageBitsPerByte = 1.2296;

// Genesis 1:1-5: a KJV prompt (from the training part) for the previous-token score.
const char* kGenesis =
    "In the beginning God created the heaven and the earth.\n"
    "And the earth was without form, and void; and darkness was upon the face of the deep. And "
    "the Spirit of God moved upon the face of the waters.\n"
    "And God said, Let there be light: and there was light.\n"
    "And God saw the light, that it was good: and God divided the light from the darkness.\n"
    "And God called the light Day, and the darkness he called Night. And the evening and the "
    "morning were the first day.\n";

// The score `key` (first, previous, self, induction) of one head in `heads --json` output.
double headScore(const QByteArray& json, const QString& key, int layer, int head) {
    for (const QJsonValue& v : QJsonDocument::fromJson(json).object()["heads"].toArray()) {
        const QJsonObject h = v.toObject();
        if (h["layer"].toInt() == layer && h["head"].toInt() == head) return h[key].toDouble();
    }
    return -1;
}

struct Run {
    int code = -1;
    QByteArray out, err;
};
Run kvscope(const QStringList& args) {
    QProcess p;
    p.start(KVSCOPE_BIN, args);
    if (!p.waitForFinished(300000)) return {};
    return {p.exitCode(), p.readAllStandardOutput(), p.readAllStandardError()};
}

}  // namespace

class TstBuiltinModel : public QObject {
    Q_OBJECT
  private slots:
    void loadsWithoutAModelPath() {
        const Run r = kvscope({"info", "--json"});
        QVERIFY2(r.code == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(o["arch"].toString(), QString("gpt2"));
        QCOMPARE(o["n_layer"].toInt(), 4);
        QCOMPARE(o["n_head"].toInt(), 4);
        QVERIFY(o["n_ctx"].toInt() >= 256);
        QVERIFY(o["weight_bytes"].toDouble() <= 16.0 * 1024 * 1024);
        // Its merges were learned on GPT-2's split (BpeTrainer), and the file says so: without
        // tokenizer.ggml.pre, llama.cpp (and KVScope) would split it with "default", which
        // cuts contractions and punctuation runs differently.
        QVERIFY2(o["tokenizer"].toString().contains("pre-tokenizer gpt-2"),
                 qPrintable(o["tokenizer"].toString()));
    }

    // Greedy decoding of a familiar opening continues with words of the corpus.
    void decodesWordsOfItsCorpus() {
        const Run r =
            kvscope({"decode", "--prompt", "And God said", "--steps", "24", "--json", "-"});
        QVERIFY2(r.code == 0, r.err.constData());
        const QString text = QJsonDocument::fromJson(r.out).object()["text"].toString();
        const QStringList words = text.split(QRegularExpression("[^A-Za-z]+"), Qt::SkipEmptyParts);
        QVERIFY2(words.size() >= 8, qPrintable(text));
        const QStringList common{"the",   "and",  "of",  "unto", "that", "he",
                                 "shall", "LORD", "God", "to",   "in",   "his"};
        int known = 0;
        for (const QString& w : words) known += common.contains(w) ? 1 : 0;
        QVERIFY2(known >= 3, qPrintable(text));
    }

    void scoresTheHeldOutPassageAsRecorded_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<double>("recorded");
        QTest::newRow("tiny") << "builtin:tiny" << kPassageBitsPerByte;
        QTest::newRow("gqa") << "builtin:gqa" << kGqaPassageBitsPerByte;
    }
    void scoresTheHeldOutPassageAsRecorded() {
        QFETCH(QString, model);
        QFETCH(double, recorded);
        QTemporaryDir dir;
        const QString path = dir.filePath("passage.txt");
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(kPassage);
        f.close();
        const Run r = kvscope({"eval", "--model", model, "--text", path, "--backend", "cpu"});
        QVERIFY2(r.code == 0, r.err.constData());
        const QRegularExpressionMatch m =
            QRegularExpression("^([0-9.]+) bits per byte").match(QString::fromUtf8(r.out));
        QVERIFY2(m.hasMatch(), r.out.constData());
        const double bpb = m.captured(1).toDouble();
        QVERIFY2(std::abs(bpb - recorded) < 0.01, qPrintable(QString::number(bpb)));
        QVERIFY(bpb <= 2.0);
    }

    // The second model: a 6-layer Llama whose 8 query heads share 2 K/V heads, so its cache
    // holds a quarter of what the same model with plain multi-head attention would.
    void theGqaModelSharesKvHeads() {
        const Run r = kvscope({"info", "--model", "builtin:gqa", "--json"});
        QVERIFY2(r.code == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(o["arch"].toString(), QString("llama"));
        QCOMPARE(o["n_layer"].toInt(), 6);
        QCOMPARE(o["n_head"].toInt(), 8);
        QCOMPARE(o["n_head_kv"].toInt(), 2);
        QVERIFY(o["weight_bytes"].toDouble() <= 16.0 * 1024 * 1024);
        // 2 (K, V) x 6 layers x 2 K/V heads x 32 dims x 4 bytes; plain MHA: 8 heads, 4x as much
        QCOMPARE(o["kv_bytes_per_token"].toInt(), 2 * 6 * 2 * 32 * 4);
        const Run m = kvscope({"memory", "--model", "builtin:gqa", "--dtype", "fp32"});
        QVERIFY2(m.code == 0, m.err.constData());
        QVERIFY2(m.out.contains("3,072 B per token") && m.out.contains("12,288 B per token") &&
                     m.out.contains("4x less per token"),
                 m.out.constData());
    }

    // The heads a slide points at (resources/models/README.md): layer 4, head 5 puts at least
    // half its weight on the previous token of a KJV prompt; on 50 random tokens repeated, layer
    // 5, head 0 puts at least 0.3 on the token after each one's earlier copy (induction), and
    // layer 3, head 3 at least half on the first token (BOS, the attention sink), for two seeds.
    void theGqaModelHasTheClassicHeads() {
        const Run text = kvscope({"heads", "--model", "builtin:gqa", "--prompt", kGenesis,
                                  "--backend", "cpu", "--json"});
        QVERIFY2(text.code == 0, text.err.constData());
        const double previous = headScore(text.out, "previous", 4, 5);
        QVERIFY2(previous >= 0.5, qPrintable(QString::number(previous)));
        for (const char* seed : {"1337", "7"}) {
            const Run rep = kvscope({"heads", "--model", "builtin:gqa", "--random-repeat", "50",
                                     "--seed", seed, "--backend", "cpu", "--json"});
            QVERIFY2(rep.code == 0, rep.err.constData());
            const double induction = headScore(rep.out, "induction", 5, 0);
            const double sink = headScore(rep.out, "first", 3, 3);
            QVERIFY2(induction >= 0.3, qPrintable(QString::number(induction)));
            QVERIFY2(sink >= 0.5, qPrintable(QString::number(sink)));
        }
    }

    // The sink on KJV text: on each of these single verses (a lecturer's prompt; Colossians
    // 1:12, 15 and 14 from the held-out part) layer 5, head 5 puts at least half its weight on
    // the first token (0.74 on average over 20 held-out verses, the lowest 0.47). Over several
    // verses it does not hold (0.52 on two, 0.25 on five: resources/models/README.md).
    void theGqaModelRestsOnTheFirstTokenOfAVerse() {
        for (const char* verse :
             {"Giving thanks unto the Father, which hath made us meet to be partakers of the "
              "inheritance of the saints in light:",
              "Who is the image of the invisible God, the firstborn of every creature:",
              "In whom we have redemption through his blood, even the forgiveness of sins:"}) {
            const Run r = kvscope({"heads", "--model", "builtin:gqa", "--prompt", verse,
                                   "--backend", "cpu", "--json"});
            QVERIFY2(r.code == 0, r.err.constData());
            const double sink = headScore(r.out, "first", 5, 5);
            QVERIFY2(sink >= 0.5, qPrintable(QString("%1: %2").arg(verse).arg(sink)));
        }
    }
};

QTEST_GUILESS_MAIN(TstBuiltinModel)
#include "tst_builtin_model.moc"
