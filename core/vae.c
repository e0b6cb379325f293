/* VAEs: the Stable Diffusion AutoencoderKL and the tiny TAESD autoencoder.
 *
 * AutoencoderKL (diffusers naming; fixed choices of its constructor: SiLU,
 * GroupNorm eps 1e-6 with affine, one attention head over all positions in
 * the mid block, output_scale_factor 1, no dropout):
 *   encoder: conv_in; per level: layers_per_block ResnetBlock2D, then (not on
 *            the last level) pad (0,1,0,1) + 3x3 stride-2 conv; mid = resnet,
 *            attention, resnet; GroupNorm + SiLU; conv_out -> 2L; quant_conv
 *   decoder: post_quant_conv; conv_in; mid; per level (channels reversed):
 *            layers_per_block + 1 resnets, then (not last) nearest 2x + 3x3
 *            conv; GroupNorm + SiLU; conv_out
 *   resnet:  x + conv2(SiLU(GN2(conv1(SiLU(GN1(x)))))), x through a 1x1
 *            conv_shortcut when the channel count changes
 * AutoencoderTiny (TAESD): a Sequential of 3x3 convs and blocks
 *   relu(conv(relu(conv(relu(conv(x))))) + skip(x)); the encoder maps
 *   [-1, 1] to [0, 1] first, the decoder clamps latents with 3 tanh(z / 3)
 *   and maps [0, 1] back to [-1, 1].
 * Tensors are NCHW floats; every activation lives in the context arena.
 * Runs on the context's device: on CUDA the weights are uploaded once per
 * VAE, activations live in the device arena, and each call moves only its
 * input and output across. */
#include "internal/weights.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEVELS 8
#define MAX_RES 8
#define MAX_TINY_LAYERS 64
#define VAE_GN_EPS 1e-6f

typedef struct {
    float *w; /* (cout, cin, k, k) */
    float *b; /* (cout) or NULL */
    int cin, cout, k;
} conv_w;

typedef struct {
    float *w, *b; /* (c) GroupNorm affine */
    int c;
} norm_w;

typedef struct {
    norm_w norm1, norm2;
    conv_w conv1, conv2;
    conv_w shortcut; /* w NULL when cin == cout */
} resnet_w;

typedef struct {
    norm_w norm;
    conv_w q, k, v, out; /* (c, c, 1, 1) linears over channels */
} attn_w;

typedef struct {
    resnet_w res[2];
    attn_w attn;
    bool has_attn;
} mid_w;

typedef struct {
    conv_w conv_in;
    resnet_w res[MAX_LEVELS][MAX_RES];
    conv_w resample[MAX_LEVELS]; /* down (encoder) / up (decoder) conv */
    mid_w mid;
    norm_w norm_out;
    conv_w conv_out;
} kl_coder;

typedef enum { TL_CONV, TL_BLOCK, TL_UPSAMPLE, TL_RELU } tiny_kind;

typedef struct {
    tiny_kind kind;
    int index;          /* position in the upstream Sequential */
    conv_w conv;        /* TL_CONV; stride 2 when it has no bias in the encoder */
    int stride;
    bool bias;          /* TL_CONV has a bias */
    conv_w c1, c2, c3;  /* TL_BLOCK */
    conv_w skip;        /* TL_BLOCK, w NULL for identity */
    bool has_skip;
} tiny_layer;

typedef struct {
    tiny_layer layers[MAX_TINY_LAYERS];
    int n;
} tiny_coder;

struct dit_vae {
    dit_vae_info info;
    char path[512];
    char prefix[32];   /* "first_stage_model." in full LDM checkpoints */
    float *params;
    size_t n_params;
    kl_coder enc, dec;
    conv_w quant, post_quant;
    tiny_coder tenc, tdec;
    int tile_sample;   /* 0: no tiling */
    float tile_overlap;
    uint64_t id;       /* unique per load: which VAE a device copy belongs to */
};

/* ---- names ------------------------------------------------------------------ */

/* Fills buf with the file's name for a piece of the KL model. `coder` is
 * "encoder" or "decoder"; levels are diffusers' (the LDM decoder counts its
 * up levels in reverse). */
typedef enum { P_RES, P_RESAMPLE, P_MID_RES, P_MID_ATTN } kl_part;

static void kl_prefix(const dit_vae *v, char *buf, size_t len, const char *coder, kl_part part,
                      int level, int j)
{
    const dit_vae_info *in = &v->info;
    const bool enc = coder[0] == 'e';
    const bool ldm = in->naming == DIT_VAE_NAMING_LDM;
    const int lvl = ldm && !enc ? in->n_levels - 1 - level : level;
    switch (part) {
    case P_RES:
        if (ldm)
            snprintf(buf, len, "%s%s.%s.%d.block.%d.", v->prefix, coder, enc ? "down" : "up", lvl,
                     j);
        else
            snprintf(buf, len, "%s.%s.%d.resnets.%d.", coder, enc ? "down_blocks" : "up_blocks",
                     lvl, j);
        break;
    case P_RESAMPLE:
        if (ldm)
            snprintf(buf, len, "%s%s.%s.%d.%s.conv", v->prefix, coder, enc ? "down" : "up", lvl,
                     enc ? "downsample" : "upsample");
        else
            snprintf(buf, len, "%s.%s.%d.%s.0.conv", coder, enc ? "down_blocks" : "up_blocks", lvl,
                     enc ? "downsamplers" : "upsamplers");
        break;
    case P_MID_RES:
        if (ldm)
            snprintf(buf, len, "%s%s.mid.block_%d.", v->prefix, coder, j + 1);
        else
            snprintf(buf, len, "%s.mid_block.resnets.%d.", coder, j);
        break;
    case P_MID_ATTN:
        if (ldm)
            snprintf(buf, len, "%s%s.mid.attn_1.", v->prefix, coder);
        else
            snprintf(buf, len, "%s.mid_block.attentions.0.", coder);
        break;
    }
}

/* attention parts in order norm, q, k, v, out */
static const char *attn_part(dit_vae_naming naming, int part)
{
    static const char *const names[3][5] = {
        {"group_norm", "to_q", "to_k", "to_v", "to_out.0"},
        {"group_norm", "query", "key", "value", "proj_attn"},
        {"norm", "q", "k", "v", "proj_out"},
    };
    int row = naming == DIT_VAE_NAMING_LDM ? 2 : naming == DIT_VAE_NAMING_DIFFUSERS_OLD ? 1 : 0;
    return names[row][part];
}

/* ---- layout --------------------------------------------------------------------- */

