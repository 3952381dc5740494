#!/usr/bin/env bash
# Writes the built-in model's corpus: the King James Bible (public domain), one verse per line,
# without verse references. It comes from Debian's bible-kjv package (installed if missing).
# Usage: resources/models/make_corpus.sh OUT.txt     (the corpus is never committed)
set -euo pipefail
out=${1:?usage: make_corpus.sh OUT.txt}
if ! command -v bible >/dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q bible-kjv
fi
mkdir -p "$(dirname "$out")"
# -f: one verse per line as "Ge1:1 In the beginning ..."; -l: no line wrapping.
bible -f -l1000000 "Gen1:1-Rev22:21" | sed -E 's/^[^ ]+ //' > "$out"
echo "$out: $(wc -l < "$out") verses, $(wc -c < "$out") bytes" >&2
