// bench_quant_dot: single-thread speed of qdot::gemv per weight type and kernel set, as GB/s of
// weight bytes streamed and ns per row, against a read-bandwidth baseline (summing a float array).
// "hot": one matrix called again and again (it stays in the caches it fits in); "cold": calls
// rotate through copies that together exceed 1 GiB, so the weights come from DRAM as in a real
// decode step. Also the SIMD kernels' error from 8-bit x: max and mean of |gemv - exact| / Σ|w·x|
// over rows quantized from Gaussian data. Not a test: run by hand, Release build.
//   bench_quant_dot [seconds per measurement, default 0.25] [type name filter]
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/quant_dot.h"
#include "gguf/dequant.h"
#include "quant_dot_data.h"

using namespace kvscope;
using namespace kvscope::qdot_testing;
using Clock = std::chrono::steady_clock;

namespace {

double seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

#if defined(__x86_64__)
// With prefetch: 4 KiB ahead, as the kernels do.
bool gPrefetch = false;

__attribute__((target("avx2"))) float sumAvx2(const float* a, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        if (gPrefetch) {
            _mm_prefetch(reinterpret_cast<const char*>(a + i) + 4096, _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(a + i) + 4096 + 64, _MM_HINT_T0);
        }
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
    }
    alignas(32) float t[8];
    _mm256_store_ps(t, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

float sumArray(const float* a, size_t n) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) return sumAvx2(a, n);
#endif
    float s[8] = {};
    for (size_t i = 0; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) s[k] += a[i + k];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

// Best GB/s of summing `bytes` of floats (repeated for `budget` seconds).
double readBandwidth(size_t bytes, double budget) {
    std::vector<float> a(bytes / 4, 1.0f);
    volatile float sink = 0;
    double best = 1e30;
    const auto start = Clock::now();
    do {
        const auto t0 = Clock::now();
        sink = sink + sumArray(a.data(), a.size());
        best = std::min(best, seconds(t0, Clock::now()));
    } while (seconds(start, Clock::now()) < budget);
    return double(bytes) / best / 1e9;
}

struct Timing {
    double gbps, nsPerRow;
};

// Median-free best-of: repeated passes of gemv over the matrices (one per call, round robin).
template <class Call>
Timing timeCalls(const std::vector<std::vector<uint8_t>>& mats, size_t bytes, int rows,
                 double budget, Call call);

// With dequantFma: strategy (a), qdot::detail::gemvDequantFma.
Timing timeGemv(TensorType t, const std::vector<std::vector<uint8_t>>& mats, size_t rowBytes,
                int rows, const std::vector<float>& x, int64_t n, qdot::Isa isa, double budget,
                bool dequantFma = false, bool threads2 = false) {
    std::vector<float> out(rows);
    const auto call = [&](const uint8_t* w) {
        if (dequantFma) {
            qdot::detail::gemvDequantFma(t, w, rowBytes, rows, x.data(), n, out.data(), isa);
        } else {
            qdot::gemv(t, w, rowBytes, rows, x.data(), n, out.data(), isa);
        }
    };
    if (threads2) {
        // Two threads, half the rows each (a thread started per call: ~tens of µs of a
        // millisecond call, included).
        const int half = rows / 2;
        return timeCalls(mats, rowBytes * rows, rows, budget, [&](const uint8_t* w) {
            std::thread other([&] {
                qdot::gemv(t, w + rowBytes * half, rowBytes, rows - half, x.data(), n,
                           out.data() + half, isa);
            });
            qdot::gemv(t, w, rowBytes, half, x.data(), n, out.data(), isa);
            other.join();
        });
    }
    return timeCalls(mats, rowBytes * rows, rows, budget, call);
}

template <class Call>
Timing timeCalls(const std::vector<std::vector<uint8_t>>& mats, size_t bytes, int rows,
                 double budget, Call call) {
    call(mats[0].data());  // warm-up
    double best = 1e30;
    size_t k = 0;
    const auto start = Clock::now();
    int calls = 0;
    do {
        const auto t0 = Clock::now();
        call(mats[k].data());
        best = std::min(best, seconds(t0, Clock::now()));
        k = (k + 1) % mats.size();
        ++calls;
    } while (seconds(start, Clock::now()) < budget || calls < 3);
    return {double(bytes) / best / 1e9, best * 1e9 / rows};
}

}  // namespace

