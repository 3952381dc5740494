// The decoded run as data for notes and plots: JSON (everything the views show for one head) and
// CSV (one row per token).
#pragma once

#include <QByteArray>

#include "common/trace_store.h"

namespace kvscope::viz {

// { "model": {...}, "backend": {...}, "layer", "head", "prefill_ms",
//   "tokens": [ {"position", "token", "text", "prompt", "latency_ms", "kv_bytes",
//                "attention": [weights over positions 0..position] } ] }
QByteArray traceJson(const TraceStore& store, int layer, int head);

// position,token,text,prompt,latency_ms,kv_bytes,attention (weights joined by spaces)
QByteArray traceCsv(const TraceStore& store, int layer, int head);

}  // namespace kvscope::viz
