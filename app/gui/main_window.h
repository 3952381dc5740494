// MainWindow: the desktop app. Prompt, step controls and their keys, sampling, the model and
// its backend, the token strip, the views, and a status bar. Decoding happens on the
// controller's worker thread; this window only sends requests and shows results.
#pragma once

#include <QFont>
#include <QMainWindow>
#include <QPalette>
#include <QThread>
#include <QTimer>
#include <optional>
#include <vector>

#include "common/trace_store.h"
#include "gui/decode_controller.h"
#include "session/session_file.h"

class QAction;
class QCheckBox;
class QComboBox;
class QDockWidget;
class QDoubleSpinBox;
class QLabel;
class QPlainTextEdit;
class QPushButton;
class QRadioButton;
class QSpinBox;
class QTabWidget;
class QToolButton;

namespace kvscope::viz {
class BlockTableView;
class DriftChart;
class LatencyChart;
class MemoryChart;
class TokenStrip;
}  // namespace kvscope::viz

namespace kvscope::app {

class MainWindow : public QMainWindow {
    Q_OBJECT
  public:
    // Loads modelPath (a file, or ":/models/…"); empty: the last model opened, else the
    // built-in one. restoreSettings: false for tests and screenshots (no settings read or written).
    explicit MainWindow(const QString& modelPath, bool restoreSettings = true,
                        QWidget* parent = nullptr);
    ~MainWindow() override;

    viz::TraceStore* store() { return store_; }
    viz::DriftChart* driftChart() { return driftChart_; }
    viz::BlockTableView* blockTables() { return blockTables_; }
    viz::LatencyChart* latencyChart() { return latencyChart_; }
    viz::MemoryChart* memoryChart() { return memoryChart_; }
    QPlainTextEdit* promptEditor() { return prompt_; }
    QTabWidget* tabs() { return tabs_; }
    QString prompt() const;
    void setPrompt(const QString& text);
    QString errorText() const;                  // the message on show, or empty
    bool busy() const { return pending_ > 0; }  // requests sent and not yet answered
    // The decoding controller (on its worker thread): for tests that watch it work.
    const DecodeController* controller() const { return controller_; }

  public slots:
    void openModel(const QString& path);
    // "auto", "cpu" or "opencl:N" (see `kvscope devices`); the tokens so far are dropped.
    void setBackend(const QString& spec);
    // Context (0: the model's, at most 4,096) and the cache lab's options (KV element type,
    // eviction policy, block size): the model starts again and runs the same tokens again.
    void setCacheOptions(int context, const kvscope::KvCacheOptions& cache);
    void setCacheOptions(int context, kvscope::KvType kvType) {
        setCacheOptions(context, kvscope::KvCacheOptions(kvType));
    }
    void prefill();
    void step();
    void stepBack();
    // Prefix sharing (the KV cache tab's block tables): fork at this step, then step the fork.
    void fork();
    void stepFork();
    void reset();
    // Speculative decoding: spec "" (off: Step is one token), "lookup" or "model:PATH", with
    // the tokens drafted per round. While on, Step goes through a round's phases: drafted,
    // verified in one pass, resolved (accepted kept, rejected rolled back), then the next round.
    void setSpeculative(const QString& spec, int draftTokens);
    bool speculativeOn() const { return !speculativeSpec_.isEmpty(); }
    // The next phase of the round on show, or a new round.
    void speculativeStep();
    void setPlaying(bool playing);
    // Replays the current tokens without the cache; the latency chart draws both curves.
    void compareWithoutCache();
    // Sessions (File ▸ Save session / Open session): what made the figure, to make it again.
    // saveSession returns false (and shows why) when the file cannot be written; openSession
    // refuses a session whose model is missing or changed, keeping everything as it was, and
    // otherwise loads the model, decodes the same tokens and restores the view.
    SessionFile currentSession() const;
    bool saveSession(const QString& path);
    void openSession(const QString& path);
    // Scenes: bookmarked states (step, view, layer, head, token) with captions. In scene mode
    // the stepping keys (the clicker) go from scene to scene and the caption is on screen.
    void addScene(const QString& caption);
    const std::vector<Scene>& scenes() const { return scenes_; }
    void setSceneMode(bool on);
    bool sceneMode() const { return sceneMode_; }
    void goToScene(int index);  // clamped to the scenes there are
    int currentScene() const { return sceneIndex_; }
    QLabel* sceneCaption() { return sceneCaption_; }
    // Annotations: labels with arrows placed on a view (Annotate, then a click on the view),
    // saved in the session, drawn in exports.
    void addAnnotation(const viz::Annotation& note);
    const std::vector<viz::Annotation>& annotations() const { return annotations_; }
    void clearAnnotations();
    // The next click on the current view places an annotation (asks for its text).
    void startAnnotating() { annotating_ = true; }
    // Presenter mode (F5): full screen, the projector theme and larger text, the views alone;
    // Esc or F5 leaves it and restores the theme, panel, fonts and window state.
    void setPresenterMode(bool on);
    // Whether presenter mode takes the whole screen (true); screenshots and tests of a given
    // window size keep the size instead.
    void setPresenterFullScreen(bool full) { presenterFullScreen_ = full; }

