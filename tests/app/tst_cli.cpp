// The kvscope command line, run as a user runs it: JSON contract, exit codes, messages.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QSet>
#include <QTemporaryDir>
#include <QTest>

#include "model_fixtures.h"
#include "tokenizer.h"

using namespace kvscope;

namespace {

struct Run {
    int code = -1;
    QByteArray out, err;
};

Run runKvscope(const QStringList& args) {
    QProcess p;
    p.start(KVSCOPE_BIN, args);
    if (!p.waitForFinished(120000)) return {};
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(),
            p.readAllStandardError()};
}

QSet<QString> keysOf(const QJsonObject& o) {
    const QStringList k = o.keys();
    return QSet<QString>(k.begin(), k.end());
}

}  // namespace

class TstCli : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    QString gpt2_, llama_;

  private slots:
    void initTestCase() {
        QVERIFY(dir_.isValid());
        gpt2_ = dir_.filePath("gpt2.gguf");
        llama_ = dir_.filePath("llama.gguf");
        fixtures::writeModel(fixtures::gpt2Spec(), gpt2_.toStdString());
        fixtures::writeModel(fixtures::llamaGqaSpec(), llama_.toStdString());
    }

    void decodeJsonHoldsTheDocumentedFields_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<bool>("cache");
        QTest::newRow("gpt2 cached") << "gpt2" << true;
        QTest::newRow("gpt2 no-cache") << "gpt2" << false;
        QTest::newRow("llama_gqa cached") << "llama" << true;
    }
    void decodeJsonHoldsTheDocumentedFields() {
        QFETCH(QString, model);
        QFETCH(bool, cache);
        const QString path = model == "gpt2" ? gpt2_ : llama_;
        QStringList args{"decode", "--model",      path, "--prompt", "the cat", "--steps",
                         "5",      "--top-logits", "3",  "--json",   "-"};
        if (!cache) args << "--no-cache";
        const Run r = runKvscope(args);
        QVERIFY2(r.code == 0, r.err.constData());
        QJsonParseError perr;
        const QJsonDocument doc = QJsonDocument::fromJson(r.out, &perr);
        QVERIFY2(perr.error == QJsonParseError::NoError, qPrintable(perr.errorString()));
        const QJsonObject o = doc.object();
        QCOMPARE(keysOf(o), (QSet<QString>{"model", "backend", "cache", "prompt_tokens",
                                           "prefill_ms", "steps", "text"}));
        const QJsonObject m = o["model"].toObject();
        QCOMPARE(keysOf(m), (QSet<QString>{"path", "arch", "n_layer", "n_head", "n_head_kv",
                                           "n_embd", "n_ctx", "n_vocab"}));
        QCOMPARE(m["path"].toString(), path);
        QCOMPARE(m["arch"].toString(), model == "gpt2" ? "gpt2" : "llama");
        QCOMPARE(m["n_layer"].toInt(), 2);
        QCOMPARE(m["n_head"].toInt(), 4);
        QCOMPARE(m["n_head_kv"].toInt(), model == "gpt2" ? 4 : 2);
        QCOMPARE(m["n_embd"].toInt(), 32);
        QCOMPARE(m["n_ctx"].toInt(), 64);
        QCOMPARE(m["n_vocab"].toInt(), 300);
        QCOMPARE(o["backend"].toObject()["name"].toString(), "cpu");
        QVERIFY(!o["backend"].toObject()["device"].toString().isEmpty());
        QCOMPARE(o["cache"].toBool(), cache);
        QVERIFY(o["prefill_ms"].toDouble() > 0);

        // The prompt's ids are the fixture tokenizer's encoding of "the cat".
        const auto spec = model == "gpt2" ? fixtures::gpt2Spec() : fixtures::llamaGqaSpec();
        const std::vector<int32_t> ids = fixtures::makeModel(spec)->tokenizer.encode("the cat");
        const QJsonArray prompt = o["prompt_tokens"].toArray();
        QCOMPARE(prompt.size(), static_cast<qsizetype>(ids.size()));
        for (qsizetype i = 0; i < prompt.size(); ++i)
            QCOMPARE(prompt[i].toInt(), ids[static_cast<size_t>(i)]);
        const QJsonArray steps = o["steps"].toArray();
        QCOMPARE(steps.size(), 5);
        // kv_bytes: 2 × 2 layers × kv heads × 8 × 4 bytes per token held
        const qint64 perToken = 2 * 2 * (model == "gpt2" ? 4 : 2) * 8 * 4;
        QString joined;
        for (int i = 0; i < steps.size(); ++i) {
            const QJsonObject s = steps[i].toObject();
            QCOMPARE(keysOf(s), (QSet<QString>{"token", "text", "latency_ms", "kv_bytes", "top"}));
            QVERIFY(s["latency_ms"].toDouble() > 0);
            QCOMPARE(s["kv_bytes"].toInteger(), cache ? perToken * (prompt.size() + i + 1) : 0);
            const QJsonArray top = s["top"].toArray();
            QCOMPARE(top.size(), 3);
            // greedy: the token is the best of the distribution it was drawn from
            QCOMPARE(top[0].toArray()[0].toInt(), s["token"].toInt());
            QVERIFY(top[0].toArray()[1].toDouble() >= top[1].toArray()[1].toDouble());
            joined += s["text"].toString();
        }
        QCOMPARE(o["text"].toString(), joined);
    }

    void cacheAndNoCacheGiveTheSameTokens() {
        auto tokens = [&](bool cache) {
            QStringList a{"decode",  "--model", gpt2_,    "--prompt", "hello",
                          "--steps", "12",      "--json", "-"};
            if (!cache) a << "--no-cache";
            const Run r = runKvscope(a);
            QList<int> ids;
            for (const auto& s : QJsonDocument::fromJson(r.out).object()["steps"].toArray())
                ids << s.toObject()["token"].toInt();
            return ids;
        };
        const QList<int> a = tokens(true);
        QCOMPARE(a.size(), 12);
        QCOMPARE(tokens(false), a);
    }

    void sameSeedSameText() {
        const QStringList a{"decode", "--model",       llama_, "--prompt", "abc", "--steps",
                            "10",     "--temperature", "1.5",  "--top-p",  "0.9", "--seed",
                            "3",      "--json",        "-"};
        const Run r1 = runKvscope(a), r2 = runKvscope(a);
        QCOMPARE(r1.code, 0);
        const auto t1 = QJsonDocument::fromJson(r1.out).object()["text"].toString();
        QCOMPARE(QJsonDocument::fromJson(r2.out).object()["text"].toString(), t1);
    }

    void jsonToAFileAndTextToStdout() {
        const QString out = dir_.filePath("run.json");
        const Run r = runKvscope(
            {"decode", "--model", gpt2_, "--prompt", "xy", "--steps", "3", "--json", out});
        QCOMPARE(r.code, 0);
        QVERIFY(r.out.startsWith("xy"));
        QFile f(out);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QJsonObject o = QJsonDocument::fromJson(f.readAll()).object();
        QCOMPARE(o["steps"].toArray().size(), 3);
        QCOMPARE(QString::fromUtf8(r.out).trimmed(), "xy" + o["text"].toString());
    }

    void infoJsonDescribesTheModel() {
        const Run r = runKvscope({"info", "--model", llama_, "--json"});
        QCOMPARE(r.code, 0);
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(o["arch"].toString(), "llama");
        QCOMPARE(o["n_head_kv"].toInt(), 2);
        QCOMPARE(o["kv_bytes_per_token"].toInteger(), 2 * 2 * 2 * 8 * 4);
        QCOMPARE(o["kv_bytes_full_context"].toInteger(), 2 * 2 * 2 * 8 * 4 * 64);
    }

    void usageErrorsExitTwo_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("unknown command") << QStringList{"fly"} << "unknown command 'fly'";
        QTest::newRow("unknown option")
            << QStringList{"decode", "--prompt", "a", "--speed", "3"} << "--speed";
        QTest::newRow("missing prompt") << QStringList{"decode"} << "--prompt is required";
        QTest::newRow("steps not a number")
            << QStringList{"decode", "--prompt", "a", "--steps", "many"} << "--steps";
        QTest::newRow("negative temperature")
            << QStringList{"decode", "--prompt", "a", "--temperature", "-1"} << "--temperature";
        QTest::newRow("top-p above one")
            << QStringList{"decode", "--prompt", "a", "--top-p", "1.5"} << "--top-p";
        QTest::newRow("bad backend")
            << QStringList{"decode", "--prompt", "a", "--backend", "tpu"} << "--backend";
        QTest::newRow("value missing") << QStringList{"decode", "--prompt"} << "needs a value";
    }
    void usageErrorsExitTwo() {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        args.insert(1, "--model");
        args.insert(2, gpt2_);
        const Run r = runKvscope(args);
        QCOMPARE(r.code, 2);
        QVERIFY2(QString::fromUtf8(r.err).contains(message), r.err.constData());
        QCOMPARE(r.err.count('\n'), 1);  // one clear line
    }

    void failuresExitOne_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("missing file")
            << QStringList{"info", "--model", "/nonexistent/m.gguf"} << "/nonexistent/m.gguf";
        QTest::newRow("prompt longer than context")
            << QStringList{"decode", "--prompt", QString(100, '!')} << "context holds 64";
        QTest::newRow("steps past the context")
            << QStringList{"decode", "--prompt", "!!", "--steps", "70"} << "context is full";
        QTest::newRow("opencl not built")
            << QStringList{"decode", "--prompt", "a", "--backend", "opencl"} << "OpenCL";
    }
    void failuresExitOne() {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        if (!args.contains("--model")) args << "--model" << gpt2_;
        const Run r = runKvscope(args);
        QCOMPARE(r.code, 1);
        QVERIFY2(QString::fromUtf8(r.err).contains(message), r.err.constData());
    }

    void corruptFileIsAnErrorNotACrash() {
        QFile src(gpt2_);
        QVERIFY(src.open(QIODevice::ReadOnly));
        const QByteArray bytes = src.readAll();
        for (qsizetype cut :
             {qsizetype(0), qsizetype(3), qsizetype(40), bytes.size() / 2, bytes.size() - 1}) {
            const QString path = dir_.filePath(QString("cut%1.gguf").arg(cut));
            QFile f(path);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write(bytes.left(cut));
            f.close();
            const Run r = runKvscope({"decode", "--model", path, "--prompt", "a"});
            QCOMPARE(r.code, 1);
            QVERIFY2(QString::fromUtf8(r.err).contains(path), r.err.constData());
        }
    }
};

QTEST_GUILESS_MAIN(TstCli)
#include "tst_cli.moc"
