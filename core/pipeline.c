/* Generate, img2img and inpaint: one loop over the scheduler's steps.
 *
 *   x = noise * init_sigma                          (generate, strength 1)
 *   x = add_noise(z0, noise, step of strength)      (img2img / inpaint)
 *   each step k:
 *     inpaint: x = m * x + (1 - m) * add_noise(z0, fresh noise, k)
 *              (the seed article's cold_diffuse_inpaint blend); m is the
 *              latent mask, or in differential mode 1 where the pixel's
 *              own strength has reached step k and 0 before
 *     out = DiT([x; x], t_k, [class; null])          (one batched forward)
 *     eps = uncond + g * (cond - uncond)             (first N channels)
 *     x = scheduler.step(eps, x)
 *   image = decode(x / scaling + shift); inpaint composites
 *   M * image + (1 - M) * source in pixel space.
 * All buffers are allocated before the first step. */
#include "internal/blend.h"
#include "internal/sched.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void dit_pipeline_params_default(dit_pipeline_params *p, const dit_model *model, const dit_vae *vae)
{
    memset(p, 0, sizeof *p);
    p->task = DIT_TASK_GENERATE;
    p->model = model;
    p->vae = vae;
    dit_sched_config_default(&p->sched);
    p->sched.sampler = DIT_SAMPLER_DPMPP_2M;
    p->steps = 20;
    /* the model's own scheduler (pipeline folder or metadata) wins */
    const char *sj = model ? dit_model_scheduler_json(model) : NULL;
    if (sj) {
        dit_sched_config c = p->sched;
        if (dit_sched_config_from_json(NULL, "scheduler", sj, &c) == DIT_OK)
            p->sched = c;
        if (c.sampler == DIT_SAMPLER_COLD)
            p->steps = c.train_steps < 50 ? c.train_steps : 50;
    }
    p->guidance = 4.0f;
    p->guidance_from = 0.0f, p->guidance_to = 1.0f;
    p->strength = 0.75f;
    p->batch = 1;
    p->cache_budget = 1.0f;
}

const char *const dit_mask_mode_names[DIT_MASK_MODE_COUNT] = {"regenerate", "differential"};

void dit_pipeline_params_use_text(dit_pipeline_params *p, const dit_pixart *m,
                                  const dit_text_pair *t)
{
    p->model = NULL, p->pixart = m;
    p->text_len = t->len, p->text_dim = t->dim;
    p->prompt_embeds = t->prompt, p->prompt_mask = t->prompt_mask;
    p->negative_embeds = t->negative, p->negative_mask = t->negative_mask;
}

dit_status dit_sched_config_from_folder(dit_ctx *ctx, const char *folder, dit_sched_config *c)
{
    char *path = g_build_filename(folder, "scheduler", "scheduler_config.json", NULL);
    char *json = NULL;
    dit_status st = DIT_OK;
    if (g_file_get_contents(path, &json, NULL, NULL))
        st = dit_sched_config_from_json(ctx, path, json, c);
    g_free(path), g_free(json);
    return st;
}

/* latent mask (h, w): the max of the pixel mask over each f x f block (the
 * mean with `mean`: a latent pixel's share of strength), grown by `grow`
 * latent pixels */
static void reduce_mask(const float *mask, int H, int W, int f, bool mean, int grow, float *m)
{
    const int h = H / f, w = W / f;
    float *tmp = m;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float v = 0, sum = 0;
            for (int dy = 0; dy < f; dy++)
                for (int dx = 0; dx < f; dx++) {
                    const float s = mask[(size_t)(y * f + dy) * W + x * f + dx];
                    v = s > v ? s : v;
                    sum += s;
                }
            tmp[(size_t)y * w + x] = mean ? sum / (float)(f * f) : v;
        }
    for (int g = 0; g < grow; g++) { /* one pixel of dilation per pass */
        float *prev = malloc((size_t)h * w * sizeof *prev);
        if (!prev)
            return;
        memcpy(prev, tmp, (size_t)h * w * sizeof *prev);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float v = prev[(size_t)y * w + x];
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        const int yy = y + dy, xx = x + dx;
                        if (yy >= 0 && yy < h && xx >= 0 && xx < w && prev[(size_t)yy * w + xx] > v)
                            v = prev[(size_t)yy * w + xx];
                    }
                tmp[(size_t)y * w + x] = v;
            }
        free(prev);
    }
}

/* Differential mode: each latent pixel's strength s (the reduced mask)
 * becomes the first step it is denoised freely, steps - int(steps x
 * strength x s), steps for never; returns the earliest (the first step
 * worth running) */
static int first_free_steps(float *m, size_t hw, int steps, float strength)
{
    int earliest = steps;
    for (size_t i = 0; i < hw; i++) {
        int init = (int)((float)steps * strength * m[i]);
        init = init < steps ? init : steps;
        m[i] = (float)(steps - init);
        earliest = steps - init < earliest ? steps - init : earliest;
    }
    return earliest;
}

typedef struct {
    dit_config net;      /* the denoiser's shape: the DiT's config, or PixArt's as one */
    int C, h, w, f;      /* latent channels and size, pixels per latent pixel */
    int img_c;           /* model channels in pixel space: 3, or 1 (gray) */
    bool pixel;          /* no VAE */
    double scale, shift; /* VAE scaling / shift factors */
} space;

static dit_status encode_source(dit_ctx *ctx, const dit_pipeline_params *p, const space *sp,
                                const float *image, int H, int W, float *z0)
{
    const size_t n = (size_t)sp->C * sp->h * sp->w;
    if (sp->pixel) {
        if (sp->img_c == 3) {
            memcpy(z0, image, n * sizeof *z0);
        } else { /* Rec. 601 luma of the RGB source */
            const size_t hw = (size_t)H * W;
            for (size_t i = 0; i < hw; i++)
                z0[i] = 0.299f * image[i] + 0.587f * image[hw + i] + 0.114f * image[2 * hw + i];
        }
        return DIT_OK;
    }
    dit_status st = dit_vae_encode(ctx, p->vae, 1, H, W, image, z0, NULL);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++)
        z0[i] = (float)((z0[i] - sp->shift) * sp->scale);
    return DIT_OK;
}

