/* Model loader and forward guards: a table of broken models and bad calls,
 * each built from a golden fixture, each with its status and message. */
#include "common.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;

/* A case edits the official fixture's tensors, or writes a diffusers folder
 * with an edited config.json, and expects the loader to refuse it. */
typedef struct {
    const char *name;
    void (*edit)(tensor_list *tl);
    const char *config_json; /* diffusers folder with this config.json */
    dit_status status;
    const char *expect[2];
} model_case;

static void drop_qkv_bias(tensor_list *tl) { tl_drop(tl, "blocks.0.attn.qkv.bias"); }

static void add_extra(tensor_list *tl)
{
    int64_t shape[1] = {3};
    float v[3] = {1, 2, 3};
    tl_add(tl, "blocks.0.attn.extra.weight", ST_F32, 1, shape, v);
}

static void transpose_fc1(tensor_list *tl)
{
    size_t n;
    float *w = tl_data(tl, "blocks.0.mlp.fc1.weight", &n);
    int64_t shape[2] = {64, (int64_t)n / 64}; /* (D, Dm) instead of (Dm, D) */
    if (w)
        tl_set_shape(tl, "blocks.0.mlp.fc1.weight", 2, shape);
}

static void nan_weight(tensor_list *tl)
{
    size_t n;
    float *w = tl_data(tl, "final_layer.linear.weight", &n);
    if (w)
        w[n / 2] = NAN;
}

static void inf_weight(tensor_list *tl)
{
    size_t n;
    float *w = tl_data(tl, "t_embedder.mlp.0.bias", &n);
    if (w)
        w[0] = -INFINITY;
}

static void not_a_dit(tensor_list *tl) { tl_drop(tl, "x_embedder.proj.weight"); }

static void drop_final_bias(tensor_list *tl) { tl_drop(tl, "final_layer.linear.bias"); }

static void odd_heads(tensor_list *tl) { tl_set_meta(tl, "num_attention_heads", "3"); }

static void bad_meta_config(tensor_list *tl) { tl_set_meta(tl, "config", "{\"patch_size\": }"); }

static void metadata_says_more_blocks(tensor_list *tl) { tl_set_meta(tl, "num_layers", "3"); }

static void pos_embed_wrong(tensor_list *tl)
{
    size_t n;
    float *p = tl_data(tl, "pos_embed", &n);
    int64_t shape[2] = {1, (int64_t)n};
    if (p)
        tl_set_shape(tl, "pos_embed", 2, shape);
}

/* clang-format off */
static const model_case cases[] = {
    {"missing tensor", drop_qkv_bias, NULL, DIT_ERR_MODEL,
     {"missing tensor 'blocks.0.attn.qkv.bias'", "expected shape (192)"}},
    {"extra tensor", add_extra, NULL, DIT_ERR_MODEL,
     {"unexpected tensor 'blocks.0.attn.extra.weight'", NULL}},
    {"wrong shape", transpose_fc1, NULL, DIT_ERR_MODEL,
     {"'blocks.0.mlp.fc1.weight' has shape (64, 256), expected (256, 64)", NULL}},
    {"NaN weight", nan_weight, NULL, DIT_ERR_MODEL,
     {"'final_layer.linear.weight' holds NaN", NULL}},
    {"Inf weight", inf_weight, NULL, DIT_ERR_MODEL, {"'t_embedder.mlp.0.bias' holds Inf", NULL}},
    {"not a DiT", not_a_dit, NULL, DIT_ERR_MODEL, {"not a DiT", NULL}},
    {"missing final bias", drop_final_bias, NULL, DIT_ERR_MODEL,
     {"missing tensor 'final_layer.linear.bias'", "expected shape (512)"}},
    {"heads do not divide width", odd_heads, NULL, DIT_ERR_MODEL,
     {"number of attention heads", NULL}},
    {"metadata config not JSON", bad_meta_config, NULL, DIT_ERR_FORMAT, {"not valid JSON", NULL}},
    {"metadata depth too large", metadata_says_more_blocks, NULL, DIT_ERR_MODEL,
     {"missing tensor 'blocks.2.", "with 3 blocks"}},
    {"pos_embed wrong shape", pos_embed_wrong, NULL, DIT_ERR_MODEL,
     {"'pos_embed' has shape", NULL}},
    {"config.json not JSON", NULL, "{\"num_layers\": 3,", DIT_ERR_FORMAT,
     {"config.json: not valid JSON", NULL}},
    {"config.json fewer layers", NULL, "{\"num_layers\": 2, \"num_attention_heads\": 4}",
     DIT_ERR_MODEL, {"unexpected tensor 'transformer_blocks.2.", NULL}},
    {"config.json heads x dim != width", NULL,
     "{\"num_attention_heads\": 5, \"attention_head_dim\": 24}", DIT_ERR_MODEL,
     {"5 heads x 24 = 120", NULL}},
    {"config.json other norm", NULL, "{\"norm_type\": \"ada_norm_single\"}", DIT_ERR_UNSUPPORTED,
     {"norm_type 'ada_norm_single'", NULL}},
    {"config.json negative count", NULL, "{\"num_layers\": -3}", DIT_ERR_MODEL,
     {"'num_layers' = -3", NULL}},
};
/* clang-format on */

