// The built-in model inside the kvscope binary: it loads with no --model, decodes, and scores a
// fixed held-out passage at the figure resources/models/README.md records.
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

// The figure resources/models/README.md records for this passage.
constexpr double kPassageBitsPerByte = 1.3991;

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

    void scoresTheHeldOutPassageAsRecorded() {
        QTemporaryDir dir;
        const QString path = dir.filePath("passage.txt");
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(kPassage);
        f.close();
        const Run r = kvscope({"eval", "--text", path, "--backend", "cpu"});
        QVERIFY2(r.code == 0, r.err.constData());
        const QRegularExpressionMatch m =
            QRegularExpression("^([0-9.]+) bits per byte").match(QString::fromUtf8(r.out));
        QVERIFY2(m.hasMatch(), r.out.constData());
        const double bpb = m.captured(1).toDouble();
        QVERIFY2(std::abs(bpb - kPassageBitsPerByte) < 0.01, qPrintable(QString::number(bpb)));
        QVERIFY(bpb <= 2.0);
    }
};

QTEST_GUILESS_MAIN(TstBuiltinModel)
#include "tst_builtin_model.moc"
