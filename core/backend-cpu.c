/* CPU backend: the readable reference every other backend must match.
 * Matmuls go to dit_cpu_gemm (OpenBLAS, or oneDNN where it is faster or
 * the context asks for bf16: cpu-gemm.c); everything else is a plain loop with an
 * OpenMP pragma. No intrinsics here: speed belongs in other files (the
 * Winograd 3x3 convolutions cpu_conv2d hands off to: conv-winograd.c).
 * Reductions (LayerNorm statistics) accumulate in double so the reference
 * does not drift from PyTorch's float64 goldens on wide rows.
 * The element-wise kernels use dit_expf (plain C the compiler vectorises) and
 * are compiled for AVX-512, AVX2 and baseline x86-64 with the best picked at
 * load time (target_clones), so one binary runs on every x86-64. */
#include "internal/impl.h"
#include "internal/conv-winograd.h"
#include "internal/cpu-gemm.h"
#include "internal/fastmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* no-thread-jumps: jump threading splits dit_expf's clamps into separate
 * paths, which the vectoriser then turns into three masked divisions per
 * vector instead of one (GELU forward 35% slower). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define VECTOR_CLONES                                                                              \
    __attribute__((target_clones("avx512f", "avx2", "default"), optimize("no-thread-jumps")))
#else
#define VECTOR_CLONES
#endif

/* This thread's share [lo, hi) of n items inside a parallel region. */
static void thread_range(size_t n, size_t *lo, size_t *hi)
{
#ifdef _OPENMP
    size_t nt = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
#else
    size_t nt = 1, id = 0;
#endif
    size_t chunk = (n + nt - 1) / nt;
    *lo = id * chunk < n ? id * chunk : n;
    *hi = *lo + chunk < n ? *lo + chunk : n;
}

/* x (n) = act(x + add) in place, add a scalar; the shared epilogue */
VECTOR_CLONES static void add_scalar_act(float *x, size_t n, float add, dit_act act)
{
    switch (act) {
    case DIT_ACT_NONE:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            x[i] += add;
        break;
    case DIT_ACT_GELU_TANH:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            x[i] = gelu_tanh_1(x[i] + add);
        break;
    case DIT_ACT_SILU:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            x[i] = silu_1(x[i] + add);
        break;
    case DIT_ACT_RELU:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            x[i] = relu_1(x[i] + add);
        break;
    }
}

/* rows (M, N; `stride` apart) += bias (N), then act, in place; bias may be
 * NULL */
VECTOR_CLONES static void bias_act_rows(float *rows, const float *bias, size_t M, int N, int stride,
                                        dit_act act)
{
    for (size_t m = 0; m < M; m++) {
        float *r = rows + m * (size_t)stride;
        if (bias) {
#pragma omp simd
            for (int n = 0; n < N; n++)
                r[n] += bias[n];
        }
        if (act != DIT_ACT_NONE)
            add_scalar_act(r, (size_t)N, 0.0f, act);
    }
}

/* out (M, N) = in (M, K) . w[n0:n1] (N, K)^T for a few rows M: each
 * weight row is read once and dotted with every input row. */
VECTOR_CLONES static void few_rows_matmul(float *out, const float *in, const float *w, int M, int K,
                                          int N, int n0, int n1)
{
    for (int n = n0; n < n1; n++) {
        const float *wr = w + (size_t)n * K;
        for (int m = 0; m < M; m++) {
            const float *x = in + (size_t)m * K;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int k = 0; k < K; k++)
                acc += x[k] * wr[k];
            out[(size_t)m * N + n] = acc;
        }
    }
}

/* d/dv of v/2 (1 + tanh(u)), u = k (v + c v^3): with s = sigmoid(2u) (so
 * (1 + tanh u)/2 = s and (1 - tanh^2 u)/2 = 2 s (1 - s)) it is
 * s + 2 s (1 - s) v k (1 + 3 c v^2), one exp like the forward */
VECTOR_CLONES static void act_backward_span(float *dx, const float *pre, const float *dy, size_t n,
                                            dit_act act)
{
    const float k = 0.7978845608028654f, c = 0.044715f;
    switch (act) {
    case DIT_ACT_GELU_TANH: /* written out here so the loop vectorises */
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float v = pre[i];
            const float s = 1.0f / (1.0f + dit_expf(-2.0f * k * (v + c * v * v * v)));
            dx[i] = dy[i] * (s + 2.0f * s * (1.0f - s) * v * k * (1.0f + 3.0f * c * v * v));
        }
        break;
    case DIT_ACT_SILU:
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float s = 1.0f / (1.0f + dit_expf(-pre[i]));
            dx[i] = dy[i] * s * (1.0f + pre[i] * (1.0f - s));
        }
        break;
    case DIT_ACT_RELU:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            dx[i] = pre[i] > 0 ? dy[i] : 0.0f;
        break;
    default:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i];
    }
}

/* What follows a product on each row of C, while the row is in cache */
typedef struct {
    const float *bias; /* C += bias (N), then C = act(C) */
    dit_act act;
    const float *pre; /* instead C *= pre_act'(pre), pre laid out as C: the
                          backward through the activation that made the input */
    dit_act pre_act;
} epilogue;

static void epilogue_rows(const epilogue *ep, float *C, size_t rows, int N, int ldc, size_t r0)
{
    if (ep->pre) {
        for (size_t r = 0; r < rows; r++) {
            float *c = C + r * (size_t)ldc;
            act_backward_span(c, ep->pre + (r0 + r) * (size_t)ldc, c, (size_t)N, ep->pre_act);
        }
    } else if (ep->bias || ep->act != DIT_ACT_NONE) {
        bias_act_rows(C, ep->bias, rows, N, ldc, ep->act);
    }
}

/* C (M, N) = op(A) (M, K) . op(B) (K, N) + beta C, row-major, then the
 * epilogue (may be NULL) on every row. A tall, thin product (the
 * training shapes: M = B*T rows, N and K a few hundred, or the weight
 * gradient's long reduction) is split into bands of C's rows, one
 * single-threaded sgemm per band on the OpenMP threads, the epilogue right
 * after while the band is in L2: 20-25% faster than OpenBLAS's own
 * threading there. Wide products (DiT-XL's weights) go to OpenBLAS whole,
 * which packs B once. */