static dit_status decode_latents(dit_ctx *ctx, const dit_pipeline_params *p, const space *sp, int B,
                                 float *x, float *img)
{
    const size_t n = (size_t)B * sp->C * sp->h * sp->w, hw = (size_t)sp->h * sp->w;
    if (sp->pixel) {
        for (int b = 0; b < B; b++)
            for (int c = 0; c < 3; c++)
                memcpy(img + ((size_t)b * 3 + c) * hw,
                       x + ((size_t)b * sp->img_c + (sp->img_c == 3 ? c : 0)) * hw,
                       hw * sizeof *img);
        return DIT_OK;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(x[i] / sp->scale + sp->shift);
    return dit_vae_decode(ctx, p->vae, B, sp->h, sp->w, x, img);
}

/* A text model's run: the encodings and their masks; net (the DiT config
 * the rest of the pipeline reads) from PixArt's */
static dit_status check_text(dit_ctx *ctx, const dit_pipeline_params *p, dit_config *net)
{
    const dit_pixart_config *pc = dit_pixart_get_config(p->pixart);
    if (!p->prompt_embeds || p->text_len < 1 || p->text_len > 4096)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "a text model needs the prompt's encoding (text_len 1..4096)");
    if (p->guidance > 1.0f && !p->negative_embeds)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "guidance needs the negative side's encoding (that of \"\" for none)");
    if (p->cache_budget < 1.0f || p->cache_plan)
        return dit_error(ctx, DIT_ERR_UNSUPPORTED, "the block cache is not built for PixArt");
    const int32_t *masks[2] = {p->prompt_mask, p->negative_embeds ? p->negative_mask : NULL};
    for (int k = 0; k < 2; k++) {
        int kept = 0;
        for (int j = 0; masks[k] && j < p->text_len; j++)
            kept += masks[k][j] != 0;
        if (masks[k] && !kept)
            return dit_error(ctx, DIT_ERR_INVALID_ARG, "the %s's mask keeps no token",
                             k ? "negative prompt" : "prompt");
    }
    if (p->text_dim != pc->caption_channels)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "the prompt's encoding is %d wide but the transformer takes captions of "
                         "%d (a text encoder of another model?)",
                         p->text_dim, pc->caption_channels);
    memset(net, 0, sizeof *net);
    net->in_channels = pc->in_channels, net->out_channels = pc->out_channels;
    net->patch_size = pc->patch_size, net->sample_size = pc->sample_size;
    net->hidden_size = pc->hidden_size, net->depth = pc->depth;
    net->learn_sigma = pc->out_channels == 2 * pc->in_channels;
    return DIT_OK;
}

static dit_status check_params(dit_ctx *ctx, const dit_pipeline_params *p, const float *image,
                               const float *mask, int H, int W, const float *out, space *sp)
{
    if (!p || !(p->model || p->pixart) || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_pipeline_run: NULL params, model or out");
    dit_status st;
    if (p->model && p->pixart)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_pipeline_run: a DiT and a PixArt model");
    if (p->pixart && (st = check_text(ctx, p, &sp->net)))
        return st;
    if (p->model)
        sp->net = *dit_model_config(p->model);
    const dit_config *c = &sp->net;
    if (p->task != DIT_TASK_GENERATE && p->task != DIT_TASK_IMG2IMG && p->task != DIT_TASK_INPAINT)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "unknown task %d", (int)p->task);
    if (p->steps < 1 || p->steps > 1000)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "steps must be 1..1000, got %d", p->steps);
    if ((st = dit_check_range(ctx, "strength", p->strength)) ||
        (st = dit_check_range(ctx, "guidance", p->guidance)))
        return st;
    if (p->model && (p->class_id < 0 || p->class_id > c->num_classes))
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "class %d is not one of the model's classes (0..%d; %d = unconditional)",
                         p->class_id, c->num_classes - 1, c->num_classes);
    if (p->batch < 1 || p->batch > 256)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "batch must be 1..256, got %d", p->batch);
    if (p->guidance_channels < 0 || p->guidance_channels > c->in_channels)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "guidance_channels must be 0..%d",
                         c->in_channels);
    if (p->grow < 0 || p->grow > 64)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "grow must be 0..64 latent pixels");
    if (p->feather < DIT_FEATHER_AUTO || p->feather > 1024)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "feather must be 0..1024 pixels (or -1, a fifth of the mask's size)");
    if (p->resample_jump < 0 || p->resample_jump > 1000 || p->resample_count < 0 ||
        p->resample_count > 20)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "resampling: jump must be 0..1000 steps and count 0..20");
    if (!(p->guidance_from >= 0.0f && p->guidance_from <= 1.0f && p->guidance_to >= 0.0f &&
          p->guidance_to <= 1.0f))
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "the guidance interval must lie in [0, 1] (noise levels)");
    if (!(p->detail_strength >= 0.0f && p->detail_strength <= 1.0f))
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "detail strength must be in [0, 1]");
    if (!(p->cache_budget > 0.0f && p->cache_budget <= 1.0f))
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "the cache budget must be in (0, 1] (the share of block outputs "
                         "computed; 1 = no reuse), got %g",
                         (double)p->cache_budget);
    if (p->cache_profile && dit_cache_profile_depth(p->cache_profile) != c->depth)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "the cache profile was measured on a model of %d blocks, this one has "
                         "%d: calibrate it again (dit calibrate-cache)",
                         dit_cache_profile_depth(p->cache_profile), c->depth);
    if ((unsigned)p->mask_mode >= DIT_MASK_MODE_COUNT)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "unknown mask mode %d", (int)p->mask_mode);
    if (p->task != DIT_TASK_GENERATE && !image)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "img2img and inpaint need a source image");
    if (p->task == DIT_TASK_INPAINT && !mask)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "inpaint needs a mask");

    sp->pixel = p->vae == NULL;
    if (sp->pixel) {
        if (c->in_channels != 3 && c->in_channels != 1)
            return dit_error(ctx, DIT_ERR_INVALID_ARG,
                             "a model with %d input channels needs a VAE (pixel-space models "
                             "have 1 or 3)",
                             c->in_channels);
        sp->f = 1, sp->img_c = c->in_channels, sp->scale = 1, sp->shift = 0;
    } else {
        const dit_vae_info *vi = dit_vae_config(p->vae);
        if (vi->latent_channels != c->in_channels)
            return dit_error(ctx, DIT_ERR_INVALID_ARG,
                             "the VAE makes %d latent channels but the DiT takes %d",
                             vi->latent_channels, c->in_channels);
        if (vi->out_channels != 3 || vi->in_channels != 3)
            return dit_error(ctx, DIT_ERR_UNSUPPORTED, "the VAE must map RGB images");
        sp->f = vi->downscale, sp->img_c = 3;
        sp->scale = vi->scaling_factor, sp->shift = vi->shift_factor;
    }
    const int unit = sp->f * c->patch_size;
    if (H > 16384 || W > 16384)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "image size %dx%d is over the limit of 16384 pixels per side", W, H);
    if (H <= 0 || W <= 0 || H % unit || W % unit)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "image size %dx%d must be positive multiples of %d (VAE factor %d x "
                         "patch %d)",
                         W, H, unit, sp->f, c->patch_size);
    sp->C = c->in_channels, sp->h = H / sp->f, sp->w = W / sp->f;
    if (image)
        for (size_t i = 0; i < (size_t)3 * H * W; i++)
            if (!isfinite(image[i]))
                return dit_error(ctx, DIT_ERR_INVALID_ARG, "the source image holds NaN or Inf");
    if (mask)
        for (size_t i = 0; i < (size_t)H * W; i++)
            if (!(mask[i] >= 0.0f && mask[i] <= 1.0f))
                return dit_error(ctx, DIT_ERR_INVALID_ARG,
                                 "mask values must be in [0, 1] (pixel %zu is %g)", i,
                                 (double)mask[i]);
    /* a backend that lacks an op fails here, not after the sampling loop */
    if ((p->model && (st = dit_model_check_backend(ctx))) ||
        (p->pixart &&
         (st = DIT_BACKEND_REQUIRE(ctx, ctx->be, "the PixArt transformer", DIT_PIXART_OPS))) ||
        (p->vae && (st = dit_vae_check_backend(ctx))))
        return st;
    return DIT_OK;
}

