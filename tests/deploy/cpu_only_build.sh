#!/usr/bin/env bash
# The CPU-only KVScope (-DKVSCOPE_OPENCL=OFF) configures, builds, decodes and says why it has no
# OpenCL device; run by CTest (label cpu-only) in every ./test.sh so that the option cannot rot.
#
#   tests/deploy/cpu_only_build.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=${1:?usage: cpu_only_build.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: cpu_only_build.sh SOURCE_DIR BUILD_DIR}
fail() { echo "cpu_only_build: $*" >&2; exit 1; }

cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVSCOPE_OPENCL=OFF >"$build.configure.log" 2>&1 ||
  { tail -20 "$build.configure.log" >&2; fail "configure failed"; }
cmake --build "$build" --target kvscope tst_decode_session tst_model >"$build.build.log" 2>&1 ||
  { grep -E "error|Error" "$build.build.log" | head -20 >&2; fail "build failed"; }

kvscope=$build/app/kvscope
if ldd "$kvscope" | grep -qi opencl; then fail "the CPU-only binary links OpenCL: $(ldd "$kvscope" | grep -i opencl)"; fi
export QT_QPA_PLATFORM=offscreen
"$build/tests/tst_decode_session" >"$build.tests.log" 2>&1 || { tail -30 "$build.tests.log" >&2; fail "tst_decode_session failed"; }
"$build/tests/tst_model" >>"$build.tests.log" 2>&1 || { tail -30 "$build.tests.log" >&2; fail "tst_model failed"; }
out=$("$kvscope" decode --prompt "In the beginning" --steps 4 --json -) || fail "decode failed"
grep -q '"name": "cpu"' <<<"$out" || grep -q '"name":"cpu"' <<<"$out" || fail "decode did not run on the CPU: $out"
devices=$("$kvscope" devices 2>&1) || true
grep -q "built without OpenCL" <<<"$devices" || fail "devices does not say the build has no OpenCL: $devices"
set +e
err=$("$kvscope" decode --prompt "x" --steps 1 --backend opencl 2>&1 >/dev/null)
code=$?
set -e
[ "$code" = 1 ] || fail "--backend opencl exited $code, not 1"
grep -q "built without OpenCL" <<<"$err" || fail "--backend opencl said: $err"
echo "cpu_only_build: built, decoded on the CPU, no OpenCL linked, devices and --backend opencl explain why"
