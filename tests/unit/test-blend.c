/* Inpainting masks on the embedded Fashion-MNIST model (a pixel-space DiT,
 * 32x32 gray, the cold sampler), the source a garment it generates:
 *  - differential mode on a mask of only 0 and 1 gives regenerate mode's
 *    result bit for bit (the two differ only in what partial values mean);
 *  - differential mode: the mean absolute change grows with the mask's
 *    value (the whole image at 0.1, 0.3, ..., 0.9), and pixels at 0 are the
 *    source bit for bit;
 *  - a mask too weak to reach any step returns the source unchanged;
 *  - an unknown mode is refused;
 *  - feather: the rows next to the mask's edge change less than without it,
 *    and the unselected half stays bit for bit;
 *  - resampling: count 1 is no resampling, bit for bit; jump 5 count 2
 *    reports steps + 5 x blocks evaluations, changes the result and keeps
 *    the unselected half; the jump back from clean to step k's level is
 *    exactly the sampler's own noising of x0 to step k, for every sampler;
 *  - colour match: a generated region darker than its surroundings is
 *    moved to their colour at the edge, less further in, not at all deep
 *    inside, and nothing unselected changes;
 *  - variations: a batch of 3 with seed_per_image gives, image by image,
 *    the runs of batch 1 with seeds s, s + 1, s + 2 (inpaint on the cold
 *    sampler, generate on ddpm with its fresh noise every step), which a
 *    batch on one stream does not;
 *  - guidance interval: [0, 1] is the default's result bit for bit, an empty
 *    one (from > to) is guidance 1's (no guidance) bit for bit, one in the
 *    middle differs from both; with ddpm and with the model's sampler;
 *  - dit_image_extend: the source at its offset, the border its nearest
 *    edge pixel; dit_mask_expand: a soft pixel grows into a square of its
 *    value, a larger value wins;
 *  - detail: garments the model made, tiled 3 x 3 and 4 x 4 into images of
 *    3x and 4x its native size, inpainted over all but an 8-pixel frame:
 *    sampled at the image's size with detail_strength they keep more
 *    high-frequency energy than the resize path (native size, upscaled),
 *    the jump across the refinement windows' edges is no larger than at
 *    the other lines of the patch grid, and the frame stays bit for bit. */
#include "common.h"
#include "internal/blend.h"
#include "internal/sched.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;

enum { S = 32, PX = S * S, N = 3 * PX, BANDS = 5 };

static int evaluations;
static bool count_steps(void *user, int step, int total, const float *latent)
{
    (void)user, (void)step, (void)latent;
    evaluations = total;
    return true;
}

static dit_pipeline_params extra; /* feather and resampling for run() */

static dit_status run(dit_ctx *ctx, const dit_model *m, dit_mask_mode mode, const float *src,
                      const float *mask, float *out)
{
    dit_pipeline_params p;
    dit_pipeline_params_default(&p, m, NULL);
    p.feather = extra.feather;
    p.resample_jump = extra.resample_jump, p.resample_count = extra.resample_count;
    p.task = DIT_TASK_INPAINT;
    p.strength = 1.0f;
    p.class_id = 1; /* trouser, over a T-shirt */
    p.seed = 5;
    p.mask_mode = mode;
    return dit_pipeline_run(ctx, &p, src, mask, S, S, count_steps, NULL, NULL, out);
}

/* mean |a - b| over rows [y0, y1) of every channel */
static double rows_change(const float *a, const float *b, int y0, int y1)
{
    double sum = 0;
    for (int c = 0; c < 3; c++)
        for (int i = y0 * S; i < y1 * S; i++)
            sum += fabs((double)a[c * PX + i] - b[c * PX + i]);
    return sum / (3.0 * (y1 - y0) * S);
}

static bool bottom_kept(const float *a, const float *src)
{
    for (int c = 0; c < 3; c++)
        if (memcmp(a + c * PX + PX / 2, src + c * PX + PX / 2, PX / 2 * sizeof *a))
            return false;
    return true;
}

