/* Patchify / unpatchify between images (B, C, H, W) and token rows, and
 * unpatchify's backward. A grid of gh = H/p by gw = W/p patches, row-major;
 * pixels past gh*p or gw*p are neither read nor written (as on the CPU). */
#include "common.cuh"

/* ---- kernels ------------------------------------------------------------- */

/* out (B, gh*gw, C*p*p), vector order (c, ky, kx), from x (B, C, H, W);
 * one thread per output value */
__global__ void patchify_kernel(float *out, const float *x, int C, int H, int W, int p, int gw,
                                size_t T, size_t n)
{
    const size_t P = (size_t)C * p * p;
    GRID_STRIDE(i, n)
    {
        const size_t bt = i / P, e = i % P, b = bt / T, tok = bt % T;
        const int c = (int)(e / (p * p)), ky = (int)(e / p) % p, kx = (int)(e % p);
        const int gy = (int)(tok / gw), gx = (int)(tok % gw);
        out[i] = x[(((size_t)b * C + c) * H + gy * p + ky) * W + gx * p + kx];
    }
}

/* out (B, C, H, W) from tokens (B, gh*gw, p*p*C), vector order (ky, kx, c);
 * one thread per output pixel (gather) */
__global__ void unpatchify_kernel(float *out, const float *tokens, int C, int H, int W, int p,
                                  int gh, int gw, size_t n)
{
    const size_t P = (size_t)C * p * p, T = (size_t)gh * gw;
    GRID_STRIDE(i, n)
    {
        const int xx = (int)(i % W), y = (int)((i / W) % H);
        const size_t bc = i / ((size_t)W * H);
        const int c = (int)(bc % C);
        const size_t b = bc / C;
        if (y >= gh * p || xx >= gw * p)
            continue;
        const int gy = y / p, ky = y % p, gx = xx / p, kx = xx % p;
        out[i] = tokens[(b * T + (size_t)gy * gw + gx) * P + ((size_t)ky * p + kx) * C + c];
    }
}

/* dtokens (B, gh*gw, p*p*C) (ky, kx, c) from dout (B, C, H, W): the
 * transpose of unpatchify; one thread per token value */
__global__ void unpatchify_backward_kernel(float *dtokens, const float *dout, int C, int H, int W,
                                           int p, int gw, size_t T, size_t n)
{
    const size_t P = (size_t)C * p * p;
    GRID_STRIDE(i, n)
    {
        const size_t bt = i / P, e = i % P, b = bt / T, tok = bt % T;
        const int ky = (int)(e / ((size_t)p * C)), kx = (int)(e / C) % p, c = (int)(e % C);
        const int gy = (int)(tok / gw), gx = (int)(tok % gw);
        dtokens[i] = dout[(((size_t)b * C + c) * H + gy * p + ky) * W + gx * p + kx];
    }
}

/* ---- launchers ------------------------------------------------------------ */

static bool patch_shape_ok(int B, int C, int H, int W, int p)
{
    return B >= 0 && C >= 0 && H >= 0 && W >= 0 && p >= 1;
}

extern "C" cudaError_t dit_cu_patchify(cudaStream_t stream, float *out, const float *x, int B,
                                       int C, int H, int W, int p)
{
    if (!patch_shape_ok(B, C, H, W, p))
        return cudaErrorInvalidValue;
    const int gw = W / p;
    const size_t T = (size_t)(H / p) * gw, n = (size_t)B * T * C * p * p;
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(patchify_kernel, ew_grid(n), EW_BLOCK, stream, out, x, C, H, W, p, gw, T, n);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_unpatchify(cudaStream_t stream, float *out, const float *tokens,
                                         int B, int C, int H, int W, int p)
{
    if (!patch_shape_ok(B, C, H, W, p))
        return cudaErrorInvalidValue;
    const size_t n = (size_t)B * C * H * W;
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(unpatchify_kernel, ew_grid(n), EW_BLOCK, stream, out, tokens, C, H, W, p, H / p,
               W / p, n);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_unpatchify_backward(cudaStream_t stream, float *dtokens,
                                                  const float *dout, int B, int C, int H, int W,
                                                  int p)
{
    if (!patch_shape_ok(B, C, H, W, p))
        return cudaErrorInvalidValue;
    const int gw = W / p;
    const size_t T = (size_t)(H / p) * gw, n = (size_t)B * T * C * p * p;
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(unpatchify_backward_kernel, ew_grid(n), EW_BLOCK, stream, dtokens, dout, C, H, W, p,
               gw, T, n);
    return cudaGetLastError();
}
