/* 3x3 'same' convolutions by Winograd F(2x2, 3x3), the CPU backend's fast
 * path: backend-cpu.c stays the plain im2col reference and calls in here.
 * Each 2x2 output tile is A^T [(G g G^T) . (B^T d B)] A over the 4x4 input
 * tile d: 16 products per tile instead of 36, so the sixteen GEMMs
 * (Cout x Cin) . (Cin x tiles) do 4/9 of im2col's multiply-adds and read a
 * 16/36 smaller transformed input. Tiles go in bands so the scratch stays
 * bounded like im2col's. Rounding differs from the direct sum by a few ulps
 * (the transforms only add, halve and subtract). */
#include "internal/conv-winograd.h"
#include "internal/fastmath.h"

#include "internal/cpu-gemm.h"
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Which 3x3 convs go through Winograd. Measured on 2 cores against
 * im2col + OpenBLAS: 0.75x at 128 channels, even at 256 (1.15x at 128^2),
 * 1.1-1.4x at 384-512; so by default from 256 channels in and out.
 * DIT_CONV=im2col or =winograd overrides (tests run both paths). Never
 * with bf16 products: the transforms would round in bf16 what they
 * amplify, where im2col keeps autocast's numerics. */
bool winograd_applies(const dit_backend *be, const dit_conv_desc *d)
{
    if (be->gemm_bf16)
        return false;
    static int mode = -1; /* 0 auto, 1 im2col, 2 winograd */
    if (mode < 0) {
        const char *v = getenv("DIT_CONV");
        mode = v && strcmp(v, "im2col") == 0 ? 1 : v && strcmp(v, "winograd") == 0 ? 2 : 0;
    }
    const int Hv = d->up2 ? 2 * d->H : d->H, Wv = d->up2 ? 2 * d->W : d->W;
    const bool shape = d->k == 3 && d->stride == 1 && d->pad_top == 1 && d->pad_left == 1 &&
                       d->Ho == Hv && d->Wo == Wv && d->Cin >= 8 && d->Cout >= 8;
    if (!shape || mode == 1)
        return false;
    return mode == 2 || (d->Cin >= 256 && d->Cout >= 256);
}

static int winograd_band_tiles(const dit_conv_desc *d)
{
    const size_t tiles = (size_t)((d->Ho + 1) / 2) * ((d->Wo + 1) / 2);
    size_t band = DIT_CONV_BAND_FLOATS / (16 * (size_t)(d->Cin + d->Cout));
    band = band < 64 ? 64 : band;
    return (int)(band < tiles ? band : tiles);
}

/* each thread's four padded input rows (winograd_inputs) */
static size_t winograd_row_floats(const dit_conv_desc *d)
{
    return (size_t)4 * (2 * ((d->Wo + 1) / 2) + 2);
}

size_t winograd_scratch(const dit_backend *be, const dit_conv_desc *d)
{
    return 16 * (size_t)d->Cin * d->Cout +
           16 * (size_t)(d->Cin + d->Cout) * (size_t)winograd_band_tiles(d) +
           (size_t)be->n_threads * winograd_row_floats(d);
}

