/* The T5 v1.1 encoder (transformers' T5EncoderModel, as PixArt uses it),
 * written against the backend op table:
 *
 *   h = shared[ids]                                       (B, L, d)
 *   bias[h, i, j] = rel_bias[bucket(j - i), h]            (H, L, L) block 0's
 *   per layer:
 *     h += o(Attn(RMSNorm(h) * ln0; scale 1, + bias, padding keys out))
 *     h += wo(gelu_tanh(wi_0 n) * wi_1 n),  n = RMSNorm(h) * ln1
 *   out = RMSNorm(h) * final
 *
 * No biases anywhere, no 1/sqrt(d) on the logits (T5 folds it into the
 * initialisation), RMSNorm without mean. q, k, v are read into one packed
 * (3 inner, d) matrix so one product gives the (B, L, 3, H, d_kv) layout
 * the attention op takes. Weights: one safetensors file or shards listed
 * by model.safetensors.index.json, beside config.json. */
#include "internal/impl.h"
#include "internal/json.h"
#include "internal/weights.h"

#include <glib.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *ln0, *qkv_w, *o_w;    /* (d), (3 inner, d), (d, inner) */
    float *ln1, *wi0, *wi1, *wo; /* (d), (d_ff, d) x2, (d, d_ff) */
} t5_layer;

struct dit_text_encoder {
    dit_t5_config cfg;
    float *params;
    size_t floats;
    float *shared;   /* (vocab, d) */
    float *rel_bias; /* (num_buckets, H) */
    float *final_ln; /* (d) */
    t5_layer *layers;
};