/* The model's output rows to the sampler's eps: classifier-free guidance on
 * the first `gc` channels when `guidance` is set (the unconditional rows
 * follow the B conditional ones), and the conditional rows' learned variance.
 * mout (rows, Cout, h, w) -> eps (B, C, h, w), then (B, C, h, w) variance. */
static void guided_eps(const float *mout, int B, int C, int Cout, size_t hw, float guidance, int gc,
                       bool learned, float *eps)
{
    const size_t lat = (size_t)C * hw, n = (size_t)B * lat;
    for (int b = 0; b < B; b++) {
        const float *cond = mout + (size_t)b * Cout * hw;
        const float *unc = guidance ? mout + (size_t)(B + b) * Cout * hw : cond;
        float *e = eps + (size_t)b * lat;
        for (int ch = 0; ch < C; ch++)
            for (size_t i = 0; i < hw; i++) {
                const size_t j = (size_t)ch * hw + i;
                e[j] = guidance && ch < gc ? unc[j] + guidance * (cond[j] - unc[j]) : cond[j];
            }
        if (learned)
            memcpy(eps + n + (size_t)b * lat, cond + lat, lat * sizeof *eps);
    }
}

/* One run's settings and buffers, all allocated before the first step */
typedef struct {
    dit_ctx *ctx;
    const dit_pipeline_params *p;
    const dit_config *net; /* the denoiser's shape (space.net) */
    int f;                 /* image pixels per latent pixel */
    dit_scheduler *s;
    int B, C, h, w, rows, Cout, gc, start;
    int rows_now; /* this step's: rows, or B outside the guidance interval */
    size_t lat, n, hw;
    bool cfg, learned, differential;
    float *x, *xin, *mout, *eps, *noise, *tvec, *z0, *mlat, *noised;
    int32_t *yvec;
    /* tiled (the detail pass): the model sees (th, tw) windows of the latent
     * at the offsets ty x tx, `chunk` windows per forward; each window's
     * output is weighted by `weight` (th, tw) and the sum divided by `wsum` */
    bool tiled;
    int th, tw, nty, ntx, chunk;
    int *ty, *tx;
    float *tin, *tout, *weight, *wsum, *ttv;
    int32_t *tyv;
    /* block cache: the slots, the plan ((steps, depth, 2), NULL: no reuse)
     * and, when calibrating, the measured rates summed per step interval */
    dit_block_cache cache;
    const uint8_t *plan;
    uint8_t *own_plan;
    struct calibration *calib;
    /* a text model's inputs for the most rows one forward takes: each row's
     * caption (L, Ccap) and mask, the image's size in pixels; refilled only
     * when the rows or the size of the forward change */
    int cap_rows, cap_rows_now, cap_h, cap_w;
    float *cap, *res, *ar;
    int32_t *cap_mask;
} run;

/* what dit_cache_calibrate sums over its samples, per step interval */
typedef struct calibration {
    double *sum;    /* (steps - 1, depth * 2) change per unit of level */
    int *n;         /* (steps - 1) samples measured */
    double *mid;    /* (steps - 1) the interval's middle noise level */
    double *change; /* (depth * 2) one step's */
} calibration;

/* Window offsets along one side of n latent pixels: windows of t, half
 * overlapping (stride a multiple of the patch), the last flush with the end */
static int window_offsets(int n, int t, int patch, int *off)
{
    if (t >= n) {
        off[0] = 0;
        return 1;
    }
    int stride = t / 2 / patch * patch;
    stride = stride > 0 ? stride : patch;
    int k = 0;
    for (int o = 0;; o += stride) {
        off[k++] = o + t < n ? o : n - t;
        if (o + t >= n)
            return k;
    }
}

/* The denoiser on rows inputs x (rows, C, h, w) -> out (rows, Cout, h, w).
 * A text model's row i takes the prompt when i % rows_now < B (windows
 * repeat the rows), else the negative side. */
static dit_status net_forward(run *r, int rows, int h, int w, const float *x, const float *t,
                              const int32_t *y, float *out, dit_block_cache *cache)
{
    const dit_pipeline_params *p = r->p;
    if (p->model)
        return dit_model_forward_cached(r->ctx, p->model, rows, h, w, x, t, y, out, cache);
    const int L = p->text_len, Cc = dit_pixart_get_config(p->pixart)->caption_channels;
    const bool filled =
        r->cap_rows == rows && r->cap_rows_now == r->rows_now && r->cap_h == h && r->cap_w == w;
    for (int i = 0; !filled && i < rows; i++) {
        const bool prompt = i % r->rows_now < r->B;
        const float *e = prompt ? p->prompt_embeds : p->negative_embeds;
        const int32_t *m = prompt ? p->prompt_mask : p->negative_mask;
        memcpy(r->cap + (size_t)i * L * Cc, e, (size_t)L * Cc * sizeof *r->cap);
        for (int j = 0; j < L; j++)
            r->cap_mask[(size_t)i * L + j] = m ? m[j] != 0 : 1;
        r->res[2 * i] = (float)(h * r->f), r->res[2 * i + 1] = (float)(w * r->f);
        r->ar[i] = (float)h / (float)w;
    }
    r->cap_rows = rows, r->cap_rows_now = r->rows_now, r->cap_h = h, r->cap_w = w;
    const dit_pixart_inputs in = {x, t, r->cap, r->cap_mask, r->res, r->ar};
    return dit_pixart_forward(r->ctx, p->pixart, rows, h, w, L, &in, out);
}