static void feather_and_resampling(dit_ctx *ctx, const dit_model *m, const float *src, float *a,
                                   float *b)
{
    float mask[PX];
    for (int i = 0; i < PX; i++)
        mask[i] = i < PX / 2 ? 1.0f : 0.0f;
    CHECK(run(ctx, m, DIT_MASK_REGENERATE, src, mask, a) == DIT_OK, "%s", dit_last_error(ctx));
    const int plain_evals = evaluations;
    extra.feather = 4;
    CHECK(run(ctx, m, DIT_MASK_REGENERATE, src, mask, b) == DIT_OK, "%s", dit_last_error(ctx));
    const double edge_plain = rows_change(a, src, S / 2 - 2, S / 2),
                 edge_feather = rows_change(b, src, S / 2 - 2, S / 2);
    printf("change of the 2 rows above the edge: %.4f plain, %.4f feathered 4 px\n", edge_plain,
           edge_feather);
    CHECK(edge_feather < edge_plain, "feathering does not soften the edge");
    CHECK(bottom_kept(b, src), "feathering changed the unselected half");

    extra.feather = 0, extra.resample_jump = 5, extra.resample_count = 1;
    CHECK(run(ctx, m, DIT_MASK_REGENERATE, src, mask, b) == DIT_OK, "%s", dit_last_error(ctx));
    CHECK(memcmp(a, b, N * sizeof *a) == 0 && evaluations == plain_evals,
          "resampling count 1 differs from none");
    extra.resample_count = 2;
    CHECK(run(ctx, m, DIT_MASK_REGENERATE, src, mask, b) == DIT_OK, "%s", dit_last_error(ctx));
    printf("resampling jump 5 count 2: %d evaluations (plain %d), top half changed by %.4f\n",
           evaluations, plain_evals, rows_change(a, b, 0, S / 2));
    CHECK(evaluations == plain_evals + plain_evals / 5 * 5, "%d evaluations", evaluations);
    CHECK(memcmp(a, b, N * sizeof *a) != 0, "resampling changed nothing");
    CHECK(bottom_kept(b, src), "resampling changed the unselected half");
    extra.resample_jump = extra.resample_count = 0;
}

static void colour_match_cases(void)
{
    enum { H = 64, W = 64 };
    static float gen[3 * H * W], src[3 * H * W], mask[H * W], scratch[2 * H * W];
    for (int i = 0; i < H * W; i++) {
        mask[i] = i / W < H / 2 ? 1.0f : 0.0f; /* the top half */
        for (int c = 0; c < 3; c++)
            gen[c * H * W + i] = -0.2f, src[c * H * W + i] = 0.5f;
    }
    blend_match_colour(gen, 1, src, mask, H, W, 4, scratch);
    const float edge = gen[(H / 2 - 1) * W + 5], mid = gen[(H / 2 - 9) * W + 5],
                deep = gen[2 * W + 5], below = gen[(H / 2) * W + 5];
    printf("colour match, gen -0.2 under src 0.5: edge %.3f, 8 px in %.3f, deep %.3f\n", edge, mid,
           deep);
    CHECK(fabsf(edge - 0.5f) < 0.1f, "the edge row is %g, not near the surroundings' 0.5", edge);
    CHECK(mid > -0.2f && mid < edge, "8 px inside: %g", mid);
    CHECK(deep == -0.2f && below == -0.2f, "deep inside %g, unselected %g changed", deep, below);
}

/* from clean to step k is the sampler's noising of x0 to step k */
static void renoise_cases(dit_ctx *ctx)
{
    enum { STEPS = 10, E = 64 };
    float x0[E], noise[E], want[E], got[E];
    for (int i = 0; i < E; i++)
        x0[i] = sinf(0.3f * i), noise[i] = cosf(0.7f * i);
    for (int smp = 0; smp < DIT_SAMPLER_COUNT; smp++) {
        dit_sched_config c;
        dit_sched_config_default(&c);
        dit_sched_config_use_sampler(&c, (dit_sampler)smp);
        dit_scheduler *s = NULL;
        if (dit_sched_new(ctx, &c, STEPS, E, &s) != DIT_OK) {
            CHECK(false, "%s: %s", dit_sampler_names[smp], dit_last_error(ctx));
            continue;
        }
        double worst = 0;
        for (int k = 0; k < STEPS; k++) {
            dit_sched_add_noise(s, k, x0, noise, want, E);
            memcpy(got, x0, sizeof got);
            dit_sched_renoise(s, STEPS, k, noise, got, E);
            for (int i = 0; i < E; i++)
                worst = fmax(worst, fabs((double)got[i] - want[i]));
        }
        printf("%-8s renoise from clean vs add_noise: %.2e\n", dit_sampler_names[smp], worst);
        CHECK(worst < 1e-5, "%s: renoise from clean is off add_noise by %g", dit_sampler_names[smp],
              worst);
        dit_sched_free(s);
    }
}

