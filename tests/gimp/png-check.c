/* png-check: verdicts on the PNG files the GIMP tests export.
 *
 *   png-check compare ORIG NEW MASK [--offset X,Y] [--min-changed F] [--alpha] [--follows]
 *       ORIG, NEW: a layer before and after the plug-in (same size, depth and
 *       channels); MASK: the image's selection as a gray PNG, the layer's
 *       pixel (x, y) sits at (x + X, y + Y) in it. Fails unless every pixel
 *       where the mask is 0 is bit-identical in NEW, at least F (default 0.9)
 *       of the fully selected pixels changed, and (with --alpha) the alpha
 *       channel is identical everywhere. With --follows the mean change of
 *       the selected pixels, in five bands of mask value (0-0.2 ... 0.8-1),
 *       must grow from band to band (each band at least 100 pixels);
 *       --min-changed 0 then drops the fully-selected check (a feathered
 *       selection may have no pixel at full value).
 *   png-check changed ORIG NEW [--min-changed F] [--alpha]
 *       no mask: at least F of all pixels changed (img2img on a whole layer).
 *   png-check placed ORIG NEW X Y
 *       outpaint: ORIG's pixels are bit-identical in NEW at (x + X, y + Y),
 *       NEW's other pixels are opaque, and at least half of them differ from
 *       the nearest pixel of ORIG's place (filled, not an edge copy).
 *   png-check info FILE
 *       prints "WIDTH HEIGHT BITDEPTH CHANNELS".
 *   png-check nonblank FILE [--min-size WxH]
 *       a valid PNG of at least that size whose pixels are not (nearly) all
 *       one colour (a screenshot that shows something).
 *
 * Exit status 0 pass, 1 fail, 2 usage or unreadable file. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int width, height, depth, channels; /* depth 8 or 16 after expansion */
    png_bytep *rows;
    png_structp png;
    png_infop info;
} image;

static int load(const char *path, image *im)
{
    memset(im, 0, sizeof *im);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "png-check: cannot open %s\n", path);
        return 0;
    }
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
        fprintf(stderr, "png-check: %s is not a PNG file\n", path);
        fclose(f);
        return 0;
    }
    im->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    im->info = png_create_info_struct(im->png);
    if (setjmp(png_jmpbuf(im->png))) {
        fprintf(stderr, "png-check: %s is damaged\n", path);
        png_destroy_read_struct(&im->png, &im->info, NULL);
        fclose(f);
        return 0;
    }
    png_init_io(im->png, f);
    png_set_sig_bytes(im->png, 8);
    /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha; 16 bits kept */
    png_read_png(im->png, im->info, PNG_TRANSFORM_EXPAND, NULL);
    fclose(f);
    im->width = (int)png_get_image_width(im->png, im->info);
    im->height = (int)png_get_image_height(im->png, im->info);
    im->depth = png_get_bit_depth(im->png, im->info);
    im->channels = png_get_channels(im->png, im->info);
    im->rows = png_get_rows(im->png, im->info);
    return 1;
}

static void unload(image *im)
{
    if (im->png)
        png_destroy_read_struct(&im->png, &im->info, NULL);
}

static unsigned sample(const image *im, int x, int y, int c)
{
    const png_bytep row = im->rows[y];
    if (im->depth == 16) {
        const png_bytep p = row + ((size_t)x * im->channels + c) * 2;
        return (unsigned)p[0] << 8 | p[1];
    }
    return row[(size_t)x * im->channels + c];
}

static unsigned max_value(const image *im) { return im->depth == 16 ? 65535u : 255u; }

/* the first channel of a gray(+alpha) or RGB mask */
static unsigned mask_at(const image *m, int x, int y)
{
    if (x < 0 || y < 0 || x >= m->width || y >= m->height)
        return 0;
    return sample(m, x, y, 0);
}

static int same_pixel(const image *a, const image *b, int x, int y)
{
    for (int c = 0; c < a->channels; c++)
        if (sample(a, x, y, c) != sample(b, x, y, c))
            return 0;
    return 1;
}

static int same_colour(const image *a, const image *b, int x, int y)
{
    const int nc = a->channels == 2 || a->channels == 4 ? a->channels - 1 : a->channels;
    for (int c = 0; c < nc; c++)
        if (sample(a, x, y, c) != sample(b, x, y, c))
            return 0;
    return 1;
}