/* The model on every window of xin (rows, C, h, w), blended into mout
 * (rows, Cout, h, w): MultiDiffusion's average of overlapping predictions,
 * weighted to fade towards each window's edges so no border shows */
static dit_status tiled_forward(run *r)
{
    const int C = r->C, Co = r->Cout, th = r->th, tw = r->tw, w = r->w;
    const size_t hw = r->hw, thw = (size_t)th * tw;
    const int tiles = r->nty * r->ntx;
    memset(r->mout, 0, (size_t)r->rows_now * Co * hw * sizeof *r->mout);
    for (int t0 = 0; t0 < tiles; t0 += r->chunk) {
        const int nt = tiles - t0 < r->chunk ? tiles - t0 : r->chunk;
        for (int t = 0; t < nt; t++) /* gather: (nt x rows, C, th, tw) */
            for (int row = 0; row < r->rows_now; row++) {
                const int oy = r->ty[(t0 + t) / r->ntx], ox = r->tx[(t0 + t) % r->ntx];
                const int dst = t * r->rows_now + row;
                for (int c = 0; c < C; c++)
                    for (int y = 0; y < th; y++)
                        memcpy(r->tin + ((size_t)dst * C + c) * thw + (size_t)y * tw,
                               r->xin + ((size_t)row * C + c) * hw + (size_t)(oy + y) * w + ox,
                               tw * sizeof *r->tin);
                r->ttv[dst] = r->tvec[row], r->tyv[dst] = r->yvec[row];
            }
        dit_status st =
            net_forward(r, nt * r->rows_now, th, tw, r->tin, r->ttv, r->tyv, r->tout, NULL);
        if (st)
            return st;
        for (int t = 0; t < nt; t++) /* scatter-add, weighted */
            for (int row = 0; row < r->rows_now; row++) {
                const int oy = r->ty[(t0 + t) / r->ntx], ox = r->tx[(t0 + t) % r->ntx];
                const float *src = r->tout + (size_t)(t * r->rows_now + row) * Co * thw;
                for (int c = 0; c < Co; c++)
                    for (int y = 0; y < th; y++)
                        for (int x = 0; x < tw; x++)
                            r->mout[((size_t)row * Co + c) * hw + (size_t)(oy + y) * w + ox + x] +=
                                r->weight[(size_t)y * tw + x] * src[(size_t)c * thw + y * tw + x];
            }
    }
    for (size_t i = 0; i < (size_t)r->rows_now * Co * hw; i++)
        r->mout[i] /= r->wsum[i % hw];
    return DIT_OK;
}

/* The windows and their buffers for a tiled run: native-size windows */
static dit_status tiles_setup(run *r)
{
    const dit_config *c = r->net;
    const int native = c->sample_size, patch = c->patch_size;
    r->th = r->h < native ? r->h : native, r->tw = r->w < native ? r->w : native;
    r->ty = malloc(((size_t)r->h / patch + 2) * sizeof *r->ty);
    r->tx = malloc(((size_t)r->w / patch + 2) * sizeof *r->tx);
    if (!r->ty || !r->tx)
        return dit_error(r->ctx, DIT_ERR_NOMEM, "out of memory for the detail windows");
    r->nty = window_offsets(r->h, r->th, patch, r->ty);
    r->ntx = window_offsets(r->w, r->tw, patch, r->tx);
    const int tiles = r->nty * r->ntx;
    r->chunk = 16 / r->rows > 0 ? 16 / r->rows : 1; /* rows per forward stay near 16 */
    r->chunk = r->chunk < tiles ? r->chunk : tiles;
    const size_t thw = (size_t)r->th * r->tw, m = (size_t)r->chunk * r->rows;
    r->tin = malloc(m * r->C * thw * sizeof *r->tin);
    r->tout = malloc(m * r->Cout * thw * sizeof *r->tout);
    r->ttv = malloc(m * sizeof *r->ttv);
    r->tyv = malloc(m * sizeof *r->tyv);
    r->weight = malloc(thw * sizeof *r->weight);
    r->wsum = calloc(r->hw, sizeof *r->wsum);
    if (!r->tin || !r->tout || !r->ttv || !r->tyv || !r->weight || !r->wsum)
        return dit_error(r->ctx, DIT_ERR_NOMEM, "out of memory for the detail windows");
    /* a Hann window, never 0: half-overlapping windows sum to about 1 and a
     * window's edge, where the model saw no context, hardly counts */
    for (int y = 0; y < r->th; y++)
        for (int x = 0; x < r->tw; x++) {
            const double wy = sin(M_PI * (y + 0.5) / r->th), wx = sin(M_PI * (x + 0.5) / r->tw);
            r->weight[(size_t)y * r->tw + x] = (float)(wy * wy * wx * wx);
        }
    for (int t = 0; t < tiles; t++)
        for (int y = 0; y < r->th; y++)
            for (int x = 0; x < r->tw; x++)
                r->wsum[(size_t)(r->ty[t / r->ntx] + y) * r->w + r->tx[t % r->ntx] + x] +=
                    r->weight[(size_t)y * r->tw + x];
    return DIT_OK;
}

/* Noise of `stream` for the whole batch (r->n values): one stream over the
 * batch, or image b from seed + b (p->seed_per_image) */
static void draw_noise(const run *r, uint32_t stream, float *out)
{
    const dit_pipeline_params *p = r->p;
    if (!p->seed_per_image) {
        dit_randn(p->seed, stream, 0, r->n, out);
        return;
    }
    for (int b = 0; b < r->B; b++)
        dit_randn(p->seed + (uint64_t)b, stream, 0, r->lat, out + (size_t)b * r->lat);
}

static double step_level(const run *r, int k)
{
    return dit_sched_timestep(r->s, k) / (double)r->p->sched.train_steps;
}

/* A branch's staleness at step k counts by the signal share sqrt(alphabar)
 * of that step: reuse is cheaper where noise dominates. Measured on the
 * default model (50 DDIM steps, budget 0.5, ten classes): distance to the
 * full result 0.40 with the weight, 0.54 without, 0.57 for whole steps
 * skipped evenly. */
