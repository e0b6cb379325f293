/* VAEs: the Stable Diffusion AutoencoderKL and the tiny TAESD autoencoder.
 *
 * AutoencoderKL (diffusers naming; fixed choices of its constructor: SiLU,
 * GroupNorm eps 1e-6 with affine, one attention head over all positions in
 * the mid block, output_scale_factor 1, no dropout):
 *   encoder: conv_in; per level: layers_per_block ResnetBlock2D, then (not on
 *            the last level) pad (0,1,0,1) + 3x3 stride-2 conv; mid = resnet,
 *            attention, resnet; GroupNorm + SiLU; conv_out -> 2L; quant_conv
 *   decoder: post_quant_conv; conv_in; mid; per level (channels reversed):
 *            layers_per_block + 1 resnets, then (not last) nearest 2x + 3x3
 *            conv; GroupNorm + SiLU; conv_out
 *   resnet:  x + conv2(SiLU(GN2(conv1(SiLU(GN1(x)))))), x through a 1x1
 *            conv_shortcut when the channel count changes
 * AutoencoderTiny (TAESD): a Sequential of 3x3 convs and blocks
 *   relu(conv(relu(conv(relu(conv(x))))) + skip(x)); the encoder maps
 *   [-1, 1] to [0, 1] first, the decoder clamps latents with 3 tanh(z / 3)
 *   and maps [0, 1] back to [-1, 1].
 * Tensors are NCHW floats; every activation lives in the context arena.
 * Runs on the context's device: on CUDA the weights are uploaded once per
 * VAE, activations live in the device arena, and each call moves only its
 * input and output across. Loading (config, naming, tensor names, weights)
 * is in vae-load.c. */
#include "internal/vae.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dit_status dit_vae_set_tiling(dit_ctx *ctx, dit_vae *v, int tile_sample, float overlap)
{
    if (!v)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_vae_set_tiling: NULL vae");
    if (tile_sample < 0 || (tile_sample && tile_sample % v->info.downscale) ||
        !(overlap >= 0.0f && overlap < 1.0f))
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "tile size %d must be a multiple of %d and overlap %g in [0, 1)",
                         tile_sample, v->info.downscale, (double)overlap);
    v->tile_sample = tile_sample;
    v->tile_overlap = overlap;
    return DIT_OK;
}

/* ---- execution -------------------------------------------------------------------- */

/* The forward runs twice: a dry run that only measures (largest activation,
 * conv scratch, attention buffers), then the real one on arena memory. Three
 * rotating activation buffers are enough: a resnet holds its input, one
 * intermediate and the conv output. */
#define N_BUFS 3

typedef struct {
    float *d; /* (B, c, h, w) */
    int c, h, w;
    int buf; /* which rotating buffer holds it; -1 = outside */
} tensor;

typedef struct {
    const dit_backend *be;
    int B;
    bool dry;
    size_t buf_floats, scratch_floats, attn_floats, attn_scratch_floats;
    double flops;      /* counted by the dry run */
    size_t out_floats; /* the result's size, found by the dry run */
    float *buf[N_BUFS];
    bool busy[N_BUFS];
    float *scratch, *aq, *ak, *av, *ao, *ascratch;
} vx;

static size_t tsize(const vx *x, int c, int h, int w) { return (size_t)x->B * c * h * w; }

static tensor t_new(vx *x, int c, int h, int w)
{
    tensor t = {NULL, c, h, w, -1};
    size_t n = tsize(x, c, h, w);
    if (n > x->buf_floats && x->dry)
        x->buf_floats = n;
    for (int i = 0; i < N_BUFS; i++)
        if (!x->busy[i]) {
            x->busy[i] = true;
            t.buf = i;
            t.d = x->buf[i];
            return t;
        }
    /* unreachable by construction: every caller frees before it needs a fourth */
    return t;
}

static void t_free(vx *x, tensor *t)
{
    if (t->buf >= 0)
        x->busy[t->buf] = false;
    t->buf = -1;
}

