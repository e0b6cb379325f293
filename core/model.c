/* DiT forward, written once against the backend op table; adaLN-Zero shown
 * (the other conditioning variants of dit.h differ where noted in the code).
 *
 *   tokens = patchify(x) . W_embed^T + pos            (B, T, D)
 *   c      = MLP(timestep_embedding(t)) + table[y]    (B, D)
 *   per block: shift, scale, gate (x2) = Linear(SiLU(c))  (B, 6D)
 *     x += gate_msa * Attn(LN(x) * (1 + scale_msa) + shift_msa)
 *     x += gate_mlp * MLP(LN(x) * (1 + scale_mlp) + shift_mlp)
 *   out = unpatchify(Linear(LN(x) * (1 + scale) + shift))   (B, Cout, H, W)
 *
 * Fixed choices of the upstream constructors: LayerNorm has no affine;
 * attention has qkv bias; MLP activation is GELU (tanh). */
#include "internal/impl.h"
#include "internal/profile.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* DIT_PROFILE=1: per-op wall time of each forward (profile.h) */
enum {
    P_EMBED,
    P_COND,
    P_ADALN,
    P_NORM,
    P_QKV,
    P_ATTN,
    P_PROJ,
    P_FC1,
    P_FC2,
    P_RESID,
    P_FINAL,
    P_COUNT
};
static const char *const prof_names[P_COUNT] = {"patch+pos", "t/y embed", "adaLN", "layernorm",
                                                "qkv",       "attention", "proj",  "fc1+gelu",
                                                "fc2",       "gated add", "final"};
/* Activation buffers of one forward, carved from the context arena.
 * Ts = T, or T + conditioning tokens for the in-context variant. */
typedef struct {
    float *tokens_in; /* (B, T, C*p*p) patchified input */
    float *x;         /* (B, Ts, D) residual stream */
    float *tfreq;     /* (B, F) */
    float *thid;      /* (B, D) */
    float *c;         /* (B, D) conditioning */
    float *csilu;     /* (B, D) SiLU(c) */
    float *mod;       /* (B, 6D) adaLN chunks */
    float *ctx;       /* (B, n, D) conditioning tokens (token variants) */
    float *kv;        /* (B, n, 2D) their keys and values (cross-attention) */
    float *xprobs;    /* (B, H, T, n) cross-attention weights */
    float *h;         /* (B, Ts, D) normalised + modulated */
    float *qkv;       /* (B, Ts, 3D) */
    float *att;       /* (B, Ts, D) */
    float *y;         /* (B, Ts, D) branch output before the gate */
    float *mlp;       /* (B, Ts, Dm) */
    float *fin;       /* (B, T, p*p*Cout) */
    float *scratch;   /* attention scratch */
} acts;

/* Returns the floats needed; fills `a` when base is not NULL. Sizes are
 * bounded by the config limits of the loader and the checked B, H, W. */
static size_t layout_acts(const dit_backend *be, const dit_config *c, int B, int H, int W,
                          float *base, acts *a)
{
    const size_t p = (size_t)c->patch_size, D = (size_t)c->hidden_size;
    const size_t n = (size_t)dit_cond_tokens(c);
    const size_t T = (size_t)(H / c->patch_size) * (size_t)(W / c->patch_size);
    const size_t Ts = T + (c->conditioning == DIT_COND_IN_CONTEXT ? n : 0);
    const size_t BT = (size_t)B * T, BTs = (size_t)B * Ts;
    size_t used = 0;
    dit_carve(&a->tokens_in, base, &used, BT * c->in_channels * p * p);
    dit_carve(&a->x, base, &used, BTs * D);
    dit_carve(&a->tfreq, base, &used, (size_t)B * c->freq_dim);
    dit_carve(&a->thid, base, &used, (size_t)B * D);
    dit_carve(&a->c, base, &used, (size_t)B * D);
    dit_carve(&a->csilu, base, &used, (size_t)B * D);
    dit_carve(&a->mod, base, &used, (size_t)B * 6 * D);
    dit_carve(&a->ctx, base, &used, (size_t)B * n * D);
    dit_carve(&a->kv, base, &used, (size_t)B * n * 2 * D);
    dit_carve(&a->xprobs, base, &used, BT * c->num_heads * n);
    dit_carve(&a->h, base, &used, BTs * D);
    dit_carve(&a->qkv, base, &used, BTs * 3 * D);
    dit_carve(&a->att, base, &used, BTs * D);
    dit_carve(&a->y, base, &used, BTs * D);
    dit_carve(&a->mlp, base, &used, BTs * (size_t)c->mlp_hidden);
    dit_carve(&a->fin, base, &used, BT * p * p * c->out_channels);
    return dit_carve(&a->scratch, base, &used, be->attention_scratch(be, B, (int)Ts, c->num_heads));
}

