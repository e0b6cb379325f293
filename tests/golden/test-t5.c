/* The T5 encoder against transformers' T5EncoderModel (gen.py: t5_tiny, 3
 * layers, d_model 64, 4 heads, gated GELU, bf16 weights): a batch of 8
 * tokenized prompts (16 tokens, padded) and one of 2 x 40 random tokens
 * (the log-spaced relative buckets, padding at the end), within 1e-4 of
 * max. The same weights in 3 shards with an index give the same bytes;
 * broken indexes, missing shards, a config that is not T5 v1.1 and
 * tokens outside the vocabulary are refused with a message. */
#include "common.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

typedef struct {
    int B, L;
    int32_t *ids, *mask;
    float *ref;
} batch;

static bool read_batch(dit_ctx *ctx, const st_file *io, const char *tag, batch *b)
{
    char name[64];
    int64_t shape[4] = {0};
    snprintf(name, sizeof name, "enc/%s/ids", tag);
    float *ids = read_tensor(ctx, io, name, NULL, shape, NULL);
    snprintf(name, sizeof name, "enc/%s/mask", tag);
    float *mask = read_tensor(ctx, io, name, NULL, NULL, NULL);
    snprintf(name, sizeof name, "enc/%s/out", tag);
    b->ref = read_tensor(ctx, io, name, NULL, NULL, NULL);
    b->B = (int)shape[0], b->L = (int)shape[1];
    const size_t n = (size_t)b->B * b->L;
    b->ids = malloc(n * sizeof *b->ids), b->mask = malloc(n * sizeof *b->mask);
    for (size_t i = 0; ids && mask && i < n; i++)
        b->ids[i] = (int32_t)ids[i], b->mask[i] = (int32_t)mask[i];
    const bool ok = ids && mask && b->ref;
    free(ids), free(mask);
    CHECK(ok, "t5_tiny.io lacks the %s batch (regenerate with gen.py --only t5)", tag);
    return ok;
}

static float *encode(dit_ctx *ctx, const dit_text_encoder *enc, const batch *b)
{
    const int d = dit_text_encoder_config(enc)->d_model;
    float *out = malloc((size_t)b->B * b->L * d * sizeof *out);
    if (dit_text_encode(ctx, enc, b->ids, b->mask, b->B, b->L, out) != DIT_OK) {
        CHECK(false, "encode: %s", dit_last_error(ctx));
        free(out);
        return NULL;
    }
    return out;
}

/* the fixture's tensors in 3 shards + an index in dir */
static void write_shards(dit_ctx *ctx, const char *src, const char *dir)
{
    tensor_list all = {0}, part[3] = {{0}};
    CHECK(tl_load(ctx, src, &all), "read %s", src);
    GString *index = g_string_new("{\"metadata\": {}, \"weight_map\": {");
    for (size_t i = 0; i < all.n; i++) {
        const st_write_tensor *t = &all.t[i];
        const int k = (int)(i % 3);
        tl_add(&part[k], t->name, t->dtype, t->ndim, t->shape, t->data);
        g_string_append_printf(index, "%s\"%s\": \"model-0000%d-of-00003.safetensors\"",
                               i ? ", " : "", t->name, k + 1);
    }
    g_string_append(index, "}}");
    for (int k = 0; k < 3; k++) {
        char *name = g_strdup_printf("%s/model-0000%d-of-00003.safetensors", dir, k + 1);
        CHECK(tl_write(ctx, &part[k], name) == DIT_OK, "%s", dit_last_error(ctx));
        g_free(name);
        tl_free(&part[k]);
    }
    char *ip = g_build_filename(dir, "model.safetensors.index.json", NULL);
    g_file_set_contents(ip, index->str, -1, NULL);
    g_free(ip);
    g_string_free(index, TRUE);
    tl_free(&all);
}

static void copy_file(const char *from, const char *to)
{
    char *bytes = NULL;
    gsize len = 0;
    g_file_get_contents(from, &bytes, &len, NULL);
    g_file_set_contents(to, bytes, (gssize)len, NULL);
    g_free(bytes);
}

