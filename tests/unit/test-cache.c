/* The block cache (reuse of block outputs across steps) on the default
 * model, 20 DDIM steps, CFG 4:
 *  - a plan that reuses nothing is no cache, bit for bit (generate,
 *    img2img, inpaint); budget 1 as well;
 *  - budget 0.5 without a profile reuses whole steps: the plan computes
 *    half, the result moves (and less than a plan reusing every step after
 *    the first), and equals the run given that plan explicitly;
 *  - a profile: calibrate, save, load gives the same numbers; its plan
 *    stays within the budget, reuses per block (not whole steps only), and
 *    lands closer to the full result than the even plan of the same budget
 *    (mean over eight images of two classes);
 *    a profile of another depth, a malformed file, a budget of 0 are
 *    refused with a message;
 *  - inpaint with the cache: outside the mask bit for bit; the guidance
 *    interval and resampling with the cache run and stay finite. */
#include "common.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;

enum { S = 32, PX = S * S, N = 3 * PX, STEPS = 50, QUICK = 10, PER_CLASS = 4 };

static void base_params(dit_pipeline_params *p, const dit_model *m, dit_task task)
{
    dit_pipeline_params_default(p, m, NULL);
    dit_sched_config_use_sampler(&p->sched, DIT_SAMPLER_DDIM);
    p->task = task, p->steps = STEPS, p->class_id = 7, p->seed = 3, p->guidance = 4.0f;
    p->strength = task == DIT_TASK_IMG2IMG ? 0.6f : 1.0f;
}

static bool sample(dit_ctx *ctx, const dit_pipeline_params *p, const float *src, const float *mask,
                   float *out)
{
    dit_status st = dit_pipeline_run(ctx, p, p->task == DIT_TASK_GENERATE ? NULL : src, mask, S, S,
                                     NULL, NULL, NULL, out);
    CHECK(st == DIT_OK, "sampling: %s", dit_last_error(ctx));
    return st == DIT_OK;
}

static double rel_dist(const float *a, const float *b)
{
    double d = 0, n = 0;
    for (int i = 0; i < N; i++)
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), n += (double)b[i] * b[i];
    return sqrt(d / n);
}