static void lay_conv(weight_layout *L, conv_w *c, int cin, int cout, int k, bool bias,
                     int flags, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static void lay_conv(weight_layout *L, conv_w *c, int cin, int cout, int k, bool bias,
                     int flags, const char *fmt, ...)
{
    char name[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    c->cin = cin, c->cout = cout, c->k = k;
    c->w = wl_take(L, (size_t)cout * cin * k * k);
    c->b = bias ? wl_take(L, (size_t)cout) : NULL;
    if (k == 1 && (flags & WL_ACCEPT_1X1)) { /* stored as a linear (cout, cin) */
        int64_t ws[2] = {cout, cin};
        wl_want(L, c->w, flags, 2, ws, "%s.weight", name);
    } else {
        int64_t ws[4] = {cout, cin, k, k};
        wl_want(L, c->w, 0, 4, ws, "%s.weight", name);
    }
    if (bias) {
        int64_t bs[1] = {cout};
        wl_want(L, c->b, 0, 1, bs, "%s.bias", name);
    }
}

static void lay_norm(weight_layout *L, norm_w *n, int c, const char *prefix, const char *name)
{
    n->c = c;
    n->w = wl_take(L, (size_t)c);
    n->b = wl_take(L, (size_t)c);
    int64_t s[1] = {c};
    wl_want(L, n->w, 0, 1, s, "%s%s.weight", prefix, name);
    wl_want(L, n->b, 0, 1, s, "%s%s.bias", prefix, name);
}

static void lay_resnet(weight_layout *L, const dit_vae *v, resnet_w *r, int cin, int cout,
                       const char *prefix)
{
    const bool ldm = v->info.naming == DIT_VAE_NAMING_LDM;
    lay_norm(L, &r->norm1, cin, prefix, "norm1");
    lay_conv(L, &r->conv1, cin, cout, 3, true, 0, "%sconv1", prefix);
    lay_norm(L, &r->norm2, cout, prefix, "norm2");
    lay_conv(L, &r->conv2, cout, cout, 3, true, 0, "%sconv2", prefix);
    if (cin != cout)
        lay_conv(L, &r->shortcut, cin, cout, 1, true, 0, "%s%s", prefix,
                 ldm ? "nin_shortcut" : "conv_shortcut");
    else
        memset(&r->shortcut, 0, sizeof r->shortcut);
}

static void lay_mid(weight_layout *L, const dit_vae *v, mid_w *m, int c, const char *coder)
{
    char pre[128];
    kl_prefix(v, pre, sizeof pre, coder, P_MID_RES, 0, 0);
    lay_resnet(L, v, &m->res[0], c, c, pre);
    m->has_attn = v->info.mid_attention;
    if (m->has_attn) {
        kl_prefix(v, pre, sizeof pre, coder, P_MID_ATTN, 0, 0);
        const dit_vae_naming nm = v->info.naming;
        lay_norm(L, &m->attn.norm, c, pre, attn_part(nm, 0));
        conv_w *lin[4] = {&m->attn.q, &m->attn.k, &m->attn.v, &m->attn.out};
        for (int i = 0; i < 4; i++)
            lay_conv(L, lin[i], c, c, 1, true, WL_ACCEPT_1X1, "%s%s", pre, attn_part(nm, i + 1));
    }
    kl_prefix(v, pre, sizeof pre, coder, P_MID_RES, 0, 1);
    lay_resnet(L, v, &m->res[1], c, c, pre);
}

static void lay_kl(weight_layout *L, void *model)
{
    dit_vae *v = model;
    const dit_vae_info *in = &v->info;
    const int n = in->n_levels, Lc = in->latent_channels, *bo = in->block_out;
    const bool ldm = in->naming == DIT_VAE_NAMING_LDM;
    const char *px = v->prefix;
    const char *norm_out = ldm ? "norm_out" : "conv_norm_out";
    char pre[128];

    kl_coder *e = &v->enc;
    lay_conv(L, &e->conv_in, in->in_channels, bo[0], 3, true, 0, "%sencoder.conv_in", px);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < in->layers_per_block; j++) {
            kl_prefix(v, pre, sizeof pre, "encoder", P_RES, i, j);
            lay_resnet(L, v, &e->res[i][j], j == 0 && i > 0 ? bo[i - 1] : bo[i], bo[i], pre);
        }
        if (i + 1 < n) {
            kl_prefix(v, pre, sizeof pre, "encoder", P_RESAMPLE, i, 0);
            lay_conv(L, &e->resample[i], bo[i], bo[i], 3, true, 0, "%s", pre);
        }
    }
    lay_mid(L, v, &e->mid, bo[n - 1], ldm ? "encoder" : "encoder");
    char npre[64];
    snprintf(npre, sizeof npre, "%sencoder.", px);
    lay_norm(L, &e->norm_out, bo[n - 1], npre, norm_out);
    lay_conv(L, &e->conv_out, bo[n - 1], 2 * Lc, 3, true, 0, "%sencoder.conv_out", px);
    if (in->use_quant_conv)
        lay_conv(L, &v->quant, 2 * Lc, 2 * Lc, 1, true, 0, "%squant_conv", px);

    kl_coder *d = &v->dec;
    if (in->use_post_quant_conv)
        lay_conv(L, &v->post_quant, Lc, Lc, 1, true, 0, "%spost_quant_conv", px);
    lay_conv(L, &d->conv_in, Lc, bo[n - 1], 3, true, 0, "%sdecoder.conv_in", px);
    lay_mid(L, v, &d->mid, bo[n - 1], "decoder");
    int prev = bo[n - 1];
    for (int i = 0; i < n; i++) {
        const int c = bo[n - 1 - i];
        for (int j = 0; j < in->layers_per_block + 1; j++) {
            kl_prefix(v, pre, sizeof pre, "decoder", P_RES, i, j);
            lay_resnet(L, v, &d->res[i][j], j == 0 ? prev : c, c, pre);
        }
        prev = c;
        if (i + 1 < n) {
            kl_prefix(v, pre, sizeof pre, "decoder", P_RESAMPLE, i, 0);
            lay_conv(L, &d->resample[i], c, c, 3, true, 0, "%s", pre);
        }
    }
    snprintf(npre, sizeof npre, "%sdecoder.", px);
    lay_norm(L, &d->norm_out, bo[0], npre, norm_out);
    lay_conv(L, &d->conv_out, bo[0], in->out_channels, 3, true, 0, "%sdecoder.conv_out", px);
}

/* TAESD: the layer lists were read from the tensor names (tiny_scan); here
 * their weights are placed. */
static void lay_tiny_coder(weight_layout *L, tiny_coder *tc, const char *prefix)
{
    for (int i = 0; i < tc->n; i++) {
        tiny_layer *t = &tc->layers[i];
        if (t->kind == TL_CONV) {
            lay_conv(L, &t->conv, t->conv.cin, t->conv.cout, 3, t->bias, 0, "%s%d", prefix,
                     t->index);
        } else if (t->kind == TL_BLOCK) {
            const int ci = t->c1.cin, co = t->c1.cout;
            lay_conv(L, &t->c1, ci, co, 3, true, 0, "%s%d.conv.0", prefix, t->index);
            lay_conv(L, &t->c2, co, co, 3, true, 0, "%s%d.conv.2", prefix, t->index);
            lay_conv(L, &t->c3, co, co, 3, true, 0, "%s%d.conv.4", prefix, t->index);
            if (t->has_skip)
                lay_conv(L, &t->skip, ci, co, 1, false, 0, "%s%d.skip", prefix, t->index);
        }
    }
}

static void lay_tiny(weight_layout *L, void *model)
{
    dit_vae *v = model;
    const bool taesd = v->info.naming == DIT_VAE_NAMING_TAESD;
    lay_tiny_coder(L, &v->tenc, taesd ? "encoder." : "encoder.layers.");
    lay_tiny_coder(L, &v->tdec, taesd ? "decoder." : "decoder.layers.");
}

/* ---- config --------------------------------------------------------------------- */

static int json_int_array(JsonObject *o, const char *key, int *dst, int max)
{
    if (!json_object_has_member(o, key))
        return -1;
    JsonNode *n = json_object_get_member(o, key);
    if (JSON_NODE_TYPE(n) != JSON_NODE_ARRAY)
        return -2;
    JsonArray *a = json_node_get_array(n);
    int len = (int)json_array_get_length(a);
    if (len > max)
        return -2;
    for (int i = 0; i < len; i++) {
        JsonNode *e = json_array_get_element(a, (guint)i);
        if (JSON_NODE_TYPE(e) != JSON_NODE_VALUE || json_node_get_value_type(e) != G_TYPE_INT64)
            return -2;
        gint64 x = json_node_get_int(e);
        if (x <= 0 || x > 65536)
            return -2;
        dst[i] = (int)x;
    }
    return len;
}

static bool json_num(JsonObject *o, const char *key, double *out)
{
    if (!json_object_has_member(o, key))
        return false;
    JsonNode *n = json_object_get_member(o, key);
    if (JSON_NODE_TYPE(n) != JSON_NODE_VALUE)
        return false;
    GType t = json_node_get_value_type(n);
    if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE && t != G_TYPE_BOOLEAN)
        return false;
    *out = t == G_TYPE_BOOLEAN ? json_node_get_boolean(n) : json_node_get_double(n);
    return true;
}

