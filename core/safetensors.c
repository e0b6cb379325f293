/* safetensors reader (mmap + json-glib) and atomic writer. */
#include "internal/safetensors.h"
#include "internal/json.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Same order as st_dtype. */
static const struct {
    const char *name;
    size_t size;
} dtype_info[ST_N_DTYPES] = {
    {"BOOL", 1}, {"U8", 1},   {"I8", 1},  {"I16", 2},     {"U16", 2},
    {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},     {"F32", 4},
    {"F64", 8},  {"I64", 8},  {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

const char *st_dtype_name(st_dtype dtype)
{
    return dtype < ST_N_DTYPES ? dtype_info[dtype].name : "?";
}

size_t st_dtype_size(st_dtype dtype) { return dtype < ST_N_DTYPES ? dtype_info[dtype].size : 0; }

static bool dtype_from_name(const char *name, st_dtype *out)
{
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (st_dtype)i;
            return true;
        }
    return false;
}

void st_shape_str(const int64_t *shape, int ndim, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && used < len; i++)
        used +=
            (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, ")");
}

void st_close(st_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_size);
    for (size_t i = 0; i < f->n; i++)
        g_free(f->tensors[i].name);
    for (size_t i = 0; i < f->n_meta; i++) {
        g_free(f->meta_keys[i]);
        g_free(f->meta_values[i]);
    }
    g_free(f->meta_keys);
    g_free(f->meta_values);
    g_free(f->tensors);
    g_free(f->path);
    g_free(f);
}

/* A JSON integer >= 0; json-glib parses 1.0 as a double and -1 as int64. */
static bool node_uint(JsonNode *node, uint64_t *out)
{
    if (!node || JSON_NODE_TYPE(node) != JSON_NODE_VALUE ||
        json_node_get_value_type(node) != G_TYPE_INT64)
        return false;
    gint64 v = json_node_get_int(node);
    if (v < 0)
        return false;
    *out = (uint64_t)v;
    return true;
}

static dit_status parse_metadata(dit_ctx *ctx, st_file *f, JsonNode *node)
{
    if (JSON_NODE_TYPE(node) != JSON_NODE_OBJECT)
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: __metadata__ is not a JSON object", f->path);
    JsonObject *obj = json_node_get_object(node);
    GList *members = json_object_get_members(obj);
    guint n = g_list_length(members);
    f->meta_keys = g_new0(char *, n);
    f->meta_values = g_new0(char *, n);
    for (GList *l = members; l; l = l->next) {
        const char *key = l->data;
        JsonNode *v = json_object_get_member(obj, key);
        if (JSON_NODE_TYPE(v) != JSON_NODE_VALUE || json_node_get_value_type(v) != G_TYPE_STRING) {
            g_list_free(members);
            return dit_error(ctx, DIT_ERR_FORMAT, "%s: __metadata__ entry '%s' is not a string",
                             f->path, key);
        }
        f->meta_keys[f->n_meta] = g_strdup(key);
        f->meta_values[f->n_meta] = g_strdup(json_node_get_string(v));
        f->n_meta++;
    }
    g_list_free(members);
    return DIT_OK;
}