  signals:
    void idle();  // every request sent so far has been answered
    void presenterModeChanged(bool on);

  public:
    // The views' text size: 1 is normal; the window's size multiplies it (applyTextScale).
    void setTextZoom(double zoom);
    double textZoom() const { return textZoom_; }
    // What the view names in export file names and in --screenshot --tab: "step", "attention",
    // "cache", "memory", "calculator", "next", "sharing".
    static QString viewName(int tab);
    QDockWidget* sidePanel() { return sideDock_; }
    QLabel* promptNote() { return promptNote_; }
    bool presenterMode() const { return presenter_; }
    // The round on show and the rounds' totals (drafted, accepted), in words.
    QLabel* speculativeNote() { return statusSpeculative_; }

    // Closing waits this long for the worker to stop; past it, the worker is inside a call that
    // cannot be interrupted (a driver's kernel compile) and is left to finish on its own.
    static constexpr int kCloseWaitMs = 700;
    // Workers of closed windows still inside such a call: main() then exits without running
    // the static destructors that the driver's call may still need.
    static int workersStillRunning();

  protected:
    bool eventFilter(QObject* watched, QEvent* event) override;
    void closeEvent(QCloseEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;

  private:
    void buildUi();
    void buildSidePanel();
    void buildMenus();
    void connectController();
    void sendSampler();
    void showError(const QString& message);
    void clearError();
    void updateSummary();
    void updateStatus();
    void updateSelectors();
    void updatePromptNote();
    void applyTextScale();
    void exportFigure(QWidget* what, const QString& name);
    QString exportDir() const;
    void rememberExportDir(const QString& path);
    void loadSettings();
    void saveSettings();
    template <typename F>
    void request(F&& call);

    viz::TraceStore* store_;
    QThread* worker_;               // deleted by the destructor, or by itself when abandoned
    DecodeController* controller_;  // lives on worker_
    int pending_ = 0;
    bool restoreSettings_;
    QString modelPath_;

    QPlainTextEdit* prompt_ = nullptr;
    QPushButton *prefillButton_ = nullptr, *stepButton_ = nullptr, *backButton_ = nullptr,
                *resetButton_ = nullptr;
    QToolButton* playButton_ = nullptr;
    QDoubleSpinBox* speed_ = nullptr;
    QComboBox* samplingMode_ = nullptr;
    QCheckBox* parseSpecial_ = nullptr;
    QDoubleSpinBox *temperature_ = nullptr, *topP_ = nullptr;
    QSpinBox *topK_ = nullptr, *seed_ = nullptr;
    QSpinBox *layer_ = nullptr, *head_ = nullptr;
    QLabel* kvHeadNote_ = nullptr;
    QLabel* summary_ = nullptr;
    QComboBox* backend_ = nullptr;
    QSpinBox* context_ = nullptr;
    QComboBox* kvType_ = nullptr;
    // The cache lab's policy: none, window, sinks + window, heavy hitters + window; its numbers.
    QComboBox* policy_ = nullptr;
    QSpinBox *window_ = nullptr, *sinks_ = nullptr, *heavy_ = nullptr, *block_ = nullptr;
    kvscope::KvCacheOptions panelCacheOptions() const;            // what the panel's controls say
    void showCacheOptions(const kvscope::KvCacheOptions& cache);  // the controls, without sending
    QLabel* backendNote_ = nullptr;
    QString backendSpec_ = "auto";
    QLabel* error_ = nullptr;
    QTabWidget* tabs_ = nullptr;
    viz::TokenStrip* strip_ = nullptr;
    QLabel *statusTokens_ = nullptr, *statusCache_ = nullptr, *statusLatency_ = nullptr,
           *statusDevice_ = nullptr, *statusSpeculative_ = nullptr;
    void updateSpeculativeNote();
    QComboBox* speculative_ = nullptr;  // off, prompt lookup, a draft model
    QSpinBox* draftTokens_ = nullptr;
    QString speculativeSpec_;  // what setSpeculative was given ("" off)
    bool roundAsked_ = false;  // a speculative round was asked for and has not arrived
    viz::MemoryChart* memoryChart_ = nullptr;
    viz::LatencyChart* latencyChart_ = nullptr;
    viz::DriftChart* driftChart_ = nullptr;
    QRadioButton* showLatency_ = nullptr;  // the latency chart, where the drift chart shares it
    viz::BlockTableView* blockTables_ = nullptr;
    QPushButton* compareButton_ = nullptr;
    QTimer playTimer_;
    double lastLatencyMs_ = 0;
    QLabel* promptNote_ = nullptr;
    QDockWidget* sideDock_ = nullptr;
    QString decodedPrompt_;     // the text the decoded prompt tokens came from (null: none)
    int promptTokenCount_ = 0;  // tokens of that prompt
    QString exportDir_;
    double textZoom_ = 1.0;
    bool comparing_ = false;  // a replay without the cache runs (the button stops it)
    bool presenter_ = false;
    // sessions and scenes
    std::vector<Scene> scenes_;
    std::vector<viz::Annotation> annotations_;
    bool annotating_ = false;
    // The views annotations are placed on, by the name exports give their figures ("step",
    // "attention", "heads", "cache", "memory", "latency", "drift", ...), each with an overlay
    // that draws annotations_.
    std::vector<std::pair<QWidget*, QString>> annotatable_;
    std::vector<QWidget*> overlays_;
    void addAnnotationOverlays();
    // The annotatable view under a global position, and the position as fractions of it.
    std::optional<viz::Annotation> annotationAt(const QPoint& global) const;
    bool sceneMode_ = false;
    int sceneIndex_ = -1;
    QLabel* sceneCaption_ = nullptr;
    QAction* sceneModeAction_ = nullptr;
    // What to show once the decoding asked for is done (a session opened, a scene reached),
    // and the tokens a session saved, to compare.
    std::optional<Scene> viewWhenIdle_;
    std::vector<int32_t> expectedTokens_;
    void applyView(const Scene& view);
    void buildSessionMenu();
    bool presenterFullScreen_ = true;
    QAction* presenterAction_ = nullptr;
    struct BeforePresenting {  // what presenter mode changed, to put back
        QString theme;
        bool sidePanel = true;
        Qt::WindowStates states;
        QString styleSheet;
        QPalette palette;
    } before_;
};

// A request to the controller, run on its thread in the order sent.
template <typename F>
void MainWindow::request(F&& call) {
    ++pending_;
    QMetaObject::invokeMethod(controller_, std::forward<F>(call), Qt::QueuedConnection);
}

}  // namespace kvscope::app
