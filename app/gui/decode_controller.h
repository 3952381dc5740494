// DecodeController: owns the model, the backend and the decode session, and lives on a worker
// QThread. Requests arrive as queued calls (one slot each); results leave as signals carrying
// values (StepTrace copies), so the GUI thread never computes and never waits.
#pragma once

#include <QObject>
#include <QString>
#include <atomic>
#include <memory>
#include <vector>

#include "common/trace_store.h"
#include "model_source/model_source.h"
#include "runtime/backend_factory.h"
#include "runtime/decode_session.h"
#include "runtime/speculative.h"
#include "views/block_table_view.h"

namespace kvscope::app {

class DecodeController : public QObject {
    Q_OBJECT
  public:
    explicit DecodeController(QObject* parent = nullptr);
    ~DecodeController() override;

    // True from a request's start to its result; read from any thread.
    bool busy() const { return busy_.load(); }
    // Asks long work (the replay without the cache) to stop at its next step; callable from any
    // thread. The window calls it for "Stop comparing" and before it closes.
    void requestStop() { stop_.store(true); }

  public slots:
    // Loads a GGUF file (":/…" for the built-in one) on the chosen backend. On failure the
    // previous model stays loaded.
    void loadModel(const QString& path);
    // Moves the model to another backend ("auto", "cpu", "opencl:N"); the tokens are dropped.
    // On failure the previous backend stays.
    void setBackend(const QString& spec);
    // The context to run with (0: the model's, at most 4,096) and the cache lab's options (the KV
    // cache's element type, eviction policy and block size). The loaded model starts again with
    // them and runs the same tokens again from the start (prefilled, then stepped), so that the
    // views show what the policy changes on the same sequence.
    void setCacheOptions(int context, const kvscope::KvCacheOptions& cache);
    // A saved session: its model on its backend with its context and cache options, read and
    // started once (loading, then moving to the backend, then setting the cache, did it up to
    // three times), then its tokens decoded (decodeTo). A backend that cannot start here is
    // replaced by the current one (warned once decoded). If the model does not load, the
    // previous one stays and nothing is decoded. sessionOpened reports what runs.
    void openSession(const QString& path, const QString& backendSpec, int context,
                     const kvscope::KvCacheOptions& cache, const QString& prompt, int generated);
    // Lists the OpenCL devices (devicesListed).
    void listDevices();
    void setSampler(const kvscope::SamplerParams& sampler);
    // Whether special-token text in the prompt is that token (true) or plain text; the next
    // step prefills the prompt again.
    void setParseSpecial(bool parse);
    // Resets, then runs the prompt in one pass.
    void prefill(const QString& prompt);
    // One token. `prompt` is prefilled first if nothing is decoded yet or if it is not the prompt
    // that was prefilled (an edited prompt restarts the run from the new text).
    void step(const QString& prompt);
    // Drops the newest token (never the first one).
    void stepBack();
    // `generated` tokens after `prompt` (a session or a scene): prefills if `prompt` is not the
    // one prefilled, then steps or rewinds to that many (stepped / steppedBack for each change).
    void decodeTo(const QString& prompt, int generated);
    // Prefix sharing: a second sequence that continues from the current step on the same cache
    // blocks (DecodeSession::fork; CPU backend), sampling with the next seed; stepFork() runs one
    // token of it. A prefill, a reset or another model drops it. blocksChanged says the tables.
    void fork();
    void stepFork();
    void reset();
    // Speculative decoding: the drafter ("lookup": prompt lookup in the tokens so far;
    // "model:PATH": a smaller model with the same vocabulary, on the CPU) and the tokens drafted
    // per round. On failure (a file that does not load, another vocabulary) the previous drafter
    // stays; drafterChanged says which is in use.
    void setDrafter(const QString& spec, int draftTokens);
    // One round (SpeculativeDecoder::step): draft, verify in one pass, roll the rejected drafts
    // back (speculated). `prompt` is prefilled first as step() does.
    void speculate(const QString& prompt);
    // Replays the current sequence (the same prompt tokens, then the same generated tokens,
    // forced) in recompute mode (no cache) on a fresh backend of the same kind, and reports the
    // time of each step (comparedWithoutCache). The cached session is left as it was.
    void compareWithoutCache();
    // The logit lens of token `index` (ARCHITECTURE: teaching views): the model's head on token
    // index - 1's residual stream (resid: n_layer × n_embd, from its trace) with `target` (the
    // token at index) as the token that came next (lensComputed).
    void computeLens(int index, int position, const std::vector<float>& resid, int target);
    // The attention rows of (layer, head) for the first t tokens, rebuilt from their queries
    // (t × head_dim, from the traces) against the cache (headMatrixRebuilt).
    void rebuildHeadMatrix(int layer, int head, const std::vector<float>& queries);