/* csilu (B, D) = SiLU(MLP(temb(t)) + table[y]) for one embedder; for the
 * token variants also ctx (B, n, D) = (MLP(temb(t)), table[y]) */
static void conditioning(const dit_backend *be, const dit_config *c, const dit_embedder_weights *e,
                         int B, const float *t, const int32_t *y, const acts *a)
{
    const int D = c->hidden_size, n = dit_cond_tokens(c);
    be->timestep_embedding(be, a->tfreq, t, B, c->freq_dim, c->freq_shift);
    be->linear(be, a->thid, a->tfreq, e->t_mlp0_w, e->t_mlp0_b, B, c->freq_dim, D, DIT_ACT_SILU);
    be->linear(be, a->c, a->thid, e->t_mlp2_w, e->t_mlp2_b, B, D, D, DIT_ACT_NONE);
    if (!dit_block_mod_chunks(c)) {
        be->copy_tokens(be, a->ctx, n, 0, a->c, 1, 0, 1, B, D);
        if (e->y_table) { /* csilu holds table[y] for a moment */
            be->add_embedding(be, a->csilu, NULL, e->y_table, y, B, D);
            be->copy_tokens(be, a->ctx, n, 1, a->csilu, 1, 0, 1, B, D);
        }
    }
    if (e->y_table)
        be->add_embedding(be, a->c, a->c, e->y_table, y, B, D);
    be->silu(be, a->csilu, a->c, (size_t)B * D);
}

/* (gh*gw, D) sin-cos table for this grid: the checkpoint's own on the
 * native grid, else computed once and kept in the context until the grid
 * changes (every sampling step reuses it). */
static dit_status position_table(dit_ctx *ctx, const dit_model *m, int gh, int gw,
                                 const float **out)
{
    const dit_config *c = &m->cfg;
    const int native = c->sample_size / c->patch_size;
    if (m->pos_embed && gh == native && gw == native) {
        *out = m->pos_embed;
        return DIT_OK;
    }
    return dit_position_table(ctx, gh, gw, c->hidden_size, (float)native, c->interpolation_scale,
                              out);
}

dit_status dit_position_table(dit_ctx *ctx, int gh, int gw, int D, float base, float interp,
                              const float **out)
{
    if (!ctx->pos_table || ctx->pos_gh != gh || ctx->pos_gw != gw || ctx->pos_dim != D ||
        ctx->pos_base != base || ctx->pos_interp != interp) {
        dit_free_aligned(ctx->pos_table);
        ctx->pos_table = dit_alloc_aligned((size_t)gh * gw * D * sizeof(float));
        if (!ctx->pos_table)
            return dit_error(ctx, DIT_ERR_NOMEM, "cannot allocate the position table");
        ctx->cpu.pos_embed_2d(&ctx->cpu, ctx->pos_table, gh, gw, D, base, base, interp);
        ctx->pos_gh = gh, ctx->pos_gw = gw, ctx->pos_dim = D;
        ctx->pos_base = base, ctx->pos_interp = interp;
    }
    *out = ctx->pos_table;
    return DIT_OK;
}

