#!/usr/bin/env python3
"""The first-token (sink) score of each head on KJV prompts of K consecutive verses.

Usage: sink_on_verses.py KVSCOPE MODEL TEXT [K [N]]
  e.g. resources/models/sink_on_verses.py build/app/kvscope builtin:gqa corpus/kjv-heldout.txt 1 20

Draws N (default 20) random starting lines of TEXT (one verse a line; seed 7), runs
`kvscope heads --json` on K (default 1) consecutive verses from each, and prints the four heads
with the highest mean first-token weight: mean, median and lowest over the N prompts.
"""
import json
import random
import subprocess
import sys

kvscope, model, text = sys.argv[1], sys.argv[2], sys.argv[3]
k = int(sys.argv[4]) if len(sys.argv) > 4 else 1
n = int(sys.argv[5]) if len(sys.argv) > 5 else 20
lines = [line.strip() for line in open(text, encoding="utf-8") if len(line.strip()) > 20]
random.seed(7)
scores = {}
for start in random.sample(range(len(lines) - k), n):
    prompt = " ".join(lines[start:start + k])
    out = subprocess.run([kvscope, "heads", "--model", model, "--backend", "cpu", "--json",
                          "--prompt", prompt],
                         capture_output=True, text=True, check=True).stdout
    for h in json.loads(out)["heads"]:
        scores.setdefault((h["layer"], h["head"]), []).append(h["first"])
for (layer, head), v in sorted(scores.items(), key=lambda x: -sum(x[1]) / len(x[1]))[:4]:
    v = sorted(v)
    print(f"layer {layer}, head {head}: mean {sum(v) / len(v):.3f}, median {v[len(v) // 2]:.3f}, "
          f"lowest {v[0]:.3f}")
