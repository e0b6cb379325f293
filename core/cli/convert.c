/* dit convert: PyTorch .pt (torch.save zip) -> .safetensors, without running
 * any code from the file.
 *
 * A torch.save zip holds `<name>/data.pkl` (a pickle) and one stored entry
 * per tensor storage, `<name>/data/<key>`. The pickle is interpreted by a
 * small machine that knows only what a state dict needs: dicts, lists,
 * tuples, strings, numbers, OrderedDict, torch storages (persistent ids) and
 * torch._utils._rebuild_tensor_v2 / _rebuild_parameter. Any other opcode or
 * global is refused with its name and offset. */
#include "dit.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/safetensors.h"

/* ---- zip (stored entries only, as torch.save writes them) ------------------ */

typedef struct {
    char *name;
    uint64_t offset; /* of the data */
    uint64_t size;
} zip_entry;

typedef struct {
    const uint8_t *map;
    size_t size;
    zip_entry *entries;
    size_t n;
} zip_file;

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static void zip_close(zip_file *z)
{
    for (size_t i = 0; i < z->n; i++)
        g_free(z->entries[i].name);
    g_free(z->entries);
    if (z->map)
        munmap((void *)z->map, z->size);
    memset(z, 0, sizeof *z);
}

static bool zip_open(const char *path, zip_file *z, GError **err)
{
    memset(z, 0, sizeof *z);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: cannot open: %s",
                    path, g_strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    z->size = (size_t)sb.st_size;
    if (z->size < 22) {
        close(fd);
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "%s: too short to be a torch.save zip (legacy non-zip .pt files are not "
                    "supported)",
                    path);
        return false;
    }
    void *m = mmap(NULL, z->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_IO, "%s: cannot mmap", path);
        return false;
    }
    z->map = m;
    const uint8_t *b = z->map;
    /* end of central directory: the last 22..65557 bytes */
    size_t eocd = SIZE_MAX;
    for (size_t i = z->size - 22 + 1; i-- > 0 && z->size - i <= 22 + 65535;)
        if (rd32(b + i) == 0x06054b50) {
            eocd = i;
            break;
        }
#define BAD(...)                                                                  \
    do {                                                                          \
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, __VA_ARGS__);          \
        zip_close(z);                                                             \
        return false;                                                             \
    } while (0)
    if (eocd == SIZE_MAX)
        BAD("%s: not a zip file (torch.save writes zips since PyTorch 1.6)", path);
    uint64_t count = rd16(b + eocd + 10), cd_size = rd32(b + eocd + 12), cd_off = rd32(b + eocd + 16);
    if ((count == 0xffff || cd_off == 0xffffffffu) && eocd >= 20 &&
        rd32(b + eocd - 20) == 0x07064b50) { /* zip64 */
        uint64_t rec = rd64(b + eocd - 20 + 8);
        if (z->size < 56 || rec > z->size - 56 || rd32(b + rec) != 0x06064b50)
            BAD("%s: broken zip64 directory", path);
        count = rd64(b + rec + 32), cd_size = rd64(b + rec + 40), cd_off = rd64(b + rec + 48);
    }
    if (cd_off > z->size || cd_size > z->size - cd_off || count > 1000000)
        BAD("%s: zip directory out of range (truncated file?)", path);
    z->entries = g_new0(zip_entry, count ? count : 1);
    uint64_t p = cd_off;
    for (uint64_t i = 0; i < count; i++) {
        if (z->size < 46 || p > z->size - 46 || rd32(b + p) != 0x02014b50)
            BAD("%s: broken zip directory entry %llu", path, (unsigned long long)i);
        const uint16_t method = rd16(b + p + 10), nlen = rd16(b + p + 28), xlen = rd16(b + p + 30),
                       clen = rd16(b + p + 32);
        uint64_t csize = rd32(b + p + 20), usize = rd32(b + p + 24), loc = rd32(b + p + 42);
        if (p + 46 + nlen + xlen > z->size)
            BAD("%s: zip entry name out of range", path);
        /* zip64 extra field: the 0xffffffff fields, in order */
        for (uint64_t x = p + 46 + nlen; x + 4 <= p + 46 + nlen + xlen;) {
            const uint16_t id = rd16(b + x), len = rd16(b + x + 2);
            uint64_t q = x + 4;
            if (id == 0x0001) {
                if (usize == 0xffffffffu && q + 8 <= x + 4 + len)
                    usize = rd64(b + q), q += 8;
                if (csize == 0xffffffffu && q + 8 <= x + 4 + len)
                    csize = rd64(b + q), q += 8;
                if (loc == 0xffffffffu && q + 8 <= x + 4 + len)
                    loc = rd64(b + q);
            }
            x += 4 + (uint64_t)len;
        }
        zip_entry *e = &z->entries[z->n++];
        e->name = g_strndup((const char *)b + p + 46, nlen);
        if (method != 0)
            BAD("%s: entry '%s' is compressed (method %u); torch.save stores entries "
                "uncompressed",
                path, e->name, method);
        if (csize != usize || z->size < 30 || loc > z->size - 30 || rd32(b + loc) != 0x04034b50)
            BAD("%s: entry '%s' has a bad local header", path, e->name);
        const uint64_t data = loc + 30 + rd16(b + loc + 26) + rd16(b + loc + 28);
        if (data > z->size || usize > z->size - data)
            BAD("%s: entry '%s' runs past the end of the file (truncated?)", path, e->name);
        e->offset = data;
        e->size = usize;
        p += 46 + (uint64_t)nlen + xlen + clen;
    }
