// Measures the matrix-product candidates on one device (our kernels at a few work-group sizes,
// and CLBlast's Gemv and Gemm), checks each against the CPU reference, and picks the fastest
// correct one for one row and for a batch. The result is what matmul_choice.h caches on disk.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "opencl/cl_device.h"
#include "opencl/matmul_choice.h"

namespace kvscope::ocl {

struct MatMulTrial {
    std::string path;      // "gemv kvscope-rows/64", "gemm clblast", ...
    double ms = 0;         // best wall time of one pass over the test shapes
    double maxRelErr = 0;  // against ops::matmul
    std::string error;     // why the candidate could not run; empty if it ran
    bool correct() const { return error.empty() && maxRelErr < 1e-4; }
};

// Times every candidate on GPT-2-sized products (3072 x 768 and 768 x 3072): GEMV candidates
// on one row, GEMM candidates on 16 rows, a few passes each. Returns the trials; `best` gets
// the fastest correct GEMV and GEMM. Throws Error if no candidate of a kind is correct.
// stop: when set and true, throws Error("stopped") before the next candidate.
std::vector<MatMulTrial> measureMatMul(ClDevice& device, const Program& program, MatMulChoice& best,
                                       const std::atomic<bool>* stop = nullptr);

// One line for the cache file and the logs: "gemv kvscope-rows/64 0.61 ms, ...".
std::string describeTrials(const std::vector<MatMulTrial>& trials);

}  // namespace kvscope::ocl
