#!/usr/bin/env bash
# Builds KVScope (installing missing Debian packages first, as run.sh does) and runs every test.
# Needs no display: Qt runs on its offscreen platform.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KVSCOPE_BUILD_ONLY=1 "$root/run.sh"
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
cd "${KVSCOPE_BUILD_DIR:-$root/build}"
ctest --output-on-failure --parallel "$(nproc)" "$@"
