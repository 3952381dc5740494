// bench_view_paint: milliseconds per paint of every view on synthetic traces of a long context, a
// tool (not a test; CTest does not run it). Usage:
//   QT_QPA_PLATFORM=offscreen bench_view_paint [--out DIR] [--size 1280x720] [--only VIEW]
//                                              [TOKENS ...]
// (default tokens 256 1024 4096 8192). For each length it fills a TraceStore with synthetic
// traces of a 32-layer, 32-head model (head dim 128, 8 KV heads; attention rows that sum to 1:
// a sink on the first token, the previous token, a decaying local window and noise, different
// per head), then, one view at a time: builds it (the view reads the store), paints it offscreen
// (first paint: the caches are built), paints again (repaint: median of 5), appends one token
// (the store's and the view's handlers) and paints again. All heads' rows would not fit
// (1,024 heads × tokens² / 2 floats: 137 GB at 8,192 tokens); the store keeps them within its
// attention budget as the window does, and the rows of the viewed head are rebuilt.
// With --out, each view's first paint is saved as PNG there.
#include <QApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QImage>
#include <QRegularExpression>
#include <QWidget>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "charts/latency_chart.h"
#include "charts/memory_chart.h"
#include "common/theme.h"
#include "common/trace_store.h"
#include "views/all_heads_view.h"
#include "views/attention_matrix_view.h"
#include "views/cache_view.h"
#include "views/next_token_view.h"
#include "views/step_view.h"

using namespace kvscope;
using namespace kvscope::viz;

