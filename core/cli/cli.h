/* The dit command-line tool's shared declarations: exit codes, the options
 * the commands share, and the helpers every command file uses. */
#ifndef DIT_CLI_H
#define DIT_CLI_H

#include "dit.h"
#include "png-io.h"

#include <glib.h>
#include <stdbool.h>
#include <stdio.h>

/* the exit codes the README documents */
typedef enum {
    EXIT_OK = 0,
    EXIT_USAGE = 1,     /* unknown option, missing argument, bad choice */
    EXIT_BAD_INPUT = 2, /* images, masks, labels, values */
    EXIT_MODEL = 3,     /* a model or VAE that does not load or run */
    EXIT_CANCELLED = 4, /* Ctrl-C: stopped after the current step, nothing written */
} cli_exit;

/* set by Ctrl-C (SIGINT) or SIGTERM while cli_catch_interrupts(true);
 * long work polls it */
extern volatile int cli_cancel;
/* main(), before any thread starts: the signals go to one watcher thread */
void cli_signals_init(void);
/* on: the signals set cli_cancel (cleared here); off: they end the
 * process as they would by default */
void cli_catch_interrupts(bool on);

/* ---- options shared by the sampling commands ---------------------------- */

/* Every option with its default; one name per setting everywhere. */
typedef struct {
    char *model;      /* NULL: the embedded default model */
    char *vae;        /* NULL: the model folder's vae/, "none": pixel space */
    char *class_name; /* id or label, matched case-insensitively */
    char *labels;     /* label file (one per line) */
    int steps;        /* INT_MIN: the model's default */
    char *sampler;    /* NULL: the model's default */
    char *schedule;
    char *prediction;
    char *spacing;
    double guidance;         /* libdit's (dit_pipeline_params_default) */
    int guidance_channels;   /* 0 = all */
    char *guidance_interval; /* "FROM,TO" noise levels; NULL: every step */
    char *cache;             /* share of block outputs computed ("0.5"); NULL: all */
    char *cache_profile;     /* NULL: the model's own (dit_cache_profile_path) */
    char *prompt;            /* a text model's prompt (PixArt) */
    char *negative_prompt;   /* its negative side; NULL: "" */
    int text_len;            /* tokens; 0: the pipeline's own (120, Sigma 300) */
    bool text_ok;            /* the command runs text models (the sampling commands) */
    char *strength;  /* NULL: the task's (libdit's for img2img, inpaint_strength for inpaint) */
    gint64 seed;     /* < 0: random; libdit's default */
    int batch;       /* libdit's default */
    int threads;     /* 0 = all cores */
    char *device;    /* cpu | cuda | auto */
    char *precision; /* fp32 | tf32 | bf16, on the device */
    char *output;
    char *input;
    char *mask;
    int width, height; /* generate; 0 = native */
    int grow;          /* inpaint, latent pixels */
    char *mask_mode;   /* inpaint: NULL = libdit's (dit_mask_mode_names) */
    int feather;       /* inpaint: pixels inward */
    int expand;        /* inpaint: grow the mask outward by this many pixels first */
    gboolean colour_match;
    int resample_jump, resample_count; /* inpaint: harmonising resampling */
    gboolean outpaint;                 /* dit outpaint: inpaint a grown canvas */
    int extend;                        /* outpaint: pixels on every side (default 0) */
    int border[4];  /* outpaint: top, left, bottom, right (INT_MIN: --extend's) */
    int variations; /* images from seed, seed + 1, ... (0: --batch's) */
    int detail;     /* work at up to this many pixels on the longer side, refining (0: native) */
    char *resize;   /* resize | crop | pad | none */
    char *progress; /* auto | bar | json | none */
    gboolean quiet;
    gboolean grid;
    int bit_depth;   /* 8 or 16; 0: the input's, else CLI_BIT_DEPTH */
    gboolean sample; /* encode: sample the posterior instead of the mean */
    int tile;        /* VAE tile size in pixels, 0 = off */
    gboolean json;
} options;

/* bits per channel written when neither --bit-depth nor an input says */
enum { CLI_BIT_DEPTH = 8 };

/* The defaults, once: guidance, seed and batch are libdit's pipeline
 * defaults; help texts print them from here. */
void cli_options_init(options *o);
void cli_options_clear(options *o);

/* clang-format off */
#define OPT_MODEL(o) {"model", 'm', 0, G_OPTION_ARG_FILENAME, &(o)->model, "DiT: .safetensors, diffusers folder or pipeline folder (default: the embedded model)", "PATH"}
#define OPT_VAE(o) {"vae", 0, 0, G_OPTION_ARG_FILENAME, &(o)->vae, "VAE folder or .safetensors; 'none' for a pixel-space model (default: the pipeline's vae/)", "PATH"}
#define OPT_THREADS(o) {"threads", 't', 0, G_OPTION_ARG_INT, &(o)->threads, "CPU threads (default: all cores)", "N"}
#define OPT_DEVICE(o) {"device", 0, 0, G_OPTION_ARG_STRING, &(o)->device, "cpu, cuda or auto (default: auto)", "DEV"}
#define OPT_PRECISION(o) {"precision", 0, 0, G_OPTION_ARG_STRING, &(o)->precision, "matrix products: fp32, tf32 (CUDA), bf16 (CUDA, or a CPU with bf16: see dit info --device) or auto (default: fp32)", "P"}
#define OPT_OUTPUT(o) {"output", 'o', 0, G_OPTION_ARG_FILENAME, &(o)->output, "output file", "FILE"}
#define OPT_QUIET(o) {"quiet", 'q', 0, G_OPTION_ARG_NONE, &(o)->quiet, "no progress, only errors", NULL}
#define OPT_END {NULL, 0, 0, 0, NULL, NULL, NULL}
/* clang-format on */

