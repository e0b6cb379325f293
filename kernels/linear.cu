/* Linear and batched attention: the matmul epilogue (bias + activation),
 * the fused attention kernel, and the row softmax of the cuBLAS attention
 * paths (attention_train, hd > 128, the VAE's spatial attention). The
 * matmuls themselves are cuBLAS calls in backend-cuda.c. */
#include "common.cuh"

/* ---- kernels ------------------------------------------------------------- */

/* x (rows, n) = act(x + bias (n)), as backend-cpu.c's bias_act_rows */
__global__ void bias_act_rows_kernel(float *x, const float *bias, size_t total, int n, int act)
{
    GRID_STRIDE(i, total)
    {
        const float v = bias ? x[i] + bias[i % (size_t)n] : x[i];
        x[i] = act_apply(v, act);
    }
}

/* Fused attention, flash style: one block takes FA_WARPS * FA_ROWS query
 * rows of one (b, h); each warp owns FA_ROWS of them and walks the keys in
 * tiles of 32 (one key per lane) held in shared memory, keeping a running
 * max m, running sum l and an unnormalised output accumulator per row
 * (online softmax): for each tile, m' = max(m, max_j s_j),
 * l = l e^(m - m') + sum_j e^(s_j - m'), acc = acc e^(m - m') + sum_j
 * e^(s_j - m') V_j; out = acc / l at the end. Lane c of a warp holds output
 * dims c, c + 32, ... (NC of them: hd <= 32 NC). fp32 throughout; scores
 * are scale * (q . k) as the CPU's sgemm with alpha = scale. */
#define FA_ROWS 4
#define FA_WARPS 4
#define FA_BK 32

template <int NC>
__global__ void __launch_bounds__(FA_WARPS * 32)
    attention_flash_kernel(float *out, const float *qkv, int T, int H, int hd, float scale)
{
    constexpr int HDP = NC * 32;
    __shared__ float Ks[FA_BK][HDP + 1]; /* +1: lane j reads row j, no bank conflicts */
    __shared__ float Vs[FA_BK][HDP];
    __shared__ float Qs[FA_WARPS * FA_ROWS][HDP];

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int b = blockIdx.y / H, h = blockIdx.y % H;
    const int D = H * hd;
    const size_t ld = 3 * (size_t)D; /* floats between tokens in qkv */
    const float *base = qkv + (size_t)b * T * ld + (size_t)h * hd;
    const int q0 = blockIdx.x * (FA_WARPS * FA_ROWS);

    for (int idx = threadIdx.x; idx < FA_WARPS * FA_ROWS * HDP; idx += blockDim.x) {
        const int r = idx / HDP, d = idx % HDP, t = q0 + r;
        Qs[r][d] = t < T && d < hd ? base[(size_t)t * ld + d] : 0.0f;
    }

    float m[FA_ROWS], l[FA_ROWS], acc[FA_ROWS][NC];
#pragma unroll
    for (int r = 0; r < FA_ROWS; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < NC; c++)
            acc[r][c] = 0.0f;
    }

    for (int k0 = 0; k0 < T; k0 += FA_BK) {
        __syncthreads(); /* Qs written; the previous tile fully used */
        for (int idx = threadIdx.x; idx < FA_BK * HDP; idx += blockDim.x) {
            const int j = idx / HDP, d = idx % HDP, t = k0 + j;
            const bool ok = t < T && d < hd;
            Ks[j][d] = ok ? base[(size_t)t * ld + D + d] : 0.0f;
            Vs[j][d] = ok ? base[(size_t)t * ld + 2 * D + d] : 0.0f;
        }
        __syncthreads();

        /* s[r] = score of query row r against key k0 + lane */
        float s[FA_ROWS];
#pragma unroll
        for (int r = 0; r < FA_ROWS; r++)
            s[r] = 0.0f;
        for (int d = 0; d < hd; d++) {
            const float kv = Ks[lane][d];
#pragma unroll
            for (int r = 0; r < FA_ROWS; r++)
                s[r] += Qs[warp * FA_ROWS + r][d] * kv;
        }
        const bool valid = k0 + lane < T; /* every tile has lane 0 valid */
#pragma unroll
        for (int r = 0; r < FA_ROWS; r++) {
            const float sr = valid ? s[r] * scale : -INFINITY;
            const float mnew = fmaxf(m[r], warp_max(sr));
            const float corr = expf(m[r] - mnew); /* 0 on the first tile */
            const float p = valid ? expf(sr - mnew) : 0.0f;
            l[r] = l[r] * corr + warp_sum(p);
#pragma unroll
            for (int c = 0; c < NC; c++)
                acc[r][c] *= corr;
            m[r] = mnew;
            s[r] = p;
        }
        const int nk = T - k0 < FA_BK ? T - k0 : FA_BK;
        for (int j = 0; j < nk; j++) {
            float vv[NC];
#pragma unroll
            for (int c = 0; c < NC; c++)
                vv[c] = Vs[j][c * 32 + lane];
#pragma unroll
            for (int r = 0; r < FA_ROWS; r++) {
                const float pj = __shfl_sync(DIT_FULL_MASK, s[r], j);
#pragma unroll
                for (int c = 0; c < NC; c++)
                    acc[r][c] += pj * vv[c];
            }
        }
    }

