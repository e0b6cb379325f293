/* End-to-end pipelines against the diffusers-based reference loop of gen.py,
 * with the tiny random DiT (dit_diffusers_p2) and VAE (vae_kl) fixtures and
 * Philox noise: generate (CFG 4, 10 DDIM steps), img2img (strength 0.6),
 * inpaint with a hard and a feathered mask (decoded image within 1e-4 of
 * max); generate again through the block cache's slots (nothing reused)
 * and with a guidance interval over every step. Then the properties that need no reference: pixels outside the mask
 * bit-identical, an all-zero mask returns the input, an all-one mask equals
 * generation, same seed -> same bytes, thread counts, bad parameters,
 * cancel. */
#include "common.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REL_TOL 1e-4

static int failures;

typedef struct {
    dit_ctx *ctx;
    dit_model *dit;
    dit_vae *vae;
    st_file *io;
    float *src, *mask, *mask_soft;
    int H, W;
} fixture;

static float *io_get(fixture *fx, const char *name, int64_t *shape)
{
    float *p = read_tensor(fx->ctx, fx->io, name, NULL, shape, NULL);
    CHECK(p != NULL, "pipe.io lacks '%s' (regenerate with tests/golden/gen.py)", name);
    return p;
}

static void params_for(const fixture *fx, dit_pipeline_params *p, dit_task task)
{
    dit_pipeline_params_default(p, fx->dit, fx->vae);
    p->task = task;
    dit_sched_config_from_json(fx->ctx, "pipe.io", st_meta(fx->io, "scheduler"), &p->sched);
    p->steps = atoi(st_meta(fx->io, "steps"));
    p->guidance = (float)g_ascii_strtod(st_meta(fx->io, "guidance"), NULL);
    p->class_id = atoi(st_meta(fx->io, "class"));
    p->seed = (uint64_t)g_ascii_strtoull(st_meta(fx->io, "seed"), NULL, 10);
    p->strength =
        task == DIT_TASK_IMG2IMG ? (float)g_ascii_strtod(st_meta(fx->io, "strength"), NULL) : 1.0f;
    p->guidance_channels = 0; /* diffusers guides every channel */
}

static float *run(fixture *fx, const dit_pipeline_params *p, const float *mask)
{
    float *out = calloc((size_t)p->batch * 3 * fx->H * fx->W, sizeof *out);
    dit_status st = dit_pipeline_run(fx->ctx, p, p->task == DIT_TASK_GENERATE ? NULL : fx->src,
                                     mask, fx->H, fx->W, NULL, NULL, NULL, out);
    CHECK(st == DIT_OK, "pipeline: %s", dit_last_error(fx->ctx));
    if (st) {
        free(out);
        return NULL;
    }
    return out;
}

static void against_reference(fixture *fx)
{
    static const struct {
        const char *label, *ref;
        dit_task task;
        int mask; /* 0 none, 1 hard, 2 soft */
    } cases[] = {
        {"generate (CFG 4, DDIM 10)", "gen/image", DIT_TASK_GENERATE, 0},
        {"img2img (strength 0.6)", "img2img/image", DIT_TASK_IMG2IMG, 0},
        {"inpaint (hard mask)", "inpaint/image", DIT_TASK_INPAINT, 1},
        {"inpaint (feathered mask)", "inpaint_soft/image", DIT_TASK_INPAINT, 2},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        float *ref = io_get(fx, cases[i].ref, NULL);
        dit_pipeline_params p;
        params_for(fx, &p, cases[i].task);
        float *out = run(fx, &p,
                         cases[i].mask == 1   ? fx->mask
                         : cases[i].mask == 2 ? fx->mask_soft
                                              : NULL);
        if (ref && out)
            CHECK(compare_ref(cases[i].label, out, ref, (size_t)3 * fx->H * fx->W, REL_TOL), "%s",
                  cases[i].label);
        free(ref);
        free(out);
    }
    /* the generate case again through the block cache's slots (a plan that
     * reuses nothing) and with a guidance interval over every step: the
     * same reference */
    float *ref = io_get(fx, "gen/image", NULL);
    dit_pipeline_params p;
    params_for(fx, &p, DIT_TASK_GENERATE);
    const int nb = 2 * dit_model_config(fx->dit)->depth;
    uint8_t *none = calloc((size_t)p.steps * nb, 1);
    p.cache_plan = none;
    float *out = run(fx, &p, NULL);
    if (ref && out)
        CHECK(compare_ref("generate through the cache slots", out, ref, (size_t)3 * fx->H * fx->W,
                          REL_TOL),
              "the cache path with nothing reused is not the reference");
    free(out);
    params_for(fx, &p, DIT_TASK_GENERATE);
    p.guidance_from = 0.0f, p.guidance_to = 1.0f;
    out = run(fx, &p, NULL);
    if (ref && out)
        CHECK(compare_ref("generate, guidance interval [0, 1]", out, ref, (size_t)3 * fx->H * fx->W,
                          REL_TOL),
              "a guidance interval over every step is not CFG");
    free(out), free(ref), free(none);
}

