/* DiT loading: find the files, resolve the config (config.json, then
 * __metadata__, then tensor shapes), translate diffusers names to the
 * official layout, and copy every weight into one f32 parameter block. */
#include "internal/cpu-gemm.h"
#include "internal/train.h"
#include "internal/json.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest sizes we accept from a file, so a hostile header cannot make us
 * allocate terabytes: DiT-XL is D=1152, depth 28. */
#define MAX_HIDDEN 16384
#define MAX_DEPTH 1024
#define MAX_CLASSES 1000000
#define MAX_CHANNELS 4096

const char *dit_naming_name(dit_naming naming)
{
    return naming == DIT_NAMING_OFFICIAL ? "official" : "diffusers";
}

static const char *const conditioning_names[DIT_COND_COUNT] = {"adaln-zero", "adaln", "in-context",
                                                               "cross-attn"};

const char *dit_conditioning_name(dit_conditioning cond)
{
    return (unsigned)cond < DIT_COND_COUNT ? conditioning_names[cond] : "unknown";
}

int dit_conditioning_from_name(const char *name)
{
    if (!name)
        return -1;
    char buf[32];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf; *p; p++)
        *p = *p == '_' ? '-' : g_ascii_tolower(*p);
    for (int i = 0; i < DIT_COND_COUNT; i++)
        if (strcmp(buf, conditioning_names[i]) == 0)
            return i;
    return -1;
}

/* ---- config -------------------------------------------------------------- */

/* Config fields as diffusers spells them; -1 / NAN = not given. */
typedef struct {
    int heads, head_dim, in_channels, out_channels, layers, sample_size, patch_size, num_classes,
        freq_shift, conditioning;
    double norm_eps, interpolation_scale;
} config_given;

static void config_given_init(config_given *g)
{
    g->heads = g->head_dim = g->in_channels = g->out_channels = g->layers = -1;
    g->sample_size = g->patch_size = g->num_classes = g->freq_shift = g->conditioning = -1;
    g->norm_eps = g->interpolation_scale = NAN;
}

static dit_status set_int_field(dit_ctx *ctx, const char *src, const char *key, double v, int *dst)
{
    if (!(v >= 0 && v <= 1e9) || v != floor(v))
        return dit_error(ctx, DIT_ERR_MODEL, "%s: config field '%s' = %g is not a valid count", src,
                         key, v);
    *dst = (int)v;
    return DIT_OK;
}

/* Apply one key/value. Unknown keys are fine: config.json has many. */
static dit_status config_apply(dit_ctx *ctx, const char *src, config_given *g, const char *key,
                               double v, const char *str)
{
    static const struct {
        const char *key;
        size_t offset;
    } ints[] = {
        {"num_attention_heads", offsetof(config_given, heads)},
        {"attention_head_dim", offsetof(config_given, head_dim)},
        {"in_channels", offsetof(config_given, in_channels)},
        {"out_channels", offsetof(config_given, out_channels)},
        {"num_layers", offsetof(config_given, layers)},
        {"sample_size", offsetof(config_given, sample_size)},
        {"patch_size", offsetof(config_given, patch_size)},
        {"num_embeds_ada_norm", offsetof(config_given, num_classes)},
        {"freq_shift", offsetof(config_given, freq_shift)},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(ints); i++)
        if (strcmp(key, ints[i].key) == 0)
            return set_int_field(ctx, src, key, v, (int *)((char *)g + ints[i].offset));
    if (strcmp(key, "norm_eps") == 0) {
        if (!(v > 0 && v < 1))
            return dit_error(ctx, DIT_ERR_MODEL, "%s: norm_eps = %g is out of range", src, v);
        g->norm_eps = v;
    } else if (strcmp(key, "interpolation_scale") == 0) {
        if (!(v > 0 && v < 1e6))
            return dit_error(ctx, DIT_ERR_MODEL, "%s: interpolation_scale = %g is out of range",
                             src, v);
        g->interpolation_scale = v;
    } else if (strcmp(key, "conditioning") == 0) {
        const int id = dit_conditioning_from_name(str);
        if (id < 0)
            return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                             "%s: conditioning '%s' is not one of adaln-zero, adaln, in-context, "
                             "cross-attn",
                             src, str ? str : "(not a string)");
        g->conditioning = id;
    } else if (strcmp(key, "norm_type") == 0 && str && strcmp(str, "ada_norm_zero") != 0) {
        return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                         "%s: norm_type '%s' is not supported (only ada_norm_zero DiTs)", src, str);
    } else if (strcmp(key, "activation_fn") == 0 && str && strcmp(str, "gelu-approximate") != 0) {
        return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                         "%s: activation_fn '%s' is not supported (DiT uses gelu-approximate)", src,
                         str);
    }
    return DIT_OK;
}

static dit_status config_from_json_object(dit_ctx *ctx, const char *src, JsonObject *obj,
                                          config_given *g)
{
    dit_status st = DIT_OK;
    GList *members = json_object_get_members(obj);
    for (GList *l = members; l && st == DIT_OK; l = l->next) {
        const char *key = l->data;
        JsonNode *n = json_object_get_member(obj, key);
        if (JSON_NODE_TYPE(n) != JSON_NODE_VALUE)
            continue;
        GType type = json_node_get_value_type(n);
        if (type == G_TYPE_INT64 || type == G_TYPE_DOUBLE)
            st = config_apply(ctx, src, g, key, json_node_get_double(n), NULL);
        else if (type == G_TYPE_STRING)
            st = config_apply(ctx, src, g, key, NAN, json_node_get_string(n));
    }
    g_list_free(members);
    return st;
}

