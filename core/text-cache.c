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

/* diffusers' PixArt pipelines without clean_caption (which needs bs4 and
 * ftfy): the text lower-cased and stripped */
static char *prepare_prompt(const char *text)
{
    /* ASCII first, whatever the locale (a Turkish one would make 'I' a
     * dotless 'ı' where Python's str.lower gives 'i'), then the rest */
    char *ascii = g_ascii_strdown(text, -1);
    char *low = g_utf8_strdown(ascii, -1);
    g_free(ascii);
    return g_strstrip(low);
}

int dit_text_default_len(const char *folder)
{
    char *index = folder ? g_build_filename(folder, "model_index.json", NULL) : NULL;
    char *text = NULL;
    const bool sigma = index && g_file_get_contents(index, &text, NULL, NULL) &&
                       strstr(text, "PixArtSigmaPipeline");
    g_free(index), g_free(text);
    return sigma ? 300 : 120;
}

void dit_text_pair_clear(dit_text_pair *t)
{
    if (!t)
        return;
    free(t->prompt), free(t->negative), free(t->prompt_mask), free(t->negative_mask);
    memset(t, 0, sizeof *t);
}

dit_status dit_text_pair_encode(dit_ctx *ctx, const char *folder, const char *prompt,
                                const char *negative, int max_len, const char *cache_dir,
                                dit_text_pair *out)
{
    if (!out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_text_pair_encode: NULL argument");
    memset(out, 0, sizeof *out);
    negative = negative ? negative : "";
    if (!folder || !prompt)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_text_pair_encode: NULL argument");
    if (!g_utf8_validate(prompt, -1, NULL) || !g_utf8_validate(negative, -1, NULL))
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "the prompt is not UTF-8 text");
    max_len = max_len ? max_len : dit_text_default_len(folder);
    if (max_len < 1 || max_len > 4096)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "the text length must be 1..4096 tokens");
    dit_t5_config cfg;
    char fp[65];
    dit_status st = dit_t5_peek(ctx, folder, &cfg, fp);
    if (st)
        return st;
    const size_t L = (size_t)max_len, d = (size_t)cfg.d_model;
    out->len = max_len, out->dim = cfg.d_model;
    out->prompt = malloc(L * d * sizeof(float)), out->negative = malloc(L * d * sizeof(float));
    out->prompt_mask = malloc(L * sizeof(int32_t)),
    out->negative_mask = malloc(L * sizeof(int32_t));
    if (!out->prompt || !out->negative || !out->prompt_mask || !out->negative_mask) {
        dit_text_pair_clear(out);
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    }
    char *texts[2] = {prepare_prompt(prompt), prepare_prompt(negative)};
    float *emb[2] = {out->prompt, out->negative};
    int32_t *mask[2] = {out->prompt_mask, out->negative_mask};
    /* both in the cache: neither the tokenizer nor the encoder is loaded */
    char *own = cache_dir ? NULL : dit_text_cache_dir();
    const char *dir = cache_dir ? cache_dir : own;
    bool have[2] = {false, false};
    for (int k = 0; k < 2 && dir[0]; k++) {
        char *path = entry_path(dir, fp, texts[k], max_len);
        have[k] = read_entry(path, texts[k], max_len, cfg.d_model, emb[k], mask[k]);
        g_free(path);
    }
    if (!have[0] || !have[1]) {
        dit_tokenizer *tok = NULL;
        dit_text_encoder *enc = NULL;
        if (!(st = dit_tokenizer_load(ctx, folder, &tok)) &&
            !(st = dit_text_encoder_load(ctx, folder, &enc)))
            for (int k = 0; k < 2 && !st; k++)
                if (!have[k])
                    st = dit_text_embed(ctx, tok, enc, texts[k], max_len, dir, emb[k], mask[k],
                                        NULL);
        dit_text_encoder_free(enc);
        dit_tokenizer_free(tok);
        dit_device_arena_release(ctx); /* the encoder's weights were in it */
    }
    g_free(texts[0]), g_free(texts[1]), g_free(own);
    if (st)
        dit_text_pair_clear(out);
    return st;
}

dit_status dit_text_model_check(dit_ctx *ctx, const char *folder)
{
    dit_pixart_config pc;
    dit_t5_config tc;
    dit_status st;
    char *enc = g_build_filename(folder, "text_encoder", NULL);
    const bool has = g_file_test(enc, G_FILE_TEST_IS_DIR);
    g_free(enc);
    if (!has)
        return dit_error(ctx, DIT_ERR_MODEL,
                         "%s has no text_encoder/: a text model runs from its pipeline folder "
                         "(transformer/, text_encoder/, tokenizer/, vae/, scheduler/)",
                         folder);
    if ((st = dit_pixart_peek(ctx, folder, &pc, NULL)) ||
        (st = dit_text_encoder_peek(ctx, folder, &tc)))
        return st;
    if (tc.d_model != pc.caption_channels)
        return dit_error(ctx, DIT_ERR_MODEL,
                         "%s: the text encoder gives %d channels, the transformer takes captions "
                         "of %d: they do not fit together",
                         folder, tc.d_model, pc.caption_channels);
    return DIT_OK;
}