static void t5_layout(weight_layout *L, void *model)
{
    dit_text_encoder *e = model;
    const dit_t5_config *c = &e->cfg;
    const int64_t d = c->d_model, inner = (int64_t)c->num_heads * c->d_kv, ff = c->d_ff;
    e->shared = wl_take(L, (size_t)c->vocab_size * d);
    wl_want(L, e->shared, 0, 2, (int64_t[]){c->vocab_size, d}, "shared.weight");
    e->rel_bias = wl_take(L, (size_t)c->num_buckets * c->num_heads);
    wl_want(L, e->rel_bias, 0, 2, (int64_t[]){c->num_buckets, c->num_heads},
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    for (int l = 0; l < c->num_layers; l++) {
        t5_layer *y = &e->layers[l];
        const char *const qkv[3] = {"q", "k", "v"};
        y->ln0 = wl_take(L, (size_t)d);
        wl_want(L, y->ln0, 0, 1, (int64_t[]){d}, "encoder.block.%d.layer.0.layer_norm.weight", l);
        y->qkv_w = wl_take(L, (size_t)(3 * inner * d));
        for (int i = 0; i < 3; i++)
            wl_want(L, y->qkv_w ? y->qkv_w + i * inner * d : NULL, 0, 2, (int64_t[]){inner, d},
                    "encoder.block.%d.layer.0.SelfAttention.%s.weight", l, qkv[i]);
        wl_linear_matrix(L, y->qkv_w, 3 * inner, d);
        y->o_w = wl_take(L, (size_t)(d * inner));
        wl_want(L, y->o_w, 0, 2, (int64_t[]){d, inner},
                "encoder.block.%d.layer.0.SelfAttention.o.weight", l);
        wl_linear_matrix(L, y->o_w, d, inner);
        y->ln1 = wl_take(L, (size_t)d);
        wl_want(L, y->ln1, 0, 1, (int64_t[]){d}, "encoder.block.%d.layer.1.layer_norm.weight", l);
        y->wi0 = wl_take(L, (size_t)(ff * d));
        wl_want(L, y->wi0, 0, 2, (int64_t[]){ff, d},
                "encoder.block.%d.layer.1.DenseReluDense.wi_0.weight", l);
        wl_linear_matrix(L, y->wi0, ff, d);
        y->wi1 = wl_take(L, (size_t)(ff * d));
        wl_want(L, y->wi1, 0, 2, (int64_t[]){ff, d},
                "encoder.block.%d.layer.1.DenseReluDense.wi_1.weight", l);
        wl_linear_matrix(L, y->wi1, ff, d);
        y->wo = wl_take(L, (size_t)(d * ff));
        wl_want(L, y->wo, 0, 2, (int64_t[]){d, ff},
                "encoder.block.%d.layer.1.DenseReluDense.wo.weight", l);
        wl_linear_matrix(L, y->wo, d, ff);
    }
    e->final_ln = wl_take(L, (size_t)d);
    wl_want(L, e->final_ln, 0, 1, (int64_t[]){d}, "encoder.final_layer_norm.weight");
}

/* the decoder's half and the copies of the embedding that full T5 files carry */
static bool t5_ignorable(const char *name, const void *user)
{
    (void)user;
    return g_str_has_prefix(name, "decoder.") || strcmp(name, "encoder.embed_tokens.weight") == 0 ||
           strcmp(name, "lm_head.weight") == 0;
}

/* config.json -> c; an error naming the file and the key */
static dit_status read_config(dit_ctx *ctx, const char *path, dit_t5_config *c)
{
    char *text = NULL;
    gsize len = 0;
    GError *err = NULL;
    if (!g_file_get_contents(path, &text, &len, &err)) {
        dit_status st = dit_error(ctx, DIT_ERR_IO, "%s", err->message);
        g_error_free(err);
        return st;
    }
    JsonParser *parser = NULL;
    JsonObject *o = dit_json_object(ctx, path, text, (gssize)len, &parser);
    g_free(text);
    if (!o)
        return DIT_ERR_FORMAT;
    static const struct {
        const char *key;
        size_t off;
        int lo, hi, fallback;
    } ints[] = {
        {"vocab_size", offsetof(dit_t5_config, vocab_size), 1, 1 << 20, -1},
        {"d_model", offsetof(dit_t5_config, d_model), 1, 65536, -1},
        {"d_kv", offsetof(dit_t5_config, d_kv), 1, 4096, -1},
        {"num_heads", offsetof(dit_t5_config, num_heads), 1, 1024, -1},
        {"d_ff", offsetof(dit_t5_config, d_ff), 1, 1 << 18, -1},
        {"num_layers", offsetof(dit_t5_config, num_layers), 1, 1024, -1},
        {"relative_attention_num_buckets", offsetof(dit_t5_config, num_buckets), 2, 4096, 32},
        {"relative_attention_max_distance", offsetof(dit_t5_config, max_distance), 2, 1 << 20, 128},
    };
    dit_status st = DIT_OK;
    for (size_t i = 0; i < G_N_ELEMENTS(ints) && !st; i++) {
        gint64 v = ints[i].fallback;
        if (json_object_has_member(o, ints[i].key))
            v = json_object_get_int_member(o, ints[i].key);
        if (v < ints[i].lo || v > ints[i].hi)
            st = dit_error(ctx, DIT_ERR_MODEL, "%s: %s must be %d..%d%s", path, ints[i].key,
                           ints[i].lo, ints[i].hi,
                           ints[i].fallback < 0 && !json_object_has_member(o, ints[i].key)
                               ? " (missing)"
                               : "");
        *(int *)((char *)c + ints[i].off) = (int)v;
    }
    c->eps = json_object_has_member(o, "layer_norm_epsilon")
                 ? (float)json_object_get_double_member(o, "layer_norm_epsilon")
                 : 1e-6f;
    const char *ff = json_object_has_member(o, "feed_forward_proj")
                         ? json_object_get_string_member(o, "feed_forward_proj")
                         : "relu";
    if (!st && (!ff || strcmp(ff, "gated-gelu") != 0))
        st = dit_error(ctx, DIT_ERR_UNSUPPORTED,
                       "%s: feed_forward_proj is '%s'; the encoder runs T5 v1.1's gated-gelu "
                       "(the original T5's relu is not supported)",
                       path, ff ? ff : "?");
    if (!st && !(c->eps > 0 && c->eps < 1))
        st = dit_error(ctx, DIT_ERR_MODEL, "%s: layer_norm_epsilon must be in (0, 1)", path);
    if (!st && c->num_buckets % 2)
        st = dit_error(ctx, DIT_ERR_MODEL, "%s: relative_attention_num_buckets must be even", path);
    g_object_unref(parser);
    return st;
}

void dit_text_encoder_free(dit_text_encoder *enc)
{
    if (!enc)
        return;
    dit_free_aligned(enc->params);
    free(enc->layers);
    free(enc);
}

const dit_t5_config *dit_text_encoder_config(const dit_text_encoder *enc)
{
    return enc ? &enc->cfg : NULL;
}

dit_status dit_text_encoder_load(dit_ctx *ctx, const char *path, dit_text_encoder **out)
{
    if (!path || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_text_encoder_load: NULL argument");
    *out = NULL;
    char *dir = g_strdup(path); /* a pipeline folder: its text_encoder/ */
    char *sub = g_build_filename(path, "text_encoder", NULL);
    if (g_file_test(sub, G_FILE_TEST_IS_DIR))
        g_free(dir), dir = sub, sub = NULL;
    g_free(sub);
    char *cfg_path = g_build_filename(dir, "config.json", NULL);
    dit_text_encoder *e = calloc(1, sizeof *e);
    st_files files = {0};
    dit_status st =
        e ? read_config(ctx, cfg_path, &e->cfg) : dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    if (!st && !(e->layers = calloc((size_t)e->cfg.num_layers, sizeof *e->layers)))
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    if (!st)
        st = st_open_model_files(ctx, dir, &files);
    if (!st) {
        char what[96];
        snprintf(what, sizeof what, "T5 encoder with %d layers", e->cfg.num_layers);
        wl_result r;
        st = wl_load_files(ctx, (const st_file *const *)files.f, files.n, t5_layout, e, what,
                           t5_ignorable, &r);
        if (!st)
            e->params = r.params, e->floats = r.floats;
    }
    st_files_close(&files);
    g_free(cfg_path), g_free(dir);
    if (st) {
        dit_text_encoder_free(e);
        return st;
    }
    *out = e;
    return DIT_OK;
}

/* transformers' bidirectional bucket of a key j - i positions away, in its
 * float32 arithmetic (the log-spaced buckets' edges fall where it puts them) */
static int rel_bucket(int rel, int num_buckets, int max_distance)
{
    const int half = num_buckets / 2, exact = half / 2, n = rel < 0 ? -rel : rel;
    const int base = rel > 0 ? half : 0;
    if (n < exact)
        return base + n;
    const float v = logf((float)n / (float)exact) / (float)log((double)max_distance / exact) *
                    (float)(half - exact);
    const int b = exact + (int)v;
    return base + (b < half - 1 ? b : half - 1);
}

dit_status dit_text_encode(dit_ctx *ctx, const dit_text_encoder *enc, const int32_t *ids,
                           const int32_t *mask, int B, int L, float *out)
{
    if (!ctx || !enc || !ids || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_text_encode: NULL argument");
    const dit_t5_config *c = &enc->cfg;
    if (B < 1 || B > 256 || L < 1 || L > 4096)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "text batch must be 1..256 and length 1..4096");
    for (size_t i = 0; i < (size_t)B * L; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return dit_error(ctx, DIT_ERR_INVALID_ARG,
                             "token %d at %zu is outside the vocabulary of %d (a tokenizer of "
                             "another model?)",
                             ids[i], i, c->vocab_size);
    if (dit_on_device(ctx))
        return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                         "the T5 encoder runs on the CPU for now (dit_ctx_set_device cpu)");
    const dit_backend *be = &ctx->cpu;
    const dit_status need = DIT_BACKEND_REQUIRE(ctx, be, "the T5 encoder", DIT_T5_OPS);
    if (need)
        return need;
    const size_t d = (size_t)c->d_model, inner = (size_t)c->num_heads * c->d_kv;
    const size_t ff = (size_t)c->d_ff, BL = (size_t)B * L, H = (size_t)c->num_heads;
    // h, n, y (BL, d); qkv (BL, 3 inner); att (BL, inner); f0, f1 (BL, ff);
    // probs (B, H, L, L); bias (H, L, L)
    const size_t n_acts =
        3 * BL * d + 3 * BL * inner + BL * inner + 2 * BL * ff + (size_t)B * H * L * L + H * L * L;
    dit_status st = dit_arena_reserve(ctx, n_acts);
    if (st)
        return st;
    float *h = ctx->arena, *n = h + BL * d, *y = n + BL * d, *qkv = y + BL * d;
    float *att = qkv + 3 * BL * inner, *f0 = att + BL * inner, *f1 = f0 + BL * ff;
    float *probs = f1 + BL * ff, *bias = probs + (size_t)B * H * L * L;
    for (size_t hh = 0; hh < H; hh++)
        for (int i = 0; i < L; i++)
            for (int j = 0; j < L; j++)
                bias[(hh * L + i) * L + j] =
                    enc->rel_bias[(size_t)rel_bucket(j - i, c->num_buckets, c->max_distance) * H +
                                  hh];

    be->add_embedding(be, h, NULL, enc->shared, ids, (int)BL, (int)d);
    for (int l = 0; l < c->num_layers; l++) {
        const t5_layer *ly = &enc->layers[l];
        be->rms_norm(be, n, h, ly->ln0, (int)BL, (int)d, c->eps);
        // qkv (B, L, 3, H, d_kv)
        be->linear(be, qkv, n, ly->qkv_w, NULL, (int)BL, (int)d, (int)(3 * inner), DIT_ACT_NONE);
        be->attention_bias(be, att, qkv, bias, mask, B, L, (int)H, c->d_kv, 1.0f, probs);
        be->linear(be, y, att, ly->o_w, NULL, (int)BL, (int)inner, (int)d, DIT_ACT_NONE);
        be->add_act(be, h, y, BL * d, DIT_ACT_NONE);
        be->rms_norm(be, n, h, ly->ln1, (int)BL, (int)d, c->eps);
        // gated GELU (BL, d_ff)
        be->linear(be, f0, n, ly->wi0, NULL, (int)BL, (int)d, (int)ff, DIT_ACT_GELU_TANH);
        be->linear(be, f1, n, ly->wi1, NULL, (int)BL, (int)d, (int)ff, DIT_ACT_NONE);
        be->mul(be, f0, f0, f1, BL * ff);
        be->linear(be, y, f0, ly->wo, NULL, (int)BL, (int)ff, (int)d, DIT_ACT_NONE);
        be->add_act(be, h, y, BL * d, DIT_ACT_NONE);
    }
    be->rms_norm(be, out, h, enc->final_ln, (int)BL, (int)d, c->eps);
    return DIT_OK;
}