#undef BAD
    return true;
}

static const zip_entry *zip_find_suffix(const zip_file *z, const char *suffix)
{
    const size_t sl = strlen(suffix);
    for (size_t i = 0; i < z->n; i++) {
        const size_t nl = strlen(z->entries[i].name);
        if (nl >= sl && strcmp(z->entries[i].name + nl - sl, suffix) == 0 &&
            (nl == sl || z->entries[i].name[nl - sl - 1] == '/'))
            return &z->entries[i];
    }
    return NULL;
}

/* ---- the pickle subset ------------------------------------------------------- */

typedef enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL,
               V_STORAGE, V_TENSOR, V_MARK } vkind;

typedef struct value value;
struct value {
    vkind kind;
    gint64 i;           /* int, bool */
    double f;
    char *s;            /* str; global "module.name"; storage key */
    GPtrArray *items;   /* tuple, list; dict: k0, v0, k1, v1, ... */
    st_dtype dtype;     /* storage, tensor */
    value *storage;     /* tensor */
    gint64 offset;      /* tensor storage offset, elements */
    int ndim;
    gint64 shape[8], stride[8];
};

typedef struct {
    GPtrArray *all;   /* every value, freed at the end */
    GPtrArray *stack;
    GPtrArray *memo;  /* index -> value */
    const uint8_t *p, *end, *start;
    char err[256];
} vm;

static value *vnew(vm *m, vkind k)
{
    value *v = g_new0(value, 1);
    v->kind = k;
    g_ptr_array_add(m->all, v);
    return v;
}

static void vfree(gpointer p)
{
    value *v = p;
    g_free(v->s);
    if (v->items)
        g_ptr_array_free(v->items, TRUE);
    g_free(v);
}

static bool fail(vm *m, const char *msg)
{
    if (!m->err[0])
        snprintf(m->err, sizeof m->err, "%.200s (pickle offset %td)", msg, m->p - m->start);
    return false;
}

static value *pop(vm *m)
{
    if (m->stack->len == 0)
        return NULL;
    return g_ptr_array_steal_index(m->stack, m->stack->len - 1);
}

/* everything above the topmost MARK, in order; removes the MARK */
static GPtrArray *pop_mark(vm *m)
{
    int i = (int)m->stack->len - 1;
    while (i >= 0 && ((value *)m->stack->pdata[i])->kind != V_MARK)
        i--;
    if (i < 0)
        return NULL;
    GPtrArray *out = g_ptr_array_new();
    for (guint j = (guint)i + 1; j < m->stack->len; j++)
        g_ptr_array_add(out, m->stack->pdata[j]);
    g_ptr_array_set_size(m->stack, (guint)i);
    return out;
}

