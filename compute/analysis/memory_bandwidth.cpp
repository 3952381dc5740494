// measureReadBandwidth: each thread sums its slice of a large float buffer (vectorised by Eigen).
#include "analysis/memory_bandwidth.h"

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

namespace kvscope {

double measureReadBandwidth(ThreadPool& pool, size_t bytes, int repeats) {
    const size_t n = bytes / sizeof(float);
    std::vector<float> buf(n, 1.0f);
    const size_t chunks = pool.size() * 8;
    const size_t per = (n + chunks - 1) / chunks;
    std::vector<float> sums(chunks);
    double best = 0;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.parallelFor(chunks, [&](size_t c) {
            const size_t b = std::min(n, c * per), e = std::min(n, b + per);
            sums[c] =
                Eigen::Map<const Eigen::VectorXf>(buf.data() + b, static_cast<Eigen::Index>(e - b))
                    .sum();
        });
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        float total = 0;
        for (float x : sums) total += x;
        if (total != static_cast<float>(total)) return 0;  // keeps the sums alive
        best = std::max(best, static_cast<double>(n * sizeof(float)) / s);
    }
    return best;
}

}  // namespace kvscope
