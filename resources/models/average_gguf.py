#!/usr/bin/env python3
"""Averages the weights of GGUF models that share one layout, all tensors float32.

Usage: average_gguf.py OUT.gguf IN1.gguf IN2.gguf ...

The models must be the same file but for their tensor data (as `kvscope train` writes snapshots
of one run at different steps): OUT is the first file's header and metadata with every weight
the mean of the inputs' (averaging the last checkpoints of a run at its low learning rate,
"stochastic weight averaging", Izmailov et al. 2018). Python's standard library only.
"""
import struct
import sys
from array import array

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def data_start(b):
    """The offset of the tensor data: after the header, metadata and tensor infos, aligned."""
    off = 4

    def read(fmt):
        nonlocal off
        (v,) = struct.unpack_from(fmt, b, off)
        off += struct.calcsize(fmt)
        return v

    def read_str():
        nonlocal off
        n = read("<Q")
        off += n
        return b[off - n:off].decode()

    def read_value(t):
        nonlocal off
        if t == 8:
            return read_str()
        if t == 9:
            et, n = read("<I"), read("<Q")
            return [read_value(et) for _ in range(n)]
        off += SIZES[t]
        return b[off - SIZES[t]:off]

    if b[:4] != b"GGUF":
        sys.exit("not a GGUF file")
    read("<I")  # version
    n_tensors, n_kv = read("<Q"), read("<Q")
    align = 32
    for _ in range(n_kv):
        key, t = read_str(), read("<I")
        v = read_value(t)
        if key == "general.alignment":
            align = struct.unpack("<I", v)[0]
    for _ in range(n_tensors):
        name = read_str()
        dims = read("<I")
        for _ in range(dims):
            read("<Q")
        if read("<I") != 0:
            sys.exit(f"tensor {name} is not float32")
        read("<Q")  # offset
    return (off + align - 1) // align * align


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    files = [open(p, "rb").read() for p in sys.argv[2:]]
    start = data_start(files[0])
    for p, f in zip(sys.argv[2:], files):
        if len(f) != len(files[0]) or f[:start] != files[0][:start]:
            sys.exit(f"{p}: not the same layout and metadata as {sys.argv[2]}")
    n = (len(files[0]) - start) // 4
    total = [0.0] * n
    for f in files:
        a = array("f")
        a.frombytes(f[start:start + 4 * n])
        total = [x + y for x, y in zip(total, a)]
    mean = array("f", [x / len(files) for x in total]).tobytes()
    with open(sys.argv[1], "wb") as out:
        out.write(files[0][:start] + mean + files[0][start + len(mean):])
    print(f"{sys.argv[1]}: the mean of {len(files)} models ({n} floats)")


main()
