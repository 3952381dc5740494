// traceJson / traceCsv: the store's values, formatted; nothing recomputed.
#include "export/trace_export.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QStringList>

namespace kvscope::viz {

QByteArray traceJson(const TraceStore& store, int layer, int head) {
    const ModelSummary& m = store.model();
    QJsonArray tokens;
    for (int i = 0; i < store.count(); ++i) {
        const StepTrace& t = store.trace(i);
        QJsonArray row;
        for (float w : store.attentionRow(i, layer, head)) row.append(static_cast<double>(w));
        tokens.append(QJsonObject{{"position", t.position},
                                  {"token", t.token},
                                  {"text", QString::fromUtf8(t.text)},
                                  {"prompt", t.prompt},
                                  {"latency_ms", t.hostMs},
                                  {"kv_bytes", static_cast<double>(t.kvBytes)},
                                  {"attention", row}});
    }
    const QJsonObject o{
        {"model", QJsonObject{{"name", QString::fromStdString(m.config.name)},
                              {"path", m.path},
                              {"arch", QString::fromStdString(m.config.archName)},
                              {"n_layer", m.config.nLayer},
                              {"n_head", m.config.nHead},
                              {"n_head_kv", m.config.nHeadKv},
                              {"n_embd", m.config.nEmbd},
                              {"n_ctx", m.config.nCtx},
                              {"kv_bytes_per_token", static_cast<double>(m.kvBytesPerToken)}}},
        {"backend", QJsonObject{{"name", m.backend}, {"device", m.device}}},
        {"layer", layer},
        {"head", head},
        {"prefill_ms", store.prefillMs()},
        {"tokens", tokens}};
    return QJsonDocument(o).toJson(QJsonDocument::Indented);
}

QByteArray traceCsv(const TraceStore& store, int layer, int head) {
    QByteArray out = "position,token,text,prompt,latency_ms,kv_bytes,attention\n";
    for (int i = 0; i < store.count(); ++i) {
        const StepTrace& t = store.trace(i);
        QString text = QString::fromUtf8(t.text);
        text.replace('"', "\"\"");
        QStringList weights;
        for (float w : store.attentionRow(i, layer, head))
            weights << QString::number(static_cast<double>(w), 'g', 7);
        out += QString("%1,%2,\"%3\",%4,%5,%6,%7\n")
                   .arg(t.position)
                   .arg(t.token)
                   .arg(text)
                   .arg(t.prompt ? 1 : 0)
                   .arg(t.hostMs, 0, 'f', 4)
                   .arg(static_cast<qulonglong>(t.kvBytes))
                   .arg(weights.join(' '))
                   .toUtf8();
    }
    return out;
}

}  // namespace kvscope::viz
