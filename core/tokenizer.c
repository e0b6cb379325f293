/* The T5 tokenizer: a SentencePiece model through libsentencepiece, with
 * what transformers' T5Tokenizer adds around it (the reference the PixArt
 * pipelines use, measured against transformers 5 in tests/golden/gen.py):
 *
 *   - special tokens written in the text (</s>, <pad>, <unk>, <extra_id_N>)
 *     are kept whole; the text between them is encoded piece by piece, each
 *     piece on its own (so each gets SentencePiece's leading "▁");
 *   - the ids are cut to max_len - 1, then EOS follows and padding fills
 *     the rest; the mask is 1 on the tokens and EOS.
 *
 * The extra ids count down from the top: <extra_id_0> is the last id
 * (spm size + extra_ids - 1). */
#include "internal/impl.h"
#include "internal/json.h"
#include "internal/spm.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

struct dit_tokenizer {
    dit_spm *spm;
    int size;      /* the SentencePiece model's pieces */
    int extra_ids; /* <extra_id_N> tokens after them */
    int eos, pad, unk;
};

void dit_tokenizer_free(dit_tokenizer *tok)
{
    if (!tok)
        return;
#ifdef DIT_HAVE_SENTENCEPIECE
    dit_spm_free(tok->spm);
#endif
    free(tok);
}

int dit_tokenizer_vocab_size(const dit_tokenizer *tok)
{
    return tok ? tok->size + tok->extra_ids : 0;
}

#ifdef DIT_HAVE_SENTENCEPIECE
/* tokenizer_config.json's extra_ids beside the model (T5Tokenizer's
 * default 100 without one); -1 with an error for a file that says nonsense */
static int read_extra_ids(dit_ctx *ctx, const char *dir)
{
    char *path = g_build_filename(dir, "tokenizer_config.json", NULL), *text = NULL;
    gsize len = 0;
    int extra = 100;
    if (g_file_get_contents(path, &text, &len, NULL)) {
        JsonParser *parser = NULL;
        JsonObject *o = dit_json_object(ctx, path, text, (gssize)len, &parser);
        if (!o) {
            extra = -1;
        } else if (json_object_has_member(o, "extra_ids")) {
            const gint64 v = json_object_get_int_member(o, "extra_ids");
            extra = v >= 0 && v <= 10000 ? (int)v : -1;
            if (extra < 0)
                dit_error(ctx, DIT_ERR_FORMAT, "%s: extra_ids must be 0..10000", path);
        }
        if (parser)
            g_object_unref(parser);
        g_free(text);
    }
    g_free(path);
    return extra;
}
#endif

dit_status dit_tokenizer_load(dit_ctx *ctx, const char *path, dit_tokenizer **out)
{
    if (!path || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_tokenizer_load: NULL argument");
    *out = NULL;
#ifndef DIT_HAVE_SENTENCEPIECE
    return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                     "this build of libdit has no SentencePiece tokenizer (configure with "
                     "libsentencepiece-dev installed)");
#else
    /* a folder: its spiece.model, or a pipeline's tokenizer/spiece.model */
    char *file = NULL;
    if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
        file = g_build_filename(path, "spiece.model", NULL);
        if (!g_file_test(file, G_FILE_TEST_EXISTS)) {
            g_free(file);
            file = g_build_filename(path, "tokenizer", "spiece.model", NULL);
        }
    } else {
        file = g_strdup(path);
    }
    if (!g_file_test(file, G_FILE_TEST_IS_REGULAR)) {
        dit_status st =
            dit_error(ctx, DIT_ERR_IO, "%s: no such file (the tokenizer's spiece.model)", file);
        g_free(file);
        return st;
    }
    char err[256] = "";
    dit_tokenizer *tok = calloc(1, sizeof *tok);
    char *dir = g_path_get_dirname(file);
    dit_status st = DIT_OK;
    if (!tok) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    } else if (!(tok->spm = dit_spm_load(file, err, sizeof err))) {
        st = dit_error(ctx, DIT_ERR_FORMAT, "%s: not a SentencePiece model: %s", file, err);
    } else if ((tok->extra_ids = read_extra_ids(ctx, dir)) < 0) {
        st = DIT_ERR_FORMAT;
    } else {
        tok->size = dit_spm_size(tok->spm);
        tok->eos = dit_spm_eos(tok->spm), tok->pad = dit_spm_pad(tok->spm);
        tok->unk = dit_spm_unk(tok->spm);
        if (tok->eos < 0 || tok->pad < 0)
            st = dit_error(ctx, DIT_ERR_FORMAT,
                           "%s: the model has no %s piece (a T5 tokenizer has </s> and <pad>)",
                           file, tok->eos < 0 ? "EOS" : "padding");
    }
    g_free(dir);
    g_free(file);
    if (st) {
        dit_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return DIT_OK;
#endif
}

