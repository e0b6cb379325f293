#include "bench-util.h"
#include "common.h"
#include "internal/cpu-gemm.h"
#include "internal/impl.h"
#include "internal/weights.h"

#include <cblas.h>
#include <glib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int env_int(const char *name, int fallback)
{
    const char *v = g_getenv(name);
    return v && *v ? atoi(v) : fallback;
}

static uint64_t rng = 0x853c49e6748fea9bull;

float *random_floats(size_t n, float std)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    const float a = std * 1.7320508f; /* uniform on [-a, a) has this std */
    for (size_t i = 0; i < n; i++) {
        rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
        v[i] = a * (float)((double)((rng * 0x2545f4914f6cdd1dull) >> 40) / (1 << 23) - 1.0);
    }
    return v;
}

double measure_gemm_gflops(const dit_backend *be)
{
    const int n = 2048;
    float *a = random_floats((size_t)n * n, 1), *b = random_floats((size_t)n * n, 1);
    float *c = calloc((size_t)n * n, sizeof *c);
    double best = 0;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = now_ms();
        if (be)
            dit_cpu_gemm(be, false, false, n, n, n, 1, a, n, b, n, 0, c, n, DIT_GEMM_WEIGHT_B);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double gf = 2.0 * n * n * n / ((now_ms() - t0) * 1e6);
        best = gf > best && rep > 0 ? gf : best;
    }
    if (be)
        dit_cpu_gemm_forget(b, sizeof(float) * n * n);
    free(a), free(b), free(c);
    return best;
}

char *run_reference(const char *script, const char *const *args)
{
    const char *python = g_getenv("DIT_TORCH_PYTHON");
    const char *src = g_getenv("G_TEST_SRCDIR");
    char *path = g_build_filename(src ? src : "tests", "bench", script, NULL);
    GPtrArray *argv = g_ptr_array_new();
    g_ptr_array_add(argv, (char *)(python ? python : "python3"));
    g_ptr_array_add(argv, path);
    for (int i = 0; args[i]; i++)
        g_ptr_array_add(argv, (char *)args[i]);
    g_ptr_array_add(argv, NULL);
    char *out = NULL, *err = NULL;
    int status = 0;
    GError *gerr = NULL;
    char *result = NULL;
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                      &status, &gerr)) {
        printf("PyTorch reference: skipped (%s)\n", gerr->message);
        g_error_free(gerr);
    } else if (!g_spawn_check_wait_status(status, NULL)) {
        printf("PyTorch reference: skipped (%s)\n", err && *err ? g_strstrip(err) : "failed");
    } else {
        result = out;
        out = NULL;
    }
    g_free(out);
    g_free(err);
    g_free(path);
    g_ptr_array_free(argv, TRUE);
    return result;
}

double json_number(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = json ? strstr(json, pat) : NULL;
    return at ? g_ascii_strtod(at + strlen(pat), NULL) : -1;
}

double median(double *v, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (v[j] < v[i]) {
                double t = v[i];
                v[i] = v[j], v[j] = t;
            }
    return n ? v[n / 2] : 0;
}

double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

dit_ctx *bench_ctx_new(const char **device, const char **precision)
{
    dit_ctx *ctx = dit_ctx_new();
    if (!ctx || dit_ctx_set_threads(ctx, env_int("DIT_THREADS", 0)) != DIT_OK) {
        fprintf(stderr, "cannot make a context (DIT_THREADS < 0?)\n");
        dit_ctx_free(ctx);
        return NULL;
    }
    openblas_set_num_threads(dit_ctx_threads(ctx));
    const char *dev = g_getenv("DIT_BENCH_DEVICE"), *prec = g_getenv("DIT_BENCH_PRECISION");
    dev = dev && *dev ? dev : "cpu", prec = prec && *prec ? prec : "fp32";
    if (dit_ctx_set_device(ctx, dev) != DIT_OK || dit_ctx_set_precision(ctx, prec) != DIT_OK) {
        fprintf(stderr, "DIT_BENCH_DEVICE=%s DIT_BENCH_PRECISION=%s: %s\n", dev, prec,
                dit_last_error(ctx));
        dit_ctx_free(ctx);
        return NULL;
    }
    *device = dit_ctx_device(ctx), *precision = dit_ctx_precision(ctx);
    if (strcmp(*device, "cpu") != 0)
        printf("device: %s, %s matrix products\n", *device, *precision);
    return ctx;
}

