#include "data.h"

#include "dit.h"
#include "png-io.h"
#include "internal/safetensors.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static const char *const fmnist_names[] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                           "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                           "Bag",         "Ankle boot"};

void dataset_clear(dataset *d)
{
    g_free(d->images);
    g_free(d->labels);
    g_strfreev(d->class_names);
    memset(d, 0, sizeof *d);
}

/* whole file through zlib (reads plain files too) */
static guint8 *read_gz(const char *path, gsize *len, GError **err)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT, "%s: cannot open", path);
        return NULL;
    }
    GByteArray *buf = g_byte_array_new();
    guint8 chunk[1 << 16];
    int r;
    while ((r = gzread(gz, chunk, sizeof chunk)) > 0)
        g_byte_array_append(buf, chunk, (guint)r);
    int errnum = 0;
    const char *msg = r < 0 ? gzerror(gz, &errnum) : NULL;
    gzclose(gz);
    if (r < 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_IO, "%s: %s", path, msg ? msg : "read error");
        g_byte_array_free(buf, TRUE);
        return NULL;
    }
    *len = buf->len;
    return g_byte_array_free(buf, FALSE);
}

static uint32_t be32(const guint8 *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

bool dataset_load_idx(const char *ip, const char *lp, int size, dataset *out, GError **err)
{
    memset(out, 0, sizeof *out);
    gsize ilen = 0, llen = 0;
    guint8 *img = read_gz(ip, &ilen, err);
    guint8 *lab = img ? read_gz(lp, &llen, err) : NULL;
    bool ok = false;
    if (!img || !lab)
        goto out;
    if (ilen < 16 || be32(img) != 0x00000803) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "%s: not an IDX image file (magic 0x00000803)", ip);
        goto out;
    }
    if (llen < 8 || be32(lab) != 0x00000801) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "%s: not an IDX label file (magic 0x00000801)", lp);
        goto out;
    }
    const uint32_t n = be32(img + 4), rows = be32(img + 8), cols = be32(img + 12);
    if (rows == 0 || cols == 0 || rows > 4096 || cols > 4096 || n > 10000000 ||
        (uint64_t)n * rows * cols > ilen - 16) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "%s: header says %u images of %ux%u but the file has %zu bytes", ip, n, rows,
                    cols, (size_t)ilen);
        goto out;
    }
    if (be32(lab + 4) != n || llen - 8 < n) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "%s: %u labels for %u images (or file truncated)", lp, be32(lab + 4), n);
        goto out;
    }
    if (size < (int)rows || size < (int)cols) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "size %d is smaller than %ux%u", size,
                    rows, cols);
        goto out;
    }
    out->n = (int)n, out->channels = 1, out->size = size;
    out->images = g_malloc((size_t)n * size * size * sizeof(float));
    out->labels = g_malloc((size_t)n * sizeof(int32_t));
    int maxl = 0;
    const int oy = (size - (int)rows) / 2, ox = (size - (int)cols) / 2;
    for (uint32_t i = 0; i < n; i++) {
        float *dst = out->images + (size_t)i * size * size;
        for (int k = 0; k < size * size; k++)
            dst[k] = -1.0f; /* background */
        const guint8 *src = img + 16 + (size_t)i * rows * cols;
        for (uint32_t y = 0; y < rows; y++)
            for (uint32_t x = 0; x < cols; x++)
                dst[(size_t)(y + oy) * size + x + ox] = src[y * cols + x] / 127.5f - 1.0f;
        out->labels[i] = lab[8 + i];
        maxl = out->labels[i] > maxl ? out->labels[i] : maxl;
        if (lab[8 + i] > 250) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "%s: label %u of image %u is out "
                        "of range",
                        lp, lab[8 + i], i);
            goto out;
        }
    }
    out->num_classes = maxl + 1;
    ok = true;
out:
    g_free(img);
    g_free(lab);
    if (!ok)
        dataset_clear(out);
    return ok;
}

