/* Embeddings: the sinusoidal timestep embedding, the 2-D sin-cos position
 * table, and the class-label add. Computed in double like the CPU ones
 * (which call libm's exp/pow/sin/cos in double) so the tables agree to
 * float rounding. Labels and timesteps are device arrays. */
#include "common.cuh"

/* ---- kernels ------------------------------------------------------------- */

/* out (B, F) = [cos(t f_i) (F/2), sin(t f_i) (F/2)], f_i = exp(-ln(1e4) i /
 * (F/2 - shift)); a zero last column when F is odd */
__global__ void timestep_embedding_kernel(float *out, const float *t, int F, int shift, size_t n)
{
    const int half = F / 2;
    GRID_STRIDE(idx, n)
    {
        const size_t b = idx / (half + 1);
        const int i = (int)(idx % (half + 1));
        float *o = out + b * F;
        if (i == half) {
            if (F % 2)
                o[F - 1] = 0.0f;
            continue;
        }
        const double freq = exp(-log(10000.0) * i / (double)(half - shift));
        const double arg = (double)t[b] * freq;
        o[i] = (float)cos(arg);
        o[half + i] = (float)sin(arg);
    }
}

/* out (gh*gw, D): [sin, cos](col omega_k), [sin, cos](row omega_k) in
 * quarters, omega_k = 10000^(-k / (D/4)); position = index * base / grid /
 * interp. Channels past 4*(D/4) are left as they are (as on the CPU). */
__global__ void pos_embed_2d_kernel(float *out, int gh, int gw, int D, float base_h, float base_w,
                                    float interp, size_t n)
{
    const int quarter = D / 4;
    GRID_STRIDE(idx, n)
    {
        const size_t tok = idx / quarter;
        const int k = (int)(idx % quarter);
        const int gy = (int)(tok / gw), gx = (int)(tok % gw);
        const double col = gx / ((double)gw / base_w) / interp;
        const double row = gy / ((double)gh / base_h) / interp;
        const double omega = 1.0 / pow(10000.0, (double)k / quarter);
        float *o = out + tok * D;
        o[k] = (float)sin(col * omega);
        o[quarter + k] = (float)cos(col * omega);
        o[2 * quarter + k] = (float)sin(row * omega);
        o[3 * quarter + k] = (float)cos(row * omega);
    }
}

/* out (B, D) = a (B, D) + table[label[b]] (D); a NULL = zeros */
__global__ void add_embedding_kernel(float *out, const float *a, const float *table,
                                     const int32_t *label, int D, size_t n)
{
    GRID_STRIDE(i, n)
    {
        const size_t b = i / D;
        out[i] = (a ? a[i] : 0.0f) + table[(size_t)label[b] * D + i % D];
    }
}

/* ---- launchers ------------------------------------------------------------ */

extern "C" cudaError_t dit_cu_timestep_embedding(cudaStream_t stream, float *out, const float *t,
                                                 int B, int F, int shift)
{
    if (B < 0 || F < 0)
        return cudaErrorInvalidValue;
    const size_t n = (size_t)B * (F / 2 + 1);
    if (B == 0 || F == 0)
        return cudaSuccess;
    DIT_LAUNCH(timestep_embedding_kernel, ew_grid(n), EW_BLOCK, stream, out, t, F, shift, n);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_pos_embed_2d(cudaStream_t stream, float *out, int gh, int gw, int D,
                                           float base_h, float base_w, float interp)
{
    if (gh < 0 || gw < 0 || D < 0)
        return cudaErrorInvalidValue;
    const size_t n = (size_t)gh * gw * (D / 4);
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(pos_embed_2d_kernel, ew_grid(n), EW_BLOCK, stream, out, gh, gw, D, base_h, base_w,
               interp, n);
    return cudaGetLastError();
}

extern "C" cudaError_t dit_cu_add_embedding(cudaStream_t stream, float *out, const float *a,
                                            const float *table, const int32_t *label, int B, int D)
{
    if (B < 0 || D < 0)
        return cudaErrorInvalidValue;
    const size_t n = (size_t)B * D;
    if (n == 0)
        return cudaSuccess;
    DIT_LAUNCH(add_embedding_kernel, ew_grid(n), EW_BLOCK, stream, out, a, table, label, D, n);
    return cudaGetLastError();
}
