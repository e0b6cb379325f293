#!/usr/bin/env python3
"""Peak resident memory of a DiT-XL/2 inpaint at 256x256 (seeded weights in
the real layouts: a facebook/DiT-XL-2-256-style pipeline folder with an
SD-VAE), fp32 against bf16 on the CPU, each in its own process (the peak of
that process, from wait4). With bf16 the matrices are held in bf16 only, so
the run should need at most 60% of the fp32 run's memory.

usage: bench-memory.py DIT MAKE_PHOTO_MODELS"""
import os
import struct
import subprocess
import sys
import tempfile
import zlib


def write_png(path, width, height, channels, pixel):
    """8-bit gray (1) or RGB (3) PNG; pixel(x, y) gives a tuple of channels"""
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows.extend(pixel(x, y))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    colour = {1: 0, 3: 2}[channels]
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(bytes(rows))))
        f.write(chunk(b"IEND", b""))


def peak_mib(argv):
    """runs argv; its peak resident memory in MiB, or None when it failed"""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(f"  {' '.join(argv[1:3])}...: exit {proc.returncode}: {err}")
        return None
    return usage.ru_maxrss / 1024.0


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    dit, make_models = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="dit-bench-memory-") as tmp:
        print("writing DiT-XL/2 (28 blocks) and an SD-VAE, seeded, into", tmp, flush=True)
        subprocess.run([make_models, tmp, "28"], check=True)
        src, mask = os.path.join(tmp, "src.png"), os.path.join(tmp, "mask.png")
        write_png(src, 256, 256, 3, lambda x, y: ((x * 7) & 255, (y * 5) & 255, (x ^ y) & 255))
        write_png(mask, 256, 256, 1, lambda x, y: (255 if 64 <= x < 192 and 64 <= y < 192 else 0,))
        peaks = {}
        for precision in ("fp32", "bf16"):
            out = os.path.join(tmp, f"out-{precision}.png")
            peaks[precision] = peak_mib([dit, "inpaint", "-m", os.path.join(tmp, "DiT-XL-2-256"),
                                         "-i", src, "--mask", mask, "--class", "207", "--steps",
                                         "2", "--precision", precision, "-q", "-o", out])
            if peaks[precision] is not None:
                print(f"DiT-XL/2 inpaint 256x256, precision {precision}: peak RSS "
                      f"{peaks[precision]:.0f} MiB", flush=True)
        if peaks["fp32"] and peaks["bf16"]:
            ratio = peaks["bf16"] / peaks["fp32"]
            print(f"bf16 / fp32 peak RSS: {100 * ratio:.0f}% (target <= 60%): "
                  f"{'met' if ratio <= 0.6 else 'NOT MET'}")
        else:
            print("bf16 did not run here (dit info --device says why): no ratio")


if __name__ == "__main__":
    main()