int main(int argc, char** argv) {
    const double budget = argc > 1 ? std::atof(argv[1]) : 0.25;
    const std::string filter = argc > 2 ? argv[2] : "";
    const qdot::Isa best = qdot::bestIsa();
    std::vector<qdot::Isa> isas = {qdot::Isa::Scalar};
    if (qdot::isaSupported(qdot::Isa::Avx2)) isas.push_back(qdot::Isa::Avx2);
    if (qdot::isaSupported(qdot::Isa::Avx512)) isas.push_back(qdot::Isa::Avx512);
    std::printf("best ISA: %s; 1 thread; best of %.2f s per cell\n", qdot::isaName(best).c_str(),
                budget);
    for (bool prefetch : {false, true}) {
#if defined(__x86_64__)
        gPrefetch = prefetch;
#else
        if (prefetch) break;
#endif
        std::printf(
            "read bandwidth (sum floats%s): 8 MiB %.1f GB/s, 64 MiB %.1f GB/s, 1 GiB %.1f GB/s\n",
            prefetch ? ", sw prefetch 4 KiB ahead" : "", readBandwidth(size_t(8) << 20, budget),
            readBandwidth(size_t(64) << 20, budget), readBandwidth(size_t(1) << 30, 2 * budget));
    }
    std::printf("\n%-5s %-10s %6s", "type", "shape", "B/row");
    for (auto isa : isas) {
        std::printf(" | %-13s hot GB/s cold GB/s ns/row", qdot::isaName(isa).c_str());
    }
    std::printf(" | cold best/scalar | 2 thr cold GB/s | x8 err max, mean (of sum|wx|)\n");
    std::mt19937 rng(42);
    const int shapes[2][2] = {{4096, 4096}, {2048, 8192}};
    for (TensorType t : allTypes()) {
        if (!filter.empty() && typeName(t) != filter) continue;
        for (const auto& shape : shapes) {
            const int rows = shape[0];
            const int64_t n = shape[1];
            const size_t rowBytes = *tensorBytes(t, n);
            std::vector<std::vector<uint8_t>> mats;
            mats.push_back(makeRows(t, rows, n, rowBytes, Source::Quantized, rng));
            const size_t copies = std::max<size_t>(2, (size_t(1) << 30) / mats[0].size());
            while (mats.size() < copies) mats.push_back(mats[0]);
            const auto x = makeX(n, 1.0f, rng);
            std::printf("%-5s %4dx%-5lld %6zu", typeName(t).c_str(), rows, (long long)n, rowBytes);
            double coldScalar = 0, coldBest = 0;
            for (auto isa : isas) {
                const std::vector<std::vector<uint8_t>> hot(mats.begin(), mats.begin() + 1);
                const Timing h = timeGemv(t, hot, rowBytes, rows, x, n, isa, budget);
                const Timing c = timeGemv(t, mats, rowBytes, rows, x, n, isa, budget);
                std::printf(" | %13s %8.2f %9.2f %6.1f", "", h.gbps, c.gbps, c.nsPerRow);
                if (isa == qdot::Isa::Scalar) coldScalar = c.gbps;
                if (isa == best) coldBest = c.gbps;
            }
            // Error of the best kernel set against float64 over dequantizeRow, first 256 rows.
            const int er = 256;
            std::vector<float> out(er);
            qdot::gemv(t, mats[0].data(), rowBytes, er, x.data(), n, out.data(), best);
            const auto ref = reference(t, mats[0].data(), rowBytes, er, x.data(), n);
            double emax = 0, esum = 0;
            for (int r = 0; r < er; ++r) {
                const double e = std::fabs(out[r] - ref[r].dot) / ref[r].absDot;
                emax = std::max(emax, e);
                esum += e;
            }
            const Timing two = timeGemv(t, mats, rowBytes, rows, x, n, best, budget, false, true);
            std::printf(" | %16.1fx | %8.2f | %.2e, %.2e\n", coldBest / coldScalar, two.gbps, emax,
                        esum / er);
            if (best != qdot::Isa::Scalar &&
                (t == TensorType::Q8_0 || t == TensorType::Q4_0 || t == TensorType::Q4_K)) {
                const std::vector<std::vector<uint8_t>> hot(mats.begin(), mats.begin() + 1);
                const Timing h = timeGemv(t, hot, rowBytes, rows, x, n, best, budget, true);
                const Timing c = timeGemv(t, mats, rowBytes, rows, x, n, best, budget, true);
                std::printf(
                    "  ^ strategy (a) dequantize to float + FMA, %s: hot %.2f GB/s, cold "
                    "%.2f GB/s, %.1f ns/row\n",
                    qdot::isaName(best).c_str(), h.gbps, c.gbps, c.nsPerRow);
            }
            std::fflush(stdout);
        }
    }
    return 0;
}
