#!/usr/bin/env python3
"""PyTorch reference timing for the gimp-dit DiT training benchmark.

    torch_train_ref.py --threads N [--steps 20] [--warmup 3] [--batch 128]
                       [--seed 0] [--clip 1.0] [--ema 0.999] [--dropout 0.1]
                       [--device cpu|cuda] [--precision fp32|tf32|bf16]

Trains, in float32 (on the CPU unless --device cuda), the model `dit train` builds by default, written
here as plain torch modules in the official facebookresearch/DiT layout and
naming:
    in_channels 1, input 32x32, patch 4 (64 tokens), hidden 128, 4 heads,
    depth 6, MLP ratio 4 (tanh GELU), 10 classes (+1 null row), frequency
    embedding 256 (divisor half, cos first), LayerNorm eps 1e-6 without affine,
    learn_sigma off (1 output channel), fixed 2-D sin-cos pos_embed (frozen).
Initialisation as `dit train` (adaLN-Zero): xavier-uniform linears (the patch
conv viewed as (D, C*p*p)), zero biases, t-MLP weights N(0, 0.02), label table
N(0, 0.5), adaLN_modulation and final layer zero.

One step, as in `dit train` with its defaults (objective x0_l1):
  - a batch of B images and labels picked from a fixed random pool (N(0,1)
    images, labels in 0..9, from --seed); labels replaced by the null class
    with probability --dropout;
  - t uniform in 0..T-1, T = 500; x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise on
    the seed article's flipped cosine alpha-bar schedule (steps = T+1,
    x = linspace(0, steps, steps), ab = cos(((x/steps) + 0.008)/1.008 * pi/2)^2,
    ab /= ab[0], a_i = ab[T-i]); the model gets the integer index t;
  - loss = mean |model(x_t, t, y) - x0|; backward; global-norm gradient clip
    (--clip, 0 = off); AdamW lr 3e-4, betas (0.9, 0.999), eps 1e-8, no weight
    decay; EMA of the weights (--ema, 0 = off).
The learning-rate warm-up of `dit train` changes no timing and is left out.

--warmup steps run first and are not timed; then --steps steps are timed.
Prints one JSON line on stdout:
    {"steps_per_s": ..., "img_per_s": ..., "threads": N, "device": ..., "precision": ...,
     "torch": ..., "params": P}
where P counts the trained parameters (pos_embed is fixed, not counted).
Exits 3 with a one-line reason on stderr when torch is missing.
"""
import argparse
import json
import math

import torch_common

