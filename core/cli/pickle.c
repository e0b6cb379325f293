/* The pickle of a torch.save checkpoint, read without running any of it.
 *
 * A torch.save zip holds `<name>/data.pkl` (a pickle) and one stored entry
 * per tensor storage, `<name>/data/<key>`. The pickle is interpreted by a
 * small machine that knows only what a state dict needs: dicts, lists,
 * tuples, strings, numbers, OrderedDict, torch storages (persistent ids) and
 * torch._utils._rebuild_tensor_v2 / _rebuild_parameter. Any other opcode or
 * global is refused with its name and offset. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pickle.h"

/* ---- the pickle subset ------------------------------------------------------- */

/* the types are in pickle.h */

static value *vnew(vm *m, vkind k)
{
    value *v = g_new0(value, 1);
    v->kind = k;
    g_ptr_array_add(m->all, v);
    return v;
}

void vfree(gpointer p)
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
    {"torch.FloatStorage", ST_F32},     {"torch.HalfStorage", ST_F16},
    {"torch.BFloat16Storage", ST_BF16}, {"torch.DoubleStorage", ST_F64},
    {"torch.LongStorage", ST_I64},      {"torch.IntStorage", ST_I32},
    {"torch.ShortStorage", ST_I16},     {"torch.CharStorage", ST_I8},
    {"torch.ByteStorage", ST_U8},       {"torch.BoolStorage", ST_BOOL},
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
        snprintf(msg, sizeof msg,
                 "refusing pickle global '%.150s': only state dicts of tensors "
                 "are read",
                 full);
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

/* Each op_* handles one family of opcodes: OP_DONE, OP_FAIL (the message is
 * in m), or OP_NOT_MINE for an opcode of another family. */
enum { OP_FAIL = 0, OP_DONE = 1, OP_NOT_MINE = 2 };

/* marks, dicts, lists and tuples, and filling them */
static int op_container(vm *m, uint8_t op)
{
    value *v;
    GPtrArray *items;
    switch (op) {
    case '}':
    case ']':
    case ')':
        v = vnew(m, op == '}' ? V_DICT : op == ']' ? V_LIST : V_TUPLE);
        v->items = g_ptr_array_new();
        g_ptr_array_add(m->stack, v);
        break;
    case '(': g_ptr_array_add(m->stack, vnew(m, V_MARK)); break;
    case 'b': { /* BUILD: attributes of an OrderedDict (_metadata): ignored */
        value *state = pop(m);
        if (!state || !m->stack->len ||
            ((value *)m->stack->pdata[m->stack->len - 1])->kind != V_DICT)
            return fail(m, "BUILD on something other than a dict");
        break;
    }
    case 'u':
    case 'e':
    case 't': /* SETITEMS, APPENDS, TUPLE */
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
    case 's':
    case 'a': { /* SETITEM, APPEND */
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
    case 0x85:
    case 0x86:
    case 0x87: { /* TUPLE1..3 */
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
    default: return OP_NOT_MINE;
    }
    return OP_DONE;
}

/* the memo: BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET */
static int op_memo(vm *m, uint8_t op)
{
    switch (op) {
    case 'q':
    case 'r':
    case 0x94: { /* BINPUT, LONG_BINPUT, MEMOIZE */
        guint idx;
        if (op == 0x94) {
            idx = m->memo->len;
        } else {
            const size_t w = op == 'q' ? 1 : 4;
            if (!need(m, w))
                return OP_FAIL;
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
    case 'h':
    case 'j': { /* BINGET, LONG_BINGET */
        const size_t w = op == 'h' ? 1 : 4;
        if (!need(m, w))
            return OP_FAIL;
        const guint idx = w == 1 ? m->p[0] : rd32(m->p);
        m->p += w;
        if (idx >= m->memo->len || !m->memo->pdata[idx])
            return fail(m, "memo fetch of an unset slot");
        g_ptr_array_add(m->stack, m->memo->pdata[idx]);
        break;
    }
    default: return OP_NOT_MINE;
    }
    return OP_DONE;
}

/* strings, integers, floats, booleans and None */
static int op_scalar(vm *m, uint8_t op)
{
    value *v;
    switch (op) {
    case 'X':
    case 0x8c: { /* BINUNICODE, SHORT_BINUNICODE */
        const size_t w = op == 'X' ? 4 : 1;
        if (!need(m, w))
            return OP_FAIL;
        const size_t len = w == 4 ? rd32(m->p) : m->p[0];
        m->p += w;
        if (!need(m, len))
            return OP_FAIL;
        if (!g_utf8_validate((const char *)m->p, (gssize)len, NULL))
            return fail(m, "string is not UTF-8");
        v = vnew(m, V_STR);
        v->s = g_strndup((const char *)m->p, len);
        m->p += len;
        g_ptr_array_add(m->stack, v);
        break;
    }
    case 'J':
    case 'K':
    case 'M': { /* BININT, BININT1, BININT2 */
        const size_t w = op == 'J' ? 4 : op == 'K' ? 1 : 2;
        if (!need(m, w))
            return OP_FAIL;
        v = vnew(m, V_INT);
        v->i = w == 4 ? (gint64)(int32_t)rd32(m->p) : w == 1 ? m->p[0] : rd16(m->p);
        m->p += w;
        g_ptr_array_add(m->stack, v);
        break;
    }
    case 0x8a: { /* LONG1 */
        if (!need(m, 1))
            return OP_FAIL;
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
            return OP_FAIL;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | m->p[i];
        m->p += 8;
        v = vnew(m, V_FLOAT);
        memcpy(&v->f, &u, 8);
        g_ptr_array_add(m->stack, v);
        break;
    }
    case 0x88:
    case 0x89:
        v = vnew(m, V_BOOL);
        v->i = op == 0x88;
        g_ptr_array_add(m->stack, v);
        break;
    case 'N': g_ptr_array_add(m->stack, vnew(m, V_NONE)); break;
    default: return OP_NOT_MINE;
    }
    return OP_DONE;
}

/* globals (only the allowed ones), storages (persistent ids) and REDUCE */
static int op_global(vm *m, uint8_t op)
{
    value *v;
    switch (op) {
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
            return OP_FAIL;
        break;
    }
    case 0x93: { /* STACK_GLOBAL */
        value *name = pop(m), *mod = pop(m);
        if (!name || !mod || name->kind != V_STR || mod->kind != V_STR)
            return fail(m, "STACK_GLOBAL needs two strings");
        if (!push_global(m, mod->s, name->s))
            return OP_FAIL;
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
            return OP_FAIL;
        break;
    default: return OP_NOT_MINE;
    }
    return OP_DONE;
}

bool run_pickle(vm *m)
{
    while (m->p < m->end) {
        const uint8_t op = *m->p++;
        int r = OP_NOT_MINE;
        int (*const families[])(vm *, uint8_t) = {op_container, op_memo, op_scalar, op_global};
        for (size_t f = 0; f < G_N_ELEMENTS(families) && r == OP_NOT_MINE; f++)
            r = families[f](m, op);
        if (r == OP_FAIL)
            return false;
        if (r == OP_NOT_MINE) {
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
            case '.': /* STOP */
                return m->stack->len == 1 || fail(m, "STOP with more than one value left");
            default: {
                char msg[96];
                snprintf(msg, sizeof msg, "refusing pickle opcode 0x%02x: not part of a state dict",
                         op);
                return fail(m, msg);
            }
            }
        }
        if (m->stack->len > 1000000)
            return fail(m, "pickle stack too deep");
    }
    return fail(m, "pickle has no STOP");
}

/* ---- the command ------------------------------------------------------------------ */
