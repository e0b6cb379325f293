#!/usr/bin/env python3
"""PyTorch/diffusers reference timing for the gimp-dit VAE decode benchmark.

    torch_vae_ref.py --model DIR --latent FILE --threads N [--warmup 1] [--iters 3]
                     [--output OUT.safetensors] [--tile-sample SIZE]
                     [--device cpu|cuda] [--precision fp32|tf32|bf16]

DIR   a diffusers AutoencoderKL folder (config.json +
      diffusion_pytorch_model.safetensors).
FILE  safetensors with `latent` (B,4,h,w), as in tests/golden/vae_kl.io.safetensors.
      The latent goes to vae.decode() as is: decode() applies post_quant_conv but
      no scaling factor (a pipeline divides by scaling_factor before decode()).

--tile-sample SIZE enables diffusers' tiling with tile_sample_min_size = SIZE,
tile_latent_min_size = SIZE / f and tile_overlap_factor 0.25, where
f = 2 ** (len(block_out_channels) - 1) is the model's downscale factor (8 for
the Stable Diffusion VAE, so SIZE / 8 there). Tiling only kicks in when the
latent is larger than tile_latent_min_size in height or width.

Timed: vae.decode(latent) in float32 under torch.inference_mode().
Prints one JSON line on stdout:
    {"ms": median, "ms_min": min, "threads": N, "device": ..., "precision": ...,
     "torch": ..., "diffusers": ..., "peak_rss_mb": ru_maxrss in MiB}
and, with --output, writes the last decode's output as `out` (F32).
Exits 3 with a one-line reason on stderr when torch or diffusers is missing.
"""
import argparse
import json
import resource
import sys

import torch_common


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="diffusers AutoencoderKL folder")
    ap.add_argument("--latent", required=True, help="safetensors file with `latent` (B,4,h,w)")
    torch_common.add_args(ap)
    torch_common.add_inference_args(ap)
    ap.add_argument("--tile-sample", type=int, metavar="SIZE",
                    help="enable tiling with tile_sample_min_size=SIZE, tile_latent_min_size=SIZE/f, overlap 0.25")
    a = ap.parse_args()
    torch_common.check_inference_args(ap, a)
    if a.tile_sample is not None and a.tile_sample < 1:
        ap.error("--tile-sample must be >= 1")
    return a


def main():
    args = parse_args()
    torch, diffusers, load_file, save_file = torch_common.import_diffusers(args, "torch_vae_ref")
    dev = args.device
    vae = diffusers.AutoencoderKL.from_pretrained(args.model, torch_dtype=torch.float32).eval().to(dev)
    io = load_file(args.latent)
    if "latent" not in io:
        print(f"torch_vae_ref: {args.latent} has no `latent` tensor", file=sys.stderr)
        sys.exit(2)
    z = io["latent"].to(torch.float32).contiguous().to(dev)

    if args.tile_sample is not None:
        f = 2 ** (len(vae.config.block_out_channels) - 1)
        if args.tile_sample % f:
            print(f"torch_vae_ref: --tile-sample {args.tile_sample} is not a multiple of the downscale factor {f}",
                  file=sys.stderr)
            sys.exit(2)
        vae.enable_tiling()
        vae.tile_sample_min_size = args.tile_sample
        vae.tile_latent_min_size = args.tile_sample // f
        vae.tile_overlap_factor = 0.25

    out, timing = torch_common.time_runs(torch, args, lambda: vae.decode(z).sample)

    if args.output:
        save_file({"out": out.to(torch.float32).cpu().contiguous()}, args.output)

    # ru_maxrss is in KiB on Linux (bytes on macOS)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0
    timing["diffusers"] = diffusers.__version__
    timing["peak_rss_mb"] = round(peak_mb, 1)
    print(json.dumps(timing))


if __name__ == "__main__":
    main()
