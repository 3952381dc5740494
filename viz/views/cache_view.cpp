// CacheView: block images filled one token column at a time, the layout of layers, the byte
// counts and the growth of the newest slice.
#include "views/cache_view.h"

#include <QLocale>
#include <QPainter>
#include <algorithm>
#include <cmath>

#include "common/colormap.h"
#include "common/labels.h"
#include "common/theme.h"
#include "common/tooltip.h"
#include "common/trace_store.h"
#include "common/transition.h"

namespace kvscope::viz {

namespace {

constexpr int kMargin = 16;
constexpr int kMinRow = 6;
// The thinnest row of a block: 6 px, 3 px past 16 layers (32 layers still fit a 720-line screen).
int minRow(int nLayer) {
    return nLayer > 16 ? 3 : kMinRow;
}
constexpr int kMaxRow = 72;
constexpr int kLegendW = 300;

}  // namespace

CacheView::CacheView(TraceStore* store, QWidget* parent)
    : QWidget(parent), store_(store), transition_(new Transition(this)) {
    setMouseTracking(true);
    setAttribute(Qt::WA_OpaquePaintEvent);
    connect(transition_, &Transition::progressed, this, [this] {
        if (transition_->progress() >= 1) revealingPrefill_ = false;
        update();
    });
    connect(store_, &TraceStore::modelChanged, this, &CacheView::rebuild);
    connect(store_, &TraceStore::tokensReset, this, [this] {
        rebuild();
        // A prefill writes the whole prompt's K and V in one pass: the block appears at once
        // (a step then appends one slice).
        if (used_ > 0 && !recompute_ && store_->promptLength() == used_ && animationMs() > 0) {
            revealingPrefill_ = true;
            transition_->start();
        }
    });
    connect(store_, &TraceStore::tokenAppended, this, &CacheView::appendToken);
    connect(store_, &TraceStore::roundChanged, this, qOverload<>(&QWidget::update));
    connect(store_, &TraceStore::truncated, this, [this](int n) {
        if (n > used_ || n == 0) return rebuild();
        used_ = n;
        recompute_ = store_->kvBytes() == 0;
        animatedToken_ = -1;
        transition_->finish();
        update();
    });
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this, &CacheView::rebuild);
    rebuild();
}

QSize CacheView::sizeHint() const {
    return {1100, std::clamp(180 + nLayer_ * 44, 360, 900)};
}
QSize CacheView::minimumSizeHint() const {
    return {640, std::max(280, 170 + nLayer_ * (minRow(nLayer_) + 1))};
}

double CacheView::transitionProgress() const {
    return transition_->progress();
}

size_t CacheView::usedBytes() const {
    return recompute_ ? 0 : store_->kvBytes();
}
size_t CacheView::allocatedBytes() const {
    return store_->hasModel() && !recompute_ ? store_->kvAllocatedBytes() : 0;
}
int CacheView::allocatedTokens() const {
    const size_t perToken = store_->hasModel() ? store_->model().kvBytesPerToken : 0;
    if (perToken == 0) return 0;
    return static_cast<int>(
        std::min<size_t>(allocatedBytes() / perToken, static_cast<size_t>(capacity_)));
}

size_t CacheView::blockUsedBytes() const {
    return nLayer_ > 0 ? usedBytes() / (2 * static_cast<size_t>(nLayer_)) : 0;
}
size_t CacheView::blockAllocatedBytes() const {
    return nLayer_ > 0 ? allocatedBytes() / (2 * static_cast<size_t>(nLayer_)) : 0;
}

QImage CacheView::blockImage(int layer, bool values) const {
    if (layer < 0 || layer >= nLayer_) return {};
    return images_[static_cast<size_t>(2 * layer + (values ? 1 : 0))];
}

int CacheView::gqaLines() const {
    return store_->hasModel() && store_->config().nHeadKv < store_->config().nHead ? 1 : 0;
}

int CacheView::stripeRows() const {
    if (!store_->hasModel()) return 1;
    const ModelConfig& c = store_->config();
    return std::clamp(c.nHeadKv * c.headDim, 1, kStripeRows);
}

