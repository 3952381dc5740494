// scoreText: windows of n_ctx tokens, logits of every position, log-softmax at the next token.
#include "train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace kvscope {

TextScore scoreText(Backend& backend, const Tokenizer& tokenizer, std::string_view text) {
    const std::vector<int32_t> ids = tokenizer.encode(text);
    if (ids.size() < 2) throw Error("the text is too short to score: it needs at least two tokens");
    const size_t nCtx = static_cast<size_t>(backend.config().nCtx);
    if (nCtx < 2) throw Error("scoring needs a context of at least two tokens");
    const auto V = static_cast<size_t>(backend.config().nVocab);
    TextScore score;
    std::vector<float> logits;
    for (size_t start = 0; start + 1 < ids.size(); start += nCtx - 1) {
        const size_t n = std::min(nCtx, ids.size() - start);
        backend.truncateCache(0);
        backend.forward(std::span(ids).subspan(start, n), true, logits, nullptr);
        for (size_t i = 0; i + 1 < n; ++i) {
            const float* z = logits.data() + i * V;
            const float mx = *std::max_element(z, z + V);
            double sum = 0;
            for (size_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(z[j]) - mx);
            const int32_t next = ids[start + i + 1];
            score.bits += (std::log(sum) - (z[next] - mx)) / std::log(2.0);
            score.bytes += tokenizer.tokenBytes(next).size();
            ++score.tokens;
        }
    }
    backend.truncateCache(0);
    return score;
}

}  // namespace kvscope
