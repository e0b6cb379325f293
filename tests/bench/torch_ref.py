#!/usr/bin/env python3
"""PyTorch/diffusers reference timing for the gimp-dit DiT benchmark.

    torch_ref.py --model DIR --input FILE --threads N [--warmup 1] [--iters 3]
                 [--output OUT.safetensors] [--device cpu|cuda] [--precision fp32|tf32|bf16]

DIR   a diffusers DiTTransformer2DModel folder (config.json +
      diffusion_pytorch_model.safetensors).
FILE  safetensors with x (B,C,H,W), t (B) and y (B, integer values stored as
      float), as in tests/golden/*.io.safetensors.

Prints one JSON line on stdout:
    {"ms": median, "ms_min": min, "threads": N, "device": ..., "precision": ...,
     "torch": ..., "diffusers": ...}
and, with --output, writes the last forward's output as `out` (F32).
Exits 3 with a one-line reason on stderr when torch or diffusers is missing.

diffusers' own unpatchify assumes a square token grid (for a non-square input
it silently returns a tensor of the wrong shape), so the output is taken from
the final projection and unpatchified for the real grid; the timed call is
still the unmodified diffusers forward.
"""
import argparse
import json
import statistics

import torch_common


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="diffusers DiTTransformer2DModel folder")
    ap.add_argument("--input", required=True, help="safetensors file with x, t, y")
    torch_common.add_args(ap)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--output", help="write the last output as `out` (F32) here")
    a = ap.parse_args()
    if a.threads < 1 or a.iters < 1 or a.warmup < 0:
        ap.error("--threads and --iters must be >= 1, --warmup >= 0")
    return a


def main():
    args = parse_args()
    torch = torch_common.import_torch(args, "torch_ref", "/diffusers/safetensors")
    try:
        import diffusers
        from diffusers import DiTTransformer2DModel
        from safetensors.torch import load_file, save_file
    except Exception as e:
        torch_common.fail_import("torch_ref", "diffusers/safetensors", e)
    diffusers.utils.logging.set_verbosity_error()

    dev = args.device
    model = DiTTransformer2DModel.from_pretrained(args.model, torch_dtype=torch.float32).eval().to(dev)
    io = load_file(args.input)
    x = io["x"].to(torch.float32).contiguous().to(dev)
    t = io["t"].to(torch.float32).to(dev)
    y = io["y"].round().to(torch.long).to(dev)

    captured = {}
    model.proj_out_2.register_forward_hook(lambda mod, inp, out: captured.__setitem__("tok", out))

    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.iters):
            t0 = torch_common.clock(torch, dev)
            model(x, timestep=t, class_labels=y)
            dt = torch_common.clock(torch, dev) - t0
            if i >= args.warmup:
                times.append(dt)

    if args.output:
        p = model.config.patch_size
        cout = model.out_channels
        B, _, H, W = x.shape
        gh, gw = H // p, W // p
        tok = captured["tok"].reshape(B, gh, gw, p, p, cout)
        out = torch.einsum("nhwpqc->nchpwq", tok).reshape(B, cout, gh * p, gw * p)
        save_file({"out": out.to(torch.float32).cpu().contiguous()}, args.output)

    print(json.dumps({"ms": round(statistics.median(times), 4), "ms_min": round(min(times), 4),
                      "threads": args.threads, "device": dev, "precision": args.precision,
                      "torch": torch.__version__,
                      "diffusers": diffusers.__version__}))


if __name__ == "__main__":
    main()
