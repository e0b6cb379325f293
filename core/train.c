/* Training a DiT (adaLN-Zero, official layout, shared t/y embedder):
 * forward that keeps its activations, backward written layer by layer as in
 * llm.c's train_gpt2.c, AdamW with warm-up and clipping, EMA, checkpoints.
 * Gradients are zeroed once per step and every backward op adds into them.
 *
 * Noise, timesteps and label dropout are pure functions of (seed, step), so
 * a resumed run repeats the straight run bit for bit (same thread count).
 *
 * Runs on the device the context had selected when the trainer was made:
 * on CUDA the weights, gradients, AdamW moments, EMA and activations live on
 * the device and only the batch, the output (for the loss, computed on the
 * host) and its gradient cross each step; the host copies of the state are
 * brought up to date when they are asked for (save, export, accessors). */
#include "internal/train.h"
#include "internal/json.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const dit_objective_names[DIT_OBJ_COUNT] = {"eps_mse", "x0_l1", "v_mse"};

void dit_train_config_default(dit_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->objective = DIT_OBJ_EPS_MSE;
    dit_sched_config_default(&c->sched);
    c->batch = 64;
    c->lr = 1e-4; /* the DiT paper's constant rate */
    c->warmup = 0;
    c->beta1 = 0.9, c->beta2 = 0.999, c->eps = 1e-8;
    c->weight_decay = 0.0;
    c->grad_clip = 0.0;
    c->ema_decay = 0.9999;
    c->ema_warmup = true;
    c->class_dropout = 0.1;
}

/* ---- initialisation ------------------------------------------------------------- */

static uint32_t init_u32(uint64_t seed, uint32_t stream, uint64_t i)
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)i, (uint32_t)(i >> 32), stream, 0x1717u};
    uint32_t out[4];
    dit_philox4x32_10(ctr, key, out);
    return out[0];
}

/* xavier-uniform (fan_in + fan_out), as timm/DiT initialise Linear layers */
static void xavier(float *w, int rows, int cols, uint64_t seed, uint32_t stream)
{
    const double a = sqrt(6.0 / (rows + cols));
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        w[i] = (float)(a * (2.0 * (init_u32(seed, stream, i) + 0.5) / 4294967296.0 - 1.0));
}

static void normal_init(float *w, size_t n, float std, uint64_t seed, uint32_t stream)
{
    dit_randn(seed, stream, 0, n, w);
    for (size_t i = 0; i < n; i++)
        w[i] *= std;
}

void dit_model_init_weights(dit_model *m, uint64_t seed, float label_std)
{
    const dit_config *c = &m->cfg;
    const int D = c->hidden_size, Dm = c->mlp_hidden,
              P = c->in_channels * c->patch_size * c->patch_size;
    memset(m->params, 0, m->param_floats * sizeof(float)); /* biases, adaLN, final: 0 */
    uint32_t s = 100;
    xavier(m->x_embed_w, D, P, seed, s++); /* conv weight viewed as (D, C*p*p) */
    normal_init(m->emb.t_mlp0_w, (size_t)D * c->freq_dim, 0.02f, seed, s++);
    normal_init(m->emb.t_mlp2_w, (size_t)D * D, 0.02f, seed, s++);
    if (m->emb.y_table)
        normal_init(m->emb.y_table, (size_t)(c->num_classes + 1) * D, label_std, seed, s++);
    else
        s++; /* streams of the later tensors do not depend on conditioning */
    for (int l = 0; l < c->depth; l++) {
        dit_block_weights *b = &m->blocks[l];
        xavier(b->qkv_w, 3 * D, D, seed, s++);
        xavier(b->proj_w, D, D, seed, s++);
        xavier(b->fc1_w, Dm, D, seed, s++);
        xavier(b->fc2_w, D, Dm, seed, s++);
        /* adaLN_modulation and final layer stay zero: adaLN-Zero (adaLN starts
         * as the identity modulation) */
        if (b->xq_w) {
            xavier(b->xq_w, D, D, seed, 1000u + 3u * l);
            xavier(b->xkv_w, 2 * D, D, seed, 1001u + 3u * l);
            xavier(b->xproj_w, D, D, seed, 1002u + 3u * l);
        }
    }
    dit_model_touch(m);
}

/* ---- the trainer -------------------------------------------------------------------- */

/* One block's saved activations; x (B, Ts, D) with Ts = T (+ conditioning
 * tokens for in-context). The cross-attention sub-layer (cross variant)
 * runs on x_mid and writes x_mid2; otherwise x_mid2 is x_mid. */
typedef struct {
    float *x_in, *mod, *ln1_mean, *ln1_rstd, *h1, *qkv, *probs, *att, *y1, *x_mid;
    float *ln3_mean, *ln3_rstd, *h3, *xq, *xkv, *xprobs, *xatt, *y3, *x_mid2;
    float *ln2_mean, *ln2_rstd, *h2, *f1, *g, *y2;
} block_acts;

struct dit_trainer {
    dit_train_parallel par; /* size 1: one process */
    dit_model *model;
    bool owns_model; /* loaded from a checkpoint */
    dit_train_config cfg;
    dit_scheduler *sched; /* alphas_cumprod of the training schedule */
    size_t n;             /* parameter floats (block size) */
    float *grads, *m, *v, *ema;
    int64_t step;
    /* activations for one batch size, sized on first use */
    int act_B;
    float *arena;
    size_t arena_floats;
    float *tokens, *x0, *tfreq, *th_pre, *th, *c, *csilu, *ctx, *x_out, *xf, *fmod, *lnf_mean,
        *lnf_rstd, *hf, *fin, *out;
    block_acts *blocks;
    /* gradient scratch */
    float *dX, *dXf, *dA, *dB, *dM, *dqkv, *dmod, *dcs, *dctx, *dkv, *dtmp, *dfin, *dout, *scratch;
    /* per-step inputs and output in backend memory */
    float *xt, *tvec, *pos;
    int32_t *yvec;
    /* host: targets, noise, the clean images (the VLB term needs them), and
     * the host side of xt, tvec, yvec, out, dout (on the CPU: the same buffers) */
    float *host_block;
    float *target, *noise, *x_start, *h_xt, *h_tvec, *h_out, *h_dout;
    int32_t *h_yvec;
    /* where the ops work: ctx's backend at creation; on a device the state
     * lives in d_* and dmodel (a clone of model pointing into d_params); on
     * the CPU these are the host blocks and the model itself */
    dit_ctx *owner;
    const dit_backend *be;
    bool on_dev, host_stale;
    dit_model *dmodel;
    float *d_params, *d_grads, *d_m, *d_v, *d_ema, *d_sumsq;
};

static float *grad_of(dit_trainer *tr, const float *param)
{
    return tr->d_grads + (param - tr->dmodel->params);
}

/* copies, clears and sums in the trainer's memory (host or device) */
static void t_copy(const dit_trainer *tr, float *dst, const float *src, size_t n)
{
    if (tr->on_dev)
        tr->be->affine(tr->be, dst, src, n, 1.0f, 0.0f);
    else
        memcpy(dst, src, n * sizeof(float));
}

static void t_zero(const dit_trainer *tr, float *dst, size_t n)
{
    if (tr->on_dev)
        dit_device_memset0(tr->owner, dst, n * sizeof(float));
    else
        memset(dst, 0, n * sizeof(float));
}

static void add_into(const dit_trainer *tr, float *dst, const float *src, size_t n)
{
    tr->be->add_act(tr->be, dst, src, n, DIT_ACT_NONE);
}

/* host <-> trainer memory; nothing to do on the CPU, where they are one */
static dit_status to_trainer(dit_trainer *tr, void *dst, const void *src, size_t bytes)
{
    if (dst == src)
        return DIT_OK;
    return dit_device_upload(tr->owner, dst, src, bytes);
}

static dit_status from_trainer(dit_trainer *tr, void *dst, const void *src, size_t bytes)
{
    if (dst == src)
        return DIT_OK;
    dit_status st = dit_device_sync(tr->owner);
    return st ? st : dit_device_download(tr->owner, dst, src, bytes);
}

/* Device state -> host copies (params, EMA, moments), when they are older. */
static dit_status sync_host(dit_trainer *tr)
{
    if (!tr->on_dev || !tr->host_stale)
        return DIT_OK;
    const size_t bytes = tr->n * sizeof(float);
    dit_status st;
    if ((st = from_trainer(tr, tr->model->params, tr->d_params, bytes)) ||
        (st = from_trainer(tr, tr->ema, tr->d_ema, bytes)) ||
        (st = from_trainer(tr, tr->m, tr->d_m, bytes)) ||
        (st = from_trainer(tr, tr->v, tr->d_v, bytes)))
        return st;
    dit_model_touch(tr->model);
    tr->host_stale = false;
    return DIT_OK;
}