static void sgemm_rows(const dit_backend *be, bool trans_a, bool trans_b, int M, int N, int K,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc, const epilogue *ep, dit_gemm_weight weight)
{
    enum { BAND_ROWS = 512 };
    const bool ta = trans_a, tb = trans_b;
    /* tall: the dimension the bands split (or, for op(A) = A^T, the long
     * reduction) much longer than the other two */
    const int longest = trans_a ? K : M, second = trans_a ? M : K;
    const int other = N > second ? N : second;
    if (be->n_threads < 2 || longest < 4 * other) {
        dit_cpu_gemm(be, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, weight);
        if (ep) {
#pragma omp parallel num_threads(be->n_threads)
            {
                size_t lo, hi;
                thread_range((size_t)M, &lo, &hi);
                epilogue_rows(ep, C + lo * (size_t)ldc, hi - lo, N, ldc, lo);
            }
        }
        return;
    }
    int band = (M + be->n_threads - 1) / be->n_threads;
    band = band < BAND_ROWS ? (band + 15) & ~15 : BAND_ROWS;
    const int n_bands = (M + band - 1) / band;
    /* inside a parallel region OpenBLAS runs on the calling thread alone */
#pragma omp parallel for num_threads(be->n_threads) schedule(static)
    for (int i = 0; i < n_bands; i++) {
        const int r0 = i * band, rows = r0 + band < M ? band : M - r0;
        const float *a = trans_a ? A + r0 : A + (size_t)r0 * lda;
        float *c = C + (size_t)r0 * ldc;
        dit_cpu_gemm(be, ta, tb, rows, N, K, 1.0f, a, lda, B, ldb, beta, c, ldc, weight);
        if (ep)
            epilogue_rows(ep, c, (size_t)rows, N, ldc, (size_t)r0);
    }
}

/* Below this many rows a linear is a matrix-vector product bound by reading
 * the weights once (adaLN and the t-MLP at small batch); sgemm would also
 * pack the whole weight matrix first. Not with bf16 products: their weight
 * copies are already packed, half the bytes to read, and may be the only
 * copy (dit_cpu_gemm_hold_bf16). */
#define FEW_ROWS 4

static void cpu_linear(const dit_backend *be, float *out, const float *in, const float *w,
                       const float *bias, int M, int K, int N, dit_act act)
{
    // out (M, N) = act(in (M, K) . w (N, K)^T + bias (N))
    if (M <= FEW_ROWS && !be->gemm_bf16) {
#pragma omp parallel num_threads(be->n_threads)
        {
            size_t lo, hi;
            thread_range((size_t)N, &lo, &hi);
            few_rows_matmul(out, in, w, M, K, N, (int)lo, (int)hi);
        }
        if (bias || act != DIT_ACT_NONE)
            bias_act_rows(out, bias, (size_t)M, N, N, act);
        return;
    }
    const epilogue ep = {.bias = bias, .act = act};
    sgemm_rows(be, false, true, M, N, K, in, K, w, K, 0.0f, out, N,
               bias || act != DIT_ACT_NONE ? &ep : NULL, DIT_GEMM_WEIGHT_B);
}

static size_t cpu_attention_scratch(const dit_backend *be, int B, int T, int H)
{
    (void)B;
    (void)H;
    return (size_t)be->n_threads * (size_t)T * (size_t)T;
}

VECTOR_CLONES static void softmax_rows(float *s, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        float *row = s + (size_t)r * cols;
        float mx = row[0];
#pragma omp simd reduction(max : mx)
        for (int j = 1; j < cols; j++)
            mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f; /* at most cols terms in (0, 1]: float is enough */
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < cols; j++) {
            row[j] = dit_expf(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < cols; j++)
            row[j] *= inv;
    }
}

static void cpu_attention(const dit_backend *be, float *out, const float *qkv, int B, int T, int H,
                          int hd, float *scratch)
{
    // qkv (B, T, 3, H, hd) -> out (B, T, H, hd); one (b, h) pair per thread,
    // scores (T, T) in that thread's slice of scratch. Q, K, V are strided
    // views into qkv, so no copies: leading dimension 3*H*hd.
    const int D = H * hd;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for num_threads(be->n_threads) schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
#ifdef _OPENMP
        float *scores = scratch + (size_t)omp_get_thread_num() * T * T;
#else
        float *scores = scratch;
#endif
        const float *q = qkv + (size_t)b * T * 3 * D + (size_t)h * hd;
        const float *k = q + D;
        const float *v = q + 2 * D;
        // scores (T, T) = scale * Q (T, hd) . K (T, hd)^T
        dit_cpu_gemm(be, false, true, T, T, hd, scale, q, 3 * D, k, 3 * D, 0.0f, scores, T,
                     DIT_GEMM_NO_WEIGHT);
        softmax_rows(scores, T, T);
        // out (T, hd) = scores (T, T) . V (T, hd)
        dit_cpu_gemm(be, false, false, T, hd, T, 1.0f, scores, T, v, 3 * D, 0.0f,
                     out + (size_t)b * T * D + (size_t)h * hd, D, DIT_GEMM_NO_WEIGHT);
    }
}

/* mean and 1/sqrt(var + eps) of one row, accumulated in double */
VECTOR_CLONES static void layernorm_stats(const float *x, int D, float eps, float *mean,
                                          float *rstd)
{
    double sum = 0.0, var = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < D; i++)
        sum += x[i];
    const double mu = sum / D;
#pragma omp simd reduction(+ : var)
    for (int i = 0; i < D; i++) {
        double d = x[i] - mu;
        var += d * d;
    }
    *mean = (float)mu;
    *rstd = (float)(1.0 / sqrt(var / D + eps));
}

/* o = (x - mean) rstd (1 + scale) + shift, or without the modulation */
VECTOR_CLONES static void layernorm_modulate_row(float *o, const float *x, const float *shift,
                                                 const float *scale, int D, float eps,
                                                 float *mean_out, float *rstd_out)
{
    float m, rstd;
    layernorm_stats(x, D, eps, &m, &rstd);
    if (mean_out)
        *mean_out = m, *rstd_out = rstd;
    if (shift && scale) {
#pragma omp simd
        for (int i = 0; i < D; i++)
            o[i] = (x[i] - m) * rstd * (1.0f + scale[i]) + shift[i];
    } else {
#pragma omp simd
        for (int i = 0; i < D; i++)
            o[i] = (x[i] - m) * rstd;
    }
}

