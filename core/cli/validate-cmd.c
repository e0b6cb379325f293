/* dit validate: how good is a trained class-conditional model?
 *
 *   - a sample grid PNG (one row per class),
 *   - class agreement: n samples per class; the share whose nearest training
 *     image (pixel L2) carries the requested label, and the mean
 *     nearest-neighbour distance (small = memorisation),
 *   - held-out loss in 10 timestep buckets with the true and the null label
 *     (the difference is the class signal),
 *   - a loss curve PNG (cairo) from the training log, if one is given,
 *   - one JSON line with every figure, appended to --log. */
#include "cli.h"
#include "data.h"
#include "internal/train.h"
#include "png-io.h"

#include <cairo.h>
#include <cblas.h>
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* nearest training image (L2) for each sample: |a|^2 + |b|^2 - 2 a.b via sgemm */
static void nearest(const float *samples, int ns, const dataset *train, int *idx, double *dist)
{
    const int d = train->channels * train->size * train->size;
    const int chunk = 4096;
    double *bn = g_malloc((size_t)train->n * sizeof *bn);
    for (int j = 0; j < train->n; j++) {
        double s = 0;
        for (int k = 0; k < d; k++)
            s += (double)train->images[(size_t)j * d + k] * train->images[(size_t)j * d + k];
        bn[j] = s;
    }
    float *dots = g_malloc((size_t)ns * chunk * sizeof *dots);
    for (int i = 0; i < ns; i++)
        dist[i] = INFINITY, idx[i] = -1;
    for (int j0 = 0; j0 < train->n; j0 += chunk) {
        const int m = train->n - j0 < chunk ? train->n - j0 : chunk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ns, m, d, 1.0f, samples, d,
                    train->images + (size_t)j0 * d, d, 0.0f, dots, m);
        for (int i = 0; i < ns; i++) {
            double an = 0;
            for (int k = 0; k < d; k++)
                an += (double)samples[(size_t)i * d + k] * samples[(size_t)i * d + k];
            for (int j = 0; j < m; j++) {
                const double dd = an + bn[j0 + j] - 2.0 * dots[(size_t)i * m + j];
                if (dd < dist[i])
                    dist[i] = dd, idx[i] = j0 + j;
            }
        }
    }
    for (int i = 0; i < ns; i++)
        dist[i] = sqrt(fmax(dist[i], 0.0) / d); /* RMS per pixel, in [-1, 1] units */
    g_free(bn);
    g_free(dots);
}

/* loss curve from a training log.jsonl ("loss" lines) */
static bool draw_curve(const char *log_path, const char *png, GError **err)
{
    char *text = NULL;
    if (!g_file_get_contents(log_path, &text, NULL, err))
        return false;
    GArray *xs = g_array_new(FALSE, FALSE, sizeof(double)), *ys = g_array_new(FALSE, FALSE, sizeof(double));
    char **lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        const char *s = strstr(lines[i], "\"step\": "), *l = strstr(lines[i], "\"loss\": ");
        if (!s || !l)
            continue;
        double x = g_ascii_strtod(s + 8, NULL), y = g_ascii_strtod(l + 8, NULL);
        g_array_append_val(xs, x);
        g_array_append_val(ys, y);
    }
    g_strfreev(lines);
    g_free(text);
    const int W = 640, H = 400, L = 60, R = 20, T = 30, Bm = 50;
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double xmax = 1, ymin = INFINITY, ymax = -INFINITY;
    for (guint i = 0; i < xs->len; i++) {
        xmax = fmax(xmax, g_array_index(xs, double, i));
        ymin = fmin(ymin, g_array_index(ys, double, i));
        ymax = fmax(ymax, g_array_index(ys, double, i));
    }
    if (!(ymax > ymin))
        ymin = 0, ymax = 1;
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, L, T, W - L - R, H - T - Bm);
    cairo_stroke(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 12);
    char lab[64];
    cairo_move_to(cr, L, 20);
    cairo_show_text(cr, "training loss (mean of 50 steps)");
    snprintf(lab, sizeof lab, "%.3f", ymax);
    cairo_move_to(cr, 5, T + 10);
    cairo_show_text(cr, lab);
    snprintf(lab, sizeof lab, "%.3f", ymin);
    cairo_move_to(cr, 5, H - Bm);
    cairo_show_text(cr, lab);
    snprintf(lab, sizeof lab, "step %.0f", xmax);
    cairo_move_to(cr, W - R - 80, H - Bm + 20);
    cairo_show_text(cr, lab);
    cairo_move_to(cr, L, H - Bm + 20);
    cairo_show_text(cr, "0");
    cairo_set_source_rgb(cr, 0.1, 0.3, 0.8);
    cairo_set_line_width(cr, 1.5);
    for (guint i = 0; i < xs->len; i++) {
        const double px = L + (W - L - R) * g_array_index(xs, double, i) / xmax;
        const double py = T + (H - T - Bm) * (1 - (g_array_index(ys, double, i) - ymin) / (ymax - ymin));
        if (i == 0)
            cairo_move_to(cr, px, py);
        else
            cairo_line_to(cr, px, py);
    }
    cairo_stroke(cr);
    cairo_destroy(cr);
    bool ok = cairo_surface_write_to_png(surf, png) == CAIRO_STATUS_SUCCESS;
    if (!ok)
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_IO, "%s: cannot write", png);
    cairo_surface_destroy(surf);
    g_array_free(xs, TRUE);
    g_array_free(ys, TRUE);
    return ok;
}