/* Host state -> device (after creation and after a checkpoint is read). */
static dit_status upload_state(dit_trainer *tr)
{
    if (!tr->on_dev)
        return DIT_OK;
    const size_t bytes = tr->n * sizeof(float);
    dit_status st;
    if ((st = to_trainer(tr, tr->d_params, tr->model->params, bytes)) ||
        (st = to_trainer(tr, tr->d_ema, tr->ema, bytes)) ||
        (st = to_trainer(tr, tr->d_m, tr->m, bytes)) ||
        (st = to_trainer(tr, tr->d_v, tr->v, bytes)))
        return st;
    tr->host_stale = false;
    return DIT_OK;
}

/* every op a training step may call (forward, backward, optimiser, EMA) */
/* clang-format off */
#define DIT_TRAIN_OPS(X)                                                                    \
    X(linear) X(attention_scratch) X(attention_train) X(attention_backward) X(silu)         \
    X(gelu_tanh) X(patchify) X(unpatchify) X(unpatchify_backward) X(gated_add)              \
    X(gated_add_backward) X(add_rows) X(add_act) X(affine) X(add_embedding)                 \
    X(add_embedding_backward) X(copy_tokens) X(cross_attention) X(cross_attention_backward) \
    X(timestep_embedding) X(layernorm_modulate_train) X(layernorm_modulate_backward)        \
    X(linear_backward) X(act_backward) X(adamw) X(ema_update) X(sum_squares)
/* clang-format on */

dit_status dit_trainer_new(dit_ctx *ctx, dit_model *model, const dit_train_config *cfg,
                           dit_trainer **out)
{
    *out = NULL;
    dit_status need = DIT_BACKEND_REQUIRE(ctx, ctx->be, "training", DIT_TRAIN_OPS);
    if (need)
        return need;
    /* the bf16 copies of weights are made once, and training changes them
     * every step */
    if (ctx->be->gemm_bf16)
        return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                         "training on the CPU runs in fp32: bf16 products there are for "
                         "sampling (use --precision fp32)");
    if (model->cfg.naming != DIT_NAMING_OFFICIAL || model->cfg.per_block_embedder)
        return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                         "training needs the official DiT layout (one shared t/y embedder)");
    if (model->weights_held)
        return dit_check_held(ctx, true, "the model", "trained");
    if (cfg->batch < 1 || cfg->batch > 4096 || !(cfg->lr > 0) || cfg->warmup < 0 ||
        !(cfg->ema_decay >= 0 && cfg->ema_decay < 1) ||
        !(cfg->class_dropout >= 0 && cfg->class_dropout < 1) ||
        (unsigned)cfg->objective >= DIT_OBJ_COUNT)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "bad training config (batch 1..4096, lr > 0, ema in [0,1), dropout in "
                         "[0,1))");
    if (model->cfg.learn_sigma && cfg->objective != DIT_OBJ_EPS_MSE)
        return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                         "a learned-sigma model trains with the official hybrid loss: use the "
                         "eps_mse objective (or a model without learn_sigma)");
    if (model->cfg.learn_sigma && cfg->sched.train_steps < 2)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "the VLB term needs at least 2 noise levels");
    if (cfg->bf16_activations && dit_on_device(ctx))
        return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                         "bf16 activations are a CPU training option (train on the CPU, or "
                         "without it)");
    dit_trainer *tr = calloc(1, sizeof *tr);
    if (!tr)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    tr->model = model;
    tr->cfg = *cfg;
    tr->n = model->param_floats;
    const size_t bytes = tr->n * sizeof(float);
    tr->grads = dit_alloc_aligned(bytes);
    tr->m = dit_alloc_aligned(bytes);
    tr->v = dit_alloc_aligned(bytes);
    tr->ema = dit_alloc_aligned(bytes);
    dit_status st = DIT_OK;
    if (!tr->grads || !tr->m || !tr->v || !tr->ema) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "cannot allocate optimiser state (%.1f MiB)",
                       4.0 * bytes / (1 << 20));
    } else {
        memset(tr->grads, 0, bytes);
        memset(tr->m, 0, bytes);
        memset(tr->v, 0, bytes);
        memcpy(tr->ema, model->params, bytes);
        dit_sched_config sc = cfg->sched;
        sc.sampler =
            sc.schedule == DIT_SCHEDULE_COSINE_ALPHABAR ? DIT_SAMPLER_COLD : DIT_SAMPLER_DDIM;
        st = dit_sched_new(ctx, &sc, 1, 1, &tr->sched);
    }
    tr->owner = ctx;
    tr->be = ctx->be;
    tr->on_dev = dit_on_device(ctx);
    if (!st && tr->on_dev) {
        float **blocks[] = {&tr->d_params, &tr->d_grads, &tr->d_m, &tr->d_v, &tr->d_ema};
        for (size_t i = 0; i < 5 && !st; i++)
            if (!(*blocks[i] = dit_device_alloc(ctx, bytes)))
                st = DIT_ERR_NOMEM;
        if (!st && !(tr->d_sumsq = dit_device_alloc(ctx, 64)))
            st = DIT_ERR_NOMEM;
        if (!st && !(tr->dmodel = dit_model_clone_at(model, tr->d_params)))
            st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
        if (!st && !(st = upload_state(tr)))
            st = dit_device_memset0(ctx, tr->d_grads, bytes);
    } else if (!st) {
        tr->d_params = model->params, tr->d_grads = tr->grads, tr->d_m = tr->m;
        tr->d_v = tr->v, tr->d_ema = tr->ema, tr->dmodel = model;
        if (!(tr->d_sumsq = dit_alloc_aligned(64)))
            st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    }
    if (st) {
        dit_trainer_free(tr);
        return st;
    }
    *out = tr;
    return DIT_OK;
}

void dit_trainer_free(dit_trainer *tr)
{
    if (!tr)
        return;
    dit_free_aligned(tr->grads);
    dit_free_aligned(tr->m);
    dit_free_aligned(tr->v);
    dit_free_aligned(tr->ema);
    dit_free_aligned(tr->host_block);
    if (tr->on_dev) {
        dit_device_free(tr->d_params);
        dit_device_free(tr->d_grads);
        dit_device_free(tr->d_m);
        dit_device_free(tr->d_v);
        dit_device_free(tr->d_ema);
        dit_device_free(tr->d_sumsq);
        dit_device_free(tr->arena);
        dit_model_clone_free(tr->dmodel);
    } else {
        dit_free_aligned(tr->d_sumsq);
        dit_free_aligned(tr->arena);
    }
    free(tr->blocks);
    dit_sched_free(tr->sched);
    if (tr->owns_model)
        dit_model_free(tr->model);
    free(tr);
}

/* The sizes a batch of B works with, derived from the config in this one
 * place: the activation layout, the forward and the backward must agree. */
typedef struct {
    int D, Dm, H, hd;       /* hidden, MLP hidden, heads, head dim */
    int p, S, gh, T, BT;    /* patch, sample side, grid side, image tokens gh^2, B * T */
    int Pin, Pout;          /* floats of one input / output patch */
    int n_ctx, chunks;      /* conditioning tokens; adaLN chunks of D per block (0: none) */
    bool in_context, cross; /* the token conditioning variants */
    int Ts, BTs;            /* tokens through the blocks (T + n_ctx in-context), B * Ts */
    dit_mod_layout ml;      /* where shift, scale and gate sit in a block's modulation */
    size_t chw, ohw;        /* floats of one input image (C, S, S) and one output */
} train_dims;

static train_dims train_dims_of(const dit_config *c, int B)
{
    train_dims d = {.D = c->hidden_size,
                    .Dm = c->mlp_hidden,
                    .H = c->num_heads,
                    .p = c->patch_size,
                    .S = c->sample_size};
    d.hd = d.D / d.H;
    d.gh = d.S / d.p, d.T = d.gh * d.gh, d.BT = B * d.T;
    d.Pin = c->in_channels * d.p * d.p, d.Pout = c->out_channels * d.p * d.p;
    d.n_ctx = dit_cond_tokens(c), d.chunks = dit_block_mod_chunks(c);
    d.in_context = c->conditioning == DIT_COND_IN_CONTEXT;
    d.cross = c->conditioning == DIT_COND_CROSS_ATTN;
    d.Ts = d.in_context ? d.T + d.n_ctx : d.T, d.BTs = B * d.Ts;
    d.ml = dit_block_mod_layout(c);
    d.chw = (size_t)c->in_channels * d.S * d.S;
    d.ohw = (size_t)c->out_channels * d.S * d.S;
    return d;
}