static void cpu_layernorm_modulate(const dit_backend *be, float *out, const float *x,
                                   const float *shift, const float *scale, int stride, int B, int T,
                                   int D, float eps)
{
    // x, out (B, T, D); shift, scale: (B) vectors of D, `stride` apart; both or neither
#pragma omp parallel for num_threads(be->n_threads)
    for (int row = 0; row < B * T; row++) {
        int b = row / T;
        layernorm_modulate_row(out + (size_t)row * D, x + (size_t)row * D,
                               shift ? shift + (size_t)b * stride : NULL,
                               scale ? scale + (size_t)b * stride : NULL, D, eps, NULL, NULL);
    }
}

VECTOR_CLONES static void gelu_tanh_span(float *out, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        out[i] = gelu_tanh_1(x[i]);
}

/* an element-wise span function over the threads, each its own range */
static void parallel_spans(const dit_backend *be, void (*span)(float *, const float *, size_t),
                           float *out, const float *x, size_t n)
{
#pragma omp parallel num_threads(be->n_threads)
    {
        size_t lo, hi;
        thread_range(n, &lo, &hi);
        span(out + lo, x + lo, hi - lo);
    }
}

static void cpu_gelu_tanh(const dit_backend *be, float *out, const float *x, size_t n)
{
    parallel_spans(be, gelu_tanh_span, out, x, n);
}

VECTOR_CLONES static void silu_span(float *out, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        out[i] = silu_1(x[i]);
}

static void cpu_silu(const dit_backend *be, float *out, const float *x, size_t n)
{
    parallel_spans(be, silu_span, out, x, n);
}

static void cpu_patchify(const dit_backend *be, float *out, const float *x, int B, int C, int H,
                         int W, int p)
{
    // x (B, C, H, W) -> out (B, gh*gw, C*p*p), vector order (c, ky, kx)
    const int gh = H / p, gw = W / p, P = C * p * p;
#pragma omp parallel for num_threads(be->n_threads)
    for (int bt = 0; bt < B * gh * gw; bt++) {
        int b = bt / (gh * gw), tok = bt % (gh * gw);
        int gy = tok / gw, gx = tok % gw;
        float *o = out + (size_t)bt * P;
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < p; ky++)
                for (int kx = 0; kx < p; kx++)
                    *o++ = x[(((size_t)b * C + c) * H + gy * p + ky) * W + gx * p + kx];
    }
}

static void cpu_unpatchify(const dit_backend *be, float *out, const float *tokens, int B, int C,
                           int H, int W, int p)
{
    // tokens (B, gh*gw, p*p*C), vector order (ky, kx, c) -> out (B, C, H, W)
    const int gh = H / p, gw = W / p, P = C * p * p;
#pragma omp parallel for num_threads(be->n_threads)
    for (int bt = 0; bt < B * gh * gw; bt++) {
        int b = bt / (gh * gw), tok = bt % (gh * gw);
        int gy = tok / gw, gx = tok % gw;
        const float *v = tokens + (size_t)bt * P;
        for (int ky = 0; ky < p; ky++)
            for (int kx = 0; kx < p; kx++)
                for (int c = 0; c < C; c++)
                    out[(((size_t)b * C + c) * H + gy * p + ky) * W + gx * p + kx] = *v++;
    }
}

VECTOR_CLONES static void gated_add_row(float *x, const float *y, const float *g, int D)
{
    if (g) {
#pragma omp simd
        for (int i = 0; i < D; i++)
            x[i] += g[i] * y[i];
    } else {
#pragma omp simd
        for (int i = 0; i < D; i++)
            x[i] += y[i];
    }
}

static void cpu_gated_add(const dit_backend *be, float *x, const float *y, const float *gate,
                          int stride, int B, int T, int D)
{
    // x, y (B, T, D); gate: (B) vectors of D, `stride` apart
#pragma omp parallel for num_threads(be->n_threads)
    for (int row = 0; row < B * T; row++)
        gated_add_row(x + (size_t)row * D, y + (size_t)row * D,
                      gate ? gate + (size_t)(row / T) * stride : NULL, D);
}

static void cpu_add_rows(const dit_backend *be, float *x, const float *pos, int B, int T, int D)
{
    // x (B, T, D) += pos (T, D)
#pragma omp parallel for num_threads(be->n_threads)
    for (int row = 0; row < B * T; row++) {
        const float *pr = pos + (size_t)(row % T) * D;
        float *xr = x + (size_t)row * D;
        for (int i = 0; i < D; i++)
            xr[i] += pr[i];
    }
}

static void cpu_add_embedding(const dit_backend *be, float *out, const float *a, const float *table,
                              const int32_t *label, int B, int D)
{
    // out (B, D) = a (B, D) + table[label[b]] (D)
    (void)be;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++)
            out[(size_t)b * D + i] =
                (a ? a[(size_t)b * D + i] : 0.0f) + table[(size_t)label[b] * D + i];
}

static void cpu_copy_tokens(const dit_backend *be, float *out, int out_T, int out_at,
                            const float *in, int in_T, int in_at, int n, int B, int D)
{
    (void)be;
    for (int b = 0; b < B; b++)
        memcpy(out + ((size_t)b * out_T + out_at) * D, in + ((size_t)b * in_T + in_at) * D,
               (size_t)n * D * sizeof(float));
}

/* rows (rows, cols) of logits -> softmax weights; columns where mask is 0
 * take none, a row with none left is 0 */
static void masked_softmax_rows(float *P, int rows, int cols, const int32_t *mask)
{
    for (int i = 0; i < rows; i++) {
        float *row = P + (size_t)i * cols;
        float mx = -INFINITY;
        for (int j = 0; j < cols; j++) {
            if (mask && !mask[j])
                row[j] = -INFINITY;
            mx = row[j] > mx ? row[j] : mx;
        }
        double sum = 0;
        for (int j = 0; j < cols; j++) {
            row[j] = mx == -INFINITY ? 0.0f : expf(row[j] - mx);
            sum += row[j];
        }
        const float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
        for (int j = 0; j < cols; j++)
            row[j] *= inv;
    }
}

