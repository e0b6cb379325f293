/* VAEs against diffusers: AutoencoderKL encode (mean, logvar) and decode,
 * diffusers' tiled encode/decode, the same weights in the Stable Diffusion
 * (LDM) naming and the old attention naming, AutoencoderTiny in diffusers
 * and original taesd naming; then bad inputs. Tolerance as for the DiT:
 * max|ours - ref| <= 1e-4 * max|ref|. */
#include "common.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REL_TOL 1e-4

static int failures;

typedef struct {
    st_file *f;
    dit_ctx *ctx;
} io_file;

static float *io_get(io_file *io, const char *name, int64_t *shape)
{
    int ndim = 0;
    float *p = read_tensor(io->ctx, io->f, name, NULL, shape, &ndim);
    CHECK(p != NULL, "fixture lacks '%s' (regenerate with tests/golden/gen.py)", name);
    return p;
}

static dit_vae *load_vae(dit_ctx *ctx, const char *path)
{
    dit_vae *v = NULL;
    dit_status st = dit_vae_load(ctx, path, &v);
    CHECK(st == DIT_OK, "load %s: %s", path, dit_last_error(ctx));
    return v;
}

/* decode `latent` with v and compare with ref; returns whether it matched */
static bool check_decode(dit_ctx *ctx, const dit_vae *v, const float *latent, const int64_t *lshape,
                         const float *ref, const char *label)
{
    const dit_vae_info *in = dit_vae_config(v);
    const int f = in->downscale;
    size_t n = (size_t)lshape[0] * in->out_channels * lshape[2] * f * lshape[3] * f;
    float *out = calloc(n, sizeof *out);
    dit_status st =
        dit_vae_decode(ctx, v, (int)lshape[0], (int)lshape[2], (int)lshape[3], latent, out);
    bool ok = st == DIT_OK && compare_ref(label, out, ref, n, REL_TOL);
    if (st != DIT_OK)
        fprintf(stderr, "%s: %s\n", label, dit_last_error(ctx));
    free(out);
    return ok;
}

static bool check_encode(dit_ctx *ctx, const dit_vae *v, const float *image, const int64_t *ishape,
                         const float *ref_mean, const float *ref_logvar, const char *label)
{
    const dit_vae_info *in = dit_vae_config(v);
    const int f = in->downscale;
    size_t n = (size_t)ishape[0] * in->latent_channels * (ishape[2] / f) * (ishape[3] / f);
    float *mean = calloc(n, sizeof *mean), *logvar = calloc(n, sizeof *logvar);
    dit_status st =
        dit_vae_encode(ctx, v, (int)ishape[0], (int)ishape[2], (int)ishape[3], image, mean, logvar);
    char l2[128];
    snprintf(l2, sizeof l2, "%s mean", label);
    bool ok = st == DIT_OK && compare_ref(l2, mean, ref_mean, n, REL_TOL);
    if (st == DIT_OK && ref_logvar) {
        snprintf(l2, sizeof l2, "%s logvar", label);
        ok = compare_ref(l2, logvar, ref_logvar, n, REL_TOL) && ok;
    }
    if (st != DIT_OK)
        fprintf(stderr, "%s: %s\n", label, dit_last_error(ctx));
    free(mean);
    free(logvar);
    return ok;
}

/* Writes `src` tensors under new names (and metadata) to dir/name. */
static char *renamed_copy(dit_ctx *ctx, const char *src, const char *dir, const char *name,
                          const char *const (*map)[2], size_t n_map, const char *config)
{
    tensor_list tl;
    if (!tl_load(ctx, src, &tl))
        return NULL;
    for (size_t i = 0; i < tl.n; i++)
        for (size_t k = 0; k < n_map; k++) {
            const char *at = strstr(tl.t[i].name, map[k][0]);
            if (!at)
                continue;
            GString *s = g_string_new_len(tl.t[i].name, at - tl.t[i].name);
            g_string_append(s, map[k][1]);
            g_string_append(s, at + strlen(map[k][0]));
            g_free((char *)tl.t[i].name);
            tl.t[i].name = g_string_free(s, FALSE);
            break;
        }
    if (config)
        tl_set_meta(&tl, "config", config);
    char *path = g_build_filename(dir, name, NULL);
    CHECK(tl_write(ctx, &tl, path) == DIT_OK, "%s", dit_last_error(ctx));
    tl_free(&tl);
    return path;
}

