// StepView: the snapshot of one step (copied from the traces; scores and output are the only
// arithmetic, done for display), its layout, painting and tooltips.
#include "views/step_view.h"

#include "views/step_view_detail.h"

#include <QAction>
#include <QImage>
#include <QPainter>
#include <QScrollBar>
#include <QSignalBlocker>
#include <QToolButton>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>
#include <tuple>

#include "common/colormap.h"
#include "common/labels.h"
#include "common/theme.h"
#include "common/tooltip.h"
#include "common/trace_store.h"
#include "common/transition.h"

namespace kvscope::viz {

using namespace step_view_detail;

namespace {
float maxAbs(std::span<const float> v) {
    float m = 0;
    for (float x : v) m = std::max(m, std::abs(x));
    return m;
}
}  // namespace

StepView::StepView(TraceStore* store, QWidget* parent)
    : QWidget(parent),
      store_(store),
      transition_(new Transition(this)),
      bar_(new QScrollBar(Qt::Horizontal, this)),
      pin_(new QToolButton(this)) {
    setMouseTracking(true);
    bar_->setObjectName("stepWindow");
    bar_->setProperty("kvscopeScreenOnly", true);  // left out of exported figures
    bar_->setFocusPolicy(Qt::NoFocus);  // the arrows step the decoder; Ctrl+arrows move this
    bar_->setToolTip(
        tr("Which positions Kᵀ and V show (the same in both). Ctrl+← / Ctrl+→ move by one, "
           "Ctrl+Home to the first, Ctrl+End back to the inspected query."));
    bar_->hide();
    connect(bar_, &QScrollBar::valueChanged, this, &StepView::moveWindowTo);
    pin_->setObjectName("pinWindow");
    pin_->setProperty("kvscopeScreenOnly", true);
    pin_->setText(tr("Pin"));
    pin_->setCheckable(true);
    pin_->setFocusPolicy(Qt::NoFocus);
    pin_->setToolTip(
        tr("Pinned: Kᵀ and V keep these positions while you step. Unpinned: each "
           "step shows the newest positions again."));
    pin_->hide();
    connect(pin_, &QToolButton::toggled, this, &StepView::setWindowPinned);
    // Keys for the window, active while the view is shown (a hidden tab's are not).
    auto key = [this](const QKeySequence& seq, auto slot) {
        auto* a = new QAction(this);
        a->setShortcut(seq);
        a->setShortcutContext(Qt::WindowShortcut);
        connect(a, &QAction::triggered, this, slot);
        addAction(a);
    };
    key(QKeySequence(Qt::CTRL | Qt::Key_Left), [this] { moveWindowBy(-1); });
    key(QKeySequence(Qt::CTRL | Qt::Key_Right), [this] { moveWindowBy(+1); });
    key(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_Left),
        [this] { moveWindowBy(-std::max(1, layout_.last - layout_.first + 1)); });
    key(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_Right),
        [this] { moveWindowBy(std::max(1, layout_.last - layout_.first + 1)); });
    key(QKeySequence(Qt::CTRL | Qt::Key_Home), [this] { moveWindowTo(0); });
    key(QKeySequence(Qt::CTRL | Qt::Key_End), [this] { followQuery(); });
    setAttribute(Qt::WA_OpaquePaintEvent);
    connect(transition_, &Transition::progressed, this, qOverload<>(&QWidget::update));
    connect(store_, &TraceStore::modelChanged, this, [this] { refresh(false, true); });
    connect(store_, &TraceStore::tokensReset, this, [this] { refresh(false, true); });
    connect(store_, &TraceStore::tokenAppended, this,
            [this](int index) { refresh(store_->queryIndex() == index, false); });
    connect(store_, &TraceStore::truncated, this, [this] { refresh(false, true); });
    connect(store_, &TraceStore::headMatrixReady, this, [this] { refresh(false, true); });
    connect(store_, &TraceStore::selectionChanged, this, [this] { refresh(false, false); });
    connect(&ThemeSettings::instance(), &ThemeSettings::changed, this, [this] {
        layout_ = computeLayout(shown_);
        syncBar();
        updateGeometry();
        update();
    });
    refresh(false, true);
}

std::pair<int, int> StepView::keyWindow() const {
    if (!shown_.valid) return {0, -1};
    return {layout_.first, layout_.last};
}

QString StepView::windowText() const {
    if (!shown_.valid) return {};
    return tr("positions %1–%2 of %3").arg(layout_.first).arg(layout_.last).arg(shown_.i + 1);
}