static void cpu_cross_attention(const dit_backend *be, float *out, const float *q, const float *kv,
                                const int32_t *key_mask, int B, int Tq, int Tk, int H, int hd,
                                float *probs)
{
    // q (B, Tq, H, hd) attends to kv (B, Tk, 2, H, hd): two products per (b, head)
    const int D = H * hd;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for num_threads(be->n_threads) schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        float *P = probs + (size_t)bh * Tq * Tk; // (Tq, Tk)
        const float *qh = q + (size_t)b * Tq * D + (size_t)h * hd;
        const float *kh = kv + (size_t)b * Tk * 2 * D + (size_t)h * hd;
        dit_cpu_gemm(be, false, true, Tq, Tk, hd, scale, qh, D, kh, 2 * D, 0.0f, P, Tk,
                     DIT_GEMM_NO_WEIGHT);
        masked_softmax_rows(P, Tq, Tk, key_mask ? key_mask + (size_t)b * Tk : NULL);
        // out (Tq, hd) of head h = P (Tq, Tk) . V (Tk, hd)
        dit_cpu_gemm(be, false, false, Tq, hd, Tk, 1.0f, P, Tk, kh + D, 2 * D, 0.0f,
                     out + (size_t)b * Tq * D + (size_t)h * hd, D, DIT_GEMM_NO_WEIGHT);
    }
}

static void cpu_timestep_embedding(const dit_backend *be, float *out, const float *t, int B, int F,
                                   int shift)
{
    // out (B, F) = [cos(t * f_i) (F/2), sin(t * f_i) (F/2)] (zero pad if F odd)
    (void)be;
    const int half = F / 2;
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * F;
        for (int i = 0; i < half; i++) {
            double freq = exp(-log(10000.0) * i / (double)(half - shift));
            double arg = (double)t[b] * freq;
            o[i] = (float)cos(arg);
            o[half + i] = (float)sin(arg);
        }
        if (F % 2)
            o[F - 1] = 0.0f;
    }
}

static void cpu_pos_embed_2d(const dit_backend *be, float *out, int gh, int gw, int D, float base_h,
                             float base_w, float interp)
{
    // out (gh*gw, D): [sin, cos](column * omega) (D/2), [sin, cos](row * omega) (D/2),
    // omega_k = 10000^(-k / (D/4)), k < D/4
    (void)be;
    const int quarter = D / 4;
    for (int gy = 0; gy < gh; gy++)
        for (int gx = 0; gx < gw; gx++) {
            float *o = out + ((size_t)gy * gw + gx) * D;
            double col = gx / ((double)gw / base_w) / interp;
            double row = gy / ((double)gh / base_h) / interp;
            for (int k = 0; k < quarter; k++) {
                double omega = 1.0 / pow(10000.0, (double)k / quarter);
                o[k] = (float)sin(col * omega);
                o[quarter + k] = (float)cos(col * omega);
                o[2 * quarter + k] = (float)sin(row * omega);
                o[3 * quarter + k] = (float)cos(row * omega);
            }
        }
}

/* ---- image ops ------------------------------------------------------------ */

/* One im2col row segment: drow[ox] = src_row[ox * stride - pad + kx] for
 * ox < Wo, zero outside [0, Wv); with up2 the source row is read at half
 * resolution. The common stride-1 case is a zero-fill plus one memcpy. */
static void im2col_span(float *drow, const float *srow, int Wo, int Wv, int stride, int pad, int kx,
                        int shift)
{
    if (stride == 1 && !shift) {
        const int off = kx - pad; /* ix = ox + off */
        const int lo = off < 0 ? -off : 0;
        const int hi = Wv - off < Wo ? Wv - off : Wo;
        if (hi <= lo) {
            memset(drow, 0, (size_t)Wo * sizeof(float));
            return;
        }
        memset(drow, 0, (size_t)lo * sizeof(float));
        memcpy(drow + lo, srow + lo + off, (size_t)(hi - lo) * sizeof(float));
        memset(drow + hi, 0, (size_t)(Wo - hi) * sizeof(float));
        return;
    }
    for (int ox = 0; ox < Wo; ox++) {
        const int ix = ox * stride - pad + kx;
        drow[ox] = ix >= 0 && ix < Wv ? srow[ix >> shift] : 0.0f;
    }
}

/* im2col of output rows [oy0, oy0 + rows): col (Cin*k*k, rows*Wo), row index
 * (c, ky, kx) to match the weight layout (Cout, Cin, k, k). */
static void im2col_band(const dit_backend *be, float *col, const float *in, const dit_conv_desc *d,
                        int oy0, int rows)
{
    // in (Cin, H, W) of one sample; read as (Cin, Hv, Wv), Hv = 2H with up2
    const int k = d->k, Wo = d->Wo, np = rows * Wo;
    const int Hv = d->up2 ? 2 * d->H : d->H, Wv = d->up2 ? 2 * d->W : d->W;
    const int shift = d->up2 ? 1 : 0;
#pragma omp parallel for num_threads(be->n_threads) schedule(static)
    for (int r = 0; r < d->Cin * k * k; r++) {
        const int c = r / (k * k), ky = (r / k) % k, kx = r % k;
        const float *src = in + (size_t)c * d->H * d->W;
        float *dst = col + (size_t)r * np;
        for (int oy = oy0; oy < oy0 + rows; oy++) {
            const int iy = oy * d->stride - d->pad_top + ky;
            float *drow = dst + (size_t)(oy - oy0) * Wo;
            if (iy < 0 || iy >= Hv)
                memset(drow, 0, (size_t)Wo * sizeof(float));
            else
                im2col_span(drow, src + (size_t)(iy >> shift) * d->W, Wo, Wv, d->stride,
                            d->pad_left, kx, shift);
        }
    }
}

static size_t cpu_conv2d_scratch(const dit_backend *be, const dit_conv_desc *d)
{
    return winograd_applies(be, d) ? winograd_scratch(be, d) : dit_conv_scratch_floats(d);
}

