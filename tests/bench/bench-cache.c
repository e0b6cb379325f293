/* Benchmark (not a test): fewer FLOPs per image against simply taking
 * fewer steps (README, Fewer FLOPs per image).
 *
 * For each setting (the block cache at three budgets with the model's
 * calibration, the uncalibrated even schedule, the guidance interval) one
 * run is timed and compared with the full 50-step result of the same seed:
 * latent relative L2 and pixel PSNR; then plain DDIM with as many steps as
 * fit the same wall-clock time, compared the same way. A setting earns its
 * place when it lands closer to the 50-step result than that.
 *
 *   1. DiT-XL/2-shaped seeded weights at 256x256 (SD-VAE-shaped decoder),
 *      class 207, CFG 4; calibrated on other seeds than the ones measured.
 *      When the reference runs (DIT_TORCH_PYTHON or python3 with torch and
 *      diffusers), diffusers' own cache hooks on the same weights.
 *   2. The default model (argv[1]), every class: also the class agreement
 *      of the results' nearest Fashion-MNIST training image, when Debian's
 *      dataset-fashion-mnist is installed.
 *
 * Environment: DIT_BENCH_DEPTH (28), DIT_BENCH_STEPS (50), DIT_BENCH_XL_SEEDS
 * (2), DIT_BENCH_CALIBRATION (samples, 2), DIT_BENCH_PER_CLASS (default
 * model, 4), DIT_BENCH_PART (all, xl or default), DIT_THREADS. */
#include "bench-util.h"
#include "common.h"
#include "data.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    float budget;   /* < 1: the cache */
    bool profile;   /* with the calibration */
    float from, to; /* the guidance interval */
} setting;

static const setting settings[] = {
    {"cache 0.7", 0.7f, true, 0, 1},
    {"cache 0.5", 0.5f, true, 0, 1},
    {"cache 0.35", 0.35f, true, 0, 1},
    {"cache 0.5, even (no calibration)", 0.5f, false, 0, 1},
    {"guidance interval 0..0.7", 1, false, 0.0f, 0.7f},
};
enum { N_SETTINGS = sizeof settings / sizeof settings[0] };

typedef struct {
    float *latent; /* (B, C, h, w) after the last step */
    size_t n;
} grab;

static bool grab_latent(void *user, int step, int total, const float *latent)
{
    grab *g = user;
    (void)step, (void)total;
    if (latent)
        memcpy(g->latent, latent, g->n * sizeof *g->latent);
    return true;
}

/* one run; seconds, or -1 after printing why */
static double run(dit_ctx *ctx, const dit_pipeline_params *p, int H, int W, float *img, grab *g)
{
    const double t0 = now_ms();
    if (dit_pipeline_run(ctx, p, NULL, NULL, H, W, grab_latent, g, NULL, img) != DIT_OK) {
        fprintf(stderr, "run: %s\n", dit_last_error(ctx));
        return -1;
    }
    return (now_ms() - t0) / 1e3;
}

static double rel_l2(const float *a, const float *ref, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++)
        d += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]), r += (double)ref[i] * ref[i];
    return sqrt(d / (r > 0 ? r : 1));
}

static double psnr(const float *a, const float *ref, size_t n) /* images in [-1, 1] */
{
    double se = 0;
    for (size_t i = 0; i < n; i++)
        se += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    const double mse = se / (double)n;
    return mse > 0 ? 10 * log10(4.0 / mse) : 99;
}

/* What one configuration gives over a set of jobs (seed, class) */
typedef struct {
    double seconds, l2, psnr;
    int agree, count;
} figures;

typedef struct {
    dit_ctx *ctx;
    dit_pipeline_params base; /* DDIM, the full step count */
    int H, W, batch, n_jobs;
    const uint64_t *seeds;
    const int *classes;
    size_t lat_n, img_n;        /* per job */
    float **ref_lat, **ref_img; /* (n_jobs) the full runs */
    const dataset *train;       /* for the class agreement, or NULL */
} suite;

static bool measure(const suite *s, const dit_pipeline_params *p, bool is_ref, figures *f)
{
    memset(f, 0, sizeof *f);
    float *img = malloc(s->img_n * sizeof *img), *lat = malloc(s->lat_n * sizeof *lat);
    grab g = {lat, s->lat_n};
    bool ok = img && lat;
    for (int j = 0; ok && j < s->n_jobs; j++) {
        dit_pipeline_params q = *p;
        q.seed = s->seeds[j], q.class_id = s->classes[j], q.batch = s->batch;
        const double sec = run(s->ctx, &q, s->H, s->W, img, &g);
        ok = sec >= 0;
        f->seconds += sec;
        if (is_ref) {
            memcpy(s->ref_lat[j], lat, s->lat_n * sizeof *lat);
            memcpy(s->ref_img[j], img, s->img_n * sizeof *img);
        }
        f->l2 += rel_l2(lat, s->ref_lat[j], s->lat_n) / s->n_jobs;
        f->psnr += psnr(img, s->ref_img[j], s->img_n) / s->n_jobs;
        if (s->train) { /* channel 0 of each image against the training set */
            const int S = s->train->size;
            float *gray = malloc((size_t)s->batch * S * S * sizeof *gray);
            int *nn = malloc((size_t)s->batch * sizeof *nn);
            double *nd = malloc((size_t)s->batch * sizeof *nd);
            for (int b = 0; b < s->batch; b++)
                memcpy(gray + (size_t)b * S * S, img + (size_t)b * 3 * S * S,
                       (size_t)S * S * sizeof *gray);
            dataset_nearest(s->train, gray, s->batch, nn, nd);
            for (int b = 0; b < s->batch; b++)
                f->agree += s->train->labels[nn[b]] == s->classes[j];
            free(gray), free(nn), free(nd);
        }
        f->count += s->batch;
    }
    free(img), free(lat);
    return ok;
}