static void run_case(dit_ctx *ctx, const char *dir, const model_case *c)
{
    char *path = NULL;
    if (c->edit) {
        char *src = fixture_path("dit_official_p8.safetensors");
        tensor_list tl;
        CHECK(tl_load(ctx, src, &tl), "load %s", src);
        c->edit(&tl);
        path = g_build_filename(dir, "edited.safetensors", NULL);
        CHECK(tl_write(ctx, &tl, path) == DIT_OK, "%s", dit_last_error(ctx));
        tl_free(&tl);
        g_free(src);
    } else {
        /* the diffusers p2 weights with a hand-written config.json */
        path = g_build_filename(dir, "folder", NULL);
        g_mkdir(path, 0700);
        char *src = fixture_path("dit_diffusers_p2/diffusion_pytorch_model.safetensors");
        char *dst = g_build_filename(path, "diffusion_pytorch_model.safetensors", NULL);
        char *text = NULL;
        gsize len = 0;
        CHECK(g_file_get_contents(src, &text, &len, NULL), "read %s", src);
        g_file_set_contents(dst, text, (gssize)len, NULL);
        g_free(text);
        char *cfg = g_build_filename(path, "config.json", NULL);
        g_file_set_contents(cfg, c->config_json, -1, NULL);
        g_free(cfg);
        g_free(dst);
        g_free(src);
    }
    dit_model *m = NULL;
    dit_status st = dit_model_load(ctx, path, &m);
    const char *msg = dit_last_error(ctx);
    bool ok = st == c->status && m == NULL;
    for (int k = 0; k < 2; k++)
        if (c->expect[k] && !strstr(msg, c->expect[k]))
            ok = false;
    printf("%-32s -> %s: %s  %s\n", c->name, dit_status_name(st), msg, ok ? "OK" : "NOT OK");
    CHECK(ok, "case '%s' (wanted %s, '%s')", c->name, dit_status_name(c->status), c->expect[0]);
    dit_model_free(m);
    g_free(path);
}

