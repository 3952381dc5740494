// StepView: the snapshot of one step (copied from the traces; scores and output are the only
// arithmetic, done for display), its layout, painting and tooltips.
#include "views/step_view.h"

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

namespace {

constexpr int kMargin = 16;
constexpr int kGap = 10;
constexpr int kBigGap = 36;    // between the t-axis blocks and the V panel
constexpr int kMinCell = 3;    // smallest cell along any axis before tokens are left out
constexpr int kMaxCellD = 22;  // largest cell along head_dim
constexpr int kMaxCellT = 56;  // widest token column
constexpr int kMaxRowV = 28;   // tallest V row
constexpr int kTokenLabelW = 120;
constexpr int kLabelBand = 92;  // room for rotated token labels under the weights row

QRgb blend(QRgb from, QRgb to, double f) {
    auto lerp = [f](int a, int b) { return static_cast<int>(std::lround(a + (b - a) * f)); };
    return qRgb(lerp(qRed(from), qRed(to)), lerp(qGreen(from), qGreen(to)),
                lerp(qBlue(from), qBlue(to)));
}

float maxAbs(std::span<const float> v) {
    float m = 0;
    for (float x : v) m = std::max(m, std::abs(x));
    return m;
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

// The widest value text a score or weight cell may need ("-0.123", "1.2e-5").
int valueTextWidth(const QFontMetrics& fm) {
    return fm.horizontalAdvance(QStringLiteral("-0.000")) + 4;
}

// Every `step`-th of n labels counted back from the newest, so the newest is always labelled.
bool labelled(int j, int n, int step) {
    return (n - 1 - j) % step == 0;
}

}  // namespace

StepView::StepView(TraceStore* store, QWidget* parent)
    : QWidget(parent), store_(store), transition_(new Transition(this)) {
    setMouseTracking(true);
    setAttribute(Qt::WA_OpaquePaintEvent);
    connect(transition_, &Transition::progressed, this, qOverload<>(&QWidget::update));
    connect(store_, &TraceStore::modelChanged, this, [this] { refresh(false, true); });
    connect(store_, &TraceStore::tokensReset, this, [this] { refresh(false, true); });
    connect(store_, &TraceStore::tokenAppended, this,
            [this](int index) { refresh(store_->queryIndex() == index, false); });
    connect(store_, &TraceStore::truncated, this, [this] { refresh(false, true); });
    connect(store_, &TraceStore::selectionChanged, this, [this] { refresh(false, false); });
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this, [this] {
        layout_ = computeLayout(shown_);
        updateGeometry();
        update();
    });
    refresh(false, true);
}

QSize StepView::sizeHint() const {
    return {1280, 720};
}
QSize StepView::minimumSizeHint() const {
    return {560, 340};
}

std::span<const float> StepView::keyColumn(int j) const {
    if (!shown_.valid || j < 0 || j > shown_.i) return {};
    return {shown_.keys.data() + static_cast<size_t>(j) * static_cast<size_t>(shown_.d),
            static_cast<size_t>(shown_.d)};
}

std::span<const float> StepView::valueRow(int j) const {
    if (!shown_.valid || j < 0 || j > shown_.i) return {};
    return {shown_.values.data() + static_cast<size_t>(j) * static_cast<size_t>(shown_.d),
            static_cast<size_t>(shown_.d)};
}

double StepView::transitionProgress() const {
    return transition_->progress();
}

QRect StepView::blockRect(Block block) const {
    if (!shown_.valid) return {};
    switch (block) {
        case Block::Query:
            return layout_.qRow;
        case Block::Keys:
            return layout_.kBlock;
        case Block::Scores:
            return layout_.sRow;
        case Block::Weights:
            return layout_.wRow;
        case Block::Values:
            return layout_.vBlock;
        case Block::Output:
            return layout_.oRow;
    }
    return {};
}