static size_t count_diff(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += memcmp(&a[i], &b[i], sizeof *a) != 0;
    return d;
}

static void properties(fixture *fx)
{
    const size_t px = (size_t)fx->H * fx->W, n = 3 * px;
    dit_pipeline_params p;

    /* outside the mask: the input bit for bit; inside: changed */
    for (int soft = 0; soft < 2; soft++) {
        const float *mask = soft ? fx->mask_soft : fx->mask;
        params_for(fx, &p, DIT_TASK_INPAINT);
        float *out = run(fx, &p, mask);
        if (!out)
            continue;
        size_t outside_diff = 0, inside_same = 0, inside = 0;
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < px; i++) {
                const size_t j = (size_t)c * px + i;
                if (mask[i] == 0.0f)
                    outside_diff += memcmp(&out[j], &fx->src[j], sizeof(float)) != 0;
                else if (mask[i] == 1.0f)
                    inside++, inside_same += out[j] == fx->src[j];
            }
        printf("inpaint %s mask: %zu pixels outside differ, %zu of %zu inside unchanged\n",
               soft ? "soft" : "hard", outside_diff, inside_same, inside);
        CHECK(outside_diff == 0, "pixels outside the mask changed");
        CHECK(inside > 0 && inside_same < inside / 10, "the masked region did not change");
        free(out);
    }

    /* all-zero mask: the input; all-one mask: plain generation from the same noise */
    float *zero = calloc(px, sizeof *zero), *one = malloc(px * sizeof *one);
    for (size_t i = 0; i < px; i++)
        one[i] = 1.0f;
    params_for(fx, &p, DIT_TASK_INPAINT);
    float *out = run(fx, &p, zero);
    if (out)
        CHECK(count_diff(out, fx->src, n) == 0, "an all-zero mask must return the input");
    free(out);
    out = run(fx, &p, one);
    params_for(fx, &p, DIT_TASK_GENERATE);
    float *gen = run(fx, &p, NULL);
    if (out && gen)
        CHECK(compare_rel("all-one mask vs generate", out, gen, n, 1e-6),
              "an all-one mask must equal generation");
    /* strength 0 returns the source */
    params_for(fx, &p, DIT_TASK_IMG2IMG);
    p.strength = 0.0f;
    float *s0 = run(fx, &p, NULL);
    if (s0)
        CHECK(count_diff(s0, fx->src, n) == 0, "strength 0 must return the input");
    free(s0);

    /* same seed twice -> same bytes; one thread -> same bytes too */
    params_for(fx, &p, DIT_TASK_GENERATE);
    float *again = run(fx, &p, NULL);
    if (gen && again)
        CHECK(count_diff(gen, again, n) == 0, "same seed gave different bytes");
    dit_ctx_set_threads(fx->ctx, 1);
    float *one_thread = run(fx, &p, NULL);
    dit_ctx_set_threads(fx->ctx, 0);
    if (gen && one_thread)
        CHECK(compare_rel("1 thread vs all threads", one_thread, gen, n, 1e-6),
              "thread count changed the image");
    p.seed += 1;
    float *other = run(fx, &p, NULL);
    if (gen && other)
        CHECK(count_diff(gen, other, n) > n / 2, "another seed gave the same image");
    free(out), free(gen), free(again), free(one_thread), free(other), free(zero), free(one);

    /* bad parameters: each a clear error */
    static const struct {
        const char *what, *expect;
    } bad[] = {{"steps 0", "steps must be"},
               {"strength 1.5", "strength must be in [0, 1]"},
               {"class 11", "class 11 is not one of the model's classes"},
               {"odd size", "multiples of 4"},
               {"mask > 1", "mask values must be in [0, 1]"}};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        params_for(fx, &p, i == 4 ? DIT_TASK_INPAINT : DIT_TASK_IMG2IMG);
        int H = fx->H, W = fx->W;
        float *mask = NULL;
        if (i == 0)
            p.steps = 0;
        if (i == 1)
            p.strength = 1.5f;
        if (i == 2)
            p.class_id = 11;
        if (i == 3)
            W = fx->W - 2;
        if (i == 4) {
            mask = malloc(px * sizeof *mask);
            memcpy(mask, fx->mask, px * sizeof *mask);
            mask[5] = 2.0f;
        }
        float *o = calloc(n, sizeof *o);
        dit_status st = dit_pipeline_run(fx->ctx, &p, fx->src, mask, H, W, NULL, NULL, NULL, o);
        const bool ok = st == DIT_ERR_INVALID_ARG && strstr(dit_last_error(fx->ctx), bad[i].expect);
        printf("bad parameter %-12s -> %s: %s  %s\n", bad[i].what, dit_status_name(st),
               dit_last_error(fx->ctx), ok ? "OK" : "NOT OK");
        CHECK(ok, "bad parameter %s", bad[i].what);
        free(o);
        free(mask);
    }

    /* cancel: DIT_CANCELLED, and out untouched */
    params_for(fx, &p, DIT_TASK_GENERATE);
    volatile int cancel = 1;
    float *o = malloc(n * sizeof *o);
    for (size_t i = 0; i < n; i++)
        o[i] = 42.0f;
    dit_status st = dit_pipeline_run(fx->ctx, &p, NULL, NULL, fx->H, fx->W, NULL, NULL, &cancel, o);
    size_t touched = 0;
    for (size_t i = 0; i < n; i++)
        touched += o[i] != 42.0f;
    CHECK(st == DIT_CANCELLED && touched == 0, "cancel: status %s, %zu values touched",
          dit_status_name(st), touched);
    free(o);
}

