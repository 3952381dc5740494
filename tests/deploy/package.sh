#!/usr/bin/env bash
# What installing KVScope gives, checked from a build folder (run by CTest as `package`):
#  - cmake --install puts bin/kvscope, the desktop entry, the AppStream metainfo (valid to
#    appstreamcli), the icon (SVG and PNG sizes), the man page and the models under the prefix;
#  - cpack builds a .deb whose Depends are Debian 12 runtime packages (each one installed here,
#    so each name exists) and that recommends PoCL;
#  - the .deb's files, unpacked into an empty folder, run: --version, info on the shipped model
#    and a headless export.
# (Installing the .deb with apt into a bare Debian 12 root is tests/deploy/fresh_machine.sh's
# job: it needs debootstrap and minutes.)
#
#   tests/deploy/package.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: package.sh BUILD_DIR}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "package: $*" >&2; exit 1; }

# 1. cmake --install
cmake --install "$build" --prefix "$work/prefix" >/dev/null
for f in bin/kvscope share/applications/io.github.kvscope.KVScope.desktop \
         share/metainfo/io.github.kvscope.KVScope.metainfo.xml \
         share/icons/hicolor/scalable/apps/kvscope.svg share/man/man1/kvscope.1 \
         share/kvscope/models/kvscope-tiny.gguf; do
  [ -s "$work/prefix/$f" ] || fail "cmake --install did not write $f"
done
for n in 16 32 48 64 128 256; do
  png=$work/prefix/share/icons/hicolor/${n}x${n}/apps/kvscope.png
  [ -s "$png" ] || fail "no ${n}x${n} icon"
  # the PNG's own header says its size (bytes 16-23: width, height)
  size=$(od -An -tu1 -j16 -N8 "$png" | awk '{print $3*256+$4 "x" $7*256+$8}')
  [ "$size" = "${n}x${n}" ] || fail "the ${n}x${n} icon is $size"
done
appstreamcli validate --no-net "$work/prefix/share/metainfo/io.github.kvscope.KVScope.metainfo.xml" \
  >/dev/null || fail "appstreamcli rejects the metainfo"
grep -q '^Exec=kvscope$' "$work/prefix/share/applications/io.github.kvscope.KVScope.desktop" ||
  fail "the desktop entry does not run kvscope"
man=$work/prefix/share/man/man1/kvscope.1
head -1 "$man" | grep -q '^\.TH KVSCOPE 1' || fail "kvscope.1 is no man page"
for c in info devices decode memory export heads eval train bench; do
  grep -q "^\.SS $c\$" "$man" || fail "the man page has no section for '$c'"
done

# 2. the .deb
(cd "$work" && cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/deb" >/dev/null)
deb=$(ls "$work"/deb/kvscope_*.deb) || fail "cpack made no .deb"
depends=$(dpkg-deb -f "$deb" Depends)
for need in libqt6widgets6 libqt6charts6 libqt6svg6 libclblast1 ocl-icd-libopencl1; do
  [[ $depends == *"$need"* ]] || fail "the .deb does not depend on $need: $depends"
done
while read -r pkg; do
  pkg=${pkg%% *}
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    fail "the .deb depends on '$pkg', which is not an installed Debian package here"
done < <(echo "$depends" | tr ',' '\n' | sed 's/^ *//')
[ "$(dpkg-deb -f "$deb" Recommends)" = "pocl-opencl-icd" ] || fail "the .deb does not recommend PoCL"
contents=$(dpkg-deb -c "$deb")
grep -q '\./usr/bin/kvscope$' <<<"$contents" || fail "the .deb has no usr/bin/kvscope"

# 3. the unpacked files run
dpkg-deb -x "$deb" "$work/root"
bin=$work/root/usr/bin/kvscope
version=$("$bin" --version)
[[ $version == "kvscope "[0-9]* ]] || fail "--version says '$version'"
info=$("$bin" info --model "$work/root/usr/share/kvscope/models/kvscope-tiny.gguf") ||
  fail "kvscope info on the shipped model failed"
grep -q 'layers' <<<"$info" || fail "kvscope info printed no layers: $info"
QT_QPA_PLATFORM=offscreen "$bin" export --prompt "In the beginning" --steps 2 --views attention \
  --size 400x300 --out "$work/figures" >/dev/null 2>&1 || fail "the installed kvscope cannot export"
[ -s "$work/figures/attention.png" ] || fail "the installed kvscope wrote no figure"
echo "package: install, .deb ($version) and the unpacked binary are fine"
