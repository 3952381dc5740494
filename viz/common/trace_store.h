// TraceStore: the one model every view reads, on the GUI thread. It holds the loaded model's
// summary, the prompt and generated tokens with their StepTraces (values copied from the
// decoding thread), and the shared selection (layer, head, inspected token). Views repaint on
// its signals; they never call a backend or a session.
// (ARCHITECTURE.md draws it as app::TraceStore; it lives in viz/ so views can read it without
// depending on app/.)
#pragma once

#include <QObject>
#include <QString>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "core/logit_lens.h"
#include "core/step_trace.h"
#include "model/model.h"
#include "runtime/kv_cache.h"

namespace kvscope::viz {

// What the views need to know about the model and where it runs.
struct ModelSummary {
    ModelConfig config;
    QString path;
    std::string tokenizer;  // its kind, pre-tokenizer and size, in words
    size_t parameters = 0;
    size_t weightBytes = 0;
    size_t kvBytesPerToken = 0;      // 2 × layers × kv heads × head dim × bytes per element
    size_t cacheAllocatedBytes = 0;  // what the backend allocated before the first token
    int cacheBlockTokens = 0;        // the cache grows in blocks of this many tokens (0: at once)
    QString backend;                 // "cpu", "opencl"
    QString device;                  // in words
    QString backendNote;             // which backend was chosen and why (auto)
    uint64_t deviceMemoryBytes = 0;  // the device's memory when known (OpenCL), else 0
    KvCacheOptions cache;            // the cache lab's policy: K/V type, eviction, block size
};

// One round of speculative decoding (DecodeController::speculate) as the views show it: a
// decided token and the drafts after it, run through the target model in one verification pass;
// a prefix of the drafts accepted, the rest rolled back out of the cache.
struct SpeculativeRound {
    int first = 0;  // the store index of the pass's first token (the decided one)
    // The pass's tokens: the decided token, then every draft, each with its trace (the accepted
    // ones' kvBytes after the rollback, the rejected ones' during the pass).
    std::vector<StepTrace> verified;
    int accepted = 0;  // drafts accepted: verified[1..accepted]
    // The token the pass decided after the accepted drafts: it enters the cache with the next
    // round's pass (or the next plain step).
    int32_t next = 0;
    std::string nextText;
    QString drafter;                               // "lookup", "model:PATH"
    double draftMs = 0, verifyMs = 0, hostMs = 0;  // measured: drafting, the pass, the round
    int drafted() const { return static_cast<int>(verified.size()) - 1; }
    int kept() const { return 1 + accepted; }  // tokens the round left in the cache
};

class TraceStore : public QObject {
    Q_OBJECT
  public:
    explicit TraceStore(QObject* parent = nullptr);

    // -- the model (setting one clears the tokens and resets the selection)
    void setModel(const ModelSummary& summary);
    bool hasModel() const { return hasModel_; }
    const ModelSummary& model() const { return model_; }
    const ModelConfig& config() const { return model_.config; }

    // -- the tokens and their traces
    // Replaces everything with the prompt's traces (from a prefill).
    void setPrompt(std::vector<StepTrace> traces, double prefillMs);
    // Appends one generated token's trace. Precondition: trace.position == count(). A step
    // follows the newest token again: an earlier token pinned for inspection is let go.
    void append(StepTrace trace);
    // Keeps the first n tokens (the app's step back). kvBytesHeld: the bytes the backend's cache
    // holds after it, measured; it becomes the last remaining trace's kvBytes (a prompt token's
    // trace recorded the whole prompt's bytes). Throws std::out_of_range unless 0 <= n <= count().
    void truncate(int n, size_t kvBytesHeld, size_t kvAllocatedHeld);
    void clear();

