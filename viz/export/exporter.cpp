// Exporter: QImage, QSvgGenerator and QPdfWriter behind one call, all through QSaveFile.
#include "export/exporter.h"

#include <QCoreApplication>
#include <QImage>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QPointer>
#include <QSvgGenerator>

#include "common/figure.h"
#include "common/theme.h"

namespace kvscope::viz {

std::optional<ExportFormat> exportFormatFromName(const QString& name) {
    const QString n = name.toLower();
    if (n == "png") return ExportFormat::Png;
    if (n == "svg") return ExportFormat::Svg;
    if (n == "pdf") return ExportFormat::Pdf;
    return std::nullopt;
}

QString extensionOf(ExportFormat f) {
    switch (f) {
        case ExportFormat::Png:
            return "png";
        case ExportFormat::Svg:
            return "svg";
        case ExportFormat::Pdf:
            return "pdf";
    }
    return {};
}

namespace {

QString openError(const QString& path, const QSaveFile& f) {
    return QString("cannot write '%1': %2").arg(path, f.errorString());
}

// PDF pages in points: one widget pixel is one point (72 dpi), so text stays its screen size.
void setupPdf(QPdfWriter& w, QSize size) {
    w.setResolution(72);
    w.setPageMargins(QMarginsF(0, 0, 0, 0));
    w.setPageSize(QPageSize(QSizeF(size), QPageSize::Point, QString(), QPageSize::ExactMatch));
    w.setCreator("KVScope");
}

// What a screen would show once the event loop had run: a window never shown (the command
// line's figures) "shown" off screen, so that its resize reaches it now and not in the middle
// of the first render (a chart that shortened its title there had been painted with the old
// one, elided), and the layouts asked for done, the charts' scenes included.
void settle(QWidget* widget) {
    if (widget->isWindow() && !widget->isVisible()) {
        widget->setAttribute(Qt::WA_DontShowOnScreen);
        widget->show();
    }
    widget->ensurePolished();
    for (int pass = 0; pass < 3; ++pass) QCoreApplication::sendPostedEvents();
}

// Controls that only work on a screen (a view's scroll bar, its pin button) are left out of
// figures: children with the property "kvscopeScreenOnly" are hidden while the widget renders.
class ScreenControlsHidden {
  public:
    explicit ScreenControlsHidden(QWidget* widget) {
        for (QWidget* child : widget->findChildren<QWidget*>())
            if (child->property("kvscopeScreenOnly").toBool() && child->isVisible()) {
                child->hide();
                hidden_.append(child);
            }
    }
    ~ScreenControlsHidden() {
        for (const QPointer<QWidget>& child : hidden_)
            if (child) child->show();
    }
    ScreenControlsHidden(const ScreenControlsHidden&) = delete;
    ScreenControlsHidden& operator=(const ScreenControlsHidden&) = delete;

  private:
    QList<QPointer<QWidget>> hidden_;
};

}  // namespace

namespace {
// The caption band's height for a figure `width` wide (0 without a caption).
int captionHeight(const QString& caption, int width) {
    if (caption.isEmpty()) return 0;
    const QFontMetrics fm(currentTheme().labelFont);
    const QRect r = fm.boundingRect(QRect(0, 0, width - 24, 10000), Qt::TextWordWrap, caption);
    return r.height() + 16;
}
// Paints the widget, then the caption in the band under it.
void paintFigure(QPainter& p, QWidget* widget, const QString& caption, QSize figure,
                 const std::vector<Annotation>& notes, const QString& view) {
    widget->render(&p);
    paintAnnotations(p, widget->size(), notes, view);
    if (caption.isEmpty()) return;
    const QSize w = widget->size();
    const QRect band(0, w.height(), figure.width(), figure.height() - w.height());
    p.fillRect(band, currentTheme().background);
    p.setPen(currentTheme().text);
    p.setFont(currentTheme().labelFont);
    p.drawText(band.adjusted(12, 8, -12, -8), Qt::AlignLeft | Qt::AlignVCenter | Qt::TextWordWrap,
               caption);
}
}  // namespace

QString exportWidget(QWidget* widget, const QString& path, ExportFormat format, double scale,
                     const QString& caption, const std::vector<Annotation>& notes,
                     const QString& view) {
    bool annotated = false;
    for (const Annotation& a : notes) annotated = annotated || a.view == view;
    settle(widget);
    const ScreenControlsHidden screenOnly(widget);
    const FigureMark figure(widget);
    const QSize size = widget->size() + QSize(0, captionHeight(caption, widget->width()));
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) return openError(path, file);
    bool ok = true;
    switch (format) {
        case ExportFormat::Png: {
            QImage image(QSize(qRound(size.width() * scale), qRound(size.height() * scale)),
                         QImage::Format_ARGB32_Premultiplied);
            image.setDevicePixelRatio(scale);
            image.fill(currentTheme().background);
            if (caption.isEmpty() && !annotated) {
                widget->render(&image);
            } else {
                QPainter p(&image);
                paintFigure(p, widget, caption, size, notes, view);
            }
            image.setDevicePixelRatio(1.0);
            ok = image.save(&file, "PNG");
            break;
        }
        case ExportFormat::Svg: {
            QSvgGenerator svg;
            svg.setOutputDevice(&file);
            svg.setSize(size);
            svg.setViewBox(QRect(QPoint(0, 0), size));
            svg.setTitle(widget->windowTitle().isEmpty() ? QString("KVScope")
                                                         : widget->windowTitle());
            svg.setDescription("Exported by KVScope");
            QPainter p(&svg);
            paintFigure(p, widget, caption, size, notes, view);
            ok = p.end();
            break;
        }
        case ExportFormat::Pdf: {
            QPdfWriter pdf(&file);
            setupPdf(pdf, size);
            QPainter p(&pdf);
            paintFigure(p, widget, caption, size, notes, view);
            ok = p.end();
            break;
        }
    }
    if (!ok) {
        file.cancelWriting();
        return QString("cannot render '%1'").arg(path);
    }
    if (!file.commit()) return openError(path, file);
    return {};
}

PdfPages::PdfPages(const QString& path) : path_(path), file_(path) {
    if (!file_.open(QIODevice::WriteOnly)) error_ = openError(path, file_);
}

PdfPages::~PdfPages() {
    if (painter_) painter_->end();
    if (file_.isOpen()) file_.cancelWriting();
}

void PdfPages::add(QWidget* widget) {
    if (!error_.isEmpty()) return;
    settle(widget);
    if (!writer_) {
        writer_ = std::make_unique<QPdfWriter>(&file_);
        setupPdf(*writer_, widget->size());
        painter_ = std::make_unique<QPainter>(writer_.get());
    } else {
        writer_->newPage();
    }
    const ScreenControlsHidden screenOnly(widget);
    const FigureMark figure(widget);
    widget->render(painter_.get());
    ++pages_;
}

QString PdfPages::finish() {
    if (!error_.isEmpty()) return error_;
    if (!painter_ || !painter_->end()) {
        file_.cancelWriting();
        return QString("cannot render '%1'").arg(path_);
    }
    painter_.reset();
    if (!file_.commit()) return openError(path_, file_);
    return {};
}

}  // namespace kvscope::viz