bool dataset_load_named(const char *name, int size, dataset *out, GError **err)
{
    const bool test = strcmp(name, "fashion-mnist-test") == 0;
    if (!test && strcmp(name, "fashion-mnist") != 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT, "unknown data set '%s'", name);
        return false;
    }
    char *ip = g_strdup_printf("%s/%s-images-idx3-ubyte.gz", FMNIST_DIR, test ? "t10k" : "train");
    char *lp = g_strdup_printf("%s/%s-labels-idx1-ubyte.gz", FMNIST_DIR, test ? "t10k" : "train");
    bool ok = dataset_load_idx(ip, lp, size, out, err);
    if (!ok && err && *err && (*err)->code == G_FILE_ERROR_NOENT)
        g_prefix_error(err, "Fashion-MNIST is not installed (apt-get install "
                            "dataset-fashion-mnist): ");
    g_free(ip);
    g_free(lp);
    if (ok) {
        out->num_classes = 10;
        out->class_names = g_new0(char *, 11);
        for (int i = 0; i < 10; i++)
            out->class_names[i] = g_strdup(fmnist_names[i]);
    }
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* one PNG, centre-cropped to a square and resized to size x size, appended
 * to imgs as `channels` planes (1: luma) */
static bool append_png(dit_ctx *ctx, const char *path, int size, int channels, GArray *imgs,
                       GError **err)
{
    png_data pd;
    if (!png_load(path, &pd, err))
        return false;
    const int side = pd.width < pd.height ? pd.width : pd.height;
    const int ox = (pd.width - side) / 2, oy = (pd.height - side) / 2;
    float *sq = g_malloc((size_t)3 * side * side * sizeof(float));  // (3, side, side)
    float *buf = g_malloc((size_t)3 * size * size * sizeof(float)); // (3, size, size)
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < side; y++)
            memcpy(sq + ((size_t)ch * side + y) * side,
                   pd.rgb + ((size_t)ch * pd.height + y + oy) * pd.width + ox,
                   (size_t)side * sizeof(float));
    dit_image_resize(ctx, sq, 3, side, side, buf, size, size);
    const size_t px = (size_t)size * size;
    if (channels == 1)
        for (size_t i = 0; i < px; i++) {
            float v = 0.299f * buf[i] + 0.587f * buf[px + i] + 0.114f * buf[2 * px + i];
            g_array_append_val(imgs, v);
        }
    else
        g_array_append_vals(imgs, buf, (guint)(3 * px));
    g_free(sq);
    g_free(buf);
    png_data_clear(&pd);
    return true;
}

