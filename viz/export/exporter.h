// Exporter: a view (any widget) as PNG (at a scale, for print resolution), SVG (vector, Qt Svg)
// or PDF (vector, QPdfWriter; several pages for frames). Files are written through QSaveFile:
// a temporary file renamed at the end, so a failure leaves no half-written file behind and
// nothing that was there before is lost.
#pragma once

#include <QSaveFile>
#include <QString>
#include <QWidget>
#include <memory>
#include <optional>
#include <vector>

#include "common/annotation.h"

class QPainter;
class QPdfWriter;

namespace kvscope::viz {

enum class ExportFormat { Png, Svg, Pdf };

std::optional<ExportFormat> exportFormatFromName(const QString& name);  // "png", "svg", "pdf"
QString extensionOf(ExportFormat f);

// Renders `widget` at its current size to `path`. PNG: size × scale pixels (scale 1 to 4).
// Returns an empty string on success, else a message naming the path and what failed.
// A caption, when given, is written in a band under the widget (the figure grows by its height);
// annotations whose view is `view` are drawn over the widget.
QString exportWidget(QWidget* widget, const QString& path, ExportFormat format, double scale = 1.0,
                     const QString& caption = {}, const std::vector<Annotation>& notes = {},
                     const QString& view = {});

// The same widget rendered page after page into one PDF (frames of an animation).
class PdfPages {
  public:
    explicit PdfPages(const QString& path);
    ~PdfPages();
    // Renders widget as the next page (page size = the widget's size in points).
    void add(QWidget* widget);
    // Closes the file; returns an empty string on success, else what failed.
    QString finish();
    int pages() const { return pages_; }

  private:
    QString path_;
    QSaveFile file_;
    std::unique_ptr<QPdfWriter> writer_;
    std::unique_ptr<QPainter> painter_;
    QString error_;
    int pages_ = 0;
};

}  // namespace kvscope::viz
