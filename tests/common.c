#include "common.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

char *fixture_path(const char *name)
{
    const char *src = g_getenv("G_TEST_SRCDIR");
    return g_build_filename(src ? src : ".", "golden", name, NULL);
}

char *tmpdir_new(void)
{
    GError *err = NULL;
    char *dir = g_dir_make_tmp("dit-test-XXXXXX", &err);
    if (!dir) {
        fprintf(stderr, "cannot make a temporary folder: %s\n", err->message);
        exit(1);
    }
    return dir;
}

static void remove_tree(const char *path)
{
    if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
        GDir *d = g_dir_open(path, 0, NULL);
        const char *name;
        while (d && (name = g_dir_read_name(d))) {
            char *child = g_build_filename(path, name, NULL);
            remove_tree(child);
            g_free(child);
        }
        if (d)
            g_dir_close(d);
        g_rmdir(path);
    } else {
        g_unlink(path);
    }
}

void tmpdir_remove(char *dir)
{
    if (dir)
        remove_tree(dir);
    g_free(dir);
}

float *read_tensor(dit_ctx *ctx, const st_file *f, const char *name, size_t *n, int64_t *shape,
                   int *ndim)
{
    const st_tensor *t = st_find(f, name);
    if (!t) {
        fprintf(stderr, "%s: no tensor '%s' (regenerate with tests/golden/gen.py?)\n", f->path,
                name);
        return NULL;
    }
    float *buf = malloc((t->n_elements ? t->n_elements : 1) * sizeof(float));
    if (!buf || st_read_f32(ctx, f, t, buf) != DIT_OK) {
        fprintf(stderr, "%s\n", dit_last_error(ctx));
        free(buf);
        return NULL;
    }
    if (n)
        *n = t->n_elements;
    if (shape)
        memcpy(shape, t->shape, (size_t)t->ndim * sizeof *shape);
    if (ndim)
        *ndim = t->ndim;
    return buf;
}

bool compare_rel(const char *label, const float *ours, const float *ref, size_t n, double rel)
{
    double max_diff = 0, max_ref = 0;
    size_t worst = 0;
    bool finite = true;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ours[i]))
            finite = false;
        double d = fabs((double)ours[i] - ref[i]);
        if (d > max_diff) {
            max_diff = d;
            worst = i;
        }
        if (fabs(ref[i]) > max_ref)
            max_ref = fabs(ref[i]);
    }
    bool ok = finite && max_diff <= rel * max_ref;
    printf("%-34s max|diff| = %.3e  max|ref| = %.3e  ratio = %.2e (limit %.0e)%s  %s\n", label,
           max_diff, max_ref, max_ref > 0 ? max_diff / max_ref : max_diff, rel,
           finite ? "" : "  NON-FINITE", ok ? "OK" : "NOT OK");
    if (!ok && n)
        printf("    worst at %zu: ours %.7g ref %.7g\n", worst, (double)ours[worst],
               (double)ref[worst]);
    return ok;
}

static bool bf16_products; /* set by test_precision_from_env */

bool test_cpu_bf16_expected(void)
{
    char *text = NULL;
    if (!dit_build_has_onednn() || !g_file_get_contents("/proc/cpuinfo", &text, NULL, NULL))
        return false;
    bool yes = strstr(text, " avx512_bf16") || strstr(text, " amx_bf16");
    g_free(text);
    const char *cap = g_getenv("ONEDNN_MAX_CPU_ISA");
    if (cap && *cap && strcmp(cap, "ALL") != 0 && !g_str_has_prefix(cap, "AVX512_CORE_BF16") &&
        !g_str_has_prefix(cap, "AVX512_CORE_AMX"))
        yes = false;
    return yes;
}

int test_precision_from_env(dit_ctx *ctx)
{
    const char *p = g_getenv("DIT_TEST_PRECISION");
    if (!p || !*p || strcmp(p, "fp32") == 0)
        return 0;
    if (dit_ctx_set_precision(ctx, p) == DIT_OK) {
        bf16_products = strcmp(p, "bf16") == 0;
        printf("products in %s on the %s\n", p, dit_ctx_device(ctx));
        return 0;
    }
    if (strcmp(p, "bf16") == 0 && test_cpu_bf16_expected()) {
        fprintf(stderr, "this processor has bf16 dot products, yet: %s\n", dit_last_error(ctx));
        return 1;
    }
    printf("skipped: %s\n", dit_last_error(ctx));
    return 77;
}

bool test_bf16_products(void) { return bf16_products; }

bool compare_ref(const char *label, const float *ours, const float *ref, size_t n, double rel)
{
    return compare_ref_band(label, ours, ref, n, rel, 2e-2);
}

