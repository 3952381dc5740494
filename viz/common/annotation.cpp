// Annotations: a label in a rounded box, offset up and to the left of its point where there is
// room (else to the other side), and an arrow to the point; the theme's accent colour, thick
// enough for a projector.
#include "common/annotation.h"

#include <QFontMetrics>
#include <QPainter>
#include <QPainterPath>
#include <cmath>

#include "common/theme.h"

namespace kvscope::viz {

void paintAnnotations(QPainter& p, const QSize& size, const std::vector<Annotation>& notes,
                      const QString& view) {
    const Theme& th = currentTheme();
    p.save();
    p.setRenderHint(QPainter::Antialiasing);
    QFont font = th.labelFont;
    font.setBold(true);
    p.setFont(font);
    const QFontMetrics fm(font);
    for (const Annotation& a : notes) {
        if (a.view != view || a.text.isEmpty()) continue;
        const QPointF point(a.x * size.width(), a.y * size.height());
        const QSizeF box(fm.horizontalAdvance(a.text) + 16, fm.height() + 8);
        QPointF corner = point;
        if (a.arrow) {
            const double dx = point.x() - box.width() - 40 >= 0 ? -box.width() - 40 : 40;
            const double dy = point.y() - box.height() - 40 >= 0 ? -box.height() - 40 : 40;
            corner += QPointF(dx, dy);
        } else {
            corner -= QPointF(box.width() / 2, box.height() / 2);
        }
        const QRectF label(corner, box);
        if (a.arrow) {  // from the label's nearest corner to the point, with a head
            const QPointF from(label.center().x() < point.x() ? label.right() : label.left(),
                               label.center().y() < point.y() ? label.bottom() : label.top());
            const QPointF d = point - from;
            const double len = std::hypot(d.x(), d.y());
            if (len > 1) {
                const QPointF u = d / len, n(-u.y(), u.x());
                const double head = penWidth(12);
                p.setPen(QPen(th.accent, penWidth(3), Qt::SolidLine, Qt::RoundCap));
                p.drawLine(from, point - u * head * 0.6);
                QPainterPath tip;
                tip.moveTo(point);
                tip.lineTo(point - u * head + n * head * 0.5);
                tip.lineTo(point - u * head - n * head * 0.5);
                tip.closeSubpath();
                p.fillPath(tip, th.accent);
            }
        }
        p.setPen(QPen(th.accent, penWidth(2)));
        p.setBrush(th.background);
        p.drawRoundedRect(label, 6, 6);
        p.setPen(th.text);
        p.drawText(label, Qt::AlignCenter, a.text);
    }
    p.restore();
}

}  // namespace kvscope::viz