/* Carves every activation and gradient buffer for batch B (once). */
static dit_status reserve_acts(dit_ctx *ctx, dit_trainer *tr, int B)
{
    if (tr->arena && tr->act_B >= B)
        return DIT_OK;
    const dit_config *c = &tr->model->cfg;
    const train_dims d = train_dims_of(c, B);
    /* widened once: the counts below are products of these that can pass INT_MAX */
    const size_t D = (size_t)d.D, Dm = (size_t)d.Dm, H = (size_t)d.H, F = (size_t)c->freq_dim;
    const size_t T = (size_t)d.T, BT = (size_t)B * T, Ts = (size_t)d.Ts, BTs = (size_t)B * Ts;
    const size_t n_ctx = (size_t)d.n_ctx, Bn = (size_t)B * n_ctx;
    const size_t Pin = (size_t)d.Pin, Pout = (size_t)d.Pout;
    const size_t img = (size_t)B * d.chw, img_out = (size_t)B * d.ohw;
    const bool cross = d.cross;
    free(tr->blocks);
    tr->blocks = calloc((size_t)c->depth, sizeof *tr->blocks);
    if (!tr->blocks)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    const dit_backend *be = tr->be;
    struct {
        float **dst;
        size_t n;
    } want[64 + 16 * 1024];
    size_t nw = 0;
#define WANT(ptr, count) (want[nw].dst = &(ptr), want[nw].n = (count), nw++)
    WANT(tr->tokens, BT * Pin);
    WANT(tr->x0, BT * D);
    WANT(tr->tfreq, (size_t)B * F);
    WANT(tr->th_pre, (size_t)B * D);
    WANT(tr->th, (size_t)B * D);
    WANT(tr->c, (size_t)B * D);
    WANT(tr->csilu, (size_t)B * D);
    WANT(tr->ctx, Bn * D);
    WANT(tr->x_out, BTs * D);
    WANT(tr->xf, BT * D);
    WANT(tr->fmod, (size_t)B * 2 * D);
    WANT(tr->lnf_mean, BT);
    WANT(tr->lnf_rstd, BT);
    WANT(tr->hf, BT * D);
    WANT(tr->fin, BT * Pout);
    WANT(tr->out, img_out);
    for (int l = 0; l < c->depth && l < 1024; l++) {
        block_acts *a = &tr->blocks[l]; /* (a zero count still gets a pointer) */
        WANT(a->x_in, BTs * D);
        WANT(a->mod, (size_t)B * 6 * D);
        WANT(a->ln1_mean, BTs);
        WANT(a->ln1_rstd, BTs);
        WANT(a->h1, BTs * D);
        WANT(a->qkv, BTs * 3 * D);
        WANT(a->probs, (size_t)B * H * Ts * Ts);
        WANT(a->att, BTs * D);
        WANT(a->y1, BTs * D);
        WANT(a->x_mid, BTs * D);
        WANT(a->ln3_mean, cross ? BT : 0);
        WANT(a->ln3_rstd, cross ? BT : 0);
        WANT(a->h3, cross ? BT * D : 0);
        WANT(a->xq, cross ? BT * D : 0);
        WANT(a->xkv, cross ? Bn * 2 * D : 0);
        WANT(a->xprobs, cross ? BT * H * n_ctx : 0);
        WANT(a->xatt, cross ? BT * D : 0);
        WANT(a->y3, cross ? BT * D : 0);
        WANT(a->x_mid2, cross ? BT * D : 0);
        WANT(a->ln2_mean, BTs);
        WANT(a->ln2_rstd, BTs);
        WANT(a->h2, BTs * D);
        WANT(a->f1, BTs * Dm);
        WANT(a->g, BTs * Dm);
        WANT(a->y2, BTs * D);
    }
    WANT(tr->dX, BTs * D);
    WANT(tr->dXf, BT * D);
    WANT(tr->dA, BTs * D);
    WANT(tr->dB, BTs * D);
    WANT(tr->dM, BTs * Dm);
    WANT(tr->dqkv, BTs * 3 * D);
    WANT(tr->dmod, (size_t)B * 6 * D);
    WANT(tr->dcs, (size_t)B * D);
    WANT(tr->dctx, Bn * D);
    WANT(tr->dkv, Bn * 2 * D);
    WANT(tr->dtmp, (size_t)B * (n_ctx * D > F ? n_ctx * D : F));
    WANT(tr->dfin, BT * Pout);
    WANT(tr->dout, img_out);
    WANT(tr->scratch, be->attention_scratch(be, B, (int)Ts, (int)H));
    WANT(tr->xt, img);
    WANT(tr->tvec, (size_t)B);
    WANT(tr->pos, T * D);
#undef WANT
    size_t total = 0;
    for (size_t i = 0; i < nw; i++)
        total += (want[i].n + 15) & ~(size_t)15;
    total += (size_t)B; /* labels */
    dit_status st = dit_check_budget(ctx, total * sizeof(float), "training at this batch size");
    if (st)
        return st;
    /* the host side: targets, noise, clean images, and on a device the
     * staging copies of xt, tvec, yvec, out and dout */
    const size_t pad_img = (img + 15) & ~(size_t)15, pad_out = (img_out + 15) & ~(size_t)15;
    const size_t pad_B = ((size_t)B + 15) & ~(size_t)15;
    const size_t host = 3 * pad_img + (tr->on_dev ? pad_img + 2 * pad_B + 2 * pad_out : 0);
    if (tr->on_dev) {
        dit_device_free(tr->arena);
        tr->arena = dit_device_alloc(ctx, total * sizeof(float));
    } else {
        dit_free_aligned(tr->arena);
        tr->arena = dit_alloc_aligned(total * sizeof(float));
    }
    dit_free_aligned(tr->host_block);
    tr->host_block = dit_alloc_aligned(host * sizeof(float));
    if (!tr->arena || !tr->host_block)
        return dit_error(ctx, DIT_ERR_NOMEM, "cannot allocate %.0f MiB of training activations",
                         total * 4.0 / (1 << 20));
    float *p0 = tr->arena;
    for (size_t i = 0; i < nw; i++) {
        *want[i].dst = p0;
        p0 += (want[i].n + 15) & ~(size_t)15;
    }
    tr->yvec = (int32_t *)p0;
    float *h = tr->host_block;
    tr->target = h, tr->noise = h + pad_img, tr->x_start = h + 2 * pad_img;
    if (tr->on_dev) {
        tr->h_xt = h + 3 * pad_img, tr->h_tvec = tr->h_xt + pad_img;
        tr->h_yvec = (int32_t *)(tr->h_tvec + pad_B);
        tr->h_out = tr->h_tvec + 2 * pad_B, tr->h_dout = tr->h_out + pad_out;
    } else {
        tr->h_xt = tr->xt, tr->h_tvec = tr->tvec, tr->h_yvec = tr->yvec;
        tr->h_out = tr->out, tr->h_dout = tr->dout;
    }
    /* the position table of the native grid, for a model without its own */
    float *table = tr->on_dev ? malloc(T * D * sizeof(float)) : tr->pos;
    if (!table)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    ctx->cpu.pos_embed_2d(&ctx->cpu, table, d.gh, d.gh, d.D, (float)d.gh, (float)d.gh,
                          c->interpolation_scale);
    if (tr->on_dev) {
        st = to_trainer(tr, tr->pos, table, T * D * sizeof(float));
        free(table);
        if (st)
            return st;
    }
    tr->arena_floats = total;
    tr->act_B = B;
    return DIT_OK;
}

/* bf16 activations: the tensors backward reads are rounded to bfloat16 as
 * they are made (so the forward also continues from the rounded values), the
 * numerics of PyTorch's bf16 autocast; arithmetic stays fp32, and on the CPU
 * they are still held in fp32 words (no memory saved). */
static void keep_act(const dit_trainer *tr, float *x, size_t n)
{
    if (!tr->cfg.bf16_activations)
        return;
    for (size_t i = 0; i < n; i++)
        x[i] = dit_bf16_to_f32(dit_f32_to_bf16(x[i]));
}

/* Forward keeping activations: xt (B, C, S, S), t (B), y (B) -> tr->out.
 * The same computation as model.c's forward_ops, for every conditioning
 * variant, with what backward needs kept per block. */