/* Reads the diffusers config of either VAE class into info. */
static dit_status vae_config_json(dit_ctx *ctx, const char *src, const char *text, gssize len,
                                  dit_vae_info *in, bool *have_class)
{
    GError *err = NULL;
    JsonParser *parser = json_parser_new();
    dit_status st = DIT_OK;
    if (!json_parser_load_from_data(parser, text, len, &err)) {
        st = dit_error(ctx, DIT_ERR_FORMAT, "%s: not valid JSON: %s", src, err->message);
        g_error_free(err);
        g_object_unref(parser);
        return st;
    }
    JsonNode *root = json_parser_get_root(parser);
    if (!root || JSON_NODE_TYPE(root) != JSON_NODE_OBJECT) {
        g_object_unref(parser);
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: not a JSON object", src);
    }
    JsonObject *o = json_node_get_object(root);
    const char *cls = json_object_has_member(o, "_class_name")
                          ? json_object_get_string_member_with_default(o, "_class_name", "")
                          : "";
    *have_class = false;
    if (strcmp(cls, "AutoencoderTiny") == 0) {
        in->kind = DIT_VAE_TINY;
        *have_class = true;
    } else if (strcmp(cls, "AutoencoderKL") == 0) {
        in->kind = DIT_VAE_KL;
        *have_class = true;
    } else if (cls[0]) {
        st = dit_error(ctx, DIT_ERR_UNSUPPORTED, "%s: _class_name '%s' is not a VAE we run "
                       "(AutoencoderKL or AutoencoderTiny)", src, cls);
    }
    double x;
    int n;
    if (st == DIT_OK && (n = json_int_array(o, "block_out_channels", in->block_out, MAX_LEVELS)) != -1) {
        if (n <= 0)
            st = dit_error(ctx, DIT_ERR_MODEL, "%s: block_out_channels must be 1..%d positive "
                           "integers", src, MAX_LEVELS);
        else
            in->n_levels = n;
    }
    if (st == DIT_OK && in->kind == DIT_VAE_TINY) {
        int ne = json_int_array(o, "encoder_block_out_channels", in->block_out, MAX_LEVELS);
        if (ne > 0)
            in->n_levels = ne;
    }
    if (json_num(o, "layers_per_block", &x) && x >= 1 && x <= MAX_RES - 1)
        in->layers_per_block = (int)x;
    if (json_num(o, "norm_num_groups", &x) && x >= 1)
        in->norm_groups = (int)x;
    if (json_num(o, "latent_channels", &x) && x >= 1)
        in->latent_channels = (int)x;
    if (json_num(o, "in_channels", &x) && x >= 1)
        in->in_channels = (int)x;
    if (json_num(o, "out_channels", &x) && x >= 1)
        in->out_channels = (int)x;
    if (json_num(o, "scaling_factor", &x) && x > 0)
        in->scaling_factor = (float)x;
    if (json_num(o, "shift_factor", &x))
        in->shift_factor = (float)x;
    if (json_num(o, "mid_block_add_attention", &x))
        in->mid_attention = x != 0;
    if (json_num(o, "use_quant_conv", &x))
        in->use_quant_conv = x != 0;
    if (json_num(o, "use_post_quant_conv", &x))
        in->use_post_quant_conv = x != 0;
    const char *act = json_object_has_member(o, "act_fn")
                          ? json_object_get_string_member_with_default(o, "act_fn", "")
                          : "";
    if (st == DIT_OK && act[0] && strcmp(act, in->kind == DIT_VAE_TINY ? "relu" : "silu") != 0)
        st = dit_error(ctx, DIT_ERR_UNSUPPORTED, "%s: act_fn '%s' is not supported", src, act);
    g_object_unref(parser);
    return st;
}

/* ---- structure from tensor names -------------------------------------------------- */

static const st_tensor *findf(const st_file *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const st_tensor *findf(const st_file *f, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return st_find(f, name);
}

static int max_index(const st_file *f, const char *prefix)
{
    int max = -1;
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < f->n; i++) {
        const char *nm = f->tensors[i].name;
        if (strncmp(nm, prefix, plen) == 0 && g_ascii_isdigit(nm[plen])) {
            long k = strtol(nm + plen, NULL, 10);
            if (k > max && k < 4096)
                max = (int)k;
        }
    }
    return max;
}

/* A TAESD Sequential as stored: index -> conv ("N.weight"), block
 * ("N.conv.0.weight"), or nothing (ReLU, Upsample, the taesd Clamp). */
static dit_status tiny_scan(dit_ctx *ctx, const st_file *f, const char *prefix, bool decoder,
                            int first, tiny_coder *tc)
{
    const int last = max_index(f, prefix);
    if (last < 0)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: no '%s*' tensors: not a TAESD %s", f->path,
                         prefix, decoder ? "decoder" : "encoder");
    tc->n = 0;
    bool seen_conv = false;
    for (int idx = first; idx <= last; idx++) {
        if (tc->n >= MAX_TINY_LAYERS)
            return dit_error(ctx, DIT_ERR_MODEL, "%s: TAESD %s has too many layers", f->path,
                             decoder ? "decoder" : "encoder");
        tiny_layer *t = &tc->layers[tc->n];
        memset(t, 0, sizeof *t);
        t->index = idx;
        const st_tensor *w = findf(f, "%s%d.weight", prefix, idx);
        const st_tensor *bw = findf(f, "%s%d.conv.0.weight", prefix, idx);
        if (w) {
            if (w->ndim != 4 || w->shape[2] != 3 || w->shape[3] != 3)
                return dit_error(ctx, DIT_ERR_MODEL, "%s: '%s%d.weight' is not a 3x3 conv",
                                 f->path, prefix, idx);
            t->kind = TL_CONV;
            t->conv.cout = (int)MIN(w->shape[0], 65536);
            t->conv.cin = (int)MIN(w->shape[1], 65536);
            t->bias = findf(f, "%s%d.bias", prefix, idx) != NULL;
            /* encoder convs without bias are the stride-2 downsamplers */
            t->stride = !decoder && !t->bias ? 2 : 1;
            seen_conv = true;
        } else if (bw) {
            if (bw->ndim != 4)
                return dit_error(ctx, DIT_ERR_MODEL, "%s: '%s%d.conv.0.weight' is not a conv",
                                 f->path, prefix, idx);
            t->kind = TL_BLOCK;
            t->c1.cout = (int)MIN(bw->shape[0], 65536);
            t->c1.cin = (int)MIN(bw->shape[1], 65536);
            t->has_skip = findf(f, "%s%d.skip.weight", prefix, idx) != NULL;
            if (!t->has_skip && t->c1.cin != t->c1.cout)
                return dit_error(ctx, DIT_ERR_MODEL, "%s: block %s%d changes channels but has no "
                                 "skip conv", f->path, prefix, idx);
        } else if (decoder) {
            /* the gap after the first conv is its ReLU; later gaps are upsamplers */
            t->kind = tc->n == 1 ? TL_RELU : TL_UPSAMPLE;
        } else {
            return dit_error(ctx, DIT_ERR_MODEL, "%s: TAESD encoder has no layer %d", f->path,
                             idx);
        }
        tc->n++;
    }
    if (!seen_conv)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: TAESD %s has no conv", f->path,
                         decoder ? "decoder" : "encoder");
    return DIT_OK;
}

