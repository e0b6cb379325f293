/* The CUDA backend: a dit_backend table with a CUDA twin of every op of the
 * CPU table (core/backend-cpu.c, the oracle it must match), the cuBLAS glue
 * for every matmul, and the device memory interface of dit-cuda.h.
 *
 * One backend instance = one blocking CUDA stream + one cuBLAS handle bound
 * to it + the matmul precision. The table handed out is the first member of
 * the instance, so an op finds its stream from the `be` it is called with.
 * Ops are void (the table's contract): a failed launch or cuBLAS call is
 * recorded in the instance (the first one wins) and returned by
 * dit_cuda_sync.
 *
 * Matmul layouts: cuBLAS is column-major, our arrays are row-major. A
 * row-major (R, C) array with row stride ld is, to cuBLAS, a column-major
 * (C, R) matrix with leading dimension ld: its transpose. So row-major
 * Y = A . B is computed as column-major Y^T = B^T . A^T, and every call
 * below carries a comment with the product it computes in row-major terms
 * and the column-major product that is passed. */
#include "dit-cuda.h"
#include "kernels.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(DIT_ACT_NONE == 0 && DIT_ACT_GELU_TANH == 1 && DIT_ACT_SILU == 2 &&
                   DIT_ACT_RELU == 3,
               "dit_act values are shared with kernels/common.cuh");

typedef struct {
    dit_backend ops; /* first: the table callers hold */
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    dit_cuda_precision precision;
    dit_status status; /* first failure since the last dit_cuda_sync */
    char error[256];
    /* the partial results of the two-stage reductions (GroupNorm's slices,
     * sum_squares' parts); NULL: one block per reduction */
    double *reduce;
    size_t reduce_doubles;
} cuda_backend;

static cuda_backend *cb_of(const dit_backend *be) { return (cuda_backend *)(uintptr_t)be; }

static void fail(const dit_backend *be, const char *op, const char *what)
{
    cuda_backend *cb = cb_of(be);
    if (cb->status == DIT_OK) {
        cb->status = DIT_ERR_BACKEND;
        snprintf(cb->error, sizeof cb->error, "cuda %s: %s", op, what);
    }
}

static void check(const dit_backend *be, const char *op, cudaError_t e)
{
    if (e != cudaSuccess)
        fail(be, op, cudaGetErrorString(e));
}

#define CHECK(call) check(be, __func__, (call))

static cudaStream_t stream_of(const dit_backend *be) { return cb_of(be)->stream; }

/* ---- cuBLAS glue -------------------------------------------------------- */

static cublasComputeType_t compute_type(const dit_backend *be)
{
    switch (cb_of(be)->precision) {
    case DIT_CUDA_TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case DIT_CUDA_BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    default: return CUBLAS_COMPUTE_32F;
    }
}

/* Column-major C (m, n) = alpha op(A) op(B) + beta C for `batch` matrices
 * strideA/B/C floats apart (a stride 0 reuses one matrix). fp32 storage;
 * the backend's precision picks the compute type. */