static void train_forward(dit_trainer *tr, int B, const float *xt, const float *t, const int32_t *y)
{
    const dit_backend *be = tr->be;
    const dit_model *m = tr->dmodel;
    const dit_config *c = &m->cfg;
    const train_dims d = train_dims_of(c, B);
    const dit_embedder_weights *e = &m->emb;

    // tokens (B, T, D) = patch embed + position embed
    be->patchify(be, tr->tokens, xt, B, c->in_channels, d.S, d.S, d.p);
    be->linear(be, tr->x0, tr->tokens, m->x_embed_w, m->x_embed_b, d.BT, d.Pin, d.D, DIT_ACT_NONE);
    be->add_rows(be, tr->x0, m->pos_embed ? m->pos_embed : tr->pos, B, d.T, d.D);

    // t_emb = MLP(temb(t)); adaLN: c = t_emb + table[y], csilu = SiLU(c);
    // tokens: ctx (B, n, D) = (t_emb, table[y])
    be->timestep_embedding(be, tr->tfreq, t, B, c->freq_dim, c->freq_shift);
    be->linear(be, tr->th_pre, tr->tfreq, e->t_mlp0_w, e->t_mlp0_b, B, c->freq_dim, d.D,
               DIT_ACT_NONE);
    be->silu(be, tr->th, tr->th_pre, (size_t)B * d.D);
    be->linear(be, tr->c, tr->th, e->t_mlp2_w, e->t_mlp2_b, B, d.D, d.D, DIT_ACT_NONE);
    if (!d.chunks) {
        be->copy_tokens(be, tr->ctx, d.n_ctx, 0, tr->c, 1, 0, 1, B, d.D);
        if (e->y_table) {
            be->add_embedding(be, tr->csilu, NULL, e->y_table, y, B, d.D);
            be->copy_tokens(be, tr->ctx, d.n_ctx, 1, tr->csilu, 1, 0, 1, B, d.D);
        }
    }
    if (e->y_table)
        be->add_embedding(be, tr->c, tr->c, e->y_table, y, B, d.D);
    be->silu(be, tr->csilu, tr->c, (size_t)B * d.D);

    if (d.in_context) {
        be->copy_tokens(be, tr->blocks[0].x_in, d.Ts, 0, tr->ctx, d.n_ctx, 0, d.n_ctx, B, d.D);
        be->copy_tokens(be, tr->blocks[0].x_in, d.Ts, d.n_ctx, tr->x0, d.T, 0, d.T, B, d.D);
    } else {
        t_copy(tr, tr->blocks[0].x_in, tr->x0, (size_t)d.BT * d.D);
    }
    for (int l = 0; l < c->depth; l++) { /* block l writes block l + 1's x_in */
        const dit_block_weights *w = &m->blocks[l];
        block_acts *a = &tr->blocks[l];
        if (d.chunks)
            be->linear(be, a->mod, tr->csilu, w->ada_w, w->ada_b, B, d.D, d.chunks * d.D,
                       DIT_ACT_NONE);
        be->layernorm_modulate_train(be, a->h1, a->x_in, dit_mod_at(a->mod, d.ml.shift1),
                                     dit_mod_at(a->mod, d.ml.scale1), d.ml.stride, B, d.Ts, d.D,
                                     c->norm1_eps, a->ln1_mean, a->ln1_rstd);
        keep_act(tr, a->h1, (size_t)d.BTs * d.D);
        be->linear(be, a->qkv, a->h1, w->qkv_w, w->qkv_b, d.BTs, d.D, 3 * d.D, DIT_ACT_NONE);
        keep_act(tr, a->qkv, (size_t)d.BTs * 3 * d.D);
        be->attention_train(be, a->att, a->qkv, B, d.Ts, d.H, d.hd, a->probs);
        keep_act(tr, a->att, (size_t)d.BTs * d.D);
        keep_act(tr, a->probs, (size_t)B * d.H * d.Ts * d.Ts);
        be->linear(be, a->y1, a->att, w->proj_w, w->proj_b, d.BTs, d.D, d.D, DIT_ACT_NONE);
        t_copy(tr, a->x_mid, a->x_in, (size_t)d.BTs * d.D);
        be->gated_add(be, a->x_mid, a->y1, dit_mod_at(a->mod, d.ml.gate1), d.ml.stride, B, d.Ts,
                      d.D);
        float *x2 = a->x_mid;
        if (d.cross) { // x_mid2 = x_mid + proj(CrossAttn(q = LN(x_mid), kv = ctx))
            be->layernorm_modulate_train(be, a->h3, a->x_mid, NULL, NULL, 0, B, d.T, d.D,
                                         c->norm1_eps, a->ln3_mean, a->ln3_rstd);
            be->linear(be, a->xq, a->h3, w->xq_w, w->xq_b, d.BT, d.D, d.D, DIT_ACT_NONE);
            be->linear(be, a->xkv, tr->ctx, w->xkv_w, w->xkv_b, B * d.n_ctx, d.D, 2 * d.D,
                       DIT_ACT_NONE);
            keep_act(tr, a->h3, (size_t)d.BT * d.D);
            keep_act(tr, a->xq, (size_t)d.BT * d.D);
            keep_act(tr, a->xkv, (size_t)B * d.n_ctx * 2 * d.D);
            be->cross_attention(be, a->xatt, a->xq, a->xkv, NULL, B, d.T, d.n_ctx, d.H, d.hd,
                                a->xprobs);
            keep_act(tr, a->xatt, (size_t)d.BT * d.D);
            be->linear(be, a->y3, a->xatt, w->xproj_w, w->xproj_b, d.BT, d.D, d.D, DIT_ACT_NONE);
            t_copy(tr, a->x_mid2, a->x_mid, (size_t)d.BT * d.D);
            be->gated_add(be, a->x_mid2, a->y3, NULL, 0, B, d.T, d.D);
            x2 = a->x_mid2;
        }
        be->layernorm_modulate_train(be, a->h2, x2, dit_mod_at(a->mod, d.ml.shift2),
                                     dit_mod_at(a->mod, d.ml.scale2), d.ml.stride, B, d.Ts, d.D,
                                     c->norm2_eps, a->ln2_mean, a->ln2_rstd);
        keep_act(tr, a->h2, (size_t)d.BTs * d.D);
        be->linear(be, a->f1, a->h2, w->fc1_w, w->fc1_b, d.BTs, d.D, d.Dm, DIT_ACT_NONE);
        keep_act(tr, a->f1, (size_t)d.BTs * d.Dm);
        be->gelu_tanh(be, a->g, a->f1, (size_t)d.BTs * d.Dm);
        keep_act(tr, a->g, (size_t)d.BTs * d.Dm);
        be->linear(be, a->y2, a->g, w->fc2_w, w->fc2_b, d.BTs, d.Dm, d.D, DIT_ACT_NONE);
        float *xo = l + 1 < c->depth ? tr->blocks[l + 1].x_in : tr->x_out;
        t_copy(tr, xo, x2, (size_t)d.BTs * d.D);
        be->gated_add(be, xo, a->y2, dit_mod_at(a->mod, d.ml.gate2), d.ml.stride, B, d.Ts, d.D);
    }
    // final layer on the image tokens: adaLN-modulated, or a plain LayerNorm
    const float *xf = tr->x_out;
    if (d.in_context) {
        be->copy_tokens(be, tr->xf, d.T, 0, tr->x_out, d.Ts, d.n_ctx, d.T, B, d.D);
        xf = tr->xf;
    }
    if (dit_final_adaln(c)) {
        be->linear(be, tr->fmod, tr->csilu, m->final_ada_w, m->final_ada_b, B, d.D, 2 * d.D,
                   DIT_ACT_NONE);
        be->layernorm_modulate_train(be, tr->hf, xf, tr->fmod, tr->fmod + d.D, 2 * d.D, B, d.T, d.D,
                                     c->norm_final_eps, tr->lnf_mean, tr->lnf_rstd);
    } else {
        be->layernorm_modulate_train(be, tr->hf, xf, NULL, NULL, 0, B, d.T, d.D, c->norm_final_eps,
                                     tr->lnf_mean, tr->lnf_rstd);
    }
    keep_act(tr, tr->hf, (size_t)d.BT * d.D);
    be->linear(be, tr->fin, tr->hf, m->final_w, m->final_b, d.BT, d.D, d.Pout, DIT_ACT_NONE);
    be->unpatchify(be, tr->out, tr->fin, B, c->out_channels, d.S, d.S, d.p);
}

