/* dit: the command-line face of libdit.
 *
 *   dit generate | img2img | inpaint | encode | decode | info | labels | convert
 *
 * Exit codes: 0 ok, 1 usage, 2 bad input (images, masks, labels, values),
 * 3 model error, 4 cancelled (Ctrl-C stops after the current step and
 * writes nothing). Outputs are written atomically. */
#include "dit.h"
#include "png-io.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_USAGE = 1, EXIT_BAD_INPUT = 2, EXIT_MODEL = 3, EXIT_CANCELLED = 4 };

static volatile int g_cancel; /* set by SIGINT */

static void on_sigint(int sig)
{
    (void)sig;
    g_cancel = 1;
}

/* ---- options shared by the sampling commands ---------------------------- */

/* Every option with its default; one name per setting everywhere. */
typedef struct {
    char *model;          /* NULL: the embedded default model */
    char *vae;            /* NULL: the model folder's vae/, "none": pixel space */
    char *class_name;     /* id or label, matched case-insensitively */
    char *labels;         /* label file (one per line) */
    int steps;            /* INT_MIN: the model's default */
    char *sampler;        /* NULL: the model's default */
    char *schedule;
    char *prediction;
    char *spacing;
    double guidance;      /* 4.0 */
    int guidance_channels;/* 0 = all */
    double strength;      /* img2img 0.75, inpaint 1.0 */
    gint64 seed;          /* < 0: random */
    int batch;            /* 1 */
    int threads;          /* 0 = all cores */
    char *device;         /* cpu | cuda | auto */
    char *precision;      /* fp32 | tf32 | bf16, on the device */
    char *output;
    char *input;
    char *mask;
    int width, height;    /* generate; 0 = native */
    int grow;             /* inpaint, latent pixels */
    char *resize;         /* resize | crop | pad | none */
    char *progress;       /* auto | bar | json | none */
    gboolean quiet;
    gboolean grid;
    int bit_depth;        /* 8 or 16 */
    gboolean sample;      /* encode: sample the posterior instead of the mean */
    int tile;             /* VAE tile size in pixels, 0 = off */
    gboolean json;
} options;

static void options_init(options *o)
{
    memset(o, 0, sizeof *o);
    o->guidance = 4.0;
    o->strength = -1; /* task default */
    o->steps = INT_MIN; /* the model's default */
    o->seed = 0;
    o->batch = 1;
    o->bit_depth = 0; /* as the input, else 8 */
}

static void options_clear(options *o)
{
    char **strs[] = {&o->model, &o->vae, &o->class_name, &o->labels, &o->sampler, &o->schedule,
                     &o->prediction, &o->spacing, &o->device, &o->precision, &o->output, &o->input, &o->mask,
                     &o->resize, &o->progress};
    for (size_t i = 0; i < G_N_ELEMENTS(strs); i++)
        g_free(*strs[i]);
}

#define OPT_MODEL(o) {"model", 'm', 0, G_OPTION_ARG_FILENAME, &(o)->model, "DiT: .safetensors, diffusers folder or pipeline folder (default: the embedded model)", "PATH"}
#define OPT_VAE(o) {"vae", 0, 0, G_OPTION_ARG_FILENAME, &(o)->vae, "VAE folder or .safetensors; 'none' for a pixel-space model (default: the pipeline's vae/)", "PATH"}
#define OPT_THREADS(o) {"threads", 't', 0, G_OPTION_ARG_INT, &(o)->threads, "CPU threads (default: all cores)", "N"}
#define OPT_DEVICE(o) {"device", 0, 0, G_OPTION_ARG_STRING, &(o)->device, "cpu, cuda or auto (default: auto)", "DEV"}
#define OPT_PRECISION(o) {"precision", 0, 0, G_OPTION_ARG_STRING, &(o)->precision, "matrix products on CUDA: fp32, tf32 or bf16 (default: fp32)", "P"}
#define OPT_OUTPUT(o) {"output", 'o', 0, G_OPTION_ARG_FILENAME, &(o)->output, "output file", "FILE"}
#define OPT_QUIET(o) {"quiet", 'q', 0, G_OPTION_ARG_NONE, &(o)->quiet, "no progress, only errors", NULL}
#define OPT_END {NULL, 0, 0, 0, NULL, NULL, NULL}

