// availableHostMemory: /proc/meminfo's MemAvailable, or a figure a test set.
#include "core/system_memory.h"

#include <atomic>
#include <cstdio>
#include <fstream>

namespace kvscope {
namespace {
std::atomic<int64_t> fakeAvailable{-1};
}  // namespace

std::optional<uint64_t> availableHostMemory() {
    if (const int64_t fake = fakeAvailable.load(); fake >= 0) return static_cast<uint64_t>(fake);
    std::ifstream in("/proc/meminfo");
    std::string key;
    uint64_t kb = 0;
    std::string unit;
    while (in >> key >> kb) {
        std::getline(in, unit);
        if (key == "MemAvailable:") return kb * 1024;
    }
    return std::nullopt;
}

void setAvailableHostMemoryForTesting(std::optional<uint64_t> bytes) {
    fakeAvailable.store(bytes ? static_cast<int64_t>(*bytes) : -1);
}

std::string memoryText(uint64_t bytes) {
    char buf[64];
    const double b = static_cast<double>(bytes);
    if (b >= 1024.0 * 1024 * 1024)
        std::snprintf(buf, sizeof buf, "%.1f GiB", b / (1024.0 * 1024 * 1024));
    else
        std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
    return buf;
}

}  // namespace kvscope
