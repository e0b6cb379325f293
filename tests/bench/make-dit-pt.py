#!/usr/bin/env python3
"""Writes a DiT-XL/2 checkpoint in the official layout as torch.save does
(a zip: archive/data.pkl, one archive/data/N per tensor, archive/version),
with the Python standard library only: the pickle is written opcode by
opcode, the way torch writes a state dict of tensors. Weights are a fixed
pattern, not trained: for loader and layout tests.

usage: make-dit-pt.py OUT.pt RESOLUTION(256|512) DEPTH
"""
import struct
import sys
import zipfile


def state_dict(res, depth):
    D, p, C, F, classes = 1152, 2, 4, 256, 1000
    T = (res // 8 // p) ** 2
    t = [("x_embedder.proj.weight", (D, C, p, p)), ("x_embedder.proj.bias", (D,)),
         ("t_embedder.mlp.0.weight", (D, F)), ("t_embedder.mlp.0.bias", (D,)),
         ("t_embedder.mlp.2.weight", (D, D)), ("t_embedder.mlp.2.bias", (D,)),
         ("y_embedder.embedding_table.weight", (classes + 1, D)), ("pos_embed", (1, T, D))]
    for i in range(depth):
        b = f"blocks.{i}."
        t += [(b + "attn.qkv.weight", (3 * D, D)), (b + "attn.qkv.bias", (3 * D,)),
              (b + "attn.proj.weight", (D, D)), (b + "attn.proj.bias", (D,)),
              (b + "mlp.fc1.weight", (4 * D, D)), (b + "mlp.fc1.bias", (4 * D,)),
              (b + "mlp.fc2.weight", (D, 4 * D)), (b + "mlp.fc2.bias", (D,)),
              (b + "adaLN_modulation.1.weight", (6 * D, D)), (b + "adaLN_modulation.1.bias", (6 * D,))]
    t += [("final_layer.linear.weight", (p * p * 2 * C, D)), ("final_layer.linear.bias", (p * p * 2 * C,)),
          ("final_layer.adaLN_modulation.1.weight", (2 * D, D)),
          ("final_layer.adaLN_modulation.1.bias", (2 * D,))]
    return t


def unicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def integer(n):
    return b"J" + struct.pack("<i", n)


def pickle(tensors):
    out = [b"\x80\x02", b"}", b"("]  # PROTO 2, EMPTY_DICT, MARK
    for key, (name, shape) in enumerate(tensors):
        numel = 1
        for d in shape:
            numel *= d
        stride, acc = [], 1
        for d in reversed(shape):
            stride.insert(0, acc)
            acc *= d
        out += [unicode(name), b"ctorch._utils\n_rebuild_tensor_v2\n", b"(",
                b"(", unicode("storage"), b"ctorch\nFloatStorage\n", unicode(str(key)),
                unicode("cpu"), integer(numel), b"t", b"Q",  # persistent id
                integer(0), b"(" + b"".join(integer(d) for d in shape) + b"t",
                b"(" + b"".join(integer(s) for s in stride) + b"t",
                b"\x89", b"ccollections\nOrderedDict\n", b")", b"R",  # False, OrderedDict()
                b"t", b"R"]
    out += [b"u", b"."]  # SETITEMS, STOP
    return b"".join(out)


def main():
    out, res, depth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tensors = state_dict(res, depth)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle(tensors))
        for key, (name, shape) in enumerate(tensors):
            numel = 1
            for d in shape:
                numel *= d
            # a small pattern that varies along each row: finite, not constant
            row = struct.pack("<8f", 0.01, -0.02, 0.015, 0.0, -0.01, 0.02, -0.005, 0.005)
            data = (row * (numel // 8 + 1))[:4 * numel]
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", b"3\n")


if __name__ == "__main__":
    main()
