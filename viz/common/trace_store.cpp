// TraceStore: tokens, traces and selection, with change signals.
#include "common/trace_store.h"

#include "common/labels.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace kvscope::viz {

TraceStore::TraceStore(QObject* parent) : QObject(parent) {}

void TraceStore::setModel(const ModelSummary& summary) {
    model_ = summary;
    hasModel_ = true;
    phase_ = RoundPhase::None;
    rounds_.clear();
    traces_.clear();
    noteEvictions(0);
    lenses_.clear();
    resetAttention();
    promptLength_ = 0;
    prefillMs_ = 0;
    layer_ = head_ = 0;
    pinnedQuery_ = -1;
    emit modelChanged();
    emit tokensReset();
    emit selectionChanged();
}

void TraceStore::setPrompt(std::vector<StepTrace> traces, double prefillMs) {
    phase_ = RoundPhase::None;
    rounds_.clear();
    traces_ = std::move(traces);
    lenses_.clear();
    resetAttention();
    addRows(0);
    noteEvictions(0);
    promptLength_ = count();
    prefillMs_ = prefillMs;
    pinnedQuery_ = -1;
    emit tokensReset();
    emit selectionChanged();
}

void TraceStore::append(StepTrace trace) {
    endRound();
    appendTrace(std::move(trace));
}

void TraceStore::appendTrace(StepTrace trace) {
    if (trace.position != count())
        throw std::invalid_argument("TraceStore::append: trace of position " +
                                    std::to_string(trace.position) + " after " +
                                    std::to_string(count()) + " tokens");
    traces_.push_back(std::move(trace));
    addRows(count() - 1);
    noteEvictions(count() - 1);
    pinnedQuery_ = -1;
    emit tokenAppended(count() - 1);
    emit selectionChanged();
}

void TraceStore::truncate(int n, size_t kvBytesHeld, size_t kvAllocatedHeld) {
    endRound();
    truncateTo(n, kvBytesHeld, kvAllocatedHeld);
}

void TraceStore::truncateTo(int n, size_t kvBytesHeld, size_t kvAllocatedHeld) {
    if (n < 0 || n > count())
        throw std::out_of_range("TraceStore::truncate: " + std::to_string(n) + " of " +
                                std::to_string(count()) + " tokens");
    for (int i = n; i < count(); ++i) attentionBytes_ -= traces_[i].attn.size() * sizeof(float);
    traces_.resize(static_cast<size_t>(n));
    lenses_.erase(lenses_.lower_bound(n), lenses_.end());
    // Keys let go after a removed token are held again (a step back runs the kept tokens again,
    // and the same policy lets the same keys go).
    evictions_ = 0;
    for (std::vector<int>& at : evictedAt_) {
        at.resize(std::min(at.size(), static_cast<size_t>(n)));
        for (int& a : at) {
            if (a >= n) a = kHeld;
            if (a != kHeld) ++evictions_;
        }
    }
    firstStoredRow_ = std::min(firstStoredRow_, n);
    requested_ = {-1, -1};
    if (matrix_.rows > n) {
        matrix_.rows = n;
        matrix_.packed.resize(static_cast<size_t>(n) * (n + 1) / 2);
    }
    if (thumbSide_ > 0 && !thumbs_.empty()) {  // block rows past the new end, then the last one
        const int firstGone = n / thumbPool_;
        for (std::vector<float>& t : thumbs_)
            std::fill(t.begin() + static_cast<std::ptrdiff_t>(firstGone) * thumbSide_, t.end(),
                      -1.0f);
        if (n % thumbPool_ != 0) rebuildThumbnailRow(firstGone);
    }
    if (!traces_.empty()) {
        traces_.back().kvBytes = kvBytesHeld;
        traces_.back().kvAllocatedBytes = kvAllocatedHeld;
    }
    promptLength_ = std::min(promptLength_, n);
    if (pinnedQuery_ >= n) pinnedQuery_ = -1;
    while (!rounds_.empty() && rounds_.back().first >= n) rounds_.pop_back();
    if (!rounds_.empty())  // a round cut part-way keeps only its tokens still here
        rounds_.back().inStore = std::min(rounds_.back().inStore, n - rounds_.back().first);
    emit truncated(n);
    emit selectionChanged();
}