/* out = act(conv(in)); pads: top, left, bottom, right */
static tensor t_conv(vx *x, const tensor *in, const conv_w *cw, int stride, int pt, int pl, int pb,
                     int pr, bool up2, dit_act act)
{
    const int Hv = up2 ? 2 * in->h : in->h, Wv = up2 ? 2 * in->w : in->w;
    dit_conv_desc d = {
        .B = x->B,
        .Cin = cw->cin,
        .H = in->h,
        .W = in->w,
        .Cout = cw->cout,
        .k = cw->k,
        .stride = stride,
        .pad_top = pt,
        .pad_left = pl,
        .Ho = (Hv + pt + pb - cw->k) / stride + 1,
        .Wo = (Wv + pl + pr - cw->k) / stride + 1,
        .up2 = up2,
    };
    tensor out = t_new(x, cw->cout, d.Ho, d.Wo);
    if (x->dry) {
        x->flops += 2.0 * x->B * d.Cout * d.Cin * d.k * d.k * d.Ho * d.Wo;
        size_t s = x->be->conv2d_scratch(x->be, &d);
        x->scratch_floats = s > x->scratch_floats ? s : x->scratch_floats;
    } else {
        x->be->conv2d(x->be, out.d, in->d, cw->w, cw->b, &d, act, x->scratch);
    }
    return out;
}

/* out = t: the run's result, in the backend's memory (affine as a copy) */
static void t_result(vx *x, float *out, const tensor *t)
{
    x->out_floats = tsize(x, t->c, t->h, t->w);
    if (!x->dry)
        x->be->affine(x->be, out, t->d, x->out_floats, 1.0f, 0.0f);
}

/* 3x3, stride 1, pad 1 */
static tensor t_conv3(vx *x, const tensor *in, const conv_w *cw, dit_act act)
{
    return t_conv(x, in, cw, 1, 1, 1, 1, 1, false, act);
}

static void t_norm(vx *x, tensor *t, const norm_w *n, int groups, dit_act act)
{
    if (!x->dry)
        x->be->group_norm(x->be, t->d, t->d, n->w, n->b, x->B, t->c, t->h * t->w, groups,
                          VAE_GN_EPS, act);
}

static void t_add(vx *x, tensor *a, const tensor *b, dit_act act)
{
    if (!x->dry)
        x->be->add_act(x->be, a->d, b->d, tsize(x, a->c, a->h, a->w), act);
}

/* ResnetBlock2D; consumes `in`, returns the output */
static tensor resnet(vx *x, tensor in, const resnet_w *r, int groups)
{
    // h = conv1(SiLU(GN1(x))); GN1 must not touch x (the shortcut needs it),
    // so normalise a copy: the conv reads it through one extra buffer.
    tensor a = t_new(x, in.c, in.h, in.w);
    if (!x->dry)
        x->be->group_norm(x->be, a.d, in.d, r->norm1.w, r->norm1.b, x->B, in.c, in.h * in.w, groups,
                          VAE_GN_EPS, DIT_ACT_SILU);
    tensor h = t_conv3(x, &a, &r->conv1, DIT_ACT_NONE);
    t_free(x, &a);
    t_norm(x, &h, &r->norm2, groups, DIT_ACT_SILU);
    tensor o = t_conv3(x, &h, &r->conv2, DIT_ACT_NONE);
    t_free(x, &h);
    if (r->shortcut.w) {
        tensor sc = t_conv(x, &in, &r->shortcut, 1, 0, 0, 0, 0, false, DIT_ACT_NONE);
        t_add(x, &o, &sc, DIT_ACT_NONE);
        t_free(x, &sc);
    } else {
        t_add(x, &o, &in, DIT_ACT_NONE);
    }
    t_free(x, &in);
    return o;
}

