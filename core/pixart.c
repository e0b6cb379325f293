/* PixArt-α / PixArt-Σ transformer (diffusers' PixArtTransformer2DModel),
 * written against the backend op table:
 *
 *   tokens = patchify(x) . W_embed^T + pos                    (B, T, D)
 *   emb    = MLP(temb(t)) [+ (MLP(temb(h)), MLP(temb(w)), MLP(temb(h/w)))]  (B, D)
 *   t6     = Linear(SiLU(emb))                                (B, 6D), shared
 *   cap    = Linear(GELU(Linear(caption)))                    (B, L, D)
 *   per block: shift, scale, gate (x2) = table (6, D) + t6
 *     x += gate_msa * SelfAttn(LN(x) * (1 + scale_msa) + shift_msa)
 *     x += CrossAttn(q = x, kv = cap; padded caption tokens out)
 *     x += gate_mlp * MLP(LN(x) * (1 + scale_mlp) + shift_mlp)
 *   out = unpatchify(Linear(LN(x) * (1 + table_f[1] + emb) + table_f[0] + emb))
 *
 * "adaLN-single": one timestep MLP for every block, each block adding its own
 * learned table. The cross-attention's query is the residual stream itself,
 * not normed (PixArt's own blocks do the same). q, k, v of the self-attention
 * are read into one (3D, D) matrix and k, v of the cross-attention into one
 * (2D, D), so one product gives the layouts the attention ops take. The
 * 1024 α models also embed the image's resolution and aspect ratio
 * (use_additional_conditions), a third of D each. */
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

enum { FREQ = 256 }; /* the sinusoid width of every embedder */

typedef struct {
    float *table;             /* (6, D) scale_shift_table */
    float *qkv_w, *qkv_b;     /* (3D, D), (3D) attn1 to_q | to_k | to_v */
    float *proj_w, *proj_b;   /* (D, D), (D) attn1.to_out.0 */
    float *xq_w, *xq_b;       /* (D, D), (D) attn2.to_q */
    float *xkv_w, *xkv_b;     /* (2D, D), (2D) attn2 to_k | to_v */
    float *xproj_w, *xproj_b; /* (D, D), (D) attn2.to_out.0 */
    float *fc1_w, *fc1_b;     /* (Dm, D), (Dm) ff.net.0.proj */
    float *fc2_w, *fc2_b;     /* (D, Dm), (D) ff.net.2 */
} pixart_block;

typedef struct {
    float *w1, *b1, *w2, *b2; /* linear_1 (E, 256), linear_2 (E, E) */
} embedder;

struct dit_pixart {
    dit_pixart_config cfg;
    float *params;
    size_t floats;
    bool held;
    uint64_t id;                  /* unique per load: which weights a device holds */
    float *x_embed_w, *x_embed_b; /* (D, C, p, p), (D) pos_embed.proj */
    embedder t_emb;               /* E = D */
    embedder res_emb, ar_emb;     /* E = D / 3; additional conditions only */
    float *ada_w, *ada_b;         /* (6D, D), (6D) adaln_single.linear */
    float *cap1_w, *cap1_b;       /* (D, caption_channels), (D) */
    float *cap2_w, *cap2_b;       /* (D, D), (D) */
    pixart_block *blocks;
    float *final_table;       /* (2, D): shift, scale */
    float *final_w, *final_b; /* (p*p*Cout, D), (p*p*Cout) proj_out */
};

const dit_pixart_config *dit_pixart_get_config(const dit_pixart *m) { return m ? &m->cfg : NULL; }

static void want_embedder(weight_layout *L, embedder *e, int64_t E, const char *prefix)
{
    e->w1 = wl_take(L, (size_t)E * FREQ), e->b1 = wl_take(L, (size_t)E);
    wl_want_linear(L, e->w1, e->b1, E, FREQ, prefix, "linear_1");
    e->w2 = wl_take(L, (size_t)E * E), e->b2 = wl_take(L, (size_t)E);
    wl_want_linear(L, e->w2, e->b2, E, E, prefix, "linear_2");
}

/* n linears (rows, cols) named prefix<names[i]> read into one (n rows,
 * cols) matrix and one (n rows) bias */
