/* dit train: train a class-conditional DiT from scratch or resume it.
 *
 *   OUT/checkpoint.safetensors  weights, EMA, AdamW state, step (atomic)
 *   OUT/log.jsonl               one line per logged step and per validation
 *   OUT/model/                  the EMA weights as a plain model + labels.txt
 *
 * Ctrl-C writes a checkpoint and exits (code 4). */
#include "cli.h"
#include "data.h"
#include "internal/train.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (g_ascii_strcasecmp(names[i], s) == 0)
            return i;
    return -1;
}

/* the exported model: EMA weights, config and scheduler in the metadata */
static int export_model(dit_ctx *ctx, dit_trainer *tr, const char *dir, char **class_names)
{
    const dit_model *m = dit_trainer_model(tr);
    const dit_config *c = dit_model_config(m);
    const dit_train_config *t = dit_trainer_config(tr);
    g_mkdir_with_parents(dir, 0755);
    char *path = g_build_filename(dir, "model.safetensors", NULL);
    char *cfg = g_strdup_printf(
        "{\"num_attention_heads\": %d, \"sample_size\": %d, \"patch_size\": %d, "
        "\"in_channels\": %d, \"out_channels\": %d, \"num_layers\": %d, "
        "\"num_embeds_ada_norm\": %d, \"conditioning\": \"%s\"}",
        c->num_heads, c->sample_size, c->patch_size, c->in_channels, c->out_channels, c->depth,
        c->num_classes, dit_conditioning_name(c->conditioning));
    const bool cold = t->sched.schedule == DIT_SCHEDULE_COSINE_ALPHABAR;
    char *sched = g_strdup_printf(
        "{\"sampler\": \"%s\", \"beta_schedule\": \"%s\", \"prediction_type\": \"%s\", "
        "\"num_train_timesteps\": %d, \"beta_start\": %g, \"beta_end\": %g}",
        cold ? "cold" : "ddim", dit_schedule_names[t->sched.schedule],
        t->objective == DIT_OBJ_X0_L1   ? "sample"
        : t->objective == DIT_OBJ_V_MSE ? "v_prediction"
                                        : "epsilon",
        t->sched.train_steps, t->sched.beta_start, t->sched.beta_end);
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)dit_trainer_step_count(tr));
    const char *keys[] = {"format", "config", "scheduler", "train_step"};
    const char *vals[] = {"dit", cfg, sched, step};
    dit_status st = dit_model_save(ctx, m, dit_trainer_ema(tr), path, ST_BF16, keys, vals, 4);
    if (st == DIT_OK && class_names && c->num_classes > 0) {
        char *lp = g_build_filename(dir, "labels.txt", NULL);
        char *text = g_strjoinv("\n", class_names);
        char *with_nl = g_strconcat(text, "\n", NULL);
        g_file_set_contents(lp, with_nl, -1, NULL);
        g_free(with_nl), g_free(text), g_free(lp);
    }
    g_free(cfg), g_free(sched), g_free(path);
    if (st) {
        fprintf(stderr, "dit: export: %s\n", dit_last_error(ctx));
        return EXIT_MODEL;
    }
    return 0;
}

/* a latent model's folder points at its VAE (vae/), so dit and the
 * plug-in find it like a diffusers pipeline's */
static void link_vae(const char *model_dir, const char *vae_path)
{
    char *link = g_build_filename(model_dir, "vae", NULL);
    char *abs = g_canonicalize_filename(vae_path, NULL);
    g_unlink(link);
    if (symlink(abs, link) != 0)
        fprintf(stderr, "dit: cannot link %s to the VAE\n", link);
    g_free(abs);
    g_free(link);
}

/* Held-out loss in 10 timestep buckets, with the true label and the null
 * label; the difference is the class signal. */
