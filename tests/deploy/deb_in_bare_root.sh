#!/usr/bin/env bash
# Installs a kvscope .deb with apt into a bare Debian 12 root (debootstrap, minbase: no Qt, no
# OpenCL, nothing of the build), so that its Depends alone must bring what kvscope needs, then
# runs it there: --version, info on the shipped model, and a headless export.
#
#   sudo tests/deploy/deb_in_bare_root.sh KVSCOPE.deb [ROOT]   (ROOT: /var/tmp/kvscope-deb)
#
# tests/deploy/fresh_machine.sh calls it with the .deb of its build. A few minutes (debootstrap
# and the Qt runtime from the mirror); the root is removed afterwards. Exit status: 0 when
# kvscope ran.
set -euo pipefail
deb=$(realpath "${1:?usage: deb_in_bare_root.sh KVSCOPE.deb [ROOT]}")
root=${2:-/var/tmp/kvscope-deb}
mirror=${KVSCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$@"; fi
if ! command -v debootstrap >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
fi

mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
  if [ -d "$root" ]; then rm -rf --one-file-system "$root" || true; fi
}
trap cleanup EXIT

rm -rf --one-file-system "$root"
echo "deb_in_bare_root: debootstrap bookworm (minbase) into $root" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
  { tail -20 "$root.debootstrap.log" >&2; exit 1; }
cp /etc/resolv.conf "$root/etc/resolv.conf"
for m in proc sys dev dev/pts; do
  mkdir -p "$root/$m"
  mount --bind "/$m" "$root/$m"
  mounts+=("$root/$m")
done
cp "$deb" "$root/tmp/kvscope.deb"
echo "deb_in_bare_root: apt-get install ./kvscope.deb, then run it" >&2
chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c 'set -euo pipefail
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/kvscope.deb >/dev/null
    kvscope --version
    kvscope info --model /usr/share/kvscope/models/kvscope-tiny.gguf >/tmp/info.txt
    grep -q layers /tmp/info.txt
    QT_QPA_PLATFORM=offscreen kvscope export --prompt "In the beginning" --steps 2 \
      --views attention --out /tmp/figures >/dev/null
    test -s /tmp/figures/attention.png
    echo "kvscope ran from the .deb in a bare root"'