static dit_status config_from_json_text(dit_ctx *ctx, const char *src, const char *text, gssize len,
                                        config_given *g)
{
    JsonParser *parser;
    JsonObject *o = dit_json_object(ctx, src, text, len, &parser);
    if (!o)
        return DIT_ERR_FORMAT;
    dit_status st = config_from_json_object(ctx, src, o, g);
    g_object_unref(parser);
    return st;
}

static dit_status config_from_file(dit_ctx *ctx, const char *path, config_given *g)
{
    char *text = NULL;
    gsize len = 0;
    GError *err = NULL;
    if (!g_file_get_contents(path, &text, &len, &err)) {
        dit_status st = dit_error(ctx, DIT_ERR_IO, "%s: %s", path, err->message);
        g_error_free(err);
        return st;
    }
    dit_status st = config_from_json_text(ctx, path, text, (gssize)len, g);
    g_free(text);
    return st;
}

/* __metadata__ values are strings: either "config" holding a JSON object, or
 * single fields under their config.json names. */
static dit_status config_from_metadata(dit_ctx *ctx, const st_file *f, config_given *g)
{
    dit_status st = DIT_OK;
    for (size_t i = 0; i < f->n_meta && st == DIT_OK; i++) {
        const char *key = f->meta_keys[i], *val = f->meta_values[i];
        if (strcmp(key, "config") == 0) {
            char *src = g_strdup_printf("%s: __metadata__ config", f->path);
            st = config_from_json_text(ctx, src, val, -1, g);
            g_free(src);
            continue;
        }
        char *end;
        double v = g_ascii_strtod(val, &end);
        if (end != val && *end == '\0')
            st = config_apply(ctx, f->path, g, key, v, NULL);
        else
            st = config_apply(ctx, f->path, g, key, NAN, val);
    }
    return st;
}

/* ---- naming -------------------------------------------------------------- */

/* Names of the pieces both families have, by family. The block-local ones
 * take the block index as %d. */
typedef struct {
    const char *x_embed, *t_mlp0, *t_mlp2, *y_table, *final_ada, *final_linear;
    const char *block_prefix; /* block-local names follow "<prefix>N." */
    const char *ada, *qkv, *proj, *fc1, *fc2;
} naming_table;

/* The diffusers names follow diffusers' scripts/convert_dit_to_diffusers.py. */
static const naming_table namings[2] = {
    [DIT_NAMING_OFFICIAL] = {"x_embedder.proj", "t_embedder.mlp.0", "t_embedder.mlp.2",
                             "y_embedder.embedding_table", "final_layer.adaLN_modulation.1",
                             "final_layer.linear", "blocks.", "adaLN_modulation.1", "attn.qkv",
                             "attn.proj", "mlp.fc1", "mlp.fc2"},
    /* diffusers keeps an embedder in every block (norm1.emb.*) and splits
     * qkv into attn1.to_q / to_k / to_v */
    [DIT_NAMING_DIFFUSERS] = {"pos_embed.proj", "norm1.emb.timestep_embedder.linear_1",
                              "norm1.emb.timestep_embedder.linear_2",
                              "norm1.emb.class_embedder.embedding_table", "proj_out_1",
                              "proj_out_2", "transformer_blocks.", "norm1.linear", NULL,
                              "attn1.to_out.0", "ff.net.0.proj", "ff.net.2"},
};

static const st_tensor *find_fmt(const st_file *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const st_tensor *find_fmt(const st_file *f, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return st_find(f, name);
}

static dit_status detect_naming(dit_ctx *ctx, const st_file *f, dit_naming *out)
{
    if (st_find(f, "x_embedder.proj.weight")) {
        *out = DIT_NAMING_OFFICIAL;
        return DIT_OK;
    }
    if (st_find(f, "pos_embed.proj.weight")) {
        *out = DIT_NAMING_DIFFUSERS;
        return DIT_OK;
    }
    return dit_error(ctx, DIT_ERR_MODEL,
                     "%s: not a DiT: neither 'x_embedder.proj.weight' (official naming) nor "
                     "'pos_embed.proj.weight' (diffusers naming) is present",
                     f->path);
}

static int count_blocks(const st_file *f, const char *prefix)
{
    int max = -1;
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < f->n; i++) {
        const char *name = f->tensors[i].name;
        if (strncmp(name, prefix, plen) != 0 || !g_ascii_isdigit(name[plen]))
            continue;
        long n = strtol(name + plen, NULL, 10);
        if (n > max && n < MAX_DEPTH)
            max = (int)n;
    }
    return max + 1;
}

/* ---- config resolution ---------------------------------------------------- */

static dit_status need_tensor(dit_ctx *ctx, const st_file *f, const st_tensor *t, const char *name,
                              int ndim)
{
    if (!t)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: missing tensor '%s'", f->path, name);
    if (t->ndim != ndim)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: tensor '%s' has %d dimensions, expected %d",
                         f->path, name, t->ndim, ndim);
    return DIT_OK;
}

