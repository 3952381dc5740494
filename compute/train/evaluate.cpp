// scoreText: windows of n_ctx tokens (BOS first where the tokenizer adds it), logits of every
// position, log-softmax at the next token.
#include "train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "runtime/decode_session.h"

namespace kvscope {

TextScore scoreText(Backend& backend, const Tokenizer& tokenizer, std::string_view text,
                    Backend* reference) {
    const std::vector<int32_t> ids = tokenizer.encode(text);
    if (ids.size() < 2) throw Error("the text is too short to score: it needs at least two tokens");
    const size_t nCtx = static_cast<size_t>(backend.config().nCtx);
    if (nCtx < 2) throw Error("scoring needs a context of at least two tokens");
    const auto V = static_cast<size_t>(backend.config().nVocab);
    TextScore score;
    score.compared = reference != nullptr;
    std::vector<float> logits, full;
    size_t longest = 0;
    // One window: the backend's logits of every position, and the reference's beside them.
    auto run = [&](std::span<const int32_t> window) {
        backend.truncateCache(0);
        backend.forward(window, true, logits, nullptr);
        if (window.size() > longest) {
            longest = window.size();
            score.kvBytes = static_cast<size_t>(backend.cacheRows()) * backend.cacheBytesPerToken();
        }
        if (!reference) return;
        reference->truncateCache(0);
        reference->forward(window, true, full, nullptr);
        if (window.size() == longest)
            score.fullKvBytes =
                static_cast<size_t>(reference->cacheRows()) * reference->cacheBytesPerToken();
    };
    auto compare = [&](size_t i) {
        if (!reference) return;
        const Drift d = measureDrift(std::span<const float>(logits).subspan(i * V, V),
                                     std::span<const float>(full).subspan(i * V, V));
        score.klSum += d.kl;
        score.agreeTop1 += d.top1 ? 1 : 0;
    };
    auto add = [&](const float* z, int32_t next) {
        const float mx = *std::max_element(z, z + V);
        double sum = 0;
        for (size_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(z[j]) - mx);
        score.bits += (std::log(sum) - (z[next] - mx)) / std::log(2.0);
        score.bytes += tokenizer.tokenBytes(next).size();
        ++score.tokens;
    };
    if (tokenizer.addBos() && tokenizer.bos()) {
        // windows of BOS + n_ctx − 1 text tokens, each predicted from BOS and those before it
        std::vector<int32_t> window;
        for (size_t start = 0; start < ids.size(); start += nCtx - 1) {
            const size_t n = std::min(nCtx - 1, ids.size() - start);
            window.assign(1, *tokenizer.bos());
            window.insert(window.end(), ids.begin() + static_cast<ptrdiff_t>(start),
                          ids.begin() + static_cast<ptrdiff_t>(start + n));
            run(window);
            for (size_t i = 0; i < n; ++i) {
                add(logits.data() + i * V, window[i + 1]);
                compare(i);
            }
        }
        backend.truncateCache(0);
        if (reference) reference->truncateCache(0);
        return score;
    }
    for (size_t start = 0; start + 1 < ids.size(); start += nCtx - 1) {
        const size_t n = std::min(nCtx, ids.size() - start);
        run(std::span(ids).subspan(start, n));
        for (size_t i = 0; i + 1 < n; ++i) {
            add(logits.data() + i * V, ids[start + i + 1]);
            compare(i);
        }
    }
    backend.truncateCache(0);
    if (reference) reference->truncateCache(0);
    return score;
}

}  // namespace kvscope
