/* The backend contract (core/internal/backend.h): an entry point whose
 * backend lacks an op it calls refuses up front with DIT_ERR_UNSUPPORTED
 * naming the op and the backend, touches no output, and works again once
 * the op is back. Each case removes one op from the context's copy of the
 * CPU table. */
#include "common.h"
#include "internal/train.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define NAN_FILL(p, n)                                                                             \
    do {                                                                                           \
        for (size_t i_ = 0; i_ < (n); i_++)                                                        \
            (p)[i_] = NAN;                                                                         \
    } while (0)

static bool untouched(const float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isnan(p[i]))
            return false;
    return true;
}

/* st is UNSUPPORTED and the message names the op and the cpu backend */
static void expect_refusal(dit_ctx *ctx, dit_status st, const char *op, const char *what)
{
    const char *msg = dit_last_error(ctx);
    char quoted[64];
    g_snprintf(quoted, sizeof quoted, "'%s'", op);
    CHECK(st == DIT_ERR_UNSUPPORTED, "%s without %s: status %s (%s)", what, op, dit_status_name(st),
          msg);
    CHECK(strstr(msg, quoted) && strstr(msg, "cpu"), "%s without %s: message '%s'", what, op, msg);
    printf("%-22s without %-18s -> %s: %s\n", what, op, dit_status_name(st), msg);
}

static void forward_case(dit_ctx *ctx, const dit_model *m)
{
    const dit_config *c = dit_model_config(m);
    const int B = 1, H = c->sample_size, W = c->sample_size;
    const size_t nx = (size_t)B * c->in_channels * H * W, no = (size_t)B * c->out_channels * H * W;
    float *x = calloc(nx, sizeof *x), *out = malloc(no * sizeof *out);
    float t = 10;
    int32_t y = 0;

    dit_backend saved = ctx->cpu;
    ctx->cpu.attention = NULL;
    NAN_FILL(out, no);
    expect_refusal(ctx, dit_model_forward(ctx, m, B, H, W, x, &t, &y, out), "attention",
                   "dit_model_forward");
    CHECK(untouched(out, no), "the refused forward wrote its output");
    ctx->cpu = saved;
    CHECK(dit_model_forward(ctx, m, B, H, W, x, &t, &y, out) == DIT_OK, "%s", dit_last_error(ctx));
    CHECK(!untouched(out, no) && isfinite(out[0]), "the forward with every op wrote nothing");
    free(x);
    free(out);
}

static bool count_steps(void *user, int step, int total, const float *latent)
{
    (*(int *)user)++;
    return true;
}

static void vae_and_pipeline_cases(dit_ctx *ctx, const dit_model *m, const dit_vae *v)
{
    const int H = 16, W = 24, f = dit_vae_config(v)->downscale;
    const size_t n_img = (size_t)3 * H * W, n_lat = (size_t)4 * (H / f) * (W / f);
    float *img = calloc(n_img, sizeof *img), *lat = malloc(n_lat * sizeof *lat);
    float *out = malloc(n_img * sizeof *out);

    dit_backend saved = ctx->cpu;
    ctx->cpu.group_norm = NULL;
    NAN_FILL(lat, n_lat);
    expect_refusal(ctx, dit_vae_encode(ctx, v, 1, H, W, img, lat, NULL), "group_norm",
                   "dit_vae_encode");
    CHECK(untouched(lat, n_lat), "the refused encode wrote its output");
    for (size_t i = 0; i < n_lat; i++)
        lat[i] = 0.1f;
    NAN_FILL(out, n_img);
    expect_refusal(ctx, dit_vae_decode(ctx, v, 1, H / f, W / f, lat, out), "group_norm",
                   "dit_vae_decode");
    CHECK(untouched(out, n_img), "the refused decode wrote its output");

    /* the pipeline refuses before its first step, not at the decode */
    dit_pipeline_params p;
    dit_pipeline_params_default(&p, m, v);
    p.task = DIT_TASK_GENERATE;
    p.steps = 2;
    int steps = 0;
    NAN_FILL(out, n_img);
    expect_refusal(ctx, dit_pipeline_run(ctx, &p, NULL, NULL, H, W, count_steps, &steps, NULL, out),
                   "group_norm", "dit_pipeline_run");
    CHECK(steps == 0, "the pipeline ran %d steps before refusing", steps);
    CHECK(untouched(out, n_img), "the refused pipeline wrote its output");
    ctx->cpu = saved;

    ctx->cpu.linear = NULL;
    expect_refusal(ctx, dit_pipeline_run(ctx, &p, NULL, NULL, H, W, count_steps, &steps, NULL, out),
                   "linear", "dit_pipeline_run");
    CHECK(steps == 0, "the pipeline ran %d steps before refusing", steps);
    ctx->cpu = saved;

    CHECK(dit_pipeline_run(ctx, &p, NULL, NULL, H, W, count_steps, &steps, NULL, out) == DIT_OK,
          "%s", dit_last_error(ctx));
    CHECK(steps == 2, "the restored pipeline ran %d of 2 steps", steps);
    free(img);
    free(lat);
    free(out);
}

static void trainer_case(dit_ctx *ctx)
{
    static const dit_config tiny = {.in_channels = 1,
                                    .sample_size = 8,
                                    .patch_size = 2,
                                    .hidden_size = 32,
                                    .depth = 1,
                                    .num_heads = 2,
                                    .mlp_hidden = 64,
                                    .num_classes = 3,
                                    .freq_dim = 32};
    dit_model *m = NULL;
    CHECK(dit_model_create(ctx, &tiny, &m) == DIT_OK, "%s", dit_last_error(ctx));
    dit_train_config tc;
    dit_train_config_default(&tc);
    dit_trainer *tr = NULL;
    dit_backend saved = ctx->cpu;
    ctx->cpu.adamw = NULL;
    expect_refusal(ctx, dit_trainer_new(ctx, m, &tc, &tr), "adamw", "dit_trainer_new");
    CHECK(tr == NULL, "a refused trainer was returned");
    ctx->cpu = saved;
    CHECK(dit_trainer_new(ctx, m, &tc, &tr) == DIT_OK, "%s", dit_last_error(ctx));
    dit_trainer_free(tr);
    dit_model_free(m);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    dit_model *m = NULL;
    dit_vae *v = NULL;
    char *mp = fixture_path("dit_diffusers_p2"), *vp = fixture_path("vae_kl");
    CHECK(dit_model_load(ctx, mp, &m) == DIT_OK, "%s", dit_last_error(ctx));
    CHECK(dit_vae_load(ctx, vp, &v) == DIT_OK, "%s", dit_last_error(ctx));
    if (m && v) {
        forward_case(ctx, m);
        vae_and_pipeline_cases(ctx, m, v);
    }
    trainer_case(ctx);
    dit_vae_free(v);
    dit_model_free(m);
    g_free(mp);
    g_free(vp);
    dit_ctx_free(ctx);
    printf(failures ? "FAILED\n" : "OK\n");
    return failures ? 1 : 0;
}