static void add_sampling_entries(GOptionContext *oc, options *o, bool source)
{
    GOptionEntry common[] = {
        OPT_MODEL(o),
        OPT_VAE(o),
        {"class", 'c', 0, G_OPTION_ARG_STRING, &o->class_name, "class id or label name (default: 0)", "CLASS"},
        {"labels", 0, 0, G_OPTION_ARG_FILENAME, &o->labels, "label list, one name per line (default: the model's)", "FILE"},
        {"steps", 's', 0, G_OPTION_ARG_INT, &o->steps, "sampling steps (default: the model's, 20 for DiT)", "N"},
        {"sampler", 0, 0, G_OPTION_ARG_STRING, &o->sampler, "ddpm, ddim, dpm++2m, euler or cold (default: the model's)", "NAME"},
        {"schedule", 0, 0, G_OPTION_ARG_STRING, &o->schedule, "linear, scaled_linear, squaredcos_cap_v2 or cosine_alphabar", "NAME"},
        {"prediction", 0, 0, G_OPTION_ARG_STRING, &o->prediction, "epsilon, sample or v_prediction", "TYPE"},
        {"spacing", 0, 0, G_OPTION_ARG_STRING, &o->spacing, "leading, trailing or linspace", "NAME"},
        {"guidance", 'g', 0, G_OPTION_ARG_DOUBLE, &o->guidance, "classifier-free guidance scale, 1 = off (default: 4)", "G"},
        {"guidance-channels", 0, 0, G_OPTION_ARG_INT, &o->guidance_channels, "guide only the first N latent channels (3 = official DiT; default: all)", "N"},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &o->seed, "noise seed; negative = random (default: 0)", "N"},
        {"batch", 'b', 0, G_OPTION_ARG_INT, &o->batch, "images to make (default: 1)", "N"},
        {"grid", 0, 0, G_OPTION_ARG_NONE, &o->grid, "with --batch: one grid image instead of numbered files", NULL},
        {"tile", 0, 0, G_OPTION_ARG_INT, &o->tile, "VAE tile size in pixels for large images (default: off)", "PX"},
        {"bit-depth", 0, 0, G_OPTION_ARG_INT, &o->bit_depth, "8 or 16 bits per channel (default: the input's, else 8)", "N"},
        {"progress", 0, 0, G_OPTION_ARG_STRING, &o->progress, "auto, bar, json or none (default: auto: a bar on a terminal)", "MODE"},
        OPT_THREADS(o),
        OPT_DEVICE(o),
        OPT_PRECISION(o),
        OPT_OUTPUT(o),
        OPT_QUIET(o),
        OPT_END,
    };
    g_option_context_add_main_entries(oc, common, NULL);
    if (source) {
        GOptionEntry src[] = {
            {"input", 'i', 0, G_OPTION_ARG_FILENAME, &o->input, "source PNG", "FILE"},
            {"strength", 0, 0, G_OPTION_ARG_DOUBLE, &o->strength, "0 keeps the input, 1 starts from noise (default: 0.75 img2img, 1 inpaint)", "S"},
            {"resize", 0, 0, G_OPTION_ARG_STRING, &o->resize, "resize (default): scale to the model's size and back; crop: work on the centre crop of that size; pad: pad to a valid size; none: the image's own size", "POLICY"},
            {"mask", 0, 0, G_OPTION_ARG_FILENAME, &o->mask, "inpaint: mask PNG, white/opaque = regenerate (alpha if present, else gray)", "FILE"},
            {"grow", 0, 0, G_OPTION_ARG_INT, &o->grow, "inpaint: grow the mask by N latent pixels (default: 0)", "N"},
            OPT_END,
        };
        g_option_context_add_main_entries(oc, src, NULL);
    } else {
        GOptionEntry gen[] = {
            {"width", 'W', 0, G_OPTION_ARG_INT, &o->width, "width in pixels (default: the model's)", "PX"},
            {"height", 'H', 0, G_OPTION_ARG_INT, &o->height, "height in pixels (default: the model's)", "PX"},
            OPT_END,
        };
        g_option_context_add_main_entries(oc, gen, NULL);
    }
}

static int usage_error(GOptionContext *oc, const char *msg)
{
    fprintf(stderr, "dit: %s\n\n", msg);
    char *help = g_option_context_get_help(oc, TRUE, NULL);
    fputs(help, stderr);
    g_free(help);
    return EXIT_USAGE;
}

/* Parses argv; returns 0 or the usage exit code (after printing). */
static int parse(GOptionContext *oc, int *argc, char ***argv)
{
    GError *err = NULL;
    if (!g_option_context_parse(oc, argc, argv, &err)) {
        int rc = usage_error(oc, err->message);
        g_error_free(err);
        return rc;
    }
    return 0;
}

/* ---- models ---------------------------------------------------------------- */

typedef struct {
    dit_ctx *ctx;
    dit_model *model;
    dit_vae *vae;
    char **labels; /* NULL-terminated, or NULL */
} loaded;

static void loaded_clear(loaded *l)
{
    dit_model_free(l->model);
    dit_vae_free(l->vae);
    dit_labels_free(l->labels);
    dit_ctx_free(l->ctx);
    memset(l, 0, sizeof *l);
}

/* The model's labels: --labels (an error when it cannot be read), else
 * what libdit finds for the model (labels.txt, ImageNet's list). */
static char **find_labels(const options *o, const char *model_path, int num_classes, GError **err)
{
    if (!o->labels)
        return dit_labels_for_model(model_path, num_classes);
    char **labels = dit_labels_read(o->labels);
    if (!labels)
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "--labels %s: cannot read it, or it is empty",
                    o->labels);
    return labels;
}

int dit_convert_pt(const char *in, const char *output, const char *key, int heads, bool quiet);

/* --device (NULL: auto, CUDA when built with it and a device is usable)
 * and --precision (NULL: the default) on ctx; an exit code, the reason on
 * stderr. Shared with train-cmd.c. */
int dit_cli_set_device(dit_ctx *ctx, const char *device, const char *precision);
int dit_cli_set_device(dit_ctx *ctx, const char *device, const char *precision)
{
    device = device ? device : "auto";
    const dit_status st = dit_ctx_set_device(ctx, device);
    if (st) {
        fprintf(stderr, "dit: --device %s: %s\n", device, dit_last_error(ctx));
        return st == DIT_ERR_INVALID_ARG ? EXIT_USAGE : EXIT_MODEL;
    }
    if (precision && dit_ctx_set_precision(ctx, precision)) {
        fprintf(stderr, "dit: --precision: %s\n", dit_last_error(ctx));
        return EXIT_USAGE;
    }
    return 0;
}

