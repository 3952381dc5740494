// BlockTableView: rows of block boxes, shared ones in the accent colour.
#include "views/block_table_view.h"

#include <QFontMetrics>
#include <QPainter>
#include <algorithm>
#include <set>

#include "common/theme.h"

namespace kvscope::viz {

namespace {
constexpr int kMargin = 8, kBoxW = 46, kBoxH = 30, kGap = 4, kRowGap = 8;
}  // namespace

BlockTableView::BlockTableView(QWidget* parent) : QWidget(parent) {
    setObjectName("blockTables");
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this,
            qOverload<>(&QWidget::update));
}

QSize BlockTableView::sizeHint() const {
    const QFontMetrics fm(currentTheme().labelFont);
    const int rows = std::max<int>(1, static_cast<int>(tables_.size()));
    return {640, 2 * kMargin + rows * (kBoxH + kRowGap) + 2 * fm.height()};
}

QSize BlockTableView::minimumSizeHint() const {
    return {240, sizeHint().height()};
}

void BlockTableView::setTables(std::vector<BlockTable> tables, int blockTokens,
                               uint64_t blockBytes) {
    tables_ = std::move(tables);
    blockTokens_ = blockTokens;
    blockBytes_ = blockBytes;
    updateGeometry();
    update();
}

int BlockTableView::storedBlocks() const {
    std::set<uint64_t> ids;
    for (const BlockTable& t : tables_) ids.insert(t.ids.begin(), t.ids.end());
    return static_cast<int>(ids.size());
}

int BlockTableView::separateBlocks() const {
    int n = 0;
    for (const BlockTable& t : tables_) n += static_cast<int>(t.ids.size());
    return n;
}

int BlockTableView::labelWidth() const {
    const QFontMetrics fm(currentTheme().labelFont);
    int w = 0;
    for (const BlockTable& t : tables_) w = std::max(w, fm.horizontalAdvance(t.name));
    return w + 12;
}

QRect BlockTableView::blockRect(int table, int block) const {
    const int x = kMargin + labelWidth() + block * (kBoxW + kGap);
    const int y = kMargin + table * (kBoxH + kRowGap);
    return {x, y, kBoxW, kBoxH};
}

QString BlockTableView::caption() const {
    if (tables_.empty()) return tr("Block tables: the CPU backend's cache shows its blocks here.");
    const auto kib = [](uint64_t b) {
        return QString::number(static_cast<double>(b) / 1024.0, 'f', 1) + " KiB";
    };
    QString s =
        tr("Block tables: blocks of %1 tokens (%2 each). ").arg(blockTokens_).arg(kib(blockBytes_));
    if (tables_.size() > 1)
        s += tr("Stored once: %1 blocks (%2), against %3 blocks (%4) for separate caches; "
                "accent: shared by both (×2), copied only when a side writes into it.")
                 .arg(storedBlocks())
                 .arg(kib(blockBytes_ * static_cast<uint64_t>(storedBlocks())))
                 .arg(separateBlocks())
                 .arg(kib(blockBytes_ * static_cast<uint64_t>(separateBlocks())));
    else
        s += tr("Decode ▸ Fork here continues a second sequence on the same blocks.");
    return s;
}

void BlockTableView::paintEvent(QPaintEvent*) {
    QPainter p(this);
    const Theme& th = currentTheme();
    p.fillRect(rect(), th.background);
    const QFontMetrics fm(th.labelFont), fs(th.smallFont);
    for (size_t t = 0; t < tables_.size(); ++t) {
        const BlockTable& table = tables_[t];
        const int ti = static_cast<int>(t);
        p.setFont(th.labelFont);
        p.setPen(th.text);
        p.drawText(QRect(kMargin, blockRect(ti, 0).top(), labelWidth(), kBoxH),
                   Qt::AlignLeft | Qt::AlignVCenter, table.name);
        int right = kMargin + labelWidth();
        for (size_t b = 0; b < table.ids.size(); ++b) {
            const QRect r = blockRect(ti, static_cast<int>(b));
            if (r.left() > width() - kMargin) break;  // the rest do not fit: the caption counts
            const bool shared = table.refs[b] > 1;
            p.fillRect(r, th.panel);
            // the slots that hold tokens, as a share of the box
            const int filled =
                std::clamp(table.rows - static_cast<int>(b) * blockTokens_, 0, blockTokens_);
            QColor fill = shared ? th.accent : th.mutedText;
            fill.setAlphaF(0.55f);
            p.fillRect(QRect(r.left(), r.top(),
                             blockTokens_ > 0 ? r.width() * filled / blockTokens_ : 0, r.height()),
                       fill);
            p.setPen(QPen(shared ? th.accent : th.grid, shared ? 2 : 1));
            p.setBrush(Qt::NoBrush);
            p.drawRect(r.adjusted(0, 0, -1, -1));
            p.setFont(th.smallFont);
            p.setPen(th.text);
            p.drawText(r, Qt::AlignCenter,
                       shared ? QString("#%1 ×%2").arg(table.ids[b]).arg(table.refs[b])
                              : QString("#%1").arg(table.ids[b]));
            right = r.right();
        }
        if (!table.continuation.isEmpty()) {
            p.setFont(th.smallFont);
            p.setPen(th.mutedText);
            p.drawText(
                QRect(right + 10, blockRect(ti, 0).top(), width() - right - 10 - kMargin, kBoxH),
                Qt::AlignLeft | Qt::AlignVCenter,
                fs.elidedText("…" + table.continuation, Qt::ElideLeft,
                              width() - right - 10 - kMargin));
        }
    }
    p.setFont(th.smallFont);
    p.setPen(th.mutedText);
    const int top =
        kMargin + static_cast<int>(std::max<size_t>(1, tables_.size())) * (kBoxH + kRowGap);
    p.drawText(QRect(kMargin, top, width() - 2 * kMargin, height() - top),
               Qt::AlignLeft | Qt::AlignTop | Qt::TextWordWrap, caption());
    (void)fm;
}

}  // namespace kvscope::viz
