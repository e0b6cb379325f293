/* dit validate --inpaint: how well inpainting blends, on held-out images.
 *
 * For each of `samples` test images per class the top half is masked and
 * regenerated twice: with the image's own class, and with the next class
 * ((k + 1) mod classes). Measured:
 *   - seam: the mean absolute step in brightness between the last
 *     regenerated row and the first kept one, in [0, 1] units; the real
 *     images' step at the same rows says what a natural step there is;
 *   - class agreement of each kind of result by its nearest training image
 *     (as dit validate measures samples), and of the regenerated top half
 *     alone by the nearest training image's top half (what the region
 *     shows, whatever the kept half pulls the whole towards; with several
 *     channels the first channel's top half);
 *   - the largest change in the kept half (0: kept bit for bit);
 *   - for scale, the same figures for real halves: the top half of a test
 *     image of the next class over the kept bottom half (what a perfect
 *     "other class" result of this layout can score). */
#include "cli.h"
#include "data.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* the brightness step between rows S/2 - 1 and S/2 of one (C, S, S) image
 * in [-1, 1], averaged over columns and channels, in [0, 1] units */
static double seam_step(const float *img, int C, int S)
{
    double sum = 0;
    for (int c = 0; c < C; c++)
        for (int x = 0; x < S; x++) {
            const float *p = img + (size_t)c * S * S + x;
            sum += fabs((double)p[(size_t)(S / 2 - 1) * S] - p[(size_t)(S / 2) * S]) / 2.0;
        }
    return sum / ((double)C * S);
}

/* the first n images of class k in d, or fewer; their indices into idx */
static int pick_class(const dataset *d, int k, int n, int *idx)
{
    int got = 0;
    for (int i = 0; i < d->n && got < n; i++)
        if (d->labels[i] == k)
            idx[got++] = i;
    return got;
}

/* one inpaint of image i of `test` as class `cls`; the result in the model's
 * channels into out (C, S, S). Returns the largest change in the kept half. */
static double inpaint_one(dit_ctx *ctx, const dit_pipeline_params *tmpl, const dataset *test, int i,
                          int cls, uint64_t seed, float *rgb, float *mask, float *out, bool *ok)
{
    const int C = test->channels, S = test->size;
    const size_t px = (size_t)S * S;
    const float *src = test->images + (size_t)i * C * px;
    for (int c = 0; c < 3; c++)
        memcpy(rgb + c * px, src + (size_t)(C == 3 ? c : 0) * px, px * sizeof *rgb);
    for (size_t j = 0; j < px; j++)
        mask[j] = j < px / 2 ? 1.0f : 0.0f;
    dit_pipeline_params p = *tmpl;
    p.task = DIT_TASK_INPAINT;
    p.strength = 1.0f;
    p.class_id = cls;
    p.seed = seed;
    p.batch = 1;
    float *res = rgb + 3 * px;
    *ok = dit_pipeline_run(ctx, &p, rgb, mask, S, S, NULL, NULL, NULL, res) == DIT_OK;
    double kept = 0;
    for (int c = 0; c < C && *ok; c++) {
        memcpy(out + c * px, res + (size_t)c * px, px * sizeof *out);
        for (size_t j = px / 2; j < px; j++)
            kept = fmax(kept, fabs((double)res[c * px + j] - src[c * px + j]));
    }
    return kept;
}