int main(void)
{
    fixture fx = {.ctx = dit_ctx_new()};
    const int rc = test_precision_from_env(fx.ctx);
    if (rc) {
        dit_ctx_free(fx.ctx);
        return rc;
    }
    char *dp = fixture_path("dit_diffusers_p2"), *vp = fixture_path("vae_kl");
    char *iop = fixture_path("pipe.io.safetensors");
    if (dit_model_load(fx.ctx, dp, &fx.dit) || dit_vae_load(fx.ctx, vp, &fx.vae) ||
        st_open(fx.ctx, iop, &fx.io)) {
        fprintf(stderr, "%s (regenerate with tests/golden/gen.py)\n", dit_last_error(fx.ctx));
        return 1;
    }
    int64_t shape[8];
    fx.src = io_get(&fx, "src/image", shape);
    fx.H = (int)shape[2], fx.W = (int)shape[3];
    fx.mask = io_get(&fx, "inpaint/mask", NULL);
    fx.mask_soft = io_get(&fx, "inpaint_soft/mask", NULL);
    if (fx.src && fx.mask && fx.mask_soft) {
        against_reference(&fx);
        properties(&fx);
    }
    free(fx.src), free(fx.mask), free(fx.mask_soft);
    st_close(fx.io);
    dit_model_free(fx.dit);
    dit_vae_free(fx.vae);
    dit_ctx_free(fx.ctx);
    g_free(dp), g_free(vp), g_free(iop);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
