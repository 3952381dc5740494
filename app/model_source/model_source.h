// Where a model comes from, for the window and the command line alike: the built-in model
// (a Qt resource inside the binary), a GGUF file, and the summary of a loaded model that the views
// and `kvscope info` show.
#pragma once

#include <QString>
#include <memory>
#include <string>
#include <vector>

#include "common/trace_store.h"
#include "model/model.h"
#include "runtime/backend.h"

namespace kvscope::app {

// The model inside the binary (a Qt resource), used when no model is named.
inline constexpr const char* kBuiltinModel = ":/models/kvscope-tiny.gguf";

// The models that may ship inside the binary, by the name `--model builtin:NAME` takes; those
// this binary holds are the ones whose resource exists (the build embeds each file of
// resources/models/ that is there).
struct BuiltinModel {
    const char* name;      // "tiny", "gqa"
    const char* resource;  // ":/models/…"
    const char* label;     // for the File menu
};
const std::vector<BuiltinModel>& builtinModels();
std::vector<BuiltinModel> builtinModelsPresent();
// "builtin:NAME" to its resource path; any other path unchanged. Throws Error naming the
// built-in models this binary has when NAME is none of them.
QString resolveBuiltin(const QString& path);

// What the views need to know about a model running on a backend.
// The tokenizer in words: its kind, pre-tokenizer and size.
std::string tokenizerText(const Model& model);

viz::ModelSummary summarize(const Model& model, const Backend& backend, const QString& path,
                            const std::string& note);

// Reads a GGUF model from a file, a Qt resource path (":/models/…") or "builtin:NAME".
std::shared_ptr<const Model> loadModelFile(const QString& path, int context = 0);
// The GGUF file itself, from a path, a Qt resource path or "builtin:NAME" (a resource is read
// into memory; a file is memory-mapped). Throws Error naming the file.
GgufFile openGgufFile(const QString& path);

}  // namespace kvscope::app