static void cpu_conv2d(const dit_backend *be, float *out, const float *in, const float *w,
                       const float *bias, const dit_conv_desc *d, dit_act act, float *scratch)
{
    // out (B, Cout, Ho, Wo) = act(w (Cout, Cin*k*k) . im2col(in) + bias (Cout))
    if (winograd_applies(be, d)) {
        conv2d_winograd(be, out, in, w, bias, d, act, scratch);
        return;
    }
    const int K = d->Cin * d->k * d->k, HWo = d->Ho * d->Wo;
    for (int b = 0; b < d->B; b++) {
        const float *src = in + (size_t)b * d->Cin * d->H * d->W;
        float *dst = out + (size_t)b * d->Cout * HWo;
        if (dit_conv_is_pointwise(d)) {
            dit_cpu_gemm(be, false, false, d->Cout, HWo, K, 1.0f, w, K, src, HWo, 0.0f, dst, HWo,
                         DIT_GEMM_WEIGHT_A);
        } else {
            const int band = dit_conv_band_rows(d);
            for (int oy = 0; oy < d->Ho; oy += band) {
                const int rows = oy + band <= d->Ho ? band : d->Ho - oy;
                const int np = rows * d->Wo;
                im2col_band(be, scratch, src, d, oy, rows);
                dit_cpu_gemm(be, false, false, d->Cout, np, K, 1.0f, w, K, scratch, np, 0.0f,
                             dst + (size_t)oy * d->Wo, HWo, DIT_GEMM_WEIGHT_A);
            }
        }
        if (bias || act != DIT_ACT_NONE) {
#pragma omp parallel for num_threads(be->n_threads)
            for (int co = 0; co < d->Cout; co++)
                add_scalar_act(dst + (size_t)co * HWo, (size_t)HWo, bias ? bias[co] : 0.0f, act);
        }
    }
}

VECTOR_CLONES static void group_stats(const float *x, size_t n, double *mean, double *rstd,
                                      float eps)
{
    double s = 0.0, v = 0.0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++)
        s += x[i];
    const double m = s / (double)n;
#pragma omp simd reduction(+ : v)
    for (size_t i = 0; i < n; i++) {
        double dlt = x[i] - m;
        v += dlt * dlt;
    }
    *mean = m;
    *rstd = 1.0 / sqrt(v / (double)n + eps);
}

VECTOR_CLONES static void scale_shift_act(float *out, const float *in, size_t n, float a, float b,
                                          dit_act act)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] * a + b;
    if (act != DIT_ACT_NONE)
        add_scalar_act(out, n, 0.0f, act);
}

static void cpu_group_norm(const dit_backend *be, float *out, const float *in, const float *gamma,
                           const float *beta, int B, int C, int HW, int groups, float eps,
                           dit_act act)
{
    // in, out (B, C, HW); the channels of a group are contiguous in NCHW
    const int cpg = C / groups;
#pragma omp parallel for num_threads(be->n_threads) schedule(dynamic, 1)
    for (int bg = 0; bg < B * groups; bg++) {
        const size_t off = (size_t)bg * cpg * HW; /* (b, g) block start */
        double mean, rstd;
        group_stats(in + off, (size_t)cpg * HW, &mean, &rstd, eps);
        for (int j = 0; j < cpg; j++) {
            const int c = (bg % groups) * cpg + j;
            const float a = (float)rstd * gamma[c];
            const float sh = beta[c] - (float)mean * a;
            scale_shift_act(out + off + (size_t)j * HW, in + off + (size_t)j * HW, (size_t)HW, a,
                            sh, act);
        }
    }
}

/* Query rows per chunk so that the (rows, N) score block stays near 16 MiB. */
static size_t cpu_spatial_attention_scratch(const dit_backend *be, int N)
{
    (void)be;
    return (size_t)dit_spatial_chunk_rows(N) * N;
}

static void cpu_spatial_attention(const dit_backend *be, float *out, const float *q, const float *k,
                                  const float *v, int B, int C, int N, float *scratch)
{
    // q, k, v, out (B, C, N): single head over the N = H*W positions
    const float scale = 1.0f / sqrtf((float)C);
    const int chunk = dit_spatial_chunk_rows(N);
    for (int b = 0; b < B; b++) {
        const size_t off = (size_t)b * C * N;
        for (int r0 = 0; r0 < N; r0 += chunk) {
            const int rows = r0 + chunk <= N ? chunk : N - r0;
            // scores (rows, N) = scale * Q[:, r0:r0+rows]^T (rows, C) . K (C, N)
            dit_cpu_gemm(be, true, false, rows, N, C, scale, q + off + r0, N, k + off, N, 0.0f,
                         scratch, N, DIT_GEMM_NO_WEIGHT);
#pragma omp parallel num_threads(be->n_threads)
            {
                size_t lo, hi;
                thread_range((size_t)rows, &lo, &hi);
                softmax_rows(scratch + lo * (size_t)N, (int)(hi - lo), N);
            }
            // out[:, r0:r0+rows] (C, rows) = V (C, N) . scores^T (N, rows)
            dit_cpu_gemm(be, false, true, C, rows, N, 1.0f, v + off, N, scratch, N, 0.0f,
                         out + off + r0, N, DIT_GEMM_NO_WEIGHT);
        }
    }
}

VECTOR_CLONES static void add_act_span(float *x, const float *y, size_t n, dit_act act)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
    if (act != DIT_ACT_NONE)
        add_scalar_act(x, n, 0.0f, act);
}

static void cpu_add_act(const dit_backend *be, float *x, const float *y, size_t n, dit_act act)
{
#pragma omp parallel num_threads(be->n_threads)
    {
        size_t lo, hi;
        thread_range(n, &lo, &hi);
        add_act_span(x + lo, y + lo, hi - lo, act);
    }
}

static void cpu_affine(const dit_backend *be, float *out, const float *in, size_t n, float a,
                       float b)
{
#pragma omp parallel num_threads(be->n_threads)
    {
        size_t lo, hi;
        thread_range(n, &lo, &hi);
        scale_shift_act(out + lo, in + lo, hi - lo, a, b, DIT_ACT_NONE);
    }
}

static void cpu_tanh_clamp(const dit_backend *be, float *out, const float *in, size_t n, float m)
{
#pragma omp parallel for num_threads(be->n_threads)
    for (size_t i = 0; i < n; i++)
        out[i] = m * tanhf(in[i] / m);
}

/* ---- text encoder ops ---------------------------------------------------------- */

