// kvscope heads: what every attention head looks at on a prompt (previous token, first token,
// itself, the successor of an earlier copy of the current token), measured from real rows. With
// --random-repeat N the sequence is the standard induction test instead: BOS (if the model's
// prompts start with it), N random ordinary tokens, and the same N again; a head that attends
// from each second-half token to the token after its earlier copy is an induction head.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <algorithm>
#include <cstdio>
#include <optional>
#include <random>

#include "analysis/head_patterns.h"
#include "cli/cli.h"
#include "core/error.h"
#include "model_source/model_source.h"
#include "runtime/decode_session.h"

namespace kvscope::app {

namespace {

// BOS when the model's prompts start with it, then n ids drawn uniformly (seeded) from the
// tokens that are neither special nor unused, then the same n again.
std::vector<int32_t> repeatedRandomTokens(const Tokenizer& tok, int n, uint64_t seed) {
    std::vector<int32_t> ordinary;
    for (size_t id = 0; id < tok.vocabSize(); ++id) {
        const auto t = static_cast<int32_t>(id);
        const TokenType type = tok.tokenType(t);
        if (tok.isSpecial(t) || tok.isEog(t) || t == tok.bos() || t == tok.eos() ||
            type == TokenType::Unused || type == TokenType::Undefined)
            continue;  // a vocabulary without token types marks BOS and EOS Normal
        ordinary.push_back(t);
    }
    if (ordinary.empty()) throw Error("the vocabulary has no ordinary tokens to draw from");
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<size_t> pick(0, ordinary.size() - 1);
    std::vector<int32_t> ids;
    if (tok.addBos() && tok.bos()) ids.push_back(*tok.bos());
    const size_t start = ids.size();
    for (int i = 0; i < n; ++i) ids.push_back(ordinary[pick(rng)]);
    for (int i = 0; i < n; ++i) ids.push_back(ids[start + static_cast<size_t>(i)]);
    return ids;
}

}  // namespace

int runHeads(const CliArgs& args) {
    const bool random = args.has("random-repeat");
    if (random == args.has("prompt"))
        throw UsageError("give either --prompt TEXT or --random-repeat N");
    if (args.has("seed") && !random) throw UsageError("--seed goes with --random-repeat");
    auto model = loadModelFile(QString::fromStdString(resolveModelPath(args)));
    std::string note;
    auto backend = makeBackend(args, model, note);
    DecodeSession session(backend, model->tokenizer);
    std::vector<StepTrace> traces;
    std::optional<RepeatedSpan> span;
    QJsonObject test{{"kind", "prompt"}};  // what the sequence was, for --json
    if (random) {
        const int n = static_cast<int>(
            args.getInt("random-repeat", 50, 2, std::max(2, (model->config.nCtx - 1) / 2)));
        const auto seed = static_cast<uint64_t>(args.getInt("seed", 1337, 0, INT64_MAX));
        const std::vector<int32_t> ids = repeatedRandomTokens(model->tokenizer, n, seed);
        traces = session.prefillTokens(ids);
        span = RepeatedSpan{static_cast<int>(ids.size()) - n, n};
        test = {
            {"kind", "random_repeat"}, {"random_repeat", n}, {"seed", static_cast<qint64>(seed)}};
        if (!args.has("json"))
            std::printf(
                "the induction test: %d random tokens, then the same %d again (seed %llu)\n", n, n,
                static_cast<unsigned long long>(seed));
    } else {
        traces = session.prefill(args.require("prompt"));
    }
    const std::vector<HeadPattern> patterns = measureHeadPatterns(traces, span);
    if (args.has("json")) {
        QJsonArray heads;
        for (const HeadPattern& p : patterns)
            heads.append(QJsonObject{{"layer", p.layer},
                                     {"head", p.head},
                                     {"previous", p.previous},
                                     {"first", p.first},
                                     {"self", p.self},
                                     {"induction", p.induction},
                                     {"induction_rows", p.inductionRows}});
        const QByteArray json =
            QJsonDocument(QJsonObject{{"tokens", static_cast<int>(traces.size())},
                                      {"test", test},
                                      {"heads", heads}})
                .toJson();
        std::fwrite(json.constData(), 1, static_cast<size_t>(json.size()), stdout);
        return 0;
    }
    std::printf("%zu tokens; mean attention weight of each head on:\n", traces.size());
    std::printf("layer head  previous  first   self  induction (%d rows)\n",
                patterns.empty() ? 0 : patterns.front().inductionRows);
    for (const HeadPattern& p : patterns)
        std::printf("%5d %4d  %8.3f %6.3f %6.3f %9.3f\n", p.layer, p.head, p.previous, p.first,
                    p.self, p.induction);
    return 0;
}

}  // namespace kvscope::app
