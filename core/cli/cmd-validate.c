/* dit validate: how good is a trained class-conditional model?
 *
 *   - a sample grid PNG (one row per class),
 *   - class agreement: n samples per class; the share whose nearest training
 *     image (pixel L2) carries the requested label, and the mean
 *     nearest-neighbour distance (small = memorisation),
 *   - held-out loss in 10 timestep buckets with the true and the null label
 *     (the difference is the class signal),
 *   - a loss curve PNG (cairo) from the training log, if one is given,
 *   - one JSON line with every figure, appended to --log;
 * or with --inpaint how inpainting blends (validate-inpaint.c). */
#include "cli.h"
#include "data.h"
#include "internal/train.h"
#include "png-io.h"

#include <cairo.h>
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* loss curve from a training log.jsonl ("loss" lines) */
static bool draw_curve(const char *log_path, const char *png, GError **err)
{
    char *text = NULL;
    if (!g_file_get_contents(log_path, &text, NULL, err))
        return false;
    GArray *xs = g_array_new(FALSE, FALSE, sizeof(double)),
           *ys = g_array_new(FALSE, FALSE, sizeof(double));
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
        const double py =
            T + (H - T - Bm) * (1 - (g_array_index(ys, double, i) - ymin) / (ymax - ymin));
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

/* every option of dit validate; the defaults live in validate_defaults only */
typedef struct {
    char *model, *out, *data, *train_log, *log, *mask_mode;
    int samples, steps, threads, val_n;
    double guidance;
    gint64 seed;
    gboolean inpaint;
    int feather, resample_jump, resample_count;
    gboolean colour_match;
} validate_options;

static const validate_options validate_defaults = {
    .samples = 100,
    .steps = 50,
    .val_n = 1024,
    .guidance = 2.0,
    .seed = 1,
    .feather = DIT_INPAINT_FEATHER,
};

static void validate_options_clear(validate_options *o)
{
    g_free(o->model), g_free(o->out), g_free(o->data), g_free(o->train_log), g_free(o->log);
    g_free(o->mask_mode);
}

/* Fills *o from validate_defaults and argv; 0 or an exit code (printed). */
static int parse_validate_options(int argc, char **argv, validate_options *o)
{
    const validate_options *d = &validate_defaults;
    *o = *d;
    /* the help strings that print a default, freed after parsing */
    GPtrArray *h = g_ptr_array_new_with_free_func(g_free);
    const char *h_samples =
        cli_help(h, "samples per class for the agreement score (default %d)", d->samples);
    const char *h_steps = cli_help(h, "sampling steps (default %d)", d->steps);
    const char *h_guidance = cli_help(h, "guidance scale (default %g)", d->guidance);
    const char *h_val_n =
        cli_help(h, "held-out images for the loss buckets (default %d)", d->val_n);
    const char *h_seed = cli_help(h, "sampling seed (default %" G_GINT64_FORMAT ")", d->seed);
    GOptionEntry entries[] = {
        {"model", 'm', 0, G_OPTION_ARG_FILENAME, &o->model, "model to validate (a pixel-space DiT)",
         "PATH"},
        {"data", 'd', 0, G_OPTION_ARG_FILENAME, &o->data,
         "training data for nearest neighbours (default fashion-mnist)", "SET"},
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &o->out, "folder for grid.png and loss.png", "DIR"},
        {"samples", 'n', 0, G_OPTION_ARG_INT, &o->samples, h_samples, "N"},
        {"steps", 's', 0, G_OPTION_ARG_INT, &o->steps, h_steps, "N"},
        {"guidance", 'g', 0, G_OPTION_ARG_DOUBLE, &o->guidance, h_guidance, "G"},
        {"held-out", 0, 0, G_OPTION_ARG_INT, &o->val_n, h_val_n, "N"},
        {"train-log", 0, 0, G_OPTION_ARG_FILENAME, &o->train_log,
         "a training log.jsonl to draw the loss curve from", "FILE"},
        {"log", 0, 0, G_OPTION_ARG_FILENAME, &o->log, "append the figures as one JSON line here",
         "FILE"},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &o->seed, h_seed, "N"},
        {"threads", 't', 0, G_OPTION_ARG_INT, &o->threads, "CPU threads (default: all)", "N"},
        {"inpaint", 0, 0, G_OPTION_ARG_NONE, &o->inpaint,
         "measure inpainting instead: the top half of --samples held-out images per class, "
         "remade with their class and another; the seam and class agreement (no --out)",
         NULL},
        {"mask-mode", 0, 0, G_OPTION_ARG_STRING, &o->mask_mode,
         "with --inpaint: regenerate or differential (default: differential, as dit inpaint)",
         "MODE"},
        {"feather", 0, 0, G_OPTION_ARG_INT, &o->feather,
         "with --inpaint: soften the mask's edge N pixels inward; -1: a fifth of the mask's "
         "shorter side (default: -1, as dit inpaint)",
         "PX"},
        {"colour-match", 0, 0, G_OPTION_ARG_NONE, &o->colour_match,
         "with --inpaint: match the colour at the mask's edge", NULL},
        {"resample-jump", 0, 0, G_OPTION_ARG_INT, &o->resample_jump,
         "with --inpaint: harmonising resampling, N steps back", "N"},
        {"resample-count", 0, 0, G_OPTION_ARG_INT, &o->resample_count,
         "with --inpaint: each block of steps run this many times", "N"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *oc = g_option_context_new("- measure a trained model");
    g_option_context_set_description(oc, "Example:\n  dit validate -m runs/fmnist/model "
                                         "--train-log runs/fmnist/log.jsonl -o runs/fmnist/val\n");
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = cli_parse(oc, &argc, &argv);
    if (rc) {
        /* the message is out */
    } else if (!o->model || (!o->out && !o->inpaint) || o->samples < 1 || o->steps < 1) {
        fprintf(stderr, "dit: validate needs --model and --out, or --model and --inpaint (and "
                        "positive --samples/--steps)\n");
        rc = EXIT_USAGE;
    } else {
        rc = cli_check_float("guidance", o->guidance);
    }
    g_option_context_free(oc);
    g_ptr_array_free(h, TRUE);
    return rc;
}

/* what a run holds; validate_run_clear frees it */
typedef struct {
    dit_ctx *ctx;
    dit_model *m;
    dataset train, val;
    int S, nc, rows, d; /* side, classes, grid rows (classes or 1), floats per image */
    int total;          /* samples * rows */
    float *imgs;        /* the samples, n per class in class order, the model's channels */
} validate_run;

static void validate_run_clear(validate_run *r)
{
    g_free(r->imgs);
    dataset_clear(&r->train);
    dataset_clear(&r->val);
    dit_model_free(r->m);
    dit_ctx_free(r->ctx);
}

/* the figures the report prints */
typedef struct {
    int agree;      /* samples whose nearest training image has their class */
    int *per_class; /* the same per class */
    double mean_nd; /* mean nearest-neighbour RMS distance */
    double loss_true[10], loss_null[10];
    int buckets_done; /* 10 when the held-out losses are complete */
} validate_figures;

/* the model, and the training (and held-out) images it is measured against */
static int load_model_and_data(const validate_options *o, validate_run *r)
{
    GError *err = NULL;
    r->ctx = dit_ctx_new();
    dit_ctx_set_threads(r->ctx, o->threads);
    if (dit_model_load(r->ctx, o->model, &r->m) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(r->ctx));
        return EXIT_MODEL;
    }
    const dit_config *c = dit_model_config(r->m);
    dataset *train = &r->train, *val = &r->val;
    const char *set = o->data ? o->data : "fashion-mnist";
    bool ok = g_file_test(set, G_FILE_TEST_IS_DIR)
                  ? dataset_load_folder(set, c->sample_size, c->in_channels, train, &err)
                  : dataset_load_named(set, c->sample_size, train, &err);
    if (ok && !g_file_test(set, G_FILE_TEST_IS_DIR) && strcmp(set, "fashion-mnist") == 0)
        ok = dataset_load_named("fashion-mnist-test", c->sample_size, val, &err);
    if (!ok) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_clear_error(&err);
        return EXIT_BAD_INPUT;
    }
    if (c->num_classes == 0) { /* an unconditional model: every image has the one label 0 */
        memset(train->labels, 0, (size_t)train->n * sizeof *train->labels);
        if (val->n)
            memset(val->labels, 0, (size_t)val->n * sizeof *val->labels);
        train->num_classes = val->num_classes = 0;
    }
    if (train->channels != c->in_channels || train->num_classes != c->num_classes) {
        fprintf(stderr,
                "dit: the model (%d channels, %d classes) does not match the data (%d, %d)\n",
                c->in_channels, c->num_classes, train->channels, train->num_classes);
        return EXIT_BAD_INPUT;
    }
    r->S = c->sample_size, r->nc = c->num_classes, r->d = c->in_channels * r->S * r->S;
    r->rows = r->nc ? r->nc : 1; /* one row of samples per class, or one */
    r->total = o->samples * r->rows;
    return 0;
}