StepView::Snapshot StepView::snapshot() const {
    Snapshot s;
    if (!store_->hasModel()) {
        s.emptyMessage = tr("Load a model to see one decoding step.");
        return s;
    }
    if (store_->count() == 0) {
        s.emptyMessage =
            tr("Prefill a prompt to see the query, the keys and the values of one step.");
        return s;
    }
    s.count = store_->count();
    s.i = store_->queryIndex();
    s.pinned = store_->queryPinned();
    for (int j = 0; j <= s.i; ++j) {
        if (!store_->trace(j).hasTensors()) {
            s.emptyMessage =
                tr("These tokens were decoded without traces: there is no q, k or v "
                   "to show.");
            s.i = -1;
            return s;
        }
    }
    const ModelConfig& c = store_->config();
    const StepTrace& ti = store_->trace(s.i);
    s.layer = store_->layer();
    s.head = store_->head();
    s.kv = store_->kvHead();
    s.d = ti.headDim;
    const auto d = static_cast<size_t>(s.d);
    const auto t = static_cast<size_t>(s.i) + 1;
    for (int h = 0; h < c.nHead; ++h)
        if (c.kvHeadOf(h) == s.kv) s.shared.append(h);

    s.q.assign(ti.query(s.layer, s.head), ti.query(s.layer, s.head) + d);
    s.keys.resize(t * d);
    s.values.resize(t * d);
    s.labels.reserve(static_cast<qsizetype>(t));
    for (size_t j = 0; j < t; ++j) {
        const StepTrace& tj = store_->trace(static_cast<int>(j));
        std::copy_n(tj.key(s.layer, s.kv), d, s.keys.begin() + static_cast<ptrdiff_t>(j * d));
        std::copy_n(tj.value(s.layer, s.kv), d, s.values.begin() + static_cast<ptrdiff_t>(j * d));
        s.labels.append(tokenLabel(tj.text));
    }
    // 1. scores = q·k_j / √d   (display arithmetic on the stored q and keys)
    s.scores.resize(t);
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.d));
    for (size_t j = 0; j < t; ++j) {
        double dot = 0;
        for (size_t r = 0; r < d; ++r) dot += static_cast<double>(s.q[r]) * s.keys[j * d + r];
        s.scores[j] = static_cast<float>(dot * scale);
    }
    // 2. weights: the trace's attention row (the model's softmax of the scores)
    const std::span<const float> row = store_->attentionRow(s.i, s.layer, s.head);
    s.weights.assign(row.begin(), row.end());
    // 3. output = Σ_j a_j v_j
    std::vector<double> out(d, 0.0);
    for (size_t j = 0; j < t; ++j)
        for (size_t r = 0; r < d; ++r)
            out[r] += static_cast<double>(s.weights[j]) * s.values[j * d + r];
    s.output.resize(d);
    for (size_t r = 0; r < d; ++r) s.output[r] = static_cast<float>(out[r]);

    s.qkLimit = std::max(maxAbs(s.q), maxAbs(s.keys));
    s.scoreLimit = maxAbs(s.scores);
    s.vLimit = std::max(maxAbs(s.values), maxAbs(s.output));
    s.valid = true;
    return s;
}

void StepView::refresh(bool animate, bool force) {
    Snapshot next = snapshot();
    const bool same = next.valid == shown_.valid && next.i == shown_.i &&
                      next.layer == shown_.layer && next.head == shown_.head &&
                      next.count == shown_.count;
    if (same && !force) return;
    const bool grows = animate && shown_.valid && next.valid && next.layer == shown_.layer &&
                       next.head == shown_.head && next.d == shown_.d && next.i == shown_.i + 1;
    previous_ = std::move(shown_);
    shown_ = std::move(next);
    layout_ = computeLayout(shown_);
    if (grows) {
        transition_->start();
    } else {
        transition_->finish();
    }
    update();
}

void StepView::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    layout_ = computeLayout(shown_);
}

