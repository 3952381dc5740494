// CliArgs: the options of one kvscope subcommand as parsed, with typed access. A missing,
// malformed or out-of-range value throws UsageError (exit status 2); the message names it.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvscope::app {

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class CliArgs {
  public:
    // The values given, by option name (a flag given has one empty value); cli.cpp fills it
    // from the command's QCommandLineParser.
    explicit CliArgs(std::map<std::string, std::vector<std::string>> values)
        : values_(std::move(values)) {}

    bool has(const std::string& name) const { return values_.count(name) != 0; }
    std::optional<std::string> get(const std::string& name) const;   // the last one given
    std::vector<std::string> getAll(const std::string& name) const;  // every one, in order
    std::string require(const std::string& name) const;              // UsageError if missing
    // Typed values within [lo, hi]; UsageError naming the option if malformed or out of range.
    long long getInt(const std::string& name, long long fallback, long long lo, long long hi) const;
    double getDouble(const std::string& name, double fallback, double lo, double hi) const;
    // These values, with `defaults` added for the options not given.
    CliArgs withDefaults(const std::map<std::string, std::string>& defaults) const {
        auto values = values_;
        for (const auto& [k, v] : defaults)
            if (!values.count(k)) values[k] = {v};
        return CliArgs(std::move(values));
    }

  private:
    std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace kvscope::app
