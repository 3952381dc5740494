// Sessions and scenes, as a lecturer uses them between the lecture and the notes: a session
// saved in one window and opened in another decodes the same tokens (seeded sampling) and shows
// the same view; its export is byte-identical to the export of the session saved again after
// opening; a missing or changed model is refused by name with nothing lost; scene mode steps
// from scene to scene with the clicker, captions on screen and under exported figures.
#include <QComboBox>
#include <QDir>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QFile>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QProcess>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QTest>

#include "common/annotation.h"
#include "common/theme.h"
#include "core/error.h"
#include "gui/decode_controller.h"
#include "gui/main_window.h"
#include "model_fixtures.h"
#include "session/session_file.h"
#include "window_fixtures.h"

using namespace kvscope;
using app::MainWindow;

namespace {

struct Run {
    int code = -1;
    QByteArray err;
};

Run runKvscope(const QStringList& args) {
    QProcess p;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("QT_QPA_PLATFORM", "offscreen");
    p.setProcessEnvironment(env);
    p.start(KVSCOPE_BIN, args);
    if (!p.waitForFinished(120000)) return {};
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardError()};
}

QByteArray bytesOf(const QString& path) {
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

std::vector<int32_t> tokensOf(const viz::TraceStore& s) {
    std::vector<int32_t> t;
    for (int i = 0; i < s.count(); ++i) t.push_back(s.trace(i).token);
    return t;
}

}  // namespace

