#!/bin/bash
# The OpenCL backend against the CPU backend beside it (a benchmark, not a test): kvscope bench
# on each GPT-2 weight type, then the Llama-3.2-1B shape in Q4_K and Q8_0, one run each; the two
# backends decode the same file in turns of 4 steps. Prints one line per row.
# usage: tests/bench/opencl_vs_cpu.sh [BUILD_DIR] [extra bench options, e.g. --huge-pages off]
set -euo pipefail
build=${1:-build}
shift || true
kvscope="$build/app/kvscope"
row() {
    "$kvscope" bench --cached-only --backend opencl "$@" 2>&1 |
        grep -E "opencl cached|device time" | tr '\n' ' ' | tr -s ' '
    echo
}
for t in f32 f16 q8_0 q4_0 q4_k q6_k; do
    echo -n "gpt2 $t: "
    row --type "$t" "$@"
done
for t in q8_0 q4_k; do
    echo -n "llama-3.2-1b shape $t: "
    row --arch llama --layers 16 --width 2048 --heads 32 --kv-heads 8 --ff 8192 \
        --vocab 128256 --type "$t" "$@"
done