/* --samples per class into r->imgs, in class order */
static int sample_classes(const validate_options *o, validate_run *r)
{
    const int S = r->S, ch_in = dit_model_config(r->m)->in_channels;
    const size_t img3 = (size_t)3 * S * S;
    r->imgs = g_malloc((size_t)r->total * r->d * sizeof *r->imgs);
    float *rgb = g_malloc((size_t)o->samples * img3 * sizeof *rgb);
    dit_pipeline_params p;
    dit_pipeline_params_default(&p, r->m, NULL);
    p.steps = o->steps;
    p.guidance = (float)o->guidance;
    p.batch = o->samples;
    for (int k = 0; k < r->rows; k++) {
        p.class_id = k;
        p.seed = (uint64_t)o->seed + (uint64_t)k;
        if (dit_pipeline_run(r->ctx, &p, NULL, NULL, S, S, NULL, NULL, NULL, rgb) != DIT_OK) {
            fprintf(stderr, "dit: %s\n", dit_last_error(r->ctx));
            g_free(rgb);
            return EXIT_MODEL;
        }
        for (int b = 0; b < o->samples; b++) /* back to the model's channels */
            for (int ch = 0; ch < ch_in; ch++)
                memcpy(r->imgs + ((size_t)(k * o->samples + b) * ch_in + ch) * S * S,
                       rgb + (size_t)b * img3 + (size_t)ch * S * S, (size_t)S * S * sizeof(float));
        /* one line rewritten on a terminal, a line per class in a log */
        fprintf(stderr, isatty(2) ? "\rsampled class %d/%d" : "sampled class %d/%d\n", k + 1,
                r->rows);
    }
    if (isatty(2))
        fprintf(stderr, "\n");
    g_free(rgb);
    return 0;
}

