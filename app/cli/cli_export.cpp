// kvscope export: the options of the headless figure run (viz/export/figure_run.h), checked
// before anything is decoded or written, then the run.
#include <QDir>
#include <QFileInfo>
#include <atomic>
#include <csignal>
#include <cstdio>

#include "cli/cli.h"
#include "core/error.h"
#include "export/figure_run.h"
#include "model_source/model_source.h"
#include "session/session_file.h"

namespace kvscope::app {
namespace {

// Ctrl+C (or a TERM) during an export stops it between two files, so that no file is left
// half-written and the temporary files are removed; the exit status is 130.
std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);  // safe to store from a signal handler

extern "C" void onInterrupt(int) {
    interrupted.store(true);
}

// Installs the handler for SIGINT and SIGTERM for its lifetime, then restores the previous ones.
class InterruptGuard {
  public:
    InterruptGuard() {
        interrupted.store(false);
        previousInt_ = std::signal(SIGINT, onInterrupt);
        previousTerm_ = std::signal(SIGTERM, onInterrupt);
    }
    ~InterruptGuard() {
        std::signal(SIGINT, previousInt_);
        std::signal(SIGTERM, previousTerm_);
    }
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;

  private:
    void (*previousInt_)(int) = SIG_DFL;
    void (*previousTerm_)(int) = SIG_DFL;
};

}  // namespace

namespace {

// The export views that show what a window's tab shows.
QString viewsOfTab(const QString& tab) {
    if (tab == "attention") return "attention";
    if (tab == "memory") return "memory,latency";
    if (tab == "cache" || tab == "calculator" || tab == "next" || tab == "sharing") return tab;
    return "step";
}

// --session FILE [--scene N]: the session's settings as the options not given on the command
// line, and the scene's token and caption.
struct SessionExport {
    CliArgs args;
    int token = -1;
    QString caption;
    std::vector<viz::Annotation> annotations;
};
SessionExport withSession(const CliArgs& given) {
    const QString path = QString::fromStdString(given.require("session"));
    const SessionFile s = SessionFile::load(path);
    if (const std::optional<QString> problem = modelProblem(s)) throw Error(problem->toStdString());
    int steps = s.steps, layer = s.layer, head = s.head, token = s.token;
    QString view = s.view, caption;
    if (given.has("scene")) {
        if (s.scenes.empty())
            throw UsageError("--scene: the session '" + path.toStdString() + "' has no scenes");
        const auto n = static_cast<size_t>(
            given.getInt("scene", 1, 1, static_cast<long long>(s.scenes.size())));
        const Scene& sc = s.scenes[n - 1];
        steps = sc.steps, layer = sc.layer, head = sc.head, token = sc.token;
        view = sc.view, caption = sc.caption;
    }
    std::map<std::string, std::string> d{{"model", s.modelPath.toStdString()},
                                         {"prompt", s.prompt.toStdString()},
                                         {"steps", std::to_string(steps)},
                                         {"layer", std::to_string(layer)},
                                         {"head", std::to_string(head)},
                                         {"views", viewsOfTab(view).toStdString()},
                                         {"colormap", s.colormap.toStdString()},
                                         {"temperature", std::to_string(s.sampler.temperature)},
                                         {"top-k", std::to_string(s.sampler.topK)},
                                         {"top-p", std::to_string(s.sampler.topP)},
                                         {"seed", std::to_string(s.sampler.seed)},
                                         {"kv-type", kvTypeName(s.cache.type)}};
    if (s.cache.blockTokens != KvCacheOptions().blockTokens)  // the default fits any context
        d["block"] = std::to_string(s.cache.blockTokens);
    if (s.context > 0) d["context"] = std::to_string(s.context);
    if (s.cache.eviction.window > 0) d["window"] = std::to_string(s.cache.eviction.window);
    if (s.cache.eviction.sinks > 0) d["sinks"] = std::to_string(s.cache.eviction.sinks);
    if (s.cache.eviction.heavy > 0) d["heavy"] = std::to_string(s.cache.eviction.heavy);
    if (!s.parseSpecial) d["no-special"] = "";
    if (s.backend == "cpu") d["backend"] = "cpu";
    if (s.backend.startsWith("opencl:")) {
        d["backend"] = "opencl";
        d["device"] = s.backend.mid(7).toStdString();
    }
    return {given.withDefaults(d), token, caption, s.annotations};
}

}  // namespace