// Column `token` of every block: its key (or value) numbers of all K/V heads, sampled evenly
// down to stripeRows() numbers.
const float* CacheView::columnValues(const StepTrace& t, int layer, bool values,
                                     std::vector<float>& scratch) const {
    const float* base = values ? t.value(layer, 0) : t.key(layer, 0);  // heads are adjacent
    if (!showsError()) return base;
    // What the cache stores, minus the exact numbers: the K/V type's own round trip, per head.
    const ModelConfig& c = store_->config();
    const KvType type = store_->model().cache.type;
    scratch.resize(static_cast<size_t>(c.nHeadKv) * c.headDim);
    for (int g = 0; g < c.nHeadKv; ++g)
        kvRoundTrip(type, base + g * c.headDim, scratch.data() + g * c.headDim, c.headDim);
    for (size_t k = 0; k < scratch.size(); ++k) scratch[k] -= base[k];
    return scratch.data();
}

bool CacheView::showsError() const {
    return showError_ && store_->hasModel() && store_->model().cache.type != KvType::F32;
}

void CacheView::setShowError(bool show) {
    if (show == showError_) return;
    showError_ = show;
    rebuild();
}

bool CacheView::writeColumn(int token) {
    const StepTrace& t = store_->trace(token);
    const ModelConfig& c = store_->config();
    const int n = c.nHeadKv * c.headDim, rows = stripeRows();
    std::vector<float> scratch;
    for (int l = 0; l < nLayer_; ++l)
        for (int which = 0; which < 2; ++which) {
            const size_t b = static_cast<size_t>(2 * l + which);
            float& limit = limits_[b];
            const float* base = columnValues(t, l, which == 1, scratch);
            float m = 0;
            for (int k = 0; k < n; ++k) m = std::max(m, std::abs(base[k]));
            if (m > limit) {
                if (limit > 0) return false;  // the scale grows: every column again
                limit = m;
            }
            const ColorScale scale = ColorScale::symmetric(limit);
            for (int r = 0; r < rows; ++r) {
                const int k = static_cast<int>((static_cast<long long>(r) * n) / rows);
                images_[b].setPixel(token, r, scale.rgb(base[k]));
            }
        }
    return true;
}

void CacheView::rebuild() {
    transition_->finish();
    animatedToken_ = -1;
    revealingPrefill_ = false;
    nLayer_ = store_->hasModel() ? store_->config().nLayer : 0;
    capacity_ = store_->hasModel() ? store_->config().nCtx : 0;
    used_ = 0;
    recompute_ = false;
    noTensors_ = false;
    images_.clear();
    limits_.assign(static_cast<size_t>(2 * nLayer_), 0.0f);
    if (nLayer_ > 0) {
        const int n = std::max(capacity_, store_->count());
        capacity_ = n;
        for (int b = 0; b < 2 * nLayer_; ++b) {
            QImage img(n, stripeRows(), QImage::Format_RGB32);
            img.fill(currentTheme().panel);
            images_.push_back(img);
        }
        used_ = store_->count();
        recompute_ = used_ > 0 && store_->kvBytes() == 0;
        noTensors_ = used_ > 0 && !store_->trace(used_ - 1).hasTensors();
        if (!noTensors_) {
            // Limits first (so no column needs redrawing), then the columns.
            for (int j = 0; j < used_; ++j) {
                const StepTrace& t = store_->trace(j);
                const int m = store_->config().nHeadKv * store_->config().headDim;
                std::vector<float> scratch;
                for (int l = 0; l < nLayer_; ++l)
                    for (int which = 0; which < 2; ++which) {
                        const float* base = columnValues(t, l, which == 1, scratch);
                        float& limit = limits_[static_cast<size_t>(2 * l + which)];
                        for (int k = 0; k < m; ++k) limit = std::max(limit, std::abs(base[k]));
                    }
            }
            for (int j = 0; j < used_; ++j) writeColumn(j);
        }
    }
    updateGeometry();
    update();
}

void CacheView::appendToken(int index) {
    revealingPrefill_ = false;
    if (index != used_ || index >= capacity_ || noTensors_ || !store_->trace(index).hasTensors())
        return rebuild();
    if (!writeColumn(index)) {
        rebuild();
    } else {
        used_ = index + 1;
        recompute_ = store_->kvBytes() == 0;
    }
    if (store_->roundPhase() == TraceStore::RoundPhase::Verified) {
        // a verification pass writes all its slices in one pass: no slice grows alone
        animatedToken_ = -1;
        transition_->finish();
    } else {
        animatedToken_ = index;
        transition_->start();
    }
    update();
}