/* Single-head self-attention over all positions, residual; in place on t. */
static void spatial_attn(vx *x, tensor *t, const attn_w *a, int groups)
{
    const int C = t->c, N = t->h * t->w;
    const size_t n = tsize(x, C, t->h, t->w);
    if (x->dry) {
        x->flops += 4.0 * x->B * C * N * (double)N + 8.0 * x->B * C * C * N;
        x->attn_floats = n > x->attn_floats ? n : x->attn_floats;
        size_t s = x->be->spatial_attention_scratch(x->be, N);
        x->attn_scratch_floats = s > x->attn_scratch_floats ? s : x->attn_scratch_floats;
        return;
    }
    const dit_backend *be = x->be;
    dit_conv_desc d = {.B = x->B,
                       .Cin = C,
                       .H = t->h,
                       .W = t->w,
                       .Cout = C,
                       .k = 1,
                       .stride = 1,
                       .Ho = t->h,
                       .Wo = t->w};
    // ao = GN(x); q, k, v = 1x1 convs of it; ao = attention; x += Wo(ao) + bo
    be->group_norm(be, x->ao, t->d, a->norm.w, a->norm.b, x->B, C, N, groups, VAE_GN_EPS,
                   DIT_ACT_NONE);
    be->conv2d(be, x->aq, x->ao, a->q.w, a->q.b, &d, DIT_ACT_NONE, NULL);
    be->conv2d(be, x->ak, x->ao, a->k.w, a->k.b, &d, DIT_ACT_NONE, NULL);
    be->conv2d(be, x->av, x->ao, a->v.w, a->v.b, &d, DIT_ACT_NONE, NULL);
    be->spatial_attention(be, x->ao, x->aq, x->ak, x->av, x->B, C, N, x->ascratch);
    be->conv2d(be, x->aq, x->ao, a->out.w, a->out.b, &d, DIT_ACT_NONE, NULL);
    be->add_act(be, t->d, x->aq, n, DIT_ACT_NONE);
}

static tensor mid_block(vx *x, tensor t, const mid_w *m, int groups)
{
    t = resnet(x, t, &m->res[0], groups);
    if (m->has_attn)
        spatial_attn(x, &t, &m->attn, groups);
    return resnet(x, t, &m->res[1], groups);
}

/* image (B, Cin, H, W) -> moments (B, 2L, H/f, W/f) written to `out` */
static void kl_encode_run(vx *x, const dit_vae *v, const float *image, int H, int W, float *out)
{
    const dit_vae_info *in = &v->info;
    const kl_coder *e = &v->enc;
    const int G = in->norm_groups;
    tensor img = {(float *)image, in->in_channels, H, W, -1};
    tensor t = t_conv3(x, &img, &e->conv_in, DIT_ACT_NONE);
    for (int i = 0; i < in->n_levels; i++) {
        for (int j = 0; j < in->layers_per_block; j++)
            t = resnet(x, t, &e->res[i][j], G);
        if (i + 1 < in->n_levels) { /* diffusers pads (0, 1, 0, 1), then stride 2 */
            tensor dn = t_conv(x, &t, &e->resample[i], 2, 0, 0, 1, 1, false, DIT_ACT_NONE);
            t_free(x, &t);
            t = dn;
        }
    }
    t = mid_block(x, t, &e->mid, G);
    t_norm(x, &t, &e->norm_out, G, DIT_ACT_SILU);
    tensor m = t_conv3(x, &t, &e->conv_out, DIT_ACT_NONE);
    t_free(x, &t);
    if (in->use_quant_conv) {
        tensor q = t_conv(x, &m, &v->quant, 1, 0, 0, 0, 0, false, DIT_ACT_NONE);
        t_free(x, &m);
        m = q;
    }
    t_result(x, out, &m);
    t_free(x, &m);
}