static double step_weight(const run *r, int k)
{
    const dit_scheduler *s = r->s;
    const int T = s->cfg.train_steps;
    int t = (int)lround(dit_sched_timestep(s, k));
    t = t < 0 ? 0 : t >= T ? T - 1 : t;
    return sqrt(s->alphas_cumprod[t]);
}

/* Calibration, after step k's forward: each branch's change since step
 * k - 1 per unit of noise level, added to interval k - 1's sums */
static dit_status calibration_record(run *r, int k)
{
    calibration *cal = r->calib;
    bool measured = false;
    dit_status st = dit_block_cache_measure(r->ctx, &r->cache, r->rows_now, cal->change, &measured);
    const double dl = k > 0 ? fabs(step_level(r, k - 1) - step_level(r, k)) : 0.0;
    if (st || !measured || dl <= 0.0)
        return st;
    const int nb = r->cache.depth * 2;
    for (int i = 0; i < nb; i++)
        cal->sum[(size_t)(k - 1) * nb + i] += cal->change[i] / dl;
    cal->n[k - 1]++;
    cal->mid[k - 1] = 0.5 * (step_level(r, k - 1) + step_level(r, k));
    return DIT_OK;
}

/* The block cache of a run whose first step is r->start: slots for every
 * row and the plan, before the first step (none in the detail windows) */
static dit_status cache_setup(run *r)
{
    const dit_pipeline_params *p = r->p;
    const bool reuse = p->cache_plan || p->cache_budget < 1.0f;
    if (r->tiled || (!reuse && !r->calib))
        return DIT_OK;
    dit_status st = dit_block_cache_init(r->ctx, &r->cache, p->model, r->rows, r->h, r->w);
    if (st || r->calib)
        return st;
    const int nb = r->cache.depth * 2;
    if (p->cache_plan) {
        r->plan = p->cache_plan;
        return DIT_OK;
    }
    double *level = malloc(2 * (size_t)p->steps * sizeof *level), *weight = level + p->steps;
    r->own_plan = malloc((size_t)p->steps * nb);
    if (!level || !r->own_plan) {
        free(level);
        return dit_error(r->ctx, DIT_ERR_NOMEM, "out of memory for the cache plan");
    }
    for (int k = 0; k < p->steps; k++)
        level[k] = step_level(r, k), weight[k] = step_weight(r, k);
    dit_cache_plan_build(p->cache_profile, r->cache.depth, p->cache_budget, level, weight, r->start,
                         p->steps, r->own_plan);
    free(level);
    r->plan = r->own_plan;
    return DIT_OK;
}

/* Step k: the inpaint tie, the model, guidance, the sampler. `pass` counts
 * the jumps back so far: each pass draws fresh noise (pass 0: the streams a
 * run without resampling has always used). */
static dit_status one_step(run *r, int k, uint32_t pass)
{
    const dit_pipeline_params *p = r->p;
    const size_t n = r->n, lat = r->lat, hw = r->hw;
    float *x = r->x;
    if (r->mlat) { /* the known region follows the source, noised to this step */
        draw_noise(r, 2000u + (uint32_t)k + 100000u * pass, r->noise);
        for (int b = 0; b < r->B; b++)
            dit_sched_add_noise(r->s, k, r->z0, r->noise + (size_t)b * lat,
                                r->noised + (size_t)b * lat, lat);
        for (size_t i = 0; i < n; i++) {
            const float m = r->differential ? (float)(k >= r->mlat[i % hw]) : r->mlat[i % hw];
            x[i] = m * x[i] + (1.0f - m) * r->noised[i];
        }
    }
    const float t = (float)dit_sched_timestep(r->s, k);
    /* guidance only inside its interval of noise levels: elsewhere the
     * conditional rows alone, half the work */
    const double level = t / (double)p->sched.train_steps;
    const bool guide = r->cfg && level >= p->guidance_from && level <= p->guidance_to;
    r->rows_now = guide ? r->rows : r->B;
    dit_sched_scale_input(r->s, k, x, r->xin, n);
    if (guide)
        memcpy(r->xin + n, r->xin, n * sizeof *r->xin);
    for (int i = 0; i < r->rows_now; i++)
        r->tvec[i] = t;
    dit_block_cache *cache = r->cache.store ? &r->cache : NULL;
    if (cache)
        cache->plan = r->plan ? r->plan + (size_t)k * cache->depth * 2 : NULL;
    dit_status st = r->tiled ? tiled_forward(r)
                             : net_forward(r, r->rows_now, r->h, r->w, r->xin, r->tvec, r->yvec,
                                           r->mout, cache);
    if (st || (r->calib && (st = calibration_record(r, k))))
        return st;
    guided_eps(r->mout, r->B, r->C, r->Cout, hw, guide ? p->guidance : 0.0f, r->gc, r->learned,
               r->eps);
    const float *step_noise = NULL;
    if (dit_sched_needs_noise(r->s, k)) {
        draw_noise(r, 1000u + (uint32_t)k + 100000u * pass, r->noise);
        step_noise = r->noise;
    }
    return dit_sched_step(r->ctx, r->s, k, r->eps, x, step_noise, x);
}

/* Steps start .. steps - 1; with resampling, after every jump-th step the
 * latent is noised back by jump steps and they run again, count - 1 times */
static dit_status sample_steps(run *r, dit_progress_fn progress, void *user,
                               const volatile int *cancel)
{
    const dit_pipeline_params *p = r->p;
    const int jump = r->mlat && p->resample_count > 1 ? p->resample_jump : 0;
    int total = p->steps - r->start, done = 0, again = 0;
    if (jump > 0) /* every whole block of jump steps runs count times */
        total += ((p->steps - r->start) / jump) * jump * (p->resample_count - 1);
    uint32_t pass = 0;
    for (int k = r->start; k < p->steps;) {
        if (cancel && *cancel)
            return dit_error(r->ctx, DIT_CANCELLED, "cancelled after %d of %d steps", done, total);
        dit_status st = one_step(r, k, pass);
        if (st)
            return st;
        k++, done++;
        if (progress && !progress(user, done, total, r->x))
            return dit_error(r->ctx, DIT_CANCELLED, "cancelled after %d of %d steps", done, total);
        if (jump > 0 && (k - r->start) % jump == 0 && again < p->resample_count - 1) {
            again++, pass++;
            draw_noise(r, 3000u + pass, r->noise);
            dit_sched_renoise(r->s, k, k - jump, r->noise, r->x, r->n);
            dit_sched_restart(r->s);
            dit_block_cache_invalidate(&r->cache);
            k -= jump;
        } else if (jump > 0 && (k - r->start) % jump == 0) {
            again = 0;
        }
    }
    return DIT_OK;
}