static dit_status parse_tensor(dit_ctx *ctx, st_file *f, const char *name, JsonNode *node,
                               st_tensor *t)
{
    const char *path = f->path;
    if (name[0] == '\0')
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: a tensor has an empty name", path);
    if (JSON_NODE_TYPE(node) != JSON_NODE_OBJECT)
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path,
                         name);
    JsonObject *obj = json_node_get_object(node);
    JsonNode *dtype = json_object_get_member(obj, "dtype");
    JsonNode *shape = json_object_get_member(obj, "shape");
    JsonNode *offsets = json_object_get_member(obj, "data_offsets");
    if (!dtype || !shape || !offsets)
        return dit_error(ctx, DIT_ERR_FORMAT,
                         "%s: tensor '%s': needs \"dtype\", \"shape\" and \"data_offsets\"", path,
                         name);
    if (JSON_NODE_TYPE(dtype) != JSON_NODE_VALUE ||
        json_node_get_value_type(dtype) != G_TYPE_STRING)
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: tensor '%s': dtype is not a string", path, name);
    const char *dtype_name = json_node_get_string(dtype);
    if (!dtype_from_name(dtype_name, &t->dtype))
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, name,
                         dtype_name);

    if (JSON_NODE_TYPE(shape) != JSON_NODE_ARRAY)
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: tensor '%s': shape is not an array", path, name);
    JsonArray *dims = json_node_get_array(shape);
    guint ndim = json_array_get_length(dims);
    if (ndim > ST_MAX_DIMS)
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: tensor '%s': %u dimensions, at most %d", path,
                         name, ndim, ST_MAX_DIMS);
    size_t count = 1;
    for (guint i = 0; i < ndim; i++) {
        uint64_t d;
        if (!node_uint(json_array_get_element(dims, i), &d) || d > INT64_MAX)
            return dit_error(ctx, DIT_ERR_FORMAT,
                             "%s: tensor '%s': shape entry %u is not a non-negative integer", path,
                             name, i);
        t->shape[i] = (int64_t)d;
        if (!dit_mul_size(count, (size_t)d, &count))
            return dit_error(ctx, DIT_ERR_FORMAT, "%s: tensor '%s': element count overflows", path,
                             name);
    }
    t->ndim = (int)ndim;
    t->n_elements = count;
    size_t nbytes;
    if (!dit_mul_size(count, st_dtype_size(t->dtype), &nbytes))
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: tensor '%s': byte size overflows", path, name);

    if (JSON_NODE_TYPE(offsets) != JSON_NODE_ARRAY ||
        json_array_get_length(json_node_get_array(offsets)) != 2)
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: tensor '%s': data_offsets must be [begin, end]",
                         path, name);
    JsonArray *off = json_node_get_array(offsets);
    uint64_t begin, end;
    if (!node_uint(json_array_get_element(off, 0), &begin) ||
        !node_uint(json_array_get_element(off, 1), &end))
        return dit_error(ctx, DIT_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets are not non-negative integers", path, name);
    if (begin > end)
        return dit_error(ctx, DIT_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", path,
                         name, (unsigned long long)begin, (unsigned long long)end);
    if (end > f->data_size)
        return dit_error(ctx, DIT_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the "
                         "data (%zu bytes; file truncated?)",
                         path, name, (unsigned long long)begin, (unsigned long long)end,
                         f->data_size);
    if (end - begin != nbytes) {
        char s[128];
        st_shape_str(t->shape, t->ndim, s, sizeof s);
        return dit_error(ctx, DIT_ERR_FORMAT,
                         "%s: tensor '%s': shape %s of %s needs %zu bytes but data_offsets "
                         "span %llu",
                         path, name, s, dtype_name, nbytes, (unsigned long long)(end - begin));
    }
    t->begin = (size_t)begin;
    t->end = (size_t)end;
    t->name = g_strdup(name);
    return DIT_OK;
}

static int cmp_by_begin(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The buffer must be tiled exactly: no overlap, no hole, nothing after. */
static dit_status check_layout(dit_ctx *ctx, st_file *f)
{
    dit_status st = DIT_OK;
    const st_tensor **order = g_new(const st_tensor *, f->n ? f->n : 1);
    for (size_t i = 0; i < f->n; i++)
        order[i] = &f->tensors[i];
    qsort(order, f->n, sizeof *order, cmp_by_begin);
    size_t pos = 0;
    for (size_t i = 0; i < f->n; i++) {
        const st_tensor *t = order[i];
        if (t->begin < pos) {
            st = dit_error(ctx, DIT_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%zu, %zu] overlap tensor '%s'", f->path,
                           t->name, t->begin, t->end, order[i - 1]->name);
            goto out;
        }
        if (t->begin > pos) {
            st = dit_error(ctx, DIT_ERR_FORMAT,
                           "%s: tensor '%s': %zu unindexed bytes before it (at offset %zu)",
                           f->path, t->name, t->begin - pos, pos);
            goto out;
        }
        pos = t->end;
    }
    if (pos != f->data_size)
        st = dit_error(ctx, DIT_ERR_FORMAT,
                       "%s: %zu bytes after the last tensor are not indexed by the header", f->path,
                       f->data_size - pos);
out:
    g_free(order);
    return st;
}