/* Backward from dout (B, Cout, S, S); adds into tr->grads. */
static void train_backward(dit_trainer *tr, int B, const int32_t *y)
{
    const dit_backend *be = tr->be;
    const dit_model *m = tr->dmodel;
    const dit_config *c = &m->cfg;
    const train_dims d = train_dims_of(c, B);
    const dit_embedder_weights *e = &m->emb;

    be->unpatchify_backward(be, tr->dfin, tr->dout, B, c->out_channels, d.S, d.S, d.p);
    // final linear; dX collects the residual-stream gradient
    be->linear_backward(be, tr->dA, grad_of(tr, m->final_w), grad_of(tr, m->final_b), tr->dfin,
                        tr->hf, m->final_w, d.BT, d.D, d.Pout, NULL, DIT_ACT_NONE);
    float *dxf = d.in_context ? tr->dXf : tr->dX;
    const float *xf = d.in_context ? tr->xf : tr->x_out;
    t_zero(tr, dxf, (size_t)d.BT * d.D);
    t_zero(tr, tr->dcs, (size_t)B * d.D);
    t_zero(tr, tr->dctx, (size_t)B * d.n_ctx * d.D);
    if (dit_final_adaln(c)) {
        t_zero(tr, tr->dmod, (size_t)B * 2 * d.D);
        be->layernorm_modulate_backward(be, dxf, tr->dmod, tr->dmod + d.D, tr->dA, xf, tr->lnf_mean,
                                        tr->lnf_rstd, tr->fmod + d.D, 2 * d.D, B, d.T, d.D);
        be->linear_backward(be, tr->dcs, grad_of(tr, m->final_ada_w), grad_of(tr, m->final_ada_b),
                            tr->dmod, tr->csilu, m->final_ada_w, B, d.D, 2 * d.D, NULL,
                            DIT_ACT_NONE);
    } else {
        be->layernorm_modulate_backward(be, dxf, NULL, NULL, tr->dA, xf, tr->lnf_mean, tr->lnf_rstd,
                                        NULL, 0, B, d.T, d.D);
    }
    if (d.in_context) { /* the conditioning tokens' rows get no gradient from the output */
        t_zero(tr, tr->dX, (size_t)d.BTs * d.D);
        be->copy_tokens(be, tr->dX, d.Ts, d.n_ctx, tr->dXf, d.T, 0, d.T, B, d.D);
    }

    for (int l = c->depth - 1; l >= 0; l--) {
        const dit_block_weights *w = &m->blocks[l];
        block_acts *a = &tr->blocks[l];
        t_zero(tr, tr->dmod, (size_t)B * 6 * d.D);
        float *dm = tr->dmod;
        const float *x2 = d.cross ? a->x_mid2 : a->x_mid;
        // x_out = x2 + gate_mlp * y2
        be->gated_add_backward(be, tr->dA, dit_mod_at(dm, d.ml.gate2), tr->dX, a->y2,
                               dit_mod_at(a->mod, d.ml.gate2), d.ml.stride, B, d.Ts, d.D);
        // dM = d f1: through fc2, then GELU's backward fused in
        be->linear_backward(be, tr->dM, grad_of(tr, w->fc2_w), grad_of(tr, w->fc2_b), tr->dA, a->g,
                            w->fc2_w, d.BTs, d.Dm, d.D, a->f1, DIT_ACT_GELU_TANH);
        be->linear_backward(be, tr->dB, grad_of(tr, w->fc1_w), grad_of(tr, w->fc1_b), tr->dM, a->h2,
                            w->fc1_w, d.BTs, d.D, d.Dm, NULL, DIT_ACT_NONE);
        be->layernorm_modulate_backward(
            be, tr->dX, dit_mod_at(dm, d.ml.shift2), dit_mod_at(dm, d.ml.scale2), tr->dB, x2,
            a->ln2_mean, a->ln2_rstd, dit_mod_at(a->mod, d.ml.scale2), d.ml.stride, B, d.Ts, d.D);
        if (d.cross) { // x_mid2 = x_mid + y3, y3 = proj(CrossAttn(xq(LN(x_mid)), xkv(ctx)))
            be->linear_backward(be, tr->dB, grad_of(tr, w->xproj_w), grad_of(tr, w->xproj_b),
                                tr->dX, a->xatt, w->xproj_w, d.BT, d.D, d.D, NULL, DIT_ACT_NONE);
            be->cross_attention_backward(be, tr->dA, tr->dkv, tr->dB, a->xq, a->xkv, a->xprobs, B,
                                         d.T, d.n_ctx, d.H, d.hd);
            be->linear_backward(be, tr->dtmp, grad_of(tr, w->xkv_w), grad_of(tr, w->xkv_b), tr->dkv,
                                tr->ctx, w->xkv_w, B * d.n_ctx, d.D, 2 * d.D, NULL, DIT_ACT_NONE);
            add_into(tr, tr->dctx, tr->dtmp, (size_t)B * d.n_ctx * d.D);
            be->linear_backward(be, tr->dB, grad_of(tr, w->xq_w), grad_of(tr, w->xq_b), tr->dA,
                                a->h3, w->xq_w, d.BT, d.D, d.D, NULL, DIT_ACT_NONE);
            be->layernorm_modulate_backward(be, tr->dX, NULL, NULL, tr->dB, a->x_mid, a->ln3_mean,
                                            a->ln3_rstd, NULL, 0, B, d.T, d.D);
        }
        // x_mid = x_in + gate_msa * y1
        be->gated_add_backward(be, tr->dA, dit_mod_at(dm, d.ml.gate1), tr->dX, a->y1,
                               dit_mod_at(a->mod, d.ml.gate1), d.ml.stride, B, d.Ts, d.D);
        be->linear_backward(be, tr->dB, grad_of(tr, w->proj_w), grad_of(tr, w->proj_b), tr->dA,
                            a->att, w->proj_w, d.BTs, d.D, d.D, NULL, DIT_ACT_NONE);
        be->attention_backward(be, tr->dqkv, tr->dB, a->qkv, a->probs, B, d.Ts, d.H, d.hd,
                               tr->scratch);
        be->linear_backward(be, tr->dA, grad_of(tr, w->qkv_w), grad_of(tr, w->qkv_b), tr->dqkv,
                            a->h1, w->qkv_w, d.BTs, d.D, 3 * d.D, NULL, DIT_ACT_NONE);
        be->layernorm_modulate_backward(
            be, tr->dX, dit_mod_at(dm, d.ml.shift1), dit_mod_at(dm, d.ml.scale1), tr->dA, a->x_in,
            a->ln1_mean, a->ln1_rstd, dit_mod_at(a->mod, d.ml.scale1), d.ml.stride, B, d.Ts, d.D);
        if (d.chunks) { // adaLN: mod = Linear(csilu)
            be->linear_backward(be, tr->dtmp, grad_of(tr, w->ada_w), grad_of(tr, w->ada_b),
                                tr->dmod, tr->csilu, w->ada_w, B, d.D, d.chunks * d.D, NULL,
                                DIT_ACT_NONE);
            add_into(tr, tr->dcs, tr->dtmp, (size_t)B * d.D);
        }
    }
    // in-context: split dX into the conditioning tokens' and the image tokens'
    const float *dtok = tr->dX;
    if (d.in_context) {
        be->copy_tokens(be, tr->dtmp, d.n_ctx, 0, tr->dX, d.Ts, 0, d.n_ctx, B, d.D);
        add_into(tr, tr->dctx, tr->dtmp, (size_t)B * d.n_ctx * d.D);
        be->copy_tokens(be, tr->dXf, d.T, 0, tr->dX, d.Ts, d.n_ctx, d.T, B, d.D);
        dtok = tr->dXf;
    }
    // patch embed (the input needs no gradient)
    be->linear_backward(be, NULL, grad_of(tr, m->x_embed_w), grad_of(tr, m->x_embed_b), dtok,
                        tr->tokens, m->x_embed_w, d.BT, d.Pin, d.D, NULL, DIT_ACT_NONE);
    // conditioning: csilu = SiLU(c), c = t_emb + table[y]; ctx = (t_emb, table[y]);
    // t_emb = t_mlp2(SiLU(t_mlp0(temb))). dcs becomes d t_emb.
    be->act_backward(be, tr->dcs, tr->c, tr->dcs, (size_t)B * d.D, DIT_ACT_SILU);
    if (e->y_table)
        be->add_embedding_backward(be, grad_of(tr, e->y_table), tr->dcs, y, B, d.D);
    if (!d.chunks) {
        be->copy_tokens(be, tr->dtmp, 1, 0, tr->dctx, d.n_ctx, 0, 1, B, d.D);
        add_into(tr, tr->dcs, tr->dtmp, (size_t)B * d.D);
        if (e->y_table) {
            be->copy_tokens(be, tr->dtmp, 1, 0, tr->dctx, d.n_ctx, 1, 1, B, d.D);
            be->add_embedding_backward(be, grad_of(tr, e->y_table), tr->dtmp, y, B, d.D);
        }
    }
    be->linear_backward(be, tr->dtmp, grad_of(tr, e->t_mlp2_w), grad_of(tr, e->t_mlp2_b), tr->dcs,
                        tr->th, e->t_mlp2_w, B, d.D, d.D, tr->th_pre, DIT_ACT_SILU);
    be->linear_backward(be, NULL, grad_of(tr, e->t_mlp0_w), grad_of(tr, e->t_mlp0_b), tr->dtmp,
                        tr->tfreq, e->t_mlp0_w, B, c->freq_dim, d.D, NULL, DIT_ACT_NONE);
}

