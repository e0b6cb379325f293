/* VAE loading: find the files, read the config (config.json or
 * __metadata__), tell the naming apart (diffusers, older diffusers, Stable
 * Diffusion / LDM, TAESD) and infer the shape from the tensors, map every
 * weight to its file name and copy them into one f32 parameter block.
 * The architectures are described in vae.c. */
#include "internal/cpu-gemm.h"
#include "internal/vae.h"
#include "internal/json.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void lay_conv(weight_layout *L, conv_w *c, int cin, int cout, int k, bool bias, int flags,
                     const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static void lay_conv(weight_layout *L, conv_w *c, int cin, int cout, int k, bool bias, int flags,
                     const char *fmt, ...)
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
    wl_conv_matrix(L, c->w, cout, (int64_t)cin * k * k);
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
    JsonParser *parser;
    JsonObject *o = dit_json_object(ctx, src, text, len, &parser);
    if (!o)
        return DIT_ERR_FORMAT;
    dit_status st = DIT_OK;
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
        st = dit_error(ctx, DIT_ERR_UNSUPPORTED,
                       "%s: _class_name '%s' is not a VAE we run "
                       "(AutoencoderKL or AutoencoderTiny)",
                       src, cls);
    }
    double x;
    int n;
    if (st == DIT_OK &&
        (n = json_int_array(o, "block_out_channels", in->block_out, MAX_LEVELS)) != -1) {
        if (n <= 0)
            st = dit_error(ctx, DIT_ERR_MODEL,
                           "%s: block_out_channels must be 1..%d positive "
                           "integers",
                           src, MAX_LEVELS);
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
                return dit_error(ctx, DIT_ERR_MODEL, "%s: '%s%d.weight' is not a 3x3 conv", f->path,
                                 prefix, idx);
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
                return dit_error(ctx, DIT_ERR_MODEL,
                                 "%s: block %s%d changes channels but has no "
                                 "skip conv",
                                 f->path, prefix, idx);
        } else if (decoder) {
            /* the gap after the first conv is its ReLU; later gaps are upsamplers */
            t->kind = tc->n == 1 ? TL_RELU : TL_UPSAMPLE;
        } else {
            return dit_error(ctx, DIT_ERR_MODEL, "%s: TAESD encoder has no layer %d", f->path, idx);
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
    model_files files;
    st_file *f;
    dit_status st = open_model_files(ctx, "dit_vae_load", path, "vae", out, &files, &f);
    if (st)
        return st;
    dit_vae *v = calloc(1, sizeof *v);
    if (!v) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(v->path, sizeof v->path, "%s", path);
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
            st = dit_error(ctx, DIT_ERR_MODEL,
                           "%s: TAESD encoder and decoder must start with a conv", files.weights);
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
    v->param_floats = r.floats;
    v->n_params = r.n_params;
    v->weights_held = r.held > 0;
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
    dit_cpu_gemm_forget(v->params, v->param_floats * sizeof(float));
    dit_free_aligned(v->params);
    free(v);
}

const dit_vae_info *dit_vae_config(const dit_vae *v) { return v ? &v->info : NULL; }

size_t dit_vae_param_count(const dit_vae *v) { return v ? v->n_params : 0; }

wl_layout_fn vae_layout(const dit_vae *v) { return v->info.kind == DIT_VAE_KL ? lay_kl : lay_tiny; }

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
