// SharingView: the layout (query heads, fan-in lines, K/V blocks, the bytes), clicks and tooltips.
#include "views/sharing_view.h"

#include <QImage>
#include <QMouseEvent>
#include <QPainter>
#include <algorithm>
#include <cmath>

#include "analysis/kv_memory.h"
#include "common/colormap.h"
#include "common/figure.h"
#include "common/labels.h"
#include "common/theme.h"
#include "common/tooltip.h"
#include "common/trace_store.h"

namespace kvscope::viz {
namespace {

constexpr int kMargin = 16;
constexpr int kHeadsH = 44;      // the row of query heads
constexpr int kMaxHeadW = 150;   // widest a query head's box is drawn
constexpr int kMaxBlockW = 150;  // widest a K or V block is drawn
constexpr int kFanH = 56;        // room for the lines from heads to their K/V head
constexpr int kMinFanH = 24;     // … where the view is too low for kFanH
constexpr int kMinBlocksH = 24;  // the least height of a K or V block

QString thousands(uint64_t n) {
    return QString::fromStdString(kvmem::groupDigits(n));
}

// "query heads 4–7", "query head 3", "all 8 query heads".
QString headRange(int first, int last, int nHead) {
    if (first == 0 && last == nHead - 1 && nHead > 1)
        return SharingView::tr("all %1 query heads").arg(nHead);
    if (first == last) return SharingView::tr("query head %1").arg(first);
    return SharingView::tr("query heads %1–%2").arg(first).arg(last);
}

}  // namespace

SharingView::SharingView(TraceStore* store, QWidget* parent) : QWidget(parent), store_(store) {
    setMouseTracking(true);
    setAttribute(Qt::WA_OpaquePaintEvent);
    for (auto signal :
         {&TraceStore::modelChanged, &TraceStore::tokensReset, &TraceStore::selectionChanged})
        connect(store_, signal, this, qOverload<>(&QWidget::update));
    connect(store_, &TraceStore::tokenAppended, this, qOverload<>(&QWidget::update));
    connect(store_, &TraceStore::truncated, this, qOverload<>(&QWidget::update));
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this,
            qOverload<>(&QWidget::update));
}

QSize SharingView::sizeHint() const {
    return {1000, 620};
}

QSize SharingView::minimumSizeHint() const {
    return {560, 460};
}

int SharingView::groupOf(int head) const {
    if (!store_->hasModel()) return 0;
    return store_->config().kvHeadOf(head);
}

QColor SharingView::groupColor(int kv) {
    // Okabe–Ito hues (colour-blind safe), the themes' accents (used for the selection) last.
    static const QRgb hues[] = {0x0072B2, 0xE69F00, 0x009E73, 0xCC79A7,
                                0x56B4E9, 0xF0E442, 0xD55E00, 0x999999};
    return QColor::fromRgb(hues[((kv % 8) + 8) % 8]);
}

int SharingView::elementBits() const {
    if (!store_->hasModel()) return 32;
    const ModelConfig& c = store_->config();
    const uint64_t elements = 2ull * uint64_t(c.nLayer) * uint64_t(c.nHeadKv) * uint64_t(c.headDim);
    const uint64_t bits = uint64_t(store_->model().kvBytesPerToken) * 8;
    if (elements == 0 || bits == 0 || bits % elements != 0) return 32;
    return static_cast<int>(bits / elements);
}

uint64_t SharingView::bytesPerToken() const {
    if (!store_->hasModel()) return 0;
    return kvmem::bytesPerToken(kvmem::fromConfig(store_->config(), 0), elementBits());
}

uint64_t SharingView::mhaBytesPerToken() const {
    if (!store_->hasModel()) return 0;
    return kvmem::mhaBytesPerToken(kvmem::fromConfig(store_->config(), 0), elementBits());
}

