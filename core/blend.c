/* Mask shaping and blending for inpainting: see internal/blend.h. */
#include "internal/blend.h"

#include <math.h>
#include <stddef.h>

void blend_distance(const float *mask, int H, int W, bool to_selected, float *d)
{
    const float diag = 1.41421356f, far = 1e30f;
    for (size_t i = 0; i < (size_t)H * W; i++)
        d[i] = (mask[i] > 0) == to_selected ? 0.0f : far;
    for (int pass = 0; pass < 2; pass++) { /* forward, then backward */
        const int step = pass ? -1 : 1;
        for (int y = pass ? H - 1 : 0; y >= 0 && y < H; y += step)
            for (int x = pass ? W - 1 : 0; x >= 0 && x < W; x += step) {
                float v = d[(size_t)y * W + x];
                const int yy = y - step;
                for (int dx = -1; dx <= 1; dx++) {
                    const int xx = x + dx;
                    if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                        v = fminf(v, d[(size_t)yy * W + xx] + (dx ? diag : 1.0f));
                }
                if (x - step >= 0 && x - step < W)
                    v = fminf(v, d[(size_t)y * W + x - step] + 1.0f);
                d[(size_t)y * W + x] = v;
            }
    }
}

void blend_feather(const float *mask, int H, int W, int feather, float *out)
{
    blend_distance(mask, H, W, false, out);
    for (size_t i = 0; i < (size_t)H * W; i++) {
        const float t = fminf(out[i] / (float)feather, 1.0f);
        out[i] = mask[i] * t * t * (3.0f - 2.0f * t);
    }
}

int blend_auto_feather(const float *mask, int H, int W)
{
    int y0 = H, y1 = -1, x0 = W, x1 = -1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (mask[(size_t)y * W + x] > 0.0f) {
                y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
                x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
            }
    if (y1 < 0)
        return 0;
    const int h = y1 - y0 + 1, w = x1 - x0 + 1, shorter = h < w ? h : w;
    const int f = (int)lround(shorter / 5.0);
    return f > 1 ? f : 1;
}

void blend_match_colour(float *gen, int B, const float *src, const float *mask, int H, int W,
                        int ring, float *scratch)
{
    const size_t px = (size_t)H * W;
    float *d_in = scratch, *d_out = scratch + px;
    blend_distance(mask, H, W, false, d_in); /* selected: how deep inside */
    blend_distance(mask, H, W, true, d_out); /* unselected: how far outside */
    /* the source's mean in the outer ring, then each image's in the inner
     * one; a mean shift is the same in every linear colour space, so RGB */
    double out[3] = {0}, n_out = 0, n_in = 0;
    for (size_t i = 0; i < px; i++) {
        const bool outer = mask[i] == 0 && d_out[i] <= ring;
        for (int c = 0; c < 3 && outer; c++)
            out[c] += src[c * px + i];
        n_out += outer;
        n_in += mask[i] > 0 && d_in[i] <= ring;
    }
    if (n_in == 0 || n_out == 0) /* everything or nothing selected */
        return;
    for (int b = 0; b < B; b++) {
        float *g = gen + (size_t)b * 3 * px;
        double in[3] = {0};
        for (size_t i = 0; i < px; i++)
            for (int c = 0; c < 3 && mask[i] > 0 && d_in[i] <= ring; c++)
                in[c] += g[c * px + i];
        for (size_t i = 0; i < px; i++) {
            const float w = mask[i] > 0 ? fmaxf(0.0f, 1.0f - d_in[i] / (4.0f * ring)) : 0.0f;
            for (int c = 0; c < 3 && w > 0; c++)
                g[c * px + i] += w * (float)(out[c] / n_out - in[c] / n_in);
        }
    }
}