/* A help text printed from a default, g_strdup_printf style; the string is
 * kept in `keep` (a GPtrArray freeing with g_free) because GOptionContext
 * holds on to descriptions until it is freed: free keep after it. */
const char *cli_help(GPtrArray *keep, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Prints msg and the command's help; returns EXIT_USAGE. */
int cli_usage_error(GOptionContext *oc, const char *msg);
/* Parses argv; 0 or the usage exit code (after printing). */
int cli_parse(GOptionContext *oc, int *argc, char ***argv);

typedef struct {
    dit_ctx *ctx;
    dit_model *model;
    dit_vae *vae;
    char **labels;                    /* NULL-terminated, or NULL */
    char *model_path;                 /* where the model came from (NULL: none loaded) */
    dit_cache_profile *cache_profile; /* --cache: the model's calibration, or NULL */
    dit_pixart *pixart;               /* a text model, in place of `model` */
    dit_text_pair text;               /* its prompt and negative side, encoded */
} loaded;

/* Loads the DiT, its VAE (or none) and labels; for a text model (PixArt,
 * o->text_ok commands only) the prompts are encoded first, the encoder
 * freed, then the transformer loaded. Returns an exit code. */
int cli_load_all(const options *o, bool need_dit, bool need_vae, loaded *l);
void cli_loaded_clear(loaded *l);
/* bytes of the regular files under path (a file: its size) */
guint64 cli_disk_size(const char *path);
/* dit models add / remove (models-add.c): exit codes */
int cli_models_add(const char *src, const char *name_opt, const char *vae, int heads);
int cli_models_remove(const char *name);
/* --prompt, --negative-prompt, --text-length */
void cli_add_text_entries(GOptionContext *oc, options *o);
/* a text model's pipeline parameters: the encoded prompts, the pipeline
 * folder's scheduler; an exit code */
int cli_text_params(const loaded *l, dit_pipeline_params *p);
/* --class through dit_labels_resolve; prints "class: NAME" unless quiet */
int cli_resolve_class(const options *o, const loaded *l, int *class_id);
/* value among names (any case) -> *out; NULL value keeps *out */
int cli_pick_name(const char *flag, const char *value, const char *const *names, int n, int *out);
/* A float option against libdit's range table (dit_range_of): 0, or
 * EXIT_BAD_INPUT with "--NAME must be in [lo, hi], got V" */
int cli_check_float(const char *name, double value);
/* --device (NULL: auto) and --precision (NULL: the default) on ctx */
int dit_cli_set_device(dit_ctx *ctx, const char *device, const char *precision);
int cli_status_exit(dit_status st);

typedef struct {
    int mode; /* 0 none, 1 bar, 2 json */
    double t0;
    const char *what;
} progress_state;

double cli_now(void);
bool cli_on_progress(void *user, int step, int total, const float *latent);
int cli_progress_mode(const options *o);

/* Writes batch images: one file, numbered files (out-0.png ...), or a grid. */
int cli_write_images(const options *o, const float *imgs, const float *alpha, int B, int H, int W,
                     int depth);

/* outpaint.c: src grown by border (top, left, bottom, right; edge pixels)
 * and the mask of the border and of src's fully transparent pixels (g_free
 * it); what is filled becomes opaque. An exit code, with the message. */
int cli_outpaint_source(const int border[4], png_data *src, float **mask);

/* convert.c: a torch.save checkpoint -> safetensors, no pickle code run */
int dit_convert_pt(const char *in, const char *output, const char *key, int heads, bool quiet);

/* the commands (main.c dispatches) */
int cli_cmd_generate(int argc, char **argv);
int cli_cmd_img2img(int argc, char **argv);
int cli_cmd_inpaint(int argc, char **argv);
int cli_cmd_outpaint(int argc, char **argv);
int cli_cmd_encode(int argc, char **argv);
int cli_cmd_decode(int argc, char **argv);
int cli_cmd_info(int argc, char **argv);
int cli_cmd_labels(int argc, char **argv);
int cli_cmd_models(int argc, char **argv);
int cli_cmd_calibrate_cache(int argc, char **argv);
int cli_cmd_encode_text(int argc, char **argv);
/* --cache and --cache-profile (cmd-cache.c): the option entries, and their
 * values into p with the profile kept in l; an exit code */
void cli_add_cache_entries(GOptionContext *oc, options *o, GPtrArray *keep);
int cli_cache_params(const options *o, loaded *l, dit_pipeline_params *p);
int dit_cmd_convert(int argc, char **argv);
int dit_cmd_train(int argc, char **argv);
int dit_cmd_validate(int argc, char **argv);

/* dit validate --inpaint (validate-inpaint.c): inpaints the top half of
 * `samples` images per class of test (with their own class and with the
 * next) under the pipeline settings in tmpl, and prints the seam and class
 * figures (a JSON line on stdout and in log, a sentence on stderr). An
 * exit code. */
typedef struct dataset dataset;
int cli_validate_inpaint(dit_ctx *ctx, const dit_pipeline_params *tmpl, const dataset *train,
                         const dataset *test, int samples, uint64_t seed, FILE *log);

#endif