# the `dit train` defaults this benchmark mirrors
IN_CHANNELS, INPUT_SIZE, PATCH = 1, 32, 4
HIDDEN, HEADS, DEPTH, MLP_RATIO = 128, 4, 6, 4
NUM_CLASSES, FREQ_DIM = 10, 256
TRAIN_T = 500
LR = 3e-4
LABEL_STD = 0.5
POOL = 1024            # images in the random data pool


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    torch_common.add_args(ap)
    ap.add_argument("--steps", type=int, default=20, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient norm clip, 0 = off (dit train: 1)")
    ap.add_argument("--ema", type=float, default=0.999, help="EMA decay, 0 = off (dit train: 0.999)")
    ap.add_argument("--dropout", type=float, default=0.1, help="class label dropout (dit train: 0.1)")
    a = ap.parse_args()
    if a.threads < 1 or a.steps < 1 or a.warmup < 0 or a.batch < 1:
        ap.error("--threads, --steps and --batch must be >= 1, --warmup >= 0")
    if not (0 <= a.ema < 1 and 0 <= a.dropout < 1 and a.clip >= 0):
        ap.error("--ema and --dropout must be in [0, 1), --clip >= 0")
    return a


def cold_alpha_bar(T):
    """The seed article's schedule, flipped: a[0] ~ 0 (pure noise), a[T] = 1. float64 list."""
    steps = T + 1
    ab = [math.cos(((j * steps / (steps - 1)) / steps + 0.008) / 1.008 * math.pi / 2) ** 2 for j in range(steps)]
    ab = [v / ab[0] for v in ab]
    return ab[::-1]


def build_dit(torch):
    """The official DiT modules (own code). Parameter names match the official state dict."""
    nn = torch.nn
    F = torch.nn.functional

    def sincos_1d(dim, pos):
        omega = 1.0 / 10000.0 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
        a = pos[:, None] * omega[None]
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)

    def pos_table(D, g):
        """(g*g, D): channels [0, D/2) encode the column, [D/2, D) the row; tokens row-major."""
        r = torch.arange(g, dtype=torch.float64).repeat_interleave(g)
        c = torch.arange(g, dtype=torch.float64).repeat(g)
        return torch.cat([sincos_1d(D // 2, c), sincos_1d(D // 2, r)], dim=1).float()

    class PatchEmbed(nn.Module):
        def __init__(self, C, D, p):
            super().__init__()
            self.proj = nn.Conv2d(C, D, kernel_size=p, stride=p)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)            # (B, T, D)

    class TimestepEmbedder(nn.Module):
        def __init__(self, D, freq):
            super().__init__()
            self.freq = freq
            self.mlp = nn.Sequential(nn.Linear(freq, D), nn.SiLU(), nn.Linear(D, D))

        def forward(self, t):
            half = self.freq // 2
            freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64, device=t.device) / half)
            args = t.to(torch.float64)[:, None] * freqs[None]
            emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(self.mlp[0].weight.dtype)
            return self.mlp(emb)

    class LabelEmbedder(nn.Module):
        def __init__(self, num_classes, D):
            super().__init__()
            self.embedding_table = nn.Embedding(num_classes + 1, D)     # last row: the null class

        def forward(self, y):
            return self.embedding_table(y)

    class Attention(nn.Module):
        def __init__(self, D, heads):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(D, 3 * D)
            self.proj = nn.Linear(D, D)

        def forward(self, x):
            B, T, D = x.shape
            q, k, v = self.qkv(x).reshape(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
            return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, D))

    class Mlp(nn.Module):
        def __init__(self, D, hidden):
            super().__init__()
            self.fc1 = nn.Linear(D, hidden)
            self.fc2 = nn.Linear(hidden, D)

        def forward(self, x):
            return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))

    def modulate(x, shift, scale):
        return x * (1 + scale[:, None]) + shift[:, None]

    class DiTBlock(nn.Module):
        def __init__(self, D, heads, mlp_ratio):
            super().__init__()
            self.norm1 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
            self.attn = Attention(D, heads)
            self.norm2 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
            self.mlp = Mlp(D, int(D * mlp_ratio))
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))

        def forward(self, x, c):
            sm, cm, gm, sf, cf, gf = self.adaLN_modulation(c).chunk(6, dim=1)
            x = x + gm[:, None] * self.attn(modulate(self.norm1(x), sm, cm))
            return x + gf[:, None] * self.mlp(modulate(self.norm2(x), sf, cf))

    class FinalLayer(nn.Module):
        def __init__(self, D, p, cout):
            super().__init__()
            self.norm_final = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
            self.linear = nn.Linear(D, p * p * cout)
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D))

        def forward(self, x, c):
            shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
            return self.linear(modulate(self.norm_final(x), shift, scale))

    class DiT(nn.Module):
        def __init__(self, in_channels, input_size, patch, D, heads, depth, mlp_ratio, num_classes, freq,
                     learn_sigma=False):
            super().__init__()
            self.C, self.p = in_channels, patch
            self.cout = 2 * in_channels if learn_sigma else in_channels
            self.g = input_size // patch
            self.x_embedder = PatchEmbed(in_channels, D, patch)
            self.t_embedder = TimestepEmbedder(D, freq)
            self.y_embedder = LabelEmbedder(num_classes, D)
            self.pos_embed = nn.Parameter(pos_table(D, self.g)[None], requires_grad=False)
            self.blocks = nn.ModuleList([DiTBlock(D, heads, mlp_ratio) for _ in range(depth)])
            self.final_layer = FinalLayer(D, patch, self.cout)

        def forward(self, x, t, y):
            h = self.x_embedder(x) + self.pos_embed
            c = self.t_embedder(t) + self.y_embedder(y)
            for blk in self.blocks:
                h = blk(h, c)
            h = self.final_layer(h, c)                                   # (B, T, p*p*cout)
            B, g, p = x.shape[0], self.g, self.p
            h = h.reshape(B, g, g, p, p, self.cout)
            return torch.einsum("nhwpqc->nchpwq", h).reshape(B, self.cout, g * p, g * p)

        @torch.no_grad()
        def init_like_dit_train(self, gen, label_std):
            """xavier-uniform linears (the patch conv viewed as (D, C*p*p)), zero biases,
            t-MLP N(0, 0.02), label table N(0, label_std), adaLN and final layer zero."""
            def xavier(w):
                rows, cols = w.shape[0], w[0].numel()
                a = math.sqrt(6.0 / (rows + cols))
                w.copy_((torch.rand(w.shape, generator=gen) * 2 - 1) * a)
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    xavier(m.weight)
                    nn.init.zeros_(m.bias)
            for lin in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) * 0.02)
            w = self.y_embedder.embedding_table.weight
            w.copy_(torch.randn(w.shape, generator=gen) * label_std)
            for blk in self.blocks:
                nn.init.zeros_(blk.adaLN_modulation[1].weight)
                nn.init.zeros_(blk.adaLN_modulation[1].bias)
            for lin in (self.final_layer.adaLN_modulation[1], self.final_layer.linear):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    return DiT


