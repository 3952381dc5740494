// MatMul: dispatch between our GEMV and GEMM kernels and CLBlast's Gemv and Gemm.
#include "opencl/cl_matmul.h"

#include "core/error.h"

#include <clblast.h>

#include <algorithm>

namespace kvscope::ocl {

MatMul::MatMul(ClDevice& device, const Program& program, MatMulChoice choice, bool simd)
    : device_(device),
      choice_(choice),
      rows_(program, "gemv_rows"),
      groups_(program, "gemv_groups"),
      gemmRows_(program, "gemm_rows"),
      addBias_(program, "add_bias"),
      none_(device.context(), sizeof(float), CL_MEM_READ_ONLY) {
    biasLocal_ = std::min<size_t>(64, addBias_.maxWorkGroupSize(device.id()));
    struct Kind {
        TensorType type;
        bool wide;
        const char* suffix;
    };
    for (const auto& [type, wide, suffix] :
         {Kind{TensorType::F32, false, "f32"}, Kind{TensorType::F16, false, "f16"},
          Kind{TensorType::Q8_0, false, "q8_0"}, Kind{TensorType::Q4_0, false, "q4_0"},
          Kind{TensorType::Q4_K, false, "q4_k"}, Kind{TensorType::Q6_K, false, "q6_k"},
          Kind{TensorType::Q8_0, true, "q8_0w"}, Kind{TensorType::Q4_0, true, "q4_0w"},
          Kind{TensorType::Q4_K, true, "q4_kw"}, Kind{TensorType::Q6_K, true, "q6_kw"}}) {
        QuantKernels k{Kernel(program, (std::string("qgemm_") + suffix).c_str()),
                       Kernel(program, (std::string("qgemv_") + suffix).c_str()),
                       Kernel(program, (std::string("qembed_") + suffix).c_str())};
        // a work group per row; the measured size of gemv_groups where that path was chosen
        size_t ls = choice_.gemv == GemvPath::Groups && choice_.gemvLocal > 0
                        ? static_cast<size_t>(choice_.gemvLocal)
                        : 64;
        while (ls > 1 && ls > k.gemv.maxWorkGroupSize(device.id())) ls /= 2;
        k.gemvLocal = ls;
        quant_.emplace(std::pair{type, wide}, std::move(k));
    }
    if (simd && program.hasKernel("simd_quantize_x")) {
        quantizeX_ = Kernel(program, "simd_quantize_x");
        quantizeLocal_ = std::min<size_t>(16, quantizeX_.maxWorkGroupSize(device.id()));
        for (const auto& [type, wide, suffix] :
             {Kind{TensorType::F16, false, "f16"}, Kind{TensorType::Q8_0, true, "q8_0w"},
              Kind{TensorType::Q4_0, true, "q4_0w"}, Kind{TensorType::Q4_K, true, "q4_kw"},
              Kind{TensorType::Q6_K, true, "q6_kw"}}) {
            Kernel k(program, (std::string("simd_gemv_") + suffix).c_str());
            simdLocal_ = std::min(simdLocal_, k.maxWorkGroupSize(device.id()));
            simd_.emplace(std::pair{type, wide}, std::move(k));
        }
    }
}

const MatMul::Rounded& MatMul::roundX(const Buffer& in, size_t inOff, int n, int cols, int block,
                                      bool& done, std::vector<Event>& events) {
    Rounded& r = block == 32 ? rounded32_ : rounded256_;
    const size_t values = static_cast<size_t>(n) * static_cast<size_t>(cols);
    if (r.values < values) {
        const Context& ctx = device_.context();
        r.q = Buffer(ctx, values, CL_MEM_READ_WRITE);
        r.d = Buffer(ctx, values / 32 * sizeof(float), CL_MEM_READ_WRITE);
        r.s = Buffer(ctx, values / 16 * sizeof(float), CL_MEM_READ_WRITE);
        r.values = values;
    }
    if (!done) {
        quantizeX_.setArgs(in, static_cast<int>(inOff), cols, n, block, r.q, r.d, r.s);
        const size_t blocks = values / static_cast<size_t>(block), ls = quantizeLocal_;
        events.push_back(
            device_.queue().run(quantizeX_, Range((blocks + ls - 1) / ls * ls), Range(ls)));
        done = true;
    }
    return r;
}

MatMul::QuantKernels& MatMul::quantKernels(TensorType type, bool wide) {
    const auto it = quant_.find({type, wide});
    KVSCOPE_CHECK(it != quant_.end(), "no OpenCL kernels for weights of type " + typeName(type) +
                                          (wide ? " with wide scales" : ""));
    return it->second;
}

void MatMul::runQuant(const Buffer& out, size_t outOff, int ldy, const Buffer& in, size_t inOff,
                      const Buffer& w, TensorType type, bool wide, size_t rowBytes,
                      const Buffer* bias, size_t biasOff, int n, int inDim, int outDim,
                      bool accumulate, Input& input, std::vector<Event>& events) {
    KVSCOPE_CHECK(n >= 1 && inDim >= 1 && outDim >= 1 && inDim % 32 == 0,
                  "matmul: empty shape or rows not whole 32-value units");
    KVSCOPE_CHECK(outOff + static_cast<size_t>(n - 1) * ldy + outDim <= out.floats() &&
                      inOff + static_cast<size_t>(n) * inDim <= in.floats() &&
                      w.bytes() >= static_cast<size_t>(outDim) * rowBytes &&
                      (!bias || biasOff + outDim <= bias->floats()),
                  "matmul: " + std::to_string(n) + " x " + std::to_string(inDim) + " -> " +
                      std::to_string(outDim) + " (" + typeName(type) + ") runs past its buffers");
    QuantKernels& k = quantKernels(type, wide);
    const Buffer& b = bias ? *bias : none_;
    const int hasBias = bias ? 1 : 0, acc = accumulate ? 1 : 0;
    const int yOff = static_cast<int>(outOff), xOff = static_cast<int>(inOff);
    const int rb = static_cast<int>(rowBytes), bOff = static_cast<int>(biasOff);
    const auto rows = static_cast<size_t>(outDim);
    auto roundUp = [](size_t x, size_t to) { return to == 0 ? x : (x + to - 1) / to * to; };
    if (const auto s = simd_.find({type, wide});
        s != simd_.end() && (n == 1 || type != TensorType::F16)) {
        const bool kQuant = type == TensorType::Q4_K || type == TensorType::Q6_K;
        const Rounded* r = nullptr;
        if (type != TensorType::F16)
            r = &roundX(in, inOff, n, inDim, kQuant ? 256 : 32,
                        kQuant ? input.rounded256 : input.rounded32, events);
        s->second.setArgs(out, yOff, ldy, w, rb, in, xOff, r ? r->q : none_, r ? r->d : none_,
                          r ? r->s : none_, b, bOff, hasBias, acc, outDim, inDim, n);
        events.push_back(
            device_.queue().run(s->second, Range(roundUp(rows, simdLocal_)), Range(simdLocal_)));
        return;
    }
    if (n == 1 && choice_.gemv != GemvPath::Rows) {
        const size_t ls = k.gemvLocal;
        k.gemv.setArgs(out, yOff, w, rb, in, xOff, b, bOff, hasBias, acc, outDim, inDim,
                       Kernel::Local{ls * sizeof(float)});
        events.push_back(device_.queue().run(k.gemv, Range(rows * ls), Range(ls)));
        return;
    }
    const auto ls = static_cast<size_t>(n == 1 ? choice_.gemvLocal : choice_.gemmLocal);
    k.gemm.setArgs(out, yOff, ldy, w, rb, in, xOff, b, bOff, hasBias, acc, outDim, inDim, n);
    events.push_back(device_.queue().run(k.gemm, Range(roundUp(rows, ls)), Range(ls)));
}

void MatMul::embedQuant(const Buffer& x, const Buffer& ids, const Buffer& w, TensorType type,
                        bool wide, size_t rowBytes, const Buffer* pos, int p0, int cols, int n,
                        std::vector<Event>& events) {
    KVSCOPE_CHECK(cols % 32 == 0, "embedding: rows not whole 32-value units");
    QuantKernels& k = quantKernels(type, wide);
    k.embed.setArgs(x, ids, w, static_cast<int>(rowBytes), pos ? *pos : none_, pos ? 1 : 0, p0,
                    cols, n);
    const size_t count = static_cast<size_t>(n) * (cols / 32), ls = biasLocal_;
    events.push_back(device_.queue().run(k.embed, Range((count + ls - 1) / ls * ls), Range(ls)));
}

void MatMul::run(const Buffer& out, size_t outOff, const Buffer& in, size_t inOff, const Buffer& w,
                 const Buffer* bias, int n, int inDim, int outDim, bool accumulate,
                 std::vector<Event>& events) {
    KVSCOPE_CHECK(n >= 1 && inDim >= 1 && outDim >= 1, "matmul: empty shape");
    KVSCOPE_CHECK(outOff + static_cast<size_t>(n) * outDim <= out.floats() &&
                      inOff + static_cast<size_t>(n) * inDim <= in.floats() &&
                      w.floats() >= static_cast<size_t>(outDim) * inDim,
                  "matmul: " + std::to_string(n) + " x " + std::to_string(inDim) + " -> " +
                      std::to_string(outDim) + " runs past its buffers");
    const auto I = static_cast<size_t>(inDim), O = static_cast<size_t>(outDim);
    const float beta = accumulate ? 1.0f : 0.0f;
    if ((n == 1 && choice_.gemv != GemvPath::ClBlast) ||
        (n > 1 && choice_.gemm != GemmPath::ClBlast)) {
        runOwn(out, outOff, in, inOff, w, bias, n, inDim, outDim, accumulate, events);
        return;
    }
    cl_event e = nullptr;
    if (n == 1) {
        // y (outDim) = W (outDim, inDim) · x (inDim) + beta · y
        CL_CHECK(clblast::Gemv<float>(clblast::Layout::kRowMajor, clblast::Transpose::kNo, O, I,
                                      1.0f, w.get(), 0, I, in.get(), inOff, 1, beta, out.get(),
                                      outOff, 1, device_.queue().forClBlast(), &e));
    } else {
        // C (n, outDim) = A (n, inDim) · Bᵀ + beta · C, with B = W (outDim, inDim)
        CL_CHECK(clblast::Gemm<float>(clblast::Layout::kRowMajor, clblast::Transpose::kNo,
                                      clblast::Transpose::kYes, static_cast<size_t>(n), O, I, 1.0f,
                                      in.get(), inOff, I, w.get(), 0, I, beta, out.get(), outOff, O,
                                      device_.queue().forClBlast(), &e));
    }
    events.emplace_back(e);
    if (bias) addBias(out, outOff, *bias, n, outDim, events);
}

void MatMul::runOwn(const Buffer& out, size_t outOff, const Buffer& in, size_t inOff,
                    const Buffer& w, const Buffer* bias, int n, int inDim, int outDim,
                    bool accumulate, std::vector<Event>& events) {
    const int yOff = static_cast<int>(outOff), xOff = static_cast<int>(inOff);
    const Buffer& b = bias ? *bias : none_;
    const int hasBias = bias ? 1 : 0, acc = accumulate ? 1 : 0;
    const auto rows = static_cast<size_t>(outDim);
    auto roundUp = [](size_t x, size_t to) { return to == 0 ? x : (x + to - 1) / to * to; };
    if (n > 1) {
        const auto ls = static_cast<size_t>(choice_.gemmLocal);
        gemmRows_.setArgs(out, yOff, w, in, xOff, b, hasBias, acc, outDim, inDim, n);
        events.push_back(device_.queue().run(gemmRows_, Range(roundUp(rows, ls)), Range(ls)));
    } else if (choice_.gemv == GemvPath::Rows) {
        const auto ls = static_cast<size_t>(choice_.gemvLocal);
        rows_.setArgs(out, yOff, w, in, xOff, b, hasBias, acc, outDim, inDim);
        events.push_back(device_.queue().run(rows_, Range(roundUp(rows, ls)), Range(ls)));
    } else {
        const auto ls = static_cast<size_t>(choice_.gemvLocal);
        groups_.setArgs(out, yOff, w, in, xOff, b, hasBias, acc, outDim, inDim,
                        Kernel::Local{ls * sizeof(float)});
        events.push_back(device_.queue().run(groups_, Range(rows * ls), Range(ls)));
    }
}

void MatMul::addBias(const Buffer& out, size_t outOff, const Buffer& bias, int n, int outDim,
                     std::vector<Event>& events) {
    addBias_.setArgs(out, static_cast<int>(outOff), bias, outDim, n);
    const size_t count = static_cast<size_t>(n) * outDim, ls = biasLocal_;
    events.push_back(device_.queue().run(addBias_, Range((count + ls - 1) / ls * ls), Range(ls)));
}

void warmUpClBlast(const ClDevice& device, Queue& queue, bool gemm, bool gemv) {
    // Direct kernel: m·n·k below CLBlast's indirect threshold (384³ by default); indirect: above.
    struct Shape {
        size_t m, n, k;
    };
    const std::vector<float> zeros(size_t{1024} * 1024, 0.0f);
    for (const Shape s : {Shape{2, 64, 64}, Shape{64, 1024, 1024}}) {
        const cl_mem_flags rw = CL_MEM_READ_WRITE;
        Buffer a(device.context(), s.m * s.k * sizeof(float), rw, zeros.data());
        Buffer b(device.context(), s.n * s.k * sizeof(float), rw, zeros.data());
        Buffer c(device.context(), s.m * s.n * sizeof(float), rw, zeros.data());
        cl_event e = nullptr;
        if (gemm) {
            CL_CHECK(clblast::Gemm<float>(clblast::Layout::kRowMajor, clblast::Transpose::kNo,
                                          clblast::Transpose::kYes, s.m, s.n, s.k, 1.0f, a.get(), 0,
                                          s.k, b.get(), 0, s.k, 0.0f, c.get(), 0, s.n,
                                          queue.forClBlast(), &e));
            Event(e).wait();
        }
        if (gemv && s.m == 2) {
            CL_CHECK(clblast::Gemv<float>(clblast::Layout::kRowMajor, clblast::Transpose::kNo, s.n,
                                          s.k, 1.0f, b.get(), 0, s.k, a.get(), 0, 1, 0.0f, c.get(),
                                          0, 1, queue.forClBlast(), &e));
            Event(e).wait();
        }
    }
}

}  // namespace kvscope::ocl