static const struct {
    const char *name;
    st_dtype dtype;
} storages[] = {
    {"torch.FloatStorage", ST_F32},   {"torch.HalfStorage", ST_F16},
    {"torch.BFloat16Storage", ST_BF16}, {"torch.DoubleStorage", ST_F64},
    {"torch.LongStorage", ST_I64},    {"torch.IntStorage", ST_I32},
    {"torch.ShortStorage", ST_I16},   {"torch.CharStorage", ST_I8},
    {"torch.ByteStorage", ST_U8},     {"torch.BoolStorage", ST_BOOL},
};

static bool allowed_global(const char *name)
{
    static const char *const ok[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                     "torch._utils._rebuild_parameter"};
    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++)
        if (strcmp(name, ok[i]) == 0)
            return true;
    for (size_t i = 0; i < G_N_ELEMENTS(storages); i++)
        if (strcmp(name, storages[i].name) == 0)
            return true;
    return false;
}

static bool need(vm *m, size_t n)
{
    return (size_t)(m->end - m->p) >= n || fail(m, "pickle ends early");
}

static bool push_global(vm *m, const char *module, const char *name)
{
    char *full = g_strdup_printf("%s.%s", module, name);
    if (!allowed_global(full)) {
        char msg[256];
        snprintf(msg, sizeof msg, "refusing pickle global '%.150s': only state dicts of tensors "
                                  "are read", full);
        g_free(full);
        return fail(m, msg);
    }
    value *v = vnew(m, V_GLOBAL);
    v->s = full;
    g_ptr_array_add(m->stack, v);
    return true;
}

static bool tuple_ints(const value *t, int *n, gint64 *out)
{
    if (!t || t->kind != V_TUPLE || t->items->len > 8)
        return false;
    for (guint i = 0; i < t->items->len; i++) {
        const value *e = t->items->pdata[i];
        if (e->kind != V_INT || e->i < 0)
            return false;
        out[i] = e->i;
    }
    *n = (int)t->items->len;
    return true;
}

static bool do_reduce(vm *m)
{
    value *args = pop(m), *fn = pop(m);
    if (!args || !fn || fn->kind != V_GLOBAL || args->kind != V_TUPLE)
        return fail(m, "REDUCE needs a global and an argument tuple");
    if (strcmp(fn->s, "collections.OrderedDict") == 0) {
        value *d = vnew(m, V_DICT);
        d->items = g_ptr_array_new();
        g_ptr_array_add(m->stack, d);
        return true;
    }
    if (strcmp(fn->s, "torch._utils._rebuild_parameter") == 0) {
        if (args->items->len < 1 || ((value *)args->items->pdata[0])->kind != V_TENSOR)
            return fail(m, "_rebuild_parameter without a tensor");
        g_ptr_array_add(m->stack, args->items->pdata[0]);
        return true;
    }
    if (strcmp(fn->s, "torch._utils._rebuild_tensor_v2") == 0) {
        value *t = vnew(m, V_TENSOR);
        const GPtrArray *a = args->items;
        int nd2 = 0;
        if (a->len < 4 || ((value *)a->pdata[0])->kind != V_STORAGE ||
            ((value *)a->pdata[1])->kind != V_INT || !tuple_ints(a->pdata[2], &t->ndim, t->shape) ||
            !tuple_ints(a->pdata[3], &nd2, t->stride) || nd2 != t->ndim)
            return fail(m, "malformed _rebuild_tensor_v2 arguments");
        t->storage = a->pdata[0];
        t->dtype = t->storage->dtype;
        t->offset = ((value *)a->pdata[1])->i;
        g_ptr_array_add(m->stack, t);
        return true;
    }
    return fail(m, "REDUCE of a global that is not callable here");
}

