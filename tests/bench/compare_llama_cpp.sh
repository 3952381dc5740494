#!/usr/bin/env bash
# KVScope's CPU backend against llama.cpp on the same files, alternating in one run (a benchmark,
# not a test; CTest never runs it). For each weight type and shape: `kvscope bench` writes the
# random model (--keep-model) and measures KVScope (cached decode, all threads, RSS); then
# `kvscope decode` and llama.cpp (tests/bench/llama_cpp_decode.mjs, prebuilt from npm) take
# turns, ROUNDS times each, on that file (llama.cpp at its fastest of LLAMA_THREADS, default
# "1 NPROC").
#   tests/bench/compare_llama_cpp.sh BUILD_DIR [ROUNDS] [SHAPE...]   SHAPE: gpt2:TYPE or llama1b:TYPE
# Needs node and `npm install --prefix $LLAMA_PREFIX node-llama-cpp@3.22.1` (LLAMA_PREFIX
# defaults to /tmp/llamacpp; the script installs it there when missing).
set -euo pipefail
build=${1:?usage: compare_llama_cpp.sh BUILD_DIR [ROUNDS] [SHAPE...]}
rounds=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(gpt2:f32 gpt2:f16 gpt2:q8_0 gpt2:q4_0 gpt2:q4_k gpt2:q6_k
                                   llama1b:q8_0 llama1b:q4_k)
here=$(cd "$(dirname "$0")" && pwd)
prefix=${LLAMA_PREFIX:-/tmp/llamacpp}
if [ ! -d "$prefix/node_modules/node-llama-cpp" ]; then
  NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --prefix "$prefix" --no-audit --no-fund \
    node-llama-cpp@3.22.1 >/dev/null
fi
# llama.cpp runs with each of these thread counts every round and counts at its fastest: on a
# 2-vCPU VM its 2-thread decode was slower than its 1-thread one (46 against 55 tokens/s, GPT-2
# Q8_0, 2026-11-29), so one fixed count would understate it. KVScope uses all cores.
read -r -a llama_threads <<< "${LLAMA_THREADS:-1 $(nproc)}"
kvscope="$build/app/kvscope"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
steps=32
printf '%-14s %9s %10s %10s %12s %12s %7s\n' shape "file MB" "RSS MB" "bound t/s" "kvscope t/s" "llama t/s" ratio
for shape in "${shapes[@]}"; do
  arch=${shape%%:*} type=${shape#*:}
  case $arch in
    gpt2) geometry=(--arch gpt2) ;;
    llama1b) geometry=(--arch llama --layers 16 --width 2048 --heads 32 --kv-heads 8 --ff 8192
                       --vocab 128256 --context 2048) ;;
    *) echo "unknown shape $shape" >&2; exit 2 ;;
  esac
  model="$work/$arch-$type.gguf"
  "$kvscope" bench "${geometry[@]}" --type "$type" --steps $steps --cached-only --keep-model "$model" --json \
    > "$work/bench.json" 2>/dev/null || true
  ours=() theirs=()
  for ((r = 0; r < rounds; ++r)); do
    ours+=("$("$kvscope" decode --model "$model" --prompt "the cat sat on the mat and" \
      --steps $steps --json - 2>/dev/null | node -e '
        const o = JSON.parse(require("fs").readFileSync(0, "utf8"));
        const ms = o.steps.slice(1).map(s => s.latency_ms);
        console.log((ms.length * 1000 / ms.reduce((a, b) => a + b, 0)).toFixed(2));')")
    best=0  # llama.cpp at its best thread count this round
    for t in "${llama_threads[@]}"; do
      got=$(NODE_PATH="$prefix/node_modules" node "$here/llama_cpp_decode.mjs" "$model" \
        --steps $steps --runs 1 --threads "$t" 2>/dev/null | node -e '
          const o = JSON.parse(require("fs").readFileSync(0, "utf8"));
          console.log(o.tokens_per_s.toFixed(2));')
      best=$(node -e 'console.log(Math.max(...process.argv.slice(1).map(Number)).toFixed(2))' "$best" "$got")
    done
    theirs+=("$best")
  done
  node -e '
    const b = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const ours = process.argv[2].split(" ").map(Number), theirs = process.argv[3].split(" ").map(Number);
    const med = a => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    const f = (x, d) => x.toFixed(d);
    console.log([process.argv[4].padEnd(14), f(b.file_bytes / 1e6, 1).padStart(9),
      f(b.rss_after_decode_bytes / 1e6, 1).padStart(10), f(b.bound_tokens_per_s, 1).padStart(10),
      f(med(ours), 2).padStart(12), f(med(theirs), 2).padStart(12),
      (f(med(ours) / med(theirs), 2) + "x").padStart(7)].join(" "),
      "  (kvscope", ours.join(", "), "| llama.cpp", theirs.join(", ") + ")");' \
    "$work/bench.json" "${ours[*]}" "${theirs[*]}" "$shape"
  rm -f "$model"
done