#pragma unroll
    for (int r = 0; r < FA_ROWS; r++) {
        const int t = q0 + warp * FA_ROWS + r;
        if (t >= T)
            continue;
        const float inv = 1.0f / l[r];
        float *o = out + ((size_t)b * T + t) * D + (size_t)h * hd;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int d = c * 32 + lane;
            if (d < hd)
                o[d] = acc[r][c] * inv;
        }
    }
}

/* Each row of x (rows, cols) replaced by its softmax, as backend-cpu.c's
 * softmax_rows: max, e^(x - max) (clamped exp), times 1 / sum. One block
 * per row; each thread revisits only its own elements. */
__global__ void softmax_rows_kernel(float *x, int cols)
{
    float *r = x + (size_t)blockIdx.x * cols;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        mx = fmaxf(mx, r[j]);
    mx = block_max(mx);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float e = exp_clamped(r[j] - mx);
        r[j] = e;
        sum += e;
    }
    const float inv = 1.0f / block_sum(sum);
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        r[j] *= inv;
}

/* T5's attention weights: each row i of head h of x (H, T, T) for one
 * sample gets bias[h][i] added, keys where key_mask is 0 left out (-inf),
 * then its softmax as softmax_rows_kernel; a row with no key left is 0. */
__global__ void masked_softmax_rows_kernel(float *x, const float *bias, const int *key_mask,
                                           int cols)
{
    float *r = x + (size_t)blockIdx.x * cols;
    const float *br = bias ? bias + (size_t)blockIdx.x * cols : NULL;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float v = key_mask && !key_mask[j] ? -INFINITY : r[j] + (br ? br[j] : 0.0f);
        r[j] = v;
        mx = fmaxf(mx, v);
    }
    mx = block_max(mx);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float e = mx == -INFINITY || r[j] == -INFINITY ? 0.0f : exp_clamped(r[j] - mx);
        r[j] = e;
        sum += e;
    }
    sum = block_sum(sum);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        r[j] *= inv;
}

/* ---- launchers ------------------------------------------------------------ */

extern "C" cudaError_t dit_cu_bias_act(cudaStream_t stream, float *x, const float *bias,
                                       size_t rows, int n, int act)
{
    const size_t total = rows * (size_t)(n > 0 ? n : 0);
    if (total == 0 || (!bias && act == ACT_NONE))
        return cudaSuccess;
    DIT_LAUNCH(bias_act_rows_kernel, ew_grid(total), EW_BLOCK, stream, x, bias, total, n, act);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_attention_flash(cudaStream_t stream, float *out, const float *qkv,
                                              int B, int T, int H, int hd)
{
    if (B < 0 || T < 0 || H < 0 || hd < 1 || hd > DIT_CU_FLASH_MAX_HD)
        return cudaErrorInvalidValue;
    if ((long long)B * H > 65535) /* grid.y */
        return cudaErrorInvalidValue;
    if (B == 0 || T == 0 || H == 0)
        return cudaSuccess;
    const dim3 grid((unsigned)((T + FA_WARPS * FA_ROWS - 1) / (FA_WARPS * FA_ROWS)),
                    (unsigned)(B * H));
    const int block = FA_WARPS * 32;
    const float scale = 1.0f / sqrtf((float)hd);
    switch ((hd + 31) / 32) {
    case 1:
        DIT_LAUNCH(attention_flash_kernel<1>, grid, block, stream, out, qkv, T, H, hd, scale);
        break;
    case 2:
        DIT_LAUNCH(attention_flash_kernel<2>, grid, block, stream, out, qkv, T, H, hd, scale);
        break;
    case 3:
        DIT_LAUNCH(attention_flash_kernel<3>, grid, block, stream, out, qkv, T, H, hd, scale);
        break;
    default:
        DIT_LAUNCH(attention_flash_kernel<4>, grid, block, stream, out, qkv, T, H, hd, scale);
        break;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_softmax_rows(cudaStream_t stream, float *x, size_t rows, int cols)
{
    if (rows == 0 || cols <= 0)
        return cudaSuccess;
    if (rows > 0x7fffffffu)
        return cudaErrorInvalidValue;
    DIT_LAUNCH(softmax_rows_kernel, (unsigned)rows, 128, stream, x, cols);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_masked_softmax_rows(cudaStream_t stream, float *x, const float *bias,
                                                  const int *key_mask, size_t rows, int cols)
{
    if (rows == 0 || cols <= 0)
        return cudaSuccess;
    if (rows > 0x7fffffffu)
        return cudaErrorInvalidValue;
    DIT_LAUNCH(masked_softmax_rows_kernel, (unsigned)rows, 128, stream, x, bias, key_mask, cols);
    return cudaGetLastError();
}