/* Loads the DiT, its VAE (or none) and labels. Returns an exit code. */
static int load_all(const options *o, bool need_dit, bool need_vae, loaded *l)
{
    memset(l, 0, sizeof *l);
    l->ctx = dit_ctx_new();
    if (!l->ctx) {
        fprintf(stderr, "dit: out of memory\n");
        return EXIT_MODEL;
    }
    if (o->threads < 0 || dit_ctx_set_threads(l->ctx, o->threads) != DIT_OK) {
        fprintf(stderr, "dit: --threads must be >= 0\n");
        return EXIT_USAGE;
    }
    int rc = dit_cli_set_device(l->ctx, o->device, o->precision);
    if (rc)
        return rc;
    char *model_path = o->model ? g_strdup(o->model) : NULL;
    if (need_dit) {
        if (!model_path)
            model_path = dit_default_model_path();
        if (!model_path) {
            fprintf(stderr, "dit: no --model given and the embedded default model is not "
                            "installed (set DIT_DEFAULT_MODEL)\n");
            return EXIT_MODEL;
        }
        if (g_str_has_suffix(model_path, ".pt") || g_str_has_suffix(model_path, ".pth")) {
            /* a PyTorch checkpoint: convert into a temporary file first */
            char *tmpdir = g_dir_make_tmp("dit-pt-XXXXXX", NULL);
            char *conv = tmpdir ? g_build_filename(tmpdir, "model.safetensors", NULL) : NULL;
            int crc = conv ? dit_convert_pt(model_path, conv, NULL, 0, true) : EXIT_MODEL;
            dit_status lst = crc ? DIT_ERR_MODEL : dit_model_load(l->ctx, conv, &l->model);
            if (conv)
                g_unlink(conv);
            if (tmpdir)
                g_rmdir(tmpdir);
            g_free(conv);
            g_free(tmpdir);
            if (crc || lst) {
                if (lst)
                    fprintf(stderr, "dit: %s\n", dit_last_error(l->ctx));
                g_free(model_path);
                return crc ? crc : EXIT_MODEL;
            }
        } else if (dit_model_load(l->ctx, model_path, &l->model) != DIT_OK) {
            fprintf(stderr, "dit: %s\n", dit_last_error(l->ctx));
            g_free(model_path);
            return dit_last_error(l->ctx) && strstr(dit_last_error(l->ctx), "no such file")
                       ? EXIT_BAD_INPUT
                       : EXIT_MODEL;
        }
    }
    /* the VAE: explicit, "none", the pipeline's vae/, or none for pixel models */
    const char *vae_path = o->vae;
    char *from_pipeline = NULL;
    if (!vae_path && model_path && g_file_test(model_path, G_FILE_TEST_IS_DIR)) {
        from_pipeline = g_build_filename(model_path, "vae", NULL);
        if (g_file_test(from_pipeline, G_FILE_TEST_IS_DIR))
            vae_path = from_pipeline;
    }
    if (need_vae && vae_path && strcmp(vae_path, "none") != 0) {
        if (dit_vae_load(l->ctx, vae_path, &l->vae) != DIT_OK) {
            fprintf(stderr, "dit: %s\n", dit_last_error(l->ctx));
            g_free(from_pipeline);
            g_free(model_path);
            return strstr(dit_last_error(l->ctx), "no such file") ? EXIT_BAD_INPUT : EXIT_MODEL;
        }
        if (o->tile && dit_vae_set_tiling(l->ctx, l->vae, o->tile, 0.25f) != DIT_OK) {
            fprintf(stderr, "dit: --tile: %s\n", dit_last_error(l->ctx));
            g_free(from_pipeline);
            g_free(model_path);
            return EXIT_USAGE;
        }
    } else if (need_vae && !need_dit) {
        fprintf(stderr, "dit: this command needs --vae\n");
        g_free(model_path);
        return EXIT_USAGE;
    }
    g_free(from_pipeline);
    if (l->model) {
        GError *err = NULL;
        l->labels = find_labels(o, model_path, dit_model_config(l->model)->num_classes, &err);
        if (err) {
            fprintf(stderr, "dit: %s\n", err->message);
            g_error_free(err);
            g_free(model_path);
            return EXIT_BAD_INPUT;
        }
    }
    g_free(model_path);
    return 0;
}

/* --class: a number, or a label matched case-insensitively (whole name, or
 * one of its comma-separated synonyms). */
static int resolve_class(const options *o, const loaded *l, int *class_id)
{
    const int nc = dit_model_config(l->model)->num_classes;
    *class_id = 0;
    if (!o->class_name)
        return 0;
    if (nc == 0) {
        fprintf(stderr, "dit: this model is unconditional (it has no classes): leave out --class\n");
        return EXIT_BAD_INPUT;
    }
    char *end;
    long v = strtol(o->class_name, &end, 10);
    if (end != o->class_name && *end == '\0') {
        if (v < 0 || v > nc) {
            fprintf(stderr, "dit: --class %ld is out of range: this model has classes 0..%d "
                            "(%d = unconditional)\n",
                    v, nc - 1, nc);
            return EXIT_BAD_INPUT;
        }
        *class_id = (int)v;
        return 0;
    }
    const int found = dit_labels_lookup(l->labels, nc, o->class_name);
    if (found >= 0) {
        *class_id = found;
        return 0;
    }
    fprintf(stderr, "dit: unknown class '%s'%s; 'dit labels' lists them\n", o->class_name,
            l->labels ? "" : " (this model has no label list: give a number or --labels FILE)");
    return EXIT_BAD_INPUT;
}

static int pick_name(const char *flag, const char *value, const char *const *names, int n,
                     int *out)
{
    if (!value)
        return 0;
    for (int i = 0; i < n; i++)
        if (g_ascii_strcasecmp(names[i], value) == 0) {
            *out = i;
            return 0;
        }
    fprintf(stderr, "dit: %s '%s' is not one of:", flag, value);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %s", names[i]);
    fprintf(stderr, "\n");
    return EXIT_USAGE;
}

/* ---- progress ------------------------------------------------------------------ */

typedef struct {
    int mode; /* 0 none, 1 bar, 2 json */
    double t0;
    const char *what;
} progress_state;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool on_progress(void *user, int step, int total, const float *latent)
{
    (void)latent;
    progress_state *ps = user;
    const double el = now_s() - ps->t0, rate = step / (el > 1e-9 ? el : 1e-9);
    const double eta = (total - step) / (rate > 0 ? rate : 1);
    if (ps->mode == 1) {
        char bar[31];
        int fill = total ? 30 * step / total : 30;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '=' : ' ';
        bar[30] = '\0';
        fprintf(stderr, "\r%s step %d/%d [%s] %.2f it/s ETA %.0fs ", ps->what, step, total, bar,
                rate, eta);
        if (step == total)
            fprintf(stderr, "\n");
    } else if (ps->mode == 2) {
        printf("{\"step\": %d, \"total\": %d, \"elapsed\": %.3f, \"eta\": %.3f}\n", step, total,
               el, eta);
        fflush(stdout);
    }
    return !g_cancel;
}

