// MainWindow's menus and the file actions behind them (export, copy, trace).
#include "gui/main_window.h"

#include <QClipboard>
#include <QDockWidget>
#include <QMenu>
#include <QMenuBar>
#include <QStatusBar>
#include <QTabWidget>
#include <functional>

#include <QActionGroup>
#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QInputDialog>
#include <QLineEdit>
#include <QMessageBox>
#include <QSaveFile>
#include <QSignalBlocker>
#include <QStandardPaths>

#include "common/theme.h"
#include "export/exporter.h"
#include "export/trace_export.h"
#include "views/token_strip.h"

namespace kvscope::app {

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->setObjectName("fileMenu");
    file->addAction(tr("&Open model…"), QKeySequence::Open, this, [this] {
        const QString path = QFileDialog::getOpenFileName(
            this, tr("Open a GGUF model"), QString(), tr("GGUF models (*.gguf);;All files (*)"));
        if (!path.isEmpty()) openModel(path);
    });
    QMenu* builtin = file->addMenu(tr("Open a &built-in model"));
    for (const BuiltinModel& m : builtinModelsPresent())
        builtin->addAction(tr(m.label), this,
                           [this, resource = QString(m.resource)] { openModel(resource); });
    file->addSeparator();
    file->addAction(tr("&Export view…"), QKeySequence(Qt::CTRL | Qt::Key_E), this, [this] {
        exportFigure(tabs_->currentWidget(), viewName(tabs_->currentIndex()));
    });
    file->addAction(tr("Export &window…"), this, [this] { exportFigure(this, "window"); });
    file->addAction(tr("&Copy view"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_C), this, [this] {
        QApplication::clipboard()->setPixmap(tabs_->currentWidget()->grab());
        statusBar()->showMessage(tr("The view is on the clipboard"), 3000);
    });
    file->addAction(tr("Export &trace (JSON or CSV)…"), this, [this] {
        const QString path = QFileDialog::getSaveFileName(
            this, tr("Export the trace"),
            QDir(exportDir()).filePath(QString("kvscope-trace-%1.json").arg(store_->count())),
            tr("JSON (*.json);;CSV (*.csv)"));
        if (path.isEmpty()) return;
        rememberExportDir(path);
        const QByteArray bytes = path.endsWith(".csv", Qt::CaseInsensitive)
                                     ? viz::traceCsv(*store_, store_->layer(), store_->head())
                                     : viz::traceJson(*store_, store_->layer(), store_->head());
        QSaveFile f(path);
        if (!f.open(QIODevice::WriteOnly) || f.write(bytes) != bytes.size() || !f.commit())
            showError(tr("Cannot write '%1': %2").arg(path, f.errorString()));
        else
            statusBar()->showMessage(tr("Wrote %1").arg(path), 5000);
    });
    // Quit far from the export items, and it asks first when tokens would be lost (closeEvent).
    file->addSeparator();
    file->addSeparator();
    file->addAction(tr("&Quit KVScope"), QKeySequence::Quit, this, &QWidget::close);

    QMenu* decode = menuBar()->addMenu(tr("&Decode"));
    auto keyHint = [](QAction* a) {
        a->setShortcutVisibleInContextMenu(true);
        return a;
    };
    keyHint(decode->addAction(tr("&Step one token"), QKeySequence(Qt::Key_F10), this,
                              &MainWindow::step))
        ->setToolTip(tr("Also Space, → or Page Down when not typing in the prompt"));
    keyHint(
        decode->addAction(tr("Step &back"), QKeySequence(Qt::Key_F9), this, &MainWindow::stepBack))
        ->setToolTip(tr("Also Backspace, ← or Page Up when not typing in the prompt"));
    keyHint(decode->addAction(tr("&Prefill the prompt"), QKeySequence(Qt::CTRL | Qt::Key_Return),
                              this, &MainWindow::prefill));
    keyHint(decode->addAction(tr("&Play / pause"), QKeySequence(Qt::Key_P), this,
                              [this] { setPlaying(!playTimer_.isActive()); }));
    keyHint(decode->addAction(tr("&Reset"), QKeySequence(Qt::CTRL | Qt::Key_R), this,
                              &MainWindow::reset));
    decode->addSeparator();
    keyHint(
        decode->addAction(tr("&Compare without cache"), this, &MainWindow::compareWithoutCache));
    keyHint(decode->addAction(tr("Spec&ulative round: draft, verify, keep"),
                              QKeySequence(Qt::Key_D), this, &MainWindow::speculativeStep))
        ->setToolTip(
            tr("Each press shows the next phase of a speculative round (drafted, verified in one "
               "pass, resolved); with Speculative decoding on in the side panel, Step does too"));
    decode->addSeparator();
    decode->addAction(tr("&Fork here"), this, &MainWindow::fork)
        ->setToolTip(
            tr("A second sequence from this step on the same cache blocks (KV cache tab)"));
    decode->addAction(tr("Step the f&ork"), this, &MainWindow::stepFork);

