#!/bin/bash
# Two kvscope binaries in alternating runs of the same `bench` arguments (a benchmark, not a
# test): a change measured against the binary before it, with the machine's drift falling on
# both. Copy build/app/kvscope aside before the change, rebuild, then:
# usage: tests/bench/ab_binaries.sh OLD NEW ROUNDS bench-options...
#   e.g. tests/bench/ab_binaries.sh /tmp/kvscope-old build/app/kvscope 3 --type q4_k \
#        --cached-only --backend opencl
set -euo pipefail
old=$1 new=$2 rounds=$3
shift 3
for _ in $(seq "$rounds"); do
    for b in "$old" "$new"; do
        echo -n "$b: "
        "$b" bench "$@" 2>&1 | grep -E "opencl cached|device time" | tr '\n' ' ' | tr -s ' '
        echo
    done
done
