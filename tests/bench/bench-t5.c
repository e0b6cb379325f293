/* Benchmark (not a test): the T5 encoder, T5-XXL-shaped (d_model 4096, 64
 * heads of 64, d_ff 10240, vocabulary 32128; DIT_BENCH_T5_DEPTH layers of
 * the 24, default 2), seeded weights written in bf16 as T5 ships, one
 * prompt of 120 tokens (PixArt-alpha's length, 17 of them padding).
 * Prints the GEMM peak of this run, our forward in fp32 and (where the CPU
 * has it) bf16 products, and transformers' T5EncoderModel on the same
 * weights, threads and tokens, fp32 and under torch.autocast bf16: the
 * ratio (> 1: we are faster), how far the outputs are apart, and the peak
 * resident memory of each process. */
#include "bench-util.h"
#include "common.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { L = 120, PAD = 17 };

static bool write_t5(dit_ctx *ctx, const char *dir, int depth)
{
    const int64_t d = 4096, H = 64, dk = 64, ff = 10240, V = 32128;
    tensor_list tl = {0};
    char name[160];
    struct {
        const char *suffix;
        int64_t r, c;
        float std;
    } per_layer[] = {
        {"0.SelfAttention.q.weight", H * dk, d, 0.0022f},
        {"0.SelfAttention.k.weight", H * dk, d, 0.016f},
        {"0.SelfAttention.v.weight", H * dk, d, 0.016f},
        {"0.SelfAttention.o.weight", d, H * dk, 0.016f},
        {"1.DenseReluDense.wi_0.weight", ff, d, 0.016f},
        {"1.DenseReluDense.wi_1.weight", ff, d, 0.016f},
        {"1.DenseReluDense.wo.weight", d, ff, 0.01f},
    };
    float *v = random_floats((size_t)V * d, 1.0f);
    tl_add(&tl, "shared.weight", ST_BF16, 2, (int64_t[]){V, d}, v);
    free(v);
    v = random_floats((size_t)32 * H, 1.0f);
    tl_add(&tl, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", ST_BF16, 2,
           (int64_t[]){32, H}, v);
    free(v);
    float *ones = malloc((size_t)d * sizeof *ones);
    for (int64_t i = 0; i < d; i++)
        ones[i] = 1.0f;
    for (int l = 0; l < depth; l++) {
        for (size_t k = 0; k < G_N_ELEMENTS(per_layer); k++) {
            snprintf(name, sizeof name, "encoder.block.%d.layer.%s", l, per_layer[k].suffix);
            v = random_floats((size_t)(per_layer[k].r * per_layer[k].c), per_layer[k].std);
            tl_add(&tl, name, ST_BF16, 2, (int64_t[]){per_layer[k].r, per_layer[k].c}, v);
            free(v);
        }
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "encoder.block.%d.layer.%d.layer_norm.weight", l, k);
            tl_add(&tl, name, ST_BF16, 1, (int64_t[]){d}, ones);
        }
    }
    tl_add(&tl, "encoder.final_layer_norm.weight", ST_BF16, 1, (int64_t[]){d}, ones);
    free(ones);
    char *wpath = g_build_filename(dir, "model.safetensors", NULL);
    char *cpath = g_build_filename(dir, "config.json", NULL);
    char *cfg = g_strdup_printf(
        "{\"architectures\": [\"T5EncoderModel\"], \"model_type\": \"t5\", \"vocab_size\": %d, "
        "\"d_model\": 4096, \"d_kv\": 64, \"num_heads\": 64, \"d_ff\": 10240, \"num_layers\": %d, "
        "\"feed_forward_proj\": \"gated-gelu\", \"relative_attention_num_buckets\": 32, "
        "\"relative_attention_max_distance\": 128, \"layer_norm_epsilon\": 1e-6, "
        "\"dropout_rate\": 0.0}\n",
        (int)V, depth);
    const bool ok =
        tl_write(ctx, &tl, wpath) == DIT_OK && g_file_set_contents(cpath, cfg, -1, NULL);
    tl_free(&tl);
    g_free(wpath), g_free(cpath), g_free(cfg);
    return ok;
}

