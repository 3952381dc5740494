// The figure run: views built on one TraceStore, fed step by step, written by the exporter.
#include "export/figure_run.h"

#include <QApplication>
#include <QDir>
#include <QFileInfo>
#include <QRegularExpression>
#include <QSaveFile>
#include <QWidget>
#include <utility>
#include <vector>

#include "charts/drift_chart.h"
#include "charts/latency_chart.h"
#include "charts/memory_chart.h"
#include "common/theme.h"
#include "core/error.h"
#include "export/trace_export.h"
#include "views/all_heads_view.h"
#include "views/attention_matrix_view.h"
#include "views/cache_view.h"
#include "views/calculator_panel.h"
#include "views/next_token_view.h"
#include "views/sharing_view.h"
#include "views/step_view.h"

namespace kvscope::viz {
namespace {

using ViewFactory = std::function<QWidget*(TraceStore*)>;

const std::vector<std::pair<QString, ViewFactory>>& exportableViews() {
    static const std::vector<std::pair<QString, ViewFactory>> views = {
        {"step", [](TraceStore* s) -> QWidget* { return new StepView(s); }},
        {"attention", [](TraceStore* s) -> QWidget* { return new AttentionMatrixView(s); }},
        {"heads", [](TraceStore* s) -> QWidget* { return new AllHeadsView(s); }},
        {"cache", [](TraceStore* s) -> QWidget* { return new CacheView(s); }},
        {"memory", [](TraceStore* s) -> QWidget* { return new MemoryChart(s); }},
        {"latency", [](TraceStore* s) -> QWidget* { return new LatencyChart(s); }},
        {"drift", [](TraceStore* s) -> QWidget* { return new DriftChart(s); }},
        {"calculator", [](TraceStore* s) -> QWidget* { return new CalculatorPanel(s); }},
        {"next", [](TraceStore* s) -> QWidget* { return new NextTokenView(s); }},
        {"sharing", [](TraceStore* s) -> QWidget* { return new SharingView(s); }},
    };
    return views;
}

// Writes bytes through a temporary file renamed at the end.
void writeFile(const QString& path, const QByteArray& bytes) {
    QSaveFile f(path);
    if (!f.open(QIODevice::WriteOnly) || f.write(bytes) != bytes.size() || !f.commit())
        throw Error(QString("cannot write '%1': %2").arg(path, f.errorString()).toStdString());
}

}  // namespace

std::optional<CellRegion> parseCellRegion(const QString& text, QString* error) {
    static const QRegularExpression form(
        QStringLiteral("^\\s*(-?\\d+)\\s*:\\s*(-?\\d+)\\s*,\\s*(-?\\d+)\\s*:\\s*(-?\\d+)\\s*$"));
    const QRegularExpressionMatch m = form.match(text);
    auto fail = [&](const QString& why) -> std::optional<CellRegion> {
        if (error) *error = why;
        return std::nullopt;
    };
    if (!m.hasMatch())
        return fail(QString("'%1' is not ROWS,KEYS: expected r0:r1,c0:c1 (query rows r0 to r1, key "
                            "columns c0 to c1, inclusive, from 0), e.g. 100:163,0:63")
                        .arg(text));
    int v[4];
    for (int i = 0; i < 4; ++i) {
        bool ok = false;
        v[i] = m.captured(i + 1).toInt(&ok);
        if (!ok)
            return fail(QString("'%1' in '%2' is not a token index").arg(m.captured(i + 1), text));
        if (v[i] < 0)
            return fail(QString("'%1' has a negative index (%2): token indices start at 0")
                            .arg(text)
                            .arg(v[i]));
    }
    if (v[0] > v[1])
        return fail(QString("the rows %1:%2 run backwards (the first must not exceed the last)")
                        .arg(v[0])
                        .arg(v[1]));
    if (v[2] > v[3])
        return fail(QString("the keys %1:%2 run backwards (the first must not exceed the last)")
                        .arg(v[2])
                        .arg(v[3]));
    return CellRegion{v[0], v[1], v[2], v[3]};
}

QStringList exportableViewNames() {
    QStringList names;
    for (const auto& [name, make] : exportableViews()) names << name;
    return names;
}

void runFigures(const FigureRunOptions& o, DecodeSession& session, const ModelSummary& summary,
                const std::function<void(const QString&)>& written) {
    if (!QDir().mkpath(o.outDir) || !QFileInfo(o.outDir).isDir())
        throw Error("cannot create the output folder '" + o.outDir.toStdString() + "'");
    ThemeSettings::instance().setAnimationMs(0);  // the final state of each step, never between
    ThemeSettings::instance().setTheme(o.dark ? Theme::dark() : Theme::print());
    // the widgets around the views (the calculator's inputs, the sampling controls) in the
    // figure's colours too, not the light palette of a desktop
    QApplication::setPalette(
        themePalette(ThemeSettings::instance().theme(), QApplication::palette()));
    TraceStore store;
    store.setModel(summary);
    store.setLayerHead(o.layer, o.head);

    std::vector<std::unique_ptr<QWidget>> widgets;
    for (const QString& v : o.views) {
        const size_t before = widgets.size();
        for (const auto& [name, make] : exportableViews())
            if (name == v) widgets.emplace_back(make(&store));
        if (widgets.size() == before) throw Error("unknown view '" + v.toStdString() + "'");
        widgets.back()->setAttribute(Qt::WA_DontShowOnScreen);
        widgets.back()->resize(o.size);
    }
    const QDir out(o.outDir);
    const QString ext = extensionOf(o.format);
    int filesWritten = 0, stepsDone = 0;
    auto stopIfAsked = [&] {
        if (o.stop && o.stop->load())
            throw FigureRunStopped("stopped after step " + std::to_string(stepsDone) + " of " +
                                   std::to_string(o.steps) + " after " +
                                   std::to_string(filesWritten) +
                                   " file(s); those are whole and nothing is half-written");
    };
    auto write = [&](QWidget* w, const QString& path) {
        stopIfAsked();
        const QString view = QFileInfo(path).completeBaseName().section('-', 0, 0);
        const QString error =
            exportWidget(w, path, o.format, o.scale, o.caption, o.annotations, view);
        if (!error.isEmpty()) throw Error(error.toStdString());
        ++filesWritten;
        written(path);
    };

    // The next-token view's logit lens of the inspected token (computed with the session's
    // backend, as the window's worker does on request).
    const bool lensShown = o.views.contains("next");
    auto fillLens = [&] {
        const int i = store.queryIndex();
        if (!lensShown || i < 1 || store.lens(i) || !store.trace(i - 1).hasResiduals()) return;
        store.setLens(i, session.logitLens(store.trace(i - 1), store.trace(i).token, 5));
    };

    // Rows the traces let go (the attention budget) rebuilt for the chosen head, as the window's
    // worker does when a view asks; not after the cache policy let keys go (the views say why).
    auto fillRows = [&] {
        if (store.count() == 0 || store.hasAllRows(o.layer, o.head) ||
            !store.trace(0).hasTensors() || !store.canRebuildRows())
            return;
        const int t = store.count(), hd = store.config().headDim;
        std::vector<float> queries(static_cast<size_t>(t) * hd), full;
        for (int i = 0; i < t; ++i) {
            const float* q = store.trace(i).query(o.layer, o.head);
            std::copy(q, q + hd, queries.begin() + static_cast<std::ptrdiff_t>(i) * hd);
        }
        session.attentionMatrix(o.layer, o.head, queries, full);
        store.setHeadMatrix(o.layer, o.head, t, full);
    };

    // decode, writing a frame per step if asked, then the final figures
    std::vector<std::unique_ptr<PdfPages>> pdfs;
    if (o.frames && o.format == ExportFormat::Pdf)
        for (const QString& v : o.views)
            pdfs.push_back(std::make_unique<PdfPages>(out.filePath(v + "-frames.pdf")));
    std::vector<StepTrace> promptTraces = session.prefill(o.prompt);  // before prefillMs()
    if (o.region) {  // known now: the prompt's tokens and the steps to come
        const int tokens = static_cast<int>(promptTraces.size()) + o.steps;
        const int last = std::max(o.region->r1, o.region->c1);
        if (last >= tokens)
            throw RegionOutOfRange(
                QString("--region %1:%2,%3:%4 goes past the last token: the run has %5 tokens "
                        "(the prompt's %6 and %7 steps), indices 0 to %8")
                    .arg(o.region->r0)
                    .arg(o.region->r1)
                    .arg(o.region->c0)
                    .arg(o.region->c1)
                    .arg(tokens)
                    .arg(promptTraces.size())
                    .arg(o.steps)
                    .arg(tokens - 1)
                    .toStdString());
    }
    store.setPrompt(std::move(promptTraces), session.prefillMs());
    for (int i = 1; i <= o.steps; ++i) {
        stopIfAsked();
        store.append(session.step());
        stepsDone = i;
        if (!o.frames) continue;
        fillLens();
        fillRows();
        for (size_t k = 0; k < widgets.size(); ++k) {
            const QString& view = o.views[static_cast<qsizetype>(k)];
            if (o.format == ExportFormat::Pdf)
                pdfs[k]->add(widgets[k].get());
            else
                write(widgets[k].get(),
                      out.filePath(
                          QString("%1-frame-%2.%3").arg(view).arg(i, 3, 10, QChar('0')).arg(ext)));
        }
    }
    for (size_t k = 0; k < pdfs.size(); ++k) {
        const QString error = pdfs[k]->finish();
        if (!error.isEmpty()) throw Error(error.toStdString());
        written(out.filePath(o.views[static_cast<qsizetype>(k)] + "-frames.pdf"));
    }
    // The latency chart's second curve: the same tokens replayed without a cache, measured.
    for (size_t k = 0; k < widgets.size() && !o.frames; ++k) {
        auto* latency = dynamic_cast<LatencyChart*>(widgets[k].get());
        if (!latency) continue;
        const ReplayTimes r = session.replayWithoutCache([&](int, int) { stopIfAsked(); });
        latency->setComparison(QList<int>(r.tokens.begin(), r.tokens.end()),
                               static_cast<int>(r.promptLength), r.prefillMs,
                               QList<double>(r.stepMs.begin(), r.stepMs.end()));
    }
    if (o.region && !o.frames)  // the attention figure zoomed to the region
        for (const auto& w : widgets)
            if (auto* matrix = dynamic_cast<AttentionMatrixView*>(w.get()))
                matrix->zoomToCells(o.region->r0, o.region->r1, o.region->c0, o.region->c1);
    if (o.token >= 0 && o.token < store.count()) store.pinQuery(o.token);  // a scene's token
    fillLens();
    fillRows();
    if (!o.frames)
        for (size_t k = 0; k < widgets.size(); ++k)
            write(widgets[k].get(), out.filePath(o.views[static_cast<qsizetype>(k)] + "." + ext));
    if (o.trace) {
        for (const auto& [name, bytes] :
             {std::pair{QString("trace.json"), traceJson(store, o.layer, o.head)},
              std::pair{QString("trace.csv"), traceCsv(store, o.layer, o.head)}}) {
            writeFile(out.filePath(name), bytes);
            written(out.filePath(name));
        }
    }
}

}  // namespace kvscope::viz
