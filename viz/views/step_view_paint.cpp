// StepView's painting: the blocks, their values, captions and colour bars, and the transition of
// a new step.
#include "views/step_view.h"

#include "views/step_view_detail.h"

#include <QHelpEvent>
#include <QImage>
#include <QPainter>
#include <QToolTip>
#include <algorithm>
#include <cmath>

#include "common/colormap.h"
#include "common/labels.h"
#include "common/theme.h"
#include "common/trace_store.h"
#include "common/transition.h"

namespace kvscope::viz {

using namespace step_view_detail;

namespace {
QRgb blend(QRgb from, QRgb to, double f) {
    auto lerp = [f](int a, int b) { return static_cast<int>(std::lround(a + (b - a) * f)); };
    return qRgb(lerp(qRed(from), qRed(to)), lerp(qGreen(from), qGreen(to)),
                lerp(qBlue(from), qBlue(to)));
}

// Thin lines in the background colour between cells, where cells are big enough to separate.
void drawSeparators(QPainter& p, const QRect& r, int cols, int cellW, int rows, int cellH,
                    const QColor& color) {
    p.setPen(color);
    if (cellW >= 12)
        for (int c = 1; c < cols; ++c)
            p.drawLine(r.left() + c * cellW, r.top(), r.left() + c * cellW, r.bottom());
    if (cellH >= 12)
        for (int k = 1; k < rows; ++k)
            p.drawLine(r.left(), r.top() + k * cellH, r.right(), r.top() + k * cellH);
}

// A value written inside a cell: across where it fits, else up the cell (a narrow, tall column
// of the score and weight rows), else not at all (the tooltip still tells it).
void drawCellValue(QPainter& p, const QRect& cell, double value, QRgb background,
                   const QFontMetrics& fm) {
    const QString text = formatValue(value);
    const int w = fm.horizontalAdvance(text) + 4;
    p.setPen(textColorOn(background));
    if (w <= cell.width() && fm.height() <= cell.height()) {
        p.drawText(cell, Qt::AlignCenter, text);
    } else if (w <= cell.height() && fm.height() <= cell.width()) {
        p.save();
        p.translate(cell.center().x() + 1, cell.center().y());
        p.rotate(-90);
        p.drawText(QRect(-cell.height() / 2, -cell.width() / 2, cell.height(), cell.width()),
                   Qt::AlignCenter, text);
        p.restore();
    }
}

// Every `step`-th of n labels counted back from the newest, so the newest is always labelled.
bool labelled(int j, int n, int step) {
    return (n - 1 - j) % step == 0;
}

}  // namespace

void StepView::paintEvent(QPaintEvent*) {
    QPainter p(this);
    const Theme& th = currentTheme();
    p.fillRect(rect(), th.background);
    if (!shown_.valid) {
        paintEmpty(p, shown_.emptyMessage);
        return;
    }
    if (layout_.cd == 0) layout_ = computeLayout(shown_);
    paintStep(p);
}

void StepView::paintEmpty(QPainter& p, const QString& message) {
    const Theme& th = currentTheme();
    p.setFont(th.titleFont);
    p.setPen(th.text);
    const QRect r = rect().adjusted(kMargin, kMargin, -kMargin, -kMargin);
    p.drawText(r.adjusted(0, 0, 0, -r.height() / 2 + 4), Qt::AlignHCenter | Qt::AlignBottom,
               tr("Step view: q · Kᵀ → softmax → · V"));
    p.setFont(th.labelFont);
    p.setPen(th.mutedText);
    p.drawText(r.adjusted(0, r.height() / 2 + 8, 0, 0),
               Qt::AlignHCenter | Qt::AlignTop | Qt::TextWordWrap, message);
}

QString StepView::kvNoteText() const {
    const Snapshot& s = shown_;
    if (!s.valid || !store_->hasModel()) return {};
    QString kvNote;
    if (s.shared.size() > 1) {
        QStringList heads;
        for (int h : s.shared) heads.append(QString::number(h));
        const int nKv = store_->config().nHeadKv;
        if (nKv == 1)
            kvNote = tr("Head %1 reads K/V head 0, the only one: multi-query attention, all %2 "
                        "query heads share it, so the cache keeps one K and V per layer.")
                         .arg(s.head)
                         .arg(s.shared.size());
        else
            kvNote = tr("Head %1 reads K/V head %2 of %3: grouped-query attention, query heads %4 "
                        "share it, so the cache keeps one K and V for all of them.")
                         .arg(s.head)
                         .arg(s.kv)
                         .arg(nKv)
                         .arg(heads.join(QStringLiteral(", ")));
    } else {
        kvNote = tr("Head %2 reads K/V head %1, its own: multi-head attention, nothing is shared.")
                     .arg(s.kv)
                     .arg(s.head);
    }
    return kvNote;
}

QString StepView::kvNoteShortText() const {
    const Snapshot& s = shown_;
    if (!s.valid || !store_->hasModel()) return {};
    if (s.shared.size() <= 1) return tr("K/V head %1, its own (multi-head)").arg(s.kv);
    const int nKv = store_->config().nHeadKv;
    if (nKv == 1) return tr("K/V head 0, shared by all %1 query heads").arg(s.shared.size());
    QStringList heads;
    for (int h : s.shared) heads.append(QString::number(h));
    return tr("K/V head %1 of %2, shared by query heads %3")
        .arg(s.kv)
        .arg(nKv)
        .arg(heads.join(QStringLiteral(", ")));
}

void StepView::paintStep(QPainter& p) {
    elided_.clear();
    // Text cut to a width, with a record of what did not fit (for tests of small screens).
    // The first of the forms (longest first) that fits whole, else the last one elided (then
    // recorded in elided_).
    auto fit = [this](const QFontMetrics& fm, std::initializer_list<QString> forms, int width) {
        const QString shown = firstThatFits(fm, forms, width);
        if (std::find(forms.begin(), forms.end(), shown) == forms.end())
            elided_ << *(forms.end() - 1);
        return shown;
    };
    const Theme& th = currentTheme();
    const Snapshot& s = shown_;
    const Layout& L = layout_;
    const QFontMetrics fmL(th.labelFont), fmS(th.smallFont);
    const int d = s.d, t = s.i + 1;
    const size_t du = static_cast<size_t>(d);
    const double prog = transition_->progress();
    // A real transition: the newest key column and value row slide in; rows that depend on the
    // query (q, scores, weights, output) blend from the previous step's values to the new ones.
    const bool anim = prog < 1 && previous_.valid && previous_.i == s.i - 1 &&
                      previous_.layer == s.layer && previous_.head == s.head && previous_.d == d;
    const ColorScale qk = ColorScale::symmetric(s.qkLimit);
    const ColorScale sc = ColorScale::symmetric(s.scoreLimit);
    const ColorScale wt = ColorScale::weights();
    const ColorScale vs = ColorScale::symmetric(s.vLimit);
    const ColorScale qkPrev = ColorScale::symmetric(previous_.qkLimit);
    const ColorScale scPrev = ColorScale::symmetric(previous_.scoreLimit);
    const ColorScale vsPrev = ColorScale::symmetric(previous_.vLimit);

    const QRgb panel = th.panel.rgb();
    const bool newest = s.i == s.count - 1;

    // -- title and the grouped-query note
    p.setFont(th.titleFont);
    p.setPen(th.text);
    const QString who = tr("token %1 “%2”").arg(s.i).arg(s.labels[s.i]);
    const QString title =
        tr("Layer %1 · head %2 · query: %3%4")
            .arg(s.layer)
            .arg(s.head)
            .arg(who, newest ? tr("  (the newest token)") : tr("  (an earlier token)"));
    // narrower: without the note on the token, then without "query:"
    const QString shorter = tr("Layer %1 · head %2 · query: %3").arg(s.layer).arg(s.head).arg(who);
    const QString shortest = tr("Layer %1 · head %2 · %3").arg(s.layer).arg(s.head).arg(who);
    p.drawText(L.title, Qt::AlignLeft | Qt::AlignVCenter,
               fit(QFontMetrics(th.titleFont), {title, shorter, shortest}, L.title.width()));
    p.setFont(th.labelFont);
    p.setPen(th.mutedText);
    const QString kvNote = kvNoteText();
    p.drawText(L.subtitle, Qt::AlignLeft | Qt::AlignVCenter,
               fit(fmL, {kvNote, kvNoteShortText()}, L.subtitle.width()));

    // -- Kᵀ: head_dim × t, one column per cached key
    // A caption: the long text where it fits, else the short one (elided if need be).
    auto caption = [&](const QRect& r, const QString& longText, const QString& shortText,
                       Qt::Alignment align = Qt::AlignLeft) {
        p.setFont(th.labelFont);
        p.setPen(th.text);
        const QString text = firstThatFits(fmL, {longText, shortText}, r.width());
        if (text != longText && text != shortText) elided_ << shortText;  // cut: recorded as fit()
        p.drawText(r, align | Qt::AlignVCenter, text);
    };
    const int shownN = L.last - L.first + 1;
    const bool windowed = shownN < t;
    // The query's own key and value are in the window (always, unless the user moved it away):
    // only then is there a newest column and row to outline and slide in.
    const bool tail = L.last == s.i;
    const bool animTail = anim && tail;
    const QString span = tr("%1–%2").arg(L.first).arg(L.last);
    caption(L.kCaption,
            windowed
                ? tr("Kᵀ (%1 × %2): keys at positions %3 of %2%4")
                      .arg(d)
                      .arg(t)
                      .arg(span, tail ? tr("; outlined: the new key k%1").arg(s.i) : QString())
                : tr("Kᵀ (%1 × %2): keys of tokens %3 from the cache; outlined: the new key k%4")
                      .arg(d)
                      .arg(t)
                      .arg(span)
                      .arg(s.i),
            windowed ? tr("Kᵀ: positions %1 of %2").arg(span).arg(t)
                     : tr("Kᵀ (%1 × %2): cached keys").arg(d).arg(t));
    const int oldCols = shownN - (animTail ? 1 : 0);  // columns drawn in place
    if (oldCols > 0) {
        QImage img(oldCols, d, QImage::Format_RGB32);
        for (int r = 0; r < d; ++r) {
            auto* line = reinterpret_cast<QRgb*>(img.scanLine(r));
            for (int c = 0; c < oldCols; ++c)
                line[c] =
                    qk.rgb(s.keys[static_cast<size_t>(L.first + c) * du + static_cast<size_t>(r)]);
        }
        p.drawImage(QRect(L.kBlock.left(), L.kBlock.top(), oldCols * L.ct, L.kBlock.height()), img);
    }
    // The newest column (key of token i) slides in from the right.
    const QRect newCol(L.kBlock.left() + (s.i - L.first) * L.ct, L.kBlock.top(), L.ct,
                       L.kBlock.height());
    if (animTail) {
        const int slide = static_cast<int>(std::lround((1 - prog) * std::max(3 * L.ct, 60)));
        p.save();
        p.setClipRect(
            QRect(L.kBlock.left(), L.kBlock.top() - 2, L.kCaption.width(), L.kBlock.height() + 4));
        p.setOpacity(prog);
        for (int r = 0; r < d; ++r)
            p.fillRect(newCol.left() + slide, newCol.top() + r * L.cd, L.ct, L.cd,
                       qk.color(s.keys[static_cast<size_t>(s.i) * du + static_cast<size_t>(r)]));
        p.restore();
    }
    drawSeparators(p, L.kBlock, shownN, L.ct, d, L.cd, th.background);
    p.setPen(th.grid);
    p.setBrush(Qt::NoBrush);
    p.drawRect(L.kBlock.adjusted(-1, -1, 0, 0));
    if (tail) {
        p.setPen(QPen(th.fresh, penWidth(2)));
        p.drawRect(newCol.adjusted(0, -1, 0, 0));
    }
    // Positions above the columns: a round step that leaves room for the numbers; the window's
    // first and last positions always.
    {
        p.setFont(th.smallFont);
        p.setPen(th.mutedText);
        const int needed = fmS.horizontalAdvance(QString::number(s.i)) + 10;
        int step = 1;
        for (int cand : {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}) {
            step = cand;
            if (cand * L.ct >= needed) break;
        }
        auto tick = [&](int j) {
            const int cx = L.kTicks.left() + (j - L.first) * L.ct + L.ct / 2;
            // the first position starts at the block's edge (clear of "token i" over q)
            const int x = std::clamp(cx - needed / 2, L.kTicks.left() - 4,
                                     L.kTicks.left() + L.kTicks.width() - needed / 2);
            p.setPen(j == s.i ? th.fresh : th.mutedText);
            p.drawText(QRect(x, L.kTicks.top(), needed, L.kTicks.height()), Qt::AlignCenter,
                       QString::number(j));
        };
        for (int j = L.first; j <= L.last; ++j) {
            const bool edge = j == L.first || j == L.last;
            if (j % step != 0 && !edge) continue;
            // keep clear of the labelled first and last positions
            if (!edge && ((L.last - j) * L.ct < needed || (j - L.first) * L.ct < needed)) continue;
            tick(j);
        }
    }
    p.setFont(th.smallFont);
    p.setPen(th.fresh);
    p.drawText(L.dimHint, Qt::AlignRight | Qt::AlignVCenter, tr("token %1").arg(s.i));

    // -- q (as a column beside Kᵀ: q · k_j pairs each q[r] with row r), the scores, the weights
    caption(L.qCaption, tr("q"), tr("q"), Qt::AlignRight);
    caption(L.sCaption, tr("scores = q · Kᵀ / √%1   (q times each column of Kᵀ)").arg(d),
            tr("scores = q · Kᵀ / √%1").arg(d));
    caption(L.wCaption, tr("weights = softmax(scores): the new row of the attention matrix"),
            tr("weights = softmax(scores)"));
    auto cellColor = [&](QRgb now, bool hasPrev, QRgb before) {
        if (!anim) return now;
        return blend(hasPrev ? before : panel, now, prog);
    };
    p.setFont(th.smallFont);
    for (int r = 0; r < d; ++r) {
        const QRect cell(L.qRow.left(), L.qRow.top() + r * L.cd, L.qRow.width(), L.cd);
        const QRgb c = cellColor(qk.rgb(s.q[static_cast<size_t>(r)]), anim,
                                 anim ? qkPrev.rgb(previous_.q[static_cast<size_t>(r)]) : 0);
        p.fillRect(cell, QColor::fromRgb(c));
    }
    drawSeparators(p, L.qRow, 1, L.qRow.width(), d, L.cd, th.background);
    for (int j = L.first; j <= L.last; ++j) {
        const auto ju = static_cast<size_t>(j);
        const bool hasPrev = anim && j < previous_.i + 1;
        const QRect sCell(L.sRow.left() + (j - L.first) * L.ct, L.sRow.top(), L.ct,
                          L.sRow.height());
        const QRect wCell(L.wRow.left() + (j - L.first) * L.ct, L.wRow.top(), L.ct,
                          L.wRow.height());
        const QRgb sc1 = cellColor(sc.rgb(s.scores[ju]), hasPrev,
                                   hasPrev ? scPrev.rgb(previous_.scores[ju]) : 0);
        const QRgb wt1 =
            cellColor(wt.rgb(s.weights[ju]), hasPrev, hasPrev ? wt.rgb(previous_.weights[ju]) : 0);
        p.fillRect(sCell, QColor::fromRgb(sc1));
        p.fillRect(wCell, QColor::fromRgb(wt1));
        drawCellValue(p, sCell, s.scores[ju], sc1, fmS);
        drawCellValue(p, wCell, s.weights[ju], wt1, fmS);
    }
    drawSeparators(p, L.sRow, shownN, L.ct, 1, L.sRow.height(), th.background);
    drawSeparators(p, L.wRow, shownN, L.ct, 1, L.wRow.height(), th.background);
    p.setPen(th.grid);
    p.setBrush(Qt::NoBrush);
    for (const QRect& r : {L.qRow, L.sRow, L.wRow}) p.drawRect(r.adjusted(-1, -1, 0, 0));

    // -- token labels along t (rotated only where there is a band for them; the V rows are
    // labelled too)
    p.setFont(th.smallFont);
    if (!L.rotatedLabels || L.labels.height() >= 3 * fmS.height()) {
        const int step = L.rotatedLabels ? std::max(1, (fmS.height() + L.ct - 1) / L.ct) : 1;
        for (int j = L.first; j <= L.last; ++j) {
            if (!labelled(j, L.last + 1, step)) continue;
            p.setPen(j == s.i ? th.fresh : th.text);
            const int cx = L.labels.left() + (j - L.first) * L.ct + L.ct / 2;
            if (L.rotatedLabels) {
                p.save();
                p.translate(cx, L.labels.top() + 4);
                p.rotate(90);
                const QRect r(0, -fmS.height() / 2, L.labels.height() - 6, fmS.height());
                p.drawText(r, Qt::AlignLeft | Qt::AlignVCenter,
                           fmS.elidedText(s.labels[j], Qt::ElideRight, r.width()));
                p.restore();
            } else {
                p.drawText(QRect(cx - L.ct / 2, L.labels.top() + 3, L.ct, fmS.height()),
                           Qt::AlignCenter, s.labels[j]);
            }
        }
    }
    if (windowed && !L.note.isEmpty() && L.note.bottom() < L.legends.top() - 4) {
        p.setFont(th.labelFont);
        p.setPen(th.accent);
        const QString where = tail ? tr("ending at the query") : tr("Ctrl+End: back to the query");
        const QString longNote =
            tr("Long context: Kᵀ and V show the same %1 (%2); Ctrl+← / Ctrl+→ move them.")
                .arg(windowText(), where);
        const QString shortNote = tr("Kᵀ and V show the same %1 (%2).").arg(windowText(), where);
        p.drawText(L.note, Qt::AlignLeft | Qt::AlignVCenter,
                   firstThatFits(fmL, {longNote, shortNote}, L.note.width()));
    }

    // -- V panel: token, weight a_j, value row v_j; the output row underneath
    caption(L.vCaption,
            windowed ? tr("V (%1 × %2): values at positions %3 of %1").arg(t).arg(d).arg(span)
                     : tr("V (%1 × %2): values of tokens %3").arg(t).arg(d).arg(span),
            windowed ? tr("V: positions %1 of %2").arg(span).arg(t)
                     : tr("V (%1 × %2): cached values").arg(t).arg(d));
    p.setFont(th.smallFont);
    p.setPen(th.mutedText);
    const int headerY = L.vCaption.bottom() + 3;
    p.drawText(QRect(L.vLabelCol.left(), headerY, L.vLabelCol.width(), fmS.height()),
               Qt::AlignRight | Qt::AlignVCenter, tr("token"));
    p.drawText(QRect(L.aCol.left(), headerY, L.aCol.width(), fmS.height()), Qt::AlignCenter,
               tr("aⱼ"));
    p.drawText(QRect(L.vBlock.left(), headerY, std::max(L.vBlock.width(), 120), fmS.height()),
               Qt::AlignLeft | Qt::AlignVCenter, tr("vⱼ →"));
    const int oldRows = shownN - (animTail ? 1 : 0);
    if (oldRows > 0) {
        QImage img(d, oldRows, QImage::Format_RGB32);
        for (int rr = 0; rr < oldRows; ++rr) {
            auto* line = reinterpret_cast<QRgb*>(img.scanLine(rr));
            const size_t j = static_cast<size_t>(L.first + rr);
            for (int c = 0; c < d; ++c) line[c] = vs.rgb(s.values[j * du + static_cast<size_t>(c)]);
        }
        p.drawImage(QRect(L.vBlock.left(), L.vBlock.top(), L.vBlock.width(), oldRows * L.rv), img);
    }
    const QRect newRow(L.vBlock.left(), L.vBlock.top() + (s.i - L.first) * L.rv, L.vBlock.width(),
                       L.rv);
    if (animTail) {
        const int slide = static_cast<int>(std::lround((1 - prog) * std::max(3 * L.rv, 40)));
        p.save();
        p.setClipRect(L.vArea.adjusted(0, 0, 0, 2));
        p.setOpacity(prog);
        for (int c = 0; c < d; ++c)
            p.fillRect(newRow.left() + c * L.cd, newRow.top() + slide, L.cd, L.rv,
                       vs.color(s.values[static_cast<size_t>(s.i) * du + static_cast<size_t>(c)]));
        p.restore();
    }
    const int labelStep = std::max(1, (fmS.height() + L.rv - 1) / L.rv);
    for (int j = L.first; j <= L.last; ++j) {
        const auto ju = static_cast<size_t>(j);
        const QRect aCell(L.aCol.left(), L.aCol.top() + (j - L.first) * L.rv, L.aCol.width(), L.rv);
        const bool hasPrev = anim && j < previous_.i + 1;
        const QRgb a1 =
            cellColor(wt.rgb(s.weights[ju]), hasPrev, hasPrev ? wt.rgb(previous_.weights[ju]) : 0);
        p.fillRect(aCell, QColor::fromRgb(a1));
        drawCellValue(p, aCell, s.weights[ju], a1, fmS);
        // every labelStep-th row back from the last, and the first, never two too close
        const bool onGrid = labelled(j, L.last + 1, labelStep) && j - L.first >= labelStep;
        if (onGrid || j == L.first || j == L.last) {
            p.setPen(j == s.i ? th.fresh : th.text);
            const QRect lr(L.vLabelCol.left(), aCell.center().y() - fmS.height() / 2,
                           L.vLabelCol.width() - 4, fmS.height());
            // the position always whole, the token text cut to what is left
            const QString pos = QString::number(j);
            const int posW = fmS.horizontalAdvance(pos + QStringLiteral("  "));
            p.drawText(lr, Qt::AlignRight | Qt::AlignVCenter,
                       fmS.elidedText(s.labels[j], Qt::ElideRight, std::max(0, lr.width() - posW)) +
                           QStringLiteral("  ") + pos);
        }
    }
    drawSeparators(p, L.vBlock, d, L.cd, shownN, L.rv, th.background);
    drawSeparators(p, L.aCol, 1, L.aCol.width(), shownN, L.rv, th.background);
    p.setPen(th.grid);
    p.setBrush(Qt::NoBrush);
    p.drawRect(L.vBlock.adjusted(-1, -1, 0, 0));
    p.drawRect(L.aCol.adjusted(-1, -1, 0, 0));
    if (tail) {
        p.setPen(QPen(th.fresh, penWidth(2)));
        p.drawRect(newRow.adjusted(-1, 0, 0, 0));
    }

    caption(L.oCaption, tr("output = Σⱼ aⱼ · vⱼ (1 × %1)").arg(d), tr("output = Σⱼ aⱼ vⱼ"));
    for (int r = 0; r < d; ++r) {
        const QRect cell(L.oRow.left() + r * L.cd, L.oRow.top(), L.cd, L.oRow.height());
        const QRgb c = cellColor(vs.rgb(s.output[static_cast<size_t>(r)]), anim,
                                 anim ? vsPrev.rgb(previous_.output[static_cast<size_t>(r)]) : 0);
        p.fillRect(cell, QColor::fromRgb(c));
    }
    drawSeparators(p, L.oRow, d, L.cd, 1, L.oRow.height(), th.background);
    p.setPen(th.grid);
    p.drawRect(L.oRow.adjusted(-1, -1, 0, 0));

    // -- legends
    const int n = 4, lgap = 32;
    const QString longWeights = tr("weights (square-root scale)");
    // As wide as the longest title needs (the fonts grow with the window), within a quarter.
    const int lw = std::min(std::max(220, fmS.horizontalAdvance(longWeights) + 8),
                            (L.legends.width() - (n - 1) * lgap) / n);
    const ColorScale scales[n] = {qk, sc, wt, vs};
    const QString titles[n] = {
        tr("q and Kᵀ"), tr("scores"),
        fmS.horizontalAdvance(longWeights) + 8 <= lw ? longWeights : tr("weights (√ scale)"),
        tr("V and output")};
    for (int k = 0; k < n; ++k)
        paintColorBar(
            p, QRect(L.legends.left() + k * (lw + lgap), L.legends.top(), lw, L.legends.height()),
            scales[k], titles[k], th);
}

}  // namespace kvscope::viz