bool dataset_load_folder(const char *dir, int size, int channels, dataset *out, GError **err)
{
    memset(out, 0, sizeof *out);
    GDir *d = g_dir_open(dir, 0, err);
    if (!d)
        return false;
    GPtrArray *classes = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(d))) {
        char *p = g_build_filename(dir, name, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR) && name[0] != '.')
            g_ptr_array_add(classes, g_strdup(name));
        g_free(p);
    }
    g_dir_close(d);
    if (classes->len) /* qsort's base must not be NULL */
        qsort(classes->pdata, classes->len, sizeof(char *), cmp_str);
    GArray *imgs = g_array_new(FALSE, FALSE, sizeof(float));
    GArray *labs = g_array_new(FALSE, FALSE, sizeof(int32_t));
    bool ok = classes->len > 0;
    if (!ok)
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                    "%s: no class folders (expected DIR/<class>/*.png)", dir);
    dit_ctx *ctx = dit_ctx_new();
    for (guint c = 0; ok && c < classes->len; c++) {
        char *cdir = g_build_filename(dir, classes->pdata[c], NULL);
        GDir *cd = g_dir_open(cdir, 0, NULL);
        GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
        while (cd && (name = g_dir_read_name(cd)))
            if (g_str_has_suffix(name, ".png") || g_str_has_suffix(name, ".PNG"))
                g_ptr_array_add(files, g_build_filename(cdir, name, NULL));
        if (cd)
            g_dir_close(cd);
        if (files->len)
            qsort(files->pdata, files->len, sizeof(char *), cmp_str);
        for (guint f = 0; ok && f < files->len; f++) {
            if (!append_png(ctx, files->pdata[f], size, channels, imgs, err)) {
                ok = false;
                break;
            }
            int32_t l = (int32_t)c;
            g_array_append_val(labs, l);
        }
        g_ptr_array_free(files, TRUE);
        g_free(cdir);
    }
    dit_ctx_free(ctx);
    if (ok && labs->len == 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT, "%s: no PNG images found", dir);
        ok = false;
    }
    if (ok) {
        out->n = (int)labs->len, out->channels = channels, out->size = size;
        out->num_classes = (int)classes->len;
        out->class_names = g_new0(char *, classes->len + 1);
        for (guint c = 0; c < classes->len; c++)
            out->class_names[c] = g_strdup(classes->pdata[c]);
        out->images = (float *)g_array_free(imgs, FALSE);
        out->labels = (int32_t *)g_array_free(labs, FALSE);
    } else {
        g_array_free(imgs, TRUE);
        g_array_free(labs, TRUE);
    }
    g_ptr_array_free(classes, TRUE);
    return ok;
}

bool dataset_load_csv(const char *dir, const char *csv, int size, int channels, dataset *out,
                      GError **err)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    if (!g_file_get_contents(csv, &text, NULL, err))
        return false;
    char **lines = g_strsplit(text, "\n", -1);
    g_free(text);
    GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free); /* label per file */
    bool ok = true;
    for (int i = 0; ok && lines[i]; i++) {
        char *line = g_strstrip(lines[i]);
        if (!*line || line[0] == '#')
            continue;
        char *comma = strchr(line, ',');
        if (!comma) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s:%d: expected \"file,label\"",
                        csv, i + 1);
            ok = false;
            break;
        }
        *comma = '\0';
        char *file = g_strstrip(line), *label = g_strstrip(comma + 1);
        if (!g_str_has_suffix(file, ".png") && !g_str_has_suffix(file, ".PNG")) {
            if (files->len == 0 && i == 0)
                continue; /* a header line */
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s:%d: %s is not a PNG file", csv,
                        i + 1, file);
            ok = false;
            break;
        }
        if (!*label) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s:%d: empty label", csv, i + 1);
            ok = false;
            break;
        }
        g_ptr_array_add(files, g_path_is_absolute(file) ? g_strdup(file)
                                                        : g_build_filename(dir, file, NULL));
        g_ptr_array_add(names, g_strdup(label));
    }
    g_strfreev(lines);
    if (ok && files->len == 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT, "%s: no images listed", csv);
        ok = false;
    }
    /* classes: the distinct labels, sorted */
    GPtrArray *classes = g_ptr_array_new_with_free_func(g_free);
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; ok && i < names->len; i++)
        if (g_hash_table_add(seen, names->pdata[i]))
            g_ptr_array_add(classes, g_strdup(names->pdata[i]));
    g_hash_table_destroy(seen);
    if (classes->len)
        qsort(classes->pdata, classes->len, sizeof(char *), cmp_str);
    GArray *imgs = g_array_new(FALSE, FALSE, sizeof(float));
    int32_t *labels = g_new0(int32_t, files->len ? files->len : 1);
    dit_ctx *ctx = dit_ctx_new();
    for (guint i = 0; ok && i < files->len; i++) {
        ok = append_png(ctx, files->pdata[i], size, channels, imgs, err);
        for (guint c = 0; c < classes->len; c++)
            if (!strcmp(classes->pdata[c], names->pdata[i]))
                labels[i] = (int32_t)c;
    }
    dit_ctx_free(ctx);
    if (ok) {
        out->n = (int)files->len, out->channels = channels, out->size = size;
        out->num_classes = (int)classes->len;
        out->class_names = g_new0(char *, classes->len + 1);
        for (guint c = 0; c < classes->len; c++)
            out->class_names[c] = g_strdup(classes->pdata[c]);
        out->images = (float *)g_array_free(imgs, FALSE);
        out->labels = labels;
    } else {
        g_array_free(imgs, TRUE);
        g_free(labels);
    }
    g_ptr_array_free(classes, TRUE);
    g_ptr_array_free(names, TRUE);
    g_ptr_array_free(files, TRUE);
    return ok;
}

