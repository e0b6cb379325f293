/* PNG in and out for the dit tool: 8/16-bit gray, gray+alpha, RGB, RGBA and
 * palette images to planar floats in [-1, 1] (alpha kept apart in [0, 1]). */
#ifndef DIT_PNG_IO_H
#define DIT_PNG_IO_H

#include <glib.h>
#include <stdbool.h>

typedef struct {
    int width, height;
    int bit_depth; /* 8 or 16 as stored */
    bool gray;     /* stored as gray (or gray + alpha) */
    float *rgb;    /* (3, H, W) in [-1, 1] */
    float *alpha;  /* (H, W) in [0, 1], or NULL */
} png_data;

bool png_load(const char *path, png_data *out, GError **err);
/* Writes atomically (temp file + rename). alpha may be NULL. */
bool png_save(const char *path, const float *rgb, const float *alpha, int height, int width,
              int bit_depth, GError **err);
/* A mask: the alpha channel when the PNG has one, else its gray level (luma
 * of RGB); values in [0, 1], soft edges kept. (H, W), g_free. */
bool png_load_mask(const char *path, float **mask, int *height, int *width, GError **err);
void png_data_clear(png_data *d);

#endif
