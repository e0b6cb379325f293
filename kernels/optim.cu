/* Optimiser updates over the flat parameter array: AdamW (decoupled weight
 * decay) and the EMA of the weights, as backend-cpu.c's. */
#include "common.cuh"

/* ---- kernels ------------------------------------------------------------- */

__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float lr,
                             float beta1, float beta2, float eps, float wd, float c1, float c2)
{
    GRID_STRIDE(i, n)
    {
        const float gi = g[i];
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float mh = mi / c1, vh = vi / c2;
        p[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * p[i]);
    }
}

/* ema = decay * ema + (1 - decay) * p */
__global__ void ema_kernel(float *ema, const float *p, size_t n, float decay)
{
    GRID_STRIDE(i, n)
    ema[i] = decay * ema[i] + (1.0f - decay) * p[i];
}

/* out[0] = sum x^2: one block, fixed order per thread, then the block's
 * butterfly: the same bits every run */
#define SUMSQ_BLOCK 1024
__global__ void sum_squares_kernel(float *out, const float *x, size_t n)
{
    double s = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        s += (double)x[i] * x[i];
    s = block_sum(s);
    if (threadIdx.x == 0)
        out[0] = (float)s;
}

/* The same over G blocks: block j sums its contiguous part of x into
 * part[j]; then one block sums the G parts. G depends on n alone, so the
 * order, and the bits, are the same every run. */
__global__ void sum_squares_parts_kernel(double *part, const float *x, size_t n, int G)
{
    const size_t lo = n * blockIdx.x / G, hi = n * (blockIdx.x + 1) / G;
    double s = 0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x)
        s += (double)x[i] * x[i];
    s = block_sum(s);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

__global__ void sum_parts_kernel(float *out, const double *part, int G)
{
    double s = 0;
    for (int i = threadIdx.x; i < G; i += blockDim.x)
        s += part[i];
    s = block_sum(s);
    if (threadIdx.x == 0)
        out[0] = (float)s;
}

/* ---- launchers ------------------------------------------------------------ */

extern "C" cudaError_t dit_cu_adamw(cudaStream_t stream, float *p, const float *g, float *m,
                                    float *v, size_t n, float lr, float beta1, float beta2,
                                    float eps, float wd, float c1, float c2)
{
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(adamw_kernel, ew_grid(n), EW_BLOCK, stream, p, g, m, v, n, lr, beta1, beta2, eps, wd,
               c1, c2);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_ema_update(cudaStream_t stream, float *ema, const float *p, size_t n,
                                         float decay)
{
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(ema_kernel, ew_grid(n), EW_BLOCK, stream, ema, p, n, decay);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_sum_squares(cudaStream_t stream, float *out, const float *x, size_t n,
                                          double *scratch, size_t scratch_doubles)
{
    /* a block per 64K values, at most 1024 (and what the scratch holds) */
    const size_t part = (size_t)1 << 16, max_parts = 1024;
    size_t G = n / part < max_parts ? n / part : max_parts;
    G = scratch && G <= scratch_doubles ? G : 0;
    if (G < 2) {
        DIT_LAUNCH(sum_squares_kernel, 1, SUMSQ_BLOCK, stream, out, x, n);
        return cudaGetLastError();
    }
    DIT_LAUNCH(sum_squares_parts_kernel, (unsigned)G, 256, stream, scratch, x, n, (int)G);
    DIT_LAUNCH(sum_parts_kernel, 1, SUMSQ_BLOCK, stream, out, scratch, (int)G);
    return cudaGetLastError();
}
