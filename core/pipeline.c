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
#include "internal/sched.h"

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
    p->strength = 0.75f;
    p->batch = 1;
}

const char *const dit_mask_mode_names[DIT_MASK_MODE_COUNT] = {"regenerate", "differential"};

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

static dit_status check_params(dit_ctx *ctx, const dit_pipeline_params *p, const float *image,
                               const float *mask, int H, int W, const float *out, space *sp)
{
    if (!p || !p->model || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_pipeline_run: NULL params, model or out");
    const dit_config *c = dit_model_config(p->model);
    if (p->task != DIT_TASK_GENERATE && p->task != DIT_TASK_IMG2IMG && p->task != DIT_TASK_INPAINT)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "unknown task %d", (int)p->task);
    if (p->steps < 1 || p->steps > 1000)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "steps must be 1..1000, got %d", p->steps);
    dit_status st;
    if ((st = dit_check_range(ctx, "strength", p->strength)) ||
        (st = dit_check_range(ctx, "guidance", p->guidance)))
        return st;
    if (p->class_id < 0 || p->class_id > c->num_classes)
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
    if ((st = dit_model_check_backend(ctx)) || (p->vae && (st = dit_vae_check_backend(ctx))))
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
    const dit_config *c = dit_model_config(p->model);
    const int B = p->batch, C = sp.C, h = sp.h, w = sp.w;
    const size_t lat = (size_t)C * h * w, n = (size_t)B * lat, hw = (size_t)h * w;
    const size_t img_n = (size_t)3 * H * W;

    /* strength 0: nothing to do, the input comes back as it is */
    if (p->task != DIT_TASK_GENERATE && p->strength == 0.0f) {
        for (int b = 0; b < B; b++)
            memcpy(out + (size_t)b * img_n, image, img_n * sizeof *out);
        return DIT_OK;
    }

    dit_sched_config sc = p->sched;
    if (sc.variance == DIT_VAR_LEARNED_RANGE && !c->learn_sigma)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "learned variance needs a learned-sigma model (out_channels = 2 x in)");
    dit_scheduler *s = NULL;
    if ((st = dit_sched_new(ctx, &sc, p->steps, n, &s)))
        return st;

    const bool cfg = p->guidance > 1.0f && c->num_classes > 0;
    const int rows = cfg ? 2 * B : B;
    const int Cout = c->out_channels;
    const bool learned = sc.variance == DIT_VAR_LEARNED_RANGE;
    float *x = malloc(n * sizeof *x);
    float *xin = malloc((size_t)rows * lat * sizeof *xin);
    float *mout = malloc((size_t)rows * Cout * hw * sizeof *mout);
    float *eps = malloc((learned ? 2 : 1) * n * sizeof *eps);
    float *noise = malloc(n * sizeof *noise);
    float *tvec = malloc((size_t)rows * sizeof *tvec);
    int32_t *yvec = malloc((size_t)rows * sizeof *yvec);
    float *z0 = p->task != DIT_TASK_GENERATE ? malloc(lat * sizeof *z0) : NULL;
    float *mlat = p->task == DIT_TASK_INPAINT ? malloc(hw * sizeof *mlat) : NULL;
    float *noised = p->task == DIT_TASK_INPAINT ? malloc(n * sizeof *noised) : NULL;
    float *img = malloc((size_t)B * img_n * sizeof *img);
    if (!x || !xin || !mout || !eps || !noise || !tvec || !yvec || !img ||
        (p->task != DIT_TASK_GENERATE && !z0) ||
        (p->task == DIT_TASK_INPAINT && (!mlat || !noised))) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory for the pipeline buffers");
        goto out;
    }
    for (int r = 0; r < rows; r++)
        yvec[r] = r < B ? p->class_id : c->num_classes;
    if (z0 && (st = encode_source(ctx, p, &sp, image, H, W, z0)))
        goto out;
    /* img2img / inpaint with strength s skip the first steps - int(steps * s) */
    int start = 0;
    if (p->task != DIT_TASK_GENERATE) {
        int init = (int)(p->steps * p->strength);
        init = init < p->steps ? init : p->steps;
        start = p->steps - init;
    }
    const bool differential = mlat && p->mask_mode == DIT_MASK_DIFFERENTIAL;
    if (mlat)
        reduce_mask(mask, H, W, sp.f, differential, p->grow, mlat);
    if (differential) /* mlat: the first step each latent pixel runs free */
        start = first_free_steps(mlat, hw, p->steps, p->strength);
    if (p->init_noise)
        memcpy(noise, p->init_noise, n * sizeof *noise);
    else
        dit_randn(p->seed, 0, 0, n, noise);
    if (start == p->steps) { /* differential, nothing strong enough to change */
        for (int b = 0; b < B; b++)
            memcpy(x + (size_t)b * lat, z0, lat * sizeof *x);
    } else if (p->task == DIT_TASK_GENERATE || start == 0) {
        const double sigma = dit_sched_init_noise_sigma(s);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(noise[i] * sigma);
    } else {
        dit_randn(p->seed, 1, 0, n, noise);
        for (int b = 0; b < B; b++)
            dit_sched_add_noise(s, start, z0, noise + (size_t)b * lat, x + (size_t)b * lat, lat);
    }

    const int gc = p->guidance_channels ? p->guidance_channels : C;
    for (int k = start; k < p->steps; k++) {
        if (cancel && *cancel) {
            st = DIT_CANCELLED;
            dit_error(ctx, st, "cancelled after %d of %d steps", k - start, p->steps - start);
            goto out;
        }
        if (mlat) { /* the known region follows the source, noised to this step */
            dit_randn(p->seed, 2000u + (uint32_t)k, 0, n, noise);
            for (int b = 0; b < B; b++)
                dit_sched_add_noise(s, k, z0, noise + (size_t)b * lat, noised + (size_t)b * lat,
                                    lat);
            for (size_t i = 0; i < n; i++) {
                const float m = differential ? (float)(k >= mlat[i % hw]) : mlat[i % hw];
                x[i] = m * x[i] + (1.0f - m) * noised[i];
            }
        }
        dit_sched_scale_input(s, k, x, xin, n);
        if (cfg)
            memcpy(xin + n, xin, n * sizeof *xin);
        const float t = (float)dit_sched_timestep(s, k);
        for (int r = 0; r < rows; r++)
            tvec[r] = t;
        if ((st = dit_model_forward(ctx, p->model, rows, h, w, xin, tvec, yvec, mout)))
            goto out;
        guided_eps(mout, B, C, Cout, hw, cfg ? p->guidance : 0.0f, gc, learned, eps);
        const float *step_noise = NULL;
        if (dit_sched_needs_noise(s, k)) {
            dit_randn(p->seed, 1000u + (uint32_t)k, 0, n, noise);
            step_noise = noise;
        }
        if ((st = dit_sched_step(ctx, s, k, eps, x, step_noise, x)))
            goto out;
        if (progress && !progress(user, k - start + 1, p->steps - start, x)) {
            st = DIT_CANCELLED;
            dit_error(ctx, st, "cancelled after %d of %d steps", k - start + 1, p->steps - start);
            goto out;
        }
    }

    if (differential) /* never free: the source itself, not its last denoise */
        for (size_t i = 0; i < n; i++)
            if (mlat[i % hw] >= (float)p->steps)
                x[i] = z0[i % lat];
    if ((st = decode_latents(ctx, p, &sp, B, x, img)))
        goto out;
    if (p->task == DIT_TASK_INPAINT) { /* outside the mask: the input, bit for bit */
        const size_t px = (size_t)H * W;
        for (int b = 0; b < B; b++)
            for (int ch = 0; ch < 3; ch++)
                for (size_t i = 0; i < px; i++) {
                    const float m = mask[i];
                    float *o = img + (size_t)b * img_n + (size_t)ch * px + i;
                    const float src = image[(size_t)ch * px + i];
                    *o = m == 0.0f ? src : m * *o + (1.0f - m) * src;
                }
    }
    memcpy(out, img, (size_t)B * img_n * sizeof *out);
out:
    dit_sched_free(s);
    free(x), free(xin), free(mout), free(eps), free(noise), free(tvec), free(yvec), free(z0),
        free(mlat), free(noised), free(img);
    return st;
}