    QMenu* inspect = menuBar()->addMenu(tr("&Inspect"));
    auto moveQuery = [this](int delta) {
        if (store_->count() == 0) return;
        store_->pinQuery(std::clamp(store_->queryIndex() + delta, 0, store_->count() - 1));
    };
    keyHint(inspect->addAction(tr("&Earlier token"), QKeySequence(Qt::Key_BracketLeft), this,
                               [moveQuery] { moveQuery(-1); }));
    keyHint(inspect->addAction(tr("&Later token"), QKeySequence(Qt::Key_BracketRight), this,
                               [moveQuery] { moveQuery(+1); }));
    keyHint(inspect->addAction(tr("&Follow the newest token"), QKeySequence(Qt::Key_End), this,
                               [this] { store_->pinQuery(-1); }));
    // Inspect token N: pins it for every view and scrolls the strip to it.
    QAction* goTo =
        inspect->addAction(tr("&Go to token…"), QKeySequence(Qt::CTRL | Qt::Key_G), this, [this] {
            if (store_->count() == 0) {
                QMessageBox::information(this, tr("Go to token"), strip_->goToToken({}));
                return;
            }
            bool ok = false;
            const QString text = QInputDialog::getText(
                this, tr("Go to token"), tr("Token position (0 to %1):").arg(store_->count() - 1),
                QLineEdit::Normal, QString::number(store_->queryIndex()), &ok);
            if (!ok) return;
            const QString error = strip_->goToToken(text);
            if (!error.isEmpty()) QMessageBox::warning(this, tr("Go to token"), error);
        });
    goTo->setObjectName("goToToken");
    keyHint(goTo);
    inspect->addSeparator();
    keyHint(inspect->addAction(tr("&Next head"), QKeySequence(Qt::Key_H), this,
                               [this] { store_->setHead(store_->head() + 1); }));
    keyHint(inspect->addAction(tr("&Previous head"), QKeySequence(Qt::SHIFT | Qt::Key_H), this,
                               [this] { store_->setHead(store_->head() - 1); }));
    keyHint(inspect->addAction(tr("Next la&yer"), QKeySequence(Qt::Key_L), this,
                               [this] { store_->setLayer(store_->layer() + 1); }));
    keyHint(inspect->addAction(tr("Previous l&ayer"), QKeySequence(Qt::SHIFT | Qt::Key_L), this,
                               [this] { store_->setLayer(store_->layer() - 1); }));