  signals:
    void modelLoaded(const kvscope::viz::ModelSummary& summary);
    // prompt: the text that was prefilled.
    void prefilled(const std::vector<kvscope::StepTrace>& traces, double prefillMs,
                   const QString& prompt);
    void stepped(const kvscope::StepTrace& trace);
    // remaining tokens, and the bytes of K and V the backend's cache holds now (measured).
    void steppedBack(int remaining, qulonglong kvBytes, qulonglong kvAllocatedBytes);
    void wasReset();
    void failed(const QString& message);
    // Something the user should know that changed nothing (openSession's backend replaced).
    void warned(const QString& message);
    // openSession loaded its model: the backend ("auto", "cpu", "opencl:N") and context it runs.
    void sessionOpened(const QString& backendSpec, int context);
    // labels[i] names a backend the window can offer, specs[i] is what setBackend takes,
    // problems[i] is empty when it is usable.
    void devicesListed(const QStringList& labels, const QStringList& specs,
                       const QStringList& problems);
    void busyChanged(bool busy);
    // The recompute-mode replay: the token ids run (prompt, then generated), its prefill time,
    // and stepMs[i] for the generated token at position promptLength + i.
    void comparedWithoutCache(const QList<int>& tokens, int promptLength, double prefillMs,
                              const QList<double>& stepMs);
    // The replay's progress: done of total tokens (the prompt counts as one pass).
    void compareProgress(int done, int total);
    void compareStopped();  // requestStop() ended the replay early; nothing was drawn
    void lensComputed(int index, const kvscope::LogitLens& lens);
    // full: (t, t) row-major, zero above the diagonal
    void headMatrixRebuilt(int layer, int head, int t, const std::vector<float>& full);
    // After every request: the session's block table (and its fork's), read from the cache;
    // empty where the cache is on a device.
    void speculated(const kvscope::viz::SpeculativeRound& round);
    void speculateFailed();  // the round asked for did not happen (failed says why)
    void drafterChanged(const QString& spec, int draftTokens);
    void blocksChanged(const std::vector<kvscope::viz::BlockTable>& tables, int blockTokens,
                       qulonglong blockBytes);

  private:
    class Busy;
    bool ensureSession(const QString& what);
    // A backend for model_ per spec_, the session on it, and the summary the views need.
    void startBackend(std::shared_ptr<const Model> model, const BackendChoice& choice,
                      const QString& path);
    void doPrefill(const QString& prompt);
    void doDecodeTo(const QString& prompt, int generated);  // decodeTo without its Busy

    std::shared_ptr<const Model> model_;
    std::shared_ptr<Backend> backend_;
    std::unique_ptr<DecodeSession> session_;
    // speculative decoding: the decoder over session_ (dropped with it) and its drafter
    std::unique_ptr<SpeculativeDecoder> speculative_;
    std::unique_ptr<Drafter> makeDrafter(const QString& spec);
    QString drafterSpec_ = "lookup";
    int draftTokens_ = 4;
    std::shared_ptr<const Model> draftModel_;  // alive as long as a ModelDrafter uses it
    std::unique_ptr<DecodeSession> fork_;      // fork(): the second sequence on shared blocks
    size_t forkAt_ = 0;                        // the tokens both had when it forked
    void emitBlocks();
    SamplerParams sampler_;
    bool parseSpecial_ = true;
    BackendChoice choice_;
    int context_ = 0;
    QString path_;
    QString prefilledPrompt_;  // the text behind the session's prompt tokens
    std::atomic<bool> busy_{false};
    std::atomic<bool> stop_{false};
};

}  // namespace kvscope::app

Q_DECLARE_METATYPE(kvscope::StepTrace)
Q_DECLARE_METATYPE(std::vector<kvscope::StepTrace>)
Q_DECLARE_METATYPE(kvscope::viz::ModelSummary)
Q_DECLARE_METATYPE(kvscope::SamplerParams)
Q_DECLARE_METATYPE(kvscope::LogitLens)
Q_DECLARE_METATYPE(std::vector<float>)
Q_DECLARE_METATYPE(std::vector<kvscope::viz::BlockTable>)
Q_DECLARE_METATYPE(kvscope::viz::SpeculativeRound)
