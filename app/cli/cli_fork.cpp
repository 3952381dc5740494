// decodeFork: two branches of one session on shared blocks, and their block tables.
#include "cli/cli_fork.h"

#include <QJsonArray>
#include <set>

#include "core/error.h"

namespace kvscope::app {

ForkRun decodeFork(DecodeSession& session, const Tokenizer& tokenizer, int steps) {
    std::unique_ptr<DecodeSession> other = session.fork();
    if (!session.backend().hostCache() || !other->backend().hostCache())
        throw Error("--fork shows shared blocks of the CPU backend's cache (--backend cpu); the " +
                    session.backend().name() + " backend copies the cache instead");
    SamplerParams second = session.options().sampler;
    second.seed += 1;  // the second continuation samples with the next seed
    other->setSampler(second);
    const size_t from = session.tokens().size();
    for (int i = 0; i < steps; ++i) {
        session.step();
        other->step();
    }
    ForkRun run;
    QJsonArray branches;
    std::set<uint64_t> stored;
    size_t separate = 0, blockBytes = 0;
    int index = 0;
    for (DecodeSession* s : {&session, other.get()}) {
        const KvCache& cache = *s->backend().hostCache();
        blockBytes = cache.blockBytes();
        QJsonArray ids, blocks;
        std::string text;
        for (size_t i = from; i < s->tokens().size(); ++i) {
            ids.append(s->tokens()[i]);
            text += tokenizer.tokenBytes(s->tokens()[i]);
        }
        std::string table;
        for (int b = 0; b < cache.blocksAllocated(); ++b) {
            blocks.append(QJsonArray{static_cast<double>(cache.blockId(b)),
                                     static_cast<double>(cache.blockRefs(b))});
            stored.insert(cache.blockId(b));
            if (b > 0) table += ' ';
            table += '#';
            table += std::to_string(cache.blockId(b));
            if (cache.blockRefs(b) > 1) {
                table += "×";
                table += std::to_string(cache.blockRefs(b));
            }
        }
        separate += cache.allocatedBytes();
        branches.append(QJsonObject{{"tokens", ids},
                                    {"text", QString::fromUtf8(text)},
                                    {"blocks", blocks},
                                    {"kv_bytes", static_cast<double>(s->kvBytes())}});
        run.text += "branch ";
        run.text += std::to_string(index++);
        run.text += ": …";
        run.text += text;
        run.text += "\n  blocks ";
        run.text += table;
        run.text += '\n';
    }
    const size_t storedBytes = stored.size() * blockBytes;
    run.json = QJsonObject{{"steps", steps},
                           {"branches", branches},
                           {"block_bytes", static_cast<double>(blockBytes)},
                           {"stored_bytes", static_cast<double>(storedBytes)},
                           {"separate_bytes", static_cast<double>(separate)}};
    run.text += "blocks of " + std::to_string(blockBytes) + " B: " + std::to_string(storedBytes) +
                " B stored for both branches, against " + std::to_string(separate) +
                " B for two separate caches (×n: a block n branches share)\n";
    return run;
}

}  // namespace kvscope::app