static void gemm(const dit_backend *be, const char *op, bool ta, bool tb, int m, int n, int k,
                 float alpha, const float *A, int lda, long long sA, const float *B, int ldb,
                 long long sB, float beta, float *C, int ldc, long long sC, int batch)
{
    if (m <= 0 || n <= 0 || batch <= 0)
        return;
    cuda_backend *cb = cb_of(be);
    const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t s;
    if (batch == 1)
        s = cublasGemmEx(cb->blas, opa, opb, m, n, k, &alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F,
                         ldb, &beta, C, CUDA_R_32F, ldc, compute_type(be), CUBLAS_GEMM_DEFAULT);
    else
        s = cublasGemmStridedBatchedEx(cb->blas, opa, opb, m, n, k, &alpha, A, CUDA_R_32F, lda, sA,
                                       B, CUDA_R_32F, ldb, sB, &beta, C, CUDA_R_32F, ldc, sC, batch,
                                       compute_type(be), CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        fail(be, op, cublasGetStatusString(s));
}

/* ---- DiT ops -------------------------------------------------------------- */

static void cuda_linear(const dit_backend *be, float *out, const float *in, const float *w,
                        const float *bias, int M, int K, int N, dit_act act)
{
    // out (M, N) = in (M, K) . w (N, K)^T  ->  col-major out^T (N, M) = op(w) (N, K) . in^T
    gemm(be, __func__, true, false, N, M, K, 1.0f, w, K, 0, in, K, 0, 0.0f, out, N, 0, 1);
    CHECK(dit_cu_bias_act(stream_of(be), out, bias, (size_t)(M > 0 ? M : 0), N, (int)act));
}

/* Heads per cuBLAS attention batch: (T, T) score blocks of that many heads
 * fit in ATT_SCRATCH_FLOATS (at least one head). */
#define ATT_SCRATCH_FLOATS ((size_t)16 << 20)

static int attention_chunk(int T, int H)
{
    const size_t tt = (size_t)T * T;
    size_t c = tt ? ATT_SCRATCH_FLOATS / tt : (size_t)H;
    c = c < 1 ? 1 : c;
    return c > (size_t)H ? H : (int)c;
}

/* The flash kernel computes in scalar fp32: it serves fp32 products; with
 * tf32 or bf16 asked for, attention's two products go to cuBLAS, which
 * runs them on the tensor cores. */
static bool attention_is_flash(const dit_backend *be, int B, int H, int hd)
{
    return cb_of(be)->precision == DIT_CUDA_FP32 && hd <= DIT_CU_FLASH_MAX_HD &&
           (long long)B * H <= 65535;
}

static size_t cuda_attention_scratch(const dit_backend *be, int B, int T, int H)
{
    (void)be;
    (void)B;
    return (size_t)attention_chunk(T, H) * T * T;
}

/* out (B, T, D) = softmax(Q K^T / sqrt(hd)) V through cuBLAS. The (T, T)
 * probabilities of head h of sample b go to probs + ((b H + h) T T) when
 * keep, else to scratch in chunks of attention_chunk heads. Q, K, V are
 * strided views into qkv (B, T, 3, H, hd): row stride 3D, head stride hd. */
static void attention_gemm(const dit_backend *be, const char *op, float *out, const float *qkv,
                           int B, int T, int H, int hd, float *probs, bool keep)
{
    const int D = H * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const int hc = keep ? H : attention_chunk(T, H);
    const long long TT = (long long)T * T;
    for (int b = 0; b < B; b++) {
        for (int h0 = 0; h0 < H; h0 += hc) {
            const int nh = H - h0 < hc ? H - h0 : hc;
            float *P = keep ? probs + ((size_t)b * H + h0) * TT : probs;
            const float *q = qkv + (size_t)b * T * 3 * D + (size_t)h0 * hd;
            const float *k = q + D, *v = q + 2 * D;
            // P (T, T) = scale Q (T, hd) . K^T  ->  P^T = op(K^T) . Q^T
            gemm(be, op, true, false, T, T, hd, scale, k, 3 * D, hd, q, 3 * D, hd, 0.0f, P, T, TT,
                 nh);
            CHECK(dit_cu_softmax_rows(stream_of(be), P, (size_t)nh * T, T));
            // out (T, hd) = P (T, T) . V (T, hd)  ->  out^T = V^T . P^T
            gemm(be, op, false, false, hd, T, T, 1.0f, v, 3 * D, hd, P, T, TT, 0.0f,
                 out + (size_t)b * T * D + (size_t)h0 * hd, D, hd, nh);
        }
    }
}

static void cuda_attention(const dit_backend *be, float *out, const float *qkv, int B, int T, int H,
                           int hd, float *scratch)
{
    if (attention_is_flash(be, B, H, hd))
        CHECK(dit_cu_attention_flash(stream_of(be), out, qkv, B, T, H, hd));
    else
        attention_gemm(be, __func__, out, qkv, B, T, H, hd, scratch, false);
}

static void cuda_attention_bias(const dit_backend *be, float *out, const float *qkv,
                                const float *bias, const int32_t *key_mask, int B, int T, int H,
                                int hd, float scale, float *probs)
{
    const int D = H * hd;
    const long long TT = (long long)T * T;
    for (int b = 0; b < B; b++) {
        float *P = probs + (size_t)b * H * TT;
        const float *q = qkv + (size_t)b * T * 3 * D, *k = q + D, *v = q + 2 * D;
        // P (T, T) = scale Q . K^T per head  ->  P^T = op(K^T) . Q^T
        gemm(be, __func__, true, false, T, T, hd, scale, k, 3 * D, hd, q, 3 * D, hd, 0.0f, P, T, TT,
             H);
        CHECK(dit_cu_masked_softmax_rows(
            stream_of(be), P, bias, key_mask ? key_mask + (size_t)b * T : NULL, (size_t)H * T, T));
        // out (T, hd) = P . V per head  ->  out^T = V^T . P^T
        gemm(be, __func__, false, false, hd, T, T, 1.0f, v, 3 * D, hd, P, T, TT, 0.0f,
             out + (size_t)b * T * D, D, hd, H);
    }
}

static void cuda_mul(const dit_backend *be, float *out, const float *a, const float *b, size_t n)
{
    CHECK(dit_cu_mul(stream_of(be), out, a, b, n));
}

static void cuda_layernorm_modulate(const dit_backend *be, float *out, const float *x,
                                    const float *shift, const float *scale, int stride, int B,
                                    int T, int D, float eps)
{
    CHECK(dit_cu_layernorm_modulate(stream_of(be), out, x, shift, scale, stride, B, T, D, eps, NULL,
                                    NULL));
}

static void cuda_rms_norm(const dit_backend *be, float *out, const float *x, const float *weight,
                          int R, int D, float eps)
{
    CHECK(dit_cu_rms_norm(stream_of(be), out, x, weight, R, D, eps));
}

static void cuda_gelu_tanh(const dit_backend *be, float *out, const float *x, size_t n)
{
    CHECK(dit_cu_act(stream_of(be), out, x, n, DIT_ACT_GELU_TANH));
}

static void cuda_silu(const dit_backend *be, float *out, const float *x, size_t n)
{
    CHECK(dit_cu_act(stream_of(be), out, x, n, DIT_ACT_SILU));
}

static void cuda_patchify(const dit_backend *be, float *out, const float *x, int B, int C, int H,
                          int W, int p)
{
    CHECK(dit_cu_patchify(stream_of(be), out, x, B, C, H, W, p));
}

static void cuda_unpatchify(const dit_backend *be, float *out, const float *tokens, int B, int C,
                            int H, int W, int p)
{
    CHECK(dit_cu_unpatchify(stream_of(be), out, tokens, B, C, H, W, p));
}

static void cuda_gated_add(const dit_backend *be, float *x, const float *y, const float *gate,
                           int stride, int B, int T, int D)
{
    CHECK(dit_cu_gated_add(stream_of(be), x, y, gate, stride, B, T, D));
}

static void cuda_add_rows(const dit_backend *be, float *x, const float *pos, int B, int T, int D)
{
    CHECK(dit_cu_add_rows(stream_of(be), x, pos, B, T, D));
}

static void cuda_add_embedding(const dit_backend *be, float *out, const float *a,
                               const float *table, const int32_t *label, int B, int D)
{
    CHECK(dit_cu_add_embedding(stream_of(be), out, a, table, label, B, D));
}

static void cuda_copy_tokens(const dit_backend *be, float *out, int out_T, int out_at,
                             const float *in, int in_T, int in_at, int n, int B, int D)
{
    CHECK(dit_cu_copy_tokens(stream_of(be), out, out_T, out_at, in, in_T, in_at, n, B, D));
}

static void cuda_cross_attention(const dit_backend *be, float *out, const float *q, const float *kv,
                                 const int32_t *key_mask, int B, int Tq, int Tk, int H, int hd,
                                 float *probs)
{
    CHECK(dit_cu_cross_attention(stream_of(be), out, q, kv, key_mask, B, Tq, Tk, H, hd, probs));
}

static void cuda_timestep_embedding(const dit_backend *be, float *out, const float *t, int B, int F,
                                    int shift)
{
    CHECK(dit_cu_timestep_embedding(stream_of(be), out, t, B, F, shift));
}

static void cuda_pos_embed_2d(const dit_backend *be, float *out, int gh, int gw, int D,
                              float base_h, float base_w, float interp)
{
    CHECK(dit_cu_pos_embed_2d(stream_of(be), out, gh, gw, D, base_h, base_w, interp));
}

/* ---- image ops ------------------------------------------------------------ */

static size_t cuda_conv2d_scratch(const dit_backend *be, const dit_conv_desc *d)
{
    (void)be;
    return dit_conv_scratch_floats(d);
}

static void cuda_conv2d(const dit_backend *be, float *out, const float *in, const float *w,
                        const float *bias, const dit_conv_desc *d, dit_act act, float *scratch)
{
    // out (B, Cout, Ho, Wo) = act(w (Cout, K) . im2col(in) (K, Ho*Wo) + bias), K = Cin k k
    const int K = d->Cin * d->k * d->k, HWo = d->Ho * d->Wo;
    if (dit_conv_is_pointwise(d)) {
        // out_b (Cout, HW) = w (Cout, Cin) . in_b (Cin, HW)  ->  out_b^T = in_b^T . w^T, all b
        gemm(be, __func__, false, false, HWo, d->Cout, K, 1.0f, in, HWo, (long long)d->Cin * HWo, w,
             K, 0, 0.0f, out, HWo, (long long)d->Cout * HWo, d->B);
    } else {
        const int band = dit_conv_band_rows(d);
        for (int b = 0; b < d->B; b++) {
            const float *src = in + (size_t)b * d->Cin * d->H * d->W;
            float *dst = out + (size_t)b * d->Cout * HWo;
            for (int oy = 0; oy < d->Ho; oy += band) {
                const int rows = oy + band <= d->Ho ? band : d->Ho - oy;
                const int np = rows * d->Wo;
                CHECK(dit_cu_im2col(stream_of(be), scratch, src, d->Cin, d->H, d->W, d->k,
                                    d->stride, d->pad_top, d->pad_left, d->Wo, d->up2 ? 1 : 0, oy,
                                    rows));
                // dst[:, oy*Wo:] (Cout, np) = w (Cout, K) . col (K, np)  ->  ^T = col^T . w^T
                gemm(be, __func__, false, false, np, d->Cout, K, 1.0f, scratch, np, 0, w, K, 0,
                     0.0f, dst + (size_t)oy * d->Wo, HWo, 0, 1);
            }
        }
    }
    CHECK(dit_cu_bias_act_channels(stream_of(be), out, bias, d->B, d->Cout, (size_t)HWo, (int)act));
}

static void cuda_group_norm(const dit_backend *be, float *out, const float *in, const float *gamma,
                            const float *beta, int B, int C, int HW, int groups, float eps,
                            dit_act act)
{
    const cuda_backend *cb = cb_of(be);
    CHECK(dit_cu_group_norm(stream_of(be), out, in, gamma, beta, B, C, HW, groups, eps, (int)act,
                            cb->reduce, cb->reduce_doubles));
}

/* Query rows per chunk so that the (rows, N) score block stays near 16M
 * floats (the CPU's chunking). */
static size_t cuda_spatial_attention_scratch(const dit_backend *be, int N)
{
    (void)be;
    return (size_t)dit_spatial_chunk_rows(N) * N;
}

static void cuda_spatial_attention(const dit_backend *be, float *out, const float *q,
                                   const float *k, const float *v, int B, int C, int N,
                                   float *scratch)
{
    // q, k, v, out (B, C, N): one head over the N positions, channel-first
    const float scale = 1.0f / sqrtf((float)C);
    const int chunk = dit_spatial_chunk_rows(N);
    for (int b = 0; b < B; b++) {
        const size_t off = (size_t)b * C * N;
        for (int r0 = 0; r0 < N; r0 += chunk) {
            const int rows = r0 + chunk <= N ? chunk : N - r0;
            // S (rows, N) = scale Q[:, r0:]^T (rows, C) . K (C, N)  ->  S^T = K^T . op(Q[:, r0:])
            gemm(be, __func__, false, true, N, rows, C, scale, k + off, N, 0, q + off + r0, N, 0,
                 0.0f, scratch, N, 0, 1);
            CHECK(dit_cu_softmax_rows(stream_of(be), scratch, (size_t)rows, N));
            // out[:, r0:] (C, rows) = V (C, N) . S^T  ->  ^T = op(S^T) (rows, N) . V^T
            gemm(be, __func__, true, false, rows, C, N, 1.0f, scratch, N, 0, v + off, N, 0, 0.0f,
                 out + off + r0, N, 0, 1);
        }
    }
}

static void cuda_add_act(const dit_backend *be, float *x, const float *y, size_t n, dit_act act)
{
    CHECK(dit_cu_add_act(stream_of(be), x, y, n, (int)act));
}

static void cuda_affine(const dit_backend *be, float *out, const float *in, size_t n, float a,
                        float b)
{
    CHECK(dit_cu_affine(stream_of(be), out, in, n, a, b));
}

static void cuda_tanh_clamp(const dit_backend *be, float *out, const float *in, size_t n, float m)
{
    CHECK(dit_cu_tanh_clamp(stream_of(be), out, in, n, m));
}

/* ---- training ops ----------------------------------------------------------- */

static void cuda_attention_train(const dit_backend *be, float *out, const float *qkv, int B, int T,
                                 int H, int hd, float *probs)
{
    attention_gemm(be, __func__, out, qkv, B, T, H, hd, probs, true);
}

static void cuda_attention_backward(const dit_backend *be, float *dqkv, const float *dout,
                                    const float *qkv, const float *probs, int B, int T, int H,
                                    int hd, float *scratch)
{
    // dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dP * P)) * scale, dQ = dS K, dK = dS^T Q;
    // dS for a chunk of heads in scratch; per-head strides hd (views) and T*T (P, dS)
    const int D = H * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const int hc = attention_chunk(T, H);
    const long long TT = (long long)T * T;
    for (int b = 0; b < B; b++) {
        for (int h0 = 0; h0 < H; h0 += hc) {
            const int nh = H - h0 < hc ? H - h0 : hc;
            const float *P = probs + ((size_t)b * H + h0) * TT;
            const float *q = qkv + (size_t)b * T * 3 * D + (size_t)h0 * hd;
            const float *k = q + D, *v = q + 2 * D;
            const float *dO = dout + (size_t)b * T * D + (size_t)h0 * hd;
            float *dq = dqkv + (size_t)b * T * 3 * D + (size_t)h0 * hd;
            float *dk = dq + D, *dv = dq + 2 * D;
            // dV (T, hd) = P^T . dO  ->  dV^T = dO^T . op(P^T)
            gemm(be, __func__, false, true, hd, T, T, 1.0f, dO, D, hd, P, T, TT, 0.0f, dv, 3 * D,
                 hd, nh);
            // dP (T, T) = dO . V^T  ->  dP^T = op(V^T) . dO^T
            gemm(be, __func__, true, false, T, T, hd, 1.0f, v, 3 * D, hd, dO, D, hd, 0.0f, scratch,
                 T, TT, nh);
            CHECK(dit_cu_softmax_backward(stream_of(be), scratch, P, (size_t)nh * T, T, scale));
            // dQ (T, hd) = dS . K  ->  dQ^T = K^T . dS^T
            gemm(be, __func__, false, false, hd, T, T, 1.0f, k, 3 * D, hd, scratch, T, TT, 0.0f, dq,
                 3 * D, hd, nh);
            // dK (T, hd) = dS^T . Q  ->  dK^T = Q^T . op(dS^T)
            gemm(be, __func__, false, true, hd, T, T, 1.0f, q, 3 * D, hd, scratch, T, TT, 0.0f, dk,
                 3 * D, hd, nh);
        }
    }
}

static void cuda_layernorm_modulate_train(const dit_backend *be, float *out, const float *x,
                                          const float *shift, const float *scale, int stride, int B,
                                          int T, int D, float eps, float *mean, float *rstd)
{
    CHECK(dit_cu_layernorm_modulate(stream_of(be), out, x, shift, scale, stride, B, T, D, eps, mean,
                                    rstd));
}

static void cuda_layernorm_modulate_backward(const dit_backend *be, float *dx, float *dshift,
                                             float *dscale, const float *dout, const float *x,
                                             const float *mean, const float *rstd,
                                             const float *scale, int stride, int B, int T, int D)
{
    CHECK(dit_cu_layernorm_modulate_backward(stream_of(be), dx, dshift, dscale, dout, x, mean, rstd,
                                             scale, stride, B, T, D));
}

static void cuda_linear_backward(const dit_backend *be, float *dx, float *dw, float *db,
                                 const float *dy, const float *x, const float *w, int M, int K,
                                 int N, const float *pre, dit_act act)
{
    if (dx) { // dx (M, K) = dy (M, N) . w (N, K)  ->  dx^T = w^T . dy^T
        gemm(be, __func__, false, false, K, M, N, 1.0f, w, K, 0, dy, N, 0, 0.0f, dx, K, 0, 1);
        if (pre) // then through x = act(pre)
            CHECK(dit_cu_act_backward(stream_of(be), dx, pre, dx, (size_t)M * K, (int)act));
    }
    if (dw) // dw (N, K) += dy^T (N, M) . x (M, K)  ->  dw^T += x^T . op(dy^T)
        gemm(be, __func__, false, true, K, N, M, 1.0f, x, K, 0, dy, N, 0, 1.0f, dw, K, 0, 1);
    if (db)
        CHECK(dit_cu_col_sum_add(stream_of(be), db, dy, M, N, cb_of(be)->reduce,
                                 cb_of(be)->reduce_doubles));
}

static void cuda_act_backward(const dit_backend *be, float *dx, const float *pre, const float *dy,
                              size_t n, dit_act act)
{
    CHECK(dit_cu_act_backward(stream_of(be), dx, pre, dy, n, (int)act));
}

static void cuda_gated_add_backward(const dit_backend *be, float *dy, float *dgate, const float *dx,
                                    const float *y, const float *gate, int stride, int B, int T,
                                    int D)
{
    CHECK(dit_cu_gated_add_backward(stream_of(be), dy, dgate, dx, y, gate, stride, B, T, D));
}

static void cuda_unpatchify_backward(const dit_backend *be, float *dtokens, const float *dout,
                                     int B, int C, int H, int W, int p)
{
    CHECK(dit_cu_unpatchify_backward(stream_of(be), dtokens, dout, B, C, H, W, p));
}

static void cuda_cross_attention_backward(const dit_backend *be, float *dq, float *dkv,
                                          const float *dout, const float *q, const float *kv,
                                          const float *probs, int B, int Tq, int Tk, int H, int hd)
{
    CHECK(dit_cu_cross_attention_backward(stream_of(be), dq, dkv, dout, q, kv, probs, B, Tq, Tk, H,
                                          hd));
}

static void cuda_add_embedding_backward(const dit_backend *be, float *dtable, const float *dc,
                                        const int32_t *label, int B, int D)
{
    CHECK(dit_cu_add_embedding_backward(stream_of(be), dtable, dc, label, B, D));
}

static void cuda_adamw(const dit_backend *be, float *p, const float *g, float *m, float *v,
                       size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                       int64_t step)
{
    /* the bias corrections as the CPU computes them (float powf) */
    const float c1 = 1.0f - powf(beta1, (float)step), c2 = 1.0f - powf(beta2, (float)step);
    CHECK(dit_cu_adamw(stream_of(be), p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, c1, c2));
}

static void cuda_ema_update(const dit_backend *be, float *ema, const float *p, size_t n,
                            float decay)
{
    CHECK(dit_cu_ema_update(stream_of(be), ema, p, n, decay));
}

static void cuda_sum_squares(const dit_backend *be, float *out, const float *x, size_t n)
{
    const cuda_backend *cb = cb_of(be);
    CHECK(dit_cu_sum_squares(stream_of(be), out, x, n, cb->reduce, cb->reduce_doubles));
}

static const dit_backend cuda_ops = {
    .name = "cuda",
    .n_threads = 1,
    .linear = cuda_linear,
    .attention = cuda_attention,
    .attention_scratch = cuda_attention_scratch,
    .layernorm_modulate = cuda_layernorm_modulate,
    .gelu_tanh = cuda_gelu_tanh,
    .silu = cuda_silu,
    .patchify = cuda_patchify,
    .unpatchify = cuda_unpatchify,
    .gated_add = cuda_gated_add,
    .add_rows = cuda_add_rows,
    .add_embedding = cuda_add_embedding,
    .copy_tokens = cuda_copy_tokens,
    .cross_attention = cuda_cross_attention,
    .timestep_embedding = cuda_timestep_embedding,
    .pos_embed_2d = cuda_pos_embed_2d,
    .conv2d = cuda_conv2d,
    .conv2d_scratch = cuda_conv2d_scratch,
    .group_norm = cuda_group_norm,
    .spatial_attention = cuda_spatial_attention,
    .spatial_attention_scratch = cuda_spatial_attention_scratch,
    .add_act = cuda_add_act,
    .affine = cuda_affine,
    .tanh_clamp = cuda_tanh_clamp,
    .rms_norm = cuda_rms_norm,
    .attention_bias = cuda_attention_bias,
    .mul = cuda_mul,
    .attention_train = cuda_attention_train,
    .attention_backward = cuda_attention_backward,
    .layernorm_modulate_train = cuda_layernorm_modulate_train,
    .layernorm_modulate_backward = cuda_layernorm_modulate_backward,
    .linear_backward = cuda_linear_backward,
    .act_backward = cuda_act_backward,
    .gated_add_backward = cuda_gated_add_backward,
    .unpatchify_backward = cuda_unpatchify_backward,
    .cross_attention_backward = cuda_cross_attention_backward,
    .add_embedding_backward = cuda_add_embedding_backward,
    .adamw = cuda_adamw,
    .ema_update = cuda_ema_update,
    .sum_squares = cuda_sum_squares,
};

const dit_backend *dit_cuda_op_table(void) { return &cuda_ops; }

/* ---- instances ------------------------------------------------------------ */

/* why[len] = prefix + msg (why may be NULL) */
/* the oldest compute capability kernels/meson.build builds for, x10 */
#define DIT_CUDA_MIN_CC 75

static void set_why(char *why, size_t len, const char *prefix, const char *msg)
{
    if (why && len)
        snprintf(why, len, "%s%s", prefix, msg);
}

bool dit_cuda_available(char *why, size_t len)
{
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        /* no driver, a driver too old, no GPU: all mean "no device" */
        set_why(why, len, "no CUDA device: ", cudaGetErrorString(e));
        (void)cudaGetLastError();
        return false;
    }
    if (n <= 0) {
        set_why(why, len, "no CUDA device: ", "none found");
        return false;
    }
    /* device 0, the one dit_cuda_backend_new takes */
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        set_why(why, len, "no CUDA device: ", cudaGetErrorString(cudaGetLastError()));
        return false;
    }
    char gpu[320];
    snprintf(gpu, sizeof gpu, "the GPU '%s' (compute capability %d.%d)", prop.name, prop.major,
             prop.minor);
    if (prop.major * 10 + prop.minor < DIT_CUDA_MIN_CC) {
        set_why(why, len, gpu, ": too old, gimp-dit's kernels need 7.5 (Turing) or newer");
        return false;
    }
    const cudaError_t img =
        cudaSetDevice(0) == cudaSuccess ? dit_cu_check_image() : cudaGetLastError();
    if (img != cudaSuccess) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 " cannot run this build's kernels (machine code for sm_75 to sm_90, PTX for "
                 "newer): %s",
                 cudaGetErrorString(img));
        set_why(why, len, gpu, msg);
        (void)cudaGetLastError();
        return false;
    }
    set_why(why, len, "", "");
    return true;
}

