/* What the dit commands share: option parsing, loading a model with its VAE
 * and labels, the class rule, progress, writing images, exit codes. */
#include "cli.h"
#include "png-io.h"

#include <glib/gstdio.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile int cli_cancel;
static gint catching; /* Ctrl-C sets cli_cancel instead of ending the process */

/* SIGINT and SIGTERM are blocked in every thread and taken here, by
 * sigwait, never by a handler: a handler runs on whatever thread the
 * signal lands on, and landing in oneDNN's JIT code in an OpenMP worker
 * corrupted the heap (the CLI's SIGINT test, 1 run in a few). */
static gpointer signal_watch(gpointer data)
{
    sigset_t *set = data;
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (g_atomic_int_get(&catching)) {
            cli_cancel = 1;
            continue;
        }
        /* not catching: what the signal would have done, ending the process */
        signal(sig, SIG_DFL);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);
    }
    return NULL;
}

void cli_signals_init(void)
{
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) == 0)
        g_thread_unref(g_thread_new("dit-signals", signal_watch, &set));
}

void cli_catch_interrupts(bool on)
{
    if (on)
        cli_cancel = 0;
    g_atomic_int_set(&catching, on);
}

void cli_options_init(options *o)
{
    memset(o, 0, sizeof *o);
    dit_pipeline_params lib; /* without a model: the library's own defaults */
    dit_pipeline_params_default(&lib, NULL, NULL);
    o->guidance = lib.guidance;
    o->steps = INT_MIN; /* the model's default */
    o->seed = (gint64)lib.seed;
    o->batch = lib.batch;
    o->grow = lib.grow;
    o->feather = DIT_INPAINT_FEATHER; /* the blend benchmark's choice, not libdit's */
    o->resample_jump = lib.resample_jump, o->resample_count = lib.resample_count;
    o->bit_depth = 0;           /* as the input, else CLI_BIT_DEPTH */
    for (int i = 0; i < 4; i++) /* unset: --extend's */
        o->border[i] = INT_MIN;
}

void cli_options_clear(options *o)
{
    char **strs[] = {&o->model,          &o->vae,           &o->class_name,
                     &o->labels,         &o->sampler,       &o->schedule,
                     &o->prediction,     &o->spacing,       &o->device,
                     &o->precision,      &o->output,        &o->input,
                     &o->mask,           &o->resize,        &o->progress,
                     &o->strength,       &o->mask_mode,     &o->guidance_interval,
                     &o->cache,          &o->cache_profile, &o->prompt,
                     &o->negative_prompt};
    for (size_t i = 0; i < G_N_ELEMENTS(strs); i++)
        g_free(*strs[i]);
}

const char *cli_help(GPtrArray *keep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_ptr_array_add(keep, text);
    return text;
}

int cli_usage_error(GOptionContext *oc, const char *msg)
{
    fprintf(stderr, "dit: %s\n\n", msg);
    char *help = g_option_context_get_help(oc, TRUE, NULL);
    fputs(help, stderr);
    g_free(help);
    return EXIT_USAGE;
}

/* Parses argv; returns 0 or the usage exit code (after printing). */
int cli_parse(GOptionContext *oc, int *argc, char ***argv)
{
    GError *err = NULL;
    if (!g_option_context_parse(oc, argc, argv, &err)) {
        int rc = cli_usage_error(oc, err->message);
        g_error_free(err);
        return rc;
    }
    return 0;
}

/* ---- models ---------------------------------------------------------------- */

void cli_loaded_clear(loaded *l)
{
    dit_model_free(l->model);
    dit_pixart_free(l->pixart);
    dit_text_pair_clear(&l->text);
    dit_vae_free(l->vae);
    dit_labels_free(l->labels);
    g_free(l->model_path);
    dit_cache_profile_free(l->cache_profile);
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
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "--labels %s: cannot read it, or it is empty", o->labels);
    return labels;
}

/* --device (NULL: auto, CUDA when built with it and a device is usable)
 * and --precision (NULL: the default) on ctx; an exit code, the reason on
 * stderr. Shared with cmd-train.c. */
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

/* A text model: the prompts encoded (and the encoder freed) before the
 * transformer is loaded, so the two never share memory */
static int load_text_model(const options *o, const char *path, loaded *l)
{
    const char *refuse = !o->text_ok     ? "only generate, img2img, inpaint and outpaint run it"
                         : o->class_name ? "it takes --prompt, not --class"
                         : !o->prompt    ? "give --prompt"
                                         : NULL;
    if (refuse) {
        fprintf(stderr, "dit: %s is a text model (PixArt): %s\n", path, refuse);
        return EXIT_BAD_INPUT;
    }
    if (dit_text_model_check(l->ctx, path) != DIT_OK ||
        dit_text_pair_encode(l->ctx, path, o->prompt, o->negative_prompt, o->text_len, NULL,
                             &l->text) != DIT_OK ||
        dit_pixart_load(l->ctx, path, &l->pixart) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(l->ctx));
        return EXIT_MODEL;
    }
    if (!o->quiet)
        fprintf(stderr, "prompt: %s\n", o->prompt);
    return 0;
}

