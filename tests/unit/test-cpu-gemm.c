/* The CPU's matrix products (core/cpu-gemm.c):
 *  - oneDNN fp32 equals OpenBLAS (the reference) to fp32 rounding, on the
 *    call shapes the backend makes (transposes, alpha, beta, strides, inside
 *    a parallel region), and on a whole DiT forward and VAE decode (<= 1e-5
 *    of max);
 *  - bf16 products are within bf16 rounding of a float64 product and not
 *    equal to the fp32 one (so bf16 really ran), and a weight's bf16 copy
 *    follows the weight once dit_cpu_gemm_forget says it changed;
 *  - the precision API says what this processor can do, judged by the
 *    kernel's CPU flags and $ONEDNN_MAX_CPU_ISA, not by the library's own
 *    answer: bf16 is accepted where the flags have it, refused with the
 *    reason where they (or the cap) do not, and "auto" then picks fp32;
 *  - training refuses bf16 products on the CPU;
 *  - a model and a VAE loaded for bf16 hold their matrices in bf16 only:
 *    the load's resident memory is at most 60% of the fp32 load's, the
 *    forward stays within bf16's band of fp32, and running, saving or
 *    training the held copy on another precision is refused by name. */
#include "common.h"
#include "internal/cpu-gemm.h"
#include "internal/impl.h"
#include "internal/train.h"
#include "internal/vae.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

static void fill(float *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

static double max_abs(const float *p, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)p[i]));
    return m;
}

static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    const double m = max_abs(b, n);
    return m > 0 ? d / m : d;
}

typedef struct {
    bool ta, tb;
    int M, N, K;
    float alpha, beta;
    int pad; /* extra leading-dimension floats */
} gemm_case;

static const gemm_case cases[] = {
    {false, true, 512, 1152, 288, 1.0f, 0.0f, 0},  /* linear (M, K) . (N, K)^T */
    {false, true, 37, 29, 61, 1.0f, 0.0f, 3},      /* odd sizes, strided */
    {false, false, 64, 24, 64, 1.0f, 0.0f, 5},     /* attention's P . V */
    {false, true, 64, 64, 24, 0.25f, 0.0f, 7},     /* attention's scaled Q K^T */
    {true, false, 40, 72, 50, 1.0f, 1.0f, 0},      /* weight gradient dW += dy^T x */
    {true, true, 33, 17, 45, 0.5f, 0.75f, 2},      /* everything at once */
    {false, false, 48, 6 * 7, 216, 1.0f, 0.0f, 0}, /* convolution: w . im2col */
};

static void run_case(const dit_backend *be, const gemm_case *c, const float *A, const float *B,
                     float *C, int lda, int ldb, int ldc, dit_gemm_weight weight)
{
    dit_cpu_gemm(be, c->ta, c->tb, c->M, c->N, c->K, c->alpha, A, lda, B, ldb, c->beta, C, ldc,
                 weight);
}

/* C = alpha op(A) op(B) + beta C in float64, the bf16 check's reference */
static void gemm_f64(const gemm_case *c, const float *A, const float *B, float *C, int lda, int ldb,
                     int ldc)
{
    for (int m = 0; m < c->M; m++)
        for (int n = 0; n < c->N; n++) {
            double s = 0;
            for (int k = 0; k < c->K; k++) {
                const double a = c->ta ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
                const double b = c->tb ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
                s += a * b;
            }
            float *o = &C[(size_t)m * ldc + n];
            *o = (float)(c->alpha * s + c->beta * (double)*o);
        }
}

