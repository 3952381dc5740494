// Session files: JSON in and out, the model's hash, and the check that it did not change.
#include "session/session_file.h"

#include <QCryptographicHash>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>
#include <cmath>

#include "common/colormap.h"
#include "core/error.h"

namespace kvscope::app {
namespace {

QJsonObject cacheJson(const KvCacheOptions& c) {
    return QJsonObject{{"kv_type", QString::fromStdString(kvTypeName(c.type))},
                       {"window", c.eviction.window},
                       {"sinks", c.eviction.sinks},
                       {"heavy", c.eviction.heavy},
                       {"block", c.blockTokens}};
}

// Typed reads that name the key and the file when the value is of the wrong kind.
struct Reader {
    const QString& source;
    [[noreturn]] void fail(const QString& key, const QString& what) const {
        throw Error(QString("session '%1': \"%2\" %3").arg(source, key, what).toStdString());
    }
    QJsonObject object(const QJsonObject& o, const QString& key) const {
        if (!o.contains(key)) return {};
        if (!o[key].isObject()) fail(key, "must be an object");
        return o[key].toObject();
    }
    QString string(const QJsonObject& o, const QString& key, const QString& fallback) const {
        if (!o.contains(key)) return fallback;
        if (!o[key].isString()) fail(key, "must be a string");
        return o[key].toString();
    }
    double number(const QJsonObject& o, const QString& key, double fallback, double lo,
                  double hi) const {
        if (!o.contains(key)) return fallback;
        if (!o[key].isDouble()) fail(key, "must be a number");
        const double v = o[key].toDouble();
        if (v < lo || v > hi)
            fail(key, QString("must be from %1 to %2, not %3").arg(lo).arg(hi).arg(v));
        return v;
    }
    int integer(const QJsonObject& o, const QString& key, int fallback, int lo, int hi) const {
        const double v = number(o, key, fallback, lo, hi);
        if (v != static_cast<int>(v)) fail(key, "must be a whole number");
        return static_cast<int>(v);
    }
    bool boolean(const QJsonObject& o, const QString& key, bool fallback) const {
        if (!o.contains(key)) return fallback;
        if (!o[key].isBool()) fail(key, "must be true or false");
        return o[key].toBool();
    }
};

}  // namespace

QByteArray SessionFile::toJson() const {
    QJsonArray ids;
    for (int32_t t : tokens) ids.append(t);
    QJsonArray sceneArray;
    for (const Scene& s : scenes)
        sceneArray.append(QJsonObject{{"steps", s.steps},
                                      {"view", s.view},
                                      {"layer", s.layer},
                                      {"head", s.head},
                                      {"token", s.token},
                                      {"caption", s.caption}});
    QJsonArray notes;
    for (const viz::Annotation& a : annotations)
        notes.append(QJsonObject{
            {"view", a.view}, {"x", a.x}, {"y", a.y}, {"text", a.text}, {"arrow", a.arrow}});
    const QJsonObject root{
        {"kvscope_session", kVersion},
        {"model", QJsonObject{{"path", modelPath}, {"sha256", modelSha256}}},
        {"backend", backend},
        {"sampling", QJsonObject{{"temperature", static_cast<double>(sampler.temperature)},
                                 {"top_k", sampler.topK},
                                 {"top_p", static_cast<double>(sampler.topP)},
                                 {"seed", static_cast<double>(sampler.seed)}}},
        {"parse_special", parseSpecial},
        {"prompt", prompt},
        {"steps", steps},
        {"tokens", ids},
        {"context", context},
        {"cache", cacheJson(cache)},
        {"view", QJsonObject{{"tab", view},
                             {"layer", layer},
                             {"head", head},
                             {"token", token},
                             {"theme", theme},
                             {"text_zoom", textZoom},
                             {"colormap", colormap}}},
        {"scenes", sceneArray},
        {"annotations", notes}};
    return QJsonDocument(root).toJson(QJsonDocument::Indented);
}

SessionFile SessionFile::fromJson(const QByteArray& json, const QString& source) {
    QJsonParseError err;
    const QJsonDocument doc = QJsonDocument::fromJson(json, &err);
    if (doc.isNull() || !doc.isObject())
        throw Error(QString("session '%1' is not a KVScope session: %2 (at byte %3)")
                        .arg(source, err.errorString())
                        .arg(err.offset)
                        .toStdString());
    const QJsonObject root = doc.object();
    const Reader r{source};
    if (!root.contains("kvscope_session"))
        throw Error(QString("'%1' is not a KVScope session (no \"kvscope_session\" version)")
                        .arg(source)
                        .toStdString());
    const int version = r.integer(root, "kvscope_session", 0, 1, 1 << 20);
    if (version > kVersion)
        throw Error(QString("session '%1' is version %2; this KVScope reads version %3 and "
                            "earlier: open it with a newer KVScope")
                        .arg(source)
                        .arg(version)
                        .arg(kVersion)
                        .toStdString());
    SessionFile s;
    const QJsonObject model = r.object(root, "model");
    s.modelPath = r.string(model, "path", {});
    if (s.modelPath.isEmpty()) r.fail("model.path", "must name the model file");
    s.modelSha256 = r.string(model, "sha256", {});
    s.backend = r.string(root, "backend", "auto");
    const QJsonObject sampling = r.object(root, "sampling");
    s.sampler.temperature = static_cast<float>(r.number(sampling, "temperature", 0, 0, 100));
    s.sampler.topK = r.integer(sampling, "top_k", 40, 0, 1 << 30);
    s.sampler.topP = static_cast<float>(r.number(sampling, "top_p", 0.95, 1e-6, 1));
    s.sampler.seed = static_cast<uint64_t>(r.integer(sampling, "seed", 0, 0, 1 << 30));
    s.parseSpecial = r.boolean(root, "parse_special", true);
    s.prompt = r.string(root, "prompt", {});
    s.steps = r.integer(root, "steps", 0, 0, 1 << 24);
    if (root.contains("tokens")) {
        if (!root["tokens"].isArray()) r.fail("tokens", "must be an array of token ids");
        for (const QJsonValue& v : root["tokens"].toArray()) {
            const double id = v.isDouble() ? v.toDouble() : -1;
            if (id < 0 || id > 2147483647.0 || id != std::floor(id))
                r.fail("tokens", "must hold token ids (whole numbers from 0)");
            s.tokens.push_back(static_cast<int32_t>(id));
        }
    }
    s.context = r.integer(root, "context", 0, 0, 1 << 24);
    const QJsonObject cache = r.object(root, "cache");
    const QString kvType = r.string(cache, "kv_type", "f32");
    const std::optional<KvType> type = parseKvType(kvType.toStdString());
    if (!type) r.fail("cache.kv_type", "must be f32, f16, q8_0 or q4_0, not '" + kvType + "'");
    s.cache = KvCacheOptions(*type, r.integer(cache, "block", 256, 1, 1 << 20),
                             EvictionPolicy{r.integer(cache, "window", 0, 0, 1 << 24),
                                            r.integer(cache, "sinks", 0, 0, 1 << 24),
                                            r.integer(cache, "heavy", 0, 0, 1 << 24)});
    const QJsonObject view = r.object(root, "view");
    s.view = r.string(view, "tab", "step");
    s.layer = r.integer(view, "layer", 0, 0, 1 << 16);
    s.head = r.integer(view, "head", 0, 0, 1 << 16);
    s.token = r.integer(view, "token", -1, -1, 1 << 24);
    s.theme = r.string(view, "theme", "dark");
    if (s.theme != "dark" && s.theme != "light")
        r.fail("view.theme", "must be dark or light, not '" + s.theme + "'");
    s.textZoom = r.number(view, "text_zoom", 1.0, 0.6, 3.0);
    s.colormap = r.string(view, "colormap", "viridis,rdbu");
    for (const QString& name : s.colormap.split(',', Qt::SkipEmptyParts))
        if (!viz::parseSequentialMap(name.toStdString()) &&
            !viz::parseDivergingMap(name.toStdString()))
            r.fail("view.colormap", "names no colour map: '" + name +
                                        "' (viridis, cividis, rdbu, puor, blue-yellow)");
    const auto checkView = [&](const QString& key, const QString& tab) {
        static const QStringList tabs = {"step",       "attention", "cache",  "memory",
                                         "calculator", "next",      "sharing"};
        if (!tabs.contains(tab))
            r.fail(key, "must be one of " + tabs.join(", ") + ", not '" + tab + "'");
    };
    checkView("view.tab", s.view);
    if (root.contains("scenes")) {
        if (!root["scenes"].isArray()) r.fail("scenes", "must be an array");
        for (const QJsonValue& v : root["scenes"].toArray()) {
            if (!v.isObject()) r.fail("scenes", "must hold objects");
            const QJsonObject o = v.toObject();
            Scene sc;
            sc.steps = r.integer(o, "steps", 0, 0, 1 << 24);
            sc.view = r.string(o, "view", "step");
            checkView("scenes.view", sc.view);
            sc.layer = r.integer(o, "layer", 0, 0, 1 << 16);
            sc.head = r.integer(o, "head", 0, 0, 1 << 16);
            sc.token = r.integer(o, "token", -1, -1, 1 << 24);
            sc.caption = r.string(o, "caption", {});
            s.scenes.push_back(sc);
        }
    }
    if (root.contains("annotations")) {
        if (!root["annotations"].isArray()) r.fail("annotations", "must be an array");
        for (const QJsonValue& v : root["annotations"].toArray()) {
            if (!v.isObject()) r.fail("annotations", "must hold objects");
            const QJsonObject o = v.toObject();
            viz::Annotation a;
            a.view = r.string(o, "view", "step");
            a.x = r.number(o, "x", 0.5, 0, 1);
            a.y = r.number(o, "y", 0.5, 0, 1);
            a.text = r.string(o, "text", {});
            a.arrow = r.boolean(o, "arrow", true);
            s.annotations.push_back(a);
        }
    }
    return s;
}

SessionFile SessionFile::load(const QString& path) {
    QFile f(path);
    if (!f.exists()) throw Error(QString("no session file '%1'").arg(path).toStdString());
    if (!f.open(QIODevice::ReadOnly))
        throw Error(
            QString("cannot read the session '%1': %2").arg(path, f.errorString()).toStdString());
    return fromJson(f.readAll(), path);
}

void SessionFile::save(const QString& path) const {
    QSaveFile f(path);
    const QByteArray bytes = toJson();
    if (!f.open(QIODevice::WriteOnly) || f.write(bytes) != bytes.size() || !f.commit())
        throw Error(
            QString("cannot write the session '%1': %2").arg(path, f.errorString()).toStdString());
}

QString sha256OfFile(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        throw Error(
            QString("cannot read '%1' to hash it: %2").arg(path, f.errorString()).toStdString());
    QCryptographicHash hash(QCryptographicHash::Sha256);
    if (!hash.addData(&f))
        throw Error(QString("cannot read '%1' to hash it").arg(path).toStdString());
    return QString::fromLatin1(hash.result().toHex());
}

std::optional<QString> modelProblem(const SessionFile& s) {
    if (!QFileInfo::exists(s.modelPath))
        return QString(
                   "the session's model '%1' is not there (moved or deleted?): open it from "
                   "where it is now, then save the session again")
            .arg(s.modelPath);
    if (s.modelSha256.isEmpty()) return std::nullopt;  // a hand-written session: trusted
    const QString now = sha256OfFile(s.modelPath);
    if (now.compare(s.modelSha256, Qt::CaseInsensitive) != 0)
        return QString(
                   "the session's model '%1' has changed since the session was saved "
                   "(SHA-256 %2 then, %3 now): its tokens and figures would differ")
            .arg(s.modelPath, s.modelSha256.left(16) + "…", now.left(16) + "…");
    return std::nullopt;
}

}  // namespace kvscope::app
