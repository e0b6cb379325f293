#include "internal/weights.h"
#include "internal/cpu-gemm.h"
#include "internal/impl.h"
#include "internal/json.h"

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
    wl_linear_matrix(L, w, rows, cols);
}

static size_t wl_count(const weight_expect *e)
{
    size_t n = 1;
    for (int d = 0; d < e->ndim; d++)
        n *= (size_t)e->shape[d];
    return n;
}

static void add_matrix(weight_layout *L, const float *w, bool trans, int64_t rows, int64_t cols,
                       int64_t ld)
{
    if (L->mats && L->list)
        L->mats[L->n_mats] = (weight_matrix){w, trans, (int)rows, (int)cols, (int)ld, 0};
    L->n_mats++;
}

void wl_linear_matrix(weight_layout *L, const float *w, int64_t rows, int64_t cols)
{
    add_matrix(L, w, true, cols, rows, cols); /* op(w) = w^T (cols, rows) */
}

void wl_conv_matrix(weight_layout *L, const float *w, int64_t cout, int64_t cin_k_k)
{
    add_matrix(L, w, false, cout, cin_k_k, cin_k_k);
}

/* Counts tensor e's floats into the matrix that holds it; holds that
 * matrix in bf16 once all of it is read. Returns the bytes given back. */