static int progress_mode(const options *o)
{
    if (o->quiet)
        return 0;
    if (!o->progress || strcmp(o->progress, "auto") == 0)
        return isatty(2) ? 1 : 0;
    if (strcmp(o->progress, "bar") == 0)
        return 1;
    if (strcmp(o->progress, "json") == 0)
        return 2;
    return 0;
}

/* ---- output ---------------------------------------------------------------------- */

/* Writes batch images: one file, numbered files (out-0.png ...), or a grid. */
static int write_images(const options *o, const float *imgs, const float *alpha, int B, int H,
                        int W, int depth)
{
    GError *err = NULL;
    const size_t n = (size_t)3 * H * W;
    if (B == 1 || !o->grid) {
        for (int b = 0; b < B; b++) {
            char *path;
            if (B == 1) {
                path = g_strdup(o->output);
            } else {
                const char *dot = strrchr(o->output, '.');
                size_t stem = dot ? (size_t)(dot - o->output) : strlen(o->output);
                path = g_strdup_printf("%.*s-%d%s", (int)stem, o->output, b, dot ? dot : ".png");
            }
            bool ok = png_save(path, imgs + (size_t)b * n, alpha, H, W, depth, &err);
            if (ok && !o->quiet && B > 1)
                fprintf(stderr, "wrote %s\n", path);
            g_free(path);
            if (!ok) {
                fprintf(stderr, "dit: %s\n", err->message);
                g_error_free(err);
                return EXIT_BAD_INPUT;
            }
        }
        return 0;
    }
    const int cols = (int)ceil(sqrt((double)B)), rows = (B + cols - 1) / cols;
    const int GH = rows * H, GW = cols * W;
    float *grid = g_malloc((size_t)3 * GH * GW * sizeof *grid);
    for (size_t i = 0; i < (size_t)3 * GH * GW; i++)
        grid[i] = -1.0f;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < H; y++)
                memcpy(grid + ((size_t)c * GH + (b / cols) * H + y) * GW + (b % cols) * W,
                       imgs + (size_t)b * n + ((size_t)c * H + y) * W, (size_t)W * sizeof *grid);
    bool ok = png_save(o->output, grid, NULL, GH, GW, depth, &err);
    g_free(grid);
    if (!ok) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_error_free(err);
        return EXIT_BAD_INPUT;
    }
    return 0;
}

/* ---- sampling commands ------------------------------------------------------------- */

static int status_exit(dit_status st)
{
    switch (st) {
    case DIT_OK: return 0;
    case DIT_CANCELLED: return EXIT_CANCELLED;
    case DIT_ERR_INVALID_ARG: return EXIT_BAD_INPUT;
    default: return EXIT_MODEL;
    }
}

/* Model-space working size for an input image under a resize policy. */
typedef enum { POL_RESIZE, POL_CROP, POL_PAD, POL_NONE } policy;