/* The config as the tensors show it: widths from the patch embed, the
 * embedder, the first block and the final layer; the conditioning variant
 * from the first block; the native sample size from pos_embed. */
static dit_status config_from_shapes(dit_ctx *ctx, const st_file *f, dit_config *cfg)
{
    dit_status st;
    const naming_table *nt = &namings[cfg->naming];
    const bool diffusers = cfg->naming == DIT_NAMING_DIFFUSERS;
    /* shapes: patch embed (D, C, p, p) */
    char name[256];
    snprintf(name, sizeof name, "%s.weight", nt->x_embed);
    const st_tensor *xe = st_find(f, name);
    if ((st = need_tensor(ctx, f, xe, name, 4)))
        return st;
    if (xe->shape[2] != xe->shape[3] || xe->shape[2] <= 0)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: '%s' has a non-square kernel", f->path, name);
    cfg->hidden_size = (int)MIN(xe->shape[0], INT32_MAX);
    cfg->in_channels = (int)MIN(xe->shape[1], INT32_MAX);
    cfg->patch_size = (int)MIN(xe->shape[2], INT32_MAX);
    cfg->depth = count_blocks(f, nt->block_prefix);

    /* embedder and MLP widths come from the first block's (or the shared) tensors */
    const char *emb_prefix = diffusers ? "transformer_blocks.0." : "";
    snprintf(name, sizeof name, "%s%s.weight", emb_prefix, nt->t_mlp0);
    const st_tensor *t0 = st_find(f, name);
    if ((st = need_tensor(ctx, f, t0, name, 2)))
        return st;
    cfg->freq_dim = (int)MIN(t0->shape[1], INT32_MAX);
    snprintf(name, sizeof name, "%s%s.weight", emb_prefix, nt->y_table);
    const st_tensor *yt = st_find(f, name);
    if (yt || diffusers) { /* an official-layout model without one is unconditional */
        if ((st = need_tensor(ctx, f, yt, name, 2)))
            return st;
        if (yt->shape[0] < 2)
            return dit_error(ctx, DIT_ERR_MODEL,
                             "%s: '%s' has %lld rows; a label table needs "
                             "the classes and the null class",
                             f->path, name, (long long)yt->shape[0]);
        cfg->num_classes = (int)MIN(yt->shape[0] - 1, INT32_MAX);
    }
    /* the conditioning variant shows in the first block (official layout only) */
    cfg->conditioning = DIT_COND_ADALN_ZERO;
    if (!diffusers) {
        const st_tensor *ada = st_find(f, "blocks.0.adaLN_modulation.1.weight");
        if (ada && ada->ndim == 2 && ada->shape[0] == 4 * cfg->hidden_size)
            cfg->conditioning = DIT_COND_ADALN;
        else if (!ada)
            cfg->conditioning = st_find(f, "blocks.0.cross_attn.q.weight") ? DIT_COND_CROSS_ATTN
                                                                           : DIT_COND_IN_CONTEXT;
    }
    const st_tensor *fc1 = diffusers ? find_fmt(f, "transformer_blocks.0.ff.net.0.proj.weight")
                                     : find_fmt(f, "blocks.0.mlp.fc1.weight");
    if (!fc1 || fc1->ndim != 2)
        return dit_error(
            ctx, DIT_ERR_MODEL, "%s: missing the first block's MLP weight (%s)", f->path,
            diffusers ? "transformer_blocks.0.ff.net.0.proj.weight" : "blocks.0.mlp.fc1.weight");
    /* DiT's MLP ratio is 4; trust another width only when fc1 is (Dm, D) */
    cfg->mlp_hidden = fc1->shape[1] == cfg->hidden_size
                          ? (int)MIN(fc1->shape[0], INT32_MAX)
                          : (int)MIN(4LL * cfg->hidden_size, INT32_MAX);
    snprintf(name, sizeof name, "%s.weight", nt->final_linear);
    const st_tensor *fl = st_find(f, name);
    if ((st = need_tensor(ctx, f, fl, name, 2)))
        return st;
    int64_t pp = (int64_t)cfg->patch_size * cfg->patch_size;
    cfg->out_channels = (int)MIN(fl->shape[0] / pp, INT32_MAX);

    /* the official state dict stores the native pos_embed (1, T0, D) */
    const st_tensor *pe = st_find(f, "pos_embed");
    cfg->sample_size = 32; /* DiT's 256 px, when nothing says otherwise */
    if (pe && pe->ndim == 3) {
        int64_t side = (int64_t)llround(sqrt((double)pe->shape[1]));
        if (side * side == pe->shape[1])
            cfg->sample_size = (int)MIN(side * cfg->patch_size, INT32_MAX);
    }
    return DIT_OK;
}

/* What no tensor shows: the numerics of each naming's family. */
static void config_conventions(dit_config *cfg)
{
    const bool diffusers = cfg->naming == DIT_NAMING_DIFFUSERS;
    /* diffusers-family conventions (see DESIGN.md); official is all 1e-6 */
    cfg->freq_shift = diffusers ? 1 : 0;
    cfg->norm1_eps = 1e-6f;
    cfg->norm2_eps = diffusers ? 1e-5f : 1e-6f;
    cfg->norm_final_eps = 1e-6f;
    cfg->interpolation_scale = 1.0f;
    cfg->per_block_embedder = diffusers;
}

