// The headless figure run behind `kvscope export`: decode a prompt step by step into a TraceStore
// and write the chosen views as PNG, SVG or PDF files (optionally one frame per step), plus the
// trace as JSON and CSV. No display is needed (Qt's offscreen platform). Deterministic when the
// session decodes greedily and animations are off (this run turns them off). A region of the
// attention matrix (query rows and key columns) may be written zoomed in instead of the whole.
#pragma once

#include <QSize>
#include <QString>
#include <QStringList>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/annotation.h"

#include "common/trace_store.h"
#include "core/error.h"
#include "export/exporter.h"
#include "runtime/decode_session.h"

namespace kvscope::viz {

// Query rows r0..r1 and key columns c0..c1 of the attention matrix, inclusive, from 0.
struct CellRegion {
    int r0 = 0, r1 = 0, c0 = 0, c1 = 0;
};

// Parses "r0:r1,c0:c1" (e.g. "100:163,0:63"). Returns nullopt and sets `error` to what is wrong
// (the syntax, a negative index, a range that runs backwards).
std::optional<CellRegion> parseCellRegion(const QString& text, QString* error);

// A region that goes past the run's last token (a usage error: the command line asked for it).
class RegionOutOfRange : public Error {
  public:
    using Error::Error;
};

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
    int token = -1;   // the token the views inspect; -1: the newest
    QString caption;  // a line under every figure (a session's scene), empty: none
    std::vector<Annotation> annotations;  // drawn over the figure of their view
    // The attention figure zoomed to these cells instead of the whole matrix (not with frames).
    std::optional<CellRegion> region;
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
// Throws RegionOutOfRange, before anything is written, when `region` goes past the last token
// (the prompt's tokens plus the steps).
void runFigures(const FigureRunOptions& options, DecodeSession& session,
                const ModelSummary& summary, const std::function<void(const QString&)>& written);

}  // namespace kvscope::viz