static void validate_losses(dit_ctx *ctx, dit_trainer *tr, const dataset *val, int n_val, FILE *log,
                            int64_t step)
{
    const dit_train_config *t = dit_trainer_config(tr);
    const int B = t->batch, T = t->sched.train_steps;
    const int nc = dit_model_config(dit_trainer_model(tr))->num_classes;
    const size_t chw = (size_t)val->channels * val->size * val->size;
    float *imgs = g_malloc((size_t)B * chw * sizeof(float));
    int32_t *labels = g_malloc((size_t)B * sizeof(int32_t)), *nulls = g_malloc(B * sizeof(int32_t));
    int32_t *ts = g_malloc((size_t)B * sizeof(int32_t));
    float *l_true = g_malloc((size_t)B * sizeof(float)),
          *l_null = g_malloc((size_t)B * sizeof(float));
    double sum_true[10] = {0}, sum_null[10] = {0};
    int count[10] = {0};
    for (int start = 0; start + B <= n_val; start += B)
        for (int k = 0; k < 10; k++) {
            for (int b = 0; b < B; b++) {
                const int i = start + b;
                memcpy(imgs + (size_t)b * chw, val->images + (size_t)i * chw, chw * sizeof(float));
                labels[b] = val->labels[i];
                nulls[b] = nc;
                ts[b] = (int)((k + 0.5) * T / 10); /* the bucket's middle */
            }
            const uint32_t stream = 0x40000000u + (uint32_t)(start * 10 + k);
            if (dit_trainer_eval_loss(ctx, tr, imgs, labels, ts, stream, l_true) ||
                dit_trainer_eval_loss(ctx, tr, imgs, nulls, ts, stream, l_null))
                continue;
            for (int b = 0; b < B; b++) {
                sum_true[k] += l_true[b];
                sum_null[k] += l_null[b];
            }
            count[k] += B;
        }
    fprintf(log, "{\"step\": %lld, \"val_loss\": [", (long long)step);
    double tot = 0, sig = 0;
    for (int k = 0; k < 10; k++) {
        const double lt = count[k] ? sum_true[k] / count[k] : 0;
        fprintf(log, "%s%.6f", k ? ", " : "", lt);
        tot += lt / 10;
    }
    fprintf(log, "], \"class_signal\": [");
    for (int k = 0; k < 10; k++) {
        const double d = count[k] ? (sum_null[k] - sum_true[k]) / count[k] : 0;
        fprintf(log, "%s%.6f", k ? ", " : "", d);
        sig += d / 10;
    }
    fprintf(log, "], \"val_mean\": %.6f, \"class_signal_mean\": %.6f}\n", tot, sig);
    fflush(log);
    fprintf(stderr,
            "\nvalidation at step %lld: held-out loss %.4f, class signal %.4f "
            "(null-label loss minus true-label loss)\n",
            (long long)step, tot, sig);
    g_free(imgs), g_free(labels), g_free(nulls), g_free(ts), g_free(l_true), g_free(l_null);
}

/* image folders without --channels are read as RGB */
enum { FOLDER_CHANNELS = 3 };

/* every option of dit train; the defaults live in train_defaults only */
typedef struct {
    char *data, *out, *objective, *schedule, *conditioning;
    char *vae, *cache, *labels_csv, *device, *precision;
    int size, channels, hidden, depth, heads, patch, train_t;
    int batch, warmup, every, val_every, threads, steps;
    double lr, ema, clip, dropout, label_std, mlp_ratio;
    gint64 seed;
    gboolean resume, quiet, flip, uncond, learn_sigma, no_ema_warmup, bf16_acts;
} train_options;

/* clang-format off */
static const train_options train_defaults = {
    .size = 32, .hidden = 128, .depth = 6, .heads = 4, .patch = 4, .train_t = 500,
    .batch = 128, .warmup = 500, .every = 250, .val_every = 1000, .steps = 20000,
    .lr = 3e-4, .ema = 0.999, .clip = 1.0, .dropout = 0.1, .label_std = 0.5, .mlp_ratio = 4,
    .seed = 0,
};
/* clang-format on */

static void train_options_clear(train_options *o)
{
    g_free(o->data), g_free(o->out), g_free(o->objective), g_free(o->schedule);
    g_free(o->vae), g_free(o->cache), g_free(o->labels_csv), g_free(o->conditioning);
    g_free(o->device), g_free(o->precision);
}