static bool run_pickle(vm *m)
{
    while (m->p < m->end) {
        const uint8_t op = *m->p++;
        value *v;
        GPtrArray *items;
        switch (op) {
        case 0x80: /* PROTO */
            if (!need(m, 1))
                return false;
            m->p++;
            break;
        case 0x95: /* FRAME */
            if (!need(m, 8))
                return false;
            m->p += 8;
            break;
        case '}': case ']': case ')':
            v = vnew(m, op == '}' ? V_DICT : op == ']' ? V_LIST : V_TUPLE);
            v->items = g_ptr_array_new();
            g_ptr_array_add(m->stack, v);
            break;
        case '(':
            g_ptr_array_add(m->stack, vnew(m, V_MARK));
            break;
        case 'q': case 'r': case 0x94: { /* BINPUT, LONG_BINPUT, MEMOIZE */
            guint idx;
            if (op == 0x94) {
                idx = m->memo->len;
            } else {
                const size_t w = op == 'q' ? 1 : 4;
                if (!need(m, w))
                    return false;
                idx = w == 1 ? m->p[0] : rd32(m->p);
                m->p += w;
            }
            if (!m->stack->len || idx > 10000000)
                return fail(m, "memo store with an empty stack");
            if (idx >= m->memo->len)
                g_ptr_array_set_size(m->memo, idx + 1);
            m->memo->pdata[idx] = m->stack->pdata[m->stack->len - 1];
            break;
        }
        case 'h': case 'j': { /* BINGET, LONG_BINGET */
            const size_t w = op == 'h' ? 1 : 4;
            if (!need(m, w))
                return false;
            const guint idx = w == 1 ? m->p[0] : rd32(m->p);
            m->p += w;
            if (idx >= m->memo->len || !m->memo->pdata[idx])
                return fail(m, "memo fetch of an unset slot");
            g_ptr_array_add(m->stack, m->memo->pdata[idx]);
            break;
        }
        case 'X': case 0x8c: { /* BINUNICODE, SHORT_BINUNICODE */
            const size_t w = op == 'X' ? 4 : 1;
            if (!need(m, w))
                return false;
            const size_t len = w == 4 ? rd32(m->p) : m->p[0];
            m->p += w;
            if (!need(m, len))
                return false;
            if (!g_utf8_validate((const char *)m->p, (gssize)len, NULL))
                return fail(m, "string is not UTF-8");
            v = vnew(m, V_STR);
            v->s = g_strndup((const char *)m->p, len);
            m->p += len;
            g_ptr_array_add(m->stack, v);
            break;
        }
        case 'c': { /* GLOBAL module\nname\n */
            const uint8_t *nl1 = memchr(m->p, '\n', (size_t)(m->end - m->p));
            const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(m->end - nl1 - 1)) : NULL;
            if (!nl2)
                return fail(m, "unterminated GLOBAL");
            char *mod = g_strndup((const char *)m->p, (gsize)(nl1 - m->p));
            char *name = g_strndup((const char *)nl1 + 1, (gsize)(nl2 - nl1 - 1));
            m->p = nl2 + 1;
            bool ok = push_global(m, mod, name);
            g_free(mod), g_free(name);
            if (!ok)
                return false;
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            value *name = pop(m), *mod = pop(m);
            if (!name || !mod || name->kind != V_STR || mod->kind != V_STR)
                return fail(m, "STACK_GLOBAL needs two strings");
            if (!push_global(m, mod->s, name->s))
                return false;
            break;
        }
        case 'Q': { /* BINPERSID: ('storage', type, key, location, numel) */
            value *pid = pop(m);
            if (!pid || pid->kind != V_TUPLE || pid->items->len < 5)
                return fail(m, "persistent id is not a storage tuple");
            const value *tag = pid->items->pdata[0], *type = pid->items->pdata[1],
                        *key = pid->items->pdata[2], *numel = pid->items->pdata[4];
            if (tag->kind != V_STR || strcmp(tag->s, "storage") != 0 || type->kind != V_GLOBAL ||
                key->kind != V_STR || numel->kind != V_INT || numel->i < 0)
                return fail(m, "persistent id is not a storage tuple");
            v = vnew(m, V_STORAGE);
            v->s = g_strdup(key->s);
            v->i = numel->i;
            for (size_t i = 0; i < G_N_ELEMENTS(storages); i++)
                if (strcmp(type->s, storages[i].name) == 0)
                    v->dtype = storages[i].dtype;
            g_ptr_array_add(m->stack, v);
            break;
        }
        case 'R':
            if (!do_reduce(m))
                return false;
            break;
        case 'b': { /* BUILD: attributes of an OrderedDict (_metadata): ignored */
            value *state = pop(m);
            if (!state || !m->stack->len ||
                ((value *)m->stack->pdata[m->stack->len - 1])->kind != V_DICT)
                return fail(m, "BUILD on something other than a dict");
            break;
        }
        case 'u': case 'e': case 't': /* SETITEMS, APPENDS, TUPLE */
            if (!(items = pop_mark(m)))
                return fail(m, "no MARK");
            if (op == 't') {
                v = vnew(m, V_TUPLE);
                v->items = items;
                g_ptr_array_add(m->stack, v);
                break;
            }
            if (!m->stack->len) {
                g_ptr_array_free(items, TRUE);
                return fail(m, "SETITEMS/APPENDS without a container");
            }
            v = m->stack->pdata[m->stack->len - 1];
            if ((op == 'u' && (v->kind != V_DICT || items->len % 2)) ||
                (op == 'e' && v->kind != V_LIST)) {
                g_ptr_array_free(items, TRUE);
                return fail(m, "SETITEMS/APPENDS on the wrong container");
            }
            for (guint i = 0; i < items->len; i++)
                g_ptr_array_add(v->items, items->pdata[i]);
            g_ptr_array_free(items, TRUE);
            break;
        case 's': case 'a': { /* SETITEM, APPEND */
            value *val = pop(m), *key = op == 's' ? pop(m) : NULL;
            if (!val || (op == 's' && !key) || !m->stack->len)
                return fail(m, "SETITEM/APPEND on an empty stack");
            v = m->stack->pdata[m->stack->len - 1];
            if (v->kind != (op == 's' ? V_DICT : V_LIST))
                return fail(m, "SETITEM/APPEND on the wrong container");
            if (key)
                g_ptr_array_add(v->items, key);
            g_ptr_array_add(v->items, val);
            break;
        }
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            const int n = op - 0x84;
            if ((int)m->stack->len < n)
                return fail(m, "TUPLEn on a short stack");
            v = vnew(m, V_TUPLE);
            v->items = g_ptr_array_new();
            for (int i = n; i > 0; i--)
                g_ptr_array_add(v->items, m->stack->pdata[m->stack->len - (guint)i]);
            g_ptr_array_set_size(m->stack, m->stack->len - (guint)n);
            g_ptr_array_add(m->stack, v);
            break;
        }
        case 'J': case 'K': case 'M': { /* BININT, BININT1, BININT2 */
            const size_t w = op == 'J' ? 4 : op == 'K' ? 1 : 2;
            if (!need(m, w))
                return false;
            v = vnew(m, V_INT);
            v->i = w == 4 ? (gint64)(int32_t)rd32(m->p) : w == 1 ? m->p[0] : rd16(m->p);
            m->p += w;
            g_ptr_array_add(m->stack, v);
            break;
        }
        case 0x8a: { /* LONG1 */
            if (!need(m, 1))
                return false;
            const size_t n = *m->p++;
            if (n > 8 || !need(m, n))
                return fail(m, "LONG1 wider than 64 bits");
            uint64_t u = 0;
            for (size_t i = 0; i < n; i++)
                u |= (uint64_t)m->p[i] << (8 * i);
            if (n && n < 8 && (m->p[n - 1] & 0x80)) /* sign-extend */
                u |= ~(uint64_t)0 << (8 * n);
            m->p += n;
            v = vnew(m, V_INT);
            v->i = (gint64)u;
            g_ptr_array_add(m->stack, v);
            break;
        }
        case 'G': { /* BINFLOAT, big-endian */
            if (!need(m, 8))
                return false;
            uint64_t u = 0;
            for (int i = 0; i < 8; i++)
                u = u << 8 | m->p[i];
            m->p += 8;
            v = vnew(m, V_FLOAT);
            memcpy(&v->f, &u, 8);
            g_ptr_array_add(m->stack, v);
            break;
        }
        case 0x88: case 0x89:
            v = vnew(m, V_BOOL);
            v->i = op == 0x88;
            g_ptr_array_add(m->stack, v);
            break;
        case 'N':
            g_ptr_array_add(m->stack, vnew(m, V_NONE));
            break;
        case '.': /* STOP */
            return m->stack->len == 1 || fail(m, "STOP with more than one value left");
        default: {
            char msg[96];
            snprintf(msg, sizeof msg, "refusing pickle opcode 0x%02x: not part of a state dict",
                     op);
            return fail(m, msg);
        }
        }
        if (m->stack->len > 1000000)
            return fail(m, "pickle stack too deep");
    }
    return fail(m, "pickle has no STOP");
}