#ifdef DIT_HAVE_SENTENCEPIECE
/* The special token text starts with at s, or -1; *len its length */
static int special_at(const dit_tokenizer *tok, const char *s, size_t *len)
{
    static const char *const names[] = {"</s>", "<pad>", "<unk>"};
    const int ids[] = {tok->eos, tok->pad, tok->unk};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= 0 && strncmp(s, names[i], strlen(names[i])) == 0) {
            *len = strlen(names[i]);
            return ids[i];
        }
    if (strncmp(s, "<extra_id_", 10) == 0 && g_ascii_isdigit(s[10])) {
        char *end = NULL;
        const long n = strtol(s + 10, &end, 10);
        if (*end == '>' && n < tok->extra_ids && (end - (s + 10) == 1 || s[10] != '0')) {
            *len = (size_t)(end + 1 - s);
            return tok->size + tok->extra_ids - 1 - (int)n;
        }
    }
    return -1;
}

/* Appends the pieces of text[0 .. len) to ids (grown as needed) */
static bool encode_span(dit_ctx *ctx, const dit_tokenizer *tok, const char *text, size_t len,
                        GArray *ids)
{
    if (!len)
        return true;
    int32_t *part = NULL;
    int n = 0;
    char err[256] = "";
    if (!dit_spm_encode(tok->spm, text, len, &part, &n, err, sizeof err)) {
        dit_error(ctx, DIT_ERR_INVALID_ARG, "the prompt could not be tokenized: %s", err);
        return false;
    }
    g_array_append_vals(ids, part, (guint)n);
    free(part);
    return true;
}
#endif

dit_status dit_tokenize(dit_ctx *ctx, const dit_tokenizer *tok, const char *text, int max_len,
                        int32_t *ids, int32_t *mask, int *n_tokens)
{
    if (!tok || !text || !ids)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_tokenize: NULL argument");
    if (max_len < 1 || max_len > 65536)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "max_len must be 1..65536, got %d", max_len);
    if (!g_utf8_validate(text, -1, NULL))
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "the prompt is not valid UTF-8");
#ifndef DIT_HAVE_SENTENCEPIECE
    (void)mask, (void)n_tokens;
    return dit_error(ctx, DIT_ERR_UNSUPPORTED, "this build of libdit has no tokenizer");
#else
    GArray *all = g_array_new(FALSE, FALSE, sizeof(int32_t));
    const char *span = text;
    bool ok = true;
    for (const char *s = text; ok && *s;) {
        size_t len = 0;
        const int id = *s == '<' ? special_at(tok, s, &len) : -1;
        if (id < 0) {
            s++;
            continue;
        }
        ok = encode_span(ctx, tok, span, (size_t)(s - span), all);
        g_array_append_val(all, id);
        s += len, span = s;
    }
    ok = ok && encode_span(ctx, tok, span, strlen(span), all);
    if (!ok) {
        g_array_free(all, TRUE);
        return DIT_ERR_INVALID_ARG;
    }
    const int kept = (int)all->len < max_len - 1 ? (int)all->len : max_len - 1;
    for (int i = 0; i < max_len; i++) {
        ids[i] = i < kept ? g_array_index(all, int32_t, i) : i == kept ? tok->eos : tok->pad;
        if (mask)
            mask[i] = i <= kept;
    }
    if (n_tokens)
        *n_tokens = kept + 1;
    g_array_free(all, TRUE);
    return DIT_OK;
#endif
}