/* latent (B, L, h, w) -> image (B, Cout, h*f, w*f) */
static void kl_decode_run(vx *x, const dit_vae *v, const float *latent, int h, int w, float *out)
{
    const dit_vae_info *in = &v->info;
    const kl_coder *d = &v->dec;
    const int G = in->norm_groups;
    tensor z = {(float *)latent, in->latent_channels, h, w, -1};
    tensor pq = z;
    if (in->use_post_quant_conv)
        pq = t_conv(x, &z, &v->post_quant, 1, 0, 0, 0, 0, false, DIT_ACT_NONE);
    tensor t = t_conv3(x, &pq, &d->conv_in, DIT_ACT_NONE);
    t_free(x, &pq);
    t = mid_block(x, t, &d->mid, G);
    for (int i = 0; i < in->n_levels; i++) {
        for (int j = 0; j < in->layers_per_block + 1; j++)
            t = resnet(x, t, &d->res[i][j], G);
        if (i + 1 < in->n_levels) { /* nearest 2x, read through the conv */
            tensor up = t_conv(x, &t, &d->resample[i], 1, 1, 1, 1, 1, true, DIT_ACT_NONE);
            t_free(x, &t);
            t = up;
        }
    }
    t_norm(x, &t, &d->norm_out, G, DIT_ACT_SILU);
    tensor o = t_conv3(x, &t, &d->conv_out, DIT_ACT_NONE);
    t_free(x, &t);
    t_result(x, out, &o);
    t_free(x, &o);
}

/* A TAESD Sequential; the input tensor is already prepared in a buffer. */
static tensor tiny_run(vx *x, const tiny_coder *tc, tensor t)
{
    for (int i = 0; i < tc->n; i++) {
        const tiny_layer *l = &tc->layers[i];
        if (l->kind == TL_CONV) {
            const bool up2 = i > 0 && tc->layers[i - 1].kind == TL_UPSAMPLE;
            const bool relu = i + 1 < tc->n && tc->layers[i + 1].kind == TL_RELU;
            tensor o = t_conv(x, &t, &l->conv, l->stride, 1, 1, 1, 1, up2,
                              relu ? DIT_ACT_RELU : DIT_ACT_NONE);
            t_free(x, &t);
            t = o;
        } else if (l->kind == TL_BLOCK) {
            // relu(conv3(relu(conv2(relu(conv1(t))))) + skip(t))
            tensor a = t_conv3(x, &t, &l->c1, DIT_ACT_RELU);
            tensor b = t_conv3(x, &a, &l->c2, DIT_ACT_RELU);
            t_free(x, &a);
            tensor c = t_conv3(x, &b, &l->c3, DIT_ACT_NONE);
            t_free(x, &b);
            if (l->has_skip) {
                tensor s = t_conv(x, &t, &l->skip, 1, 0, 0, 0, 0, false, DIT_ACT_NONE);
                t_add(x, &c, &s, DIT_ACT_RELU);
                t_free(x, &s);
            } else {
                t_add(x, &c, &t, DIT_ACT_RELU);
            }
            t_free(x, &t);
            t = c;
        }
        /* TL_UPSAMPLE is read by the next conv; TL_RELU is fused into the previous */
    }
    return t;
}

static void tiny_encode_run(vx *x, const dit_vae *v, const float *image, int H, int W, float *out)
{
    tensor t = t_new(x, v->info.in_channels, H, W);
    if (!x->dry) /* TAESD works on [0, 1] images */
        x->be->affine(x->be, t.d, image, tsize(x, t.c, H, W), 0.5f, 0.5f);
    t = tiny_run(x, &v->tenc, t);
    t_result(x, out, &t);
    t_free(x, &t);
}

static void tiny_decode_run(vx *x, const dit_vae *v, const float *latent, int h, int w, float *out)
{
    tensor t = t_new(x, v->info.latent_channels, h, w);
    if (!x->dry) /* the soft clamp TAESD applies to its latents */
        x->be->tanh_clamp(x->be, t.d, latent, tsize(x, t.c, h, w), 3.0f);
    t = tiny_run(x, &v->tdec, t);
    x->out_floats = tsize(x, t.c, t.h, t.w);
    if (!x->dry) /* [0, 1] -> [-1, 1] */
        x->be->affine(x->be, out, t.d, tsize(x, t.c, t.h, t.w), 2.0f, -1.0f);
    t_free(x, &t);
}

