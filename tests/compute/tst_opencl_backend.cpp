// OpenClBackend held to CpuBackend: the same logits (prefill and 32 steps, max relative error
// 1e-4), the same greedy tokens, the same traces, in cached and recompute modes and after a
// rewind, on every matrix-product path; our GEMV/GEMM kernels against ops::matmul on odd sizes;
// the measured paths cached per device; device errors.
// Runs on whatever OpenCL device is first usable (PoCL in CI); skips only where none exists.
#include <QFile>
#include <QTemporaryDir>
#include <QTest>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/cpu_ops.h"
#include "cpu/quant_dot.h"
#include "gguf/dequant.h"
#include "gguf/gguf.h"
#include "model_fixtures.h"
#include "numeric_checks.h"
#include "opencl/cl_check.h"
#include "opencl/cl_device.h"
#include "opencl/cl_matmul.h"
#include "opencl/device_list.h"
#include "opencl/device_weights.h"
#include "opencl/opencl_backend.h"
#include "runtime/decode_session.h"

using namespace kvscope;

Q_DECLARE_METATYPE(std::optional<ocl::MatMulChoice>)

namespace {

using testing::maxRelError;  // infinite on NaN, Inf or a size mismatch
constexpr double kTol = 1e-4;

#define VERIFY_CLOSE(what, a, b)                                                                 \
    do {                                                                                         \
        const double err_ = maxRelError(a, b);                                                   \
        QVERIFY2(                                                                                \
            err_ < kTol,                                                                         \
            qPrintable(                                                                          \
                QString("%1: relative error %2 (tolerance %3)").arg(what).arg(err_).arg(kTol))); \
    } while (0)

RandomModelSpec specFor(const QString& name) {
    return fixtures::specFor(name.toStdString());
}

const char* kPrompt = "the cat sat on the mat";

// A copy of a GGUF image whose matrices are re-encoded: `typeOf(name, type)` names the new type
// of each tensor (F32 tensors stay F32).
template <typename F>
std::vector<uint8_t> reencoded(const std::vector<uint8_t>& image, F typeOf) {
    const GgufFile f = GgufFile::fromBytes(image, "in.gguf");
    GgufWriter w;
    for (const std::string& key : f.keyOrder()) w.set(key, *f.find(key));
    for (const GgufTensorInfo& t : f.tensors()) {
        const std::vector<float> v = toFloat(t.type, f.tensorData(t), t.elements(), t.name);
        const TensorType to = t.ne.size() == 2 ? typeOf(t.name, t.type) : TensorType::F32;
        if (to == TensorType::F32)
            w.addTensorF32(t.name, t.ne, v);
        else
            w.addTensor(t.name, to, t.ne, fromFloat(to, v));
    }
    return w.toBytes();
}

// The GGUF image of `s` with its matrices of `type`, or where type < 0 each of the type that
// `mixedType` gives its name (F32 tensors stay F32).
std::vector<uint8_t> imageOf(RandomModelSpec s, int type,
                             TensorType (*mixedType)(const std::string& name)) {
    if (type >= 0) {
        s.weightType = static_cast<TensorType>(type);
        return randomModel(s).toBytes();
    }
    return reencoded(randomModel(s).toBytes(),
                     [&](const std::string& name, TensorType) { return mixedType(name); });
}

// The weights the OpenCL device holds, as float32: each matrix converted as the upload converts
// it (ocl::deviceWeightType), then dequantized. The device's products are exact w.r.t. these.
std::vector<uint8_t> deviceValuesCopy(const std::vector<uint8_t>& image) {
    const GgufFile f = GgufFile::fromBytes(image, "q.gguf");
    GgufWriter w;
    for (const std::string& key : f.keyOrder()) w.set(key, *f.find(key));
    for (const GgufTensorInfo& t : f.tensors()) {
        std::vector<float> v = toFloat(t.type, f.tensorData(t), t.elements(), t.name);
        const TensorType to = ocl::deviceWeightType(t.type, static_cast<int>(t.ne[0]));
        if (to != t.type && to != TensorType::F32) {
            const std::vector<uint8_t> q = fromFloat(to, v);
            dequantizeRow(to, q.data(), v.data(), static_cast<int64_t>(v.size()));
        }
        w.addTensorF32(t.name, t.ne, v);
    }
    return w.toBytes();
}

}  // namespace

class TstOpenClBackend : public QObject {
    Q_OBJECT
    QTemporaryDir cacheDir_;  // the matmul choice file lives here, not in the user's cache
    int device_ = -1;

    bool onCpuDevice() const {
        return ocl::listDevices().devices[static_cast<size_t>(device_)].type == "CPU";
    }
    // A CPU device on an x86 host with AVX2 and F16C: where cpu_simd.cl's kernels build (PoCL
    // compiles for the host's CPU).
    bool onX86CpuDevice() const { return onCpuDevice() && qdot::isaSupported(qdot::Isa::Avx2); }
    // Where decode steps run a decoder layer per command (OpenClOptions::fusedLayers): PoCL's
    // CPU device with the x86 kernels.
    bool fusesLayers() const {
        const ocl::DeviceList list = ocl::listDevices();
        return onX86CpuDevice() && list.devices[static_cast<size_t>(device_)].platformName.find(
                                       "Portable Computing Language") != std::string::npos;
    }
    // The device's cache holds the traced keys and values of every layer and KV head, at their
    // positions.
    static void verifyCacheHoldsTheTraces(const OpenClBackend& gpu, const ModelConfig& c,
                                          const std::vector<StepTrace>& traces) {
        QCOMPARE(gpu.cacheUsed(), static_cast<int>(traces.size()));
        for (int l = 0; l < c.nLayer; ++l)
            for (int g = 0; g < c.nHeadKv; ++g) {
                const std::vector<float> K = gpu.readKeys(l, g), V = gpu.readValues(l, g);
                QCOMPARE(K.size(), traces.size() * c.headDim);
                for (const StepTrace& t : traces)
                    for (int d = 0; d < c.headDim; ++d) {
                        const size_t at = static_cast<size_t>(t.position) * c.headDim + d;
                        QCOMPARE(K[at], t.key(l, g)[d]);
                        QCOMPARE(V[at], t.value(l, g)[d]);
                    }
            }
    }
    OpenClOptions options(std::optional<ocl::MatMulChoice> matmul = std::nullopt) const {
        OpenClOptions o;
        o.device = device_;
        o.matmul = matmul;
        o.cacheDir = cacheDir_.path().toStdString();
        return o;
    }
    DecodeSession session(std::shared_ptr<Backend> b, const std::shared_ptr<const Model>& m,
                          bool cache) const {
        SessionOptions so;
        so.useCache = cache;
        return DecodeSession(std::move(b), m->tokenizer, so);
    }

  private slots:
    void initTestCase() {
        QVERIFY(cacheDir_.isValid());
        const ocl::DeviceList list = ocl::listDevices();
        if (list.devices.empty())
            QSKIP(qPrintable("no OpenCL device exists on this machine (" +
                             QString::fromStdString(list.problem) + ")"));
        for (const ocl::DeviceInfo& d : list.devices)
            if (d.usable) {
                device_ = d.index;
                break;
            }
        QVERIFY2(device_ >= 0, "OpenCL devices exist but none is usable");
        qInfo("OpenCL device %d: %s (%s)", device_,
              list.devices[static_cast<size_t>(device_)].name.c_str(),
              list.devices[static_cast<size_t>(device_)].platformName.c_str());
    }

    void devicesAreDescribed() {
        const ocl::DeviceList list = ocl::listDevices();
        for (const ocl::DeviceInfo& d : list.devices) {
            QCOMPARE(d.index, static_cast<int>(&d - list.devices.data()));
            QVERIFY(!d.name.empty());
            QVERIFY(!d.platformName.empty());
            QVERIFY(d.computeUnits > 0);
            QVERIFY(d.globalMemBytes > 0);
            QVERIFY(d.maxAllocBytes > 0 && d.maxAllocBytes <= d.globalMemBytes);
            QCOMPARE(d.usable, d.whyNot.empty());
            QVERIFY(QString::fromStdString(d.key()).contains(QString::fromStdString(d.name)));
        }
    }

    void clCheckNamesTheCallAndTheStatus() {
        try {
            CL_CHECK(static_cast<cl_int>(CL_OUT_OF_RESOURCES));
            QFAIL("CL_CHECK accepted CL_OUT_OF_RESOURCES");
        } catch (const Error& e) {
            QCOMPARE(QString(e.what()),
                     "static_cast<cl_int>(CL_OUT_OF_RESOURCES): CL_OUT_OF_RESOURCES (-5), "
                     "expected CL_SUCCESS");
        }
        CL_CHECK(static_cast<cl_int>(CL_SUCCESS));  // success passes
    }