/* Fills *o from train_defaults and argv; 0 or an exit code (printed). */
static int parse_train_options(int argc, char **argv, train_options *o)
{
    const train_options *d = &train_defaults;
    *o = *d;
    GPtrArray *h = g_ptr_array_new_with_free_func(g_free);
#define HELP(...) cli_help(h, __VA_ARGS__) /* kept in h until parsing is over */
    GOptionEntry entries[] = {
        {"data", 'd', 0, G_OPTION_ARG_FILENAME, &o->data,
         "fashion-mnist (default; Debian's dataset-fashion-mnist) or an image folder "
         "DIR/<class>/*.png",
         "SET"},
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &o->out, "output folder (checkpoint, log, model/)",
         "DIR"},
        {"resume", 'r', 0, G_OPTION_ARG_NONE, &o->resume,
         "continue from OUT/checkpoint.safetensors", NULL},
        {"steps", 's', 0, G_OPTION_ARG_INT, &o->steps,
         HELP("train until this many steps (default %d)", d->steps), "N"},
        {"size", 0, 0, G_OPTION_ARG_INT, &o->size,
         HELP("image side in pixels (default %d; Fashion-MNIST is padded)", d->size), "PX"},
        {"channels", 0, 0, G_OPTION_ARG_INT, &o->channels,
         HELP("1 (gray) or 3 (RGB) for image folders (default %d)", FOLDER_CHANNELS), "N"},
        {"hidden", 0, 0, G_OPTION_ARG_INT, &o->hidden, HELP("width (default %d)", d->hidden), "D"},
        {"depth", 0, 0, G_OPTION_ARG_INT, &o->depth, HELP("blocks (default %d)", d->depth), "N"},
        {"heads", 0, 0, G_OPTION_ARG_INT, &o->heads, HELP("attention heads (default %d)", d->heads),
         "N"},
        {"patch", 0, 0, G_OPTION_ARG_INT, &o->patch, HELP("patch size (default %d)", d->patch),
         "P"},
        {"mlp-ratio", 0, 0, G_OPTION_ARG_DOUBLE, &o->mlp_ratio,
         HELP("MLP width / D (default %g)", d->mlp_ratio), "R"},
        {"conditioning", 0, 0, G_OPTION_ARG_STRING, &o->conditioning,
         "adaln-zero (default), adaln, in-context or cross-attn: how blocks see t and the class "
         "(the DiT paper's variants)",
         "NAME"},
        {"unconditional", 0, 0, G_OPTION_ARG_NONE, &o->uncond,
         "ignore the labels: a time-only model (no classes, no guidance)", NULL},
        {"learn-sigma", 0, 0, G_OPTION_ARG_NONE, &o->learn_sigma,
         "also predict the variance, trained with the official hybrid loss (needs --objective "
         "eps_mse)",
         NULL},
        {"objective", 0, 0, G_OPTION_ARG_STRING, &o->objective,
         "x0_l1 (default: the seed article's), eps_mse (official DiT) or v_mse", "OBJ"},
        {"schedule", 0, 0, G_OPTION_ARG_STRING, &o->schedule,
         "cosine_alphabar (default with x0_l1) or linear", "NAME"},
        {"train-timesteps", 0, 0, G_OPTION_ARG_INT, &o->train_t,
         HELP("noise levels T (default %d; 1000 for linear)", d->train_t), "T"},
        {"batch", 'b', 0, G_OPTION_ARG_INT, &o->batch, HELP("batch size (default %d)", d->batch),
         "N"},
        {"lr", 0, 0, G_OPTION_ARG_DOUBLE, &o->lr, HELP("AdamW learning rate (default %g)", d->lr),
         "LR"},
        {"warmup", 0, 0, G_OPTION_ARG_INT, &o->warmup,
         HELP("linear warm-up steps (default %d)", d->warmup), "N"},
        {"ema", 0, 0, G_OPTION_ARG_DOUBLE, &o->ema, HELP("EMA decay (default %g)", d->ema), "D"},
        {"bf16-activations", 0, 0, G_OPTION_ARG_NONE, &o->bf16_acts,
         "round the activations kept for the backward pass to bfloat16 (autocast numerics; fp32 "
         "arithmetic)",
         NULL},
        {"no-ema-warmup", 0, 0, G_OPTION_ARG_NONE, &o->no_ema_warmup,
         "EMA decay from step 0 (default: min(decay, (1+step)/(10+step)))", NULL},
        {"clip", 0, 0, G_OPTION_ARG_DOUBLE, &o->clip,
         HELP("gradient norm clip, 0 = off (default %g)", d->clip), "C"},
        {"dropout", 0, 0, G_OPTION_ARG_DOUBLE, &o->dropout,
         HELP("class label dropout for guidance (default %g)", d->dropout), "P"},
        {"label-std", 0, 0, G_OPTION_ARG_DOUBLE, &o->label_std,
         HELP("label embedding init std (default %g: the class signal appears sooner than with "
              "0.02)",
              d->label_std),
         "S"},
        {"every", 0, 0, G_OPTION_ARG_INT, &o->every,
         HELP("checkpoint + export every N steps (default %d)", d->every), "N"},
        {"validate-every", 0, 0, G_OPTION_ARG_INT, &o->val_every,
         HELP("held-out loss and class signal every N steps (default %d)", d->val_every), "N"},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &o->seed,
         HELP("seed for init, batches and noise (default %" G_GINT64_FORMAT ")", d->seed), "N"},
        {"flip", 0, 0, G_OPTION_ARG_NONE, &o->flip, "random horizontal flips", NULL},
        {"vae", 0, 0, G_OPTION_ARG_FILENAME, &o->vae,
         "train in this VAE's latent space (images are encoded once)", "PATH"},
        {"latent-cache", 0, 0, G_OPTION_ARG_FILENAME, &o->cache,
         "where encoded latents are kept (default OUT/latents)", "DIR"},
        {"labels-csv", 0, 0, G_OPTION_ARG_FILENAME, &o->labels_csv,
         "image folder labels from a CSV of file,label lines instead of sub-folders", "FILE"},
        {"threads", 't', 0, G_OPTION_ARG_INT, &o->threads, "CPU threads (default: all)", "N"},
        {"device", 0, 0, G_OPTION_ARG_STRING, &o->device,
         "cpu, cuda or auto (default: auto): where the weights, optimiser state and activations "
         "live",
         "DEV"},
        {"precision", 0, 0, G_OPTION_ARG_STRING, &o->precision,
         "matrix products on CUDA: fp32, tf32 or bf16 (default: fp32; the CPU trains in fp32)",
         "P"},
        {"quiet", 'q', 0, G_OPTION_ARG_NONE, &o->quiet, "no progress line", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
#undef HELP
    GOptionContext *oc = g_option_context_new("- train a DiT (class-conditional or unconditional)");
    g_option_context_set_description(
        oc, "Examples:\n"
            "  dit train --out runs/fmnist --steps 20000\n"
            "  dit train --out runs/fmnist --resume --steps 40000\n"
            "  dit train --data ./my-images --size 32 --channels 3 --out runs/mine\n"
            "  dit train --out runs/incontext --conditioning in-context\n"
            "  dit train --out runs/official --objective eps_mse --learn-sigma\n");
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = cli_parse(oc, &argc, &argv);
    if (rc) {
        /* the message is out */
    } else if (!o->out) {
        fprintf(stderr, "dit: train needs --out DIR\n");
        rc = EXIT_USAGE;
    } else if ((rc = cli_check_float("lr", o->lr)) || (rc = cli_check_float("ema", o->ema)) ||
               (rc = cli_check_float("clip", o->clip)) ||
               (rc = cli_check_float("dropout", o->dropout)) ||
               (rc = cli_check_float("label-std", o->label_std)) ||
               (rc = cli_check_float("mlp-ratio", o->mlp_ratio))) {
        /* the message is out */
    }
    g_option_context_free(oc);
    g_ptr_array_free(h, TRUE);
    return rc;
}