/* U (16, Cout, Cin) = G g G^T for every filter g (3x3) */
static void winograd_filters(const dit_backend *be, float *U, const float *w, int Cout, int Cin)
{
    const size_t plane = (size_t)Cout * Cin;
#pragma omp parallel for num_threads(be->n_threads)
    for (size_t kc = 0; kc < plane; kc++) {
        const float *g = w + kc * 9;
        float t[4][3], u[4][4];
        for (int j = 0; j < 3; j++) { // t = G g: rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2
            t[0][j] = g[j];
            t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
            t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
            t[3][j] = g[6 + j];
        }
        for (int i = 0; i < 4; i++) { // u = t G^T
            u[i][0] = t[i][0];
            u[i][1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
            u[i][2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
            u[i][3] = t[i][2];
        }
        for (int xi = 0; xi < 16; xi++)
            U[xi * plane + kc] = u[xi / 4][xi % 4];
    }
}

/* V (16, Cin, nb) = B^T d B for tiles [t0, t0 + nb) of every channel; the
 * input is read as its 2x nearest upsampling with up2, zero outside. Per
 * channel and tile row the four input rows are first copied with their
 * padding, so the loop over the row's tiles has no branches and stores
 * each of the 16 planes contiguously. */
static void winograd_inputs(const dit_backend *be, float *V, float *row_scratch, const float *in,
                            const dit_conv_desc *d, int t0, int nb)
{
    const int tw = (d->Wo + 1) / 2, Hv = d->up2 ? 2 * d->H : d->H;
    const int Wv = d->up2 ? 2 * d->W : d->W, sh = d->up2 ? 1 : 0, Wp = 2 * tw + 2;
    const size_t plane = (size_t)d->Cin * nb;
#pragma omp parallel num_threads(be->n_threads)
    {
#ifdef _OPENMP
        float *rows = row_scratch + (size_t)omp_get_thread_num() * winograd_row_floats(d);
#else
        float *rows = row_scratch;
#endif
#pragma omp for schedule(static)
        for (int c = 0; c < d->Cin; c++) {
            const float *src = in + (size_t)c * d->H * d->W;
            for (int ty = t0 / tw; ty <= (t0 + nb - 1) / tw; ty++) {
                for (int r = 0; r < 4; r++) {
                    const int y = 2 * ty - 1 + r;
                    float *row = rows + (size_t)r * Wp;
                    for (int x = 0; x < Wp; x++) {
                        const int xv = x - 1;
                        row[x] = y >= 0 && y < Hv && xv >= 0 && xv < Wv
                                     ? src[(size_t)(y >> sh) * d->W + (xv >> sh)]
                                     : 0.0f;
                    }
                }
                const int a = (t0 > ty * tw ? t0 - ty * tw : 0);
                const int e = (t0 + nb < (ty + 1) * tw ? t0 + nb - ty * tw : tw);
                float *v = V + (size_t)c * nb + ((size_t)ty * tw - t0);
                const float *r0 = rows, *r1 = rows + Wp, *r2 = rows + 2 * Wp, *r3 = rows + 3 * Wp;
#pragma omp simd
                for (int tx = a; tx < e; tx++) {
                    float t[4][4];
                    for (int q = 0; q < 4; q++) { // t = B^T d
                        const int x = 2 * tx + q;
                        t[0][q] = r0[x] - r2[x];
                        t[1][q] = r1[x] + r2[x];
                        t[2][q] = r2[x] - r1[x];
                        t[3][q] = r1[x] - r3[x];
                    }
                    for (int r = 0; r < 4; r++) { // V = t B
                        v[(4 * r + 0) * plane + tx] = t[r][0] - t[r][2];
                        v[(4 * r + 1) * plane + tx] = t[r][1] + t[r][2];
                        v[(4 * r + 2) * plane + tx] = t[r][2] - t[r][1];
                        v[(4 * r + 3) * plane + tx] = t[r][1] - t[r][3];
                    }
                }
            }
        }
    }
}

/* out tiles = A^T m A (+ bias, act) from M (16, Cout, nb), cropped at the edges */
static void winograd_outputs(const dit_backend *be, float *out, const float *M,
                             const dit_conv_desc *d, const float *bias, dit_act act, int t0, int nb)
{
    const int tw = (d->Wo + 1) / 2;
    const size_t plane = (size_t)d->Cout * nb;
#pragma omp parallel for num_threads(be->n_threads) schedule(static)
    for (int k = 0; k < d->Cout; k++) {
        float *dst = out + (size_t)k * d->Ho * d->Wo;
        const float b = bias ? bias[k] : 0.0f;
        const float *mk = M + (size_t)k * nb;
        for (int ty = t0 / tw; ty <= (t0 + nb - 1) / tw; ty++) {
            const int a = (t0 > ty * tw ? t0 - ty * tw : 0);
            const int e = (t0 + nb < (ty + 1) * tw ? t0 + nb - ty * tw : tw);
            const float *m = mk + ((size_t)ty * tw - t0);
            float *row0 = dst + (size_t)(2 * ty) * d->Wo;
            float *row1 = 2 * ty + 1 < d->Ho ? row0 + d->Wo : NULL;
            for (int tx = a; tx < e; tx++) {
                float c[2][4];
                for (int q = 0; q < 4; q++) { // A^T m
                    const float m0 = m[(size_t)q * plane + tx],
                                m1 = m[(size_t)(4 + q) * plane + tx];
                    const float m2 = m[(size_t)(8 + q) * plane + tx];
                    const float m3 = m[(size_t)(12 + q) * plane + tx];
                    c[0][q] = m0 + m1 + m2;
                    c[1][q] = m1 - m2 - m3;
                }
                const int ox = 2 * tx;
                for (int r = 0; r < 2; r++) {
                    float *row = r ? row1 : row0;
                    if (!row)
                        break;
                    const float y0 = c[r][0] + c[r][1] + c[r][2] + b; // (.) A
                    const float y1 = c[r][1] - c[r][2] - c[r][3] + b;
                    row[ox] = act == DIT_ACT_NONE ? y0 : act_1(y0, act);
                    if (ox + 1 < d->Wo)
                        row[ox + 1] = act == DIT_ACT_NONE ? y1 : act_1(y1, act);
                }
            }
        }
    }
}

void conv2d_winograd(const dit_backend *be, float *out, const float *in, const float *w,
                     const float *bias, const dit_conv_desc *d, dit_act act, float *scratch)
{
    const int Cin = d->Cin, Cout = d->Cout, nbmax = winograd_band_tiles(d);
    const int tiles = ((d->Ho + 1) / 2) * ((d->Wo + 1) / 2);
    float *U = scratch, *V = U + 16 * (size_t)Cin * Cout, *M = V + 16 * (size_t)Cin * nbmax;
    float *rows = M + 16 * (size_t)Cout * nbmax;
    winograd_filters(be, U, w, Cout, Cin);
    for (int b = 0; b < d->B; b++) {
        const float *src = in + (size_t)b * Cin * d->H * d->W;
        float *dst = out + (size_t)b * Cout * d->Ho * d->Wo;
        for (int t0 = 0; t0 < tiles; t0 += nbmax) {
            const int nb = t0 + nbmax <= tiles ? nbmax : tiles - t0;
            winograd_inputs(be, V, rows, src, d, t0, nb);
            /* the sixteen products share the threads (each GEMM on one): one
             * parallel region instead of sixteen rounds of BLAS threads */
#pragma omp parallel for num_threads(be->n_threads) schedule(dynamic, 1)
            for (int xi = 0; xi < 16; xi++) // M[xi] (Cout, nb) = U[xi] (Cout, Cin) . V[xi]
                dit_cpu_gemm(be, false, false, Cout, nb, Cin, 1.0f, U + (size_t)xi * Cout * Cin,
                             Cin, V + (size_t)xi * Cin * nb, nb, 0.0f, M + (size_t)xi * Cout * nb,
                             nb, DIT_GEMM_NO_WEIGHT);
            winograd_outputs(be, dst, M, d, bias, act, t0, nb);
        }
    }
}