/* the largest |a - b| over n values */
static double max_diff(const float *a, const float *b, size_t n)
{
    double most = 0;
    for (size_t i = 0; i < n; i++)
        most = fmax(most, fabs((double)a[i] - b[i]));
    return most;
}

static void guidance_interval_cases(dit_ctx *ctx, const dit_model *m)
{
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    for (int ddpm = 0; ddpm < 2; ddpm++) {
        dit_pipeline_params p;
        dit_pipeline_params_default(&p, m, NULL);
        p.steps = 10; /* both samplers: enough steps to tell, few enough for ASan */
        if (ddpm)
            dit_sched_config_use_sampler(&p.sched, DIT_SAMPLER_DDPM);
        p.class_id = 4, p.seed = 11, p.guidance = 4.0f;
        CHECK(dit_pipeline_run(ctx, &p, NULL, NULL, S, S, NULL, NULL, NULL, a) == DIT_OK, "%s",
              dit_last_error(ctx));
        p.guidance_from = 0.0f, p.guidance_to = 1.0f;
        CHECK(dit_pipeline_run(ctx, &p, NULL, NULL, S, S, NULL, NULL, NULL, b) == DIT_OK, "%s",
              dit_last_error(ctx));
        CHECK(memcmp(a, b, N * sizeof *a) == 0, "guidance interval [0, 1] is not the default");
        p.guidance_from = 0.7f, p.guidance_to = 0.2f; /* empty */
        CHECK(dit_pipeline_run(ctx, &p, NULL, NULL, S, S, NULL, NULL, NULL, b) == DIT_OK, "%s",
              dit_last_error(ctx));
        dit_pipeline_params off = p;
        off.guidance = 1.0f, off.guidance_from = 0.0f, off.guidance_to = 1.0f;
        CHECK(dit_pipeline_run(ctx, &off, NULL, NULL, S, S, NULL, NULL, NULL, c) == DIT_OK, "%s",
              dit_last_error(ctx));
        CHECK(memcmp(b, c, N * sizeof *b) == 0, "an empty guidance interval is not guidance 1");
        p.guidance_from = 0.2f, p.guidance_to = 0.7f;
        CHECK(dit_pipeline_run(ctx, &p, NULL, NULL, S, S, NULL, NULL, NULL, b) == DIT_OK, "%s",
              dit_last_error(ctx));
        CHECK(max_diff(a, b, N) > 1e-3 && max_diff(b, c, N) > 1e-3,
              "guidance in [0.2, 0.7] is all or none of it (%g, %g)", max_diff(a, b, N),
              max_diff(b, c, N));
        p.guidance_from = -0.1f;
        CHECK(dit_pipeline_run(ctx, &p, NULL, NULL, S, S, NULL, NULL, NULL, b) ==
                  DIT_ERR_INVALID_ARG,
              "a guidance interval below 0 accepted");
    }
    free(a), free(b), free(c);
}