/* The heads (guessed from the width), then what config.json or __metadata__
 * gave over what the shapes and conventions said. */
static dit_status config_apply_given(dit_ctx *ctx, const st_file *f, const config_given *g,
                                     dit_config *cfg)
{
    const naming_table *nt = &namings[cfg->naming];
    const bool diffusers = cfg->naming == DIT_NAMING_DIFFUSERS;
    /* heads cannot be seen in shapes: DiT-S/B/L use head dim 64, XL 72 */
    int heads = -1;
    if (cfg->hidden_size == 1152)
        heads = 16;
    else if (cfg->hidden_size % 64 == 0)
        heads = cfg->hidden_size / 64;

    /* what the config says wins; the tensors are then checked against it */
    if (g->heads > 0)
        heads = g->heads;
    if (g->head_dim > 0 && g->heads > 0 && (int64_t)g->heads * g->head_dim != cfg->hidden_size)
        return dit_error(ctx, DIT_ERR_MODEL,
                         "%s: config says %d heads x %d = %d channels but '%s.weight' has %d",
                         f->path, g->heads, g->head_dim, g->heads * g->head_dim, nt->x_embed,
                         cfg->hidden_size);
    /* a given value that cannot be right is named, with what it contradicts */
    const int D = cfg->hidden_size;
    if (g->heads == 0 || (g->heads > 0 && D % g->heads))
        return dit_error(ctx, DIT_ERR_MODEL,
                         "%s: the config's num_attention_heads %d does not divide the hidden "
                         "size %d of '%s.weight' (the number of attention heads must)",
                         f->path, g->heads, D, nt->x_embed);
    if (g->head_dim == 0 || (g->head_dim > 0 && D % g->head_dim))
        return dit_error(ctx, DIT_ERR_MODEL,
                         "%s: the config's attention_head_dim %d does not divide the hidden "
                         "size %d of '%s.weight'",
                         f->path, g->head_dim, D, nt->x_embed);
    if (g->patch_size == 0 || (g->patch_size > 0 && g->patch_size != cfg->patch_size))
        return dit_error(ctx, DIT_ERR_MODEL,
                         "%s: the config's patch_size %d contradicts '%s.weight', whose patch "
                         "is %d",
                         f->path, g->patch_size, nt->x_embed, cfg->patch_size);
    if (g->heads < 0 && g->head_dim > 0 && cfg->hidden_size % g->head_dim == 0)
        heads = cfg->hidden_size / g->head_dim;
    if (g->in_channels >= 0)
        cfg->in_channels = g->in_channels;
    if (g->out_channels >= 0)
        cfg->out_channels = g->out_channels;
    if (g->layers >= 0)
        cfg->depth = g->layers;
    if (g->sample_size > 0)
        cfg->sample_size = g->sample_size;
    if (g->patch_size > 0)
        cfg->patch_size = g->patch_size;
    if (g->num_classes >= 0)
        cfg->num_classes = g->num_classes;
    if (g->freq_shift >= 0)
        cfg->freq_shift = g->freq_shift;
    if (g->conditioning >= 0 && diffusers && g->conditioning != DIT_COND_ADALN_ZERO)
        return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                         "%s: diffusers-layout DiTs are adaLN-Zero only (config says %s)", f->path,
                         dit_conditioning_name(g->conditioning));
    if (g->conditioning >= 0)
        cfg->conditioning = g->conditioning;
    if (!isnan(g->norm_eps) && diffusers)
        cfg->norm2_eps = (float)g->norm_eps;
    if (!isnan(g->interpolation_scale))
        cfg->interpolation_scale = (float)g->interpolation_scale;

    if (heads <= 0 || cfg->hidden_size % heads != 0)
        return dit_error(ctx, DIT_ERR_MODEL,
                         "%s: cannot tell the number of attention heads for hidden size %d; "
                         "give num_attention_heads in config.json or __metadata__",
                         f->path, cfg->hidden_size);
    cfg->num_heads = heads;
    cfg->learn_sigma = cfg->out_channels == 2 * cfg->in_channels;
    return DIT_OK;
}

/* Bounds on every size, so that a hostile or broken file cannot make the
 * layout overflow or the forward divide by zero. */