static dit_status check_inputs(dit_ctx *ctx, const dit_config *c, int B, int H, int W,
                               const float *x, const float *t, const int32_t *y, const float *out)
{
    if (!x || !t || !y || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_model_forward: NULL buffer");
    if (B <= 0 || B > 4096)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "batch %d is out of range (1..4096)", B);
    if (H <= 0 || W <= 0 || H % c->patch_size || W % c->patch_size || H > 8192 || W > 8192)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "latent size %dx%d must be positive multiples of the patch size %d", H, W,
                         c->patch_size);
    for (int b = 0; b < B; b++) {
        if (y[b] < 0 || y[b] > c->num_classes)
            return dit_error(ctx, DIT_ERR_INVALID_ARG,
                             "label %d of sample %d is out of range (0..%d, %d = null class)", y[b],
                             b, c->num_classes, c->num_classes);
        if (!isfinite(t[b]))
            return dit_error(ctx, DIT_ERR_INVALID_ARG, "timestep of sample %d is not finite", b);
    }
    size_t n = (size_t)B * c->in_channels * H * W;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return dit_error(ctx, DIT_ERR_INVALID_ARG, "input latent holds %s at element %zu",
                             isnan(x[i]) ? "NaN" : "Inf", i);
    return DIT_OK;
}

/* The forward itself, on backend `be`: every pointer (weights of `model`,
 * activations in `a`, x, t, y, pos, out) is memory of that backend. */
