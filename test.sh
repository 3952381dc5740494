#!/usr/bin/env bash
# Builds KVScope (installing missing Debian packages first, as run.sh does) and runs every test.
# Needs no display: Qt runs on its offscreen platform.
#
# The llama.cpp parity test (tests/llamacpp, CTest label llamacpp) needs node >= 20 and llama.cpp's
# prebuilt binaries from npm (node-llama-cpp 3.22.1): installed here into $build/llamacpp, nodejs
# and npm with apt-get when npm is missing and apt offers node >= 20. When that cannot be done (no
# network, an older node: Debian 12's is 18) this says why and the other tests run without it.
# KVSCOPE_NO_LLAMACPP=1 skips that step.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${KVSCOPE_BUILD_DIR:-$root/build}

llamacpp_version=3.22.1
llamacpp_packages=(nodejs npm)  # apt packages for the llamacpp label only (not in run.sh's list)
llamacpp_note() { echo "kvscope: llama.cpp parity test (ctest -L llamacpp): $*" >&2; }
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
# Why node 18 cannot: node-llama-cpp declares engines node >= 20, and it does not load there: its
# dependency string-width 8 (through ora) has a regular expression with the v flag, a
# SyntaxError before node 20.
too_old="node-llama-cpp $llamacpp_version needs node >= 20 (on node 18 it fails to load:"
too_old+=" its dependency string-width 8 uses a regular expression with the v flag)"

# Returns 0 when $build/llamacpp holds node-llama-cpp and node can run it; 1 (having said why)
# otherwise. Never fails the script.
setup_llamacpp() {
  local prefix=$build/llamacpp
  if ! command -v npm >/dev/null; then
    local sudo="" candidate major
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
    candidate=$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
      $sudo apt-get update -q >/dev/null 2>&1 || true
      candidate=$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}')
    fi
    major=${candidate#*:}
    major=${major%%.*}
    if ! [[ $major =~ ^[0-9]+$ ]]; then
      llamacpp_note "not configured: npm is missing and apt offers no nodejs package"
      return 1
    fi
    if ((major < 20)); then
      llamacpp_note "not configured: npm is missing and apt's nodejs is $candidate; $too_old." \
        "Install node >= 20 (e.g. from NodeSource) and run ./test.sh again"
      return 1
    fi
    # (NodeSource's nodejs bundles npm and conflicts with Debian's npm package: npm only if still
    # missing.)
    echo "kvscope: installing Debian packages for the llamacpp label: ${llamacpp_packages[*]}" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends nodejs ||
      { llamacpp_note "not configured: apt-get install nodejs failed"; return 1; }
    if ! command -v npm >/dev/null; then
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends npm ||
        { llamacpp_note "not configured: apt-get install npm failed"; return 1; }
    fi
  fi
  if (($(node_major) < 20)); then
    llamacpp_note "not configured: node is $(node --version 2>/dev/null); $too_old"
    return 1
  fi
  if [ -f "$prefix/node_modules/node-llama-cpp/package.json" ]; then return 0; fi

  # Only the linux-x64 CPU binaries (85 MB installed; with its optional packages, the CUDA and
  # Vulkan builds for every platform, node-llama-cpp takes 725 MB). NODE_LLAMA_CPP_SKIP_DOWNLOAD:
  # its postinstall neither downloads nor builds llama.cpp (the test never builds: build "never").
  local start=$SECONDS
  mkdir -p "$prefix"
  echo "kvscope: installing llama.cpp (node-llama-cpp $llamacpp_version) into $prefix" >&2
  if ! NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --prefix "$prefix" --no-audit --no-fund \
    --save-exact --omit=optional "node-llama-cpp@$llamacpp_version" \
    "@node-llama-cpp/linux-x64@$llamacpp_version" >"$prefix/npm-install.log" 2>&1; then
    llamacpp_note "not configured: npm install failed (no network?), see $prefix/npm-install.log:"
    grep -m 4 -E '^npm (error|ERR!) (code|[A-Z][a-zA-Z]*Error|network|notarget)' \
      "$prefix/npm-install.log" | sed 's/^/    /' >&2 || true
    return 1
  fi
  llamacpp_note "installed in $((SECONDS - start)) s, $(du -sh "$prefix/node_modules" | cut -f1)"
  # A build folder configured before the install has not registered the test: configure again.
  if [ -f "$build/CMakeCache.txt" ]; then cmake -S "$root" -B "$build" >/dev/null; fi
}
if [ "${KVSCOPE_NO_LLAMACPP:-0}" != 1 ]; then
  setup_llamacpp || true
fi

KVSCOPE_BUILD_ONLY=1 "$root/run.sh"
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
cd "$build"
ctest --output-on-failure --parallel "$(nproc)" "$@"
