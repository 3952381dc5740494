// CliArgs: "--name value", "--name=value" and "--flag"; nothing positional.
#include "cli/cli_args.h"

#include <cerrno>
#include <cstdlib>
#include <initializer_list>
#include <string_view>

namespace kvscope::app {
namespace {
// Joins message parts (GCC 12 warns falsely about "literal" + std::string chains: PR 105651).
std::string join(std::initializer_list<std::string_view> parts) {
    std::string s;
    for (std::string_view p : parts) s += p;
    return s;
}
}  // namespace

CliArgs::CliArgs(const std::vector<std::string>& args, const std::set<std::string>& withValue,
                 const std::set<std::string>& flags) {
    for (size_t i = 0; i < args.size(); ++i) {
        std::string a = args[i];
        if (a.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + a + "'");
        std::optional<std::string> inlineValue;
        if (const size_t eq = a.find('='); eq != std::string::npos) {
            inlineValue = a.substr(eq + 1);
            a = a.substr(0, eq);
        }
        const std::string name = a.substr(2);
        if (flags.count(name)) {
            if (inlineValue) throw UsageError(join({"option --", name, " takes no value"}));
            values_[name].push_back(std::string{"1"});
        } else if (withValue.count(name)) {
            if (inlineValue) {
                values_[name].push_back(*inlineValue);
            } else {
                if (i + 1 >= args.size())
                    throw UsageError(join({"option --", name, " needs a value"}));
                values_[name].push_back(args[++i]);
            }
        } else {
            throw UsageError(join({"unknown option --", name}));
        }
    }
}

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