int runExport(const CliArgs& given) {
    std::optional<SessionExport> saved;
    if (given.has("session"))
        saved = withSession(given);
    else if (given.has("scene"))
        throw UsageError("--scene N needs --session FILE");
    const CliArgs& args = saved ? saved->args : given;
    viz::FigureRunOptions o;
    if (saved)
        o.token = saved->token, o.caption = saved->caption, o.annotations = saved->annotations;
    o.prompt = args.require("prompt");
    o.steps = static_cast<int>(args.getInt("steps", 8, 0, 100000));
    o.outDir = QString::fromStdString(args.require("out"));
    const auto format =
        viz::exportFormatFromName(QString::fromStdString(args.get("format").value_or("png")));
    if (!format) throw UsageError("--format must be png, svg or pdf");
    o.format = *format;
    o.scale = args.getDouble("scale", 1.0, 1.0, 4.0);
    const std::string theme = args.get("theme").value_or("light");
    if (theme != "light" && theme != "dark") throw UsageError("--theme must be light or dark");
    o.dark = theme == "dark";
    applyColormapOption(args);
    o.frames = args.has("frames");
    if (o.frames && o.steps == 0) throw UsageError("--frames needs --steps of at least 1");
    int width = 1200, height = 800;
    if (auto size = args.get("size"))
        if (std::sscanf(size->c_str(), "%dx%d", &width, &height) != 2 || width < 200 ||
            height < 150 || width > 8000 || height > 8000)
            throw UsageError(
                "--size expects WIDTHxHEIGHT between 200x150 and 8000x8000, e.g. 1200x800");
    o.size = QSize(width, height);
    const QStringList names = viz::exportableViewNames();
    QStringList views =
        QString::fromStdString(args.get("views").value_or("all")).split(',', Qt::SkipEmptyParts);
    // "trace": the run as JSON and CSV (tokens, times, cache bytes, the chosen head's rows)
    o.trace = views.removeAll("trace") > 0 || views.contains("all");
    if (views.contains("all")) {
        views = names;
        // the drift chart when there is drift to draw: a lossy cache policy (the cache lab)
        const KvCacheOptions cache = parseCacheOptions(args, 1 << 24);
        if (!cache.eviction.evicts() && cache.type == KvType::F32) views.removeAll("drift");
    }
    for (const QString& v : views)
        if (!names.contains(v))
            throw UsageError(
                QString("unknown view '%1' in --views; the views are %2, trace and all")
                    .arg(v, names.join(", "))
                    .toStdString());
    o.views = views;
    if (auto region = args.get("region")) {
        QString why;
        o.region = viz::parseCellRegion(QString::fromStdString(*region), &why);
        if (!o.region) throw UsageError("--region: " + why.toStdString());
        if (!views.contains("attention"))
            throw UsageError("--region zooms the attention figure: add attention to --views");
        if (o.frames)
            throw UsageError(
                "--region zooms the final attention figure; it cannot be combined "
                "with --frames");
    }
    if (!QDir().mkpath(o.outDir) || !QFileInfo(o.outDir).isDir())
        throw Error("cannot create the output folder '" + o.outDir.toStdString() + "'");

    auto model = loadModelFile(QString::fromStdString(resolveModelPath(args)));
    o.layer = static_cast<int>(args.getInt("layer", 0, 0, model->config.nLayer - 1));
    o.head = static_cast<int>(args.getInt("head", 0, 0, model->config.nHead - 1));
    std::string note;
    auto backend = makeBackend(args, model, note);
    std::fprintf(stderr, "%s\n", note.c_str());
    SessionOptions sessionOptions;
    sessionOptions.sampler.temperature =
        static_cast<float>(args.getDouble("temperature", 0, 0, 100));
    sessionOptions.sampler.topK = static_cast<int>(args.getInt("top-k", 0, 0, 1 << 24));
    sessionOptions.sampler.topP = static_cast<float>(args.getDouble("top-p", 1, 1e-6, 1));
    sessionOptions.sampler.seed = static_cast<uint64_t>(args.getInt("seed", 0, 0, INT64_MAX));
    sessionOptions.topLogits = 64;  // the next-token view's candidates
    sessionOptions.parseSpecial = !args.has("no-special");
    sessionOptions.drift = true;  // under a lossy cache policy: the drift chart's figures
    DecodeSession session(backend, model->tokenizer, sessionOptions);
    InterruptGuard guard;
    o.stop = &interrupted;
    try {
        viz::runFigures(o, session,
                        summarize(*model, *backend, QString::fromStdString(model->path), note),
                        [](const QString& path) {
                            std::printf("%s\n", qPrintable(path));
                            std::fflush(stdout);
                        });
    } catch (const viz::FigureRunStopped& e) {
        std::fprintf(stderr, "kvscope: export interrupted: %s\n", e.what());
        return 130;
    } catch (const viz::RegionOutOfRange& e) {
        throw UsageError(e.what());  // the command line asked for tokens the run does not have
    }
    return 0;
}

}  // namespace kvscope::app