void TraceStore::clear() {
    phase_ = RoundPhase::None;
    rounds_.clear();
    traces_.clear();
    noteEvictions(0);
    lenses_.clear();
    resetAttention();
    promptLength_ = 0;
    prefillMs_ = 0;
    pinnedQuery_ = -1;
    emit tokensReset();
    emit selectionChanged();
}

void TraceStore::beginRound(SpeculativeRound round) {
    endRound();
    if (round.first != count() || round.verified.empty() || round.accepted < 0 ||
        round.accepted > round.drafted())
        throw std::invalid_argument(
            "TraceStore::beginRound: a round at " + std::to_string(round.first) + " of " +
            std::to_string(round.verified.size()) + " tokens after " + std::to_string(count()));
    for (size_t i = 0; i < round.verified.size(); ++i)
        if (round.verified[i].position != round.first + static_cast<int>(i))
            throw std::invalid_argument("TraceStore::beginRound: token " + std::to_string(i) +
                                        " of the round is at position " +
                                        std::to_string(round.verified[i].position));
    round_ = std::move(round);
    phase_ = RoundPhase::Drafted;
    emit roundChanged();
}

bool TraceStore::advanceRound() {
    switch (phase_) {
        case RoundPhase::None:
        case RoundPhase::Resolved:
            return false;
        case RoundPhase::Drafted:
            // the verification pass: every token of the round at once (the drafts provisional)
            phase_ = RoundPhase::Verified;
            for (const StepTrace& t : round_.verified) appendTrace(t);
            break;
        case RoundPhase::Verified: {
            // the rollback: the rejected drafts leave; the kept tokens' bytes are after it
            phase_ = RoundPhase::Resolved;
            const StepTrace& last = round_.verified[static_cast<size_t>(round_.accepted)];
            RoundRecord r;
            r.first = round_.first;
            r.drafted = round_.drafted();
            r.accepted = round_.accepted;
            r.draftMs = round_.draftMs;
            r.verifyMs = round_.verifyMs;
            r.hostMs = round_.hostMs;
            r.inStore = r.kept();
            rounds_.push_back(r);
            truncateTo(round_.first + round_.kept(), last.kvBytes, last.kvAllocatedBytes);
            break;
        }
    }
    emit roundChanged();
    return true;
}

void TraceStore::finishRound() {
    while (phase_ == RoundPhase::Drafted || phase_ == RoundPhase::Verified) advanceRound();
}

void TraceStore::endRound() {
    if (phase_ == RoundPhase::None) return;
    finishRound();
    phase_ = RoundPhase::None;
    emit roundChanged();
}

int TraceStore::draftVerdict(int i) const {
    if (phase_ != RoundPhase::Verified || i <= round_.first ||
        i >= round_.first + static_cast<int>(round_.verified.size()))
        return 0;
    return i <= round_.first + round_.accepted ? 1 : -1;
}