typedef void (*vae_run_fn)(vx *x, const dit_vae *v, const float *in, int h, int w, float *out);

/* The dry run: fills x's sizes and flops; returns the arena floats needed,
 * or 0 on overflow. */
static size_t vae_plan(const dit_backend *be, const dit_vae *v, vae_run_fn run, int B, int h, int w,
                       vx *x, size_t sizes[9])
{
    *x = (vx){.be = be, .B = B, .dry = true};
    run(x, v, NULL, h, w, NULL);
    const size_t s[9] = {x->buf_floats,     x->buf_floats,  x->buf_floats,
                         x->scratch_floats, x->attn_floats, x->attn_floats,
                         x->attn_floats,    x->attn_floats, x->attn_scratch_floats};
    size_t total = 0;
    for (size_t i = 0; i < 9; i++) {
        sizes[i] = s[i];
        if (!dit_add_size(total, (s[i] + 15) & ~(size_t)15, &total))
            return 0;
    }
    return total;
}

/* The weights of v on the device: uploaded on first use (per VAE), kept in
 * ctx->dev as a copy of v whose pointers the layout walk re-points into one
 * device block at the host block's offsets. */
static dit_status vae_device_weights(dit_ctx *ctx, const dit_vae *v, const dit_vae **out)
{
    dit_device *d = &ctx->dev;
    if (d->vae && d->vae_id == v->id) {
        *out = d->vae;
        return DIT_OK;
    }
    dit_device_free(d->vae_params);
    free(d->vae);
    d->vae_params = NULL, d->vae = NULL, d->vae_id = 0;
    dit_vae *copy = malloc(sizeof *copy);
    if (!copy)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    *copy = *v;
    weight_layout count = {0};
    vae_layout(v)(&count, copy);
    const size_t bytes = count.used * sizeof(float);
    float *dev = dit_device_alloc(ctx, bytes);
    dit_status st = dev ? dit_device_upload(ctx, dev, v->params, bytes) : DIT_ERR_NOMEM;
    if (st) {
        dit_device_free(dev);
        free(copy);
        return st;
    }
    weight_layout place = {.base = dev};
    vae_layout(v)(&place, copy);
    d->vae_params = dev, d->vae = copy, d->vae_id = v->id;
    *out = copy;
    return DIT_OK;
}

/* The arena slots of a run, after the dry run sized them. */
static void vae_carve(vx *x, float *p, const size_t sizes[9])
{
    float **slots[] = {&x->buf[0], &x->buf[1], &x->buf[2], &x->scratch, &x->aq,
                       &x->ak,     &x->av,     &x->ao,     &x->ascratch};
    for (size_t i = 0; i < 9; i++) {
        *slots[i] = p;
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    x->dry = false;
    memset(x->busy, 0, sizeof x->busy);
}

/* Plan with a dry run, reserve the arena once, run for real; `in` and `out`
 * are host memory, n_in floats of input. On a device the input and output
 * get arena slots after the activations. */
static dit_status vae_exec(dit_ctx *ctx, const dit_vae *v, vae_run_fn run, int B, int h, int w,
                           const float *in, size_t n_in, float *out)
{
    vx x;
    size_t sizes[9];
    size_t total = vae_plan(ctx->be, v, run, B, h, w, &x, sizes);
    if (!total)
        return dit_error(ctx, DIT_ERR_NOMEM, "VAE activation size overflows");
    const size_t n_out = x.out_floats, acts = total;
    if (!dit_on_device(ctx)) {
        dit_status st = dit_arena_reserve(ctx, total);
        if (st)
            return st;
        vae_carve(&x, ctx->arena, sizes);
        run(&x, v, in, h, w, out);
        return DIT_OK;
    }
    const dit_vae *dv = NULL;
    dit_status st = vae_device_weights(ctx, v, &dv);
    if (st)
        return st;
    if (!dit_add_size(total, ((n_in + 15) & ~(size_t)15) + n_out, &total))
        return dit_error(ctx, DIT_ERR_NOMEM, "VAE activation size overflows");
    if ((st = dit_device_arena_reserve(ctx, total)))
        return st;
    float *din = ctx->dev.arena + acts, *dout = din + ((n_in + 15) & ~(size_t)15);
    vae_carve(&x, ctx->dev.arena, sizes);
    if ((st = dit_device_upload(ctx, din, in, n_in * sizeof(float))))
        return st;
    run(&x, dv, din, h, w, dout);
    if ((st = dit_device_sync(ctx)))
        return st;
    return dit_device_download(ctx, out, dout, n_out * sizeof(float));
}

/* ---- tiling (diffusers' tiled_encode / tiled_decode) ------------------------------ */

/* b's first `extent` rows (vertical) or columns fade in over a's last ones:
 * b[y] = a[n - extent + y] * (1 - y / extent) + b[y] * (y / extent) */
static void blend_v(const float *a, int ah, float *b, int bh, int w, int C, int extent)
{
    extent = MIN(MIN(ah, bh), extent);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < extent; y++) {
            const float t = (float)y / (float)extent;
            const float *ar = a + ((size_t)c * ah + ah - extent + y) * w;
            float *br = b + ((size_t)c * bh + y) * w;
            for (int i = 0; i < w; i++)
                br[i] = ar[i] * (1.0f - t) + br[i] * t;
        }
}