static dit_status kl_infer(dit_ctx *ctx, const st_file *f, dit_vae *v)
{
    dit_vae_info *in = &v->info;
    const bool ldm = in->naming == DIT_VAE_NAMING_LDM;
    const char *px = v->prefix;
    const st_tensor *ci = findf(f, "%sencoder.conv_in.weight", px);
    const st_tensor *co = findf(f, "%sdecoder.conv_out.weight", px);
    const st_tensor *di = findf(f, "%sdecoder.conv_in.weight", px);
    if (!ci || !co || !di || ci->ndim != 4 || co->ndim != 4 || di->ndim != 4)
        return dit_error(ctx, DIT_ERR_MODEL,
                         "%s: not an AutoencoderKL: encoder.conv_in / decoder.conv_in / "
                         "decoder.conv_out weights missing or not convs",
                         f->path);
    if (!in->in_channels)
        in->in_channels = (int)MIN(ci->shape[1], 4096);
    if (!in->out_channels)
        in->out_channels = (int)MIN(co->shape[0], 4096);
    if (!in->latent_channels)
        in->latent_channels = (int)MIN(di->shape[1], 4096);
    if (!in->n_levels) {
        int n = 0;
        while (n < MAX_LEVELS) {
            const st_tensor *t = ldm ? findf(f, "%sencoder.down.%d.block.0.conv2.weight", px, n)
                                     : findf(f, "encoder.down_blocks.%d.resnets.0.conv2.weight", n);
            if (!t || t->ndim != 4)
                break;
            in->block_out[n++] = (int)MIN(t->shape[0], 65536);
        }
        if (n == 0)
            return dit_error(ctx, DIT_ERR_MODEL, "%s: no encoder down blocks found", f->path);
        in->n_levels = n;
    }
    if (!in->layers_per_block) {
        int j = 0;
        while (j < MAX_RES && (ldm ? findf(f, "%sencoder.down.0.block.%d.conv1.weight", px, j)
                                   : findf(f, "encoder.down_blocks.0.resnets.%d.conv1.weight", j)))
            j++;
        in->layers_per_block = j;
    }
    if (in->mid_attention < 0) {
        const char *q = attn_part(in->naming, 1);
        in->mid_attention = ldm ? findf(f, "%sencoder.mid.attn_1.%s.weight", px, q) != NULL
                                : findf(f, "encoder.mid_block.attentions.0.%s.weight", q) != NULL;
    }
    if (in->use_quant_conv < 0)
        in->use_quant_conv = findf(f, "%squant_conv.weight", px) != NULL;
    if (in->use_post_quant_conv < 0)
        in->use_post_quant_conv = findf(f, "%spost_quant_conv.weight", px) != NULL;
    in->downscale = 1 << (in->n_levels - 1);
    if (in->layers_per_block < 1)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: the first down block has no resnets", f->path);
    for (int i = 0; i < in->n_levels; i++)
        if (in->block_out[i] % in->norm_groups)
            return dit_error(ctx, DIT_ERR_MODEL,
                             "%s: block_out_channels[%d] = %d is not divisible by %d norm groups",
                             f->path, i, in->block_out[i], in->norm_groups);
    return DIT_OK;
}

static dit_status detect_vae_naming(dit_ctx *ctx, const st_file *f, dit_vae *v)
{
    dit_vae_info *in = &v->info;
    v->prefix[0] = '\0';
    if (st_find(f, "encoder.layers.0.weight") || st_find(f, "decoder.layers.0.weight")) {
        in->kind = DIT_VAE_TINY;
        in->naming = DIT_VAE_NAMING_DIFFUSERS;
        return DIT_OK;
    }
    if (st_find(f, "encoder.0.weight") && st_find(f, "decoder.1.weight")) {
        in->kind = DIT_VAE_TINY;
        in->naming = DIT_VAE_NAMING_TAESD;
        return DIT_OK;
    }
    in->kind = DIT_VAE_KL;
    if (st_find(f, "encoder.down_blocks.0.resnets.0.conv1.weight")) {
        in->naming = st_find(f, "encoder.mid_block.attentions.0.query.weight")
                         ? DIT_VAE_NAMING_DIFFUSERS_OLD
                         : DIT_VAE_NAMING_DIFFUSERS;
        return DIT_OK;
    }
    static const char *const prefixes[] = {"", "first_stage_model.", "vae."};
    for (size_t i = 0; i < G_N_ELEMENTS(prefixes); i++)
        if (findf(f, "%sencoder.down.0.block.0.conv1.weight", prefixes[i])) {
            in->naming = DIT_VAE_NAMING_LDM;
            snprintf(v->prefix, sizeof v->prefix, "%s", prefixes[i]);
            return DIT_OK;
        }
    return dit_error(ctx, DIT_ERR_MODEL,
                     "%s: not a VAE: no AutoencoderKL (diffusers or Stable Diffusion naming) or "
                     "TAESD tensors found",
                     f->path);
}

/* Whole Stable Diffusion checkpoints carry the UNet and text encoder too:
 * with the LDM prefix we take the VAE and leave the rest. */
static bool vae_ignorable(const char *name, const void *user)
{
    const dit_vae *v = user;
    return v->prefix[0] && strncmp(name, v->prefix, strlen(v->prefix)) != 0;
}

dit_status dit_vae_load(dit_ctx *ctx, const char *path, dit_vae **out)
{
    if (!ctx || !path || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_vae_load: NULL argument");
    *out = NULL;
    dit_clear_error(ctx);
    model_files files;
    dit_status st = find_model_files(ctx, path, "vae", &files);
    if (st)
        return st;
    st_file *f = NULL;
    dit_vae *v = calloc(1, sizeof *v);
    if (!v) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(v->path, sizeof v->path, "%s", path);
    if ((st = st_open(ctx, files.weights, &f)))
        goto out;
    if ((st = detect_vae_naming(ctx, f, v)))
        goto out;

    dit_vae_info *in = &v->info;
    const dit_vae_kind detected = in->kind;
    in->norm_groups = 32;
    in->scaling_factor = detected == DIT_VAE_KL ? 0.18215f : 1.0f;
    in->mid_attention = in->use_quant_conv = in->use_post_quant_conv = -1;
    bool have_class = false;
    if (files.config) {
        char *text = NULL;
        gsize len = 0;
        GError *err = NULL;
        if (!g_file_get_contents(files.config, &text, &len, &err)) {
            st = dit_error(ctx, DIT_ERR_IO, "%s: %s", files.config, err->message);
            g_error_free(err);
            goto out;
        }
        st = vae_config_json(ctx, files.config, text, (gssize)len, in, &have_class);
        g_free(text);
        if (st)
            goto out;
    } else if (st_meta(f, "config")) {
        char *src = g_strdup_printf("%s: __metadata__ config", files.weights);
        st = vae_config_json(ctx, src, st_meta(f, "config"), -1, in, &have_class);
        g_free(src);
        if (st)
            goto out;
    }
    if (have_class && in->kind != detected) {
        st = dit_error(ctx, DIT_ERR_MODEL, "%s: the config says %s but the weights are %s",
                       files.weights, in->kind == DIT_VAE_KL ? "AutoencoderKL" : "AutoencoderTiny",
                       detected == DIT_VAE_KL ? "AutoencoderKL" : "AutoencoderTiny");
        goto out;
    }
    in->kind = detected;

    wl_layout_fn layout;
    char what[160];
    if (in->kind == DIT_VAE_KL) {
        if ((st = kl_infer(ctx, f, v)))
            goto out;
        layout = lay_kl;
        snprintf(what, sizeof what, "an AutoencoderKL with %d levels of %d resnets", in->n_levels,
                 in->layers_per_block);
    } else {
        const bool taesd = in->naming == DIT_VAE_NAMING_TAESD;
        if ((st = tiny_scan(ctx, f, taesd ? "encoder." : "encoder.layers.", false, 0, &v->tenc)))
            goto out;
        /* the original taesd decoder starts with its Clamp() at index 0 */
        if ((st = tiny_scan(ctx, f, taesd ? "decoder." : "decoder.layers.", true, taesd ? 1 : 0,
                            &v->tdec)))
            goto out;
        const tiny_layer *first = &v->tenc.layers[0];
        const tiny_layer *dfirst = &v->tdec.layers[0];
        if (first->kind != TL_CONV || dfirst->kind != TL_CONV) {
            st = dit_error(ctx, DIT_ERR_MODEL, "%s: TAESD encoder and decoder must start with a conv",
                           files.weights);
            goto out;
        }
        const tiny_layer *elast = &v->tenc.layers[v->tenc.n - 1];
        in->in_channels = first->conv.cin;
        in->latent_channels = elast->kind == TL_CONV ? elast->conv.cout : 0;
        in->out_channels = 0;
        for (int i = v->tdec.n - 1; i >= 0 && !in->out_channels; i--)
            if (v->tdec.layers[i].kind == TL_CONV)
                in->out_channels = v->tdec.layers[i].conv.cout;
        int downs = 0;
        for (int i = 0; i < v->tenc.n; i++)
            downs += v->tenc.layers[i].kind == TL_CONV && v->tenc.layers[i].stride == 2;
        in->downscale = 1 << downs;
        in->n_levels = downs + 1;
        layout = lay_tiny;
        snprintf(what, sizeof what, "a TAESD with %d encoder and %d decoder layers", v->tenc.n,
                 v->tdec.n);
    }
    wl_result r;
    st = wl_load(ctx, f, layout, v, what, vae_ignorable, &r);
    if (st)
        goto out;
    v->params = r.params;
    v->n_params = r.n_params;
    static _Atomic uint64_t last_id;
    v->id = ++last_id;
    *out = v;
    v = NULL;
out:
    st_close(f);
    dit_vae_free(v);
    model_files_clear(&files);
    return st;
}

void dit_vae_free(dit_vae *v)
{
    if (!v)
        return;
    dit_free_aligned(v->params);
    free(v);
}

const dit_vae_info *dit_vae_get_info(const dit_vae *v)
{
    return v ? &v->info : NULL;
}

size_t dit_vae_param_count(const dit_vae *v)
{
    return v ? v->n_params : 0;
}

dit_status dit_vae_set_tiling(dit_ctx *ctx, dit_vae *v, int tile_sample, float overlap)
{
    if (!v)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_vae_set_tiling: NULL vae");
    if (tile_sample < 0 || (tile_sample && tile_sample % v->info.downscale) ||
        !(overlap >= 0.0f && overlap < 1.0f))
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "tile size %d must be a multiple of %d and overlap %g in [0, 1)",
                         tile_sample, v->info.downscale, (double)overlap);
    v->tile_sample = tile_sample;
    v->tile_overlap = overlap;
    return DIT_OK;
}

