// MainWindow's sessions and scenes: File ▸ Save session / Open session, and the Scenes menu
// (bookmark a state with a caption; scene mode, where the clicker goes from scene to scene).
#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QInputDialog>
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QSpinBox>
#include <QStatusBar>
#include <QTabWidget>

#include <QEvent>
#include <QMouseEvent>
#include <QPainter>

#include "charts/drift_chart.h"
#include "charts/latency_chart.h"
#include "charts/memory_chart.h"
#include "common/annotation.h"
#include "common/theme.h"
#include "core/error.h"
#include "gui/main_window.h"
#include "views/all_heads_view.h"
#include "views/attention_matrix_view.h"
#include "views/cache_view.h"
#include "views/calculator_panel.h"
#include "views/next_token_view.h"
#include "views/sharing_view.h"
#include "views/step_view.h"

namespace kvscope::app {

namespace {
int tabOf(const QString& view) {
    for (int i = 0; i < 7; ++i)
        if (MainWindow::viewName(i) == view) return i;
    return 0;
}
}  // namespace

namespace {
// Over a view: draws the window's annotations of that view, lets every click through.
class AnnotationOverlay : public QWidget {
  public:
    AnnotationOverlay(QWidget* view, const std::vector<viz::Annotation>* notes, QString name)
        : QWidget(view), notes_(notes), view_(std::move(name)) {
        setAttribute(Qt::WA_TransparentForMouseEvents);
        setAttribute(Qt::WA_NoSystemBackground);
        setObjectName("annotations-" + view_);
        view->installEventFilter(this);
        follow(view);
    }

  protected:
    void paintEvent(QPaintEvent*) override {
        QPainter p(this);
        viz::paintAnnotations(p, size(), *notes_, view_);
    }
    bool eventFilter(QObject* watched, QEvent* e) override {
        if (e->type() == QEvent::Resize || e->type() == QEvent::Show)
            follow(static_cast<QWidget*>(watched));
        return false;
    }