static int run_sampling(dit_task task, int argc, char **argv)
{
    options o;
    options_init(&o);
    static const char *const names[] = {"generate", "img2img", "inpaint"};
    char *param = g_strdup_printf(task == DIT_TASK_GENERATE ? "- make images of a class"
                                  : task == DIT_TASK_IMG2IMG ? "- re-imagine an image"
                                                             : "- fill the masked region of an image");
    GOptionContext *oc = g_option_context_new(param);
    g_free(param);
    static const char *const examples[] = {
        "Examples:\n"
        "  dit generate --class 3 --steps 20 --seed 1 -o out.png\n"
        "  dit generate -m ./DiT-XL-2-256 --class 'golden retriever' -g 4 -b 4 --grid -o dogs.png\n",
        "Examples:\n"
        "  dit img2img -i photo.png --strength 0.6 --class 5 -o new.png\n"
        "  dit img2img -m ./DiT-XL-2-256 -i cat.png --class tabby --resize crop -o tabby.png\n",
        "Examples:\n"
        "  dit inpaint -i photo.png --mask hole.png --class 2 -o filled.png\n"
        "  dit inpaint -i photo.png --mask hole.png --grow 1 --sampler ddim --steps 50 -o out.png\n",
    };
    g_option_context_set_description(oc, examples[task]);
    add_sampling_entries(oc, &o, task != DIT_TASK_GENERATE);
    int rc = parse(oc, &argc, &argv);
    if (!rc && argc > 1)
        rc = usage_error(oc, "unexpected argument (images go with --input)");
    if (!rc && !o.output)
        rc = usage_error(oc, "--output is required");
    if (!rc && task != DIT_TASK_GENERATE && !o.input)
        rc = usage_error(oc, "--input is required");
    if (!rc && task == DIT_TASK_INPAINT && !o.mask)
        rc = usage_error(oc, "inpaint needs --mask");
    if (!rc && o.bit_depth && o.bit_depth != 8 && o.bit_depth != 16)
        rc = usage_error(oc, "--bit-depth must be 8 or 16");
    g_option_context_free(oc);
    if (rc) {
        options_clear(&o);
        return rc;
    }
    (void)names;

    loaded l;
    png_data src = {0};
    float *mask = NULL, *work_img = NULL, *work_mask = NULL, *outimg = NULL, *final = NULL;
    GError *err = NULL;
    if ((rc = load_all(&o, true, true, &l)))
        goto done;
    int class_id;
    if ((rc = resolve_class(&o, &l, &class_id)))
        goto done;

    dit_pipeline_params p;
    dit_pipeline_params_default(&p, l.model, l.vae);
    p.task = task;
    p.class_id = class_id;
    p.guidance = (float)o.guidance;
    p.guidance_channels = o.guidance_channels;
    p.batch = o.batch;
    p.grow = o.grow;
    if (o.steps != INT_MIN)
        p.steps = o.steps;
    if (o.strength >= 0 || task == DIT_TASK_INPAINT)
        p.strength = o.strength >= 0 ? (float)o.strength : 1.0f;
    int sampler = p.sched.sampler, schedule = p.sched.schedule, pred = p.sched.prediction,
        spacing = p.sched.spacing;
    if ((rc = pick_name("--sampler", o.sampler, dit_sampler_names, DIT_SAMPLER_COUNT, &sampler)) ||
        (rc = pick_name("--schedule", o.schedule, dit_schedule_names, DIT_SCHEDULE_COUNT,
                        &schedule)) ||
        (rc = pick_name("--prediction", o.prediction, dit_prediction_names, DIT_PREDICTION_COUNT,
                        &pred)) ||
        (rc = pick_name("--spacing", o.spacing, dit_spacing_names, DIT_SPACING_COUNT, &spacing)))
        goto done;
    p.sched.sampler = sampler, p.sched.schedule = schedule, p.sched.prediction = pred;
    p.sched.spacing = spacing;
    if (p.sched.sampler == DIT_SAMPLER_COLD && !o.schedule)
        p.sched.schedule = DIT_SCHEDULE_COSINE_ALPHABAR;
    if (p.sched.sampler != DIT_SAMPLER_COLD && p.sched.schedule == DIT_SCHEDULE_COSINE_ALPHABAR &&
        !o.schedule)
        p.sched.schedule = DIT_SCHEDULE_LINEAR;
    if (o.seed < 0) {
        p.seed = g_random_int() | (uint64_t)g_random_int() << 32;
        if (!o.quiet)
            fprintf(stderr, "seed %" G_GUINT64_FORMAT "\n", (guint64)p.seed);
    } else {
        p.seed = (uint64_t)o.seed;
    }

    /* sizes: the model's native size in pixels and the unit sizes must divide */
    const dit_config *cfg = dit_model_config(l.model);
    const int f = l.vae ? dit_vae_get_info(l.vae)->downscale : 1;
    const int unit = f * cfg->patch_size, native = cfg->sample_size * f;
    int H = o.height ? o.height : native, W = o.width ? o.width : native;
    int depth = o.bit_depth ? o.bit_depth : 8;
    policy pol = POL_RESIZE;
    int ox = 0, oy = 0; /* crop/pad placement in the source */
    if (task != DIT_TASK_GENERATE) {
        if (!png_load(o.input, &src, &err)) {
            fprintf(stderr, "dit: %s\n", err->message);
            rc = EXIT_BAD_INPUT;
            goto done;
        }
        if (!o.bit_depth)
            depth = src.bit_depth == 16 ? 16 : 8;
        if (o.resize && (rc = pick_name("--resize", o.resize,
                                        (const char *const[]){"resize", "crop", "pad", "none"},
                                        4, (int *)&pol)))
            goto done;
        if (task == DIT_TASK_INPAINT) {
            int mh, mw;
            if (!png_load_mask(o.mask, &mask, &mh, &mw, &err)) {
                fprintf(stderr, "dit: %s\n", err->message);
                rc = EXIT_BAD_INPUT;
                goto done;
            }
            if (mh != src.height || mw != src.width) {
                fprintf(stderr, "dit: the mask is %dx%d but the image is %dx%d\n", mw, mh,
                        src.width, src.height);
                rc = EXIT_BAD_INPUT;
                goto done;
            }
        }
        const int SH = src.height, SW = src.width;
        switch (pol) {
        case POL_RESIZE: { /* keep the aspect; the longer side becomes the native size */
            const double s = (double)native / (SH > SW ? SH : SW);
            H = (int)lround(SH * s / unit) * unit;
            W = (int)lround(SW * s / unit) * unit;
            H = H < unit ? unit : H, W = W < unit ? unit : W;
            break;
        }
        case POL_CROP: { /* centred on the mask's bounding box (inpaint), else the image */
            H = SH < native ? SH / unit * unit : native;
            W = SW < native ? SW / unit * unit : native;
            int cy = SH / 2, cx = SW / 2;
            if (mask) {
                int y0 = SH, y1 = -1, x0 = SW, x1 = -1;
                for (int y = 0; y < SH; y++)
                    for (int x = 0; x < SW; x++)
                        if (mask[(size_t)y * SW + x] > 0.0f) {
                            y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
                            x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                        }
                if (y1 >= 0)
                    cy = (y0 + y1 + 1) / 2, cx = (x0 + x1 + 1) / 2;
            }
            oy = cy - H / 2, ox = cx - W / 2;
            oy = oy < 0 ? 0 : oy + H > SH ? SH - H : oy;
            ox = ox < 0 ? 0 : ox + W > SW ? SW - W : ox;
            break;
        }
        case POL_PAD:
            H = (SH + unit - 1) / unit * unit, W = (SW + unit - 1) / unit * unit;
            break;
        case POL_NONE:
            H = SH, W = SW;
            break;
        }
        if (H < unit || W < unit) {
            fprintf(stderr, "dit: the image (%dx%d) is smaller than one %d-pixel unit\n", SW, SH,
                    unit);
            rc = EXIT_BAD_INPUT;
            goto done;
        }
        /* the model-space image (and mask) */
        work_img = g_malloc((size_t)3 * H * W * sizeof(float));
        work_mask = mask ? g_malloc((size_t)H * W * sizeof(float)) : NULL;
        if (pol == POL_RESIZE) {
            dit_image_resize(l.ctx, src.rgb, 3, SH, SW, work_img, H, W);
            if (mask) {
                dit_image_resize(l.ctx, mask, 1, SH, SW, work_mask, H, W);
                for (size_t i = 0; i < (size_t)H * W; i++) /* keep values in [0, 1] */
                    work_mask[i] = work_mask[i] < 0 ? 0 : work_mask[i] > 1 ? 1 : work_mask[i];
            }
        } else {
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    /* crop: offset; pad/none: clamp to the edge */
                    int sy = y + oy, sx = x + ox;
                    sy = sy < SH ? sy : SH - 1, sx = sx < SW ? sx : SW - 1;
                    for (int c = 0; c < 3; c++)
                        work_img[((size_t)c * H + y) * W + x] =
                            src.rgb[((size_t)c * SH + sy) * SW + sx];
                    if (mask)
                        work_mask[(size_t)y * W + x] =
                            y + oy < SH && x + ox < SW ? mask[(size_t)sy * SW + sx] : 0.0f;
                }
        }
    } else if (H % unit || W % unit || H <= 0 || W <= 0) {
        fprintf(stderr, "dit: --width/--height must be positive multiples of %d\n", unit);
        rc = EXIT_BAD_INPUT;
        goto done;
    }

    const int B = p.batch;
    if (B < 1 || B > 256) {
        fprintf(stderr, "dit: batch must be 1..256, got %d\n", B);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    if (task == DIT_TASK_IMG2IMG && p.strength == 0.0f) { /* the input, as it is */
        final = g_malloc((size_t)B * 3 * src.height * src.width * sizeof(float));
        for (int b = 0; b < B; b++)
            memcpy(final + (size_t)b * 3 * src.height * src.width, src.rgb,
                   (size_t)3 * src.height * src.width * sizeof(float));
        rc = write_images(&o, final, src.alpha, B, src.height, src.width, depth);
        goto done;
    }
    outimg = g_malloc((size_t)B * 3 * H * W * sizeof(float));
    progress_state ps = {progress_mode(&o), now_s(), names[task]};
    signal(SIGINT, on_sigint);
    dit_status st = dit_pipeline_run(l.ctx, &p, work_img, work_mask, H, W, on_progress, &ps,
                                     &g_cancel, outimg);
    signal(SIGINT, SIG_DFL);
    if (st != DIT_OK) {
        if (ps.mode == 1)
            fprintf(stderr, "\n");
        fprintf(stderr, "dit: %s%s\n", dit_last_error(l.ctx),
                st == DIT_CANCELLED ? " (nothing written)" : "");
        rc = status_exit(st);
        goto done;
    }

    if (task == DIT_TASK_GENERATE) {
        rc = write_images(&o, outimg, NULL, B, H, W, depth);
        goto done;
    }
    /* back to the source's size; outside the mask, the source bit for bit */
    const int SH = src.height, SW = src.width;
    const size_t sn = (size_t)3 * SH * SW;
    final = g_malloc((size_t)B * sn * sizeof(float));
    float *tmp = pol == POL_RESIZE ? g_malloc((size_t)3 * SH * SW * sizeof(float)) : NULL;
    for (int b = 0; b < B; b++) {
        float *dst = final + (size_t)b * sn;
        const float *gen = outimg + (size_t)b * 3 * H * W;
        memcpy(dst, src.rgb, sn * sizeof *dst);
        if (pol == POL_RESIZE) {
            dit_image_resize(l.ctx, gen, 3, H, W, tmp, SH, SW);
            if (mask)
                dit_image_composite(dst, tmp, src.rgb, mask, 3, SH, SW);
            else
                memcpy(dst, tmp, sn * sizeof *dst);
        } else {
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < H && y + oy < SH; y++)
                    for (int x = 0; x < W && x + ox < SW; x++) {
                        const size_t si = ((size_t)c * SH + y + oy) * SW + x + ox;
                        const float g = gen[((size_t)c * H + y) * W + x];
                        const float m = mask ? mask[(size_t)(y + oy) * SW + x + ox] : 1.0f;
                        dst[si] = m == 0.0f ? src.rgb[si] : m * g + (1.0f - m) * src.rgb[si];
                    }
        }
    }
    g_free(tmp);
    rc = write_images(&o, final, src.alpha, B, SH, SW, depth);