static void test_kl(dit_ctx *ctx, const char *dir)
{
    char *iop = fixture_path("vae_kl.io.safetensors");
    io_file io = {NULL, ctx};
    if (st_open(ctx, iop, &io.f) != DIT_OK) {
        CHECK(false, "%s (regenerate with tests/golden/gen.py)", dit_last_error(ctx));
        g_free(iop);
        return;
    }
    int64_t ishape[8], lshape[8];
    float *image = io_get(&io, "image", ishape);
    float *mean = io_get(&io, "enc_mean", NULL), *logvar = io_get(&io, "enc_logvar", NULL);
    float *latent = io_get(&io, "latent", lshape), *dec = io_get(&io, "dec_out", NULL);
    float *tdec = io_get(&io, "tiled_dec_out", NULL);
    float *tmean = io_get(&io, "tiled_enc_mean", NULL);
    float *tlogvar = io_get(&io, "tiled_enc_logvar", NULL);
    const char *ts = st_meta(io.f, "tile_sample_min_size");
    const char *ov = st_meta(io.f, "tile_overlap_factor");
    CHECK(ts && ov, "io file lacks the tile settings in __metadata__");
    if (!(image && mean && logvar && latent && dec && tdec && tmean && tlogvar && ts && ov))
        goto out;

    char *path = fixture_path("vae_kl");
    dit_vae *v = load_vae(ctx, path);
    g_free(path);
    if (v) {
        const dit_vae_info *in = dit_vae_config(v);
        CHECK(in->kind == DIT_VAE_KL && in->naming == DIT_VAE_NAMING_DIFFUSERS &&
                  in->n_levels == 2 && in->downscale == 2 && in->latent_channels == 4 &&
                  in->norm_groups == 8 && in->mid_attention,
              "vae_kl info: kind %d naming %d levels %d f %d L %d groups %d attn %d", in->kind,
              in->naming, in->n_levels, in->downscale, in->latent_channels, in->norm_groups,
              in->mid_attention);
        CHECK(fabsf(in->scaling_factor - 0.18215f) < 1e-7f, "scaling factor %g",
              (double)in->scaling_factor);
        CHECK(check_encode(ctx, v, image, ishape, mean, logvar, "kl encode"), "kl encode");
        CHECK(check_decode(ctx, v, latent, lshape, dec, "kl decode"), "kl decode");

        /* diffusers' enable_tiling() with the fixture's tile settings */
        CHECK(dit_vae_set_tiling(ctx, v, atoi(ts), (float)g_ascii_strtod(ov, NULL)) == DIT_OK, "%s",
              dit_last_error(ctx));
        CHECK(check_decode(ctx, v, latent, lshape, tdec, "kl tiled decode"), "tiled decode");
        CHECK(check_encode(ctx, v, image, ishape, tmean, tlogvar, "kl tiled encode"),
              "tiled encode");
        /* the test can tell tiled from untiled */
        CHECK(!check_decode(ctx, v, latent, lshape, dec, "  tiled vs untiled (must differ)"),
              "tiled decode equals the untiled reference: tiling not exercised");
        dit_vae_set_tiling(ctx, v, 0, 0.25f);
        dit_vae_free(v);
    }

    /* the same weights in Stable Diffusion (LDM) naming; LDM files carry no
     * config, so the fixture's 8 norm groups come through __metadata__ */
    char *sd = fixture_path("vae_kl_sd.safetensors");
    char *sd_meta =
        renamed_copy(ctx, sd, dir, "sd.safetensors", NULL, 0, "{\"norm_num_groups\": 8}");
    if (sd_meta && (v = load_vae(ctx, sd_meta))) {
        CHECK(dit_vae_config(v)->naming == DIT_VAE_NAMING_LDM, "LDM naming detected");
        CHECK(check_decode(ctx, v, latent, lshape, dec, "kl decode, LDM naming"), "LDM decode");
        CHECK(check_encode(ctx, v, image, ishape, mean, logvar, "kl encode, LDM naming"),
              "LDM encode");
        dit_vae_free(v);
    }
    /* without the metadata the SD default of 32 groups does not fit 24 channels */
    v = NULL;
    CHECK(dit_vae_load(ctx, sd, &v) == DIT_ERR_MODEL &&
              strstr(dit_last_error(ctx), "not divisible by 32 norm groups"),
          "LDM file without config: %s", dit_last_error(ctx));
    dit_vae_free(v);
    g_free(sd);
    g_free(sd_meta);

    /* diffusers < 0.14 attention names */
    static const char *const old_names[][2] = {{"attentions.0.to_q", "attentions.0.query"},
                                               {"attentions.0.to_k", "attentions.0.key"},
                                               {"attentions.0.to_v", "attentions.0.value"},
                                               {"attentions.0.to_out.0", "attentions.0.proj_attn"}};
    char *src = fixture_path("vae_kl/diffusion_pytorch_model.safetensors");
    char *old =
        renamed_copy(ctx, src, dir, "old.safetensors", old_names, 4, "{\"norm_num_groups\": 8}");
    if (old && (v = load_vae(ctx, old))) {
        CHECK(dit_vae_config(v)->naming == DIT_VAE_NAMING_DIFFUSERS_OLD, "old naming detected");
        CHECK(check_decode(ctx, v, latent, lshape, dec, "kl decode, old attention names"),
              "old names");
        dit_vae_free(v);
    }
    g_free(old);
    g_free(src);

    /* bad inputs */
    path = fixture_path("vae_kl");
    v = load_vae(ctx, path);
    g_free(path);
    if (v) {
        float out[4 * 3 * 5 * 5];
        dit_status st = dit_vae_encode(ctx, v, 1, 47, 64, image, out, NULL);
        CHECK(st == DIT_ERR_INVALID_ARG && strstr(dit_last_error(ctx), "multiples of 2"),
              "odd image size: %s", dit_last_error(ctx));
        float nan_lat[4 * 2 * 2] = {0};
        nan_lat[5] = NAN;
        st = dit_vae_decode(ctx, v, 1, 2, 2, nan_lat, out);
        CHECK(st == DIT_ERR_INVALID_ARG && strstr(dit_last_error(ctx), "NaN at element 5"),
              "NaN latent: %s", dit_last_error(ctx));
        CHECK(dit_vae_set_tiling(ctx, v, 33, 0.25f) == DIT_ERR_INVALID_ARG, "odd tile size");
        dit_vae_free(v);
    }
    /* a config that contradicts the weights */
    static const struct {
        const char *config;
        const char *expect;
    } bad_cfg[] = {
        {"{\"_class_name\": \"AutoencoderKL\", \"block_out_channels\": [24, 96], "
         "\"norm_num_groups\": 8}",
         "has shape"},
        {"{\"_class_name\": \"AutoencoderKL\", \"in_channels\": 4, \"norm_num_groups\": 8}",
         "'encoder.conv_in.weight' has shape (24, 3, 3, 3), expected (24, 4, 3, 3)"},
        {"{\"_class_name\": \"AutoencoderKL\", \"layers_per_block\": 2, \"norm_num_groups\": 8}",
         "missing tensor 'encoder.down_blocks.0.resnets.1."},
        {"{\"_class_name\": \"AutoencoderTiny\"}", "the config says AutoencoderTiny"},
        {"{\"_class_name\": \"AutoencoderKL\", \"norm_num_groups\": 5}", "not divisible by 5"},
        {"{\"_class_name\": \"AutoencoderKL\", \"act_fn\": \"gelu\"}", "act_fn 'gelu'"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_cfg); i++) {
        char *folder = g_build_filename(dir, "badcfg", NULL);
        g_mkdir(folder, 0700);
        char *w = fixture_path("vae_kl/diffusion_pytorch_model.safetensors");
        char *text = NULL;
        gsize len = 0;
        char *dst = g_build_filename(folder, "diffusion_pytorch_model.safetensors", NULL);
        if (g_file_get_contents(w, &text, &len, NULL))
            g_file_set_contents(dst, text, (gssize)len, NULL);
        g_free(text);
        char *cfg = g_build_filename(folder, "config.json", NULL);
        g_file_set_contents(cfg, bad_cfg[i].config, -1, NULL);
        v = NULL;
        dit_status st = dit_vae_load(ctx, folder, &v);
        bool ok = st != DIT_OK && !v && strstr(dit_last_error(ctx), bad_cfg[i].expect);
        printf("bad VAE config %zu -> %s: %s  %s\n", i, dit_status_name(st), dit_last_error(ctx),
               ok ? "OK" : "NOT OK");
        CHECK(ok, "bad config %zu", i);
        dit_vae_free(v);
        g_free(cfg);
        g_free(dst);
        g_free(w);
        g_free(folder);
    }
out:
    free(image), free(mean), free(logvar), free(latent), free(dec), free(tdec), free(tmean),
        free(tlogvar);
    st_close(io.f);
    g_free(iop);
}

