/* The T5 tokenizer against transformers' T5Tokenizer (gen.py, t5_tiny.io):
 * 23 prompts (empty, repeated spaces, tabs and newlines, Chinese, emoji,
 * NFKC forms, long ones cut to 16, special tokens written in the text)
 * give the reference's ids and masks exactly; then refusals: a missing
 * model, a file that is not one, a bad tokenizer_config.json, invalid
 * UTF-8, a length of 0. */
#include "common.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void against_reference(dit_ctx *ctx, const dit_tokenizer *tok)
{
    char *iop = fixture_path("t5_tiny.io.safetensors");
    st_file *io = NULL;
    if (st_open(ctx, iop, &io) != DIT_OK) {
        CHECK(false, "%s", dit_last_error(ctx));
        g_free(iop);
        return;
    }
    int64_t shape[4] = {0};
    float *ref_ids = read_tensor(ctx, io, "tok/ids", NULL, shape, NULL);
    float *ref_mask = read_tensor(ctx, io, "tok/mask", NULL, NULL, NULL);
    const int P = (int)shape[0], L = (int)shape[1];
    JsonParser *jp = json_parser_new();
    const char *prompts_json = st_meta(io, "prompts");
    bool parsed = prompts_json && json_parser_load_from_data(jp, prompts_json, -1, NULL);
    JsonArray *prompts = parsed ? json_node_get_array(json_parser_get_root(jp)) : NULL;
    CHECK(ref_ids && ref_mask && prompts && (int)json_array_get_length(prompts) == P &&
              L == atoi(st_meta(io, "max_length")),
          "t5_tiny.io is not what gen.py writes");
    int32_t *ids = malloc((size_t)L * sizeof *ids), *mask = malloc((size_t)L * sizeof *mask);
    int same = 0;
    for (int i = 0; prompts && i < P; i++) {
        const char *text = json_array_get_string_element(prompts, (guint)i);
        int n = 0;
        if (dit_tokenize(ctx, tok, text, L, ids, mask, &n) != DIT_OK) {
            CHECK(false, "prompt %d: %s", i, dit_last_error(ctx));
            continue;
        }
        bool ok = true;
        int ref_n = 0;
        for (int j = 0; j < L; j++) {
            ok = ok && ids[j] == (int32_t)ref_ids[i * L + j] &&
                 mask[j] == (int32_t)ref_mask[i * L + j];
            ref_n += ref_mask[i * L + j] > 0;
        }
        ok = ok && n == ref_n;
        same += ok;
        if (!ok) {
            fprintf(stderr, "prompt %d \"%s\":\n  ours:", i, text);
            for (int j = 0; j < L; j++)
                fprintf(stderr, " %d", ids[j]);
            fprintf(stderr, "\n  ref: ");
            for (int j = 0; j < L; j++)
                fprintf(stderr, " %d", (int)ref_ids[i * L + j]);
            fprintf(stderr, "\n");
        }
    }
    printf("tokenizer: %d of %d prompts give transformers' ids and masks (%s)\n", same, P,
           st_meta(io, "transformers"));
    CHECK(same == P, "%d prompts differ", P - same);
    free(ids), free(mask), free(ref_ids), free(ref_mask);
    g_object_unref(jp);
    st_close(io);
    g_free(iop);
}

static void refusals(dit_ctx *ctx, const dit_tokenizer *tok)
{
    dit_tokenizer *t = NULL;
    char *dir = tmpdir_new();
    char *missing = g_build_filename(dir, "nothing.model", NULL);
    CHECK(dit_tokenizer_load(ctx, missing, &t) == DIT_ERR_IO && !t &&
              strstr(dit_last_error(ctx), "no such file"),
          "missing model: %s", dit_last_error(ctx));
    CHECK(dit_tokenizer_load(ctx, dir, &t) == DIT_ERR_IO && strstr(dit_last_error(ctx), "spiece"),
          "folder without a model: %s", dit_last_error(ctx));
    char *junk = g_build_filename(dir, "spiece.model", NULL);
    g_file_set_contents(junk, "not a sentencepiece model", -1, NULL);
    CHECK(dit_tokenizer_load(ctx, dir, &t) == DIT_ERR_FORMAT &&
              strstr(dit_last_error(ctx), "not a SentencePiece model"),
          "junk model: %s", dit_last_error(ctx));
    /* the real model with a config that says nonsense */
    char *real = fixture_path("t5_tiny/spiece.model"), *bytes = NULL;
    gsize len = 0;
    g_file_get_contents(real, &bytes, &len, NULL);
    g_file_set_contents(junk, bytes, (gssize)len, NULL);
    char *cfg = g_build_filename(dir, "tokenizer_config.json", NULL);
    g_file_set_contents(cfg, "{\"extra_ids\": -3}", -1, NULL);
    CHECK(dit_tokenizer_load(ctx, dir, &t) == DIT_ERR_FORMAT &&
              strstr(dit_last_error(ctx), "extra_ids"),
          "bad extra_ids: %s", dit_last_error(ctx));
    g_file_set_contents(cfg, "{\"extra_ids\": 0}", -1, NULL);
    CHECK(dit_tokenizer_load(ctx, dir, &t) == DIT_OK &&
              dit_tokenizer_vocab_size(t) + 100 == dit_tokenizer_vocab_size(tok),
          "extra_ids 0: %s", dit_last_error(ctx));
    dit_tokenizer_free(t);
    int32_t ids[8];
    CHECK(dit_tokenize(ctx, tok, "caf\xc3", 8, ids, NULL, NULL) == DIT_ERR_INVALID_ARG &&
              strstr(dit_last_error(ctx), "UTF-8"),
          "invalid UTF-8: %s", dit_last_error(ctx));
    CHECK(dit_tokenize(ctx, tok, "a cat", 0, ids, NULL, NULL) == DIT_ERR_INVALID_ARG,
          "max_len 0 accepted");
    CHECK(dit_tokenize(ctx, tok, "a cat", 1, ids, NULL, NULL) == DIT_OK && ids[0] == 1,
          "max_len 1: EOS alone");
    g_unlink(cfg), g_unlink(junk);
    g_free(cfg), g_free(junk), g_free(real), g_free(bytes), g_free(missing);
    tmpdir_remove(dir);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    char *path = fixture_path("t5_tiny");
    dit_tokenizer *tok = NULL;
    const dit_status st = dit_tokenizer_load(ctx, path, &tok);
    if (st == DIT_ERR_UNSUPPORTED) {
        printf("%s: skipping\n", dit_last_error(ctx));
        return 77;
    }
    CHECK(st == DIT_OK, "load: %s", dit_last_error(ctx));
    if (tok) {
        against_reference(ctx, tok);
        refusals(ctx, tok);
    }
    dit_tokenizer_free(tok);
    g_free(path);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