dit_backend *dit_cuda_backend_new(int device)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || device < 0 || device >= n) {
        (void)cudaGetLastError();
        return NULL;
    }
    if (cudaSetDevice(device) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    cuda_backend *cb = calloc(1, sizeof *cb);
    if (!cb)
        return NULL;
    cb->ops = cuda_ops;
    cb->device = device;
    cb->precision = DIT_CUDA_FP32;
    cb->status = DIT_OK;
    if (cudaStreamCreate(&cb->stream) != cudaSuccess) {
        (void)cudaGetLastError();
        free(cb);
        return NULL;
    }
    if (cublasCreate(&cb->blas) != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(cb->stream);
        free(cb);
        return NULL;
    }
    if (cublasSetStream(cb->blas, cb->stream) != CUBLAS_STATUS_SUCCESS) {
        cublasDestroy(cb->blas);
        cudaStreamDestroy(cb->stream);
        free(cb);
        return NULL;
    }
    /* 8 MiB: 64 slices of every group of a batch of 64 at 32 groups */
    const size_t reduce_doubles = (size_t)1 << 20;
    if (cudaMalloc((void **)&cb->reduce, reduce_doubles * sizeof(double)) == cudaSuccess)
        cb->reduce_doubles = reduce_doubles;
    else
        (void)cudaGetLastError(), cb->reduce = NULL;
    return &cb->ops;
}