/* The official DiT's learned-variance term (Nichol & Dhariwal's L_vlb with
 * a frozen mean): the output's second half v sets
 * log var = (v + 1)/2 log beta_t + (1 - v)/2 log beta~_t, the mean comes from
 * the (detached) epsilon half; the loss is KL(q(x_{t-1}|x_t, x_0) || p) in
 * bits, or at t = 0 the discretised Gaussian NLL of x_0, averaged over the
 * elements. Returns the sample's term; adds d(term)/dv * scale into dv. */
static double cdf_approx(double x) /* the tanh approximation of Phi the original uses */
{
    return 0.5 * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
static double cdf_approx_grad(double x)
{
    const double u = sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x), th = tanh(u);
    return 0.5 * (1.0 - th * th) * sqrt(2.0 / M_PI) * (1.0 + 3.0 * 0.044715 * x * x);
}

static double vlb_term(const double *ac, int t, const float *eps, const float *v, const float *xt,
                       const float *x0, size_t n, float *dv, double scale)
{
    const double a = ac[t], a_prev = t > 0 ? ac[t - 1] : 1.0;
    const double beta = 1.0 - a / a_prev;
    /* beta~_t, clipped at t = 0 to beta~_1 as the original does */
    const double a1 = ac[1], beta1 = 1.0 - a1 / ac[0];
    const double post_var =
        t > 0 ? beta * (1.0 - a_prev) / (1.0 - a) : beta1 * (1.0 - ac[0]) / (1.0 - a1);
    const double min_log = log(post_var), max_log = log(beta);
    const double coef1 = beta * sqrt(a_prev) / (1.0 - a);
    const double coef2 = (1.0 - a_prev) * sqrt(1.0 - beta) / (1.0 - a);
    const double r1 = sqrt(1.0 / a), r2 = sqrt(1.0 / a - 1.0);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        const double x0hat = r1 * xt[i] - r2 * eps[i];
        const double mu = coef1 * x0hat + coef2 * xt[i];
        const double frac = (v[i] + 1.0) / 2.0;
        const double lv = frac * max_log + (1.0 - frac) * min_log;
        double term, dterm_dlv;
        if (t > 0) {
            const double mu_true = coef1 * x0[i] + coef2 * xt[i], d = mu_true - mu;
            const double e1 = exp(min_log - lv), e2 = d * d * exp(-lv);
            term = 0.5 * (-1.0 + lv - min_log + e1 + e2) / M_LN2;
            dterm_dlv = 0.5 * (1.0 - e1 - e2) / M_LN2;
        } else {
            const double ls = 0.5 * lv, inv = exp(-ls), cen = x0[i] - mu;
            const double zp = inv * (cen + 1.0 / 255.0), zm = inv * (cen - 1.0 / 255.0);
            const double cp = cdf_approx(zp), cm = cdf_approx(zm);
            double logp, dlogp_dls; /* d z / d ls = -z */
            if (x0[i] < -0.999) {
                logp = log(fmax(cp, 1e-12));
                dlogp_dls = cp > 1e-12 ? -cdf_approx_grad(zp) * zp / cp : 0.0;
            } else if (x0[i] > 0.999) {
                logp = log(fmax(1.0 - cm, 1e-12));
                dlogp_dls = 1.0 - cm > 1e-12 ? cdf_approx_grad(zm) * zm / (1.0 - cm) : 0.0;
            } else {
                const double delta = cp - cm;
                logp = log(fmax(delta, 1e-12));
                dlogp_dls = delta > 1e-12
                                ? (-cdf_approx_grad(zp) * zp + cdf_approx_grad(zm) * zm) / delta
                                : 0.0;
            }
            term = -logp / M_LN2;
            dterm_dlv = -dlogp_dls * 0.5 / M_LN2;
        }
        sum += term;
        dv[i] += (float)(scale * dterm_dlv * 0.5 * (max_log - min_log) / n);
    }
    return sum / n;
}

/* loss over the first C output channels (plus the VLB term on the second
 * half for learned-sigma models); fills tr->dout with d(mean loss).
 * xt, x_start, tvec: the step's noisy input, clean images and timesteps. */
static double loss_and_grad(dit_trainer *tr, int B, const float *target, const float *xt,
                            const float *x_start, float *per_sample)
{
    const dit_config *c = &tr->model->cfg;
    const train_dims dims = train_dims_of(c, B);
    const size_t chw = dims.chw, ohw = dims.ohw;
    const double N = (double)B * chw;
    const bool l1 = tr->cfg.objective == DIT_OBJ_X0_L1;
    const bool vlb = c->learn_sigma && x_start;
    double total = 0;
    memset(tr->h_dout, 0, (size_t)B * ohw * sizeof(float));
    for (int b = 0; b < B; b++) {
        const float *o = tr->h_out + (size_t)b * ohw;
        double s = 0;
        for (size_t i = 0; i < chw; i++) {
            const double d = (double)o[i] - target[(size_t)b * chw + i];
            s += l1 ? fabs(d) : d * d;
            tr->h_dout[(size_t)b * ohw + i] = (float)((l1 ? (d > 0   ? 1.0
                                                             : d < 0 ? -1.0
                                                                     : 0.0)
                                                          : 2.0 * d) /
                                                      N);
        }
        double sample = s / chw;
        if (vlb)
            sample += vlb_term(tr->sched->alphas_cumprod, (int)tr->h_tvec[b], o, o + chw,
                               xt + (size_t)b * chw, x_start + (size_t)b * chw, chw,
                               tr->h_dout + (size_t)b * ohw + chw, 1.0 / B);
        if (per_sample)
            per_sample[b] = (float)sample;
        total += sample;
    }
    return total / B;
}

/* noisy input and target for sample b at train-step index t */
static void make_example(const dit_trainer *tr, const float *x0, const float *noise, int t,
                         size_t n, float *xt, float *target)
{
    const double a = tr->sched->alphas_cumprod[t], sa = sqrt(a), sb = sqrt(1.0 - a);
    for (size_t i = 0; i < n; i++) {
        xt[i] = (float)(sa * x0[i] + sb * noise[i]);
        switch (tr->cfg.objective) {
        case DIT_OBJ_EPS_MSE: target[i] = noise[i]; break;
        case DIT_OBJ_X0_L1: target[i] = x0[i]; break;
        default: target[i] = (float)(sa * noise[i] - sb * x0[i]); break;
        }
    }
}

static dit_status check_batch(dit_ctx *ctx, const dit_trainer *tr, const float *images,
                              const int32_t *labels, int B)
{
    const dit_config *c = &tr->model->cfg;
    for (int b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] > c->num_classes)
            return dit_error(ctx, DIT_ERR_INVALID_ARG,
                             "label %d of sample %d is out of range 0..%d", labels[b], b,
                             c->num_classes);
    const size_t n = (size_t)B * train_dims_of(c, B).chw;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(images[i]))
            return dit_error(ctx, DIT_ERR_INVALID_ARG, "training image holds NaN or Inf");
    return DIT_OK;
}

/* The forward on the staged inputs (h_xt, h_tvec, h_yvec), its output
 * fetched to the host, the loss there; with `backward`, dout staged and the
 * gradients in d_grads. images: the clean batch (host) for the VLB term. */
static dit_status run_batch(dit_trainer *tr, int B, const float *images, bool backward,
                            float *per_sample, double *loss)
{
    const train_dims d = train_dims_of(&tr->model->cfg, B);
    const size_t img = (size_t)B * d.chw, img_out = (size_t)B * d.ohw;
    dit_status st;
    if ((st = to_trainer(tr, tr->xt, tr->h_xt, img * sizeof(float))) ||
        (st = to_trainer(tr, tr->tvec, tr->h_tvec, (size_t)B * sizeof(float))) ||
        (st = to_trainer(tr, tr->yvec, tr->h_yvec, (size_t)B * sizeof(int32_t))))
        return st;
    train_forward(tr, B, tr->xt, tr->tvec, tr->yvec);
    if ((st = from_trainer(tr, tr->h_out, tr->out, img_out * sizeof(float))))
        return st;
    *loss = loss_and_grad(tr, B, tr->target, tr->h_xt, images, per_sample);
    if (!backward)
        return DIT_OK;
    if ((st = to_trainer(tr, tr->dout, tr->h_dout, img_out * sizeof(float))))
        return st;
    t_zero(tr, tr->d_grads, tr->n);
    train_backward(tr, B, tr->yvec);
    return DIT_OK;
}