static void run_free(run *r)
{
    dit_sched_free(r->s);
    free(r->x), free(r->xin), free(r->mout), free(r->eps), free(r->noise), free(r->tvec),
        free(r->yvec), free(r->z0), free(r->mlat), free(r->noised);
    free(r->ty), free(r->tx), free(r->tin), free(r->tout), free(r->weight), free(r->wsum),
        free(r->ttv), free(r->tyv);
    free(r->cap), free(r->cap_mask), free(r->res), free(r->ar);
    dit_block_cache_release(&r->cache);
    free(r->own_plan);
}

/* a text model's per-row inputs, for the most rows one forward takes */
static dit_status text_setup(run *r)
{
    const dit_pipeline_params *p = r->p;
    const size_t rows = (size_t)(r->tiled ? r->chunk * r->rows : r->rows), L = p->text_len;
    const size_t Cc = dit_pixart_get_config(p->pixart)->caption_channels;
    r->cap = malloc(rows * L * Cc * sizeof *r->cap);
    r->cap_mask = malloc(rows * L * sizeof *r->cap_mask);
    r->res = malloc(2 * rows * sizeof *r->res), r->ar = malloc(rows * sizeof *r->ar);
    if (!r->cap || !r->cap_mask || !r->res || !r->ar)
        return dit_error(r->ctx, DIT_ERR_NOMEM, "out of memory for the caption rows");
    return DIT_OK;
}

/* The scheduler and every buffer of a run; the labels, the source latent */
static dit_status run_setup(run *r, dit_ctx *ctx, const dit_pipeline_params *p, const space *sp)
{
    const dit_config *c = &sp->net;
    r->ctx = ctx, r->p = p, r->net = c, r->f = sp->f;
    r->B = p->batch, r->C = sp->C, r->h = sp->h, r->w = sp->w;
    r->lat = (size_t)r->C * r->h * r->w, r->n = (size_t)r->B * r->lat, r->hw = (size_t)r->h * r->w;
    dit_sched_config sc = p->sched;
    if (sc.variance == DIT_VAR_LEARNED_RANGE && !c->learn_sigma)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "learned variance needs a learned-sigma model (out_channels = 2 x in)");
    dit_status st = dit_sched_new(ctx, &sc, p->steps, r->n, &r->s);
    if (st)
        return st;
    r->cfg = p->guidance > 1.0f && (c->num_classes > 0 || p->pixart);
    r->rows = r->cfg ? 2 * r->B : r->B;
    r->Cout = c->out_channels;
    r->learned = sc.variance == DIT_VAR_LEARNED_RANGE;
    r->gc = p->guidance_channels ? p->guidance_channels : r->C;
    const size_t n = r->n, lat = r->lat, hw = r->hw;
    r->x = malloc(n * sizeof *r->x);
    r->xin = malloc((size_t)r->rows * lat * sizeof *r->xin);
    r->mout = malloc((size_t)r->rows * r->Cout * hw * sizeof *r->mout);
    r->eps = malloc((r->learned ? 2 : 1) * n * sizeof *r->eps);
    r->noise = malloc(n * sizeof *r->noise);
    r->tvec = malloc((size_t)r->rows * sizeof *r->tvec);
    r->yvec = malloc((size_t)r->rows * sizeof *r->yvec);
    r->z0 = p->task != DIT_TASK_GENERATE ? malloc(lat * sizeof *r->z0) : NULL;
    r->mlat = p->task == DIT_TASK_INPAINT ? malloc(hw * sizeof *r->mlat) : NULL;
    r->noised = p->task == DIT_TASK_INPAINT ? malloc(n * sizeof *r->noised) : NULL;
    if (!r->x || !r->xin || !r->mout || !r->eps || !r->noise || !r->tvec || !r->yvec ||
        (p->task != DIT_TASK_GENERATE && !r->z0) ||
        (p->task == DIT_TASK_INPAINT && (!r->mlat || !r->noised)))
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory for the pipeline buffers");
    for (int i = 0; i < r->rows; i++)
        r->yvec[i] = i < r->B ? p->class_id : c->num_classes;
    if (r->tiled && (st = tiles_setup(r)))
        return st;
    return p->pixart ? text_setup(r) : DIT_OK;
}

/* The first latent: noise, the noised source, or (differential, nothing
 * strong enough to change) the source itself */
static void first_latent(run *r)
{
    const dit_pipeline_params *p = r->p;
    const size_t n = r->n, lat = r->lat;
    if (p->init_noise)
        memcpy(r->noise, p->init_noise, n * sizeof *r->noise);
    else
        draw_noise(r, 0, r->noise);
    if (r->start == p->steps) {
        for (int b = 0; b < r->B; b++)
            memcpy(r->x + (size_t)b * lat, r->z0, lat * sizeof *r->x);
    } else if (p->task == DIT_TASK_GENERATE || r->start == 0) {
        const double sigma = dit_sched_init_noise_sigma(r->s);
        for (size_t i = 0; i < n; i++)
            r->x[i] = (float)(r->noise[i] * sigma);
    } else {
        draw_noise(r, 1, r->noise);
        for (int b = 0; b < r->B; b++)
            dit_sched_add_noise(r->s, r->start, r->z0, r->noise + (size_t)b * lat,
                                r->x + (size_t)b * lat, lat);
    }
}

/* One sampling run of checked parameters at the image's size; `tiled`: the
 * model sees native-size windows (the detail pass) */
