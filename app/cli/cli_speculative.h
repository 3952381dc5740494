// kvscope decode --speculative lookup|model:PATH --draft N: the decode loop by speculative rounds
// (runtime/speculative.h), the per-token steps of decode's JSON and the "speculative" object.
#pragma once

#include <QJsonObject>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli_args.h"
#include "core/step_trace.h"
#include "model/model.h"
#include "runtime/decode_session.h"

namespace kvscope::app {

// What --speculative and --draft ask for.
struct SpeculativeRequest {
    std::string method;     // "lookup" or "model"
    std::string modelPath;  // the draft model of "model:PATH"
    int draft = 4;          // the most tokens drafted per round
};

// The request, or nullopt when neither option is given. UsageError for a bad value, --draft
// without --speculative, or --speculative with --no-cache (the rounds roll the cache back).
std::optional<SpeculativeRequest> parseSpeculative(const CliArgs& args);

struct SpeculativeRun {
    std::vector<StepTrace> generated;  // one per emitted token, in order
    // Per generated token: the round that emitted it, and whether it was an accepted draft.
    std::vector<int> round;
    std::vector<bool> fromDraft;
    double ms = 0;  // every round and the last token's own pass
    // {"method", "draft", ["draft_model"], "rounds": [{"drafted", "accepted", "draft",
    //  "emitted", "draft_ms", "verify_ms", "ms"}], "summary": {...}}
    QJsonObject json;
    std::string summaryLine;  // rounds, acceptance, tokens per pass, tokens/s, in words
};

// Generates `steps` tokens on the prefilled `session` by speculative rounds; at the end the
// session holds them all, as after `steps` plain steps. Streams the text to stdout if asked.
// Each generated trace's hostMs is its round's time shared among the tokens the round emitted
// (the last token also carries its own pass). Throws Error as plain decoding does.
SpeculativeRun decodeSpeculative(const CliArgs& args, const SpeculativeRequest& request,
                                 DecodeSession& session, const Model& target, int steps,
                                 bool streamText);

}  // namespace kvscope::app
