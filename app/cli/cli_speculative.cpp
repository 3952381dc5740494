// kvscope decode --speculative: rounds of draft, one verification pass and rollback, reported
// per token (decode's steps) and per round (the "speculative" object).
#include "cli/cli_speculative.h"

#include <QJsonArray>
#include <chrono>
#include <cstdio>
#include <map>

#include "cli/cli.h"
#include "core/error.h"
#include "model_source/model_source.h"
#include "runtime/speculative.h"

namespace kvscope::app {
namespace {

double msSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

QJsonArray idArray(const std::vector<int32_t>& ids) {
    QJsonArray a;
    for (int32_t id : ids) a.append(id);
    return a;
}

}  // namespace

std::optional<SpeculativeRequest> parseSpeculative(const CliArgs& args) {
    const std::optional<std::string> kind = args.get("speculative");
    if (!kind) {
        if (args.has("draft"))
            throw UsageError(
                "--draft N sets the tokens drafted per round of --speculative "
                "lookup|model:PATH; give --speculative too");
        return std::nullopt;
    }
    SpeculativeRequest r;
    if (*kind == "lookup") {
        r.method = "lookup";
    } else if (kind->rfind("model:", 0) == 0) {
        r.method = "model";
        r.modelPath = kind->substr(6);
        if (r.modelPath.empty())
            throw UsageError(
                "--speculative model:PATH needs the draft model's path after "
                "'model:'");
    } else {
        throw UsageError("--speculative must be lookup or model:PATH, got '" + *kind + "'");
    }
    if (args.has("no-cache"))
        throw UsageError(
            "--speculative keeps the accepted drafts in the KV cache and rolls the "
            "rest back: it cannot run with --no-cache");
    r.draft = static_cast<int>(args.getInt("draft", 4, 1, 64));
    return r;
}

SpeculativeRun decodeSpeculative(const CliArgs& args, const SpeculativeRequest& request,
                                 DecodeSession& session, const Model& target, int steps,
                                 bool streamText) {
    // 1. the drafter
    std::unique_ptr<Drafter> drafter;
    std::shared_ptr<const Model> draftModel;  // alive as long as its backend
    if (request.method == "lookup") {
        drafter = std::make_unique<LookupDrafter>();
    } else {
        const int context = static_cast<int>(args.getInt("context", 0, 1, 1 << 24));
        draftModel = loadModelFile(QString::fromStdString(request.modelPath), context);
        std::string note;
        auto backend = makeBackend(args, draftModel, note);
        std::fprintf(stderr, "draft model %s: %s\n", request.modelPath.c_str(), note.c_str());
        drafter = std::make_unique<ModelDrafter>(std::move(backend), draftModel->tokenizer,
                                                 target.tokenizer, target.config.nVocab,
                                                 "model:" + request.modelPath);
    }
    SpeculativeDecoder dec(session, std::move(drafter), request.draft);

    // 2. the rounds, until `steps` tokens are emitted; then the last one's own pass
    SpeculativeRun run;
    const size_t prompt = session.tokens().size();
    std::map<int, StepTrace> byPosition;  // each token's trace, from the pass that cached it
    QJsonArray rounds;
    double draftMs = 0, verifyMs = 0;
    const auto t0 = std::chrono::steady_clock::now();
    int emitted = 0;
    while (emitted < steps) {
        SpeculativeStep r = dec.step(steps - emitted);
        const int round = static_cast<int>(rounds.size());
        for (size_t i = 0; i < r.emitted.size(); ++i) {
            run.round.push_back(round);
            // the first round's first token is the target's own; then the accepted drafts
            const size_t firstDraft = r.emitted.size() - 1 - static_cast<size_t>(r.accepted);
            run.fromDraft.push_back(i >= firstDraft && i + 1 < r.emitted.size());
            if (streamText) {
                const std::string& text = target.tokenizer.tokenBytes(r.emitted[i]);
                std::fwrite(text.data(), 1, text.size(), stdout);
            }
        }
        if (streamText) std::fflush(stdout);
        // hostMs: the round's time shared among the tokens it emitted
        for (size_t i = 0; i < r.emitted.size(); ++i)
            run.generated.emplace_back().hostMs = r.hostMs / static_cast<double>(r.emitted.size());
        for (StepTrace& s : r.traces) byPosition[s.position] = std::move(s);
        draftMs += r.draftMs;
        verifyMs += r.verifyMs;
        rounds.append(QJsonObject{{"drafted", r.drafted()},
                                  {"accepted", r.accepted},
                                  {"draft", idArray(r.draft)},
                                  {"emitted", idArray(r.emitted)},
                                  {"draft_ms", r.draftMs},
                                  {"verify_ms", r.verifyMs},
                                  {"ms", r.hostMs}});
        emitted += static_cast<int>(r.emitted.size());
    }
    int passes = dec.rounds();  // of the target: one per round that verified, and the last
    const auto tLast = std::chrono::steady_clock::now();
    if (std::optional<StepTrace> last = dec.flush()) {
        ++passes;
        const double lastMs = msSince(tLast);
        byPosition[last->position] = std::move(*last);
        if (!run.generated.empty()) run.generated.back().hostMs += lastMs;
    }
    run.ms = msSince(t0);

    // 3. the traces in order, each with its share of its round's time
    for (size_t i = 0; i < run.generated.size(); ++i) {
        const int position = static_cast<int>(prompt + i);
        const auto it = byPosition.find(position);
        KVSCOPE_CHECK(it != byPosition.end(), "speculative decoding left no trace for position " +
                                                  std::to_string(position));
        const double ms = run.generated[i].hostMs;
        run.generated[i] = std::move(it->second);
        run.generated[i].hostMs = ms;
    }

    // 4. the summary
    const long long drafted = dec.draftedTotal(), accepted = dec.acceptedTotal();
    const double rate =
        drafted > 0 ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0.0;
    const double perSecond = run.ms > 0 ? steps * 1000.0 / run.ms : 0.0;
    const auto nRounds = static_cast<int>(rounds.size());
    QJsonObject summary{{"rounds", nRounds},
                        {"target_passes", passes},
                        {"drafted", drafted},
                        {"accepted", accepted},
                        {"acceptance_rate", rate},
                        {"tokens", steps},
                        {"tokens_per_pass", passes > 0 ? double(steps) / passes : 0.0},
                        {"ms", run.ms},
                        {"draft_ms", draftMs},
                        {"verify_ms", verifyMs},
                        {"tokens_per_s", perSecond}};
    run.json = QJsonObject{{"method", QString::fromStdString(request.method)},
                           {"draft", request.draft},
                           {"rounds", rounds},
                           {"summary", summary}};
    if (request.method == "model")
        run.json["draft_model"] = QString::fromStdString(request.modelPath);
    char line[1024];
    std::snprintf(line, sizeof line,
                  "speculative (%s, up to %d drafted per round): %d rounds, %lld of %lld drafted "
                  "tokens accepted (%.1f%%), %d tokens in %d passes of the target (%.2f per "
                  "pass), %.2f tokens/s",
                  dec.drafter().name().c_str(), request.draft, nRounds, accepted, drafted,
                  100.0 * rate, steps, passes, passes > 0 ? double(steps) / passes : 0.0,
                  perSecond);
    run.summaryLine = line;
    return run;
}

}  // namespace kvscope::app