StepView::Layout StepView::computeLayout(const Snapshot& s) const {
    Layout L;
    if (!s.valid) return L;
    const Theme& th = currentTheme();
    const QFontMetrics fmT(th.titleFont), fmL(th.labelFont), fmS(th.smallFont);
    const int W = width(), H = height();
    const int lh = fmL.height(), sh = fmS.height(), tth = fmT.height();
    const int baseRowH = std::max(30, sh + 12);
    const int numberW = valueTextWidth(fmS);
    const int legendH = colorBarSize(th, 100).height();
    const int aColW = std::max(60, fmS.horizontalAdvance(QStringLiteral("0.000")) + 12);
    const int d = s.d, t = s.i + 1;
    const int minTArea = 240;
    // q stands as a column beside Kᵀ, row for row with the dimensions it multiplies; its column
    // and the labels above it are all the left side needs.
    const int qW = std::clamp(fmS.height() + 12, 22, 40);
    const int leftCol = std::max(qW + 8, fmS.horizontalAdvance(tr("token %1").arg(s.i)) + 8);
    const int top = kMargin + tth + 4 + lh + 12;

    // Everything for one height of the score and weight rows: cells along head_dim, the token
    // columns of Kᵀ, the V rows, and the window of tokens both show.
    auto place = [&](int rowH) {
        Layout P;
        const int fixedV = top + (lh + 2) + (sh + 2) + 8 + (lh + 2) + rowH + 8 + (lh + 2) + rowH +
                           4 + kLabelBand + lh + 8 + legendH + kMargin;
        const int cdV = (H - fixedV) / std::max(1, d);
        const int fixedH =
            2 * kMargin + leftCol + kGap + kBigGap + kTokenLabelW + 6 + aColW + 8 + minTArea;
        const int cdH = (W - fixedH) / std::max(1, d);
        P.cd = std::clamp(std::min(cdV, cdH), kMinCell, kMaxCellD);
        const int dW = d * P.cd;
        const int vPanelW = kTokenLabelW + 6 + aColW + 8 + dW;
        const int tArea = std::max(kMinCell, W - 2 * kMargin - leftCol - kGap - kBigGap - vPanelW);
        const int vTop = top + lh + 2 + sh + 4;
        const int legendTop = H - kMargin - legendH;
        const int availV = std::max(kMinCell, legendTop - 12 - vTop - (8 + lh + 2 + baseRowH));
        // The same tokens in Kᵀ (columns) and V (rows): as many as fit in both, the newest last.
        const int fitT = std::max(1, tArea / kMinCell), fitV = std::max(1, availV / kMinCell);
        const int shown = std::min({t, fitT, fitV});
        P.first = P.firstV = t - shown;
        P.ct = std::clamp(tArea / shown, kMinCell, kMaxCellT);
        P.rv = std::clamp(availV / shown, kMinCell, kMaxRowV);
        return std::pair{P, tArea};
    };
    auto [placed, tArea] = place(baseRowH);
    int rowH = baseRowH;
    // Columns too narrow to write a value across, wide enough to write it upwards: taller rows.
    if (placed.ct < numberW && placed.ct >= sh + 2) {
        auto [taller, tArea2] = place(numberW);
        if (taller.ct >= sh + 2 && taller.cd >= std::min(placed.cd, 6)) {
            placed = taller;
            tArea = tArea2;
            rowH = numberW;
        }
    }
    L = placed;
    const int d0 = d * L.cd;
    const int shownT = t - L.first;
    const int tW = shownT * L.ct;
    L.rotatedLabels = false;
    for (int j = L.first; j < t && !L.rotatedLabels; ++j)
        if (fmS.horizontalAdvance(s.labels[j]) + 6 > L.ct) L.rotatedLabels = true;

    const int x0 = kMargin + leftCol + kGap;
    L.title = QRect(kMargin, kMargin, W - 2 * kMargin, tth);
    L.subtitle = QRect(kMargin, L.title.bottom() + 4, W - 2 * kMargin, lh);
    int y = top;
    L.kCaption = QRect(x0, y, tArea + kBigGap / 2, lh);
    L.qCaption = QRect(kMargin, y, leftCol, lh);
    y += lh + 2;
    L.kTicks = QRect(x0, y, tW, sh);
    L.dimHint = QRect(kMargin, y, leftCol, sh);  // "token i" over the q column
    y += sh + 2;
    L.kBlock = QRect(x0, y, tW, d0);
    L.qRow = QRect(x0 - kGap - qW, y, qW, d0);
    y += d0 + 8;
    L.sCaption = QRect(x0, y, tArea + kBigGap / 2, lh);
    y += lh + 2;
    L.sRow = QRect(x0, y, tW, rowH);
    y += rowH + 8;
    L.wCaption = QRect(x0, y, tArea + kBigGap / 2, lh);
    y += lh + 2;
    L.wRow = QRect(x0, y, tW, rowH);
    y += rowH + 4;
    L.labels = QRect(x0, y, tW, L.rotatedLabels ? kLabelBand : sh + 6);
    y += L.labels.height();
    L.note = QRect(kMargin, y, leftCol + kGap + tArea, lh);
    L.legends = QRect(kMargin, H - kMargin - legendH, W - 2 * kMargin, legendH);

    // The V panel on the right: token label, weight a_j, then the value row.
    const int vx = x0 + tArea + kBigGap;
    L.vCaption = QRect(vx, top, W - kMargin - vx, lh);
    const int vTop = top + lh + 2 + sh + 4;
    const int shownV = t - L.firstV;
    L.vLabelCol = QRect(vx, vTop, kTokenLabelW, shownV * L.rv);
    L.aCol = QRect(vx + kTokenLabelW + 6, vTop, aColW, shownV * L.rv);
    L.vBlock = QRect(L.aCol.right() + 1 + 8, vTop, d0, shownV * L.rv);
    L.vArea = QRect(vx, vTop, W - kMargin - vx, shownV * L.rv);
    L.oCaption = QRect(vx, L.vBlock.bottom() + 1 + 8, W - kMargin - vx, lh);
    L.oRow = QRect(L.vBlock.left(), L.oCaption.bottom() + 1 + 2, d0, baseRowH);
    return L;
}

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

