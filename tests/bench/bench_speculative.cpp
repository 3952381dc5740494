// Plain greedy decoding against speculative decoding (prompt lookup, and a draft model if one is
// given) on windows of a text, in one run: tokens/s, acceptance, tokens per pass of the target,
// and whether the tokens agree (greedy speculative decoding must give plain decoding's tokens).
// A tool, not a test (CTest does not run it):
//   build/tests/bench_speculative --model resources/models/kvscope-tiny.gguf --text HELDOUT.txt
//       [--prompt-tokens 128] [--steps 96] [--windows 8] [--draft 1,2,4,8] [--ngram 3]
//       [--draft-model PATH] [--backend cpu|opencl]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "gguf/gguf.h"
#include "runtime/backend_factory.h"
#include "runtime/decode_session.h"
#include "runtime/speculative.h"

using namespace kvscope;

namespace {

double msSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Totals {
    std::string name;
    int draft = 0;
    long tokens = 0, drafted = 0, accepted = 0, passes = 0, mismatches = 0;
    double ms = 0;
};

std::vector<int> parseList(const std::string& s) {
    std::vector<int> out;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoi(item));
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    std::string modelPath, textPath, draftModelPath, backendName = "cpu";
    int promptTokens = 128, steps = 96, windows = 8, ngram = 3;
    std::vector<int> drafts{1, 2, 4, 8};
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--model")
            modelPath = v;
        else if (k == "--text")
            textPath = v;
        else if (k == "--draft-model")
            draftModelPath = v;
        else if (k == "--backend")
            backendName = v;
        else if (k == "--prompt-tokens")
            promptTokens = std::stoi(v);
        else if (k == "--steps")
            steps = std::stoi(v);
        else if (k == "--windows")
            windows = std::stoi(v);
        else if (k == "--ngram")
            ngram = std::stoi(v);
        else if (k == "--draft")
            drafts = parseList(v);
        else {
            std::fprintf(stderr, "unknown option %s\n", k.c_str());
            return 2;
        }
    }
    if (modelPath.empty() || textPath.empty()) {
        std::fprintf(stderr,
                     "usage: bench_speculative --model PATH --text FILE [--prompt-tokens N] "
                     "[--steps N] [--windows N] [--draft 1,2,4,8] [--ngram N] "
                     "[--draft-model PATH] [--backend cpu|opencl]\n");
        return 2;
    }
    try {
        auto model = std::make_shared<const Model>(Model::load(modelPath));
        std::shared_ptr<const Model> draftModel;
        if (!draftModelPath.empty())
            draftModel = std::make_shared<const Model>(Model::load(draftModelPath));
        std::ifstream in(textPath, std::ios::binary);
        if (!in) throw Error("cannot read '" + textPath + "'");
        const std::string text((std::istreambuf_iterator<char>(in)), {});
        const std::vector<int32_t> ids = model->tokenizer.encode(text, false);
        const int nCtx = model->config.nCtx;
        if (promptTokens + steps > nCtx)
            throw Error("--prompt-tokens + --steps = " + std::to_string(promptTokens + steps) +
                        " exceeds the model's context of " + std::to_string(nCtx));
        if (ids.size() < static_cast<size_t>(promptTokens) * 2)
            throw Error("the text has only " + std::to_string(ids.size()) + " tokens");

        BackendChoice choice;
        choice.kind =
            backendName == "opencl" ? BackendChoice::Kind::OpenCl : BackendChoice::Kind::Cpu;
        std::string note;
        auto backend = createBackend(model, choice, note);
        std::shared_ptr<Backend> draftBackend;
        if (draftModel) draftBackend = createBackend(draftModel, choice, note);
        SessionOptions o;
        o.captureTrace = false;
        o.topLogits = 0;
        DecodeSession session(backend, model->tokenizer, o);

        std::vector<Totals> rows;
        rows.push_back({"plain", 0});
        for (int d : drafts) rows.push_back({"lookup", d});
        if (draftModel)
            for (int d : drafts) rows.push_back({"draft model", d});

        // windows spread evenly over the text; every method on the same window in turn
        const size_t stride = (ids.size() - static_cast<size_t>(promptTokens)) /
                              static_cast<size_t>(std::max(windows, 1));
        for (int w = 0; w < windows; ++w) {
            const auto from = ids.begin() + static_cast<std::ptrdiff_t>(stride * w);
            const std::vector<int32_t> prompt(from, from + promptTokens);
            std::vector<int32_t> want;
            for (Totals& row : rows) {
                session.prefillTokens(prompt);
                const auto t0 = std::chrono::steady_clock::now();
                if (row.name == "plain") {
                    for (int i = 0; i < steps; ++i) session.step();
                    row.passes += steps;
                } else {
                    std::unique_ptr<Drafter> drafter;
                    if (row.name == "lookup")
                        drafter = std::make_unique<LookupDrafter>(ngram, 1);
                    else
                        drafter = std::make_unique<ModelDrafter>(
                            draftBackend, draftModel->tokenizer, model->tokenizer,
                            model->config.nVocab, "model:" + draftModelPath);
                    SpeculativeDecoder dec(session, std::move(drafter), row.draft);
                    int emitted = 0;
                    while (emitted < steps)
                        emitted += static_cast<int>(dec.step(steps - emitted).emitted.size());
                    if (dec.flush()) ++row.passes;
                    row.passes += dec.rounds();
                    row.drafted += dec.draftedTotal();
                    row.accepted += dec.acceptedTotal();
                }
                row.ms += msSince(t0);
                row.tokens += steps;
                const std::vector<int32_t> got(session.tokens().begin() + promptTokens,
                                               session.tokens().end());
                if (row.name == "plain")
                    want = got;
                else if (got != want)
                    ++row.mismatches;
            }
        }

        std::printf(
            "%s, %s: %d windows of %d prompt tokens + %d greedy steps from %s "
            "(%zu tokens)\n",
            modelPath.c_str(), backend->deviceName().c_str(), windows, promptTokens, steps,
            textPath.c_str(), ids.size());
        // what one verification pass costs by its size: n tokens appended and rolled back
        std::printf("a pass of n tokens at position %d (mean of 50, appended then rolled back):",
                    promptTokens);
        session.prefillTokens(std::vector<int32_t>(ids.begin(), ids.begin() + promptTokens));
        int largest = 1;
        for (int d : drafts) largest = std::max(largest, d + 1);
        for (int n = 1; n <= largest; ++n) {
            const std::vector<int32_t> batch(ids.begin() + promptTokens,
                                             ids.begin() + promptTokens + n);
            const auto t0 = std::chrono::steady_clock::now();
            for (int r = 0; r < 50; ++r) {
                session.appendBatch(batch);
                session.keepAppended(0);
            }
            std::printf(" %d: %.3f ms%s", n, msSince(t0) / 50, n < largest ? "," : "\n");
        }
        std::printf("%-12s %5s %9s %10s %10s %10s %9s %8s %s\n", "method", "draft", "tokens",
                    "tokens/s", "vs plain", "accepted", "accept %", "tok/pass", "mismatches");
        const double plainRate = static_cast<double>(rows[0].tokens) * 1000.0 / rows[0].ms;
        for (const Totals& r : rows) {
            const double rate = static_cast<double>(r.tokens) * 1000.0 / r.ms;
            std::printf(
                "%-12s %5d %9ld %10.1f %9.2fx %5ld/%-5ld %8.1f%% %8.2f %ld\n", r.name.c_str(),
                r.draft, r.tokens, rate, rate / plainRate, r.accepted, r.drafted,
                r.drafted ? 100.0 * static_cast<double>(r.accepted) / static_cast<double>(r.drafted)
                          : 0.0,
                r.passes ? static_cast<double>(r.tokens) / static_cast<double>(r.passes) : 0.0,
                r.mismatches);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_speculative: %s\n", e.what());
        return 1;
    }
    return 0;
}