QString SharingView::kindName() const {
    if (!store_->hasModel()) return {};
    const ModelConfig& c = store_->config();
    if (c.nHeadKv == c.nHead) return QStringLiteral("MHA");
    if (c.nHeadKv == 1) return QStringLiteral("MQA");
    return QStringLiteral("GQA");
}

QString SharingView::subtitleText() const {
    if (!store_->hasModel()) return {};
    const ModelConfig& c = store_->config();
    const int nHead = c.nHead, nKv = c.nHeadKv, per = nHead / nKv;
    if (nKv == nHead)
        return tr("Nothing is shared: each of the %1 query heads has its own K and V in the cache "
                  "(%1 K/V heads). Grouped-query or multi-query attention would store fewer.")
            .arg(nHead);
    if (nKv == 1)
        return tr("All %1 query heads share one K and one V: the cache stores a single K/V head "
                  "per layer, %1 times less than plain multi-head attention.")
            .arg(nHead);
    return tr("Each group of %1 query heads reads one K/V head: the cache stores %2 K/V heads "
              "instead of %3, %1 times less than plain multi-head attention.")
        .arg(per)
        .arg(nKv)
        .arg(nHead);
}

SharingView::Layout SharingView::layout() const {
    const Theme& th = currentTheme();
    const QFontMetrics fmT(th.titleFont), fmL(th.labelFont);
    const int w = width() - 2 * kMargin;
    Layout L;
    L.title = QRect(kMargin, kMargin, w, fmT.height());
    // the explanation, wrapped to as many lines as it needs (at most three)
    const int lines = std::clamp(
        fmL.boundingRect(QRect(0, 0, w, 10000), Qt::TextWordWrap, subtitleText()).height() /
            std::max(1, fmL.lineSpacing()),
        1, 3);
    L.subtitle = QRect(kMargin, L.title.bottom() + 4, w, fmL.lineSpacing() * lines);
    L.headsLabel = QRect(kMargin, L.subtitle.bottom() + 10, w, fmL.height());
    L.heads = QRect(kMargin, L.headsLabel.bottom() + 4, w, kHeadsH);
    const int bytesH = fmL.lineSpacing() * 3 + 24;
    L.bytes = QRect(kMargin, height() - kMargin - bytesH, w, bytesH);
    L.blocksLabel = QRect(kMargin, L.bytes.top() - 12 - fmL.height(), w, fmL.height());
    // K and V labels above the blocks, the K/V head's name below them. Where the blocks would be
    // lower than kMinBlocksH (a small exported figure), the line under them goes, then the fan
    // shortens: nothing is drawn over anything else.
    const int nameH = QFontMetrics(th.smallFont).height();
    const auto blocksH = [&](int fan, int above) {
        return above - 12 - nameH - (L.heads.bottom() + fan) - fmL.height() - 8;
    };
    int fan = kFanH;
    if (blocksH(fan, L.blocksLabel.top()) < kMinBlocksH) {
        L.blocksLabel = QRect();
        fan = std::clamp(kFanH - (kMinBlocksH - blocksH(kFanH, L.bytes.top())), kMinFanH, kFanH);
    }
    const int above = L.blocksLabel.isNull() ? L.bytes.top() : L.blocksLabel.top();
    L.blocks = QRect(kMargin, L.heads.bottom() + fan + fmL.height() + 8, w,
                     std::max(kMinBlocksH, blocksH(fan, above)));
    return L;
}

QRect SharingView::headRect(int head) const {
    if (!store_->hasModel()) return {};
    const int n = store_->config().nHead;
    if (head < 0 || head >= n) return {};
    const QRect row = layout().heads;
    const int gap = row.width() / n >= 24 ? 6 : 2;
    const int boxW = std::min(kMaxHeadW, (row.width() - (n - 1) * gap) / n);
    const int used = n * boxW + (n - 1) * gap;
    const int left = row.left() + (row.width() - used) / 2;
    return {left + head * (boxW + gap), row.top(), boxW, row.height()};
}