/* ---- execution -------------------------------------------------------------------- */

/* The forward runs twice: a dry run that only measures (largest activation,
 * conv scratch, attention buffers), then the real one on arena memory. Three
 * rotating activation buffers are enough: a resnet holds its input, one
 * intermediate and the conv output. */
#define N_BUFS 3

typedef struct {
    float *d;   /* (B, c, h, w) */
    int c, h, w;
    int buf;    /* which rotating buffer holds it; -1 = outside */
} tensor;

typedef struct {
    const dit_backend *be;
    int B;
    bool dry;
    size_t buf_floats, scratch_floats, attn_floats, attn_scratch_floats;
    double flops; /* counted by the dry run */
    size_t out_floats; /* the result's size, found by the dry run */
    float *buf[N_BUFS];
    bool busy[N_BUFS];
    float *scratch, *aq, *ak, *av, *ao, *ascratch;
} vx;

static size_t tsize(const vx *x, int c, int h, int w)
{
    return (size_t)x->B * c * h * w;
}

static tensor t_new(vx *x, int c, int h, int w)
{
    tensor t = {NULL, c, h, w, -1};
    size_t n = tsize(x, c, h, w);
    if (n > x->buf_floats && x->dry)
        x->buf_floats = n;
    for (int i = 0; i < N_BUFS; i++)
        if (!x->busy[i]) {
            x->busy[i] = true;
            t.buf = i;
            t.d = x->buf[i];
            return t;
        }
    /* unreachable by construction: every caller frees before it needs a fourth */
    return t;
}

static void t_free(vx *x, tensor *t)
{
    if (t->buf >= 0)
        x->busy[t->buf] = false;
    t->buf = -1;
}

/* out = act(conv(in)); pads: top, left, bottom, right */
static tensor t_conv(vx *x, const tensor *in, const conv_w *cw, int stride, int pt, int pl,
                     int pb, int pr, bool up2, dit_act act)
{
    const int Hv = up2 ? 2 * in->h : in->h, Wv = up2 ? 2 * in->w : in->w;
    dit_conv_desc d = {
        .B = x->B, .Cin = cw->cin, .H = in->h, .W = in->w, .Cout = cw->cout, .k = cw->k,
        .stride = stride, .pad_top = pt, .pad_left = pl,
        .Ho = (Hv + pt + pb - cw->k) / stride + 1, .Wo = (Wv + pl + pr - cw->k) / stride + 1,
        .up2 = up2,
    };
    tensor out = t_new(x, cw->cout, d.Ho, d.Wo);
    if (x->dry) {
        x->flops += 2.0 * x->B * d.Cout * d.Cin * d.k * d.k * d.Ho * d.Wo;
        size_t s = x->be->conv2d_scratch(x->be, &d);
        x->scratch_floats = s > x->scratch_floats ? s : x->scratch_floats;
    } else {
        x->be->conv2d(x->be, out.d, in->d, cw->w, cw->b, &d, act, x->scratch);
    }
    return out;
}

/* out = t: the run's result, in the backend's memory (affine as a copy) */
static void t_result(vx *x, float *out, const tensor *t)
{
    x->out_floats = tsize(x, t->c, t->h, t->w);
    if (!x->dry)
        x->be->affine(x->be, out, t->d, x->out_floats, 1.0f, 0.0f);
}

/* 3x3, stride 1, pad 1 */
static tensor t_conv3(vx *x, const tensor *in, const conv_w *cw, dit_act act)
{
    return t_conv(x, in, cw, 1, 1, 1, 1, 1, false, act);
}

static void t_norm(vx *x, tensor *t, const norm_w *n, int groups, dit_act act)
{
    if (!x->dry)
        x->be->group_norm(x->be, t->d, t->d, n->w, n->b, x->B, t->c, t->h * t->w, groups,
                          VAE_GN_EPS, act);
}

static void t_add(vx *x, tensor *a, const tensor *b, dit_act act)
{
    if (!x->dry)
        x->be->add_act(x->be, a->d, b->d, tsize(x, a->c, a->h, a->w), act);
}

/* ResnetBlock2D; consumes `in`, returns the output */
static tensor resnet(vx *x, tensor in, const resnet_w *r, int groups)
{
    // h = conv1(SiLU(GN1(x))); GN1 must not touch x (the shortcut needs it),
    // so normalise a copy: the conv reads it through one extra buffer.
    tensor a = t_new(x, in.c, in.h, in.w);
    if (!x->dry)
        x->be->group_norm(x->be, a.d, in.d, r->norm1.w, r->norm1.b, x->B, in.c, in.h * in.w,
                          groups, VAE_GN_EPS, DIT_ACT_SILU);
    tensor h = t_conv3(x, &a, &r->conv1, DIT_ACT_NONE);
    t_free(x, &a);
    t_norm(x, &h, &r->norm2, groups, DIT_ACT_SILU);
    tensor o = t_conv3(x, &h, &r->conv2, DIT_ACT_NONE);
    t_free(x, &h);
    if (r->shortcut.w) {
        tensor sc = t_conv(x, &in, &r->shortcut, 1, 0, 0, 0, 0, false, DIT_ACT_NONE);
        t_add(x, &o, &sc, DIT_ACT_NONE);
        t_free(x, &sc);
    } else {
        t_add(x, &o, &in, DIT_ACT_NONE);
    }
    t_free(x, &in);
    return o;
}