void StepView::moveWindowTo(int first) {
    if (!shown_.valid) return;
    const int size = layout_.last - layout_.first + 1;
    const int t = shown_.i + 1;
    if (size <= 0 || size >= t) return;  // everything fits: nothing to move
    first = std::clamp(first, 0, t - size);
    held_ = pinned_ || first != t - size;  // back at the query's end: follows it again
    heldFirst_ = first;
    if (first == layout_.first) return;
    layout_ = computeLayout(shown_);
    syncBar();
    update();
}

void StepView::moveWindowBy(int delta) {
    moveWindowTo(layout_.first + delta);
}

void StepView::setWindowPinned(bool pinned) {
    if (pinned == pinned_) return;
    pinned_ = pinned;
    {
        const QSignalBlocker block(pin_);
        pin_->setChecked(pinned);
    }
    if (pinned) {  // keep the positions shown now
        held_ = true;
        heldFirst_ = layout_.first;
        return;
    }
    held_ = true;  // so that followQuery() lays out again
    followQuery();
}

void StepView::followQuery() {
    if (pinned_) {
        pinned_ = false;
        const QSignalBlocker block(pin_);
        pin_->setChecked(false);
    }
    if (!held_) return;
    held_ = false;
    layout_ = computeLayout(shown_);
    syncBar();
    update();
}

void StepView::wheelEvent(QWheelEvent* event) {
    if (!bar_->isVisible()) return QWidget::wheelEvent(event);
    const QPoint d = event->angleDelta();
    const int steps = (std::abs(d.x()) > std::abs(d.y()) ? d.x() : d.y()) / 40;
    if (steps == 0) return event->accept();
    // Wheel up or left: earlier positions.
    moveWindowBy(-steps * std::max(1, (layout_.last - layout_.first + 1) / 10));
    event->accept();
}

