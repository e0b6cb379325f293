/* Token-sequence ops of the conditioning variants (core/dit.h): joining and
 * splitting sequences (in-context tokens) and cross-attention to a few
 * conditioning tokens. Tk is 1 or 2 in every model, so the cross-attention
 * kernels are plain loops, one thread per (b, query token, head). */
#include "common.cuh"
#include "kernels.h"

/* out (B, out_T, D) rows out_at.. = in (B, in_T, D) rows in_at.. */
__global__ void copy_tokens_kernel(float *out, int out_T, int out_at, const float *in, int in_T,
                                   int in_at, int n, int D, size_t total)
{
    GRID_STRIDE(i, total)
    {
        const size_t per = (size_t)n * D, b = i / per, r = i % per;
        out[((size_t)b * out_T + out_at) * D + r] = in[((size_t)b * in_T + in_at) * D + r];
    }
}

/* out (B, Tq, H*hd), probs (B, H, Tq, Tk); thread per (b, i, h); keys
 * where key_mask (B, Tk) is 0 take no weight, a row with none left is 0 */
__global__ void cross_attention_kernel(float *out, const float *q, const float *kv,
                                       const int32_t *key_mask, int Tq, int Tk, int H, int hd,
                                       float *probs, size_t total)
{
    const int D = H * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    GRID_STRIDE(n, total)
    {
        const size_t bi = n / H;
        const int h = (int)(n % H), i = (int)(bi % Tq);
        const size_t b = bi / Tq;
        const float *qr = q + bi * D + (size_t)h * hd;
        float *P = probs + ((b * H + h) * Tq + i) * Tk;
        const int32_t *km = key_mask ? key_mask + b * Tk : NULL;
        float mx = -INFINITY;
        for (int j = 0; j < Tk; j++) {
            const float *kr = kv + (b * Tk + j) * 2 * D + (size_t)h * hd;
            float s = 0;
            for (int d = 0; d < hd; d++)
                s += qr[d] * kr[d];
            P[j] = km && !km[j] ? -INFINITY : s * scale;
            mx = fmaxf(mx, P[j]);
        }
        float sum = 0;
        for (int j = 0; j < Tk; j++) {
            P[j] = mx == -INFINITY || P[j] == -INFINITY ? 0.0f : exp_clamped(P[j] - mx);
            sum += P[j];
        }
        const float inv = sum > 0 ? 1.0f / sum : 0.0f;
        for (int j = 0; j < Tk; j++)
            P[j] *= inv;
        float *o = out + bi * D + (size_t)h * hd;
        for (int d = 0; d < hd; d++) {
            float acc = 0;
            for (int j = 0; j < Tk; j++)
                acc += P[j] * kv[(b * Tk + j) * 2 * D + D + (size_t)h * hd + d];
            o[d] = acc;
        }
    }
}

/* dq (B, Tq, D); thread per (b, i, h) */
__global__ void cross_attention_dq_kernel(float *dq, const float *dout, const float *kv,
                                          const float *probs, int Tq, int Tk, int H, int hd,
                                          size_t total)
{
    const int D = H * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    GRID_STRIDE(n, total)
    {
        const size_t bi = n / H;
        const int h = (int)(n % H), i = (int)(bi % Tq);
        const size_t b = bi / Tq;
        const float *P = probs + ((b * H + h) * Tq + i) * Tk;
        const float *dO = dout + bi * D + (size_t)h * hd;
        float dot = 0;
        for (int j = 0; j < Tk; j++) {
            const float *vr = kv + (b * Tk + j) * 2 * D + D + (size_t)h * hd;
            float dp = 0;
            for (int d = 0; d < hd; d++)
                dp += dO[d] * vr[d];
            dot += P[j] * dp;
        }
        float *dqr = dq + bi * D + (size_t)h * hd;
        for (int d = 0; d < hd; d++)
            dqr[d] = 0;
        for (int j = 0; j < Tk; j++) {
            const float *kr = kv + (b * Tk + j) * 2 * D + (size_t)h * hd, *vr = kr + D;
            float dp = 0;
            for (int d = 0; d < hd; d++)
                dp += dO[d] * vr[d];
            const float ds = P[j] * (dp - dot) * scale;
            for (int d = 0; d < hd; d++)
                dqr[d] += ds * kr[d];
        }
    }
}

