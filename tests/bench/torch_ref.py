#!/usr/bin/env python3
"""PyTorch/diffusers reference timing for the gimp-dit DiT benchmark.

    torch_ref.py --model DIR --input FILE --threads N [--warmup 1] [--iters 3]
                 [--output OUT.safetensors] [--device cpu|cuda] [--precision fp32|tf32|bf16]
    torch_ref.py --model DIR --vae VAE --sample-steps N --threads N [--device ...] [--precision ...]

DIR   a diffusers DiTTransformer2DModel folder (config.json +
      diffusion_pytorch_model.safetensors).
FILE  safetensors with x (B,C,H,W), t (B) and y (B, integer values stored as
      float), as in tests/golden/*.io.safetensors.

Prints one JSON line on stdout:
    {"ms": median, "ms_min": min, "threads": N, "device": ..., "precision": ...,
     "torch": ..., "diffusers": ...}
and, with --output, writes the last forward's output as `out` (F32).

With --sample-steps, instead one whole generation through DiTPipeline (DDIM on
the linear schedule, CFG 4, class 207, the VAE folder's decoder), after a
2-step warm-up: {"sample_ms": ..., "steps": N, ...}.
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
    ap.add_argument("--input", help="safetensors file with x, t, y (the forward timing)")
    ap.add_argument("--vae", help="diffusers AutoencoderKL folder (with --sample-steps)")
    ap.add_argument("--sample-steps", type=int, default=0, help="time a whole generation instead")
    torch_common.add_args(ap)
    torch_common.add_inference_args(ap)
    a = ap.parse_args()
    torch_common.check_inference_args(ap, a)
    if not (a.input or (a.sample_steps > 0 and a.vae)):
        ap.error("give --input, or --sample-steps N with --vae")
    return a


def time_sampling(torch, diffusers, args, model):
    vae = diffusers.AutoencoderKL.from_pretrained(args.vae, torch_dtype=torch.float32).eval().to(args.device)
    sched = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear",
                                    beta_start=0.0001, beta_end=0.02)
    pipe = diffusers.DiTPipeline(transformer=model, vae=vae, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    ms = 0.0
    for steps in (2, args.sample_steps):  # warm-up, then the timed run
        gen = torch.Generator(device="cpu").manual_seed(0)
        t0 = torch_common.clock(torch, args.device)
        with torch.inference_mode(), torch_common.autocast(torch, args):
            pipe(class_labels=[207], guidance_scale=4.0, num_inference_steps=steps,
                 generator=gen, output_type="np")
        ms = torch_common.clock(torch, args.device) - t0
    return {"sample_ms": round(ms, 1), "steps": args.sample_steps, "threads": args.threads,
            "device": args.device, "precision": args.precision, "torch": torch.__version__,
            "diffusers": diffusers.__version__}


def main():
    args = parse_args()
    torch, diffusers, load_file, save_file = torch_common.import_diffusers(args, "torch_ref")
    dev = args.device
    model = diffusers.DiTTransformer2DModel.from_pretrained(args.model, torch_dtype=torch.float32).eval().to(dev)
    if args.sample_steps > 0:
        print(json.dumps(time_sampling(torch, diffusers, args, model)))
        return
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