/* what a run holds; train_run_clear frees it */
typedef struct {
    dit_ctx *ctx;
    dit_trainer *tr;
    dit_model *m; /* created here; NULL when resumed (the trainer owns its model) */
    dataset train, val;
    FILE *log;
    char *ckpt, *model_dir, *log_path;
} train_run;

static void train_run_clear(train_run *r)
{
    if (r->log)
        fclose(r->log);
    dit_trainer_free(r->tr);
    dit_model_free(r->m);
    dataset_clear(&r->train);
    dataset_clear(&r->val);
    dit_ctx_free(r->ctx);
    g_free(r->ckpt), g_free(r->model_dir), g_free(r->log_path);
}

/* the training (and held-out) images, in the VAE's latent space with --vae;
 * o->size becomes the side the model sees */
static int load_data(train_options *o, train_run *r)
{
    GError *err = NULL;
    const char *set = o->data ? o->data : "fashion-mnist";
    const int channels = o->channels ? o->channels : FOLDER_CHANNELS;
    bool ok;
    if (g_file_test(set, G_FILE_TEST_IS_DIR) && o->labels_csv) {
        ok = dataset_load_csv(set, o->labels_csv, o->size, channels, &r->train, &err);
    } else if (g_file_test(set, G_FILE_TEST_IS_DIR)) {
        ok = dataset_load_folder(set, o->size, channels, &r->train, &err);
    } else {
        ok = dataset_load_named(set, o->size, &r->train, &err);
        if (ok && strcmp(set, "fashion-mnist") == 0)
            ok = dataset_load_named("fashion-mnist-test", o->size, &r->val, &err);
    }
    if (!ok) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_clear_error(&err);
        return EXIT_BAD_INPUT;
    }
    if (o->uncond && !o->resume) { /* one label for every image: the null label 0 */
        memset(r->train.labels, 0, (size_t)r->train.n * sizeof *r->train.labels);
        if (r->val.n)
            memset(r->val.labels, 0, (size_t)r->val.n * sizeof *r->val.labels);
        r->train.num_classes = r->val.num_classes = 0;
    }
    g_mkdir_with_parents(o->out, 0755);
    if (o->vae) { /* the fast-DiT way: encode once, train on the cached latents */
        char *dir = o->cache ? g_strdup(o->cache) : g_build_filename(o->out, "latents", NULL);
        ok = dataset_encode_cached(r->ctx, o->vae, dir, "train", &r->train, &err) &&
             (!r->val.n || dataset_encode_cached(r->ctx, o->vae, dir, "val", &r->val, &err));
        g_free(dir);
        if (!ok) {
            fprintf(stderr, "dit: %s\n", err->message);
            g_clear_error(&err);
            return EXIT_MODEL;
        }
        o->size = r->train.size;
    }
    return 0;
}

