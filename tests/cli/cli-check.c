/* Helper for the CLI tests: makes masks and images, compares PNGs pixel by
 * pixel, and checks `dit encode | dit decode` against the library calls.
 *   cli-check mask W H X0 Y0 X1 Y1 [FEATHER] OUT.png   rectangle, soft edge
 *   cli-check dims IN.png W H                         fails unless W x H
 *   cli-check resize IN.png W H OUT.png
 *   cli-check outside A.png B.png MASK.png   -> "outside N inside M" (differing pixels)
 *   cli-check same A.png B.png               -> exit 0 if every pixel is equal
 *   cli-check placed A.png B.png X Y         -> "placed N outside M": pixels of A that
 *                                             differ in B at offset (X, Y); pixels of B
 *                                             beside A that differ from B's nearest pixel
 *                                             of A's rectangle (0: a plain edge copy)
 *   cli-check roundtrip VAE IN.png OUT.png   -> OUT within 1/255 of decode(encode(IN))
 *   cli-check poke IN OUT TENSOR VALUE       copy a model with element 0 of TENSOR set (nan, inf, x)
 *   cli-check rawst 'JSON' DATA_BYTES OUT     a safetensors file with this header, zero data
 *   cli-check pngdims W H OUT.png             a PNG header claiming W x H, no pixel data
 *   cli-check forward MODEL IO                the model's forward on IO's x, t, y vs its out
 *   cli-check nn-class IMAGE.png              "class N NAME rms D": the Fashion-MNIST
 *                                             training image nearest to IMAGE (gray,
 *                                             box-averaged to 32x32 as the padded set) */
#include "data.h"
#include "dit.h"
#include "png-io.h"
#include "../common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything a subcommand allocates is registered here and freed at exit,
 * whichever way it exits (LeakSanitizer checks the sanitizer build). */
static GPtrArray *owned_mem, *owned_png;
static dit_ctx *owned_ctx;
static dit_vae *owned_vae;
static dit_model *owned_model;

static void release(void)
{
    if (owned_png)
        for (guint i = 0; i < owned_png->len; i++) {
            png_data_clear(owned_png->pdata[i]);
            g_free(owned_png->pdata[i]);
        }
    if (owned_mem)
        g_ptr_array_free(owned_mem, TRUE);
    if (owned_png)
        g_ptr_array_free(owned_png, TRUE);
    dit_vae_free(owned_vae);
    dit_model_free(owned_model);
    dit_ctx_free(owned_ctx);
}

static void *own(void *p)
{
    g_ptr_array_add(owned_mem, p);
    return p;
}

static int fail(const char *msg)
{
    fprintf(stderr, "cli-check: %s\n", msg);
    return 1;
}

static bool load(const char *p, png_data *d)
{
    GError *e = NULL;
    png_data *keep = g_new0(png_data, 1);
    g_ptr_array_add(owned_png, keep);
    if (png_load(p, keep, &e)) {
        *d = *keep;
        return true;
    }
    fprintf(stderr, "cli-check: %s\n", e->message);
    g_error_free(e);
    return false;
}

static bool pixel_equal(const png_data *a, const png_data *b, size_t i)
{
    const size_t px = (size_t)a->width * a->height;
    for (int c = 0; c < 3; c++) /* compare at 8-bit precision */
        if (lrintf((a->rgb[c * px + i] + 1) * 127.5f) != lrintf((b->rgb[c * px + i] + 1) * 127.5f))
            return false;
    return true;
}

