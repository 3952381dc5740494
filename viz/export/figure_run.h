// The headless figure run behind `kvscope export`: decode a prompt step by step into a TraceStore
// and write the chosen views as PNG, SVG or PDF files (optionally one frame per step), plus the
// trace as JSON and CSV. No display is needed (Qt's offscreen platform). Deterministic when the
// session decodes greedily and animations are off (this run turns them off).
#pragma once

#include <QSize>
#include <QString>
#include <QStringList>
#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "common/trace_store.h"
#include "core/error.h"
#include "export/exporter.h"
#include "runtime/decode_session.h"

namespace kvscope::viz {

struct FigureRunOptions {
    std::string prompt;
    int steps = 8;
    QString outDir;
    ExportFormat format = ExportFormat::Png;
    double scale = 1.0;
    bool dark = false;    // the dark theme; else the light print theme
    bool frames = false;  // a figure per step (PDF: one page per step)
    QSize size{1200, 800};
    QStringList views;  // names from exportableViewNames()
    bool trace = false;
    int layer = 0, head = 0;
    // When set and true, the run stops before its next step or file and throws FigureRunStopped.
    const std::atomic<bool>* stop = nullptr;
};

// A run that options.stop ended: the files written before it are whole; none is half-written.
struct FigureRunStopped : Error {
    using Error::Error;
};

// The views a figure run can write, in the order "all" writes them.
QStringList exportableViewNames();

// Runs it. `session` is fresh (nothing decoded); the latency chart's replay without the cache
// runs on its backend too. `written` is told each file as it is written.
// Throws Error naming the file or folder at fault; files already there are never half-written.
void runFigures(const FigureRunOptions& options, DecodeSession& session,
                const ModelSummary& summary, const std::function<void(const QString&)>& written);

}  // namespace kvscope::viz
