/* Benchmark (not a test): DiT-XL/2 at 256x256 (latent 4x32x32), batch 2.
 *
 * Weights come from a fixed-seed generator here (no download) and are written
 * as a diffusers folder, so the same weights load into libdit and, when
 * torch_ref.py can import torch + diffusers, into PyTorch. Prints:
 *   - the GEMM peak measured in this run (OpenBLAS, and the library and
 *     precision the run uses: oneDNN fp32 or bf16; same threads),
 *   - our forward: ms, GFLOP/s, % of that peak,
 *   - PyTorch's forward on the same weights, threads and input, the speed
 *     ratio (torch ms / our ms; > 1 means we are faster), and how far the
 *     two outputs are apart.
 *
 * With DIT_BENCH_SAMPLE_STEPS=N (0: off), also one whole N-step generation
 * with an SD-VAE-shaped decoder, against diffusers' DiTPipeline.
 *
 * Environment: DIT_BENCH_DEPTH (28), DIT_BENCH_ITERS (3), DIT_THREADS (all
 * cores), DIT_BENCH_DEVICE and DIT_BENCH_PRECISION (bench-util.h; on a GPU
 * the reference runs there too, and the CPU's GEMM peak is not a
 * measure), DIT_TORCH_PYTHON (python3) for the reference. */
#include "bench-util.h"
#include "common.h"

#include <cblas.h>
#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One whole generation at 256x256: DDIM with CFG 4 (each step one batch-2
 * forward), then the SD-shaped VAE's decode, after a 2-step warm-up; and
 * diffusers' DiTPipeline on the same weights when the reference runs. */
static int bench_sample(dit_ctx *ctx, const dit_model *m, const char *dir, const char *model_dir,
                        int steps, const char *precision)
{
    char *vae_dir = g_build_filename(dir, "sd-vae", NULL);
    g_mkdir_with_parents(vae_dir, 0700);
    dit_vae *v = NULL;
    if (!bench_write_sd_vae(ctx, vae_dir) || dit_vae_load(ctx, vae_dir, &v) != DIT_OK) {
        fprintf(stderr, "sampling benchmark: %s\n", dit_last_error(ctx));
        g_free(vae_dir);
        return 1;
    }
    dit_pipeline_params p;
    dit_pipeline_params_default(&p, m, v);
    p.class_id = 207, p.guidance = 4.0f;
    float *img = malloc((size_t)3 * 256 * 256 * sizeof *img);
    double ms = 0;
    dit_status st = DIT_OK;
    for (int run = 0; run < 2 && !st; run++) { /* a 2-step warm-up, then the timed run */
        p.steps = run ? steps : 2;
        const double t0 = now_ms();
        st = dit_pipeline_run(ctx, &p, NULL, NULL, 256, 256, NULL, NULL, NULL, img);
        ms = now_ms() - t0;
    }
    if (st)
        fprintf(stderr, "sampling benchmark: %s\n", dit_last_error(ctx));
    else
        printf("libdit sample 256x256 (%d DDIM steps, CFG 4, VAE decode) on %s, %s: %.2f s\n",
               steps, bench_where(ctx), precision, ms / 1e3);
    char threads_s[16], steps_s[16];
    snprintf(threads_s, sizeof threads_s, "%d", dit_ctx_threads(ctx));
    snprintf(steps_s, sizeof steps_s, "%d", steps);
    const char *args[] = {"--model",
                          model_dir,
                          "--vae",
                          vae_dir,
                          "--sample-steps",
                          steps_s,
                          "--threads",
                          threads_s,
                          "--device",
                          dit_ctx_device(ctx),
                          "--precision",
                          bench_torch_precision(precision),
                          NULL};
    char *json = st ? NULL : run_reference("torch_ref.py", args);
    const double torch_ms = json_number(json, "sample_ms");
    if (json)
        printf("PyTorch DiTPipeline: %s", json);
    if (torch_ms > 0)
        printf("sampling ratio vs PyTorch (same weights, %s, %s vs %s): %.2fx %s\n",
               bench_where(ctx), precision, bench_torch_precision(precision), torch_ms / ms,
               torch_ms >= ms ? "(libdit faster)" : "(PyTorch faster)");
    g_free(json);
    free(img);
    dit_vae_free(v);
    g_free(vae_dir);
    return st ? 1 : 0;
}