/* --resume: the checkpoint's trainer, checked against the data */
static int resume_trainer(train_run *r)
{
    if (dit_trainer_load(r->ctx, r->ckpt, &r->tr) != DIT_OK) {
        fprintf(stderr, "dit: cannot resume: %s\n", dit_last_error(r->ctx));
        return EXIT_MODEL;
    }
    const dit_config *c = dit_model_config(dit_trainer_model(r->tr));
    dataset *train = &r->train, *val = &r->val;
    if (c->num_classes == 0) { /* an unconditional run stays one */
        memset(train->labels, 0, (size_t)train->n * sizeof *train->labels);
        if (val->n)
            memset(val->labels, 0, (size_t)val->n * sizeof *val->labels);
        train->num_classes = val->num_classes = 0;
    }
    if (c->sample_size != train->size || c->in_channels != train->channels ||
        c->num_classes != train->num_classes) {
        fprintf(stderr,
                "dit: the checkpoint was trained on %dx%d x%d with %d classes, the "
                "data is %dx%d x%d with %d\n",
                c->sample_size, c->sample_size, c->in_channels, c->num_classes, train->size,
                train->size, train->channels, train->num_classes);
        return EXIT_BAD_INPUT;
    }
    fprintf(stderr, "resuming at step %lld\n", (long long)dit_trainer_step_count(r->tr));
    return 0;
}

/* a fresh model from the options, its weights initialised */
static int create_model(const train_options *o, train_run *r)
{
    dit_config c = {.in_channels = r->train.channels,
                    .sample_size = o->size,
                    .patch_size = o->patch,
                    .hidden_size = o->hidden,
                    .depth = o->depth,
                    .num_heads = o->heads,
                    .mlp_hidden = (int)(o->hidden * o->mlp_ratio),
                    .num_classes = r->train.num_classes,
                    .freq_dim = 256,
                    .learn_sigma = o->learn_sigma};
    const int cond = o->conditioning ? dit_conditioning_from_name(o->conditioning) : 0;
    if (cond < 0) {
        fprintf(stderr, "dit: --conditioning must be adaln-zero, adaln, in-context or "
                        "cross-attn\n");
        return EXIT_USAGE;
    }
    c.conditioning = (dit_conditioning)cond;
    if (dit_model_create(r->ctx, &c, &r->m) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(r->ctx));
        return EXIT_USAGE;
    }
    dit_model_init_weights(r->m, (uint64_t)o->seed, (float)o->label_std);
    return 0;
}

