/* Benchmark (not a test): a Stable-Diffusion-VAE-shaped decoder
 * (block_out 128/256/512/512, 2 resnets per level, 32 groups, 4 latent
 * channels) with fixed-seed weights.
 *   1. decode a 64x64 latent to 512x512: ms, GFLOP/s, % of the GEMM peak
 *      measured here, and diffusers on the same weights/latent/threads;
 *   2. tiled decodes (512 px tiles, 0.25 overlap, as enable_tiling()) of
 *      1024^2 and 2048^2, each in a child process: peak RSS, against the
 *      activation memory an untiled decode would need.
 * Environment: DIT_BENCH_ITERS (2), DIT_BENCH_TILED ("1024,2048"; "" skips),
 * DIT_THREADS, DIT_BENCH_DEVICE and DIT_BENCH_PRECISION (bench-util.h),
 * DIT_TORCH_PYTHON. */
#include "bench-util.h"
#include "common.h"

#include <cblas.h>
#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* child: one tiled decode of a side x side image; prints its peak RSS */
static int tiled_child(const char *model_dir, int side)
{
    const char *device, *precision;
    dit_ctx *ctx = bench_ctx_new(&device, &precision);
    if (!ctx)
        return 1;
    dit_vae *v = NULL;
    if (dit_vae_load(ctx, model_dir, &v) != DIT_OK) {
        fprintf(stderr, "%s\n", dit_last_error(ctx));
        return 1;
    }
    dit_vae_set_tiling(ctx, v, 512, 0.25f);
    const int h = side / 8;
    float *z = random_floats((size_t)4 * h * h, 1.0f);
    float *img = malloc((size_t)3 * side * side * sizeof *img);
    double rss0 = peak_rss_mib(), t0 = now_ms();
    dit_status st = dit_vae_decode(ctx, v, 1, h, h, z, img);
    double ms = now_ms() - t0;
    if (st != DIT_OK) {
        fprintf(stderr, "%s\n", dit_last_error(ctx));
        return 1;
    }
    size_t untiled = dit_vae_activation_bytes(v, 1, h, h, true);
    printf("tiled decode %dx%d: %.1f s, peak RSS %.0f MiB (after loading: %.0f MiB); an "
           "untiled decode needs %.0f MiB of activations\n",
           side, side, ms / 1e3, peak_rss_mib(), rss0, untiled / 1048576.0);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--tiled-child") == 0)
        return tiled_child(argv[2], atoi(argv[3]));
    const int iters = env_int("DIT_BENCH_ITERS", 2);
    const char *device, *precision;
    dit_ctx *ctx = bench_ctx_new(&device, &precision);
    if (!ctx)
        return 1;
    const int threads = dit_ctx_threads(ctx);
    const double peak = bench_peak(ctx);

    char *dir = tmpdir_new();
    char *model_dir = g_build_filename(dir, "sd-vae", NULL);
    g_mkdir_with_parents(model_dir, 0700);
    if (!bench_write_sd_vae(ctx, model_dir)) {
        fprintf(stderr, "cannot write the benchmark VAE: %s\n", dit_last_error(ctx));
        return 1;
    }
    dit_vae *v = NULL;
    if (dit_vae_load(ctx, model_dir, &v) != DIT_OK) {
        fprintf(stderr, "%s\n", dit_last_error(ctx));
        return 1;
    }
    printf("SD-VAE-shaped AutoencoderKL: %zu parameters\n", dit_vae_param_count(v));

    const int h = 64, side = 512;
    float *z = random_floats((size_t)4 * h * h, 1.0f);
    tensor_list io = {0};
    int64_t zs[4] = {1, 4, h, h};
    tl_add(&io, "latent", ST_F32, 4, zs, z);
    char *io_path = g_build_filename(dir, "latent.safetensors", NULL);
    tl_write(ctx, &io, io_path);
    tl_free(&io);

    float *img = malloc((size_t)3 * side * side * sizeof *img);
    double flops = dit_vae_flops(v, 1, h, h, true);
    double *times = calloc((size_t)iters, sizeof *times);
    for (int i = -1; i < iters; i++) {
        double t0 = now_ms();
        if (dit_vae_decode(ctx, v, 1, h, h, z, img) != DIT_OK) {
            fprintf(stderr, "%s\n", dit_last_error(ctx));
            return 1;
        }
        if (i >= 0)
            times[i] = now_ms() - t0;
    }
    double med = median(times, iters), gflops = flops / (med * 1e6);
    printf("libdit decode 64x64 -> 512x512 on %s: median %.0f ms over %d, %.1f GFLOP, %.1f GFLOP/s",
           device, med, iters, flops / 1e9, gflops);
    print_share_of_peak(gflops, peak);
    printf("; activations %.0f MiB\n", dit_vae_activation_bytes(v, 1, h, h, true) / 1048576.0);

    char *ref_out = g_build_filename(dir, "torch-out.safetensors", NULL);
    char threads_s[16], iters_s[16];
    snprintf(threads_s, sizeof threads_s, "%d", threads);
    snprintf(iters_s, sizeof iters_s, "%d", iters);
    const char *args[] = {"--model",     model_dir,
                          "--latent",    io_path,
                          "--threads",   threads_s,
                          "--iters",     iters_s,
                          "--output",    ref_out,
                          "--device",    device,
                          "--precision", bench_torch_precision(precision),
                          NULL};
    char *json = run_reference("torch_vae_ref.py", args);
    int rc = 0;
    if (json) {
        double tms = json_number(json, "ms");
        printf("PyTorch reference: %s", json);
        printf("ratio vs diffusers (same weights, %s, %s vs %s): %.2fx %s\n", bench_where(ctx),
               precision, bench_torch_precision(precision), tms / med,
               tms >= med ? "(libdit faster)" : "(diffusers faster)");
        st_file *f = NULL;
        if (st_open(ctx, ref_out, &f) == DIT_OK) {
            float *ref = read_tensor(ctx, f, "out", NULL, NULL, NULL);
            const double limit =
                !strcmp(precision, "fp32") && !strcmp(bench_torch_precision(precision), "fp32")
                    ? 1e-3
                    : 1e-1;
            if (ref && !compare_rel("libdit vs diffusers decode", img, ref, (size_t)3 * side * side,
                                    limit))
                rc = 1;
            free(ref);
            st_close(f);
        }
        g_free(json);
    }
    dit_vae_free(v);
    dit_ctx_free(ctx);

    /* tiled decodes in fresh processes, so each peak RSS is its own */
    const char *sizes = g_getenv("DIT_BENCH_TILED");
    char **list = g_strsplit(sizes ? sizes : "1024,2048", ",", -1);
    for (int i = 0; list[i] && *list[i]; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            execl("/proc/self/exe", argv[0], "--tiled-child", model_dir, list[i], (char *)NULL);
            _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            rc = 1;
    }
    g_strfreev(list);
    free(z), free(img), free(times);
    g_free(ref_out), g_free(io_path), g_free(model_dir);
    tmpdir_remove(dir);
    return rc;
}