done:
    if (err)
        g_error_free(err);
    png_data_clear(&src);
    g_free(mask), g_free(work_img), g_free(work_mask), g_free(outimg), g_free(final);
    loaded_clear(&l);
    options_clear(&o);
    return rc;
}

static int cmd_generate(int argc, char **argv) { return run_sampling(DIT_TASK_GENERATE, argc, argv); }
static int cmd_img2img(int argc, char **argv) { return run_sampling(DIT_TASK_IMG2IMG, argc, argv); }
static int cmd_inpaint(int argc, char **argv) { return run_sampling(DIT_TASK_INPAINT, argc, argv); }

/* ---- encode / decode --------------------------------------------------------------- */

/* Parses an encode/decode command line: the VAE options both take, the
 * command's own `extra`, one positional argument (`one_arg` says which),
 * --vae and --output required. Frees oc, and o too when it fails. */
static int parse_vae_command(GOptionContext *oc, const GOptionEntry *extra, options *o,
                             int *argc, char ***argv, const char *one_arg)
{
    const GOptionEntry common[] = {
        OPT_VAE(o), OPT_OUTPUT(o), OPT_THREADS(o), OPT_DEVICE(o), OPT_PRECISION(o), OPT_QUIET(o),
        {"tile", 0, 0, G_OPTION_ARG_INT, &o->tile, "tile size in pixels (default: off)", "PX"},
        OPT_END,
    };
    g_option_context_add_main_entries(oc, common, NULL);
    g_option_context_add_main_entries(oc, extra, NULL);
    int rc = parse(oc, argc, argv);
    if (!rc && *argc != 2)
        rc = usage_error(oc, one_arg);
    if (!rc && (!o->output || !o->vae))
        rc = usage_error(oc, "--vae and --output are required");
    if (!rc && o->bit_depth && o->bit_depth != 8 && o->bit_depth != 16)
        rc = usage_error(oc, "--bit-depth must be 8 or 16");
    g_option_context_free(oc);
    if (rc)
        options_clear(o);
    return rc;
}