/* what a latent cache was made from: the images, labels and VAE */
static char *cache_fingerprint(const dataset *d, const char *vae_path, const dit_vae *vae)
{
    GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
    g_checksum_update(sum, (const guchar *)d->images,
                      (gssize)((size_t)d->n * d->channels * d->size * d->size * sizeof(float)));
    g_checksum_update(sum, (const guchar *)d->labels, (gssize)((size_t)d->n * sizeof(int32_t)));
    char *abs = g_canonicalize_filename(vae_path, NULL);
    char *fp = g_strdup_printf("%s %d %d %d %s %zu", g_checksum_get_string(sum), d->n, d->channels,
                               d->size, abs, dit_vae_param_count(vae));
    g_free(abs);
    g_checksum_free(sum);
    return fp;
}

/* reuses the cache when its fingerprint and shape match; false otherwise */
static bool load_latent_cache(dit_ctx *ctx, const char *path, const char *fp, int n,
                              const int64_t want[4], float *latents)
{
    st_file *f = NULL;
    if (!g_file_test(path, G_FILE_TEST_EXISTS) || st_open(ctx, path, &f) != DIT_OK)
        return false;
    const char *have = st_meta(f, "source");
    const st_tensor *t = st_find(f, "latents");
    bool ok = have && !strcmp(have, fp) && t && t->ndim == 4 && t->dtype == ST_F32;
    for (int i = 0; ok && i < 4; i++)
        ok = t->shape[i] == want[i];
    ok = ok && want[0] == n && st_read_f32(ctx, f, t, latents) == DIT_OK;
    st_close(f);
    return ok;
}