/* Single-head self-attention over all positions, residual; in place on t. */
static void spatial_attn(vx *x, tensor *t, const attn_w *a, int groups)
{
    const int C = t->c, N = t->h * t->w;
    const size_t n = tsize(x, C, t->h, t->w);
    if (x->dry) {
        x->flops += 4.0 * x->B * C * N * (double)N + 8.0 * x->B * C * C * N;
        x->attn_floats = n > x->attn_floats ? n : x->attn_floats;
        size_t s = x->be->spatial_attention_scratch(x->be, N);
        x->attn_scratch_floats = s > x->attn_scratch_floats ? s : x->attn_scratch_floats;
        return;
    }
    const dit_backend *be = x->be;
    dit_conv_desc d = {.B = x->B, .Cin = C, .H = t->h, .W = t->w, .Cout = C, .k = 1,
                       .stride = 1, .Ho = t->h, .Wo = t->w};
    // ao = GN(x); q, k, v = 1x1 convs of it; ao = attention; x += Wo(ao) + bo
    be->group_norm(be, x->ao, t->d, a->norm.w, a->norm.b, x->B, C, N, groups, VAE_GN_EPS,
                   DIT_ACT_NONE);
    be->conv2d(be, x->aq, x->ao, a->q.w, a->q.b, &d, DIT_ACT_NONE, NULL);
    be->conv2d(be, x->ak, x->ao, a->k.w, a->k.b, &d, DIT_ACT_NONE, NULL);
    be->conv2d(be, x->av, x->ao, a->v.w, a->v.b, &d, DIT_ACT_NONE, NULL);
    be->spatial_attention(be, x->ao, x->aq, x->ak, x->av, x->B, C, N, x->ascratch);
    be->conv2d(be, x->aq, x->ao, a->out.w, a->out.b, &d, DIT_ACT_NONE, NULL);
    be->add_act(be, t->d, x->aq, n, DIT_ACT_NONE);
}

static tensor mid_block(vx *x, tensor t, const mid_w *m, int groups)
{
    t = resnet(x, t, &m->res[0], groups);
    if (m->has_attn)
        spatial_attn(x, &t, &m->attn, groups);
    return resnet(x, t, &m->res[1], groups);
}

/* image (B, Cin, H, W) -> moments (B, 2L, H/f, W/f) written to `out` */
static void kl_encode_run(vx *x, const dit_vae *v, const float *image, int H, int W, float *out)
{
    const dit_vae_info *in = &v->info;
    const kl_coder *e = &v->enc;
    const int G = in->norm_groups;
    tensor img = {(float *)image, in->in_channels, H, W, -1};
    tensor t = t_conv3(x, &img, &e->conv_in, DIT_ACT_NONE);
    for (int i = 0; i < in->n_levels; i++) {
        for (int j = 0; j < in->layers_per_block; j++)
            t = resnet(x, t, &e->res[i][j], G);
        if (i + 1 < in->n_levels) { /* diffusers pads (0, 1, 0, 1), then stride 2 */
            tensor dn = t_conv(x, &t, &e->resample[i], 2, 0, 0, 1, 1, false, DIT_ACT_NONE);
            t_free(x, &t);
            t = dn;
        }
    }
    t = mid_block(x, t, &e->mid, G);
    t_norm(x, &t, &e->norm_out, G, DIT_ACT_SILU);
    tensor m = t_conv3(x, &t, &e->conv_out, DIT_ACT_NONE);
    t_free(x, &t);
    if (in->use_quant_conv) {
        tensor q = t_conv(x, &m, &v->quant, 1, 0, 0, 0, 0, false, DIT_ACT_NONE);
        t_free(x, &m);
        m = q;
    }
    t_result(x, out, &m);
    t_free(x, &m);
}

/* latent (B, L, h, w) -> image (B, Cout, h*f, w*f) */
static void kl_decode_run(vx *x, const dit_vae *v, const float *latent, int h, int w, float *out)
{
    const dit_vae_info *in = &v->info;
    const kl_coder *d = &v->dec;
    const int G = in->norm_groups;
    tensor z = {(float *)latent, in->latent_channels, h, w, -1};
    tensor pq = z;
    if (in->use_post_quant_conv)
        pq = t_conv(x, &z, &v->post_quant, 1, 0, 0, 0, 0, false, DIT_ACT_NONE);
    tensor t = t_conv3(x, &pq, &d->conv_in, DIT_ACT_NONE);
    t_free(x, &pq);
    t = mid_block(x, t, &d->mid, G);
    for (int i = 0; i < in->n_levels; i++) {
        for (int j = 0; j < in->layers_per_block + 1; j++)
            t = resnet(x, t, &d->res[i][j], G);
        if (i + 1 < in->n_levels) { /* nearest 2x, read through the conv */
            tensor up = t_conv(x, &t, &d->resample[i], 1, 1, 1, 1, 1, true, DIT_ACT_NONE);
            t_free(x, &t);
            t = up;
        }
    }
    t_norm(x, &t, &d->norm_out, G, DIT_ACT_SILU);
    tensor o = t_conv3(x, &t, &d->conv_out, DIT_ACT_NONE);
    t_free(x, &t);
    t_result(x, out, &o);
    t_free(x, &o);
}

/* A TAESD Sequential; the input tensor is already prepared in a buffer. */
static tensor tiny_run(vx *x, const tiny_coder *tc, tensor t)
{
    for (int i = 0; i < tc->n; i++) {
        const tiny_layer *l = &tc->layers[i];
        if (l->kind == TL_CONV) {
            const bool up2 = i > 0 && tc->layers[i - 1].kind == TL_UPSAMPLE;
            const bool relu = i + 1 < tc->n && tc->layers[i + 1].kind == TL_RELU;
            tensor o = t_conv(x, &t, &l->conv, l->stride, 1, 1, 1, 1, up2,
                              relu ? DIT_ACT_RELU : DIT_ACT_NONE);
            t_free(x, &t);
            t = o;
        } else if (l->kind == TL_BLOCK) {
            // relu(conv3(relu(conv2(relu(conv1(t))))) + skip(t))
            tensor a = t_conv3(x, &t, &l->c1, DIT_ACT_RELU);
            tensor b = t_conv3(x, &a, &l->c2, DIT_ACT_RELU);
            t_free(x, &a);
            tensor c = t_conv3(x, &b, &l->c3, DIT_ACT_NONE);
            t_free(x, &b);
            if (l->has_skip) {
                tensor s = t_conv(x, &t, &l->skip, 1, 0, 0, 0, 0, false, DIT_ACT_NONE);
                t_add(x, &c, &s, DIT_ACT_RELU);
                t_free(x, &s);
            } else {
                t_add(x, &c, &t, DIT_ACT_RELU);
            }
            t_free(x, &t);
            t = c;
        }
        /* TL_UPSAMPLE is read by the next conv; TL_RELU is fused into the previous */
    }
    return t;
}

static void tiny_encode_run(vx *x, const dit_vae *v, const float *image, int H, int W,
                            float *out)
{
    tensor t = t_new(x, v->info.in_channels, H, W);
    if (!x->dry) /* TAESD works on [0, 1] images */
        x->be->affine(x->be, t.d, image, tsize(x, t.c, H, W), 0.5f, 0.5f);
    t = tiny_run(x, &v->tenc, t);
    t_result(x, out, &t);
    t_free(x, &t);
}

static void tiny_decode_run(vx *x, const dit_vae *v, const float *latent, int h, int w,
                            float *out)
{
    tensor t = t_new(x, v->info.latent_channels, h, w);
    if (!x->dry) /* the soft clamp TAESD applies to its latents */
        x->be->tanh_clamp(x->be, t.d, latent, tsize(x, t.c, h, w), 3.0f);
    t = tiny_run(x, &v->tdec, t);
    x->out_floats = tsize(x, t.c, t.h, t.w);
    if (!x->dry) /* [0, 1] -> [-1, 1] */
        x->be->affine(x->be, out, t.d, tsize(x, t.c, t.h, t.w), 2.0f, -1.0f);
    t_free(x, &t);
}

typedef void (*vae_run_fn)(vx *x, const dit_vae *v, const float *in, int h, int w, float *out);

/* The dry run: fills x's sizes and flops; returns the arena floats needed,
 * or 0 on overflow. */
