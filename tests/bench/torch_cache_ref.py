#!/usr/bin/env python3
"""diffusers' cache hooks on a DiT, for bench-cache (README, Fewer FLOPs).

    torch_cache_ref.py --model DIR --vae VAE --steps N --threads N

DiTTransformer2DModel is not a CacheMixin (no enable_cache), but the hooks
attach to its transformer_blocks: first-block cache (FirstBlockCacheConfig,
the context set by hand as CacheMixin.cache_context would) and pyramid
attention broadcast (the timestep from our loop). The loop is DiTPipeline's
(DDIM, CFG 4 on all latent channels, class 207, seed 0, latents only).
Each hook's run is compared with diffusers' own full run (latent relative
L2), and plain DDIM with the steps that fit the fastest hook's time.
Prints one JSON line; exits 3 when torch or diffusers is missing.
"""
import argparse
import json

import torch_common


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--vae", required=True, help="(its config gives the latent size)")
    ap.add_argument("--steps", type=int, default=50)
    torch_common.add_args(ap)
    args = ap.parse_args()
    torch, diffusers, _, _ = torch_common.import_diffusers(args, "torch_cache_ref")
    from diffusers.hooks import (FirstBlockCacheConfig, HookRegistry,
                                 PyramidAttentionBroadcastConfig, apply_first_block_cache,
                                 apply_pyramid_attention_broadcast)

    def load():
        return diffusers.DiTTransformer2DModel.from_pretrained(
            args.model, torch_dtype=torch.float32).eval()

    state = {"t": 1000}

    def sample(model, steps, hooked):
        sched = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear",
                                        beta_start=0.0001, beta_end=0.02)
        sched.set_timesteps(steps)
        size, ch = model.config.sample_size, model.config.in_channels
        gen = torch.Generator().manual_seed(0)
        lat = torch.randn((1, ch, size, size), generator=gen)
        y = torch.tensor([207, 1000])
        registry = HookRegistry.check_if_exists_or_initialize(model) if hooked else None
        t0 = torch_common.clock(torch, "cpu")
        with torch.inference_mode():
            for t in sched.timesteps:
                state["t"] = int(t)
                x = torch.cat([lat, lat])
                if registry is not None:
                    registry._set_context("cfg")
                out = model(x, timestep=t.expand(2), class_labels=y).sample
                if registry is not None:
                    registry._set_context(None)
                eps = out[:, :ch]
                cond, uncond = eps.chunk(2)
                guided = uncond + 4.0 * (cond - uncond)
                lat = sched.step(guided, t, lat).prev_sample
        return lat, (torch_common.clock(torch, "cpu") - t0) / 1000.0

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    base = load()
    sample(base, 2, False)  # warm-up
    full, full_s = sample(base, args.steps, False)
    one_lat, one_s = sample(base, 1, False)
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
        model = load()
        apply(model)
        lat, s = sample(model, args.steps, True)
        eq = max(1, min(args.steps, round((s - one_s) / per_step + 1)))
        few, few_s = sample(base, eq, False)
        rows.append({"name": name, "steps": args.steps, "s": round(s, 2),
                     "speedup": round(full_s / s, 2), "latent_l2": round(rel(lat, full), 4),
                     "fewer_steps_same_time": eq, "fewer_s": round(few_s, 2),
                     "fewer_latent_l2": round(rel(few, full), 4)})
    print(json.dumps({"rows": rows, "threads": args.threads, "torch": torch.__version__,
                      "diffusers": diffusers.__version__}))


if __name__ == "__main__":
    main()
