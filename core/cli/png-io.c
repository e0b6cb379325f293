#include "png-io.h"

#include <fcntl.h>
#include <errno.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PNG_MAX_SIDE 32768

typedef struct {
    char msg[256];
} png_err;

static void on_error(png_structp png, png_const_charp msg)
{
    png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg; /* libpng warnings (e.g. bad sRGB chunk) are not fatal */
}

void png_data_clear(png_data *d)
{
    g_free(d->rgb);
    g_free(d->alpha);
    memset(d, 0, sizeof *d);
}

bool png_load(const char *path, png_data *out, GError **err)
{
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: cannot open: %s", path,
                    g_strerror(errno));
        return false;
    }
    png_byte sig[8];
    if (fread(sig, 1, 8, fp) != 8 || png_sig_cmp(sig, 0, 8)) {
        fclose(fp);
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: not a PNG file", path);
        return false;
    }
    /* the size the header claims, checked before libpng, whose own words
     * ("Invalid IHDR data") would not say which rule it broke */
    png_byte ihdr[16];
    if (fread(ihdr, 1, 16, fp) == 16 && memcmp(ihdr + 4, "IHDR", 4) == 0) {
        const uint32_t w = png_get_uint_32(ihdr + 8), h = png_get_uint_32(ihdr + 12);
        if (w == 0 || h == 0 || w > PNG_MAX_SIDE || h > PNG_MAX_SIDE) {
            fclose(fp);
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "%s: bad PNG: it claims %" G_GUINT32_FORMAT "x%" G_GUINT32_FORMAT
                        " pixels; each side must be 1 to %d",
                        path, w, h, PNG_MAX_SIDE);
            return false;
        }
    }
    if (fseek(fp, 8, SEEK_SET) != 0) {
        fclose(fp);
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: cannot seek in it", path);
        return false;
    }
    png_err e = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &e, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    /* volatile: the error path runs after a longjmp and must see these */
    png_bytep *volatile rows = NULL;
    png_bytep volatile pixels = NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOMEM, "%s: out of memory", path);
        return false;
    }
    if (setjmp(png_jmpbuf(png))) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: bad PNG: %s", path,
                    e.msg[0] ? e.msg : "read error");
        png_destroy_read_struct(&png, &info, NULL);
        g_free((void *)rows);
        g_free((void *)pixels);
        png_data_clear(out);
        fclose(fp);
        return false;
    }
    png_init_io(png, fp);
    png_set_sig_bytes(png, 8);
    png_set_user_limits(png, PNG_MAX_SIDE, PNG_MAX_SIDE);
    png_read_info(png, info);
    const int ct = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    /* to 8 or 16 bits per channel; palette to RGB; tRNS to alpha */
    png_set_expand(png);
    if (depth == 16)
        png_set_swap(png); /* little-endian 16-bit samples */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int W = (int)png_get_image_width(png, info), H = (int)png_get_image_height(png, info);
    const int ch = png_get_channels(png, info);
    depth = png_get_bit_depth(png, info);
    const size_t rowbytes = png_get_rowbytes(png, info);
    pixels = g_malloc(rowbytes * (size_t)H);
    rows = g_new(png_bytep, H);
    for (int y = 0; y < H; y++)
        rows[y] = pixels + rowbytes * (size_t)y;
    png_read_image(png, (png_bytepp)rows);
    png_read_end(png, NULL);

    out->width = W, out->height = H, out->bit_depth = depth;
    out->gray = !(ct & PNG_COLOR_MASK_COLOR) && ct != PNG_COLOR_TYPE_PALETTE;
    const bool has_alpha = ch == 2 || ch == 4;
    const int color = has_alpha ? ch - 1 : ch;
    const size_t px = (size_t)W * H;
    out->rgb = g_malloc(3 * px * sizeof(float));
    out->alpha = has_alpha ? g_malloc(px * sizeof(float)) : NULL;
    const float maxv = depth == 16 ? 65535.0f : 255.0f;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float v[4];
            for (int c = 0; c < ch; c++) {
                const size_t at = (size_t)x * ch + c;
                v[c] = depth == 16 ? ((const uint16_t *)rows[y])[at] : rows[y][at];
            }
            const size_t i = (size_t)y * W + x;
            for (int c = 0; c < 3; c++)
                out->rgb[c * px + i] = v[color == 1 ? 0 : c] / maxv * 2.0f - 1.0f;
            if (has_alpha)
                out->alpha[i] = v[ch - 1] / maxv;
        }
    png_destroy_read_struct(&png, &info, NULL);
    g_free((void *)rows);
    g_free((void *)pixels);
    fclose(fp);
    return true;
}

static uint16_t quantize(float v, int depth)
{
    const float maxv = depth == 16 ? 65535.0f : 255.0f;
    float q = v * maxv + 0.5f;
    q = q < 0 ? 0 : q > maxv ? maxv : q;
    return (uint16_t)q;
}

bool png_save(const char *path, const float *rgb, const float *alpha, int H, int W, int depth,
              GError **err)
{
    char *tmp = g_strdup_printf("%s.tmp-XXXXXX", path);
    /* 0666 less the umask, as a plain open() would give (mkstemp gives 0600) */
    int fd = g_mkstemp_full(tmp, O_RDWR, 0666);
    FILE *fp = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!fp) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: cannot write: %s", path,
                    g_strerror(errno));
        if (fd >= 0)
            close(fd), unlink(tmp);
        g_free(tmp);
        return false;
    }
    png_err e = {{0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    const int ch = alpha ? 4 : 3, bytes = depth == 16 ? 2 : 1;
    png_bytep row = g_malloc((size_t)W * ch * bytes);
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_IO, "%s: cannot write PNG: %s", path,
                    e.msg[0] ? e.msg : "out of memory");
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        unlink(tmp);
        g_free(tmp);
        g_free(row);
        return false;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, depth,
                 alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    if (depth == 16)
        png_set_swap(png);
    const size_t px = (size_t)W * H;
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            const size_t i = (size_t)y * W + x;
            for (int c = 0; c < ch; c++) {
                const float v = c < 3 ? rgb[c * px + i] * 0.5f + 0.5f : alpha[i];
                const uint16_t q = quantize(v, depth);
                if (depth == 16)
                    ((uint16_t *)row)[(size_t)x * ch + c] = q;
                else
                    row[(size_t)x * ch + c] = (png_byte)q;
            }
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    g_free(row);
    bool ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    ok = fclose(fp) == 0 && ok;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: cannot write: %s", path,
                    g_strerror(errno));
        unlink(tmp);
    }
    g_free(tmp);
    return ok;
}

bool png_load_mask(const char *path, float **mask, int *H, int *W, GError **err)
{
    png_data d;
    if (!png_load(path, &d, err))
        return false;
    const size_t px = (size_t)d.width * d.height;
    float *m = g_malloc(px * sizeof *m);
    for (size_t i = 0; i < px; i++) {
        const float level =
            d.gray ? d.rgb[i]
                   : 0.299f * d.rgb[i] + 0.587f * d.rgb[px + i] + 0.114f * d.rgb[2 * px + i];
        const float v = d.alpha ? d.alpha[i] : level * 0.5f + 0.5f;
        m[i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
    *mask = m;
    *H = d.height, *W = d.width;
    png_data_clear(&d);
    return true;
}