static void want_packed(weight_layout *L, float **w, float **b, int n, int64_t rows, int64_t cols,
                        const char *prefix, const char *const *names)
{
    *w = wl_take(L, (size_t)(n * rows * cols));
    *b = wl_take(L, (size_t)(n * rows));
    for (int i = 0; i < n; i++) {
        wl_want(L, *w ? *w + i * rows * cols : NULL, 0, 2, (int64_t[]){rows, cols}, "%s%s.weight",
                prefix, names[i]);
        wl_want(L, *b ? *b + i * rows : NULL, 0, 1, (int64_t[]){rows}, "%s%s.bias", prefix,
                names[i]);
    }
    wl_linear_matrix(L, *w, n * rows, cols);
}

static void pixart_layout(weight_layout *L, void *model)
{
    dit_pixart *m = model;
    const dit_pixart_config *c = &m->cfg;
    const int64_t D = c->hidden_size, Dm = c->mlp_hidden, p = c->patch_size;
    const int64_t P_in = c->in_channels * p * p, P_out = p * p * c->out_channels;
    m->x_embed_w = wl_take(L, (size_t)(D * P_in));
    m->x_embed_b = wl_take(L, (size_t)D);
    wl_want(L, m->x_embed_w, 0, 4, (int64_t[]){D, c->in_channels, p, p}, "pos_embed.proj.weight");
    wl_want(L, m->x_embed_b, 0, 1, (int64_t[]){D}, "pos_embed.proj.bias");
    wl_linear_matrix(L, m->x_embed_w, D, P_in);
    want_embedder(L, &m->t_emb, D, "adaln_single.emb.timestep_embedder.");
    if (c->additional_conditions) {
        want_embedder(L, &m->res_emb, D / 3, "adaln_single.emb.resolution_embedder.");
        want_embedder(L, &m->ar_emb, D / 3, "adaln_single.emb.aspect_ratio_embedder.");
    }
    m->ada_w = wl_take(L, (size_t)(6 * D * D)), m->ada_b = wl_take(L, (size_t)(6 * D));
    wl_want_linear(L, m->ada_w, m->ada_b, 6 * D, D, "adaln_single.", "linear");
    m->cap1_w = wl_take(L, (size_t)(D * c->caption_channels)), m->cap1_b = wl_take(L, (size_t)D);
    wl_want_linear(L, m->cap1_w, m->cap1_b, D, c->caption_channels, "caption_projection.",
                   "linear_1");
    m->cap2_w = wl_take(L, (size_t)(D * D)), m->cap2_b = wl_take(L, (size_t)D);
    wl_want_linear(L, m->cap2_w, m->cap2_b, D, D, "caption_projection.", "linear_2");
    static const char *const qkv[] = {"to_q", "to_k", "to_v"};
    for (int l = 0; l < c->depth; l++) {
        pixart_block *b = &m->blocks[l];
        char pre[64];
        b->table = wl_take(L, (size_t)(6 * D));
        wl_want(L, b->table, 0, 2, (int64_t[]){6, D}, "transformer_blocks.%d.scale_shift_table", l);
        snprintf(pre, sizeof pre, "transformer_blocks.%d.attn1.", l);
        want_packed(L, &b->qkv_w, &b->qkv_b, 3, D, D, pre, qkv);
        b->proj_w = wl_take(L, (size_t)(D * D)), b->proj_b = wl_take(L, (size_t)D);
        wl_want_linear(L, b->proj_w, b->proj_b, D, D, pre, "to_out.0");
        snprintf(pre, sizeof pre, "transformer_blocks.%d.attn2.", l);
        want_packed(L, &b->xq_w, &b->xq_b, 1, D, D, pre, qkv);
        want_packed(L, &b->xkv_w, &b->xkv_b, 2, D, D, pre, qkv + 1);
        b->xproj_w = wl_take(L, (size_t)(D * D)), b->xproj_b = wl_take(L, (size_t)D);
        wl_want_linear(L, b->xproj_w, b->xproj_b, D, D, pre, "to_out.0");
        snprintf(pre, sizeof pre, "transformer_blocks.%d.ff.", l);
        b->fc1_w = wl_take(L, (size_t)(Dm * D)), b->fc1_b = wl_take(L, (size_t)Dm);
        wl_want_linear(L, b->fc1_w, b->fc1_b, Dm, D, pre, "net.0.proj");
        b->fc2_w = wl_take(L, (size_t)(D * Dm)), b->fc2_b = wl_take(L, (size_t)D);
        wl_want_linear(L, b->fc2_w, b->fc2_b, D, Dm, pre, "net.2");
    }
    m->final_table = wl_take(L, (size_t)(2 * D));
    wl_want(L, m->final_table, 0, 2, (int64_t[]){2, D}, "scale_shift_table");
    m->final_w = wl_take(L, (size_t)(P_out * D)), m->final_b = wl_take(L, (size_t)P_out);
    wl_want_linear(L, m->final_w, m->final_b, P_out, D, "", "proj_out");
}

