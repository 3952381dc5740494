// kvscope::Error: the one exception type of the compute core. Its message names the file,
// tensor, field or limit at fault, says what was expected and what was found.
#pragma once

#include <stdexcept>
#include <string>

namespace kvscope {

class Error : public std::runtime_error {
  public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace kvscope

// An always-on check (never compiled out, unlike assert): throws Error(message) when cond is
// false. For everything that guards memory or can be reached from input; the message expression
// is only evaluated on failure.
#define KVSCOPE_CHECK(cond, message)                  \
    do {                                              \
        if (!(cond)) throw ::kvscope::Error(message); \
    } while (false)
