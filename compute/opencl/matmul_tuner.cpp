// The matrix-product candidates, timed on this device and checked against the CPU reference.
#include "opencl/matmul_tuner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "core/error.h"
#include "cpu/cpu_ops.h"
#include "opencl/cl_matmul.h"

namespace kvscope::ocl {
namespace {

struct Shape {
    int rows, cols;
};
constexpr Shape kShapes[] = {{3072, 768}, {768, 3072}};  // GPT-2's MLP up and down products
constexpr int kBatch = 16;                               // rows of x for the GEMM candidates
constexpr int kPasses = 3, kReps = 5;

double maxRelError(const std::vector<float>& a, const std::vector<float>& b) {
    double diff = 0, scale = 1e-30;
    for (size_t i = 0; i < b.size(); ++i) {
        if (!std::isfinite(a[i])) return INFINITY;  // NaN would slip through std::max
        diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
        scale = std::max(scale, std::abs(static_cast<double>(b[i])));
    }
    return diff / scale;
}

struct Candidate {
    bool batched;  // a GEMM candidate (kBatch rows), else a GEMV one (1 row)
    MatMulChoice choice;
    std::string path;
};

// The candidates this device can run (work-group sizes within its limits).
std::vector<Candidate> candidates(const ClDevice& device, const Program& program) {
    const size_t maxRows = Kernel(program, "gemv_rows").maxWorkGroupSize(device.id());
    const size_t maxGroups = Kernel(program, "gemv_groups").maxWorkGroupSize(device.id());
    const size_t maxGemm = Kernel(program, "gemm_rows").maxWorkGroupSize(device.id());
    std::vector<Candidate> c;
    auto add = [&](bool batched, MatMulChoice m) {
        c.push_back({batched, m, batched ? "gemm " + m.gemmText() : "gemv " + m.gemvText()});
    };
    add(false, {GemvPath::Rows, 0, GemmPath::Rows, 64});
    for (int ls : {16, 64})
        if (static_cast<size_t>(ls) <= maxRows)
            add(false, {GemvPath::Rows, ls, GemmPath::Rows, 64});
    for (int ls : {64, 256})
        if (static_cast<size_t>(ls) <= maxGroups)
            add(false, {GemvPath::Groups, ls, GemmPath::Rows, 64});
    add(false, {GemvPath::ClBlast, 0, GemmPath::Rows, 64});
    for (int ls : {16, 64})
        if (static_cast<size_t>(ls) <= maxGemm) add(true, {GemvPath::Rows, 0, GemmPath::Rows, ls});
    add(true, {GemvPath::Rows, 0, GemmPath::ClBlast, 0});
    return c;
}

}  // namespace

std::vector<MatMulTrial> measureMatMul(ClDevice& device, const Program& program, MatMulChoice& best,
                                       const std::atomic<bool>* stop) {
    // 1. inputs (kBatch rows; GEMV candidates use the first) and the CPU references
    std::mt19937 rng(2024);
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    struct Case {
        Shape s;
        std::vector<float> want1, wantN;  // (1, rows) and (kBatch, rows)
        Buffer dw, dx, dbias, dy;
    };
    std::vector<Case> cases;
    for (const Shape s : kShapes) {
        std::vector<float> w(static_cast<size_t>(s.rows) * s.cols),
            x(static_cast<size_t>(kBatch) * s.cols), bias(static_cast<size_t>(s.rows));
        for (float& v : w) v = uni(rng);
        for (float& v : x) v = uni(rng);
        for (float& v : bias) v = uni(rng);
        Case c{s, {}, {}, {}, {}, {}, {}};
        c.wantN.resize(static_cast<size_t>(kBatch) * s.rows);
        ops::matmul(c.wantN.data(), x.data(), w.data(), bias.data(), kBatch, s.cols, s.rows,
                    ThreadPool::shared());
        c.want1.resize(static_cast<size_t>(s.rows));
        ops::matmul(c.want1.data(), x.data(), w.data(), bias.data(), 1, s.cols, s.rows,
                    ThreadPool::shared());
        const cl_mem_flags ro = CL_MEM_READ_ONLY;
        c.dw = Buffer(device.context(), w.size() * sizeof(float), ro, w.data());
        c.dx = Buffer(device.context(), x.size() * sizeof(float), ro, x.data());
        c.dbias = Buffer(device.context(), bias.size() * sizeof(float), ro, bias.data());
        c.dy = Buffer(device.context(), c.wantN.size() * sizeof(float), CL_MEM_READ_WRITE);
        device.queue().fillAsync(c.dy, 0.0f);
        cases.push_back(std::move(c));
    }

    // 2. each candidate: once for its compile and the check, then the best of a few passes
    std::vector<MatMulTrial> trials;
    std::vector<Event> events;
    const std::vector<Candidate> all = candidates(device, program);
    for (const Candidate& cand : all) {
        if (stop && stop->load()) throw Error("stopped");
        MatMulTrial t;
        t.path = cand.path;
        const int n = cand.batched ? kBatch : 1;
        try {
            MatMul mm(device, program, cand.choice);
            for (Case& c : cases) {
                mm.run(c.dy, 0, c.dx, 0, c.dw, &c.dbias, n, c.s.cols, c.s.rows, false, events);
                const std::vector<float>& want = cand.batched ? c.wantN : c.want1;
                std::vector<float> got(want.size());
                device.queue().read(c.dy, 0, got.data(), got.size() * sizeof(float));
                t.maxRelErr = std::max(t.maxRelErr, maxRelError(got, want));
            }
            t.ms = 1e30;
            for (int pass = 0; pass < kPasses; ++pass) {
                if (stop && stop->load()) break;  // between passes too: a pass can be slow
                const auto t0 = std::chrono::steady_clock::now();
                for (int r = 0; r < kReps; ++r)
                    for (Case& c : cases)
                        mm.run(c.dy, 0, c.dx, 0, c.dw, &c.dbias, n, c.s.cols, c.s.rows, false,
                               events);
                device.queue().finish();
                const std::chrono::duration<double, std::milli> dt =
                    std::chrono::steady_clock::now() - t0;
                t.ms = std::min(t.ms, dt.count() / kReps);
                events.clear();
            }
        } catch (const Error& e) {
            t.error = e.what();
        }
        events.clear();
        if (stop && stop->load()) throw Error("stopped");
        trials.push_back(t);
    }

    // 3. the fastest correct candidate of each kind
    const Candidate *gemv = nullptr, *gemm = nullptr;
    double gemvMs = 0, gemmMs = 0;
    for (size_t i = 0; i < all.size(); ++i) {
        if (!trials[i].correct()) continue;
        const Candidate*& slot = all[i].batched ? gemm : gemv;
        double& ms = all[i].batched ? gemmMs : gemvMs;
        if (!slot || trials[i].ms < ms) {
            slot = &all[i];
            ms = trials[i].ms;
        }
    }
    if (!gemv || !gemm)
        throw Error("no " + std::string(gemv ? "matrix-matrix" : "matrix-vector") +
                    " product gives correct results on '" + device.info().name +
                    "': " + describeTrials(trials));
    best.gemv = gemv->choice.gemv;
    best.gemvLocal = gemv->choice.gemvLocal;
    best.gemm = gemm->choice.gemm;
    best.gemmLocal = gemm->choice.gemmLocal;
    return trials;
}

std::string describeTrials(const std::vector<MatMulTrial>& trials) {
    std::string s;
    for (const MatMulTrial& t : trials) {
        if (!s.empty()) s += ", ";
        char buf[128];
        if (!t.error.empty())
            std::snprintf(buf, sizeof buf, "%s failed", t.path.c_str());
        else if (!t.correct())
            std::snprintf(buf, sizeof buf, "%s wrong (error %.1e)", t.path.c_str(), t.maxRelErr);
        else
            std::snprintf(buf, sizeof buf, "%s %.3f ms", t.path.c_str(), t.ms);
        s += buf;
    }
    return s;
}

}  // namespace kvscope::ocl