int main(void)
{
    const int depth = env_int("DIT_BENCH_DEPTH", 28), iters = env_int("DIT_BENCH_ITERS", 3);
    const int B = 2, H = 32, W = 32;
    const char *device, *precision;
    dit_ctx *ctx = bench_ctx_new(&device, &precision);
    if (!ctx)
        return 1;
    const int threads = dit_ctx_threads(ctx);
    const double peak = bench_peak(ctx);

    char *dir = tmpdir_new();
    char *model_dir = g_build_filename(dir, "dit-xl-2", NULL);
    g_mkdir_with_parents(model_dir, 0700);
    double t0 = now_ms();
    if (!bench_write_dit_xl(ctx, model_dir, depth))
        return 1;
    printf("wrote DiT-XL/2 weights (depth %d, diffusers naming) in %.1f s\n", depth,
           (now_ms() - t0) / 1e3);

    /* input: x (2, 4, 32, 32), t, y with one null label */
    float *x = random_floats((size_t)B * 4 * H * W, 1.0f);
    float t[2] = {500.0f, 250.0f}, yf[2] = {207.0f, 1000.0f};
    int32_t y[2] = {207, 1000};
    tensor_list io = {0};
    int64_t xs[4] = {B, 4, H, W}, bs[1] = {B};
    tl_add(&io, "x", ST_F32, 4, xs, x);
    tl_add(&io, "t", ST_F32, 1, bs, t);
    tl_add(&io, "y", ST_F32, 1, bs, yf);
    char *io_path = g_build_filename(dir, "io.safetensors", NULL);
    tl_write(ctx, &io, io_path);
    tl_free(&io);

    dit_model *m = NULL;
    t0 = now_ms();
    if (dit_model_load(ctx, model_dir, &m) != DIT_OK) {
        fprintf(stderr, "load: %s\n", dit_last_error(ctx));
        return 1;
    }
    printf("loaded in %.1f s: %zu parameters\n", (now_ms() - t0) / 1e3, dit_model_param_count(m));

    size_t n_out = (size_t)B * 8 * H * W;
    float *out = malloc(n_out * sizeof *out);
    double flops = dit_model_forward_flops(dit_model_config(m), B, H, W);
    double *times = calloc((size_t)iters, sizeof *times);
    for (int i = -1; i < iters; i++) { /* one warm-up */
        t0 = now_ms();
        if (dit_model_forward(ctx, m, B, H, W, x, t, y, out) != DIT_OK) {
            fprintf(stderr, "forward: %s\n", dit_last_error(ctx));
            return 1;
        }
        if (i >= 0)
            times[i] = now_ms() - t0;
    }
    double med = median(times, iters), best = times[0];
    double gflops = flops / (med * 1e6);
    printf("libdit forward  B=%d 32x32 depth %d on %s: median %.1f ms (min %.1f) over %d, "
           "%.1f GFLOP/forward, %.1f GFLOP/s",
           B, depth, device, med, best, iters, flops / 1e9, gflops);
    print_share_of_peak(gflops, peak);
    printf("\n");

    char *torch_out = g_build_filename(dir, "torch-out.safetensors", NULL);
    char threads_s[16], iters_s[16];
    snprintf(threads_s, sizeof threads_s, "%d", threads);
    snprintf(iters_s, sizeof iters_s, "%d", iters);
    const char *args[] = {"--model",     model_dir,
                          "--input",     io_path,
                          "--threads",   threads_s,
                          "--iters",     iters_s,
                          "--output",    torch_out,
                          "--device",    device,
                          "--precision", bench_torch_precision(precision),
                          NULL};
    char *ref_json = run_reference("torch_ref.py", args);
    double torch_ms = json_number(ref_json, "ms");
    if (ref_json)
        printf("PyTorch reference: %s", ref_json);
    g_free(ref_json);
    int rc = 0;
    if (torch_ms > 0) {
        printf("ratio vs PyTorch (same weights, %s, %s vs %s): %.2fx %s\n", bench_where(ctx),
               precision, bench_torch_precision(precision), torch_ms / med,
               torch_ms >= med ? "(libdit faster)" : "(PyTorch faster)");
        st_file *f = NULL;
        if (st_open(ctx, torch_out, &f) == DIT_OK) {
            float *ref = read_tensor(ctx, f, "out", NULL, NULL, NULL);
            /* diffusers computes its timestep sinusoids in float32, ~5e-5 off
             * exact; through 28 blocks that is the main difference in fp32.
             * TF32 / BF16 products each round differently on the two sides. */
            const double limit =
                !strcmp(precision, "fp32") && !strcmp(bench_torch_precision(precision), "fp32")
                    ? 1e-2
                    : 1e-1;
            if (ref && !compare_rel("libdit vs PyTorch output", out, ref, n_out, limit))
                rc = 1;
            free(ref);
            st_close(f);
        }
    }
    g_free(torch_out);
    const int sample_steps = env_int("DIT_BENCH_SAMPLE_STEPS", 0);
    if (sample_steps > 0 && bench_sample(ctx, m, dir, model_dir, sample_steps, precision))
        rc = 1;
    free(times);
    free(out);
    free(x);
    dit_model_free(m);
    g_free(io_path);
    g_free(model_dir);
    tmpdir_remove(dir);
    dit_ctx_free(ctx);
    return rc;
}
