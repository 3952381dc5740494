// TokenStrip: chips laid out left to right, wrapping at the widget's width; or, compact, one line
// of chips ending at a chosen token with a scrubber over all positions.
#include "views/token_strip.h"

#include "common/colormap.h"
#include "common/labels.h"
#include "common/tooltip.h"

#include <QMouseEvent>
#include <QPainter>
#include <QSignalBlocker>
#include <QSlider>
#include <algorithm>

namespace kvscope::viz {
namespace {
constexpr int kPadX = 6, kPadY = 3, kGap = 4, kMargin = 6;
// The widest chip's text: long tokens are cut ("…"), the tooltip has them whole.
int maxTextWidth(const QFontMetrics& fm) {
    return 16 * fm.averageCharWidth();
}
}  // namespace

TokenStrip::TokenStrip(TraceStore* store, QWidget* parent)
    : QWidget(parent), store_(store), scrubber_(new QSlider(Qt::Horizontal, this)) {
    setMouseTracking(true);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
    scrubber_->setObjectName("tokenScrubber");
    scrubber_->setProperty("kvscopeScreenOnly", true);  // left out of exported figures
    scrubber_->setFocusPolicy(Qt::NoFocus);             // the arrow keys step the decoder
    scrubber_->setToolTip(
        tr("Scroll the line of tokens: the last token shown (drag to the right "
           "end to follow the newest token again)"));
    scrubber_->hide();
    connect(scrubber_, &QSlider::valueChanged, this, [this](int v) {
        end_ = v >= store_->count() - 1 ? -1 : v;
        update();
    });
    connect(store_, &TraceStore::tokensReset, this, [this] {
        end_ = -1;
        relayout();
    });
    // A step shows the newest token again (the store unpins the query on a step, too).
    connect(store_, &TraceStore::tokenAppended, this, [this] {
        end_ = -1;
        relayout();
    });
    connect(store_, &TraceStore::truncated, this, [this](int n) {
        if (end_ >= n - 1) end_ = -1;
        relayout();
    });
    connect(store_, &TraceStore::selectionChanged, this, qOverload<>(&QWidget::update));
    connect(store_, &TraceStore::roundChanged, this, &TokenStrip::relayout);
}

std::vector<TokenStrip::Pending> TokenStrip::pendingChips() const {
    std::vector<Pending> out;
    const SpeculativeRound* r = store_->round();
    if (!r) return out;
    if (store_->roundPhase() == TraceStore::RoundPhase::Drafted) {
        for (size_t i = 0; i < r->verified.size(); ++i)
            out.push_back({tokenLabel(r->verified[i].text), i > 0});
    } else if (store_->roundPhase() == TraceStore::RoundPhase::Resolved) {
        out.push_back({tokenLabel(r->nextText), false});
    }
    return out;
}

int TokenStrip::total() const {
    return store_->count() + static_cast<int>(pendingChips().size());
}

bool TokenStrip::isCompact() const {
    switch (choice_) {
        case Choice::Wrap:
            return false;
        case Choice::Compact:
            return true;
        case Choice::Auto:
            break;
    }
    return store_->count() > kAutoCompactTokens;
}

void TokenStrip::setCompact(bool compact) {
    choice_ = compact ? Choice::Compact : Choice::Wrap;
    relayout();
}

void TokenStrip::clearCompactChoice() {
    choice_ = Choice::Auto;
    relayout();
}

void TokenStrip::relayout() {
    const bool compact = isCompact();
    // Tall enough for every row, so a scroll area around the strip can scroll to them.
    setMinimumHeight(heightForWidth(width()));
    syncScrubber();
    updateGeometry();
    update();
    if (compact != wasCompact_) {
        wasCompact_ = compact;
        emit compactChanged(compact);
    }
}

int TokenStrip::chipWidth(int i) const {
    const QFontMetrics fm(font());
    const int h = fm.height() + 2 * kPadY;
    const QString text = i < store_->count()
                             ? tokenLabel(store_->trace(i).text)
                             : pendingChips()[static_cast<size_t>(i - store_->count())].text;
    return std::max(std::min(fm.horizontalAdvance(text), maxTextWidth(fm)) + 2 * kPadX, h);
}

int TokenStrip::lastOnLine() const {
    const int n = total();
    return end_ < 0 ? n - 1 : std::min(end_, n - 1);
}

std::vector<QRect> TokenStrip::layoutChips(int width) const {
    const int n = total();
    std::vector<QRect> rects(static_cast<size_t>(n));
    const QFontMetrics fm(font());
    const int h = fm.height() + 2 * kPadY;
    if (isCompact()) {
        // Right to left from the line's last token, as many as fit.
        const int end = lastOnLine();
        int x = width - kMargin, first = end + 1;
        for (int i = end; i >= 0; --i) {
            const int w = chipWidth(i);
            if (x - w < kMargin && i != end) break;
            x -= w;
            rects[static_cast<size_t>(i)] = QRect(x, kMargin, w, h);
            x -= kGap;
            first = i;
        }
        // Everything from token 0 fits: start at the left edge, as the wrapping strip does.
        if (first == 0 && n > 0) {
            const int shift = rects[0].left() - kMargin;
            for (int i = 0; i <= end; ++i) rects[static_cast<size_t>(i)].translate(-shift, 0);
        }
        return rects;
    }
    int x = kMargin, y = kMargin;
    for (int i = 0; i < n; ++i) {
        const int w = chipWidth(i);
        if (x > kMargin && x + w > width - kMargin) {
            x = kMargin;
            y += h + kGap;
        }
        rects[static_cast<size_t>(i)] = QRect(x, y, w, h);
        x += w + kGap;
    }
    return rects;
}

std::pair<int, int> TokenStrip::visibleTokens() const {
    const std::vector<QRect> r = layoutChips(width());
    int first = -1, last = -1;
    for (int i = 0; i < std::min(static_cast<int>(r.size()), store_->count()); ++i)
        if (!r[static_cast<size_t>(i)].isNull()) {
            if (first < 0) first = i;
            last = i;
        }
    if (first < 0) return {0, -1};
    return {first, last};
}

QRect TokenStrip::scrubberLabelRect() const {
    const QFontMetrics fm(font());
    const int line = fm.height() + 2 * kPadY;
    const int w = fm.horizontalAdvance(tr("tokens 00000–00000 of 00000")) + 8;
    return {width() - kMargin - w, kMargin + line + kGap, w,
            std::max(fm.height(), scrubber_->sizeHint().height())};
}

void TokenStrip::syncScrubber() {
    if (!isCompact() || store_->count() == 0) {
        scrubber_->hide();
        return;
    }
    const QRect label = scrubberLabelRect();
    const QSignalBlocker block(scrubber_);
    scrubber_->setRange(0, store_->count() - 1);
    scrubber_->setPageStep(std::max(1, visibleTokens().second - visibleTokens().first + 1));
    scrubber_->setValue(lastOnLine());
    scrubber_->setGeometry(kMargin, label.top(), std::max(40, label.left() - 2 * kMargin),
                           label.height());
    scrubber_->show();
}

void TokenStrip::scrollToToken(int i) {
    const int n = store_->count();
    if (i < 0 || i >= n) return;
    if (!isCompact()) {
        const std::vector<QRect> r = layoutChips(width());
        emit chipWanted(r[static_cast<size_t>(i)]);
        return;
    }
    const auto [first, last] = visibleTokens();
    if (i >= first && i <= last && last >= first) return;
    // Token i near the middle of the line: tokens after it fill half the width.
    int end = i, room = (width() - 2 * kMargin) / 2 - chipWidth(i) / 2;
    while (end + 1 < n && room - chipWidth(end + 1) - kGap > 0) {
        room -= chipWidth(end + 1) + kGap;
        ++end;
    }
    end_ = end >= n - 1 ? -1 : end;
    syncScrubber();
    update();
}

QString TokenStrip::goToToken(const QString& text) {
    const int n = store_->count();
    if (n == 0) return tr("There are no tokens yet: prefill a prompt first.");
    bool ok = false;
    const int i = text.trimmed().toInt(&ok);
    if (!ok)
        return tr("“%1” is not a token position: type a whole number from 0 to %2.")
            .arg(text.trimmed())
            .arg(n - 1);
    if (i < 0 || i >= n)
        return tr("There is no token %1: the positions run from 0 to %2 (%3 tokens).")
            .arg(i)
            .arg(n - 1)
            .arg(n);
    store_->pinQuery(i);
    scrollToToken(i);
    return {};
}

void TokenStrip::resizeEvent(QResizeEvent* e) {
    QWidget::resizeEvent(e);
    const int h = heightForWidth(width());
    if (minimumHeight() != h) setMinimumHeight(h);
    syncScrubber();
}

int TokenStrip::heightForWidth(int width) const {
    const int line = QFontMetrics(font()).height() + 2 * kPadY;
    if (isCompact())
        return kMargin + line + kGap +
               std::max(QFontMetrics(font()).height(), scrubber_->sizeHint().height()) + kMargin;
    const std::vector<QRect> r = layoutChips(width);
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
    const int n = store_->count();
    // Speculative decoding: drafts hatched (provisional), the verdict of the verification pass
    // in the corner (✓ accepted, ✗ rejected), the decided token not yet in the cache dashed.
    const QColor accept(0x1B, 0x7F, 0x3A), reject(0xC6, 0x28, 0x28);
    const QBrush draftHatch(QColor(0x0B, 0x3C, 0x6E, 90), Qt::BDiagPattern);
    auto drawDraftMark = [&](const QRect& r, int verdict) {
        if (verdict == 0) return;
        const QString mark = verdict > 0 ? QStringLiteral("✓") : QStringLiteral("✗");
        QFont f = font();
        f.setBold(true);
        p.save();
        p.setFont(f);
        const int d = QFontMetrics(f).height() * 3 / 4;
        const QRect badge(r.right() - d * 2 / 3, r.top() - d / 3, d, d);
        p.setPen(Qt::NoPen);
        p.setBrush(verdict > 0 ? accept : reject);
        p.drawEllipse(badge);
        p.setPen(Qt::white);
        p.drawText(badge, Qt::AlignCenter, mark);
        p.restore();
    };
    const std::vector<Pending> pending = pendingChips();
    for (int i = n; i < static_cast<int>(rects.size()); ++i) {
        const QRect r = rects[static_cast<size_t>(i)];
        if (r.isNull()) continue;
        const Pending& c = pending[static_cast<size_t>(i - n)];
        p.setPen(QPen(QColor(0x0B, 0x3C, 0x6E), 1.5, Qt::DashLine));
        p.setBrush(QColor(0xEE, 0xF4, 0xFA));  // light in every theme: the text is dark
        p.drawRoundedRect(QRectF(r).adjusted(0.5, 0.5, -0.5, -0.5), 4, 4);
        if (c.draft) {
            p.setPen(Qt::NoPen);
            p.setBrush(draftHatch);
            p.drawRoundedRect(QRectF(r).adjusted(1.5, 1.5, -1.5, -1.5), 3, 3);
        }
        p.setPen(QColor(0x0B, 0x3C, 0x6E));
        p.drawText(r, Qt::AlignCenter,
                   fontMetrics().elidedText(c.text, Qt::ElideRight, r.width() - 2 * kPadX + 2));
    }
    for (int i = 0; i < std::min(n, static_cast<int>(rects.size())); ++i) {
        const QRect r = rects[static_cast<size_t>(i)];
        if (r.isNull()) continue;
        const int verdict = store_->draftVerdict(i);
        const bool prompt = i < store_->promptLength();
        // a special token (BOS, <|im_start|>, ...) on amber with a dashed edge
        const bool special = store_->trace(i).special;
        p.setPen(i == query
                     ? QPen(QColor(0xE6, 0x6A, 0x00), 2.5)
                     : QPen(special ? QColor(0x9A, 0x6A, 0x00) : palette().color(QPalette::Mid), 1,
                            special ? Qt::DashLine : Qt::SolidLine));
        p.setBrush(special  ? QColor(0xFF, 0xE9, 0xB3)
                   : prompt ? palette().color(QPalette::AlternateBase)
                            : QColor(0xCF, 0xE3, 0xF5));
        if (verdict != 0) {
            p.setPen(QPen(verdict > 0 ? accept : reject, 2));
            p.setBrush(QColor(0xEE, 0xF4, 0xFA));  // light in every theme: the text is dark
        }
        p.drawRoundedRect(QRectF(r).adjusted(0.5, 0.5, -0.5, -0.5), 4, 4);
        if (verdict != 0) {
            p.setPen(Qt::NoPen);
            p.setBrush(draftHatch);
            p.drawRoundedRect(QRectF(r).adjusted(2, 2, -2, -2), 3, 3);
        }
        // the text dark or light, whichever reads on the chip (a style sheet may set the
        // palette's text colour without its alternate base)
        p.setPen(prompt ? textColorOn(p.brush().color().rgb()) : QColor(0x0B, 0x3C, 0x6E));
        p.drawText(r, Qt::AlignCenter,
                   fontMetrics().elidedText(tokenLabel(store_->trace(i).text), Qt::ElideRight,
                                            r.width() - 2 * kPadX + 2));
        drawDraftMark(r, verdict);
    }
    if (isCompact()) {
        const auto [first, last] = visibleTokens();
        p.setPen(palette().color(QPalette::Text));
        p.drawText(scrubberLabelRect(), Qt::AlignRight | Qt::AlignVCenter,
                   tr("tokens %1–%2 of %3").arg(first).arg(last).arg(store_->count()));
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
    if (i >= 0 && i < store_->count()) store_->pinQuery(i);
}

bool TokenStrip::event(QEvent* e) {
    const bool tip = answerToolTip(this, e, [this](QPoint pos) {
        const int i = chipAt(pos);
        if (i < 0) return QString();
        const int n = store_->count();
        if (i >= n) {
            const Pending c = pendingChips()[static_cast<size_t>(i - n)];
            return c.draft ? tr("“%1”: drafted, not yet in the cache; the verification pass "
                                "checks it against the model")
                                 .arg(c.text)
                           : tr("“%1”: decided by the model, not yet in the cache; its K and V "
                                "are written by the next pass")
                                 .arg(c.text);
        }
        const StepTrace& t = store_->trace(i);
        const int verdict = store_->draftVerdict(i);
        if (verdict != 0)
            return verdict > 0 ? tr("token %1 “%2”: draft accepted by the verification pass")
                                     .arg(i)
                                     .arg(tokenLabel(t.text))
                               : tr("token %1 “%2”: draft rejected by the verification pass; "
                                    "its K and V leave the cache")
                                     .arg(i)
                                     .arg(tokenLabel(t.text));
        return tr("token %1 “%5” · id %2 · %3%4")
            .arg(i)
            .arg(t.token)
            .arg(i < store_->promptLength() ? tr("prompt") : tr("generated"))
            .arg(t.special ? tr(" · special token") : QString(), tokenLabel(t.text));
    });
    return tip || QWidget::event(e);
}

}  // namespace kvscope::viz