  private:
    void follow(QWidget* view) {
        setGeometry(view->rect());
        raise();
    }
    const std::vector<viz::Annotation>* notes_;
    QString view_;
};
}  // namespace

void MainWindow::addAnnotationOverlays() {
    const std::pair<QWidget*, QString> views[] = {
        {tabs_->findChild<viz::StepView*>(), "step"},
        {tabs_->findChild<viz::AttentionMatrixView*>(), "attention"},
        {tabs_->findChild<viz::AllHeadsView*>(), "heads"},
        {tabs_->findChild<viz::CacheView*>(), "cache"},
        {memoryChart_, "memory"},
        {latencyChart_, "latency"},
        {driftChart_, "drift"},
        {tabs_->findChild<viz::CalculatorPanel*>(), "calculator"},
        {tabs_->findChild<viz::NextTokenView*>(), "next"},
        {tabs_->findChild<viz::SharingView*>(), "sharing"}};
    for (const auto& [w, name] : views) {
        if (!w) continue;
        annotatable_.emplace_back(w, name);
        overlays_.push_back(new AnnotationOverlay(w, &annotations_, name));
    }
}

std::optional<viz::Annotation> MainWindow::annotationAt(const QPoint& global) const {
    for (const auto& [w, name] : annotatable_) {
        if (!w->isVisible()) continue;
        const QPoint at = w->mapFromGlobal(global);
        if (!w->rect().contains(at)) continue;
        viz::Annotation a;
        a.view = name;
        a.x = std::clamp(at.x() / std::max(1.0, double(w->width())), 0.0, 1.0);
        a.y = std::clamp(at.y() / std::max(1.0, double(w->height())), 0.0, 1.0);
        return a;
    }
    return std::nullopt;
}

void MainWindow::addAnnotation(const viz::Annotation& note) {
    annotations_.push_back(note);
    for (QWidget* o : overlays_) o->update();
}

void MainWindow::clearAnnotations() {
    annotations_.clear();
    for (QWidget* o : overlays_) o->update();
}

SessionFile MainWindow::currentSession() const {
    SessionFile s;
    s.modelPath = store_->hasModel() ? store_->model().path : modelPath_;
    s.modelSha256 = sha256OfFile(s.modelPath);
    s.backend = backendSpec_;
    s.sampler.temperature =
        samplingMode_->currentIndex() == 1 ? static_cast<float>(temperature_->value()) : 0.0f;
    s.sampler.topK = topK_->value();
    s.sampler.topP = static_cast<float>(topP_->value());
    s.sampler.seed = static_cast<uint64_t>(seed_->value());
    s.parseSpecial = parseSpecial_->isChecked();
    const bool decoded = store_->count() > 0 && !decodedPrompt_.isNull();
    s.prompt = decoded ? decodedPrompt_ : prompt();
    s.steps = decoded ? store_->count() - store_->promptLength() : 0;
    for (int i = 0; decoded && i < store_->count(); ++i) s.tokens.push_back(store_->trace(i).token);
    s.context = context_->value();
    s.cache = panelCacheOptions();
    s.view = viewName(tabs_->currentIndex());
    s.layer = store_->layer();
    s.head = store_->head();
    s.token = store_->queryPinned() ? store_->queryIndex() : -1;
    s.theme = presenter_ ? before_.theme : viz::currentTheme().name;
    s.textZoom = textZoom_;
    const viz::ThemeSettings& t = viz::ThemeSettings::instance();
    s.colormap = QString::fromStdString(viz::mapName(t.sequentialMap()) + "," +
                                        viz::mapName(t.divergingMap()));
    s.scenes = scenes_;
    s.annotations = annotations_;
    return s;
}

bool MainWindow::saveSession(const QString& path) {
    store_->finishRound();  // a speculative round on show: its outcome, not its rejected drafts
    try {
        currentSession().save(path);
    } catch (const std::exception& e) {
        showError(tr("Save session: %1").arg(QString::fromUtf8(e.what())));
        return false;
    }
    statusBar()->showMessage(tr("Session saved to %1").arg(path), 5000);
    return true;
}

void MainWindow::openSession(const QString& path) {
    SessionFile s;
    try {
        s = SessionFile::load(path);
        if (const std::optional<QString> problem = modelProblem(s))
            throw Error(problem->toStdString());
    } catch (const std::exception& e) {
        // nothing changes: the model, tokens and settings on show stay
        showError(tr("Open session: %1").arg(QString::fromUtf8(e.what())));
        return;
    }
    clearError();
    setPlaying(false);
    setSceneMode(false);
    {  // the controls, then one sampler message
        const QSignalBlocker a(samplingMode_), b(temperature_), c(topK_), d(topP_), e(seed_);
        samplingMode_->setCurrentIndex(s.sampler.temperature > 0 ? 1 : 0);
        if (s.sampler.temperature > 0) temperature_->setValue(s.sampler.temperature);
        topK_->setValue(s.sampler.topK);
        topP_->setValue(s.sampler.topP);
        seed_->setValue(static_cast<int>(s.sampler.seed));
    }
    sendSampler();
    parseSpecial_->setChecked(s.parseSpecial);
    viz::ThemeSettings& theme = viz::ThemeSettings::instance();
    if (!presenter_) theme.setTheme(s.theme == "light" ? viz::Theme::light() : viz::Theme::dark());
    for (const QString& name : s.colormap.split(',', Qt::SkipEmptyParts)) {
        if (auto m = viz::parseSequentialMap(name.toStdString())) theme.setSequentialMap(*m);
        if (auto m = viz::parseDivergingMap(name.toStdString())) theme.setDivergingMap(*m);
    }
    setTextZoom(s.textZoom);
    setPrompt(s.prompt);
    scenes_ = s.scenes;
    sceneIndex_ = -1;
    annotations_ = s.annotations;
    for (QWidget* o : overlays_) o->update();
    // one load (the file read and the backend started once, with the session's options), then
    // its tokens; the panel shows the backend, context and cache options once they run
    // (sessionOpened, modelLoaded), so a model that fails to load leaves it as it was
    QString modelFile;
    try {
        modelFile = resolveBuiltin(s.modelPath);  // builtin:NAME is stored as its resource path
    } catch (const std::exception& e) {
        showError(tr("Open session: %1").arg(QString::fromUtf8(e.what())));
        return;
    }
    setPlaying(false);
    summary_->setText(tr("Loading %1…").arg(modelFile.toHtmlEscaped()));
    request([c = controller_, modelFile, spec = s.backend, context = s.context, cache = s.cache,
             p = s.prompt, n = s.steps] { c->openSession(modelFile, spec, context, cache, p, n); });
    Scene view;
    view.steps = s.steps;
    view.view = s.view;
    view.layer = s.layer;
    view.head = s.head;
    view.token = s.token;
    viewWhenIdle_ = view;
    expectedTokens_ = s.tokens;
    statusBar()->showMessage(tr("Opening the session %1…").arg(path), 5000);
}

void MainWindow::applyView(const Scene& v) {
    tabs_->setCurrentIndex(tabOf(v.view));
    if (store_->hasModel())
        store_->setLayerHead(std::clamp(v.layer, 0, store_->config().nLayer - 1),
                             std::clamp(v.head, 0, store_->config().nHead - 1));
    store_->pinQuery(v.token >= 0 && v.token < store_->count() ? v.token : -1);
    if (!expectedTokens_.empty()) {  // a session opened: are these its tokens?
        const int n = store_->count();
        int differ = -1;
        for (int i = 0; i < std::max<int>(n, static_cast<int>(expectedTokens_.size())); ++i)
            if (i >= n || i >= static_cast<int>(expectedTokens_.size()) ||
                store_->trace(i).token != expectedTokens_[static_cast<size_t>(i)]) {
                differ = i;
                break;
            }
        if (differ >= 0)
            showError(tr("Open session: the tokens decoded now differ from the saved ones from "
                         "token %1 on (another backend or sampler computes differently); the "
                         "figures will differ from the saved ones there.")
                          .arg(differ));
        expectedTokens_.clear();
    }
}

void MainWindow::addScene(const QString& caption) {
    store_->finishRound();
    Scene sc;
    sc.steps = std::max(0, store_->count() - store_->promptLength());
    sc.view = viewName(tabs_->currentIndex());
    sc.layer = store_->layer();
    sc.head = store_->head();
    sc.token = store_->queryPinned() ? store_->queryIndex() : -1;
    sc.caption = caption;
    scenes_.push_back(sc);
    statusBar()->showMessage(
        tr("Scene %1 added: step %2, %3").arg(scenes_.size()).arg(sc.steps).arg(sc.view), 5000);
}

void MainWindow::setSceneMode(bool on) {
    on = on && !scenes_.empty();
    sceneMode_ = on;
    if (sceneModeAction_) {
        const QSignalBlocker block(sceneModeAction_);
        sceneModeAction_->setChecked(on);
    }
    if (!on) {
        sceneCaption_->hide();
        return;
    }
    goToScene(std::max(0, sceneIndex_));
}

void MainWindow::goToScene(int index) {
    if (scenes_.empty()) return;
    sceneIndex_ = std::clamp(index, 0, static_cast<int>(scenes_.size()) - 1);
    const Scene& sc = scenes_[static_cast<size_t>(sceneIndex_)];
    sceneCaption_->setText(tr("Scene %1 of %2: %3")
                               .arg(sceneIndex_ + 1)
                               .arg(scenes_.size())
                               .arg(sc.caption.isEmpty() ? tr("(no caption)") : sc.caption));
    sceneCaption_->setVisible(sceneMode_);
    const QString p = decodedPrompt_.isNull() ? prompt() : decodedPrompt_;
    viewWhenIdle_ = sc;
    request([c = controller_, p, n = sc.steps] { c->decodeTo(p, n); });
}

void MainWindow::buildSessionMenu() {
    QMenu* file = nullptr;
    for (QAction* a : menuBar()->actions())
        if (a->menu() && a->menu()->objectName() == "fileMenu") file = a->menu();
    if (file) {
        QAction* first = file->actions().isEmpty() ? nullptr : file->actions().first();
        auto* open = new QAction(tr("Open &session…"), this);
        open->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
        connect(open, &QAction::triggered, this, [this] {
            const QString path = QFileDialog::getOpenFileName(
                this, tr("Open a session"), exportDir(), tr("KVScope sessions (*.kvscope)"));
            if (!path.isEmpty()) openSession(path);
        });
        auto* save = new QAction(tr("Sa&ve session…"), this);
        save->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_S));
        connect(save, &QAction::triggered, this, [this] {
            QString path = QFileDialog::getSaveFileName(this, tr("Save the session"),
                                                        exportDir() + "/lecture.kvscope",
                                                        tr("KVScope sessions (*.kvscope)"));
            if (path.isEmpty()) return;
            if (!path.endsWith(".kvscope")) path += ".kvscope";
            saveSession(path);
        });
        file->insertAction(first, open);
        file->insertAction(first, save);
        file->insertSeparator(first);
    }
    QMenu* scenes = menuBar()->addMenu(tr("S&cenes"));
    scenes->addAction(tr("&Add a scene here…"), QKeySequence(Qt::CTRL | Qt::Key_B), this, [this] {
        bool ok = false;
        const QString caption = QInputDialog::getText(
            this, tr("Add a scene"),
            tr("Caption (shown on screen in scene mode and under exported figures):"),
            QLineEdit::Normal, QString(), &ok);
        if (ok) addScene(caption);
    });
    sceneModeAction_ = scenes->addAction(tr("&Scene mode: the clicker goes from scene to scene"));
    sceneModeAction_->setCheckable(true);
    sceneModeAction_->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_M));
    connect(sceneModeAction_, &QAction::toggled, this, &MainWindow::setSceneMode);
    scenes->addAction(tr("&Next scene"), QKeySequence(Qt::CTRL | Qt::Key_PageDown), this,
                      [this] { goToScene(sceneIndex_ + 1); });
    scenes->addAction(tr("&Previous scene"), QKeySequence(Qt::CTRL | Qt::Key_PageUp), this,
                      [this] { goToScene(sceneIndex_ - 1); });
    scenes->addSeparator();
    scenes->addAction(tr("A&nnotate: click the view to place a label"),
                      QKeySequence(Qt::CTRL | Qt::Key_T), this, [this] {
                          startAnnotating();
                          statusBar()->showMessage(
                              tr("Click the point on the view that the label names"), 8000);
                      });
    scenes->addAction(tr("Clear the annotations"), this, &MainWindow::clearAnnotations);
    scenes->addAction(tr("&Clear the scenes"), this, [this] {
        scenes_.clear();
        sceneIndex_ = -1;
        setSceneMode(false);
    });
}

}  // namespace kvscope::app