static void test_tiny(dit_ctx *ctx)
{
    char *iop = fixture_path("vae_tiny.io.safetensors");
    io_file io = {NULL, ctx};
    if (st_open(ctx, iop, &io.f) != DIT_OK) {
        CHECK(false, "%s (regenerate with tests/golden/gen.py)", dit_last_error(ctx));
        g_free(iop);
        return;
    }
    int64_t ishape[8], lshape[8];
    float *image = io_get(&io, "image", ishape), *enc = io_get(&io, "enc_out", NULL);
    float *latent = io_get(&io, "latent", lshape), *dec = io_get(&io, "dec_out", NULL);
    static const char *const models[] = {"vae_tiny", "vae_tiny_taesd.safetensors"};
    for (size_t i = 0; image && enc && latent && dec && i < G_N_ELEMENTS(models); i++) {
        char *path = fixture_path(models[i]);
        dit_vae *v = load_vae(ctx, path);
        if (v) {
            const dit_vae_info *in = dit_vae_config(v);
            CHECK(in->kind == DIT_VAE_TINY && in->downscale == 8 && in->latent_channels == 4,
                  "%s: kind %d f %d L %d", models[i], in->kind, in->downscale, in->latent_channels);
            CHECK(in->naming == (i ? DIT_VAE_NAMING_TAESD : DIT_VAE_NAMING_DIFFUSERS), "%s naming",
                  models[i]);
            char label[96];
            snprintf(label, sizeof label, "tiny encode (%s)", models[i]);
            CHECK(check_encode(ctx, v, image, ishape, enc, NULL, label), "%s", label);
            snprintf(label, sizeof label, "tiny decode (%s)", models[i]);
            CHECK(check_decode(ctx, v, latent, lshape, dec, label), "%s", label);
        }
        dit_vae_free(v);
        g_free(path);
    }
    free(image), free(enc), free(latent), free(dec);
    st_close(io.f);
    g_free(iop);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    const int rc = test_precision_from_env(ctx);
    if (rc) {
        dit_ctx_free(ctx);
        return rc;
    }
    char *dir = tmpdir_new();
    test_kl(ctx, dir);
    test_tiny(ctx);
    tmpdir_remove(dir);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