    QMenu* view = menuBar()->addMenu(tr("&View"));
    for (int i = 0; i < tabs_->count(); ++i) {
        QAction* a = view->addAction(tabs_->tabText(i).replace("&&", "&"));
        a->setShortcuts(
            {QKeySequence(Qt::CTRL | (Qt::Key_1 + i)), QKeySequence(Qt::ALT | (Qt::Key_1 + i))});
        a->setShortcutVisibleInContextMenu(true);
        connect(a, &QAction::triggered, this, [this, i] {
            tabs_->setCurrentIndex(i);
            tabs_->currentWidget()->setFocus(Qt::ShortcutFocusReason);
        });
    }
    view->addSeparator();
    // One line of tokens with a scrubber: on by itself past TokenStrip::kAutoCompactTokens.
    QAction* compact = view->addAction(tr("&Compact token strip"));
    compact->setObjectName("compactStrip");
    compact->setCheckable(true);
    compact->setChecked(strip_->isCompact());
    connect(compact, &QAction::triggered, strip_, &viz::TokenStrip::setCompact);
    connect(strip_, &viz::TokenStrip::compactChanged, compact, [compact](bool on) {
        const QSignalBlocker block(compact);
        compact->setChecked(on);
    });
    presenterAction_ = view->addAction(tr("P&resenter mode"));
    presenterAction_->setObjectName("presenterMode");
    presenterAction_->setCheckable(true);
    presenterAction_->setShortcut(QKeySequence(Qt::Key_F5));
    presenterAction_->setShortcutVisibleInContextMenu(true);
    presenterAction_->setToolTip(
        tr("Full screen for a projector: black canvas, larger text and thicker lines, the views "
           "alone. The clicker steps; Esc or F5 leaves."));
    connect(presenterAction_, &QAction::triggered, this, &MainWindow::setPresenterMode);
    QAction* side = sideDock_->toggleViewAction();
    side->setText(tr("Side &panel (model and sampling)"));
    side->setShortcut(QKeySequence(Qt::Key_F8));
    view->addAction(side);
    view->addSeparator();
    keyHint(view->addAction(tr("&Larger text"), QKeySequence::ZoomIn, this, [this] {
        setTextZoom(textZoom_ * 1.15);
    }))->setShortcuts({QKeySequence(Qt::CTRL | Qt::Key_Equal), QKeySequence::ZoomIn});
    keyHint(view->addAction(tr("&Smaller text"), QKeySequence::ZoomOut, this,
                            [this] { setTextZoom(textZoom_ / 1.15); }));
    keyHint(view->addAction(tr("&Normal text size"), QKeySequence(Qt::CTRL | Qt::Key_0), this,
                            [this] { setTextZoom(1.0); }));
    view->addSeparator();
    auto* themes = new QActionGroup(this);
    for (const viz::Theme& t : {viz::Theme::dark(), viz::Theme::light()}) {
        QAction* a = view->addAction(t.name == "dark" ? tr("&Dark theme") : tr("L&ight theme"));
        a->setCheckable(true);
        a->setChecked(viz::currentTheme().name == t.name);
        a->setData(t.name);
        themes->addAction(a);
        connect(a, &QAction::triggered, this, [t] { viz::ThemeSettings::instance().setTheme(t); });
    }
    // Colour maps: every one colour-blind safe; blue-yellow also keeps the sign in greyscale
    QMenu* maps = view->addMenu(tr("Colour &maps"));
    auto* sequential = new QActionGroup(this);
    for (const auto& [label, map] : std::initializer_list<std::pair<QString, viz::SequentialMap>>{
             {tr("Weights: &viridis"), viz::SequentialMap::Viridis},
             {tr("Weights: &cividis (red-green colour blindness)"), viz::SequentialMap::Cividis}}) {
        QAction* a = maps->addAction(label);
        a->setCheckable(true);
        a->setChecked(viz::ThemeSettings::instance().sequentialMap() == map);
        a->setObjectName(QString("colormap-%1").arg(QString::fromStdString(viz::mapName(map))));
        sequential->addAction(a);
        connect(a, &QAction::triggered, this,
                [map] { viz::ThemeSettings::instance().setSequentialMap(map); });
    }
    maps->addSeparator();
    auto* diverging = new QActionGroup(this);
    for (const auto& [label, map] : std::initializer_list<std::pair<QString, viz::DivergingMap>>{
             {tr("Signed values: &red–blue"), viz::DivergingMap::RdBu},
             {tr("Signed values: &purple–orange (colour-blind safe)"), viz::DivergingMap::PuOr},
             {tr("Signed values: &blue–yellow (keeps the sign in greyscale print)"),
              viz::DivergingMap::BlueYellow}}) {
        QAction* a = maps->addAction(label);
        a->setCheckable(true);
        a->setChecked(viz::ThemeSettings::instance().divergingMap() == map);
        a->setObjectName(QString("colormap-%1").arg(QString::fromStdString(viz::mapName(map))));
        diverging->addAction(a);
        connect(a, &QAction::triggered, this,
                [map] { viz::ThemeSettings::instance().setDivergingMap(map); });
    }
    // a map chosen elsewhere (--colormap, the settings) shows as checked
    connect(&viz::ThemeSettings::instance(), &viz::ThemeSettings::changed, maps, [maps] {
        const viz::ThemeSettings& t = viz::ThemeSettings::instance();
        for (QAction* a : maps->actions())
            if (a->isCheckable())
                a->setChecked(a->objectName() == QString("colormap-%1")
                                                     .arg(QString::fromStdString(
                                                         viz::mapName(t.sequentialMap()))) ||
                              a->objectName() ==
                                  QString("colormap-%1")
                                      .arg(QString::fromStdString(viz::mapName(t.divergingMap()))));
    });
    view->addSeparator();
    auto* speeds = new QActionGroup(this);
    for (const auto& [label, ms] : std::initializer_list<std::pair<QString, int>>{
             {tr("Animations &off"), 0},
             {tr("Animations n&ormal"), viz::ThemeSettings::kDefaultAnimationMs},
             {tr("Animations slo&w"), 1000}}) {
        QAction* a = view->addAction(label);
        a->setCheckable(true);
        a->setChecked(viz::animationMs() == ms);
        speeds->addAction(a);
        connect(a, &QAction::triggered, this,
                [ms] { viz::ThemeSettings::instance().setAnimationMs(ms); });
    }
    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&Keys"), QKeySequence::HelpContents, this, [this] {
        QMessageBox::information(
            this, tr("Keys"),
            tr("F10: step one token (from anywhere)\nF9: step back one token\n"
               "Space, →, Page Down: step (when not typing in the prompt)\n"
               "Backspace, ←, Page Up: step back (when not typing)\n"
               "A presentation clicker sends Page Down / Page Up: they step even in the prompt.\n"
               "Ctrl+Return: prefill the prompt · P: play or pause · Ctrl+R: reset\n"
               "D: speculative decoding's next phase (drafted, verified, resolved)\n"
               "[ and ]: inspect the earlier or later token · End: follow the newest\n"
               "Ctrl+G: go to token N (pins it and scrolls the strip to it)\n"
               "Step view at long contexts: Ctrl+← / Ctrl+→ move the window of positions, "
               "Ctrl+Home to the first, Ctrl+End back to the query\n"
               "H / Shift+H: next or previous head · L / Shift+L: next or previous layer\n"
               "Ctrl+1…7 (or Alt+1…7): the views · F8: the side panel\n"
               "Ctrl+= and Ctrl+-: larger and smaller text · Ctrl+0: normal size\n"
               "F5: presenter mode (full screen, projector theme); Esc or F5 leaves it\n"
               "Ctrl+S / Ctrl+Shift+O: save or open a session · Ctrl+B: add a scene · Ctrl+M: "
               "scene mode (the stepping keys go from scene to scene)\n"
               "Tab moves between controls; a click on a view gives the keys back to stepping."));
    });
    buildSessionMenu();
    // Every menu's keys work with the menu bar hidden (presenter mode): the window holds the
    // actions too.
    std::function<void(QMenu*)> addKeys = [&](QMenu* menu) {
        for (QAction* a : menu->actions()) {
            if (a->menu())
                addKeys(a->menu());
            else if (!a->shortcuts().isEmpty())
                addAction(a);
        }
    };
    for (QAction* a : menuBar()->actions())
        if (a->menu()) addKeys(a->menu());
}