static void forward_ops(const dit_backend *be, const dit_model *model, const acts *ap, int B, int H,
                        int W, const float *x, const float *t, const int32_t *y, const float *pos,
                        float *out, dit_block_cache *cache, dit_profile *P)
{
    const dit_config *c = &model->cfg;
    const acts a = *ap;
    const int D = c->hidden_size, Dm = c->mlp_hidden, p = c->patch_size;
    const int gh = H / p, gw = W / p, T = gh * gw, BT = B * T;
    const int P_in = c->in_channels * p * p, P_out = p * p * c->out_channels;
    const int n_ctx = dit_cond_tokens(c), chunks = dit_block_mod_chunks(c);
    const bool in_context = c->conditioning == DIT_COND_IN_CONTEXT;
    const bool cross = c->conditioning == DIT_COND_CROSS_ATTN;
    const int Ts = in_context ? T + n_ctx : T, BTs = B * Ts; /* sequence in the blocks */

    const dit_embedder_weights *have = NULL; /* embedder whose csilu / ctx is current */
    if (!chunks) {
        DIT_TIMED(P, P_COND, conditioning(be, c, &model->emb, B, t, y, &a));
        have = &model->emb;
    }
    // tokens (B, T, D) = patch embed + position embed; in-context: (B, n + T, D)
    // with the conditioning tokens first
    DIT_TIMED(P, P_EMBED, {
        float *tok = in_context ? a.h : a.x;
        be->patchify(be, a.tokens_in, x, B, c->in_channels, H, W, p);
        be->linear(be, tok, a.tokens_in, model->x_embed_w, model->x_embed_b, BT, P_in, D,
                   DIT_ACT_NONE);
        be->add_rows(be, tok, pos, B, T, D);
        if (in_context) {
            be->copy_tokens(be, a.x, Ts, n_ctx, tok, T, 0, T, B, D);
            be->copy_tokens(be, a.x, Ts, 0, a.ctx, n_ctx, 0, n_ctx, B, D);
        }
    });
    for (int l = 0; l < c->depth; l++) {
        const dit_block_weights *blk = &model->blocks[l];
        if (chunks && blk->emb != have) {
            DIT_TIMED(P, P_COND, conditioning(be, c, blk->emb, B, t, y, &a));
            have = blk->emb;
        }
        if (chunks)
            DIT_TIMED(P, P_ADALN,
                      be->linear(be, a.mod, a.csilu, blk->ada_w, blk->ada_b, B, D, chunks * D,
                                 DIT_ACT_NONE));
        const dit_mod_layout ml = dit_block_mod_layout(c);
        float *shift1 = dit_mod_at(a.mod, ml.shift1), *scale1 = dit_mod_at(a.mod, ml.scale1);
        float *gate1 = dit_mod_at(a.mod, ml.gate1), *shift2 = dit_mod_at(a.mod, ml.shift2);
        float *scale2 = dit_mod_at(a.mod, ml.scale2), *gate2 = dit_mod_at(a.mod, ml.gate2);

        // branch outputs (B, Ts, D) before their gates: a.y, or the cache's slots
        bool reuse_att = false, reuse_mlp = false;
        float *y_att = cache ? dit_block_cache_slot(cache, 2 * l, B, &reuse_att) : a.y;
        if (!reuse_att) {
            DIT_TIMED(P, P_NORM,
                      be->layernorm_modulate(be, a.h, a.x, shift1, scale1, ml.stride, B, Ts, D,
                                             c->norm1_eps));
            // qkv (B, Ts, 3, H, hd)
            DIT_TIMED(
                P, P_QKV,
                be->linear(be, a.qkv, a.h, blk->qkv_w, blk->qkv_b, BTs, D, 3 * D, DIT_ACT_NONE));
            DIT_TIMED(
                P, P_ATTN,
                be->attention(be, a.att, a.qkv, B, Ts, c->num_heads, D / c->num_heads, a.scratch));
            DIT_TIMED(
                P, P_PROJ,
                be->linear(be, y_att, a.att, blk->proj_w, blk->proj_b, BTs, D, D, DIT_ACT_NONE));
        }
        DIT_TIMED(P, P_RESID, be->gated_add(be, a.x, y_att, gate1, ml.stride, B, Ts, D));

        if (cross) { // x += proj(CrossAttn(q = LN(x), kv = conditioning tokens))
            DIT_TIMED(P, P_ATTN, {
                be->layernorm_modulate(be, a.h, a.x, NULL, NULL, 0, B, T, D, c->norm1_eps);
                be->linear(be, a.qkv, a.h, blk->xq_w, blk->xq_b, BT, D, D, DIT_ACT_NONE);
                be->linear(be, a.kv, a.ctx, blk->xkv_w, blk->xkv_b, B * n_ctx, D, 2 * D,
                           DIT_ACT_NONE);
                be->cross_attention(be, a.att, a.qkv, a.kv, NULL, B, T, n_ctx, c->num_heads,
                                    D / c->num_heads, a.xprobs);
                be->linear(be, a.y, a.att, blk->xproj_w, blk->xproj_b, BT, D, D, DIT_ACT_NONE);
                be->gated_add(be, a.x, a.y, NULL, 0, B, T, D);
            });
        }

        float *y_mlp = cache ? dit_block_cache_slot(cache, 2 * l + 1, B, &reuse_mlp) : a.y;
        if (!reuse_mlp) {
            DIT_TIMED(P, P_NORM,
                      be->layernorm_modulate(be, a.h, a.x, shift2, scale2, ml.stride, B, Ts, D,
                                             c->norm2_eps));
            // mlp (B, Ts, Dm)
            DIT_TIMED(P, P_FC1,
                      be->linear(be, a.mlp, a.h, blk->fc1_w, blk->fc1_b, BTs, D, Dm,
                                 DIT_ACT_GELU_TANH)); // GELU fused
            DIT_TIMED(
                P, P_FC2,
                be->linear(be, y_mlp, a.mlp, blk->fc2_w, blk->fc2_b, BTs, Dm, D, DIT_ACT_NONE));
        }
        DIT_TIMED(P, P_RESID, be->gated_add(be, a.x, y_mlp, gate2, ml.stride, B, Ts, D));
    }

    // final layer: both families condition it on the first block's embedder;
    // the token variants end in a plain LayerNorm (in-context: image tokens only)
    DIT_TIMED(P, P_FINAL, {
        const float *xf = a.x;
        if (in_context) {
            be->copy_tokens(be, a.y, T, 0, a.x, Ts, n_ctx, T, B, D);
            xf = a.y;
        }
        if (dit_final_adaln(c)) {
            if (model->blocks[0].emb != have)
                conditioning(be, c, model->blocks[0].emb, B, t, y, &a);
            be->linear(be, a.mod, a.csilu, model->final_ada_w, model->final_ada_b, B, D, 2 * D,
                       DIT_ACT_NONE);
            be->layernorm_modulate(be, a.h, xf, a.mod, a.mod + D, 2 * D, B, T, D,
                                   c->norm_final_eps);
        } else {
            be->layernorm_modulate(be, a.h, xf, NULL, NULL, 0, B, T, D, c->norm_final_eps);
        }
        // fin (B, T, p*p*Cout)
        be->linear(be, a.fin, a.h, model->final_w, model->final_b, BT, D, P_out, DIT_ACT_NONE);
        be->unpatchify(be, out, a.fin, B, c->out_channels, H, W, p);
    });
}

