// The kvscope command line, run as a user runs it: JSON contract, exit codes, messages.
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QRegularExpression>
#include <QSet>
#include <QTemporaryDir>
#include <QTest>
#include <csignal>

#include "gguf/dequant.h"
#include "gguf/gguf.h"
#include "model/random_model.h"
#include "model_fixtures.h"
#include "opencl/device_list.h"
#include "text/tokenizer.h"

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

// The index of the first usable OpenCL device, or -1 (with `why` saying so).
int firstUsableOpenClDevice(QString& why) {
    const ocl::DeviceList list = ocl::listDevices();
    for (const ocl::DeviceInfo& d : list.devices)
        if (d.usable) return d.index;
    why = list.devices.empty() ? "no OpenCL device exists on this machine (" +
                                     QString::fromStdString(list.problem) + ")"
                               : "OpenCL devices exist but none is usable";
    return -1;
}

QList<int> stepTokens(const QJsonObject& decodeJson) {
    QList<int> ids;
    for (const auto& s : decodeJson["steps"].toArray()) ids << s.toObject()["token"].toInt();
    return ids;
}

}  // namespace

class TstCli : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    QString gpt2_, llama_;
    QString draft_, otherVocab_;  // a draft model sharing gpt2_'s vocabulary; one that does not

  private slots:
    // The help comes from the parsers: every option a command's help names is one it accepts
    // (an unknown option would exit 2 naming it), the overview names every command, and the
    // export views listed are the ones export takes.
    void helpComesFromTheParsers() {
        const Run top = runKvscope({"--help"});
        QCOMPARE(top.code, 0);
        const QStringList commands{"info",  "devices", "decode", "memory", "export",
                                   "heads", "eval",    "train",  "bench",  "convert"};
        for (const QString& c : commands) {
            QVERIFY2(top.out.contains(("kvscope " + c + " ").toUtf8()), qPrintable(c));
            const Run help = runKvscope({c, "--help"});
            QCOMPARE(help.code, 0);
            QVERIFY(help.out.startsWith(("kvscope " + c + ": ").toUtf8()));
            // each "--name" of the options list is accepted by the parser: with a bogus value
            // the error, if any, is about the value, never an unknown option
            static const QRegularExpression optionLine("^  (--[a-z-]+)",
                                                       QRegularExpression::MultilineOption);
            int options = 0;
            for (auto m = optionLine.globalMatch(QString::fromUtf8(help.out)); m.hasNext();) {
                const QString option = m.next().captured(1);
                if (option == "--help") continue;
                ++options;
                const Run r = runKvscope({c, option + "=?", "--help"});
                QVERIFY2(!r.err.contains("unknown option"),
                         qPrintable(c + " " + option + ": " + r.err));
                QVERIFY2(top.out.contains(option.toUtf8()), qPrintable(option));
            }
            QVERIFY(options > 0 || c == "devices");
        }
        const Run ex = runKvscope({"export", "--help"});
        for (const char* v : {"step", "attention", "heads", "cache", "memory", "latency",
                              "calculator", "next", "trace"})
            QVERIFY2(ex.out.contains(v), v);
        QCOMPARE(runKvscope({"decode", "--model", gpt2_, "--prompt", "a", "--speed", "1"}).code, 2);
    }

    // A prompt that looks like an option is a prompt: --prompt takes the next argument whole.
    void aPromptMayLookLikeAnOption() {
        const QString json = dir_.filePath("h.json");
        const Run r = runKvscope(
            {"decode", "--model", gpt2_, "--prompt", "-h", "--steps", "1", "--json", json});
        QVERIFY2(r.code == 0, r.err.constData());
        QVERIFY(!r.out.contains("usage"));
        QFile f(json);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QJsonObject o = QJsonDocument::fromJson(f.readAll()).object();
        QVERIFY(!o["prompt_tokens"].toArray().isEmpty());
        QCOMPARE(o["steps"].toArray().size(), 1);
    }

    // --screenshot renders the window headless; --tab takes the view names that export takes.
    void screenshotTakesViewNames() {
        const QString png = dir_.filePath("shot.png");
        const Run r = runKvscope({"--screenshot", png, "--model", gpt2_, "--prompt", "the cat",
                                  "--steps", "2", "--tab", "attention", "--size", "1280x720"});
        QVERIFY2(r.code == 0, r.err.constData());
        // the PNG's IHDR chunk: width and height, big-endian, at bytes 16 and 20
        QFile f(png);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray head = f.read(24);
        QVERIFY(head.startsWith("\x89PNG"));
        auto be32 = [&](int at) {
            return (uint8_t(head[at]) << 24) | (uint8_t(head[at + 1]) << 16) |
                   (uint8_t(head[at + 2]) << 8) | uint8_t(head[at + 3]);
        };
        QCOMPARE(be32(16), 1280u);
        QCOMPARE(be32(20), 720u);
        const Run bad = runKvscope({"--screenshot", png, "--tab", "sideways"});
        QCOMPARE(bad.code, 2);
        QVERIFY2(bad.err.contains("--tab expects step, attention"), bad.err.constData());
    }

    void initTestCase() {
        QVERIFY(dir_.isValid());
        gpt2_ = dir_.filePath("gpt2.gguf");
        llama_ = dir_.filePath("llama.gguf");
        fixtures::writeModel(fixtures::gpt2Spec(), gpt2_.toStdString());
        fixtures::writeModel(fixtures::llamaGqaSpec(), llama_.toStdString());
        RandomModelSpec draft = fixtures::gpt2Spec();
        draft.nLayer = 1;
        draft.seed = 77;
        draft_ = dir_.filePath("draft.gguf");
        fixtures::writeModel(draft, draft_.toStdString());
        draft.nVocab = 320;
        otherVocab_ = dir_.filePath("other-vocab.gguf");
        fixtures::writeModel(draft, otherVocab_.toStdString());
    }

    // Built-in models by name: builtin:tiny is the model inside the binary (the same one no
    // --model gives); a name that is none is refused, naming the ones there are.
    void builtInModelsByName() {
        const Run named = runKvscope({"info", "--model", "builtin:tiny", "--json"});
        const Run unnamed = runKvscope({"info", "--json"});
        QCOMPARE(named.code, 0);
        QCOMPARE(unnamed.code, 0);
        const QJsonObject a = QJsonDocument::fromJson(named.out).object();
        QCOMPARE(a, QJsonDocument::fromJson(unnamed.out).object());
        QCOMPARE(a["path"].toString(), QString(":/models/kvscope-tiny.gguf"));
        const Run none = runKvscope({"info", "--model", "builtin:nope"});
        QCOMPARE(none.code, 1);
        QVERIFY2(none.err.contains("there is no built-in model 'nope': this binary has tiny, gqa"),
                 none.err.constData());
    }

    // decode --speculative: the tokens and text of plain greedy decoding, plain's JSON with each
    // step's round and whether it was an accepted draft, and a "speculative" object whose rounds
    // add up to the summary; the cache ends holding prompt and steps, as plain decoding's.
    void speculativeDecodeGivesPlainTokensAndReportsRounds_data() {
        QTest::addColumn<QString>("method");
        QTest::addColumn<int>("draft");
        QTest::newRow("lookup 4") << "lookup" << 4;
        QTest::newRow("lookup 1") << "lookup" << 1;
        QTest::newRow("draft model 3") << "model" << 3;
        QTest::newRow("the model itself as draft 5") << "self" << 5;
    }
    void speculativeDecodeGivesPlainTokensAndReportsRounds() {
        QFETCH(QString, method);
        QFETCH(int, draft);
        const QStringList plainArgs{"decode",  "--model", gpt2_,    "--prompt", "the cat sat",
                                    "--steps", "40",      "--json", "-"};
        const QString kind = method == "lookup" ? "lookup"
                             : method == "self" ? "model:" + gpt2_
                                                : "model:" + draft_;
        const Run plain = runKvscope(plainArgs);
        const Run spec = runKvscope(
            plainArgs + QStringList{"--speculative", kind, "--draft", QString::number(draft)});
        QVERIFY2(plain.code == 0, plain.err.constData());
        QVERIFY2(spec.code == 0, spec.err.constData());
        const QJsonObject a = QJsonDocument::fromJson(plain.out).object();
        const QJsonObject b = QJsonDocument::fromJson(spec.out).object();
        QCOMPARE(keysOf(b), keysOf(a) + QSet<QString>{"speculative"});
        QCOMPARE(stepTokens(b).size(), 40);
        QCOMPARE(stepTokens(b), stepTokens(a));
        QCOMPARE(b["text"].toString(), a["text"].toString());

        const QJsonArray steps = b["steps"].toArray();
        const qint64 perToken = 2 * 2 * 4 * 8 * 4;
        const qsizetype prompt = b["prompt_tokens"].toArray().size();
        int lastRound = -1;
        for (qsizetype i = 0; i < steps.size(); ++i) {
            const QJsonObject s = steps[i].toObject();
            QCOMPARE(keysOf(s), (QSet<QString>{"token", "text", "latency_ms", "kv_bytes", "top",
                                               "round", "drafted"}));
            // greedy: each token is the best of the distribution that chose it
            QCOMPARE(s["top"].toArray()[0].toArray()[0].toInt(), s["token"].toInt());
            // the cache held at least the tokens so far after the pass that cached this one
            QVERIFY(s["kv_bytes"].toInteger() >= perToken * (prompt + i + 1));
            QCOMPARE(s["kv_bytes"].toInteger() % perToken, 0);
            QVERIFY(s["round"].toInt() >= lastRound);
            lastRound = s["round"].toInt();
        }
        QCOMPARE(steps.last().toObject()["kv_bytes"].toInteger(), perToken * (prompt + 40));

        const QJsonObject sp = b["speculative"].toObject();
        QCOMPARE(sp["method"].toString(), method == "lookup" ? "lookup" : "model");
        QCOMPARE(sp["draft"].toInt(), draft);
        const QJsonArray rounds = sp["rounds"].toArray();
        QCOMPARE(rounds.size(), lastRound + 1);
        int drafted = 0, accepted = 0, emitted = 0;
        QList<int> emittedIds;
        for (qsizetype r = 0; r < rounds.size(); ++r) {
            const QJsonObject o = rounds[r].toObject();
            QVERIFY(o["drafted"].toInt() <= draft);
            QCOMPARE(o["draft"].toArray().size(), o["drafted"].toInt());
            QVERIFY(o["accepted"].toInt() <= o["drafted"].toInt());
            // the accepted drafts are the start of what the round emitted after its first token
            const QJsonArray d = o["draft"].toArray(), e = o["emitted"].toArray();
            const int skip = r == 0 ? 1 : 0;
            QCOMPARE(e.size(), skip + o["accepted"].toInt() + 1);
            for (int k = 0; k < o["accepted"].toInt(); ++k) QCOMPARE(e[skip + k], d[k]);
            qsizetype drafts = 0;
            for (qsizetype k = 0; k < steps.size(); ++k)
                if (steps[k].toObject()["round"].toInt() == r &&
                    steps[k].toObject()["drafted"].toBool())
                    ++drafts;
            QCOMPARE(drafts, static_cast<qsizetype>(o["accepted"].toInt()));
            drafted += o["drafted"].toInt();
            accepted += o["accepted"].toInt();
            emitted += static_cast<int>(e.size());
            for (const auto& id : e) emittedIds << id.toInt();
        }
        QCOMPARE(emitted, 40);
        QCOMPARE(emittedIds, stepTokens(a));
        const QJsonObject sum = sp["summary"].toObject();
        QCOMPARE(sum["rounds"].toInt(), rounds.size());
        QCOMPARE(sum["drafted"].toInt(), drafted);
        QCOMPARE(sum["accepted"].toInt(), accepted);
        QCOMPARE(sum["tokens"].toInt(), 40);
        QVERIFY(std::abs(sum["acceptance_rate"].toDouble() -
                         (drafted > 0 ? double(accepted) / drafted : 0.0)) < 1e-12);
        QVERIFY(sum["tokens_per_s"].toDouble() > 0);
        // every round but a last one that drafts nothing runs one pass; the last token one more
        QVERIFY(sum["target_passes"].toInt() <= rounds.size() + 1);
        if (method == "self") QCOMPARE(accepted, drafted);  // its own drafts are all right
        QVERIFY2(spec.err.contains("accepted"), spec.err.constData());
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

    // With a temperature the rounds sample (the rejection rule): the same seed gives the same
    // text, every step's token is among the top-k it was drawn from, and the rounds add up.
    void speculativeSamplingIsReproducible() {
        const QStringList a{"decode",
                            "--model",
                            gpt2_,
                            "--prompt",
                            "the cat the cat",
                            "--steps",
                            "30",
                            "--top-k",
                            "5",
                            "--temperature",
                            "1.2",
                            "--seed",
                            "9",
                            "--top-logits",
                            "5",
                            "--speculative",
                            "lookup",
                            "--draft",
                            "3",
                            "--json",
                            "-"};
        const Run r1 = runKvscope(a), r2 = runKvscope(a);
        QVERIFY2(r1.code == 0, r1.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r1.out).object();
        QCOMPARE(QJsonDocument::fromJson(r2.out).object()["text"].toString(), o["text"].toString());
        const QJsonArray steps = o["steps"].toArray();
        QCOMPARE(steps.size(), 30);
        for (const auto& v : steps) {
            bool inTop = false;
            for (const auto& t : v.toObject()["top"].toArray())
                inTop = inTop || t.toArray()[0].toInt() == v.toObject()["token"].toInt();
            QVERIFY(inTop);
        }
        QCOMPARE(o["speculative"].toObject()["summary"].toObject()["tokens"].toInt(), 30);
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

    // --kv-type f16: the JSON's kv_bytes (measured from the cache) are half of f32's, and
    // --context caps the run (the model's 64 tokens, asked for 32).
    void kvTypeAndContextReachTheCache() {
        auto run = [&](const QStringList& extra) {
            QStringList a{"decode", "--model",   llama_, "--prompt", "hello", "--steps",
                          "4",      "--backend", "cpu",  "--json",   "-"};
            const Run r = runKvscope(a + extra);
            return QJsonDocument::fromJson(r.out).object();
        };
        const QJsonObject f32 = run({}), f16 = run({"--kv-type", "f16"});
        const double b32 = f32["steps"].toArray().last().toObject()["kv_bytes"].toDouble();
        const double b16 = f16["steps"].toArray().last().toObject()["kv_bytes"].toDouble();
        QVERIFY(b32 > 0);
        QCOMPARE(b16 * 2, b32);
        QCOMPARE(run({"--context", "32"})["model"].toObject()["n_ctx"].toInt(), 32);
        QCOMPARE(f32["model"].toObject()["n_ctx"].toInt(), 64);
    }

    // The cache lab's options reach the cache: with sinks 1 + window 4 the cache holds 1 + 3
    // tokens' rows between steps (KvCache), so each step's kv_bytes is 4 × the bytes per token of
    // the f32 run; each step reports its drift from the full cache and the keys it let go of; eval
    // says the same bytes and compares with the full cache; bad combinations are refused.
    void cachePolicyOptionsReachTheCache() {
        auto decode = [&](const QStringList& extra) {
            QStringList a{"decode", "--model",   llama_, "--prompt", "hello", "--steps",
                          "6",      "--backend", "cpu",  "--json",   "-"};
            const Run r = runKvscope(a + extra);
            return QJsonDocument::fromJson(r.out).object();
        };
        const QJsonObject full = decode({}), windowed = decode({"--window", "4", "--sinks", "1"});
        const QJsonArray fullSteps = full["steps"].toArray();
        const qint64 tokens = full["prompt_tokens"].toArray().size() + fullSteps.size();
        const qint64 perToken = fullSteps.last().toObject()["kv_bytes"].toInteger() / tokens;
        QVERIFY(perToken > 0);
        QCOMPARE(windowed["cache_policy"].toString(), QString("sinks 1 + window 4"));
        QVERIFY(!full.contains("drift"));
        const qint64 promptLength = windowed["prompt_tokens"].toArray().size();
        qint64 position = promptLength;
        for (const auto& v : windowed["steps"].toArray()) {
            const QJsonObject step = v.toObject();
            QCOMPARE(step["kv_bytes"].toInteger(), std::min<qint64>(4, position + 1) * perToken);
            const QJsonObject drift = step["drift"].toObject();
            QVERIFY(drift["kl"].toDouble() >= 0);
            QVERIFY(drift["full_choice_prob"].toDouble() > 0);
            QCOMPARE(drift["full_kv_bytes"].toInteger(), (position + 1) * perToken);
            // after the query at p, position p - 3 leaves each of the 2 layers (0 is a sink)
            const QJsonArray gone = step["evicted"].toArray();
            if (position >= 4) {
                QCOMPARE(gone.size(), 2);
                for (const auto& e : gone) QCOMPARE(e.toArray()[1].toInteger(), position - 3);
            } else {
                QVERIFY(gone.isEmpty());
            }
            ++position;
        }

        const QString text = dir_.filePath("policy.txt");
        {
            QFile f(text);
            QVERIFY(f.open(QIODevice::WriteOnly));
            for (int i = 0; i < 40; ++i) f.write("the cat sat on the mat. ");
        }
        const Run eval = runKvscope({"eval", "--model", llama_, "--text", text, "--backend", "cpu",
                                     "--window", "4", "--sinks", "1", "--json", "-"});
        QCOMPARE(eval.code, 0);
        const QJsonObject e = QJsonDocument::fromJson(eval.out).object();
        QCOMPARE(e["kv_bytes"].toInteger(), 4 * perToken);
        QCOMPARE(e["full_kv_bytes"].toInteger(), 64 * perToken);  // a whole window of the context
        QVERIFY(e["top1_agreement"].toDouble() >= 0 && e["top1_agreement"].toDouble() <= 1);
        QVERIFY(e["mean_kl"].toDouble() > 0);
        QVERIFY(e["bits_per_byte"].toDouble() > 0);

        const Run noWindow =
            runKvscope({"decode", "--model", llama_, "--prompt", "a", "--sinks", "2"});
        QCOMPARE(noWindow.code, 2);
        QVERIFY2(noWindow.err.contains("give a window too"), noWindow.err.constData());
        // the llama fixture's heads hold 8 values: not whole q8_0 blocks
        const Run q8 =
            runKvscope({"decode", "--model", llama_, "--prompt", "a", "--kv-type", "q8_0"});
        QCOMPARE(q8.code, 1);
        QVERIFY2(q8.err.contains("multiple of 32"), q8.err.constData());
    }

    // --fork: the first branch goes on exactly as a plain decode of the same seed does; the
    // blocks wholly inside the shared prefix are the same blocks in both tables (2 references),
    // the rest each branch's own; the bytes stored count each block once.
    void aForkSharesThePrefixBlocks() {
        const QStringList common{"decode", "--model",   llama_,          "--prompt", "hello world",
                                 "--seed", "3",         "--temperature", "1",        "--block",
                                 "4",      "--backend", "cpu",           "--json",   "-"};
        const Run r = runKvscope(common + QStringList{"--steps", "4", "--fork", "6"});
        QVERIFY2(r.code == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        const QJsonObject fork = o["fork"].toObject();
        const QJsonArray branches = fork["branches"].toArray();
        QCOMPARE(branches.size(), 2);
        const Run plain = runKvscope(common + QStringList{"--steps", "10"});
        const QList<int> all = stepTokens(QJsonDocument::fromJson(plain.out).object());
        QList<int> first;
        for (const auto& t : branches[0].toObject()["tokens"].toArray()) first << t.toInt();
        QCOMPARE(first, all.mid(4));

        const int prefix = static_cast<int>(o["prompt_tokens"].toArray().size()) + 4;
        const QJsonArray a = branches[0].toObject()["blocks"].toArray();
        const QJsonArray b = branches[1].toObject()["blocks"].toArray();
        QSet<qint64> ids;
        for (int i = 0; i < a.size(); ++i) {
            const qint64 idA = a[i].toArray()[0].toInteger(), idB = b[i].toArray()[0].toInteger();
            ids << idA << idB;
            if (i < prefix / 4) {  // wholly inside the prefix: shared
                QCOMPARE(idA, idB);
                QCOMPARE(a[i].toArray()[1].toInt(), 2);
            } else {  // written by each branch: its own copy
                QVERIFY(idA != idB);
                QCOMPARE(a[i].toArray()[1].toInt(), 1);
            }
        }
        const qint64 block = fork["block_bytes"].toInteger();
        QCOMPARE(fork["stored_bytes"].toInteger(), ids.size() * block);
        QCOMPARE(fork["separate_bytes"].toInteger(), (a.size() + b.size()) * block);
        QVERIFY(fork["stored_bytes"].toInteger() < fork["separate_bytes"].toInteger());

        const Run bad =
            runKvscope({"decode", "--model", llama_, "--prompt", "a", "--fork", "2", "--no-cache"});
        QCOMPARE(bad.code, 2);
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
        // the fixture is float32: kept so on an OpenCL device, at the same size
        QVERIFY2(o["opencl_weights"].toString().startsWith("weights on the device: F32 native"),
                 qPrintable(o["opencl_weights"].toString()));
        QCOMPARE(o["opencl_weight_bytes"].toInteger(), o["weight_bytes"].toInteger());
        // float32 has no scales to widen on a CPU device
        QCOMPARE(o["opencl_weight_bytes_cpu_device"].toInteger(), o["weight_bytes"].toInteger());
    }

    // `memory --json` holds TEACHING.md's worked figures (arithmetic by hand in each row).
    void memoryJsonHoldsTheWorkedFigures_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("field");
        QTest::addColumn<double>("expected");
        // GPT-2 small fp16: 2 × 12 × 768 × 2 B = 36,864 B per token; fp32: × 4 B = 73,728
        QTest::newRow("gpt2 fp16")
            << QStringList{"--preset", "gpt2"} << "bytes_per_token" << 36864.0;
        QTest::newRow("gpt2 fp32")
            << QStringList{"--preset", "gpt2", "--dtype", "fp32"} << "bytes_per_token" << 73728.0;
        // Llama-3-70B: GQA 2 × 80 × 8 × 128 × 2 = 327,680; as MHA 2 × 80 × 8192 × 2 = 2,621,440;
        // as MHA for 4,096 tokens: 2,621,440 × 4,096 = 10,737,418,240 B = 10 GiB; ratio 8
        QTest::newRow("llama-3-70b gqa")
            << QStringList{"--preset", "llama-3-70b"} << "bytes_per_token" << 327680.0;
        QTest::newRow("llama-3-70b mha")
            << QStringList{"--preset", "llama-3-70b"} << "mha_bytes_per_token" << 2621440.0;
        QTest::newRow("llama-3-70b mha 4096")
            << QStringList{"--preset", "llama-3-70b", "--context", "4096"} << "mha_total_bytes"
            << 10737418240.0;
        QTest::newRow("llama-3-70b ratio")
            << QStringList{"--preset", "llama-3-70b"} << "mha_ratio" << 8.0;
        // OPT-30B fp16, batch 128, 1,024 tokens: 2 × 2 × 48 × 7168 × 1024 × 128 B
        QTest::newRow("opt-30b cache")
            << QStringList{"--preset", "opt-30b", "--context", "1024", "--batch", "128"}
            << "total_bytes" << 180388626432.0;
        // weights: 30e9 parameters × 2 B = 60 GB
        QTest::newRow("opt-30b weights")
            << QStringList{"--preset", "opt-30b"} << "weight_bytes" << 60e9;
        // int4 halves a byte: 2 × 12 × 768 × 0.5 = 9,216
        QTest::newRow("gpt2 int4")
            << QStringList{"--preset", "gpt2", "--dtype", "int4"} << "bytes_per_token" << 9216.0;
        // Mistral-7B's 4,096-token window: 32,768 tokens keep 4,096
        QTest::newRow("mistral window")
            << QStringList{"--preset", "mistral-7b", "--context", "32768"} << "tokens_kept"
            << 4096.0;
        QTest::newRow("mistral no window")
            << QStringList{"--preset", "mistral-7b", "--context", "32768", "--window", "0"}
            << "tokens_kept" << 32768.0;
    }
    void memoryJsonHoldsTheWorkedFigures() {
        QFETCH(QStringList, args);
        QFETCH(QString, field);
        QFETCH(double, expected);
        const Run r = runKvscope(QStringList{"memory"} + args + QStringList{"--json"});
        QCOMPARE(r.code, 0);
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        QVERIFY2(o.contains(field), r.out.constData());
        QCOMPARE(o[field].toDouble(), expected);
    }

    // 470 GB at 3.3 TB/s is about 140 ms: here the H100's 3.35 TB/s and OPT-30B at batch 128:
    // (60e9 + 180,388,626,432) B / 3.35e12 B/s = 71.76 ms per step; $2/h → cost per 10^6 tokens
    // = 2 / (128 × 3600 / 0.07176) × 10^6 = $0.3115.
    void memoryEstimatesShowTheirArithmetic() {
        const Run r = runKvscope({"memory", "--preset", "opt-30b", "--context", "1024", "--batch",
                                  "128", "--gpu", "h100-sxm", "--price", "2", "--json"});
        QCOMPARE(r.code, 0);
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        const double seconds = (60e9 + 180388626432.0) / 3.35e12;
        const QJsonObject e = o["estimates"].toObject();
        QVERIFY(std::abs(e["decode_ms_lower_bound"].toDouble() - seconds * 1e3) < 1e-9);
        QVERIFY(std::abs(e["cost_per_million_tokens_usd"].toDouble() -
                         2.0 / (128 * 3600.0 / seconds) * 1e6) < 1e-9);
        QVERIFY(o["arithmetic"].toObject()["decode_time"].toString().startsWith("estimate:"));
        QCOMPARE(o["fits"].toBool(), false);

        const Run text = runKvscope({"memory", "--preset", "gpt2"});
        QCOMPARE(text.code, 0);
        QVERIFY2(text.out.contains("2 (K and V) x 12 layers x 12 kv heads x 64 head dim x 2 B = "
                                   "36,864 B per token"),
                 text.out.constData());
        QVERIFY(text.out.contains("estimate:"));
    }

    // --model: the loaded model's shape, fp32 as KVScope stores it; the same bytes per token as
    // `info` (2 layers × 2 kv heads × 8 × 4 B × 2 = 256) and the full context by default.
    void memoryOfTheLoadedModel() {
        const Run r = runKvscope({"memory", "--model", llama_, "--json"});
        QCOMPARE(r.code, 0);
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(o["bytes_per_token"].toInteger(), 2 * 2 * 2 * 8 * 4);
        QCOMPARE(o["total_bytes"].toInteger(), 2 * 2 * 2 * 8 * 4 * 64);
        QCOMPARE(o["model"].toObject()["attention"].toString(), "GQA");
        // the weights as the file stores them (here float32, so the figure is the same either
        // way; the quantized case is convertWritesTheMatricesAsTheType's), as `info` reports them
        QCOMPARE(o["inputs"].toObject()["weights_as_stored"].toBool(), true);
        const Run info = runKvscope({"info", "--model", llama_, "--json"});
        QCOMPARE(o["weight_bytes"].toDouble(),
                 QJsonDocument::fromJson(info.out).object()["weight_bytes"].toDouble());
        const Run list = runKvscope({"memory", "--list", "--json"});
        QCOMPARE(list.code, 0);
        QCOMPARE(QJsonDocument::fromJson(list.out).object()["presets"].toArray().size(), 10);
    }

    void memoryUsageErrorsExitTwo_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("nothing") << QStringList{} << "--preset";
        QTest::newRow("unknown preset") << QStringList{"--preset", "gpt5"} << "unknown preset";
        QTest::newRow("bad dtype")
            << QStringList{"--preset", "gpt2", "--dtype", "fp6"} << "--dtype";
        QTest::newRow("bad gpu") << QStringList{"--preset", "gpt2", "--gpu", "tpu"} << "--gpu";
        QTest::newRow("zero batch") << QStringList{"--preset", "gpt2", "--batch", "0"} << "--batch";
    }
    void memoryUsageErrorsExitTwo() {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        const Run r = runKvscope(QStringList{"memory"} + args);
        QCOMPARE(r.code, 2);
        QVERIFY2(QString::fromUtf8(r.err).contains(message), r.err.constData());
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
        QTest::newRow("bad speculative")
            << QStringList{"decode", "--prompt", "a", "--speculative", "ngram"}
            << "--speculative must be lookup or model:PATH, got 'ngram'";
        QTest::newRow("speculative model without a path")
            << QStringList{"decode", "--prompt", "a", "--speculative", "model:"}
            << "needs the draft model's path";
        QTest::newRow("draft without speculative")
            << QStringList{"decode", "--prompt", "a", "--draft", "3"} << "give --speculative too";
        QTest::newRow("draft zero")
            << QStringList{"decode", "--prompt", "a", "--speculative", "lookup", "--draft", "0"}
            << "--draft must be between 1 and 64";
        QTest::newRow("draft not a number")
            << QStringList{"decode", "--prompt", "a", "--speculative", "lookup", "--draft", "x"}
            << "--draft expects an integer";
        QTest::newRow("convert to an unknown type")
            << QStringList{"convert", "--out", "x.gguf", "--type", "q9"}
            << "--type: 'q9' is not a weight type";
        QTest::newRow("convert onto its input")
            << QStringList{"convert", "--out", gpt2_, "--type", "f16"}
            << "--out is the input model";
        QTest::newRow("heads needs a prompt or the test")
            << QStringList{"heads"} << "give either --prompt TEXT or --random-repeat N";
        QTest::newRow("heads: a seed without the test")
            << QStringList{"heads", "--prompt", "a", "--seed", "3"}
            << "--seed goes with --random-repeat";
        QTest::newRow("heads: a span of one token")
            << QStringList{"heads", "--random-repeat", "1"} << "--random-repeat";
        QTest::newRow("speculative without the cache")
            << QStringList{"decode", "--prompt", "a", "--speculative", "lookup", "--no-cache"}
            << "cannot run with --no-cache";
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

    // bench's --scales picks the OpenCL weights' layout, --cpu-simd its kernels on CPU devices
    // and --huge-pages the weights' memory there, --fused its decode steps a layer per command:
    // refused without OpenCL or with a typo, before any model is written
    void benchScalesGoWithOpenCl() {
        for (const char* option : {"--scales", "--cpu-simd", "--huge-pages", "--fused"}) {
            Run r = runKvscope({"bench", option, "on"});
            QCOMPARE(r.code, 2);
            QVERIFY2(r.err.contains("--huge-pages and --fused go with --backend opencl"),
                     r.err.constData());
        }
        Run r = runKvscope({"bench", "--backend", "opencl", "--scales", "half"});
        QCOMPARE(r.code, 2);
        QVERIFY2(r.err.contains("--scales must be stored or wide, got 'half'"), r.err.constData());
        r = runKvscope({"bench", "--backend", "opencl", "--cpu-simd", "yes"});
        QCOMPARE(r.code, 2);
        QVERIFY2(r.err.contains("--cpu-simd must be on or off, got 'yes'"), r.err.constData());
        r = runKvscope({"bench", "--backend", "opencl", "--huge-pages", "2m"});
        QCOMPARE(r.code, 2);
        QVERIFY2(r.err.contains("--huge-pages must be on or off, got '2m'"), r.err.constData());
        r = runKvscope({"bench", "--backend", "opencl", "--fused", "yes"});
        QCOMPARE(r.code, 2);
        QVERIFY2(r.err.contains("--fused must be on or off, got 'yes'"), r.err.constData());
    }

    // train's options are read after its text (any readable file is a text here)
    void trainRefusesAnUnknownRandomRepeatDraw() {
        const Run r = runKvscope({"train", "--text", gpt2_, "--out", "x.gguf", "--arch", "llama",
                                  "--random-repeat-draw", "sometimes"});
        QCOMPARE(r.code, 2);
        QVERIFY2(r.err.contains("--random-repeat-draw must be uniform or frequency, not "
                                "'sometimes'"),
                 r.err.constData());
    }

    void failuresExitOne_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("missing file")
            << QStringList{"info", "--model", "/nonexistent/m.gguf"} << "/nonexistent/m.gguf";
        QTest::newRow("prompt longer than context")
            << QStringList{"decode", "--prompt", QString(100, '!')} << "context holds 64";
        QTest::newRow("prompt longer than --context")
            << QStringList{"decode", "--prompt", QString(40, '!'), "--context", "20"}
            << "the prompt is 40 tokens; the context holds 20 (the model was trained for 64; "
               "--context sets it)";
        QTest::newRow("--context past the model's")
            << QStringList{"decode", "--prompt", "a", "--context", "65"}
            << "a context of 65 tokens was asked for";
        QTest::newRow("steps past --context")
            << QStringList{"decode", "--prompt", "!!", "--steps", "30", "--context", "16"}
            << "context is full (16 tokens)";
        QTest::newRow("steps past the context")
            << QStringList{"decode", "--prompt", "!!", "--steps", "70"} << "context is full";
        QTest::newRow("speculative past the context")
            << QStringList{"decode", "--prompt", "!!", "--steps", "70", "--speculative", "lookup"}
            << "context is full";
        QTest::newRow("draft model missing")
            << QStringList{"decode", "--prompt", "a", "--speculative", "model:/nonexistent/d.gguf"}
            << "/nonexistent/d.gguf";
        QTest::newRow("draft model with another vocabulary")
            << QStringList{"decode", "--prompt", "a", "--speculative", "model:" + otherVocab_}
            << "the draft model's vocabulary has 320 tokens";
        QTest::newRow("convert to an unwritable path")
            << QStringList{"convert", "--out", "/nonexistent/c.gguf", "--type", "f16"}
            << "cannot write /nonexistent/c.gguf";
        QTest::newRow("no such opencl device")
            << QStringList{"decode", "--prompt", "a", "--backend", "opencl", "--device", "999"}
            << "no OpenCL device";
    }
    void failuresExitOne() {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        if (!args.contains("--model")) args << "--model" << gpt2_;
        const Run r = runKvscope(args);
        QCOMPARE(r.code, 1);
        QVERIFY2(QString::fromUtf8(r.err).contains(message), r.err.constData());
    }

    // A file KVScope cannot read is refused by every command that loads it, before any work:
    // exit 1, and stderr names the key and the value it holds (and the file).
    void refusesWhatItCannotRead_data() {
        QTest::addColumn<QString>("key");
        QTest::addColumn<QString>("value");
        QTest::newRow("architecture") << "general.architecture"
                                      << "mamba";
        QTest::newRow("pre-tokenizer") << "tokenizer.ggml.pre"
                                       << "made-up-pre";
        QTest::newRow("tokenizer model") << "tokenizer.ggml.model"
                                         << "bert";
        QTest::newRow("rope scaling") << "llama.rope.scaling.type"
                                      << "made-up-scaling";
    }
    void refusesWhatItCannotRead() {
        QFETCH(QString, key);
        QFETCH(QString, value);
        GgufWriter w = randomModel(fixtures::llamaGqaSpec());
        w.set(key.toStdString(), GgufValue::str(value.toStdString()));
        const QString path = dir_.filePath("refused-" + value + ".gguf");
        w.write(path.toStdString());
        const QString expected = key + " = '" + value + "'";
        for (const QStringList& args : {QStringList{"decode", "--model", path, "--prompt", "x"},
                                        QStringList{"info", "--model", path}}) {
            const Run r = runKvscope(args);
            const QString err = QString::fromUtf8(r.err);
            QVERIFY2(r.code == 1, qPrintable(args.join(' ') + " exited " + QString::number(r.code) +
                                             ": " + err));
            QVERIFY2(err.contains(expected) && err.contains(path),
                     qPrintable(args.first() + ": " + err));
            QVERIFY2(r.out.isEmpty(), r.out.constData());
        }
    }

    // `devices --json` parses and lists exactly what the OpenCL runtime lists.
    void devicesJsonListsEveryDevice() {
        const Run r = runKvscope({"devices", "--json"});
        QVERIFY2(r.code == 0, r.err.constData());
        QJsonParseError perr;
        const QJsonObject o = QJsonDocument::fromJson(r.out, &perr).object();
        QVERIFY2(perr.error == QJsonParseError::NoError, qPrintable(perr.errorString()));
        QCOMPARE(keysOf(o), (QSet<QString>{"devices", "problem", "weight_types"}));
        // the weight types kept on a device and the conversions at upload
        QVERIFY2(o["weight_types"].toString().contains("Q4_K, Q6_K native") &&
                     o["weight_types"].toString().contains("Q5_K -> Q8_0"),
                 qPrintable(o["weight_types"].toString()));
        const ocl::DeviceList list = ocl::listDevices();
        const QJsonArray devices = o["devices"].toArray();
        QCOMPARE(devices.size(), static_cast<qsizetype>(list.devices.size()));
        if (list.devices.empty()) QVERIFY(!o["problem"].toString().isEmpty());
        for (qsizetype i = 0; i < devices.size(); ++i) {
            const QJsonObject d = devices[i].toObject();
            const ocl::DeviceInfo& want = list.devices[static_cast<size_t>(i)];
            QCOMPARE(keysOf(d),
                     (QSet<QString>{"index", "platform", "platform_index", "platform_version",
                                    "name", "vendor", "type", "compute_units",
                                    "global_memory_bytes", "max_alloc_bytes", "driver_version",
                                    "opencl_version", "usable", "why_not", "gemv", "gemm"}));
            QCOMPARE(d["index"].toInt(), static_cast<int>(i));
            QCOMPARE(d["name"].toString(), QString::fromStdString(want.name));
            QCOMPARE(d["platform"].toString(), QString::fromStdString(want.platformName));
            QCOMPARE(d["type"].toString(), QString::fromStdString(want.type));
            QCOMPARE(d["compute_units"].toInt(), want.computeUnits);
            QCOMPARE(d["global_memory_bytes"].toInteger(),
                     static_cast<qint64>(want.globalMemBytes));
            QCOMPARE(d["usable"].toBool(), want.usable);
        }
        // The text form names every device too.
        const Run text = runKvscope({"devices"});
        QCOMPARE(text.code, 0);
        for (const ocl::DeviceInfo& d : list.devices)
            QVERIFY2(text.out.contains(QByteArray::fromStdString(d.name)), text.out.constData());
    }

    // decode on OpenCL: the JSON names the device, and the tokens are the CPU backend's.
    void decodeOnOpenClMatchesCpu_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<bool>("cache");
        QTest::newRow("gpt2 cached") << "gpt2" << true;
        QTest::newRow("gpt2 no-cache") << "gpt2" << false;
        QTest::newRow("llama_gqa cached") << "llama" << true;
    }
    void decodeOnOpenClMatchesCpu() {
        QFETCH(QString, model);
        QFETCH(bool, cache);
        QString why;
        const int device = firstUsableOpenClDevice(why);
        if (device < 0 && ocl::listDevices().devices.empty()) QSKIP(qPrintable(why));
        QVERIFY2(device >= 0, qPrintable(why));
        auto decode = [&](const QStringList& backend) {
            QStringList a{"decode",   "--model", model == "gpt2" ? gpt2_ : llama_,
                          "--prompt", "the cat", "--steps",
                          "12",       "--json",  "-"};
            if (!cache) a << "--no-cache";
            return runKvscope(a + backend);
        };
        const Run cpu = decode({"--backend", "cpu"});
        const Run cl = decode({"--backend", "opencl", "--device", QString::number(device)});
        QVERIFY2(cpu.code == 0, cpu.err.constData());
        QVERIFY2(cl.code == 0, cl.err.constData());
        const QJsonObject a = QJsonDocument::fromJson(cl.out).object(),
                          b = QJsonDocument::fromJson(cpu.out).object();
        const QJsonObject backend = a["backend"].toObject();
        QCOMPARE(backend["name"].toString(), "opencl");
        const std::string name = ocl::listDevices().devices[static_cast<size_t>(device)].name;
        QVERIFY2(backend["device"].toString().contains(QString::fromStdString(name)),
                 qPrintable(backend["device"].toString()));
        QVERIFY2(cl.err.contains("backend: opencl, device " + QByteArray::number(device)),
                 cl.err.constData());
        QCOMPARE(a["prompt_tokens"].toArray(), b["prompt_tokens"].toArray());
        QCOMPARE(stepTokens(a).size(), 12);
        QCOMPARE(stepTokens(a), stepTokens(b));
        QCOMPARE(a["text"].toString(), b["text"].toString());
        const QJsonArray sa = a["steps"].toArray(), sb = b["steps"].toArray();
        for (qsizetype i = 0; i < sa.size(); ++i)
            QCOMPARE(sa[i].toObject()["kv_bytes"].toInteger(),
                     sb[i].toObject()["kv_bytes"].toInteger());
    }

    // decode under a cache policy on OpenCL (the policy run on the device, not refused): the CPU
    // backend's tokens, the same bytes held, the same evictions and the same drift readout.
    void decodeWithAPolicyOnOpenClMatchesCpu_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QStringList>("policy");
        QTest::addColumn<QString>("name");
        QTest::newRow("window 8") << "llama" << QStringList{"--window", "8"} << "window 8";
        QTest::newRow("sinks 1 + window 4")
            << "llama" << QStringList{"--window", "4", "--sinks", "1"} << "sinks 1 + window 4";
        QTest::newRow("heavy 2 + window 4")
            << "gpt2" << QStringList{"--window", "4", "--heavy", "2"} << "heavy 2 + window 4";
        QTest::newRow("f16, blocks of 8")
            << "gpt2" << QStringList{"--kv-type", "f16", "--block", "8"} << "none";
    }
    void decodeWithAPolicyOnOpenClMatchesCpu() {
        QFETCH(QString, model);
        QFETCH(QStringList, policy);
        QFETCH(QString, name);
        QString why;
        const int device = firstUsableOpenClDevice(why);
        if (device < 0 && ocl::listDevices().devices.empty()) QSKIP(qPrintable(why));
        QVERIFY2(device >= 0, qPrintable(why));
        auto decode = [&](const QStringList& backend) {
            const QStringList a{"decode",   "--model", model == "gpt2" ? gpt2_ : llama_,
                                "--prompt", "the cat", "--steps",
                                "12",       "--json",  "-"};
            return runKvscope(a + policy + backend);
        };
        const Run cpu = decode({"--backend", "cpu"});
        const Run cl = decode({"--backend", "opencl", "--device", QString::number(device)});
        QVERIFY2(cpu.code == 0, cpu.err.constData());
        QVERIFY2(cl.code == 0, cl.err.constData());
        QVERIFY2(cl.err.contains("backend: opencl, device " + QByteArray::number(device)),
                 cl.err.constData());
        const QJsonObject a = QJsonDocument::fromJson(cl.out).object(),
                          b = QJsonDocument::fromJson(cpu.out).object();
        QCOMPARE(a["backend"].toObject()["name"].toString(), "opencl");
        QCOMPARE(a["cache_policy"].toString(), name);
        QCOMPARE(stepTokens(a).size(), 12);
        QCOMPARE(stepTokens(a), stepTokens(b));
        QCOMPARE(a["text"].toString(), b["text"].toString());
        const QJsonArray sa = a["steps"].toArray(), sb = b["steps"].toArray();
        int evicted = 0;
        for (qsizetype i = 0; i < sa.size(); ++i) {
            const QJsonObject x = sa[i].toObject(), y = sb[i].toObject();
            QCOMPARE(x["kv_bytes"].toInteger(), y["kv_bytes"].toInteger());
            QCOMPARE(x["evicted"].toArray(), y["evicted"].toArray());
            evicted += static_cast<int>(x["evicted"].toArray().size());
            const QJsonObject dx = x["drift"].toObject(), dy = y["drift"].toObject();
            QCOMPARE(dx["full_kv_bytes"].toInteger(), dy["full_kv_bytes"].toInteger());
            QVERIFY(std::abs(dx["kl"].toDouble() - dy["kl"].toDouble()) <
                    1e-4 + 1e-3 * dy["kl"].toDouble());
        }
        QCOMPARE(evicted > 0, name != "none");  // a window really let keys go
    }

    // decode --speculative on OpenCL (lookup, and a draft model on the same device): the CPU
    // backend's plain greedy tokens.
    void speculativeDecodeOnOpenClMatchesCpu() {
        QString why;
        const int device = firstUsableOpenClDevice(why);
        if (device < 0 && ocl::listDevices().devices.empty()) QSKIP(qPrintable(why));
        QVERIFY2(device >= 0, qPrintable(why));
        const QStringList base{"decode",  "--model", gpt2_,    "--prompt", "the cat the cat",
                               "--steps", "30",      "--json", "-"};
        const Run cpu = runKvscope(base + QStringList{"--backend", "cpu"});
        QVERIFY2(cpu.code == 0, cpu.err.constData());
        const QList<int> want = stepTokens(QJsonDocument::fromJson(cpu.out).object());
        QCOMPARE(want.size(), 30);
        for (const QString& kind : {QString("lookup"), "model:" + draft_}) {
            const Run cl = runKvscope(base + QStringList{"--backend", "opencl", "--device",
                                                         QString::number(device), "--speculative",
                                                         kind, "--draft", "4"});
            QVERIFY2(cl.code == 0, cl.err.constData());
            const QJsonObject o = QJsonDocument::fromJson(cl.out).object();
            QCOMPARE(o["backend"].toObject()["name"].toString(), "opencl");
            QCOMPARE(stepTokens(o), want);
        }
    }

    // A device index past the list: exit 1 and a message naming the index and the count.
    void missingOpenClDeviceNamesTheCount() {
        const int count = static_cast<int>(ocl::listDevices().devices.size());
        const Run r = runKvscope({"decode", "--model", gpt2_, "--prompt", "a", "--backend",
                                  "opencl", "--device", QString::number(count)});
        QCOMPARE(r.code, 1);
        const QString err = QString::fromUtf8(r.err);
        if (count == 0) {
            QVERIFY2(err.contains("no OpenCL device to run on"), r.err.constData());
        } else {
            QVERIFY2(err.contains(QString("no OpenCL device %1:").arg(count)), r.err.constData());
            QVERIFY2(err.contains(QString("this machine has %1").arg(count)), r.err.constData());
        }
    }

    // --backend auto takes the first usable GPU, else the CPU, and the note says which and why.
    void autoBackendSaysWhatItChose() {
        const Run r = runKvscope(
            {"decode", "--model", gpt2_, "--prompt", "a", "--steps", "2", "--json", "-"});
        QVERIFY2(r.code == 0, r.err.constData());
        bool gpu = false;
        for (const ocl::DeviceInfo& d : ocl::listDevices().devices)
            gpu = gpu || (d.isGpu && d.usable);
        const QString name =
            QJsonDocument::fromJson(r.out).object()["backend"].toObject()["name"].toString();
        QCOMPARE(name, gpu ? "opencl" : "cpu");
        QVERIFY2(r.err.contains("backend: " + name.toUtf8()), r.err.constData());
        QVERIFY2(r.err.contains(gpu ? "(auto: the first GPU)" : "(auto: no "), r.err.constData());
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

    // `convert --type T` writes every matrix as T, or, where its rows are not whole blocks of
    // T, as llama-quantize's fallback (Q4_K: Q5_0, else F16); vectors and GPT-2's position
    // embeddings stay as they were, byte for byte. Each value is the original within its type's
    // documented bound (gguf/dequant.h: F16 rounds to nearest, Q8_0 within A/254, Q5_0 within
    // A/31, Q4_K within 0.0333 R of a super-block); general.file_type is llama.cpp's llama_ftype
    // number for T; the file runs, and the calculator counts its bytes. Built-in models convert
    // too.
    void convertWritesTheMatricesAsTheType_data() {
        QTest::addColumn<QString>("model");  // a fixture, or builtin:tiny
        QTest::addColumn<int>("width");      // the fixture's width (0: as it is)
        QTest::addColumn<QString>("type");
        QTest::addColumn<int>("tensorType");
        QTest::addColumn<int>("fileType");  // llama.cpp's LLAMA_FTYPE_MOSTLY_*
        QTest::newRow("llama f16") << "llama" << 0 << "f16" << int(TensorType::F16) << 1;
        QTest::newRow("llama q8_0") << "llama" << 0 << "Q8_0" << int(TensorType::Q8_0) << 7;
        QTest::newRow("llama q4_k, rows of 256")
            << "llama" << 256 << "q4_k" << int(TensorType::Q4_K) << 14;  // Q4_K_S
        QTest::newRow("llama q4_k, rows of 32: Q5_0")
            << "llama" << 0 << "q4_k" << int(TensorType::Q4_K) << 14;
        QTest::newRow("gpt2 q8_0") << "gpt2" << 0 << "q8_0" << int(TensorType::Q8_0) << 7;
        QTest::newRow("builtin:tiny q8_0")
            << "builtin:tiny" << 0 << "q8_0" << int(TensorType::Q8_0) << 7;
    }
    void convertWritesTheMatricesAsTheType() {
        QFETCH(QString, model);
        QFETCH(int, width);
        QFETCH(QString, type);
        QFETCH(int, tensorType);
        QFETCH(int, fileType);
        const auto to = static_cast<TensorType>(tensorType);
        const QString tag =
            QString(QTest::currentDataTag()).replace(QRegularExpression("\\W"), "_");
        QString in = model;
        if (!model.startsWith("builtin:")) {
            RandomModelSpec spec =
                model == "gpt2" ? fixtures::gpt2Spec() : fixtures::llamaGqaSpec();
            if (width) {
                spec.nEmbd = width;
                spec.nFf = 2 * width;
            }
            in = dir_.filePath("convert-in-" + tag + ".gguf");
            fixtures::writeModel(spec, in.toStdString());
        }
        const QString out = dir_.filePath("convert-out-" + tag + ".gguf");
        const Run r = runKvscope({"convert", "--model", in, "--out", out, "--type", type});
        QVERIFY2(r.code == 0, r.err.constData());
        std::vector<uint8_t> inBytes;
        if (model.startsWith("builtin:")) {  // the binary's own copy: written out by info
            const QString tinyCopy = dir_.filePath("tiny-f32.gguf");
            const Run back =
                runKvscope({"convert", "--model", model, "--out", tinyCopy, "--type", "f32"});
            QVERIFY2(back.code == 0, back.err.constData());  // F32: every tensor as it is
            in = tinyCopy;
        }
        const GgufFile a = GgufFile::open(in.toStdString());
        const GgufFile b = GgufFile::open(out.toStdString());
        QCOMPARE(b.getUint("general.file_type"), std::optional<uint64_t>(fileType));
        QCOMPARE(b.getUint("general.quantization_version"), std::optional<uint64_t>(2));
        for (const std::string& key : a.keyOrder())
            if (key != "general.file_type") QVERIFY2(b.find(key) != nullptr, key.c_str());
        QCOMPARE(b.tensors().size(), a.tensors().size());
        int converted = 0;
        for (const GgufTensorInfo& ta : a.tensors()) {
            const GgufTensorInfo* tb = b.findTensor(ta.name);
            QVERIFY2(tb, ta.name.c_str());
            QCOMPARE(tb->ne, ta.ne);
            if (ta.ne.size() < 2 || ta.name == "position_embd.weight") {  // kept byte for byte
                QCOMPARE(tb->type, ta.type);
                QVERIFY(std::ranges::equal(a.tensorData(ta), b.tensorData(*tb)));
                continue;
            }
            TensorType expected = to;
            if (ta.ne[0] % uint64_t(blockLayout(to)->elems) != 0)  // llama-quantize's fallback
                expected = to == TensorType::Q4_K && ta.ne[0] % 32 == 0 ? TensorType::Q5_0
                                                                        : TensorType::F16;
            QCOMPARE(tb->type, expected);
            converted += expected == to ? 1 : 0;
            const int blockElems = blockLayout(expected)->elems;
            const std::vector<float> x = toFloat(ta.type, a.tensorData(ta), ta.elements(), "a");
            const std::vector<float> y = toFloat(tb->type, b.tensorData(*tb), tb->elements(), "b");
            for (size_t start = 0; start < x.size(); start += size_t(blockElems)) {
                float amax = 0, lo = 0, hi = 0;
                for (size_t i = start; i < start + size_t(blockElems); ++i) {
                    amax = std::max(amax, std::abs(x[i]));
                    lo = std::min(lo, x[i]);
                    hi = std::max(hi, x[i]);
                }
                const float slack = 1 + 1.0f / 512;  // the f16 scales' rounding
                for (size_t i = start; i < start + size_t(blockElems); ++i) {
                    float bound = 0;
                    switch (expected) {
                        case TensorType::F16:
                            bound = std::abs(x[i]) / 2048 + 1e-7f;
                            break;
                        case TensorType::Q8_0:
                            bound = amax / 254 * slack;
                            break;
                        case TensorType::Q5_0:
                            bound = amax / 31 * slack;
                            break;
                        default:
                            bound = 0.0333f * (hi - lo) * slack;
                            break;
                    }
                    const float err = std::abs(x[i] - y[i]);
                    QVERIFY2(err <= bound, qPrintable(QString("%1[%2]: %3 vs %4 (bound %5)")
                                                          .arg(QString::fromStdString(ta.name))
                                                          .arg(i)
                                                          .arg(double(x[i]))
                                                          .arg(double(y[i]))
                                                          .arg(double(bound))));
                }
            }
        }
        if (QByteArray(QTest::currentDataTag()).contains("rows of 32"))
            QCOMPARE(converted, 0);  // every matrix fell back
        else
            QVERIFY(converted >= 3);
        const Run d = runKvscope({"decode", "--model", out, "--prompt", "the cat", "--steps", "3"});
        QVERIFY2(d.code == 0, d.err.constData());
        const Run info = runKvscope({"info", "--model", out, "--json"});
        QCOMPARE(info.code, 0);
        // the calculator counts the weights in the bytes the file stores them in
        const Run mem = runKvscope({"memory", "--model", out, "--json"});
        QCOMPARE(mem.code, 0);
        const QJsonObject memo = QJsonDocument::fromJson(mem.out).object();
        QCOMPARE(memo["weight_bytes"].toDouble(),
                 QJsonDocument::fromJson(info.out).object()["weight_bytes"].toDouble());
        QVERIFY(memo["weight_bytes"].toDouble() < 0.6 * double(QFileInfo(in).size()));
        QCOMPARE(memo["inputs"].toObject()["weights_as_stored"].toBool(), true);
    }

    // `heads --random-repeat N` runs the standard induction test: BOS if the model's prompts
    // start with it, N random tokens, the same N again; every head has at least the N
    // second-half rows with an earlier copy, and the same seed gives the same scores.
    void headsRandomRepeatIsTheInductionTest() {
        const int n = 20;
        const Run a = runKvscope(
            {"heads", "--model", llama_, "--random-repeat", QString::number(n), "--json"});
        QVERIFY2(a.code == 0, a.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(a.out).object();
        const auto model = fixtures::makeModel(fixtures::llamaGqaSpec());
        const Tokenizer& tok = model->tokenizer;
        QCOMPARE(o["tokens"].toInt(), (tok.addBos() && tok.bos() ? 1 : 0) + 2 * n);
        QCOMPARE(o["test"].toObject()["kind"].toString(), "random_repeat");
        QCOMPARE(o["test"].toObject()["random_repeat"].toInt(), n);
        QCOMPARE(o["test"].toObject()["seed"].toInt(), 1337);
        const QJsonArray heads = o["heads"].toArray();
        QCOMPARE(heads.size(), 2 * 4);  // the fixture's layers x query heads
        // the second copy's rows, each against its span (the scores themselves are checked by
        // hand in tst_head_patterns)
        for (const auto& h : heads) QCOMPARE(h.toObject()["induction_rows"].toInt(), n);
        const Run again = runKvscope(
            {"heads", "--model", llama_, "--random-repeat", QString::number(n), "--json"});
        QCOMPARE(again.out, a.out);
        const Run other = runKvscope({"heads", "--model", llama_, "--random-repeat",
                                      QString::number(n), "--seed", "7", "--json"});
        QCOMPARE(other.code, 0);  // other tokens: other scores
        QVERIFY(QJsonDocument::fromJson(other.out).object()["heads"] != heads);
    }

    // Ctrl+C during `export --frames` stops the run between two files: exit 130, a message
    // saying how far it got, every file there whole (each PNG ends with its IEND chunk) and no
    // temporary file left behind.
    void anInterruptedExportLeavesOnlyWholeFiles() {
        for (int sig : {SIGINT, SIGTERM}) {
            QTemporaryDir out;
            QProcess p;
            p.start(KVSCOPE_BIN,
                    {"export", "--model", gpt2_, "--prompt", "a", "--steps", "60", "--frames",
                     "--views", "attention,step,cache", "--out", out.path()});
            QVERIFY(p.waitForStarted());
            QVERIFY(QTest::qWaitFor([&] { return p.canReadLine(); }, 60000));  // a frame exists
            ::kill(static_cast<pid_t>(p.processId()), sig);
            QVERIFY(p.waitForFinished(30000));
            const QString err = QString::fromUtf8(p.readAllStandardError());
            QCOMPARE(p.exitStatus(), QProcess::NormalExit);
            QCOMPARE(p.exitCode(), 130);
            QVERIFY2(err.contains("export interrupted: stopped after step "), qPrintable(err));
            const QStringList files = QDir(out.path()).entryList(QDir::Files);
            QVERIFY(!files.isEmpty());
            QVERIFY2(files.size() < 3 * 60, "the run was not stopped");
            for (const QString& f : files) {
                QVERIFY2(f.endsWith(".png"), qPrintable(f));  // no QSaveFile temporary
                QFile png(out.filePath(f));
                QVERIFY(png.open(QIODevice::ReadOnly));
                const QByteArray b = png.readAll();  // a whole PNG: signature ... IEND chunk
                QVERIFY2(b.startsWith("\x89PNG\r\n\x1a\n"), qPrintable(f));
                QVERIFY2(b.endsWith(QByteArray::fromHex("49454e44ae426082")), qPrintable(f));
            }
            QVERIFY2(err.contains(QString("after %1 file(s)").arg(files.size())), qPrintable(err));
        }
    }
};

QTEST_GUILESS_MAIN(TstCli)
#include "tst_cli.moc"
