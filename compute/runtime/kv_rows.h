// KvRows: the bookkeeping of a KV cache under an eviction policy, without the storage: which
// position each row of each layer holds, the heavy hitters' scores, and when each position was
// evicted. KvCache (host blocks) and the OpenCL backend (device buffers) both keep one, so that
// a policy decides the same rows on every backend; the owner moves its stored rows as commit()
// says.
#pragma once

#include <climits>
#include <functional>
#include <string>
#include <vector>

namespace kvscope {

// Which earlier tokens stay in the cache. A query at position p sees (besides itself):
//   window W > 0: the positions p-W+1 .. p (W in all, itself included), as a model trained with
//                 a sliding window;
//   sinks S:      also positions 0 .. S-1, always (StreamingLLM's attention sinks);
//   heavy H:      also the H earlier positions, outside the sinks and the window, with the largest
//                 attention accumulated over the steps so far (H2O's heavy hitters: the sum, over
//                 every query since the token arrived and every head of the layer, of the weight
//                 the token got), chosen per layer.
// W = 0 keeps everything (sinks and heavy need a window). Between steps the cache holds at most
// S + H + W - 1 rows per layer; while a token is computed, S + H + W.
struct EvictionPolicy {
    int window = 0;
    int sinks = 0;
    int heavy = 0;

    bool evicts() const { return window > 0; }
    int budget() const { return sinks + heavy + window; }  // rows a query sees, at most
    // "none", "window 64", "sinks 4 + window 60", "heavy 16 + window 48", ...
    std::string text() const;
    // Empty when the numbers make a policy, else why not.
    std::string problem() const;
};

class KvRows {
  public:
    // Throws Error unless nLayer and nCtx are positive and the policy is one.
    KvRows(int nLayer, int nCtx, EvictionPolicy eviction = {});

    static constexpr int kHeld = INT_MAX;  // evictedAt() of a position the cache still holds

    int nLayer() const { return nLayer_; }
    int nCtx() const { return nCtx_; }
    const EvictionPolicy& eviction() const { return eviction_; }
    int used() const { return used_; }  // tokens seen: the position of the next one
    int rows() const { return rows_; }  // rows held per layer (used() when nothing was evicted)
    int pending() const { return pending_; }

    // A pass of n new tokens at positions used() .. used()+n-1, rows rows() .. rows()+n-1 (see
    // KvCache::begin). Throws Error if a pass is under way or used() + n > nCtx().
    void begin(int n);
    // The position of `row` in `layer` (rows of a pass under way included).
    int rowPosition(int layer, int row) const {
        return rowPos_[static_cast<size_t>(layer)][static_cast<size_t>(row)];
    }
    // Whether the query at position pos (a token of the pass under way) attends to `row`.
    bool visible(int layer, int row, int pos) const;
    // Heavy hitters: adds the query's weights (one per row of the pass, rows() + pending(), summed
    // over the layer's heads) to the rows' scores, then lets go of the lowest-scoring row that
    // has left the window, if there are more than `heavy` of them. A no-op without heavy hitters.
    void noteQuery(int layer, int pos, const float* rowWeights);
    // Called by commit() for each stored row that moves down when the evicted rows are squeezed
    // out: row `from` of `layer` now lives at row `to` (< from). Calls come in increasing `to`
    // per layer, so moving the rows in that order in place is safe.
    using MoveRow = std::function<void(int layer, int from, int to)>;
    // Marks the pass's tokens as held, evicts what the policy drops after the last of them and
    // compacts the rows that stay (calling moveRow for each row that moves). Without begin(),
    // begin(n) is implied.
    void commit(int n, const MoveRow& moveRow);
    // Forgets the pass under way.
    void abandon();

    // The last query position that saw `pos` in `layer`, or kHeld if the cache still holds it.
    int evictedAt(int layer, int pos) const {
        return evictedAt_[static_cast<size_t>(layer)][static_cast<size_t>(pos)];
    }
    // The positions of `layer` whose rows are still held, in order.
    std::vector<int> heldPositions(int layer) const;
    // The accumulated attention of each row held in `layer` (heavy hitters; zeros otherwise).
    const std::vector<float>& scores(int layer) const { return score_[static_cast<size_t>(layer)]; }

    // See KvCache::canTruncate and truncate.
    bool canTruncate(int n) const;
    void truncate(int n);
    void clear();

  private:
    void evictByPosition(int layer, int lastPos);
    void compact(const MoveRow& moveRow);
    void checkLayer(int layer) const;

    int nLayer_, nCtx_;
    EvictionPolicy eviction_;
    int used_ = 0, rows_ = 0, pending_ = 0;
    // Per layer: the position of each row (held, then pending), each row's accumulated attention,
    // and for every position seen the last query that saw it (kHeld while held).
    std::vector<std::vector<int>> rowPos_;
    std::vector<std::vector<float>> score_;
    std::vector<std::vector<int>> evictedAt_;
    std::vector<std::vector<float>> savedScore_;  // scores before begin(), for abandon()
};

}  // namespace kvscope