/* out (R, D) = x * weight / sqrt(mean x^2 + eps), row by row */
static void cpu_rms_norm(const dit_backend *be, float *out, const float *x, const float *weight,
                         int R, int D, float eps)
{
#pragma omp parallel for num_threads(be->n_threads)
    for (int r = 0; r < R; r++) {
        const float *xr = x + (size_t)r * D;
        float *o = out + (size_t)r * D;
        double ss = 0;
        for (int d = 0; d < D; d++)
            ss += (double)xr[d] * xr[d];
        const float inv = (float)(1.0 / sqrt(ss / D + eps));
        for (int d = 0; d < D; d++)
            o[d] = xr[d] * inv * (weight ? weight[d] : 1.0f);
    }
}

static void cpu_attention_bias(const dit_backend *be, float *out, const float *qkv,
                               const float *bias, const int32_t *key_mask, int B, int T, int H,
                               int hd, float scale, float *probs)
{
    const int D = H * hd;
#pragma omp parallel for num_threads(be->n_threads) schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        float *P = probs + (size_t)bh * T * T; // (T, T) logits, then weights
        const float *q = qkv + (size_t)b * T * 3 * D + (size_t)h * hd;
        dit_cpu_gemm(be, false, true, T, T, hd, scale, q, 3 * D, q + D, 3 * D, 0.0f, P, T,
                     DIT_GEMM_NO_WEIGHT);
        if (bias)
            for (size_t k = 0; k < (size_t)T * T; k++)
                P[k] += bias[(size_t)h * T * T + k];
        masked_softmax_rows(P, T, T, key_mask ? key_mask + (size_t)b * T : NULL);
        // out (T, hd) of head h = P (T, T) . V (T, hd)
        dit_cpu_gemm(be, false, false, T, hd, T, 1.0f, P, T, q + 2 * D, 3 * D, 0.0f,
                     out + (size_t)b * T * D + (size_t)h * hd, D, DIT_GEMM_NO_WEIGHT);
    }
}

static void cpu_mul(const dit_backend *be, float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for num_threads(be->n_threads) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] * b[i];
}

/* ---- training ops ------------------------------------------------------------- */

static void cpu_attention_train(const dit_backend *be, float *out, const float *qkv, int B, int T,
                                int H, int hd, float *probs)
{
    // as cpu_attention, with the (T, T) softmax of each (b, h) kept in probs
    const int D = H * hd;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for num_threads(be->n_threads) schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        float *P = probs + (size_t)bh * T * T;
        const float *q = qkv + (size_t)b * T * 3 * D + (size_t)h * hd;
        dit_cpu_gemm(be, false, true, T, T, hd, scale, q, 3 * D, q + D, 3 * D, 0.0f, P, T,
                     DIT_GEMM_NO_WEIGHT);
        softmax_rows(P, T, T);
        dit_cpu_gemm(be, false, false, T, hd, T, 1.0f, P, T, q + 2 * D, 3 * D, 0.0f,
                     out + (size_t)b * T * D + (size_t)h * hd, D, DIT_GEMM_NO_WEIGHT);
    }
}

/* dP (rows, cols) becomes dS = scale P * (dP - rowsum(dP * P)) in place */
VECTOR_CLONES static void softmax_backward_rows(float *dP, const float *P, int rows, int cols,
                                                float scale)
{
    for (int i = 0; i < rows; i++) {
        float *r = dP + (size_t)i * cols;
        const float *pr = P + (size_t)i * cols;
        double dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int j = 0; j < cols; j++)
            dot += r[j] * pr[j];
        const float d = (float)dot;
#pragma omp simd
        for (int j = 0; j < cols; j++)
            r[j] = pr[j] * (r[j] - d) * scale;
    }
}

static void cpu_attention_backward(const dit_backend *be, float *dqkv, const float *dout,
                                   const float *qkv, const float *probs, int B, int T, int H,
                                   int hd, float *scratch)
{
    // S = scale Q K^T, P = softmax(S), O = P V:
    //   dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dP * P)), dQ = scale dS K,
    //   dK = scale dS^T Q. Q, K, V and their gradients are strided views (ld 3D).
    const int D = H * hd;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for num_threads(be->n_threads) schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
#ifdef _OPENMP
        float *dS = scratch + (size_t)omp_get_thread_num() * T * T;
#else
        float *dS = scratch;
#endif
        const float *P = probs + (size_t)bh * T * T;
        const float *q = qkv + (size_t)b * T * 3 * D + (size_t)h * hd;
        const float *k = q + D, *v = q + 2 * D;
        const float *dO = dout + (size_t)b * T * D + (size_t)h * hd;
        float *dq = dqkv + (size_t)b * T * 3 * D + (size_t)h * hd;
        float *dk = dq + D, *dv = dq + 2 * D;
        // dV (T, hd) = P^T (T, T) . dO (T, hd)
        dit_cpu_gemm(be, true, false, T, hd, T, 1.0f, P, T, dO, D, 0.0f, dv, 3 * D,
                     DIT_GEMM_NO_WEIGHT);
        // dP (T, T) = dO (T, hd) . V^T
        dit_cpu_gemm(be, false, true, T, T, hd, 1.0f, dO, D, v, 3 * D, 0.0f, dS, T,
                     DIT_GEMM_NO_WEIGHT);
        softmax_backward_rows(dS, P, T, T, scale);
        // dQ = dS K, dK = dS^T Q (scale folded into dS)
        dit_cpu_gemm(be, false, false, T, hd, T, 1.0f, dS, T, k, 3 * D, 0.0f, dq, 3 * D,
                     DIT_GEMM_NO_WEIGHT);
        dit_cpu_gemm(be, true, false, T, hd, T, 1.0f, dS, T, q, 3 * D, 0.0f, dk, 3 * D,
                     DIT_GEMM_NO_WEIGHT);
    }
}

static void cpu_layernorm_modulate_train(const dit_backend *be, float *out, const float *x,
                                         const float *shift, const float *scale, int stride, int B,
                                         int T, int D, float eps, float *mean, float *rstd)
{
#pragma omp parallel for num_threads(be->n_threads)
    for (int row = 0; row < B * T; row++) {
        const int b = row / T;
        layernorm_modulate_row(
            out + (size_t)row * D, x + (size_t)row * D, shift ? shift + (size_t)b * stride : NULL,
            scale ? scale + (size_t)b * stride : NULL, D, eps, mean + row, rstd + row);
    }
}

/* one row of the LayerNorm-modulate backward (see below); gain = 1 + scale
 * or NULL for 1; dshift, dscale (D) accumulate, may be NULL */
