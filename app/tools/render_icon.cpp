// Build tool: renders the app's SVG icon to the PNG sizes a desktop's icon theme looks for.
//   render_icon ICON.svg OUT_DIR 16 32 48 ...   writes OUT_DIR/NxN/apps/kvscope.png for each N
#include <QDir>
#include <QGuiApplication>
#include <QImage>
#include <QPainter>
#include <QSvgRenderer>
#include <cstdio>

int main(int argc, char** argv) {
    qputenv("QT_QPA_PLATFORM", "offscreen");
    QGuiApplication app(argc, argv);
    if (argc < 4) {
        std::fprintf(stderr, "usage: render_icon ICON.svg OUT_DIR SIZE...\n");
        return 2;
    }
    QSvgRenderer svg(QString::fromLocal8Bit(argv[1]));
    if (!svg.isValid()) {
        std::fprintf(stderr, "render_icon: cannot read '%s' as SVG\n", argv[1]);
        return 1;
    }
    for (int i = 3; i < argc; ++i) {
        const int n = QString(argv[i]).toInt();
        if (n < 8 || n > 1024) {
            std::fprintf(stderr, "render_icon: size '%s' is not 8 to 1024\n", argv[i]);
            return 2;
        }
        QImage image(n, n, QImage::Format_ARGB32_Premultiplied);
        image.fill(Qt::transparent);
        QPainter p(&image);
        p.setRenderHint(QPainter::Antialiasing);
        svg.render(&p);
        p.end();
        const QString dir = QString("%1/%2x%2/apps").arg(QString::fromLocal8Bit(argv[2])).arg(n);
        if (!QDir().mkpath(dir) || !image.save(dir + "/kvscope.png")) {
            std::fprintf(stderr, "render_icon: cannot write %s/kvscope.png\n", qPrintable(dir));
            return 1;
        }
    }
    return 0;
}