static void print_row(const char *name, int steps, const figures *f, double full_s, bool agreement)
{
    printf("  %-34s %3d steps  %7.2f s  %5.2fx  latent L2 %.4f  PSNR %5.1f dB", name, steps,
           f->seconds, full_s / f->seconds, f->l2, f->psnr);
    if (agreement)
        printf("  class agreement %5.1f%%", 100.0 * f->agree / f->count);
    printf("\n");
}

/* The table: full, each setting and the fewer-step run of its time */
static int run_suite(suite *s, const dit_cache_profile *prof, const char *title)
{
    const int steps = s->base.steps;
    for (int j = 0; j < s->n_jobs; j++) {
        s->ref_lat[j] = malloc(s->lat_n * sizeof(float));
        s->ref_img[j] = malloc(s->img_n * sizeof(float));
    }
    figures full, one;
    dit_pipeline_params q = s->base;
    q.steps = 2; /* warm-up: weights packed, caches filled */
    if (!measure(s, &q, true, &one))
        return 1;
    q.steps = 1;
    if (!measure(s, &q, true, &one) || !measure(s, &s->base, true, &full))
        return 1;
    /* time = fixed + steps x per step (the fixed part: decode, setup) */
    const double per_step = (full.seconds - one.seconds) / (steps - 1);
    const double fixed = one.seconds - per_step;
    printf("%s: %d jobs of batch %d, %d DDIM steps, CFG %g; %.3f s a step, %.2f s fixed\n", title,
           s->n_jobs, s->batch, steps, (double)s->base.guidance, per_step / s->n_jobs,
           fixed / s->n_jobs);
    print_row("full", steps, &full, full.seconds, s->train != NULL);
    for (int i = 0; i < N_SETTINGS; i++) {
        const setting *st = &settings[i];
        dit_pipeline_params p = s->base;
        p.cache_budget = st->budget, p.cache_profile = st->profile ? prof : NULL;
        p.guidance_from = st->from, p.guidance_to = st->to;
        figures f, eq;
        if (!measure(s, &p, false, &f))
            return 1;
        print_row(st->name, steps, &f, full.seconds, s->train != NULL);
        int eq_steps = (int)lround((f.seconds - fixed) / per_step);
        eq_steps = eq_steps < 1 ? 1 : eq_steps > steps ? steps : eq_steps;
        p = s->base;
        p.steps = eq_steps;
        if (!measure(s, &p, false, &eq))
            return 1;
        char name[64];
        snprintf(name, sizeof name, "  fewer steps, same time");
        print_row(name, eq_steps, &eq, full.seconds, s->train != NULL);
    }
    for (int j = 0; j < s->n_jobs; j++)
        free(s->ref_lat[j]), free(s->ref_img[j]);
    return 0;
}

static dit_cache_profile *calibrate(dit_ctx *ctx, const dit_pipeline_params *base, int H, int W,
                                    int samples)
{
    dit_pipeline_params c = *base;
    c.seed = 1000; /* not the seeds measured */
    dit_cache_profile *prof = NULL;
    const double t0 = now_ms();
    if (dit_cache_calibrate(ctx, &c, H, W, samples, NULL, NULL, NULL, &prof) != DIT_OK) {
        fprintf(stderr, "calibration: %s\n", dit_last_error(ctx));
        return NULL;
    }
    printf("calibrated on %d samples in %.1f s\n", samples, (now_ms() - t0) / 1e3);
    return prof;
}

static void ddim(dit_pipeline_params *p, int steps)
{
    dit_sched_config_use_sampler(&p->sched, DIT_SAMPLER_DDIM);
    p->steps = steps;
}