/* The keys of the header's top-level object, as written (JSON already
 * validated). json-glib keeps only the last of duplicated keys, so a file
 * naming one tensor twice is caught here. */
static GPtrArray *top_level_keys(const char *json, size_t len)
{
    GPtrArray *keys = g_ptr_array_new_with_free_func(g_free);
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        const char c = json[i];
        if (c == '"') {
            const size_t start = ++i;
            while (i < len && json[i] != '"')
                i += json[i] == '\\' ? 2 : 1;
            size_t k = i + 1;
            while (k < len && g_ascii_isspace(json[k]))
                k++;
            if (depth == 1 && k < len && json[k] == ':')
                g_ptr_array_add(keys, g_strndup(json + start, i - start));
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return keys;
}

static dit_status check_unique_keys(dit_ctx *ctx, const st_file *f, const char *json, size_t len,
                                    guint n_members)
{
    GPtrArray *keys = top_level_keys(json, len);
    dit_status st = DIT_OK;
    if (keys->len != n_members) {
        GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
        const char *dup = NULL;
        for (guint i = 0; i < keys->len && !dup; i++)
            if (!g_hash_table_add(seen, keys->pdata[i]))
                dup = keys->pdata[i];
        st = dup ? dit_error(ctx, DIT_ERR_FORMAT, "%s: the header names '%s' twice", f->path, dup)
                 : dit_error(ctx, DIT_ERR_FORMAT,
                             "%s: the header names a key twice (%u keys, %u distinct)", f->path,
                             keys->len, n_members);
        g_hash_table_destroy(seen);
    }
    g_ptr_array_free(keys, TRUE);
    return st;
}

static dit_status parse_header(dit_ctx *ctx, st_file *f, const char *json, size_t len)
{
    if (!g_utf8_validate(json, (gssize)len, NULL))
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: header is not valid UTF-8", f->path);
    if (len == 0 || json[0] != '{')
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: header does not start with '{'", f->path);

    dit_status st = DIT_OK;
    char *src = g_strdup_printf("%s: header", f->path);
    JsonParser *parser;
    JsonObject *obj = dit_json_object(ctx, src, json, (gssize)len, &parser);
    g_free(src);
    if (!obj)
        return DIT_ERR_FORMAT;
    GList *members = json_object_get_members(obj);
    if ((st = check_unique_keys(ctx, f, json, len, g_list_length(members)))) {
        g_list_free(members);
        g_object_unref(parser);
        return st;
    }
    f->tensors = g_new0(st_tensor, g_list_length(members) + 1);
    for (GList *l = members; l && st == DIT_OK; l = l->next) {
        const char *name = l->data;
        JsonNode *node = json_object_get_member(obj, name);
        if (strcmp(name, "__metadata__") == 0) {
            st = parse_metadata(ctx, f, node);
            continue;
        }
        st = parse_tensor(ctx, f, name, node, &f->tensors[f->n]);
        if (st == DIT_OK)
            f->n++;
    }
    g_list_free(members);
    g_object_unref(parser);
    if (st == DIT_OK)
        st = check_layout(ctx, f);
    return st;
}

dit_status st_open(dit_ctx *ctx, const char *path, st_file **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dit_error(ctx, DIT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return dit_error(ctx, DIT_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return dit_error(ctx, DIT_ERR_FORMAT,
                         "%s: %zu bytes, too short for a safetensors header (truncated?)", path,
                         size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return dit_error(ctx, DIT_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));

    st_file *f = g_new0(st_file, 1);
    f->path = g_strdup(path);
    f->map = map;
    f->map_size = size;

    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) /* little-endian u64 */
        header_len = header_len << 8 | ((const uint8_t *)map)[i];
    dit_status st;
    if (header_len > ST_MAX_HEADER) {
        st = dit_error(ctx, DIT_ERR_FORMAT,
                       "%s: header length %llu exceeds the 100 MB limit (not a safetensors file?)",
                       path, (unsigned long long)header_len);
    } else if (header_len > size - 8) {
        st = dit_error(ctx, DIT_ERR_FORMAT,
                       "%s: header length %llu is longer than the file (%zu bytes; truncated?)",
                       path, (unsigned long long)header_len, size);
    } else {
        f->data = (const uint8_t *)map + 8 + header_len;
        f->data_size = size - 8 - (size_t)header_len;
        st = parse_header(ctx, f, (const char *)map + 8, (size_t)header_len);
    }
    if (st != DIT_OK) {
        st_close(f);
        return st;
    }
    *out = f;
    return DIT_OK;
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

dit_status st_read_f32(dit_ctx *ctx, const st_file *f, const st_tensor *t, float *dst)
{
    const uint8_t *src = f->data + t->begin; /* any alignment: read with memcpy */
    size_t n = t->n_elements;
    switch (t->dtype) {
    case ST_F32: memcpy(dst, src, n * 4); return DIT_OK;
    case ST_F16:
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = t->dtype == ST_F16 ? dit_f16_to_f32(h) : dit_bf16_to_f32(h);
        }
        return DIT_OK;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        return DIT_OK;
    default:
        return dit_error(ctx, DIT_ERR_MODEL,
                         "%s: tensor '%s' has dtype %s; weights must be F32, F16, BF16 or F64",
                         f->path, t->name, st_dtype_name(t->dtype));
    }
}

void st_release(const st_file *f, const st_tensor *t)
{
    if (!f->map) /* a buffer of the caller's: never dropped */
        return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)(f->data + t->begin) + page - 1) & ~(page - 1);
    const uintptr_t hi = (uintptr_t)(f->data + t->end) & ~(page - 1);
    if (hi > lo) /* read back from the file if touched again */
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* ---- writer -------------------------------------------------------------- */

static bool write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += w;
        len -= (size_t)w;
    }
    return true;
}