static size_t vae_plan(const dit_backend *be, const dit_vae *v, vae_run_fn run, int B, int h,
                       int w, vx *x, size_t sizes[9])
{
    *x = (vx){.be = be, .B = B, .dry = true};
    run(x, v, NULL, h, w, NULL);
    const size_t s[9] = {x->buf_floats, x->buf_floats, x->buf_floats, x->scratch_floats,
                         x->attn_floats, x->attn_floats, x->attn_floats, x->attn_floats,
                         x->attn_scratch_floats};
    size_t total = 0;
    for (size_t i = 0; i < 9; i++) {
        sizes[i] = s[i];
        if (!dit_add_size(total, (s[i] + 15) & ~(size_t)15, &total))
            return 0;
    }
    return total;
}

static wl_layout_fn vae_layout(const dit_vae *v)
{
    return v->info.kind == DIT_VAE_KL ? lay_kl : lay_tiny;
}

/* The weights of v on the device: uploaded on first use (per VAE), kept in
 * ctx->dev as a copy of v whose pointers the layout walk re-points into one
 * device block at the host block's offsets. */
static dit_status vae_device_weights(dit_ctx *ctx, const dit_vae *v, const dit_vae **out)
{
    dit_device *d = &ctx->dev;
    if (d->vae && d->vae_id == v->id) {
        *out = d->vae;
        return DIT_OK;
    }
    dit_device_free(d->vae_params);
    free(d->vae);
    d->vae_params = NULL, d->vae = NULL, d->vae_id = 0;
    dit_vae *copy = malloc(sizeof *copy);
    if (!copy)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    *copy = *v;
    weight_layout count = {0};
    vae_layout(v)(&count, copy);
    const size_t bytes = count.used * sizeof(float);
    float *dev = dit_device_alloc(ctx, bytes);
    dit_status st = dev ? dit_device_upload(ctx, dev, v->params, bytes) : DIT_ERR_NOMEM;
    if (st) {
        dit_device_free(dev);
        free(copy);
        return st;
    }
    weight_layout place = {.base = dev};
    vae_layout(v)(&place, copy);
    d->vae_params = dev, d->vae = copy, d->vae_id = v->id;
    *out = copy;
    return DIT_OK;
}

/* The arena slots of a run, after the dry run sized them. */
static void vae_carve(vx *x, float *p, const size_t sizes[9])
{
    float **slots[] = {&x->buf[0], &x->buf[1], &x->buf[2], &x->scratch, &x->aq, &x->ak, &x->av,
                       &x->ao, &x->ascratch};
    for (size_t i = 0; i < 9; i++) {
        *slots[i] = p;
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    x->dry = false;
    memset(x->busy, 0, sizeof x->busy);
}

/* Plan with a dry run, reserve the arena once, run for real; `in` and `out`
 * are host memory, n_in floats of input. On a device the input and output
 * get arena slots after the activations. */
static dit_status vae_exec(dit_ctx *ctx, const dit_vae *v, vae_run_fn run, int B, int h, int w,
                           const float *in, size_t n_in, float *out)
{
    vx x;
    size_t sizes[9];
    size_t total = vae_plan(ctx->be, v, run, B, h, w, &x, sizes);
    if (!total)
        return dit_error(ctx, DIT_ERR_NOMEM, "VAE activation size overflows");
    const size_t n_out = x.out_floats, acts = total;
    if (!dit_on_device(ctx)) {
        dit_status st = dit_arena_reserve(ctx, total);
        if (st)
            return st;
        vae_carve(&x, ctx->arena, sizes);
        run(&x, v, in, h, w, out);
        return DIT_OK;
    }
    const dit_vae *dv = NULL;
    dit_status st = vae_device_weights(ctx, v, &dv);
    if (st)
        return st;
    if (!dit_add_size(total, ((n_in + 15) & ~(size_t)15) + n_out, &total))
        return dit_error(ctx, DIT_ERR_NOMEM, "VAE activation size overflows");
    if ((st = dit_device_arena_reserve(ctx, total)))
        return st;
    float *din = ctx->dev.arena + acts, *dout = din + ((n_in + 15) & ~(size_t)15);
    vae_carve(&x, ctx->dev.arena, sizes);
    if ((st = dit_device_upload(ctx, din, in, n_in * sizeof(float))))
        return st;
    run(&x, dv, din, h, w, dout);
    if ((st = dit_device_sync(ctx)))
        return st;
    return dit_device_download(ctx, out, dout, n_out * sizeof(float));
}

/* ---- tiling (diffusers' tiled_encode / tiled_decode) ------------------------------ */

/* b's first `extent` rows (vertical) or columns fade in over a's last ones:
 * b[y] = a[n - extent + y] * (1 - y / extent) + b[y] * (y / extent) */
static void blend_v(const float *a, int ah, float *b, int bh, int w, int C, int extent)
{
    extent = MIN(MIN(ah, bh), extent);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < extent; y++) {
            const float t = (float)y / (float)extent;
            const float *ar = a + ((size_t)c * ah + ah - extent + y) * w;
            float *br = b + ((size_t)c * bh + y) * w;
            for (int i = 0; i < w; i++)
                br[i] = ar[i] * (1.0f - t) + br[i] * t;
        }
}

static void blend_h(const float *a, int aw, float *b, int bw, int h, int C, int extent)
{
    extent = MIN(MIN(aw, bw), extent);
    for (int c = 0; c < C; c++)
        for (int r = 0; r < h; r++) {
            const float *ar = a + ((size_t)c * h + r) * aw;
            float *br = b + ((size_t)c * h + r) * bw;
            for (int xx = 0; xx < extent; xx++) {
                const float t = (float)xx / (float)extent;
                br[xx] = ar[aw - extent + xx] * (1.0f - t) + br[xx] * t;
            }
        }
}

typedef struct {
    float *d;
    int h, w;
} tile_buf;

/* Tiled run for one sample: input (Cin, H, W) cut in tiles of `tin` pixels
 * every `stride`; each tile's output (tout per tile, `f_num/f_den` of the input
 * size) is blended with its upper and left neighbours (already blended, as
 * diffusers does in place) over `extent` and cropped to `limit`. */
static dit_status vae_tiled(dit_ctx *ctx, const dit_vae *v, vae_run_fn run, int Cin, int Cout,
                            int H, int W, const float *in, float *out, int tin, int stride,
                            int extent, int limit, int f_num, int f_den)
{
    const int rows = (H + stride - 1) / stride, cols = (W + stride - 1) / stride;
    const int OH = H * f_num / f_den, OW = W * f_num / f_den;
    const int tmax_out = tin * f_num / f_den;
    tile_buf *prev = calloc((size_t)cols, sizeof *prev), *cur = calloc((size_t)cols, sizeof *cur);
    float *tile_in = malloc((size_t)Cin * tin * tin * sizeof(float));
    dit_status st = DIT_OK;
    if (!prev || !cur || !tile_in)
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory for VAE tiles");
    for (int j = 0; j < cols && st == DIT_OK; j++) {
        prev[j].d = malloc((size_t)Cout * tmax_out * tmax_out * sizeof(float));
        cur[j].d = malloc((size_t)Cout * tmax_out * tmax_out * sizeof(float));
        if (!prev[j].d || !cur[j].d)
            st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory for VAE tiles");
    }
    for (int r = 0; r < rows && st == DIT_OK; r++) {
        for (int cidx = 0; cidx < cols && st == DIT_OK; cidx++) {
            const int y0 = r * stride, x0 = cidx * stride;
            const int th = MIN(tin, H - y0), tw = MIN(tin, W - x0);
            for (int c = 0; c < Cin; c++)
                for (int y = 0; y < th; y++)
                    memcpy(tile_in + ((size_t)c * th + y) * tw,
                           in + ((size_t)c * H + y0 + y) * W + x0, (size_t)tw * sizeof(float));
            tile_buf *t = &cur[cidx];
            t->h = th * f_num / f_den, t->w = tw * f_num / f_den;
            if ((st = vae_exec(ctx, v, run, 1, th, tw, tile_in, (size_t)Cin * th * tw, t->d)))
                break;
            if (r > 0)
                blend_v(prev[cidx].d, prev[cidx].h, t->d, t->h, t->w, Cout, extent);
            if (cidx > 0)
                blend_h(cur[cidx - 1].d, cur[cidx - 1].w, t->d, t->w, t->h, Cout, extent);
            /* the blended tile, cropped to limit x limit, lands at (r, c) * limit */
            const int oy = r * limit, ox = cidx * limit;
            const int ch = MIN(MIN(limit, t->h), OH - oy), cw = MIN(MIN(limit, t->w), OW - ox);
            /* with a stride below the crop, the last tiles land past the edge */
            for (int c = 0; c < Cout && cw > 0; c++)
                for (int y = 0; y < ch; y++)
                    memcpy(out + ((size_t)c * OH + oy + y) * OW + ox,
                           t->d + ((size_t)c * t->h + y) * t->w, (size_t)cw * sizeof(float));
        }
        tile_buf *swap = prev;
        prev = cur;
        cur = swap;
    }
    for (int j = 0; j < cols; j++) {
        if (prev)
            free(prev[j].d);
        if (cur)
            free(cur[j].d);
    }
    free(prev);
    free(cur);
    free(tile_in);
    return st;
}