static int bench_xl(dit_ctx *ctx, int steps)
{
    const int depth = env_int("DIT_BENCH_DEPTH", 28), n_seeds = env_int("DIT_BENCH_XL_SEEDS", 2);
    char *dir = tmpdir_new();
    char *model_dir = g_build_filename(dir, "dit-xl-2", NULL);
    char *vae_dir = g_build_filename(dir, "sd-vae", NULL);
    g_mkdir_with_parents(model_dir, 0700);
    g_mkdir_with_parents(vae_dir, 0700);
    dit_model *m = NULL;
    dit_vae *v = NULL;
    if (!bench_write_dit_xl(ctx, model_dir, depth) || !bench_write_sd_vae(ctx, vae_dir) ||
        dit_model_load(ctx, model_dir, &m) != DIT_OK || dit_vae_load(ctx, vae_dir, &v) != DIT_OK) {
        fprintf(stderr, "DiT-XL/2 weights: %s\n", dit_last_error(ctx));
        return 1;
    }
    printf("DiT-XL/2-shaped seeded weights, depth %d, 256x256\n", depth);
    suite s = {.ctx = ctx, .H = 256, .W = 256, .batch = 1, .n_jobs = n_seeds};
    dit_pipeline_params_default(&s.base, m, v);
    ddim(&s.base, steps);
    s.base.guidance = 4.0f;
    uint64_t seeds[16];
    int classes[16];
    s.n_jobs = s.n_jobs < 1 ? 1 : s.n_jobs > 16 ? 16 : s.n_jobs;
    for (int j = 0; j < s.n_jobs; j++)
        seeds[j] = (uint64_t)j, classes[j] = 207;
    s.seeds = seeds, s.classes = classes;
    s.lat_n = (size_t)4 * 32 * 32, s.img_n = (size_t)3 * 256 * 256;
    float *rl[16], *ri[16];
    s.ref_lat = rl, s.ref_img = ri;
    dit_cache_profile *prof =
        calibrate(ctx, &s.base, 256, 256, env_int("DIT_BENCH_CALIBRATION", 2));
    int rc = prof ? run_suite(&s, prof, "DiT-XL/2-shaped") : 1;
    dit_cache_profile_free(prof);

    /* diffusers' cache hooks on the same weights */
    char threads_s[16], steps_s[16];
    snprintf(threads_s, sizeof threads_s, "%d", dit_ctx_threads(ctx));
    snprintf(steps_s, sizeof steps_s, "%d", steps);
    const char *args[] = {"--model", model_dir,   "--vae",   vae_dir, "--steps",
                          steps_s,   "--threads", threads_s, NULL};
    char *json = rc ? NULL : run_reference("torch_cache_ref.py", args);
    if (json)
        printf("diffusers cache hooks (same weights, %d steps, %s): %s", steps, bench_where(ctx),
               json);
    g_free(json);
    dit_model_free(m);
    dit_vae_free(v);
    g_free(model_dir), g_free(vae_dir), g_free(dir);
    return rc;
}

static int bench_default(dit_ctx *ctx, const char *path, int steps)
{
    dit_model *m = NULL;
    if (dit_model_load(ctx, path, &m) != DIT_OK) {
        fprintf(stderr, "default model: %s\n", dit_last_error(ctx));
        return 1;
    }
    const dit_config *c = dit_model_config(m);
    const int side = c->sample_size, per_class = env_int("DIT_BENCH_PER_CLASS", 4);
    dataset train = {0};
    GError *err = NULL;
    const bool have_data = dataset_load_named("fashion-mnist", side, &train, &err);
    if (!have_data) {
        printf("(no class agreement: %s)\n", err->message);
        g_error_free(err);
    }
    suite s = {.ctx = ctx, .H = side, .W = side, .batch = per_class, .n_jobs = c->num_classes};
    dit_pipeline_params_default(&s.base, m, NULL);
    ddim(&s.base, steps);
    uint64_t seeds[64];
    int classes[64];
    s.n_jobs = s.n_jobs > 64 ? 64 : s.n_jobs;
    for (int j = 0; j < s.n_jobs; j++)
        seeds[j] = (uint64_t)j, classes[j] = j;
    s.seeds = seeds, s.classes = classes;
    s.lat_n = (size_t)per_class * c->in_channels * side * side;
    s.img_n = (size_t)per_class * 3 * side * side;
    float *rl[64], *ri[64];
    s.ref_lat = rl, s.ref_img = ri;
    s.train = have_data ? &train : NULL;
    dit_cache_profile *prof = calibrate(ctx, &s.base, side, side, 8);
    int rc = prof ? run_suite(&s, prof, "default model") : 1;
    dit_cache_profile_free(prof);
    dataset_clear(&train);
    dit_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* minutes per part: show each row as it comes */
    const char *part = g_getenv("DIT_BENCH_PART") ? g_getenv("DIT_BENCH_PART") : "all";
    const int steps = env_int("DIT_BENCH_STEPS", 50);
    const char *device, *precision;
    dit_ctx *ctx = bench_ctx_new(&device, &precision);
    if (!ctx)
        return 1;
    printf("block cache and guidance interval against fewer steps (%s, %s)\n", bench_where(ctx),
           precision);
    int rc = 0;
    if (argc > 1 && (!strcmp(part, "all") || !strcmp(part, "default")))
        rc |= bench_default(ctx, argv[1], steps);
    if (!strcmp(part, "all") || !strcmp(part, "xl"))
        rc |= bench_xl(ctx, steps);
    dit_ctx_free(ctx);
    return rc;
}