/* OUT/grid.png: one row per class, up to 8 samples; its path (to free) even
 * when it cannot be written, which only warns */
static char *write_grid(const validate_options *o, const validate_run *r)
{
    enum { GRID_COLS = 8 };
    const int S = r->S, ch_in = dit_model_config(r->m)->in_channels, samples = o->samples;
    const int cols = samples < GRID_COLS ? samples : GRID_COLS, GH = r->rows * S, GW = cols * S;
    float *grid = g_malloc((size_t)3 * GH * GW * sizeof *grid);
    for (int k = 0; k < r->rows; k++)
        for (int j = 0; j < cols; j++)
            for (int ch = 0; ch < 3; ch++) {
                /* a gray model's one channel goes to R, G and B */
                const float *src =
                    r->imgs + ((size_t)(k * samples + j) * ch_in + (ch_in == 3 ? ch : 0)) * S * S;
                for (int y = 0; y < S; y++)
                    for (int x = 0; x < S; x++)
                        grid[((size_t)ch * GH + k * S + y) * GW + j * S + x] =
                            src[(size_t)y * S + x];
            }
    char *grid_path = g_build_filename(o->out, "grid.png", NULL);
    GError *err = NULL;
    if (!png_save(grid_path, grid, NULL, GH, GW, 8, &err)) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_clear_error(&err);
    }
    g_free(grid);
    return grid_path;
}

