#!/usr/bin/env bash
# Builds KVScope and runs it: ./run.sh [kvscope arguments]
# On a fresh Debian 12 machine it first installs what it needs (compiler, CMake, Qt 6, Eigen,
# OpenCL, CLBlast) with apt-get, through sudo when not root. Later runs build incrementally.
# KVSCOPE_BUILD_ONLY=1 stops after the build (test.sh uses it); KVSCOPE_BUILD_DIR picks the folder.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${KVSCOPE_BUILD_DIR:-$root/build}

# The whole list, for --no-install-recommends: qt6-charts-dev's CMake files need Qt6OpenGL's
# (libqt6opengl6-dev, only recommended by qt6-base-dev); exports and views need a font; the fuzz
# targets (tests/fuzz) need clang and its libFuzzer and sanitizer runtimes; the package test
# validates the AppStream metainfo with appstream's appstreamcli.
# tests/fresh_machine.sh proves the list on a bare Debian 12 root; tests/check_packages.sh (run by
# test.sh) checks that every CMake package the configure step read belongs to one of them.
packages=(build-essential cmake ninja-build git pkg-config
          qt6-base-dev qt6-charts-dev qt6-svg-dev libqt6opengl6-dev libeigen3-dev
          libclblast-dev ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo
          fonts-dejavu-core clang libclang-rt-14-dev appstream)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "kvscope: installing Debian packages: ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" --parallel "$(nproc)"

if [ "${KVSCOPE_BUILD_ONLY:-0}" = 1 ]; then exit 0; fi
exec "$build/app/kvscope" "$@"