/* the trainer for the fresh model: objective, schedule and optimiser from
 * the options; a new run starts a new log */
static int setup_trainer(const train_options *o, train_run *r)
{
    dit_train_config tc;
    dit_train_config_default(&tc);
    const int obj =
        o->objective ? name_index(dit_objective_names, DIT_OBJ_COUNT, o->objective) : DIT_OBJ_X0_L1;
    if (obj < 0) {
        fprintf(stderr, "dit: --objective must be x0_l1, eps_mse or v_mse\n");
        return EXIT_USAGE;
    }
    tc.objective = (dit_objective)obj;
    const int sch =
        o->schedule ? name_index(dit_schedule_names, DIT_SCHEDULE_COUNT, o->schedule)
                    : (obj == DIT_OBJ_X0_L1 ? DIT_SCHEDULE_COSINE_ALPHABAR : DIT_SCHEDULE_LINEAR);
    if (sch < 0) {
        fprintf(stderr, "dit: unknown --schedule '%s'\n", o->schedule);
        return EXIT_USAGE;
    }
    tc.sched.schedule = (dit_schedule)sch;
    tc.sched.train_steps = sch == DIT_SCHEDULE_COSINE_ALPHABAR ? o->train_t : 1000;
    tc.batch = o->batch, tc.lr = o->lr, tc.warmup = o->warmup, tc.ema_decay = o->ema;
    tc.grad_clip = o->clip, tc.class_dropout = o->dropout, tc.seed = (uint64_t)o->seed;
    tc.ema_warmup = !o->no_ema_warmup;
    tc.bf16_activations = o->bf16_acts;
    if (dit_trainer_new(r->ctx, r->m, &tc, &r->tr) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(r->ctx));
        return EXIT_USAGE;
    }
    g_unlink(r->log_path);
    return 0;
}

static int load_or_create_model(const train_options *o, train_run *r)
{
    if (o->resume)
        return resume_trainer(r);
    int rc = create_model(o, r);
    return rc ? rc : setup_trainer(o, r);
}

/* batch b of step s: a function of (seed, step), optionally mirrored */
static void fill_batch(const dataset *train, uint64_t seed, int64_t s, int B, bool flip,
                       float *imgs, int32_t *labels)
{
    const size_t chw = (size_t)train->channels * train->size * train->size;
    const int W = train->size;
    for (int b = 0; b < B; b++) {
        const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        const uint32_t ctr[4] = {(uint32_t)s, (uint32_t)(s >> 32), (uint32_t)b, 0xda7au};
        uint32_t u[4];
        dit_philox4x32_10(ctr, key, u);
        const int i = (int)(u[0] % (uint32_t)train->n);
        memcpy(imgs + (size_t)b * chw, train->images + (size_t)i * chw, chw * sizeof(float));
        labels[b] = train->labels[i];
        if (flip && (u[1] & 1)) /* mirror every row */
            for (int r = 0; r < train->channels * W; r++) {
                float *row = imgs + (size_t)b * chw + (size_t)r * W;
                for (int x = 0; x < W / 2; x++) {
                    const float tmp = row[x];
                    row[x] = row[W - 1 - x], row[W - 1 - x] = tmp;
                }
            }
    }
}

/* OUT/checkpoint.safetensors; 0 or EXIT_BAD_INPUT (printed) */
static int save_checkpoint(train_run *r)
{
    if (dit_trainer_save(r->ctx, r->tr, r->ckpt) != DIT_OK) {
        fprintf(stderr, "\ndit: checkpoint: %s\n", dit_last_error(r->ctx));
        return EXIT_BAD_INPUT;
    }
    return 0;
}

/* OUT/model/, linked to its VAE for a latent run */
static int export_run(const train_options *o, train_run *r)
{
    const int rc = export_model(r->ctx, r->tr, r->model_dir, r->train.class_names);
    if (o->vae)
        link_vae(r->model_dir, o->vae);
    return rc;
}

