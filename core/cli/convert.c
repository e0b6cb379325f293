/* dit convert's work: a torch.save checkpoint -> .safetensors, through the
 * pickle reader (pickle.c), which runs none of the file's code. The tensors
 * keep their names and dtypes and are written straight from the mapped zip. */
#include "cli.h"
#include "pickle.h"

#include <stdio.h>
#include <string.h>

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
        rc = EXIT_BAD_INPUT;
        goto done_nozip;
    }
    const zip_entry *pkl = zip_find_suffix(&z, "data.pkl");
    if (!pkl) {
        fprintf(stderr, "dit: %s: no data.pkl in the zip: not a torch.save file\n", in);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    m.start = m.p = z.map + pkl->offset;
    m.end = m.p + pkl->size;
    if (!run_pickle(&m)) {
        fprintf(stderr, "dit: %s: %s\n", in, m.err);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    const value *sd = find_state_dict(m.stack->pdata[0], key);
    if (!sd) {
        fprintf(stderr, "dit: %s: no state dict of tensors found%s%s\n", in,
                key ? " under key " : "", key ? key : "");
        rc = EXIT_BAD_INPUT;
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
            rc = EXIT_BAD_INPUT;
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
            rc = EXIT_BAD_INPUT;
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
        rc = EXIT_BAD_INPUT;
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
