/* Image helpers shared by the CLI and the plug-in: resampling, masks and
 * compositing on planar float images (C, H, W). */
#include "internal/impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Separable resampling with a triangle filter whose support scales with the
 * reduction (area-like when shrinking, bilinear when enlarging); pixel
 * centres aligned as (i + 0.5) * scale - 0.5. */
typedef struct {
    int first, count;
    float *w;
} taps;

static taps *make_taps(int in, int out)
{
    const double scale = (double)in / out;
    const double support = scale > 1.0 ? scale : 1.0;
    taps *t = calloc((size_t)out, sizeof *t);
    if (!t)
        return NULL;
    for (int o = 0; o < out; o++) {
        const double center = (o + 0.5) * scale - 0.5;
        int lo = (int)floor(center - support) + 1, hi = (int)ceil(center + support) - 1;
        lo = lo < 0 ? 0 : lo;
        hi = hi > in - 1 ? in - 1 : hi;
        if (hi < lo)
            hi = lo;
        t[o].first = lo;
        t[o].count = hi - lo + 1;
        t[o].w = malloc((size_t)t[o].count * sizeof(float));
        double sum = 0;
        for (int i = lo; i <= hi; i++) {
            double d = fabs(i - center) / support;
            double wv = d < 1.0 ? 1.0 - d : 0.0;
            t[o].w[i - lo] = (float)wv;
            sum += wv;
        }
        for (int i = 0; i < t[o].count; i++)
            t[o].w[i] = sum > 0 ? (float)(t[o].w[i] / sum) : (i == 0 ? 1.0f : 0.0f);
    }
    return t;
}

static void free_taps(taps *t, int n)
{
    if (!t)
        return;
    for (int i = 0; i < n; i++)
        free(t[i].w);
    free(t);
}

dit_status dit_image_resize(dit_ctx *ctx, const float *src, int C, int H, int W, float *dst, int H2,
                            int W2)
{
    if (H <= 0 || W <= 0 || H2 <= 0 || W2 <= 0 || C <= 0)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "resize %dx%d -> %dx%d: sizes must be positive",
                         W, H, W2, H2);
    if (H == H2 && W == W2) {
        memcpy(dst, src, (size_t)C * H * W * sizeof *dst);
        return DIT_OK;
    }
    taps *tx = make_taps(W, W2), *ty = make_taps(H, H2);
    float *mid = malloc((size_t)C * H * W2 * sizeof *mid);
    if (!tx || !ty || !mid) {
        free_taps(tx, W2), free_taps(ty, H2), free(mid);
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory resizing %dx%d to %dx%d", W, H, W2, H2);
    }
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++) {
            const float *row = src + ((size_t)c * H + y) * W;
            float *o = mid + ((size_t)c * H + y) * W2;
            for (int x = 0; x < W2; x++) {
                float s = 0;
                for (int k = 0; k < tx[x].count; k++)
                    s += tx[x].w[k] * row[tx[x].first + k];
                o[x] = s;
            }
        }
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H2; y++) {
            float *o = dst + ((size_t)c * H2 + y) * W2;
            for (int x = 0; x < W2; x++) {
                float s = 0;
                for (int k = 0; k < ty[y].count; k++)
                    s += ty[y].w[k] * mid[((size_t)c * H + ty[y].first + k) * W2 + x];
                o[x] = s;
            }
        }
    free_taps(tx, W2), free_taps(ty, H2), free(mid);
    return DIT_OK;
}

void dit_image_composite(float *out, const float *generated, const float *source, const float *mask,
                         int C, int H, int W)
{
    const size_t px = (size_t)H * W;
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < px; i++) {
            const float m = mask[i];
            const size_t j = (size_t)c * px + i;
            out[j] = m == 0.0f ? source[j] : m * generated[j] + (1.0f - m) * source[j];
        }
}

void dit_image_extend(const float *src, int C, int H, int W, int top, int left, int bottom,
                      int right, float *dst)
{
    const int H2 = H + top + bottom, W2 = W + left + right;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H2; y++) {
            const int sy = y < top ? 0 : y - top >= H ? H - 1 : y - top;
            const float *row = src + ((size_t)c * H + sy) * W;
            float *out = dst + ((size_t)c * H2 + y) * W2;
            for (int x = 0; x < W2; x++)
                out[x] = row[x < left ? 0 : x - left >= W ? W - 1 : x - left];
        }
}

/* one pass of the square max filter: rows (horizontal) or columns */
static void max_pass(const float *in, int H, int W, int px, bool rows, float *out)
{
    const int n = rows ? W : H, lines = rows ? H : W;
    const size_t step = rows ? 1 : (size_t)W, line_step = rows ? (size_t)W : 1;
    for (int l = 0; l < lines; l++) {
        const float *a = in + l * line_step;
        float *o = out + l * line_step;
        for (int i = 0; i < n; i++) {
            const int lo = i - px < 0 ? 0 : i - px, hi = i + px >= n ? n - 1 : i + px;
            float m = a[(size_t)lo * step];
            for (int j = lo + 1; j <= hi; j++)
                m = a[(size_t)j * step] > m ? a[(size_t)j * step] : m;
            o[(size_t)i * step] = m;
        }
    }
}

dit_status dit_mask_expand(dit_ctx *ctx, const float *mask, int H, int W, int px, float *out)
{
    if (!mask || !out || H <= 0 || W <= 0 || px < 0)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_mask_expand: bad arguments");
    if (px == 0) {
        memcpy(out, mask, (size_t)H * W * sizeof *out);
        return DIT_OK;
    }
    float *tmp = malloc((size_t)H * W * sizeof *tmp);
    if (!tmp)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory growing a %dx%d mask", W, H);
    max_pass(mask, H, W, px, true, tmp);
    max_pass(tmp, H, W, px, false, out);
    free(tmp);
    return DIT_OK;
}