static char *build_header(const st_write_tensor *tensors, size_t n, const char *const *meta_keys,
                          const char *const *meta_values, size_t n_meta, size_t *len)
{
    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    if (n_meta) {
        json_builder_set_member_name(b, "__metadata__");
        json_builder_begin_object(b);
        for (size_t i = 0; i < n_meta; i++) {
            json_builder_set_member_name(b, meta_keys[i]);
            json_builder_add_string_value(b, meta_values[i]);
        }
        json_builder_end_object(b);
    }
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const st_write_tensor *t = &tensors[i];
        size_t count = 1;
        for (int d = 0; d < t->ndim; d++)
            count *= (size_t)t->shape[d];
        size_t bytes = count * st_dtype_size(t->dtype);
        json_builder_set_member_name(b, t->name);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "dtype");
        json_builder_add_string_value(b, st_dtype_name(t->dtype));
        json_builder_set_member_name(b, "shape");
        json_builder_begin_array(b);
        for (int d = 0; d < t->ndim; d++)
            json_builder_add_int_value(b, t->shape[d]);
        json_builder_end_array(b);
        json_builder_set_member_name(b, "data_offsets");
        json_builder_begin_array(b);
        json_builder_add_int_value(b, (gint64)offset);
        json_builder_add_int_value(b, (gint64)(offset + bytes));
        json_builder_end_array(b);
        json_builder_end_object(b);
        offset += bytes;
    }
    json_builder_end_object(b);
    JsonGenerator *gen = json_generator_new();
    JsonNode *root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    gsize glen;
    char *json = json_generator_to_data(gen, &glen);
    json_node_unref(root);
    g_object_unref(gen);
    g_object_unref(b);
    /* pad with spaces so the data starts 8-byte aligned */
    size_t padded = (glen + 7) & ~(size_t)7;
    json = g_realloc(json, padded + 1);
    memset(json + glen, ' ', padded - glen);
    json[padded] = '\0';
    *len = padded;
    return json;
}

