#include "internal/weights.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float *wl_take(weight_layout *L, size_t n)
{
    float *p = L->base ? L->base + L->used : NULL;
    L->used += (n + 15) & ~(size_t)15;
    return p;
}

void wl_want(weight_layout *L, float *dst, int flags, int ndim, const int64_t *shape,
             const char *fmt, ...)
{
    if (L->list) {
        weight_expect *e = &L->list[L->n];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->name, sizeof e->name, fmt, ap);
        va_end(ap);
        e->ndim = ndim;
        memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
        e->dst = dst;
        e->flags = flags;
    }
    L->n++;
}

void wl_want_linear(weight_layout *L, float *w, float *b, int64_t rows, int64_t cols,
                    const char *prefix, const char *name)
{
    int64_t ws[2] = {rows, cols}, bs[1] = {rows};
    wl_want(L, w, 0, 2, ws, "%s%s.weight", prefix, name);
    wl_want(L, b, 0, 1, bs, "%s%s.bias", prefix, name);
}

static bool shape_matches(const st_tensor *t, const weight_expect *e)
{
    bool same = t->ndim == e->ndim;
    for (int d = 0; same && d < e->ndim; d++)
        same = t->shape[d] == e->shape[d];
    if (same || !(e->flags & WL_ACCEPT_1X1) || t->ndim != e->ndim + 2)
        return same;
    for (int d = 0; d < e->ndim; d++)
        if (t->shape[d] != e->shape[d])
            return false;
    return t->shape[e->ndim] == 1 && t->shape[e->ndim + 1] == 1;
}

static dit_status check_present(dit_ctx *ctx, const st_file *f, const weight_expect *e,
                                const char *what)
{
    const st_tensor *t = st_find(f, e->name);
    if (!t) {
        if (e->flags & WL_OPTIONAL)
            return DIT_OK;
        char s[96];
        st_shape_str(e->shape, e->ndim, s, sizeof s);
        return dit_error(ctx, DIT_ERR_MODEL, "%s: missing tensor '%s' (expected shape %s for %s)",
                         f->path, e->name, s, what);
    }
    if (!shape_matches(t, e)) {
        char found[96], wanted[96];
        st_shape_str(t->shape, t->ndim, found, sizeof found);
        st_shape_str(e->shape, e->ndim, wanted, sizeof wanted);
        return dit_error(ctx, DIT_ERR_MODEL, "%s: tensor '%s' has shape %s, expected %s", f->path,
                         e->name, found, wanted);
    }
    return DIT_OK;
}

dit_status wl_load(dit_ctx *ctx, const st_file *f, wl_layout_fn layout, void *model,
                   const char *what, bool (*ignorable)(const char *name, const void *user),
                   wl_result *out)
{
    memset(out, 0, sizeof *out);
    weight_layout L = {0};
    layout(&L, model); /* count floats and entries */
    const size_t n_expect = L.n;
    size_t bytes;
    if (!dit_mul_size(L.used, sizeof(float), &bytes))
        return dit_error(ctx, DIT_ERR_NOMEM, "%s: parameter count overflows", f->path);
    weight_expect *list = calloc(n_expect ? n_expect : 1, sizeof *list);
    bool *used = calloc(f->n + 1, sizeof *used);
    float *params = NULL;
    dit_status st = DIT_OK;
    if (!list || !used) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* names and shapes first: a header that claims a huge model is refused
     * before its parameter block is allocated */
    L = (weight_layout){.list = list};
    layout(&L, model);
    for (size_t i = 0; i < n_expect && st == DIT_OK; i++)
        st = check_present(ctx, f, &list[i], what);
    if (st)
        goto out;
    char whose[160];
    snprintf(whose, sizeof whose, "the parameters of %s", what);
    if ((st = dit_check_weights_memory(ctx, bytes, whose)))
        goto out;
    params = dit_alloc_aligned(bytes);
    if (!params) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "%s: cannot allocate %.1f MiB for the parameters",
                       f->path, (double)bytes / (1 << 20));
        goto out;
    }
    memset(params, 0, bytes);
    L = (weight_layout){.base = params, .list = list};
    layout(&L, model);

    int dtypes = 0; /* one bit per dtype seen */
    for (size_t i = 0; i < n_expect && st == DIT_OK; i++) {
        const weight_expect *e = &list[i];
        const st_tensor *t = st_find(f, e->name);
        if (!t)
            continue; /* optional, checked above */
        if ((st = st_read_f32(ctx, f, t, e->dst)))
            break;
        for (size_t k = 0; k < t->n_elements; k++)
            if (!isfinite(e->dst[k])) {
                st = dit_error(ctx, DIT_ERR_MODEL, "%s: tensor '%s' holds %s at element %zu",
                               f->path, e->name, isnan(e->dst[k]) ? "NaN" : "Inf", k);
                break;
            }
        used[t - f->tensors] = true;
        dtypes |= 1 << t->dtype;
        if (!(e->flags & WL_BUFFER))
            out->n_params += t->n_elements;
    }
    for (size_t i = 0; i < f->n && st == DIT_OK; i++)
        if (!used[i] && !(ignorable && ignorable(f->tensors[i].name, model)))
            st = dit_error(ctx, DIT_ERR_MODEL,
                           "%s: unexpected tensor '%s' (not part of %s; does the config match "
                           "the weights?)",
                           f->path, f->tensors[i].name, what);
    if (st == DIT_OK) {
        const char *name = "mixed";
        if (dtypes == 1 << ST_F32)
            name = "F32";
        else if (dtypes == 1 << ST_F16)
            name = "F16";
        else if (dtypes == 1 << ST_BF16)
            name = "BF16";
        else if (dtypes == 1 << ST_F64)
            name = "F64";
        snprintf(out->dtype, sizeof out->dtype, "%s", name);
        out->params = params;
        params = NULL;
    }