VECTOR_CLONES static void layernorm_backward_row(float *dx, float *dshift, float *dscale,
                                                 const float *dout, const float *x, float mu,
                                                 float rs, const float *scale, int D)
{
    double m1 = 0, m2 = 0; /* mean(dxhat), mean(dxhat xhat) */
    if (scale) {
#pragma omp simd reduction(+ : m1, m2)
        for (int i = 0; i < D; i++) {
            const float dxh = dout[i] * (1.0f + scale[i]);
            m1 += dxh;
            m2 += dxh * ((x[i] - mu) * rs);
        }
    } else {
#pragma omp simd reduction(+ : m1, m2)
        for (int i = 0; i < D; i++) {
            m1 += dout[i];
            m2 += dout[i] * ((x[i] - mu) * rs);
        }
    }
    const float a = (float)(m1 / D), c = (float)(m2 / D);
    if (dshift) {
#pragma omp simd
        for (int i = 0; i < D; i++)
            dshift[i] += dout[i];
    }
    if (dscale) {
#pragma omp simd
        for (int i = 0; i < D; i++)
            dscale[i] += dout[i] * ((x[i] - mu) * rs);
    }
    if (scale) {
#pragma omp simd
        for (int i = 0; i < D; i++)
            dx[i] += rs * (dout[i] * (1.0f + scale[i]) - a - (x[i] - mu) * rs * c);
    } else {
#pragma omp simd
        for (int i = 0; i < D; i++)
            dx[i] += rs * (dout[i] - a - (x[i] - mu) * rs * c);
    }
}

static void cpu_layernorm_modulate_backward(const dit_backend *be, float *dx, float *dshift,
                                            float *dscale, const float *dout, const float *x,
                                            const float *mean, const float *rstd,
                                            const float *scale, int stride, int B, int T, int D)
{
    // out = xhat (1 + s) + sh: dsh += sum_t dout, ds += sum_t dout xhat,
    // dxhat = dout (1 + s), dx += rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
#pragma omp parallel for num_threads(be->n_threads)
    for (int b = 0; b < B; b++) {
        const size_t off = (size_t)b * stride;
        for (int t = 0; t < T; t++) {
            const size_t row = (size_t)b * T + t;
            layernorm_backward_row(dx + row * D, dshift ? dshift + off : NULL,
                                   dscale ? dscale + off : NULL, dout + row * D, x + row * D,
                                   mean[row], rstd[row], scale ? scale + off : NULL, D);
        }
    }
}

/* sums (n) += column sums of rows (M, stride), n columns: blocks of rows
 * summed in float across the columns (vectorised), the blocks in double;
 * columns in groups that fit the stack */
VECTOR_CLONES static void column_sums_span(float *sums, const float *rows, int M, int stride,
                                           size_t n)
{
    enum { BLOCK_ROWS = 64, GROUP = 256 };
    for (size_t c0 = 0; c0 < n; c0 += GROUP) {
        const size_t w = n - c0 < GROUP ? n - c0 : GROUP;
        double acc[GROUP] = {0};
        float part[GROUP];
        for (int m0 = 0; m0 < M; m0 += BLOCK_ROWS) {
            const int m1 = m0 + BLOCK_ROWS < M ? m0 + BLOCK_ROWS : M;
            memset(part, 0, w * sizeof *part);
            for (int m = m0; m < m1; m++) {
                const float *row = rows + (size_t)m * stride + c0;
#pragma omp simd
                for (size_t i = 0; i < w; i++)
                    part[i] += row[i];
            }
            for (size_t i = 0; i < w; i++)
                acc[i] += part[i];
        }
        for (size_t i = 0; i < w; i++)
            sums[c0 + i] += (float)acc[i];
    }
}

static void cpu_linear_backward(const dit_backend *be, float *dx, float *dw, float *db,
                                const float *dy, const float *x, const float *w, int M, int K,
                                int N, const float *pre, dit_act act)
{
    const epilogue through_act = {.pre = pre, .pre_act = act};
    if (dx) // dx (M, K) = dy (M, N) . w (N, K), then through x = act(pre)
        sgemm_rows(be, false, false, M, K, N, dy, N, w, K, 0.0f, dx, K, pre ? &through_act : NULL,
                   DIT_GEMM_NO_WEIGHT);
    if (dw) // dw (N, K) += dy^T (N, M) . x (M, K)
        sgemm_rows(be, true, false, N, K, M, dy, N, x, K, 1.0f, dw, K, NULL, DIT_GEMM_NO_WEIGHT);
    if (db) { // db (N) += column sums of dy, read row by row (contiguous)
#pragma omp parallel num_threads(be->n_threads)
        {
            size_t lo, hi;
            thread_range((size_t)N, &lo, &hi);
            if (hi > lo)
                column_sums_span(db + lo, dy + lo, M, N, hi - lo);
        }
    }
}

static void cpu_act_backward(const dit_backend *be, float *dx, const float *pre, const float *dy,
                             size_t n, dit_act act)
{
#pragma omp parallel num_threads(be->n_threads)
    {
        size_t lo, hi;
        thread_range(n, &lo, &hi);
        if (hi > lo)
            act_backward_span(dx + lo, pre + lo, dy + lo, hi - lo, act);
    }
}

static void cpu_gated_add_backward(const dit_backend *be, float *dy, float *dgate, const float *dx,
                                   const float *y, const float *gate, int stride, int B, int T,
                                   int D)
{
    if (!gate) {
        memcpy(dy, dx, (size_t)B * T * D * sizeof(float));
        return;
    }
#pragma omp parallel for num_threads(be->n_threads)
    for (int b = 0; b < B; b++) {
        const float *g = gate + (size_t)b * stride;
        float *dg = dgate + (size_t)b * stride;
        for (int t = 0; t < T; t++) {
            const size_t row = ((size_t)b * T + t) * D;
            for (int i = 0; i < D; i++) {
                dy[row + i] = g[i] * dx[row + i];
                dg[i] += dx[row + i] * y[row + i];
            }
        }
    }
}