/* ---- the command ------------------------------------------------------------------ */

/* A dict whose values are all tensors (a state dict), looked for at the top or
 * under `key` (default: "ema", then "model", then "state_dict"). */
static const value *find_state_dict(const value *top, const char *key)
{
    if (top->kind != V_DICT)
        return NULL;
    bool all_tensors = top->items->len > 0;
    for (guint i = 1; i < top->items->len; i += 2)
        all_tensors = all_tensors && ((value *)top->items->pdata[i])->kind == V_TENSOR;
    if (all_tensors && !key)
        return top;
    static const char *const defaults[] = {"ema", "model", "state_dict"};
    for (size_t k = 0; k < (key ? 1 : G_N_ELEMENTS(defaults)); k++) {
        const char *want = key ? key : defaults[k];
        for (guint i = 0; i + 1 < top->items->len; i += 2) {
            const value *kv = top->items->pdata[i];
            if (kv->kind == V_STR && strcmp(kv->s, want) == 0)
                return ((value *)top->items->pdata[i + 1])->kind == V_DICT
                           ? top->items->pdata[i + 1]
                           : NULL;
        }
    }
    return NULL;
}

/* Converts a torch.save checkpoint to a .safetensors file. Returns 0, or the
 * CLI exit code after printing the reason. */