    int count() const { return static_cast<int>(traces_.size()); }
    int promptLength() const { return promptLength_; }
    const StepTrace& trace(int i) const { return traces_[static_cast<size_t>(i)]; }
    const std::vector<StepTrace>& traces() const { return traces_; }
    double prefillMs() const { return prefillMs_; }
    // Bytes of K and V the cache holds now, as the backend measured them (0 when nothing is
    // decoded).
    size_t kvBytes() const;
    // Bytes the cache has allocated now: the last trace's, else the allocation at load.
    size_t kvAllocatedBytes() const;
    // The cache lab: the last query that saw key `pos` in `layer` before the cache's eviction
    // policy let it go (StepTrace::evicted), or kHeld while the cache holds it.
    static constexpr int kHeld = KvCache::kHeld;
    int evictedAt(int layer, int pos) const;
    // Whether the query at `query` attended to key `key` <= query under the policy: false when the
    // policy had let the key go before it.
    bool evictedFor(int layer, int key, int query) const { return evictedAt(layer, key) < query; }
    bool hasEvictions() const { return evictions_ > 0; }
    // -- attention rows within a budget (ARCHITECTURE.md decision 4)
    // Each trace arrives with the attention rows of every layer and head (L × H × (position + 1)
    // floats: gigabytes at thousands of tokens). The store keeps them while their total stays
    // within attentionBudget(); past it the oldest traces lose their rows (their q, k and v
    // stay). What the views still need of those rows:
    //  - every head at a glance: headThumbnail(), each head max-pooled over thumbnailPool()²
    //    cells, kept up to date as rows arrive (before any is dropped);
    //  - one head's rows in full: rebuilt from the stored queries against the cached keys by
    //    whoever holds the backend (headMatrixWanted, then setHeadMatrix), then kept, and grown
    //    with the rows dropped after it.
    static constexpr size_t kDefaultAttentionBudget = size_t{512} << 20;
    void setAttentionBudget(size_t bytes);  // drops rows at once if they are over it
    size_t attentionBudget() const { return attentionBudget_; }
    size_t attentionBytes() const { return attentionBytes_; }  // the rows the traces hold now
    // Traces [0, firstStoredRow()) have lost their rows to the budget.
    int firstStoredRow() const { return firstStoredRow_; }
    // Attention weights of token i over tokens 0..i, for a layer and query head: the trace's
    // own row, else the rebuilt matrix's, else empty (ask with requestHeadMatrix).
    std::span<const float> attentionRow(int i, int layer, int head) const;
    // Whether every row 0..count()-1 of (layer, head) can be read now.
    bool hasAllRows(int layer, int head) const;
    // Asks (headMatrixWanted) for the rows of (layer, head) to be rebuilt, once while they are
    // missing; never where canRebuildRows() is false.
    void requestHeadMatrix(int layer, int head);
    // Whether dropped rows can be rebuilt from the cache: not once the cache policy has let keys
    // go (Backend::attentionMatrix needs every key the rows saw). The views say so instead.
    bool canRebuildRows() const { return !hasEvictions(); }
    // What a view shows in their place then: which rows went, why, and that they stay gone.
    QString droppedRowsText() const;
    // The rebuilt rows: `full` is (t, t) row-major as Backend::attentionMatrix gives it, for the
    // first t tokens. Kept (packed, the lower triangle) when t == count(); returns whether it was.
    bool setHeadMatrix(int layer, int head, int t, const std::vector<float>& full);
    // Tokens per thumbnail cell side: the smallest power of two with count() <=
    // kThumbnailCells × pool (1 up to 128 tokens; it doubles, merging 2 × 2 cells, as they grow).
    static constexpr int kThumbnailCells = StepTrace::kPooledCells;
    int thumbnailPool() const { return thumbPool_; }
    // (layer, head) max-pooled: cell (r, c) = max over rows r·pool.. and keys c·pool.. of the
    // visible weights, row-major with thumbnailSide() columns, -1 where nothing is visible.
    // Covers rows 0..count()-1.
    std::span<const float> headThumbnail(int layer, int head) const;
    int thumbnailSide() const { return thumbSide_; }

    // The logit lens of the distribution that chose token i (token i - 1's residual stream after
    // each layer, with token i as the target), once a backend has computed it; else nullptr.
    // Computing needs the model's weights, so whoever holds the session does it on request
    // (lensWanted) and hands it here. setLens keeps it only if it still matches the tokens
    // (position i - 1, target the token at i) and returns whether it did.
    const LogitLens* lens(int i) const;
    bool setLens(int i, LogitLens lens);