int dit_cmd_validate(int argc, char **argv)
{
    char *model_path = NULL, *out = NULL, *data = NULL, *train_log = NULL, *log = NULL;
    int samples = 100, steps = 50, grid_cols = 8, threads = 0, val_n = 1024;
    double guidance = 2.0;
    gint64 seed = 1;
    GOptionEntry entries[] = {
        {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path, "model to validate (a pixel-space DiT)", "PATH"},
        {"data", 'd', 0, G_OPTION_ARG_FILENAME, &data, "training data for nearest neighbours (default fashion-mnist)", "SET"},
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "folder for grid.png and loss.png", "DIR"},
        {"samples", 'n', 0, G_OPTION_ARG_INT, &samples, "samples per class for the agreement score (default 100)", "N"},
        {"steps", 's', 0, G_OPTION_ARG_INT, &steps, "sampling steps (default 50)", "N"},
        {"guidance", 'g', 0, G_OPTION_ARG_DOUBLE, &guidance, "guidance scale (default 2)", "G"},
        {"held-out", 0, 0, G_OPTION_ARG_INT, &val_n, "held-out images for the loss buckets (default 1024)", "N"},
        {"train-log", 0, 0, G_OPTION_ARG_FILENAME, &train_log, "a training log.jsonl to draw the loss curve from", "FILE"},
        {"log", 0, 0, G_OPTION_ARG_FILENAME, &log, "append the figures as one JSON line here", "FILE"},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &seed, "sampling seed (default 1)", "N"},
        {"threads", 't', 0, G_OPTION_ARG_INT, &threads, "CPU threads (default: all)", "N"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *oc = g_option_context_new("- measure a trained model");
    g_option_context_set_description(
        oc, "Example:\n  dit validate -m runs/fmnist/model --train-log runs/fmnist/log.jsonl -o runs/fmnist/val\n");
    g_option_context_add_main_entries(oc, entries, NULL);
    GError *err = NULL;
    int rc = 0;
    if (!g_option_context_parse(oc, &argc, &argv, &err)) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_clear_error(&err);
        rc = EXIT_USAGE;
    } else if (!model_path || !out || samples < 1 || steps < 1) {
        fprintf(stderr, "dit: validate needs --model and --out (and positive --samples/--steps)\n");
        rc = EXIT_USAGE;
    } else {
        rc = cli_check_float("guidance", guidance);
    }
    g_option_context_free(oc);
    dit_ctx *ctx = NULL;
    dit_model *m = NULL;
    dataset train = {0}, val = {0};
    float *imgs = NULL, *rgb = NULL, *grid = NULL, *gray = NULL;
    int *nn = NULL;
    double *nd = NULL;
    if (rc)
        goto done;
    ctx = dit_ctx_new();
    dit_ctx_set_threads(ctx, threads);
    if (dit_model_load(ctx, model_path, &m) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
        rc = EXIT_MODEL;
        goto done;
    }
    const dit_config *c = dit_model_config(m);
    const char *set = data ? data : "fashion-mnist";
    bool ok = g_file_test(set, G_FILE_TEST_IS_DIR)
                  ? dataset_load_folder(set, c->sample_size, c->in_channels, &train, &err)
                  : dataset_load_named(set, c->sample_size, &train, &err);
    if (ok && !g_file_test(set, G_FILE_TEST_IS_DIR) && strcmp(set, "fashion-mnist") == 0)
        ok = dataset_load_named("fashion-mnist-test", c->sample_size, &val, &err);
    if (!ok) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_clear_error(&err);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    if (c->num_classes == 0) { /* an unconditional model: every image has the one label 0 */
        memset(train.labels, 0, (size_t)train.n * sizeof *train.labels);
        if (val.n)
            memset(val.labels, 0, (size_t)val.n * sizeof *val.labels);
        train.num_classes = val.num_classes = 0;
    }
    if (train.channels != c->in_channels || train.num_classes != c->num_classes) {
        fprintf(stderr, "dit: the model (%d channels, %d classes) does not match the data (%d, %d)\n",
                c->in_channels, c->num_classes, train.channels, train.num_classes);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    g_mkdir_with_parents(out, 0755);
    const int S = c->sample_size, nc = c->num_classes, d = c->in_channels * S * S;
    const int rows = nc ? nc : 1; /* one row of samples per class, or one */
    const size_t img3 = (size_t)3 * S * S;

    /* samples: n per class, in class order */
    const int total = samples * rows;
    imgs = g_malloc((size_t)total * d * sizeof *imgs);
    rgb = g_malloc((size_t)samples * img3 * sizeof *rgb);
    dit_pipeline_params p;
    dit_pipeline_params_default(&p, m, NULL);
    p.steps = steps;
    p.guidance = (float)guidance;
    p.batch = samples;
    for (int k = 0; k < rows; k++) {
        p.class_id = k;
        p.seed = (uint64_t)seed + (uint64_t)k;
        if (dit_pipeline_run(ctx, &p, NULL, NULL, S, S, NULL, NULL, NULL, rgb) != DIT_OK) {
            fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
            rc = EXIT_MODEL;
            goto done;
        }
        for (int b = 0; b < samples; b++) /* back to the model's channels */
            for (int ch = 0; ch < c->in_channels; ch++)
                memcpy(imgs + ((size_t)(k * samples + b) * c->in_channels + ch) * S * S,
                       rgb + (size_t)b * img3 + (size_t)ch * S * S, (size_t)S * S * sizeof(float));
        /* one line rewritten on a terminal, a line per class in a log */
        fprintf(stderr, isatty(2) ? "\rsampled class %d/%d" : "sampled class %d/%d\n", k + 1,
                rows);
    }
    if (isatty(2))
        fprintf(stderr, "\n");

    /* the grid: one row per class, grid_cols samples */
    const int cols = samples < grid_cols ? samples : grid_cols, GH = rows * S, GW = cols * S;
    grid = g_malloc((size_t)3 * GH * GW * sizeof *grid);
    for (int k = 0; k < rows; k++)
        for (int j = 0; j < cols; j++)
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < S; y++)
                    for (int x = 0; x < S; x++)
                        grid[((size_t)ch * GH + k * S + y) * GW + j * S + x] =
                            imgs[((size_t)(k * samples + j) * c->in_channels +
                                  (c->in_channels == 3 ? ch : 0)) * S * S + (size_t)y * S + x];
    char *grid_path = g_build_filename(out, "grid.png", NULL);
    if (!png_save(grid_path, grid, NULL, GH, GW, 8, &err)) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_clear_error(&err);
    }

    /* class agreement by the nearest training image */
    nn = g_malloc((size_t)total * sizeof *nn);
    nd = g_malloc((size_t)total * sizeof *nd);
    nearest(imgs, total, &train, nn, nd);
    int agree = 0;
    double mean_nd = 0;
    int *per_class = g_new0(int, rows);
    for (int i = 0; i < total; i++) {
        const int want = i / samples;
        const bool a = nn[i] >= 0 && train.labels[nn[i]] == want;
        agree += a;
        per_class[want] += a;
        mean_nd += nd[i] / total;
    }

    /* held-out loss buckets and class signal, with the model's own objective */
    double loss_true[10] = {0}, loss_null[10] = {0};
    int buckets_done = 0;
    if (val.n) {
        dit_train_config tc;
        dit_train_config_default(&tc);
        const char *sj = dit_model_scheduler_json(m);
        if (sj)
            dit_sched_config_from_json(ctx, "scheduler", sj, &tc.sched);
        tc.objective = tc.sched.prediction == DIT_PRED_SAMPLE ? DIT_OBJ_X0_L1
                       : tc.sched.prediction == DIT_PRED_V    ? DIT_OBJ_V_MSE
                                                              : DIT_OBJ_EPS_MSE;
        tc.batch = 128;
        dit_trainer *tr = NULL;
        if (c->naming == DIT_NAMING_OFFICIAL && dit_trainer_new(ctx, m, &tc, &tr) == DIT_OK) {
            gray = g_malloc((size_t)tc.batch * d * sizeof *gray);
            int32_t *lab = g_malloc(tc.batch * sizeof *lab), *nul = g_malloc(tc.batch * sizeof *nul);
            int32_t *ts = g_malloc(tc.batch * sizeof *ts);
            float *lt = g_malloc(tc.batch * sizeof *lt), *ln = g_malloc(tc.batch * sizeof *ln);
            const int nv = val_n < val.n ? val_n : val.n;
            for (int k = 0; k < 10; k++) {
                int cnt = 0;
                for (int s0 = 0; s0 + tc.batch <= nv; s0 += tc.batch) {
                    for (int b = 0; b < tc.batch; b++) {
                        memcpy(gray + (size_t)b * d, val.images + (size_t)(s0 + b) * d, d * sizeof(float));
                        lab[b] = val.labels[s0 + b];
                        nul[b] = nc;
                        ts[b] = (int)((k + 0.5) * tc.sched.train_steps / 10);
                    }
                    const uint32_t stream = 0x50000000u + (uint32_t)(s0 * 10 + k);
                    if (dit_trainer_eval_loss(ctx, tr, gray, lab, ts, stream, lt) ||
                        dit_trainer_eval_loss(ctx, tr, gray, nul, ts, stream, ln))
                        break;
                    for (int b = 0; b < tc.batch; b++)
                        loss_true[k] += lt[b], loss_null[k] += ln[b];
                    cnt += tc.batch;
                }
                if (cnt)
                    loss_true[k] /= cnt, loss_null[k] /= cnt, buckets_done++;
            }
            g_free(lab), g_free(nul), g_free(ts), g_free(lt), g_free(ln);
            dit_trainer_free(tr);
        }
    }

    if (train_log) {
        char *curve = g_build_filename(out, "loss.png", NULL);
        if (!draw_curve(train_log, curve, &err)) {
            fprintf(stderr, "dit: %s\n", err->message);
            g_clear_error(&err);
        }
        g_free(curve);
    }

    GString *js = g_string_new(NULL);
    g_string_append_printf(js, "{\"model\": \"%s\", \"samples_per_class\": %d, \"steps\": %d, "
                               "\"guidance\": %g, ",
                           model_path, samples, steps, guidance);
    if (nc) {
        g_string_append_printf(js, "\"class_agreement\": %.4f, \"per_class\": [",
                               (double)agree / total);
        for (int k = 0; k < nc; k++)
            g_string_append_printf(js, "%s%.2f", k ? ", " : "", (double)per_class[k] / samples);
        g_string_append(js, "], ");
    } else {
        g_string_append(js, "\"unconditional\": true, ");
    }
    g_string_append_printf(js, "\"mean_nn_rms\": %.4f", mean_nd);
    if (buckets_done == 10) {
        g_string_append(js, ", \"held_out_loss\": [");
        for (int k = 0; k < 10; k++)
            g_string_append_printf(js, "%s%.5f", k ? ", " : "", loss_true[k]);
        g_string_append(js, "]");
        if (nc) {
            g_string_append(js, ", \"class_signal\": [");
            for (int k = 0; k < 10; k++)
                g_string_append_printf(js, "%s%.5f", k ? ", " : "", loss_null[k] - loss_true[k]);
            g_string_append(js, "]");
        }
    }
    g_string_append(js, "}\n");
    fputs(js->str, stdout);
    if (log) {
        FILE *lf = fopen(log, "a");
        if (lf) {
            fputs(js->str, lf);
            fclose(lf);
        }
    }
    if (nc)
        fprintf(stderr,
                "class agreement %.1f%% (%d of %d samples' nearest training image has their "
                "class); ",
                100.0 * agree / total, agree, total);
    else
        fprintf(stderr, "unconditional model (no class agreement); ");
    fprintf(stderr, "mean nearest-neighbour RMS distance %.3f%s\ngrid: %s\n", mean_nd,
            mean_nd < 0.05 ? " (WARNING: samples sit on training images: memorisation?)" : "",
            grid_path);
    g_string_free(js, TRUE);
    g_free(grid_path);
    g_free(per_class);
done:
    g_free(imgs), g_free(rgb), g_free(grid), g_free(gray), g_free(nn), g_free(nd);
    dataset_clear(&train);
    dataset_clear(&val);
    dit_model_free(m);
    dit_ctx_free(ctx);
    g_free(model_path), g_free(out), g_free(data), g_free(train_log), g_free(log);
    return rc;
}
