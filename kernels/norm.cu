/* LayerNorm fused with the adaLN modulate, inference and training (which
 * keeps mean and rstd). The backward lives in backward.cu. */
#include "common.cuh"

/* ---- kernels ------------------------------------------------------------- */

/* One block per row of x (B*T, D): statistics in double as the CPU's
 * layernorm_modulate_row, then out = (x - mean) rstd (1 + scale) + shift.
 * Every read of the row happens before block_sum returns, so out may
 * equal x. */
__global__ void layernorm_modulate_kernel(float *out, const float *x, const float *shift,
                                          const float *scale, int stride, int T, int D, float eps,
                                          float *mean_out, float *rstd_out)
{
    const size_t row = blockIdx.x;
    const float *xr = x + row * D;
    float *o = out + row * D;
    double s = 0.0;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        s += xr[i];
    const double mean = block_sum(s) / D;
    double v = 0.0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const double d = xr[i] - mean;
        v += d * d;
    }
    const double var = block_sum(v) / D;
    const float rstd = (float)(1.0 / sqrt(var + eps)), m = (float)mean;
    if (mean_out && threadIdx.x == 0) {
        mean_out[row] = m;
        rstd_out[row] = rstd;
    }
    if (shift && scale) {
        const size_t b = row / T;
        const float *sh = shift + b * stride, *sc = scale + b * stride;
        for (int i = threadIdx.x; i < D; i += blockDim.x)
            o[i] = (xr[i] - m) * rstd * (1.0f + sc[i]) + sh[i];
    } else {
        for (int i = threadIdx.x; i < D; i += blockDim.x)
            o[i] = (xr[i] - m) * rstd;
    }
}

/* ---- launchers ------------------------------------------------------------ */

extern "C" cudaError_t dit_cu_layernorm_modulate(cudaStream_t stream, float *out, const float *x,
                                                 const float *shift, const float *scale,
                                                 int stride, int B, int T, int D, float eps,
                                                 float *mean, float *rstd)
{
    if (B < 0 || T < 0 || D < 0 || (!mean != !rstd))
        return cudaErrorInvalidValue;
    const long long rows = (long long)B * T;
    if (rows == 0 || D == 0)
        return cudaSuccess;
    if (rows > 0x7fffffffLL)
        return cudaErrorInvalidValue;
    DIT_LAUNCH(layernorm_modulate_kernel, (unsigned)rows, D >= 1024 ? 256 : 128, stream, out, x,
               shift, scale, stride, T, D, eps, mean, rstd);
    return cudaGetLastError();
}
