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

/* The same in parallel: a group's n values split into S slices (grid
 * (B*groups, S)). group_stats_kernel writes each slice's mean and M2 (the
 * sum of squared deviations, two passes in double over the slice);
 * group_apply_kernel combines a group's slices in a fixed order (Chan et
 * al.'s pairwise update), so every block of the group gets the same bits,
 * and normalises its slice. A launch reads only what the earlier one wrote
 * and its own slice: out may be in. */
__device__ static size_t slice_start(size_t n, int s, int S) { return n * (size_t)s / (size_t)S; }

__global__ void group_stats_kernel(double *part, const float *in, size_t n, int S)
{
    const size_t bg = blockIdx.x;
    const int s = blockIdx.y;
    const size_t lo = slice_start(n, s, S), hi = slice_start(n, s + 1, S);
    const float *x = in + bg * n;
    double sum = 0.0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x)
        sum += x[i];
    const double mean = block_sum(sum) / (double)(hi - lo);
    double m2 = 0.0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        const double d = x[i] - mean;
        m2 += d * d;
    }
    m2 = block_sum(m2);
    if (threadIdx.x == 0) {
        part[(bg * S + s) * 2] = mean;
        part[(bg * S + s) * 2 + 1] = m2;
    }
}

__global__ void group_apply_kernel(float *out, const float *in, const double *part,
                                   const float *gamma, const float *beta, int groups, int cpg,
                                   int HW, int S, float eps, int act)
{
    __shared__ double stats[2];
    const size_t bg = blockIdx.x, n = (size_t)cpg * HW;
    const int s = blockIdx.y, g = (int)(bg % groups);
    if (threadIdx.x == 0) {
        const double *p = part + bg * S * 2;
        double count = 0.0, mean = 0.0, m2 = 0.0;
        for (int j = 0; j < S; j++) {
            const double nb = (double)(slice_start(n, j + 1, S) - slice_start(n, j, S));
            const double total = count + nb, d = p[2 * j] - mean;
            mean += d * nb / total;
            m2 += p[2 * j + 1] + d * d * count * nb / total;
            count = total;
        }
        stats[0] = mean;
        stats[1] = 1.0 / sqrt(m2 / count + eps);
    }
    __syncthreads();
    const size_t lo = slice_start(n, s, S), hi = slice_start(n, s + 1, S);
    const float *x = in + bg * n;
    float *o = out + bg * n;
    const float mean = (float)stats[0], rstd = (float)stats[1];
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        const int c = g * cpg + (int)(i / HW);
        const float a = rstd * gamma[c];
        o[i] = act_apply(x[i] * a + (beta[c] - mean * a), act);
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
                                         int HW, int groups, float eps, int act, double *scratch,
                                         size_t scratch_doubles)
{
    if (B < 0 || C < 0 || HW < 0 || groups < 1 || C % groups != 0)
        return cudaErrorInvalidValue;
    const long long blocks = (long long)B * groups;
    if (blocks == 0 || C == 0 || HW == 0)
        return cudaSuccess;
    if (blocks > 0x7fffffffLL)
        return cudaErrorInvalidValue;
    /* slices of at least GN_SLICE values, at most 64 a group, as many as
     * the scratch holds; one slice: the one-block-per-group kernel */
    const size_t n = (size_t)(C / groups) * HW, slice = 4096, max_slices = 64;
    int S = (int)(n / slice < max_slices ? n / slice : max_slices);
    while (S > 1 && (!scratch || (size_t)blocks * S * 2 > scratch_doubles))
        S /= 2;
    if (S <= 1) {
        DIT_LAUNCH(group_norm_kernel, (unsigned)blocks, 512, stream, out, in, gamma, beta, groups,
                   C / groups, HW, eps, act);
        return cudaGetLastError();
    }
    const dim3 grid((unsigned)blocks, (unsigned)S);
    DIT_LAUNCH(group_stats_kernel, grid, 256, stream, scratch, in, n, S);
    DIT_LAUNCH(group_apply_kernel, grid, 256, stream, out, in, scratch, gamma, beta, groups,
               C / groups, HW, S, eps, act);
    return cudaGetLastError();
}
