/* Inpainting masks on the embedded Fashion-MNIST model (a pixel-space DiT,
 * 32x32 gray, the cold sampler), the source a garment it generates:
 *  - differential mode on a mask of only 0 and 1 gives regenerate mode's
 *    result bit for bit (the two differ only in what partial values mean);
 *  - differential mode: the mean absolute change grows with the mask's
 *    value (the whole image at 0.1, 0.3, ..., 0.9), and pixels at 0 are the
 *    source bit for bit;
 *  - a mask too weak to reach any step returns the source unchanged;
 *  - an unknown mode is refused. */
#include "common.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;

enum { S = 32, PX = S * S, N = 3 * PX, BANDS = 5 };

static dit_status run(dit_ctx *ctx, const dit_model *m, dit_mask_mode mode, const float *src,
                      const float *mask, float *out)
{
    dit_pipeline_params p;
    dit_pipeline_params_default(&p, m, NULL);
    p.task = DIT_TASK_INPAINT;
    p.strength = 1.0f;
    p.class_id = 1; /* trouser, over a T-shirt */
    p.seed = 5;
    p.mask_mode = mode;
    return dit_pipeline_run(ctx, &p, src, mask, S, S, NULL, NULL, NULL, out);
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
    float *src = malloc(N * sizeof *src), *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    float mask[PX];
    dit_pipeline_params g;
    dit_pipeline_params_default(&g, m, NULL);
    g.class_id = 0, g.seed = 3;
    CHECK(dit_pipeline_run(ctx, &g, NULL, NULL, S, S, NULL, NULL, NULL, src) == DIT_OK, "%s",
          dit_last_error(ctx));

    /* a 0/1 mask: the top half */
    for (int i = 0; i < PX; i++)
        mask[i] = i < PX / 2 ? 1.0f : 0.0f;
    CHECK(run(ctx, m, DIT_MASK_REGENERATE, src, mask, a) == DIT_OK, "%s", dit_last_error(ctx));
    CHECK(run(ctx, m, DIT_MASK_DIFFERENTIAL, src, mask, b) == DIT_OK, "%s", dit_last_error(ctx));
    CHECK(memcmp(a, b, N * sizeof *a) == 0, "differential differs from regenerate on a 0/1 mask");

    /* the whole image at one value, five values: the mean change grows with it */
    double change[2][BANDS];
    for (int mode = 0; mode < 2; mode++) {
        printf("%-12s mean |change| at mask", dit_mask_mode_names[mode]);
        for (int k = 0; k < BANDS; k++) {
            const float value = (k + 0.5f) / BANDS;
            for (int i = 0; i < PX; i++)
                mask[i] = value;
            CHECK(run(ctx, m, (dit_mask_mode)mode, src, mask, a) == DIT_OK, "%s",
                  dit_last_error(ctx));
            change[mode][k] = 0;
            for (int i = 0; i < N; i++)
                change[mode][k] += fabs((double)a[i] - src[i]) / N;
            printf("  %.1f: %.4f", value, change[mode][k]);
        }
        printf("\n");
    }
    bool grows = true;
    for (int k = 1; k < BANDS; k++)
        grows = grows && change[1][k] > change[1][k - 1];
    CHECK(grows, "differential: the change does not grow with the mask value");
    CHECK(change[1][2] != change[0][2], "differential at 0.5 is regenerate's result");

    /* left half 0, right half 0.6: the left half is the source, bit for bit */
    for (int i = 0; i < PX; i++)
        mask[i] = i % S < S / 2 ? 0.0f : 0.6f;
    CHECK(run(ctx, m, DIT_MASK_DIFFERENTIAL, src, mask, a) == DIT_OK, "%s", dit_last_error(ctx));
    bool kept = true;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < PX; i++)
            kept = kept && (mask[i] > 0 || a[c * PX + i] == src[c * PX + i]);
    CHECK(kept, "pixels at mask 0 changed");

    /* 0.01 x 50 steps < 1: no pixel reaches a step of its own */
    for (int i = 0; i < PX; i++)
        mask[i] = 0.01f;
    CHECK(run(ctx, m, DIT_MASK_DIFFERENTIAL, src, mask, a) == DIT_OK, "%s", dit_last_error(ctx));
    double most = 0;
    for (int i = 0; i < N; i++) /* the composite blends source with source */
        most = fmax(most, fabs((double)a[i] - src[i]));
    CHECK(most < 1e-6, "a mask below every step changed the image by %g", most);

    CHECK(run(ctx, m, (dit_mask_mode)7, src, mask, a) == DIT_ERR_INVALID_ARG,
          "mask mode 7 accepted");
    free(src), free(a), free(b);
    g_free(path);
    dit_model_free(m);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