/* The weights of m on the device: uploaded on first use and again when the
 * model or its version changed; kept in ctx->dev as a clone of m whose
 * pointers the layout walk re-points into one device allocation. */
static dit_status device_weights(dit_ctx *ctx, const dit_model *m, const dit_model **out)
{
    dit_device *d = &ctx->dev;
    if (d->model && d->host == m && d->host_version == m->version) {
        *out = d->model;
        return DIT_OK;
    }
    dit_device_free(d->params);
    dit_model_clone_free(d->model);
    d->params = NULL, d->model = NULL, d->host = NULL;

    const size_t bytes = m->param_floats * sizeof(float);
    float *dev = dit_device_alloc(ctx, bytes);
    dit_status st = dev ? dit_device_upload(ctx, dev, m->params, bytes) : DIT_ERR_NOMEM;
    dit_model *dm = st ? NULL : dit_model_clone_at(m, dev);
    if (!st && !dm)
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    if (st) {
        dit_device_free(dev);
        return st;
    }
    d->params = dev, d->model = dm, d->host = m, d->host_version = m->version;
    *out = dm;
    return DIT_OK;
}

/* The forward on a device backend: weights uploaded once, activations and
 * x, t, y, pos, out in the device arena, one sync at the end. */
static dit_status forward_device(dit_ctx *ctx, const dit_model *model, int B, int H, int W,
                                 const float *x, const float *t, const int32_t *y, const float *pos,
                                 float *out, dit_block_cache *cache)
{
    const dit_backend *be = ctx->be;
    const dit_config *c = &model->cfg;
    const dit_model *dm = NULL;
    dit_status st = device_weights(ctx, model, &dm);
    if (st)
        return st;
    const size_t T = (size_t)(H / c->patch_size) * (W / c->patch_size);
    const size_t n_x = (size_t)B * c->in_channels * H * W;
    const size_t n_out = (size_t)B * c->out_channels * H * W;
    const bool own_pos = pos != model->pos_embed; /* else already on the device */

    acts a;
    size_t used = layout_acts(be, c, B, H, W, NULL, &a);
    const size_t n_acts = used;
    dit_carve(NULL, NULL, &used, n_x);
    dit_carve(NULL, NULL, &used, (size_t)B);
    dit_carve(NULL, NULL, &used, (size_t)B);
    dit_carve(NULL, NULL, &used, own_pos ? T * c->hidden_size : 0);
    dit_carve(NULL, NULL, &used, n_out);
    if ((st = dit_device_arena_reserve(ctx, used)))
        return st;
    float *base = ctx->dev.arena;
    layout_acts(be, c, B, H, W, base, &a);
    float *dx, *dt, *dy, *dpos, *dout;
    used = n_acts;
    dit_carve(&dx, base, &used, n_x);
    dit_carve(&dt, base, &used, (size_t)B);
    dit_carve(&dy, base, &used, (size_t)B); /* int32 labels in a float slot: same size */
    dit_carve(&dpos, base, &used, own_pos ? T * c->hidden_size : 0);
    dit_carve(&dout, base, &used, n_out);
    if (!own_pos)
        dpos = dm->pos_embed;

    if ((st = dit_device_upload(ctx, dx, x, n_x * sizeof(float))) ||
        (st = dit_device_upload(ctx, dt, t, (size_t)B * sizeof(float))) ||
        (st = dit_device_upload(ctx, dy, y, (size_t)B * sizeof(int32_t))) ||
        (own_pos && (st = dit_device_upload(ctx, dpos, pos, T * c->hidden_size * sizeof(float)))))
        return st;
    dit_profile off = {.on = false}; /* ops are asynchronous: host timings would mislead */
    forward_ops(be, dm, &a, B, H, W, dx, dt, (const int32_t *)dy, dpos, dout, cache, &off);
    if ((st = dit_device_sync(ctx)))
        return st;
    return dit_device_download(ctx, out, dout, n_out * sizeof(float));
}

