/* Element-wise ops and row adds: gated residual add, position rows, add +
 * activation, product (T5's gated GELU), affine, TAESD's tanh clamp. */
#include "common.cuh"

/* ---- kernels ------------------------------------------------------------- */

/* x (B, T, D) += gate[b] (D) * y; gate NULL means 1 */
__global__ void gated_add_kernel(float *x, const float *y, const float *gate, int stride, int T,
                                 int D, size_t n)
{
    GRID_STRIDE(i, n)
    {
        if (gate) {
            const size_t row = i / D, b = row / T;
            x[i] += gate[b * stride + i % D] * y[i];
        } else {
            x[i] += y[i];
        }
    }
}

/* x (B, T, D) += pos (T, D) */
__global__ void add_rows_kernel(float *x, const float *pos, size_t TD, size_t n)
{
    GRID_STRIDE(i, n)
    x[i] += pos[i % TD];
}

/* x (n) = act(x + y) */
__global__ void add_act_kernel(float *x, const float *y, size_t n, int act)
{
    GRID_STRIDE(i, n)
    x[i] = act_apply(x[i] + y[i], act);
}

/* out (n) = a * b */
__global__ void mul_kernel(float *out, const float *a, const float *b, size_t n)
{
    GRID_STRIDE(i, n)
    out[i] = a[i] * b[i];
}

/* out (n) = a * in + b */
__global__ void affine_kernel(float *out, const float *in, size_t n, float a, float b)
{
    GRID_STRIDE(i, n)
    out[i] = in[i] * a + b;
}

/* out (n) = m tanh(in / m) */
__global__ void tanh_clamp_kernel(float *out, const float *in, size_t n, float m)
{
    GRID_STRIDE(i, n)
    out[i] = m * tanhf(in[i] / m);
}

/* ---- launchers ------------------------------------------------------------ */

extern "C" cudaError_t dit_cu_gated_add(cudaStream_t stream, float *x, const float *y,
                                        const float *gate, int stride, int B, int T, int D)
{
    if (B < 0 || T < 0 || D < 0)
        return cudaErrorInvalidValue;
    const size_t n = (size_t)B * T * D;
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(gated_add_kernel, ew_grid(n), EW_BLOCK, stream, x, y, gate, stride, T, D, n);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_add_rows(cudaStream_t stream, float *x, const float *pos, int B,
                                       int T, int D)
{
    if (B < 0 || T < 0 || D < 0)
        return cudaErrorInvalidValue;
    const size_t n = (size_t)B * T * D;
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(add_rows_kernel, ew_grid(n), EW_BLOCK, stream, x, pos, (size_t)T * D, n);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_add_act(cudaStream_t stream, float *x, const float *y, size_t n,
                                      int act)
{
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(add_act_kernel, ew_grid(n), EW_BLOCK, stream, x, y, n, act);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_mul(cudaStream_t stream, float *out, const float *a, const float *b,
                                  size_t n)
{
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(mul_kernel, ew_grid(n), EW_BLOCK, stream, out, a, b, n);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_affine(cudaStream_t stream, float *out, const float *in, size_t n,
                                     float a, float b)
{
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(affine_kernel, ew_grid(n), EW_BLOCK, stream, out, in, n, a, b);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_tanh_clamp(cudaStream_t stream, float *out, const float *in, size_t n,
                                         float m)
{
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(tanh_clamp_kernel, ew_grid(n), EW_BLOCK, stream, out, in, n, m);
    return cudaGetLastError();
}

/* Whether the current device can load this build's kernels: a missing
 * image (an architecture the fat binary lacks) shows here, not at the
 * first launch. */
extern "C" cudaError_t dit_cu_check_image(void)
{
    cudaFuncAttributes attr;
    return cudaFuncGetAttributes(&attr, (const void *)affine_kernel);
}