QString MainWindow::viewName(int tab) {
    static const char* names[] = {"step",       "attention", "cache",  "memory",
                                  "calculator", "next",      "sharing"};
    return tab >= 0 && tab < 7 ? names[tab] : "view";
}

QString MainWindow::exportDir() const {
    if (!exportDir_.isEmpty() && QDir(exportDir_).exists()) return exportDir_;
    const QString pictures = QStandardPaths::writableLocation(QStandardPaths::PicturesLocation);
    return QDir(pictures).exists() ? pictures : QDir::homePath();
}

void MainWindow::rememberExportDir(const QString& path) {
    exportDir_ = QFileInfo(path).absolutePath();
}

// Figures: the current view, or the whole window, as PNG (2×), SVG or PDF, under a name that says
// what and when (kvscope-attention-17.png) in the folder of the last export.
void MainWindow::exportFigure(QWidget* what, const QString& name) {
    const QString suggested =
        QDir(exportDir()).filePath(QString("kvscope-%1-%2.png").arg(name).arg(store_->count()));
    const QString path = QFileDialog::getSaveFileName(
        this, tr("Export the %1").arg(name), suggested,
        tr("PNG image, 2× (*.png);;SVG vector (*.svg);;PDF vector (*.pdf)"));
    if (path.isEmpty()) return;
    rememberExportDir(path);
    const auto format = viz::exportFormatFromName(QFileInfo(path).suffix());
    const QString error = viz::exportWidget(what, format ? path : path + ".png",
                                            format.value_or(viz::ExportFormat::Png), 2.0);
    if (error.isEmpty())
        statusBar()->showMessage(tr("Wrote %1").arg(path), 5000);
    else
        showError(error);
}

}  // namespace kvscope::app