/* an integer member, `fallback` when absent or null (diffusers writes null
 * for "derive it"); false when present but not a whole number in lo..hi */
static bool json_int(JsonObject *o, const char *key, int fallback, int lo, int hi, int *out)
{
    JsonNode *n = json_object_get_member(o, key);
    if (!n || JSON_NODE_HOLDS_NULL(n)) {
        *out = fallback;
        return fallback >= lo && fallback <= hi;
    }
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
        return false;
    const gint64 v = json_node_get_int(n);
    *out = (int)v;
    return v >= lo && v <= hi;
}

/* a string member that must be `want` when present */
static dit_status json_expect(dit_ctx *ctx, const char *path, JsonObject *o, const char *key,
                              const char *want)
{
    JsonNode *n = json_object_get_member(o, key);
    if (!n || JSON_NODE_HOLDS_NULL(n))
        return DIT_OK;
    const char *s = JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
                        ? json_node_get_string(n)
                        : NULL;
    if (s && strcmp(s, want) == 0)
        return DIT_OK;
    return dit_error(ctx, DIT_ERR_UNSUPPORTED, "%s: %s is '%s'; PixArt's transformer has '%s'",
                     path, key, s ? s : "(not a string)", want);
}

static dit_status read_config(dit_ctx *ctx, const char *path, dit_pixart_config *c)
{
    JsonParser *parser = NULL;
    dit_status st;
    JsonObject *o = dit_json_file(ctx, path, &parser, &st);
    if (!o)
        return st;
    int heads = 0, head_dim = 0, cross = 0, out_ch = -1, sample = 0;
    static const struct {
        const char *key;
        int fallback, lo, hi;
    } keys[] = {
        {"num_attention_heads", 16, 1, 1024},
        {"attention_head_dim", 72, 1, 1024},
        {"in_channels", 4, 1, 4096},
        {"out_channels", -1, -1, 4096},
        {"num_layers", 28, 1, 1024},
        {"patch_size", 2, 1, 64},
        {"sample_size", 128, 1, 4096},
        {"caption_channels", -1, 1, 65536},
        {"cross_attention_dim", 1152, 1, 1 << 20},
    };
    int *dst[] = {&heads,         &head_dim, &c->in_channels,      &out_ch, &c->depth,
                  &c->patch_size, &sample,   &c->caption_channels, &cross};
    for (size_t i = 0; i < G_N_ELEMENTS(keys) && !st; i++)
        if (!json_int(o, keys[i].key, keys[i].fallback, keys[i].lo, keys[i].hi, dst[i]))
            st = dit_error(ctx, DIT_ERR_MODEL, "%s: %s must be a whole number in %d..%d%s", path,
                           keys[i].key, keys[i].lo, keys[i].hi,
                           keys[i].fallback < keys[i].lo && !json_object_has_member(o, keys[i].key)
                               ? " (missing)"
                               : "");
    const char *checks[][2] = {{"norm_type", "ada_norm_single"},
                               {"activation_fn", "gelu-approximate"},
                               {"attention_type", "default"}};
    for (size_t i = 0; i < G_N_ELEMENTS(checks) && !st; i++)
        st = json_expect(ctx, path, o, checks[i][0], checks[i][1]);
    if (!st) {
        c->hidden_size = heads * head_dim, c->num_heads = heads, c->sample_size = sample;
        c->out_channels = out_ch < 0 ? c->in_channels : out_ch;
        c->mlp_hidden = 4 * c->hidden_size;
        JsonNode *n = json_object_get_member(o, "interpolation_scale");
        c->interpolation_scale = n && JSON_NODE_HOLDS_VALUE(n) ? (float)json_node_get_double(n)
                                 : sample / 64 > 1             ? (float)(sample / 64)
                                                               : 1.0f;
        n = json_object_get_member(o, "use_additional_conditions");
        c->additional_conditions =
            n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_boolean(n) : sample == 128;
        n = json_object_get_member(o, "norm_eps");
        c->norm_eps = n && JSON_NODE_HOLDS_VALUE(n) ? (float)json_node_get_double(n) : 1e-6f;
        n = json_object_get_member(o, "attention_bias");
        if (n && JSON_NODE_HOLDS_VALUE(n) && !json_node_get_boolean(n))
            st = dit_error(ctx, DIT_ERR_UNSUPPORTED, "%s: attention_bias false is not supported",
                           path);
        n = json_object_get_member(o, "norm_elementwise_affine");
        if (!st && n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_boolean(n))
            st = dit_error(ctx, DIT_ERR_UNSUPPORTED,
                           "%s: norm_elementwise_affine true is not supported", path);
    }
    if (!st && c->hidden_size > 16384)
        st = dit_error(ctx, DIT_ERR_MODEL, "%s: %d heads of %d is too wide", path, heads, head_dim);
    if (!st && cross != c->hidden_size)
        st = dit_error(ctx, DIT_ERR_UNSUPPORTED,
                       "%s: cross_attention_dim %d differs from the width %d (the projected "
                       "caption's)",
                       path, cross, c->hidden_size);
    if (!st && c->sample_size % c->patch_size)
        st = dit_error(ctx, DIT_ERR_MODEL, "%s: sample_size %d is not a multiple of patch_size %d",
                       path, c->sample_size, c->patch_size);
    if (!st && c->additional_conditions && c->hidden_size % 3)
        st = dit_error(ctx, DIT_ERR_MODEL,
                       "%s: with use_additional_conditions the width (%d) must divide by 3", path,
                       c->hidden_size);
    if (!st && !(c->interpolation_scale > 0 && c->interpolation_scale < 1e4 && c->norm_eps > 0 &&
                 c->norm_eps < 1))
        st =
            dit_error(ctx, DIT_ERR_MODEL, "%s: interpolation_scale or norm_eps out of range", path);
    g_object_unref(parser);
    return st;
}

