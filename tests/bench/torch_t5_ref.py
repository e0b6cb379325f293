#!/usr/bin/env python3
"""transformers' T5EncoderModel for bench-t5: the folder's weights (bf16 on
disk, computed in fp32), one prompt of 120 tokens with the same ids and mask
as bench-t5.c, best of --iters after a warm-up, in fp32 and under
torch.autocast("cpu", bfloat16); how far its fp32 output is from ours
(--ours, prompt_embeds); peak RSS. One JSON line; exits 3 without torch or
transformers.
"""
import argparse
import json
import resource
import sys

import torch_common

L, PAD = 120, 17


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ours", help="prompt_embeds from libdit to compare with")
    ap.add_argument("--iters", type=int, default=3)
    torch_common.add_args(ap)
    args = ap.parse_args()
    torch = torch_common.import_torch(args, "torch_t5_ref", "/transformers")
    try:
        import transformers
        from safetensors.torch import load_file
    except Exception as e:
        print(f"torch_t5_ref: cannot import transformers/safetensors: {e}", file=sys.stderr)
        sys.exit(3)
    model = transformers.T5EncoderModel.from_pretrained(args.model, torch_dtype=torch.float32).eval()
    ids = torch.tensor([[3 + (i * 7919) % 31000 if i < L - PAD else 0 for i in range(L)]])
    ids[0, L - PAD - 1] = 1
    mask = torch.tensor([[1 if i < L - PAD else 0 for i in range(L)]])
    res = {"threads": args.threads, "torch": torch.__version__,
           "transformers": transformers.__version__}
    for mode in ("fp32", "bf16"):
        best, out = 1e30, None
        for i in range(args.iters + 1):
            t0 = torch_common.clock(torch, "cpu")
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                        enabled=mode == "bf16"):
                out = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            ms = torch_common.clock(torch, "cpu") - t0
            if i > 0:
                best = min(best, ms)
        res[f"{mode}_ms"] = round(best, 1)
        if mode == "fp32" and args.ours:
            ours = load_file(args.ours)["prompt_embeds"].float()
            res["max_rel_diff_fp32"] = float((ours - out).abs().max() / out.abs().max())
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
