// kvscope: the desktop app, or the command line when a subcommand is given.
#include <QApplication>
#include <QCoreApplication>
#include <QTabWidget>
#include <QTimer>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>

#include "cli/cli.h"
#include "common/theme.h"
#include "common/trace_store.h"
#include "gui/main_window.h"
#include "opencl/device_list.h"

namespace {

bool isCommandLine(const std::vector<std::string>& args) {
    if (args.empty()) return false;
    const std::string& a = args[0];
    return a.rfind("--", 0) != 0 || a == "--help" || a == "--version" || a == "--man";
}

// --screenshot: load, prefill, step, save the window as PNG, quit (no display needed with
// QT_QPA_PLATFORM=offscreen). Exit status 1 with the message if anything fails.
// compare: after the steps, replay them without the cache (the latency chart's second curve).
// A step that only shows a speculative round's next phase sends no request (and no idle
// follows): the next action is then scheduled at once.
void driveScreenshot(kvscope::app::MainWindow& w, const QString& file, int steps, int layer,
                     int head, bool compare) {
    auto prefilled = std::make_shared<bool>(false);
    auto compareLeft = std::make_shared<bool>(compare);
    auto left = std::make_shared<int>(steps);
    auto next = std::make_shared<std::function<void()>>();
    *next = [&w, file, prefilled, left, layer, head, compareLeft,
             weak = std::weak_ptr<std::function<void()>>(next)] {
        if (!w.errorText().isEmpty()) {
            std::fprintf(stderr, "kvscope: %s\n", qPrintable(w.errorText()));
            QCoreApplication::exit(1);
        } else if (!w.store()->hasModel()) {
            return;  // the load is still queued
        } else if (!*prefilled) {
            *prefilled = true;
            w.store()->setLayerHead(layer, head);
            w.prefill();
        } else if (*left > 0) {
            --*left;
            w.step();
            if (!w.busy())
                if (auto again = weak.lock()) QTimer::singleShot(0, &w, *again);
        } else if (*compareLeft) {
            *compareLeft = false;
            w.compareWithoutCache();
        } else {
            QTimer::singleShot(50, &w, [&w, file] {  // let the views finish painting
                if (!w.grab().save(file)) {
                    std::fprintf(stderr, "kvscope: cannot write '%s'\n", qPrintable(file));
                    QCoreApplication::exit(1);
                    return;
                }
                std::printf("%s\n", qPrintable(file));
                QCoreApplication::exit(0);
            });
        }
    };
    QObject::connect(&w, &kvscope::app::MainWindow::idle, &w, [next] { (*next)(); });
}

}  // namespace

int main(int argc, char** argv) {
    kvscope::ocl::prepareRuntimes();  // before any thread, and before OpenCL is first used
    std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty() && args[0] == "export") {
        // Figures are drawn by the views' widgets, with no display needed (works over ssh).
        qputenv("QT_QPA_PLATFORM", "offscreen");
        QApplication app(argc, argv);
        QCoreApplication::setApplicationName("kvscope");
        return kvscope::app::runCli(args);
    }
    if (isCommandLine(args)) {
        QCoreApplication app(argc, argv);
        QCoreApplication::setApplicationName("kvscope");
        QCoreApplication::setApplicationVersion(KVSCOPE_VERSION);
        return kvscope::app::runCli(args);
    }
    QApplication app(argc, argv);
    QCoreApplication::setOrganizationName("KVScope");
    QCoreApplication::setApplicationName("KVScope");
    QCoreApplication::setApplicationVersion(KVSCOPE_VERSION);
    try {
        const kvscope::app::CliArgs opts = kvscope::app::parseAppArgs(args);
        const QString model = QString::fromStdString(opts.get("model").value_or(""));
        const std::optional<std::string> shot = opts.get("screenshot");
        if (shot)
            kvscope::viz::ThemeSettings::instance().setAnimationMs(
                0);  // the final state, not a frame
        // The window is destroyed before the exit below: it may leave a worker inside a driver
        // call that cannot be interrupted, and then the process ends without waiting for it.
        std::optional<kvscope::app::MainWindow> window;
        kvscope::app::MainWindow& w = window.emplace(model, !shot);
        kvscope::app::applyColormapOption(opts);  // after the settings the window restored
        if (auto p = opts.get("prompt")) w.setPrompt(QString::fromStdString(*p));
        if (opts.has("kv-type") || opts.has("window") || opts.has("block"))  // the cache lab
            w.setCacheOptions(0, kvscope::app::parseCacheOptions(opts, 1 << 24));
        if (auto spec = opts.get("speculative")) {
            if (*spec != "lookup" && spec->rfind("model:", 0) != 0)
                throw kvscope::app::UsageError("--speculative must be lookup or model:PATH, got '" +
                                               *spec + "'");
            w.setSpeculative(QString::fromStdString(*spec),
                             static_cast<int>(opts.getInt("draft", 4, 1, 16)));
        }
        if (opts.has("presenter")) {
            if (shot) w.setPresenterFullScreen(false);  // the figure keeps --size
            w.setPresenterMode(true);
        }
        if (auto tab = opts.get("tab")) {
            // A view's name, as `export --views` takes them (a number still works).
            int index = -1;
            for (int i = 0; i < w.tabs()->count(); ++i)
                if (QString::fromStdString(*tab) == kvscope::app::MainWindow::viewName(i))
                    index = i;
            if (index < 0 && *tab == "latency") index = 3;  // memory and latency share a tab
            if (index < 0 && tab->find_first_not_of("0123456789") != std::string::npos)
                throw kvscope::app::UsageError(
                    "--tab expects step, attention, cache, memory, calculator, next or sharing, "
                    "got '" +
                    *tab + "'");
            if (index < 0)
                index = static_cast<int>(opts.getInt("tab", 0, 0, w.tabs()->count() - 1));
            w.tabs()->setCurrentIndex(index);
        }
        if (auto size = opts.get("size")) {
            int width = 0, height = 0;
            if (std::sscanf(size->c_str(), "%dx%d", &width, &height) != 2 || width < 200 ||
                height < 200)
                throw kvscope::app::UsageError("--size expects WIDTHxHEIGHT, e.g. 1600x1000");
            w.resize(width, height);
        } else if (shot) {
            w.resize(1600, 1000);
        }
        if (shot)
            driveScreenshot(w, QString::fromStdString(*shot),
                            static_cast<int>(opts.getInt("steps", 6, 0, 100000)),
                            static_cast<int>(opts.getInt("layer", 0, 0, 4096)),
                            static_cast<int>(opts.getInt("head", 0, 0, 4096)), opts.has("compare"));
        w.show();
        const int rc = app.exec();
        window.reset();
        if (kvscope::app::MainWindow::workersStillRunning() > 0) {
            std::fflush(nullptr);
            std::_Exit(rc);  // the settings are saved; a driver's compile is all that is left
        }
        return rc;
    } catch (const kvscope::app::UsageError& e) {
        std::fprintf(stderr, "kvscope: %s (see kvscope --help)\n", e.what());
        return 2;
    }
}
