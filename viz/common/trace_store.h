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
#include <vector>

#include "core/logit_lens.h"
#include "core/step_trace.h"
#include "model/model.h"

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
    // Attention weights of token i over tokens 0..i, for a layer and query head.
    std::span<const float> attentionRow(int i, int layer, int head) const;

    // The logit lens of the distribution that chose token i (token i - 1's residual stream after
    // each layer, with token i as the target), once a backend has computed it; else nullptr.
    // Computing needs the model's weights, so whoever holds the session does it on request
    // (lensWanted) and hands it here. setLens keeps it only if it still matches the tokens
    // (position i - 1, target the token at i) and returns whether it did.
    const LogitLens* lens(int i) const;
    bool setLens(int i, LogitLens lens);

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
    void tokensReset();             // everything replaced (prefill, clear, new model)
    void tokenAppended(int index);  // one token added at the end
    void truncated(int count);      // tokens removed; count remain
    void lensChanged(int index);    // setLens kept the lens of token index
    void selectionChanged();

  private:
    bool hasModel_ = false;
    ModelSummary model_;
    std::vector<StepTrace> traces_;
    std::map<int, LogitLens> lenses_;
    int promptLength_ = 0;
    double prefillMs_ = 0;
    int layer_ = 0, head_ = 0, pinnedQuery_ = -1;
};

}  // namespace kvscope::viz