static void cpu_unpatchify_backward(const dit_backend *be, float *dtokens, const float *dout, int B,
                                    int C, int H, int W, int p)
{
    // the transpose of unpatchify: tokens (B, T, (ky, kx, c)) <- out (B, C, H, W)
    const int gh = H / p, gw = W / p, P = C * p * p;
#pragma omp parallel for num_threads(be->n_threads)
    for (int bt = 0; bt < B * gh * gw; bt++) {
        const int b = bt / (gh * gw), tok = bt % (gh * gw), gy = tok / gw, gx = tok % gw;
        float *v = dtokens + (size_t)bt * P;
        for (int ky = 0; ky < p; ky++)
            for (int kx = 0; kx < p; kx++)
                for (int c = 0; c < C; c++)
                    *v++ = dout[(((size_t)b * C + c) * H + gy * p + ky) * W + gx * p + kx];
    }
}

static void cpu_cross_attention_backward(const dit_backend *be, float *dq, float *dkv,
                                         const float *dout, const float *q, const float *kv,
                                         const float *probs, int B, int Tq, int Tk, int H, int hd)
{
    // O_i = sum_j P_ij V_j: dV_j = sum_i P_ij dO_i, dP_ij = dO_i . V_j,
    // dS_ij = P_ij (dP_ij - sum_j' P_ij' dP_ij'), dQ_i = scale sum_j dS_ij K_j,
    // dK_j = scale sum_i dS_ij Q_i. One sample per iteration: dkv rows are its own.
    const int D = H * hd;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for num_threads(be->n_threads)
    for (int b = 0; b < B; b++) {
        float *dkvb = dkv + (size_t)b * Tk * 2 * D;
        memset(dkvb, 0, (size_t)Tk * 2 * D * sizeof(float));
        for (int i = 0; i < Tq; i++)
            for (int h = 0; h < H; h++) {
                const size_t qi = ((size_t)b * Tq + i) * D + (size_t)h * hd;
                const float *P = probs + (((size_t)b * H + h) * Tq + i) * Tk;
                const float *dO = dout + qi;
                float *dqr = dq + qi;
                for (int d = 0; d < hd; d++)
                    dqr[d] = 0;
                double dot = 0;
                for (int j = 0; j < Tk; j++) {
                    const float *vr = kv + ((size_t)b * Tk + j) * 2 * D + D + (size_t)h * hd;
                    float dp = 0;
                    for (int d = 0; d < hd; d++)
                        dp += dO[d] * vr[d];
                    dot += (double)P[j] * dp;
                }
                for (int j = 0; j < Tk; j++) {
                    const size_t kj = ((size_t)b * Tk + j) * 2 * D + (size_t)h * hd;
                    const float *kr = kv + kj, *vr = kv + kj + D;
                    float *dk = dkv + kj, *dv = dkv + kj + D;
                    float dp = 0;
                    for (int d = 0; d < hd; d++)
                        dp += dO[d] * vr[d];
                    const float ds = P[j] * (dp - (float)dot) * scale;
                    for (int d = 0; d < hd; d++) {
                        dv[d] += P[j] * dO[d];
                        dqr[d] += ds * kr[d];
                        dk[d] += ds * q[qi + d];
                    }
                }
            }
    }
}

static void cpu_add_embedding_backward(const dit_backend *be, float *dtable, const float *dc,
                                       const int32_t *label, int B, int D)
{
    (void)be; /* in sample order: deterministic when labels repeat */
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++)
            dtable[(size_t)label[b] * D + i] += dc[(size_t)b * D + i];
}

static void cpu_adamw(const dit_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                      float lr, float beta1, float beta2, float eps, float wd, int64_t step)
{
    const float c1 = 1.0f - powf(beta1, (float)step), c2 = 1.0f - powf(beta2, (float)step);
#pragma omp parallel for num_threads(be->n_threads)
    for (size_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
        const float mh = m[i] / c1, vh = v[i] / c2;
        p[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * p[i]);
    }
}

static void cpu_ema_update(const dit_backend *be, float *ema, const float *p, size_t n, float decay)
{
#pragma omp parallel for num_threads(be->n_threads)
    for (size_t i = 0; i < n; i++)
        ema[i] = decay * ema[i] + (1.0f - decay) * p[i];
}

static void cpu_sum_squares(const dit_backend *be, float *out, const float *x, size_t n)
{
    double s = 0; /* one thread, in order: the same sum at any thread count */
    (void)be;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    out[0] = (float)s;
}

static const dit_backend cpu_backend = {
    .name = "cpu",
    .n_threads = 1,
    .gemm_lib = DIT_GEMM_AUTO,
    .linear = cpu_linear,
    .attention = cpu_attention,
    .attention_scratch = cpu_attention_scratch,
    .layernorm_modulate = cpu_layernorm_modulate,
    .gelu_tanh = cpu_gelu_tanh,
    .silu = cpu_silu,
    .patchify = cpu_patchify,
    .unpatchify = cpu_unpatchify,
    .gated_add = cpu_gated_add,
    .add_rows = cpu_add_rows,
    .add_embedding = cpu_add_embedding,
    .copy_tokens = cpu_copy_tokens,
    .cross_attention = cpu_cross_attention,
    .timestep_embedding = cpu_timestep_embedding,
    .pos_embed_2d = cpu_pos_embed_2d,
    .conv2d = cpu_conv2d,
    .conv2d_scratch = cpu_conv2d_scratch,
    .group_norm = cpu_group_norm,
    .spatial_attention = cpu_spatial_attention,
    .spatial_attention_scratch = cpu_spatial_attention_scratch,
    .add_act = cpu_add_act,
    .affine = cpu_affine,
    .tanh_clamp = cpu_tanh_clamp,
    .rms_norm = cpu_rms_norm,
    .attention_bias = cpu_attention_bias,
    .mul = cpu_mul,
    .attention_train = cpu_attention_train,
    .attention_backward = cpu_attention_backward,
    .layernorm_modulate_train = cpu_layernorm_modulate_train,
    .layernorm_modulate_backward = cpu_layernorm_modulate_backward,
    .linear_backward = cpu_linear_backward,
    .act_backward = cpu_act_backward,
    .gated_add_backward = cpu_gated_add_backward,
    .unpatchify_backward = cpu_unpatchify_backward,
    .cross_attention_backward = cpu_cross_attention_backward,
    .add_embedding_backward = cpu_add_embedding_backward,
    .adamw = cpu_adamw,
    .ema_update = cpu_ema_update,
    .sum_squares = cpu_sum_squares,
};

const dit_backend *dit_backend_cpu(void) { return &cpu_backend; }
