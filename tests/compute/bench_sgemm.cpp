// bench_sgemm: single-thread speed of sgemm::gemm on the shapes a training step of the GQA
// model multiplies (width 256, 8 + 2·2 heads of 32, SwiGLU 704, vocabulary 2,048, a 256-row chunk
// of a batch of 8 × 256 tokens), per kernel set, as GFLOP/s and as a ratio to Eigen's product
// (the "scalar" set) taken in the same run, the sets alternating. Not a test: run by hand,
// Release build.   bench_sgemm [seconds per measurement, default 0.3]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cpu/sgemm.h"

using namespace kvscope;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape {
    const char* what;
    bool transA;
    int M, N, K;
};

}  // namespace

int main(int argc, char** argv) {
    const double budget = argc > 1 ? std::atof(argv[1]) : 0.3;
    const Shape shapes[] = {
        {"qkv forward      X·Wᵀ", false, 256, 384, 256},
        {"gate/up forward  X·Wᵀ", false, 256, 1408, 256},
        {"down forward     X·Wᵀ", false, 256, 256, 704},
        {"head forward     X·Wᵀ", false, 256, 2048, 256},
        {"head d-input     D·W", false, 256, 256, 2048},
        {"head d-weight    Dᵀ·X", true, 256, 256, 2048},
        {"gate/up d-weight Dᵀ·X", true, 176, 256, 2048},
    };
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    std::vector<qdot::Isa> isas;
    for (auto isa : {qdot::Isa::Scalar, qdot::Isa::Avx2, qdot::Isa::Avx512})
        if (qdot::isaSupported(isa)) isas.push_back(isa);
    std::printf("%-24s %5s %5s %5s", "shape", "M", "N", "K");
    for (auto isa : isas) std::printf(" %14s", qdot::isaName(isa).c_str());
    std::printf("   (GFLOP/s; ratio to scalar = Eigen)\n");
    for (const Shape& s : shapes) {
        std::vector<float> A(static_cast<size_t>(s.M) * s.K), B(static_cast<size_t>(s.K) * s.N),
            C(static_cast<size_t>(s.M) * s.N);
        for (float& x : A) x = nd(rng);
        for (float& x : B) x = nd(rng);
        const int lda = s.transA ? s.M : s.K;
        std::vector<double> best(isas.size(), 0);
        for (int round = 0; round < 3; ++round)
            for (size_t i = 0; i < isas.size(); ++i) {
                int calls = 0;
                const auto t0 = Clock::now();
                double dt = 0;
                do {
                    sgemm::gemm(s.transA, s.M, s.N, s.K, A.data(), lda, B.data(), s.N, C.data(),
                                s.N, true, isas[i]);
                    ++calls;
                    dt = std::chrono::duration<double>(Clock::now() - t0).count();
                } while (dt < budget / 3);
                const double gflops = 2.0 * s.M * s.N * s.K * calls / dt / 1e9;
                if (gflops > best[i]) best[i] = gflops;
            }
        std::printf("%-24s %5d %5d %5d", s.what, s.M, s.N, s.K);
        for (size_t i = 0; i < isas.size(); ++i)
            std::printf(" %6.1f (%4.1fx)", best[i], best[i] / best[0]);
        std::printf("\n");
    }
    return 0;
}
