/* Training backward ops: LayerNorm + modulate, activations, gated add,
 * label embedding, the bias gradient of linear, and the softmax part of
 * attention's backward (its matmuls are cuBLAS calls in backend-cuda.c).
 *
 * Parameter-gradient sums over tokens (dshift, dscale, dgate, dtable) run
 * one thread per column, adding in token (or sample) order into the float
 * that is there, exactly as the CPU loops do: deterministic, no atomics,
 * and bit-for-bit the CPU's order of additions. */
#include "common.cuh"

/* ---- kernels ------------------------------------------------------------- */

/* One block per row: m1 = mean(dxh), m2 = mean(dxh xh) in double, then
 * dx += rstd (dxh - m1 - xh m2), dxh = dout (1 + scale), xh = (x - mean) rstd */
__global__ void layernorm_backward_dx_kernel(float *dx, const float *dout, const float *x,
                                             const float *mean, const float *rstd,
                                             const float *scale, int stride, int T, int D)
{
    const size_t row = blockIdx.x;
    const float *xr = x + row * D, *dr = dout + row * D;
    const float *sc = scale ? scale + (row / T) * stride : NULL;
    const float mu = mean[row], rs = rstd[row];
    double a1 = 0.0, a2 = 0.0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const float xh = (xr[i] - mu) * rs;
        const float dxh = dr[i] * (sc ? 1.0f + sc[i] : 1.0f);
        a1 += dxh;
        a2 += (double)dxh * xh;
    }
    const float m1 = (float)(block_sum(a1) / D), m2 = (float)(block_sum(a2) / D);
    float *dxr = dx + row * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const float xh = (xr[i] - mu) * rs;
        const float dxh = dr[i] * (sc ? 1.0f + sc[i] : 1.0f);
        dxr[i] += rs * (dxh - m1 - xh * m2);
    }
}

/* dshift[b] += sum_t dout, dscale[b] += sum_t dout xh; thread per (b, i) */
__global__ void layernorm_backward_dmod_kernel(float *dshift, float *dscale, const float *dout,
                                               const float *x, const float *mean, const float *rstd,
                                               int stride, int T, int D)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (i >= D)
        return;
    float sh = dshift ? dshift[(size_t)b * stride + i] : 0.0f;
    float sc = dscale ? dscale[(size_t)b * stride + i] : 0.0f;
    for (int t = 0; t < T; t++) {
        const size_t row = (size_t)b * T + t;
        const float d = dout[row * D + i];
        sh += d;
        sc += d * ((x[row * D + i] - mean[row]) * rstd[row]);
    }
    if (dshift)
        dshift[(size_t)b * stride + i] = sh;
    if (dscale)
        dscale[(size_t)b * stride + i] = sc;
}

/* db (N) += sum_m dy (M, N), in double as the CPU */
__global__ void col_sum_add_kernel(float *db, const float *dy, int M, int N)
{
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N)
        return;
    double s = 0.0;
    for (int m = 0; m < M; m++)
        s += dy[(size_t)m * N + n];
    db[n] += (float)s;
}

/* The same for tall dy: R bands of rows (grid (columns / COL_BLOCK, R)),
 * each band's column sums in double into part (R, N); then each column adds
 * its R band sums in band order. Fixed order: the same bits every run. */
__global__ void col_sum_parts_kernel(double *part, const float *dy, int M, int N, int R)
{
    const int n = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y;
    if (n >= N)
        return;
    const int m0 = (int)((long long)M * r / R), m1 = (int)((long long)M * (r + 1) / R);
    double s = 0.0;
    for (int m = m0; m < m1; m++)
        s += dy[(size_t)m * N + n];
    part[(size_t)r * N + n] = s;
}

__global__ void col_sum_combine_kernel(float *db, const double *part, int N, int R)
{
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N)
        return;
    double s = 0.0;
    for (int r = 0; r < R; r++)
        s += part[(size_t)r * N + n];
    db[n] += (float)s;
}

/* dx (n) = dy * act'(pre), as backend-cpu.c's act_backward */
__global__ void act_backward_kernel(float *dx, const float *pre, const float *dy, size_t n, int act)
{
    GRID_STRIDE(i, n)
    {
        const float v = pre[i];
        float g = 1.0f;
        if (act == ACT_GELU_TANH) {
            const float k = 0.7978845608028654f;
            const float u = k * (v + 0.044715f * v * v * v);
            const float th = tanhf(u);
            g = 0.5f * (1.0f + th) +
                0.5f * v * (1.0f - th * th) * k * (1.0f + 3.0f * 0.044715f * v * v);
        } else if (act == ACT_SILU) {
            const float s = 1.0f / (1.0f + expf(-v));
            g = s * (1.0f + v * (1.0f - s));
        } else if (act == ACT_RELU) {
            g = v > 0 ? 1.0f : 0.0f;
        }
        dx[i] = dy[i] * g;
    }
}

/* dy = gate[b] * dx; dgate[b] += sum_t dx * y; thread per (b, i) */
__global__ void gated_add_backward_kernel(float *dy, float *dgate, const float *dx, const float *y,
                                          const float *gate, int stride, int T, int D)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (i >= D)
        return;
    const float g = gate ? gate[(size_t)b * stride + i] : 1.0f; /* NULL: ungated add */
    float dg = dgate ? dgate[(size_t)b * stride + i] : 0.0f;
    for (int t = 0; t < T; t++) {
        const size_t at = ((size_t)b * T + t) * D + i;
        dy[at] = g * dx[at];
        dg += dx[at] * y[at];
    }
    if (dgate)
        dgate[(size_t)b * stride + i] = dg;
}