CacheView::Geometry CacheView::geometry() const {
    Geometry g;
    const Theme& th = currentTheme();
    const QFontMetrics fmT(th.titleFont), fmL(th.labelFont), fmS(th.smallFont);
    g.top =
        kMargin + fmT.height() + 4 + fmL.height() * (2 + gqaLines()) + 4 + 14 + fmL.height() + 6;
    const int bottom = height() - kMargin - colorBarSize(th, 100).height() - 8 - fmS.height() - 6;
    g.gap = 8;
    g.rowH = nLayer_ > 0 ? (bottom - g.top - (nLayer_ - 1) * g.gap) / nLayer_ : 0;
    if (g.rowH < 16) g.gap = 3;
    if (g.rowH < 8) g.gap = 1;
    g.rowH = std::clamp(nLayer_ > 0 ? (bottom - g.top - (nLayer_ - 1) * g.gap) / nLayer_ : 0,
                        minRow(nLayer_), kMaxRow);
    // labels in the label font (the small one on thin rows): room for the widest
    const QFontMetrics fmRow(g.rowH >= fmL.height() ? th.labelFont : th.smallFont);
    g.labelW = fmRow.horizontalAdvance(tr("layer %1").arg(std::max(0, nLayer_ - 1))) + 14;
    g.bytesW = std::max(fmRow.horizontalAdvance(
                            tr("%1 / %2").arg(formatBytes(999 << 20), formatBytes(999 << 20))),
                        fmL.horizontalAdvance(tr("each block"))) +
               8;
    g.kLeft = kMargin + g.labelW;
    g.blockW = std::max(40, (width() - g.kLeft - kMargin - g.bytesW - 24) / 2);
    // More slots than pixels: a whole number of slots per pixel, and the block exactly that wide.
    if (capacity_ > g.blockW) {
        g.tpp = (capacity_ + g.blockW - 1) / g.blockW;
        g.blockW = (capacity_ + g.tpp - 1) / g.tpp;
    }
    g.vLeft = g.kLeft + g.blockW + 24;
    return g;
}

int CacheView::tokensPerPixel() const {
    return nLayer_ > 0 ? geometry().tpp : 1;
}

QString CacheView::scaleText() const {
    return nLayer_ == 0 ? QString() : scaleTexts().front();
}

QStringList CacheView::scaleTexts() const {
    const int tpp = tokensPerPixel();
    const QLocale loc = QLocale::system();
    const QString bytes = tr("%1 B used of %2 B allocated")
                              .arg(loc.toString(static_cast<qulonglong>(usedBytes())),
                                   loc.toString(static_cast<qulonglong>(allocatedBytes())));
    const QString scale =
        tpp > 1 ? tr("Drawn to scale: 1 pixel = %1 token slots (their colours averaged)").arg(tpp)
                : tr("Drawn to scale: one column per token slot");
    const QString shortScale = tpp > 1 ? tr("1 pixel = %1 slots").arg(tpp) : tr("1 pixel = 1 slot");
    QString full = tr("%1 · exactly %2").arg(scale, bytes), shorter = shortScale + " · " + bytes;
    const EvictionPolicy& policy = store_->model().cache.eviction;
    if (policy.evicts() && store_->hasEvictions()) {
        full += tr(" · cache policy %1: crossed-out slots were evicted, and their memory holds "
                   "newer tokens")
                    .arg(QString::fromStdString(policy.text()));
        shorter += tr(" · crossed out: evicted");
    }
    return {full, shorter, bytes};
}

QImage CacheView::pooledImage(size_t b, int tokens, int tpp) const {
    const QImage& src = images_[b];
    const int cols = (tokens + tpp - 1) / tpp, rows = src.height();
    QImage out(std::max(1, cols), rows, QImage::Format_RGB32);
    for (int r = 0; r < rows; ++r) {
        const auto* in = reinterpret_cast<const QRgb*>(src.constScanLine(r));
        auto* line = reinterpret_cast<QRgb*>(out.scanLine(r));
        for (int c = 0; c < cols; ++c) {
            const int from = c * tpp, to = std::min(tokens, from + tpp);
            int red = 0, green = 0, blue = 0;
            for (int j = from; j < to; ++j) {
                red += qRed(in[j]);
                green += qGreen(in[j]);
                blue += qBlue(in[j]);
            }
            const int n = std::max(1, to - from);
            line[c] = qRgb((red + n / 2) / n, (green + n / 2) / n, (blue + n / 2) / n);
        }
    }
    return out;
}