const TraceStore::RoundRecord* TraceStore::roundOf(int i) const {
    for (const RoundRecord& r : rounds_)
        if (i >= r.first && i < r.first + r.inStore) return &r;
    return nullptr;
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

void TraceStore::noteEvictions(int from) {
    if (from == 0) {
        evictedAt_.assign(static_cast<size_t>(std::max(0, config().nLayer)), {});
        evictions_ = 0;
    }
    for (std::vector<int>& at : evictedAt_) at.resize(traces_.size(), kHeld);
    for (int i = from; i < count(); ++i)
        for (const auto& [layer, pos] : traces_[static_cast<size_t>(i)].evicted)
            if (layer >= 0 && static_cast<size_t>(layer) < evictedAt_.size() && pos >= 0 &&
                pos < count()) {
                evictedAt_[static_cast<size_t>(layer)][static_cast<size_t>(pos)] =
                    traces_[static_cast<size_t>(i)].position;
                ++evictions_;
            }
}

int TraceStore::evictedAt(int layer, int pos) const {
    if (layer < 0 || static_cast<size_t>(layer) >= evictedAt_.size() || pos < 0) return kHeld;
    const std::vector<int>& at = evictedAt_[static_cast<size_t>(layer)];
    return static_cast<size_t>(pos) < at.size() ? at[static_cast<size_t>(pos)] : kHeld;
}

size_t TraceStore::kvBytes() const {
    return traces_.empty() ? 0 : traces_.back().kvBytes;
}

std::span<const float> TraceStore::attentionRow(int i, int layer, int head) const {
    const StepTrace& t = trace(i);
    if (!t.attn.empty()) return {t.attention(layer, head), static_cast<size_t>(t.position) + 1};
    if (matrix_.layer == layer && matrix_.head == head && i < matrix_.rows)
        return {matrix_.packed.data() + static_cast<size_t>(i) * (i + 1) / 2,
                static_cast<size_t>(i) + 1};
    return {};
}

// ---- the attention budget ----

void TraceStore::resetAttention() {
    attentionBytes_ = 0;
    firstStoredRow_ = 0;
    matrix_ = HeadMatrix{};
    requested_ = {-1, -1};
    thumbs_.clear();
    thumbPool_ = 1;
    thumbSide_ = kThumbnailCells;
}

void TraceStore::coarsenThumbnails() {
    // 2 × 2 cells into one: the max of maxes is the max over the larger block, exactly
    for (std::vector<float>& t : thumbs_) {
        std::vector<float> c(t.size(), -1.0f);
        for (int r = 0; r < thumbSide_; ++r)
            for (int k = 0; k < thumbSide_; ++k) {
                float& cell = c[static_cast<size_t>(r / 2) * thumbSide_ + k / 2];
                cell = std::max(cell, t[static_cast<size_t>(r) * thumbSide_ + k]);
            }
        t.swap(c);
    }
    thumbPool_ *= 2;
}

void TraceStore::setAttentionBudget(size_t bytes) {
    attentionBudget_ = bytes;
    enforceBudget();
}

void TraceStore::addRows(int from) {
    const ModelConfig& c = model_.config;
    const int L = c.nLayer, H = c.nHead;
    for (int i = from; i < count(); ++i) {
        StepTrace& t = traces_[static_cast<size_t>(i)];
        if (t.attn.empty()) continue;
        attentionBytes_ += t.attn.size() * sizeof(float);
        if (t.nLayer != L || t.nHead != H) continue;  // a trace of another shape
        while (i >= thumbPool_ * thumbSide_) coarsenThumbnails();
        if (thumbs_.empty())
            thumbs_.assign(static_cast<size_t>(L) * H,
                           std::vector<float>(static_cast<size_t>(thumbSide_) * thumbSide_, -1.0f));
        const size_t base = static_cast<size_t>(i / thumbPool_) * thumbSide_;
        // the rows pooled on the decoding thread (a power of two no coarser than ours): the
        // GUI thread merges cells, not tokens; else the rows themselves
        const bool pooled =
            t.attnPool > 0 && thumbPool_ % t.attnPool == 0 &&
            t.attnPooled.size() == static_cast<size_t>(L) * H * StepTrace::kPooledCells &&
            thumbSide_ == StepTrace::kPooledCells;
        const int merge = pooled ? thumbPool_ / t.attnPool : 1;
        for (int l = 0; l < L; ++l)
            for (int h = 0; h < H; ++h) {
                float* cells = thumbs_[static_cast<size_t>(l) * H + h].data() + base;
                if (pooled) {
                    const float* part = t.attnPooled.data() +
                                        (static_cast<size_t>(l) * H + h) * StepTrace::kPooledCells;
                    for (int k = 0; k < StepTrace::kPooledCells; ++k) {
                        float& cell = cells[k / merge];
                        cell = std::max(cell, part[k]);
                    }
                    continue;
                }
                const float* row = t.attention(l, h);
                for (int k = 0; k <= i; ++k) {
                    float& cell = cells[k / thumbPool_];
                    cell = std::max(cell, row[k]);
                }
            }
        std::vector<float>().swap(t.attnPooled);  // merged: the thumbnails hold it now
    }
    enforceBudget();
}

void TraceStore::enforceBudget() {
    while (attentionBytes_ > attentionBudget_ && firstStoredRow_ < count() - 1) {
        StepTrace& t = traces_[static_cast<size_t>(firstStoredRow_)];
        if (!t.attn.empty()) {
            // the rebuilt head keeps this row before the trace lets it go
            if (matrix_.rows == firstStoredRow_ && matrix_.layer >= 0) {
                const float* row = t.attention(matrix_.layer, matrix_.head);
                matrix_.packed.insert(matrix_.packed.end(), row, row + firstStoredRow_ + 1);
                ++matrix_.rows;
            }
            attentionBytes_ -= t.attn.size() * sizeof(float);
            std::vector<float>().swap(t.attn);
        }
        ++firstStoredRow_;
    }
}

void TraceStore::rebuildThumbnailRow(int blockRow) {
    const int H = model_.config.nHead;
    for (size_t k = 0; k < thumbs_.size(); ++k) {
        const int l = static_cast<int>(k) / H, h = static_cast<int>(k) % H;
        float* cells = thumbs_[k].data() + static_cast<size_t>(blockRow) * thumbSide_;
        std::fill(cells, cells + thumbSide_, -1.0f);
        for (int r = blockRow * thumbPool_; r < std::min(count(), (blockRow + 1) * thumbPool_);
             ++r) {
            const std::span<const float> row = attentionRow(r, l, h);  // empty once dropped
            for (size_t c = 0; c < row.size(); ++c) {
                float& cell = cells[c / static_cast<size_t>(thumbPool_)];
                cell = std::max(cell, row[c]);
            }
        }
    }
}

bool TraceStore::hasAllRows(int layer, int head) const {
    return firstStoredRow_ == 0 ||
           (matrix_.layer == layer && matrix_.head == head && matrix_.rows >= firstStoredRow_);
}

QString TraceStore::droppedRowsText() const {
    const QString gone =
        firstStoredRow_ == 1 ? tr("token 0") : tr("tokens 0–%1").arg(firstStoredRow_ - 1);
    return tr("The attention rows of %1 were let go to keep the traces within %2, and the cache "
              "policy has let keys go since: those rows cannot be rebuilt from the cache. The "
              "Step tab shows the rows of tokens %3 on.")
        .arg(gone, formatBytes(attentionBudget_))
        .arg(firstStoredRow_);
}

void TraceStore::requestHeadMatrix(int layer, int head) {
    if (hasAllRows(layer, head) || !canRebuildRows() || requested_ == std::pair{layer, head})
        return;
    requested_ = {layer, head};
    emit headMatrixWanted(layer, head);
}

bool TraceStore::setHeadMatrix(int layer, int head, int t, const std::vector<float>& full) {
    requested_ = {-1, -1};
    // it must cover every dropped row, and no more than the tokens there are
    if (t < firstStoredRow_ || t > count() || full.size() != static_cast<size_t>(t) * t)
        return false;
    HeadMatrix m;
    m.layer = layer;
    m.head = head;
    m.rows = t;
    m.packed.reserve(static_cast<size_t>(t) * (t + 1) / 2);
    for (int r = 0; r < t; ++r) {
        const float* row = full.data() + static_cast<size_t>(r) * t;
        m.packed.insert(m.packed.end(), row, row + r + 1);
    }
    matrix_ = std::move(m);
    emit headMatrixReady(layer, head);
    return true;
}

std::span<const float> TraceStore::headThumbnail(int layer, int head) const {
    if (thumbs_.empty()) return {};
    return thumbs_[static_cast<size_t>(layer) * model_.config.nHead + head];
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