int cli_validate_inpaint(dit_ctx *ctx, const dit_pipeline_params *tmpl, const dataset *train,
                         const dataset *test, int samples, uint64_t seed, FILE *log)
{
    const int nc = test->num_classes, C = test->channels, S = test->size;
    const size_t d = (size_t)C * S * S;
    if (nc < 2) {
        fprintf(stderr, "dit: --inpaint needs a class-conditional model and labelled test data\n");
        return EXIT_BAD_INPUT;
    }
    int *idx = g_new(int, samples), *idx_next = g_new(int, samples);
    float *rgb = g_new(float, 6 * (size_t)S * S), *mask = g_new(float, (size_t)S *S);
    enum { TRUE_CLASS, OTHER_CLASS, REAL_HALVES, KINDS };
    float *results[KINDS];
    int *want[KINDS];
    for (int kind = 0; kind < KINDS; kind++)
        results[kind] = g_new(float, (size_t)nc *samples *d),
        want[kind] = g_new(int, (size_t)nc *samples);
    double seam_real = 0, seam[KINDS] = {0}, kept = 0;
    int n = 0, rc = 0;
    for (int k = 0; k < nc && !rc; k++) {
        const int got = pick_class(test, k, samples, idx),
                  got_next = pick_class(test, (k + 1) % nc, samples, idx_next);
        for (int j = 0; j < got && !rc; j++, n++) {
            seam_real += seam_step(test->images + (size_t)idx[j] * d, C, S);
            float *halves = results[REAL_HALVES] + (size_t)n * d;
            const float *top = test->images + (size_t)idx_next[j % got_next] * d,
                        *bottom = test->images + (size_t)idx[j] * d;
            for (int c = 0; c < C; c++)
                for (int y = 0; y < S; y++)
                    memcpy(halves + ((size_t)c * S + y) * S,
                           (y < S / 2 ? top : bottom) + ((size_t)c * S + y) * S,
                           (size_t)S * sizeof *halves);
            want[REAL_HALVES][n] = (k + 1) % nc;
            seam[REAL_HALVES] += seam_step(halves, C, S);
            for (int kind = 0; kind < 2 && !rc; kind++) {
                bool ok;
                want[kind][n] = kind ? (k + 1) % nc : k;
                const double kc =
                    inpaint_one(ctx, tmpl, test, idx[j], want[kind][n], seed + (uint64_t)n, rgb,
                                mask, results[kind] + (size_t)n * d, &ok);
                if (!ok) {
                    fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
                    rc = EXIT_MODEL;
                }
                kept = fmax(kept, kc);
                seam[kind] += seam_step(results[kind] + (size_t)n * d, C, S);
            }
        }
        fprintf(stderr, isatty(2) ? "\rinpainted class %d/%d" : "inpainted class %d/%d\n", k + 1,
                nc);
    }
    if (isatty(2))
        fprintf(stderr, "\n");
    double agree[KINDS] = {0}, agree_top[KINDS] = {0};
    if (!rc && n) {
        int *nn = g_new(int, n);
        double *nd = g_new(double, n);
        for (int kind = 0; kind < KINDS; kind++) {
            dataset_nearest(train, results[kind], n, nn, nd);
            for (int i = 0; i < n; i++)
                agree[kind] += (nn[i] >= 0 && train->labels[nn[i]] == want[kind][i]) / (double)n;
            dataset_nearest_prefix(train, results[kind], n, S * S / 2, nn, nd);
            for (int i = 0; i < n; i++)
                agree_top[kind] +=
                    (nn[i] >= 0 && train->labels[nn[i]] == want[kind][i]) / (double)n;
            seam[kind] /= n;
        }
        seam_real /= n;
        g_free(nn), g_free(nd);
        char line[768];
        snprintf(line, sizeof line,
                 "{\"inpaint\": {\"images\": %d, \"mask_mode\": \"%s\", \"feather\": %d, "
                 "\"colour_match\": %s, "
                 "\"resample_jump\": %d, \"resample_count\": %d, \"steps\": %d, "
                 "\"guidance\": %g, \"seam_real\": %.4f, \"seam_true_class\": %.4f, "
                 "\"seam_other_class\": %.4f, \"agreement_true_class\": %.4f, "
                 "\"agreement_other_class\": %.4f, \"kept_max_change\": %g, "
                 "\"seam_real_halves\": %.4f, \"agreement_real_halves\": %.4f, "
                 "\"region_agreement_true_class\": %.4f, \"region_agreement_other_class\": %.4f, "
                 "\"region_agreement_real_halves\": %.4f}}\n",
                 n, dit_mask_mode_names[tmpl->mask_mode], tmpl->feather,
                 tmpl->colour_match ? "true" : "false", tmpl->resample_jump, tmpl->resample_count,
                 tmpl->steps, (double)tmpl->guidance, seam_real, seam[0], seam[1], agree[0],
                 agree[1], kept, seam[REAL_HALVES], agree[REAL_HALVES], agree_top[0], agree_top[1],
                 agree_top[REAL_HALVES]);
        fputs(line, stdout);
        if (log)
            fputs(line, log);
        fprintf(stderr,
                "inpainting the top half of %d test images: seam %.3f with the true class, "
                "%.3f with another (real images: %.3f, so %.1fx and %.1fx); class agreement "
                "%.1f%% true, %.1f%% other; kept half changed by at most %g; real halves (the "
                "next class's top over the kept bottom): seam %.3f, agreement %.1f%%; the "
                "regenerated half alone: %.1f%% true, %.1f%% other, real halves %.1f%%\n",
                n, seam[0], seam[1], seam_real, seam[0] / seam_real, seam[1] / seam_real,
                100 * agree[0], 100 * agree[1], kept, seam[REAL_HALVES], 100 * agree[REAL_HALVES],
                100 * agree_top[0], 100 * agree_top[1], 100 * agree_top[REAL_HALVES]);
    }
    g_free(idx), g_free(idx_next), g_free(rgb), g_free(mask);
    for (int kind = 0; kind < KINDS; kind++)
        g_free(results[kind]), g_free(want[kind]);
    return rc;
}