static void library_cases(void)
{
    dit_backend blas = *dit_backend_cpu(), dnnl = blas, bf16 = blas;
    blas.n_threads = dnnl.n_threads = bf16.n_threads = 2;
    blas.gemm_lib = DIT_GEMM_OPENBLAS;
    dnnl.gemm_lib = DIT_GEMM_ONEDNN;
    bf16.gemm_bf16 = dit_cpu_bf16_supported(NULL, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const gemm_case *c = &cases[i];
        const int a_rows = c->ta ? c->K : c->M, a_cols = (c->ta ? c->M : c->K) + c->pad;
        const int b_rows = c->tb ? c->N : c->K, b_cols = (c->tb ? c->K : c->N) + c->pad;
        const int ldc = c->N + c->pad;
        const size_t na = (size_t)a_rows * a_cols, nb = (size_t)b_rows * b_cols;
        const size_t nc = (size_t)c->M * ldc;
        float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B);
        float *C0 = malloc(nc * sizeof *C0), *C1 = malloc(nc * sizeof *C1);
        float *C2 = malloc(nc * sizeof *C2), *C3 = malloc(nc * sizeof *C3);
        fill(A, na, 1 + (unsigned)i), fill(B, nb, 100 + (unsigned)i), fill(C0, nc, 7);
        memcpy(C1, C0, nc * sizeof *C0), memcpy(C2, C0, nc * sizeof *C0);
        memcpy(C3, C0, nc * sizeof *C0);
        run_case(&blas, c, A, B, C0, a_cols, b_cols, ldc, DIT_GEMM_NO_WEIGHT);
        run_case(&dnnl, c, A, B, C1, a_cols, b_cols, ldc, DIT_GEMM_NO_WEIGHT);
        const double e = rel_diff(C1, C0, nc);
        printf("case %zu %c%c %dx%dx%d: oneDNN fp32 vs OpenBLAS %.2e\n", i, c->ta ? 'T' : 'N',
               c->tb ? 'T' : 'N', c->M, c->N, c->K, e);
        CHECK(e <= 1e-5, "case %zu: oneDNN fp32 differs from OpenBLAS by %.2e of max", i, e);
        /* the same product from inside a parallel region (training's bands) */
#pragma omp parallel num_threads(2)
        {
#pragma omp single
            run_case(&dnnl, c, A, B, C2, a_cols, b_cols, ldc, DIT_GEMM_NO_WEIGHT);
        }
        CHECK(rel_diff(C2, C0, nc) <= 1e-5, "case %zu inside a parallel region", i);
        if (bf16.gemm_bf16) {
            const dit_gemm_weight w = i % 2 ? DIT_GEMM_WEIGHT_A : DIT_GEMM_WEIGHT_B;
            run_case(&bf16, c, A, B, C3, a_cols, b_cols, ldc, w);
            fill(C2, nc, 7); /* C2: the float64 product, from C's first values */
            gemm_f64(c, A, B, C2, a_cols, b_cols, ldc);
            const double e16 = rel_diff(C3, C2, nc), e32 = rel_diff(C1, C2, nc);
            printf("        bf16 vs float64 %.2e (fp32: %.2e)\n", e16, e32);
            CHECK(e16 <= 2e-2 && e16 > 4 * e32,
                  "case %zu: bf16 product %.2e from float64 (fp32 %.2e): not bf16's rounding", i,
                  e16, e32);
            /* a changed weight: its old bf16 copy is used until forgotten */
            float *Wt = w == DIT_GEMM_WEIGHT_A ? A : B;
            const size_t nw = w == DIT_GEMM_WEIGHT_A ? na : nb;
            for (size_t j = 0; j < nw; j++)
                Wt[j] = -Wt[j];
            dit_cpu_gemm_forget(Wt, nw * sizeof *Wt);
            fill(C3, nc, 7), fill(C2, nc, 7);
            run_case(&bf16, c, A, B, C3, a_cols, b_cols, ldc, w);
            gemm_f64(c, A, B, C2, a_cols, b_cols, ldc);
            CHECK(rel_diff(C3, C2, nc) <= 2e-2, "case %zu: a forgotten weight's copy was reused",
                  i);
            dit_cpu_gemm_forget(Wt, nw * sizeof *Wt);
        }
        free(A), free(B), free(C0), free(C1), free(C2), free(C3);
    }
}

/* The same products on two threads at once, as Winograd's sixteen and
 * attention's heads run: each must equal the product run alone. */
static void concurrent_cases(void)
{
    enum { M = 192, N = 640, K = 576, RUNS = 4 };
    dit_backend be[2] = {*dit_backend_cpu(), *dit_backend_cpu()};
    be[0].gemm_lib = be[1].gemm_lib = DIT_GEMM_ONEDNN;
    be[1].gemm_bf16 = dit_cpu_bf16_supported(NULL, 0);
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *alone = malloc(sizeof(float) * M * N), *C = malloc(sizeof(float) * RUNS * M * N);
    fill(A, (size_t)M * K, 11), fill(B, (size_t)K * N, 12);
    for (int p = 0; p < 2; p++) {
        for (int ta = 0; ta < 2; ta++) {
            const int lda = ta ? M : K;
            dit_cpu_gemm(&be[p], ta, false, M, N, K, 1.0f, A, lda, B, N, 0.0f, alone, N,
                         DIT_GEMM_NO_WEIGHT);
#pragma omp parallel for num_threads(2) schedule(static, 1)
            for (int r = 0; r < RUNS; r++)
                dit_cpu_gemm(&be[p], ta, false, M, N, K, 1.0f, A, lda, B, N, 0.0f,
                             C + (size_t)r * M * N, N, DIT_GEMM_NO_WEIGHT);
            for (int r = 0; r < RUNS; r++) {
                const double e = rel_diff(C + (size_t)r * M * N, alone, (size_t)M * N);
                CHECK(e == 0, "%s %s, run %d of %d on 2 threads: %.2e from the product alone",
                      p ? "bf16" : "fp32", ta ? "A^T" : "A", r, RUNS, e);
            }
        }
    }
    printf("concurrent products equal the product alone: %s\n", failures ? "no" : "yes");
    free(A), free(B), free(alone), free(C);
}

