#!/usr/bin/env bash
# Trains the planned second built-in model: a Llama-style model with grouped-query attention
# (6 layers, 8 query heads over 2 K/V heads, width 256, context 256, vocabulary 2,048) on the
# same corpus as kvscope-tiny (corpus/, never committed). Checkpoints every 250 steps to
# corpus/kvscope-gqa.ckpt and resumes from it when it is there, so it can be stopped and rerun.
# Three phases (below): the later ones add random repeats and dropout to the recipe.
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
  --repeat-fraction 0.1 --batch 8 --steps 5000 --lr 1e-3 --warmup 200 --eval-every 250
  --seed 1337 --name "KVScope GQA (KJV)"
  --checkpoint "$ckpt" --checkpoint-every 250)
# Phase 1, steps 1-2,500: line windows, 10% of them a repeated span of the text. (Resumed past
# 2,500 it runs no step.) By step 2,250 it had a first-token sink and previous-token heads but no
# head that copied on random tokens: the text's spans are memorised after a few passes, so
# copying them taught little.
"$kvscope" train "${common[@]}" "${resume[@]}" --stop-after 2500 "$@"
# Phase 2, steps 2,501-2,750: also 10% random repeats (the induction test as a task, the first
# copy not in the loss) and residual dropout 0.1 (by step 2,500 the held-out loss had stopped
# falling while the training loss fell: the model memorises the 3.9 MB of text), the
# checkpoint's recipe changed on resuming. (Resumed past 2,750 it runs no step.)
"$kvscope" train "${common[@]}" --resume "$ckpt" --random-repeat-fraction 0.1 --dropout 0.1 \
  --stop-after 2750 "$@"
# Phase 3, steps 2,751-5,000: random repeats raised to 25% (at 2,750 no head copied on random
# tokens yet).
"$kvscope" train "${common[@]}" --resume "$ckpt" --random-repeat-fraction 0.25 --dropout 0.1 "$@"