/* class agreement by the nearest training image */
static void class_agreement(const validate_options *o, const validate_run *r, validate_figures *f)
{
    int *nn = g_malloc((size_t)r->total * sizeof *nn);
    double *nd = g_malloc((size_t)r->total * sizeof *nd);
    dataset_nearest(&r->train, r->imgs, r->total, nn, nd);
    f->per_class = g_new0(int, r->rows);
    for (int i = 0; i < r->total; i++) {
        const int want = i / o->samples;
        const bool a = nn[i] >= 0 && r->train.labels[nn[i]] == want;
        f->agree += a;
        f->per_class[want] += a;
        f->mean_nd += nd[i] / r->total;
    }
    g_free(nn);
    g_free(nd);
}

/* held-out loss buckets and class signal, with the model's own objective;
 * only an official-naming model gets a trainer */
static void held_out_losses(const validate_options *o, const validate_run *r, validate_figures *f)
{
    if (!r->val.n)
        return;
    dit_train_config tc;
    dit_train_config_default(&tc);
    const char *sj = dit_model_scheduler_json(r->m);
    if (sj)
        dit_sched_config_from_json(r->ctx, "scheduler", sj, &tc.sched);
    tc.objective = tc.sched.prediction == DIT_PRED_SAMPLE ? DIT_OBJ_X0_L1
                   : tc.sched.prediction == DIT_PRED_V    ? DIT_OBJ_V_MSE
                                                          : DIT_OBJ_EPS_MSE;
    tc.batch = 128;
    dit_trainer *tr = NULL;
    if (dit_model_config(r->m)->naming != DIT_NAMING_OFFICIAL ||
        dit_trainer_new(r->ctx, r->m, &tc, &tr) != DIT_OK)
        return;
    const int B = tc.batch, d = r->d;
    float *gray = g_malloc((size_t)B * d * sizeof *gray);
    int32_t *lab = g_malloc(B * sizeof *lab), *nul = g_malloc(B * sizeof *nul);
    int32_t *ts = g_malloc(B * sizeof *ts);
    float *lt = g_malloc(B * sizeof *lt), *ln = g_malloc(B * sizeof *ln);
    const int nv = o->val_n < r->val.n ? o->val_n : r->val.n;
    for (int k = 0; k < 10; k++) {
        int cnt = 0;
        for (int s0 = 0; s0 + B <= nv; s0 += B) {
            for (int b = 0; b < B; b++) {
                memcpy(gray + (size_t)b * d, r->val.images + (size_t)(s0 + b) * d,
                       d * sizeof(float));
                lab[b] = r->val.labels[s0 + b];
                nul[b] = r->nc;
                ts[b] = (int)((k + 0.5) * tc.sched.train_steps / 10);
            }
            const uint32_t stream = 0x50000000u + (uint32_t)(s0 * 10 + k);
            if (dit_trainer_eval_loss(r->ctx, tr, gray, lab, ts, stream, lt) ||
                dit_trainer_eval_loss(r->ctx, tr, gray, nul, ts, stream, ln))
                break;
            for (int b = 0; b < B; b++)
                f->loss_true[k] += lt[b], f->loss_null[k] += ln[b];
            cnt += B;
        }
        if (cnt)
            f->loss_true[k] /= cnt, f->loss_null[k] /= cnt, f->buckets_done++;
    }
    g_free(gray), g_free(lab), g_free(nul), g_free(ts), g_free(lt), g_free(ln);
    dit_trainer_free(tr);
}

/* OUT/loss.png from --train-log; a failure only warns */
static void write_loss_curve(const validate_options *o)
{
    GError *err = NULL;
    char *curve = g_build_filename(o->out, "loss.png", NULL);
    if (!draw_curve(o->train_log, curve, &err)) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_clear_error(&err);
    }
    g_free(curve);
}

