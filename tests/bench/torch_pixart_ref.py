#!/usr/bin/env python3
"""diffusers' PixArtTransformer2DModel for bench-pixart: the folder's
weights, the inputs bench-pixart wrote (x, t, cap, cap_mask), the median of
--iters forwards after --warmup, in fp32 or under torch.autocast("cpu",
bfloat16) (--precision bf16); how far its output is from ours (--ours,
`out`); peak RSS. One JSON line; exits 3 without torch or diffusers.

    torch_pixart_ref.py --model DIR --input IN --threads N [--precision fp32|bf16]
                        [--ours OUT] [--warmup 1] [--iters 3]
    torch_pixart_ref.py --model DIR --input IN --vae VAE --sample-steps N --threads N ...

With --sample-steps, instead one whole 512x512 text-to-image through
PixArtAlphaPipeline (DPM-Solver++ 2M, guidance 4.5, the input's caption
embeddings for the prompt and the negative side, no text encoder, the VAE
folder's decoder), after a 2-step warm-up: {"sample_ms": ...}.
"""
import argparse
import json
import resource

import torch_common


def time_sampling(torch, diffusers, args, model, inp):
    vae = diffusers.AutoencoderKL.from_pretrained(args.vae, torch_dtype=torch.float32).eval().to(args.device)
    pipe = diffusers.PixArtAlphaPipeline(tokenizer=None, text_encoder=None, transformer=model, vae=vae,
                                         scheduler=diffusers.DPMSolverMultistepScheduler())
    pipe.set_progress_bar_config(disable=True)
    cap, mask = inp["cap"][:1], inp["cap_mask"][:1]
    ms = 0.0
    for steps in (2, args.sample_steps):  # warm-up, then the timed run
        gen = torch.Generator(device="cpu").manual_seed(0)
        t0 = torch_common.clock(torch, args.device)
        with torch.inference_mode(), torch_common.autocast(torch, args):
            pipe(prompt=None, negative_prompt=None, prompt_embeds=cap, prompt_attention_mask=mask,
                 negative_prompt_embeds=inp["cap"][1:], negative_prompt_attention_mask=inp["cap_mask"][1:],
                 guidance_scale=4.5, num_inference_steps=steps, height=512, width=512,
                 use_resolution_binning=False, generator=gen, output_type="np")
        ms = torch_common.clock(torch, args.device) - t0
    res = {"sample_ms": round(ms, 1), "steps": args.sample_steps, "threads": args.threads,
           "precision": args.precision, "torch": torch.__version__, "diffusers": diffusers.__version__}
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--ours", help="libdit's output (`out`) to compare with")
    ap.add_argument("--vae", help="diffusers AutoencoderKL folder (with --sample-steps)")
    ap.add_argument("--sample-steps", type=int, default=0, help="time a whole generation instead")
    torch_common.add_args(ap)
    torch_common.add_inference_args(ap)
    args = ap.parse_args()
    torch_common.check_inference_args(ap, args)
    torch, diffusers, load_file, _ = torch_common.import_diffusers(args, "torch_pixart_ref")
    model = diffusers.PixArtTransformer2DModel.from_pretrained(args.model, torch_dtype=torch.float32)
    model = model.eval().to(args.device)
    inp = {k: v.to(args.device) for k, v in load_file(args.input).items()}
    if args.sample_steps > 0:
        print(json.dumps(time_sampling(torch, diffusers, args, model, inp)))
        return

    def forward():
        return model(inp["x"], encoder_hidden_states=inp["cap"], timestep=inp["t"],
                     encoder_attention_mask=inp["cap_mask"], added_cond_kwargs=None,
                     return_dict=False)[0]

    out, res = torch_common.time_runs(torch, args, forward)
    res["diffusers"] = diffusers.__version__
    if args.ours:
        ours = load_file(args.ours)["out"].float()
        out = out.float().cpu()
        res["max_rel_diff"] = float((ours - out).abs().max() / out.abs().max())
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