/* load from dir must fail with `want` in the message */
static void refused(dit_ctx *ctx, const char *dir, const char *want, const char *what)
{
    dit_text_encoder *e = NULL;
    const dit_status st = dit_text_encoder_load(ctx, dir, &e);
    CHECK(st != DIT_OK && !e && strstr(dit_last_error(ctx), want), "%s: %s (%s)", what,
          dit_last_error(ctx), dit_status_name(st));
    dit_text_encoder_free(e);
}

static void sharded(dit_ctx *ctx, const char *fixture, const batch *b, const float *single)
{
    char *dir = tmpdir_new(), *src = g_build_filename(fixture, "model.safetensors", NULL);
    char *cfg_src = g_build_filename(fixture, "config.json", NULL);
    char *cfg = g_build_filename(dir, "config.json", NULL);
    char *index = g_build_filename(dir, "model.safetensors.index.json", NULL);
    copy_file(cfg_src, cfg);
    write_shards(ctx, src, dir);
    dit_text_encoder *enc = NULL;
    CHECK(dit_text_encoder_load(ctx, dir, &enc) == DIT_OK, "3 shards: %s", dit_last_error(ctx));
    float *out = enc ? encode(ctx, enc, b) : NULL;
    const size_t n = (size_t)b->B * b->L * dit_text_encoder_config(enc ? enc : NULL)->d_model;
    CHECK(out && single && memcmp(out, single, n * sizeof *out) == 0,
          "3 shards do not give the single file's output");
    printf("3 shards + index: the single file's output, bit for bit\n");
    free(out);
    dit_text_encoder_free(enc);

    char *text = NULL;
    g_file_get_contents(index, &text, NULL, NULL);
    g_file_set_contents(index,
                        "{\"weight_map\": {\"shared.weight\": "
                        "\"../model-00001-of-00003.safetensors\"}}",
                        -1, NULL);
    refused(ctx, dir, "not a file name inside the folder", "an index pointing outside");
    g_file_set_contents(index, "{\"weight_map\": {}}", -1, NULL);
    refused(ctx, dir, "weight_map is empty", "an empty weight_map");
    g_file_set_contents(index, "{\"weight_map\": 3}", -1, NULL);
    refused(ctx, dir, "no weight_map", "a weight_map that is no object");
    g_file_set_contents(index, "not json", -1, NULL);
    refused(ctx, dir, "not valid JSON", "an index that is not JSON");
    g_file_set_contents(index, text, -1, NULL);
    char *shard = g_build_filename(dir, "model-00003-of-00003.safetensors", NULL);
    g_unlink(shard);
    refused(ctx, dir, "a shard the index lists", "a missing shard");
    g_file_set_contents(cfg,
                        "{\"vocab_size\": 200, \"d_model\": 64, \"d_kv\": 16, \"num_heads\": 4, "
                        "\"d_ff\": 128, \"num_layers\": 3, \"feed_forward_proj\": \"relu\"}",
                        -1, NULL);
    refused(ctx, dir, "gated-gelu", "the original T5's relu");
    g_file_set_contents(cfg, "{\"d_model\": 64}", -1, NULL);
    refused(ctx, dir, "vocab_size must be", "a config without vocab_size");
    g_free(text), g_free(shard);
    g_free(dir), g_free(src), g_free(cfg_src), g_free(cfg), g_free(index);
}

/* dit_text_embed: the tokenizer and the encoder, then the cache: a second
 * call comes from it bit for bit, another prompt or length does not */
