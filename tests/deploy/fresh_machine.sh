#!/usr/bin/env bash
# Proves the README's commands on a bare Debian 12: builds a minimal bookworm root with debootstrap
# (no compiler, no CMake, no Qt), copies this checkout's tree into it as a clean clone would have it
# (tracked and untracked-but-not-ignored files, no build folder) with ../shared beside it, and runs
# `bash .ci/run` there, which installs its own packages, builds and runs every test. Then the
# .deb that build makes (cpack) is installed with apt into a second bare root and run there.
#
#   sudo tests/deploy/fresh_machine.sh [--keep] [ROOT]      (ROOT: /var/tmp/kvscope-fresh by default)
#
# Run it after every change to the dependencies (packages in run.sh, find_package, a new tool a
# test calls). It takes 20-40 minutes on 2 cores and needs about 3 GB of disk; too slow for every CI
# run, where tests/deploy/check_packages.sh stands in for it. The root is removed afterwards unless
# --keep is given. Exit status: that of .ci/run inside the root (2 for a usage error).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
keep=0
root=/var/tmp/kvscope-fresh
for arg in "$@"; do
  case $arg in
    --keep) keep=1 ;;
    -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fresh_machine.sh: unknown option $arg" >&2; exit 2 ;;
    *) root=$arg ;;
  esac
done
mirror=${KVSCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$@"; fi
if ! command -v debootstrap >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
fi

mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
  if [ "$keep" = 0 ] && [ -d "$root" ]; then rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT

# A root made ready to chroot into: the host's resolver, and /proc, /sys and /dev bound in.
enter_ready() {
  cp /etc/resolv.conf "$1/etc/resolv.conf"
  for m in proc sys dev dev/pts; do
    mkdir -p "$1/$m"
    mount --bind "/$m" "$1/$m"
    mounts+=("$1/$m")
  done
}

rm -rf --one-file-system "$root"
echo "fresh_machine: debootstrap bookworm (minbase) into $root" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
  { tail -20 "$root.debootstrap.log" >&2; exit 1; }
enter_ready "$root"

# The tree as a clean clone of it would be: what git tracks or would track, never build output.
mkdir -p "$root/work/main"
(cd "$src" && git ls-files -z --cached --others --exclude-standard |
  xargs -0 tar --no-recursion -cf - 2>/dev/null) | tar -xf - -C "$root/work/main"
(cd "$root/work/main" && git -C "$src" ls-files -s | awk '$1 == "100755" {print $4}' | xargs -r chmod +x)
if [ -d "$src/../shared" ]; then
  cp -a "$src/../shared" "$root/work/shared"
  chmod -R a-w "$root/work/shared"
fi

echo "fresh_machine: running bash .ci/run inside the root" >&2
set +e
chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb CI=true LANG=C.UTF-8 \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c 'cd /work/main && bash .ci/run' 2>&1 | tee "$root.log"
rc=${PIPESTATUS[0]}
set -e
echo "fresh_machine: .ci/run exited $rc (full log: $root.log)" >&2
[ "$rc" = 0 ] || exit "$rc"

# The .deb that cpack makes from that build, installed with apt into a second bare root
# (tests/deploy/deb_in_bare_root.sh).
echo "fresh_machine: the .deb, installed into a second bare root" >&2
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c 'cd /work/main/build && cpack -G DEB -B /tmp/deb >/dev/null' ||
  { echo "fresh_machine: cpack failed" >&2; exit 1; }
deb=$(ls "$root"/tmp/deb/kvscope_*.deb) || { echo "fresh_machine: cpack made no .deb" >&2; exit 1; }
KVSCOPE_DEBIAN_MIRROR=$mirror bash "$here/deb_in_bare_root.sh" "$deb" "$root-deb"
