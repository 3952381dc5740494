// kvscope export, run as a lecturer runs it before class: the files exist and are what their
// format promises, at the requested size, deterministic, and a bad path loses nothing.
#include <QDir>
#include <QFile>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QTest>
#include <QXmlStreamReader>
#include <cmath>

#include "model_fixtures.h"

using namespace kvscope;

namespace {

struct Run {
    int code = -1;
    QByteArray out, err;
};

Run runKvscope(const QStringList& args, const QStringList& extraEnv = {}) {
    QProcess p;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.remove("DISPLAY");  // as over ssh: no X server
    env.remove("QT_QPA_PLATFORM");
    for (const QString& kv : extraEnv) env.insert(kv.section('=', 0, 0), kv.section('=', 1));
    p.setProcessEnvironment(env);
    p.start(KVSCOPE_BIN, args);
    if (!p.waitForFinished(300000)) return {};
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(),
            p.readAllStandardError()};
}

// Standard deviation of the grey levels: 0 for a blank image.
double pixelSpread(const QImage& image) {
    double sum = 0, sum2 = 0;
    double n = 0;
    for (int y = 0; y < image.height(); y += 3)
        for (int x = 0; x < image.width(); x += 3) {
            const double g = qGray(image.pixel(x, y));
            sum += g;
            sum2 += g * g;
            ++n;
        }
    const double mean = sum / n;
    return std::sqrt(std::max(0.0, sum2 / n - mean * mean));
}

int pdfPages(const QByteArray& pdf) {
    return static_cast<int>(
        QString::fromLatin1(pdf).count(QRegularExpression("/Type\\s*/Page(?![a-zA-Z])")));
}

QByteArray readAll(const QString& path) {
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

// High DPI: b (k times a's pixels) against a, over 4 × 4-point blocks (averaged), a's pixels
// offset by shiftX: the mean difference per channel and the share of blocks within 20 of 255.
struct Difference {
    double mean, within;
};
Difference compareBlocks(const QImage& a, const QImage& b, int k, int shiftX) {
    auto block = [](const QImage& img, int x, int y, int n, int channel) {
        int acc = 0;
        for (int dy = 0; dy < n; ++dy)
            for (int dx = 0; dx < n; ++dx)
                acc += static_cast<int>((img.pixel(x + dx, y + dy) >> channel) & 0xFF);
        return static_cast<double>(acc) / (n * n);
    };
    double sum = 0;
    int near = 0, n = 0;
    for (int y = 0; y + 4 <= a.height(); y += 4)
        for (int x = 0; x + 4 + shiftX <= a.width(); x += 4) {
            double worst = 0;
            for (int channel : {16, 8, 0}) {
                const double d = std::abs(block(b, k * x, k * y, 4 * k, channel) -
                                          block(a, x + shiftX, y, 4, channel));
                sum += d;
                worst = std::max(worst, d);
            }
            near += worst <= 20;
            ++n;
        }
    return Difference{sum / (3.0 * n), static_cast<double>(near) / n};
}
// "Looks the same": the thresholds the 2× figures meet and a 2-pixel shift does not.
bool looksTheSame(const Difference& d) {
    return d.mean < 3.5 && d.within >= 0.94;
}

}  // namespace