void dit_pixart_free(dit_pixart *m)
{
    if (!m)
        return;
    /* its bf16 copies, and the protection of the fp32 pages they replaced */
    dit_cpu_gemm_forget(m->params, m->floats * sizeof(float));
    dit_free_aligned(m->params);
    free(m->blocks);
    free(m);
}

static bool pixart_ignorable(const char *name, const void *user)
{
    (void)user;
    return strcmp(name, "pos_embed.pos_embed") == 0; /* a buffer some exports keep */
}

dit_status dit_pixart_peek(dit_ctx *ctx, const char *path, dit_pixart_config *out, int *pixels)
{
    if (!path || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_pixart_peek: NULL argument");
    char *dir = dit_component_dir(path, "transformer");
    char *cfg = g_build_filename(dir, "config.json", NULL);
    memset(out, 0, sizeof *out);
    const dit_status st = read_config(ctx, cfg, out);
    if (!st && pixels)
        *pixels = out->sample_size * dit_folder_vae_factor(path);
    g_free(dir), g_free(cfg);
    return st;
}

bool dit_is_pixart(const char *path)
{
    if (!path || !g_file_test(path, G_FILE_TEST_IS_DIR))
        return false;
    char *dir = dit_component_dir(path, "transformer");
    char *cfg = g_build_filename(dir, "config.json", NULL);
    JsonParser *parser = NULL;
    dit_status st;
    JsonObject *o =
        g_file_test(cfg, G_FILE_TEST_IS_REGULAR) ? dit_json_file(NULL, cfg, &parser, &st) : NULL;
    JsonNode *n = o ? json_object_get_member(o, "_class_name") : NULL;
    const bool yes = n && JSON_NODE_HOLDS_VALUE(n) &&
                     json_node_get_value_type(n) == G_TYPE_STRING &&
                     strcmp(json_node_get_string(n), "PixArtTransformer2DModel") == 0;
    if (parser)
        g_object_unref(parser);
    g_free(cfg), g_free(dir);
    return yes;
}

dit_status dit_pixart_load(dit_ctx *ctx, const char *path, dit_pixart **out)
{
    if (!path || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_pixart_load: NULL argument");
    *out = NULL;
    char *dir = dit_component_dir(path, "transformer");
    char *cfg_path = g_build_filename(dir, "config.json", NULL);
    dit_pixart *m = calloc(1, sizeof *m);
    st_files files = {0};
    dit_status st =
        m ? read_config(ctx, cfg_path, &m->cfg) : dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    if (!st && !(m->blocks = calloc((size_t)m->cfg.depth, sizeof *m->blocks)))
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    if (!st)
        st = st_open_model_files(ctx, dir, "diffusion_pytorch_model", &files);
    if (!st) {
        char what[96];
        snprintf(what, sizeof what, "PixArt transformer with %d blocks", m->cfg.depth);
        wl_result r;
        st = wl_load_files(ctx, (const st_file *const *)files.f, files.n, pixart_layout, m, what,
                           pixart_ignorable, &r);
        if (!st) {
            static _Atomic uint64_t last_id;
            m->params = r.params, m->floats = r.floats, m->held = r.held > 0;
            m->id = ++last_id;
        }
    }
    st_files_close(&files);
    g_free(cfg_path), g_free(dir);
    if (st) {
        dit_pixart_free(m);
        return st;
    }
    *out = m;
    return DIT_OK;
}

/* Activation buffers of one forward (floats, 16-aligned offsets). */
typedef struct {
    float *tokens_in, *x, *h, *qkv, *att, *y, *mlp, *fin; /* image tokens */
    float *cap_h, *cap, *kv;                              /* caption tokens */
    float *freq, *hid, *emb, *esilu, *t6, *mod, *cond;    /* per sample */
    float *probs;                                         /* attention weights or scratch */
} acts;

static size_t layout_acts(const dit_backend *be, const dit_pixart_config *c, int B, int T, int L,
                          float *base, acts *a)
{
    const size_t D = (size_t)c->hidden_size, BT = (size_t)B * T, BL = (size_t)B * L;
    const size_t p = (size_t)c->patch_size, H = (size_t)c->num_heads;
    size_t used = 0, scratch = be->attention_scratch(be, B, T, c->num_heads);
    if (scratch < (size_t)B * H * T * L)
        scratch = (size_t)B * H * T * L;
    dit_carve(&a->tokens_in, base, &used, BT * c->in_channels * p * p);
    dit_carve(&a->x, base, &used, BT * D);
    dit_carve(&a->h, base, &used, BT * D);
    dit_carve(&a->qkv, base, &used, BT * 3 * D);
    dit_carve(&a->att, base, &used, BT * D);
    dit_carve(&a->y, base, &used, BT * D);
    dit_carve(&a->mlp, base, &used, BT * c->mlp_hidden);
    dit_carve(&a->fin, base, &used, BT * p * p * c->out_channels);
    dit_carve(&a->cap_h, base, &used, BL * D);
    dit_carve(&a->cap, base, &used, BL * D);
    dit_carve(&a->kv, base, &used, BL * 2 * D);
    dit_carve(&a->freq, base, &used, (size_t)2 * B * FREQ);
    dit_carve(&a->hid, base, &used, (size_t)2 * B * D);
    dit_carve(&a->emb, base, &used, (size_t)B * D);
    dit_carve(&a->esilu, base, &used, (size_t)B * D);
    dit_carve(&a->t6, base, &used, (size_t)B * 6 * D);
    dit_carve(&a->mod, base, &used, (size_t)B * 6 * D);
    dit_carve(&a->cond, base, &used, (size_t)B * 2 * D);
    return dit_carve(&a->probs, base, &used, scratch);
}

/* The inputs of one forward, in the memory of the backend that runs it. */
typedef struct {
    const float *x;        /* (B, C, H, W) */
    const float *t;        /* (B) */
    const float *caption;  /* (B, L, caption_channels) */
    const int32_t *mask;   /* (B, L) or NULL */
    const float *res, *ar; /* (B, 2) height, width: 2B sinusoid arguments; (B) h / w */
    const float *pos;      /* (T, D) */
} inputs;

/* a pointer of m's parameter block at the same offset in w (a device copy) */
#define AT(p) (w + ((p)-m->params))

/* emb (B, D) += (res_emb(h), res_emb(w), ar_emb(h / w)), a third of D each */
static void size_embedding(const dit_backend *be, const dit_pixart *m, const float *w,
                           const acts *a, const inputs *in, int B)
{
    const int E = m->cfg.hidden_size / 3;
    const embedder *r = &m->res_emb, *q = &m->ar_emb;
    float *out = a->y; /* (2B, E) then (B, E): free until the blocks start */
    be->timestep_embedding(be, a->freq, in->res, 2 * B, FREQ, 0);
    be->linear(be, a->hid, a->freq, AT(r->w1), AT(r->b1), 2 * B, FREQ, E, DIT_ACT_SILU);
    be->linear(be, out, a->hid, AT(r->w2), AT(r->b2), 2 * B, E, E, DIT_ACT_NONE);
    be->copy_tokens(be, a->cond, 3, 0, out, 2, 0, 2, B, E); // cond (B, 3, E)
    be->timestep_embedding(be, a->freq, in->ar, B, FREQ, 0);
    be->linear(be, a->hid, a->freq, AT(q->w1), AT(q->b1), B, FREQ, E, DIT_ACT_SILU);
    be->linear(be, out, a->hid, AT(q->w2), AT(q->b2), B, E, E, DIT_ACT_NONE);
    be->copy_tokens(be, a->cond, 3, 2, out, 1, 0, 1, B, E);
    be->gated_add(be, a->emb, a->cond, NULL, 0, B, 1, 3 * E);
}

static void forward_ops(const dit_backend *be, const dit_pixart *m, const float *w, const acts *ap,
                        const inputs *in, int B, int H, int W, int L, float *out)
{
    const dit_pixart_config *c = &m->cfg;
    const acts a = *ap;
    const int D = c->hidden_size, Dm = c->mlp_hidden, p = c->patch_size, nh = c->num_heads;
    const int T = (H / p) * (W / p), BT = B * T, BL = B * L;
    const int P_in = c->in_channels * p * p, P_out = p * p * c->out_channels;

    // emb (B, D) and t6 (B, 6D), shared by every block
    be->timestep_embedding(be, a.freq, in->t, B, FREQ, 0);
    be->linear(be, a.hid, a.freq, AT(m->t_emb.w1), AT(m->t_emb.b1), B, FREQ, D, DIT_ACT_SILU);
    be->linear(be, a.emb, a.hid, AT(m->t_emb.w2), AT(m->t_emb.b2), B, D, D, DIT_ACT_NONE);
    if (c->additional_conditions)
        size_embedding(be, m, w, &a, in, B);
    be->silu(be, a.esilu, a.emb, (size_t)B * D);
    be->linear(be, a.t6, a.esilu, AT(m->ada_w), AT(m->ada_b), B, D, 6 * D, DIT_ACT_NONE);
    // cap (B, L, D)
    be->linear(be, a.cap_h, in->caption, AT(m->cap1_w), AT(m->cap1_b), BL, c->caption_channels, D,
               DIT_ACT_GELU_TANH);
    be->linear(be, a.cap, a.cap_h, AT(m->cap2_w), AT(m->cap2_b), BL, D, D, DIT_ACT_NONE);
    // x (B, T, D)
    be->patchify(be, a.tokens_in, in->x, B, c->in_channels, H, W, p);
    be->linear(be, a.x, a.tokens_in, AT(m->x_embed_w), AT(m->x_embed_b), BT, P_in, D, DIT_ACT_NONE);
    be->add_rows(be, a.x, in->pos, B, T, D);

    for (int l = 0; l < c->depth; l++) {
        const pixart_block *b = &m->blocks[l];
        // mod (B, 6, D) = t6 + table: shift, scale, gate of the attention, then the MLP's
        be->copy_tokens(be, a.mod, 1, 0, a.t6, 1, 0, 1, B, 6 * D);
        be->add_rows(be, a.mod, AT(b->table), B, 1, 6 * D);
        be->layernorm_modulate(be, a.h, a.x, a.mod, a.mod + D, 6 * D, B, T, D, c->norm_eps);
        be->linear(be, a.qkv, a.h, AT(b->qkv_w), AT(b->qkv_b), BT, D, 3 * D, DIT_ACT_NONE);
        be->attention(be, a.att, a.qkv, B, T, nh, D / nh, a.probs);
        be->linear(be, a.y, a.att, AT(b->proj_w), AT(b->proj_b), BT, D, D, DIT_ACT_NONE);
        be->gated_add(be, a.x, a.y, a.mod + 2 * D, 6 * D, B, T, D);
        // cross-attention: q (B, T, D) from x itself, kv (B, L, 2D) from the caption
        be->linear(be, a.h, a.x, AT(b->xq_w), AT(b->xq_b), BT, D, D, DIT_ACT_NONE);
        be->linear(be, a.kv, a.cap, AT(b->xkv_w), AT(b->xkv_b), BL, D, 2 * D, DIT_ACT_NONE);
        be->cross_attention(be, a.att, a.h, a.kv, in->mask, B, T, L, nh, D / nh, a.probs);
        be->linear(be, a.y, a.att, AT(b->xproj_w), AT(b->xproj_b), BT, D, D, DIT_ACT_NONE);
        be->gated_add(be, a.x, a.y, NULL, 0, B, T, D);
        // MLP (B, T, Dm)
        be->layernorm_modulate(be, a.h, a.x, a.mod + 3 * D, a.mod + 4 * D, 6 * D, B, T, D,
                               c->norm_eps);
        be->linear(be, a.mlp, a.h, AT(b->fc1_w), AT(b->fc1_b), BT, D, Dm, DIT_ACT_GELU_TANH);
        be->linear(be, a.y, a.mlp, AT(b->fc2_w), AT(b->fc2_b), BT, Dm, D, DIT_ACT_NONE);
        be->gated_add(be, a.x, a.y, a.mod + 5 * D, 6 * D, B, T, D);
    }
    // final: cond (B, 2, D) = table_f + emb (the embedding itself, not t6)
    be->copy_tokens(be, a.cond, 2, 0, a.emb, 1, 0, 1, B, D);
    be->copy_tokens(be, a.cond, 2, 1, a.emb, 1, 0, 1, B, D);
    be->add_rows(be, a.cond, AT(m->final_table), B, 1, 2 * D);
    be->layernorm_modulate(be, a.h, a.x, a.cond, a.cond + D, 2 * D, B, T, D, 1e-6f);
    be->linear(be, a.fin, a.h, AT(m->final_w), AT(m->final_b), BT, D, P_out, DIT_ACT_NONE);
    be->unpatchify(be, out, a.fin, B, c->out_channels, H, W, p);
}
#undef AT

static dit_status check_inputs(dit_ctx *ctx, const dit_pixart_config *c, int B, int H, int W, int L,
                               const dit_pixart_inputs *in, const float *out)
{
    if (!in || !in->x || !in->t || !in->caption || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_pixart_forward: NULL buffer");
    if (B < 1 || B > 4096 || L < 1 || L > 4096)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "batch %d or caption length %d is out of range (1..4096)", B, L);
    if (H <= 0 || W <= 0 || H % c->patch_size || W % c->patch_size || H > 8192 || W > 8192)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "latent size %dx%d must be positive multiples of the patch size %d", H, W,
                         c->patch_size);
    if (c->additional_conditions && (!in->resolution || !in->aspect_ratio))
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "this PixArt model embeds the image's resolution and aspect ratio: give "
                         "both");
    for (int b = 0; b < B; b++) {
        if (!isfinite(in->t[b]))
            return dit_error(ctx, DIT_ERR_INVALID_ARG, "timestep of sample %d is not finite", b);
        int kept = 0;
        for (int j = 0; in->caption_mask && j < L; j++)
            kept += in->caption_mask[(size_t)b * L + j] != 0;
        if (in->caption_mask && !kept)
            return dit_error(ctx, DIT_ERR_INVALID_ARG,
                             "the caption mask of sample %d keeps no token (an encoded prompt "
                             "has at least its end token)",
                             b);
    }
    const size_t n = (size_t)B * c->in_channels * H * W;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(in->x[i]))
            return dit_error(ctx, DIT_ERR_INVALID_ARG, "input latent holds %s at element %zu",
                             isnan(in->x[i]) ? "NaN" : "Inf", i);
    return DIT_OK;
}