int dit_convert_pt(const char *in, const char *output, const char *key, int heads, bool quiet);
int dit_convert_pt(const char *in, const char *output, const char *key, int heads, bool quiet)
{
    GError *err = NULL;
    int rc = 0;
    zip_file z;
    vm m = {0};
    m.all = g_ptr_array_new_with_free_func(vfree);
    m.stack = g_ptr_array_new();
    m.memo = g_ptr_array_new();
    st_write_tensor *ts = NULL;
    size_t nt = 0;
    if (!zip_open(in, &z, &err)) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_error_free(err);
        rc = 2;
        goto done_nozip;
    }
    const zip_entry *pkl = zip_find_suffix(&z, "data.pkl");
    if (!pkl) {
        fprintf(stderr, "dit: %s: no data.pkl in the zip: not a torch.save file\n", in);
        rc = 2;
        goto done;
    }
    m.start = m.p = z.map + pkl->offset;
    m.end = m.p + pkl->size;
    if (!run_pickle(&m)) {
        fprintf(stderr, "dit: %s: %s\n", in, m.err);
        rc = 2;
        goto done;
    }
    const value *sd = find_state_dict(m.stack->pdata[0], key);
    if (!sd) {
        fprintf(stderr, "dit: %s: no state dict of tensors found%s%s\n", in,
                key ? " under key " : "", key ? key : "");
        rc = 2;
        goto done;
    }
    ts = g_new0(st_write_tensor, sd->items->len / 2 + 1);
    for (guint i = 0; i + 1 < sd->items->len; i += 2) {
        const value *k = sd->items->pdata[i], *t = sd->items->pdata[i + 1];
        if (k->kind != V_STR || t->kind != V_TENSOR)
            continue; /* non-tensor entries (e.g. counters) are not weights */
        /* row-major contiguous only */
        gint64 expect = 1, numel = 1;
        bool contiguous = true;
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (t->shape[d] != 1 && t->stride[d] != expect)
                contiguous = false;
            expect *= t->shape[d];
        }
        for (int d = 0; d < t->ndim; d++)
            numel *= t->shape[d];
        if (!contiguous) {
            fprintf(stderr, "dit: %s: tensor '%s' is not contiguous\n", in, k->s);
            rc = 2;
            goto done;
        }
        char *entry = g_strdup_printf("data/%s", t->storage->s);
        const zip_entry *ze = zip_find_suffix(&z, entry);
        g_free(entry);
        const size_t es = st_dtype_size(t->dtype);
        if (!ze || t->offset < 0 || (uint64_t)(t->offset + numel) * es > ze->size ||
            (uint64_t)(t->offset + numel) > (uint64_t)t->storage->i) {
            fprintf(stderr, "dit: %s: tensor '%s' points outside its storage '%s'\n", in, k->s,
                    t->storage->s);
            rc = 2;
            goto done;
        }
        st_write_tensor *w = &ts[nt++];
        w->name = k->s;
        w->dtype = t->dtype;
        w->ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++)
            w->shape[d] = t->shape[d];
        w->raw = z.map + ze->offset + (size_t)t->offset * es;
    }
    dit_ctx *ctx = dit_ctx_new();
    char hs[16];
    snprintf(hs, sizeof hs, "%d", heads);
    const char *mk[] = {"format", "num_attention_heads"};
    const char *mv[] = {"pt", hs};
    if (st_write(ctx, output, ts, nt, mk, mv, heads > 0 ? 2 : 1) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
        rc = 2;
    } else if (!quiet) {
        printf("wrote %zu tensors to %s\n", nt, output);
    }
    dit_ctx_free(ctx);