out:
    dit_free_aligned(params);
    free(list);
    free(used);
    return st;
}

void model_files_clear(model_files *f)
{
    g_free(f->weights);
    g_free(f->config);
}

dit_status open_model_files(dit_ctx *ctx, const char *fn, const char *path, const char *subfolder,
                            void *out, model_files *files, st_file **f)
{
    memset(files, 0, sizeof *files);
    *f = NULL;
    if (!ctx || !path || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "%s: NULL argument", fn);
    *(void **)out = NULL;
    dit_clear_error(ctx);
    dit_status st = find_model_files(ctx, path, subfolder, files);
    if (!st && (st = st_open(ctx, files->weights, f)))
        model_files_clear(files);
    return st;
}

dit_status find_model_files(dit_ctx *ctx, const char *path, const char *subfolder, model_files *out)
{
    memset(out, 0, sizeof *out);
    if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
        char *dir = g_build_filename(path, subfolder, NULL);
        if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
            g_free(dir);
            dir = g_strdup(path);
        }
        static const char *const names[] = {"diffusion_pytorch_model.safetensors",
                                            "model.safetensors"};
        for (size_t i = 0; i < G_N_ELEMENTS(names) && !out->weights; i++) {
            char *w = g_build_filename(dir, names[i], NULL);
            if (g_file_test(w, G_FILE_TEST_IS_REGULAR))
                out->weights = w;
            else
                g_free(w);
        }
        char *cfg = g_build_filename(dir, "config.json", NULL);
        g_free(dir);
        if (!out->weights) {
            g_free(cfg);
            return dit_error(ctx, DIT_ERR_IO,
                             "%s: no diffusion_pytorch_model.safetensors or model.safetensors "
                             "in this folder (or its %s/ folder)",
                             path, subfolder);
        }
        if (g_file_test(cfg, G_FILE_TEST_IS_REGULAR))
            out->config = cfg;
        else
            g_free(cfg);
        return DIT_OK;
    }
    if (!g_file_test(path, G_FILE_TEST_EXISTS))
        return dit_error(ctx, DIT_ERR_IO, "%s: no such file or folder", path);
    out->weights = g_strdup(path);
    /* a config.json beside a diffusers weights file belongs to it */
    char *base = g_path_get_basename(path);
    if (strcmp(base, "diffusion_pytorch_model.safetensors") == 0) {
        char *dir = g_path_get_dirname(path);
        char *cfg = g_build_filename(dir, "config.json", NULL);
        if (g_file_test(cfg, G_FILE_TEST_IS_REGULAR))
            out->config = cfg;
        else
            g_free(cfg);
        g_free(dir);
    }
    g_free(base);
    return DIT_OK;
}