static int compare(int argc, char **argv, int with_mask)
{
    const int nfiles = with_mask ? 3 : 2;
    if (argc < 2 + nfiles)
        return 2;
    int ox = 0, oy = 0, check_alpha = 0, follows = 0;
    double min_changed = 0.9;
    for (int i = 2 + nfiles; i < argc; i++) {
        if (strcmp(argv[i], "--offset") == 0 && i + 1 < argc)
            sscanf(argv[++i], "%d,%d", &ox, &oy);
        else if (strcmp(argv[i], "--min-changed") == 0 && i + 1 < argc)
            min_changed = atof(argv[++i]);
        else if (strcmp(argv[i], "--alpha") == 0)
            check_alpha = 1;
        else if (strcmp(argv[i], "--follows") == 0 && with_mask)
            follows = 1;
        else
            return 2;
    }
    image a, b, m = {0};
    if (!load(argv[2], &a) || !load(argv[3], &b) || (with_mask && !load(argv[4], &m)))
        return 2;
    int rc = 0;
    if (a.width != b.width || a.height != b.height || a.depth != b.depth ||
        a.channels != b.channels) {
        printf("FAIL: %s is %dx%d, %d-bit, %d channels but %s is %dx%d, %d-bit, %d channels\n",
               argv[2], a.width, a.height, a.depth, a.channels, argv[3], b.width, b.height, b.depth,
               b.channels);
        rc = 1;
        goto out;
    }
    long outside = 0, outside_diff = 0, inside = 0, inside_changed = 0, alpha_diff = 0;
    long first_bad_x = -1, first_bad_y = -1;
    enum { BANDS = 5 };
    double band_change[BANDS] = {0};
    long band_n[BANDS] = {0};
    const int has_alpha = a.channels == 2 || a.channels == 4;
    for (int y = 0; y < a.height; y++)
        for (int x = 0; x < a.width; x++) {
            const unsigned mv = with_mask ? mask_at(&m, x + ox, y + oy) : 1;
            const unsigned full = with_mask ? max_value(&m) : 1;
            if (mv > 0) { /* the change by the mask's value */
                const int band = mv >= full ? BANDS - 1 : (int)((double)mv / full * BANDS);
                const int nc = has_alpha ? a.channels - 1 : a.channels;
                const double top = a.depth == 16 ? 65535.0 : 255.0;
                for (int c = 0; c < nc; c++) {
                    const double d = (double)sample(&a, x, y, c) - sample(&b, x, y, c);
                    band_change[band] += (d < 0 ? -d : d) / (top * nc);
                }
                band_n[band]++;
            }
            if (mv == 0) {
                outside++;
                if (!same_pixel(&a, &b, x, y)) {
                    if (!outside_diff)
                        first_bad_x = x, first_bad_y = y;
                    outside_diff++;
                }
            } else if (mv == full) {
                inside++;
                inside_changed += !same_colour(&a, &b, x, y);
            }
            if (check_alpha && has_alpha &&
                sample(&a, x, y, a.channels - 1) != sample(&b, x, y, a.channels - 1))
                alpha_diff++;
        }
    printf("%dx%d %d-bit %d ch: unselected %ld (differing %ld), fully selected %ld (changed %ld = "
           "%.1f%%)%s\n",
           a.width, a.height, a.depth, a.channels, outside, outside_diff, inside, inside_changed,
           inside ? 100.0 * inside_changed / inside : 0.0,
           check_alpha ? (alpha_diff ? ", alpha DIFFERS" : ", alpha identical") : "");
    if (follows) {
        printf("mean change by mask value:");
        for (int k = 0; k < BANDS; k++) {
            band_change[k] /= band_n[k] ? band_n[k] : 1;
            printf(" %.1f-%.1f: %.4f (%ld px)", (double)k / BANDS, (k + 1.0) / BANDS,
                   band_change[k], band_n[k]);
        }
        printf("\n");
        for (int k = 0; k < BANDS; k++)
            if (band_n[k] < 100 || (k && band_change[k] <= band_change[k - 1])) {
                printf("FAIL: the change does not grow with the mask value (band %d)\n", k);
                rc = 1;
                break;
            }
    }
    if (with_mask && outside == 0) {
        printf("FAIL: no unselected pixels to compare\n");
        rc = 1;
    }
    if (outside_diff) {
        printf("FAIL: %ld unselected pixels differ, first at (%ld, %ld)\n", outside_diff,
               first_bad_x, first_bad_y);
        rc = 1;
    }
    if (min_changed > 0 && (inside == 0 || inside_changed < min_changed * inside)) {
        printf("FAIL: fewer than %.0f%% of the selected pixels changed\n", 100 * min_changed);
        rc = 1;
    }
    if (check_alpha && !has_alpha) {
        printf("FAIL: --alpha but the images have no alpha channel\n");
        rc = 1;
    }
    if (alpha_diff) {
        printf("FAIL: alpha differs at %ld pixels\n", alpha_diff);
        rc = 1;
    }
out:
    unload(&a), unload(&b), unload(&m);
    return rc;
}