static int cmd_encode(int argc, char **argv)
{
    options o;
    options_init(&o);
    const GOptionEntry entries[] = {
        {"sample", 0, 0, G_OPTION_ARG_NONE, &o.sample, "sample the posterior (with --seed) instead of taking its mean", NULL},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &o.seed, "seed for --sample (default: 0)", "N"},
        OPT_END,
    };
    GOptionContext *oc = g_option_context_new("IMAGE.png - encode an image to VAE latents");
    g_option_context_set_description(
        oc, "The latents are written raw (not multiplied by the scaling factor) as tensor\n"
            "'latent' (1, C, H/f, W/f), with the VAE's scaling_factor in the metadata.\n\n"
            "Example:\n  dit encode --vae ./sd-vae photo.png -o photo.safetensors\n");
    int rc = parse_vae_command(oc, entries, &o, &argc, &argv, "encode takes one IMAGE");
    if (rc)
        return rc;
    loaded l;
    png_data img = {0};
    GError *err = NULL;
    float *mean = NULL, *logvar = NULL;
    if ((rc = load_all(&o, false, true, &l)))
        goto done;
    if (!png_load(argv[1], &img, &err)) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_error_free(err);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    const dit_vae_info *vi = dit_vae_get_info(l.vae);
    const int f = vi->downscale, h = img.height / f, w = img.width / f, L = vi->latent_channels;
    const size_t n = (size_t)L * h * w;
    mean = g_malloc(n * sizeof *mean);
    logvar = g_malloc(n * sizeof *logvar);
    dit_status st = dit_vae_encode(l.ctx, l.vae, 1, img.height, img.width, img.rgb, mean, logvar);
    if (st) {
        fprintf(stderr, "dit: %s\n", dit_last_error(l.ctx));
        rc = status_exit(st);
        goto done;
    }
    if (o.sample) {
        float *noise = g_malloc(n * sizeof *noise);
        dit_randn((uint64_t)o.seed, 3, 0, n, noise);
        for (size_t i = 0; i < n; i++)
            mean[i] += expf(0.5f * logvar[i]) * noise[i];
        g_free(noise);
    }
    rc = dit_save_tensor(l.ctx, o.output, "latent", mean, 4, (int64_t[]){1, L, h, w},
                         vi->scaling_factor) == DIT_OK
             ? 0
             : EXIT_BAD_INPUT;
    if (rc)
        fprintf(stderr, "dit: %s\n", dit_last_error(l.ctx));
done:
    g_free(mean), g_free(logvar);
    png_data_clear(&img);
    loaded_clear(&l);
    options_clear(&o);
    return rc;
}

static int cmd_decode(int argc, char **argv)
{
    options o;
    options_init(&o);
    const GOptionEntry entries[] = {
        {"bit-depth", 0, 0, G_OPTION_ARG_INT, &o.bit_depth, "8 or 16 (default: 8)", "N"},
        OPT_END,
    };
    GOptionContext *oc = g_option_context_new("LATENT.safetensors - decode VAE latents to a PNG");
    g_option_context_set_description(
        oc, "LATENT holds tensor 'latent' (B, C, h, w) as 'dit encode' writes it (raw,\n"
            "not scaled); batches become numbered files.\n\n"
            "Example:\n  dit decode --vae ./sd-vae photo.safetensors -o back.png\n");
    int rc = parse_vae_command(oc, entries, &o, &argc, &argv, "decode takes one LATENT file");
    if (rc)
        return rc;
    loaded l;
    float *lat = NULL, *img = NULL;
    int64_t shape[4];
    if ((rc = load_all(&o, false, true, &l)))
        goto done;
    if (dit_load_tensor(l.ctx, argv[1], "latent", &lat, shape) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(l.ctx));
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    const dit_vae_info *vi = dit_vae_get_info(l.vae);
    if (shape[1] != vi->latent_channels) {
        fprintf(stderr, "dit: %s has %lld latent channels but the VAE takes %d\n", argv[1],
                (long long)shape[1], vi->latent_channels);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    const int B = (int)shape[0], h = (int)shape[2], w = (int)shape[3], f = vi->downscale;
    img = g_malloc((size_t)B * 3 * h * f * w * f * sizeof *img);
    dit_status st = dit_vae_decode(l.ctx, l.vae, B, h, w, lat, img);
    if (st) {
        fprintf(stderr, "dit: %s\n", dit_last_error(l.ctx));
        rc = status_exit(st);
        goto done;
    }
    rc = write_images(&o, img, NULL, B, h * f, w * f, o.bit_depth ? o.bit_depth : 8);
done:
    g_free(lat), g_free(img);
    loaded_clear(&l);
    options_clear(&o);
    return rc;
}

/* ---- info / labels ------------------------------------------------------------------ */

static void print_config_text(const char *path, const dit_model *m)
{
    const dit_config *c = dit_model_config(m);
    size_t n = dit_model_param_count(m);
    printf("model:            %s\n", path);
    printf("family:           DiT (%s, %s)\n", dit_conditioning_name(c->conditioning),
           c->num_classes ? "class-conditional" : "unconditional");
    printf("naming:           %s\n", dit_naming_name(c->naming));
    printf("weights dtype:    %s (computed in f32)\n", dit_model_source_dtype(m));
    printf("parameters:       %zu (%.1f MiB as f32)\n", n, (double)n * 4 / (1 << 20));
    printf("in_channels:      %d\n", c->in_channels);
    printf("out_channels:     %d%s\n", c->out_channels, c->learn_sigma ? " (learned sigma)" : "");
    printf("sample_size:      %d (latent side; %d px with an 8x VAE)\n", c->sample_size,
           c->sample_size * 8);
    printf("patch_size:       %d\n", c->patch_size);
    printf("hidden_size:      %d\n", c->hidden_size);
    printf("depth:            %d\n", c->depth);
    printf("num_heads:        %d (head dim %d)\n", c->num_heads, c->hidden_size / c->num_heads);
    printf("mlp_hidden:       %d\n", c->mlp_hidden);
    if (c->num_classes)
        printf("num_classes:      %d (+1 null class for guidance)\n", c->num_classes);
    else
        printf("num_classes:      0 (unconditional: label 0 only, no guidance)\n");
    printf("timestep embed:   %d, divisor half-%d\n", c->freq_dim, c->freq_shift);
    printf("norm eps:         %g / %g / %g (attn / mlp / final)\n", (double)c->norm1_eps,
           (double)c->norm2_eps, (double)c->norm_final_eps);
    if (dit_model_scheduler_json(m))
        printf("scheduler:        %s\n", dit_model_scheduler_json(m));
}

static void print_config_json(const char *path, const dit_model *m)
{
    const dit_config *c = dit_model_config(m);
    char *quoted = g_strescape(path, NULL);
    printf("{\"model\": \"%s\", \"family\": \"dit\", \"naming\": \"%s\", \"dtype\": \"%s\", "
           "\"parameters\": %zu, \"in_channels\": %d, \"out_channels\": %d, "
           "\"learn_sigma\": %s, \"sample_size\": %d, \"patch_size\": %d, "
           "\"hidden_size\": %d, \"depth\": %d, \"num_heads\": %d, \"mlp_hidden\": %d, "
           "\"num_classes\": %d, \"freq_dim\": %d, \"freq_shift\": %d, "
           "\"conditioning\": \"%s\"}\n",
           quoted, dit_naming_name(c->naming), dit_model_source_dtype(m),
           dit_model_param_count(m), c->in_channels, c->out_channels,
           c->learn_sigma ? "true" : "false", c->sample_size, c->patch_size, c->hidden_size,
           c->depth, c->num_heads, c->mlp_hidden, c->num_classes, c->freq_dim, c->freq_shift,
           dit_conditioning_name(c->conditioning));
    g_free(quoted);
}

static int cmd_info(int argc, char **argv)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL},
        OPT_END,
    };
    GOptionContext *oc = g_option_context_new("MODEL - describe a DiT model");
    g_option_context_set_description(
        oc, "MODEL is a .safetensors file (official DiT or diffusers naming) or a diffusers\n"
            "folder (config.json + diffusion_pytorch_model.safetensors, or a pipeline\n"
            "folder with transformer/).\n\n"
            "Examples:\n"
            "  dit info DiT-XL-2-256.safetensors\n"
            "  dit info --json ./dit-pipeline/\n");
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = parse(oc, &argc, &argv);
    if (!rc && argc != 2)
        rc = usage_error(oc, argc < 2 ? "info needs a MODEL" : "info takes one MODEL");
    g_option_context_free(oc);
    if (rc)
        return rc;
    dit_ctx *ctx = dit_ctx_new();
    dit_model *m = NULL;
    dit_status st = dit_model_load(ctx, argv[1], &m);
    if (st != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
        rc = st == DIT_ERR_IO ? EXIT_BAD_INPUT : EXIT_MODEL;
    } else if (json) {
        print_config_json(argv[1], m);
    } else {
        print_config_text(argv[1], m);
    }
    dit_model_free(m);
    dit_ctx_free(ctx);
    return rc;
}

