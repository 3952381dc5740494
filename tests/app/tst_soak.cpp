// The soak: the window driven through 2,000 random actions, as a long lecture would (steps, step
// backs, resets, prefills, layer and head changes, tab switches, backend and model switches), each
// answered before the next. Checked throughout: no error shown, the store and the cache agree on
// the bytes held, the views paint; at the end, the resident memory is flat within 10% of what it
// was after the warm-up. Run under AddressSanitizer as well (CTest: soak_asan), which checks every
// access and, at exit, for leaks (there the RSS bound does not apply: see the end of the test).
#include <QApplication>
#include <QFile>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QTest>
#include <random>

#include "common/theme.h"
#include "common/trace_store.h"
#include "gui/main_window.h"
#include "model_fixtures.h"

using namespace kvscope;
using app::MainWindow;

namespace {

// Resident set size of this process in bytes (Linux /proc/self/statm).
double residentBytes() {
    QFile f("/proc/self/statm");
    if (!f.open(QIODevice::ReadOnly)) return 0;
    const QList<QByteArray> fields = f.readAll().split(' ');
    return fields.size() > 1 ? fields[1].toDouble() * 4096.0 : 0;
}

bool settle(MainWindow& w) {
    return QTest::qWaitFor([&] { return !w.busy(); }, 60000);
}

}  // namespace

class TstSoak : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;

  private slots:
    void twoThousandRandomActions() {
        viz::ThemeSettings::instance().setAnimationMs(0);
        const QString gpt2 = dir_.filePath("gpt2.gguf"), llama = dir_.filePath("llama.gguf");
        fixtures::writeModel(fixtures::gpt2Spec(), gpt2.toStdString());
        fixtures::writeModel(fixtures::llamaGqaSpec(), llama.toStdString());
        MainWindow w(gpt2, false);
        w.resize(1280, 720);
        w.show();
        QVERIFY(QTest::qWaitFor([&] { return w.store()->hasModel() && !w.busy(); }, 20000));
        w.setPrompt("In the beginning God created the heaven");

        std::mt19937 rng(20261128);
        const int kActions = 2000, kWarmUp = 300;
        double warmRss = 0;
        QMap<QString, int> done;
        QList<double> rssSamples;  // MiB every 250 actions, for the log
        for (int a = 0; a < kActions; ++a) {
            const int r = static_cast<int>(rng() % 100);
            const viz::TraceStore& s = *w.store();
            const int nCtx = s.hasModel() ? s.config().nCtx : 64;
            QString what;
            if (r < 55) {
                what = "step";
                if (s.count() >= nCtx - 1) {
                    w.stepBack();
                    what = "step back (full)";
                } else {
                    w.step();
                }
            } else if (r < 70) {
                what = "step back";
                w.stepBack();
            } else if (r < 73) {
                what = "reset";
                w.reset();
            } else if (r < 78) {
                what = "prefill";
                w.prefill();
            } else if (r < 88) {
                what = "layer/head";
                w.store()->setLayerHead(static_cast<int>(rng() % 4), static_cast<int>(rng() % 4));
            } else if (r < 94) {
                what = "tab";
                w.tabs()->setCurrentIndex(static_cast<int>(rng() % 5));
                w.grab();  // paint it
            } else if (r < 97) {
                what = "backend";
                w.setBackend(rng() % 2 ? "cpu" : "auto");
            } else {
                what = "model";
                w.openModel(s.hasModel() && s.model().path == gpt2 ? llama : gpt2);
            }
            ++done[what];
            QVERIFY2(settle(w),
                     qPrintable(QString("action %1 (%2) never finished").arg(a).arg(what)));
            QVERIFY2(w.errorText().isEmpty(),
                     qPrintable(QString("action %1 (%2): %3").arg(a).arg(what, w.errorText())));
            if (s.hasModel())
                QCOMPARE(s.kvBytes(), s.model().kvBytesPerToken * static_cast<size_t>(s.count()));
            if (a % 100 == 0) w.grab();
            if (a == kWarmUp) warmRss = residentBytes();
            if (a % 250 == 0) rssSamples << residentBytes() / (1 << 20);
        }
        const double endRss = residentBytes();
        QStringList samples;
        for (double m : rssSamples) samples << QString::number(m, 'f', 1);
        qInfo("soak: RSS every 250 actions (MiB): %s", qPrintable(samples.join(" ")));
        qInfo("soak: %d actions (%s); RSS %.1f MiB after warm-up, %.1f MiB at the end", kActions,
              qPrintable([&] {
                  QStringList parts;
                  for (auto it = done.begin(); it != done.end(); ++it)
                      parts << QString("%1 %2").arg(it.value()).arg(it.key());
                  return parts.join(", ");
              }()),
              warmRss / (1 << 20), endRss / (1 << 20));
        QVERIFY(warmRss > 0);
#if defined(__SANITIZE_ADDRESS__)
        // Under ASan the allocator's own bookkeeping (the stack depot of every new allocation
        // site, size-class caches) grows slowly and levels off (92 -> 104 MiB here, in shrinking
        // steps): the bound is for the real allocator; here LeakSanitizer checks at exit.
        return;
#endif
        QVERIFY2(endRss <= 1.10 * warmRss, qPrintable(QString("RSS grew from %1 to %2 MiB")
                                                          .arg(warmRss / (1 << 20))
                                                          .arg(endRss / (1 << 20))));
    }
};

QTEST_MAIN(TstSoak)
#include "tst_soak.moc"