static void blend_h(const float *a, int aw, float *b, int bw, int h, int C, int extent)
{
    extent = MIN(MIN(aw, bw), extent);
    for (int c = 0; c < C; c++)
        for (int r = 0; r < h; r++) {
            const float *ar = a + ((size_t)c * h + r) * aw;
            float *br = b + ((size_t)c * h + r) * bw;
            for (int xx = 0; xx < extent; xx++) {
                const float t = (float)xx / (float)extent;
                br[xx] = ar[aw - extent + xx] * (1.0f - t) + br[xx] * t;
            }
        }
}

typedef struct {
    float *d;
    int h, w;
} tile_buf;

/* Tiled run for one sample: input (Cin, H, W) cut in tiles of `tin` pixels
 * every `stride`; each tile's output (tout per tile, `f_num/f_den` of the input
 * size) is blended with its upper and left neighbours (already blended, as
 * diffusers does in place) over `extent` and cropped to `limit`. */
static dit_status vae_tiled(dit_ctx *ctx, const dit_vae *v, vae_run_fn run, int Cin, int Cout,
                            int H, int W, const float *in, float *out, int tin, int stride,
                            int extent, int limit, int f_num, int f_den)
{
    const int rows = (H + stride - 1) / stride, cols = (W + stride - 1) / stride;
    const int OH = H * f_num / f_den, OW = W * f_num / f_den;
    const int tmax_out = tin * f_num / f_den;
    tile_buf *prev = calloc((size_t)cols, sizeof *prev), *cur = calloc((size_t)cols, sizeof *cur);
    float *tile_in = malloc((size_t)Cin * tin * tin * sizeof(float));
    dit_status st = DIT_OK;
    if (!prev || !cur || !tile_in)
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory for VAE tiles");
    for (int j = 0; j < cols && st == DIT_OK; j++) {
        prev[j].d = malloc((size_t)Cout * tmax_out * tmax_out * sizeof(float));
        cur[j].d = malloc((size_t)Cout * tmax_out * tmax_out * sizeof(float));
        if (!prev[j].d || !cur[j].d)
            st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory for VAE tiles");
    }
    for (int r = 0; r < rows && st == DIT_OK; r++) {
        for (int cidx = 0; cidx < cols && st == DIT_OK; cidx++) {
            const int y0 = r * stride, x0 = cidx * stride;
            const int th = MIN(tin, H - y0), tw = MIN(tin, W - x0);
            for (int c = 0; c < Cin; c++)
                for (int y = 0; y < th; y++)
                    memcpy(tile_in + ((size_t)c * th + y) * tw,
                           in + ((size_t)c * H + y0 + y) * W + x0, (size_t)tw * sizeof(float));
            tile_buf *t = &cur[cidx];
            t->h = th * f_num / f_den, t->w = tw * f_num / f_den;
            if ((st = vae_exec(ctx, v, run, 1, th, tw, tile_in, (size_t)Cin * th * tw, t->d)))
                break;
            if (r > 0)
                blend_v(prev[cidx].d, prev[cidx].h, t->d, t->h, t->w, Cout, extent);
            if (cidx > 0)
                blend_h(cur[cidx - 1].d, cur[cidx - 1].w, t->d, t->w, t->h, Cout, extent);
            /* the blended tile, cropped to limit x limit, lands at (r, c) * limit */
            const int oy = r * limit, ox = cidx * limit;
            const int ch = MIN(MIN(limit, t->h), OH - oy), cw = MIN(MIN(limit, t->w), OW - ox);
            /* with a stride below the crop, the last tiles land past the edge */
            for (int c = 0; c < Cout && cw > 0; c++)
                for (int y = 0; y < ch; y++)
                    memcpy(out + ((size_t)c * OH + oy + y) * OW + ox,
                           t->d + ((size_t)c * t->h + y) * t->w, (size_t)cw * sizeof(float));
        }
        tile_buf *swap = prev;
        prev = cur;
        cur = swap;
    }
    for (int j = 0; j < cols; j++) {
        if (prev)
            free(prev[j].d);
        if (cur)
            free(cur[j].d);
    }
    free(prev);
    free(cur);
    free(tile_in);
    return st;
}