class TstExport : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    QString model_;

    QStringList base(const QString& out) const {
        return {"export", "--model", model_, "--prompt", "the cat sat", "--steps",
                "3",      "--out",   out,    "--size",   "600x400"};
    }

  private slots:
    void initTestCase() {
        QVERIFY(dir_.isValid());
        model_ = dir_.filePath("m.gguf");
        fixtures::writeModel(fixtures::llamaGqaSpec(), model_.toStdString());
    }

    void pngsHaveTheScaledSizeAndAreNotBlank_data() {
        QTest::addColumn<int>("scale");
        QTest::newRow("1x") << 1;
        QTest::newRow("3x") << 3;
    }
    // Under a cache policy "all" adds the drift chart (each token against the full cache).
    void aCachePolicyAddsTheDriftFigure() {
        const QString out = dir_.filePath("policy");
        const Run r = runKvscope(base(out) << "--window"
                                           << "2"
                                           << "--backend"
                                           << "cpu");
        QVERIFY2(r.code == 0, r.err.constData());
        const QStringList written = QString::fromUtf8(r.out).split('\n', Qt::SkipEmptyParts);
        QCOMPARE(written.size(), 10 + 2);
        QVERIFY(QFile::exists(out + "/drift.png"));
        QVERIFY(!QImage(out + "/drift.png").isNull());
        const Run plain = runKvscope(base(dir_.filePath("plain")) << "--views"
                                                                  << "drift");
        QCOMPARE(plain.code, 0);  // asked for by name it is drawn, with nothing measured to show
    }

    void pngsHaveTheScaledSizeAndAreNotBlank() {
        QFETCH(int, scale);
        const QString out = dir_.filePath(QString("png%1").arg(scale));
        const Run r = runKvscope(base(out) << "--format"
                                           << "png"
                                           << "--scale" << QString::number(scale));
        QVERIFY2(r.code == 0, r.err.constData());
        const QStringList written = QString::fromUtf8(r.out).split('\n', Qt::SkipEmptyParts);
        // step, attention, heads, cache, memory, latency, calculator, next, sharing; trace.json
        // and .csv
        QCOMPARE(written.size(), 9 + 2);
        for (const QString view : {"step", "attention", "heads", "cache", "memory", "latency",
                                   "calculator", "next", "sharing"}) {
            const QString path = QDir(out).filePath(QString(view) + ".png");
            QVERIFY(written.contains(path));
            const QImage image(path);
            QCOMPARE(image.size(), QSize(600 * scale, 400 * scale));
            QVERIFY2(pixelSpread(image) > 10, qPrintable(view));
        }
    }

    void svgsAreXmlWithDrawing() {
        const QString out = dir_.filePath("svg");
        const Run r = runKvscope(base(out) << "--format"
                                           << "svg"
                                           << "--views"
                                           << "attention,step,next,sharing");
        QVERIFY2(r.code == 0, r.err.constData());
        for (const QString view : {"attention", "step", "next", "sharing"}) {
            QXmlStreamReader xml(readAll(QDir(out).filePath(view + ".svg")));
            int drawing = 0, images = 0;
            bool svgRoot = false;
            while (!xml.atEnd()) {
                if (xml.readNext() != QXmlStreamReader::StartElement) continue;
                if (xml.name() == u"svg") svgRoot = true;
                if (xml.name() == u"path" || xml.name() == u"rect" || xml.name() == u"polygon" ||
                    xml.name() == u"polyline" || xml.name() == u"text")
                    ++drawing;
                if (xml.name() == u"image") ++images;
            }
            QVERIFY2(!xml.hasError(), qPrintable(xml.errorString()));
            QVERIFY(svgRoot);
            // the sharing view draws fewer, larger shapes: 4 heads, 2 K/V heads' K and V blocks
            // (their cached numbers as 4 images), lines and labels
            const int least = view == "sharing" ? 30 : 50;
            QVERIFY2(drawing > least,
                     qPrintable(QString("%1: %2 drawing elements").arg(view).arg(drawing)));
            if (view == "sharing") QCOMPARE(images, 4);
        }
    }

    void pdfsHaveThePagesAskedFor() {
        const QString one = dir_.filePath("pdf1"), frames = dir_.filePath("pdf3");
        Run r = runKvscope(base(one) << "--format"
                                     << "pdf"
                                     << "--views"
                                     << "cache,next,sharing");
        QVERIFY2(r.code == 0, r.err.constData());
        QByteArray pdf = readAll(QDir(one).filePath("cache.pdf"));
        QVERIFY(pdf.startsWith("%PDF"));
        QCOMPARE(pdfPages(pdf), 1);
        pdf = readAll(QDir(one).filePath("next.pdf"));
        QVERIFY(pdf.startsWith("%PDF"));
        QCOMPARE(pdfPages(pdf), 1);
        pdf = readAll(QDir(one).filePath("sharing.pdf"));
        QVERIFY(pdf.startsWith("%PDF"));
        QCOMPARE(pdfPages(pdf), 1);
        r = runKvscope(base(frames) << "--format"
                                    << "pdf"
                                    << "--views"
                                    << "attention"
                                    << "--frames");
        QVERIFY2(r.code == 0, r.err.constData());
        pdf = readAll(QDir(frames).filePath("attention-frames.pdf"));
        QVERIFY(pdf.startsWith("%PDF"));
        QCOMPARE(pdfPages(pdf), 3);  // one page per step
    }

    // The latency figure carries the same tokens replayed without the cache: two measured curves.
    void latencyFigureComparesWithoutCache() {
        const QString out = dir_.filePath("latency");
        const Run r = runKvscope(base(out) << "--views"
                                           << "latency,memory"
                                           << "--format"
                                           << "svg");
        QVERIFY2(r.code == 0, r.err.constData());
        const QString svg = QString::fromUtf8(readAll(QDir(out).filePath("latency.svg")));
        QVERIFY2(svg.contains("slower without the cache"), "the measured ratio is in the title");
        QVERIFY(QString::fromUtf8(readAll(QDir(out).filePath("memory.svg")))
                    .contains("KV cache memory"));
    }

    void framesCountEqualsSteps() {
        const QString out = dir_.filePath("frames");
        const Run r = runKvscope(base(out) << "--views"
                                           << "step"
                                           << "--frames"
                                           << "--steps"
                                           << "5");
        QVERIFY2(r.code == 0, r.err.constData());
        const QStringList frames = QDir(out).entryList({"step-frame-*.png"}, QDir::Files);
        QCOMPARE(frames.size(), 5);
        // each frame shows one more token: consecutive frames differ
        QVERIFY(readAll(QDir(out).filePath("step-frame-004.png")) !=
                readAll(QDir(out).filePath("step-frame-005.png")));
    }

    void rerunningGivesIdenticalFigures() {
        const QString a = dir_.filePath("same-a"), b = dir_.filePath("same-b");
        QCOMPARE(runKvscope(base(a) << "--views"
                                    << "attention,cache,trace")
                     .code,
                 0);
        QCOMPARE(runKvscope(base(b) << "--views"
                                    << "attention,cache,trace")
                     .code,
                 0);
        for (const QString f : {"attention.png", "cache.png"}) {
            const QByteArray x = readAll(QDir(a).filePath(f));
            QVERIFY(!x.isEmpty());
            QCOMPARE(x, readAll(QDir(b).filePath(f)));
        }
    }

    void themesDiffer() {
        const QString light = dir_.filePath("light"), dark = dir_.filePath("dark");
        // 800 x 600: the calculator's text column beside its charts (under 640 it gives way)
        for (const auto& [out, theme] : {std::pair{light, "light"}, std::pair{dark, "dark"}}) {
            QStringList args = base(out);
            args[args.indexOf("600x400")] = "800x600";
            QCOMPARE(runKvscope(args << "--views"
                                     << "cache,calculator"
                                     << "--theme" << theme)
                         .code,
                     0);
        }
        const QImage l(QDir(light).filePath("cache.png")), d(QDir(dark).filePath("cache.png"));
        QVERIFY(qGray(l.pixel(2, 2)) > 200);  // paper white
        QVERIFY(qGray(d.pixel(2, 2)) < 80);   // dark canvas
        // the widgets around the views too: the calculator's inputs, left of its charts (a dark
        // figure's had kept a desktop's light grey)
        const QImage lc(QDir(light).filePath("calculator.png")),
            dc(QDir(dark).filePath("calculator.png"));
        QVERIFY(qGray(lc.pixel(2, lc.height() / 2)) > 200);
        QVERIFY2(qGray(dc.pixel(2, dc.height() / 2)) < 80,
                 qPrintable(QString::number(qGray(dc.pixel(2, dc.height() / 2)))));
    }

    // --colormap reaches the figures: the colour bars end in the chosen maps' published end
    // colours (cividis's yellow #FEE838, PuOr's purple #542788), not the defaults' (viridis's
    // #FDE725, RdBu's blue #2166AC); a name that is no map is refused.
    void colormapsReachTheFigures() {
        const QString out = dir_.filePath("colormaps");
        QCOMPARE(runKvscope(base(out) << "--views"
                                      << "attention,cache"
                                      << "--colormap"
                                      << "cividis,puor")
                     .code,
                 0);
        auto has = [](const QImage& img, QRgb c) {
            for (int y = 0; y < img.height(); ++y)
                for (int x = 0; x < img.width(); ++x) {
                    const QRgb p = img.pixel(x, y);
                    if (std::abs(qRed(p) - qRed(c)) + std::abs(qGreen(p) - qGreen(c)) +
                            std::abs(qBlue(p) - qBlue(c)) <=
                        3)
                        return true;
                }
            return false;
        };
        const QImage attention(QDir(out).filePath("attention.png"));
        const QImage cache(QDir(out).filePath("cache.png"));
        QVERIFY(has(attention, qRgb(0xFE, 0xE8, 0x38)));
        QVERIFY(!has(attention, qRgb(0xFD, 0xE7, 0x25)));
        QVERIFY(has(cache, qRgb(0x54, 0x27, 0x88)));
        QVERIFY(!has(cache, qRgb(0x21, 0x66, 0xAC)));
        const Run bad = runKvscope(base(out) << "--colormap"
                                             << "jet");
        QCOMPARE(bad.code, 2);
        QVERIFY(bad.err.contains("'jet' is none of"));
    }

    // High DPI: a figure at --scale 2 is the same figure with twice the pixels. Compared over
    // 4 × 4-point blocks (4 × 4 pixels at 1×, 8 × 8 at 2×, averaged), the two differ only in how
    // text, edges and the one-pixel K/V stripes are resampled: the mean difference stays under
    // 3.5 of 255 per channel and 94% of blocks within 20. The same measure tells a layout moved by
    // two points: the 1× figure against itself shifted by 2 pixels fails it (checked here too).
    void figuresAtTwiceTheDevicePixelsLookTheSame() {
        const QString one = dir_.filePath("dpr1"), two = dir_.filePath("dpr2");
        for (const auto& [out, scale] : {std::pair{one, "1"}, std::pair{two, "2"}})
            QCOMPARE(runKvscope(base(out) << "--views"
                                          << "step,attention,cache"
                                          << "--scale" << scale)
                         .code,
                     0);
        for (const QString f : {"step.png", "attention.png", "cache.png"}) {
            const QImage a = QImage(QDir(one).filePath(f)).convertToFormat(QImage::Format_RGB32);
            const QImage b = QImage(QDir(two).filePath(f)).convertToFormat(QImage::Format_RGB32);
            QCOMPARE(b.size(), a.size() * 2);
            const Difference same = compareBlocks(a, b, 2, 0), moved = compareBlocks(a, a, 1, 2);
            qInfo(
                "%s: 2x against 1x: mean %.2f, %.1f%% of blocks within 20; 1x moved by 2 px: "
                "mean %.2f, %.1f%%",
                qPrintable(f), same.mean, 100 * same.within, moved.mean, 100 * moved.within);
            QVERIFY2(looksTheSame(same), qPrintable(f));
            QVERIFY2(!looksTheSame(moved), qPrintable(f));
        }
    }

    // The window at a device pixel ratio of 2 (QT_SCALE_FACTOR=2): the same layout at twice the
    // pixels, by the same measure as the figures.
    void theWindowAtTwiceTheDevicePixelsLooksTheSame() {
        const QString one = dir_.filePath("window1.png"), two = dir_.filePath("window2.png");
        for (const auto& [file, factor] : {std::pair{one, "1"}, std::pair{two, "2"}}) {
            const Run r = runKvscope(
                {"--model", model_, "--screenshot", file, "--size", "1280x720", "--steps", "3",
                 "--tab", "attention"},
                {"QT_QPA_PLATFORM=offscreen", QString("QT_SCALE_FACTOR=%1").arg(factor)});
            QVERIFY2(r.code == 0, r.err.constData());
        }
        const QImage a = QImage(one).convertToFormat(QImage::Format_RGB32);
        const QImage b = QImage(two).convertToFormat(QImage::Format_RGB32);
        QCOMPARE(b.size(), a.size() * 2);
        const Difference same = compareBlocks(a, b, 2, 0);
        qInfo("window 2x against 1x: mean %.2f, %.1f%% of blocks within 20", same.mean,
              100 * same.within);
        QVERIFY(looksTheSame(same));
        QVERIFY(!looksTheSame(compareBlocks(a, a, 1, 2)));
    }

    // The trace holds the tokens, times, cache bytes and the chosen head's rows.
    void traceHoldsTheRun() {
        const QString out = dir_.filePath("trace");
        const Run r = runKvscope(base(out) << "--views"
                                           << "trace"
                                           << "--layer"
                                           << "1"
                                           << "--head"
                                           << "3");
        QVERIFY2(r.code == 0, r.err.constData());
        const QJsonObject o =
            QJsonDocument::fromJson(readAll(QDir(out).filePath("trace.json"))).object();
        QCOMPARE(o["layer"].toInt(), 1);
        QCOMPARE(o["head"].toInt(), 3);
        const QJsonArray tokens = o["tokens"].toArray();
        QVERIFY(tokens.size() > 3);
        const int kvPerToken = 2 * 2 * 2 * 8 * 4;  // 2 × layers × kv heads × head dim × 4 B
        const QJsonObject last = tokens.last().toObject();
        QCOMPARE(last["kv_bytes"].toInt(), kvPerToken * static_cast<int>(tokens.size()));
        QCOMPARE(last["attention"].toArray().size(), tokens.size());
        double sum = 0;
        for (const auto& w : last["attention"].toArray()) sum += w.toDouble();
        QVERIFY(std::abs(sum - 1) < 1e-5);
        const QList<QByteArray> csv =
            readAll(QDir(out).filePath("trace.csv")).trimmed().split('\n');
        QCOMPARE(csv.size(), tokens.size() + 1);
    }

    // A path that cannot be written is an error that names it, and what was there stays whole.
    void unwritablePathsFailAndLoseNothing() {
        const QString out = dir_.filePath("keep");
        QVERIFY(QDir().mkpath(out));
        QFile keep(QDir(out).filePath("cache.png"));
        QVERIFY(keep.open(QIODevice::WriteOnly));
        keep.write("lecture figure of last year");
        keep.close();
        QVERIFY(QDir(out).mkdir("step.png"));  // a folder where the step figure should go
        Run r = runKvscope(base(out) << "--views"
                                     << "step,cache");
        QCOMPARE(r.code, 1);
        QVERIFY2(QString::fromUtf8(r.err).contains("step.png"), r.err.constData());
        QCOMPARE(readAll(QDir(out).filePath("cache.png")),
                 QByteArray("lecture figure of last year"));
        QCOMPARE(QDir(out).entryList(QDir::Files | QDir::Hidden),
                 QStringList{"cache.png"});  // no temporary left

        const QString file = dir_.filePath("a-file");
        QFile f(file);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.close();
        r = runKvscope(base(file + "/sub"));
        QCOMPARE(r.code, 1);
        QVERIFY2(QString::fromUtf8(r.err).contains("a-file/sub"), r.err.constData());
    }

    // --region writes the attention figure zoomed: a different picture from the whole matrix;
    // a region past the last token is a usage error that says how many tokens the run has.
    void regionZoomsTheAttentionFigure() {
        const QString whole = dir_.filePath("whole"), part = dir_.filePath("region");
        Run r = runKvscope(base(whole) << "--views"
                                       << "attention");
        QVERIFY2(r.code == 0, r.err.constData());
        r = runKvscope(base(part) << "--views"
                                  << "attention"
                                  << "--region"
                                  << "2:5,0:3");
        QVERIFY2(r.code == 0, r.err.constData());
        const QImage a(QDir(whole).filePath("attention.png")),
            b(QDir(part).filePath("attention.png"));
        QCOMPARE(b.size(), a.size());
        QVERIFY(pixelSpread(b) > 5);
        QVERIFY(a != b);
        r = runKvscope(base(dir_.filePath("past")) << "--views"
                                                   << "attention"
                                                   << "--region"
                                                   << "0:99,0:3");
        QCOMPARE(r.code, 2);
        const QString err = QString::fromUtf8(r.err);
        QVERIFY2(err.contains("--region 0:99,0:3") && err.contains("goes past the last token"),
                 r.err.constData());
        QVERIFY(!QFileInfo::exists(QDir(dir_.filePath("past")).filePath("attention.png")));
    }

    void badOptionsAreUsageErrors_data() {
        QTest::addColumn<QStringList>("extra");
        QTest::newRow("format") << QStringList{"--format", "gif"};
        QTest::newRow("scale") << QStringList{"--scale", "9"};
        QTest::newRow("view") << QStringList{"--views", "step,bogus"};
        QTest::newRow("theme") << QStringList{"--theme", "sepia"};
        QTest::newRow("region syntax") << QStringList{"--region", "0:3"};
        QTest::newRow("region letters") << QStringList{"--region", "a:b,c:d"};
        QTest::newRow("region backwards") << QStringList{"--region", "5:2,0:1"};
        QTest::newRow("region negative") << QStringList{"--region", "-1:2,0:1"};
        QTest::newRow("region with frames") << QStringList{"--region", "0:2,0:2", "--frames"};
        QTest::newRow("region without attention")
            << QStringList{"--region", "0:2,0:2", "--views", "step"};
    }
    void badOptionsAreUsageErrors() {
        QFETCH(QStringList, extra);
        const QString out = dir_.filePath("never");
        const Run r = runKvscope(base(out) << extra);
        QCOMPARE(r.code, 2);
        QVERIFY2(!r.err.isEmpty(), "a usage error says what is wrong");
        QVERIFY(!QFileInfo::exists(out));  // nothing written, not even the folder
    }
};

QTEST_GUILESS_MAIN(TstExport)
#include "tst_export.moc"