dit_status st_write(dit_ctx *ctx, const char *path, const st_write_tensor *tensors, size_t n,
                    const char *const *meta_keys, const char *const *meta_values, size_t n_meta)
{
    for (size_t i = 0; i < n; i++)
        if (!tensors[i].raw && tensors[i].dtype != ST_F32 && tensors[i].dtype != ST_F16 &&
            tensors[i].dtype != ST_BF16)
            return dit_error(ctx, DIT_ERR_INVALID_ARG, "%s: cannot write tensor '%s' as %s", path,
                             tensors[i].name, st_dtype_name(tensors[i].dtype));
    size_t header_len;
    char *header = build_header(tensors, n, meta_keys, meta_values, n_meta, &header_len);

    char *tmp = g_strdup_printf("%s.tmp-XXXXXX", path);
    /* 0666 less the umask, as a plain open() would give (mkstemp gives 0600) */
    int fd = g_mkstemp_full(tmp, O_RDWR, 0666);
    if (fd < 0) {
        dit_status st = dit_error(ctx, DIT_ERR_IO, "%s: cannot create a temporary file: %s", path,
                                  strerror(errno));
        g_free(tmp);
        g_free(header);
        return st;
    }
    uint8_t len_le[8];
    for (int i = 0; i < 8; i++)
        len_le[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
    bool ok = write_all(fd, len_le, 8) && write_all(fd, header, header_len);
    uint16_t chunk[4096];
    for (size_t i = 0; ok && i < n; i++) {
        const st_write_tensor *t = &tensors[i];
        size_t count = 1;
        for (int d = 0; d < t->ndim; d++)
            count *= (size_t)t->shape[d];
        if (t->raw || t->dtype == ST_F32) {
            ok = write_all(fd, t->raw ? t->raw : (const void *)t->data,
                           count * st_dtype_size(t->dtype));
            continue;
        }
        for (size_t j = 0; ok && j < count; j += 4096) {
            size_t m = count - j < 4096 ? count - j : 4096;
            for (size_t k = 0; k < m; k++)
                chunk[k] = t->dtype == ST_F16 ? dit_f32_to_f16(t->data[j + k])
                                              : dit_f32_to_bf16(t->data[j + k]);
            ok = write_all(fd, chunk, m * 2);
        }
    }
    int saved = errno;
    ok = ok && fsync(fd) == 0;
    if (!ok)
        saved = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        saved = errno;
    }
    dit_status st = DIT_OK;
    if (!ok) {
        unlink(tmp);
        st = dit_error(ctx, DIT_ERR_IO, "%s: write failed: %s", path, strerror(saved));
    } else {
        char *dir = g_path_get_dirname(path); /* make the rename durable */
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        g_free(dir);
    }
    g_free(tmp);
    g_free(header);
    return st;
}

/* ---- single tensors (dit encode / decode) ---------------------------------- */

dit_status dit_save_tensor(dit_ctx *ctx, const char *path, const char *name, const float *data,
                           int ndim, const int64_t *shape, float scaling_factor)
{
    if (ndim < 1 || ndim > ST_MAX_DIMS)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "tensor rank %d is out of range", ndim);
    st_write_tensor t = {.name = name, .dtype = ST_F32, .ndim = ndim, .data = data};
    memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
    char sf[32];
    g_ascii_dtostr(sf, sizeof sf, scaling_factor);
    const char *keys[] = {"scaling_factor", "format"};
    const char *vals[] = {sf, "dit-latent"};
    return st_write(ctx, path, &t, 1, keys, vals, 2);
}

dit_status dit_load_tensor(dit_ctx *ctx, const char *path, const char *name, float **out,
                           int64_t shape[4])
{
    *out = NULL;
    st_file *f = NULL;
    dit_status st = st_open(ctx, path, &f);
    if (st)
        return st;
    const st_tensor *t = st_find(f, name);
    if (!t || t->ndim != 4) {
        st = dit_error(ctx, DIT_ERR_FORMAT, "%s: no 4-D tensor '%s'", path, name);
    } else if (!(*out = malloc((t->n_elements ? t->n_elements : 1) * sizeof(float)))) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    } else if ((st = st_read_f32(ctx, f, t, *out)) == DIT_OK) {
        memcpy(shape, t->shape, 4 * sizeof *shape);
        for (size_t i = 0; i < t->n_elements && st == DIT_OK; i++)
            if (!isfinite((*out)[i]))
                st = dit_error(ctx, DIT_ERR_FORMAT, "%s: tensor '%s' holds NaN or Inf", path, name);
    }
    if (st) {
        free(*out);
        *out = NULL;
    }
    st_close(f);
    return st;
}