/* no reuse through the slots = no cache, for each task */
static void nothing_reused(dit_ctx *ctx, const dit_model *m, const float *src, const float *mask)
{
    const int nb = 2 * dit_model_config(m)->depth;
    uint8_t *none = calloc((size_t)QUICK * nb, 1);
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    for (int task = 0; task < 3; task++) {
        dit_pipeline_params p;
        base_params(&p, m, (dit_task)task);
        p.steps = QUICK; /* bit for bit needs no more */
        const float *mk = task == DIT_TASK_INPAINT ? mask : NULL;
        bool ok = sample(ctx, &p, src, mk, a);
        p.cache_budget = 1.0f;
        ok = ok && sample(ctx, &p, src, mk, b);
        CHECK(ok && memcmp(a, b, N * sizeof *a) == 0, "task %d: budget 1 is not the default", task);
        p.cache_plan = none;
        ok = ok && sample(ctx, &p, src, mk, b);
        CHECK(ok && memcmp(a, b, N * sizeof *a) == 0,
              "task %d: a plan reusing nothing is not the default", task);
    }
    free(none), free(a), free(b);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    dit_model *m = NULL;
    char *path = g_build_filename(g_getenv("G_TEST_SRCDIR"), "..", "data", "models", "default",
                                  "model.safetensors", NULL);
    if (dit_model_load(ctx, path, &m) != DIT_OK) {
        printf("%s\n", dit_last_error(ctx));
        return 1;
    }
    const int depth = dit_model_config(m)->depth, nb = 2 * depth;
    float *src = malloc(N * sizeof *src), *full = malloc(N * sizeof *full);
    float *even = malloc(N * sizeof *even), *tmp = malloc(N * sizeof *tmp);
    float *mask = malloc(PX * sizeof *mask);
    for (int i = 0; i < N; i++)
        src[i] = 0.8f * sinf(0.07f * (float)i) - 0.1f;
    for (int i = 0; i < PX; i++)
        mask[i] = (i / S >= 8 && i / S < 24 && i % S >= 8 && i % S < 24) ? 1.0f : 0.0f;

    nothing_reused(ctx, m, src, mask);

    /* budget 0.5, no profile: every other step computed */
    dit_pipeline_params p;
    base_params(&p, m, DIT_TASK_GENERATE);
    sample(ctx, &p, src, NULL, full);
    p.cache_budget = 0.5f;
    uint8_t *plan = NULL;
    double share = 0;
    CHECK(dit_cache_plan(ctx, &p, &plan, &share) == DIT_OK, "plan: %s", dit_last_error(ctx));
    printf("even plan at 0.5: computes %.3f\n", share);
    CHECK(fabs(share - 0.5) < 1e-9, "the even plan at 0.5 computes %g", share);
    bool whole = true;
    for (int k = 0; plan && k < STEPS; k++)
        for (int i = 1; i < nb; i++)
            whole = whole && plan[k * nb + i] == plan[k * nb];
    CHECK(plan && whole && !plan[0], "the even plan is not whole steps from a computed first");
    sample(ctx, &p, src, NULL, even);
    dit_pipeline_params q = p;
    q.cache_budget = 1.0f, q.cache_plan = plan;
    sample(ctx, &q, src, NULL, tmp);
    CHECK(memcmp(even, tmp, N * sizeof *tmp) == 0, "budget 0.5 is not its own plan");
    const double d_even = rel_dist(even, full);
    uint8_t *all = malloc((size_t)STEPS * nb);
    memset(all, 1, (size_t)STEPS * nb);
    q.cache_plan = all;
    sample(ctx, &q, src, NULL, tmp);
    const double d_all = rel_dist(tmp, full);
    printf("distance to the full run: even 0.5 %.4f, everything reused %.4f\n", d_even, d_all);
    CHECK(d_even > 1e-4, "the cache at 0.5 changed nothing (%g)", d_even);
    CHECK(d_all > 2 * d_even, "reusing every step is not worse than half (%g vs %g)", d_all,
          d_even);

    /* a profile: calibrated, saved, loaded */
    dit_cache_profile *prof = NULL, *back = NULL;
    dit_pipeline_params c;
    base_params(&c, m, DIT_TASK_GENERATE);
    c.seed = 100;
    CHECK(dit_cache_calibrate(ctx, &c, S, S, 4, NULL, NULL, NULL, &prof) == DIT_OK, "calibrate: %s",
          dit_last_error(ctx));
    char *dir = g_dir_make_tmp("dit-cache-XXXXXX", NULL);
    char *file = g_build_filename(dir, "profile.json", NULL);
    CHECK(dit_cache_profile_save(ctx, prof, file) == DIT_OK, "save: %s", dit_last_error(ctx));
    CHECK(dit_cache_profile_load(ctx, file, &back) == DIT_OK, "load: %s", dit_last_error(ctx));
    CHECK(dit_cache_profile_depth(back) == depth, "loaded depth %d", dit_cache_profile_depth(back));
    p.cache_profile = prof;
    uint8_t *plan_a = NULL, *plan_b = NULL;
    double share_a = 0, share_b = 0;
    dit_cache_plan(ctx, &p, &plan_a, &share_a);
    p.cache_profile = back;
    dit_cache_plan(ctx, &p, &plan_b, &share_b);
    CHECK(plan_a && plan_b && memcmp(plan_a, plan_b, (size_t)STEPS * nb) == 0,
          "the loaded profile plans otherwise than the measured one");
    printf("calibrated plan at 0.5: computes %.3f\n", share_a);
    CHECK(share_a <= 0.5 + 1e-9 && share_a > 0.4, "the calibrated plan computes %g", share_a);
    bool per_block = false;
    for (int k = 0; plan_a && k < STEPS; k++)
        for (int i = 1; i < nb; i++)
            per_block = per_block || plan_a[k * nb + i] != plan_a[k * nb];
    CHECK(per_block, "the calibrated plan only skips whole steps");
    /* one sample is noise: two classes, four seeds each, in batches */
    static const int classes[] = {2, 7};
    const int nimg = 2 * PER_CLASS;
    float *fb = malloc((size_t)PER_CLASS * N * sizeof *fb),
          *cb = malloc((size_t)PER_CLASS * N * sizeof *cb);
    double d_cal = 0, d_even8 = 0;
    for (int k = 0; k < 2; k++) {
        dit_pipeline_params r = p;
        r.class_id = classes[k], r.seed = (uint64_t)(10 * k), r.cache_budget = 1.0f;
        r.batch = PER_CLASS, r.seed_per_image = true;
        sample(ctx, &r, src, NULL, fb);
        r.cache_budget = 0.5f;
        sample(ctx, &r, src, NULL, cb);
        for (int b = 0; b < PER_CLASS; b++)
            d_cal += rel_dist(cb + (size_t)b * N, fb + (size_t)b * N) / nimg;
        r.cache_profile = NULL;
        sample(ctx, &r, src, NULL, cb);
        for (int b = 0; b < PER_CLASS; b++)
            d_even8 += rel_dist(cb + (size_t)b * N, fb + (size_t)b * N) / nimg;
    }
    free(fb), free(cb);
    printf("mean distance to the full run over %d images of 2 classes: calibrated 0.5 %.4f, "
           "even 0.5 %.4f\n",
           nimg, d_cal, d_even8);
    CHECK(d_cal < d_even8, "the calibrated plan is no closer than the even one");

    /* refusals */
    p.cache_budget = 0.0f;
    CHECK(dit_pipeline_run(ctx, &p, NULL, NULL, S, S, NULL, NULL, NULL, tmp) ==
                  DIT_ERR_INVALID_ARG &&
              strstr(dit_last_error(ctx), "cache budget"),
          "budget 0: %s", dit_last_error(ctx));
    p.cache_budget = 0.5f;
    g_file_set_contents(
        file, "{\"depth\": 3, \"level\": [0.5], \"rate\": [[1],[1],[1],[1],[1],[1]]}", -1, NULL);
    dit_cache_profile *other = NULL;
    CHECK(dit_cache_profile_load(ctx, file, &other) == DIT_OK, "load: %s", dit_last_error(ctx));
    p.cache_profile = other;
    CHECK(depth == 3 || (dit_pipeline_run(ctx, &p, NULL, NULL, S, S, NULL, NULL, NULL, tmp) ==
                             DIT_ERR_INVALID_ARG &&
                         strstr(dit_last_error(ctx), "blocks")),
          "a profile of another depth: %s", dit_last_error(ctx));
    dit_cache_profile_free(other);
    static const char *const bad[] = {"not json", "{\"depth\": 2}",
                                      "{\"depth\": 1, \"level\": [0.5, 0.7], \"rate\": "
                                      "[[1, 1], [1, 1]]}",
                                      "{\"depth\": 1, \"level\": [0.5], \"rate\": [[-1], [1]]}"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_file_set_contents(file, bad[i], -1, NULL);
        other = NULL;
        CHECK(dit_cache_profile_load(ctx, file, &other) == DIT_ERR_FORMAT && !other &&
                  strstr(dit_last_error(ctx), file),
              "malformed profile %zu: %s", i, dit_last_error(ctx));
    }
    g_unlink(file);
    CHECK(dit_cache_profile_load(ctx, file, &other) == DIT_ERR_IO, "a missing profile loaded");

    /* inpaint with the cache: outside the mask untouched; with the guidance
     * interval and resampling: finite */
    base_params(&q, m, DIT_TASK_INPAINT);
    q.cache_budget = 0.5f, q.cache_profile = prof;
    sample(ctx, &q, src, mask, tmp);
    bool kept = true;
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < PX; i++)
            kept = kept && (mask[i] > 0 || tmp[ch * PX + i] == src[ch * PX + i]);
    CHECK(kept, "inpaint with the cache changed pixels outside the mask");
    q.guidance_from = 0.3f, q.guidance_to = 0.8f;
    q.resample_jump = 5, q.resample_count = 2;
    bool finite = sample(ctx, &q, src, mask, tmp);
    for (int i = 0; i < N; i++)
        finite = finite && isfinite(tmp[i]);
    CHECK(finite, "cache + guidance interval + resampling: not finite");

    free(plan), free(all), free(plan_a), free(plan_b);
    dit_cache_profile_free(prof), dit_cache_profile_free(back);
    g_rmdir(dir);
    g_free(dir), g_free(file), g_free(path);
    free(src), free(full), free(even), free(tmp), free(mask);
    dit_model_free(m);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