bool compare_ref_band(const char *label, const float *ours, const float *ref, size_t n, double rel,
                      double bf16_hi)
{
    if (!bf16_products)
        return compare_rel(label, ours, ref, n, rel);
    enum { LO, HI };
    const double band[2] = {5e-5, bf16_hi};
    double max_diff = 0, max_ref = 0;
    bool finite = true;
    for (size_t i = 0; i < n; i++) {
        finite = finite && isfinite(ours[i]);
        max_diff = fmax(max_diff, fabs((double)ours[i] - ref[i]));
        max_ref = fmax(max_ref, fabs((double)ref[i]));
    }
    const double ratio = max_ref > 0 ? max_diff / max_ref : max_diff;
    const bool ok = finite && ratio <= band[HI] && ratio >= band[LO];
    printf("%-34s ratio = %.2e (bf16 band %.0e..%.0e)%s  %s\n", label, ratio, band[LO], band[HI],
           finite ? "" : "  NON-FINITE", ok ? "OK" : "NOT OK");
    return ok;
}

static size_t shape_count(int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)shape[d];
    return n;
}

bool tl_load(dit_ctx *ctx, const char *path, tensor_list *tl)
{
    memset(tl, 0, sizeof *tl);
    st_file *f = NULL;
    if (st_open(ctx, path, &f) != DIT_OK) {
        fprintf(stderr, "%s\n", dit_last_error(ctx));
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < f->n && ok; i++) {
        const st_tensor *t = &f->tensors[i];
        float *buf = read_tensor(ctx, f, t->name, NULL, NULL, NULL);
        ok = buf != NULL;
        if (ok) {
            tl_add(tl, t->name, t->dtype == ST_F64 ? ST_F32 : t->dtype, t->ndim, t->shape, buf);
            free(buf);
        }
    }
    for (size_t i = 0; i < f->n_meta; i++)
        tl_set_meta(tl, f->meta_keys[i], f->meta_values[i]);
    st_close(f);
    return ok;
}

static st_write_tensor *tl_find(tensor_list *tl, const char *name)
{
    for (size_t i = 0; i < tl->n; i++)
        if (strcmp(tl->t[i].name, name) == 0)
            return &tl->t[i];
    return NULL;
}

float *tl_data(tensor_list *tl, const char *name, size_t *n)
{
    st_write_tensor *t = tl_find(tl, name);
    if (t && n)
        *n = shape_count(t->ndim, t->shape);
    return t ? (float *)t->data : NULL;
}

bool tl_drop(tensor_list *tl, const char *name)
{
    st_write_tensor *t = tl_find(tl, name);
    if (!t)
        return false;
    g_free((char *)t->name);
    free((float *)t->data);
    size_t i = (size_t)(t - tl->t);
    memmove(&tl->t[i], &tl->t[i + 1], (tl->n - i - 1) * sizeof *t);
    tl->n--;
    return true;
}

void tl_add(tensor_list *tl, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
            const float *data)
{
    size_t count = shape_count(ndim, shape);
    float *copy = malloc((count ? count : 1) * sizeof *copy);
    memcpy(copy, data, count * sizeof *copy);
    tl->t = realloc(tl->t, (tl->n + 1) * sizeof *tl->t);
    st_write_tensor *t = &tl->t[tl->n++];
    memset(t, 0, sizeof *t);
    t->name = g_strdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = copy;
}

/* Same element count, new shape (a "wrong-shaped" tensor that still fits). */
bool tl_set_shape(tensor_list *tl, const char *name, int ndim, const int64_t *shape)
{
    st_write_tensor *t = tl_find(tl, name);
    if (!t || shape_count(ndim, shape) != shape_count(t->ndim, t->shape))
        return false;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    return true;
}

void tl_set_meta(tensor_list *tl, const char *key, const char *value)
{
    for (size_t i = 0; i < tl->n_meta; i++)
        if (strcmp(tl->meta_keys[i], key) == 0) {
            g_free(tl->meta_values[i]);
            tl->meta_values[i] = g_strdup(value);
            return;
        }
    tl->meta_keys = realloc(tl->meta_keys, (tl->n_meta + 1) * sizeof(char *));
    tl->meta_values = realloc(tl->meta_values, (tl->n_meta + 1) * sizeof(char *));
    tl->meta_keys[tl->n_meta] = g_strdup(key);
    tl->meta_values[tl->n_meta] = g_strdup(value);
    tl->n_meta++;
}

dit_status tl_write(dit_ctx *ctx, const tensor_list *tl, const char *path)
{
    return st_write(ctx, path, tl->t, tl->n, (const char *const *)tl->meta_keys,
                    (const char *const *)tl->meta_values, tl->n_meta);
}

void tl_free(tensor_list *tl)
{
    for (size_t i = 0; i < tl->n; i++) {
        g_free((char *)tl->t[i].name);
        free((float *)tl->t[i].data);
    }
    for (size_t i = 0; i < tl->n_meta; i++) {
        g_free(tl->meta_keys[i]);
        g_free(tl->meta_values[i]);
    }
    free(tl->t);
    free(tl->meta_keys);
    free(tl->meta_values);
    memset(tl, 0, sizeof *tl);
}
