/* Image ops of the VAE: conv2d's im2col (stride, asymmetric padding, and
 * the nearest-neighbour 2x upsample read on the fly) and its bias +
 * activation epilogue (the matmul is cuBLAS, in backend-cuda.c), and
 * GroupNorm fused with its activation (GroupNorm + SiLU). */
#include "common.cuh"

/* ---- kernels ------------------------------------------------------------- */

/* col (Cin*k*k, rows*Wo), row index (c, ky, kx) as the weight (Cout, Cin,
 * k, k): col[r][p] = in[c][iy][ix] at iy = oy*stride - pad_top + ky,
 * ix = ox*stride - pad_left + kx of the (up2: 2x upsampled) input, zero
 * outside it; output row oy = oy0 + p / Wo. */
__global__ void im2col_kernel(float *col, const float *in, int H, int W, int k, int stride,
                              int pad_top, int pad_left, int Wo, int up2, int oy0, size_t np,
                              size_t n)
{
    const int shift = up2 ? 1 : 0;
    const int Hv = H << shift, Wv = W << shift;
    GRID_STRIDE(i, n)
    {
        const size_t r = i / np, p = i % np;
        const int c = (int)(r / (k * k)), ky = (int)(r / k) % k, kx = (int)(r % k);
        const int oy = oy0 + (int)(p / Wo), ox = (int)(p % Wo);
        const int iy = oy * stride - pad_top + ky, ix = ox * stride - pad_left + kx;
        col[i] = iy >= 0 && iy < Hv && ix >= 0 && ix < Wv
                     ? in[((size_t)c * H + (iy >> shift)) * W + (ix >> shift)]
                     : 0.0f;
    }
}

/* x (B, C, HW) = act(x + bias[c]) */
__global__ void bias_act_channels_kernel(float *x, const float *bias, int C, size_t HW, size_t n,
                                         int act)
{
    GRID_STRIDE(i, n)
    {
        const float v = bias ? x[i] + bias[(i / HW) % C] : x[i];
        x[i] = act_apply(v, act);
    }
}

/* One block per (b, g): the group's cpg*HW values are contiguous in NCHW.
 * Statistics in double (two passes) as the CPU's group_stats, then
 * out = act(in * a + (beta - mean a)), a = rstd gamma[c], per channel. All
 * reads for the statistics finish before the first write: out may be in. */
__global__ void group_norm_kernel(float *out, const float *in, const float *gamma,
                                  const float *beta, int groups, int cpg, int HW, float eps,
                                  int act)
{
    const int g = blockIdx.x % groups;
    const size_t n = (size_t)cpg * HW, off = (size_t)blockIdx.x * n;
    const float *x = in + off;
    double s = 0.0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        s += x[i];
    const double mean = block_sum(s) / (double)n;
    double v = 0.0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        const double d = x[i] - mean;
        v += d * d;
    }
    const double rstd = 1.0 / sqrt(block_sum(v) / (double)n + eps);
    float *o = out + off;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        const int c = g * cpg + (int)(i / HW);
        const float a = (float)rstd * gamma[c];
        const float sh = beta[c] - (float)mean * a;
        o[i] = act_apply(x[i] * a + sh, act);
    }
}

/* ---- launchers ------------------------------------------------------------ */

extern "C" cudaError_t dit_cu_im2col(cudaStream_t stream, float *col, const float *in, int Cin,
                                     int H, int W, int k, int stride, int pad_top, int pad_left,
                                     int Wo, int up2, int oy0, int rows)
{
    if (Cin < 0 || H < 0 || W < 0 || k < 1 || stride < 1 || Wo < 0 || rows < 0 || oy0 < 0)
        return cudaErrorInvalidValue;
    const size_t np = (size_t)rows * Wo, n = (size_t)Cin * k * k * np;
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(im2col_kernel, ew_grid(n), EW_BLOCK, stream, col, in, H, W, k, stride, pad_top,
               pad_left, Wo, up2, oy0, np, n);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_bias_act_channels(cudaStream_t stream, float *x, const float *bias,
                                                int B, int C, size_t HW, int act)
{
    if (B < 0 || C < 0)
        return cudaErrorInvalidValue;
    const size_t n = (size_t)B * C * HW;
    if (n == 0 || (!bias && act == ACT_NONE))
        return cudaSuccess;
    DIT_LAUNCH(bias_act_channels_kernel, ew_grid(n), EW_BLOCK, stream, x, bias, C, HW, n, act);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_group_norm(cudaStream_t stream, float *out, const float *in,
                                         const float *gamma, const float *beta, int B, int C,
                                         int HW, int groups, float eps, int act)
{
    if (B < 0 || C < 0 || HW < 0 || groups < 1 || C % groups != 0)
        return cudaErrorInvalidValue;
    const long long blocks = (long long)B * groups;
    if (blocks == 0 || C == 0 || HW == 0)
        return cudaSuccess;
    if (blocks > 0x7fffffffLL)
        return cudaErrorInvalidValue;
    DIT_LAUNCH(group_norm_kernel, (unsigned)blocks, 512, stream, out, in, gamma, beta, groups,
               C / groups, HW, eps, act);
    return cudaGetLastError();
}
