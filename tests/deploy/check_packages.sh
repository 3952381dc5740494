#!/usr/bin/env bash
# A fast stand-in for fresh_machine.sh, run by CTest in every test run: every file that the configure
# step found (each CMake package's config file, each library, header and tool in the CMake cache)
# must belong to a Debian package that run.sh installs, or to a hard dependency (Depends or
# Pre-Depends, followed to the end) of one. A file that came only from a recommended package, from a
# package installed by hand, or from no package at all fails the check with the package to add.
#
#   tests/deploy/check_packages.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: check_packages.sh BUILD_DIR}
cache=$build/CMakeCache.txt
[ -f "$cache" ] || { echo "check_packages: no $cache (configure first)" >&2; exit 2; }

# run.sh's package list, read from run.sh itself so the two cannot drift. (test.sh's
# llamacpp_packages, nodejs and npm for the llama.cpp parity test alone, stay outside it: the
# configure step finds node without a cache entry, so no file checked here comes from them.)
eval "$(sed -n '/^packages=(/,/)/p' "$root/run.sh")"
((${#packages[@]})) || { echo "check_packages: no packages=(...) list in run.sh" >&2; exit 2; }

# Every installed package: name, what it provides, and its hard dependencies.
declare -A installed=() provider=() deps=()
# (Fields split on \x1f, not tabs: bash folds runs of a whitespace separator, so an empty field would
# shift the rest.)
us=$'\x1f'
while IFS=$us read -r name status provides predepends depends; do
  [[ $status == *" installed" ]] || continue
  installed[$name]=1
  deps[$name]="$predepends, $depends"
  IFS=',' read -ra prov <<<"$provides"
  for p in "${prov[@]}"; do
    p=${p%%(*}; p=${p// /}
    [ -n "$p" ] && provider[$p]+="$name "
  done
done < <(dpkg-query -W -f="\${binary:Package}$us\${Status}$us\${Provides}$us\${Pre-Depends}$us\${Depends}\n" |
  sed "s/:[a-z0-9]*$us/$us/")

# The closure: a dependency is met by each installed alternative or provider of it.
declare -A closure=()
queue=()
for p in "${packages[@]}"; do
  [ -n "${installed[$p]:-}" ] || { echo "check_packages: run.sh's package $p is not installed" >&2; exit 1; }
  closure[$p]=1; queue+=("$p")
done
while ((${#queue[@]})); do
  p=${queue[0]}; queue=("${queue[@]:1}")
  IFS=',|' read -ra alts <<<"${deps[$p]:-}"
  for d in "${alts[@]}"; do
    d=${d%%(*}; d=${d%%[*}; d=${d// /}; d=${d%%:*}
    [ -n "$d" ] || continue
    for q in $d ${provider[$d]:-}; do
      if [ -n "${installed[$q]:-}" ] && [ -z "${closure[$q]:-}" ]; then closure[$q]=1; queue+=("$q"); fi
    done
  done
done

# The files the configure step relied on.
files=()
while IFS='=' read -r key value; do
  name=${key%%:*}
  case $value in /*) ;; *) continue ;; esac
  [ -e "$value" ] || continue
  case $name in
    CMAKE_INSTALL_*) continue ;;
    # Probed by CMake's FindOpenGL on Qt's behalf, never linked: absent on a fresh machine.
    OPENGL_glu_LIBRARY | OPENGL_xmesa_INCLUDE_DIR) continue ;;
    *_INCLUDE_DIR) continue ;; # a shared folder (/usr/include); the headers come with the library
    *_DIR)
      pkg=${name%_DIR}
      cfg=$value/${pkg}Config.cmake
      [ -f "$cfg" ] || cfg=$value/${pkg,,}-config.cmake
      [ -f "$cfg" ] || cfg=$(find "$value" -maxdepth 1 \( -name '*Config.cmake' -o -name '*-config.cmake' \) | head -1)
      [ -n "$cfg" ] && files+=("$name=$cfg") ;;
    *) [ -f "$value" ] && files+=("$name=$value") ;;
  esac
done < <(grep -E '^[A-Za-z0-9_]+:(PATH|FILEPATH)=' "$cache")

bad=0
for entry in "${files[@]}"; do
  name=${entry%%=*}; file=$(readlink -f "${entry#*=}")
  owner=$(dpkg-query -S "$file" 2>/dev/null | head -1 | cut -d: -f1 | cut -d, -f1 || true)
  if [ -z "$owner" ]; then
    echo "check_packages: $name = $file belongs to no Debian package" >&2; bad=1
  elif [ -z "${closure[$owner]:-}" ]; then
    echo "check_packages: $name = $file is in $owner, which run.sh neither installs nor depends on: add $owner to run.sh's packages" >&2
    bad=1
  fi
done
echo "check_packages: ${#files[@]} files from the configure step, ${#closure[@]} packages in run.sh's closure"
exit $bad