dit_status dit_trainer_set_parallel(dit_ctx *ctx, dit_trainer *tr, const dit_train_parallel *p)
{
    if (!p || p->size < 1 || p->rank < 0 || p->rank >= p->size || tr->cfg.batch % p->size ||
        (p->size > 1 && !p->all_sum))
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "data parallelism: rank %d of %d, a batch of %d (it must divide by the "
                         "ranks) and an all-reduce",
                         p ? p->rank : -1, p ? p->size : 0, tr->cfg.batch);
    tr->par = *p;
    return DIT_OK;
}

/* every rank's gradients and loss summed and averaged (a no-op alone) */
static dit_status average_ranks(dit_trainer *tr, double *loss)
{
    const dit_train_parallel *p = &tr->par;
    if (p->size <= 1 || !p->all_sum)
        return DIT_OK;
    dit_status st;
    if ((st = from_trainer(tr, tr->grads, tr->d_grads, tr->n * sizeof(float))))
        return st;
    float l = (float)*loss;
    if ((st = p->all_sum(p->user, tr->grads, tr->n)) || (st = p->all_sum(p->user, &l, 1)))
        return dit_error(tr->owner, st, "the all-reduce of rank %d failed", p->rank);
    if ((st = to_trainer(tr, tr->d_grads, tr->grads, tr->n * sizeof(float))))
        return st;
    tr->be->affine(tr->be, tr->d_grads, tr->d_grads, tr->n, 1.0f / (float)p->size, 0.0f);
    *loss = l / p->size;
    return DIT_OK;
}

dit_status dit_trainer_step(dit_ctx *ctx, dit_trainer *tr, const float *images,
                            const int32_t *labels, float *loss)
{
    /* this rank's shard of the global batch: samples b0 .. b0 + B - 1 */
    const int ranks = tr->par.size > 1 ? tr->par.size : 1;
    const int B = tr->cfg.batch / ranks, b0 = (ranks > 1 ? tr->par.rank : 0) * B;
    dit_status st = check_batch(ctx, tr, images, labels, B);
    if (st || (st = reserve_acts(ctx, tr, B)))
        return st;
    const dit_config *c = &tr->model->cfg;
    const size_t chw = train_dims_of(c, B).chw;
    const int Tn = tr->cfg.sched.train_steps;
    const uint64_t seed = tr->cfg.seed, step = (uint64_t)tr->step;
    /* this step's randomness: counter (step, sample), streams by purpose */
    dit_randn(seed ^ 0x5eedULL, (uint32_t)(step & 0x7fffffff), (size_t)b0 * chw, (size_t)B * chw,
              tr->noise);
    for (int b = 0; b < B; b++) {
        const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        const uint32_t ctr[4] = {(uint32_t)step, (uint32_t)(step >> 32), (uint32_t)(b0 + b), 0x71u};
        uint32_t u[4];
        dit_philox4x32_10(ctr, key, u);
        const int t = (int)(u[0] % (uint32_t)Tn);
        const bool drop = u[1] < (uint32_t)(tr->cfg.class_dropout * 4294967296.0);
        tr->h_tvec[b] = (float)t;
        tr->h_yvec[b] = drop ? c->num_classes : labels[b];
        make_example(tr, images + b * chw, tr->noise + b * chw, t, chw, tr->h_xt + b * chw,
                     tr->target + b * chw);
    }
    double l = 0;
    if ((st = run_batch(tr, B, images, true, NULL, &l)) || (st = average_ranks(tr, &l)))
        return st;

    /* clip, warm-up, AdamW, EMA */
    const dit_backend *be = tr->be;
    float sumsq = 0;
    be->sum_squares(be, tr->d_sumsq, tr->d_grads, tr->n);
    if (!tr->on_dev)
        sumsq = tr->d_sumsq[0];
    else if ((st = from_trainer(tr, &sumsq, tr->d_sumsq, sizeof sumsq)))
        return st;
    const double norm = sqrt((double)sumsq);
    if (!isfinite(norm))
        return dit_error(ctx, DIT_ERR_BACKEND,
                         "gradient is not finite at step %lld (lower the learning rate?)",
                         (long long)tr->step);
    if (tr->cfg.grad_clip > 0 && norm > tr->cfg.grad_clip)
        be->affine(be, tr->d_grads, tr->d_grads, tr->n, (float)(tr->cfg.grad_clip / norm), 0.0f);
    tr->step++;
    double lr = tr->cfg.lr;
    if (tr->cfg.warmup > 0 && tr->step < tr->cfg.warmup)
        lr *= (double)tr->step / tr->cfg.warmup;
    be->adamw(be, tr->d_params, tr->d_grads, tr->d_m, tr->d_v, tr->n, (float)lr,
              (float)tr->cfg.beta1, (float)tr->cfg.beta2, (float)tr->cfg.eps,
              (float)tr->cfg.weight_decay, tr->step);
    /* with warm-up the EMA follows the weights closely early on instead of
     * carrying the random initialisation for thousands of steps */
    double decay = tr->cfg.ema_decay;
    if (tr->cfg.ema_warmup)
        decay = fmin(decay, (1.0 + (double)tr->step) / (10.0 + (double)tr->step));
    be->ema_update(be, tr->d_ema, tr->d_params, tr->n, (float)decay);
    if (tr->on_dev)
        tr->host_stale = true;
    else
        dit_model_touch(tr->model);
    if (loss)
        *loss = (float)l;
    return DIT_OK;
}

dit_status dit_trainer_eval_loss(dit_ctx *ctx, dit_trainer *tr, const float *images,
                                 const int32_t *labels, const int32_t *t, uint32_t stream,
                                 float *per_sample)
{
    const int B = tr->cfg.batch;
    dit_status st = check_batch(ctx, tr, images, labels, B);
    if (st || (st = reserve_acts(ctx, tr, B)))
        return st;
    const dit_config *c = &tr->model->cfg;
    const size_t chw = train_dims_of(c, B).chw;
    dit_randn(tr->cfg.seed ^ 0xe7a1ULL, stream, 0, (size_t)B * chw, tr->noise);
    for (int b = 0; b < B; b++) {
        if (t[b] < 0 || t[b] >= tr->cfg.sched.train_steps)
            return dit_error(ctx, DIT_ERR_INVALID_ARG, "timestep %d out of range", t[b]);
        tr->h_tvec[b] = (float)t[b];
        tr->h_yvec[b] = labels[b];
        make_example(tr, images + b * chw, tr->noise + b * chw, t[b], chw, tr->h_xt + b * chw,
                     tr->target + b * chw);
    }
    double l;
    return run_batch(tr, B, images, false, per_sample, &l);
}

dit_status dit_trainer_grad(dit_ctx *ctx, dit_trainer *tr, const float *x_noisy, const float *t,
                            const int32_t *labels, const float *target, const float *x_start,
                            float *loss)
{
    const int B = tr->cfg.batch;
    dit_status st = reserve_acts(ctx, tr, B);
    if (st)
        return st;
    const dit_config *c = &tr->model->cfg;
    const size_t img = (size_t)B * train_dims_of(c, B).chw;
    for (int b = 0; b < B; b++) {
        if (x_start && c->learn_sigma &&
            !(t[b] >= 0 && t[b] < tr->cfg.sched.train_steps && t[b] == floorf(t[b])))
            return dit_error(ctx, DIT_ERR_INVALID_ARG, "the VLB term needs integer timesteps");
        tr->h_tvec[b] = t[b];
        tr->h_yvec[b] = labels[b];
    }
    memcpy(tr->h_xt, x_noisy, img * sizeof(float));
    memcpy(tr->target, target, img * sizeof(float));
    double l = 0;
    if ((st = run_batch(tr, B, x_start, true, NULL, &l)))
        return st;
    if (loss)
        *loss = (float)l;
    return DIT_OK;
}

/* (on a device these bring the host copies up to date first) */
float *dit_trainer_grads(dit_trainer *tr)
{
    from_trainer(tr, tr->grads, tr->d_grads, tr->n * sizeof(float));
    return tr->grads;
}

float *dit_trainer_ema(dit_trainer *tr)
{
    sync_host(tr);
    return tr->ema;
}
int64_t dit_trainer_step_count(const dit_trainer *tr) { return tr->step; }
dit_model *dit_trainer_model(dit_trainer *tr)
{
    sync_host(tr);
    return tr->model;
}
const dit_train_config *dit_trainer_config(const dit_trainer *tr) { return &tr->cfg; }