static void prompt_cache(dit_ctx *ctx, const dit_text_encoder *enc, const float *ref_first,
                         const int32_t *ref_ids)
{
    char *tp = fixture_path("t5_tiny"), *dir = tmpdir_new();
    dit_tokenizer *tok = NULL;
    if (dit_tokenizer_load(ctx, tp, &tok) == DIT_ERR_UNSUPPORTED) {
        printf("no tokenizer in this build: prompt cache not checked\n");
        g_free(tp), tmpdir_remove(dir);
        return;
    }
    const int L = 16, d = dit_text_encoder_config(enc)->d_model;
    float *a = malloc((size_t)L * d * sizeof *a), *b = malloc((size_t)L * d * sizeof *b);
    int32_t mask[16], ids[16];
    bool hit = true;
    /* the fixture's first prompt is the empty one: its batch row 0 */
    CHECK(dit_text_embed(ctx, tok, enc, "", L, dir, a, mask, &hit) == DIT_OK && !hit,
          "first embed: %s (hit %d)", dit_last_error(ctx), hit);
    dit_tokenize(ctx, tok, "", L, ids, NULL, NULL);
    CHECK(memcmp(ids, ref_ids, sizeof ids) == 0, "the empty prompt's ids");
    CHECK(ref_first &&
              compare_rel("dit_text_embed vs the batch's row 0", a, ref_first, (size_t)L * d, 1e-6),
          "dit_text_embed is not dit_text_encode of the tokenized prompt");
    CHECK(dit_text_embed(ctx, tok, enc, "", L, dir, b, mask, &hit) == DIT_OK && hit &&
              memcmp(a, b, (size_t)L * d * sizeof *a) == 0,
          "the second embed did not come from the cache bit for bit (hit %d)", hit);
    CHECK(dit_text_embed(ctx, tok, enc, "a cat", L, dir, b, mask, &hit) == DIT_OK && !hit,
          "another prompt came from the cache");
    CHECK(dit_text_embed(ctx, tok, enc, "", 12, dir, b, mask, &hit) == DIT_OK && !hit,
          "another length came from the cache");
    CHECK(dit_text_embed(ctx, tok, enc, "", L, "", b, mask, &hit) == DIT_OK && !hit,
          "an empty cache dir still read the cache");
    printf("prompt cache: miss, then hit bit for bit; other prompt / length miss\n");
    dit_tokenizer_free(tok);
    free(a), free(b);
    g_free(tp);
    tmpdir_remove(dir);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    char *path = fixture_path("t5_tiny"), *iop = fixture_path("t5_tiny.io.safetensors");
    dit_text_encoder *enc = NULL;
    st_file *io = NULL;
    CHECK(dit_text_encoder_load(ctx, path, &enc) == DIT_OK, "load: %s", dit_last_error(ctx));
    CHECK(st_open(ctx, iop, &io) == DIT_OK, "%s", dit_last_error(ctx));
    batch b[2] = {{0}};
    float *first = NULL;
    for (int i = 0; enc && io && i < 2; i++) {
        const char *tag = i ? "long" : "short";
        if (!read_batch(ctx, io, tag, &b[i]))
            continue;
        float *out = encode(ctx, enc, &b[i]);
        const size_t n = (size_t)b[i].B * b[i].L * dit_text_encoder_config(enc)->d_model;
        char label[64];
        snprintf(label, sizeof label, "T5 encoder, %d x %d tokens", b[i].B, b[i].L);
        if (out)
            CHECK(compare_ref(label, out, b[i].ref, n, 1e-4), "%s", label);
        if (i == 0)
            first = out;
        else
            free(out);
    }
    if (enc && b[0].ids) {
        prompt_cache(ctx, enc, first, b[0].ids);
        sharded(ctx, path, &b[0], first);
        b[0].ids[3] = 200; /* one past the vocabulary */
        float *out = malloc((size_t)b[0].B * b[0].L * 64 * sizeof *out);
        CHECK(dit_text_encode(ctx, enc, b[0].ids, b[0].mask, b[0].B, b[0].L, out) ==
                      DIT_ERR_INVALID_ARG &&
                  strstr(dit_last_error(ctx), "outside the vocabulary"),
              "a token past the vocabulary: %s", dit_last_error(ctx));
        free(out);
    }
    for (int i = 0; i < 2; i++)
        free(b[i].ids), free(b[i].mask), free(b[i].ref);
    free(first);
    dit_text_encoder_free(enc);
    st_close(io);
    g_free(path), g_free(iop);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