static dit_status config_check_ranges(dit_ctx *ctx, const st_file *f, const dit_config *cfg)
{
    if (cfg->hidden_size <= 0 || cfg->hidden_size > MAX_HIDDEN)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: hidden size %d is out of range (1..%d)", f->path,
                         cfg->hidden_size, MAX_HIDDEN);
    if (cfg->depth <= 0 || cfg->depth > MAX_DEPTH)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: %d blocks; a DiT needs 1..%d", f->path,
                         cfg->depth, MAX_DEPTH);
    if (cfg->in_channels <= 0 || cfg->in_channels > MAX_CHANNELS || cfg->out_channels <= 0 ||
        cfg->out_channels > MAX_CHANNELS)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: channel counts %d -> %d are out of range",
                         f->path, cfg->in_channels, cfg->out_channels);
    if (cfg->num_classes < 0 || cfg->num_classes > MAX_CLASSES)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: %d classes is out of range", f->path,
                         cfg->num_classes);
    if (cfg->freq_dim < 2 || cfg->freq_dim > MAX_HIDDEN || cfg->freq_shift >= cfg->freq_dim / 2)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: timestep embedding width %d is out of range",
                         f->path, cfg->freq_dim);
    if (cfg->mlp_hidden <= 0 || cfg->mlp_hidden > 16 * MAX_HIDDEN)
        return dit_error(ctx, DIT_ERR_MODEL, "%s: MLP width %d is out of range", f->path,
                         cfg->mlp_hidden);
    if (cfg->patch_size > 64 || cfg->sample_size <= 0 || cfg->sample_size % cfg->patch_size)
        return dit_error(ctx, DIT_ERR_MODEL,
                         "%s: sample size %d is not a multiple of patch size %d", f->path,
                         cfg->sample_size, cfg->patch_size);
    if (cfg->hidden_size % 4)
        return dit_error(ctx, DIT_ERR_MODEL,
                         "%s: hidden size %d must be a multiple of 4 for the 2-D position "
                         "embedding",
                         f->path, cfg->hidden_size);
    return DIT_OK;
}

static dit_status resolve_config(dit_ctx *ctx, const st_file *f, const char *config_path,
                                 dit_config *cfg)
{
    dit_status st;
    memset(cfg, 0, sizeof *cfg);
    if ((st = detect_naming(ctx, f, &cfg->naming)))
        return st;

    config_given g;
    config_given_init(&g);
    if (config_path && (st = config_from_file(ctx, config_path, &g)))
        return st;
    if ((st = config_from_metadata(ctx, f, &g)))
        return st;
    if ((st = config_from_shapes(ctx, f, cfg)))
        return st;
    config_conventions(cfg);
    if ((st = config_apply_given(ctx, f, &g, cfg)))
        return st;
    return config_check_ranges(ctx, f, cfg);
}

/* ---- parameter layout ------------------------------------------------------ */

static void layout_embedder(weight_layout *L, const dit_config *c, dit_embedder_weights *e,
                            const char *prefix, const naming_table *nt)
{
    const int64_t D = c->hidden_size;
    e->t_mlp0_w = wl_take(L, (size_t)(D * c->freq_dim));
    e->t_mlp0_b = wl_take(L, (size_t)D);
    e->t_mlp2_w = wl_take(L, (size_t)(D * D));
    e->t_mlp2_b = wl_take(L, (size_t)D);
    e->y_table = c->num_classes > 0 ? wl_take(L, (size_t)((c->num_classes + 1) * D)) : NULL;
    wl_want_linear(L, e->t_mlp0_w, e->t_mlp0_b, D, c->freq_dim, prefix, nt->t_mlp0);
    wl_want_linear(L, e->t_mlp2_w, e->t_mlp2_b, D, D, prefix, nt->t_mlp2);
    int64_t ys[2] = {c->num_classes + 1, D};
    if (c->num_classes > 0)
        wl_want(L, e->y_table, 0, 2, ys, "%s%s.weight", prefix, nt->y_table);
}