void StepView::paintStep(QPainter& p) {
    elided_.clear();
    // Text cut to a width, with a record of what did not fit (for tests of small screens).
    auto fit = [this](const QFontMetrics& fm, const QString& text, int width) {
        const QString cut = fm.elidedText(text, Qt::ElideRight, width);
        if (cut != text) elided_ << text;
        return cut;
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
    p.drawText(L.title, Qt::AlignLeft | Qt::AlignVCenter,
               fit(QFontMetrics(th.titleFont), title, L.title.width()));
    p.setFont(th.labelFont);
    p.setPen(th.mutedText);
    QString kvNote;
    if (s.shared.size() > 1) {
        QStringList heads;
        for (int h : s.shared) heads.append(QString::number(h));
        kvNote = tr("Grouped-query attention: query heads %1 share K/V head %2 (%3 query heads "
                    "per K/V head), so the cache keeps one K and V for all of them.")
                     .arg(heads.join(QStringLiteral(", ")))
                     .arg(s.kv)
                     .arg(s.shared.size());
    } else {
        kvNote = tr("Multi-head attention: K/V head %1 belongs to query head %2 alone.")
                     .arg(s.kv)
                     .arg(s.head);
    }
    p.drawText(L.subtitle, Qt::AlignLeft | Qt::AlignVCenter, fit(fmL, kvNote, L.subtitle.width()));

    // -- Kᵀ: head_dim × t, one column per cached key
    // A caption: the long text where it fits, else the short one (elided if need be).
    auto caption = [&](const QRect& r, const QString& longText, const QString& shortText,
                       Qt::Alignment align = Qt::AlignLeft) {
        p.setFont(th.labelFont);
        p.setPen(th.text);
        const QString text = fmL.horizontalAdvance(longText) <= r.width() ? longText : shortText;
        p.drawText(r, align | Qt::AlignVCenter, fit(fmL, text, r.width()));
    };
    caption(L.kCaption,
            tr("Kᵀ (%1 × %2): keys of tokens %3–%4 from the cache; outlined: the new key k%4")
                .arg(d)
                .arg(t)
                .arg(L.first)
                .arg(s.i),
            L.first > 0 ? tr("Kᵀ (%1 × %2): the last %3 keys").arg(d).arg(t).arg(t - L.first)
                        : tr("Kᵀ (%1 × %2): cached keys").arg(d).arg(t));
    const int oldCols = s.i - L.first + (anim ? 0 : 1);  // columns drawn in place
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
    {
        const int slide =
            anim ? static_cast<int>(std::lround((1 - prog) * std::max(3 * L.ct, 60))) : 0;
        p.save();
        p.setClipRect(
            QRect(L.kBlock.left(), L.kBlock.top() - 2, L.kCaption.width(), L.kBlock.height() + 4));
        p.setOpacity(anim ? prog : 1.0);
        for (int r = 0; r < d; ++r)
            p.fillRect(newCol.left() + slide, newCol.top() + r * L.cd, L.ct, L.cd,
                       qk.color(s.keys[static_cast<size_t>(s.i) * du + static_cast<size_t>(r)]));
        p.restore();
    }
    drawSeparators(p, L.kBlock, t - L.first, L.ct, d, L.cd, th.background);
    p.setPen(th.grid);
    p.setBrush(Qt::NoBrush);
    p.drawRect(L.kBlock.adjusted(-1, -1, 0, 0));
    p.setPen(QPen(th.fresh, 2));
    p.drawRect(newCol.adjusted(0, -1, 0, 0));
    // Token indices above the columns: a round step that leaves room for the numbers.
    {
        p.setFont(th.smallFont);
        p.setPen(th.mutedText);
        const int needed = fmS.horizontalAdvance(QString::number(s.i)) + 10;
        int step = 1;
        for (int cand : {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}) {
            step = cand;
            if (cand * L.ct >= needed) break;
        }
        for (int j = L.first; j <= s.i; ++j) {
            if (j % step != 0 && j != s.i) continue;
            if (j != s.i && (s.i - j) * L.ct < needed) continue;  // keep clear of the newest
            const int cx = L.kTicks.left() + (j - L.first) * L.ct + L.ct / 2;
            p.setPen(j == s.i ? th.fresh : th.mutedText);
            p.drawText(QRect(cx - needed / 2, L.kTicks.top(), needed, L.kTicks.height()),
                       Qt::AlignCenter, QString::number(j));
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
    for (int j = L.first; j <= s.i; ++j) {
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
    drawSeparators(p, L.sRow, t - L.first, L.ct, 1, L.sRow.height(), th.background);
    drawSeparators(p, L.wRow, t - L.first, L.ct, 1, L.wRow.height(), th.background);
    p.setPen(th.grid);
    p.setBrush(Qt::NoBrush);
    for (const QRect& r : {L.qRow, L.sRow, L.wRow}) p.drawRect(r.adjusted(-1, -1, 0, 0));

    // -- token labels along t
    p.setFont(th.smallFont);
    {
        const int step = L.rotatedLabels ? std::max(1, (fmS.height() + L.ct - 1) / L.ct) : 1;
        for (int j = L.first; j <= s.i; ++j) {
            if (!labelled(j, t, step)) continue;
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
    if (L.first > 0 && L.note.bottom() < L.legends.top() - 4) {
        p.setFont(th.labelFont);
        p.setPen(th.accent);
        p.drawText(L.note, Qt::AlignLeft | Qt::AlignVCenter,
                   fmL.elidedText(tr("Long context: keys and values of tokens %1–%2 (the last %3 "
                                     "of %4) fit here; hover a cell for its value.")
                                      .arg(L.first)
                                      .arg(s.i)
                                      .arg(t - L.first)
                                      .arg(t),
                                  Qt::ElideRight, L.note.width()));
    }

    // -- V panel: token, weight a_j, value row v_j; the output row underneath
    caption(L.vCaption,
            tr("V (%1 × %2): values of tokens %3–%4").arg(t).arg(d).arg(L.firstV).arg(s.i),
            L.firstV > 0 ? tr("V (%1 × %2): the last %3 values").arg(t).arg(d).arg(t - L.firstV)
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
    const int oldRows = s.i - L.firstV + (anim ? 0 : 1);
    if (oldRows > 0) {
        QImage img(d, oldRows, QImage::Format_RGB32);
        for (int rr = 0; rr < oldRows; ++rr) {
            auto* line = reinterpret_cast<QRgb*>(img.scanLine(rr));
            const size_t j = static_cast<size_t>(L.firstV + rr);
            for (int c = 0; c < d; ++c) line[c] = vs.rgb(s.values[j * du + static_cast<size_t>(c)]);
        }
        p.drawImage(QRect(L.vBlock.left(), L.vBlock.top(), L.vBlock.width(), oldRows * L.rv), img);
    }
    const QRect newRow(L.vBlock.left(), L.vBlock.top() + (s.i - L.firstV) * L.rv, L.vBlock.width(),
                       L.rv);
    {
        const int slide =
            anim ? static_cast<int>(std::lround((1 - prog) * std::max(3 * L.rv, 40))) : 0;
        p.save();
        p.setClipRect(L.vArea.adjusted(0, 0, 0, 2));
        p.setOpacity(anim ? prog : 1.0);
        for (int c = 0; c < d; ++c)
            p.fillRect(newRow.left() + c * L.cd, newRow.top() + slide, L.cd, L.rv,
                       vs.color(s.values[static_cast<size_t>(s.i) * du + static_cast<size_t>(c)]));
        p.restore();
    }
    const int labelStep = std::max(1, (fmS.height() + L.rv - 1) / L.rv);
    for (int j = L.firstV; j <= s.i; ++j) {
        const auto ju = static_cast<size_t>(j);
        const QRect aCell(L.aCol.left(), L.aCol.top() + (j - L.firstV) * L.rv, L.aCol.width(),
                          L.rv);
        const bool hasPrev = anim && j < previous_.i + 1;
        const QRgb a1 =
            cellColor(wt.rgb(s.weights[ju]), hasPrev, hasPrev ? wt.rgb(previous_.weights[ju]) : 0);
        p.fillRect(aCell, QColor::fromRgb(a1));
        drawCellValue(p, aCell, s.weights[ju], a1, fmS);
        if (labelled(j, t, labelStep)) {
            p.setPen(j == s.i ? th.fresh : th.text);
            const QRect lr(L.vLabelCol.left(), aCell.center().y() - fmS.height() / 2,
                           L.vLabelCol.width() - 4, fmS.height());
            p.drawText(lr, Qt::AlignRight | Qt::AlignVCenter,
                       fmS.elidedText(QStringLiteral("%1  %2").arg(j).arg(s.labels[j]),
                                      Qt::ElideLeft, lr.width()));
        }
    }
    drawSeparators(p, L.vBlock, d, L.cd, t - L.firstV, L.rv, th.background);
    drawSeparators(p, L.aCol, 1, L.aCol.width(), t - L.firstV, L.rv, th.background);
    p.setPen(th.grid);
    p.setBrush(Qt::NoBrush);
    p.drawRect(L.vBlock.adjusted(-1, -1, 0, 0));
    p.drawRect(L.aCol.adjusted(-1, -1, 0, 0));
    p.setPen(QPen(th.fresh, 2));
    p.drawRect(newRow.adjusted(-1, 0, 0, 0));

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

QString StepView::toolTipAt(const QPoint& pos) const {
    const Snapshot& s = shown_;
    const Layout& L = layout_;
    if (!s.valid || L.cd == 0) return {};
    const auto du = static_cast<size_t>(s.d);
    auto tok = [&](int j) { return tr("token %1 “%2”").arg(j).arg(s.labels[j]); };
    if (L.kBlock.contains(pos)) {
        const int j = L.first + (pos.x() - L.kBlock.left()) / L.ct;
        const int r = (pos.y() - L.kBlock.top()) / L.cd;
        if (j <= s.i && r < s.d)
            return tr("Kᵀ[%1, %2] = key of %3, dim %1 = %4")
                .arg(r)
                .arg(j)
                .arg(tok(j),
                     formatValue(s.keys[static_cast<size_t>(j) * du + static_cast<size_t>(r)]));
    }
    if (L.qRow.contains(pos)) {
        const int r = (pos.y() - L.qRow.top()) / L.cd;
        if (r < s.d)
            return tr("q[%1] of %2 = %3")
                .arg(r)
                .arg(tok(s.i), formatValue(s.q[static_cast<size_t>(r)]));
    }
    if (L.sRow.contains(pos) || L.wRow.contains(pos)) {
        const int j = L.first + (pos.x() - L.sRow.left()) / L.ct;
        if (j > s.i) return {};
        const auto ju = static_cast<size_t>(j);
        if (L.sRow.contains(pos))
            return tr("score of %1 = q · k%2 / √%3 = %4")
                .arg(tok(j))
                .arg(j)
                .arg(s.d)
                .arg(formatValue(s.scores[ju]));
        return tr("weight of %1 = %2 (softmax of the scores)")
            .arg(tok(j), formatValue(s.weights[ju]));
    }
    if (L.aCol.contains(pos) || L.vBlock.contains(pos) || L.vLabelCol.contains(pos)) {
        const int j = L.firstV + (pos.y() - L.vBlock.top()) / L.rv;
        if (j > s.i) return {};
        const auto ju = static_cast<size_t>(j);
        if (L.vBlock.contains(pos)) {
            const int c = (pos.x() - L.vBlock.left()) / L.cd;
            if (c < s.d)
                return tr("V[%1, %2] = value of %3, dim %2 = %4")
                    .arg(j)
                    .arg(c)
                    .arg(tok(j), formatValue(s.values[ju * du + static_cast<size_t>(c)]));
            return {};
        }
        return tr("a%1 = weight of %2 = %3").arg(j).arg(tok(j), formatValue(s.weights[ju]));
    }
    if (L.oRow.contains(pos)) {
        const int r = (pos.x() - L.oRow.left()) / L.cd;
        if (r < s.d)
            return tr("output[%1] = Σⱼ aⱼ · V[j, %1] = %2")
                .arg(r)
                .arg(formatValue(s.output[static_cast<size_t>(r)]));
    }
    return {};
}

bool StepView::event(QEvent* event) {
    if (event->type() == QEvent::ToolTip) {
        auto* help = static_cast<QHelpEvent*>(event);
        const QString text = toolTipAt(help->pos());
        if (text.isEmpty()) {
            QToolTip::hideText();
            event->ignore();
        } else {
            QToolTip::showText(help->globalPos(), text, this);
        }
        return true;
    }
    return QWidget::event(event);
}

}  // namespace kvscope::viz