/* best of iters forwards, ms; out holds the last */
static double time_encode(dit_ctx *ctx, const dit_text_encoder *enc, const int32_t *ids,
                          const int32_t *mask, float *out, int iters)
{
    double best = 1e30;
    for (int i = -1; i < iters; i++) { /* one warm-up */
        const double t0 = now_ms();
        if (dit_text_encode(ctx, enc, ids, mask, 1, L, out) != DIT_OK) {
            fprintf(stderr, "encode: %s\n", dit_last_error(ctx));
            return -1;
        }
        const double ms = now_ms() - t0;
        if (i >= 0 && ms < best)
            best = ms;
    }
    return best;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const int depth = env_int("DIT_BENCH_T5_DEPTH", 2), iters = env_int("DIT_BENCH_ITERS", 3);
    const char *device, *precision;
    dit_ctx *ctx = bench_ctx_new(&device, &precision);
    if (!ctx)
        return 1;
    char *dir = tmpdir_new();
    double t0 = now_ms();
    if (!write_t5(ctx, dir, depth))
        return 1;
    printf("wrote a T5-XXL-shaped encoder, %d of 24 layers, bf16, in %.1f s\n", depth,
           (now_ms() - t0) / 1e3);
    int32_t ids[L], mask[L];
    for (int i = 0; i < L; i++) {
        ids[i] = i < L - PAD ? 3 + (int32_t)((i * 7919u) % 31000u) : 0;
        mask[i] = i < L - PAD;
    }
    ids[L - PAD - 1] = 1; /* EOS */
    const double flops = 2.0 * (L - 0) * depth * (4.0 * 4096 * 4096 + 3.0 * 4096 * 10240) +
                         4.0 * L * L * 4096 * depth;
    float *out = malloc((size_t)L * 4096 * sizeof *out);
    const char *modes[] = {"fp32", "bf16"};
    double ours[2] = {0, 0};
    for (int m = 0; m < 2; m++) {
        if (m == 1 && dit_ctx_set_precision(ctx, "bf16") != DIT_OK) {
            printf("bf16: %s\n", dit_last_error(ctx));
            break;
        }
        const double peak = bench_peak(ctx);
        dit_text_encoder *enc = NULL;
        t0 = now_ms();
        if (dit_text_encoder_load(ctx, dir, &enc) != DIT_OK) {
            fprintf(stderr, "load: %s\n", dit_last_error(ctx));
            return 1;
        }
        printf("libdit %s: loaded in %.1f s", modes[m], (now_ms() - t0) / 1e3);
        ours[m] = time_encode(ctx, enc, ids, mask, out, iters);
        printf(", encode 1 x %d tokens %.1f ms = %.0f GFLOP/s", L, ours[m],
               flops / (ours[m] * 1e6));
        print_share_of_peak(flops / (ours[m] * 1e6), peak);
        printf(", peak RSS so far %.0f MiB\n", peak_rss_mib());
        if (m == 0) {
            char *op = g_build_filename(dir, "ours.safetensors", NULL);
            dit_save_text_embedding(ctx, op, out, mask, L, 4096, "bench");
            g_free(op);
        }
        dit_text_encoder_free(enc);
    }
    char threads_s[16], iters_s[16];
    snprintf(threads_s, sizeof threads_s, "%d", dit_ctx_threads(ctx));
    snprintf(iters_s, sizeof iters_s, "%d", iters);
    char *ours_path = g_build_filename(dir, "ours.safetensors", NULL);
    const char *args[] = {"--model", dir,       "--ours", ours_path, "--threads",
                          threads_s, "--iters", iters_s,  NULL};
    char *json = run_reference("torch_t5_ref.py", args);
    if (json) {
        printf("transformers T5EncoderModel: %s", json);
        const double tf = json_number(json, "fp32_ms"), tb = json_number(json, "bf16_ms");
        if (tf > 0 && ours[0] > 0)
            printf("fp32 ratio vs transformers: %.2fx %s\n", tf / ours[0],
                   tf >= ours[0] ? "(libdit faster)" : "(transformers faster)");
        if (tb > 0 && ours[1] > 0)
            printf("bf16 ratio vs transformers under autocast: %.2fx %s\n", tb / ours[1],
                   tb >= ours[1] ? "(libdit faster)" : "(transformers faster)");
    }
    g_free(json), g_free(ours_path);
    free(out);
    tmpdir_remove(dir);
    dit_ctx_free(ctx);
    return 0;
}
