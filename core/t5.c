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
#include "internal/cpu-gemm.h"
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
    char fingerprint[65]; /* the prompt cache's key: config and weights */
    bool held;            /* matrices held in bf16 only (a bf16 CPU context) */
};

const char *dit_text_encoder_fingerprint(const dit_text_encoder *enc) { return enc->fingerprint; }

/* SHA-256 over config.json and every tensor's name, dtype, shape and first
 * and last 64 bytes: a changed file gets other cached prompts, without
 * reading gigabytes to find out */
static void fingerprint(const char *config_path, const st_files *files, char *out)
{
    GChecksum *h = g_checksum_new(G_CHECKSUM_SHA256);
    char *text = NULL;
    gsize len = 0;
    if (g_file_get_contents(config_path, &text, &len, NULL))
        g_checksum_update(h, (const guchar *)text, (gssize)len);
    g_free(text);
    for (int i = 0; i < files->n; i++)
        for (size_t k = 0; k < files->f[i]->n; k++) {
            const st_tensor *t = &files->f[i]->tensors[k];
            g_checksum_update(h, (const guchar *)t->name, -1);
            g_checksum_update(h, (const guchar *)&t->dtype, sizeof t->dtype);
            g_checksum_update(h, (const guchar *)t->shape, sizeof t->shape);
            const size_t n = t->end - t->begin, take = n < 64 ? n : 64;
            g_checksum_update(h, files->f[i]->data + t->begin, (gssize)take);
            g_checksum_update(h, files->f[i]->data + t->end - take, (gssize)take);
        }
    snprintf(out, 65, "%s", g_checksum_get_string(h));
    g_checksum_free(h);
}

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
    JsonParser *parser = NULL;
    dit_status st;
    JsonObject *o = dit_json_file(ctx, path, &parser, &st);
    if (!o)
        return st;
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
    /* its bf16 copies, and the protection of the fp32 pages they replaced */
    dit_cpu_gemm_forget(enc->params, enc->floats * sizeof(float));
    dit_free_aligned(enc->params);
    free(enc->layers);
    free(enc);
}

const dit_t5_config *dit_text_encoder_config(const dit_text_encoder *enc)
{
    return enc ? &enc->cfg : NULL;
}

dit_status dit_t5_peek(dit_ctx *ctx, const char *path, dit_t5_config *cfg, char fp[65])
{
    char *dir = dit_component_dir(path, "text_encoder"),
         *cfg_path = g_build_filename(dir, "config.json", NULL);
    st_files files = {0};
    dit_status st = read_config(ctx, cfg_path, cfg);
    if (!st && !(st = st_open_model_files(ctx, dir, "model", &files)))
        fingerprint(cfg_path, &files, fp);
    st_files_close(&files);
    g_free(cfg_path), g_free(dir);
    return st;
}

dit_status dit_text_encoder_peek(dit_ctx *ctx, const char *path, dit_t5_config *cfg)
{
    char fp[65];
    if (!path || !cfg)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_text_encoder_peek: NULL argument");
    return dit_t5_peek(ctx, path, cfg, fp);
}

