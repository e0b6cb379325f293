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

import torch_common


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="diffusers DiTTransformer2DModel folder")
    ap.add_argument("--input", required=True, help="safetensors file with x, t, y")
    torch_common.add_args(ap)
    torch_common.add_inference_args(ap)
    a = ap.parse_args()
    torch_common.check_inference_args(ap, a)
    return a


def main():
    args = parse_args()
    torch, diffusers, load_file, save_file = torch_common.import_diffusers(args, "torch_ref")
    dev = args.device
    model = diffusers.DiTTransformer2DModel.from_pretrained(args.model, torch_dtype=torch.float32).eval().to(dev)
    io = load_file(args.input)
    x = io["x"].to(torch.float32).contiguous().to(dev)
    t = io["t"].to(torch.float32).to(dev)
    y = io["y"].round().to(torch.long).to(dev)

    captured = {}
    model.proj_out_2.register_forward_hook(lambda mod, inp, out: captured.__setitem__("tok", out))

    _, timing = torch_common.time_runs(torch, args, lambda: model(x, timestep=t, class_labels=y))

    if args.output:
        p = model.config.patch_size
        cout = model.out_channels
        B, _, H, W = x.shape
        gh, gw = H // p, W // p
        tok = captured["tok"].reshape(B, gh, gw, p, p, cout)
        out = torch.einsum("nhwpqc->nchpwq", tok).reshape(B, cout, gh * p, gw * p)
        save_file({"out": out.to(torch.float32).cpu().contiguous()}, args.output)

    timing["diffusers"] = diffusers.__version__
    print(json.dumps(timing))


if __name__ == "__main__":
    main()
