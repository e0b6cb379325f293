#!/usr/bin/env python3
"""Golden-fixture generator for gimp-dit.

Writes small, randomly initialised DiT models (diffusers and official
facebookresearch/DiT state-dict layouts), their float64 reference outputs and
a few op-level references next to this script, then proves every model
fixture sensitive to the classic implementation mistakes.

Run with the pinned environment from requirements.txt:
    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python gen.py

Deterministic: fixed seeds, one CPU thread, two runs give identical bytes.
"""
import hashlib
import json
import math
import os
import shutil
import sys

# One thread before torch starts: float64 BLAS reductions then run in a
# fixed order, which keeps the files byte-identical from run to run.
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402  (imported for the pinned environment; used below)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import DiTTransformer2DModel  # noqa: E402
from diffusers.models.embeddings import get_2d_sincos_pos_embed, get_timestep_embedding  # noqa: E402

torch.set_num_threads(1)
diffusers.utils.logging.set_verbosity_error()

HERE = os.path.dirname(os.path.abspath(__file__))
F64 = torch.float64
F32 = torch.float32

TOL = 1e-4            # the C tests: max|ours-ref| <= TOL * max|ref|
SENS_FACTOR = 100.0   # each perturbation must move out by > SENS_FACTOR * TOL * max|ref|
XCHECK = 1e-9         # ref_forward vs diffusers, both float64
MAX_TOTAL_BYTES = 8_000_000
# dit_official_p8 would be 3.1 MB at depth 2 and push the total to 8.8 MB;
# one block keeps everything under MAX_TOTAL_BYTES (fixture 2 covers 3 official blocks).
P8_DEPTH = 1


# --------------------------------------------------------------------------
# Random weights
# --------------------------------------------------------------------------

def init_std(name):
    """Large, non-zero init so every part of the network shows in the output."""
    if name.endswith("embedding_table.weight"):
        return 0.5
    if name.endswith(".bias"):
        return 0.05
    return 0.1


def random_weights(shapes, seed):
    """shapes: list of (name, shape) in a fixed order -> dict name -> F32 tensor."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes:
        out[name] = torch.randn(tuple(shape), generator=g, dtype=F32) * init_std(name)
    return out


def round_to(t, dtype):
    """Round to the storage dtype and come back as float64."""
    return t.to(dtype).to(F64)


# --------------------------------------------------------------------------
# Sinusoidal embeddings (own code)
# --------------------------------------------------------------------------

def timestep_embedding(t, dim=256, divisor="half", emulate_diffusers_f32=False):
    """cos half first, freqs exp(-ln(10000) * i / div) with div = half or half-1.

    emulate_diffusers_f32 reproduces diffusers' get_timestep_embedding, which
    builds the frequencies and the arguments in float32 whatever the model
    dtype is (used only to cross-check against diffusers to 1e-9)."""
    half = dim // 2
    div = half if divisor == "half" else half - 1
    if emulate_diffusers_f32:
        e = -math.log(10000) * torch.arange(half, dtype=F32)
        e = e / div
        freqs = torch.exp(e)
        args = t.to(F32)[:, None] * freqs[None, :]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(F64)
    i = torch.arange(half, dtype=F64)
    freqs = torch.exp(-math.log(10000.0) * i / div)
    args = t.to(F64)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_1d(dim, pos):
    """(M,) positions -> (M, dim): [sin(pos*w_i), cos(pos*w_i)], w_i = 10000^(-i/(dim/2))."""
    i = torch.arange(dim // 2, dtype=F64)
    omega = 1.0 / 10000.0 ** (i / (dim / 2.0))
    a = pos.to(F64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


def axis_coords(n, base, interp, emulate_f32):
    """Grid coordinates along one axis. base=None: plain 0..n-1 (official).
    Otherwise diffusers' PatchEmbed scaling: i / (n / base) / interp."""
    if base is None:
        return torch.arange(n, dtype=F64)
    if emulate_f32:
        return (torch.arange(n, dtype=F32) / (n / base) / interp).to(F64)
    return torch.arange(n, dtype=F64) / (n / base) / interp


