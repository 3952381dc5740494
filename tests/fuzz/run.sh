#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for SECONDS from the committed
# seed corpus (tests/fuzz/corpus/TARGET), then replays every crash input kept in
# tests/fuzz/regressions/TARGET as a regression test. New findings are written to
# BUILD/findings/TARGET/ and fail the run.
#
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]      (default 20 seconds each, build-fuzz/)
#   tests/fuzz/run.sh 3600                       a long run: an hour per target
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
seconds=${1:-20}
build=${2:-$here/../../build-fuzz}
export CXX=${CXX:-clang++}
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log" 2>&1 ||
  { tail -20 "$build.configure.log" >&2; exit 1; }
cmake --build "$build" >"$build.build.log" 2>&1 || { grep -E "error" "$build.build.log" | head -20 >&2; exit 1; }

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for target in gguf tokenizer session; do
  work=$build/corpus/$target
  findings=$build/findings/$target
  mkdir -p "$work" "$findings"
  # regressions first: every kept input must pass
  if [ -d "$here/regressions/$target" ] && ls "$here/regressions/$target"/* >/dev/null 2>&1; then
    "$build/fuzz_$target" -runs=1 "$here/regressions/$target"/* >"$build/$target.regressions.log" 2>&1 ||
      { echo "fuzz: a regression input of $target fails again:" >&2; tail -30 "$build/$target.regressions.log" >&2; status=1; }
  fi
  log=$build/$target.log
  if "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -artifact_prefix="$findings/" -print_final_stats=1 \
      "$work" "$here/corpus/$target" >"$log" 2>&1; then
    execs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
    echo "fuzz: $target: $execs executions in ${seconds}s, nothing found"
  else
    echo "fuzz: $target FOUND something (inputs in $findings):" >&2
    grep -E "ERROR|SUMMARY|runtime error" "$log" | head -10 >&2
    status=1
  fi
done
exit $status