static int placed(int argc, char **argv)
{
    image a, b;
    if (argc != 6 || !load(argv[2], &a))
        return 2;
    if (!load(argv[3], &b)) {
        unload(&a);
        return 2;
    }
    const int X = atoi(argv[4]), Y = atoi(argv[5]);
    int rc = 0;
    if (a.depth != b.depth || a.channels != b.channels || X < 0 || Y < 0 || X + a.width > b.width ||
        Y + a.height > b.height) {
        printf("FAIL: %s (%dx%d, %d bits, %d channels) does not fit in %s (%dx%d, %d, %d) at "
               "%d,%d\n",
               argv[2], a.width, a.height, a.depth, a.channels, argv[3], b.width, b.height, b.depth,
               b.channels, X, Y);
        rc = 1;
        goto out;
    }
    long moved = 0, border = 0, filled = 0, clear = 0;
    const int alpha = b.channels == 2 || b.channels == 4 ? b.channels - 1 : -1;
    for (int y = 0; y < b.height; y++)
        for (int x = 0; x < b.width; x++) {
            const int ax = x - X, ay = y - Y;
            if (ax >= 0 && ay >= 0 && ax < a.width && ay < a.height) {
                for (int c = 0; c < a.channels; c++)
                    if (sample(&a, ax, ay, c) != sample(&b, x, y, c)) {
                        moved++;
                        break;
                    }
                continue;
            }
            const int ex = x < X ? X : x >= X + a.width ? X + a.width - 1 : x;
            const int ey = y < Y ? Y : y >= Y + a.height ? Y + a.height - 1 : y;
            border++;
            for (int c = 0; c < (alpha < 0 ? b.channels : alpha); c++)
                if (sample(&b, x, y, c) != sample(&b, ex, ey, c)) {
                    filled++;
                    break;
                }
            clear += alpha >= 0 && sample(&b, x, y, alpha) != max_value(&b);
        }
    printf("%s in %s at %d,%d: %ld pixels moved; border %ld pixels, %ld filled, %ld not opaque\n",
           argv[2], argv[3], X, Y, moved, border, filled, clear);
    if (moved || clear || filled * 2 < border) {
        printf("FAIL: the source moved, or the border is not filled\n");
        rc = 1;
    }
out:
    unload(&a), unload(&b);
    return rc;
}

static int info(int argc, char **argv)
{
    image a;
    if (argc != 3 || !load(argv[2], &a))
        return 2;
    printf("%d %d %d %d\n", a.width, a.height, a.depth, a.channels);
    unload(&a);
    return 0;
}

static int nonblank(int argc, char **argv)
{
    int min_w = 1, min_h = 1;
    if (argc < 3)
        return 2;
    if (argc == 5 && strcmp(argv[3], "--min-size") == 0)
        sscanf(argv[4], "%dx%d", &min_w, &min_h);
    image a;
    if (!load(argv[2], &a))
        return 2;
    int rc = 0;
    if (a.width < min_w || a.height < min_h) {
        printf("FAIL: %s is %dx%d, smaller than %dx%d\n", argv[2], a.width, a.height, min_w, min_h);
        rc = 1;
    }
    /* how many pixels differ from the first one, and how many distinct
     * 8-bit gray levels appear */
    long differ = 0;
    int levels[256] = {0}, nlevels = 0;
    const int nc = a.channels >= 3 ? 3 : 1;
    for (int y = 0; y < a.height; y++)
        for (int x = 0; x < a.width; x++) {
            unsigned sum = 0;
            for (int c = 0; c < nc; c++)
                sum += sample(&a, x, y, c) >> (a.depth - 8);
            const int g = (int)(sum / nc);
            nlevels += !levels[g]++;
            for (int c = 0; c < nc; c++)
                if (sample(&a, x, y, c) != sample(&a, 0, 0, c)) {
                    differ++;
                    break;
                }
        }
    const double frac = (double)differ / ((double)a.width * a.height);
    printf("%s: %dx%d, %.1f%% of pixels differ from the corner, %d gray levels\n", argv[2], a.width,
           a.height, 100 * frac, nlevels);
    if (frac < 0.02 || nlevels < 8) {
        printf("FAIL: %s looks blank\n", argv[2]);
        rc = 1;
    }
    unload(&a);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 2;
    if (argc >= 2 && strcmp(argv[1], "compare") == 0)
        rc = compare(argc, argv, 1);
    else if (argc >= 2 && strcmp(argv[1], "changed") == 0)
        rc = compare(argc, argv, 0);
    else if (argc >= 2 && strcmp(argv[1], "placed") == 0)
        rc = placed(argc, argv);
    else if (argc >= 2 && strcmp(argv[1], "info") == 0)
        rc = info(argc, argv);
    else if (argc >= 2 && strcmp(argv[1], "nonblank") == 0)
        rc = nonblank(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: png-check compare ORIG NEW MASK [--offset X,Y] [--min-changed F] "
                        "[--alpha] [--follows]\n"
                        "       png-check changed ORIG NEW [--min-changed F] [--alpha]\n"
                        "       png-check placed ORIG NEW X Y\n"
                        "       png-check info FILE\n"
                        "       png-check nonblank FILE [--min-size WxH]\n");
    return rc;
}