const char *bench_torch_precision(const char *ours)
{
    const char *p = g_getenv("DIT_BENCH_TORCH_PRECISION");
    return p && *p ? p : ours;
}

const char *bench_where(const dit_ctx *ctx)
{
    static char where[32];
    if (strcmp(dit_ctx_device(ctx), "cpu") == 0)
        snprintf(where, sizeof where, "%d threads", dit_ctx_threads(ctx));
    else
        snprintf(where, sizeof where, "%s", dit_ctx_device(ctx));
    return where;
}

double bench_peak(dit_ctx *ctx)
{
    if (strcmp(dit_ctx_device(ctx), "cpu") != 0)
        return 0;
    dit_cpu_caps caps;
    dit_cpu_get_caps(&caps);
    const double blas = measure_gemm_gflops(NULL), ours = measure_gemm_gflops(ctx->be);
    const char *path = ctx->be->gemm_bf16 ? "oneDNN bf16" : caps.fp32_library;
    printf("CPU: %s (oneDNN's view); OpenBLAS sgemm peak (2048^3, %d threads): %.1f GFLOP/s; "
           "this run's products on %s: %.1f GFLOP/s at 2048^3\n",
           caps.isa, dit_ctx_threads(ctx), blas, path, ours);
    return ours;
}

void print_share_of_peak(double gflops, double peak)
{
    if (peak > 0)
        printf(" = %.0f%% of this run's GEMM peak", 100 * gflops / peak);
}

static dit_vae_info sd_vae_info(void)
{
    dit_vae_info in = {
        .kind = DIT_VAE_KL,
        .naming = DIT_VAE_NAMING_DIFFUSERS,
        .in_channels = 3,
        .out_channels = 3,
        .latent_channels = 4,
        .downscale = 8,
        .n_levels = 4,
        .block_out = {128, 256, 512, 512},
        .layers_per_block = 2,
        .norm_groups = 32,
        .scaling_factor = 0.18215f,
        .mid_attention = 1,
        .use_quant_conv = 1,
        .use_post_quant_conv = 1,
    };
    return in;
}

static void add_random(tensor_list *tl, const char *name, int ndim, int64_t d0, int64_t d1,
                       float std)
{
    int64_t shape[2] = {d0, d1};
    size_t n = (size_t)d0 * (ndim > 1 ? (size_t)d1 : 1);
    float *v = random_floats(n, std);
    tl_add(tl, name, ST_F32, ndim, shape, v);
    free(v);
}