    // HostArena's buffers (the weights' storage on CPU devices) each hold the bytes they were
    // given, in the arena's memory (slices of 4 KiB pages laid end to end: the runtime uses it
    // and copies nothing): small ones share a block, one larger than a block (64 MiB) has its
    // own, one that does not fit in what is left starts a new block. Writing one leaves its
    // neighbours as they were; all of them stay whole after the arena is gone, and the blocks
    // go with the last buffer in them.
    void hostArenaBuffersHoldTheirBytes() {
        ocl::ClDevice dev(device_);
        const int blocksBefore = ocl::HostArena::liveBlocks();
        const std::vector<size_t> sizes = {5,        4096,      4100,      100, size_t{70} << 20,
                                           3u << 20, 30u << 20, 33u << 20, 100};
        std::vector<std::vector<uint8_t>> want;
        std::vector<ocl::Buffer> bufs;
        {
            ocl::HostArena arena;
            std::mt19937 rng(3);
            for (const size_t bytes : sizes) {
                std::vector<uint8_t> v(bytes);
                for (uint8_t& b : v) b = static_cast<uint8_t>(rng());
                bufs.push_back(arena.buffer(dev.context(), bytes, CL_MEM_READ_WRITE, v.data()));
                QCOMPARE(bufs.back().bytes(), bytes);
                want.push_back(std::move(v));
            }
        }
        // 5 .. 100 bytes; 70 MiB; 3 and 30 MiB; 33 MiB and 100 bytes
        QCOMPARE(ocl::HostArena::liveBlocks(), blocksBefore + 4);
        // the first four in one block, a page apart but the 4100 bytes' two
        std::vector<const uint8_t*> at;
        for (size_t i = 0; i < 4; ++i) {
            cl_int status = CL_SUCCESS;
            void* p = clEnqueueMapBuffer(dev.queue().get(), bufs[i].get(), CL_TRUE, CL_MAP_READ, 0,
                                         sizes[i], 0, nullptr, nullptr, &status);
            QCOMPARE(status, CL_SUCCESS);
            at.push_back(static_cast<const uint8_t*>(p));
            QCOMPARE(
                clEnqueueUnmapMemObject(dev.queue().get(), bufs[i].get(), p, 0, nullptr, nullptr),
                CL_SUCCESS);
        }
        QCOMPARE(at[1] - at[0], 4096);
        QCOMPARE(at[2] - at[1], 4096);
        QCOMPARE(at[3] - at[2], 8192);
        dev.queue().fillAsync(bufs[1], 2.5f).wait();  // 4096 bytes between two others
        dev.queue().fillAsync(bufs[2], 2.5f).wait();  // 4100 bytes, 100 right after
        for (const size_t b : {size_t{1}, size_t{2}})
            for (size_t i = 0; i < sizes[b]; i += 4) std::memcpy(&want[b][i], "\0\0\x20\x40", 4);
        for (size_t i = 0; i < bufs.size(); ++i) {
            std::vector<uint8_t> got(sizes[i]);
            dev.queue().read(bufs[i], 0, got.data(), got.size());
            QVERIFY2(got == want[i],
                     qPrintable(QString("buffer %1 of %2 bytes").arg(i).arg(sizes[i])));
        }
        bufs.clear();
        QCOMPARE(clFinish(dev.queue().get()), CL_SUCCESS);
        QCOMPARE(ocl::HostArena::liveBlocks(), blocksBefore);
    }

    // The weights in huge-page host memory (OpenClOptions::hugePages, the default on CPU
    // devices) or in the runtime's own buffers: the same kernels on the same bytes, so the same
    // logits bit for bit, prefill and steps, on a block type and on F16.
    void weightsInHugePagesComputeTheSameNumbers() {
        for (const TensorType type : {TensorType::Q8_0, TensorType::F16}) {
            RandomModelSpec spec = fixtures::gpt2Spec();
            spec.weightType = type;
            auto m = fixtures::makeModel(spec);
            OpenClOptions on = options(), off = options();
            on.hugePages = true;
            off.hugePages = false;
            auto inPages = std::make_shared<OpenClBackend>(m, on);
            auto plain = std::make_shared<OpenClBackend>(m, off);
            QCOMPARE(inPages->hugePageWeights(), onCpuDevice());  // never on a GPU
            QVERIFY(!plain->hugePageWeights());
            DecodeSession a = session(inPages, m, true), b = session(plain, m, true);
            a.prefill(kPrompt);
            b.prefill(kPrompt);
            QVERIFY(std::ranges::equal(a.logits(), b.logits()));
            for (int i = 0; i < 3; ++i) {
                const int32_t t = a.step().token;
                QCOMPARE(b.step().token, t);
                QVERIFY2(std::ranges::equal(a.logits(), b.logits()),
                         qPrintable(QString("step %1").arg(i)));
            }
        }
    }

    void matmulChoiceTextRoundTrips() {
        for (const char* t :
             {"gemv kvscope-rows/auto, gemm kvscope-rows/64", "gemv kvscope-rows/16, gemm clblast",
              "gemv kvscope-groups/128, gemm kvscope-rows/16", "gemv clblast, gemm clblast"}) {
            const auto c = ocl::MatMulChoice::parse(t);
            QVERIFY2(c.has_value(), t);
            QCOMPARE(QString::fromStdString(c->text()), QString(t));
        }
        for (const char* t :
             {"", "gemv clblast", "gemv rows, gemm clblast",
              "gemv kvscope-groups/100, gemm clblast", "gemv kvscope-rows/0, gemm clblast",
              "gemv kvscope-rows/64x, gemm clblast", "gemv clblast, gemm kvscope-rows/auto",
              "gemv clblast, gemm clblast2"})
            QVERIFY2(!ocl::MatMulChoice::parse(t).has_value(), t);
    }

    // Every path against ops::matmul on sizes that are not multiples of 8, 4 or the work group,
    // with and without bias and residual accumulation: one row takes the GEMV path, more rows
    // the GEMM path.
    void matmulMatchesCpuOnOddSizes_data() {
        QTest::addColumn<QString>("choice");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("inDim");
        QTest::addColumn<int>("outDim");
        QTest::addColumn<bool>("bias");
        QTest::addColumn<bool>("accumulate");
        for (const char* path :
             {"gemv kvscope-rows/auto, gemm kvscope-rows/16",
              "gemv kvscope-rows/16, gemm kvscope-rows/64", "gemv kvscope-groups/64, gemm clblast",
              "gemv clblast, gemm clblast"}) {
            auto row = [&](int n, int in, int out, bool bias, bool acc) {
                QTest::addRow("%s %dx%dx%d%s%s", path, n, in, out, bias ? " bias" : "",
                              acc ? " accumulate" : "")
                    << QString(path) << n << in << out << bias << acc;
            };
            row(1, 1, 1, false, false);
            row(1, 13, 7, true, false);
            row(1, 9, 33, false, true);
            row(1, 1000, 257, true, true);
            row(1, 7, 1000, true, false);
            row(1, 3072, 768, true, true);
            row(2, 8, 3, true, false);
            row(3, 37, 29, true, true);
            row(4, 64, 65, false, true);
            row(5, 200, 301, false, false);
            row(7, 1001, 33, true, true);
        }
    }
    void matmulMatchesCpuOnOddSizes() {
        QFETCH(QString, choice);
        QFETCH(int, n);
        QFETCH(int, inDim);
        QFETCH(int, outDim);
        QFETCH(bool, bias);
        QFETCH(bool, accumulate);
        std::mt19937 rng(static_cast<unsigned>(n * 7919 + inDim * 31 + outDim));
        std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
        auto random = [&](size_t count) {
            std::vector<float> v(count);
            for (float& f : v) f = uni(rng);
            return v;
        };
        const auto N = static_cast<size_t>(n), I = static_cast<size_t>(inDim),
                   O = static_cast<size_t>(outDim);
        const std::vector<float> w = random(O * I), x = random(N * I), b = random(O),
                                 y0 = random(N * O);
        // reference: y = x · wᵀ + b (+ y0)
        std::vector<float> want(N * O);
        ops::matmul(want.data(), x.data(), w.data(), bias ? b.data() : nullptr, n, inDim, outDim,
                    ThreadPool::shared());
        if (accumulate)
            for (size_t i = 0; i < want.size(); ++i) want[i] += y0[i];

        ocl::ClDevice dev(device_);
        const ocl::Program program = dev.buildKernels();
        const auto parsed = ocl::MatMulChoice::parse(choice.toStdString());
        QVERIFY(parsed.has_value());
        ocl::MatMul mm(dev, program, *parsed);
        const ocl::Context& ctx = dev.context();
        // inputs at an offset, as the backend passes the last row of a batch
        const size_t inOff = 5, outOff = 3;
        std::vector<float> xPadded(inOff, 99.0f), yPadded(outOff, 77.0f);
        xPadded.insert(xPadded.end(), x.begin(), x.end());
        yPadded.insert(yPadded.end(), y0.begin(), y0.end());
        ocl::Buffer dw(ctx, w.size() * 4, CL_MEM_READ_ONLY, w.data());
        ocl::Buffer dx(ctx, xPadded.size() * 4, CL_MEM_READ_ONLY, xPadded.data());
        ocl::Buffer db(ctx, b.size() * 4, CL_MEM_READ_ONLY, b.data());
        ocl::Buffer dy(ctx, yPadded.size() * 4, CL_MEM_READ_WRITE, yPadded.data());
        std::vector<ocl::Event> events;
        mm.run(dy, outOff, dx, inOff, dw, bias ? &db : nullptr, n, inDim, outDim, accumulate,
               events);
        std::vector<float> got(yPadded.size());
        dev.queue().read(dy, 0, got.data(), got.size() * 4);
        for (size_t i = 0; i < outOff; ++i) QCOMPARE(got[i], 77.0f);  // nothing before outOff
        VERIFY_CLOSE("product", std::span(got).subspan(outOff), want);
        QVERIFY(!events.empty());
    }