/* dkv (B, Tk, 2D): thread per (b, j, h, d) summing over the Tq queries */
__global__ void cross_attention_dkv_kernel(float *dkv, const float *dout, const float *q,
                                           const float *kv, const float *probs, int Tq, int Tk,
                                           int H, int hd, size_t total)
{
    const int D = H * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    GRID_STRIDE(n, total)
    {
        const int d = (int)(n % hd), h = (int)(n / hd % H), j = (int)(n / D % Tk);
        const size_t b = n / ((size_t)D * Tk);
        float dk = 0, dv = 0;
        for (int i = 0; i < Tq; i++) {
            const size_t qi = (b * Tq + i) * D + (size_t)h * hd;
            const float *P = probs + ((b * H + h) * Tq + i) * Tk;
            const float *dO = dout + qi;
            float dot = 0, dp_j = 0;
            for (int jj = 0; jj < Tk; jj++) {
                const float *vr = kv + (b * Tk + jj) * 2 * D + D + (size_t)h * hd;
                float dp = 0;
                for (int e = 0; e < hd; e++)
                    dp += dO[e] * vr[e];
                dot += P[jj] * dp;
                if (jj == j)
                    dp_j = dp;
            }
            dv += P[j] * dO[d];
            dk += P[j] * (dp_j - dot) * scale * q[qi + d];
        }
        const size_t at = (b * Tk + j) * 2 * D + (size_t)h * hd + d;
        dkv[at] = dk;
        dkv[at + D] = dv;
    }
}

/* ---- launchers ------------------------------------------------------------ */

extern "C" cudaError_t dit_cu_copy_tokens(cudaStream_t stream, float *out, int out_T, int out_at,
                                          const float *in, int in_T, int in_at, int n, int B, int D)
{
    if (B < 0 || n < 0 || D < 0 || out_at < 0 || in_at < 0 || out_at + n > out_T ||
        in_at + n > in_T)
        return cudaErrorInvalidValue;
    const size_t total = (size_t)B * n * D;
    if (total == 0)
        return cudaSuccess;
    DIT_LAUNCH(copy_tokens_kernel, ew_grid(total), EW_BLOCK, stream, out, out_T, out_at, in, in_T,
               in_at, n, D, total);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_cross_attention(cudaStream_t stream, float *out, const float *q,
                                              const float *kv, const int32_t *key_mask, int B,
                                              int Tq, int Tk, int H, int hd, float *probs)
{
    if (B < 0 || Tq < 0 || Tk < 1 || H < 0 || hd < 0)
        return cudaErrorInvalidValue;
    const size_t total = (size_t)B * Tq * H;
    if (total == 0 || hd == 0)
        return cudaSuccess;
    DIT_LAUNCH(cross_attention_kernel, ew_grid(total), EW_BLOCK, stream, out, q, kv, key_mask, Tq,
               Tk, H, hd, probs, total);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_cross_attention_backward(cudaStream_t stream, float *dq, float *dkv,
                                                       const float *dout, const float *q,
                                                       const float *kv, const float *probs, int B,
                                                       int Tq, int Tk, int H, int hd)
{
    if (B < 0 || Tq < 0 || Tk < 1 || H < 0 || hd < 0)
        return cudaErrorInvalidValue;
    const size_t nq = (size_t)B * Tq * H, nkv = (size_t)B * Tk * H * hd;
    if (nq == 0 || hd == 0)
        return cudaSuccess;
    DIT_LAUNCH(cross_attention_dq_kernel, ew_grid(nq), EW_BLOCK, stream, dq, dout, kv, probs, Tq,
               Tk, H, hd, nq);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    DIT_LAUNCH(cross_attention_dkv_kernel, ew_grid(nkv), EW_BLOCK, stream, dkv, dout, q, kv, probs,
               Tq, Tk, H, hd, nkv);
    return cudaGetLastError();
}
