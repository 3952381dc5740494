#!/usr/bin/env bash
# Reproduces resources/models/kvscope-tiny.gguf: fetches the corpus (King James Bible, from
# Debian's bible-kjv package) into corpus/ (never committed), builds kvscope, and trains.
# About 35 minutes on a 2-core machine. Usage: resources/models/train.sh [extra kvscope train options]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$root/resources/models/make_corpus.sh" "$root/corpus/kjv.txt"
KVSCOPE_BUILD_ONLY=1 "$root/run.sh"
"$root/build/app/kvscope" train --text "$root/corpus/kjv.txt" \
  --out "$root/corpus/kvscope-tiny.gguf" --log "$root/corpus/train_log.csv" \
  --held-out-text "$root/corpus/kjv-heldout.txt" \
  --layers 4 --heads 4 --width 128 --context 256 --vocab 1024 --batch 8 --steps 6000 \
  --lr 1.5e-3 --warmup 200 --eval-every 250 --seed 1337 --name "KVScope tiny (KJV)" "$@"
echo "trained: copy corpus/kvscope-tiny.gguf to resources/models/ to ship it" >&2
