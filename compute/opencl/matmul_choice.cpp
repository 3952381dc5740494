// MatMulChoice text form and the per-device cache file.
#include "opencl/matmul_choice.h"

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <unistd.h>

namespace kvscope::ocl {
namespace {
constexpr const char* kFile = "matmul.txt";
}

namespace {

// "auto" or a work-group size in 1..4096 (a power of two when pow2).
std::optional<int> parseLocal(std::string_view t, bool allowAuto, bool pow2) {
    if (allowAuto && t == "auto") return 0;
    int n = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
    if (ec != std::errc{} || end != t.data() + t.size() || n < 1 || n > 4096) return std::nullopt;
    if (pow2 && (n & (n - 1)) != 0) return std::nullopt;
    return n;
}

}  // namespace

std::string MatMulChoice::gemvText() const {
    switch (gemv) {
        case GemvPath::ClBlast:
            return "clblast";
        case GemvPath::Groups:
            return "kvscope-groups/" + std::to_string(gemvLocal);
        case GemvPath::Rows:
            break;
    }
    return "kvscope-rows/" + (gemvLocal == 0 ? std::string("auto") : std::to_string(gemvLocal));
}

std::string MatMulChoice::gemmText() const {
    return gemm == GemmPath::ClBlast ? "clblast" : "kvscope-rows/" + std::to_string(gemmLocal);
}

std::string MatMulChoice::text() const {
    return "gemv " + gemvText() + ", gemm " + gemmText();
}

std::optional<MatMulChoice> MatMulChoice::parse(std::string_view text) {
    constexpr std::string_view kGemv = "gemv ", kGemm = ", gemm ";
    const size_t comma = text.find(kGemm);
    if (!text.starts_with(kGemv) || comma == std::string_view::npos) return std::nullopt;
    const std::string_view v = text.substr(kGemv.size(), comma - kGemv.size());
    const std::string_view m = text.substr(comma + kGemm.size());
    MatMulChoice c;
    if (v == "clblast") {
        c.gemv = GemvPath::ClBlast;
        c.gemvLocal = 0;
    } else if (v.starts_with("kvscope-rows/")) {
        const auto ls = parseLocal(v.substr(13), true, false);
        if (!ls) return std::nullopt;
        c.gemv = GemvPath::Rows;
        c.gemvLocal = *ls;
    } else if (v.starts_with("kvscope-groups/")) {
        const auto ls = parseLocal(v.substr(15), false, true);
        if (!ls) return std::nullopt;
        c.gemv = GemvPath::Groups;
        c.gemvLocal = *ls;
    } else {
        return std::nullopt;
    }
    if (m == "clblast") {
        c.gemm = GemmPath::ClBlast;
        c.gemmLocal = 0;
    } else if (m.starts_with("kvscope-rows/")) {
        const auto ls = parseLocal(m.substr(13), false, false);
        if (!ls) return std::nullopt;
        c.gemm = GemmPath::Rows;
        c.gemmLocal = *ls;
    } else {
        return std::nullopt;
    }
    return c;
}

std::string defaultCacheDir() {
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/kvscope";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/kvscope";
    return {};
}

std::optional<MatMulChoice> loadMatMulChoice(const std::string& dir, const std::string& deviceKey) {
    if (dir.empty()) return std::nullopt;
    std::ifstream in(std::filesystem::path(dir) / kFile);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        const size_t tab = line.find('\t');
        if (tab == std::string::npos || line.substr(0, tab) != deviceKey) continue;
        const size_t tab2 = line.find('\t', tab + 1);
        return MatMulChoice::parse(
            line.substr(tab + 1, tab2 == std::string::npos ? std::string::npos : tab2 - tab - 1));
    }
    return std::nullopt;
}

bool storeMatMulChoice(const std::string& dir, const std::string& deviceKey, const MatMulChoice& c,
                       const std::string& note) {
    if (dir.empty() || deviceKey.find_first_of("\t\n") != std::string::npos) return false;
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return false;
    const fs::path file = fs::path(dir) / kFile;
    std::vector<std::string> lines;
    {
        std::ifstream in(file);
        std::string line;
        while (std::getline(in, line))
            if (line.substr(0, line.find('\t')) != deviceKey) lines.push_back(line);
    }
    if (lines.empty())
        lines.push_back(
            "# KVScope: the matrix products measured fastest on each OpenCL device (delete a "
            "line to measure again)");
    std::string cleanNote = note;
    for (char& ch : cleanNote)
        if (ch == '\t' || ch == '\n') ch = ' ';
    lines.push_back(deviceKey + "\t" + c.text() + "\t" + cleanNote);

    const fs::path tmp = fs::path(dir) / (std::string(kFile) + "." + std::to_string(getpid()));
    {
        std::ofstream out(tmp, std::ios::trunc);
        for (const std::string& l : lines) out << l << '\n';
        out.flush();
        if (!out) {
            std::error_code ignored;
            fs::remove(tmp, ignored);
            return false;
        }
    }
    fs::rename(tmp, file, ec);
    if (ec) {
        std::error_code ignored;
        fs::remove(tmp, ignored);
        return false;
    }
    return true;
}

}  // namespace kvscope::ocl
