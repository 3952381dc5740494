// TraceStore: tokens, traces and selection, with change signals.
#include "common/trace_store.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace kvscope::viz {

TraceStore::TraceStore(QObject* parent) : QObject(parent) {}

void TraceStore::setModel(const ModelSummary& summary) {
    model_ = summary;
    hasModel_ = true;
    traces_.clear();
    lenses_.clear();
    promptLength_ = 0;
    prefillMs_ = 0;
    layer_ = head_ = 0;
    pinnedQuery_ = -1;
    emit modelChanged();
    emit tokensReset();
    emit selectionChanged();
}

void TraceStore::setPrompt(std::vector<StepTrace> traces, double prefillMs) {
    traces_ = std::move(traces);
    lenses_.clear();
    promptLength_ = count();
    prefillMs_ = prefillMs;
    pinnedQuery_ = -1;
    emit tokensReset();
    emit selectionChanged();
}

void TraceStore::append(StepTrace trace) {
    if (trace.position != count())
        throw std::invalid_argument("TraceStore::append: trace of position " +
                                    std::to_string(trace.position) + " after " +
                                    std::to_string(count()) + " tokens");
    traces_.push_back(std::move(trace));
    pinnedQuery_ = -1;
    emit tokenAppended(count() - 1);
    emit selectionChanged();
}

void TraceStore::truncate(int n, size_t kvBytesHeld, size_t kvAllocatedHeld) {
    if (n < 0 || n > count())
        throw std::out_of_range("TraceStore::truncate: " + std::to_string(n) + " of " +
                                std::to_string(count()) + " tokens");
    traces_.resize(static_cast<size_t>(n));
    lenses_.erase(lenses_.lower_bound(n), lenses_.end());
    if (!traces_.empty()) {
        traces_.back().kvBytes = kvBytesHeld;
        traces_.back().kvAllocatedBytes = kvAllocatedHeld;
    }
    promptLength_ = std::min(promptLength_, n);
    if (pinnedQuery_ >= n) pinnedQuery_ = -1;
    emit truncated(n);
    emit selectionChanged();
}

void TraceStore::clear() {
    traces_.clear();
    lenses_.clear();
    promptLength_ = 0;
    prefillMs_ = 0;
    pinnedQuery_ = -1;
    emit tokensReset();
    emit selectionChanged();
}

const LogitLens* TraceStore::lens(int i) const {
    const auto it = lenses_.find(i);
    return it == lenses_.end() ? nullptr : &it->second;
}

bool TraceStore::setLens(int i, LogitLens lens) {
    // It must still describe these tokens: the residuals of token i - 1, then token i.
    if (i < 1 || i >= count() || lens.position != i - 1 || lens.target != trace(i).token ||
        static_cast<int>(lens.layers.size()) != config().nLayer)
        return false;
    lenses_[i] = std::move(lens);
    emit lensChanged(i);
    return true;
}

size_t TraceStore::kvAllocatedBytes() const {
    return traces_.empty() ? model_.cacheAllocatedBytes : traces_.back().kvAllocatedBytes;
}

size_t TraceStore::kvBytes() const {
    return traces_.empty() ? 0 : traces_.back().kvBytes;
}

std::span<const float> TraceStore::attentionRow(int i, int layer, int head) const {
    const StepTrace& t = trace(i);
    if (!t.hasTensors()) return {};
    return {t.attention(layer, head), static_cast<size_t>(t.position) + 1};
}

int TraceStore::queryIndex() const {
    return pinnedQuery_ >= 0 ? pinnedQuery_ : count() - 1;
}

void TraceStore::setLayer(int layer) {
    setLayerHead(layer, head_);
}
void TraceStore::setHead(int head) {
    setLayerHead(layer_, head);
}

void TraceStore::setLayerHead(int layer, int head) {
    if (!hasModel_) return;
    layer = std::clamp(layer, 0, model_.config.nLayer - 1);
    head = std::clamp(head, 0, model_.config.nHead - 1);
    if (layer == layer_ && head == head_) return;
    layer_ = layer;
    head_ = head;
    emit selectionChanged();
}

void TraceStore::pinQuery(int index) {
    const int v = index >= count() - 1 ? -1 : std::max(-1, index);  // the newest token follows
    if (v == pinnedQuery_) return;
    pinnedQuery_ = v;
    emit selectionChanged();
}

}  // namespace kvscope::viz
