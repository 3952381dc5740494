// render_views: renders every view after a real decode to PNG files, to look at them (and for
// screenshots). Usage: render_views OUT_DIR [MODEL.gguf|-] [STEPS] [light|dark|print]
// Without a model file it decodes the llama grouped-query test fixture.
#include <QApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QImage>
#include <cstdio>

#include "common/theme.h"
#include "decoded_store.h"
#include "model_fixtures.h"
#include "views/all_heads_view.h"
#include "views/attention_matrix_view.h"
#include "views/cache_view.h"
#include "views/sharing_view.h"
#include "views/step_view.h"

using namespace kvscope;
using namespace kvscope::viz;

namespace {

void save(QWidget& w, const QSize& size, const QString& path) {
    w.resize(size);
    w.grab().toImage().save(path);
    std::printf("%s\n", qPrintable(path));
}

}  // namespace

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: render_views OUT_DIR [MODEL.gguf] [STEPS] [light|dark]\n");
        return 2;
    }
    const QString out = QString::fromLocal8Bit(argv[1]);
    QDir().mkpath(out);
    const bool fromFile = argc > 2 && std::string(argv[2]) != "-";
    auto model = fromFile ? std::make_shared<const Model>(Model::load(argv[2]))
                          : fixtures::makeModel(fixtures::llamaGqaSpec());
    const int steps = argc > 3 ? std::atoi(argv[3]) : 6;
    ThemeSettings::instance().setAnimationMs(0);
    const std::string theme = argc > 4 ? argv[4] : "dark";
    if (theme == "light") ThemeSettings::instance().setTheme(Theme::light());
    if (theme == "print") ThemeSettings::instance().setTheme(Theme::print());

    testing::DecodedStore d(model, fromFile ? QString::fromLocal8Bit(argv[2]) : "llama fixture");
    d.prefill("the cat sat on\nthe mat");
    d.steps(std::min(steps, model->config.nCtx - d.store.count()));
    const QString tag = QString::fromStdString(model->config.archName) +
                        QStringLiteral("-t%1-").arg(d.store.count()) +
                        QString::fromStdString(theme);

    StepView step(&d.store);
    AttentionMatrixView matrix(&d.store);
    AllHeadsView heads(&d.store);
    CacheView cache(&d.store);
    SharingView sharing(&d.store);
    d.store.setLayerHead(model->config.nLayer - 1, 1);
    save(step, {1280, 720}, out + "/step-" + tag + ".png");
    save(step, {760, 500}, out + "/step-" + tag + "-small.png");
    save(matrix, {860, 860}, out + "/matrix-" + tag + ".png");
    save(heads, heads.sizeHint(), out + "/heads-" + tag + ".png");
    save(cache, {1100, 520}, out + "/cache-" + tag + ".png");
    save(sharing, {1280, 720}, out + "/sharing-" + tag + ".png");

    // One more step with a slow animation, caught a third of the way through.
    if (d.store.count() < model->config.nCtx) {
        ThemeSettings::instance().setAnimationMs(1500);
        d.step();
        QElapsedTimer timer;
        timer.start();
        while (timer.elapsed() < 150) QApplication::processEvents();
        save(step, {1280, 720}, out + "/step-" + tag + "-animating.png");
        save(matrix, {860, 860}, out + "/matrix-" + tag + "-animating.png");
        save(cache, {1100, 520}, out + "/cache-" + tag + "-animating.png");
    }
    return 0;
}