/* ---- public entry points ---------------------------------------------------------- */

static dit_status check_finite(dit_ctx *ctx, const float *p, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return dit_error(ctx, DIT_ERR_INVALID_ARG, "%s holds %s at element %zu", what,
                             isnan(p[i]) ? "NaN" : "Inf", i);
    return DIT_OK;
}

/* every op the KL and tiny encoders and decoders may call */
/* clang-format off */
#define DIT_VAE_OPS(X)                                                                      \
    X(conv2d) X(conv2d_scratch) X(group_norm) X(spatial_attention)                          \
    X(spatial_attention_scratch) X(add_act) X(affine) X(tanh_clamp)
/* clang-format on */

dit_status dit_vae_check_backend(dit_ctx *ctx)
{
    return DIT_BACKEND_REQUIRE(ctx, ctx->be, "the VAE", DIT_VAE_OPS);
}

dit_status dit_vae_encode(dit_ctx *ctx, const dit_vae *v, int B, int H, int W, const float *image,
                          float *mean, float *logvar)
{
    if (!ctx || !v || !image || !mean)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_vae_encode: NULL argument");
    if (dit_vae_check_backend(ctx))
        return DIT_ERR_UNSUPPORTED;
    if (dit_check_held(ctx, v->weights_held, "the VAE", "run"))
        return DIT_ERR_UNSUPPORTED;
    const dit_vae_info *in = &v->info;
    const int f = in->downscale;
    if (B <= 0 || B > 4096 || H <= 0 || W <= 0 || H > 65536 || W > 65536 || H % f || W % f)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "image size %dx%d (batch %d): width and height must be positive "
                         "multiples of %d for this VAE",
                         W, H, B, f);
    dit_status st = check_finite(ctx, image, (size_t)B * in->in_channels * H * W, "the image");
    if (st)
        return st;
    const int L = in->latent_channels, h = H / f, w = W / f;
    const size_t lat = (size_t)L * h * w;
    const bool kl = in->kind == DIT_VAE_KL;
    const int Cm = kl ? 2 * L : L; /* the KL encoder returns moments: mean | logvar */
    float *moments = malloc((size_t)B * Cm * h * w * sizeof(float));
    if (!moments)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    vae_run_fn run = kl ? kl_encode_run : tiny_encode_run;
    const int ts = v->tile_sample;
    if (ts && (H > ts || W > ts)) {
        const int tl = ts / f;
        const int stride = (int)(ts * (1.0f - v->tile_overlap));
        const int extent = (int)(tl * v->tile_overlap), limit = tl - extent;
        for (int b = 0; b < B && !st; b++)
            st = vae_tiled(ctx, v, run, in->in_channels, Cm, H, W,
                           image + (size_t)b * in->in_channels * H * W,
                           moments + (size_t)b * Cm * h * w, ts, stride, extent, limit, 1, f);
    } else {
        st = vae_exec(ctx, v, run, B, H, W, image, (size_t)B * in->in_channels * H * W, moments);
    }
    if (st == DIT_OK)
        for (int b = 0; b < B; b++) {
            const float *m = moments + (size_t)b * Cm * h * w;
            memcpy(mean + b * lat, m, lat * sizeof(float));
            if (logvar)
                for (size_t i = 0; i < lat; i++) /* diffusers clamps logvar to [-30, 20] */
                    logvar[b * lat + i] = kl ? fminf(fmaxf(m[lat + i], -30.0f), 20.0f) : 0.0f;
        }
    free(moments);
    return st;
}