dit_status dit_text_encoder_load(dit_ctx *ctx, const char *path, dit_text_encoder **out)
{
    if (!path || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_text_encoder_load: NULL argument");
    *out = NULL;
    char *dir = dit_component_dir(path, "text_encoder");
    char *cfg_path = g_build_filename(dir, "config.json", NULL);
    dit_text_encoder *e = calloc(1, sizeof *e);
    st_files files = {0};
    dit_status st =
        e ? read_config(ctx, cfg_path, &e->cfg) : dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    if (!st && !(e->layers = calloc((size_t)e->cfg.num_layers, sizeof *e->layers)))
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    if (!st)
        st = st_open_model_files(ctx, dir, "model", &files);
    if (!st)
        fingerprint(cfg_path, &files, e->fingerprint);
    if (!st) {
        char what[96];
        snprintf(what, sizeof what, "T5 encoder with %d layers", e->cfg.num_layers);
        wl_result r;
        st = wl_load_files(ctx, (const st_file *const *)files.f, files.n, t5_layout, e, what,
                           t5_ignorable, &r);
        if (!st)
            e->params = r.params, e->floats = r.floats, e->held = r.held > 0;
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

/* The encoder's weights at `base` instead of enc->params (a device copy):
 * the same offsets */
static float *at(const dit_text_encoder *enc, float *base, const float *p)
{
    return base + (p - enc->params);
}

/* The forward on backend be; every pointer is memory of that backend.
 * acts: h, n, y (BL, d); qkv (BL, 3 inner); att (BL, inner); f0, f1 (BL,
 * d_ff); probs (B, H, L, L) */
static void forward_ops(const dit_backend *be, const dit_text_encoder *enc, float *w, float *acts,
                        const int32_t *ids, const int32_t *mask, const float *bias, int B, int L,
                        float *out)
{
    const dit_t5_config *c = &enc->cfg;
    const int d = c->d_model, inner = c->num_heads * c->d_kv, ff = c->d_ff, BL = B * L;
    float *h = acts, *n = h + (size_t)BL * d, *y = n + (size_t)BL * d, *qkv = y + (size_t)BL * d;
    float *att = qkv + (size_t)3 * BL * inner, *f0 = att + (size_t)BL * inner;
    float *f1 = f0 + (size_t)BL * ff, *probs = f1 + (size_t)BL * ff;
    be->add_embedding(be, h, NULL, at(enc, w, enc->shared), ids, BL, d);
    for (int l = 0; l < c->num_layers; l++) {
        const t5_layer *ly = &enc->layers[l];
        be->rms_norm(be, n, h, at(enc, w, ly->ln0), BL, d, c->eps);
        // qkv (B, L, 3, H, d_kv)
        be->linear(be, qkv, n, at(enc, w, ly->qkv_w), NULL, BL, d, 3 * inner, DIT_ACT_NONE);
        be->attention_bias(be, att, qkv, bias, mask, B, L, c->num_heads, c->d_kv, 1.0f, probs);
        be->linear(be, y, att, at(enc, w, ly->o_w), NULL, BL, inner, d, DIT_ACT_NONE);
        be->add_act(be, h, y, (size_t)BL * d, DIT_ACT_NONE);
        be->rms_norm(be, n, h, at(enc, w, ly->ln1), BL, d, c->eps);
        // gated GELU (BL, d_ff)
        be->linear(be, f0, n, at(enc, w, ly->wi0), NULL, BL, d, ff, DIT_ACT_GELU_TANH);
        be->linear(be, f1, n, at(enc, w, ly->wi1), NULL, BL, d, ff, DIT_ACT_NONE);
        be->mul(be, f0, f0, f1, (size_t)BL * ff);
        be->linear(be, y, f0, at(enc, w, ly->wo), NULL, BL, ff, d, DIT_ACT_NONE);
        be->add_act(be, h, y, (size_t)BL * d, DIT_ACT_NONE);
    }
    be->rms_norm(be, out, h, at(enc, w, enc->final_ln), BL, d, c->eps);
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
    const dit_backend *be = ctx->be;
    dit_status st = DIT_BACKEND_REQUIRE(ctx, be, "the T5 encoder", DIT_T5_OPS);
    if (st || (st = dit_check_held(ctx, enc->held, "the T5 encoder", "run")))
        return st;
    const size_t d = (size_t)c->d_model, inner = (size_t)c->num_heads * c->d_kv;
    const size_t ff = (size_t)c->d_ff, BL = (size_t)B * L, H = (size_t)c->num_heads;
    const size_t n_acts = 3 * BL * d + 4 * BL * inner + 2 * BL * ff + (size_t)B * H * L * L;
    const size_t n_bias = H * L * L, n_out = BL * d;
    float *bias = malloc(n_bias * sizeof *bias); // (H, L, L) from block 0's table
    if (!bias)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    for (size_t hh = 0; hh < H; hh++)
        for (int i = 0; i < L; i++)
            for (int j = 0; j < L; j++)
                bias[(hh * L + i) * L + j] =
                    enc->rel_bias[(size_t)rel_bucket(j - i, c->num_buckets, c->max_distance) * H +
                                  hh];
    if (!dit_on_device(ctx)) {
        if (!(st = dit_arena_reserve(ctx, n_acts)))
            forward_ops(be, enc, enc->params, ctx->arena, ids, mask, bias, B, L, out);
        free(bias);
        return st;
    }
    /* on a device: weights, activations, ids, mask, bias and out in its
     * arena for this call (the encoder runs once per prompt) */
    const size_t n_ids = (BL + 15) & ~(size_t)15; /* int32 in float slots: same size */
    const size_t total = enc->floats + n_acts + 2 * n_ids + n_bias + n_out;
    if (!(st = dit_device_arena_reserve(ctx, total))) {
        float *w = ctx->dev.arena, *acts = w + enc->floats, *dids = acts + n_acts;
        float *dmask = dids + n_ids, *dbias = dmask + n_ids, *dout = dbias + n_bias;
        if (!(st = dit_device_upload(ctx, w, enc->params, enc->floats * sizeof(float))) &&
            !(st = dit_device_upload(ctx, dids, ids, BL * sizeof(int32_t))) &&
            (!mask || !(st = dit_device_upload(ctx, dmask, mask, BL * sizeof(int32_t)))) &&
            !(st = dit_device_upload(ctx, dbias, bias, n_bias * sizeof(float)))) {
            forward_ops(be, enc, w, acts, (const int32_t *)dids,
                        mask ? (const int32_t *)dmask : NULL, dbias, B, L, dout);
            if (!(st = dit_device_sync(ctx)))
                st = dit_device_download(ctx, out, dout, n_out * sizeof(float));
        }
    }
    free(bias);
    return st;
}