static int cmd_labels(int argc, char **argv)
{
    options o;
    options_init(&o);
    GOptionEntry entries[] = {
        OPT_MODEL(&o),
        {"labels", 0, 0, G_OPTION_ARG_FILENAME, &o.labels, "label list, one name per line", "FILE"},
        OPT_END,
    };
    GOptionContext *oc = g_option_context_new("- list a model's classes (id and name)");
    g_option_context_set_description(oc, "Example:\n  dit labels -m ./DiT-XL-2-256 | grep -i retriever\n");
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = parse(oc, &argc, &argv);
    g_option_context_free(oc);
    if (rc) {
        options_clear(&o);
        return rc;
    }
    loaded l;
    if (!(rc = load_all(&o, true, false, &l))) {
        const int nc = dit_model_config(l.model)->num_classes;
        for (int i = 0; i < nc; i++)
            printf("%d\t%s\n", i, l.labels && l.labels[i] ? l.labels[i] : "");
        printf("%d\t(unconditional)\n", nc);
    }
    loaded_clear(&l);
    options_clear(&o);
    return rc;
}

/* ---- main ----------------------------------------------------------------------------- */

int dit_cmd_convert(int argc, char **argv); /* convert.c */
int dit_cmd_train(int argc, char **argv);   /* train-cmd.c */
int dit_cmd_validate(int argc, char **argv); /* validate-cmd.c */

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} subcommand;

static const subcommand subcommands[] = {
    {"generate", "make images of a class", cmd_generate},
    {"img2img", "re-imagine an image (strength 0..1)", cmd_img2img},
    {"inpaint", "fill the masked region of an image", cmd_inpaint},
    {"encode", "image -> VAE latents (.safetensors)", cmd_encode},
    {"decode", "VAE latents -> image", cmd_decode},
    {"info", "describe a model: family, naming, config, parameters", cmd_info},
    {"labels", "list a model's classes", cmd_labels},
    {"convert", "PyTorch .pt checkpoint -> safetensors + config.json", dit_cmd_convert},
    {"train", "train a class-conditional DiT (Fashion-MNIST or an image folder)", dit_cmd_train},
    {"validate", "sample grid, class agreement, held-out losses, loss curve", dit_cmd_validate},
};

static void print_usage(FILE *out)
{
    fprintf(out, "Usage: dit COMMAND [OPTIONS...]\n\nCommands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(subcommands); i++)
        fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out, "\n'dit COMMAND --help' describes one command.\n"
                 "  --version  print the version\n\n"
                 "Exit codes: 0 ok, 1 usage, 2 bad input, 3 model error, 4 cancelled.\n");
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    /* a full disk or a file-size limit must be an error message, not a signal */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("dit %s\n", DIT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(subcommands); i++)
        if (strcmp(argv[1], subcommands[i].name) == 0) {
            char *name = g_strdup_printf("dit %s", argv[1]);
            argv[1] = name; /* GOption shows argv[0] in its help */
            int rc = subcommands[i].run(argc - 1, argv + 1);
            g_free(name);
            return rc;
        }
    fprintf(stderr, "dit: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return EXIT_USAGE;
}