QRect SharingView::blockRect(int kv, bool value) const {
    if (!store_->hasModel()) return {};
    const ModelConfig& c = store_->config();
    if (kv < 0 || kv >= c.nHeadKv) return {};
    const int per = c.nHead / c.nHeadKv;
    const QRect a = headRect(kv * per), b = headRect(kv * per + per - 1);
    const int spanW = b.right() - a.left() + 1;
    const int gap = spanW >= 60 ? 6 : 2;
    const int blockW = std::max(4, std::min(kMaxBlockW, (spanW - gap - 4) / 2));
    const int left = a.left() + (spanW - (2 * blockW + gap)) / 2;
    const QRect row = layout().blocks;
    return {left + (value ? blockW + gap : 0), row.top(), blockW, row.height()};
}

std::optional<int> SharingView::headAt(const QPoint& pos) const {
    if (!store_->hasModel()) return std::nullopt;
    for (int h = 0; h < store_->config().nHead; ++h)
        if (headRect(h).contains(pos)) return h;
    return std::nullopt;
}

std::optional<std::pair<int, bool>> SharingView::blockAt(const QPoint& pos) const {
    if (!store_->hasModel()) return std::nullopt;
    for (int kv = 0; kv < store_->config().nHeadKv; ++kv)
        for (bool value : {false, true})
            if (blockRect(kv, value).contains(pos)) return std::make_pair(kv, value);
    return std::nullopt;
}

QImage SharingView::blockImage(int kv, bool value, double limit) const {
    const int t = store_->count();
    if (t == 0 || !store_->trace(t - 1).hasTensors()) return {};
    const int d = store_->config().headDim, layer = store_->layer();
    const ColorScale scale = ColorScale::symmetric(limit);
    QImage img(d, t, QImage::Format_RGB32);
    for (int j = 0; j < t; ++j) {
        const StepTrace& s = store_->trace(j);
        const float* row = value ? s.value(layer, kv) : s.key(layer, kv);
        auto* line = reinterpret_cast<QRgb*>(img.scanLine(j));
        for (int x = 0; x < d; ++x) line[x] = scale.rgb(row[x]);
    }
    return img;
}