static size_t loaded_into_matrix(weight_layout *L, const weight_expect *e, size_t n)
{
    for (size_t i = 0; L->mats && i < L->n_mats; i++) {
        weight_matrix *m = &L->mats[i];
        const size_t extent = (size_t)(m->trans ? m->cols : m->rows) * (size_t)m->ld;
        if (e->dst < m->w || e->dst >= m->w + extent)
            continue;
        m->loaded += n;
        return m->loaded == extent ? dit_cpu_gemm_hold_bf16(m->w, m->trans, m->ld, m->rows, m->cols)
                                   : 0;
    }
    return 0;
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

/* tensor `name` in the first of the files that has it; *fi its file */
static const st_tensor *find_in(const st_file *const *files, int nf, const char *name, int *fi)
{
    for (int i = 0; i < nf; i++) {
        const st_tensor *t = st_find(files[i], name);
        if (t) {
            *fi = i;
            return t;
        }
    }
    return NULL;
}

static dit_status check_present(dit_ctx *ctx, const st_file *const *files, int nf,
                                const weight_expect *e, const char *what)
{
    int fi = 0;
    const st_tensor *t = find_in(files, nf, e->name, &fi);
    const st_file *f = files[fi];
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
    return wl_load_files(ctx, &f, 1, layout, model, what, ignorable, out);
}

dit_status wl_load_files(dit_ctx *ctx, const st_file *const *files, int nf, wl_layout_fn layout,
                         void *model, const char *what,
                         bool (*ignorable)(const char *name, const void *user), wl_result *out)
{
    memset(out, 0, sizeof *out);
    const st_file *f = files[0]; /* named in messages that concern no one file */
    size_t n_tensors = 0, *first = calloc((size_t)nf + 1, sizeof *first); /* offsets into used */
    for (int i = 0; first && i < nf; i++)
        first[i] = n_tensors, n_tensors += files[i]->n;
    weight_layout L = {0};
    layout(&L, model); /* count floats and entries */
    const size_t n_expect = L.n;
    size_t bytes;
    if (!first || !dit_mul_size(L.used, sizeof(float), &bytes)) {
        free(first);
        return dit_error(ctx, DIT_ERR_NOMEM, "%s: parameter count overflows", f->path);
    }
    const size_t n_mats = L.n_mats;
    weight_expect *list = calloc(n_expect ? n_expect : 1, sizeof *list);
    weight_matrix *mats = calloc(n_mats ? n_mats : 1, sizeof *mats);
    bool *used = calloc(n_tensors + 1, sizeof *used);
    float *params = NULL;
    dit_status st = DIT_OK;
    if (!list || !mats || !used) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* names and shapes first: a header that claims a huge model is refused
     * before its parameter block is allocated */
    L = (weight_layout){.list = list};
    layout(&L, model);
    for (size_t i = 0; i < n_expect && st == DIT_OK; i++)
        st = check_present(ctx, files, nf, &list[i], what);
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
    /* held in bf16: the fp32 block is never touched whole, and zeroed only
     * where no tensor is read */
    const bool hold = ctx->be == &ctx->cpu && ctx->cpu.gemm_bf16;
    if (!hold)
        memset(params, 0, bytes);
    L = (weight_layout){.base = params, .list = list, .mats = hold ? mats : NULL};
    layout(&L, model);

    int dtypes = 0; /* one bit per dtype seen */
    for (size_t i = 0; i < n_expect && st == DIT_OK; i++) {
        const weight_expect *e = &list[i];
        int fi = 0;
        const st_tensor *t = find_in(files, nf, e->name, &fi);
        if (!t) { /* optional, checked above */
            if (hold)
                memset(e->dst, 0, wl_count(e) * sizeof(float));
            continue;
        }
        if ((st = st_read_f32(ctx, files[fi], t, e->dst)))
            break;
        st_release(files[fi], t);
        for (size_t k = 0; k < t->n_elements; k++)
            if (!isfinite(e->dst[k])) {
                st = dit_error(ctx, DIT_ERR_MODEL, "%s: tensor '%s' holds %s at element %zu",
                               files[fi]->path, e->name, isnan(e->dst[k]) ? "NaN" : "Inf", k);
                break;
            }
        used[first[fi] + (size_t)(t - files[fi]->tensors)] = true;
        dtypes |= 1 << t->dtype;
        out->held += loaded_into_matrix(&L, e, t->n_elements);
        if (!(e->flags & WL_BUFFER))
            out->n_params += t->n_elements;
    }
    for (int fi = 0; fi < nf && st == DIT_OK; fi++)
        for (size_t i = 0; i < files[fi]->n && st == DIT_OK; i++)
            if (!used[first[fi] + i] &&
                !(ignorable && ignorable(files[fi]->tensors[i].name, model)))
                st = dit_error(ctx, DIT_ERR_MODEL,
                               "%s: unexpected tensor '%s' (not part of %s; does the config "
                               "match the weights?)",
                               files[fi]->path, files[fi]->tensors[i].name, what);
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
        out->floats = L.used;
        params = NULL;
    }
out:
    if (params) /* the copies of a failed load's matrices */
        dit_cpu_gemm_forget(params, bytes);
    dit_free_aligned(params);
    free(list);
    free(mats);
    free(used);
    free(first);
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

void st_files_close(st_files *files)
{
    for (int i = 0; i < files->n; i++)
        st_close(files->f[i]);
    free(files->f);
    memset(files, 0, sizeof *files);
}

/* The shard names of an index's weight_map, sorted and unique, each a
 * plain file name (no folder: an index may not point outside its folder) */
static dit_status index_shards(dit_ctx *ctx, const char *index, GPtrArray *names)
{
    JsonParser *parser = NULL;
    dit_status st;
    JsonObject *o = dit_json_file(ctx, index, &parser, &st);
    if (!o)
        return st;
    JsonNode *map = json_object_get_member(o, "weight_map");
    if (!map || !JSON_NODE_HOLDS_OBJECT(map)) {
        st = dit_error(ctx, DIT_ERR_FORMAT, "%s: no weight_map object", index);
        goto out;
    }
    GList *members = json_object_get_members(json_node_get_object(map));
    for (GList *m = members; m && !st; m = m->next) {
        JsonNode *v = json_object_get_member(json_node_get_object(map), m->data);
        const char *file = JSON_NODE_HOLDS_VALUE(v) ? json_node_get_string(v) : NULL;
        if (!file || !*file || strchr(file, '/') || strchr(file, '\\') || strcmp(file, ".") == 0 ||
            strcmp(file, "..") == 0)
            st = dit_error(ctx, DIT_ERR_FORMAT,
                           "%s: tensor '%s' is mapped to '%s', not a file name inside the folder",
                           index, (const char *)m->data, file ? file : "(not a string)");
        else if (!g_ptr_array_find_with_equal_func(names, file, g_str_equal, NULL))
            g_ptr_array_add(names, g_strdup(file));
    }
    g_list_free(members);
    if (!st && names->len == 0)
        st = dit_error(ctx, DIT_ERR_FORMAT, "%s: the weight_map is empty", index);
    g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
out:
    g_object_unref(parser);
    return st;
}

char *dit_component_dir(const char *path, const char *sub)
{
    char *dir = g_build_filename(path, sub, NULL);
    if (g_file_test(dir, G_FILE_TEST_IS_DIR))
        return dir;
    g_free(dir);
    return g_strdup(path);
}

dit_status st_open_model_files(dit_ctx *ctx, const char *dir, const char *stem, st_files *out)
{
    memset(out, 0, sizeof *out);
    char *index_name = g_strconcat(stem, ".safetensors.index.json", NULL);
    char *index = g_build_filename(dir, index_name, NULL);
    g_free(index_name);
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    dit_status st = DIT_OK;
    const bool sharded = g_file_test(index, G_FILE_TEST_EXISTS);
    if (sharded)
        st = index_shards(ctx, index, names);
    else
        g_ptr_array_add(names, g_strconcat(stem, ".safetensors", NULL));
    out->f = st ? NULL : calloc(names->len, sizeof *out->f);
    if (!st && !out->f)
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    for (guint i = 0; !st && i < names->len; i++) {
        char *path = g_build_filename(dir, names->pdata[i], NULL);
        if (!g_file_test(path, G_FILE_TEST_IS_REGULAR))
            st = dit_error(ctx, DIT_ERR_IO, "%s: no such file%s", path,
                           sharded ? " (a shard the index lists)" : "");
        else if (!(st = st_open(ctx, path, &out->f[i])))
            out->n++;
        g_free(path);
    }
    if (st)
        st_files_close(out);
    g_ptr_array_free(names, TRUE);
    g_free(index);
    return st;
}
