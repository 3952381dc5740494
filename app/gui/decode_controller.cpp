// DecodeController: every slot catches errors and reports them as a message; the session keeps
// its last good state.
#include "gui/decode_controller.h"

#include <QFile>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "gguf/gguf.h"
#include "opencl/device_list.h"

namespace kvscope::app {

// Marks the controller busy for the lifetime of one request.
class DecodeController::Busy {
  public:
    explicit Busy(DecodeController& c) : c_(c) {
        c_.busy_ = true;
        emit c_.busyChanged(true);
    }
    ~Busy() {
        c_.emitBlocks();
        c_.busy_ = false;
        emit c_.busyChanged(false);
    }

  private:
    DecodeController& c_;
};

DecodeController::DecodeController(QObject* parent) : QObject(parent) {
    qRegisterMetaType<kvscope::StepTrace>();
    qRegisterMetaType<std::vector<kvscope::StepTrace>>();
    qRegisterMetaType<kvscope::viz::ModelSummary>();
    qRegisterMetaType<kvscope::SamplerParams>();
    qRegisterMetaType<kvscope::LogitLens>();
    qRegisterMetaType<std::vector<float>>();
    qRegisterMetaType<std::vector<kvscope::viz::BlockTable>>();
    qRegisterMetaType<kvscope::viz::SpeculativeRound>();
}

DecodeController::~DecodeController() = default;

namespace {
// "auto", "cpu" or "opencl:N"; throws Error for anything else.
BackendChoice parseBackend(const QString& spec) {
    BackendChoice c;
    if (spec == "auto") return c;
    if (spec == "cpu") {
        c.kind = BackendChoice::Kind::Cpu;
        return c;
    }
    bool ok = false;
    const int device = spec.startsWith("opencl:") ? spec.mid(7).toInt(&ok) : -1;
    if (!ok || device < 0) throw Error("unknown backend '" + spec.toStdString() + "'");
    c.kind = BackendChoice::Kind::OpenCl;
    c.device = device;
    return c;
}
}  // namespace

void DecodeController::startBackend(std::shared_ptr<const Model> model, const BackendChoice& choice,
                                    const QString& path) {
    std::string note;
    BackendChoice c = choice;
    c.stop = &stop_;  // closing the window stops a tuning
    stop_.store(false);
    auto backend = createBackend(model, c, note);
    SessionOptions o;
    o.topLogits = 64;  // the next-token view's candidates (prompt tokens too)
    o.sampler = sampler_;
    o.parseSpecial = parseSpecial_;
    o.drift = true;  // under a lossy cache policy: each token against the full cache
    auto session = std::make_unique<DecodeSession>(backend, model->tokenizer, o);
    const viz::ModelSummary s = summarize(*model, *backend, path, note);
    fork_.reset();
    speculative_.reset();           // it refers to the session
    session_ = std::move(session);  // the session refers to the model's tokenizer:
    backend_ = std::move(backend);  // replace all three together
    model_ = std::move(model);
    choice_ = choice;
    path_ = path;
    emit modelLoaded(s);
}

void DecodeController::loadModel(const QString& path) {
    Busy busy(*this);
    try {
        startBackend(loadModelFile(path, context_), choice_, path);
    } catch (const std::exception& e) {
        emit failed(QString("Loading %1: %2").arg(path, QString::fromUtf8(e.what())));
    }
}

namespace {
QString specOf(const BackendChoice& c) {
    switch (c.kind) {
        case BackendChoice::Kind::Cpu:
            return "cpu";
        case BackendChoice::Kind::OpenCl:
            return QString("opencl:%1").arg(c.device);
        case BackendChoice::Kind::Auto:
            break;
    }
    return "auto";
}
}  // namespace

void DecodeController::openSession(const QString& path, const QString& backendSpec, int context,
                                   const KvCacheOptions& cache, const QString& prompt,
                                   int generated) {
    Busy busy(*this);
    const auto withCache = [&cache](BackendChoice c) {
        c.kvType = cache.type;
        c.eviction = cache.eviction;
        c.blockTokens = cache.blockTokens;
        return c;
    };
    QString running = backendSpec, problem;
    try {
        std::shared_ptr<const Model> model = loadModelFile(path, context);
        try {
            startBackend(model, withCache(parseBackend(backendSpec)), path);
        } catch (const std::exception& e) {
            running = specOf(choice_);
            problem = QString(
                          "Open session: the saved backend %1 cannot start here (%2); the "
                          "session runs on %3")
                          .arg(backendSpec, QString::fromUtf8(e.what()), running);
            startBackend(model, withCache(choice_), path);
        }
        context_ = context;
    } catch (const std::exception& e) {
        emit failed(QString("Loading %1: %2").arg(path, QString::fromUtf8(e.what())));
        return;  // the previous model stays on show, and nothing is decoded on it
    }
    emit sessionOpened(running, context);
    doDecodeTo(prompt, generated);
    if (!problem.isEmpty()) emit warned(problem);
}

void DecodeController::setCacheOptions(int context, const KvCacheOptions& cache) {
    Busy busy(*this);
    std::vector<int32_t> tokens;
    size_t promptLength = 0;
    if (session_) tokens = session_->tokens(), promptLength = session_->promptLength();
    const QString prompt = prefilledPrompt_;
    try {
        BackendChoice choice = choice_;
        choice.kvType = cache.type;
        choice.eviction = cache.eviction;
        choice.blockTokens = cache.blockTokens;
        if (model_) startBackend(loadModelFile(path_, context), choice, path_);
        context_ = context;
        choice_ = choice;
    } catch (const std::exception& e) {
        emit failed(QString("Context and KV cache: ") + QString::fromUtf8(e.what()));
        return;
    }
    if (!session_ || promptLength == 0) return;
    try {  // the same tokens again under the new options
        const std::vector<int32_t> promptIds(
            tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(promptLength));
        const std::vector<StepTrace> traces = session_->prefillTokens(promptIds);
        prefilledPrompt_ = prompt;
        emit prefilled(traces, session_->prefillMs(), prompt);
        for (size_t i = promptLength; i < tokens.size() && !stop_.load(); ++i)
            emit stepped(session_->stepWith(tokens[i]));
    } catch (const std::exception& e) {
        emit failed(QString("Running the tokens again: ") + QString::fromUtf8(e.what()));
    }
}

void DecodeController::setBackend(const QString& spec) {
    Busy busy(*this);
    try {
        BackendChoice choice = parseBackend(spec);
        choice.kvType = choice_.kvType;
        choice.eviction = choice_.eviction;
        choice.blockTokens = choice_.blockTokens;
        if (model_)
            startBackend(model_, choice, path_);
        else
            choice_ = choice;
    } catch (const std::exception& e) {
        emit failed(QString("Backend %1: %2").arg(spec, QString::fromUtf8(e.what())));
    }
}

void DecodeController::listDevices() {
    Busy busy(*this);
    QStringList labels{tr("Auto (first GPU, else CPU)"), tr("CPU")}, specs{"auto", "cpu"},
        problems{"", ""};
    const ocl::DeviceList list = ocl::listDevices();
    for (const ocl::DeviceInfo& d : list.devices) {
        labels << tr("OpenCL %1: %2 (%3)")
                      .arg(d.index)
                      .arg(QString::fromStdString(d.name), QString::fromStdString(d.type));
        specs << QString("opencl:%1").arg(d.index);
        problems << QString::fromStdString(d.whyNot);
    }
    emit devicesListed(labels, specs, problems);
}

void DecodeController::setSampler(const SamplerParams& sampler) {
    Busy busy(*this);  // every request ends with busyChanged(false): the window counts on it
    sampler_ = sampler;
    if (session_) session_->setSampler(sampler);
}

void DecodeController::setParseSpecial(bool parse) {
    Busy busy(*this);
    parseSpecial_ = parse;
    if (session_) session_->setParseSpecial(parse);
    prefilledPrompt_.clear();  // its tokens may differ now: the next step prefills again
}

bool DecodeController::ensureSession(const QString& what) {
    if (session_) return true;
    emit failed(what + ": no model is loaded");
    return false;
}

void DecodeController::doPrefill(const QString& prompt) {
    fork_.reset();
    const std::vector<StepTrace> traces = session_->prefill(prompt.toStdString());
    prefilledPrompt_ = prompt;
    emit prefilled(traces, session_->prefillMs(), prompt);
}

void DecodeController::prefill(const QString& prompt) {
    Busy busy(*this);
    if (!ensureSession("Prefill")) return;
    try {
        doPrefill(prompt);
    } catch (const std::exception& e) {
        emit failed(QString("Prefill: ") + QString::fromUtf8(e.what()));
    }
}

void DecodeController::step(const QString& prompt) {
    Busy busy(*this);
    if (!ensureSession("Step")) return;
    try {
        if (session_->tokens().empty() || prompt != prefilledPrompt_) doPrefill(prompt);
        emit stepped(session_->step());
    } catch (const std::exception& e) {
        emit failed(QString("Step: ") + QString::fromUtf8(e.what()));
    }
}

std::unique_ptr<Drafter> DecodeController::makeDrafter(const QString& spec) {
    if (spec == "lookup") {
        draftModel_.reset();
        return std::make_unique<LookupDrafter>();
    }
    if (!spec.startsWith("model:") || spec.size() <= 6)
        throw Error("unknown drafter '" + spec.toStdString() + "': lookup or model:PATH");
    if (!model_) throw Error("load a target model before its draft model");
    const QString path = spec.mid(6);
    std::shared_ptr<const Model> draft = loadModelFile(path, context_);
    BackendChoice cpu;
    cpu.kind = BackendChoice::Kind::Cpu;
    std::string note;
    auto backend = createBackend(draft, cpu, note);
    auto drafter =
        std::make_unique<ModelDrafter>(std::move(backend), draft->tokenizer, model_->tokenizer,
                                       model_->config.nVocab, spec.toStdString());
    draftModel_ = std::move(draft);
    return drafter;
}

void DecodeController::setDrafter(const QString& spec, int draftTokens) {
    Busy busy(*this);
    try {
        if (draftTokens < 1 || draftTokens > 64)
            throw Error("a round drafts 1 to 64 tokens, not " + std::to_string(draftTokens));
        if (spec != drafterSpec_ || !speculative_) {
            // built now, so that a draft model that does not fit is reported at once
            std::unique_ptr<Drafter> drafter = makeDrafter(spec);
            speculative_.reset();
            if (session_)
                speculative_ = std::make_unique<SpeculativeDecoder>(*session_, std::move(drafter),
                                                                    draftTokens);
        }
        drafterSpec_ = spec;
        draftTokens_ = draftTokens;
    } catch (const std::exception& e) {
        emit failed(QString("Drafter %1: %2").arg(spec, QString::fromUtf8(e.what())));
    }
    emit drafterChanged(drafterSpec_, draftTokens_);
}

void DecodeController::speculate(const QString& prompt) {
    Busy busy(*this);
    if (!ensureSession("Speculative step")) {
        emit speculateFailed();
        return;
    }
    try {
        if (session_->tokens().empty() || prompt != prefilledPrompt_) doPrefill(prompt);
        if (!speculative_ || speculative_->maxDraft() != draftTokens_)
            speculative_ = std::make_unique<SpeculativeDecoder>(
                *session_, makeDrafter(drafterSpec_), draftTokens_);
        const int first = static_cast<int>(session_->tokens().size());
        SpeculativeStep step = speculative_->step();
        viz::SpeculativeRound r;
        r.first = first;
        r.verified = std::move(step.traces);
        r.accepted = step.accepted;
        for (StepTrace& t : step.rejected) r.verified.push_back(std::move(t));
        r.next = step.emitted.back();
        r.nextText = model_->tokenizer.tokenBytes(r.next);
        r.drafter = QString::fromStdString(speculative_->drafter().name());
        r.draftMs = step.draftMs;
        r.verifyMs = step.verifyMs;
        r.hostMs = step.hostMs;
        emit speculated(r);
    } catch (const std::exception& e) {
        emit failed(QString("Speculative step: ") + QString::fromUtf8(e.what()));
        emit speculateFailed();
    }
}

void DecodeController::decodeTo(const QString& prompt, int generated) {
    Busy busy(*this);
    doDecodeTo(prompt, generated);
}

void DecodeController::doDecodeTo(const QString& prompt, int generated) {
    if (!ensureSession("Decode")) return;
    try {
        if (session_->tokens().empty() || prompt != prefilledPrompt_) doPrefill(prompt);
        const size_t target = session_->promptLength() + static_cast<size_t>(generated);
        if (session_->tokens().size() > target) {
            session_->rewind(session_->tokens().size() - target);
            emit steppedBack(static_cast<int>(session_->tokens().size()),
                             static_cast<qulonglong>(session_->kvBytes()),
                             static_cast<qulonglong>(session_->kvAllocatedBytes()));
        }
        while (session_->tokens().size() < target && !stop_.load()) emit stepped(session_->step());
    } catch (const std::exception& e) {
        emit failed(QString("Decode: ") + QString::fromUtf8(e.what()));
    }
}

void DecodeController::stepBack() {
    Busy busy(*this);
    if (!session_ || session_->tokens().size() < 2) return;
    try {
        session_->rewind(1);
        emit steppedBack(static_cast<int>(session_->tokens().size()),
                         static_cast<qulonglong>(session_->kvBytes()),
                         static_cast<qulonglong>(session_->kvAllocatedBytes()));
    } catch (const std::exception& e) {
        emit failed(QString("Step back: ") + QString::fromUtf8(e.what()));
    }
}

void DecodeController::reset() {
    Busy busy(*this);
    fork_.reset();
    if (session_) session_->reset();
    emit wasReset();
}

void DecodeController::fork() {
    Busy busy(*this);
    if (!ensureSession("Fork")) return;
    try {
        if (session_->tokens().empty()) throw Error("nothing to fork yet: prefill a prompt first");
        std::unique_ptr<DecodeSession> other = session_->fork();
        SamplerParams second = sampler_;
        second.seed += 1;  // the fork samples with the next seed: the two can part
        other->setSampler(second);
        fork_ = std::move(other);
        forkAt_ = session_->tokens().size();
    } catch (const std::exception& e) {
        emit failed(QString("Fork: ") + QString::fromUtf8(e.what()));
    }
}

void DecodeController::stepFork() {
    Busy busy(*this);
    if (!fork_) {
        emit failed(tr("Step the fork: fork first (Decode ▸ Fork here)"));
        return;
    }
    try {
        fork_->step();
    } catch (const std::exception& e) {
        emit failed(QString("Step the fork: ") + QString::fromUtf8(e.what()));
    }
}

void DecodeController::emitBlocks() {
    std::vector<viz::BlockTable> tables;
    int blockTokens = 0;
    uint64_t blockBytes = 0;
    auto tableOf = [&](const DecodeSession& s, const QString& name) {
        const KvCache* cache = s.backend().hostCache();
        if (!cache || !s.usesCache()) return;
        viz::BlockTable t;
        t.name = name;
        t.rows = cache->rows();
        for (int b = 0; b < cache->blocksAllocated(); ++b) {
            t.ids.push_back(cache->blockId(b));
            t.refs.push_back(cache->blockRefs(b));
        }
        if (fork_) {  // what each side went on with since the fork
            std::string text;
            for (size_t i = std::min(forkAt_, s.tokens().size()); i < s.tokens().size(); ++i)
                text += model_->tokenizer.tokenBytes(s.tokens()[i]);
            t.continuation = QString::fromUtf8(text);
        }
        blockTokens = cache->blockTokens();
        blockBytes = cache->blockBytes();
        tables.push_back(std::move(t));
    };
    if (session_) tableOf(*session_, tr("session"));
    if (session_ && fork_) tableOf(*fork_, tr("fork"));
    emit blocksChanged(tables, blockTokens, static_cast<qulonglong>(blockBytes));
}

namespace {
struct Stopped {};  // the replay was asked to stop
}  // namespace

void DecodeController::compareWithoutCache() {
    Busy busy(*this);
    if (!ensureSession("Compare without cache")) return;
    try {
        const int total =
            static_cast<int>(session_->tokens().size() - session_->promptLength()) + 1;
        stop_.store(false);
        emit compareProgress(0, total);
        const ReplayTimes r = session_->replayWithoutCache([this](int done, int all) {
            emit compareProgress(done, all);
            if (stop_.load() && done < all) throw Stopped{};
        });
        emit comparedWithoutCache(QList<int>(r.tokens.begin(), r.tokens.end()),
                                  static_cast<int>(r.promptLength), r.prefillMs,
                                  QList<double>(r.stepMs.begin(), r.stepMs.end()));
    } catch (const Stopped&) {
        emit compareStopped();
    } catch (const std::exception& e) {
        emit failed(QString("Compare without cache: ") + QString::fromUtf8(e.what()));
    }
}

void DecodeController::computeLens(int index, int position, const std::vector<float>& resid,
                                   int target) {
    Busy busy(*this);
    if (!ensureSession("look inside the layers")) return;
    try {
        const ModelConfig& c = model_->config;
        StepTrace t;
        t.position = position;
        t.nLayer = c.nLayer;
        t.nEmbd = c.nEmbd;
        t.resid = resid;
        emit lensComputed(index, session_->logitLens(t, target, 5));
    } catch (const std::exception& e) {
        emit failed(QString("Logit lens: %1").arg(QString::fromUtf8(e.what())));
    }
}

void DecodeController::rebuildHeadMatrix(int layer, int head, const std::vector<float>& queries) {
    Busy busy(*this);
    if (!ensureSession("rebuild the attention rows")) return;
    // asked for before a step that let keys go: the store knows it by now and says why
    if (const KvRows* book = session_->backend().cacheBook(); book && book->rows() != book->used())
        return;
    try {
        std::vector<float> full;
        session_->attentionMatrix(layer, head, queries, full);
        const auto t =
            static_cast<int>(queries.size() / static_cast<size_t>(model_->config.headDim));
        emit headMatrixRebuilt(layer, head, t, full);
    } catch (const std::exception& e) {
        emit failed(QString("Rebuilding the attention rows of layer %1, head %2: %3")
                        .arg(layer)
                        .arg(head)
                        .arg(QString::fromUtf8(e.what())));
    }
}

}  // namespace kvscope::app