done:
    zip_close(&z);
done_nozip:
    g_free(ts);
    g_ptr_array_free(m.stack, TRUE);
    g_ptr_array_free(m.memo, TRUE);
    g_ptr_array_free(m.all, TRUE);
    return rc;
}

int dit_cmd_convert(int argc, char **argv);
int dit_cmd_convert(int argc, char **argv)
{
    char *output = NULL, *key = NULL;
    int heads = 0;
    GOptionEntry entries[] = {
        {"output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "output .safetensors", "FILE"},
        {"key", 0, 0, G_OPTION_ARG_STRING, &key, "take the state dict under this key of the checkpoint (default: the top level, else ema, model, state_dict)", "KEY"},
        {"heads", 0, 0, G_OPTION_ARG_INT, &heads, "record num_attention_heads in the metadata (needed when the width does not tell)", "N"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *oc = g_option_context_new("CHECKPOINT.pt - convert a PyTorch checkpoint");
    g_option_context_set_description(
        oc, "Reads a torch.save() zip without running it: only the pickle opcodes and\n"
            "globals a state dict of tensors needs are accepted; anything else is refused.\n"
            "Tensors keep their names and dtypes; run 'dit info' on the result. 'dit\n"
            "generate -m X.pt' converts on the fly.\n\n"
            "Example:\n  dit convert DiT-XL-2-256x256.pt -o DiT-XL-2-256.safetensors\n");
    g_option_context_add_main_entries(oc, entries, NULL);
    GError *err = NULL;
    int rc = 0;
    if (!g_option_context_parse(oc, &argc, &argv, &err)) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_error_free(err);
        rc = 1;
    } else if (argc != 2 || !output) {
        fprintf(stderr, "dit: convert needs one CHECKPOINT and --output\n");
        rc = 1;
    }
    g_option_context_free(oc);
    if (!rc)
        rc = dit_convert_pt(argv[1], output, key, heads, false);
    g_free(output), g_free(key);
    return rc;
}