bool dataset_encode_cached(dit_ctx *ctx, const char *vae_path, const char *dir, const char *name,
                           dataset *d, GError **err)
{
    dit_vae *vae = NULL;
    if (dit_vae_load(ctx, vae_path, &vae) != DIT_OK) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s", dit_last_error(ctx));
        return false;
    }
    const dit_vae_info *vi = dit_vae_config(vae);
    if (d->size % vi->downscale) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "--size %d is not a multiple of the VAE's downscale %d", d->size,
                    vi->downscale);
        dit_vae_free(vae);
        return false;
    }
    const int h = d->size / vi->downscale, zc = vi->latent_channels;
    const int64_t shape[4] = {d->n, zc, h, h};
    const size_t zn = (size_t)zc * h * h, px = (size_t)d->size * d->size;
    float *latents = g_malloc((size_t)d->n * zn * sizeof(float)); // (N, zc, h, h)
    char *fp = cache_fingerprint(d, vae_path, vae);
    char *file = g_strdup_printf("%s-%d.safetensors", name, d->size);
    char *path = g_build_filename(dir, file, NULL);
    g_free(file);
    bool ok = true;
    if (load_latent_cache(ctx, path, fp, d->n, shape, latents)) {
        fprintf(stderr, "dit: latents from %s\n", path);
    } else {
        enum { CHUNK = 16 };
        float *rgb = g_malloc((size_t)CHUNK * 3 * px * sizeof(float)); // (CHUNK, 3, S, S)
        for (int i0 = 0; ok && i0 < d->n; i0 += CHUNK) {
            const int nb = d->n - i0 < CHUNK ? d->n - i0 : CHUNK;
            for (int b = 0; b < nb; b++) /* grey images go in as three equal planes */
                for (int ch = 0; ch < 3; ch++)
                    memcpy(rgb + ((size_t)b * 3 + ch) * px,
                           d->images +
                               ((size_t)(i0 + b) * d->channels + (d->channels == 1 ? 0 : ch)) * px,
                           px * sizeof(float));
            float *z = latents + (size_t)i0 * zn;
            ok = dit_vae_encode(ctx, vae, nb, d->size, d->size, rgb, z, NULL) == DIT_OK;
            for (size_t k = 0; ok && k < (size_t)nb * zn; k++)
                z[k] = (z[k] - vi->shift_factor) * vi->scaling_factor;
            fprintf(stderr, "\rdit: encoding %s %d/%d", name, i0 + nb, d->n);
        }
        fprintf(stderr, "\n");
        g_free(rgb);
        if (!ok) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "encoding: %s",
                        dit_last_error(ctx));
        } else {
            g_mkdir_with_parents(dir, 0755);
            int32_t *labels = d->labels;
            st_write_tensor t[2] = {
                {.name = "latents",
                 .dtype = ST_F32,
                 .ndim = 4,
                 .shape = {shape[0], shape[1], shape[2], shape[3]},
                 .data = latents},
                {.name = "labels", .dtype = ST_I32, .ndim = 1, .shape = {d->n}, .raw = labels},
            };
            const char *key = "source";
            if (st_write(ctx, path, t, 2, &key, (const char *const *)&fp, 1) != DIT_OK)
                fprintf(stderr, "dit: cannot keep the latents in %s: %s\n", path,
                        dit_last_error(ctx)); /* training can go on without the cache */
        }
    }
    if (ok) {
        g_free(d->images);
        d->images = latents, d->channels = zc, d->size = h;
    } else {
        g_free(latents);
    }
    g_free(fp);
    g_free(path);
    dit_vae_free(vae);
    return ok;
}

/* |a|^2 + |b|^2 - 2 a.b, the products by sgemm */
void dataset_nearest(const dataset *train, const float *samples, int ns, int *idx, double *dist)
{
    dataset_nearest_prefix(train, samples, ns, train->channels * train->size * train->size, idx,
                           dist);
}

void dataset_nearest_prefix(const dataset *train, const float *samples, int ns, int k_used,
                            int *idx, double *dist)
{
    const int d = train->channels * train->size * train->size, kd = k_used;
    const int chunk = 4096;
    double *bn = g_malloc((size_t)train->n * sizeof *bn);
    for (int j = 0; j < train->n; j++) {
        double s = 0;
        for (int k = 0; k < kd; k++)
            s += (double)train->images[(size_t)j * d + k] * train->images[(size_t)j * d + k];
        bn[j] = s;
    }
    float *dots = g_malloc((size_t)ns * chunk * sizeof *dots);
    for (int i = 0; i < ns; i++)
        dist[i] = INFINITY, idx[i] = -1;
    for (int j0 = 0; j0 < train->n; j0 += chunk) {
        const int m = train->n - j0 < chunk ? train->n - j0 : chunk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ns, m, kd, 1.0f, samples, d,
                    train->images + (size_t)j0 * d, d, 0.0f, dots, m);
        for (int i = 0; i < ns; i++) {
            double an = 0;
            for (int k = 0; k < kd; k++)
                an += (double)samples[(size_t)i * d + k] * samples[(size_t)i * d + k];
            for (int j = 0; j < m; j++) {
                const double dd = an + bn[j0 + j] - 2.0 * dots[(size_t)i * m + j];
                if (dd < dist[i])
                    dist[i] = dd, idx[i] = j0 + j;
            }
        }
    }
    for (int i = 0; i < ns; i++)
        dist[i] = sqrt(fmax(dist[i], 0.0) / kd); /* RMS per pixel, in [-1, 1] units */
    g_free(bn);
    g_free(dots);
}