class TstSession : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    QString gpt2_, llama_;

    static std::unique_ptr<MainWindow> open(const QString& model) {
        return fixtures::openWindow(model);
    }
    static bool settle(MainWindow& w) { return fixtures::settle(w); }
    // A window that sampled 6 tokens with a seed, on layer 1 head 1 of the attention tab,
    // token 4 pinned, with two scenes.
    std::unique_ptr<MainWindow> lecture(const QString& model) {
        auto w = open(model);
        if (!w) return nullptr;
        w->setPrompt("the cat sat on");
        w->prefill();
        settle(*w);
        return w;
    }

  private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY(dir_.isValid());
        gpt2_ = dir_.filePath("gpt2.gguf");
        llama_ = dir_.filePath("llama.gguf");
        fixtures::writeModel(fixtures::gpt2Spec(), gpt2_.toStdString());
        fixtures::writeModel(fixtures::llamaGqaSpec(), llama_.toStdString());
    }

    // A session with its own context, K/V type and cache policy opens with them after one load;
    // one whose saved backend cannot start here runs on the current backend, says so, and still
    // gives the same tokens.
    void aSessionsOptionsRunAfterOneLoad() {
        auto a = lecture(gpt2_);
        QVERIFY(a);
        a->setCacheOptions(48, KvCacheOptions(KvType::F16, 32, EvictionPolicy{8, 2, 0}));  // of 64
        QVERIFY(settle(*a));
        for (int k = 0; k < 4; ++k) {
            a->step();
            QVERIFY(settle(*a));
        }
        const QString saved = dir_.filePath("options.kvscope");
        QVERIFY(a->saveSession(saved));

        auto b = open(llama_);
        QVERIFY(b);
        QSignalSpy loads(b->controller(), &app::DecodeController::modelLoaded);
        b->openSession(saved);
        QVERIFY(settle(*b));
        QVERIFY2(b->errorText().isEmpty(), qPrintable(b->errorText()));
        QCOMPARE(loads.count(), 1);
        QCOMPARE(tokensOf(*b->store()), tokensOf(*a->store()));
        const KvCacheOptions& cache = b->store()->model().cache;
        QCOMPARE(cache.type, KvType::F16);
        QCOMPARE(cache.blockTokens, 32);
        QCOMPARE(cache.eviction.window, 8);
        QCOMPARE(cache.eviction.sinks, 2);
        QCOMPARE(b->findChild<QSpinBox*>("context")->value(), 48);
        QCOMPARE(b->store()->config().nCtx, 48);

        app::SessionFile file = app::SessionFile::load(saved);
        file.backend = "opencl:99";  // no such device anywhere
        const QString elsewhere = dir_.filePath("elsewhere.kvscope");
        file.save(elsewhere);
        auto c = open(llama_);
        QVERIFY(c);
        QSignalSpy loadsC(c->controller(), &app::DecodeController::modelLoaded);
        c->openSession(elsewhere);
        QVERIFY(settle(*c));
        QCOMPARE(loadsC.count(), 1);
        QVERIFY2(c->errorText().contains("opencl:99") && c->errorText().contains("cannot start"),
                 qPrintable(c->errorText()));
        QCOMPARE(tokensOf(*c->store()), tokensOf(*a->store()));
        QCOMPARE(c->store()->model().cache.eviction.window, 8);
    }

    void saveThenOpenReproducesTokensViewAndFigure() {
        auto a = lecture(gpt2_);
        QVERIFY(a);
        // seeded sampling, from the side panel
        for (QComboBox* c : a->sidePanel()->findChildren<QComboBox*>())
            if (c->count() == 2 && c->itemText(1) == "Sample") c->setCurrentIndex(1);
        for (QSpinBox* s : a->sidePanel()->findChildren<QSpinBox*>())
            if (s->maximum() == (1 << 30)) s->setValue(7);  // the seed
        QVERIFY(settle(*a));
        for (int k = 0; k < 6; ++k) {
            a->step();
            QVERIFY(settle(*a));
        }
        a->tabs()->setCurrentIndex(1);
        a->store()->setLayerHead(1, 1);
        a->store()->pinQuery(4);
        a->addScene("the first token is a sink");
        const QString saved = dir_.filePath("lecture.kvscope");
        QVERIFY(a->saveSession(saved));
        const app::SessionFile file = app::SessionFile::load(saved);
        QCOMPARE(file.tokens, tokensOf(*a->store()));
        QVERIFY(file.sampler.temperature > 0);
        QCOMPARE(file.sampler.seed, uint64_t{7});
        QCOMPARE(file.modelSha256, app::sha256OfFile(gpt2_));

        // another window, on another model, opens it
        auto b = open(llama_);
        QVERIFY(b);
        QSignalSpy loads(b->controller(), &app::DecodeController::modelLoaded);
        b->openSession(saved);
        QVERIFY(settle(*b));
        QVERIFY2(b->errorText().isEmpty(), qPrintable(b->errorText()));
        QCOMPARE(loads.count(), 1);  // the model read and its backend started once
        QCOMPARE(tokensOf(*b->store()), tokensOf(*a->store()));
        QCOMPARE(b->tabs()->currentIndex(), 1);
        QCOMPARE(b->store()->layer(), 1);
        QCOMPARE(b->store()->head(), 1);
        QCOMPARE(b->store()->queryIndex(), 4);
        QCOMPARE(b->scenes().size(), size_t{1});
        QCOMPARE(b->scenes()[0].caption, QString("the first token is a sink"));

        // the figure: the saved session's export equals the export of the session saved again
        const QString again = dir_.filePath("again.kvscope");
        QVERIFY(b->saveSession(again));
        const QString outA = dir_.filePath("figA"), outB = dir_.filePath("figB");
        for (const auto& [session, out] : {std::pair{saved, outA}, std::pair{again, outB}}) {
            const Run r = runKvscope({"export", "--session", session, "--out", out, "--size",
                                      "600x400", "--views", "attention,next,trace"});
            QVERIFY2(r.code == 0, r.err.constData());
        }
        // the export decoded the session's tokens (its seeded sampling)
        const QJsonArray traced =
            QJsonDocument::fromJson(bytesOf(QDir(outA).filePath("trace.json")))
                .object()["tokens"]
                .toArray();
        QCOMPARE(static_cast<size_t>(traced.size()), file.tokens.size());
        for (int i = 0; i < traced.size(); ++i)
            QCOMPARE(traced[i].toObject()["token"].toInt(), file.tokens[static_cast<size_t>(i)]);
        for (const QString& f : {QString("attention.png"), QString("next.png")}) {
            const QByteArray x = bytesOf(QDir(outA).filePath(f)),
                             y = bytesOf(QDir(outB).filePath(f));
            QVERIFY(!x.isEmpty());
            QVERIFY2(x == y, qPrintable(f));
        }
    }

    // An annotation placed on the attention view travels in the session and is drawn in the
    // exported figure at its point: the arrow's tip in the theme's accent colour there, and
    // nowhere in the same export without it.
    void annotationsTravelInTheSessionAndReachTheFigure() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("the cat sat on the mat");
        w->prefill();
        QVERIFY(settle(*w));
        w->tabs()->setCurrentIndex(1);
        viz::Annotation sink;
        sink.view = "attention";
        sink.x = 0.3;
        sink.y = 0.6;
        sink.text = "sink";
        w->addAnnotation(sink);
        if (qEnvironmentVariableIsSet("KVSCOPE_VIEWS_DIR"))
            w->grab().save(qEnvironmentVariable("KVSCOPE_VIEWS_DIR") + "/annotated.png");
        const QString saved = dir_.filePath("annotated.kvscope");
        QVERIFY(w->saveSession(saved));
        const app::SessionFile file = app::SessionFile::load(saved);
        QCOMPARE(file.annotations.size(), size_t{1});
        QCOMPARE(file.annotations[0].text, QString("sink"));
        QCOMPARE(file.annotations[0].x, 0.3);

        auto b = open(llama_);
        QVERIFY(b);
        b->openSession(saved);
        QVERIFY(settle(*b));
        QCOMPARE(b->annotations().size(), size_t{1});
        QCOMPARE(b->annotations()[0].y, 0.6);

        app::SessionFile bare = file;
        bare.annotations.clear();
        const QString plain = dir_.filePath("plain.kvscope");
        bare.save(plain);
        const QString outA = dir_.filePath("annotated"), outP = dir_.filePath("plain");
        for (const auto& [session, out] : {std::pair{saved, outA}, std::pair{plain, outP}})
            QCOMPARE(runKvscope({"export", "--session", session, "--views", "attention", "--out",
                                 out, "--size", "600x400"})
                         .code,
                     0);
        const QImage a(QDir(outA).filePath("attention.png")),
            p(QDir(outP).filePath("attention.png"));
        QCOMPARE(a.size(), p.size());
        const QColor accent = viz::Theme::print().accent;  // exports use the print theme
        auto accentNear = [&](const QImage& img, int cx, int cy) {
            for (int y = cy - 8; y <= cy + 8; ++y)
                for (int x = cx - 8; x <= cx + 8; ++x)
                    if (img.valid(x, y) && img.pixelColor(x, y) == accent) return true;
            return false;
        };
        QVERIFY(accentNear(a, 180, 240));  // 0.3 × 600, 0.6 × 400
        QVERIFY(!accentNear(p, 180, 240));
    }

    void aMissingOrChangedModelIsRefusedAndNothingIsLost() {
        const QString copy = dir_.filePath("copy.gguf");
        QFile::remove(copy);
        QVERIFY(QFile::copy(gpt2_, copy));
        auto a = open(copy);
        QVERIFY(a);
        a->setPrompt("the cat");
        a->prefill();
        QVERIFY(settle(*a));
        const QString saved = dir_.filePath("changing.kvscope");
        QVERIFY(a->saveSession(saved));

        auto b = open(llama_);
        QVERIFY(b);
        b->setPrompt("a dog");
        b->prefill();
        QVERIFY(settle(*b));
        const std::vector<int32_t> before = tokensOf(*b->store());
        const QString prompt = b->prompt();

        // changed: other bytes under the same name
        QFile::remove(copy);
        fixtures::writeModel(fixtures::llamaGqaSpec(), copy.toStdString());
        b->openSession(saved);
        QVERIFY(settle(*b));
        QVERIFY2(b->errorText().contains("has changed since the session was saved"),
                 qPrintable(b->errorText()));
        QCOMPARE(tokensOf(*b->store()), before);
        QCOMPARE(b->prompt(), prompt);
        QCOMPARE(b->store()->model().path, llama_);

        // missing
        QFile::remove(copy);
        b->openSession(saved);
        QVERIFY(settle(*b));
        QVERIFY2(b->errorText().contains("is not there"), qPrintable(b->errorText()));
        QCOMPARE(tokensOf(*b->store()), before);
        const Run r = runKvscope({"export", "--session", saved, "--out", dir_.filePath("x")});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("is not there"), r.err.constData());

        // not a session at all
        QFile junk(dir_.filePath("junk.kvscope"));
        QVERIFY(junk.open(QIODevice::WriteOnly));
        junk.write("{\"model\": 3}");
        junk.close();
        b->openSession(junk.fileName());
        QVERIFY(b->errorText().contains("not a KVScope session"));
        QCOMPARE(tokensOf(*b->store()), before);
    }

    // A session file with a wrong value is refused naming the key (never read half-way).
    void badSessionsAreRefusedByKey_data() {
        QTest::addColumn<QByteArray>("json");
        QTest::addColumn<QString>("key");
        const QByteArray model = R"("model": {"path": "m.gguf"})";
        auto doc = [&](const char* rest) {
            return "{\"kvscope_session\": 1, " + model + ", " + rest + "}";
        };
        QTest::newRow("fractional token") << QByteArray(doc(R"("tokens": [1, 1.5])")) << "tokens";
        QTest::newRow("huge token") << QByteArray(doc(R"("tokens": [3e9])")) << "tokens";
        QTest::newRow("seed") << QByteArray(doc(R"("sampling": {"seed": 2.5})")) << "seed";
        QTest::newRow("top_p 0") << QByteArray(doc(R"("sampling": {"top_p": 0})")) << "top_p";
        QTest::newRow("theme") << QByteArray(doc(R"("view": {"theme": "blue"})")) << "view.theme";
        QTest::newRow("colormap") << QByteArray(doc(R"("view": {"colormap": "jet"})"))
                                  << "view.colormap";
        QTest::newRow("tab") << QByteArray(doc(R"("view": {"tab": "cash"})")) << "view.tab";
        QTest::newRow("kv type") << QByteArray(doc(R"("cache": {"kv_type": "q5"})"))
                                 << "cache.kv_type";
        QTest::newRow("newer") << QByteArray(R"({"kvscope_session": 9, "model": {"path": "m"}})")
                               << "version 9";
    }
    void badSessionsAreRefusedByKey() {
        QFETCH(QByteArray, json);
        QFETCH(QString, key);
        try {
            app::SessionFile::fromJson(json, "bad.kvscope");
            QFAIL("accepted");
        } catch (const Error& e) {
            QVERIFY2(QString::fromUtf8(e.what()).contains(key), e.what());
            QVERIFY(QString::fromUtf8(e.what()).contains("bad.kvscope"));
        }
    }

    void sceneModeStepsFromSceneToSceneWithCaptions() {
        auto w = open(gpt2_);
        QVERIFY(w);
        w->setPrompt("the cat sat");
        w->prefill();
        QVERIFY(settle(*w));
        const int prompt = w->store()->count();
        w->step();
        QVERIFY(settle(*w));
        w->addScene("one token");
        for (int k = 0; k < 4; ++k) {
            w->step();
            QVERIFY(settle(*w));
        }
        w->tabs()->setCurrentIndex(2);
        w->addScene("five tokens in the cache");
        w->stepBack();
        QVERIFY(settle(*w));

        w->setSceneMode(true);
        QVERIFY(settle(*w));
        QCOMPARE(w->currentScene(), 0);
        QCOMPARE(w->store()->count(), prompt + 1);
        QVERIFY(w->sceneCaption()->isVisible());
        QVERIFY(w->sceneCaption()->text().contains("one token"));
        w->tabs()->currentWidget()->setFocus();
        QTest::keyClick(QApplication::focusWidget(), Qt::Key_PageDown);
        QVERIFY(settle(*w));
        QCOMPARE(w->currentScene(), 1);
        QCOMPARE(w->store()->count(), prompt + 5);
        QCOMPARE(w->tabs()->currentIndex(), 2);
        QVERIFY(w->sceneCaption()->text().contains("five tokens in the cache"));
        QTest::keyClick(QApplication::focusWidget(), Qt::Key_PageUp);
        QVERIFY(settle(*w));
        QCOMPARE(w->store()->count(), prompt + 1);
        w->setSceneMode(false);
        QVERIFY(!w->sceneCaption()->isVisible());

        // the scene's caption under the exported figure
        const QString saved = dir_.filePath("scenes.kvscope");
        QVERIFY(w->saveSession(saved));
        const QString out = dir_.filePath("scene2");
        const Run r = runKvscope(
            {"export", "--session", saved, "--scene", "2", "--out", out, "--size", "600x400"});
        QVERIFY2(r.code == 0, r.err.constData());
        const QImage cache(QDir(out).filePath("cache.png"));
        QCOMPARE(cache.width(), 600);
        QVERIFY(cache.height() > 400);  // the caption's band
        QCOMPARE(runKvscope({"export", "--scene", "1", "--out", out, "--prompt", "x"}).code, 2);
        QCOMPARE(runKvscope({"export", "--session", saved, "--scene", "3", "--out", out}).code, 2);
    }
};

QTEST_MAIN(TstSession)
#include "tst_session.moc"