void StepView::syncBar() {
    const int t = shown_.valid ? shown_.i + 1 : 0;
    const int size = layout_.last - layout_.first + 1;
    if (!shown_.valid || layout_.scroll.isEmpty() || size >= t) {
        bar_->hide();
        pin_->hide();
        return;
    }
    const QSignalBlocker block(bar_);
    bar_->setRange(0, t - size);
    bar_->setPageStep(size);
    bar_->setSingleStep(1);
    bar_->setValue(layout_.first);
    const int pinW = pin_->sizeHint().width();
    const QRect r = layout_.scroll;
    const int barH = std::min(r.height(), bar_->sizeHint().height());
    bar_->setGeometry(r.left(), r.top() + (r.height() - barH) / 2, r.width() - pinW - 6, barH);
    pin_->setGeometry(r.right() - pinW + 1, r.top() + (r.height() - pin_->sizeHint().height()) / 2,
                      pinW, pin_->sizeHint().height());
    bar_->show();
    pin_->show();
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
    if (store_->attentionRow(s.i, s.layer, s.head).empty() && !store_->canRebuildRows()) {
        s.emptyMessage = store_->droppedRowsText();
        s.i = -1;
        return s;
    }
    if (store_->attentionRow(s.i, s.layer, s.head).empty()) {
        // the attention budget let this token's rows go: they are rebuilt from the cache
        store_->requestHeadMatrix(s.layer, s.head);
        s.emptyMessage = tr("Rebuilding the attention rows of layer %1, head %2 from the stored "
                            "queries and the cache…")
                             .arg(s.layer)
                             .arg(s.head);
        s.i = -1;
        return s;
    }
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
    // A new inspected query (a step, a pinned token, a step back) brings a moved window back to
    // end at it, unless the window is pinned; a new layer or head does not move it.
    if (!next.valid) {
        const QSignalBlocker block(pin_);
        pin_->setChecked(false);
        pinned_ = false;
    }
    if (!next.valid || (next.i != shown_.i && !pinned_)) held_ = false;
    previous_ = std::move(shown_);
    shown_ = std::move(next);
    layout_ = computeLayout(shown_);
    syncBar();
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
    syncBar();
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
    const int barH = std::max({16, sh + 4, pin_->sizeHint().height()});
    auto place = [&](int rowH, bool bar) {
        Layout P;
        const int noteH = lh + 8;
        const int fixedV = top + (lh + 2) + (sh + 2) + 8 + (lh + 2) + rowH + 8 + (lh + 2) + rowH +
                           4 + kLabelBand + (bar ? barH + 4 : 0) + noteH + legendH + kMargin;
        // Too short for Kᵀ at its smallest cells: a lower band of token labels, no note line (the
        // captions say the positions), lower score and weight rows, then 2 px along head_dim, so
        // the bar and the legends stay on screen.
        int over = kMinCell * d - (H - fixedV);
        P.band = kLabelBand;
        P.noteShown = true;
        P.rowH = rowH;
        if (over > 0) {
            P.band = std::max(sh + 6, kLabelBand - over);
            over -= kLabelBand - P.band;
        }
        if (over > 0) {
            P.noteShown = false;
            over -= noteH;
        }
        if (over > 0) {
            const int cut = std::clamp((over + 1) / 2, 0, rowH - std::max(sh + 8, 20));
            P.rowH -= cut;
            over -= 2 * cut;
        }
        const int saved = (kLabelBand - P.band) + (P.noteShown ? 0 : noteH) + 2 * (rowH - P.rowH);
        const int cdV = (H - fixedV + saved) / std::max(1, d);
        const int fixedH =
            2 * kMargin + leftCol + kGap + kBigGap + kTokenLabelW + 6 + aColW + 8 + minTArea;
        const int cdH = (W - fixedH) / std::max(1, d);
        P.cd = std::clamp(std::min(cdV, cdH), over > 0 ? 2 : kMinCell, kMaxCellD);
        const int dW = d * P.cd;
        const int vPanelW = kTokenLabelW + 6 + aColW + 8 + dW;
        const int tArea = std::max(kMinCell, W - 2 * kMargin - leftCol - kGap - kBigGap - vPanelW);
        const int vTop = top + lh + 2 + sh + 4;
        const int legendTop = H - kMargin - legendH;
        const int availV = std::max(kMinCell, legendTop - 12 - vTop - (8 + lh + 2 + baseRowH));
        // The same positions in Kᵀ (columns) and V (rows): as many as fit in both, ending at the
        // query unless the user holds the window elsewhere.
        const int fitT = std::max(1, tArea / kMinCell), fitV = std::max(1, availV / kMinCell);
        const int shown = std::min({t, fitT, fitV});
        P.first = held_ ? std::clamp(heldFirst_, 0, t - shown) : t - shown;
        P.last = P.first + shown - 1;
        P.ct = std::clamp(tArea / shown, kMinCell, kMaxCellT);
        P.rv = std::clamp(availV / shown, kMinCell, kMaxRowV);
        return std::pair{P, tArea};
    };
    bool bar = false;
    auto [placed, tArea] = place(baseRowH, bar);
    if (placed.last - placed.first + 1 < t) {  // a window: room for the bar that moves it
        bar = true;
        std::tie(placed, tArea) = place(baseRowH, bar);
    }
    int rowH = baseRowH;
    // Columns too narrow to write a value across, wide enough to write it upwards: taller rows.
    if (placed.ct < numberW && placed.ct >= sh + 2) {
        auto [taller, tArea2] = place(numberW, bar);
        if (taller.ct >= sh + 2 && taller.cd >= std::min(placed.cd, 6)) {
            placed = taller;
            tArea = tArea2;
            rowH = numberW;
        }
    }
    L = placed;
    rowH = L.rowH;
    const int d0 = d * L.cd;
    const int shownT = L.last - L.first + 1;
    const int tW = shownT * L.ct;
    L.rotatedLabels = false;
    for (int j = L.first; j <= L.last && !L.rotatedLabels; ++j)
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
    L.labels = QRect(x0, y, tW, L.rotatedLabels ? L.band : sh + 6);
    y += L.labels.height();
    if (bar) {
        L.scroll = QRect(x0, y + 2, std::max(tW, std::min(tArea, 240)), barH);
        y += barH + 4;
    }
    if (L.noteShown) L.note = QRect(kMargin, y, leftCol + kGap + tArea, lh);
    L.legends = QRect(kMargin, H - kMargin - legendH, W - 2 * kMargin, legendH);

    // The V panel on the right: token label, weight a_j, then the value row.
    const int vx = x0 + tArea + kBigGap;
    L.vCaption = QRect(vx, top, W - kMargin - vx, lh);
    const int vTop = top + lh + 2 + sh + 4;
    const int shownV = shownT;
    L.vLabelCol = QRect(vx, vTop, kTokenLabelW, shownV * L.rv);
    L.aCol = QRect(vx + kTokenLabelW + 6, vTop, aColW, shownV * L.rv);
    L.vBlock = QRect(L.aCol.right() + 1 + 8, vTop, d0, shownV * L.rv);
    L.vArea = QRect(vx, vTop, W - kMargin - vx, shownV * L.rv);
    L.oCaption = QRect(vx, L.vBlock.bottom() + 1 + 8, W - kMargin - vx, lh);
    L.oRow = QRect(L.vBlock.left(), L.oCaption.bottom() + 1 + 2, d0, baseRowH);
    return L;
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
        if (j <= L.last && r < s.d)
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
        if (j > L.last) return {};
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
        const int j = L.first + (pos.y() - L.vBlock.top()) / L.rv;
        if (j > L.last) return {};
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
    if (answerToolTip(this, event, [this](QPoint pos) { return toolTipAt(pos); })) return true;
    return QWidget::event(event);
}

}  // namespace kvscope::viz
