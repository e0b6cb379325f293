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
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;
static void on_sigint(int sig)
{
    (void)sig;
    g_stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

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
        t->objective == DIT_OBJ_X0_L1 ? "sample"
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
static void validate_losses(dit_ctx *ctx, dit_trainer *tr, const dataset *val, int n_val,
                            FILE *log, int64_t step)
{
    const dit_train_config *t = dit_trainer_config(tr);
    const int B = t->batch, T = t->sched.train_steps;
    const int nc = dit_model_config(dit_trainer_model(tr))->num_classes;
    const size_t chw = (size_t)val->channels * val->size * val->size;
    float *imgs = g_malloc((size_t)B * chw * sizeof(float));
    int32_t *labels = g_malloc((size_t)B * sizeof(int32_t)), *nulls = g_malloc(B * sizeof(int32_t));
    int32_t *ts = g_malloc((size_t)B * sizeof(int32_t));
    float *l_true = g_malloc((size_t)B * sizeof(float)), *l_null = g_malloc((size_t)B * sizeof(float));
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
    fprintf(stderr, "\nvalidation at step %lld: held-out loss %.4f, class signal %.4f "
                    "(null-label loss minus true-label loss)\n",
            (long long)step, tot, sig);
    g_free(imgs), g_free(labels), g_free(nulls), g_free(ts), g_free(l_true), g_free(l_null);
}


int dit_cmd_train(int argc, char **argv)
{
    char *data = NULL, *out = NULL, *objective = NULL, *schedule = NULL;
    int size = 32, channels = 0, hidden = 128, depth = 6, heads = 4, patch = 4, train_t = 500;
    int batch = 128, warmup = 500, every = 250, val_every = 1000, threads = 0, steps = 20000;
    double lr = 3e-4, ema = 0.999, clip = 1.0, dropout = 0.1, label_std = 0.5, mlp_ratio = 4;
    gint64 seed = 0;
    gboolean resume = FALSE, quiet = FALSE, flip = FALSE, uncond = FALSE, learn_sigma = FALSE;
    gboolean no_ema_warmup = FALSE, bf16_acts = FALSE;
    char *vae_path = NULL, *cache = NULL, *labels_csv = NULL, *conditioning = NULL;
    char *device = NULL, *precision = NULL;
    GOptionEntry entries[] = {
        {"data", 'd', 0, G_OPTION_ARG_FILENAME, &data, "fashion-mnist (default; Debian's dataset-fashion-mnist) or an image folder DIR/<class>/*.png", "SET"},
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "output folder (checkpoint, log, model/)", "DIR"},
        {"resume", 'r', 0, G_OPTION_ARG_NONE, &resume, "continue from OUT/checkpoint.safetensors", NULL},
        {"steps", 's', 0, G_OPTION_ARG_INT, &steps, "train until this many steps (default 20000)", "N"},
        {"size", 0, 0, G_OPTION_ARG_INT, &size, "image side in pixels (default 32; Fashion-MNIST is padded)", "PX"},
        {"channels", 0, 0, G_OPTION_ARG_INT, &channels, "1 (gray) or 3 (RGB) for image folders (default 3)", "N"},
        {"hidden", 0, 0, G_OPTION_ARG_INT, &hidden, "width (default 128)", "D"},
        {"depth", 0, 0, G_OPTION_ARG_INT, &depth, "blocks (default 6)", "N"},
        {"heads", 0, 0, G_OPTION_ARG_INT, &heads, "attention heads (default 4)", "N"},
        {"patch", 0, 0, G_OPTION_ARG_INT, &patch, "patch size (default 4)", "P"},
        {"mlp-ratio", 0, 0, G_OPTION_ARG_DOUBLE, &mlp_ratio, "MLP width / D (default 4)", "R"},
        {"conditioning", 0, 0, G_OPTION_ARG_STRING, &conditioning, "adaln-zero (default), adaln, in-context or cross-attn: how blocks see t and the class (the DiT paper's variants)", "NAME"},
        {"unconditional", 0, 0, G_OPTION_ARG_NONE, &uncond, "ignore the labels: a time-only model (no classes, no guidance)", NULL},
        {"learn-sigma", 0, 0, G_OPTION_ARG_NONE, &learn_sigma, "also predict the variance, trained with the official hybrid loss (needs --objective eps_mse)", NULL},
        {"objective", 0, 0, G_OPTION_ARG_STRING, &objective, "x0_l1 (default: the seed article's), eps_mse (official DiT) or v_mse", "OBJ"},
        {"schedule", 0, 0, G_OPTION_ARG_STRING, &schedule, "cosine_alphabar (default with x0_l1) or linear", "NAME"},
        {"train-timesteps", 0, 0, G_OPTION_ARG_INT, &train_t, "noise levels T (default 500; 1000 for linear)", "T"},
        {"batch", 'b', 0, G_OPTION_ARG_INT, &batch, "batch size (default 128)", "N"},
        {"lr", 0, 0, G_OPTION_ARG_DOUBLE, &lr, "AdamW learning rate (default 3e-4)", "LR"},
        {"warmup", 0, 0, G_OPTION_ARG_INT, &warmup, "linear warm-up steps (default 500)", "N"},
        {"ema", 0, 0, G_OPTION_ARG_DOUBLE, &ema, "EMA decay (default 0.999)", "D"},
        {"bf16-activations", 0, 0, G_OPTION_ARG_NONE, &bf16_acts, "round the activations kept for the backward pass to bfloat16 (autocast numerics; fp32 arithmetic)", NULL},
        {"no-ema-warmup", 0, 0, G_OPTION_ARG_NONE, &no_ema_warmup, "EMA decay from step 0 (default: min(decay, (1+step)/(10+step)))", NULL},
        {"clip", 0, 0, G_OPTION_ARG_DOUBLE, &clip, "gradient norm clip, 0 = off (default 1)", "C"},
        {"dropout", 0, 0, G_OPTION_ARG_DOUBLE, &dropout, "class label dropout for guidance (default 0.1)", "P"},
        {"label-std", 0, 0, G_OPTION_ARG_DOUBLE, &label_std, "label embedding init std (default 0.5: the class signal appears sooner than with 0.02)", "S"},
        {"every", 0, 0, G_OPTION_ARG_INT, &every, "checkpoint + export every N steps (default 250)", "N"},
        {"validate-every", 0, 0, G_OPTION_ARG_INT, &val_every, "held-out loss and class signal every N steps (default 1000)", "N"},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &seed, "seed for init, batches and noise (default 0)", "N"},
        {"flip", 0, 0, G_OPTION_ARG_NONE, &flip, "random horizontal flips", NULL},
        {"vae", 0, 0, G_OPTION_ARG_FILENAME, &vae_path, "train in this VAE's latent space (images are encoded once)", "PATH"},
        {"latent-cache", 0, 0, G_OPTION_ARG_FILENAME, &cache, "where encoded latents are kept (default OUT/latents)", "DIR"},
        {"labels-csv", 0, 0, G_OPTION_ARG_FILENAME, &labels_csv, "image folder labels from a CSV of file,label lines instead of sub-folders", "FILE"},
        {"threads", 't', 0, G_OPTION_ARG_INT, &threads, "CPU threads (default: all)", "N"},
        {"device", 0, 0, G_OPTION_ARG_STRING, &device, "cpu, cuda or auto (default: auto): where the weights, optimiser state and activations live", "DEV"},
        {"precision", 0, 0, G_OPTION_ARG_STRING, &precision, "matrix products on CUDA: fp32, tf32 or bf16 (default: fp32)", "P"},
        {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "no progress line", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *oc = g_option_context_new("- train a DiT (class-conditional or unconditional)");
    g_option_context_set_description(
        oc, "Examples:\n"
            "  dit train --out runs/fmnist --steps 20000\n"
            "  dit train --out runs/fmnist --resume --steps 40000\n"
            "  dit train --data ./my-images --size 32 --channels 3 --out runs/mine\n"
            "  dit train --out runs/incontext --conditioning in-context\n"
            "  dit train --out runs/official --objective eps_mse --learn-sigma\n");
    g_option_context_add_main_entries(oc, entries, NULL);
    GError *err = NULL;
    int rc = 0;
    if (!g_option_context_parse(oc, &argc, &argv, &err)) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_clear_error(&err);
        rc = EXIT_USAGE;
    } else if (!out) {
        fprintf(stderr, "dit: train needs --out DIR\n");
        rc = EXIT_USAGE;
    } else if ((rc = cli_check_float("lr", lr)) || (rc = cli_check_float("ema", ema)) ||
               (rc = cli_check_float("clip", clip)) || (rc = cli_check_float("dropout", dropout)) ||
               (rc = cli_check_float("label-std", label_std)) ||
               (rc = cli_check_float("mlp-ratio", mlp_ratio))) {
        /* the message is out */
    }
    g_option_context_free(oc);
    dit_ctx *ctx = NULL;
    dit_trainer *tr = NULL;
    dit_model *m = NULL;
    dataset train = {0}, val = {0};
    FILE *log = NULL;
    char *ckpt = NULL, *model_dir = NULL, *log_path = NULL;
    if (rc)
        goto done;

    ctx = dit_ctx_new();
    dit_ctx_set_threads(ctx, threads);
    if ((rc = dit_cli_set_device(ctx, device, precision)))
        goto done;
    const char *set = data ? data : "fashion-mnist";
    bool ok;
    if (g_file_test(set, G_FILE_TEST_IS_DIR) && labels_csv) {
        ok = dataset_load_csv(set, labels_csv, size, channels ? channels : 3, &train, &err);
    } else if (g_file_test(set, G_FILE_TEST_IS_DIR)) {
        ok = dataset_load_folder(set, size, channels ? channels : 3, &train, &err);
    } else {
        ok = dataset_load_named(set, size, &train, &err);
        if (ok && strcmp(set, "fashion-mnist") == 0)
            ok = dataset_load_named("fashion-mnist-test", size, &val, &err);
    }
    if (!ok) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_clear_error(&err);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    if (uncond && !resume) { /* one label for every image: the null label 0 */
        memset(train.labels, 0, (size_t)train.n * sizeof *train.labels);
        if (val.n)
            memset(val.labels, 0, (size_t)val.n * sizeof *val.labels);
        train.num_classes = val.num_classes = 0;
    }
    g_mkdir_with_parents(out, 0755);
    if (vae_path) { /* the fast-DiT way: encode once, train on the cached latents */
        char *dir = cache ? g_strdup(cache) : g_build_filename(out, "latents", NULL);
        ok = dataset_encode_cached(ctx, vae_path, dir, "train", &train, &err) &&
             (!val.n || dataset_encode_cached(ctx, vae_path, dir, "val", &val, &err));
        g_free(dir);
        if (!ok) {
            fprintf(stderr, "dit: %s\n", err->message);
            g_clear_error(&err);
            rc = EXIT_MODEL;
            goto done;
        }
        size = train.size;
    }
    ckpt = g_build_filename(out, "checkpoint.safetensors", NULL);
    model_dir = g_build_filename(out, "model", NULL);
    log_path = g_build_filename(out, "log.jsonl", NULL);

    if (resume) {
        if (dit_trainer_load(ctx, ckpt, &tr) != DIT_OK) {
            fprintf(stderr, "dit: cannot resume: %s\n", dit_last_error(ctx));
            rc = EXIT_MODEL;
            goto done;
        }
        const dit_config *c = dit_model_config(dit_trainer_model(tr));
        if (c->num_classes == 0) { /* an unconditional run stays one */
            memset(train.labels, 0, (size_t)train.n * sizeof *train.labels);
            if (val.n)
                memset(val.labels, 0, (size_t)val.n * sizeof *val.labels);
            train.num_classes = val.num_classes = 0;
        }
        if (c->sample_size != train.size || c->in_channels != train.channels ||
            c->num_classes != train.num_classes) {
            fprintf(stderr, "dit: the checkpoint was trained on %dx%d x%d with %d classes, the "
                            "data is %dx%d x%d with %d\n",
                    c->sample_size, c->sample_size, c->in_channels, c->num_classes, train.size,
                    train.size, train.channels, train.num_classes);
            rc = EXIT_BAD_INPUT;
            goto done;
        }
        fprintf(stderr, "resuming at step %lld\n", (long long)dit_trainer_step_count(tr));
    } else {
        dit_config c = {.in_channels = train.channels, .sample_size = size, .patch_size = patch,
                        .hidden_size = hidden, .depth = depth, .num_heads = heads,
                        .mlp_hidden = (int)(hidden * mlp_ratio), .num_classes = train.num_classes,
                        .freq_dim = 256, .learn_sigma = learn_sigma};
        const int cond = conditioning ? dit_conditioning_from_name(conditioning) : 0;
        if (cond < 0) {
            fprintf(stderr, "dit: --conditioning must be adaln-zero, adaln, in-context or "
                            "cross-attn\n");
            rc = EXIT_USAGE;
            goto done;
        }
        c.conditioning = (dit_conditioning)cond;
        if (dit_model_create(ctx, &c, &m) != DIT_OK) {
            fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
            rc = EXIT_USAGE;
            goto done;
        }
        dit_model_init_weights(m, (uint64_t)seed, (float)label_std);
        dit_train_config tc;
        dit_train_config_default(&tc);
        int obj = objective ? name_index(dit_objective_names, DIT_OBJ_COUNT, objective)
                            : DIT_OBJ_X0_L1;
        if (obj < 0) {
            fprintf(stderr, "dit: --objective must be x0_l1, eps_mse or v_mse\n");
            rc = EXIT_USAGE;
            goto done;
        }
        tc.objective = (dit_objective)obj;
        int sch = schedule ? name_index(dit_schedule_names, DIT_SCHEDULE_COUNT, schedule)
                           : (obj == DIT_OBJ_X0_L1 ? DIT_SCHEDULE_COSINE_ALPHABAR
                                                   : DIT_SCHEDULE_LINEAR);
        if (sch < 0) {
            fprintf(stderr, "dit: unknown --schedule '%s'\n", schedule);
            rc = EXIT_USAGE;
            goto done;
        }
        tc.sched.schedule = (dit_schedule)sch;
        tc.sched.train_steps = sch == DIT_SCHEDULE_COSINE_ALPHABAR ? train_t : 1000;
        tc.batch = batch, tc.lr = lr, tc.warmup = warmup, tc.ema_decay = ema;
        tc.grad_clip = clip, tc.class_dropout = dropout, tc.seed = (uint64_t)seed;
        tc.ema_warmup = !no_ema_warmup;
        tc.bf16_activations = bf16_acts;
        if (dit_trainer_new(ctx, m, &tc, &tr) != DIT_OK) {
            fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
            rc = EXIT_USAGE;
            goto done;
        }
        g_unlink(log_path);
    }
    log = fopen(log_path, "a");
    if (!log) {
        fprintf(stderr, "dit: cannot write %s\n", log_path);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    const dit_train_config *tc = dit_trainer_config(tr);
    const int B = tc->batch;
    const size_t chw = (size_t)train.channels * train.size * train.size;
    float *imgs = g_malloc((size_t)B * chw * sizeof(float));
    int32_t *labels = g_malloc((size_t)B * sizeof(int32_t));
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    const int64_t first = dit_trainer_step_count(tr);
    double t0 = now_s(), loss_acc = 0;
    int loss_n = 0;
    fprintf(stderr, "training %zu parameters on %d images (%d classes), batch %d, on the %s\n",
            dit_model_param_count(dit_trainer_model(tr)) ? dit_model_param_count(dit_trainer_model(tr))
                                                          : (size_t)0,
            train.n, train.num_classes, B, strcmp(dit_ctx_device(ctx), "cuda") == 0 ? "GPU" : "CPU");
    while (dit_trainer_step_count(tr) < steps && !g_stop) {
        const int64_t s = dit_trainer_step_count(tr);
        for (int b = 0; b < B; b++) { /* the batch is a function of (seed, step) */
            const uint32_t key[2] = {(uint32_t)tc->seed, (uint32_t)(tc->seed >> 32)};
            const uint32_t ctr[4] = {(uint32_t)s, (uint32_t)(s >> 32), (uint32_t)b, 0xda7au};
            uint32_t u[4];
            dit_philox4x32_10(ctr, key, u);
            const int i = (int)(u[0] % (uint32_t)train.n);
            memcpy(imgs + (size_t)b * chw, train.images + (size_t)i * chw, chw * sizeof(float));
            labels[b] = train.labels[i];
            if (flip && (u[1] & 1)) /* mirror every row */
                for (int r = 0; r < train.channels * train.size; r++) {
                    float *row = imgs + (size_t)b * chw + (size_t)r * train.size;
                    for (int x = 0; x < train.size / 2; x++) {
                        const float tmp = row[x];
                        row[x] = row[train.size - 1 - x], row[train.size - 1 - x] = tmp;
                    }
                }
        }
        float loss;
        if (dit_trainer_step(ctx, tr, imgs, labels, &loss) != DIT_OK) {
            fprintf(stderr, "\ndit: %s\n", dit_last_error(ctx));
            rc = EXIT_MODEL;
            break;
        }
        loss_acc += loss, loss_n++;
        const int64_t done_steps = dit_trainer_step_count(tr);
        const double el = now_s() - t0, rate = (done_steps - first) / (el > 0 ? el : 1);
        if (!quiet && isatty(2))
            fprintf(stderr, "\rstep %lld/%d loss %.4f %.2f steps/s (%.0f img/s) ETA %.0f min   ",
                    (long long)done_steps, steps, loss, rate, rate * B,
                    (steps - done_steps) / (rate > 0 ? rate : 1) / 60);
        if (done_steps % 50 == 0) {
            fprintf(log, "{\"step\": %lld, \"loss\": %.6f, \"steps_per_s\": %.3f}\n",
                    (long long)done_steps, loss_acc / loss_n, rate);
            fflush(log);
            loss_acc = 0, loss_n = 0;
        }
        if (val.n && val_every > 0 && done_steps % val_every == 0 && train.num_classes > 0)
            validate_losses(ctx, tr, &val, 512, log, done_steps);
        if (every > 0 && done_steps % every == 0) {
            if (dit_trainer_save(ctx, tr, ckpt) != DIT_OK) {
                fprintf(stderr, "\ndit: checkpoint: %s\n", dit_last_error(ctx));
                rc = EXIT_BAD_INPUT;
                break;
            }
            export_model(ctx, tr, model_dir, train.class_names);
            if (vae_path)
                link_vae(model_dir, vae_path);
        }
    }
    if (!rc) { /* the last state, also after Ctrl-C */
        if (dit_trainer_save(ctx, tr, ckpt) != DIT_OK) {
            fprintf(stderr, "\ndit: checkpoint: %s\n", dit_last_error(ctx));
            rc = EXIT_BAD_INPUT;
        } else {
            rc = export_model(ctx, tr, model_dir, train.class_names);
            if (vae_path)
                link_vae(model_dir, vae_path);
            fprintf(stderr, "\n%s at step %lld: %s, model in %s\n",
                    g_stop ? "stopped" : "done", (long long)dit_trainer_step_count(tr), ckpt,
                    model_dir);
            if (g_stop && !rc)
                rc = EXIT_CANCELLED;
        }
    }
    g_free(imgs);
    g_free(labels);
done:
    if (log)
        fclose(log);
    if (tr && !m) /* loaded: the trainer owns its model */
        dit_trainer_free(tr);
    else {
        dit_trainer_free(tr);
        dit_model_free(m);
    }
    dataset_clear(&train);
    dataset_clear(&val);
    dit_ctx_free(ctx);
    g_free(data), g_free(out), g_free(objective), g_free(schedule);
    g_free(vae_path), g_free(cache), g_free(labels_csv), g_free(conditioning), g_free(device);
    g_free(precision);
    g_free(ckpt), g_free(model_dir), g_free(log_path);
    return rc;
}
