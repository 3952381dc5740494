// KvRows: which position each cached row holds under an eviction policy, and what it evicted.
#include "runtime/kv_rows.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"

namespace kvscope {

std::string EvictionPolicy::text() const {
    if (!evicts()) return "none";
    std::string s;
    if (sinks > 0) s += "sinks " + std::to_string(sinks) + " + ";
    if (heavy > 0) s += "heavy " + std::to_string(heavy) + " + ";
    return s + "window " + std::to_string(window);
}

std::string EvictionPolicy::problem() const {
    if (window < 0 || sinks < 0 || heavy < 0)
        return "the window, sinks and heavy hitters are counts of tokens (0 or more)";
    if (window == 0 && (sinks > 0 || heavy > 0))
        return "attention sinks and heavy hitters are kept beside a window of recent tokens: give "
               "a window too";
    return {};
}

KvRows::KvRows(int nLayer, int nCtx, EvictionPolicy eviction)
    : nLayer_(nLayer), nCtx_(nCtx), eviction_(eviction) {
    KVSCOPE_CHECK(nLayer > 0 && nCtx > 0, "KV cache: every dimension must be positive");
    const std::string policyProblem = eviction.problem();
    KVSCOPE_CHECK(policyProblem.empty(), "KV cache policy: " + policyProblem);
    rowPos_.resize(static_cast<size_t>(nLayer));
    score_.resize(static_cast<size_t>(nLayer));
    evictedAt_.resize(static_cast<size_t>(nLayer));
}

void KvRows::checkLayer(int layer) const {
    KVSCOPE_CHECK(layer >= 0 && layer < nLayer_, "KV cache: no layer " + std::to_string(layer));
}

void KvRows::begin(int n) {
    KVSCOPE_CHECK(pending_ == 0, "KV cache: a pass is already under way");
    KVSCOPE_CHECK(n >= 0 && static_cast<int64_t>(used_) + n <= nCtx_,
                  "KV cache: " + std::to_string(used_) + " + " + std::to_string(n) +
                      " tokens do not fit the context of " + std::to_string(nCtx_));
    if (eviction_.heavy > 0) savedScore_ = score_;
    for (int l = 0; l < nLayer_; ++l) {
        const auto L = static_cast<size_t>(l);
        for (int i = 0; i < n; ++i) {
            rowPos_[L].push_back(used_ + i);
            score_[L].push_back(0.0f);
            evictedAt_[L].push_back(kHeld);
        }
    }
    pending_ = n;
}

bool KvRows::visible(int layer, int row, int pos) const {
    const auto L = static_cast<size_t>(layer);
    const int p = rowPos_[L][static_cast<size_t>(row)];
    if (p > pos) return false;
    const EvictionPolicy& e = eviction_;
    if (!e.evicts() || p < e.sinks || p > pos - e.window) return true;
    return e.heavy > 0 && evictedAt_[L][static_cast<size_t>(p)] >= pos;
}

void KvRows::noteQuery(int layer, int pos, const float* rowWeights) {
    const EvictionPolicy& e = eviction_;
    if (e.heavy <= 0) return;
    checkLayer(layer);
    const auto L = static_cast<size_t>(layer);
    const int R = rows_ + pending_;
    std::vector<float>& s = score_[L];
    for (int r = 0; r < R; ++r) s[static_cast<size_t>(r)] += rowWeights[r];
    // The rows that have left the window after this query (not sinks, still held): past `heavy`
    // of them, the one with the least attention goes (ties: the earliest).
    int count = 0, worst = -1;
    for (int r = 0; r < R; ++r) {
        const int p = rowPos_[L][static_cast<size_t>(r)];
        if (p < e.sinks || p > pos - e.window + 1 || evictedAt_[L][static_cast<size_t>(p)] != kHeld)
            continue;
        ++count;
        if (worst < 0 || s[static_cast<size_t>(r)] < s[static_cast<size_t>(worst)]) worst = r;
    }
    if (count > e.heavy)
        evictedAt_[L][static_cast<size_t>(rowPos_[L][static_cast<size_t>(worst)])] = pos;
}

void KvRows::evictByPosition(int layer, int lastPos) {
    const EvictionPolicy& e = eviction_;
    const auto L = static_cast<size_t>(layer);
    for (int r = 0; r < rows_; ++r) {
        const int p = rowPos_[L][static_cast<size_t>(r)];
        if (p >= e.sinks && p <= lastPos - e.window + 1 &&
            evictedAt_[L][static_cast<size_t>(p)] == kHeld)
            evictedAt_[L][static_cast<size_t>(p)] = p + e.window - 1;  // the last query to see it
    }
}

void KvRows::compact(const MoveRow& moveRow) {
    int kept = -1;
    for (int l = 0; l < nLayer_; ++l) {
        const auto L = static_cast<size_t>(l);
        int dst = 0;
        for (int r = 0; r < rows_; ++r) {
            const int p = rowPos_[L][static_cast<size_t>(r)];
            if (evictedAt_[L][static_cast<size_t>(p)] != kHeld) continue;
            if (dst != r) {
                if (moveRow) moveRow(l, r, dst);
                rowPos_[L][static_cast<size_t>(dst)] = p;
                score_[L][static_cast<size_t>(dst)] = score_[L][static_cast<size_t>(r)];
            }
            ++dst;
        }
        rowPos_[L].resize(static_cast<size_t>(dst));
        score_[L].resize(static_cast<size_t>(dst));
        KVSCOPE_CHECK(kept < 0 || kept == dst, "KV cache: layers kept different numbers of rows");
        kept = dst;
    }
    rows_ = kept;
}

void KvRows::commit(int n, const MoveRow& moveRow) {
    if (pending_ == 0 && n > 0) begin(n);
    KVSCOPE_CHECK(n == pending_, "KV cache: committing " + std::to_string(n) +
                                     " tokens of a pass of " + std::to_string(pending_));
    used_ += n;
    rows_ += n;
    pending_ = 0;
    savedScore_.clear();
    const EvictionPolicy& e = eviction_;
    if (!e.evicts()) return;
    if (e.heavy == 0)
        for (int l = 0; l < nLayer_; ++l) evictByPosition(l, used_ - 1);
    compact(moveRow);
}

void KvRows::abandon() {
    if (pending_ == 0) return;
    for (int l = 0; l < nLayer_; ++l) {
        const auto L = static_cast<size_t>(l);
        rowPos_[L].resize(static_cast<size_t>(rows_));
        evictedAt_[L].resize(static_cast<size_t>(used_));
        for (int& at : evictedAt_[L])  // evictions decided by the pass's queries
            if (at != kHeld && at >= used_) at = kHeld;
    }
    if (eviction_.heavy > 0)
        score_ = savedScore_;
    else
        for (auto& s : score_) s.resize(static_cast<size_t>(rows_));
    savedScore_.clear();
    pending_ = 0;
}

std::vector<int> KvRows::heldPositions(int layer) const {
    checkLayer(layer);
    const auto& pos = rowPos_[static_cast<size_t>(layer)];
    return {pos.begin(), pos.begin() + rows_};
}

bool KvRows::canTruncate(int n) const {
    if (n < 0 || n > used_) return false;
    if (n == used_ || n == 0 || !eviction_.evicts()) return true;
    if (eviction_.heavy > 0) return false;
    for (const auto& at : evictedAt_)
        for (int p = 0; p < n; ++p)
            if (at[static_cast<size_t>(p)] != kHeld && at[static_cast<size_t>(p)] >= n)
                return false;
    return true;
}

void KvRows::truncate(int n) {
    KVSCOPE_CHECK(pending_ == 0, "KV cache: cannot truncate during a pass");
    KVSCOPE_CHECK(n >= 0 && n <= used_, "KV cache: cannot keep " + std::to_string(n) + " of " +
                                            std::to_string(used_) + " tokens");
    KVSCOPE_CHECK(canTruncate(n), "KV cache: the " + eviction_.text() +
                                      " policy has let go of rows held after " + std::to_string(n) +
                                      " tokens; run them again instead");
    if (n == 0) {
        clear();
        return;
    }
    int kept = 0;
    for (int l = 0; l < nLayer_; ++l) {
        const auto L = static_cast<size_t>(l);
        auto& pos = rowPos_[L];
        const auto cut = std::lower_bound(pos.begin(), pos.end(), n);
        kept = static_cast<int>(cut - pos.begin());
        pos.erase(cut, pos.end());
        score_[L].resize(pos.size());
        evictedAt_[L].resize(static_cast<size_t>(n));
    }
    used_ = n;
    rows_ = kept;
}

void KvRows::clear() {
    KVSCOPE_CHECK(pending_ == 0, "KV cache: cannot clear during a pass");
    used_ = rows_ = 0;
    for (int l = 0; l < nLayer_; ++l) {
        const auto L = static_cast<size_t>(l);
        rowPos_[L].clear();
        score_[L].clear();
        evictedAt_[L].clear();
    }
}

}  // namespace kvscope