/* the weights on the device: uploaded once per loaded model */
static dit_status device_weights(dit_ctx *ctx, const dit_pixart *m, float **out)
{
    dit_device *d = &ctx->dev;
    if (!d->pixart_params || d->pixart_id != m->id) {
        dit_device_free(d->pixart_params);
        d->pixart_id = 0;
        if (!(d->pixart_params = dit_device_alloc(ctx, m->floats * sizeof(float))))
            return dit_error(ctx, DIT_ERR_NOMEM, "cannot hold the PixArt weights on the device");
        dit_status st =
            dit_device_upload(ctx, d->pixart_params, m->params, m->floats * sizeof(float));
        if (st)
            return st;
        d->pixart_id = m->id;
    }
    *out = d->pixart_params;
    return DIT_OK;
}

/* on a device: activations and inputs in its arena for the call */
static dit_status forward_device(dit_ctx *ctx, const dit_pixart *m, int B, int H, int W, int L,
                                 const inputs *host, float *out)
{
    const dit_backend *be = ctx->be;
    const dit_pixart_config *c = &m->cfg;
    float *w = NULL;
    dit_status st = device_weights(ctx, m, &w);
    if (st)
        return st;
    const int T = (H / c->patch_size) * (W / c->patch_size);
    const size_t n_x = (size_t)B * c->in_channels * H * W,
                 n_cap = (size_t)B * L * c->caption_channels;
    const size_t n_out = (size_t)B * c->out_channels * H * W, n_pos = (size_t)T * c->hidden_size;
    acts a;
    size_t used = layout_acts(be, c, B, T, L, NULL, &a);
    const size_t n_acts = used;
    const size_t sizes[] = {n_x,           (size_t)B, n_cap, (size_t)B * L,
                            (size_t)2 * B, (size_t)B, n_pos, n_out};
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++)
        dit_carve(NULL, NULL, &used, sizes[i]);
    if ((st = dit_device_arena_reserve(ctx, used)))
        return st;
    float *base = ctx->dev.arena, *dev[G_N_ELEMENTS(sizes)];
    layout_acts(be, c, B, T, L, base, &a);
    used = n_acts;
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++)
        dit_carve(&dev[i], base, &used, sizes[i]);
    const void *src[] = {host->x,   host->t,  host->caption, host->mask,
                         host->res, host->ar, host->pos};
    for (size_t i = 0; i < G_N_ELEMENTS(src) && !st; i++)
        if (src[i]) /* int32 mask in float slots: the same size */
            st = dit_device_upload(ctx, dev[i], src[i], sizes[i] * sizeof(float));
    if (st)
        return st;
    const inputs din = {dev[0], dev[1], dev[2], host->mask ? (const int32_t *)dev[3] : NULL,
                        dev[4], dev[5], dev[6]};
    forward_ops(be, m, w, &a, &din, B, H, W, L, dev[7]);
    if ((st = dit_device_sync(ctx)))
        return st;
    return dit_device_download(ctx, out, dev[7], n_out * sizeof(float));
}

