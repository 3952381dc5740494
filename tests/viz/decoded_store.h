// DecodedStore: a TraceStore filled from a real decode (CpuBackend + DecodeSession) of a small
// random model, for the view tests and the view renderer: prefill, step and step back keep the
// session and the store in step, as the app's controller does.
#pragma once

#include <memory>
#include <string>

#include "common/trace_store.h"
#include "cpu/cpu_backend.h"
#include "model/model.h"
#include "runtime/decode_session.h"

namespace kvscope::viz::testing {

class DecodedStore {
  public:
    explicit DecodedStore(std::shared_ptr<const Model> model,
                          QString path = QStringLiteral("fixture"), SessionOptions options = {},
                          KvCacheOptions cache = {})
        : model_(std::move(model)),
          backend_(std::make_shared<CpuBackend>(model_, ThreadPool::shared(), cache)),
          session_(backend_, model_->tokenizer, options) {
        ModelSummary s;
        s.config = model_->config;
        s.path = std::move(path);
        s.parameters = model_->parameterCount();
        s.weightBytes = model_->weightBytes();
        s.kvBytesPerToken = backend_->cacheBytesPerToken();
        s.cacheAllocatedBytes = backend_->cacheAllocatedBytes();
        s.cacheBlockTokens = backend_->cacheBlockTokens();
        s.cache = backend_->cacheOptions();
        s.backend = QString::fromStdString(backend_->name());
        s.device = QString::fromStdString(backend_->deviceName());
        store.setModel(s);
    }

    void prefill(const std::string& prompt) {
        std::vector<StepTrace> traces = session_.prefill(prompt);  // before prefillMs() is read
        store.setPrompt(std::move(traces), session_.prefillMs());
    }
    void step() { store.append(session_.step()); }
    void steps(int n) {
        for (int k = 0; k < n; ++k) step();
    }
    void stepBack() {
        session_.rewind(1);
        store.truncate(store.count() - 1, session_.kvBytes(), session_.kvAllocatedBytes());
    }
    const Model& model() const { return *model_; }
    const CpuBackend& backend() const { return *backend_; }

    TraceStore store;

  private:
    std::shared_ptr<const Model> model_;
    std::shared_ptr<CpuBackend> backend_;
    DecodeSession session_;
};

}  // namespace kvscope::viz::testing