/* Walks the model in a fixed order; with L->base == NULL it only counts. */
static void layout_model(weight_layout *L, void *model)
{
    dit_model *m = model;
    const dit_config *c = &m->cfg;
    const naming_table *nt = &namings[c->naming];
    const bool diffusers = c->naming == DIT_NAMING_DIFFUSERS;
    const int64_t D = c->hidden_size, Dm = c->mlp_hidden, p = c->patch_size;
    const int64_t P_out = p * p * c->out_channels;
    const int64_t T0 = (c->sample_size / p) * (c->sample_size / p);

    m->x_embed_w = wl_take(L, (size_t)(D * c->in_channels * p * p));
    m->x_embed_b = wl_take(L, (size_t)D);
    int64_t xs[4] = {D, c->in_channels, p, p}, bs[1] = {D};
    wl_want(L, m->x_embed_w, 0, 4, xs, "%s.weight", nt->x_embed);
    wl_want(L, m->x_embed_b, 0, 1, bs, "%s.bias", nt->x_embed);
    wl_linear_matrix(L, m->x_embed_w, D, c->in_channels * p * p); /* over patches */
    if (!diffusers) {
        m->pos_embed = wl_take(L, (size_t)(T0 * D));
        int64_t ps[3] = {1, T0, D};
        wl_want(L, m->pos_embed, WL_OPTIONAL | WL_BUFFER, 3, ps, "pos_embed");
        layout_embedder(L, c, &m->emb, "", nt);
    }
    for (int i = 0; i < c->depth; i++) {
        dit_block_weights *b = &m->blocks[i];
        char pre[64];
        snprintf(pre, sizeof pre, "%s%d.", nt->block_prefix, i);
        if (diffusers) {
            layout_embedder(L, c, &b->own_emb, pre, nt);
            b->emb = &b->own_emb;
        } else {
            b->emb = &m->emb;
        }
        const int64_t chunks = dit_block_mod_chunks(c);
        b->ada_w = chunks ? wl_take(L, (size_t)(chunks * D * D)) : NULL;
        b->ada_b = chunks ? wl_take(L, (size_t)(chunks * D)) : NULL;
        b->qkv_w = wl_take(L, (size_t)(3 * D * D));
        b->qkv_b = wl_take(L, (size_t)(3 * D));
        b->proj_w = wl_take(L, (size_t)(D * D));
        b->proj_b = wl_take(L, (size_t)D);
        b->fc1_w = wl_take(L, (size_t)(Dm * D));
        b->fc1_b = wl_take(L, (size_t)Dm);
        b->fc2_w = wl_take(L, (size_t)(D * Dm));
        b->fc2_b = wl_take(L, (size_t)D);
        if (chunks)
            wl_want_linear(L, b->ada_w, b->ada_b, chunks * D, D, pre, nt->ada);
        if (diffusers) { /* to_q, to_k, to_v stack into the rows of qkv */
            static const char *const qkv[3] = {"attn1.to_q", "attn1.to_k", "attn1.to_v"};
            const int64_t ws[2] = {D, D}, qs[1] = {D};
            for (int j = 0; j < 3; j++) {
                wl_want(L, b->qkv_w ? b->qkv_w + j * D * D : NULL, 0, 2, ws, "%s%s.weight", pre,
                        qkv[j]);
                wl_want(L, b->qkv_b ? b->qkv_b + j * D : NULL, 0, 1, qs, "%s%s.bias", pre, qkv[j]);
            }
            wl_linear_matrix(L, b->qkv_w, 3 * D, D);
        } else {
            wl_want_linear(L, b->qkv_w, b->qkv_b, 3 * D, D, pre, nt->qkv);
        }
        wl_want_linear(L, b->proj_w, b->proj_b, D, D, pre, nt->proj);
        wl_want_linear(L, b->fc1_w, b->fc1_b, Dm, D, pre, nt->fc1);
        wl_want_linear(L, b->fc2_w, b->fc2_b, D, Dm, pre, nt->fc2);
        if (c->conditioning == DIT_COND_CROSS_ATTN) {
            b->xq_w = wl_take(L, (size_t)(D * D));
            b->xq_b = wl_take(L, (size_t)D);
            b->xkv_w = wl_take(L, (size_t)(2 * D * D));
            b->xkv_b = wl_take(L, (size_t)(2 * D));
            b->xproj_w = wl_take(L, (size_t)(D * D));
            b->xproj_b = wl_take(L, (size_t)D);
            wl_want_linear(L, b->xq_w, b->xq_b, D, D, pre, "cross_attn.q");
            wl_want_linear(L, b->xkv_w, b->xkv_b, 2 * D, D, pre, "cross_attn.kv");
            wl_want_linear(L, b->xproj_w, b->xproj_b, D, D, pre, "cross_attn.proj");
        }
    }
    const bool final_ada = dit_final_adaln(c);
    m->final_ada_w = final_ada ? wl_take(L, (size_t)(2 * D * D)) : NULL;
    m->final_ada_b = final_ada ? wl_take(L, (size_t)(2 * D)) : NULL;
    m->final_w = wl_take(L, (size_t)(P_out * D));
    m->final_b = wl_take(L, (size_t)P_out);
    if (final_ada)
        wl_want_linear(L, m->final_ada_w, m->final_ada_b, 2 * D, D, "", nt->final_ada);
    wl_want_linear(L, m->final_w, m->final_b, P_out, D, "", nt->final_linear);
}

/* Tensors a checkpoint may carry that we know and do not need. */
static bool ignorable(const char *name, const void *user)
{
    (void)user;
    return strcmp(name, "pos_embed.pos_embed") == 0; /* diffusers' optional buffer */
}

static dit_status load_weights(dit_ctx *ctx, const st_file *f, dit_model *m)
{
    m->blocks = calloc((size_t)m->cfg.depth, sizeof *m->blocks);
    if (!m->blocks)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    char what[96];
    snprintf(what, sizeof what, "a DiT (%s naming) with %d blocks", dit_naming_name(m->cfg.naming),
             m->cfg.depth);
    wl_result r;
    dit_status st = wl_load(ctx, f, layout_model, m, what, ignorable, &r);
    if (st)
        return st;
    m->params = r.params;
    m->n_params = r.n_params;
    m->weights_held = r.held > 0;
    m->param_floats = r.floats;
    snprintf(m->source_dtype, sizeof m->source_dtype, "%s", r.dtype);
    if (!st_find(f, "pos_embed")) /* computed per call instead */
        m->pos_embed = NULL;
    return DIT_OK;
}

int dit_folder_vae_factor(const char *path)
{
    char *cfg = g_build_filename(path, "vae", "config.json", NULL), *text = NULL;
    gsize len = 0;
    int factor = 1;
    if (g_file_test(path, G_FILE_TEST_IS_DIR) && g_file_get_contents(cfg, &text, &len, NULL)) {
        JsonParser *parser = NULL;
        JsonObject *o = dit_json_object(NULL, cfg, text, (gssize)len, &parser);
        JsonArray *levels = o && json_object_has_member(o, "block_out_channels")
                                ? json_object_get_array_member(o, "block_out_channels")
                                : NULL;
        const guint n = levels ? json_array_get_length(levels) : 0;
        factor = n >= 1 && n <= 8 ? 1 << (n - 1) : 8; /* the SD VAE's where it does not say */
        if (parser)
            g_object_unref(parser);
    }
    g_free(text);
    g_free(cfg);
    return factor;
}