def pos_embed_2d(D, gh, gw, base=None, interp=1.0, variant="normal", emulate_diffusers_f32=False):
    """(gh*gw, D) fixed 2-D sin-cos table for a grid of gh rows x gw columns,
    tokens row-major (k = r*gw + c). Channels [0, D/2) encode the column
    coordinate, [D/2, D) the row coordinate.

    variant (perturbations only): 'swap_halves' (row first), 'transposed_grid'
    (table built for gw rows x gh columns and laid onto our tokens),
    'no_interp' (integer coordinates, no base-size scaling)."""
    if variant == "no_interp":
        base = None
    if variant == "transposed_grid":
        rows = axis_coords(gw, base, interp, emulate_diffusers_f32)
        cols = axis_coords(gh, base, interp, emulate_diffusers_f32)
        rr = rows.repeat_interleave(gh)
        cc = cols.repeat(gw)
    else:
        rows = axis_coords(gh, base, interp, emulate_diffusers_f32)
        cols = axis_coords(gw, base, interp, emulate_diffusers_f32)
        rr = rows.repeat_interleave(gw)
        cc = cols.repeat(gh)
    first, second = (rr, cc) if variant == "swap_halves" else (cc, rr)
    emb = torch.cat([sincos_1d(D // 2, first), sincos_1d(D // 2, second)], dim=1)
    if emulate_diffusers_f32:
        emb = emb.to(F32).to(F64)  # diffusers keeps the table as float32
    return emb


# --------------------------------------------------------------------------
# Elementary ops (own code, float64)
# --------------------------------------------------------------------------

def layer_norm(x, eps):
    mu = x.mean(dim=-1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps)


def gelu(x, kind="tanh"):
    if kind == "tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def silu(x):
    return x / (1.0 + torch.exp(-x))


def linear(x, w, b):
    return x @ w.t() + b


def attention_from_qkv(qkv, heads, scale="sqrt"):
    """qkv (B, T, 3*D) laid out (B, T, 3, H, hd) -> (B, T, D)."""
    B, T, threeD = qkv.shape
    D = threeD // 3
    hd = D // heads
    q, k, v = qkv.reshape(B, T, 3, heads, hd).permute(2, 0, 3, 1, 4)  # each (B,H,T,hd)
    s = 1.0 / math.sqrt(hd) if scale == "sqrt" else 1.0 / hd
    logits = (q @ k.transpose(-1, -2)) * s
    logits = logits - logits.max(dim=-1, keepdim=True).values
    p = torch.exp(logits)
    p = p / p.sum(dim=-1, keepdim=True)
    return (p @ v).transpose(1, 2).reshape(B, T, D)


# --------------------------------------------------------------------------
# The functional reference forward (internal = official names)
# --------------------------------------------------------------------------
# Names: x_embedder.proj.{weight,bias}; pos_embed (1,T,D) when stored;
# t_embedder.mlp.{0,2}.{weight,bias}; y_embedder.embedding_table.weight;
# blocks.N.{attn.qkv, attn.proj, mlp.fc1, mlp.fc2, adaLN_modulation.1}.{weight,bias};
# final_layer.{linear, adaLN_modulation.1}.{weight,bias}.
# With per-block embedders (diffusers) the t/y embedders live under
# blocks.N.t_embedder.* / blocks.N.y_embedder.* instead.

def embed_conditioning(W, prefix, t, y, t_div, emulate):
    tf = timestep_embedding(t, 256, t_div, emulate)
    h = linear(tf, W[prefix + "t_embedder.mlp.0.weight"], W[prefix + "t_embedder.mlp.0.bias"])
    te = linear(silu(h), W[prefix + "t_embedder.mlp.2.weight"], W[prefix + "t_embedder.mlp.2.bias"])
    ye = W[prefix + "y_embedder.embedding_table.weight"][y.to(torch.long)]
    return te + ye


def ref_forward(W, cfg, x, t, y, *,
                t_div="half",             # 'half' (official) | 'half-1' (diffusers)
                norm1_eps=1e-6, norm2_eps=1e-6, final_eps=1e-6,
                per_block_emb=False,      # diffusers: every block has its own t/y embedder
                final_emb_block=0,        # ... and the final layer uses this block's
                shared_emb_block=None,    # perturbation: all blocks use this block's embedder
                pos="stored",             # 'stored' | 'diffusers'
                pos_variant="normal",
                emulate_diffusers_f32=False,
                gelu_kind="tanh", attn_scale="sqrt",
                skip_blocks=(), swap_shift_scale_blocks=(),
                return_tokens=False):
    W = {k: v.to(F64) for k, v in W.items()}
    x = x.to(F64)
    B, C, H, Wd = x.shape
    p, D, heads, depth, cout = cfg["patch"], cfg["D"], cfg["heads"], cfg["depth"], cfg["out_channels"]
    gh, gw = H // p, Wd // p
    T = gh * gw

    # patch embed: a conv with kernel = stride = p written as a matmul
    patches = x.reshape(B, C, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5).reshape(B, T, C * p * p)
    wpe = W["x_embedder.proj.weight"].reshape(D, C * p * p)
    h = linear(patches, wpe, W["x_embedder.proj.bias"])
    if pos == "stored":
        pe = W["pos_embed"].reshape(-1, D)
        assert pe.shape[0] == T, "stored pos_embed does not match the grid"
    else:
        pe = pos_embed_2d(D, gh, gw, base=cfg["base_size"], interp=cfg.get("interp", 1.0),
                          variant=pos_variant, emulate_diffusers_f32=emulate_diffusers_f32)
    h = h + pe[None]

    if per_block_emb:
        conds = [embed_conditioning(W, f"blocks.{i}.", t, y, t_div, emulate_diffusers_f32) for i in range(depth)]
    else:
        c = embed_conditioning(W, "", t, y, t_div, emulate_diffusers_f32)
        conds = [c] * depth

    for i in range(depth):
        if i in skip_blocks:
            continue
        c = conds[shared_emb_block if shared_emb_block is not None else i]
        pre = f"blocks.{i}."
        mod = linear(silu(c), W[pre + "adaLN_modulation.1.weight"], W[pre + "adaLN_modulation.1.bias"])
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        if i in swap_shift_scale_blocks:
            shift_msa, scale_msa = scale_msa, shift_msa
            shift_mlp, scale_mlp = scale_mlp, shift_mlp
        a = layer_norm(h, norm1_eps) * (1 + scale_msa[:, None]) + shift_msa[:, None]
        qkv = linear(a, W[pre + "attn.qkv.weight"], W[pre + "attn.qkv.bias"])
        a = attention_from_qkv(qkv, heads, attn_scale)
        a = linear(a, W[pre + "attn.proj.weight"], W[pre + "attn.proj.bias"])
        h = h + gate_msa[:, None] * a
        m = layer_norm(h, norm2_eps) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        m = gelu(linear(m, W[pre + "mlp.fc1.weight"], W[pre + "mlp.fc1.bias"]), gelu_kind)
        m = linear(m, W[pre + "mlp.fc2.weight"], W[pre + "mlp.fc2.bias"])
        h = h + gate_mlp[:, None] * m

    cf = conds[final_emb_block] if per_block_emb else conds[0]
    mod = linear(silu(cf), W["final_layer.adaLN_modulation.1.weight"], W["final_layer.adaLN_modulation.1.bias"])
    shift, scale = mod.chunk(2, dim=1)
    h = layer_norm(h, final_eps) * (1 + scale[:, None]) + shift[:, None]
    h = linear(h, W["final_layer.linear.weight"], W["final_layer.linear.bias"])  # (B, T, p*p*cout)
    if return_tokens:
        return h
    return unpatchify(h, gh, gw, p, cout)


def unpatchify(tokens, gh, gw, p, cout):
    B = tokens.shape[0]
    z = tokens.reshape(B, gh, gw, p, p, cout)
    z = torch.einsum("nhwpqc->nchpwq", z)
    return z.reshape(B, cout, gh * p, gw * p)


# --------------------------------------------------------------------------
# diffusers <-> internal names
# --------------------------------------------------------------------------

def diffusers_to_internal(sd, depth):
    W = {}
    W["x_embedder.proj.weight"] = sd["pos_embed.proj.weight"]
    W["x_embedder.proj.bias"] = sd["pos_embed.proj.bias"]
    for i in range(depth):
        d = f"transformer_blocks.{i}."
        o = f"blocks.{i}."
        e = d + "norm1.emb."
        W[o + "t_embedder.mlp.0.weight"] = sd[e + "timestep_embedder.linear_1.weight"]
        W[o + "t_embedder.mlp.0.bias"] = sd[e + "timestep_embedder.linear_1.bias"]
        W[o + "t_embedder.mlp.2.weight"] = sd[e + "timestep_embedder.linear_2.weight"]
        W[o + "t_embedder.mlp.2.bias"] = sd[e + "timestep_embedder.linear_2.bias"]
        W[o + "y_embedder.embedding_table.weight"] = sd[e + "class_embedder.embedding_table.weight"]
        W[o + "adaLN_modulation.1.weight"] = sd[d + "norm1.linear.weight"]
        W[o + "adaLN_modulation.1.bias"] = sd[d + "norm1.linear.bias"]
        a = d + "attn1."
        W[o + "attn.qkv.weight"] = torch.cat([sd[a + "to_q.weight"], sd[a + "to_k.weight"], sd[a + "to_v.weight"]], 0)
        W[o + "attn.qkv.bias"] = torch.cat([sd[a + "to_q.bias"], sd[a + "to_k.bias"], sd[a + "to_v.bias"]], 0)
        W[o + "attn.proj.weight"] = sd[a + "to_out.0.weight"]
        W[o + "attn.proj.bias"] = sd[a + "to_out.0.bias"]
        W[o + "mlp.fc1.weight"] = sd[d + "ff.net.0.proj.weight"]
        W[o + "mlp.fc1.bias"] = sd[d + "ff.net.0.proj.bias"]
        W[o + "mlp.fc2.weight"] = sd[d + "ff.net.2.weight"]
        W[o + "mlp.fc2.bias"] = sd[d + "ff.net.2.bias"]
    W["final_layer.adaLN_modulation.1.weight"] = sd["proj_out_1.weight"]
    W["final_layer.adaLN_modulation.1.bias"] = sd["proj_out_1.bias"]
    W["final_layer.linear.weight"] = sd["proj_out_2.weight"]
    W["final_layer.linear.bias"] = sd["proj_out_2.bias"]
    assert len(W) == 6 + 15 * depth and len(sd) == 6 + 19 * depth, "unexpected diffusers keys"
    return W


def official_shapes(cfg):
    D, p, cin, cout, depth, ncls = cfg["D"], cfg["patch"], cfg["in_channels"], cfg["out_channels"], cfg["depth"], cfg["num_classes"]
    s = [("x_embedder.proj.weight", (D, cin, p, p)), ("x_embedder.proj.bias", (D,)),
         ("t_embedder.mlp.0.weight", (D, 256)), ("t_embedder.mlp.0.bias", (D,)),
         ("t_embedder.mlp.2.weight", (D, D)), ("t_embedder.mlp.2.bias", (D,)),
         ("y_embedder.embedding_table.weight", (ncls + 1, D))]
    for i in range(depth):
        o = f"blocks.{i}."
        s += [(o + "attn.qkv.weight", (3 * D, D)), (o + "attn.qkv.bias", (3 * D,)),
              (o + "attn.proj.weight", (D, D)), (o + "attn.proj.bias", (D,)),
              (o + "mlp.fc1.weight", (4 * D, D)), (o + "mlp.fc1.bias", (4 * D,)),
              (o + "mlp.fc2.weight", (D, 4 * D)), (o + "mlp.fc2.bias", (D,)),
              (o + "adaLN_modulation.1.weight", (6 * D, D)), (o + "adaLN_modulation.1.bias", (6 * D,))]
    s += [("final_layer.linear.weight", (p * p * cout, D)), ("final_layer.linear.bias", (p * p * cout,)),
          ("final_layer.adaLN_modulation.1.weight", (2 * D, D)), ("final_layer.adaLN_modulation.1.bias", (2 * D,))]
    return s


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def rel(a, b):
    return (a.to(F64) - b.to(F64)).abs().max().item() / b.to(F64).abs().max().item()


def save_io(name, x, t, y, out):
    path = os.path.join(HERE, name + ".io.safetensors")
    save_file({"x": x.to(F32).contiguous(), "t": t.to(F32).contiguous(),
               "y": y.to(F32).contiguous(), "out": out.to(F32).contiguous()}, path)
    return path


def make_inputs(seed, shape, t, y):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=F32)
    return x, torch.tensor(t, dtype=F32), torch.tensor(y, dtype=F32)


SENS_ROWS = []   # (fixture, perturbation, ratio, threshold or None)
STRONG = SENS_FACTOR * TOL   # 1e-2: 100x the C tolerance
# erf vs tanh GELU differ by at most 4.7e-4 anywhere (|gelu| ~ 1 where it matters), so
# no model with this init can move by 1e-2 from that swap; we ask for > 1x the C tolerance
# here and prove the op itself sensitive with the gelu_neg_* op fixture (~28x).
GELU_MODEL_BAR = TOL


def sensitivity(fixture, ref, variants):
    """variants: list of (label, out_tensor, threshold or None)."""
    m = ref.abs().max().item()
    for label, out, bar in variants:
        r = (out - ref).abs().max().item() / m
        SENS_ROWS.append((fixture, label, r, bar))
        if bar is not None:
            assert r > bar, f"{fixture}: '{label}' moves out by only {r:.3e} of max|ref| (needs > {bar:g})"


def common_perturbations(W, cfg, x, t, y, conv, null_class):
    """The perturbations every model fixture must be sensitive to."""
    other_div = "half-1" if conv["t_div"] == "half" else "half"
    depth = cfg["depth"]
    v = [
        ("skip last block", ref_forward(W, cfg, x, t, y, **conv, skip_blocks=(depth - 1,)), STRONG),
        ("swap shift/scale in block 0", ref_forward(W, cfg, x, t, y, **conv, swap_shift_scale_blocks=(0,)), STRONG),
        ("erf GELU instead of tanh", ref_forward(W, cfg, x, t, y, **conv, gelu_kind="erf"), GELU_MODEL_BAR),
        (f"timestep divisor {other_div} instead of {conv['t_div']}",
         ref_forward(W, cfg, x, t, y, **{**conv, "t_div": other_div}), STRONG),
        ("attention scale 1/hd", ref_forward(W, cfg, x, t, y, **conv, attn_scale="hd"), STRONG),
    ]
    if (y == null_class).any():
        y0 = torch.where(y == null_class, torch.zeros_like(y), y)
        v.append(("null label -> label 0", ref_forward(W, cfg, x, t, y0, **conv), STRONG))
    other_eps = 1e-5 if conv["norm2_eps"] == 1e-6 else 1e-6
    v.append((f"(info) MLP-norm eps {other_eps:g} instead of {conv['norm2_eps']:g}",
              ref_forward(W, cfg, x, t, y, **{**conv, "norm2_eps": other_eps}), None))
    return v


def diffusers_forward_tokens(model, x, t, y):
    """Run diffusers and return (.sample, the proj_out_2 tokens)."""
    got = {}
    hook = model.proj_out_2.register_forward_hook(lambda mod, inp, out: got.__setitem__("tok", out.detach()))
    try:
        with torch.no_grad():
            sample = model(x, timestep=t, class_labels=y.to(torch.long)).sample
    finally:
        hook.remove()
    return sample, got["tok"]


# --------------------------------------------------------------------------
# Model fixtures
# --------------------------------------------------------------------------

def diffusers_fixture(name, dcfg, store_dtype, seed, xshape, tvals, yvals):
    """Random DiTTransformer2DModel saved with save_pretrained; reference = diffusers in float64."""
    model = DiTTransformer2DModel(**dcfg)
    shapes = [(k, v.shape) for k, v in model.state_dict().items()]
    assert not any("pos_embed.pos_embed" == k for k, _ in shapes), "pos_embed buffer is expected to be non-persistent"
    Wd = random_weights(shapes, seed)
    Wd = {k: v.to(store_dtype) for k, v in Wd.items()}         # as stored
    model.load_state_dict({k: v.to(F32) for k, v in Wd.items()})
    out_dir = os.path.join(HERE, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    model.to(store_dtype).save_pretrained(out_dir, safe_serialization=True)

    # reload what was written, so the reference comes from the bytes on disk
    reloaded = DiTTransformer2DModel.from_pretrained(out_dir, torch_dtype=F32).eval()
    with safe_open(os.path.join(out_dir, "diffusion_pytorch_model.safetensors"), "pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}
    assert all(v.dtype == store_dtype for v in stored.values())
    assert all(torch.equal(stored[k], Wd[k]) for k in Wd)
    model64 = reloaded.to(F64)

    x, t, y = make_inputs(seed + 1000, xshape, tvals, yvals)
    depth, D = dcfg["num_layers"], dcfg["num_attention_heads"] * dcfg["attention_head_dim"]
    p = dcfg["patch_size"]
    cout = dcfg.get("out_channels") or dcfg["in_channels"]
    gh, gw = xshape[2] // p, xshape[3] // p
    sample, tok = diffusers_forward_tokens(model64, x.to(F64), t.to(F64), y)
    ref = unpatchify(tok, gh, gw, p, cout)
    note = ""
    if gh == gw:
        assert torch.equal(sample, ref)
    else:
        note = (f"diffusers .sample has shape {tuple(sample.shape)} for a {gh}x{gw} token grid "
                f"(its unpatchify assumes a square grid); reference = its proj_out_2 tokens unpatchified as {gh}x{gw}")

    cfg = dict(D=D, heads=dcfg["num_attention_heads"], depth=depth, patch=p, out_channels=cout,
               base_size=dcfg["sample_size"] // p, interp=1.0)
    W = {k: v.to(F64) for k, v in diffusers_to_internal(stored, depth).items()}
    conv = dict(t_div="half-1", norm1_eps=1e-6, norm2_eps=model64.config.norm_eps, final_eps=1e-6,
                per_block_emb=True, final_emb_block=0, pos="diffusers")
    emu = ref_forward(W, cfg, x, t, y, **conv, emulate_diffusers_f32=True)
    xc = rel(emu, ref)
    assert xc <= XCHECK, f"{name}: ref_forward vs diffusers {xc:.3e}"
    exact = ref_forward(W, cfg, x, t, y, **conv)
    save_io(name, x, t, y, ref)

    null_class = dcfg["num_embeds_ada_norm"]
    v = common_perturbations(W, cfg, x, t, y, conv, null_class)
    v += [
        ("all blocks use block 0's embedder", ref_forward(W, cfg, x, t, y, **conv, shared_emb_block=0), STRONG),
        ("final layer uses last block's embedder", ref_forward(W, cfg, x, t, y, **{**conv, "final_emb_block": depth - 1}), STRONG),
    ]
    if gh != gw:
        for lab, var in (("pos grid transposed (built W x H)", "transposed_grid"),
                         ("pos halves swapped (row first)", "swap_halves"),
                         ("pos without base-size scaling", "no_interp")):
            v.append((lab, ref_forward(W, cfg, x, t, y, **conv, pos_variant=var), STRONG))
    v.append(("(info) exact f64 sinusoids vs diffusers' f32 ones", exact, None))
    sensitivity(name, ref, v)
    return dict(xcheck=xc, note=note, f32_sinusoid_effect=rel(exact, ref))


def official_fixture(name, cfg, store_dtype, seed, xshape, tvals, yvals, metadata):
    W32 = random_weights(official_shapes(cfg), seed)
    gh = gw = cfg["input_size"] // cfg["patch"]
    W32["pos_embed"] = pos_embed_2d(cfg["D"], gh, gw).to(F32)[None]   # official: fixed, stored
    stored = {k: v.to(store_dtype).contiguous() for k, v in W32.items()}
    path = os.path.join(HERE, name + ".safetensors")
    save_file(stored, path, metadata=metadata)
    W = {k: v.to(F64) for k, v in stored.items()}

    x, t, y = make_inputs(seed + 1000, xshape, tvals, yvals)
    conv = dict(t_div="half", norm1_eps=1e-6, norm2_eps=1e-6, final_eps=1e-6, per_block_emb=False, pos="stored")
    ref = ref_forward(W, cfg, x, t, y, **conv)
    # independent check of the reference: torch's own ops on the same weights
    ref2 = official_forward_torch_ops(W, cfg, x, t, y)
    xc = rel(ref2, ref)
    assert xc <= XCHECK, f"{name}: own ops vs torch ops {xc:.3e}"
    save_io(name, x, t, y, ref)

    v = common_perturbations(W, cfg, x, t, y, conv, cfg["num_classes"])
    Wr = dict(W)
    Wr["pos_embed"] = pos_embed_2d(cfg["D"], gh, gw)[None]
    v.append(("(info) recomputed f64 pos_embed instead of stored", ref_forward(Wr, cfg, x, t, y, **conv), None))
    sensitivity(name, ref, v)
    return dict(xcheck=xc, note="")


def official_forward_torch_ops(W, cfg, x, t, y):
    """Second, independent spelling of the official forward using torch.nn.functional
    (conv2d, layer_norm, gelu, scaled_dot_product_attention) - guards ref_forward."""
    x = x.to(F64)
    p, D, H = cfg["patch"], cfg["D"], cfg["heads"]
    h = F.conv2d(x, W["x_embedder.proj.weight"], W["x_embedder.proj.bias"], stride=p)
    B, _, gh, gw = h.shape
    h = h.flatten(2).transpose(1, 2) + W["pos_embed"]
    half = 128
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=F64) / half)
    args = t.to(F64)[:, None] * freqs[None]
    tf = torch.cat([torch.cos(args), torch.sin(args)], -1)
    c = F.linear(F.silu(F.linear(tf, W["t_embedder.mlp.0.weight"], W["t_embedder.mlp.0.bias"])),
                 W["t_embedder.mlp.2.weight"], W["t_embedder.mlp.2.bias"])
    c = c + F.embedding(y.to(torch.long), W["y_embedder.embedding_table.weight"])
    for i in range(cfg["depth"]):
        o = f"blocks.{i}."
        sm, cm, gm, sf, cf, gf = F.linear(F.silu(c), W[o + "adaLN_modulation.1.weight"], W[o + "adaLN_modulation.1.bias"]).chunk(6, 1)
        a = F.layer_norm(h, (D,), eps=1e-6) * (1 + cm[:, None]) + sm[:, None]
        q, k, v = F.linear(a, W[o + "attn.qkv.weight"], W[o + "attn.qkv.bias"]).reshape(B, -1, 3, H, D // H).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, -1, D)
        h = h + gm[:, None] * F.linear(a, W[o + "attn.proj.weight"], W[o + "attn.proj.bias"])
        m = F.layer_norm(h, (D,), eps=1e-6) * (1 + cf[:, None]) + sf[:, None]
        m = F.gelu(F.linear(m, W[o + "mlp.fc1.weight"], W[o + "mlp.fc1.bias"]), approximate="tanh")
        h = h + gf[:, None] * F.linear(m, W[o + "mlp.fc2.weight"], W[o + "mlp.fc2.bias"])
    s, sc = F.linear(F.silu(c), W["final_layer.adaLN_modulation.1.weight"], W["final_layer.adaLN_modulation.1.bias"]).chunk(2, 1)
    h = F.layer_norm(h, (D,), eps=1e-6) * (1 + sc[:, None]) + s[:, None]
    h = F.linear(h, W["final_layer.linear.weight"], W["final_layer.linear.bias"])
    return unpatchify(h, gh, gw, p, cfg["out_channels"])


# --------------------------------------------------------------------------
# Op-level fixture
# --------------------------------------------------------------------------

def ops_fixture(seed):
    g = torch.Generator().manual_seed(seed)
    out = {}
    checks = {}

    tt = torch.tensor([0.0, 1.0, 17.5, 500.0, 999.0], dtype=F32)
    out["temb_t"] = tt
    temb_off = timestep_embedding(tt, 256, "half")
    temb_dif = timestep_embedding(tt, 256, "half-1")
    out["temb_official"] = temb_off
    out["temb_diffusers"] = temb_dif
    lib = get_timestep_embedding(tt, 256, flip_sin_to_cos=True, downscale_freq_shift=1).to(F64)
    checks["temb_diffusers vs diffusers get_timestep_embedding (f32 inside), abs"] = (temb_dif - lib).abs().max().item()
    assert (temb_dif - lib).abs().max().item() < 5e-4
    assert torch.equal(timestep_embedding(tt, 256, "half-1", emulate_diffusers_f32=True), lib)
    checks["temb_official vs temb_diffusers (divisor effect), abs"] = (temb_off - temb_dif).abs().max().item()

    p1 = pos_embed_2d(96, 8, 12, base=4, interp=1.0)
    out["pos_h8_w12_d96"] = p1
    lib = get_2d_sincos_pos_embed(96, (8, 12), base_size=4, interpolation_scale=1.0, output_type="pt").to(F64)
    checks["pos_h8_w12_d96 vs diffusers get_2d_sincos_pos_embed, abs"] = (p1 - lib).abs().max().item()
    assert (p1 - lib).abs().max().item() < 1e-6
    assert torch.equal(pos_embed_2d(96, 8, 12, base=4, emulate_diffusers_f32=True), lib.to(F32).to(F64))
    p2 = pos_embed_2d(128, 4, 4)
    out["pos_h4_w4_d128"] = p2
    lib = get_2d_sincos_pos_embed(128, 4, base_size=4, output_type="pt").to(F64)
    checks["pos_h4_w4_d128 vs diffusers (native grid), abs"] = (p2 - lib).abs().max().item()
    assert (p2 - lib).abs().max().item() < 1e-6

    gx = torch.linspace(-8.0, 8.0, 1000, dtype=F64).to(F32)
    out["gelu_x"] = gx
    out["gelu_tanh_y"] = gelu(gx.to(F64), "tanh")
    checks["gelu_tanh vs F.gelu(tanh), abs"] = (out["gelu_tanh_y"] - F.gelu(gx.to(F64), approximate="tanh")).abs().max().item()
    checks["(sens) erf GELU vs tanh GELU on gelu_x, rel"] = rel(gelu(gx.to(F64), "erf"), out["gelu_tanh_y"])
    # [-8, 8] has max|y| = 8, which hides the <= 4.7e-4 erf/tanh gap under a 1e-4*max|ref|
    # rule; the negative side (max|y| = 0.17) makes the approximation visible.
    gn = torch.linspace(-5.0, 0.0, 256, dtype=F64).to(F32)
    out["gelu_neg_x"] = gn
    out["gelu_tanh_neg_y"] = gelu(gn.to(F64), "tanh")
    checks["(sens) erf GELU vs tanh GELU on gelu_neg_x, rel"] = rel(gelu(gn.to(F64), "erf"), out["gelu_tanh_neg_y"])
    assert checks["(sens) erf GELU vs tanh GELU on gelu_neg_x, rel"] > 10 * TOL

    lx = torch.randn(3, 7, 72, generator=g, dtype=F64) * 2.0 + 3.0
    lx[2] = lx[2] * 1e-3 + 0.5   # variance ~4e-6: comparable to eps, so eps matters
    lx = lx.to(F32)
    out["ln_x"] = lx
    out["ln_y"] = layer_norm(lx.to(F64), 1e-6)
    checks["ln vs F.layer_norm, abs"] = (out["ln_y"] - F.layer_norm(lx.to(F64), (72,), eps=1e-6)).abs().max().item()
    checks["(sens) ln eps 1e-5 vs 1e-6, rel"] = rel(layer_norm(lx.to(F64), 1e-5), out["ln_y"])
    assert checks["(sens) ln eps 1e-5 vs 1e-6, rel"] > SENS_FACTOR * TOL

    qkv = (torch.randn(2, 5, 432, generator=g, dtype=F64) * 1.5).to(F32)
    out["attn_qkv"] = qkv
    out["attn_out"] = attention_from_qkv(qkv.to(F64), 2)
    q, k, v = qkv.to(F64).reshape(2, 5, 3, 2, 72).permute(2, 0, 3, 1, 4)
    lib = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 5, 144)
    checks["attn vs F.scaled_dot_product_attention, abs"] = (out["attn_out"] - lib).abs().max().item()
    checks["(sens) attn scale 1/hd, rel"] = rel(attention_from_qkv(qkv.to(F64), 2, "hd"), out["attn_out"])
    checks["(sens) attn heads as (B,T,H,3,hd), rel"] = rel(
        attention_from_qkv(qkv.to(F64).reshape(2, 5, 2, 3, 72).transpose(2, 3).reshape(2, 5, 432), 2), out["attn_out"])
    for kk in ("gelu_tanh vs F.gelu(tanh), abs", "ln vs F.layer_norm, abs", "attn vs F.scaled_dot_product_attention, abs"):
        assert checks[kk] < 1e-12, kk

    save_file({k: v.to(F32).contiguous() for k, v in out.items()}, os.path.join(HERE, "ops.io.safetensors"))
    return checks


# --------------------------------------------------------------------------

def main():
    print(f"torch {torch.__version__}  diffusers {diffusers.__version__}  "
          f"safetensors {__import__('safetensors').__version__}  numpy {np.__version__}")
    results = {}

    results["dit_diffusers_p2"] = diffusers_fixture(
        "dit_diffusers_p2",
        dict(in_channels=4, out_channels=8, num_layers=3, num_attention_heads=4, attention_head_dim=24,
             patch_size=2, sample_size=8, num_embeds_ada_norm=10),
        F32, seed=101, xshape=(2, 4, 8, 12), tvals=[37.5, 801.0], yvals=[3, 10])

    results["dit_official_p2"] = official_fixture(
        "dit_official_p2",
        dict(D=96, heads=4, depth=3, patch=2, in_channels=4, out_channels=8, num_classes=10, input_size=8),
        torch.bfloat16, seed=202, xshape=(2, 4, 8, 8), tvals=[0.0, 523.0], yvals=[7, 10],
        metadata={"num_attention_heads": "4"})

    results["dit_diffusers_p4"] = diffusers_fixture(
        "dit_diffusers_p4",
        dict(in_channels=4, out_channels=4, num_layers=2, num_attention_heads=2, attention_head_dim=72,
             patch_size=4, sample_size=16, num_embeds_ada_norm=5),
        torch.float16, seed=303, xshape=(3, 4, 16, 16), tvals=[0.0, 500.25, 999.0], yvals=[0, 4, 5])

    results["dit_official_p8"] = official_fixture(
        "dit_official_p8",
        dict(D=128, heads=2, depth=P8_DEPTH, patch=8, in_channels=4, out_channels=8, num_classes=10, input_size=16),
        F32, seed=404, xshape=(2, 4, 16, 16), tvals=[10.0, 990.0], yvals=[10, 2], metadata=None)

    ops_checks = ops_fixture(505)

    print("\ncross-checks (max|a-b|/max|b|, float64):")
    for k, r in results.items():
        what = "ref_forward vs diffusers" if "diffusers" in k else "ref_forward vs torch.nn.functional spelling"
        print(f"  {k:18s} {what:45s} {r['xcheck']:.2e}")
        if r.get("f32_sinusoid_effect") is not None:
            print(f"  {k:18s} {'exact-f64 sinusoids vs diffusers (f32 inside)':45s} {r['f32_sinusoid_effect']:.2e}")
        if r["note"]:
            print(f"  note: {k}: {r['note']}")
    print("\nops checks:")
    for k, v in ops_checks.items():
        print(f"  {k:62s} {v:.2e}")

    print(f"\nsensitivity: max|perturbed-ref|/max|ref|  (C tolerance {TOL:g})")
    print(f"  {'fixture':18s} {'perturbation':50s} {'ratio':>9s}  {'asserted >':>10s}  x tol")
    for fx, lab, r, bar in SENS_ROWS:
        print(f"  {fx:18s} {lab:50s} {r:9.3e}  {('%g' % bar) if bar is not None else '-':>10s}  {r / TOL:8.1f}")

    total = 0
    print("\nfiles:")
    for root, _, files in sorted(os.walk(HERE)):
        for fn in sorted(files):
            if not (fn.endswith(".safetensors") or fn == "config.json"):
                continue
            path = os.path.join(root, fn)
            size = os.path.getsize(path)
            total += size
            digest = hashlib.sha256(open(path, "rb").read()).hexdigest()[:16]
            print(f"  {os.path.relpath(path, HERE):55s} {size:9d}  {digest}")
    print(f"total fixture bytes: {total}")
    assert total < MAX_TOTAL_BYTES, f"fixtures too large: {total} bytes"


if __name__ == "__main__":
    main()
