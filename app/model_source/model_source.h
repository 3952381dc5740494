// Where a model comes from, for the window and the command line alike: the built-in model
// (a Qt resource inside the binary), a GGUF file, and the summary of a loaded model that the views
// and `kvscope info` show.
#pragma once

#include <QString>
#include <memory>
#include <string>

#include "common/trace_store.h"
#include "model/model.h"
#include "runtime/backend.h"

namespace kvscope::app {

// The model inside the binary (a Qt resource), used when no model is named.
inline constexpr const char* kBuiltinModel = ":/models/kvscope-tiny.gguf";

// What the views need to know about a model running on a backend.
// The tokenizer in words: its kind, pre-tokenizer and size.
std::string tokenizerText(const Model& model);

viz::ModelSummary summarize(const Model& model, const Backend& backend, const QString& path,
                            const std::string& note);

// Reads a GGUF model from a file or a Qt resource path (":/models/…").
std::shared_ptr<const Model> loadModelFile(const QString& path, int context = 0);

}  // namespace kvscope::app