dit_status dit_model_peek(dit_ctx *ctx, const char *path, dit_config *out, int *pixels)
{
    model_files files;
    st_file *f;
    dit_config *unused = NULL;
    if (!out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_model_peek: NULL argument");
    dit_status st =
        open_model_files(ctx, "dit_model_peek", path, "transformer", &unused, &files, &f);
    if (st)
        return st;
    st = resolve_config(ctx, f, files.config, out);
    st_close(f);
    model_files_clear(&files);
    if (!st && pixels)
        *pixels = out->sample_size * dit_folder_vae_factor(path);
    return st;
}

dit_status dit_model_load(dit_ctx *ctx, const char *path, dit_model **out)
{
    model_files files;
    st_file *f;
    dit_status st = open_model_files(ctx, "dit_model_load", path, "transformer", out, &files, &f);
    if (st)
        return st;
    dit_model *m = calloc(1, sizeof *m);
    if (!m) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((st = resolve_config(ctx, f, files.config, &m->cfg)))
        goto out;
    if ((st = load_weights(ctx, f, m)))
        goto out;
    dit_model_touch(m);
    /* a pipeline folder's scheduler/, else our own metadata */
    if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
        char *sp = g_build_filename(path, "scheduler", "scheduler_config.json", NULL);
        g_file_get_contents(sp, &m->scheduler_json, NULL, NULL);
        g_free(sp);
    }
    if (!m->scheduler_json && st_meta(f, "scheduler"))
        m->scheduler_json = g_strdup(st_meta(f, "scheduler"));
    *out = m;
    m = NULL;
out:
    st_close(f);
    dit_model_free(m);
    model_files_clear(&files);
    return st;
}

void dit_model_touch(dit_model *m)
{
    static _Atomic uint64_t last; /* versions are unique across models */
    m->version = ++last;
    /* bf16 copies made for the CPU are of the old weights; a held model's
     * copies are its weights, which nothing changes (dit_check_held) */
    if (!m->weights_held)
        dit_cpu_gemm_forget(m->params, m->param_floats * sizeof(float));
}

void dit_model_free(dit_model *m)
{
    if (!m)
        return;
    dit_cpu_gemm_forget(m->params, m->param_floats * sizeof(float));
    dit_free_aligned(m->params);
    free(m->blocks);
    g_free(m->scheduler_json);
    free(m);
}

const dit_config *dit_model_config(const dit_model *m) { return m ? &m->cfg : NULL; }

const char *dit_model_scheduler_json(const dit_model *m) { return m ? m->scheduler_json : NULL; }

size_t dit_model_param_count(const dit_model *m) { return m ? m->n_params : 0; }

const char *dit_model_source_dtype(const dit_model *m) { return m ? m->source_dtype : ""; }

/* ---- models made here (training) --------------------------------------------- */

dit_status dit_model_create(dit_ctx *ctx, const dit_config *cfg_in, dit_model **out)
{
    *out = NULL;
    dit_config c = *cfg_in;
    c.naming = DIT_NAMING_OFFICIAL;
    c.per_block_embedder = 0;
    if (c.hidden_size <= 0 || c.hidden_size > MAX_HIDDEN || c.hidden_size % 4 || c.num_heads <= 0 ||
        c.hidden_size % c.num_heads || c.depth <= 0 || c.depth > MAX_DEPTH || c.patch_size <= 0 ||
        c.sample_size <= 0 || c.sample_size % c.patch_size || c.in_channels <= 0 ||
        c.in_channels > MAX_CHANNELS || c.num_classes < 0 || c.num_classes > MAX_CLASSES ||
        c.freq_dim < 2 || c.mlp_hidden <= 0 || (unsigned)c.conditioning >= DIT_COND_COUNT)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "invalid DiT config (hidden %d, heads %d, depth %d, patch %d, size %d)",
                         c.hidden_size, c.num_heads, c.depth, c.patch_size, c.sample_size);
    c.out_channels = c.learn_sigma ? 2 * c.in_channels : c.in_channels;
    if (c.norm1_eps <= 0)
        c.norm1_eps = c.norm2_eps = c.norm_final_eps = 1e-6f;
    if (c.interpolation_scale <= 0)
        c.interpolation_scale = 1.0f;
    dit_model *m = calloc(1, sizeof *m);
    if (!m)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    m->cfg = c;
    m->blocks = calloc((size_t)c.depth, sizeof *m->blocks);
    weight_layout L = {0};
    if (m->blocks)
        layout_model(&L, m);
    size_t bytes = 0;
    if (!m->blocks || !dit_mul_size(L.used, sizeof(float), &bytes)) {
        dit_model_free(m);
        return dit_error(ctx, DIT_ERR_NOMEM, "the parameters' size overflows");
    }
    dit_status room = dit_check_weights_memory(ctx, bytes, "the model's parameters");
    if (room) {
        dit_model_free(m);
        return room;
    }
    if (!(m->params = dit_alloc_aligned(bytes))) {
        dit_model_free(m);
        return dit_error(ctx, DIT_ERR_NOMEM, "cannot allocate the parameters (%.1f MiB)",
                         bytes / 1048576.0);
    }
    memset(m->params, 0, bytes);
    L = (weight_layout){.base = m->params};
    layout_model(&L, m);
    m->pos_embed = NULL; /* computed per call */
    m->param_floats = L.used;
    /* count the parameters (not the padding, not the pos_embed buffer) */
    weight_expect *list = calloc(L.n, sizeof *list);
    if (list) {
        weight_layout named = {.base = m->params, .list = list};
        layout_model(&named, m);
        for (size_t i = 0; i < named.n; i++) {
            size_t cnt = 1;
            for (int d = 0; d < list[i].ndim; d++)
                cnt *= (size_t)list[i].shape[d];
            if (!(list[i].flags & WL_BUFFER))
                m->n_params += cnt;
        }
        free(list);
    }
    m->pos_embed = NULL;
    snprintf(m->source_dtype, sizeof m->source_dtype, "F32");
    dit_model_touch(m);
    *out = m;
    return DIT_OK;
}

