// kvscope decode: prompt in, tokens out, with the JSON of ARCHITECTURE.md's contract.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <cstdio>

#include "cli/cli.h"
#include "cli/cli_fork.h"
#include "cli/cli_speculative.h"
#include "runtime/decode_session.h"

namespace kvscope::app {

int runDecode(const CliArgs& args) {
    const std::string prompt = args.require("prompt");
    const int steps = static_cast<int>(args.getInt("steps", 16, 0, 1 << 20));
    SessionOptions opt;
    opt.useCache = !args.has("no-cache");
    opt.parseSpecial = !args.has("no-special");
    opt.captureTrace = false;
    opt.topLogits = static_cast<int>(args.getInt("top-logits", 5, 0, 1000));
    opt.sampler.temperature = static_cast<float>(args.getDouble("temperature", 0, 0, 100));
    opt.sampler.topK = static_cast<int>(args.getInt("top-k", 0, 0, 1 << 24));
    opt.sampler.topP = static_cast<float>(args.getDouble("top-p", 1, 1e-6, 1));
    opt.sampler.seed = static_cast<uint64_t>(args.getInt("seed", 0, 0, INT64_MAX));
    opt.drift = true;  // under a lossy cache policy: each step against the full cache
    const std::optional<std::string> jsonPath = args.get("json");
    if (jsonPath && jsonPath->empty()) throw UsageError("--json needs a file name or -");
    const bool streamText = !jsonPath || *jsonPath != "-";
    const std::optional<SpeculativeRequest> speculative = parseSpeculative(args);
    const int forkSteps = static_cast<int>(args.getInt("fork", 0, 0, 1 << 20));
    if (args.has("fork") && (speculative || !opt.useCache))
        throw UsageError(
            "--fork continues the cached session twice: not with --speculative or "
            "--no-cache");

    auto model = loadModel(args);
    std::string note;
    auto backend = makeBackend(args, model, note);
    std::fprintf(stderr, "%s\n", note.c_str());
    DecodeSession session(backend, model->tokenizer, opt);

    std::vector<StepTrace> promptTraces = session.prefill(prompt);
    if (streamText) {
        std::fputs(prompt.c_str(), stdout);
        std::fflush(stdout);
    }
    std::vector<StepTrace> generated;
    double stepMs = 0;
    std::optional<SpeculativeRun> spec;
    if (speculative) {
        spec = decodeSpeculative(args, *speculative, session, *model, steps, streamText);
        generated = spec->generated;
        stepMs = spec->ms;
    }
    for (int i = 0; i < steps && !spec; ++i) {
        generated.push_back(session.step());
        const StepTrace& s = generated.back();
        stepMs += s.hostMs;
        if (streamText) {
            std::fwrite(s.text.data(), 1, s.text.size(), stdout);
            std::fflush(stdout);
        }
    }
    if (streamText) std::fputc('\n', stdout);
    if (session.measuresDrift()) {
        double kl = 0;
        int agree = 0, measured = 0;
        for (const StepTrace& s : generated)
            if (s.hasDrift()) kl += s.driftKl, agree += s.driftTop1, ++measured;
        std::fprintf(stderr,
                     "cache policy %s, KV %s: %zu bytes held against the full cache's %zu; over "
                     "%d steps top-1 agreement %d/%d, mean KL %.5f nats\n",
                     backend->cacheOptions().eviction.text().c_str(),
                     kvTypeName(backend->cacheOptions().type).c_str(), session.kvBytes(),
                     generated.empty() ? size_t{0} : generated.back().fullKvBytes, measured, agree,
                     measured, measured ? kl / measured : 0.0);
    }
    std::fprintf(stderr,
                 "%zu prompt tokens in %.1f ms; %d tokens in %.1f ms (%.2f tokens/s), %s; "
                 "KV cache holds %zu bytes\n",
                 promptTraces.size(), session.prefillMs(), steps, stepMs,
                 stepMs > 0 ? steps * 1000.0 / stepMs : 0.0,
                 opt.useCache ? "cached" : "no cache (recompute)", session.kvBytes());
    if (spec) std::fprintf(stderr, "%s\n", spec->summaryLine.c_str());
    std::optional<ForkRun> fork;
    if (args.has("fork")) {
        fork = decodeFork(session, model->tokenizer, forkSteps);
        std::fputs(fork->text.c_str(), streamText ? stdout : stderr);
    }

    if (jsonPath) {
        QJsonArray promptIds;
        for (const StepTrace& s : promptTraces) promptIds.append(s.token);
        QJsonArray stepArray;
        for (const StepTrace& s : generated) {
            QJsonArray top;
            for (const auto& [id, logit] : s.top)
                top.append(QJsonArray{id, static_cast<double>(logit)});
            QJsonObject step{{"token", s.token},
                             {"text", QString::fromUtf8(s.text)},
                             {"latency_ms", s.hostMs},
                             {"kv_bytes", static_cast<double>(s.kvBytes)},
                             {"top", top}};
            if (s.special) step["special"] = true;
            if (s.hasDrift())
                step["drift"] =
                    QJsonObject{{"kl", static_cast<double>(s.driftKl)},
                                {"top1_agrees", s.driftTop1 == 1},
                                {"full_choice_prob", static_cast<double>(s.driftFullChoiceProb)},
                                {"full_kv_bytes", static_cast<double>(s.fullKvBytes)}};
            if (!s.evicted.empty()) {
                QJsonArray evicted;
                for (const auto& [layer, pos] : s.evicted) evicted.append(QJsonArray{layer, pos});
                step["evicted"] = evicted;
            }
            if (spec) {  // the round that emitted it, and whether it was an accepted draft
                const size_t i = static_cast<size_t>(stepArray.size());
                step["round"] = spec->round[i];
                step["drafted"] = static_cast<bool>(spec->fromDraft[i]);
            }
            stepArray.append(step);
        }
        // the continuation's bytes, token after token (a whole-text decode would drop a
        // SentencePiece model's leading space, as llama.cpp does for a prompt)
        std::string text;
        for (const StepTrace& s : generated) text += s.text;
        QJsonObject o{
            {"model", modelJson(*model)},
            {"backend", QJsonObject{{"name", QString::fromStdString(backend->name())},
                                    {"device", QString::fromStdString(backend->deviceName())}}},
            {"cache", opt.useCache},
            {"prompt_tokens", promptIds},
            {"prefill_ms", session.prefillMs()},
            {"steps", stepArray},
            {"text", QString::fromUtf8(text)}};
        const KvCacheOptions cache = backend->cacheOptions();
        if (cache.type != KvType::F32 || cache.eviction.evicts()) {  // the cache lab's fields
            o["kv_type"] = QString::fromStdString(kvTypeName(cache.type));
            o["cache_policy"] = QString::fromStdString(cache.eviction.text());
        }
        if (spec) o["speculative"] = spec->json;
        if (fork) o["fork"] = fork->json;
        writeOutput(*jsonPath, QJsonDocument(o).toJson(QJsonDocument::Indented));
    }
    return 0;
}

}  // namespace kvscope::app
