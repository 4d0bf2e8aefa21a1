#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus (fuzz/corpus/*): small valid IDX files, plain and gzip,
and small valid checkpoints, following the layouts documented in include/convkit/data/idx.h
and docs/checkpoint_format.md. Run it again after a format change; tests/io checks that
every seed still reads."""
import gzip
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def idx(dims, values):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(values)


def gz(data):
    return gzip.compress(data, mtime=0)


def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def checkpoint(scalar, tensors, texts):
    fmt = "<f" if scalar == 4 else "<d"
    out = b"CVKTCKPT" + struct.pack("<IIQ", 1, scalar, len(tensors) + len(texts))
    for name, dims, values in tensors:
        out += struct.pack("<BI", 1, len(name)) + name.encode() + struct.pack("<B", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims) + b"".join(struct.pack(fmt, v) for v in values)
    for name, value in texts:
        out += struct.pack("<BI", 2, len(name)) + name.encode() + struct.pack("<Q", len(value)) + value.encode()
    return out + struct.pack("<Q", fnv1a(out))


def write(sub, name, data):
    os.makedirs(os.path.join(HERE, sub), exist_ok=True)
    with open(os.path.join(HERE, sub, name), "wb") as f:
        f.write(data)


labels = idx([10], range(10))
images = idx([3, 4, 4], [(i * 37) % 256 for i in range(48)])
four_d = idx([1, 2, 2, 2], range(8))
for name, data in [("labels-idx1", labels), ("images-idx3", images), ("matrix-idx2", idx([2, 3], range(6))),
                   ("four-idx4", four_d), ("empty-idx1", idx([0], []))]:
    write("idx", name, data)
write("idx", "labels-idx1.gz", gz(labels))
write("idx", "images-idx3.gz", gz(images))
write("idx", "two-members.gz", gz(images[:9]) + gz(images[9:]))
# idx_gz: the first byte says where to split the rest into two gzip members (0: one).
for name, split, data in [("images", 0, images), ("labels", 7, labels), ("four", 3, four_d)]:
    write("idx_gz", name, bytes([split]) + data)

write("checkpoint", "float", checkpoint(4, [("conv.weight", [2, 1, 2, 2], [0.5 * i for i in range(8)]),
                                            ("conv.bias", [2], [1.0, -1.0])], [("epoch", "3")]))
write("checkpoint", "double", checkpoint(8, [("fc.weight", [3, 2], [0.25 * i for i in range(6)])],
                                         [("rng", "12 34"), ("meta.model", "lenet5")]))
write("checkpoint", "scalar-and-empty", checkpoint(4, [("s", [], [2.5]), ("e", [0, 3], [])], []))
write("checkpoint", "no-entries", checkpoint(4, [], []))