QRect CacheView::blockRect(int layer, bool values) const {
    if (layer < 0 || layer >= nLayer_) return {};
    const Geometry g = geometry();
    return {values ? g.vLeft : g.kLeft, g.top + layer * (g.rowH + g.gap), g.blockW, g.rowH};
}

QRect CacheView::filledRect(int layer, bool values) const {
    const QRect b = blockRect(layer, values);
    if (b.isEmpty() || capacity_ == 0 || recompute_) return {};
    const int tpp = tokensPerPixel();
    const int w =
        tpp > 1 ? (used_ + tpp - 1) / tpp
                : static_cast<int>(std::lround(b.width() * static_cast<double>(used_) / capacity_));
    return {b.left(), b.top(), w, b.height()};
}

void CacheView::paintEvent(QPaintEvent*) {
    QPainter p(this);
    const Theme& th = currentTheme();
    const QFontMetrics fmT(th.titleFont), fmL(th.labelFont), fmS(th.smallFont);
    p.fillRect(rect(), th.background);
    const int W = width();
    if (nLayer_ == 0) {
        p.setFont(th.titleFont);
        p.setPen(th.text);
        p.drawText(QRect(kMargin, kMargin, W - 2 * kMargin, fmT.height()), Qt::AlignLeft,
                   tr("KV cache"));
        p.setFont(th.labelFont);
        p.setPen(th.mutedText);
        p.drawText(rect(), Qt::AlignCenter, tr("Load a model to see its KV cache."));
        return;
    }
    const ModelConfig& c = store_->config();
    const ModelSummary& ms = store_->model();
    const Geometry g = geometry();
    const double prog = transition_->progress();

    // -- the totals and the formula
    const size_t used = usedBytes(), alloc = allocatedBytes();
    p.setFont(th.titleFont);
    p.setPen(th.text);
    const QString head =
        recompute_
            ? tr("KV cache · recompute mode: nothing kept between steps")
            : tr("KV cache · %1 of %2 tokens · %3 of %4 allocated (%5%)")
                  .arg(used_)
                  .arg(capacity_)
                  .arg(formatBytes(used), formatBytes(alloc))
                  .arg(alloc > 0 ? 100.0 * static_cast<double>(used) / static_cast<double>(alloc)
                                 : 0.0,
                       0, 'f', 1);
    // narrower: the bytes without the share, then the tokens alone
    const QString shorter = tr("KV cache · %1 of %2 tokens · %3 of %4")
                                .arg(used_)
                                .arg(capacity_)
                                .arg(formatBytes(used), formatBytes(alloc));
    const QString shortest = tr("KV cache · %1 of %2 tokens").arg(used_).arg(capacity_);
    p.drawText(QRect(kMargin, kMargin, W - 2 * kMargin, fmT.height()),
               Qt::AlignLeft | Qt::AlignVCenter,
               recompute_ ? fmT.elidedText(head, Qt::ElideRight, W - 2 * kMargin)
                          : firstThatFits(fmT, {head, shorter, shortest}, W - 2 * kMargin));
    const size_t denom = c.kvBytesPerToken(1);  // elements per token
    const size_t elem = denom > 0 ? ms.kvBytesPerToken / denom : 0;
    p.setFont(th.labelFont);
    p.setPen(th.mutedText);
    // the per-token formula in a pattern of five places: layers, K/V heads, dims, bytes, total
    const auto perToken = [&](const QString& pattern) {
        return pattern.arg(c.nLayer).arg(c.nHeadKv).arg(c.headDim).arg(elem).arg(
            formatBytes(ms.kvBytesPerToken));
    };
    const QString formulaOnly =
        perToken(tr("Per token: 2 (K and V) × %1 layers × %2 K/V heads × %3 dims × %4 B = %5."));
    const QString withStep = formulaOnly + tr(" Every step appends one slice to each block.");
    // The whole sentence where it fits, else the formula alone, then shorter (never a formula
    // cut before its result).
    const QString formula = firstThatFits(
        fmL,
        {withStep, formulaOnly,
         perToken(tr("Per token: 2 × %1 layers × %2 K/V heads × %3 dims × %4 B = %5")),
         perToken(tr("Per token: 2 × %1 × %2 × %3 × %4 B = %5"))},
        W - 2 * kMargin);
    QString second, secondShort, secondShortest;  // shorter forms, where there are
    if (store_->count() == 0) {
        second = tr("Prefill a prompt to see the cache fill, one slice per token.");
    } else if (recompute_) {
        second = tr("Without a cache every step recomputes K and V of all %1 tokens.").arg(used_);
    } else if (noTensors_) {
        second = tr("Decoded without traces: the blocks show how much is held, not the numbers.");
    } else if (const SpeculativeRound* round = store_->round()) {
        const int rejected = round->drafted() - round->accepted;
        switch (store_->roundPhase()) {
            case TraceStore::RoundPhase::Drafted:
                second =
                    tr("Drafted %n token(s): none has K and V yet; the verification pass "
                       "writes them all at once.",
                       nullptr, round->drafted());
                break;
            case TraceStore::RoundPhase::Verified:
                second =
                    tr("Verification: the K and V of %n token(s) written in one pass "
                       "(outlined); hatched = drafts, red = rejected, rolled back next.",
                       nullptr, static_cast<int>(round->verified.size()));
                break;
            default:
                second = tr("Rolled back: %n rejected draft(s) left the cache; %1 tokens stay.",
                            nullptr, rejected)
                             .arg(round->kept());
                break;
        }
    } else if (revealingPrefill()) {
        second = tr("Prefill: the K and V of all %1 prompt tokens are written in one pass; each "
                    "step then appends one slice.")
                     .arg(used_);
    } else {
        const int block = store_->model().cacheBlockTokens;
        second = block > 0
                     ? tr("The cache takes %1 slots at a time as tokens arrive (%2 of %3 "
                          "allocated now); hatched = allocated, still empty.")
                           .arg(block)
                           .arg(allocatedTokens())
                           .arg(capacity_)
                     : tr("Blocks are allocated for the whole context (%1 slots) when the model "
                          "loads; hatched = allocated, still empty.")
                           .arg(capacity_);
        secondShort = block > 0
                          ? tr("%1 slots at a time: %2 of %3 allocated; hatched = empty.")
                                .arg(block)
                                .arg(allocatedTokens())
                                .arg(capacity_)
                          : tr("All %1 slots allocated at load; hatched = empty.").arg(capacity_);
        secondShortest = tr("%1 of %2 slots allocated").arg(allocatedTokens()).arg(capacity_);
    }
    if (!secondShort.isEmpty())
        second = firstThatFits(fmL, {second, secondShort, secondShortest}, W - 2 * kMargin);
    const int y1 = kMargin + fmT.height() + 4;
    headerLines_.clear();
    p.drawText(QRect(kMargin, y1, W - 2 * kMargin, fmL.height()), Qt::AlignLeft | Qt::AlignVCenter,
               headerLines_.emplace_back(fmL.elidedText(formula, Qt::ElideRight, W - 2 * kMargin)));
    p.drawText(QRect(kMargin, y1 + fmL.height() + 2, W - 2 * kMargin, fmL.height()),
               Qt::AlignLeft | Qt::AlignVCenter,
               headerLines_.emplace_back(fmL.elidedText(second, Qt::ElideRight, W - 2 * kMargin)));
    if (gqaLines() > 0) {
        // Grouped-query attention: the cache is smaller than multi-head attention's by the group
        // size; say both numbers and why.
        const int group = c.nHead / c.nHeadKv;
        p.setPen(th.text);
        const QString own = formatBytes(ms.kvBytesPerToken),
                      mha = formatBytes(ms.kvBytesPerToken * static_cast<size_t>(group));
        const QString gqa = firstThatFits(
            fmL,
            {tr("Grouped-query attention: %1 K/V heads serve %2 query heads, so a token costs "
                "%3 instead of %4 (%5× less).")
                 .arg(c.nHeadKv)
                 .arg(c.nHead)
                 .arg(own, mha)
                 .arg(group),
             tr("GQA: %1 K/V heads serve %2 query heads: %3 a token, not %4 (%5× less).")
                 .arg(c.nHeadKv)
                 .arg(c.nHead)
                 .arg(own, mha)
                 .arg(group),
             tr("GQA: %1 a token, not %2 (%3× less).").arg(own, mha).arg(group)},
            W - 2 * kMargin);
        p.drawText(QRect(kMargin, y1 + 2 * (fmL.height() + 2), W - 2 * kMargin, fmL.height()),
                   Qt::AlignLeft | Qt::AlignVCenter,
                   fmL.elidedText(gqa, Qt::ElideRight, W - 2 * kMargin));
        headerLines_.emplace_back(fmL.elidedText(gqa, Qt::ElideRight, W - 2 * kMargin));
    }

    // -- column heads
    const int headY = g.top - fmL.height() - 6;
    p.setPen(th.text);
    for (int which = 0; which < 2; ++which) {
        const QString name = which == 0 ? tr("K cache") : tr("V cache");
        const QString longHead = tr("%1 (%2 × %3 × %4 per layer)")
                                     .arg(name)
                                     .arg(c.nHeadKv)
                                     .arg(capacity_)
                                     .arg(c.headDim);
        const QString shortHead =
            tr("%1 (%2 × %3 × %4)").arg(name).arg(c.nHeadKv).arg(capacity_).arg(c.headDim);
        const QRect r(which == 0 ? g.kLeft : g.vLeft, headY, g.blockW + 8, fmL.height());
        p.drawText(r, Qt::AlignLeft | Qt::AlignVCenter,
                   firstThatFits(fmL, {longHead, shortHead, name}, r.width()));
    }
    const int bytesLeft = g.vLeft + g.blockW + 14;
    p.drawText(QRect(bytesLeft, headY, W - kMargin - bytesLeft, fmL.height()),
               Qt::AlignLeft | Qt::AlignVCenter, tr("each block"));

    // -- the blocks
    const bool drawStripes = !recompute_ && !noTensors_;
    const int labelStep = std::max(1, (fmS.height() + g.rowH + g.gap - 1) / (g.rowH + g.gap));
    QBrush hatch(th.grid, Qt::BDiagPattern);
    for (int l = 0; l < nLayer_; ++l) {
        for (int which = 0; which < 2; ++which) {
            const QRect b = blockRect(l, which == 1);
            p.fillRect(b, th.panel);
            const int hatched =
                g.tpp > 1 ? (allocatedTokens() + g.tpp - 1) / g.tpp
                          : static_cast<int>(std::lround(
                                b.width() * static_cast<double>(allocatedTokens()) / capacity_));
            p.fillRect(QRect(b.left(), b.top(), hatched, b.height()), hatch);
            const int shown = recompute_ ? 0 : used_;
            const int animated = animatedToken_ >= 0 && prog < 1 ? 1 : 0;
            const int steady = std::max(0, shown - animated);
            const double slot =
                g.tpp > 1 ? 1.0 / g.tpp : b.width() / static_cast<double>(capacity_);
            if (steady > 0) {
                const int fw = g.tpp > 1 ? (steady + g.tpp - 1) / g.tpp
                                         : static_cast<int>(std::lround(steady * slot));
                const QRect f(b.left(), b.top(), fw, b.height());
                if (drawStripes && g.tpp > 1) {
                    // Pooled: each pixel column is the mean of its tpp slots (never resampled).
                    const QImage pooled =
                        pooledImage(static_cast<size_t>(2 * l + which), steady, g.tpp);
                    p.setRenderHint(QPainter::SmoothPixmapTransform, false);
                    p.drawImage(f, pooled, QRect(0, 0, fw, stripeRows()));
                } else if (drawStripes) {
                    p.setRenderHint(QPainter::SmoothPixmapTransform, false);
                    p.drawImage(f, images_[static_cast<size_t>(2 * l + which)],
                                QRect(0, 0, steady, stripeRows()));
                } else {
                    p.fillRect(f, th.mutedText);
                }
                // The cache lab: slots whose token the policy let go are crossed out (their
                // rows now hold newer tokens: the cache keeps only what the policy keeps).
                if (store_->hasEvictions()) {
                    QColor veil = th.panel;
                    veil.setAlphaF(0.8f);
                    const QBrush cross(th.mutedText, Qt::DiagCrossPattern);
                    for (int pos = 0; pos < steady; ++pos) {
                        if (store_->evictedAt(l, pos) == TraceStore::kHeld) continue;
                        const QRectF slotRect(b.left() + (g.tpp > 1 ? pos / g.tpp : pos * slot),
                                              b.top(), std::max(1.0, g.tpp > 1 ? 1.0 : slot),
                                              b.height());
                        p.fillRect(slotRect, veil);
                        p.fillRect(slotRect, cross);
                    }
                }
            }
            const SpeculativeRound* round = store_->roundPhase() == TraceStore::RoundPhase::Verified
                                                ? store_->round()
                                                : nullptr;
            if (shown > 0 && round && round->first < shown) {
                // The verification pass: its slices outlined as one block, the drafts' hatched,
                // the rejected drafts' veiled in red (they leave with the rollback).
                auto slotX = [&](int pos) {
                    return g.tpp > 1 ? b.left() + pos / g.tpp : b.left() + pos * slot;
                };
                for (int pos = round->first + 1; pos < shown; ++pos) {
                    const QRectF sr(slotX(pos), b.top(), std::max(1.0, g.tpp > 1 ? 1.0 : slot),
                                    b.height());
                    if (store_->draftVerdict(pos) < 0) {
                        QColor veil(0xC6, 0x28, 0x28);
                        veil.setAlphaF(0.45f);
                        p.fillRect(sr, veil);
                    }
                    p.fillRect(sr, QBrush(th.text, Qt::BDiagPattern));
                }
                p.setPen(QPen(th.fresh, penWidth(2)));
                p.setBrush(Qt::NoBrush);
                p.drawRect(QRectF(slotX(round->first) - 1, b.top() - 1,
                                  std::max(3.0, slotX(shown) - slotX(round->first)) + 1,
                                  b.height() + 2));
            } else if (shown > 0 && revealingPrefill()) {
                // The prefill's block: every prompt slice at once, fading in, outlined as one
                const int fw = g.tpp > 1 ? (shown + g.tpp - 1) / g.tpp
                                         : static_cast<int>(std::lround(shown * slot));
                const QRect f(b.left(), b.top(), fw, b.height());
                QColor veil = th.panel;
                veil.setAlphaF(static_cast<float>(1.0 - prog));
                p.fillRect(f, veil);
                p.setPen(QPen(th.fresh, penWidth(2)));
                p.setBrush(Qt::NoBrush);
                p.drawRect(f.adjusted(-1, -1, 0, 0));
            } else if (shown > 0) {
                // The newest slice: it grows in from its left edge, outlined.
                const int last = shown - 1;
                const double x0 = b.left() + last * slot;
                const double w = std::max(slot, 3.0);
                if (animated) {
                    const QRectF grow(x0, b.top(), slot * prog, b.height());
                    if (drawStripes) {
                        p.drawImage(grow, images_[static_cast<size_t>(2 * l + which)],
                                    QRectF(last, 0, 1, stripeRows()));
                    } else {
                        p.fillRect(grow, th.mutedText);
                    }
                }
                p.setPen(QPen(th.fresh, penWidth(2)));
                p.setBrush(Qt::NoBrush);
                p.drawRect(QRectF(x0 - 1, b.top() - 1, w + 1, b.height() + 2));
            }
            p.setPen(th.grid);
            p.setBrush(Qt::NoBrush);
            p.drawRect(b.adjusted(-1, -1, 0, 0));
        }
        const QRect k = blockRect(l, false);
        // every labelStep-th layer and the last, never two labels on top of each other
        if ((l % labelStep == 0 && nLayer_ - 1 - l >= labelStep) || l == nLayer_ - 1) {
            p.setFont(g.rowH >= fmL.height() ? th.labelFont : th.smallFont);
            const QFontMetrics fmRow(p.font());
            p.setPen(th.text);
            p.drawText(QRect(kMargin, k.top() - 6, g.labelW - 10, k.height() + 12),
                       Qt::AlignRight | Qt::AlignVCenter, tr("layer %1").arg(l));
            p.setPen(th.mutedText);
            p.drawText(QRect(bytesLeft, k.top() - 6, W - kMargin - bytesLeft, k.height() + 12),
                       Qt::AlignLeft | Qt::AlignVCenter,
                       fmRow.elidedText(tr("%1 / %2").arg(formatBytes(blockUsedBytes()),
                                                          formatBytes(blockAllocatedBytes())),
                                        Qt::ElideRight, W - kMargin - bytesLeft));
        }
    }

    // -- token slot axis under the last layer, and the legend
    const QRect lastK = blockRect(nLayer_ - 1, false), lastV = blockRect(nLayer_ - 1, true);
    p.setFont(th.smallFont);
    p.setPen(th.mutedText);
    for (const QRect& b : {lastK, lastV}) {
        const int y = b.bottom() + 4;
        const int usedX = filledRect(nLayer_ - 1, false).width();
        p.drawText(QRect(b.left(), y, b.width() / 2, fmS.height()), Qt::AlignLeft, tr("slot 0"));
        // the last slot's number whole (right-aligned in half a narrow block it lost its first
        // digits: "55 (n_ctx)" for slot 255)
        const QString end =
            firstThatFits(fmS,
                          {tr("slot %1 (n_ctx)").arg(capacity_ - 1),
                           tr("%1 (n_ctx)").arg(capacity_ - 1), QString::number(capacity_ - 1)},
                          b.width() / 2);
        p.drawText(QRect(b.left() + b.width() / 2, y, b.width() / 2, fmS.height()), Qt::AlignRight,
                   end);
        if (used_ > 0 && !recompute_) {
            const int x = b.left() + usedX;
            p.setPen(th.fresh);
            const QString t = tr("%1 used").arg(used_);
            const int tw = fmS.horizontalAdvance(t);
            const int slotW = fmS.horizontalAdvance(tr("slot 0")) + 8;
            const int endW = fmS.horizontalAdvance(end) + 8;
            const int tx = std::clamp(x - tw / 2, b.left() + slotW, b.right() - endW - tw);
            if (tx >= b.left() + slotW)
                p.drawText(QRect(tx, y, tw + 2, fmS.height()), Qt::AlignLeft, t);
            p.setPen(th.mutedText);
        }
    }
    const QSize ls = colorBarSize(th, kLegendW);
    int scaleLeft = kMargin;
    if (drawStripes && used_ > 0) {
        const QString legend =
            showsError() ? tr("%1 error: stored − exact, scaled per block")
                               .arg(QString::fromStdString(kvTypeName(store_->model().cache.type)))
                         : tr("K and V numbers, scaled per block");
        const int legendW = std::max(kLegendW, fmS.horizontalAdvance(legend) + 4);  // whole
        paintColorBar(p, QRect(kMargin, height() - kMargin - ls.height(), legendW, ls.height()),
                      ColorScale::symmetric(1), legend, th);
        scaleLeft += legendW + 24;
    }
    p.setFont(th.smallFont);
    p.setPen(th.mutedText);
    const QRect scaleRect(scaleLeft, height() - kMargin - ls.height(), W - kMargin - scaleLeft,
                          ls.height());
    // the longest form whose wrapped lines fit beside the legend
    const QStringList forms = scaleTexts();
    paintedScale_ = forms.back();
    for (const QString& form : forms)
        if (fmS.boundingRect(scaleRect, Qt::AlignLeft | Qt::TextWordWrap, form).height() <=
            scaleRect.height()) {
            paintedScale_ = form;
            break;
        }
    scaleFits_ =
        fmS.boundingRect(scaleRect, Qt::AlignLeft | Qt::TextWordWrap, paintedScale_).height() <=
        scaleRect.height();
    p.drawText(scaleRect, Qt::AlignLeft | Qt::AlignVCenter | Qt::TextWordWrap, paintedScale_);
}

