#!/usr/bin/env bash
# The soak (tests/app/tst_soak.cpp) once more on a build with AddressSanitizer, UndefinedBehavior-
# Sanitizer and LeakSanitizer (-DKVSCOPE_SANITIZE=ON, CPU only so that no OpenCL driver's own
# allocations are counted): no invalid access, no undefined behaviour, no leak at exit, RSS flat.
# Run by CTest (label soak) in every ./test.sh.
#
#   tests/deploy/soak_asan.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=${1:?usage: soak_asan.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: soak_asan.sh SOURCE_DIR BUILD_DIR}
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVSCOPE_SANITIZE=ON \
  -DKVSCOPE_OPENCL=OFF >"$build.configure.log" 2>&1 || { tail -20 "$build.configure.log" >&2; exit 1; }
cmake --build "$build" --target tst_soak >"$build.build.log" 2>&1 ||
  { grep -E "error" "$build.build.log" | head -20 >&2; exit 1; }
export QT_QPA_PLATFORM=offscreen HOME="$build/home"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Qt and fontconfig keep a few allocations for the process's lifetime; they are not ours.
export LSAN_OPTIONS=suppressions=$src/tests/deploy/lsan.supp:print_suppressions=0
mkdir -p "$HOME"
"$build/tests/tst_soak"