static void variations_cases(dit_ctx *ctx, const dit_model *m, const float *src)
{
    enum { V = 3 };
    float mask[PX];
    for (int i = 0; i < PX; i++)
        mask[i] = i < PX / 2 ? 1.0f : 0.0f;
    float *batch = malloc((size_t)V * N * sizeof *batch), *one = malloc(N * sizeof *one);
    for (int task = 0; task < 2; task++) {
        dit_pipeline_params p;
        dit_pipeline_params_default(&p, m, NULL);
        p.task = task ? DIT_TASK_GENERATE : DIT_TASK_INPAINT;
        p.steps = 10;
        if (task) /* a sampler that draws noise every step */
            dit_sched_config_use_sampler(&p.sched, DIT_SAMPLER_DDPM);
        p.strength = 1.0f, p.class_id = 7, p.seed = 5;
        const char *what = task ? "generate (ddpm)" : "inpaint";
        const float *image = task ? NULL : src, *msk = task ? NULL : mask;
        for (int per_image = 1; per_image >= 0; per_image--) {
            p.batch = V, p.seed_per_image = per_image;
            CHECK(dit_pipeline_run(ctx, &p, image, msk, S, S, NULL, NULL, NULL, batch) == DIT_OK,
                  "%s", dit_last_error(ctx));
            p.batch = 1, p.seed_per_image = false;
            for (int b = 0; b < V; b++) {
                p.seed = 5 + (uint64_t)b;
                CHECK(dit_pipeline_run(ctx, &p, image, msk, S, S, NULL, NULL, NULL, one) == DIT_OK,
                      "%s", dit_last_error(ctx));
                const double d = max_diff(batch + (size_t)b * N, one, N);
                if (per_image) /* the batched products round differently (OpenBLAS
                                  blocks 3 rows otherwise than 1) and ddpm's steps carry it:
                                  2.4e-4 seen on one thread; one stream is off by > 1e-2 */
                    CHECK(d < 1e-3, "%s: variation %d is off seed %d alone by %g", what, b, 5 + b,
                          d);
                else if (b > 0)
                    CHECK(d > 1e-2, "%s: one stream's image %d is seed %d's alone (%g)", what, b,
                          5 + b, d);
            }
            p.seed = 5;
        }
    }
    free(batch), free(one);

    const float tiny[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}; /* (2, 2, 3) */
    float grown[2 * 4 * 6];                                                /* (2, 4, 6) */
    dit_image_extend(tiny, 2, 2, 3, 1, 2, 1, 1, grown);
    const float want_row0[6] = {1, 1, 1, 2, 3, 3}, want_c1_last[6] = {10, 10, 10, 11, 12, 12};
    float dot[7 * 7] = {0}, wide[7 * 7];
    dot[3 * 7 + 3] = 0.5f, dot[3 * 7 + 5] = 0.8f;
    CHECK(dit_mask_expand(ctx, dot, 7, 7, 1, wide) == DIT_OK, "%s", dit_last_error(ctx));
    CHECK(wide[2 * 7 + 2] == 0.5f && wide[4 * 7 + 3] == 0.5f && wide[3 * 7 + 4] == 0.8f &&
              wide[2 * 7 + 6] == 0.8f && wide[1 * 7 + 3] == 0.0f && wide[3 * 7 + 1] == 0.0f,
          "dit_mask_expand: not a 3 x 3 max of the mask");
    CHECK(memcmp(grown, want_row0, sizeof want_row0) == 0 &&
              memcmp(grown + 6, want_row0, sizeof want_row0) == 0 &&
              memcmp(grown + 24 + 18, want_c1_last, sizeof want_c1_last) == 0 &&
              grown[2 * 6 + 4] == 6.0f,
          "dit_image_extend: the border is not the nearest edge pixel");
}

/* mean |pixel - mean of its 4 neighbours| over rows and columns [lo, hi) */
static double high_freq(const float *img, int side, int lo, int hi)
{
    const size_t px = (size_t)side * side;
    double sum = 0;
    for (int c = 0; c < 3; c++)
        for (int y = lo; y < hi; y++)
            for (int x = lo; x < hi; x++) {
                const float *p = img + c * px + (size_t)y * side + x;
                sum += fabs(*p - 0.25 * (p[-1] + p[1] + p[-side] + p[side]));
            }
    return sum / (3.0 * (hi - lo) * (hi - lo));
}

/* mean |row y - row y - 1| + |column y - column y - 1| over [lo, hi) at
 * the lines y where keep(y) */
static double line_jump(const float *img, int side, int lo, int hi, bool (*keep)(int))
{
    const size_t px = (size_t)side * side;
    double sum = 0;
    long count = 0;
    for (int y = lo + 1; y < hi; y++) {
        if (!keep(y))
            continue;
        for (int c = 0; c < 3; c++)
            for (int x = lo; x < hi; x++) {
                const float *p = img + c * px;
                sum += fabs(p[(size_t)y * side + x] - p[(size_t)(y - 1) * side + x]);
                sum += fabs(p[(size_t)x * side + y] - p[(size_t)x * side + y - 1]);
                count += 2;
            }
    }
    return sum / (double)count;
}

/* the detail windows are 32 wide at offsets 0, 16, ...: their edges fall on
 * every 16th line, which is also a line of the model's 4-pixel patch grid;
 * a seam is a jump there above the jump at the grid's other lines */
static bool window_line(int y) { return y % (S / 2) == 0; }
static bool other_grid_line(int y) { return y % 4 == 0 && y % (S / 2) != 0; }

static double window_seam(const float *img, int side, int frame)
{
    return line_jump(img, side, frame, side - frame, window_line) /
           line_jump(img, side, frame, side - frame, other_grid_line);
}

/* garments the model made, tiled scale x scale into an image of scale x
 * its native size, inpainted over all but a frame: the resize path against
 * detail at the image's size */