static dit_status sample_image(dit_ctx *ctx, const dit_pipeline_params *p, const space *sp,
                               const float *image, const float *mask, int H, int W,
                               dit_progress_fn progress, void *user, const volatile int *cancel,
                               float *out, bool tiled, calibration *cal)
{
    dit_status st;
    const size_t img_n = (size_t)3 * H * W, px = (size_t)H * W;

    /* strength 0: nothing to do, the input comes back as it is */
    if (p->task != DIT_TASK_GENERATE && p->strength == 0.0f) {
        for (int b = 0; b < p->batch; b++)
            memcpy(out + (size_t)b * img_n, image, img_n * sizeof *out);
        return DIT_OK;
    }
    run r = {0};
    r.tiled = tiled, r.calib = cal;
    float *img = malloc((size_t)p->batch * img_n * sizeof *img);
    float *feathered = mask && p->feather ? malloc(px * sizeof *feathered) : NULL;
    float *scratch = mask && p->colour_match ? malloc(2 * px * sizeof *scratch) : NULL;
    if ((st = run_setup(&r, ctx, p, sp)))
        goto out;
    if (!img || (mask && p->feather && !feathered) || (mask && p->colour_match && !scratch)) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory for the pipeline buffers");
        goto out;
    }
    if (feathered) {
        const int width = p->feather > 0 ? p->feather : blend_auto_feather(mask, H, W);
        if (width > 0) {
            blend_feather(mask, H, W, width, feathered);
            mask = feathered;
        }
    }
    if (r.z0 && (st = encode_source(ctx, p, sp, image, H, W, r.z0)))
        goto out;
    /* img2img / inpaint with strength s skip the first steps - int(steps * s) */
    if (p->task != DIT_TASK_GENERATE) {
        int init = (int)(p->steps * p->strength);
        init = init < p->steps ? init : p->steps;
        r.start = p->steps - init;
    }
    r.differential = r.mlat && p->mask_mode == DIT_MASK_DIFFERENTIAL;
    if (r.mlat)
        reduce_mask(mask, H, W, sp->f, r.differential, p->grow, r.mlat);
    if (r.differential) /* mlat: the first step each latent pixel runs free */
        r.start = first_free_steps(r.mlat, r.hw, p->steps, p->strength);
    if ((st = cache_setup(&r)))
        goto out;
    first_latent(&r);
    if ((st = sample_steps(&r, progress, user, cancel)))
        goto out;

    if (r.differential) /* never free: the source itself, not its last denoise */
        for (size_t i = 0; i < r.n; i++)
            if (r.mlat[i % r.hw] >= (float)p->steps)
                r.x[i] = r.z0[i % r.lat];
    if ((st = decode_latents(ctx, p, sp, r.B, r.x, img)))
        goto out;
    if (p->task == DIT_TASK_INPAINT && scratch) { /* rings 1/16 of the shorter side */
        const int side = H < W ? H : W;
        blend_match_colour(img, r.B, image, mask, H, W, side / 16 > 2 ? side / 16 : 2, scratch);
    }
    if (p->task == DIT_TASK_INPAINT) { /* outside the mask: the input, bit for bit */
        for (int b = 0; b < r.B; b++)
            for (int ch = 0; ch < 3; ch++)
                for (size_t i = 0; i < px; i++) {
                    const float m = mask[i];
                    float *o = img + (size_t)b * img_n + (size_t)ch * px + i;
                    const float src = image[(size_t)ch * px + i];
                    *o = m == 0.0f ? src : m * *o + (1.0f - m) * src;
                }
    }
    memcpy(out, img, (size_t)r.B * img_n * sizeof *out);
out:
    run_free(&r);
    free(img), free(feathered), free(scratch);
    return st;
}

/* Progress of one stage of a run made of several: the steps of the stages
 * before and after it are added to what it reports */
typedef struct {
    dit_progress_fn fn;
    void *user;
    int before, after;
    int total;          /* this stage's, as it last reported */
    bool caller_latent; /* the stage's latent is the caller's size: pass it on */
} stage;

static bool stage_progress(void *user, int step, int total, const float *latent)
{
    stage *s = user;
    s->total = total;
    return !s->fn || s->fn(s->user, s->before + step, s->before + total + s->after,
                           s->caller_latent ? latent : NULL);
}

/* Detail at the image's size (DIT_DETAIL_STRENGTH 0.4 measured: test-blend
 * prints the high frequencies kept and the jump at the windows' edges): every image sampled at the model's native
 * size first, then upscaled (outside the mask the source) and refined at
 * p->detail_strength in native-size windows, one image at a time */
static dit_status sample_with_detail(dit_ctx *ctx, const dit_pipeline_params *p, const space sp,
                                     const float *image, const float *mask, int H, int W,
                                     dit_progress_fn progress, void *user,
                                     const volatile int *cancel, float *out)
{
    const dit_config *c = &sp.net;
    const int unit = sp.f * c->patch_size, native = c->sample_size * sp.f, B = p->batch;
    const double s = (double)native / (H > W ? H : W);
    int Hn = (int)lround(H * s / unit) * unit, Wn = (int)lround(W * s / unit) * unit;
    Hn = Hn < unit ? unit : Hn, Wn = Wn < unit ? unit : Wn;
    space small_sp = sp;
    small_sp.h = Hn / sp.f, small_sp.w = Wn / sp.f;
    const size_t n = (size_t)3 * H * W, small_n = (size_t)3 * Hn * Wn;
    float *small = image ? malloc(small_n * sizeof *small) : NULL;
    float *small_mask = mask ? malloc((size_t)Hn * Wn * sizeof *small_mask) : NULL;
    float *low = malloc(B * small_n * sizeof *low), *up = malloc(n * sizeof *up);
    dit_status st = DIT_OK;
    if ((image && !small) || (mask && !small_mask) || !low || !up) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory for the detail pass");
        goto out;
    }
    if ((image && (st = dit_image_resize(ctx, image, 3, H, W, small, Hn, Wn))) ||
        (mask && (st = dit_image_resize(ctx, mask, 1, H, W, small_mask, Hn, Wn))))
        goto out;
    for (size_t i = 0; mask && i < (size_t)Hn * Wn; i++) /* resampling may overshoot [0, 1] */
        small_mask[i] = small_mask[i] < 0 ? 0 : small_mask[i] > 1 ? 1 : small_mask[i];

    dit_pipeline_params base = *p;
    base.detail_strength = 0;
    /* never more change than the caller asked for (img2img at a low strength) */
    const float refine = p->task == DIT_TASK_GENERATE || p->strength > p->detail_strength
                             ? p->detail_strength
                             : p->strength;
    const int refine_steps = (int)((float)p->steps * refine);
    stage sg = {progress, user, 0, B * refine_steps, 0, false};
    if ((st = sample_image(ctx, &base, &small_sp, small, small_mask, Hn, Wn, stage_progress, &sg,
                           cancel, low, false, NULL)))
        goto out;
    const int base_total = sg.total;

    /* the refinement: img2img (inpaint where there is a mask) of the
     * upscaled result, no second colour match or resampling */
    dit_pipeline_params ref = *p;
    ref.task = mask ? DIT_TASK_INPAINT : DIT_TASK_IMG2IMG;
    ref.strength = refine, ref.detail_strength = 0;
    ref.batch = 1, ref.seed_per_image = false, ref.init_noise = NULL;
    ref.colour_match = false, ref.resample_jump = 0;
    for (int b = 0; b < B; b++) {
        if ((st = dit_image_resize(ctx, low + b * small_n, 3, Hn, Wn, up, H, W)))
            goto out;
        if (mask)
            dit_image_composite(up, up, image, mask, 3, H, W);
        ref.seed = p->seed + (uint64_t)b;
        sg = (stage){progress, user, base_total + b * refine_steps, (B - 1 - b) * refine_steps,
                     0,        true};
        if ((st = sample_image(ctx, &ref, &sp, up, mask, H, W, stage_progress, &sg, cancel,
                               out + b * n, true, NULL)))
            goto out;
    }
