#!/usr/bin/env python3
"""diffusers' cache hooks on a DiT, for bench-cache (README, Fewer FLOPs).

    torch_cache_ref.py --model DIR --vae VAE --steps N --threads N

DiTTransformer2DModel is not a CacheMixin (no enable_cache), but the hooks
attach to its transformer_blocks: first-block cache (FirstBlockCacheConfig,
its context set by hand around the pipeline call, as CacheMixin's
cache_context would) and pyramid attention broadcast (the timestep taken
from each forward's arguments). Every run is DiTPipeline itself (DDIM, CFG
4, class 207, seed 0, the VAE's decode); each hook's image is compared with
diffusers' own full run (PSNR), and so is plain DDIM with the steps that
fit the same time.
Prints one JSON line; exits 3 when torch or diffusers is missing.
"""
import argparse
import json
import math

import torch_common


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--vae", required=True, help="diffusers AutoencoderKL folder")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--class-id", type=int, default=207)
    torch_common.add_args(ap)
    args = ap.parse_args()
    torch, diffusers, _, _ = torch_common.import_diffusers(args, "torch_cache_ref")
    from diffusers.hooks import (FirstBlockCacheConfig, PyramidAttentionBroadcastConfig,
                                 apply_first_block_cache, apply_pyramid_attention_broadcast)
    from diffusers.hooks.hooks import CacheContext, _set_cache_context

    def load():
        return diffusers.DiTTransformer2DModel.from_pretrained(
            args.model, torch_dtype=torch.float32).eval()

    state = {"t": 1000}
    vae = diffusers.AutoencoderKL.from_pretrained(args.vae, torch_dtype=torch.float32).eval()

    def sample(model, steps, hooked):
        """DiTPipeline itself: seed 0, class 207, CFG 4; an image and seconds"""
        sched = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear",
                                        beta_start=0.0001, beta_end=0.02)
        pipe = diffusers.DiTPipeline(transformer=model, vae=vae, scheduler=sched)
        pipe.set_progress_bar_config(disable=True)
        if hooked:  # what CacheMixin.cache_context would do around the loop
            _set_cache_context(model, CacheContext("dit"))
        gen = torch.Generator().manual_seed(0)
        t0 = torch_common.clock(torch, "cpu")
        with torch.inference_mode():
            img = pipe(class_labels=[args.class_id], guidance_scale=4.0, num_inference_steps=steps,
                       generator=gen, output_type="np").images
        s = (torch_common.clock(torch, "cpu") - t0) / 1000.0
        if hooked:
            _set_cache_context(model, None)
        return torch.from_numpy(img).double(), s

    def psnr(a, b):  # images in [0, 1]
        mse = float(((a - b) ** 2).mean())
        return round(10 * math.log10(1.0 / mse), 1) if mse > 0 else 99.0

    def with_timestep(model):  # pyramid attention broadcast asks for the current timestep
        def pre(_mod, _args, kwargs):
            state["t"] = int(kwargs["timestep"].flatten()[0])
        model.register_forward_pre_hook(pre, with_kwargs=True)
        return model

    base = load()
    sample(base, 2, False)  # warm-up
    full, full_s = sample(base, args.steps, False)
    _, one_s = sample(base, 1, False)
    per_step = (full_s - one_s) / (args.steps - 1)
    rows = [{"name": "full", "steps": args.steps, "s": round(full_s, 2)}]
    hooks = [("first-block cache 0.05", lambda m: apply_first_block_cache(
                 m, FirstBlockCacheConfig(threshold=0.05))),
             ("first-block cache 0.1", lambda m: apply_first_block_cache(
                 m, FirstBlockCacheConfig(threshold=0.1))),
             ("pyramid attention broadcast 2", lambda m: apply_pyramid_attention_broadcast(
                 m, PyramidAttentionBroadcastConfig(
                     spatial_attention_block_skip_range=2,
                     spatial_attention_timestep_skip_range=(100, 800),
                     current_timestep_callback=lambda: state["t"])))]
    for name, apply in hooks:
        model = with_timestep(load())
        apply(model)
        img, s = sample(model, args.steps, True)
        eq = max(1, min(args.steps, round((s - one_s) / per_step + 1)))
        few, few_s = sample(base, eq, False)
        rows.append({"name": name, "steps": args.steps, "s": round(s, 2),
                     "speedup": round(full_s / s, 2), "psnr": psnr(img, full),
                     "fewer_steps_same_time": eq, "fewer_s": round(few_s, 2),
                     "fewer_psnr": psnr(few, full)})
    print(json.dumps({"rows": rows, "threads": args.threads, "torch": torch.__version__,
                      "diffusers": diffusers.__version__}))


if __name__ == "__main__":
    main()