namespace {

struct Shape {
    int nLayer, nHead, nHeadKv, headDim;
};

// 32 × 32 heads at every length: the store keeps attention rows within its budget (512 MiB;
// older rows are let go, every head keeps a pooled thumbnail and the viewed head its rebuilt
// rows), as the window does. (Filling 8,192 tokens of synthetic rows takes some minutes.)
Shape shapeFor(int) {
    return {32, 32, 8, 128};
}

uint64_t next(uint64_t& state) {  // xorshift64
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}
float uniform(uint64_t& state) {
    return static_cast<float>(next(state) >> 40) / static_cast<float>(1 << 24);
}

const char* kWords[] = {" the",  " cat", " sat",   " on", " a",  " mat",     ",",      " and",
                        " then", " it",  " slept", ".",   " In", " morning", " light", " was"};

// Token i's trace: random q, k, v; for each layer and head a softmax row over keys 0..i.
StepTrace syntheticTrace(int i, int promptLength, const Shape& s, size_t kvPerToken) {
    StepTrace t = StepTrace::sized(i % 16, i, s.nLayer, s.nHead, s.nHeadKv, s.headDim);
    t.text = kWords[i % 16];
    t.prompt = i < promptLength;
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ (uint64_t(i) * 0x2545F4914F6CDD1Dull + 1);
    for (float& x : t.q) x = uniform(rng) - 0.5f;
    for (float& x : t.k) x = uniform(rng) - 0.5f;
    for (float& x : t.v) x = uniform(rng) - 0.5f;
    // exp(score) built without exp per cell: noise from a table of 256 levels of exp(1.5 u),
    // the decay exp(-(i - c) / window) as a running product, the boosts as factors
    float noise[256];
    for (int u = 0; u < 256; ++u) noise[u] = std::exp(1.5f * static_cast<float>(u) / 256.0f);
    std::vector<float> weight(static_cast<size_t>(i) + 1);
    for (int l = 0; l < s.nLayer; ++l)
        for (int h = 0; h < s.nHead; ++h) {
            const int kind = (l * s.nHead + h) % 4;  // sink, previous token, local, spread
            const double window = 8.0 + 24.0 * ((l + h) % 3);
            const float step = kind == 2 ? static_cast<float>(std::exp(-1.0 / window)) : 1.0f;
            float decay = 1.0f;  // exp(-(i - c) / window), from c = i down
            float sum = 0;
            for (int c = i; c >= 0; --c) {
                float w = noise[next(rng) & 255] * decay;
                if (c == 0) w *= kind == 0 ? 403.4f : 7.39f;  // e^6, e^2
                if (c == i - 1 && kind == 1) w *= 403.4f;
                weight[size_t(c)] = w;
                sum += w;
                decay = std::max(decay * step, 1e-30f);
            }
            float* row = t.attn.data() + (size_t(l) * s.nHead + h) * (size_t(i) + 1);
            const float inv = 1.0f / sum;
            for (int c = 0; c <= i; ++c) row[c] = weight[size_t(c)] * inv;
        }
    for (int j = 0; j < 64; ++j) {
        t.top.emplace_back(int32_t(j * 7 % 32000), 12.0f - 0.15f * static_cast<float>(j));
        t.topText.emplace_back(kWords[j % 16]);
        t.topSpecial.push_back(0);
    }
    t.logZ = 14.0f;
    t.poolAttentionRows();  // as DecodeSession does on the decoding thread
    t.chosenLogit = t.top[0].second;
    t.chosenRank = 0;
    t.entropy = 2.5f;
    t.hostMs = t.prompt ? 40.0 : 18.0 + 4.0 * uniform(rng) + 0.002 * i;
    t.kvBytes = (size_t(i) + 1) * kvPerToken;
    t.kvAllocatedBytes = ((size_t(i) + 256) / 256) * 256 * kvPerToken;
    return t;
}

double msSince(const QElapsedTimer& timer) {
    return double(timer.nsecsElapsed()) / 1e6;
}

struct ViewKind {
    const char* name;
    std::function<QWidget*(TraceStore*)> make;
};

}  // namespace

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    std::vector<int> lengths;
    QString outDir, only;  // only: views whose name contains it
    QSize size(1280, 720);
    for (int a = 1; a < argc; ++a) {
        const std::string arg = argv[a];
        if (arg == "--only" && a + 1 < argc) {
            only = QString::fromLocal8Bit(argv[++a]);
        } else if (arg == "--out" && a + 1 < argc) {
            outDir = QString::fromLocal8Bit(argv[++a]);
        } else if (arg == "--size" && a + 1 < argc) {
            int w = 0, h = 0;
            if (std::sscanf(argv[++a], "%dx%d", &w, &h) != 2 || w < 200 || h < 150) {
                std::fprintf(stderr, "bench_view_paint: --size expects WIDTHxHEIGHT\n");
                return 2;
            }
            size = QSize(w, h);
        } else if (const int n = std::atoi(arg.c_str()); n >= 2) {
            lengths.push_back(n);
        } else {
            std::fprintf(
                stderr,
                "usage: bench_view_paint [--out DIR] [--size WxH] [--only VIEW] [TOKENS ...]\n");
            return 2;
        }
    }
    if (lengths.empty()) lengths = {256, 1024, 4096, 8192};
    if (!outDir.isEmpty()) QDir().mkpath(outDir);
    ThemeSettings::instance().setAnimationMs(0);  // the final state of an append, no transition

    const std::vector<ViewKind> kinds = {
        {"attention (fitted)",
         [](TraceStore* s) -> QWidget* { return new AttentionMatrixView(s); }},
        {"attention (zoomed 48 rows)",
         [](TraceStore* s) -> QWidget* {
             auto* v = new AttentionMatrixView(s);
             v->resize(1280, 720);
             v->zoomToCells(s->count() - 48, s->count() - 1, s->count() - 64, s->count() - 1);
             return v;
         }},
        {"all heads", [](TraceStore* s) -> QWidget* { return new AllHeadsView(s); }},
        {"step", [](TraceStore* s) -> QWidget* { return new StepView(s); }},
        {"cache", [](TraceStore* s) -> QWidget* { return new CacheView(s); }},
        {"next token", [](TraceStore* s) -> QWidget* { return new NextTokenView(s); }},
        {"memory chart", [](TraceStore* s) -> QWidget* { return new MemoryChart(s); }},
        {"latency chart", [](TraceStore* s) -> QWidget* { return new LatencyChart(s); }},
    };

    std::printf(
        "Paint times, offscreen, %dx%d, ms (repaint: median of 5; append: the view's "
        "handler for one more token, then its paint)\n\n",
        size.width(), size.height());
    std::printf(
        "| tokens | shape (layers x heads, traces) | view | build | first paint | repaint "
        "| append | paint after append |\n");
    std::printf("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (const int n : lengths) {
        const Shape s = shapeFor(n);
        const size_t kvPerToken = 2 * size_t(s.nLayer) * s.nHeadKv * s.headDim * 4;
        ModelSummary summary;
        ModelConfig& c = summary.config;
        c.archName = "llama";
        c.name = "synthetic";
        c.nLayer = s.nLayer;
        c.nHead = s.nHead;
        c.nHeadKv = s.nHeadKv;
        c.headDim = s.headDim;
        c.nEmbd = s.nHead * s.headDim;
        c.nFf = 4 * c.nEmbd;
        c.nCtx = c.nCtxTrain = n + 1;
        c.nVocab = 32000;
        summary.path = "synthetic";
        summary.kvBytesPerToken = kvPerToken;
        summary.cacheBlockTokens = 256;
        summary.backend = "cpu";
        summary.device = "synthetic traces";
        TraceStore store;
        store.setModel(summary);
        QElapsedTimer fill;
        fill.start();
        const int promptLength = std::min(16, n);
        // the rows of head (0, 0), as a backend would rebuild them once the budget let them go
        std::vector<float> head00(static_cast<size_t>(n) * n, 0.0f);
        auto keep = [&](const StepTrace& t) {
            const int i = t.position;
            std::copy_n(t.attention(0, 0), i + 1, head00.begin() + static_cast<ptrdiff_t>(i) * n);
        };
        std::vector<StepTrace> prompt;
        for (int i = 0; i < promptLength; ++i) {
            prompt.push_back(syntheticTrace(i, promptLength, s, kvPerToken));
            keep(prompt.back());
        }
        store.setPrompt(std::move(prompt), 40.0);
        for (int i = promptLength; i < n; ++i) {
            StepTrace t = syntheticTrace(i, promptLength, s, kvPerToken);
            keep(t);
            store.append(std::move(t));
        }
        if (!store.hasAllRows(0, 0)) store.setHeadMatrix(0, 0, n, head00);
        std::vector<float>().swap(head00);
        const StepTrace extra = syntheticTrace(n, promptLength, s, kvPerToken);
        store.setLayerHead(0, 0);
        std::fprintf(stderr, "%d tokens: traces filled in %.0f ms; attention rows held %.0f MiB", n,
                     msSince(fill), double(store.attentionBytes()) / (1 << 20));
        if (store.firstStoredRow() > 0)
            std::fprintf(stderr, " (the rows of tokens 0-%d let go)", store.firstStoredRow() - 1);
        std::fprintf(stderr, "\n");
        const QString shape = QString("%1 x %2%3")
                                  .arg(s.nLayer)
                                  .arg(s.nHead)
                                  .arg(s.nLayer == 32 && s.nHead == 32 ? "" : " (lowered)");

        for (const ViewKind& kind : kinds) {
            if (!QString(kind.name).contains(only)) continue;
            QElapsedTimer t;
            t.start();
            std::unique_ptr<QWidget> w(kind.make(&store));
            w->setAttribute(Qt::WA_DontShowOnScreen);
            w->resize(size);
            const double build = msSince(t);
            t.restart();
            const QImage first = w->grab().toImage();
            const double firstMs = msSince(t);
            std::vector<double> again;
            for (int k = 0; k < 5; ++k) {
                t.restart();
                w->grab();
                again.push_back(msSince(t));
            }
            std::sort(again.begin(), again.end());
            t.restart();
            store.append(extra);
            const double appendMs = msSince(t);
            t.restart();
            w->grab();
            const double afterMs = msSince(t);
            w.reset();  // before the store steps back
            store.truncate(n, store.trace(n - 1).kvBytes, store.trace(n - 1).kvAllocatedBytes);
            std::printf("| %d | %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n", n,
                        qPrintable(shape), kind.name, build, firstMs, again[2], appendMs, afterMs);
            std::fflush(stdout);
            if (!outDir.isEmpty()) {
                QString file = QString(kind.name).replace(QRegularExpression("[^a-z0-9]+"), "-");
                while (file.endsWith('-')) file.chop(1);
                first.save(QDir(outDir).filePath(QString("%1-%2.png").arg(file).arg(n)));
            }
        }
    }
    return 0;
}
