// The kvscope command line: info, decode, bench (more subcommands arrive with their issues).
// Exit status: 0 success, 1 failure (one line on stderr), 2 usage error.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cli/cli_args.h"
#include "model/model.h"
#include "runtime/backend.h"

namespace kvscope::app {

int runCli(const std::vector<std::string>& args);

// Shared by the subcommands:
// The model a command runs: --model PATH, else the built-in model. Error if neither exists.
std::string resolveModelPath(const CliArgs& args);
// The backend --backend/--device ask for; `note` says which was chosen and why.
std::shared_ptr<Backend> makeBackend(const CliArgs& args, std::shared_ptr<const Model> model,
                                     std::string& note);

int runInfo(const CliArgs& args);
int runDecode(const CliArgs& args);
int runBench(const CliArgs& args);
int runTrain(const CliArgs& args);
int runEval(const CliArgs& args);
int runHeads(const CliArgs& args);
int runMemory(const CliArgs& args);  // app/cli/cli_memory.cpp: the KV-cache calculator
// Needs a QApplication (widgets render the figures); main() makes one on the offscreen platform.
int runExport(const CliArgs& args);

}  // namespace kvscope::app
