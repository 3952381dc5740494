// The kvscope command line: one file per subcommand (cli_<name>.cpp), dispatched by cli.cpp from
// one table of commands and options that builds both the parsers (QCommandLineParser) and every
// help text. Exit status: 0 success, 1 failure (one line on stderr), 2 usage error.
#pragma once

#include <QByteArray>
#include <QJsonObject>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli_args.h"
#include "model/model.h"
#include "runtime/backend.h"

namespace kvscope::app {

int runCli(const std::vector<std::string>& args);
// The help texts, generated from the same table as the parsers: every command, or one.
std::string helpText();
std::string commandHelpText(const std::string& command);  // empty for an unknown command
// A man page (troff) made of the help texts: kvscope --man, installed as kvscope.1.
std::string manPage();
// The desktop app's options (--model, --screenshot, ...), parsed like a command's.
CliArgs parseAppArgs(const std::vector<std::string>& args);

// Shared by the subcommands:
// The model a command runs: --model PATH, else the built-in model. Error if neither exists.
std::string resolveModelPath(const CliArgs& args);
// The backend --backend/--device ask for; `note` says which was chosen and why.
std::shared_ptr<Backend> makeBackend(const CliArgs& args, std::shared_ptr<const Model> model,
                                     std::string& note);
std::shared_ptr<const Model> loadModel(const CliArgs& args);  // resolveModelPath, then load
// The cache lab's options: --kv-type, --window, --sinks, --heavy, --block (counts up to nCtx).
// UsageError for a value that is none, or sinks or heavy hitters without a window.
KvCacheOptions parseCacheOptions(const CliArgs& args, int nCtx);
// --colormap LIST (viridis, cividis, rdbu, puor, blue-yellow, comma-separated): sets the views'
// colour maps (viz::ThemeSettings). UsageError naming a map that is none.
void applyColormapOption(const CliArgs& args);
QJsonObject modelJson(const Model& m);  // the "model" object of decode --json and info --json
// Writes bytes to path ("-": stdout) through a temporary file, so a failure loses nothing.
void writeOutput(const std::string& path, const QByteArray& bytes);

int runInfo(const CliArgs& args);
int runDecode(const CliArgs& args);
int runBench(const CliArgs& args);
int runConvert(const CliArgs& args);  // weights as another type
int runTrain(const CliArgs& args);
int runEval(const CliArgs& args);
int runHeads(const CliArgs& args);
int runMemory(const CliArgs& args);  // the KV-cache calculator
int runDevices(const CliArgs& args);
// Needs a QApplication (widgets render the figures); main() makes one on the offscreen platform.
int runExport(const CliArgs& args);

}  // namespace kvscope::app