void SharingView::paintEvent(QPaintEvent*) {
    QPainter p(this);
    const Theme& th = currentTheme();
    const QFontMetrics fmT(th.titleFont), fmL(th.labelFont), fmS(th.smallFont);
    p.fillRect(rect(), th.background);
    const Layout L = layout();
    if (!store_->hasModel()) {
        p.setFont(th.titleFont);
        p.setPen(th.text);
        p.drawText(L.title, Qt::AlignLeft | Qt::AlignVCenter, tr("K/V sharing"));
        p.setFont(th.labelFont);
        p.setPen(th.mutedText);
        p.drawText(rect().adjusted(kMargin, L.subtitle.top(), -kMargin, -kMargin),
                   Qt::AlignCenter | Qt::TextWordWrap,
                   tr("Load a model to see which query heads share K/V heads."));
        return;
    }
    const ModelConfig& c = store_->config();
    const int nHead = c.nHead, nKv = c.nHeadKv, per = nHead / nKv;
    const int layer = store_->layer(), selHead = store_->head(), selKv = store_->kvHead();
    const int tokens = store_->count();
    const QString kind = kindName();

    // -- title and what sharing means for this model
    p.setFont(th.titleFont);
    p.setPen(th.text);
    const QString longKind = kind == "MHA"   ? tr("multi-head attention (MHA)")
                             : kind == "MQA" ? tr("multi-query attention (MQA)")
                                             : tr("grouped-query attention (GQA)");
    const QString title = tr("K/V sharing · layer %1 · %2: %3 query heads read %4 K/V head%5")
                              .arg(layer)
                              .arg(longKind)
                              .arg(nHead)
                              .arg(nKv)
                              .arg(nKv == 1 ? QString() : QStringLiteral("s"));
    const QString shortTitle = tr("K/V sharing · layer %1 · %2: %3 query heads, %4 K/V")
                                   .arg(layer)
                                   .arg(kind)
                                   .arg(nHead)
                                   .arg(nKv);
    p.drawText(L.title, Qt::AlignLeft | Qt::AlignVCenter,
               firstThatFits(fmT, {title, shortTitle}, L.title.width()));
    p.setFont(th.labelFont);
    p.setPen(th.text);
    p.drawText(L.subtitle, Qt::AlignLeft | Qt::AlignTop | Qt::TextWordWrap, subtitleText());

    // -- the query heads, coloured by the K/V head they read
    p.setPen(th.mutedText);
    const bool screen = !paintingFigure(this);  // the mouse's hints on a screen only
    const QString headsLong =
        tr("Query heads (%1), coloured by the K/V head they read").arg(nHead) +
        (screen ? tr(" · click one to inspect it") : QString());
    p.drawText(
        L.headsLabel, Qt::AlignLeft | Qt::AlignVCenter,
        firstThatFits(fmL, {headsLong, tr("Query heads (%1) · colour: K/V head read").arg(nHead)},
                      L.headsLabel.width()));
    p.setRenderHint(QPainter::Antialiasing, true);
    // fan-in lines first, under the boxes: from each head to its K/V head's pair of blocks
    for (int h = 0; h < nHead; ++h) {
        const int kv = c.kvHeadOf(h);
        const QRect hr = headRect(h);
        const QRect pair = blockRect(kv, false).united(blockRect(kv, true));
        const QPointF from(hr.center().x() + 0.5, hr.bottom() + 1);
        const QPointF to(pair.center().x() + 0.5, pair.top() - fmL.height() - 10);
        QColor col = groupColor(kv);
        if (kv != selKv) col.setAlphaF(0.55f);
        p.setPen(QPen(col, kv == selKv ? 3.5 : 2));
        p.drawLine(from, to);
    }
    p.setRenderHint(QPainter::Antialiasing, false);
    const QFont& headFont = headRect(0).width() >= 40 ? th.labelFont : th.smallFont;
    const QFontMetrics fmH(headFont);
    for (int h = 0; h < nHead; ++h) {
        const QRect r = headRect(h);
        const QColor col = groupColor(c.kvHeadOf(h));
        p.fillRect(r, col);
        p.setFont(headFont);
        p.setPen(textColorOn(col.rgb()));
        const QString longLabel = tr("q%1").arg(h), shortLabel = QString::number(h);
        if (fmH.horizontalAdvance(longLabel) + 4 <= r.width())
            p.drawText(r, Qt::AlignCenter, longLabel);
        else if (fmH.horizontalAdvance(shortLabel) + 2 <= r.width())
            p.drawText(r, Qt::AlignCenter, shortLabel);
    }
    // the selected head (the theme's text colour: the group colours stay the groups')
    p.setBrush(Qt::NoBrush);
    p.setPen(QPen(th.text, 3));
    p.drawRect(headRect(selHead).adjusted(-3, -3, 2, 2));

    // -- the cache blocks: K and V of each K/V head in this layer
    double limit = 0;
    if (tokens > 0 && store_->trace(tokens - 1).hasTensors())
        for (int j = 0; j < tokens; ++j)
            for (int kv = 0; kv < nKv; ++kv)
                for (int x = 0; x < c.headDim; ++x) {
                    limit = std::max(limit, double(std::abs(store_->trace(j).key(layer, kv)[x])));
                    limit = std::max(limit, double(std::abs(store_->trace(j).value(layer, kv)[x])));
                }
    const int blockW = blockRect(0, false).width();
    const QFont& blockFont = blockW >= 28 ? th.labelFont : th.smallFont;
    const QFontMetrics fmB(blockFont);
    for (int kv = 0; kv < nKv; ++kv) {
        const QColor col = groupColor(kv);
        for (bool value : {false, true}) {
            // a frame of 4 pixels in the group's colour around the cached numbers
            const QRect r = blockRect(kv, value);
            p.fillRect(r, col);
            const QRect inner = r.adjusted(4, 4, -4, -4);
            p.fillRect(inner, th.panel);
            const QImage img = blockImage(kv, value, limit);
            if (!img.isNull() && inner.width() > 0 && inner.height() > 0) p.drawImage(inner, img);
            // "K" / "V" above the block, in the group's colour
            p.setFont(blockFont);
            p.setPen(th.text);
            const QString name = blockW >= 60 ? (value ? tr("V%1").arg(kv) : tr("K%1").arg(kv))
                                              : (value ? tr("V") : tr("K"));
            if (fmB.horizontalAdvance(name) <= r.width() + 4)
                p.drawText(
                    QRect(r.left() - 2, r.top() - fmB.height() - 8, r.width() + 4, fmB.height()),
                    Qt::AlignCenter, name);
        }
        // the K/V head's name and who reads it, under the pair
        const QRect pair = blockRect(kv, false).united(blockRect(kv, true));
        const QRect span = headRect(kv * per).united(headRect(kv * per + per - 1));
        const QRect below(span.left(), pair.bottom() + 8, span.width(), fmS.height());
        p.setFont(th.smallFont);
        p.setPen(kv == selKv ? th.text : th.mutedText);
        const QString longName = per > 1 ? tr("K/V head %1 · read by %2")
                                               .arg(kv)
                                               .arg(headRange(kv * per, kv * per + per - 1, nHead))
                                         : tr("K/V head %1 · query head %1 only").arg(kv);
        const QString mid = tr("K/V head %1").arg(kv);
        const QString text = fmS.horizontalAdvance(longName) <= below.width() ? longName
                             : fmS.horizontalAdvance(mid) <= below.width()    ? mid
                                                                              : QString::number(kv);
        if (fmS.horizontalAdvance(text) <= below.width() + 6)
            p.drawText(below.adjusted(-3, 0, 3, 0), Qt::AlignCenter, text);
        if (kv == selKv) {  // the selected head's group: its blocks outlined
            p.setPen(QPen(th.text, 2, Qt::DashLine));
            p.drawRect(pair.adjusted(-5, -5, 4, 4));
        }
    }
    const int elementBytesX100 = elementBits() * 100 / 8;
    const QString elementBytes = elementBytesX100 % 100 == 0
                                     ? QString::number(elementBytesX100 / 100)
                                     : QString::number(elementBytesX100 / 100.0, 'f', 2);
    p.setFont(th.labelFont);
    p.setPen(th.mutedText);
    const QString blocksText =
        (tokens > 0
             ? tr("The cache of layer %1: K and V of each K/V head, %2 tokens (rows) × %3 dims "
                  "(columns)")
                   .arg(layer)
                   .arg(tokens)
                   .arg(c.headDim)
             : tr("The cache of layer %1: K and V of each K/V head (empty: prefill a prompt to "
                  "fill it)")
                   .arg(layer)) +
        (screen ? tr(" · click a block to select its first query head") : QString());
    const QString blocksShort =
        tokens > 0 ? tr("Layer %1's cache: K and V per K/V head, %2 tokens × %3 dims")
                             .arg(layer)
                             .arg(tokens)
                             .arg(c.headDim) +
                         (screen ? tr(" · click to select") : QString())
                   : tr("Layer %1's cache: K and V per K/V head (empty)").arg(layer);
    if (!L.blocksLabel.isNull())
        p.drawText(L.blocksLabel, Qt::AlignLeft | Qt::AlignVCenter,
                   firstThatFits(fmL, {blocksText, blocksShort}, L.blocksLabel.width()));

    // -- the bytes: this model's per token against plain multi-head attention's
    const uint64_t actual = bytesPerToken(), mha = mhaBytesPerToken(), saved = mha - actual;
    const int rowH = fmL.lineSpacing() + 4;
    const int labelW = std::min(L.bytes.width() / 3, fmL.horizontalAdvance(tr("as if MHA")) + 40);
    const int barMax = std::max(40, L.bytes.width() / 4);
    const QRect mhaRow(L.bytes.left(), L.bytes.top(), L.bytes.width(), rowH);
    const QRect ownRow(L.bytes.left(), mhaRow.bottom() + 4, L.bytes.width(), rowH);
    const QRect savedRow(L.bytes.left(), ownRow.bottom() + 6, L.bytes.width(), rowH);
    p.drawText(QRect(mhaRow.left(), mhaRow.top(), labelW, rowH), Qt::AlignLeft | Qt::AlignVCenter,
               tr("as if MHA"));
    p.setPen(th.mutedText);
    p.drawText(QRect(ownRow.left(), ownRow.top(), labelW, rowH), Qt::AlignLeft | Qt::AlignVCenter,
               tr("this model"));
    const QRect mhaBar(mhaRow.left() + labelW, mhaRow.top() + 2, barMax, rowH - 4);
    const int ownW =
        mha > 0 ? std::max(2, int(std::lround(double(barMax) * double(actual) / double(mha)))) : 0;
    const QRect ownBar(ownRow.left() + labelW, ownRow.top() + 2, ownW, rowH - 4);
    QColor ghost = th.mutedText;
    ghost.setAlphaF(0.18f);
    p.fillRect(mhaBar, ghost);
    p.setPen(QPen(th.mutedText, 1, Qt::DashLine));
    p.drawRect(mhaBar.adjusted(0, 0, -1, -1));
    p.fillRect(ownBar, groupColor(selKv));
    const int textLeft = mhaBar.right() + 12;
    const int textW = L.bytes.right() - textLeft;
    // the arithmetic where it fits, else the shorter forms
    auto arithmetic = [&](int heads, uint64_t bytes) {
        const QString full =
            tr("2 (K and V) × %1 layers × %2 K/V heads × %3 dims × %4 B = %5 B per token")
                .arg(c.nLayer)
                .arg(heads)
                .arg(c.headDim)
                .arg(elementBytes, thousands(bytes));
        const QString mid = tr("2 × %1 layers × %2 K/V heads × %3 dims × %4 B = %5 B per token")
                                .arg(c.nLayer)
                                .arg(heads)
                                .arg(c.headDim)
                                .arg(elementBytes, thousands(bytes));
        return firstThatFits(
            fmL, {full, mid, tr("%1 K/V heads: %2 B per token").arg(heads).arg(thousands(bytes))},
            textW);
    };
    p.setPen(th.text);
    p.drawText(QRect(textLeft, mhaRow.top(), textW, rowH), Qt::AlignLeft | Qt::AlignVCenter,
               fmL.elidedText(arithmetic(nHead, mha), Qt::ElideRight, textW));
    p.drawText(QRect(textLeft, ownRow.top(), textW, rowH), Qt::AlignLeft | Qt::AlignVCenter,
               fmL.elidedText(arithmetic(nKv, actual), Qt::ElideRight, textW));
    QString savedText;
    if (saved == 0)
        savedText =
            tr("Nothing is shared, so nothing is saved: this model's cache is the plain "
               "multi-head size.");
    else
        savedText = tr("Sharing saves %1 B per token (%2 times less); over the %3-token context "
                       "%4 instead of %5.")
                        .arg(thousands(saved))
                        .arg(per)
                        .arg(thousands(uint64_t(c.nCtx)))
                        .arg(formatBytes(size_t(actual) * size_t(c.nCtx)),
                             formatBytes(size_t(mha) * size_t(c.nCtx)));
    QFont bold = th.labelFont;
    bold.setBold(true);
    p.setFont(bold);
    const QFontMetrics fmBold(bold);
    if (saved > 0 && fmBold.horizontalAdvance(savedText) > savedRow.width())
        savedText = tr("Sharing saves %1 B per token (%2× less): %3 instead of %4 at %L5 tokens")
                        .arg(thousands(saved))
                        .arg(per)
                        .arg(formatBytes(size_t(actual) * size_t(c.nCtx)),
                             formatBytes(size_t(mha) * size_t(c.nCtx)))
                        .arg(c.nCtx);
    if (saved > 0 && fmBold.horizontalAdvance(savedText) > savedRow.width())
        savedText = tr("Saves %1 B per token (%2× less)").arg(thousands(saved)).arg(per);
    p.drawText(savedRow, Qt::AlignLeft | Qt::AlignVCenter,
               fmBold.elidedText(savedText, Qt::ElideRight, savedRow.width()));
}

