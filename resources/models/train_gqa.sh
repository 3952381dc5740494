#!/usr/bin/env bash
# Trains the planned second built-in model: a Llama-style model with grouped-query attention
# (6 layers, 8 query heads over 2 K/V heads, width 256, context 256, vocabulary 2,048) on the
# same corpus as kvscope-tiny (corpus/, never committed). Checkpoints every 250 steps to
# corpus/kvscope-gqa.ckpt and resumes from it when it is there, so it can be stopped and rerun.
# Usage: resources/models/train_gqa.sh [extra kvscope train options, which override these]
# (KVSCOPE_BIN=path/to/kvscope skips the build.) About 2-3 hours on 2 free cores.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
kvscope=${KVSCOPE_BIN:-$root/build/app/kvscope}
"$root/resources/models/make_corpus.sh" "$root/corpus/kjv.txt"
if [ -z "${KVSCOPE_BIN:-}" ]; then KVSCOPE_BUILD_ONLY=1 "$root/run.sh"; fi
ckpt=$root/corpus/kvscope-gqa.ckpt
resume=()
if [ -f "$ckpt" ]; then resume=(--resume "$ckpt"); fi
common=(--arch llama --text "$root/corpus/kjv.txt"
  --out "$root/corpus/kvscope-gqa.gguf" --log "$root/corpus/train_gqa_log.csv"
  --held-out-text "$root/corpus/kjv-heldout.txt"
  --layers 6 --heads 8 --kv-heads 2 --width 256 --context 256 --vocab 2048
  --batch 8 --steps 5000 --lr 1e-3 --warmup 200
  --eval-every 250 --seed 1337 --name "KVScope GQA (KJV)"
  --checkpoint "$ckpt" --checkpoint-every 250)
# The data mix is the checkpoint's once there is one (a mix given with --resume replaces it from
# that step on, and the checkpoint keeps the new one). The current run (resources/models/README.md)
# started with 20% random repeats and switched to 40% at step 1,500 (its copies were no better
# predicted than fresh text there): `train_gqa.sh --random-repeat-fraction 0.4`, once.
if [ ${#resume[@]} -eq 0 ]; then
  common+=(--repeat-fraction 0 --random-repeat-fraction 0.2 --dropout 0.15)
fi
# The recipe, from what a first run (resources/models/README.md) showed: random repeats with a
# span length of their own per window (repeats of the text, always half a window, taught an
# offset and memorised text, not induction), and dropout from the start (without it the held-out
# loss stopped falling by step 2,250 while the training loss went on down).
"$kvscope" train "${common[@]}" "${resume[@]}" "$@"