dit_status dit_model_save(dit_ctx *ctx, const dit_model *m, const float *params, const char *path,
                          st_dtype dtype, const char *const *meta_keys,
                          const char *const *meta_values, size_t n_meta)
{
    if (m->cfg.naming != DIT_NAMING_OFFICIAL || m->cfg.per_block_embedder)
        return dit_error(ctx, DIT_ERR_UNSUPPORTED, "only official-layout models can be saved");
    if (params == m->params && m->weights_held)
        return dit_check_held(ctx, true, "the model", "saved");
    /* list names, shapes and places with the same layout walk */
    weight_layout L = {0};
    dit_model tmp = *m;
    tmp.blocks = calloc((size_t)m->cfg.depth, sizeof *tmp.blocks);
    if (!tmp.blocks)
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
    layout_model(&L, &tmp);
    weight_expect *list = calloc(L.n, sizeof *list);
    st_write_tensor *ts = calloc(L.n, sizeof *ts);
    dit_status st = DIT_OK;
    if (!list || !ts) {
        st = dit_error(ctx, DIT_ERR_NOMEM, "out of memory");
        goto out;
    }
    L = (weight_layout){.base = m->params, .list = list};
    layout_model(&L, &tmp);
    size_t nt = 0;
    for (size_t i = 0; i < L.n; i++) {
        const weight_expect *e = &list[i];
        if (e->flags & WL_BUFFER)
            continue;
        st_write_tensor *t = &ts[nt++];
        t->name = e->name;
        t->dtype = dtype;
        t->ndim = e->ndim;
        for (int d = 0; d < e->ndim; d++)
            t->shape[d] = e->shape[d];
        t->data = params + (e->dst - m->params); /* same offset in the given block */
    }
    st = st_write(ctx, path, ts, nt, meta_keys, meta_values, n_meta);
out:
    free(tmp.blocks);
    free(list);
    free(ts);
    return st;
}

dit_model *dit_model_clone_at(const dit_model *m, float *base)
{
    dit_model *c = malloc(sizeof *c);
    dit_block_weights *blocks = calloc((size_t)m->cfg.depth, sizeof *blocks);
    if (!c || !blocks) {
        free(c);
        free(blocks);
        return NULL;
    }
    *c = *m;
    c->scheduler_json = NULL; /* owned by m */
    c->blocks = blocks;
    weight_layout L = {.base = base};
    layout_model(&L, c);
    c->params = base;
    if (!m->pos_embed) /* a table the file did not carry is computed, as for m */
        c->pos_embed = NULL;
    return c;
}

void dit_model_clone_free(dit_model *c)
{
    if (c)
        free(c->blocks);
    free(c);
}

float *dit_model_find(dit_model *m, const char *name, size_t *count)
{
    weight_layout L = {0};
    dit_model tmp = *m;
    tmp.blocks = calloc((size_t)m->cfg.depth, sizeof *tmp.blocks);
    if (!tmp.blocks)
        return NULL;
    layout_model(&L, &tmp);
    weight_expect *list = calloc(L.n, sizeof *list);
    float *found = NULL;
    if (list) {
        L = (weight_layout){.base = m->params, .list = list};
        layout_model(&L, &tmp);
        for (size_t i = 0; i < L.n && !found; i++)
            if (strcmp(list[i].name, name) == 0) {
                found = list[i].dst;
                if (count) {
                    *count = 1;
                    for (int d = 0; d < list[i].ndim; d++)
                        *count *= (size_t)list[i].shape[d];
                }
            }
    }
    free(list);
    free(tmp.blocks);
    return found;
}

size_t dit_config_param_floats(const dit_config *cfg)
{
    dit_model tmp = {0};
    tmp.cfg = *cfg;
    tmp.cfg.naming = DIT_NAMING_OFFICIAL;
    tmp.cfg.per_block_embedder = 0;
    if (cfg->depth <= 0 || cfg->depth > MAX_DEPTH)
        return 0;
    tmp.blocks = calloc((size_t)cfg->depth, sizeof *tmp.blocks);
    if (!tmp.blocks)
        return 0;
    weight_layout L = {0};
    layout_model(&L, &tmp);
    free(tmp.blocks);
    return L.used;
}