int cli_load_all(const options *o, bool need_dit, bool need_vae, loaded *l)
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
    /* a path, or the name of a model of the library; a plain name that is
     * neither is said so here, anything else the loader explains */
    char *model_path = o->model ? dit_model_resolve(o->model) : NULL;
    if (o->model && !model_path) {
        if (!strpbrk(o->model, "/.")) {
            fprintf(stderr,
                    "dit: --model %s: no such file or folder, nor a model of that name in "
                    "the library (dit models list)\n",
                    o->model);
            return EXIT_BAD_INPUT;
        }
        model_path = g_strdup(o->model);
    }
    if (need_dit) {
        if (!model_path)
            model_path = dit_default_model_path();
        if (!model_path) {
            fprintf(stderr, "dit: no --model given and the embedded default model is not "
                            "installed (set DIT_DEFAULT_MODEL)\n");
            return EXIT_MODEL;
        }
        if (dit_is_pixart(model_path)) {
            const int trc = load_text_model(o, model_path, l);
            if (trc) {
                g_free(model_path);
                return trc;
            }
        } else if (o->prompt) {
            fprintf(stderr, "dit: --prompt needs a text model (PixArt); this one takes a class "
                            "(--class)\n");
            g_free(model_path);
            return EXIT_BAD_INPUT;
        } else if (g_str_has_suffix(model_path, ".pt") || g_str_has_suffix(model_path, ".pth")) {
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
        l->model_path = model_path, model_path = NULL;
    }
    if (l->pixart)
        l->model_path = model_path, model_path = NULL;
    g_free(model_path);
    return 0;
}

/* --class through the rule libdit shares with the plug-ins */
int cli_resolve_class(const options *o, const loaded *l, int *class_id)
{
    const int nc = dit_model_config(l->model)->num_classes;
    switch (dit_labels_resolve(l->labels, nc, o->class_name, class_id)) {
    case DIT_CLASS_OK: break;
    case DIT_CLASS_UNCONDITIONAL:
        fprintf(stderr,
                "dit: this model is unconditional (it has no classes): leave out --class\n");
        return EXIT_BAD_INPUT;
    case DIT_CLASS_OUT_OF_RANGE:
        fprintf(stderr,
                "dit: --class %s is out of range: this model has classes 0..%d "
                "(%d = unconditional)\n",
                o->class_name, nc - 1, nc);
        return EXIT_BAD_INPUT;
    case DIT_CLASS_UNKNOWN:
        if (l->labels) {
            char *some = dit_labels_summary(l->labels, nc, 12);
            fprintf(stderr,
                    "dit: unknown class '%s': the classes are %s; 'dit labels' lists them\n",
                    o->class_name, some);
            dit_free(some);
        } else {
            fprintf(stderr,
                    "dit: unknown class '%s' (this model has no label list: give a number "
                    "or --labels FILE)\n",
                    o->class_name);
        }
        return EXIT_BAD_INPUT;
    }
    if (!o->quiet) { /* the name the plug-ins give the new layer */
        const int n_labels = l->labels ? (int)g_strv_length(l->labels) : 0;
        if (nc == 0)
            fprintf(stderr, "class: unconditional\n");
        else if (*class_id < n_labels)
            fprintf(stderr, "class: %s\n", l->labels[*class_id]);
        else
            fprintf(stderr, "class: %d\n", *class_id);
    }
    return 0;
}

int cli_check_float(const char *name, double value)
{
    const dit_range *r = dit_range_of(name);
    if (dit_in_range(r, value))
        return 0;
    char range[64];
    dit_range_format(r, range, sizeof range);
    fprintf(stderr, "dit: --%s must be in %s, got %g\n", name, range, value);
    return EXIT_BAD_INPUT;
}

int cli_pick_name(const char *flag, const char *value, const char *const *names, int n, int *out)
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

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

bool cli_on_progress(void *user, int step, int total, const float *latent)
{
    (void)latent;
    progress_state *ps = user;
    const double el = cli_now() - ps->t0, rate = step / (el > 1e-9 ? el : 1e-9);
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
        printf("{\"step\": %d, \"total\": %d, \"elapsed\": %.3f, \"eta\": %.3f}\n", step, total, el,
               eta);
        fflush(stdout);
    }
    return !cli_cancel;
}

int cli_progress_mode(const options *o)
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
int cli_write_images(const options *o, const float *imgs, const float *alpha, int B, int H, int W,
                     int depth)
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

int cli_status_exit(dit_status st)
{
    switch (st) {
    case DIT_OK: return 0;
    case DIT_CANCELLED: return EXIT_CANCELLED;
    case DIT_ERR_INVALID_ARG: return EXIT_BAD_INPUT;
    default: return EXIT_MODEL;
    }
}

/* Model-space working size for an input image under a resize policy. */

/* A text model's: the encoded prompts, the pipeline folder's scheduler */
int cli_text_params(const loaded *l, dit_pipeline_params *p)
{
    dit_pipeline_params_use_text(p, l->pixart, &l->text);
    if (dit_sched_config_from_folder(l->ctx, l->model_path, &p->sched) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(l->ctx));
        return EXIT_MODEL;
    }
    return 0;
}

void cli_add_text_entries(GOptionContext *oc, options *o)
{
    GOptionEntry text[] = {
        {"prompt", 0, 0, G_OPTION_ARG_STRING, &o->prompt,
         "what to paint, for a text model (PixArt) in place of --class", "TEXT"},
        {"negative-prompt", 0, 0, G_OPTION_ARG_STRING, &o->negative_prompt,
         "what to steer away from, for a text model (default: none)", "TEXT"},
        {"text-length", 0, 0, G_OPTION_ARG_INT, &o->text_len,
         "a text model's prompt length in tokens (default: the pipeline's, 120 for PixArt-α, "
         "300 for Σ)",
         "N"},
        OPT_END,
    };
    g_option_context_add_main_entries(oc, text, NULL);
}
