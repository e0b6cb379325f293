/* Prompt embeddings: tokenize, encode, and keep the result in a cache
 * folder keyed by the encoder's fingerprint, the prompt and the length, so
 * a 4.7 B-parameter encoder runs once per prompt (and need not be loaded
 * at all when the prompt was seen before). Files are safetensors written
 * to a temporary name and renamed: a crash never leaves half an entry. */
#include "internal/impl.h"
#include "internal/safetensors.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>

char *dit_text_cache_dir(void)
{
    return g_build_filename(g_get_user_cache_dir(), "gimp-dit", "prompts", NULL);
}

static char *entry_path(const char *dir, const char *fp, const char *prompt, int max_len)
{
    GChecksum *h = g_checksum_new(G_CHECKSUM_SHA256);
    char len[16];
    snprintf(len, sizeof len, "%d", max_len);
    g_checksum_update(h, (const guchar *)fp, -1);
    g_checksum_update(h, (const guchar *)"\n", 1);
    g_checksum_update(h, (const guchar *)len, -1);
    g_checksum_update(h, (const guchar *)"\n", 1);
    g_checksum_update(h, (const guchar *)prompt, -1);
    char *name = g_strconcat(g_checksum_get_string(h), ".safetensors", NULL);
    g_checksum_free(h);
    char *path = g_build_filename(dir, name, NULL);
    g_free(name);
    return path;
}

dit_status dit_save_text_embedding(dit_ctx *ctx, const char *path, const float *emb,
                                   const int32_t *mask, int L, int d, const char *prompt)
{
    if (!path || !emb || !mask || L < 1 || d < 1)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_save_text_embedding: bad argument");
    float *m = malloc((size_t)L * sizeof *m);
    if (!m)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < L; i++)
        m[i] = (float)mask[i];
    const st_write_tensor t[2] = {
        {.name = "prompt_embeds", .dtype = ST_F32, .ndim = 3, .shape = {1, L, d}, .data = emb},
        {.name = "prompt_attention_mask", .dtype = ST_F32, .ndim = 2, .shape = {1, L}, .data = m},
    };
    const char *keys[] = {"prompt"}, *values[] = {prompt ? prompt : ""};
    dit_status st = st_write(ctx, path, t, 2, keys, values, 1);
    free(m);
    return st;
}

/* A cached entry into emb / mask; false when there is none that fits */
static bool read_entry(const char *path, const char *prompt, int L, int d, float *emb,
                       int32_t *mask)
{
    if (!g_file_test(path, G_FILE_TEST_IS_REGULAR))
        return false;
    st_file *f = NULL;
    if (st_open(NULL, path, &f) != DIT_OK)
        return false;
    const st_tensor *e = st_find(f, "prompt_embeds"), *m = st_find(f, "prompt_attention_mask");
    const char *p = st_meta(f, "prompt");
    float *mv = malloc((size_t)L * sizeof *mv);
    bool ok = e && m && p && mv && strcmp(p, prompt) == 0 && e->n_elements == (size_t)L * d &&
              m->n_elements == (size_t)L && st_read_f32(NULL, f, e, emb) == DIT_OK &&
              st_read_f32(NULL, f, m, mv) == DIT_OK;
    for (int i = 0; ok && i < L; i++)
        mask[i] = mv[i] != 0.0f;
    free(mv);
    st_close(f);
    return ok;
}

dit_status dit_text_embed(dit_ctx *ctx, const dit_tokenizer *tok, const dit_text_encoder *enc,
                          const char *prompt, int max_len, const char *cache_dir, float *emb,
                          int32_t *mask, bool *hit)
{
    if (hit)
        *hit = false;
    if (!tok || !enc || !prompt || !emb || !mask)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_text_embed: NULL argument");
    const dit_t5_config *c = dit_text_encoder_config(enc);
    if (dit_tokenizer_vocab_size(tok) > c->vocab_size)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "the tokenizer's %d ids do not fit the encoder's %d embeddings (a "
                         "tokenizer of another model?)",
                         dit_tokenizer_vocab_size(tok), c->vocab_size);
    char *own = cache_dir ? NULL : dit_text_cache_dir();
    const char *dir = cache_dir ? cache_dir : own;
    char *path =
        dir[0] ? entry_path(dir, dit_text_encoder_fingerprint(enc), prompt, max_len) : NULL;
    if (path && read_entry(path, prompt, max_len, c->d_model, emb, mask)) {
        if (hit)
            *hit = true;
        g_free(path), g_free(own);
        return DIT_OK;
    }
    int32_t *ids = malloc((size_t)max_len * sizeof *ids);
    dit_status st = ids ? dit_tokenize(ctx, tok, prompt, max_len, ids, mask, NULL)
                        : dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    if (!st)
        st = dit_text_encode(ctx, enc, ids, mask, 1, max_len, emb);
    /* a cache that cannot be written costs time, not the result */
    if (!st && path && g_mkdir_with_parents(dir, 0700) == 0)
        dit_save_text_embedding(NULL, path, emb, mask, max_len, c->d_model, prompt);
    free(ids);
    g_free(path), g_free(own);
    return st;
}
