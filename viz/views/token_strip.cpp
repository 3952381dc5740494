// TokenStrip: chips laid out left to right, wrapping at the widget's width.
#include "views/token_strip.h"

#include "common/labels.h"

#include <QHelpEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>

namespace kvscope::viz {
namespace {
constexpr int kPadX = 6, kPadY = 3, kGap = 4, kMargin = 6;
}

TokenStrip::TokenStrip(TraceStore* store, QWidget* parent) : QWidget(parent), store_(store) {
    setMouseTracking(true);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
    auto relayout = [this] {
        // Tall enough for every row, so a scroll area around the strip can scroll to them.
        setMinimumHeight(heightForWidth(width()));
        updateGeometry();
        update();
    };
    connect(store_, &TraceStore::tokensReset, this, relayout);
    connect(store_, &TraceStore::tokenAppended, this, relayout);
    connect(store_, &TraceStore::truncated, this, relayout);
    connect(store_, &TraceStore::selectionChanged, this, qOverload<>(&QWidget::update));
}

std::vector<QRect> TokenStrip::layoutChips(int width) const {
    std::vector<QRect> rects;
    const QFontMetrics fm(font());
    const int h = fm.height() + 2 * kPadY;
    int x = kMargin, y = kMargin;
    for (int i = 0; i < store_->count(); ++i) {
        const int w =
            std::max(fm.horizontalAdvance(tokenLabel(store_->trace(i).text)) + 2 * kPadX, h);
        if (x > kMargin && x + w > width - kMargin) {
            x = kMargin;
            y += h + kGap;
        }
        rects.emplace_back(x, y, w, h);
        x += w + kGap;
    }
    return rects;
}

void TokenStrip::resizeEvent(QResizeEvent* e) {
    QWidget::resizeEvent(e);
    const int h = heightForWidth(width());
    if (minimumHeight() != h) setMinimumHeight(h);
}

int TokenStrip::heightForWidth(int width) const {
    const std::vector<QRect> r = layoutChips(width);
    const int line = QFontMetrics(font()).height() + 2 * kPadY;
    return (r.empty() ? line : r.back().bottom() + 1) + kMargin;
}

QSize TokenStrip::sizeHint() const {
    return {600, heightForWidth(600)};
}
QSize TokenStrip::minimumSizeHint() const {
    return {200, QFontMetrics(font()).height() + 2 * (kPadY + kMargin)};
}

void TokenStrip::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    if (store_->count() == 0) {
        p.setPen(palette().color(QPalette::PlaceholderText));
        p.drawText(rect().adjusted(kMargin, 0, 0, 0), Qt::AlignVCenter | Qt::AlignLeft,
                   tr("Tokens appear here: type a prompt and press Prefill or Step (F10)"));
        return;
    }
    const std::vector<QRect> rects = layoutChips(width());
    const int query = store_->queryIndex();
    for (int i = 0; i < static_cast<int>(rects.size()); ++i) {
        const bool prompt = i < store_->promptLength();
        const QRect r = rects[static_cast<size_t>(i)];
        // a special token (BOS, <|im_start|>, ...) on amber with a dashed edge
        const bool special = store_->trace(i).special;
        p.setPen(i == query
                     ? QPen(QColor(0xE6, 0x6A, 0x00), 2.5)
                     : QPen(special ? QColor(0x9A, 0x6A, 0x00) : palette().color(QPalette::Mid), 1,
                            special ? Qt::DashLine : Qt::SolidLine));
        p.setBrush(special  ? QColor(0xFF, 0xE9, 0xB3)
                   : prompt ? palette().color(QPalette::AlternateBase)
                            : QColor(0xCF, 0xE3, 0xF5));
        p.drawRoundedRect(QRectF(r).adjusted(0.5, 0.5, -0.5, -0.5), 4, 4);
        p.setPen(prompt ? palette().color(QPalette::Text) : QColor(0x0B, 0x3C, 0x6E));
        p.drawText(r, Qt::AlignCenter, tokenLabel(store_->trace(i).text));
    }
}

int TokenStrip::chipAt(const QPoint& pos) const {
    const std::vector<QRect> rects = layoutChips(width());
    for (int i = 0; i < static_cast<int>(rects.size()); ++i)
        if (rects[static_cast<size_t>(i)].contains(pos)) return i;
    return -1;
}

void TokenStrip::mousePressEvent(QMouseEvent* e) {
    const int i = chipAt(e->position().toPoint());
    if (i >= 0) store_->pinQuery(i);
}

bool TokenStrip::event(QEvent* e) {
    if (e->type() == QEvent::ToolTip) {
        auto* help = static_cast<QHelpEvent*>(e);
        const int i = chipAt(help->pos());
        if (i >= 0) {
            const StepTrace& t = store_->trace(i);
            QToolTip::showText(help->globalPos(),
                               tr("token %1 · id %2 · %3%4")
                                   .arg(i)
                                   .arg(t.token)
                                   .arg(i < store_->promptLength() ? tr("prompt") : tr("generated"))
                                   .arg(t.special ? tr(" · special token") : QString()),
                               this);
        } else {
            QToolTip::hideText();
        }
        return true;
    }
    return QWidget::event(e);
}

}  // namespace kvscope::viz