static void test_good_variants(dit_ctx *ctx, const char *dir)
{
    /* a whole config in __metadata__ "config" is read */
    char *src = fixture_path("dit_official_p8.safetensors");
    tensor_list tl;
    CHECK(tl_load(ctx, src, &tl), "load");
    tl_set_meta(&tl, "config", "{\"num_attention_heads\": 4, \"sample_size\": 16}");
    char *path = g_build_filename(dir, "meta.safetensors", NULL);
    CHECK(tl_write(ctx, &tl, path) == DIT_OK, "%s", dit_last_error(ctx));
    dit_model *m = NULL;
    CHECK(dit_model_load(ctx, path, &m) == DIT_OK, "%s", dit_last_error(ctx));
    if (m)
        CHECK(dit_model_config(m)->num_heads == 4, "metadata config sets heads to 4, got %d",
              dit_model_config(m)->num_heads);
    dit_model_free(m);
    tl_free(&tl);
    g_free(path);
    g_free(src);

    /* a pipeline folder with transformer/ inside is found */
    char *pipe = g_build_filename(dir, "pipeline", "transformer", NULL);
    g_mkdir_with_parents(pipe, 0700);
    char *fx = fixture_path("dit_diffusers_p4");
    static const char *const files[] = {"config.json", "diffusion_pytorch_model.safetensors"};
    for (size_t i = 0; i < 2; i++) {
        char *a = g_build_filename(fx, files[i], NULL), *b = g_build_filename(pipe, files[i], NULL);
        char *text = NULL;
        gsize len = 0;
        if (g_file_get_contents(a, &text, &len, NULL))
            g_file_set_contents(b, text, (gssize)len, NULL);
        g_free(text);
        g_free(a);
        g_free(b);
    }
    char *root = g_build_filename(dir, "pipeline", NULL);
    m = NULL;
    CHECK(dit_model_load(ctx, root, &m) == DIT_OK, "pipeline folder: %s", dit_last_error(ctx));
    if (m)
        CHECK(dit_model_config(m)->patch_size == 4, "pipeline folder gives the p4 model");

    /* forward guards on a good model */
    if (m) {
        float x[4 * 16 * 16] = {0}, t[1] = {10}, out[4 * 16 * 16];
        int32_t y[1] = {6};
        dit_status st = dit_model_forward(ctx, m, 1, 16, 16, x, t, y, out);
        CHECK(st == DIT_ERR_INVALID_ARG && strstr(dit_last_error(ctx), "label 6"),
              "label out of range: %s", dit_last_error(ctx));
        y[0] = 5; /* the null class is allowed */
        st = dit_model_forward(ctx, m, 1, 16, 16, x, t, y, out);
        CHECK(st == DIT_OK, "null class: %s", dit_last_error(ctx));
        st = dit_model_forward(ctx, m, 1, 16, 18, x, t, y, out);
        CHECK(st == DIT_ERR_INVALID_ARG && strstr(dit_last_error(ctx), "patch size 4"),
              "18 px is not a multiple of the patch: %s", dit_last_error(ctx));
        x[17] = NAN;
        st = dit_model_forward(ctx, m, 1, 16, 16, x, t, y, out);
        CHECK(st == DIT_ERR_INVALID_ARG && strstr(dit_last_error(ctx), "NaN at element 17"),
              "NaN input: %s", dit_last_error(ctx));
        x[17] = 0;
        t[0] = INFINITY;
        st = dit_model_forward(ctx, m, 1, 16, 16, x, t, y, out);
        CHECK(st == DIT_ERR_INVALID_ARG, "Inf timestep: %s", dit_last_error(ctx));
        t[0] = 1;
        st = dit_model_forward(ctx, m, 0, 16, 16, x, t, y, out);
        CHECK(st == DIT_ERR_INVALID_ARG, "batch 0: %s", dit_last_error(ctx));
    }
    dit_model_free(m);
    g_free(root);
    g_free(fx);
    g_free(pipe);

    /* an empty folder and a missing path name themselves */
    char *empty = g_build_filename(dir, "empty", NULL);
    g_mkdir(empty, 0700);
    CHECK(dit_model_load(ctx, empty, &m) == DIT_ERR_IO &&
              strstr(dit_last_error(ctx), "no diffusion_pytorch_model.safetensors"),
          "empty folder: %s", dit_last_error(ctx));
    g_free(empty);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *dir = tmpdir_new();
        run_case(ctx, dir, &cases[i]);
        tmpdir_remove(dir);
    }
    char *dir = tmpdir_new();
    test_good_variants(ctx, dir);
    tmpdir_remove(dir);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