/* every op forward_ops may call, whatever the conditioning variant */
/* clang-format off */
#define DIT_FORWARD_OPS(X)                                                                  \
    X(linear) X(attention) X(attention_scratch) X(layernorm_modulate) X(silu) X(patchify)   \
    X(unpatchify) X(gated_add) X(add_rows) X(add_embedding) X(copy_tokens)                  \
    X(cross_attention) X(timestep_embedding)
/* clang-format on */

dit_status dit_model_check_backend(dit_ctx *ctx)
{
    return DIT_BACKEND_REQUIRE(ctx, ctx->be, "the DiT forward", DIT_FORWARD_OPS);
}

dit_status dit_model_forward(dit_ctx *ctx, const dit_model *model, int B, int H, int W,
                             const float *x, const float *t, const int32_t *y, float *out)
{
    return dit_model_forward_cached(ctx, model, B, H, W, x, t, y, out, NULL);
}

dit_status dit_model_forward_cached(dit_ctx *ctx, const dit_model *model, int B, int H, int W,
                                    const float *x, const float *t, const int32_t *y, float *out,
                                    dit_block_cache *cache)
{
    if (!ctx || !model)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_model_forward: NULL context or model");
    const dit_config *c = &model->cfg;
    dit_status st = dit_model_check_backend(ctx);
    if (st || (st = dit_check_held(ctx, model->weights_held, "the model", "run")))
        return st;
    if ((st = check_inputs(ctx, c, B, H, W, x, t, y, out)))
        return st;
    const int gh = H / c->patch_size, gw = W / c->patch_size;
    const float *pos = NULL; /* host table (the model's own, or ctx's) */
    if ((st = position_table(ctx, model, gh, gw, &pos)))
        return st;
    if (dit_on_device(ctx))
        return forward_device(ctx, model, B, H, W, x, t, y, pos, out, cache);

    const dit_backend *be = &ctx->cpu;
    acts a;
    if ((st = dit_arena_reserve(ctx, layout_acts(be, c, B, H, W, NULL, &a))))
        return st;
    layout_acts(be, c, B, H, W, ctx->arena, &a);
    static int profile_on = -1;
    if (profile_on < 0)
        profile_on = dit_profile_enabled();
    dit_profile pr = {.on = profile_on, .n_slots = P_COUNT, .names = prof_names};
    forward_ops(be, model, &a, B, H, W, x, t, y, pos, out, cache, &pr);
    if (pr.on)
        dit_profile_print(&pr, "dit forward profile", 1.0);
    return DIT_OK;
}

double dit_model_forward_flops(const dit_config *c, int B, int H, int W)
{
    const double D = c->hidden_size, Dm = c->mlp_hidden, p = c->patch_size;
    const double n = dit_cond_tokens(c), chunks = dit_block_mod_chunks(c);
    const double T = (double)(H / c->patch_size) * (W / c->patch_size), BT = B * T;
    const double Ts = c->conditioning == DIT_COND_IN_CONTEXT ? T + n : T, BTs = B * Ts;
    const double n_embedders = c->per_block_embedder ? c->depth : 1;
    double f = 2 * BT * c->in_channels * p * p * D;          // patch embed
    f += n_embedders * 2 * B * (c->freq_dim * D + D * D);    // t MLP
    f += c->depth * (2 * B * D * chunks * D                  // adaLN
                     + 2 * BTs * D * 3 * D + 2 * BTs * D * D // qkv, proj
                     + 4 * B * Ts * Ts * D                   // QK^T, PV
                     + 4 * BTs * D * Dm);                    // fc1, fc2
    if (c->conditioning == DIT_COND_CROSS_ATTN)              // q, kv, proj, QK^T, PV
        f += c->depth * (4 * BT * D * D + 4 * B * n * D * D + 4 * BT * n * D);
    f += (dit_final_adaln(c) ? 2 * B * D * 2 * D : 0) + 2 * BT * D * p * p * c->out_channels;
    return f;
}
