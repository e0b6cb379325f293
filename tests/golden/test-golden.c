/* DiT forward against the PyTorch references written by gen.py.
 * Every fixture: max|ours - ref| <= 1e-4 * max|ref| over the whole output.
 * Then the test proves itself sensitive: a copy of a fixture with one weight
 * flipped must NOT pass. */
#include "common.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REL_TOL 1e-4

static int failures;

typedef struct {
    const char *model; /* file or folder under tests/golden */
    const char *io;    /* x, t, y, out */
    dit_naming naming;
    const char *dtype;
    int heads, depth, patch;
} fixture;

/* clang-format off */
static const fixture fixtures[] = {
    {"dit_diffusers_p2", "dit_diffusers_p2.io.safetensors", DIT_NAMING_DIFFUSERS, "F16", 4, 3, 2},
    {"dit_official_p2.safetensors", "dit_official_p2.io.safetensors", DIT_NAMING_OFFICIAL, "BF16",
     4, 3, 2},
    {"dit_diffusers_p4", "dit_diffusers_p4.io.safetensors", DIT_NAMING_DIFFUSERS, "F16", 2, 1, 4},
    {"dit_official_p8.safetensors", "dit_official_p8.io.safetensors", DIT_NAMING_OFFICIAL, "F32",
     1, 2, 8},
    {"dit_convert_ref.safetensors", "dit_convert.io.safetensors", DIT_NAMING_OFFICIAL, "F16", 2,
     1, 2},
};
/* clang-format on */

typedef struct {
    float *x, *t, *ref;
    int32_t *y;
    int B, C, H, W;
    size_t n_out;
} io_case;

static bool load_io(dit_ctx *ctx, const char *name, io_case *io)
{
    memset(io, 0, sizeof *io);
    char *path = fixture_path(name);
    st_file *f = NULL;
    bool ok = st_open(ctx, path, &f) == DIT_OK;
    if (!ok)
        fprintf(stderr, "%s\n(regenerate fixtures with tests/golden/gen.py)\n",
                dit_last_error(ctx));
    g_free(path);
    if (!ok)
        return false;
    int64_t shape[8];
    int ndim = 0;
    size_t nb = 0;
    float *yf = NULL;
    io->x = read_tensor(ctx, f, "x", NULL, shape, &ndim);
    io->t = read_tensor(ctx, f, "t", NULL, NULL, NULL);
    yf = read_tensor(ctx, f, "y", &nb, NULL, NULL);
    io->ref = read_tensor(ctx, f, "out", &io->n_out, NULL, NULL);
    ok = io->x && io->t && yf && io->ref && ndim == 4;
    if (ok) {
        io->B = (int)shape[0], io->C = (int)shape[1], io->H = (int)shape[2], io->W = (int)shape[3];
        io->y = malloc(nb * sizeof *io->y);
        for (size_t i = 0; i < nb; i++)
            io->y[i] = (int32_t)lrintf(yf[i]);
    }
    free(yf);
    st_close(f);
    return ok;
}

static void free_io(io_case *io)
{
    free(io->x);
    free(io->t);
    free(io->ref);
    free(io->y);
}

/* Forward `model` on the io case; returns whether it matches the reference. */
static bool run_case(dit_ctx *ctx, const dit_model *m, const io_case *io, const char *label)
{
    float *out = calloc(io->n_out, sizeof *out);
    dit_status st = dit_model_forward(ctx, m, io->B, io->H, io->W, io->x, io->t, io->y, out);
    bool ok = false;
    if (st != DIT_OK)
        fprintf(stderr, "%s: forward failed: %s\n", label, dit_last_error(ctx));
    else
        ok = compare_ref(label, out, io->ref, io->n_out, REL_TOL);
    free(out);
    return ok;
}