/* one JSON line on stdout (and appended to --log), a summary on stderr */
static void report(const validate_options *o, const validate_run *r, const validate_figures *f,
                   const char *grid_path)
{
    const int nc = r->nc, total = r->total;
    GString *js = g_string_new(NULL);
    g_string_append_printf(js,
                           "{\"model\": \"%s\", \"samples_per_class\": %d, \"steps\": %d, "
                           "\"guidance\": %g, ",
                           o->model, o->samples, o->steps, o->guidance);
    if (nc) {
        g_string_append_printf(js, "\"class_agreement\": %.4f, \"per_class\": [",
                               (double)f->agree / total);
        for (int k = 0; k < nc; k++)
            g_string_append_printf(js, "%s%.2f", k ? ", " : "",
                                   (double)f->per_class[k] / o->samples);
        g_string_append(js, "], ");
    } else {
        g_string_append(js, "\"unconditional\": true, ");
    }
    g_string_append_printf(js, "\"mean_nn_rms\": %.4f", f->mean_nd);
    if (f->buckets_done == 10) {
        g_string_append(js, ", \"held_out_loss\": [");
        for (int k = 0; k < 10; k++)
            g_string_append_printf(js, "%s%.5f", k ? ", " : "", f->loss_true[k]);
        g_string_append(js, "]");
        if (nc) {
            g_string_append(js, ", \"class_signal\": [");
            for (int k = 0; k < 10; k++)
                g_string_append_printf(js, "%s%.5f", k ? ", " : "",
                                       f->loss_null[k] - f->loss_true[k]);
            g_string_append(js, "]");
        }
    }
    g_string_append(js, "}\n");
    fputs(js->str, stdout);
    if (o->log) {
        FILE *lf = fopen(o->log, "a");
        if (lf) {
            fputs(js->str, lf);
            fclose(lf);
        }
    }
    if (nc)
        fprintf(stderr,
                "class agreement %.1f%% (%d of %d samples' nearest training image has their "
                "class); ",
                100.0 * f->agree / total, f->agree, total);
    else
        fprintf(stderr, "unconditional model (no class agreement); ");
    fprintf(stderr, "mean nearest-neighbour RMS distance %.3f%s\ngrid: %s\n", f->mean_nd,
            f->mean_nd < 0.05 ? " (WARNING: samples sit on training images: memorisation?)" : "",
            grid_path);
    g_string_free(js, TRUE);
}

static int validate_inpaint(const validate_options *o, const validate_run *r)
{
    dit_pipeline_params p;
    dit_pipeline_params_default(&p, r->m, NULL);
    p.steps = o->steps;
    p.guidance = (float)o->guidance;
    int mode = DIT_INPAINT_MASK_MODE, rc;
    if ((rc = cli_pick_name("--mask-mode", o->mask_mode, dit_mask_mode_names, DIT_MASK_MODE_COUNT,
                            &mode)))
        return rc;
    p.mask_mode = (dit_mask_mode)mode;
    p.feather = o->feather;
    p.colour_match = o->colour_match;
    p.resample_jump = o->resample_jump, p.resample_count = o->resample_count;
    if (!r->val.n) {
        fprintf(stderr, "dit: --inpaint needs held-out images (the Fashion-MNIST test set)\n");
        return EXIT_BAD_INPUT;
    }
    FILE *log = o->log ? fopen(o->log, "a") : NULL;
    rc = cli_validate_inpaint(r->ctx, &p, &r->train, &r->val, o->samples, (uint64_t)o->seed, log);
    if (log)
        fclose(log);
    return rc;
}

int dit_cmd_validate(int argc, char **argv)
{
    validate_options o;
    validate_run r = {0};
    int rc = parse_validate_options(argc, argv, &o);
    if (rc || (rc = load_model_and_data(&o, &r)))
        goto done;
    if (o.inpaint) {
        rc = validate_inpaint(&o, &r);
        goto done;
    }
    g_mkdir_with_parents(o.out, 0755);
    if ((rc = sample_classes(&o, &r)))
        goto done;
    char *grid_path = write_grid(&o, &r);
    validate_figures f = {0};
    class_agreement(&o, &r, &f);
    held_out_losses(&o, &r, &f);
    if (o.train_log)
        write_loss_curve(&o);
    report(&o, &r, &f, grid_path);
    g_free(grid_path);
    g_free(f.per_class);
done:
    validate_run_clear(&r);
    validate_options_clear(&o);
    return rc;
}