    // -- speculative decoding, one round at a time: the round arrives whole (beginRound, phase
    // Drafted: the decided token and the drafts, not yet in the store), then advanceRound()
    // shows its verification pass (Verified: all its tokens appended at once, the drafts
    // provisional) and its outcome (Resolved: the rejected drafts removed, the accepted ones
    // plain tokens). Any other change (append, truncate, a prompt) resolves an open round first.
    enum class RoundPhase { None, Drafted, Verified, Resolved };
    // Precondition: round.first == count(), round.verified not empty, positions in order.
    void beginRound(SpeculativeRound round);
    // The next phase; false (nothing changes) when there is no open round.
    bool advanceRound();
    void finishRound();  // advances to Resolved
    RoundPhase roundPhase() const { return phase_; }
    // The round on show (phase != None), else nullptr.
    const SpeculativeRound* round() const { return phase_ == RoundPhase::None ? nullptr : &round_; }
    // Token i is a draft of the round on show, verified and not yet resolved: +1 accepted,
    // -1 rejected; 0 for every other token.
    int draftVerdict(int i) const;
    // The rounds that made the tokens now in the store, oldest first.
    struct RoundRecord {
        int first = 0, drafted = 0, accepted = 0;
        double draftMs = 0, verifyMs = 0, hostMs = 0;
        int inStore = 0;  // of its kept tokens, those still in the store (a step back cuts)
        int kept() const { return 1 + accepted; }
    };
    const std::vector<RoundRecord>& rounds() const { return rounds_; }
    // The record whose tokens include token i, else nullptr (a prompt or plain-step token).
    const RoundRecord* roundOf(int i) const;

    // -- the selection shared by the views
    int layer() const { return layer_; }
    int head() const { return head_; }
    int kvHead() const { return hasModel_ ? model_.config.kvHeadOf(head_) : 0; }
    // The token whose query is inspected: the one picked in the token strip, else the newest.
    int queryIndex() const;
    bool queryPinned() const { return pinnedQuery_ >= 0; }
    void setLayer(int layer);
    void setHead(int head);
    void setLayerHead(int layer, int head);
    void pinQuery(int index);  // -1: follow the newest token

  signals:
    void modelChanged();
    void tokensReset();                          // everything replaced (prefill, clear, new model)
    void tokenAppended(int index);               // one token added at the end
    void truncated(int count);                   // tokens removed; count remain
    void lensChanged(int index);                 // setLens kept the lens of token index
    void headMatrixWanted(int layer, int head);  // its dropped rows should be rebuilt
    void headMatrixReady(int layer, int head);   // setHeadMatrix kept them
    void selectionChanged();
    void roundChanged();  // a round began, moved to its next phase or ended

  private:
    void appendTrace(StepTrace trace);
    void truncateTo(int n, size_t kvBytesHeld, size_t kvAllocatedHeld);
    void endRound();  // resolves an open round, then shows none
    RoundPhase phase_ = RoundPhase::None;
    SpeculativeRound round_;
    std::vector<RoundRecord> rounds_;
    bool hasModel_ = false;
    ModelSummary model_;
    std::vector<StepTrace> traces_;
    std::map<int, LogitLens> lenses_;
    // per layer, per position: evictedAt (kHeld while held), from the traces' `evicted`
    std::vector<std::vector<int>> evictedAt_;
    int evictions_ = 0;
    void noteEvictions(int from);  // adds traces from..count()-1's evictions
    // the attention budget
    void resetAttention();   // no rows dropped, thumbnails empty (new model or prompt)
    void addRows(int from);  // thumbnails of traces from..count()-1, then the budget
    void enforceBudget();    // drops the oldest rows (keeps the newest trace's)
    void rebuildThumbnailRow(int blockRow);  // from the rows still readable
    void coarsenThumbnails();                // the pool doubled
    size_t attentionBudget_ = kDefaultAttentionBudget;
    size_t attentionBytes_ = 0;
    int firstStoredRow_ = 0;
    int thumbPool_ = 1, thumbSide_ = 0;
    std::vector<std::vector<float>> thumbs_;  // per layer × head: thumbSide_² floats
    struct HeadMatrix {
        int layer = -1, head = -1, rows = 0;
        std::vector<float> packed;  // row r at r(r+1)/2, r + 1 weights
    };
    HeadMatrix matrix_;
    std::pair<int, int> requested_{-1, -1};
    int promptLength_ = 0;
    double prefillMs_ = 0;
    int layer_ = 0, head_ = 0, pinnedQuery_ = -1;
};

}  // namespace kvscope::viz