void dit_cuda_backend_free(dit_backend *be)
{
    if (!be)
        return;
    cuda_backend *cb = cb_of(be);
    cudaStreamSynchronize(cb->stream);
    cudaFree(cb->reduce);
    cublasDestroy(cb->blas);
    cudaStreamDestroy(cb->stream);
    free(cb);
}

void dit_cuda_set_precision(dit_backend *be, dit_cuda_precision p)
{
    if (be && (p == DIT_CUDA_FP32 || p == DIT_CUDA_TF32 || p == DIT_CUDA_BF16))
        cb_of(be)->precision = p;
}

dit_status dit_cuda_sync(const dit_backend *be, char *why, size_t len)
{
    const cudaError_t e = be ? cudaStreamSynchronize(cb_of(be)->stream) : cudaDeviceSynchronize();
    if (!be) {
        set_why(why, len, "", e == cudaSuccess ? "" : cudaGetErrorString(e));
        return e == cudaSuccess ? DIT_OK : DIT_ERR_BACKEND;
    }
    check(be, "sync", e);
    /* this stream's error is e (launch errors were taken at each launch);
     * the thread's last-error copy is cleared, not read: it may be another
     * context's */
    if (e != cudaSuccess)
        (void)cudaGetLastError();
    cuda_backend *cb = cb_of(be);
    const dit_status s = cb->status;
    set_why(why, len, "", s == DIT_OK ? "" : cb->error);
    cb->status = DIT_OK;
    cb->error[0] = '\0';
    return s;
}

/* ---- memory --------------------------------------------------------------- */

void *dit_cuda_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0 || cudaMalloc(&p, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

void dit_cuda_free(void *dev)
{
    if (dev)
        cudaFree(dev);
}

static dit_status copy_status(cudaError_t e)
{
    if (e == cudaSuccess)
        return DIT_OK;
    (void)cudaGetLastError();
    return DIT_ERR_BACKEND;
}

dit_status dit_cuda_upload(void *dst_dev, const void *src_host, size_t bytes)
{
    if (bytes == 0)
        return DIT_OK;
    return copy_status(cudaMemcpy(dst_dev, src_host, bytes, cudaMemcpyHostToDevice));
}

dit_status dit_cuda_download(void *dst_host, const void *src_dev, size_t bytes)
{
    if (bytes == 0)
        return DIT_OK;
    return copy_status(cudaMemcpy(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost));
}

dit_status dit_cuda_memset0(void *dst_dev, size_t bytes)
{
    if (bytes == 0)
        return DIT_OK;
    return copy_status(cudaMemset(dst_dev, 0, bytes));
}