dit_status dit_pixart_forward(dit_ctx *ctx, const dit_pixart *m, int B, int H, int W, int L,
                              const dit_pixart_inputs *in, float *out)
{
    if (!ctx || !m)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_pixart_forward: NULL context or model");
    const dit_pixart_config *c = &m->cfg;
    dit_status st = DIT_BACKEND_REQUIRE(ctx, ctx->be, "the PixArt transformer", DIT_PIXART_OPS);
    if (st || (st = dit_check_held(ctx, m->held, "the PixArt transformer", "run")) ||
        (st = check_inputs(ctx, c, B, H, W, L, in, out)))
        return st;
    const int gh = H / c->patch_size, gw = W / c->patch_size,
              native = c->sample_size / c->patch_size;
    const float *pos = NULL;
    if ((st = dit_position_table(ctx, gh, gw, c->hidden_size, (float)native, c->interpolation_scale,
                                 &pos)))
        return st;
    const bool sizes = c->additional_conditions;
    const inputs host = {in->x,
                         in->t,
                         in->caption,
                         in->caption_mask,
                         sizes ? in->resolution : NULL,
                         sizes ? in->aspect_ratio : NULL,
                         pos};
    if (dit_on_device(ctx))
        return forward_device(ctx, m, B, H, W, L, &host, out);
    acts a;
    const int T = gh * gw;
    if ((st = dit_arena_reserve(ctx, layout_acts(&ctx->cpu, c, B, T, L, NULL, &a))))
        return st;
    layout_acts(&ctx->cpu, c, B, T, L, ctx->arena, &a);
    forward_ops(&ctx->cpu, m, m->params, &a, &host, B, H, W, L, out);
    return DIT_OK;
}