static void detail_case(dit_ctx *ctx, const dit_model *m, int scale)
{
    const int big_side = scale * S, frame = 8;
    const size_t bpx = (size_t)big_side * big_side;
    float *big = malloc(3 * bpx * sizeof *big), *mask = malloc(bpx * sizeof *mask);
    float *tile = malloc(N * sizeof *tile), *small = malloc(N * sizeof *small);
    float *small_mask = malloc(PX * sizeof *small_mask), *plain = malloc(3 * bpx * sizeof *plain);
    float *detail = malloc(3 * bpx * sizeof *detail);
    dit_pipeline_params p;
    dit_pipeline_params_default(&p, m, NULL);
    p.steps = 20; /* the cold sampler's garments keep their detail; ASan stays in time */
    for (int k = 0; k < scale * scale; k++) {
        p.class_id = k % 10, p.seed = 100 + (uint64_t)k;
        CHECK(dit_pipeline_run(ctx, &p, NULL, NULL, S, S, NULL, NULL, NULL, tile) == DIT_OK, "%s",
              dit_last_error(ctx));
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
                memcpy(big + c * bpx + (size_t)(k / scale * S + y) * big_side + k % scale * S,
                       tile + c * PX + y * S, S * sizeof *big);
    }
    for (size_t i = 0; i < bpx; i++) {
        const int y = (int)(i / big_side), x = (int)(i % big_side);
        mask[i] = y >= frame && y < big_side - frame && x >= frame && x < big_side - frame;
    }
    p.task = DIT_TASK_INPAINT, p.strength = 1.0f, p.class_id = 3, p.seed = 9;
    /* today's path: the region at native size, upscaled, composited */
    dit_image_resize(ctx, big, 3, big_side, big_side, small, S, S);
    dit_image_resize(ctx, mask, 1, big_side, big_side, small_mask, S, S);
    for (int i = 0; i < PX; i++)
        small_mask[i] = small_mask[i] < 0 ? 0 : small_mask[i] > 1 ? 1 : small_mask[i];
    CHECK(dit_pipeline_run(ctx, &p, small, small_mask, S, S, NULL, NULL, NULL, tile) == DIT_OK,
          "%s", dit_last_error(ctx));
    dit_image_resize(ctx, tile, 3, S, S, plain, big_side, big_side);
    dit_image_composite(plain, plain, big, mask, 3, big_side, big_side);
    /* detail: the same, then refined at the image's size in native windows */
    p.detail_strength = 0.4f;
    evaluations = 0;
    CHECK(dit_pipeline_run(ctx, &p, big, mask, big_side, big_side, count_steps, NULL, NULL,
                           detail) == DIT_OK,
          "%s", dit_last_error(ctx));
    const int want = p.steps + (int)((float)p.steps * p.detail_strength);
    CHECK(evaluations == want, "detail: progress counts %d steps, not %d", evaluations, want);
    const int lo = frame, hi = big_side - frame;
    const double hf_plain = high_freq(plain, big_side, lo, hi);
    const double hf_detail = high_freq(detail, big_side, lo, hi);
    const double seam_plain = window_seam(plain, big_side, frame);
    const double seam_detail = window_seam(detail, big_side, frame);
    printf("detail %dx%d: high-frequency energy source %.4f, resize path %.4f, detail %.4f; "
           "jump at the window lines / other patch-grid lines: resize path %.2f, detail %.2f\n",
           big_side, big_side, high_freq(big, big_side, lo, hi), hf_plain, hf_detail, seam_plain,
           seam_detail);
    CHECK(hf_detail > 1.5 * hf_plain, "detail: high frequencies %.4f, not above 1.5 x %.4f",
          hf_detail, hf_plain);
    /* at 4x the window lines are also the upscaled native sample's own
     * patch-grid lines (every 4 x 4 pixels), which the resize path shows
     * as well: the windows may add no jump of their own */
    CHECK(seam_detail < 1.2 || seam_detail < seam_plain,
          "detail: the window lines jump %.2fx the other grid lines (resize path %.2fx)",
          seam_detail, seam_plain);
    bool kept = true;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < bpx; i++)
            kept = kept && (mask[i] > 0 || detail[c * bpx + i] == big[c * bpx + i]);
    CHECK(kept, "detail: a pixel outside the mask changed");
    free(big), free(mask), free(tile), free(small), free(small_mask), free(plain), free(detail);
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
    feather_and_resampling(ctx, m, src, a, b);
    renoise_cases(ctx);
    colour_match_cases();
    variations_cases(ctx, m, src);
    guidance_interval_cases(ctx, m);
    detail_case(ctx, m, 3); /* the window lines apart from the native grid's */
    detail_case(ctx, m, 4);
    free(src), free(a), free(b);
    g_free(path);
    dit_model_free(m);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