/* ---- checkpoints -------------------------------------------------------------------- */

#define CKPT_FORMAT "dit-checkpoint"
#define CKPT_VERSION "1"

static char *config_json(const dit_trainer *tr)
{
    const dit_config *c = &tr->model->cfg;
    const dit_train_config *t = &tr->cfg;
    return g_strdup_printf(
        "{\"in_channels\": %d, \"learn_sigma\": %d, \"sample_size\": %d, \"patch_size\": %d, "
        "\"hidden_size\": %d, \"depth\": %d, \"num_heads\": %d, \"mlp_hidden\": %d, "
        "\"num_classes\": %d, \"freq_dim\": %d, \"conditioning\": %d, \"ema_warmup\": %d, "
        "\"bf16_activations\": %d, "
        "\"objective\": %d, \"schedule\": %d, \"train_steps\": %d, \"beta_start\": %.17g, "
        "\"beta_end\": %.17g, \"batch\": %d, \"lr\": %.17g, \"warmup\": %d, \"beta1\": %.17g, "
        "\"beta2\": %.17g, \"eps\": %.17g, \"weight_decay\": %.17g, \"grad_clip\": %.17g, "
        "\"ema_decay\": %.17g, \"class_dropout\": %.17g, \"seed\": %" G_GUINT64_FORMAT "}",
        c->in_channels, c->learn_sigma, c->sample_size, c->patch_size, c->hidden_size, c->depth,
        c->num_heads, c->mlp_hidden, c->num_classes, c->freq_dim, (int)c->conditioning,
        t->ema_warmup ? 1 : 0, t->bf16_activations ? 1 : 0, (int)t->objective,
        (int)t->sched.schedule, t->sched.train_steps, t->sched.beta_start, t->sched.beta_end,
        t->batch, t->lr, t->warmup, t->beta1, t->beta2, t->eps, t->weight_decay, t->grad_clip,
        t->ema_decay, t->class_dropout, (guint64)t->seed);
}

dit_status dit_trainer_save(dit_ctx *ctx, const dit_trainer *tr, const char *path)
{
    dit_status sync = sync_host((dit_trainer *)tr); /* the state itself is not changed */
    if (sync)
        return sync;
    const int64_t n = (int64_t)tr->n;
    st_write_tensor ts[4] = {
        {"params", ST_F32, 1, {n}, tr->model->params, NULL},
        {"ema", ST_F32, 1, {n}, tr->ema, NULL},
        {"adam_m", ST_F32, 1, {n}, tr->m, NULL},
        {"adam_v", ST_F32, 1, {n}, tr->v, NULL},
    };
    char *cfg = config_json(tr);
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)tr->step);
    const char *keys[] = {"format", "version", "step", "config"};
    const char *vals[] = {CKPT_FORMAT, CKPT_VERSION, step, cfg};
    dit_status st = st_write(ctx, path, ts, 4, keys, vals, 4);
    g_free(cfg);
    return st;
}

static int jint(JsonObject *o, const char *k)
{
    return (int)json_object_get_int_member_with_default(o, k, 0);
}
static double jdbl(JsonObject *o, const char *k)
{
    return json_object_get_double_member_with_default(o, k, 0);
}

dit_status dit_trainer_load(dit_ctx *ctx, const char *path, dit_trainer **out)
{
    *out = NULL;
    st_file *f = NULL;
    dit_status st = st_open(ctx, path, &f);
    if (st)
        return st;
    const char *fmt = st_meta(f, "format"), *ver = st_meta(f, "version");
    const char *cfg_s = st_meta(f, "config"), *step_s = st_meta(f, "step");
    dit_model *m = NULL;
    dit_trainer *tr = NULL;
    JsonParser *parser = NULL;
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0 || !ver || !cfg_s || !step_s) {
        st = dit_error(ctx, DIT_ERR_FORMAT, "%s: not a dit training checkpoint", path);
        goto out;
    }
    if (strcmp(ver, CKPT_VERSION) != 0) {
        st = dit_error(ctx, DIT_ERR_FORMAT, "%s: checkpoint version %s, this build reads %s", path,
                       ver, CKPT_VERSION);
        goto out;
    }
    char *src = g_strdup_printf("%s: checkpoint config", path);
    JsonObject *o = dit_json_object(ctx, src, cfg_s, -1, &parser);
    g_free(src);
    if (!o) {
        st = DIT_ERR_FORMAT;
        goto out;
    }
    dit_config c = {0};
    c.in_channels = jint(o, "in_channels"), c.learn_sigma = jint(o, "learn_sigma");
    c.sample_size = jint(o, "sample_size"), c.patch_size = jint(o, "patch_size");
    c.hidden_size = jint(o, "hidden_size"), c.depth = jint(o, "depth");
    c.num_heads = jint(o, "num_heads"), c.mlp_hidden = jint(o, "mlp_hidden");
    c.num_classes = jint(o, "num_classes"), c.freq_dim = jint(o, "freq_dim");
    c.conditioning = (dit_conditioning)jint(o, "conditioning"); /* absent: adaLN-Zero */
    c.out_channels = c.learn_sigma ? 2 * c.in_channels : c.in_channels;
    { /* the config must describe exactly the stored block (checked against the
         * file before anything that size is allocated) */
        const st_tensor *pt = st_find(f, "params");
        const size_t need = c.hidden_size > 0 && c.hidden_size <= 16384 && c.mlp_hidden > 0 &&
                                    c.mlp_hidden <= 262144 && c.num_classes >= 0 &&
                                    c.num_classes <= 1000000 && c.freq_dim >= 2 &&
                                    c.freq_dim <= 16384 && c.in_channels > 0 &&
                                    c.in_channels <= 4096 && c.patch_size > 0 &&
                                    c.patch_size <= 64 && (unsigned)c.conditioning < DIT_COND_COUNT
                                ? dit_config_param_floats(&c)
                                : 0;
        if (!pt || pt->ndim != 1 || need == 0 || (size_t)pt->shape[0] != need) {
            st =
                dit_error(ctx, DIT_ERR_FORMAT,
                          "%s: the checkpoint's config does not match its stored parameters", path);
            goto out;
        }
    }
    if ((st = dit_model_create(ctx, &c, &m)))
        goto out;
    dit_train_config t;
    dit_train_config_default(&t);
    t.objective = (dit_objective)jint(o, "objective");
    t.sched.schedule = (dit_schedule)jint(o, "schedule");
    t.sched.train_steps = jint(o, "train_steps");
    t.sched.beta_start = jdbl(o, "beta_start"), t.sched.beta_end = jdbl(o, "beta_end");
    t.batch = jint(o, "batch"), t.lr = jdbl(o, "lr"), t.warmup = jint(o, "warmup");
    t.beta1 = jdbl(o, "beta1"), t.beta2 = jdbl(o, "beta2"), t.eps = jdbl(o, "eps");
    t.weight_decay = jdbl(o, "weight_decay"), t.grad_clip = jdbl(o, "grad_clip");
    t.ema_decay = jdbl(o, "ema_decay"), t.class_dropout = jdbl(o, "class_dropout");
    t.ema_warmup = jint(o, "ema_warmup") != 0; /* absent in older checkpoints: off */
    t.bf16_activations = jint(o, "bf16_activations") != 0;
    t.seed = (uint64_t)json_object_get_int_member_with_default(o, "seed", 0);
    if ((st = dit_trainer_new(ctx, m, &t, &tr)))
        goto out;
    static const char *const names[4] = {"params", "ema", "adam_m", "adam_v"};
    float *dst[4] = {m->params, tr->ema, tr->m, tr->v};
    for (int i = 0; i < 4 && st == DIT_OK; i++) {
        const st_tensor *ts = st_find(f, names[i]);
        if (!ts || ts->ndim != 1 || ts->dtype != ST_F32 || (size_t)ts->shape[0] != tr->n) {
            st = dit_error(ctx, DIT_ERR_FORMAT,
                           "%s: tensor '%s' is missing or does not fit the config (%zu floats)",
                           path, names[i], tr->n);
            break;
        }
        st = st_read_f32(ctx, f, ts, dst[i]);
    }
    if (st == DIT_OK)
        st = upload_state(tr);
    if (st == DIT_OK) {
        dit_model_touch(m);
        tr->step = g_ascii_strtoll(step_s, NULL, 10);
        tr->owns_model = true;
        *out = tr;
        tr = NULL;
        m = NULL;
    }
out:
    dit_trainer_free(tr); /* does not own m yet */
    dit_model_free(m);
    if (parser)
        g_object_unref(parser);
    st_close(f);
    return st;
}