void SharingView::mousePressEvent(QMouseEvent* event) {
    if (event->button() == Qt::LeftButton && store_->hasModel()) {
        const QPoint pos = event->position().toPoint();
        if (const auto h = headAt(pos)) {
            store_->setHead(*h);
            event->accept();
            return;
        }
        if (const auto b = blockAt(pos)) {
            const ModelConfig& c = store_->config();
            store_->setHead(b->first * (c.nHead / c.nHeadKv));
            event->accept();
            return;
        }
    }
    QWidget::mousePressEvent(event);
}

QString SharingView::tooltipAt(const QPoint& pos) const {
    if (!store_->hasModel()) return {};
    const ModelConfig& c = store_->config();
    const int per = c.nHead / c.nHeadKv;
    if (const auto h = headAt(pos)) {
        const int kv = c.kvHeadOf(*h);
        if (per == 1)
            return tr("Query head %1 reads K/V head %1, its own: nothing is shared (plain "
                      "multi-head attention). Click to inspect it.")
                .arg(*h);
        if (c.nHeadKv == 1)
            return tr("Query head %1 reads K/V head 0, the only one, shared by all %2 query heads "
                      "(multi-query attention). Click to inspect it.")
                .arg(*h)
                .arg(c.nHead);
        return tr("Query head %1 reads K/V head %2 of %3, with %4. Click to inspect it.")
            .arg(*h)
            .arg(kv)
            .arg(c.nHeadKv)
            .arg(headRange(kv * per, kv * per + per - 1, c.nHead));
    }
    if (const auto b = blockAt(pos)) {
        const int kv = b->first, t = store_->count();
        const uint64_t bytes = uint64_t(t) * uint64_t(c.headDim) * uint64_t(elementBits()) / 8;
        return tr("%1 of K/V head %2 in layer %3: %4 tokens × %5 dims × %6 bits = %7 B. Read by "
                  "%8. Click to select query head %9.")
            .arg(b->second ? tr("V (the values)") : tr("K (the keys)"))
            .arg(kv)
            .arg(store_->layer())
            .arg(t)
            .arg(c.headDim)
            .arg(elementBits())
            .arg(thousands(bytes), headRange(kv * per, kv * per + per - 1, c.nHead))
            .arg(kv * per);
    }
    const Layout L = layout();
    if (L.bytes.contains(pos)) {
        const int row =
            (pos.y() - L.bytes.top()) / (QFontMetrics(currentTheme().labelFont).lineSpacing() + 4);
        if (row == 0)
            return tr("As if plain multi-head attention: every one of the %1 query heads with its "
                      "own K and V. The calculator's formula with %1 K/V heads.")
                .arg(c.nHead);
        if (row == 1)
            return tr("This model: 2 (K and V) × layers × K/V heads × head dim × bytes per "
                      "element, what each new token adds to the cache (the calculator's "
                      "formula; the cache's element type: %1 bits).")
                .arg(elementBits());
        return tr(
            "The difference per token; times the tokens in the context for the whole "
            "cache.");
    }
    return {};
}

bool SharingView::event(QEvent* event) {
    if (answerToolTip(this, event, [this](QPoint pos) { return tooltipAt(pos); })) return true;
    return QWidget::event(event);
}

}  // namespace kvscope::viz
