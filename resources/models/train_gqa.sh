#!/usr/bin/env bash
# Trains the second built-in model, kvscope-gqa.gguf: a Llama-style model with grouped-query
# attention (6 layers, 8 query heads over 2 K/V heads, width 256, context 256, vocabulary 2,048,
# tied output) on the same corpus as kvscope-tiny (corpus/, never committed), in six stages of
# 16,000 steps, then averages the weights of its last seven snapshots (steps 14,500 to 16,000,
# 250 apart) into corpus/kvscope-gqa.gguf. Checkpoints every 250 steps to
# corpus/kvscope-gqa-staged.ckpt; rerun, it goes on from the checkpoint in the stage it belongs
# to, so it can be stopped at any time.
# Usage: resources/models/train_gqa.sh   (KVSCOPE_BIN=path/to/kvscope skips the build.)
# About 140 minutes on 2 free cores (0.5 s a step); then
#   kvscope convert --model corpus/kvscope-gqa.gguf --out resources/models/kvscope-gqa.gguf --type q8_0
set -euo pipefail
# the averaging at the end is a Python script (standard library only): say so now, not after hours
if ! command -v python3 > /dev/null; then
  echo "train_gqa.sh: python3 is needed to average the last snapshots (sudo apt-get install python3)" >&2
  exit 1
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
kvscope=${KVSCOPE_BIN:-$root/build/app/kvscope}
"$root/resources/models/make_corpus.sh" "$root/corpus/kjv.txt"
if [ -z "${KVSCOPE_BIN:-}" ]; then KVSCOPE_BUILD_ONLY=1 "$root/run.sh"; fi
# (not the earlier runs' kvscope-gqa.ckpt: a checkpoint's shape and recipe win on resume)
ckpt=$root/corpus/kvscope-gqa-staged.ckpt
common=(--arch llama --text "$root/corpus/kjv.txt"
  --out "$root/corpus/kvscope-gqa.gguf" --log "$root/corpus/train_gqa_staged_log.csv"
  --held-out-text "$root/corpus/kjv-heldout.txt"
  --layers 6 --heads 8 --kv-heads 2 --width 256 --context 256 --vocab 2048 --tie-output
  --batch 8 --lr 1e-3 --warmup 200
  --eval-every 250 --seed 1337 --name "KVScope GQA (KJV)"
  --checkpoint "$ckpt" --checkpoint-every 250
  --repeat-fraction 0 --any-start-fraction 0.5 --dropout 0.1)
# The stages: last step, then the schedule's length and the data mix from the stage's first step (a mix given with --resume
# replaces the checkpoint's from there on; given again, it changes nothing). Why (the runs and
# experiments in resources/models/README.md): text, with random repeats drawn by frequency;
# then random repeats alone, drawn by frequency, until the copy is learnt (their loss falls from
# about 6 nats per token); then text again, with random repeats of uniformly drawn tokens, which
# carry the copy over to every token of the vocabulary.
# Then more text: from step 5,000 the schedule is stretched to 9,000 steps with fewer repeats (the
# learning rate jumps from 1e-4 back to 4.9e-4 and decays again), and from step 6,500 to 12,000
# (from 2.7e-4 up to 5.0e-4 again): --steps with --resume ends the cosine at the new step.
# From step 12,000 to 16,000 with residual dropout 0.3 (the model had learnt the training text by
# heart: 0.91 bits per byte on it against 1.47 held out, and with dropout 0.1 a new cosine made
# the held-out loss worse), and 5% random repeats; the snapshots of its last 1,500 steps are
# averaged (1.4537 bits per byte at step 16,000, 1.4495 averaged, held out).
stage6="--steps 16000 --dropout 0.3 --random-repeat-fraction 0.05 --random-repeat-draw uniform"
stages=(
  "1000 --steps 5000 --random-repeat-fraction 0.3 --random-repeat-draw frequency"
  "2500 --steps 5000 --random-repeat-fraction 1 --random-repeat-draw frequency"
  "5000 --steps 5000 --random-repeat-fraction 0.3 --random-repeat-draw uniform"
  "6500 --steps 9000 --random-repeat-fraction 0.15 --random-repeat-draw uniform"
  "12000 --steps 12000"
  "14500 $stage6" "14750 $stage6" "15000 $stage6" "15250 $stage6" "15500 $stage6"
  "15750 $stage6" "16000 $stage6"
)
done_up_to() {  # the step of the last checkpoint, from the loss log's last row (0: none)
  if [ -f "$ckpt" ] && [ -f "$root/corpus/train_gqa_staged_log.csv" ]; then
    tail -n 1 "$root/corpus/train_gqa_staged_log.csv" | cut -d, -f1 | grep -E '^[0-9]+$' || echo 0
  else
    echo 0
  fi
}
for stage in "${stages[@]}"; do
  read -r last mix <<< "$stage"
  if [ "$(done_up_to)" -ge "$last" ]; then continue; fi
  resume=()
  if [ -f "$ckpt" ]; then resume=(--resume "$ckpt"); fi
  # shellcheck disable=SC2086 # the mix is words
  "$kvscope" train "${common[@]}" $mix "${resume[@]}" --stop-after "$last"
  if [ "$last" -ge 14500 ]; then cp "$root/corpus/kvscope-gqa.gguf" "$root/corpus/kvscope-gqa-$last.gguf"; fi
done
snapshots=()
for step in 14500 14750 15000 15250 15500 15750 16000; do
  snapshots+=("$root/corpus/kvscope-gqa-$step.gguf")
done
python3 "$root/resources/models/average_gguf.py" "$root/corpus/kvscope-gqa.gguf" "${snapshots[@]}"