bool CacheView::event(QEvent* event) {
    const bool tip = answerToolTip(this, event, [this](QPoint pos) {
        for (int l = 0; l < nLayer_; ++l)
            for (int which = 0; which < 2; ++which) {
                const QRect b = blockRect(l, which == 1);
                if (!b.contains(pos)) continue;
                const int tpp = tokensPerPixel();
                const int slot = std::clamp(
                    tpp > 1 ? (pos.x() - b.left()) * tpp
                            : static_cast<int>((pos.x() - b.left()) *
                                               static_cast<double>(capacity_) / b.width()),
                    0, capacity_ - 1);
                const QString what = which == 0 ? tr("K") : tr("V");
                if (slot < used_ && !recompute_)
                    return tr("layer %1 %2, slot %3: token “%4” (%5 numbers, %6)")
                        .arg(l)
                        .arg(what)
                        .arg(slot)
                        .arg(tokenLabel(store_->trace(slot).text))
                        .arg(store_->config().nHeadKv * store_->config().headDim)
                        .arg(formatBytes(store_->model().kvBytesPerToken /
                                         (2 * static_cast<size_t>(nLayer_))));
                return slot < allocatedTokens()
                           ? tr("layer %1 %2, slot %3: allocated, empty").arg(l).arg(what).arg(slot)
                           : tr("layer %1 %2, slot %3: not allocated yet")
                                 .arg(l)
                                 .arg(what)
                                 .arg(slot);
            }
        return QString();
    });
    return tip || QWidget::event(event);
}

}  // namespace kvscope::viz