static void test_fixture(dit_ctx *ctx, const fixture *fx)
{
    io_case io;
    if (!load_io(ctx, fx->io, &io)) {
        CHECK(false, "cannot read %s", fx->io);
        free_io(&io);
        return;
    }
    char *path = fixture_path(fx->model);
    dit_model *m = NULL;
    dit_status st = dit_model_load(ctx, path, &m);
    CHECK(st == DIT_OK, "load %s: %s", fx->model, dit_last_error(ctx));
    if (st == DIT_OK) {
        const dit_config *c = dit_model_config(m);
        CHECK(c->naming == fx->naming, "%s: naming %s", fx->model, dit_naming_name(c->naming));
        CHECK(strcmp(dit_model_source_dtype(m), fx->dtype) == 0, "%s: dtype %s", fx->model,
              dit_model_source_dtype(m));
        CHECK(c->num_heads == fx->heads && c->depth == fx->depth && c->patch_size == fx->patch,
              "%s: config heads %d depth %d patch %d", fx->model, c->num_heads, c->depth,
              c->patch_size);
        char label[96];
        snprintf(label, sizeof label, "%s (B=%d %dx%d)", fx->model, io.B, io.H, io.W);
        CHECK(run_case(ctx, m, &io, label), "%s does not match its reference", fx->model);
        /* the arena is reused: a second call gives the same answer */
        snprintf(label, sizeof label, "%s again", fx->model);
        CHECK(run_case(ctx, m, &io, label), "%s second run differs", fx->model);
    }
    dit_model_free(m);
    g_free(path);
    free_io(&io);
}

/* Copy a model with one weight flipped (the largest element of `tensor`
 * negated), reload it, and require the comparison to FAIL. */
static void test_flipped_weight(dit_ctx *ctx, const char *dir, const fixture *fx,
                                const char *weights_file, const char *tensor)
{
    char *model_path = fixture_path(fx->model);
    char *wpath =
        weights_file ? g_build_filename(model_path, weights_file, NULL) : g_strdup(model_path);
    tensor_list tl;
    size_t n = 0;
    float *w = NULL;
    if (tl_load(ctx, wpath, &tl))
        w = tl_data(&tl, tensor, &n);
    CHECK(w != NULL, "no tensor %s in %s", tensor, wpath);
    if (w) {
        size_t k = 0;
        for (size_t j = 1; j < n; j++)
            if (fabsf(w[j]) > fabsf(w[k]))
                k = j;
        w[k] = -w[k];
    }
    /* a diffusers folder keeps its config.json beside the weights */
    char *copy_dir = g_build_filename(dir, "flipped", NULL);
    g_mkdir(copy_dir, 0700);
    char *out =
        g_build_filename(copy_dir, weights_file ? weights_file : "flipped.safetensors", NULL);
    CHECK(tl_write(ctx, &tl, out) == DIT_OK, "%s", dit_last_error(ctx));
    if (weights_file) {
        char *cfg = g_build_filename(model_path, "config.json", NULL);
        char *text = NULL;
        gsize len = 0;
        if (g_file_get_contents(cfg, &text, &len, NULL)) {
            char *dst = g_build_filename(copy_dir, "config.json", NULL);
            g_file_set_contents(dst, text, (gssize)len, NULL);
            g_free(dst);
        }
        g_free(text);
        g_free(cfg);
    }
    io_case io;
    dit_model *m = NULL;
    if (load_io(ctx, fx->io, &io) &&
        dit_model_load(ctx, weights_file ? copy_dir : out, &m) == DIT_OK) {
        char label[128];
        snprintf(label, sizeof label, "flipped %s", tensor);
        bool matched = run_case(ctx, m, &io, label);
        CHECK(!matched, "flipping one weight of %s went unnoticed: the test is not sensitive",
              tensor);
        if (!matched)
            printf("    (expected: one flipped weight must fail the comparison)\n");
    } else {
        CHECK(false, "flipped copy: %s", dit_last_error(ctx));
    }
    dit_model_free(m);
    free_io(&io);
    tl_free(&tl);
    g_free(out);
    g_free(copy_dir);
    g_free(wpath);
    g_free(model_path);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    const int rc = test_precision_from_env(ctx);
    if (rc) {
        dit_ctx_free(ctx);
        return rc;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(fixtures); i++)
        test_fixture(ctx, &fixtures[i]);

    /* and with a single thread: the answer must not depend on the thread count */
    dit_ctx_set_threads(ctx, 1);
    test_fixture(ctx, &fixtures[0]);
    dit_ctx_set_threads(ctx, 0);

    /* the fixtures' sensitivity is shown in fp32: a flipped weight moves the
     * output by less than bf16's band */
    if (!test_bf16_products()) {
        char *dir = tmpdir_new();
        test_flipped_weight(ctx, dir, &fixtures[3], NULL, "blocks.1.mlp.fc2.weight");
        tmpdir_remove(dir);
        dir = tmpdir_new();
        test_flipped_weight(ctx, dir, &fixtures[0], "diffusion_pytorch_model.safetensors",
                            "transformer_blocks.2.attn1.to_k.weight");
        tmpdir_remove(dir);
    }
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