static void precision_cases(void)
{
    dit_cpu_caps caps;
    dit_cpu_get_caps(&caps);
    printf("CPU: isa %s, fp32 on %s (OpenBLAS %.0f, oneDNN fp32 %.0f, bf16 %.0f GFLOP/s), "
           "bf16 %s%s\n",
           caps.isa, caps.fp32_library, caps.gflops_openblas, caps.gflops_onednn_fp32,
           caps.gflops_onednn_bf16, caps.bf16 ? "yes" : "no: ", caps.bf16 ? "" : caps.bf16_why);
    const bool expect = test_cpu_bf16_expected();
    CHECK(caps.bf16 == expect, "bf16 %s, but the CPU flags and cap say %s",
          caps.bf16 ? "supported" : "unsupported", expect ? "supported" : "unsupported");
    if (!dit_build_has_onednn())
        CHECK(strcmp(caps.fp32_library, "OpenBLAS") == 0 && strcmp(caps.isa, "none") == 0,
              "without oneDNN: %s, %s", caps.fp32_library, caps.isa);
    const char *cap = g_getenv("ONEDNN_MAX_CPU_ISA");
    if (dit_build_has_onednn() && cap && g_ascii_strcasecmp(cap, "AVX2") == 0)
        CHECK(strcmp(caps.isa, "avx2") == 0, "ONEDNN_MAX_CPU_ISA=AVX2 but oneDNN uses %s",
              caps.isa);

    dit_ctx *ctx = dit_ctx_new();
    dit_status st = dit_ctx_set_precision(ctx, "bf16");
    printf("set_precision(bf16) on the CPU: %s %s\n", dit_status_name(st),
           st ? dit_last_error(ctx) : "");
    if (expect) {
        CHECK(st == DIT_OK && ctx->cpu.gemm_bf16, "bf16 refused: %s", dit_last_error(ctx));
        CHECK(strcmp(dit_ctx_precision(ctx), "bf16") == 0, "precision reads %s",
              dit_ctx_precision(ctx));
    } else {
        CHECK(st == DIT_ERR_UNSUPPORTED, "bf16 where it cannot run: %s", dit_status_name(st));
        CHECK(strstr(dit_last_error(ctx), "bf16") &&
                  (strstr(dit_last_error(ctx), caps.isa) || !dit_build_has_onednn()),
              "the refusal names the reason: %s", dit_last_error(ctx));
        CHECK(strcmp(dit_ctx_precision(ctx), "fp32") == 0 && !ctx->cpu.gemm_bf16,
              "a refused bf16 changed the precision to %s", dit_ctx_precision(ctx));
    }
    CHECK(dit_ctx_set_precision(ctx, "auto") == DIT_OK, "auto: %s", dit_last_error(ctx));
    const char *want = caps.bf16_faster ? "bf16" : "fp32";
    CHECK(strcmp(dit_ctx_precision(ctx), want) == 0, "auto picked %s, measured says %s",
          dit_ctx_precision(ctx), want);
    CHECK(!caps.bf16_faster || caps.bf16, "bf16 faster but not supported");
    CHECK(dit_ctx_set_precision(ctx, "fp32") == DIT_OK && !ctx->cpu.gemm_bf16,
          "fp32 turns bf16 products off");
    CHECK(dit_ctx_set_precision(ctx, "half") == DIT_ERR_INVALID_ARG, "'half' accepted");

    /* training refuses bf16 on the CPU */
    if (expect) {
        const dit_config cfg = {.in_channels = 1,
                                .sample_size = 8,
                                .patch_size = 2,
                                .hidden_size = 32,
                                .depth = 1,
                                .num_heads = 2,
                                .mlp_hidden = 64,
                                .num_classes = 3,
                                .freq_dim = 32};
        dit_model *m = NULL;
        dit_train_config tc;
        dit_train_config_default(&tc);
        dit_trainer *tr = NULL;
        CHECK(dit_model_create(ctx, &cfg, &m) == DIT_OK, "%s", dit_last_error(ctx));
        dit_ctx_set_precision(ctx, "bf16");
        if (m) {
            st = dit_trainer_new(ctx, m, &tc, &tr);
            CHECK(st == DIT_ERR_UNSUPPORTED && strstr(dit_last_error(ctx), "fp32"),
                  "training with bf16 products: %s %s", dit_status_name(st), dit_last_error(ctx));
            dit_trainer_free(tr);
        }
        dit_model_free(m);
    }
    dit_ctx_free(ctx);
}