    // Prefill and 32 steps on both backends: the same logits, tokens and traces.
    void decodingMatchesCpu_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<bool>("cache");
        QTest::addColumn<std::optional<ocl::MatMulChoice>>("matmul");
        QTest::addColumn<bool>("separate");  // decode steps in separate kernels, not fused layers
        const std::optional<ocl::MatMulChoice> measured;
        const auto clblast = ocl::MatMulChoice::parse("gemv clblast, gemm clblast");
        const auto groups = ocl::MatMulChoice::parse("gemv kvscope-groups/64, gemm clblast");
        const auto rows = ocl::MatMulChoice::parse("gemv kvscope-rows/64, gemm kvscope-rows/16");
        QTest::newRow("gpt2 cached") << "gpt2" << true << measured << false;
        QTest::newRow("gpt2 recompute") << "gpt2" << false << measured << false;
        QTest::newRow("llama_gqa cached") << "llama_gqa" << true << measured << false;
        QTest::newRow("llama_gqa recompute") << "llama_gqa" << false << measured << false;
        QTest::newRow("gpt2 cached, clblast") << "gpt2" << true << clblast << false;
        QTest::newRow("gpt2 recompute, clblast") << "gpt2" << false << clblast << false;
        QTest::newRow("gpt2 recompute, kvscope rows") << "gpt2" << false << rows << false;
        QTest::newRow("llama_gqa cached, kvscope groups") << "llama_gqa" << true << groups << false;
        QTest::newRow("llama_gqa recompute, kvscope rows") << "llama_gqa" << false << rows << false;
        QTest::newRow("gpt2 cached, separate kernels") << "gpt2" << true << measured << true;
        QTest::newRow("llama_gqa cached, separate kernels")
            << "llama_gqa" << true << measured << true;
        for (const std::string& family : fixtures::familyNames()) {
            const QString name = QString::fromStdString(family);
            QTest::newRow(qPrintable(name + " cached")) << name << true << measured << false;
            QTest::newRow(qPrintable(name + " recompute")) << name << false << measured << false;
        }
    }
    // How the rows come back does not change them: traces gathered on the device and read once
    // (the default for these small runs) or read after each layer, and attention computed one
    // token at a time in a small scratch when nothing is traced, give the same numbers. (All
    // three with the separate kernels: a step read per layer cannot be fused, and float32
    // products in a fused layer sum in another order; fusedLayersAreTheSeparateKernels holds
    // the fused steps' rows to these.)
    void roundTripsDoNotChangeTheNumbers() {
        auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        OpenClOptions separate = options();
        separate.fusedLayers = false;
        OpenClOptions perLayer = separate, oneToken = separate;
        perLayer.traceGatherBytes = 0;
        oneToken.attentionScratchFloats = 1;  // a slice of one token
        DecodeSession a = session(std::make_shared<OpenClBackend>(m, separate), m, true);
        DecodeSession b = session(std::make_shared<OpenClBackend>(m, perLayer), m, true);
        SessionOptions untraced;
        untraced.captureTrace = false;
        DecodeSession c(std::make_shared<OpenClBackend>(m, oneToken), m->tokenizer, untraced);
        const std::vector<StepTrace> pa = a.prefill(kPrompt), pb = b.prefill(kPrompt);
        c.prefill(kPrompt);
        QCOMPARE(pa.size(), pb.size());
        for (size_t i = 0; i < pa.size(); ++i) {
            QCOMPARE(pa[i].q, pb[i].q);
            QCOMPARE(pa[i].attn, pb[i].attn);
            QCOMPARE(pa[i].resid, pb[i].resid);
        }
        QVERIFY(std::equal(a.logits().begin(), a.logits().end(), c.logits().begin()));
        for (int step = 0; step < 6; ++step) {
            const StepTrace sa = a.step(), sb = b.step(), sc = c.step();
            QCOMPARE(sa.token, sb.token);
            QCOMPARE(sa.token, sc.token);
            QCOMPARE(sa.q, sb.q);
            QCOMPARE(sa.k, sb.k);
            QCOMPARE(sa.v, sb.v);
            QCOMPARE(sa.attn, sb.attn);
            QCOMPARE(sa.resid, sb.resid);
            QVERIFY(!sa.attn.empty() && !sa.resid.empty());
        }
    }

    // Widths that are not whole vectors take the kernels' scalar tails: rows of 36 values (the
    // x86 norms' float8 loop leaves 4), 100 MLP values a token (GELU's eight at a time leave 4),
    // GPT-2 heads of 9 (the cache append's four at a time cannot split them: one at a time),
    // Llama and Gemma heads of 12 (not the x86 attention's multiples of 8: the portable one);
    // SwiGLU's and GELU-gate's tails as GELU's. Logits and the traced keys and values as the
    // CPU's, prompt and steps, and the device's cache holding those keys and values.
    void oddWidthsMatchCpu_data() {
        QTest::addColumn<int>("arch");
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("kvHeads");
        QTest::newRow("gpt2, heads of 9") << int(Arch::Gpt2) << 4 << 4;
        QTest::newRow("llama, heads of 12") << int(Arch::Llama) << 3 << 1;
        QTest::newRow("gemma, heads of 12") << int(Arch::Gemma) << 3 << 1;
    }
    void oddWidthsMatchCpu() {
        QFETCH(int, arch);
        QFETCH(int, heads);
        QFETCH(int, kvHeads);
        RandomModelSpec s = fixtures::gpt2Spec();
        s.arch = static_cast<Arch>(arch);
        s.nEmbd = 36;
        s.nHead = heads;
        s.nHeadKv = kvHeads;
        s.nFf = 100;
        auto m = fixtures::makeModel(s);
        auto gpu = std::make_shared<OpenClBackend>(m, options());
        DecodeSession cl = session(gpu, m, true),
                      cpu = session(std::make_shared<CpuBackend>(m), m, true);
        std::vector<StepTrace> traces = cl.prefill(kPrompt);
        cpu.prefill(kPrompt);
        VERIFY_CLOSE("prefill logits", cl.logits(), cpu.logits());
        for (int i = 0; i < 4; ++i) {
            traces.push_back(cl.step());
            const StepTrace b = cpu.step();
            QCOMPARE(traces.back().token, b.token);
            VERIFY_CLOSE("step logits", cl.logits(), cpu.logits());
            VERIFY_CLOSE("step k", traces.back().k, b.k);
            VERIFY_CLOSE("step v", traces.back().v, b.v);
        }
        verifyCacheHoldsTheTraces(*gpu, m->config, traces);  // the cache append's tails
    }

    // Compare without cache runs on a spare cache: the live one comes back untouched, and the
    // session goes on exactly as the CPU's.
    void replayWithoutCacheKeepsTheCache() {
        auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        DecodeSession cl = session(std::make_shared<OpenClBackend>(m, options()), m, true),
                      cpu = session(std::make_shared<CpuBackend>(m), m, true);
        cl.prefill(kPrompt);
        cpu.prefill(kPrompt);
        for (int i = 0; i < 4; ++i) QCOMPARE(cl.step().token, cpu.step().token);
        const ReplayTimes r = cl.replayWithoutCache();
        QCOMPARE(r.tokens, cl.tokens());
        QCOMPARE(cl.backend().cacheUsed(), static_cast<int>(cl.tokens().size()));
        for (int i = 0; i < 4; ++i) {
            const StepTrace a = cl.step(), b = cpu.step();
            QCOMPARE(a.token, b.token);
            VERIFY_CLOSE("attention after the replay", a.attn, b.attn);
        }
    }

    void decodingMatchesCpu() {
        QFETCH(QString, model);
        QFETCH(bool, cache);
        QFETCH(std::optional<ocl::MatMulChoice>, matmul);
        QFETCH(bool, separate);
        auto m = fixtures::makeModel(specFor(model));
        OpenClOptions o = options(matmul);
        if (separate) o.fusedLayers = false;
        auto gpu = std::make_shared<OpenClBackend>(m, o);
        // Gemma 2's norms after attention and the MLP are not in the fused layer
        QCOMPARE(gpu->fusedLayers(), !separate && fusesLayers() && model != "gemma2");
        DecodeSession cl = session(gpu, m, cache),
                      cpu = session(std::make_shared<CpuBackend>(m), m, cache);
        const std::vector<StepTrace> pc = cl.prefill(kPrompt), pr = cpu.prefill(kPrompt);
        QCOMPARE(cl.tokens(), cpu.tokens());
        VERIFY_CLOSE("prefill logits", cl.logits(), cpu.logits());
        QCOMPARE(pc.size(), pr.size());
        for (size_t i = 0; i < pc.size(); ++i) {
            QCOMPARE(pc[i].position, pr[i].position);
            VERIFY_CLOSE("prompt q", pc[i].q, pr[i].q);
            VERIFY_CLOSE("prompt k", pc[i].k, pr[i].k);
            VERIFY_CLOSE("prompt v", pc[i].v, pr[i].v);
            VERIFY_CLOSE("prompt attention", pc[i].attn, pr[i].attn);
            VERIFY_CLOSE("prompt residuals", pc[i].resid, pr[i].resid);
            QVERIFY(!pc[i].resid.empty());
        }
        for (int step = 0; step < 32; ++step) {
            const StepTrace a = cl.step(), b = cpu.step();
            QCOMPARE(a.token, b.token);
            QCOMPARE(a.position, b.position);
            VERIFY_CLOSE("step logits", cl.logits(), cpu.logits());
            VERIFY_CLOSE("step q", a.q, b.q);
            VERIFY_CLOSE("step k", a.k, b.k);
            VERIFY_CLOSE("step v", a.v, b.v);
            VERIFY_CLOSE("step attention", a.attn, b.attn);
            VERIFY_CLOSE("step residuals", a.resid, b.resid);
            QCOMPARE(a.kvBytes, b.kvBytes);
        }
        // the logit lens (the model's head on each layer's residuals) on the device
        const LogitLens lc = cl.logitLens(pc.back(), cl.tokens()[pc.size()], 5),
                        lr = cpu.logitLens(pr.back(), cpu.tokens()[pr.size()], 5);
        QCOMPARE(lc.layers.size(), lr.layers.size());
        for (size_t l = 0; l < lc.layers.size(); ++l) {
            QCOMPARE(lc.layers[l].top.size(), lr.layers[l].top.size());
            for (size_t i = 0; i < lc.layers[l].top.size(); ++i)
                QVERIFY(std::abs(lc.layers[l].topProb[i] - lr.layers[l].topProb[i]) < 1e-4);
            QVERIFY(std::abs(lc.layers[l].targetProb - lr.layers[l].targetProb) < 1e-4);
        }
        QCOMPARE(cl.tokens(), cpu.tokens());
        // Both caches grow in the same blocks (recompute mode empties them after each pass; the
        // CPU frees its blocks then, OpenCL keeps its buffers for the next pass).
        if (cpu.usesCache()) {
            QCOMPARE(gpu->cacheAllocatedBytes(),
                     dynamic_cast<const CpuBackend&>(cpu.backend()).cacheAllocatedBytes());
            QCOMPARE(gpu->cacheBlockTokens(), cpu.backend().cacheBlockTokens());
        }
        // device time was measured, by part (a fused step's attention is inside its layers)
        const DeviceMs t = gpu->lastStepDeviceMs();
        QVERIFY(t.matmul > 0 && t.other > 0);
        if (gpu->fusedLayers() && cache)
            QVERIFY(t.layers > 0 && t.attention == 0);
        else
            QVERIFY(t.attention > 0 && t.layers == 0);
    }

    // Weights kept in their block types on the device: for each type our kernels read (and Q5_K
    // and Q3_K, converted at upload), gpt2 and llama (tied head: the table's rows are also
    // gathered by the embedding), cached and recompute, prefill and 6 steps. The logits match
    // the CPU backend run on float32 copies of the values the device holds to 1e-4 of the
    // largest (a wrong bit in a kernel's layout moves them by far more), and the CPU backend on
    // the blocks themselves (which rounds activations to 8 bits) loosely, on the same tokens.
    // With cpu_simd.cl's kernels on wide blocks, which round activations as the CPU does, both
    // CPU runs loosely (see below).
    void quantizedWeightsComputeTheirValues_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<bool>("llama");
        QTest::addColumn<bool>("cache");
        QTest::addColumn<bool>("wide");  // the blocks' scales widened to float32 (CPU devices)
        // the decode step through cpu_simd.cl's x86 kernels (F16, and the wide block types with
        // x rounded to 8 bits), else quant.cl's portable ones
        QTest::addColumn<bool>("simd");
        struct Layout {
            bool wide, simd;
        };
        for (TensorType t :
             {TensorType::F16, TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K,
              TensorType::Q6_K, TensorType::Q5_K, TensorType::Q3_K, TensorType::Q4_1})
            for (bool llama : {false, true})
                for (bool cache : {true, false})
                    for (Layout l : {Layout{false, false}, Layout{true, false}, Layout{true, true},
                                     Layout{false, true}})
                        // F16 has no wide layout; stored block types take no SIMD kernel
                        if (t == TensorType::F16 ? !l.wide : l.wide || !l.simd)
                            QTest::addRow("%s %s %s%s%s", typeName(t).c_str(),
                                          llama ? "llama" : "gpt2", cache ? "cached" : "recompute",
                                          l.wide ? " wide" : "", l.simd ? " simd" : "")
                                << int(t) << llama << cache << l.wide << l.simd;
        // Q, K and V of different types (three device buffers filling one product), Q8_0 table
        for (Layout l : {Layout{false, false}, Layout{true, false}, Layout{true, true}}) {
            const char* tail = l.simd ? " wide simd" : l.wide ? " wide" : "";
            QTest::addRow("mixed llama cached%s", tail) << -1 << true << true << l.wide << l.simd;
            QTest::addRow("mixed llama recompute%s", tail)
                << -1 << true << false << l.wide << l.simd;
        }
    }
    void quantizedWeightsComputeTheirValues() {
        QFETCH(int, type);
        QFETCH(bool, llama);
        QFETCH(bool, cache);
        QFETCH(bool, wide);
        QFETCH(bool, simd);
        RandomModelSpec s = llama ? fixtures::llamaGqaSpec() : fixtures::gpt2Spec();
        s.nEmbd = 256;
        s.nHead = 4;
        s.nFf = 512;
        s.weightStd = 0.05f;
        s.tiedOutput = llama;
        if (type >= 0) s.weightType = static_cast<TensorType>(type);
        const std::vector<uint8_t> image = imageOf(s, type, [](const std::string& name) {
            auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
            return has("token_embd") ? TensorType::Q8_0
                   : has("attn_q")   ? TensorType::Q4_K
                   : has("attn_k")   ? TensorType::Q5_K
                   : has("attn_v")   ? TensorType::Q6_K
                   : has("ffn_down") ? TensorType::F16
                   : has("ffn_gate") ? TensorType::Q4_0
                                     : TensorType::Q4_K;
        });
        auto native = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(image, "native.gguf")));
        auto reference = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(deviceValuesCopy(image), "f32.gguf")));
        if (type >= 0) QCOMPARE(native->tokEmbd.type(), s.weightType);
        QCOMPARE(reference->layers[0].wDown.type(), TensorType::F32);

        // gpt2 rows: one row per work item for the decode step; llama: a work group per row
        const auto matmul =
            ocl::MatMulChoice::parse(llama ? "gemv kvscope-groups/64, gemm kvscope-rows/16"
                                           : "gemv kvscope-rows/auto, gemm kvscope-rows/64");
        OpenClOptions clo = options(matmul);
        clo.wideScales = wide;
        clo.cpuSimd = simd;
        auto gpu = std::make_shared<OpenClBackend>(native, clo);
        QCOMPARE(gpu->wideScales(), wide);
        // PoCL on an x86 CPU with AVX2 and F16C (the CPU backend's AVX2 kernels' needs) builds
        // the x86 kernels; a GPU or another CPU does not
        QCOMPARE(gpu->cpuSimd(), simd && onX86CpuDevice());
        QCOMPARE(QString::fromStdString(gpu->deviceName()).contains("x86 SIMD kernels"),
                 gpu->cpuSimd());
        // the device holds the blocks, not float32: its buffers as the rules size them, and the
        // stored rows themselves where the type has a kernel (their scales widened if wide)
        QCOMPARE(gpu->uploadedWeightBytes(), ocl::deviceWeightBytes(*native, wide));
        QVERIFY(gpu->uploadedWeightBytes() < reference->weightBytes());
        const auto [downType, downBytes] = gpu->readFfnDown(0);
        const WeightMatrix& down = native->layers[0].wDown;
        QCOMPARE(downType, ocl::deviceWeightType(down));
        QVERIFY(downBytes == ocl::convertRows(down, downType, wide));
        // widening adds 2 bytes per float16 scale: one per 32 values (Q8_0, Q4_0), one per 256
        // (Q6_K); Q4_K has two per 256 (d, dmin), and its 12 bytes of packed 6-bit scales and
        // minimums become 16; F16 and F32 have none
        const size_t cols = static_cast<size_t>(down.cols());
        const size_t extra = downType == TensorType::Q4_K   ? (2 * 2 + 4) * cols / 256
                             : downType == TensorType::Q6_K ? 2 * cols / 256
                             : ocl::hasWideScales(downType) ? 2 * cols / 32
                                                            : 0;
        QCOMPARE(downBytes.size(), ocl::deviceBytes(down) + (wide ? extra * down.rows() : 0));
        if (ocl::hasDeviceKernel(down.type()) && !wide)
            QVERIFY(std::equal(downBytes.begin(), downBytes.end(), down.data(),
                               down.data() + down.bytes()));
        const QString note = QString::fromStdString(gpu->weightNote());
        QCOMPARE(note.contains("float16 scales widened to float32"), wide);
        QVERIFY2(note.startsWith("weights on the device: "), qPrintable(note));
        if (type >= 0 && !ocl::hasDeviceKernel(s.weightType))
            QVERIFY2(
                note.contains(QString::fromStdString(typeName(s.weightType)) + " converted to " +
                              QString::fromStdString(typeName(downType)) + " at upload"),
                qPrintable(note));

        SessionOptions o;
        o.captureTrace = false;
        o.useCache = cache;
        DecodeSession cl(gpu, native->tokenizer, o);
        DecodeSession ref(std::make_shared<CpuBackend>(reference), reference->tokenizer, o);
        DecodeSession cpu(std::make_shared<CpuBackend>(native), native->tokenizer, o);
        // The x86 kernels round x to 8 bits for the block types, as the CPU backend's SIMD
        // kernels do (cpuSimdProductsAreExactOnTheRoundedX holds each product to that); a
        // rounding that falls the other way on a sum taken in another order moves the next
        // layer's x by a step, so whole models agree with both CPU runs within the rounding's
        // error only. Every other product is exact in float32: the float32 reference, closely.
        const bool rounded = gpu->cpuSimd() && wide;
        for (DecodeSession* x : {&cl, &ref, &cpu}) x->prefill("the cat sat on");
        for (int i = 0; i < 7; ++i) {
            if (rounded) {
                for (const DecodeSession* other : {&ref, &cpu}) {
                    const double err = maxRelError(cl.logits(), other->logits());
                    QVERIFY2(err < 5e-2, qPrintable(QString("vs the %1: %2")
                                                        .arg(other == &ref ? "float32 reference"
                                                                           : "CPU on the blocks")
                                                        .arg(err)));
                }
            } else {
                VERIFY_CLOSE("logits vs the device's values on the CPU", cl.logits(), ref.logits());
                const double loose = maxRelError(cl.logits(), cpu.logits());
                QVERIFY2(loose < 5e-2,
                         qPrintable(QString("vs the CPU on the blocks: %1").arg(loose)));
            }
            if (i == 6) break;
            const int32_t token = cl.step().token;
            ref.stepWith(token);
            cpu.stepWith(token);
        }
    }

    // cpu_simd.cl's attend (an item per head and token, x86 CPU devices) against attention.cl's
    // (a work group per head and token): the same attention rows and logits up to float32
    // rounding in another order, with grouped-query heads, Gemma 2's sliding window and
    // soft-capped scores, a prompt (several tokens a pass) and decode steps; and a prompt
    // longer than the window. Both runs use the portable products (F32 weights).
    void cpuSimdAttentionIsThePortableOne_data() {
        QTest::addColumn<int>("arch");
        QTest::newRow("gpt2") << int(Arch::Gpt2);
        QTest::newRow("llama gqa") << int(Arch::Llama);
        QTest::newRow("gemma2 window softcap") << int(Arch::Gemma2);
    }
    void cpuSimdAttentionIsThePortableOne() {
        QFETCH(int, arch);
        RandomModelSpec s =
            arch == int(Arch::Gpt2) ? fixtures::gpt2Spec() : fixtures::llamaGqaSpec();
        s.arch = static_cast<Arch>(arch);
        s.nEmbd = 64;
        s.nHead = 4;  // head_dim 16: two float8 columns, none of 32 at a time
        s.nHeadKv = arch == int(Arch::Gpt2) ? 4 : 2;
        if (s.arch == Arch::Gemma2) {
            s.slidingWindow = 4;
            s.attnSoftcap = 5.0f;  // a cap that bends scores of a few units
            s.headDim = 40;        // one block of 32 dimensions and one of 8
        }
        auto m = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(randomModel(s).toBytes(), "attend.gguf")));
        OpenClOptions simdOptions = options(), portableOptions = options();
        portableOptions.cpuSimd = false;
        auto simd = std::make_shared<OpenClBackend>(m, simdOptions);
        QCOMPARE(simd->cpuSimd(), onX86CpuDevice());
        DecodeSession a = session(simd, m, true);
        DecodeSession b = session(std::make_shared<OpenClBackend>(m, portableOptions), m, true);
        const std::vector<StepTrace> pa = a.prefill("the cat sat on the mat"),
                                     pb = b.prefill("the cat sat on the mat");
        QCOMPARE(pa.size(), pb.size());
        QVERIFY(pa.size() > 4);  // longer than Gemma 2's window
        for (size_t i = 0; i < pa.size(); ++i)
            VERIFY_CLOSE("prompt attention", pa[i].attn, pb[i].attn);
        for (int step = 0; step < 4; ++step) {
            VERIFY_CLOSE("logits", a.logits(), b.logits());
            const StepTrace ta = a.step(), tb = b.step();
            QCOMPARE(ta.token, tb.token);
            VERIFY_CLOSE("step attention", ta.attn, tb.attn);
        }
        // untraced, a prompt's tokens attend a slice of one at a time (i0 > 0)
        OpenClOptions sliced = simdOptions;
        sliced.attentionScratchFloats = 1;
        SessionOptions untraced;
        untraced.captureTrace = false;
        DecodeSession c(std::make_shared<OpenClBackend>(m, sliced), m->tokenizer, untraced);
        c.prefill("the cat sat on the mat");
        b.reset();
        b.prefill("the cat sat on the mat");
        VERIFY_CLOSE("logits after sliced attention", c.logits(), b.logits());
    }

    // The commands of a decode step, counted by hand: the embedding; per GPT-2 layer the two
    // norms, the Q/K/V, output, up and down products, the cache append, attention and GELU (9);
    // per Llama layer RoPE, and the gate product and SwiGLU in GELU's place (11); the final
    // norm and the head. Where cpu_simd.cl's kernels take Q8_0 (x86 CPU devices), the x of each
    // product is rounded by a command of its own, once for Llama's gate and up (4 a layer, and
    // the head's). With a layer per command (fusedLayers, PoCL's CPU device): the sync words'
    // fill, the embedding, a command per layer, the final norm, x's rounding for a Q8_0 head
    // and the head.
    void stepCommandsAreCounted_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<bool>("llama");
        QTest::addColumn<bool>("fused");
        for (bool fused : {false, true}) {
            const char* tail = fused ? ", fused layers" : "";
            QTest::addRow("gpt2 f32%s", tail) << int(TensorType::F32) << false << fused;
            QTest::addRow("gpt2 q8_0%s", tail) << int(TensorType::Q8_0) << false << fused;
            QTest::addRow("llama f32%s", tail) << int(TensorType::F32) << true << fused;
            QTest::addRow("llama q8_0%s", tail) << int(TensorType::Q8_0) << true << fused;
        }
    }
    void stepCommandsAreCounted() {
        QFETCH(int, type);
        QFETCH(bool, llama);
        QFETCH(bool, fused);
        RandomModelSpec s = llama ? fixtures::llamaGqaSpec() : fixtures::gpt2Spec();
        s.nEmbd = 64;
        s.weightType = static_cast<TensorType>(type);
        auto m = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(randomModel(s).toBytes(), "count.gguf")));
        OpenClOptions o =
            options(ocl::MatMulChoice::parse("gemv kvscope-rows/64, gemm kvscope-rows/64"));
        o.wideScales = true;
        o.fusedLayers = fused;
        auto gpu = std::make_shared<OpenClBackend>(m, o);
        QCOMPARE(gpu->fusedLayers(), fused && fusesLayers());
        SessionOptions so;
        so.captureTrace = false;
        DecodeSession cl(gpu, m->tokenizer, so);
        cl.prefill("the cat");
        cl.step();
        const bool rounded = gpu->cpuSimd() && type != int(TensorType::F32);
        if (gpu->fusedLayers())
            QCOMPARE(gpu->lastStepDeviceMs().kernels, 2 + s.nLayer + (rounded ? 3 : 2));
        else
            QCOMPARE(gpu->lastStepDeviceMs().kernels,
                     1 + s.nLayer * ((llama ? 11 : 9) + (rounded ? 4 : 0)) + (rounded ? 3 : 2));
    }

    // A decode step with a decoder layer per command (cpu_step.cl; OpenClOptions::fusedLayers,
    // on PoCL's CPU device) computes what the separate kernels compute: the same row functions
    // on the same roundings in the same order, so the same bits, for each family it takes
    // (GPT-2's biases and GELU; Llama's RoPE, grouped-query heads and SwiGLU; Mistral's window;
    // Qwen2's Q/K/V biases and NEOX RoPE; Phi-3's RoPE over part of a head; Gemma's GELU gate
    // and heads wider than width / heads), each weight type it reads, and a Q/K/V stack of three
    // types: the logits, every traced row and the cache, traced or not. F32 matrices take
    // CLBlast's or gemv.cl's sums apart from it, in another order: close, not equal.
    void fusedLayersAreTheSeparateKernels_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("type");  // -1: Q, K and V of three types
        for (TensorType t : {TensorType::F16, TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K,
                             TensorType::Q6_K, TensorType::F32})
            QTest::addRow("gpt2 %s", typeName(t).c_str()) << "gpt2" << int(t);
        QTest::newRow("llama_gqa q4_k") << "llama_gqa" << int(TensorType::Q4_K);
        QTest::newRow("llama_gqa q8_0") << "llama_gqa" << int(TensorType::Q8_0);
        QTest::newRow("llama_gqa mixed") << "llama_gqa" << -1;
        for (const std::string& family : fixtures::familyNames())
            if (family != "gemma2")  // its post-norms are not in the fused layer
                QTest::addRow("%s q8_0", family.c_str())
                    << QString::fromStdString(family) << int(TensorType::Q8_0);
    }
    void fusedLayersAreTheSeparateKernels() {
        QFETCH(QString, model);
        QFETCH(int, type);
        RandomModelSpec s = specFor(model);
        if (type < 0 || type == int(TensorType::Q4_K) || type == int(TensorType::Q6_K)) {
            s.nEmbd = 256;  // whole 256-value blocks
            s.nFf = 512;
        }
        s.weightStd = 0.05f;
        // the mixed stack: types the fused layer reads, three in Q, K and V
        const std::vector<uint8_t> image = imageOf(s, type, [](const std::string& name) {
            auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
            return has("attn_q")     ? TensorType::Q4_K
                   : has("attn_k")   ? TensorType::Q8_0
                   : has("attn_v")   ? TensorType::Q6_K
                   : has("ffn_down") ? TensorType::F16
                                     : TensorType::Q4_0;
        });
        auto m = std::make_shared<const Model>(
            Model::fromGguf(GgufFile::fromBytes(image, "fused.gguf")));
        OpenClOptions fusedOptions = options();
        fusedOptions.wideScales = true;  // what PoCL's device takes by default
        auto fused = std::make_shared<OpenClBackend>(m, fusedOptions);
        auto separate = fused->withFusedLayers(false);
        auto untracedFused = fused->withFusedLayers(true);
        QCOMPARE(fused->fusedLayers(), fusesLayers());
        QVERIFY(!separate->fusedLayers());
        QCOMPARE(QString::fromStdString(fused->deviceName()).contains("a layer per command"),
                 fused->fusedLayers());
        DecodeSession a = session(fused, m, true), b = session(separate, m, true);
        SessionOptions untraced;
        untraced.captureTrace = false;
        DecodeSession c(untracedFused, m->tokenizer, untraced);
        a.prefill(kPrompt);
        b.prefill(kPrompt);
        c.prefill(kPrompt);
        const bool exact = type != int(TensorType::F32);
        for (int step = 0; step < 8; ++step) {
            const StepTrace ta = a.step(), tb = b.step();
            QCOMPARE(c.step().token, ta.token);
            QCOMPARE(ta.token, tb.token);
            // the attention rows in scratch, not in the traces: the same logits
            QVERIFY(std::ranges::equal(c.logits(), a.logits()));
            if (exact) {
                QVERIFY(std::ranges::equal(a.logits(), b.logits()));
                QCOMPARE(ta.q, tb.q);
                QCOMPARE(ta.k, tb.k);
                QCOMPARE(ta.v, tb.v);
                QCOMPARE(ta.attn, tb.attn);
                QCOMPARE(ta.resid, tb.resid);
            } else {
                VERIFY_CLOSE("logits", a.logits(), b.logits());
                VERIFY_CLOSE("q", ta.q, tb.q);
                VERIFY_CLOSE("attention", ta.attn, tb.attn);
                VERIFY_CLOSE("residuals", ta.resid, tb.resid);
            }
            QVERIFY(!ta.attn.empty() && !ta.resid.empty());
        }
        const DeviceMs t = fused->lastStepDeviceMs();
        QCOMPARE(t.layers > 0, fused->fusedLayers());
        for (int l = 0; l < m->config.nLayer; ++l)
            for (int g = 0; g < m->config.nHeadKv; ++g) {
                if (exact) {
                    QCOMPARE(fused->readKeys(l, g), separate->readKeys(l, g));
                    QCOMPARE(fused->readValues(l, g), separate->readValues(l, g));
                } else {
                    VERIFY_CLOSE("keys", fused->readKeys(l, g), separate->readKeys(l, g));
                    VERIFY_CLOSE("values", fused->readValues(l, g), separate->readValues(l, g));
                }
            }
        QVERIFY(fused->fusedLayers() || !fusesLayers());  // none gave up
    }

    // prepareRuntimes pins PoCL's workers unless the environment already says what to do.
    void runtimesArePreparedUnlessTheUserSaid() {
        const QByteArray before = qgetenv("POCL_AFFINITY");
        qunsetenv("POCL_AFFINITY");
        ocl::prepareRuntimes();
        QCOMPARE(qgetenv("POCL_AFFINITY"), QByteArray("1"));
        qputenv("POCL_AFFINITY", "0");
        ocl::prepareRuntimes();
        QCOMPARE(qgetenv("POCL_AFFINITY"), QByteArray("0"));
        if (before.isNull())
            qunsetenv("POCL_AFFINITY");
        else
            qputenv("POCL_AFFINITY", before);
    }

    // A fused step whose barrier waits too long gives up (stepSpins 0: at once, where the
    // first of two work groups waits for the second); the backend then runs that step again
    // with the separate kernels, to the same numbers, and every later step with them.
    void aFusedStepThatGivesUpRunsAgainSeparately() {
        RandomModelSpec s = fixtures::llamaGqaSpec();
        s.weightType = TensorType::Q8_0;
        auto m = fixtures::makeModel(s);
        OpenClOptions o = options();
        o.warmUp = false;  // the warm-up's step would give up before the test's
        o.stepSpins = 0;
        o.stepGroups = 2;
        auto flaky = std::make_shared<OpenClBackend>(m, o);
        QCOMPARE(flaky->fusedLayers(), fusesLayers());
        auto separate = flaky->withFusedLayers(false);
        DecodeSession a = session(flaky, m, true), b = session(separate, m, true);
        a.prefill(kPrompt);  // a prompt of several tokens: never fused
        b.prefill(kPrompt);
        QCOMPARE(flaky->fusedLayers(), fusesLayers());
        for (int step = 0; step < 4; ++step) {
            const StepTrace ta = a.step(), tb = b.step();
            QVERIFY(!flaky->fusedLayers());
            QCOMPARE(ta.token, tb.token);
            QVERIFY(std::ranges::equal(a.logits(), b.logits()));
            QCOMPARE(ta.q, tb.q);
            QCOMPARE(ta.attn, tb.attn);
            QCOMPARE(ta.resid, tb.resid);
            QCOMPARE(static_cast<int>(ta.attn.size()), static_cast<int>(tb.attn.size()));
        }
        QCOMPARE(flaky->cacheUsed(), separate->cacheUsed());
        for (int l = 0; l < m->config.nLayer; ++l)
            for (int g = 0; g < m->config.nHeadKv; ++g)
                QCOMPARE(flaky->readKeys(l, g), separate->readKeys(l, g));
    }

    // cpu_simd.cl's products, each against a plain reference: x rounded to 8 bits by the CPU
    // backend's plain loop (qdot::detail::quantizeXForTesting, Scalar), the weights dequantized
    // (dequantizeRow), the sum in double. They are exact w.r.t. those up to float32 rounding.
    // Random blocks with scales from tiny to large, a Q8_0 quant of -128; x with a block that
    // is all zero, one with a single large value, one of halves that round differently half
    // away from zero (32-value blocks) and half to even (the K-quants' 256), a block of
    // subnormals, a largest magnitude that comes twice, a NaN; a part of a wider output (ldy,
    // column offset), x at an offset, bias, accumulate; one and three rows of x (F16 one: its
    // batches are quant.cl's).
    void cpuSimdProductsAreExactOnTheRoundedX_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<int>("n");
        for (TensorType t : {TensorType::F16, TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K,
                             TensorType::Q6_K})
            for (int n : {1, 3})
                if (n == 1 || t != TensorType::F16)
                    QTest::addRow("%s n=%d", typeName(t).c_str(), n) << int(t) << n;
    }
    void cpuSimdProductsAreExactOnTheRoundedX() {
        QFETCH(int, type);
        QFETCH(int, n);
        const auto t = static_cast<TensorType>(type);
        ocl::ClDevice dev(device_);
        const ocl::Program program = dev.buildKernels();
        const auto choice = ocl::MatMulChoice::parse("gemv kvscope-rows/64, gemm kvscope-rows/64");
        ocl::MatMul mm(dev, program, *choice, true);
        // built on x86 CPU devices (PoCL here), nowhere else
        QCOMPARE(mm.simd(), onX86CpuDevice());
        if (!onX86CpuDevice()) return;  // asserted above: nothing of cpu_simd.cl to hold

        // 32-value types: an odd number of blocks (the kernels take two at a time, then one)
        const bool kQuant = t == TensorType::Q4_K || t == TensorType::Q6_K;
        constexpr int rows = 37, ldy = 50, yCol = 6, inOff = 7;
        const int cols = kQuant ? 512 : 544;
        std::mt19937 rng(static_cast<unsigned>(type * 10 + n));
        std::normal_distribution<float> normal(0.0f, 1.0f);
        // weights: each row's scale somewhere in 1e-3 .. 1e2
        std::vector<float> w(static_cast<size_t>(rows) * cols);
        for (int r = 0; r < rows; ++r) {
            const float scale = std::pow(10.0f, -3.0f + 5.0f * float(r) / float(rows - 1));
            for (int j = 0; j < cols; ++j)
                w[static_cast<size_t>(r) * cols + j] = scale * normal(rng);
        }
        const size_t rowBytes = ocl::deviceRowBytes(t, cols, false).value();
        std::vector<uint8_t> stored(rows * rowBytes);
        std::vector<float> values(w.size());  // the weights as the blocks hold them
        for (int r = 0; r < rows; ++r) {
            quantizeRow(t, w.data() + static_cast<size_t>(r) * cols, stored.data() + r * rowBytes,
                        cols);
            if (t == TensorType::Q8_0 && r == 0) stored[2] = 0x80;  // quant -128 (after d)
            dequantizeRow(t, stored.data() + r * rowBytes,
                          values.data() + static_cast<size_t>(r) * cols, cols);
        }
        if (t == TensorType::Q8_0)
            QCOMPARE(values[0], -128.0f * f16ToF32(uint16_t(stored[0] | stored[1] << 8)));
        const bool wide = ocl::hasWideScales(t);
        const std::vector<uint8_t> device =
            wide ? ocl::widenScales(t, stored.data(), stored.size()) : stored;
        const size_t deviceRowBytes = ocl::deviceRowBytes(t, cols, wide).value();
        QCOMPARE(device.size(), rows * deviceRowBytes);

        // x: n rows after inOff floats; row 0's block 2 all zero, block 5 one large value
        std::vector<float> x(inOff + static_cast<size_t>(n) * cols, 99.0f);
        for (size_t i = inOff; i < x.size(); ++i) x[i] = normal(rng);
        std::fill_n(x.begin() + inOff + 64, 32, 0.0f);
        std::fill_n(x.begin() + inOff + 160, 32, 1e-3f);
        x[inOff + 170] = 50.0f;
        // block 3: its largest is 127, so the scale is 1 (-1 for the K-quants) and the halves
        // are ties: 2.5 is 3 half away from zero, 2 half to even
        const float halves[] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -3.5f, 126.5f};
        std::copy(std::begin(halves), std::end(halves), x.begin() + inOff + 96);
        if (n == 3) {
            // row 1: a block of subnormals (their scale rounds to 0, or 1/max overflows) and
            // one whose largest magnitude comes twice, negative first (the K-quants' scale takes
            // the first one's sign); row 2: a NaN, which makes the whole row NaN, as on the CPU
            float* row1 = x.data() + inOff + cols;
            for (int j = 0; j < 32; ++j) row1[256 + j] = (j % 2 ? -1e-40f : 3e-41f);
            row1[300] = -7.0f;
            row1[301] = 7.0f;
            x[inOff + 2 * static_cast<size_t>(cols) + 40] = std::numeric_limits<float>::quiet_NaN();
        }
        std::vector<float> bias(rows), y(static_cast<size_t>(n) * ldy);
        for (float& b : bias) b = normal(rng);
        for (float& v : y) v = normal(rng);

        const ocl::Context& ctx = dev.context();
        ocl::Buffer dw(ctx, device.size(), CL_MEM_READ_ONLY, device.data());
        ocl::Buffer dx(ctx, x.size() * 4, CL_MEM_READ_ONLY, x.data());
        ocl::Buffer db(ctx, bias.size() * 4, CL_MEM_READ_ONLY, bias.data());
        ocl::Buffer dy(ctx, y.size() * 4, CL_MEM_READ_WRITE, y.data());
        std::vector<ocl::Event> events;
        ocl::MatMul::Input input;
        mm.runQuant(dy, yCol, ldy, dx, inOff, dw, t, wide, deviceRowBytes, &db, 0, n, cols, rows,
                    true, input, events);
        std::vector<float> got(y.size());
        dev.queue().read(dy, 0, got.data(), got.size() * 4);
        // the block types rounded x (once for the product)
        QCOMPARE(input.rounded32 || input.rounded256, t != TensorType::F16);

        for (int i = 0; i < n; ++i) {
            const float* xi = x.data() + inOff + static_cast<size_t>(i) * cols;
            std::vector<double> xr(xi, xi + cols);  // F16: x as it is
            if (t != TensorType::F16) {
                const qdot::detail::QuantizedX q =
                    qdot::detail::quantizeXForTesting(xi, cols, qdot::Isa::Scalar, kQuant);
                for (int j = 0; j < cols; ++j)
                    xr[static_cast<size_t>(j)] =
                        double(q.d[static_cast<size_t>(j / 32)]) * q.q[static_cast<size_t>(j)];
            }
            for (int c = 0; c < ldy; ++c) {
                const size_t at = static_cast<size_t>(i) * ldy + c;
                const int r = c - yCol;
                if (r < 0 || r >= rows) {  // outside the part: untouched
                    QCOMPARE(got[at], y[at]);
                    continue;
                }
                double want = 0, size = 0;
                for (int j = 0; j < cols; ++j) {
                    const double p = double(values[static_cast<size_t>(r) * cols + j]) *
                                     xr[static_cast<size_t>(j)];
                    want += p;
                    size += std::abs(p);
                }
                want += double(bias[static_cast<size_t>(r)]) + double(y[at]);
                if (std::isnan(want)) {
                    QVERIFY2(
                        std::isnan(got[at]),
                        qPrintable(
                            QString("x row %1, weight row %2: %3").arg(i).arg(r).arg(got[at])));
                    continue;
                }
                const double err = std::abs(double(got[at]) - want);
                QVERIFY2(
                    err <= 2e-6 * (size + std::abs(want)) + 1e-30,
                    qPrintable(QString("x row %1, weight row %2: %3, want %4 (sum of |terms| %5)")
                                   .arg(i)
                                   .arg(r)
                                   .arg(got[at])
                                   .arg(want)
                                   .arg(size)));
            }
        }
    }

    // fork() and withCache() share the device's weights (one upload, one copy on the device)
    // and keep them alive: the original may go first, and the fork decodes on as the CPU does.
    void forksShareTheWeightsAndOutliveTheOriginal() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        auto original = std::make_unique<DecodeSession>(
            std::make_shared<OpenClBackend>(m, options()), m->tokenizer, SessionOptions{});
        DecodeSession cpu(std::make_shared<CpuBackend>(m), m->tokenizer, SessionOptions{});
        original->prefill("the cat sat");
        cpu.prefill("the cat sat");
        std::unique_ptr<DecodeSession> fork = original->fork();
        const auto& a = dynamic_cast<const OpenClBackend&>(original->backend());
        const auto& f = dynamic_cast<const OpenClBackend&>(fork->backend());
        QVERIFY(f.sharesWeightsWith(a));
        QCOMPARE(f.startup().uploadMs, 0.0);  // nothing went up again
        QCOMPARE(f.uploadedWeightBytes(), a.uploadedWeightBytes());
        const std::shared_ptr<Backend> f16 = a.withCache(KvCacheOptions(KvType::F16, 16));
        QVERIFY(dynamic_cast<const OpenClBackend&>(*f16).sharesWeightsWith(a));
        QCOMPARE(f16->cacheOptions().type, KvType::F16);
        const OpenClBackend separate(m, options());  // a backend of its own does not
        QVERIFY(!separate.sharesWeightsWith(a));
        original.reset();
        for (int i = 0; i < 4; ++i) {
            VERIFY_CLOSE("the fork after its original went", fork->logits(), cpu.logits());
            cpu.stepWith(fork->step().token);
        }
    }

    void rewindMatchesCpu_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<bool>("cache");
        QTest::newRow("gpt2 cached") << "gpt2" << true;
        QTest::newRow("gpt2 recompute") << "gpt2" << false;
        QTest::newRow("llama_gqa cached") << "llama_gqa" << true;
        QTest::newRow("llama_gqa recompute") << "llama_gqa" << false;
    }
    void rewindMatchesCpu() {
        QFETCH(QString, model);
        QFETCH(bool, cache);
        auto m = fixtures::makeModel(specFor(model));
        DecodeSession cl = session(std::make_shared<OpenClBackend>(m, options()), m, cache),
                      cpu = session(std::make_shared<CpuBackend>(m), m, cache);
        cl.prefill(kPrompt);
        cpu.prefill(kPrompt);
        for (int i = 0; i < 9; ++i) QCOMPARE(cl.step().token, cpu.step().token);
        cl.rewind(4);
        cpu.rewind(4);
        QCOMPARE(cl.tokens(), cpu.tokens());
        VERIFY_CLOSE("logits after rewind", cl.logits(), cpu.logits());
        QCOMPARE(cl.kvBytes(), cpu.kvBytes());
        for (int i = 0; i < 6; ++i) {
            const StepTrace a = cl.step(), b = cpu.step();
            QCOMPARE(a.token, b.token);
            VERIFY_CLOSE("logits", cl.logits(), cpu.logits());
            VERIFY_CLOSE("attention", a.attn, b.attn);
        }
    }

    // The device cache holds exactly the traced keys and values; grouped-query heads share.
    void deviceCacheHoldsTheTracedKeysAndValues() {
        auto m = fixtures::makeModel(fixtures::llamaGqaSpec());
        const ModelConfig& c = m->config;
        auto gpu = std::make_shared<OpenClBackend>(m, options());
        DecodeSession s = session(gpu, m, true);
        std::vector<StepTrace> traces = s.prefill(kPrompt);
        for (int i = 0; i < 5; ++i) traces.push_back(s.step());
        verifyCacheHoldsTheTraces(*gpu, c, traces);
    }

    // The full attention matrix of a head on request (one GEMM on the device) equals the CPU's
    // and the rows the steps traced, for every head of the grouped-query model.
    void attentionMatrixOnRequestMatchesCpuAndTheTracedRows_data() { fixtures::addModelRows(); }
    void attentionMatrixOnRequestMatchesCpuAndTheTracedRows() {
        QFETCH(QString, model);
        auto m = fixtures::makeModel(specFor(model));
        const ModelConfig& c = m->config;
        auto gpu = std::make_shared<OpenClBackend>(m, options());
        auto cpu = std::make_shared<CpuBackend>(m);
        DecodeSession sg = session(gpu, m, true), sc = session(cpu, m, true);
        std::vector<StepTrace> traces = sg.prefill(kPrompt);
        sc.prefill(kPrompt);
        for (int i = 0; i < 6; ++i) {
            traces.push_back(sg.step());
            sc.step();
        }
        const size_t t = traces.size(), hd = static_cast<size_t>(c.headDim);
        for (int l = 0; l < c.nLayer; ++l)
            for (int h = 0; h < c.nHead; ++h) {
                std::vector<float> q;
                for (const StepTrace& s : traces)
                    q.insert(q.end(), s.query(l, h), s.query(l, h) + hd);
                std::vector<float> onGpu, onCpu, rows(t * t, 0.0f);
                gpu->attentionMatrix(l, h, q, onGpu);
                cpu->attentionMatrix(l, h, q, onCpu);
                for (size_t i = 0; i < t; ++i)
                    std::copy(traces[i].attention(l, h), traces[i].attention(l, h) + i + 1,
                              rows.begin() + i * t);
                VERIFY_CLOSE("device matrix vs CPU matrix", onGpu, onCpu);
                VERIFY_CLOSE("device matrix vs traced rows", onGpu, rows);
            }
    }

    // Each step carries the device's own time (profiling events) and the device's memory is known;
    // the CPU backend reports neither.
    void stepsCarryDeviceTime() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        auto gpu = std::make_shared<OpenClBackend>(m, options());
        DecodeSession s = session(gpu, m, true);
        const std::vector<StepTrace> prompt = s.prefill(kPrompt);
        QVERIFY(prompt.front().deviceMs > 0);
        for (int i = 0; i < 3; ++i) {
            const StepTrace t = s.step();
            QVERIFY(t.deviceMs > 0);
            QCOMPARE(t.deviceMs, gpu->lastStepDeviceMs().total());
        }
        QVERIFY(gpu->deviceMemoryBytes().value_or(0) > 0);
        DecodeSession c = session(std::make_shared<CpuBackend>(m), m, true);
        c.prefill(kPrompt);
        QCOMPARE(c.step().deviceMs, -1.0);
    }

    void missingDeviceIndexIsAnError() {
        const int count = static_cast<int>(ocl::listDevices().devices.size());
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        for (int index : {count, count + 7, -1}) {
            OpenClOptions o = options();
            o.device = index;
            try {
                OpenClBackend b(m, o);
                QFAIL("a backend opened a device that does not exist");
            } catch (const Error& e) {
                const QString msg = e.what();
                QVERIFY2(msg.contains(QString("no OpenCL device %1:").arg(index)), e.what());
                QVERIFY2(msg.contains(QString("this machine has %1").arg(count)), e.what());
            }
        }
    }

    // A cache larger than the device's memory: a clear error with both numbers; one that just
    // fits: no error.
    void cacheLargerThanDeviceMemoryIsAnError() {
        RandomModelSpec spec = fixtures::llamaGqaSpec();
        spec.nCtx = 4096;
        auto m = fixtures::makeModel(spec);
        const ModelConfig& c = m->config;
        const uint64_t cache = 2ull * c.nLayer * c.nHeadKv * c.headDim * 4 * c.nCtx;
        const uint64_t rope = static_cast<uint64_t>(c.nCtx) * c.headDim * 4;
        const uint64_t needed = m->weightBytes() + cache + rope;
        OpenClOptions o = options();
        o.deviceMemoryLimit = needed - 1;
        try {
            OpenClBackend b(m, o);
            QFAIL("a cache larger than the device's memory was allocated");
        } catch (const Error& e) {
            const QString msg = e.what();
            QVERIFY2(msg.contains(QString::number(cache) + " bytes"), e.what());
            QVERIFY2(msg.contains("need " + QString::number(needed) + " bytes"), e.what());
            QVERIFY2(msg.contains("has " + QString::number(needed - 1) + " bytes"), e.what());
            QVERIFY2(msg.contains("4096 tokens"), e.what());
        }
        o.deviceMemoryLimit = needed;  // exactly enough
        OpenClBackend fits(m, o);
        // what fits is checked for the whole context; what is allocated is one block of 256
        // tokens (the warm-up pass ran a token)
        QCOMPARE(fits.cacheAllocatedBytes(), static_cast<size_t>(cache / c.nCtx * 256));
        // a backend sharing the weights (fork, withCache) needs its cache beside the first's
        try {
            fits.withCache(fits.cacheOptions());
            QFAIL("a second cache past the device's memory was allowed");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("beside the caches of the backends sharing the "
                                                "weights (" +
                                                QString::number(cache) + " bytes)"),
                     e.what());
        }
        o.deviceMemoryLimit = needed + cache;  // room for two caches
        OpenClBackend roomy(m, o);
        roomy.withCache(roomy.cacheOptions()).reset();  // fits, and gives its room back
        QVERIFY(roomy.withCache(roomy.cacheOptions()) != nullptr);
    }

    // The matrix-product paths are measured once per device, kept in the cache folder and
    // read back; a recorded choice is what the backend runs.
    void matmulChoiceIsMeasuredOnceAndRemembered() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        OpenClOptions o = options();
        o.cacheDir = dir.path().toStdString();
        ocl::MatMulChoice first;
        {
            OpenClBackend b(m, o);
            QVERIFY(b.startup().matmulMeasured);
            QVERIFY(QString::fromStdString(b.startup().matmulTrials).contains("gemm clblast"));
            first = b.matmulChoice();
        }
        QFile f(dir.filePath("matmul.txt"));
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QString text = QString::fromUtf8(f.readAll());
        const std::string key = ocl::listDevices().devices[static_cast<size_t>(device_)].key();
        QVERIFY2(text.contains(QString::fromStdString(key + "\t" + first.text() + "\t")),
                 qPrintable(text));
        {
            OpenClBackend b(m, o);
            QVERIFY(!b.startup().matmulMeasured);
            QCOMPARE(b.matmulChoice().text(), first.text());
            QVERIFY(QString::fromStdString(b.deviceName())
                        .contains(QString::fromStdString(first.text())));
        }
        const auto other = ocl::MatMulChoice::parse(first.gemv == ocl::GemvPath::ClBlast
                                                        ? "gemv kvscope-rows/16, gemm clblast"
                                                        : "gemv clblast, gemm kvscope-rows/16");
        QVERIFY(ocl::storeMatMulChoice(dir.path().toStdString(), key, *other, "set by the test"));
        OpenClBackend b(m, o);
        QVERIFY(!b.startup().matmulMeasured);
        QCOMPARE(b.matmulChoice().text(), other->text());
    }

    // Without the warm-up the backend computes the same numbers (it only changes when the
    // kernels are compiled).
    void withoutWarmUpTheNumbersAreTheSame() {
        auto m = fixtures::makeModel(fixtures::gpt2Spec());
        OpenClOptions o = options();
        o.warmUp = false;
        auto cold = std::make_shared<OpenClBackend>(m, o);
        QCOMPARE(cold->startup().clblastMs, 0.0);
        QCOMPARE(cold->startup().warmMs, 0.0);
        DecodeSession a = session(cold, m, true),
                      b = session(std::make_shared<CpuBackend>(m), m, true);
        a.prefill(kPrompt);
        b.prefill(kPrompt);
        VERIFY_CLOSE("prefill logits", a.logits(), b.logits());
        QCOMPARE(a.step().token, b.step().token);
        VERIFY_CLOSE("step logits", a.logits(), b.logits());
    }
};

QTEST_GUILESS_MAIN(TstOpenClBackend)
#include "tst_opencl_backend.moc"