int main(int argc, char **argv)
{
    owned_mem = g_ptr_array_new_with_free_func(free);
    owned_png = g_ptr_array_new();
    owned_ctx = dit_ctx_new();
    atexit(release);
    if (argc < 2)
        return fail("usage: see the file's opening comment");
    GError *e = NULL;
    if (!strcmp(argv[1], "mask") && (argc == 9 || argc == 10)) {
        const int W = atoi(argv[2]), H = atoi(argv[3]), x0 = atoi(argv[4]), y0 = atoi(argv[5]);
        const int x1 = atoi(argv[6]), y1 = atoi(argv[7]), f = argc == 10 ? atoi(argv[8]) : 0;
        float *rgb = own(malloc((size_t)3 * W * H * sizeof *rgb));
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float v = 0;
                if (x >= x0 && x <= x1 && y >= y0 && y <= y1) {
                    const int d = 1 + (int)fmin(fmin(x - x0, x1 - x), fmin(y - y0, y1 - y));
                    v = f > 0 ? fminf((float)d / f, 1.0f) : 1.0f;
                }
                for (int c = 0; c < 3; c++)
                    rgb[((size_t)c * H + y) * W + x] = v * 2 - 1;
            }
        bool ok = png_save(argv[argc - 1], rgb, NULL, H, W, 8, &e);
        return ok ? 0 : fail(e->message);
    }
    if (!strcmp(argv[1], "dims") && argc == 5) { /* a PNG's width and height */
        png_data d;
        if (!load(argv[2], &d))
            return 1;
        if (d.width != atoi(argv[3]) || d.height != atoi(argv[4])) {
            fprintf(stderr, "cli-check: %s is %dx%d\n", argv[2], d.width, d.height);
            return 1;
        }
        return 0;
    }
    if (!strcmp(argv[1], "resize") && argc == 6) {
        png_data d;
        if (!load(argv[2], &d))
            return 1;
        const int W = atoi(argv[3]), H = atoi(argv[4]);
        float *o = own(malloc((size_t)3 * W * H * sizeof *o));
        dit_image_resize(owned_ctx, d.rgb, 3, d.height, d.width, o, H, W);
        bool ok = png_save(argv[5], o, NULL, H, W, 8, &e);
        return ok ? 0 : fail(e->message);
    }
    if (!strcmp(argv[1], "outside") && argc == 5) {
        png_data a, b;
        float *m;
        int mh, mw;
        if (!load(argv[2], &a) || !load(argv[3], &b) || !png_load_mask(argv[4], &m, &mh, &mw, &e))
            return fail("cannot read inputs");
        g_ptr_array_add(owned_mem, g_memdup2(m, sizeof(float) * (size_t)mw * mh));
        g_free(m);
        m = owned_mem->pdata[owned_mem->len - 1];
        if (a.width != b.width || a.height != b.height || mw != a.width || mh != a.height)
            return fail("sizes differ");
        size_t out = 0, in = 0;
        for (size_t i = 0; i < (size_t)a.width * a.height; i++) {
            const bool eq = pixel_equal(&a, &b, i);
            if (m[i] == 0.0f)
                out += !eq;
            else
                in += !eq;
        }
        printf("outside %zu inside %zu\n", out, in);
        return 0;
    }
    if (!strcmp(argv[1], "same") && argc == 4) {
        png_data a, b;
        if (!load(argv[2], &a) || !load(argv[3], &b))
            return 1;
        if (a.width != b.width || a.height != b.height)
            return fail("sizes differ");
        size_t diff = 0;
        for (size_t i = 0; i < (size_t)a.width * a.height; i++)
            diff += !pixel_equal(&a, &b, i);
        printf("%zu pixels differ\n", diff);
        return diff ? 1 : 0;
    }
    if (!strcmp(argv[1], "placed") && argc == 6) {
        png_data a, b;
        if (!load(argv[2], &a) || !load(argv[3], &b))
            return 1;
        const int x0 = atoi(argv[4]), y0 = atoi(argv[5]);
        if (x0 < 0 || y0 < 0 || x0 + a.width > b.width || y0 + a.height > b.height)
            return fail("A does not fit in B at that offset");
        const size_t apx = (size_t)a.width * a.height, bpx = (size_t)b.width * b.height;
        size_t placed = 0, outside = 0;
        for (int y = 0; y < b.height; y++)
            for (int x = 0; x < b.width; x++) {
                const int ax = x - x0, ay = y - y0;
                const size_t bi = (size_t)y * b.width + x;
                if (ax >= 0 && ay >= 0 && ax < a.width && ay < a.height) {
                    for (int c = 0; c < 3; c++) /* A's value at its place in B */
                        if (lrintf((a.rgb[c * apx + (size_t)ay * a.width + ax] + 1) * 127.5f) !=
                            lrintf((b.rgb[c * bpx + bi] + 1) * 127.5f)) {
                            placed++;
                            break;
                        }
                    continue;
                }
                const int cx = x < x0 ? x0 : x >= x0 + a.width ? x0 + a.width - 1 : x;
                const int cy = y < y0 ? y0 : y >= y0 + a.height ? y0 + a.height - 1 : y;
                const size_t ci = (size_t)cy * b.width + cx;
                for (int c = 0; c < 3; c++)
                    if (lrintf((b.rgb[c * bpx + bi] + 1) * 127.5f) !=
                        lrintf((b.rgb[c * bpx + ci] + 1) * 127.5f)) {
                        outside++;
                        break;
                    }
            }
        printf("placed %zu outside %zu\n", placed, outside);
        return 0;
    }
    if (!strcmp(argv[1], "roundtrip") && argc == 5) {
        dit_ctx *ctx = owned_ctx;
        png_data in, out;
        if (dit_vae_load(ctx, argv[2], &owned_vae) || !load(argv[3], &in) || !load(argv[4], &out))
            return fail(dit_last_error(ctx));
        dit_vae *v = owned_vae;
        const dit_vae_info *vi = dit_vae_config(v);
        const int H = in.height, W = in.width, f = vi->downscale;
        const size_t n = (size_t)vi->latent_channels * (H / f) * (W / f);
        float *lat = own(malloc(n * sizeof *lat)),
              *img = own(malloc((size_t)3 * H * W * sizeof *img));
        if (dit_vae_encode(ctx, v, 1, H, W, in.rgb, lat, NULL) ||
            dit_vae_decode(ctx, v, 1, H / f, W / f, lat, img))
            return fail(dit_last_error(ctx));
        double worst = 0;
        for (size_t i = 0; i < (size_t)3 * H * W; i++) {
            const float lib = fminf(fmaxf(img[i], -1.0f), 1.0f);
            worst = fmax(worst, fabs(lib - out.rgb[i]) / 2.0);
        }
        printf("CLI encode+decode vs library: max |diff| %.5f of full range\n", worst);
        return worst <= 1.0 / 255 + 1e-6 ? 0 : 1;
    }
    if (!strcmp(argv[1], "poke") && argc == 6) {
        tensor_list tl;
        if (!tl_load(owned_ctx, argv[2], &tl))
            return fail("cannot read the model");
        size_t n;
        float *t = tl_data(&tl, argv[4], &n);
        int rc = 0;
        if (!t || !n) {
            rc = fail("no such tensor");
        } else {
            t[0] = (float)g_ascii_strtod(argv[5], NULL);
            if (tl_write(owned_ctx, &tl, argv[3]) != DIT_OK)
                rc = fail(dit_last_error(owned_ctx));
        }
        tl_free(&tl);
        return rc;
    }
    if (!strcmp(argv[1], "rawst") && argc == 5) {
        const size_t hl = strlen(argv[2]), dl = (size_t)atol(argv[3]);
        FILE *f = fopen(argv[4], "wb");
        if (!f)
            return fail("cannot write");
        for (int i = 0; i < 8; i++)
            fputc((int)((uint64_t)hl >> (8 * i) & 0xff), f);
        fwrite(argv[2], 1, hl, f);
        for (size_t i = 0; i < dl; i++)
            fputc(0, f);
        return fclose(f) == 0 ? 0 : fail("write failed");
    }
    if (!strcmp(argv[1], "pngdims") && argc == 5) {
        /* signature + an IHDR chunk (CRC computed) and nothing else */
        const uint32_t W = (uint32_t)atol(argv[2]), H = (uint32_t)atol(argv[3]);
        uint8_t ihdr[17] = {'I',     'H',    'D', 'R', W >> 24, W >> 16, W >> 8, W, H >> 24,
                            H >> 16, H >> 8, H,   8,   2,       0,       0,      0};
        uint32_t crc = 0xffffffffu;
        for (int i = 0; i < 17; i++) {
            crc ^= ihdr[i];
            for (int k = 0; k < 8; k++)
                crc = crc >> 1 ^ (0xedb88320u & (0u - (crc & 1)));
        }
        crc ^= 0xffffffffu;
        FILE *f = fopen(argv[4], "wb");
        if (!f)
            return fail("cannot write");
        static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        const uint8_t len[4] = {0, 0, 0, 13}, c[4] = {crc >> 24, crc >> 16, crc >> 8, crc};
        fwrite(sig, 1, 8, f), fwrite(len, 1, 4, f), fwrite(ihdr, 1, 17, f), fwrite(c, 1, 4, f);
        return fclose(f) == 0 ? 0 : fail("write failed");
    }
    if (!strcmp(argv[1], "nn-class") && argc == 3) {
        enum { S = 32 };
        png_data d;
        if (!load(argv[2], &d))
            return 2;
        if (d.width % S || d.height != d.width)
            return fail("nn-class takes a square image, a multiple of 32 on each side");
        const int f = d.width / S;
        float small[S * S];
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                double s = 0; /* the mean of the box, over the three planes */
                for (int c = 0; c < 3; c++)
                    for (int dy = 0; dy < f; dy++)
                        for (int dx = 0; dx < f; dx++)
                            s += d.rgb[((size_t)c * d.height + y * f + dy) * d.width + x * f + dx];
                small[y * S + x] = (float)(s / (3.0 * f * f));
            }
        dataset train = {0};
        GError *err = NULL;
        if (!dataset_load_named("fashion-mnist", S, &train, &err)) {
            fprintf(stderr, "cli-check: %s\n", err->message);
            g_error_free(err);
            return 77;
        }
        int best = -1;
        double best_d = INFINITY;
        for (int i = 0; i < train.n; i++) {
            const float *t = train.images + (size_t)i * S * S;
            double dd = 0;
            for (int k = 0; k < S * S; k++)
                dd += (double)(small[k] - t[k]) * (small[k] - t[k]);
            if (dd < best_d)
                best_d = dd, best = i;
        }
        const int cls = train.labels[best];
        printf("class %d %s rms %.3f\n", cls, train.class_names ? train.class_names[cls] : "",
               sqrt(best_d / (S * S)));
        dataset_clear(&train);
        return 0;
    }
    if (!strcmp(argv[1], "forward") && argc == 4) {
        dit_ctx *ctx = owned_ctx;
        st_file *f = NULL;
        if (dit_model_load(ctx, argv[2], &owned_model) || st_open(ctx, argv[3], &f))
            return fail(dit_last_error(ctx));
        dit_model *m = owned_model;
        int64_t xs[8];
        size_t nref = 0, ny = 0;
        float *x = own(read_tensor(ctx, f, "x", NULL, xs, NULL));
        float *t = own(read_tensor(ctx, f, "t", NULL, NULL, NULL));
        float *yf = own(read_tensor(ctx, f, "y", &ny, NULL, NULL));
        float *ref = own(read_tensor(ctx, f, "out", &nref, NULL, NULL));
        st_close(f);
        if (!x || !t || !yf || !ref)
            return fail("io file incomplete");
        int32_t *y = own(malloc(ny * sizeof *y));
        for (size_t i = 0; i < ny; i++)
            y[i] = (int32_t)lrintf(yf[i]);
        float *out = own(malloc(nref * sizeof *out));
        if (dit_model_forward(ctx, m, (int)xs[0], (int)xs[2], (int)xs[3], x, t, y, out))
            return fail(dit_last_error(ctx));
        return compare_rel("converted model forward", out, ref, nref, 1e-4) ? 0 : 1;
    }
    return fail("unknown or malformed command");
}