def main():
    args = parse_args()
    torch = torch_common.import_torch(args, "torch_train_ref")
    dev = args.device

    gen = torch.Generator().manual_seed(args.seed)
    model = build_dit(torch)(IN_CHANNELS, INPUT_SIZE, PATCH, HIDDEN, HEADS, DEPTH, MLP_RATIO, NUM_CLASSES,
                             FREQ_DIM)
    model.init_like_dit_train(gen, LABEL_STD)
    model.to(dev).train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ema = [p.detach().clone() for p in params]

    images = torch.randn(POOL, IN_CHANNELS, INPUT_SIZE, INPUT_SIZE, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (POOL,), generator=gen)
    ab = cold_alpha_bar(TRAIN_T)
    sqrt_a = torch.tensor([math.sqrt(a) for a in ab], dtype=torch.float32)
    sqrt_1ma = torch.tensor([math.sqrt(1.0 - a) for a in ab], dtype=torch.float32)
    B = args.batch

    def step():
        idx = torch.randint(0, POOL, (B,), generator=gen)
        x0, y = images[idx], labels[idx]
        drop = torch.rand(B, generator=gen) < args.dropout
        y = torch.where(drop, torch.full_like(y, NUM_CLASSES), y)
        t = torch.randint(0, TRAIN_T, (B,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        xt = sqrt_a[t].view(B, 1, 1, 1) * x0 + sqrt_1ma[t].view(B, 1, 1, 1) * noise
        # the batch is made on the host and uploaded, as libdit's trainer does
        xt, t, y, x0 = xt.to(dev), t.to(dev), y.to(dev), x0.to(dev)
        loss = (model(xt, t.to(torch.float32), y) - x0).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        if args.ema > 0:
            with torch.no_grad():
                torch._foreach_mul_(ema, args.ema)
                torch._foreach_add_(ema, params, alpha=1.0 - args.ema)
        return loss

    for _ in range(args.warmup):
        step()
    t0 = torch_common.clock(torch, dev)
    for _ in range(args.steps):
        loss = step()
    loss.item()
    sps = args.steps / ((torch_common.clock(torch, dev) - t0) / 1000.0)
    print(json.dumps({"steps_per_s": round(sps, 4), "img_per_s": round(sps * B, 2), "threads": args.threads,
                      "device": dev, "precision": args.precision, "torch": torch.__version__,
                      "params": n_params}))


if __name__ == "__main__":
    main()
