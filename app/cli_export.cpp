// kvscope export: the views as PNG, SVG or PDF files from the command line, with no display
// (Qt's offscreen platform), deterministic by default (greedy decoding, no animation).
#include <QDir>
#include <QFileInfo>
#include <QSaveFile>
#include <QWidget>
#include <cstdio>
#include <functional>
#include <map>

#include "all_heads_view.h"
#include "attention_matrix_view.h"
#include "cache_view.h"
#include "calculator_panel.h"
#include "cli.h"
#include "decode_controller.h"
#include "error.h"
#include "exporter.h"
#include "latency_chart.h"
#include "memory_chart.h"
#include "step_view.h"
#include "theme.h"
#include "trace_export.h"
#include "trace_store.h"

namespace kvscope::app {
namespace {

using ViewFactory = std::function<QWidget*(viz::TraceStore*)>;

// The views `--views` can name, in the order `all` exports them.
const std::vector<std::pair<QString, ViewFactory>>& exportableViews() {
    static const std::vector<std::pair<QString, ViewFactory>> views = {
        {"step", [](viz::TraceStore* s) -> QWidget* { return new viz::StepView(s); }},
        {"attention",
         [](viz::TraceStore* s) -> QWidget* { return new viz::AttentionMatrixView(s); }},
        {"heads", [](viz::TraceStore* s) -> QWidget* { return new viz::AllHeadsView(s); }},
        {"cache", [](viz::TraceStore* s) -> QWidget* { return new viz::CacheView(s); }},
        {"memory", [](viz::TraceStore* s) -> QWidget* { return new viz::MemoryChart(s); }},
        {"latency", [](viz::TraceStore* s) -> QWidget* { return new viz::LatencyChart(s); }},
        {"calculator", [](viz::TraceStore* s) -> QWidget* { return new viz::CalculatorPanel(s); }},
    };
    return views;
}

QStringList viewNames() {
    QStringList names;
    for (const auto& [name, make] : exportableViews()) names << name;
    return names;
}

// Writes bytes through a temporary file renamed at the end.
void writeFile(const QString& path, const QByteArray& bytes) {
    QSaveFile f(path);
    if (!f.open(QIODevice::WriteOnly) || f.write(bytes) != bytes.size() || !f.commit())
        throw Error(QString("cannot write '%1': %2").arg(path, f.errorString()).toStdString());
    std::printf("%s\n", qPrintable(path));
}

}  // namespace

int runExport(const CliArgs& args) {
    // 1. options, all checked before anything is decoded or written
    const std::string prompt = args.require("prompt");
    const int steps = static_cast<int>(args.getInt("steps", 8, 0, 100000));
    const QString outDir = QString::fromStdString(args.require("out"));
    const auto format =
        viz::exportFormatFromName(QString::fromStdString(args.get("format").value_or("png")));
    if (!format) throw UsageError("--format must be png, svg or pdf");
    const double scale = args.getDouble("scale", 1.0, 1.0, 4.0);
    const std::string theme = args.get("theme").value_or("light");
    if (theme != "light" && theme != "dark") throw UsageError("--theme must be light or dark");
    const bool frames = args.has("frames");
    if (frames && steps == 0) throw UsageError("--frames needs --steps of at least 1");
    int width = 1200, height = 800;
    if (auto size = args.get("size"))
        if (std::sscanf(size->c_str(), "%dx%d", &width, &height) != 2 || width < 200 ||
            height < 150 || width > 8000 || height > 8000)
            throw UsageError(
                "--size expects WIDTHxHEIGHT between 200x150 and 8000x8000, e.g. 1200x800");
    QStringList views =
        QString::fromStdString(args.get("views").value_or("all")).split(',', Qt::SkipEmptyParts);
    // "trace": the run as JSON and CSV (tokens, times, cache bytes, the chosen head's rows)
    const bool trace = views.removeAll("trace") > 0 || views.contains("all");
    if (views.contains("all")) views = viewNames();
    for (const QString& v : views)
        if (!viewNames().contains(v))
            throw UsageError(
                QString("unknown view '%1' in --views; the views are %2, trace and all")
                    .arg(v, viewNames().join(", "))
                    .toStdString());
    if (!QDir().mkpath(outDir) || !QFileInfo(outDir).isDir())
        throw Error("cannot create the output folder '" + outDir.toStdString() + "'");

    // 2. the model and the decoding, as the window does it
    auto model = loadModelFile(QString::fromStdString(resolveModelPath(args)));
    const int layer = static_cast<int>(args.getInt("layer", 0, 0, model->config.nLayer - 1));
    const int head = static_cast<int>(args.getInt("head", 0, 0, model->config.nHead - 1));
    std::string note;
    auto backend = makeBackend(args, model, note);
    std::fprintf(stderr, "%s\n", note.c_str());
    DecodeSession session(backend, model->tokenizer);

    viz::ThemeSettings::instance().setAnimationMs(
        0);  // the final state of each step, never a frame between
    viz::ThemeSettings::instance().setTheme(theme == "dark" ? viz::Theme::dark()
                                                            : viz::Theme::print());
    viz::TraceStore store;
    store.setModel(summarize(*model, *backend, QString::fromStdString(model->path), note));
    store.setLayerHead(layer, head);

    std::vector<std::unique_ptr<QWidget>> widgets;
    for (const QString& v : views) {
        for (const auto& [name, make] : exportableViews())
            if (name == v) widgets.emplace_back(make(&store));
        widgets.back()->setAttribute(Qt::WA_DontShowOnScreen);
        widgets.back()->resize(width, height);
    }

    const QString ext = viz::extensionOf(*format);
    auto fail = [](const QString& message) { throw Error(message.toStdString()); };
    auto write = [&](QWidget* w, const QString& path) {
        const QString error = viz::exportWidget(w, path, *format, scale);
        if (!error.isEmpty()) fail(error);
        std::printf("%s\n", qPrintable(path));
    };

    // 3. decode, writing a frame per step if asked, then the final figures
    std::vector<std::unique_ptr<viz::PdfPages>> pdfs;
    if (frames && *format == viz::ExportFormat::Pdf)
        for (const QString& v : views)
            pdfs.push_back(
                std::make_unique<viz::PdfPages>(QDir(outDir).filePath(v + "-frames.pdf")));
    std::vector<StepTrace> promptTraces = session.prefill(prompt);  // before prefillMs() is read
    store.setPrompt(std::move(promptTraces), session.prefillMs());
    for (int i = 1; i <= steps; ++i) {
        store.append(session.step());
        if (!frames) continue;
        for (size_t k = 0; k < widgets.size(); ++k) {
            if (*format == viz::ExportFormat::Pdf)
                pdfs[k]->add(widgets[k].get());
            else
                write(widgets[k].get(), QDir(outDir).filePath(QString("%1-frame-%2.%3")
                                                                  .arg(views[static_cast<int>(k)])
                                                                  .arg(i, 3, 10, QChar('0'))
                                                                  .arg(ext)));
        }
    }
    for (size_t k = 0; k < pdfs.size(); ++k) {
        const QString error = pdfs[k]->finish();
        if (!error.isEmpty()) fail(error);
        std::printf("%s\n",
                    qPrintable(QDir(outDir).filePath(views[static_cast<int>(k)] + "-frames.pdf")));
    }
    // The latency chart's second curve: the same tokens replayed without a cache, measured.
    for (size_t k = 0; k < widgets.size() && !frames; ++k) {
        auto* latency = dynamic_cast<viz::LatencyChart*>(widgets[k].get());
        if (!latency) continue;
        SessionOptions o;
        o.useCache = false;
        o.captureTrace = false;
        std::string unused;
        DecodeSession replay(makeBackend(args, model, unused), model->tokenizer, o);
        const std::vector<int32_t>& ids = session.tokens();
        const size_t promptLength = session.promptLength();
        replay.prefillTokens(std::span(ids).first(promptLength));
        QList<int> tokens(ids.begin(), ids.end());
        QList<double> stepMs;
        for (size_t i = promptLength; i < ids.size(); ++i) stepMs << replay.stepWith(ids[i]).hostMs;
        latency->setComparison(tokens, static_cast<int>(promptLength), replay.prefillMs(), stepMs);
    }
    if (!frames)
        for (size_t k = 0; k < widgets.size(); ++k)
            write(widgets[k].get(), QDir(outDir).filePath(views[static_cast<int>(k)] + "." + ext));
    if (trace) {
        writeFile(QDir(outDir).filePath("trace.json"), viz::traceJson(store, layer, head));
        writeFile(QDir(outDir).filePath("trace.csv"), viz::traceCsv(store, layer, head));
    }
    return 0;
}

}  // namespace kvscope::app