static double resident_mib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    if (f)
        fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

/* out: the forward of the model at path, loaded under precision; *grown
 * the resident memory the load added */
static dit_model *load_held_case(dit_ctx *ctx, const char *path, const char *precision,
                                 double *grown)
{
    dit_model *m = NULL;
    CHECK(dit_ctx_set_precision(ctx, precision) == DIT_OK, "%s", dit_last_error(ctx));
    const double before = resident_mib();
    CHECK(dit_model_load(ctx, path, &m) == DIT_OK, "%s", dit_last_error(ctx));
    *grown = resident_mib() - before;
    return m;
}

static void held_cases(void)
{
    if (!test_cpu_bf16_expected())
        return;
    const dit_config cfg = {.in_channels = 4,
                            .out_channels = 4,
                            .sample_size = 8,
                            .patch_size = 2,
                            .hidden_size = 384,
                            .depth = 3,
                            .num_heads = 6,
                            .mlp_hidden = 1536,
                            .num_classes = 10,
                            .freq_dim = 256};
    dit_ctx *ctx = dit_ctx_new();
    dit_model *made = NULL, *m[2] = {NULL, NULL};
    char *dir = tmpdir_new(), *path = g_build_filename(dir, "held.safetensors", NULL);
    CHECK(dit_model_create(ctx, &cfg, &made) == DIT_OK, "%s", dit_last_error(ctx));
    if (!made)
        goto out;
    fill(made->params, made->param_floats, 11); /* adaLN-zero would hide the blocks */
    for (size_t i = 0; i < made->param_floats; i++)
        made->params[i] *= 0.2f;
    dit_model_touch(made);
    CHECK(dit_model_save(ctx, made, made->params, path, ST_F32, NULL, NULL, 0) == DIT_OK, "%s",
          dit_last_error(ctx));
    double grown[2];
    m[0] = load_held_case(ctx, path, "fp32", &grown[0]);
    m[1] = load_held_case(ctx, path, "bf16", &grown[1]);
    if (!m[0] || !m[1])
        goto out;
    printf("resident memory a load adds: fp32 %.1f MiB, bf16 %.1f MiB (%.0f%%)\n", grown[0],
           grown[1], 100 * grown[1] / grown[0]);
    CHECK(m[1]->weights_held && !m[0]->weights_held && dit_cpu_gemm_is_held(m[1]->blocks[2].fc1_w),
          "the bf16 load does not hold its matrices");
    CHECK(grown[1] <= 0.6 * grown[0], "bf16 weights take %.1f MiB, fp32 %.1f", grown[1], grown[0]);

    enum { B = 2 };
    const size_t nx = (size_t)B * 4 * 8 * 8;
    float *x = malloc(nx * sizeof *x), *o[2] = {malloc(nx * sizeof *x), malloc(nx * sizeof *x)};
    float t[B] = {50, 900};
    int32_t y[B] = {3, 10};
    fill(x, nx, 7);
    dit_ctx_set_precision(ctx, "fp32");
    CHECK(dit_model_forward(ctx, m[0], B, 8, 8, x, t, y, o[0]) == DIT_OK, "%s",
          dit_last_error(ctx));
    dit_status st = dit_model_forward(ctx, m[1], B, 8, 8, x, t, y, o[1]);
    CHECK(st == DIT_ERR_UNSUPPORTED && strstr(dit_last_error(ctx), "bf16 only"),
          "the held model at fp32: %s %s", dit_status_name(st), dit_last_error(ctx));
    st = dit_model_save(ctx, m[1], m[1]->params, path, ST_F32, NULL, NULL, 0);
    CHECK(st == DIT_ERR_UNSUPPORTED, "saving the held model: %s", dit_status_name(st));
    dit_ctx_set_precision(ctx, "bf16");
    CHECK(dit_model_forward(ctx, m[1], B, 8, 8, x, t, y, o[1]) == DIT_OK, "%s",
          dit_last_error(ctx));
    const double e = rel_diff(o[1], o[0], nx);
    printf("held bf16 forward vs fp32: %.2e\n", e);
    CHECK(e > 5e-5 && e <= 2e-2, "held bf16 forward off fp32 by %.2e (band 5e-5..2e-2)", e);
    free(x), free(o[0]), free(o[1]);

    dit_vae *v = NULL;
    char *vp = fixture_path("vae_kl");
    float lat[4 * 4 * 4] = {0}, img[3 * 32 * 32];
    CHECK(dit_vae_load(ctx, vp, &v) == DIT_OK && v->weights_held, "VAE held: %s",
          dit_last_error(ctx));
    dit_ctx_set_precision(ctx, "fp32");
    st = v ? dit_vae_decode(ctx, v, 1, 4, 4, lat, img) : DIT_OK;
    CHECK(st == DIT_ERR_UNSUPPORTED && strstr(dit_last_error(ctx), "bf16 only"),
          "the held VAE at fp32: %s %s", dit_status_name(st), dit_last_error(ctx));
    dit_vae_free(v);
    g_free(vp);
out:
    dit_model_free(made), dit_model_free(m[0]), dit_model_free(m[1]);
    g_free(path);
    tmpdir_remove(dir);
    dit_ctx_free(ctx);
}

