// How much memory this machine can give a new model: MemAvailable from /proc/meminfo (what the
// kernel estimates can be allocated without swapping, page cache included).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace kvscope {

// nullopt where the figure is not known (no /proc/meminfo).
std::optional<uint64_t> availableHostMemory();
// Tests: pretend the host has `bytes` available (nullopt: the real figure again).
void setAvailableHostMemoryForTesting(std::optional<uint64_t> bytes);

// "1.5 GiB", "300.0 MiB": bytes for a person.
std::string memoryText(uint64_t bytes);

}  // namespace kvscope
