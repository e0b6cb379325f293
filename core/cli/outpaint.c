/* dit outpaint's source: the input on a canvas grown by the asked borders,
 * and the mask of what to fill. Sampling is then inpainting. */
#include "cli.h"
#include "png-io.h"

#include <string.h>

/* the largest border on one side, and the largest grown canvas */
enum { MAX_BORDER = 8192 };
static const double max_pixels = 1 << 28;

int cli_outpaint_source(const int border[4], png_data *src, float **mask_out)
{
    const int top = border[0], left = border[1], bottom = border[2], right = border[3];
    for (int i = 0; i < 4; i++)
        if (border[i] < 0 || border[i] > MAX_BORDER) {
            fprintf(stderr, "dit: a border must be 0..%d pixels, got %d\n", MAX_BORDER, border[i]);
            return EXIT_BAD_INPUT;
        }
    const int H = src->height, W = src->width, H2 = H + top + bottom, W2 = W + left + right;
    if ((double)H2 * W2 > max_pixels) {
        fprintf(stderr, "dit: the grown canvas (%dx%d) is too large\n", W2, H2);
        return EXIT_BAD_INPUT;
    }
    const size_t n2 = (size_t)H2 * W2;
    float *rgb = g_malloc(3 * n2 * sizeof *rgb), *mask = g_malloc(n2 * sizeof *mask);
    float *alpha = src->alpha ? g_malloc(n2 * sizeof *alpha) : NULL;
    dit_image_extend(src->rgb, 3, H, W, top, left, bottom, right, rgb);
    size_t fill = 0;
    for (int y = 0; y < H2; y++)
        for (int x = 0; x < W2; x++) {
            const size_t i = (size_t)y * W2 + x;
            const bool inside = y >= top && y < top + H && x >= left && x < left + W;
            const float a = inside && src->alpha ? src->alpha[(size_t)(y - top) * W + x - left] : 1;
            /* the border, and what the input leaves fully transparent */
            mask[i] = !inside || a == 0.0f ? 1.0f : 0.0f;
            if (alpha) /* what is filled comes out opaque */
                alpha[i] = mask[i] > 0 ? 1.0f : a;
            fill += mask[i] > 0;
        }
    if (!fill) {
        fprintf(stderr, "dit: nothing to outpaint: give a border (--extend, --left, --top, "
                        "--right, --bottom) or an image with transparent pixels\n");
        g_free(rgb), g_free(mask), g_free(alpha);
        return EXIT_BAD_INPUT;
    }
    g_free(src->rgb), g_free(src->alpha);
    src->rgb = rgb, src->alpha = alpha;
    src->height = H2, src->width = W2;
    *mask_out = mask;
    return 0;
}
