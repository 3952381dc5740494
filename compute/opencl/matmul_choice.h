// MatMulChoice: which matrix products a device runs, for one row (decode: a GEMV) and for a few
// rows (prefill: a GEMM), our kernels or CLBlast's; and the small text file that remembers each
// device's measured choice between runs. File format (one device per line, '#' = comment):
//   <platform> | <device> | <driver>\t<choice text>\t<free note: the timings measured>
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kvscope::ocl {

// The choice is measured on float32 weights and applies as such to F32 matrices. Matrices held
// in a block type (device_weights.h) always take our quant.cl kernels, CLBlast having no
// quantized GEMM: Rows runs qgemm on one row of x, Groups and ClBlast run qgemv (a work group
// per row, of gemvLocal items when Groups); several rows run qgemm in groups of gemmLocal,
// whatever the GEMM path. So every choice, cached or measured, stays valid for them.
enum class GemvPath {
    Rows,     // our gemv_rows kernel: one row per work item, float8 loads (fast on CPUs)
    Groups,   // our gemv_groups kernel: one work group per row, local-memory sum (for GPUs)
    ClBlast,  // clblast::Gemv on the row-major weight
};

enum class GemmPath {
    Rows,     // our gemm_rows kernel: one weight row per work item, four tokens per pass
    ClBlast,  // clblast::Gemm
};

struct MatMulChoice {
    GemvPath gemv = GemvPath::Rows;
    int gemvLocal = 0;  // work-group size of our GEMV kernels; 0: the runtime picks (Rows only)
    GemmPath gemm = GemmPath::Rows;
    int gemmLocal = 64;  // work-group size of gemm_rows

    // "kvscope-rows/64", "kvscope-rows/auto", "kvscope-groups/128", "clblast".
    std::string gemvText() const;
    // "kvscope-rows/64", "clblast".
    std::string gemmText() const;
    // "gemv kvscope-rows/64, gemm kvscope-rows/16": the form the cache file and logs use.
    std::string text() const;
    // The inverse of text(); nullopt for anything else.
    static std::optional<MatMulChoice> parse(std::string_view text);
    bool operator==(const MatMulChoice&) const = default;
};

// $XDG_CACHE_HOME/kvscope, else $HOME/.cache/kvscope; empty if neither variable is set.
std::string defaultCacheDir();

// The choice recorded for `deviceKey` in `dir`/matmul.txt; nullopt if none or unreadable.
std::optional<MatMulChoice> loadMatMulChoice(const std::string& dir, const std::string& deviceKey);

// Records the choice for `deviceKey`, replacing an older line; creates `dir` if needed. Writes
// through a temporary file and a rename, so readers never see half a file. Returns false (and
// changes nothing) if the folder or file cannot be written.
bool storeMatMulChoice(const std::string& dir, const std::string& deviceKey, const MatMulChoice& c,
                       const std::string& note);

}  // namespace kvscope::ocl
