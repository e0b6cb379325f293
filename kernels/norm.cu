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

/* One block per row of x (R, D): T5's RMSNorm, the mean of squares in double
 * as the CPU's cpu_rms_norm; every read of the row happens before block_sum
 * returns, so out may equal x. */
__global__ void rms_norm_kernel(float *out, const float *x, const float *weight, int D, float eps)
{
    const size_t row = blockIdx.x;
    const float *xr = x + row * D;
    float *o = out + row * D;
    double ss = 0.0;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        ss += (double)xr[i] * xr[i];
    const float inv = (float)(1.0 / sqrt(block_sum(ss) / D + eps));
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        o[i] = xr[i] * inv * (weight ? weight[i] : 1.0f);
}

/* ---- launchers ------------------------------------------------------------ */

extern "C" cudaError_t dit_cu_layernorm_modulate(cudaStream_t stream, float *out, const float *x,
                                                 const float *shift, const float *scale, int stride,
                                                 int B, int T, int D, float eps, float *mean,
                                                 float *rstd)
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

extern "C" cudaError_t dit_cu_rms_norm(cudaStream_t stream, float *out, const float *x,
                                       const float *weight, int R, int D, float eps)
{
    if (R < 0 || D < 0)
        return cudaErrorInvalidValue;
    if (R == 0 || D == 0)
        return cudaSuccess;
    DIT_LAUNCH(rms_norm_kernel, (unsigned)R, D >= 1024 ? 256 : 128, stream, out, x, weight, D, eps);
    return cudaGetLastError();
}