/* DiT-XL/2 in diffusers naming (each block carries its own embedder) */
bool bench_write_dit_xl(dit_ctx *ctx, const char *dir, int depth)
{
    const int64_t D = 1152, F = 256, classes = 1000, p = 2, C = 4, Cout = 8;
    tensor_list tl = {0};
    int64_t xs[4] = {D, C, p, p};
    float *xw = random_floats((size_t)(D * C * p * p), 0.02f);
    tl_add(&tl, "pos_embed.proj.weight", ST_F32, 4, xs, xw);
    free(xw);
    add_random(&tl, "pos_embed.proj.bias", 1, D, 0, 0.02f);
    char name[160];
#define BLOCK(suffix) (snprintf(name, sizeof name, "transformer_blocks.%d.%s", i, suffix), name)
    for (int i = 0; i < depth; i++) {
        add_random(&tl, BLOCK("norm1.emb.timestep_embedder.linear_1.weight"), 2, D, F, 0.02f);
        add_random(&tl, BLOCK("norm1.emb.timestep_embedder.linear_1.bias"), 1, D, 0, 0.02f);
        add_random(&tl, BLOCK("norm1.emb.timestep_embedder.linear_2.weight"), 2, D, D, 0.02f);
        add_random(&tl, BLOCK("norm1.emb.timestep_embedder.linear_2.bias"), 1, D, 0, 0.02f);
        add_random(&tl, BLOCK("norm1.emb.class_embedder.embedding_table.weight"), 2, classes + 1, D,
                   0.02f);
        add_random(&tl, BLOCK("norm1.linear.weight"), 2, 6 * D, D, 0.02f);
        add_random(&tl, BLOCK("norm1.linear.bias"), 1, 6 * D, 0, 0.02f);
        static const char *const lin[] = {"attn1.to_q", "attn1.to_k", "attn1.to_v",
                                          "attn1.to_out.0"};
        for (int j = 0; j < 4; j++) {
            char w[64], b[64];
            snprintf(w, sizeof w, "%s.weight", lin[j]);
            snprintf(b, sizeof b, "%s.bias", lin[j]);
            add_random(&tl, BLOCK(w), 2, D, D, 0.02f);
            add_random(&tl, BLOCK(b), 1, D, 0, 0.02f);
        }
        add_random(&tl, BLOCK("ff.net.0.proj.weight"), 2, 4 * D, D, 0.02f);
        add_random(&tl, BLOCK("ff.net.0.proj.bias"), 1, 4 * D, 0, 0.02f);
        add_random(&tl, BLOCK("ff.net.2.weight"), 2, D, 4 * D, 0.02f);
        add_random(&tl, BLOCK("ff.net.2.bias"), 1, D, 0, 0.02f);
    }
#undef BLOCK
    add_random(&tl, "proj_out_1.weight", 2, 2 * D, D, 0.02f);
    add_random(&tl, "proj_out_1.bias", 1, 2 * D, 0, 0.02f);
    add_random(&tl, "proj_out_2.weight", 2, p * p * Cout, D, 0.02f);
    add_random(&tl, "proj_out_2.bias", 1, p * p * Cout, 0, 0.02f);

    char *wpath = g_build_filename(dir, "diffusion_pytorch_model.safetensors", NULL);
    bool ok = tl_write(ctx, &tl, wpath) == DIT_OK;
    if (!ok)
        fprintf(stderr, "%s\n", dit_last_error(ctx));
    tl_free(&tl);
    g_free(wpath);
    char *cfg = g_strdup_printf(
        "{\"_class_name\": \"DiTTransformer2DModel\", \"in_channels\": 4, \"out_channels\": 8,"
        " \"num_layers\": %d, \"num_attention_heads\": 16, \"attention_head_dim\": 72,"
        " \"patch_size\": 2, \"sample_size\": 32, \"num_embeds_ada_norm\": 1000,"
        " \"norm_type\": \"ada_norm_zero\", \"activation_fn\": \"gelu-approximate\","
        " \"norm_elementwise_affine\": false, \"norm_eps\": 1e-05, \"attention_bias\": true}\n",
        depth);
    char *cpath = g_build_filename(dir, "config.json", NULL);
    ok = ok && g_file_set_contents(cpath, cfg, -1, NULL);
    g_free(cpath);
    g_free(cfg);
    return ok;
}

bool bench_write_sd_vae(dit_ctx *ctx, const char *dir)
{
    dit_vae_info info = sd_vae_info();
    weight_expect *list = NULL;
    size_t n = 0;
    if (vae_expected_tensors(ctx, &info, &list, &n) != DIT_OK)
        return false;
    tensor_list tl = {0};
    for (size_t i = 0; i < n; i++) {
        const weight_expect *e = &list[i];
        size_t count = 1, fan_in = 1;
        for (int d = 0; d < e->ndim; d++)
            count *= (size_t)e->shape[d];
        for (int d = 1; d < e->ndim; d++)
            fan_in *= (size_t)e->shape[d];
        const bool norm = strstr(e->name, "norm") != NULL;
        float *v = random_floats(count, e->ndim > 1 ? 1.0f / sqrtf((float)fan_in) : 0.02f);
        if (norm && strstr(e->name, ".weight"))
            for (size_t k = 0; k < count; k++)
                v[k] += 1.0f; /* GroupNorm scale near 1 */
        tl_add(&tl, e->name, ST_F32, e->ndim, e->shape, v);
        free(v);
    }
    free(list);
    char *w = g_build_filename(dir, "diffusion_pytorch_model.safetensors", NULL);
    bool ok = tl_write(ctx, &tl, w) == DIT_OK;
    tl_free(&tl);
    g_free(w);
    char *cfg = g_build_filename(dir, "config.json", NULL);
    ok = ok && g_file_set_contents(
                   cfg,
                   "{\"_class_name\": \"AutoencoderKL\", \"in_channels\": 3, \"out_channels\": 3,"
                   " \"latent_channels\": 4, \"block_out_channels\": [128, 256, 512, 512],"
                   " \"layers_per_block\": 2, \"norm_num_groups\": 32, \"act_fn\": \"silu\","
                   " \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\","
                   " \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"],"
                   " \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\","
                   " \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"],"
                   " \"sample_size\": 512, \"scaling_factor\": 0.18215}\n",
                   -1, NULL);
    g_free(cfg);
    return ok;
}
