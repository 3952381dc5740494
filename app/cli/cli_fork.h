// kvscope decode --fork N: prefix sharing as vLLM's block tables teach it. After the decode the
// session forks (DecodeSession::fork): both continuations go on for N more tokens from the same
// cache blocks, the second sampling with the next seed, and each block is copied only when a
// branch writes into it. What comes back: both branches' tokens and block tables (block ids and
// reference counts), and the bytes stored once against the bytes two separate caches would hold.
#pragma once

#include <QJsonObject>
#include <string>

#include "runtime/decode_session.h"
#include "text/tokenizer.h"

namespace kvscope::app {

struct ForkRun {
    QJsonObject json;  // {"steps", "branches": [{"tokens", "text", "blocks": [[id, refs]],
                       //  "kv_bytes"}], "block_bytes", "stored_bytes", "separate_bytes"}
    std::string text;  // the two continuations and the bytes, in words
};

// Forks `session` (which goes on as branch 0) and decodes `steps` tokens on each branch. Throws
// Error where the backend cannot fork (OpenCL copies the cache and shares no blocks).
ForkRun decodeFork(DecodeSession& session, const Tokenizer& tokenizer, int steps);

}  // namespace kvscope::app
