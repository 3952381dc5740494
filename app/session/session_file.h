// A session file (.kvscope): everything that made a figure, so that it can be made again later
// (File ▸ Save session / Open session, `kvscope export --session`): the model (its path and the
// SHA-256 of its bytes), backend, sampling and seed, the prompt, how many tokens were generated
// (and which), the context and cache policy, what was inspected (view, layer, head, token), the
// theme, text zoom and colour maps, and the lecturer's scenes (bookmarked states with captions).
// JSON, versioned ("kvscope_session": 1); unknown keys are ignored, wrong ones refused by name.
#pragma once

#include <QByteArray>
#include <QString>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/annotation.h"
#include "runtime/kv_cache.h"
#include "runtime/sampler.h"

namespace kvscope::app {

// A bookmarked state: after `steps` generated tokens, this view, layer, head and token, with a
// caption shown on screen and in exports.
struct Scene {
    int steps = 0;
    QString view = "step";  // MainWindow::viewName: step, attention, cache, memory, ...
    int layer = 0, head = 0;
    int token = -1;  // the inspected token; -1: the newest
    QString caption;
};

struct SessionFile {
    static constexpr int kVersion = 1;
    QString modelPath;    // a file, or ":/models/…" for a built-in model
    QString modelSha256;  // hex, of the model file's bytes
    QString backend = "auto";
    SamplerParams sampler;
    bool parseSpecial = true;
    QString prompt;
    int steps = 0;                // generated tokens
    std::vector<int32_t> tokens;  // all tokens (prompt, then generated), as saved
    int context = 0;              // 0: the model's, at most 4,096
    KvCacheOptions cache;
    QString view = "step";
    int layer = 0, head = 0, token = -1;
    QString theme = "dark";
    double textZoom = 1.0;
    QString colormap = "viridis,rdbu";  // export --colormap's form
    std::vector<Scene> scenes;
    std::vector<viz::Annotation> annotations;

    QByteArray toJson() const;
    // Throws Error naming the key at fault (and `source`, the file, in the message).
    static SessionFile fromJson(const QByteArray& json, const QString& source);
    // Reads and parses a file; Error says what is wrong (missing, unreadable, not a session).
    static SessionFile load(const QString& path);
    // Writes through a temporary file: a failure loses nothing that was there.
    void save(const QString& path) const;
};

// The SHA-256 of a file's bytes as hex (a ":/" resource works too); Error if unreadable.
QString sha256OfFile(const QString& path);

// Why the session's model cannot be used as saved: the file is missing, or its bytes changed
// (the two hashes); nullopt when it is the same file.
std::optional<QString> modelProblem(const SessionFile& session);

}  // namespace kvscope::app