/* dtable[label[b]] += dc[b], samples in order; thread per column */
__global__ void add_embedding_backward_kernel(float *dtable, const float *dc, const int32_t *label,
                                              int B, int D)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= D)
        return;
    for (int b = 0; b < B; b++)
        dtable[(size_t)label[b] * D + i] += dc[(size_t)b * D + i];
}

/* One block per row: dS = P (dP - sum_j dP P) scale, the dot in double */
__global__ void softmax_backward_kernel(float *dS, const float *P, int T, float scale)
{
    float *r = dS + (size_t)blockIdx.x * T;
    const float *p = P + (size_t)blockIdx.x * T;
    double dot = 0.0;
    for (int j = threadIdx.x; j < T; j += blockDim.x)
        dot += (double)r[j] * p[j];
    const float d = (float)block_sum(dot);
    for (int j = threadIdx.x; j < T; j += blockDim.x)
        r[j] = p[j] * (r[j] - d) * scale;
}

/* ---- launchers ------------------------------------------------------------ */

#define COL_BLOCK 128

extern "C" cudaError_t dit_cu_layernorm_modulate_backward(
    cudaStream_t stream, float *dx, float *dshift, float *dscale, const float *dout, const float *x,
    const float *mean, const float *rstd, const float *scale, int stride, int B, int T, int D)
{
    if (B < 0 || T < 0 || D < 0 || B > 65535)
        return cudaErrorInvalidValue;
    const long long rows = (long long)B * T;
    if (rows == 0 || D == 0)
        return cudaSuccess;
    if (rows > 0x7fffffffLL)
        return cudaErrorInvalidValue;
    DIT_LAUNCH(layernorm_backward_dx_kernel, (unsigned)rows, D >= 1024 ? 256 : 128, stream, dx,
               dout, x, mean, rstd, scale, stride, T, D);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess || (!dshift && !dscale))
        return err;
    const dim3 grid((unsigned)((D + COL_BLOCK - 1) / COL_BLOCK), (unsigned)B);
    DIT_LAUNCH(layernorm_backward_dmod_kernel, grid, COL_BLOCK, stream, dshift, dscale, dout, x,
               mean, rstd, stride, T, D);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_col_sum_add(cudaStream_t stream, float *db, const float *dy, int M,
                                          int N, double *scratch, size_t scratch_doubles)
{
    if (M < 0 || N < 0)
        return cudaErrorInvalidValue;
    if (N == 0)
        return cudaSuccess;
    const unsigned cols = (unsigned)((N + COL_BLOCK - 1) / COL_BLOCK);
    /* bands of at least 256 rows, at most 64, as many as the scratch holds */
    int R = M / 256 < 64 ? M / 256 : 64;
    while (R > 1 && (!scratch || (size_t)R * N > scratch_doubles))
        R /= 2;
    if (R <= 1) {
        DIT_LAUNCH(col_sum_add_kernel, cols, COL_BLOCK, stream, db, dy, M, N);
        return cudaGetLastError();
    }
    DIT_LAUNCH(col_sum_parts_kernel, dim3(cols, (unsigned)R), COL_BLOCK, stream, scratch, dy, M, N,
               R);
    DIT_LAUNCH(col_sum_combine_kernel, cols, COL_BLOCK, stream, db, scratch, N, R);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_act_backward(cudaStream_t stream, float *dx, const float *pre,
                                           const float *dy, size_t n, int act)
{
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(act_backward_kernel, ew_grid(n), EW_BLOCK, stream, dx, pre, dy, n, act);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_gated_add_backward(cudaStream_t stream, float *dy, float *dgate,
                                                 const float *dx, const float *y, const float *gate,
                                                 int stride, int B, int T, int D)
{
    if (B < 0 || T < 0 || D < 0 || B > 65535)
        return cudaErrorInvalidValue;
    if (B == 0 || D == 0)
        return cudaSuccess;
    const dim3 grid((unsigned)((D + COL_BLOCK - 1) / COL_BLOCK), (unsigned)B);
    DIT_LAUNCH(gated_add_backward_kernel, grid, COL_BLOCK, stream, dy, dgate, dx, y, gate, stride,
               T, D);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_add_embedding_backward(cudaStream_t stream, float *dtable,
                                                     const float *dc, const int32_t *label, int B,
                                                     int D)
{
    if (B < 0 || D < 0)
        return cudaErrorInvalidValue;
    if (B == 0 || D == 0)
        return cudaSuccess;
    DIT_LAUNCH(add_embedding_backward_kernel, (unsigned)((D + COL_BLOCK - 1) / COL_BLOCK),
               COL_BLOCK, stream, dtable, dc, label, B, D);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_softmax_backward(cudaStream_t stream, float *dS, const float *P,
                                               size_t rows, int T, float scale)
{
    if (rows == 0 || T <= 0)
        return cudaSuccess;
    if (rows > 0x7fffffffu)
        return cudaErrorInvalidValue;
    DIT_LAUNCH(softmax_backward_kernel, (unsigned)rows, 128, stream, dS, P, T, scale);
    return cudaGetLastError();
}
