// CliArgs: typed access to the parsed options.
#include "cli/cli_args.h"

#include <cerrno>
#include <cstdlib>
#include <initializer_list>
#include <string_view>

namespace kvscope::app {

std::optional<std::string> CliArgs::get(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second.back();
}

std::vector<std::string> CliArgs::getAll(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string CliArgs::require(const std::string& name) const {
    auto v = get(name);
    if (!v) throw UsageError("option --" + name + " is required");
    return *v;
}

long long CliArgs::getInt(const std::string& name, long long fallback, long long lo,
                          long long hi) const {
    auto v = get(name);
    if (!v) return fallback;
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(v->c_str(), &end, 10);
    if (v->empty() || *end != '\0' || errno == ERANGE)
        throw UsageError("--" + name + " expects an integer, got '" + *v + "'");
    if (x < lo || x > hi)
        throw UsageError("--" + name + " must be between " + std::to_string(lo) + " and " +
                         std::to_string(hi) + ", got " + *v);
    return x;
}

double CliArgs::getDouble(const std::string& name, double fallback, double lo, double hi) const {
    auto v = get(name);
    if (!v) return fallback;
    char* end = nullptr;
    errno = 0;
    const double x = std::strtod(v->c_str(), &end);
    if (v->empty() || *end != '\0' || errno == ERANGE || x != x)
        throw UsageError("--" + name + " expects a number, got '" + *v + "'");
    if (x < lo || x > hi)
        throw UsageError("--" + name + " must be between " + std::to_string(lo) + " and " +
                         std::to_string(hi) + ", got " + *v);
    return x;
}

}  // namespace kvscope::app