/* ---- public entry points ---------------------------------------------------------- */

static dit_status check_finite(dit_ctx *ctx, const float *p, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return dit_error(ctx, DIT_ERR_INVALID_ARG, "%s holds %s at element %zu", what,
                             isnan(p[i]) ? "NaN" : "Inf", i);
    return DIT_OK;
}

/* every op the KL and tiny encoders and decoders may call */
#define DIT_VAE_OPS(X)                                                                      \
    X(conv2d) X(conv2d_scratch) X(group_norm) X(spatial_attention)                          \
    X(spatial_attention_scratch) X(add_act) X(affine) X(tanh_clamp)

dit_status dit_vae_check_backend(dit_ctx *ctx)
{
    return DIT_BACKEND_REQUIRE(ctx, ctx->be, "the VAE", DIT_VAE_OPS);
}

dit_status dit_vae_encode(dit_ctx *ctx, const dit_vae *v, int B, int H, int W,
                          const float *image, float *mean, float *logvar)
{
    if (!ctx || !v || !image || !mean)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_vae_encode: NULL argument");
    if (dit_vae_check_backend(ctx))
        return DIT_ERR_UNSUPPORTED;
    const dit_vae_info *in = &v->info;
    const int f = in->downscale;
    if (B <= 0 || B > 4096 || H <= 0 || W <= 0 || H > 65536 || W > 65536 || H % f || W % f)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "image size %dx%d (batch %d): width and height must be positive "
                         "multiples of %d for this VAE",
                         W, H, B, f);
    dit_status st = check_finite(ctx, image, (size_t)B * in->in_channels * H * W, "the image");
    if (st)
        return st;
    const int L = in->latent_channels, h = H / f, w = W / f;
    const size_t lat = (size_t)L * h * w;
    const bool kl = in->kind == DIT_VAE_KL;
    const int Cm = kl ? 2 * L : L; /* the KL encoder returns moments: mean | logvar */
    float *moments = malloc((size_t)B * Cm * h * w * sizeof(float));
    if (!moments)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    vae_run_fn run = kl ? kl_encode_run : tiny_encode_run;
    const int ts = v->tile_sample;
    if (ts && (H > ts || W > ts)) {
        const int tl = ts / f;
        const int stride = (int)(ts * (1.0f - v->tile_overlap));
        const int extent = (int)(tl * v->tile_overlap), limit = tl - extent;
        for (int b = 0; b < B && !st; b++)
            st = vae_tiled(ctx, v, run, in->in_channels, Cm, H, W,
                           image + (size_t)b * in->in_channels * H * W,
                           moments + (size_t)b * Cm * h * w, ts, stride, extent, limit, 1, f);
    } else {
        st = vae_exec(ctx, v, run, B, H, W, image, (size_t)B * in->in_channels * H * W, moments);
    }
    if (st == DIT_OK)
        for (int b = 0; b < B; b++) {
            const float *m = moments + (size_t)b * Cm * h * w;
            memcpy(mean + b * lat, m, lat * sizeof(float));
            if (logvar)
                for (size_t i = 0; i < lat; i++) /* diffusers clamps logvar to [-30, 20] */
                    logvar[b * lat + i] = kl ? fminf(fmaxf(m[lat + i], -30.0f), 20.0f) : 0.0f;
        }
    free(moments);
    return st;
}

dit_status dit_vae_decode(dit_ctx *ctx, const dit_vae *v, int B, int h, int w,
                          const float *latent, float *image)
{
    if (!ctx || !v || !latent || !image)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_vae_decode: NULL argument");
    if (dit_vae_check_backend(ctx))
        return DIT_ERR_UNSUPPORTED;
    const dit_vae_info *in = &v->info;
    const int f = in->downscale;
    if (B <= 0 || B > 4096 || h <= 0 || w <= 0 || h > 65536 / f || w > 65536 / f)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "latent size %dx%d (batch %d) is out of range",
                         w, h, B);
    dit_status st =
        check_finite(ctx, latent, (size_t)B * in->latent_channels * h * w, "the latent");
    if (st)
        return st;
    vae_run_fn run = in->kind == DIT_VAE_KL ? kl_decode_run : tiny_decode_run;
    const int ts = v->tile_sample, tl = ts / f;
    if (ts && (h > tl || w > tl)) {
        const int stride = (int)(tl * (1.0f - v->tile_overlap));
        const int extent = (int)(ts * v->tile_overlap), limit = ts - extent;
        const size_t in_n = (size_t)in->latent_channels * h * w;
        const size_t out_n = (size_t)in->out_channels * h * f * w * f;
        for (int b = 0; b < B && !st; b++)
            st = vae_tiled(ctx, v, run, in->latent_channels, in->out_channels, h, w,
                           latent + b * in_n, image + b * out_n, tl, stride, extent, limit, f, 1);
        return st;
    }
    return vae_exec(ctx, v, run, B, h, w, latent, (size_t)B * in->latent_channels * h * w, image);
}

double dit_vae_flops(const dit_vae *v, int B, int height, int width, bool decode)
{
    if (!v)
        return 0;
    vx x;
    size_t sizes[9];
    vae_run_fn run = v->info.kind == DIT_VAE_KL ? (decode ? kl_decode_run : kl_encode_run)
                                                : (decode ? tiny_decode_run : tiny_encode_run);
    vae_plan(dit_backend_cpu(), v, run, B, height, width, &x, sizes);
    return x.flops;
}

size_t dit_vae_activation_bytes(const dit_vae *v, int B, int height, int width, bool decode)
{
    if (!v)
        return 0;
    vx x;
    size_t sizes[9];
    vae_run_fn run = v->info.kind == DIT_VAE_KL ? (decode ? kl_decode_run : kl_encode_run)
                                                : (decode ? tiny_decode_run : tiny_encode_run);
    size_t floats = vae_plan(dit_backend_cpu(), v, run, B, height, width, &x, sizes);
    size_t bytes;
    return dit_mul_size(floats, sizeof(float), &bytes) ? bytes : SIZE_MAX;
}

dit_status vae_expected_tensors(dit_ctx *ctx, const dit_vae_info *info, weight_expect **list,
                                size_t *n)
{
    dit_vae *v = calloc(1, sizeof *v);
    if (!v)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    v->info = *info;
    weight_layout L = {0};
    lay_kl(&L, v);
    *n = L.n;
    *list = calloc(L.n, sizeof **list);
    if (!*list) {
        free(v);
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    }
    L = (weight_layout){.list = *list};
    lay_kl(&L, v);
    free(v);
    return DIT_OK;
}