/* steps until --steps or Ctrl-C, then the last state (also after Ctrl-C) */
static int train_loop(const train_options *o, train_run *r)
{
    const dit_train_config *tc = dit_trainer_config(r->tr);
    const int B = tc->batch, steps = o->steps;
    const size_t chw = (size_t)r->train.channels * r->train.size * r->train.size;
    float *imgs = g_malloc((size_t)B * chw * sizeof(float));
    int32_t *labels = g_malloc((size_t)B * sizeof(int32_t));
    cli_catch_interrupts(true);
    const int64_t first = dit_trainer_step_count(r->tr);
    double t0 = cli_now(), loss_acc = 0;
    int loss_n = 0, rc = 0;
    fprintf(stderr, "training %zu parameters on %d images (%d classes), batch %d, on the %s\n",
            dit_model_param_count(dit_trainer_model(r->tr)), r->train.n, r->train.num_classes, B,
            strcmp(dit_ctx_device(r->ctx), "cuda") == 0 ? "GPU" : "CPU");
    while (dit_trainer_step_count(r->tr) < steps && !cli_cancel) {
        fill_batch(&r->train, tc->seed, dit_trainer_step_count(r->tr), B, o->flip, imgs, labels);
        float loss;
        if (dit_trainer_step(r->ctx, r->tr, imgs, labels, &loss) != DIT_OK) {
            fprintf(stderr, "\ndit: %s\n", dit_last_error(r->ctx));
            rc = EXIT_MODEL;
            break;
        }
        loss_acc += loss, loss_n++;
        const int64_t done_steps = dit_trainer_step_count(r->tr);
        const double el = cli_now() - t0, rate = (done_steps - first) / (el > 0 ? el : 1);
        if (!o->quiet && isatty(2))
            fprintf(stderr, "\rstep %lld/%d loss %.4f %.2f steps/s (%.0f img/s) ETA %.0f min   ",
                    (long long)done_steps, steps, loss, rate, rate * B,
                    (steps - done_steps) / (rate > 0 ? rate : 1) / 60);
        if (done_steps % 50 == 0) {
            fprintf(r->log, "{\"step\": %lld, \"loss\": %.6f, \"steps_per_s\": %.3f}\n",
                    (long long)done_steps, loss_acc / loss_n, rate);
            fflush(r->log);
            loss_acc = 0, loss_n = 0;
        }
        if (r->val.n && o->val_every > 0 && done_steps % o->val_every == 0 &&
            r->train.num_classes > 0)
            validate_losses(r->ctx, r->tr, &r->val, 512, r->log, done_steps);
        if (o->every > 0 && done_steps % o->every == 0) {
            if ((rc = save_checkpoint(r)))
                break;
            export_run(o, r); /* a failed export is retried at the next one */
        }
    }
    g_free(imgs);
    g_free(labels);
    if (rc || (rc = save_checkpoint(r)))
        return rc;
    rc = export_run(o, r);
    fprintf(stderr, "\n%s at step %lld: %s, model in %s\n", cli_cancel ? "stopped" : "done",
            (long long)dit_trainer_step_count(r->tr), r->ckpt, r->model_dir);
    return cli_cancel && !rc ? EXIT_CANCELLED : rc;
}

int dit_cmd_train(int argc, char **argv)
{
    train_options o;
    train_run r = {0};
    int rc = parse_train_options(argc, argv, &o);
    if (rc)
        goto done;
    r.ctx = dit_ctx_new();
    dit_ctx_set_threads(r.ctx, o.threads);
    if ((rc = dit_cli_set_device(r.ctx, o.device, o.precision)) || (rc = load_data(&o, &r)))
        goto done;
    r.ckpt = g_build_filename(o.out, "checkpoint.safetensors", NULL);
    r.model_dir = g_build_filename(o.out, "model", NULL);
    r.log_path = g_build_filename(o.out, "log.jsonl", NULL);
    if ((rc = load_or_create_model(&o, &r)))
        goto done;
    r.log = fopen(r.log_path, "a");
    if (!r.log) {
        fprintf(stderr, "dit: cannot write %s\n", r.log_path);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    rc = train_loop(&o, &r);
done:
    train_run_clear(&r);
    train_options_clear(&o);
    return rc;
}