out:
    free(small), free(small_mask), free(low), free(up);
    return st;
}

dit_status dit_pipeline_run(dit_ctx *ctx, const dit_pipeline_params *p, const float *image,
                            const float *mask, int H, int W, dit_progress_fn progress, void *user,
                            const volatile int *cancel, float *out)
{
    if (!ctx)
        return DIT_ERR_INVALID_ARG;
    space sp = {0};
    dit_status st = check_params(ctx, p, image, mask, H, W, out, &sp);
    if (st)
        return st;
    /* detail only where the image is well above the model's native size */
    const int native = sp.net.sample_size * sp.f;
    const bool keep = p->task != DIT_TASK_GENERATE && p->strength == 0.0f;
    if (p->detail_strength > 0 && !keep && (4 * H > 5 * native || 4 * W > 5 * native))
        return sample_with_detail(ctx, p, sp, image, mask, H, W, progress, user, cancel, out);
    return sample_image(ctx, p, &sp, image, mask, H, W, progress, user, cancel, out, false, NULL);
}

dit_status dit_cache_calibrate(dit_ctx *ctx, const dit_pipeline_params *p, int H, int W,
                               int samples, dit_progress_fn progress, void *user,
                               const volatile int *cancel, dit_cache_profile **out)
{
    if (!ctx || !p || !p->model || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_cache_calibrate: NULL argument");
    *out = NULL;
    if (samples < 1 || samples > 256)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "calibration samples must be 1..256");
    if (p->steps < 2)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "calibration needs at least 2 steps");
    dit_pipeline_params q = *p; /* generations, one image each, every block computed */
    q.task = DIT_TASK_GENERATE, q.batch = 1, q.detail_strength = 0, q.init_noise = NULL;
    q.cache_budget = 1.0f, q.cache_profile = NULL, q.cache_plan = NULL;
    const dit_config *c = dit_model_config(p->model);
    const int nb = c->depth * 2, gaps = p->steps - 1;
    float *img = malloc((size_t)3 * H * W * sizeof *img);
    calibration cal = {calloc((size_t)gaps * nb, sizeof(double)), calloc((size_t)gaps, sizeof(int)),
                       calloc((size_t)gaps, sizeof(double)), calloc((size_t)nb, sizeof(double))};
    space sp = {0};
    dit_status st = DIT_OK;
    if (!img || !cal.sum || !cal.n || !cal.mid || !cal.change) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory for the calibration");
        goto out;
    }
    if ((st = check_params(ctx, &q, NULL, NULL, H, W, img, &sp)))
        goto out;
    for (int i = 0; i < samples && !st; i++) {
        q.seed = p->seed + (uint64_t)i;
        if (c->num_classes > 0 && p->class_id < c->num_classes)
            q.class_id = (p->class_id + i) % c->num_classes;
        stage sg = {progress, user, i * p->steps, (samples - 1 - i) * p->steps, 0, false};
        st = sample_image(ctx, &q, &sp, NULL, NULL, H, W, stage_progress, &sg, cancel, img, false,
                          &cal);
    }
    bool ok = !st; /* every interval measured, levels descending */
    for (int j = 0; ok && j < gaps; j++)
        ok = cal.n[j] > 0 && (j == 0 || cal.mid[j] < cal.mid[j - 1]);
    dit_cache_profile *prof = ok ? dit_cache_profile_alloc(c->depth, gaps) : NULL;
    if (!st && !ok)
        st = dit_error(ctx, DIT_ERR_INVALID_ARG,
                       "the sampler's noise levels do not fall from step to step: nothing to "
                       "calibrate on");
    else if (!st && !prof)
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory for the profile");
    for (int j = 0; prof && j < gaps; j++) {
        for (int i = 0; i < nb; i++)
            cal.change[i] = cal.sum[(size_t)j * nb + i] / cal.n[j];
        dit_cache_profile_set(prof, j, (float)cal.mid[j], cal.change, samples, p->steps);
    }
    *out = prof;
out:
    free(img), free(cal.sum), free(cal.n), free(cal.mid), free(cal.change);
    return st;
}

dit_status dit_cache_plan(dit_ctx *ctx, const dit_pipeline_params *p, uint8_t **plan,
                          double *computed)
{
    if (!p || !p->model || !plan)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_cache_plan: NULL argument");
    *plan = NULL;
    const int depth = dit_model_config(p->model)->depth, nb = 2 * depth;
    run r = {.ctx = ctx, .p = p};
    dit_status st = dit_sched_new(ctx, &p->sched, p->steps, 1, &r.s);
    if (st)
        return st;
    if (p->task != DIT_TASK_GENERATE) {
        const int init = (int)(p->steps * p->strength);
        r.start = p->steps - (init < p->steps ? init : p->steps);
    }
    double *level = malloc(2 * (size_t)p->steps * sizeof *level), *weight = level + p->steps;
    uint8_t *pl = malloc((size_t)p->steps * nb);
    if (!level || !pl) {
        free(level), free(pl), dit_sched_free(r.s);
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory for the cache plan");
    }
    for (int k = 0; k < p->steps; k++)
        level[k] = step_level(&r, k), weight[k] = step_weight(&r, k);
    dit_cache_plan_build(p->cache_profile, depth, p->cache_budget, level, weight, r.start, p->steps,
                         pl);
    long on = 0, all = (long)(p->steps - r.start) * nb;
    for (size_t i = (size_t)r.start * nb; i < (size_t)p->steps * nb; i++)
        on += !pl[i];
    if (computed)
        *computed = all ? (double)on / (double)all : 1.0;
    free(level), dit_sched_free(r.s);
    *plan = pl;
    return DIT_OK;
}
