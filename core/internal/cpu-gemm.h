/* The CPU's matrix products (core/cpu-gemm.c). Every GEMM of the CPU
 * backend goes through dit_cpu_gemm, which runs it on the library and in
 * the precision the backend table names:
 *   - OpenBLAS cblas_sgemm: the reference, always built;
 *   - oneDNN dnnl_sgemm, fp32 (built with -Donednn): equal to the reference
 *     to fp32 rounding; used where a measurement says it is faster;
 *   - oneDNN's matmul primitive with bf16 inputs and fp32 accumulation
 *     (torch.autocast's numerics) where the context asks for bf16 and the
 *     processor has bf16 dot products (AVX-512 BF16 or AMX).
 * Nothing else in libdit calls a BLAS (the public view of what runs where
 * is dit_cpu_get_caps in dit.h). */
#ifndef DIT_CPU_GEMM_H
#define DIT_CPU_GEMM_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"

/* DIT_GEMM_AUTO: the fp32 library measured on this machine
 * (dit_cpu_gemm_fp32_lib), resolved at the first product */
typedef enum { DIT_GEMM_AUTO = -1, DIT_GEMM_OPENBLAS = 0, DIT_GEMM_ONEDNN = 1 } dit_gemm_lib;

/* Which operand of a product is a weight, whose bf16 copy is made once and
 * kept (keyed by its address) instead of converting it on every call. */
typedef enum { DIT_GEMM_NO_WEIGHT = 0, DIT_GEMM_WEIGHT_A, DIT_GEMM_WEIGHT_B } dit_gemm_weight;

/* C (M, N) = alpha op(A) (M, K) . op(B) (K, N) + beta C, row-major; op(X) is
 * X^T where trans_x. Called from inside an OpenMP region it runs on the
 * calling thread alone; outside, on be->n_threads threads. */
void dit_cpu_gemm(const dit_backend *be, bool trans_a, bool trans_b, int M, int N, int K,
                  float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc, dit_gemm_weight weight);

/* The library fp32 products run on in this process: $DIT_CPU_GEMM
 * ("openblas" or "onednn") when set, else the faster of the two on a
 * DiT-shaped product, timed once (about 20 ms). OpenBLAS without oneDNN. */
dit_gemm_lib dit_cpu_gemm_fp32_lib(void);
const char *dit_cpu_gemm_lib_name(dit_gemm_lib lib);

/* Whether bf16 products can run here; when not, *why says so (no oneDNN in
 * this build, or a processor without bf16 dot products). */
bool dit_cpu_bf16_supported(char *why, size_t why_len);
/* Whether bf16 products are faster than fp32 ones here (timed once, with
 * the fp32 probe); false where they cannot run. */
bool dit_cpu_bf16_faster(void);
/* Drops the bf16 copies of weights inside [p, p + bytes): called when a
 * model's or a VAE's parameters are freed or changed. */
void dit_cpu_gemm_forget(const void *p, size_t bytes);
/* Holds weight X (op(X) rows x cols as the products will read it, stored
 * ld apart) in bf16 only: makes its bf16 copy now and gives the fp32
 * original's whole pages back to the system, inaccessible until
 * dit_cpu_gemm_forget (then zeros). Half the memory for a model that runs
 * at bf16 only. Returns the bytes given back, 0 where nothing was (no bf16
 * products here, or X smaller than a page). */
size_t dit_cpu_gemm_hold_bf16(const float *X, bool trans, int ld, int rows, int cols);
/* Whether X is held in bf16 only (its fp32 original given back) */
bool dit_cpu_gemm_is_held(const float *X);

#endif
