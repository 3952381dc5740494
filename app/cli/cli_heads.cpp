// kvscope heads: what every attention head looks at on a prompt (previous token, first token,
// itself, the successor of an earlier copy of the current token), measured from real rows.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <cstdio>

#include "analysis/head_patterns.h"
#include "cli/cli.h"
#include "model_source/model_source.h"
#include "runtime/decode_session.h"

namespace kvscope::app {

int runHeads(const CliArgs& args) {
    const std::string prompt = args.require("prompt");
    auto model = loadModelFile(QString::fromStdString(resolveModelPath(args)));
    std::string note;
    auto backend = makeBackend(args, model, note);
    DecodeSession session(backend, model->tokenizer);
    const std::vector<StepTrace> traces = session.prefill(prompt);
    const std::vector<HeadPattern> patterns = measureHeadPatterns(traces);
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
            QJsonDocument(
                QJsonObject{{"tokens", static_cast<int>(traces.size())}, {"heads", heads}})
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