dit_status dit_vae_decode(dit_ctx *ctx, const dit_vae *v, int B, int h, int w, const float *latent,
                          float *image)
{
    if (!ctx || !v || !latent || !image)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_vae_decode: NULL argument");
    if (dit_vae_check_backend(ctx))
        return DIT_ERR_UNSUPPORTED;
    if (dit_check_held(ctx, v->weights_held, "the VAE", "run"))
        return DIT_ERR_UNSUPPORTED;
    const dit_vae_info *in = &v->info;
    const int f = in->downscale;
    if (B <= 0 || B > 4096 || h <= 0 || w <= 0 || h > 65536 / f || w > 65536 / f)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "latent size %dx%d (batch %d) is out of range",
                         w, h, B);
    dit_status st =
        check_finite(ctx, latent, (size_t)B * in->latent_channels * h * w, "the latent");
    if (st)
        return st;
    vae_run_fn run = in->kind == DIT_VAE_KL ? kl_decode_run : tiny_decode_run;
    const int ts = v->tile_sample, tl = ts / f;
    if (ts && (h > tl || w > tl)) {
        const int stride = (int)(tl * (1.0f - v->tile_overlap));
        const int extent = (int)(ts * v->tile_overlap), limit = ts - extent;
        const size_t in_n = (size_t)in->latent_channels * h * w;
        const size_t out_n = (size_t)in->out_channels * h * f * w * f;
        for (int b = 0; b < B && !st; b++)
            st = vae_tiled(ctx, v, run, in->latent_channels, in->out_channels, h, w,
                           latent + b * in_n, image + b * out_n, tl, stride, extent, limit, f, 1);
        return st;
    }
    return vae_exec(ctx, v, run, B, h, w, latent, (size_t)B * in->latent_channels * h * w, image);
}

/* The dry run of a whole call, on the CPU, for the cost and size queries:
 * fills x (flops); returns the arena floats as vae_plan does. */
static size_t vae_plan_call(const dit_vae *v, int B, int height, int width, bool decode, vx *x)
{
    size_t sizes[9];
    vae_run_fn run = v->info.kind == DIT_VAE_KL ? (decode ? kl_decode_run : kl_encode_run)
                                                : (decode ? tiny_decode_run : tiny_encode_run);
    return vae_plan(dit_backend_cpu(), v, run, B, height, width, x, sizes);
}

double dit_vae_flops(const dit_vae *v, int B, int height, int width, bool decode)
{
    if (!v)
        return 0;
    vx x;
    vae_plan_call(v, B, height, width, decode, &x);
    return x.flops;
}

size_t dit_vae_activation_bytes(const dit_vae *v, int B, int height, int width, bool decode)
{
    if (!v)
        return 0;
    vx x;
    size_t floats = vae_plan_call(v, B, height, width, decode, &x);
    size_t bytes;
    return dit_mul_size(floats, sizeof(float), &bytes) ? bytes : SIZE_MAX;
}