/* A whole forward and decode, oneDNN fp32 against OpenBLAS */
static void model_cases(void)
{
    if (!dit_build_has_onednn())
        return;
    dit_ctx *ctx = dit_ctx_new();
    dit_model *m = NULL;
    dit_vae *v = NULL;
    char *mp = fixture_path("dit_official_p2.safetensors"), *vp = fixture_path("vae_kl");
    if (dit_model_load(ctx, mp, &m) || dit_vae_load(ctx, vp, &v)) {
        CHECK(false, "%s", dit_last_error(ctx));
    } else {
        const dit_config *c = dit_model_config(m);
        const int B = 2, H = c->sample_size, W = c->sample_size;
        const size_t nx = (size_t)B * c->in_channels * H * W;
        const size_t no = (size_t)B * c->out_channels * H * W;
        float *x = malloc(nx * sizeof *x), *o[2], t[2] = {10, 700};
        int32_t y[2] = {1, 0};
        const int f = dit_vae_config(v)->downscale, h = 4, w = 6;
        const size_t nl = (size_t)4 * h * w, ni = (size_t)3 * h * f * w * f;
        float *lat = malloc(nl * sizeof *lat), *img[2];
        fill(x, nx, 3), fill(lat, nl, 5);
        for (int lib = 0; lib < 2; lib++) {
            ctx->cpu.gemm_lib = lib ? DIT_GEMM_ONEDNN : DIT_GEMM_OPENBLAS;
            o[lib] = malloc(no * sizeof *o[lib]), img[lib] = malloc(ni * sizeof *img[lib]);
            CHECK(dit_model_forward(ctx, m, B, H, W, x, t, y, o[lib]) == DIT_OK, "%s",
                  dit_last_error(ctx));
            CHECK(dit_vae_decode(ctx, v, 1, h, w, lat, img[lib]) == DIT_OK, "%s",
                  dit_last_error(ctx));
        }
        const double ef = rel_diff(o[1], o[0], no), ev = rel_diff(img[1], img[0], ni);
        printf("DiT forward oneDNN fp32 vs OpenBLAS %.2e, VAE decode %.2e\n", ef, ev);
        CHECK(ef <= 1e-5 && ev <= 1e-5, "oneDNN fp32 off the reference: %.2e, %.2e", ef, ev);
        free(x), free(lat);
        for (int lib = 0; lib < 2; lib++)
            free(o[lib]), free(img[lib]);
    }
    g_free(mp), g_free(vp);
    dit_model_free(m);
    dit_vae_free(v);
    dit_ctx_free(ctx);
}

int main(void)
{
    library_cases();
    if (dit_build_has_onednn())
        concurrent_cases();
    precision_cases();
    model_cases();
    held_cases();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
