/* Shared by the benchmarks: timing, fixed-seed weights, the sgemm peak
 * measured in the same run, and running a PyTorch reference script. */
#ifndef DIT_BENCH_UTIL_H
#define DIT_BENCH_UTIL_H

#include "dit.h"

#include <stdbool.h>
#include <stddef.h>

double now_ms(void);
int env_int(const char *name, int fallback);
/* n floats, uniform with the given standard deviation, from a fixed seed */
float *random_floats(size_t n, float std);
typedef struct dit_backend dit_backend;
/* best GFLOP/s of a 2048^3 product through be's products (NULL: OpenBLAS) */
double measure_gemm_gflops(const dit_backend *be);
/* Runs `python script args...` (python from $DIT_TORCH_PYTHON, else python3)
 * and returns its stdout (g_free), or NULL after printing why it was skipped. */
char *run_reference(const char *script, const char *const *args);
/* the number after "key": in a JSON line, or -1 */
double json_number(const char *json, const char *key);
/* median of n values (sorts them) */
double median(double *v, int n);
/* peak resident set of this process, MiB */
double peak_rss_mib(void);
/* A context for a benchmark: DIT_THREADS (default: all cores, BLAS too),
 * DIT_BENCH_DEVICE (cpu, the default, or cuda) and DIT_BENCH_PRECISION
 * (fp32, the default, tf32 or bf16: matrix products on the device), the
 * device printed; device and precision come back as the reference scripts'
 * --device and --precision values. NULL, after printing why, when the
 * settings cannot be applied. */
dit_ctx *bench_ctx_new(const char **device, const char **precision);
/* An AutoencoderKL shaped like Stable Diffusion's (block_out 128/256/512/
 * 512, 2 resnets per level, 32 groups, 4 latent channels), fixed-seed
 * weights, written as a diffusers folder into dir */
bool bench_write_sd_vae(dit_ctx *ctx, const char *dir);
/* DiT-XL/2 (width 1152, 16 heads, 1000 classes, learned sigma, latent 32)
 * with `depth` blocks in diffusers naming, fixed-seed weights, as a
 * diffusers model folder (config.json + weights) in dir */
bool bench_write_dit_xl(dit_ctx *ctx, const char *dir, int depth);
/* On the CPU: measures the GEMM peak of the products ctx runs (OpenBLAS,
 * oneDNN fp32 or oneDNN bf16) and OpenBLAS's, on ctx's threads, prints them and
 * returns it; on a device 0 (a CPU peak says nothing about it) */
double bench_peak(dit_ctx *ctx);
/* The precision the PyTorch reference runs in: $DIT_BENCH_TORCH_PRECISION
 * (e.g. libdit's "auto" against PyTorch's autocast "bf16"), else ours */
const char *bench_torch_precision(const char *ours);
/* " = N% of this run's GEMM peak" on stdout when peak > 0 */
void print_share_of_peak(double gflops, double peak);
/* "N threads" on the CPU, else the device's name, for result lines (a
 * static buffer) */
const char *bench_where(const dit_ctx *ctx);

#endif
