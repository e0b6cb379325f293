/* dit encode | decode: images <-> raw VAE latents in a .safetensors. */
#include "cli.h"
#include "png-io.h"

#include <math.h>
#include <stdlib.h>

/* Parses an encode/decode command line: the VAE options both take, the
 * command's own `extra`, one positional argument (`one_arg` says which),
 * --vae and --output required. Frees oc, and o too when it fails. */
static int parse_vae_command(GOptionContext *oc, const GOptionEntry *extra, options *o, int *argc,
                             char ***argv, const char *one_arg)
{
    const GOptionEntry common[] = {
        OPT_VAE(o),
        OPT_OUTPUT(o),
        OPT_THREADS(o),
        OPT_DEVICE(o),
        OPT_PRECISION(o),
        OPT_QUIET(o),
        {"tile", 0, 0, G_OPTION_ARG_INT, &o->tile, "tile size in pixels (default: off)", "PX"},
        OPT_END,
    };
    g_option_context_add_main_entries(oc, common, NULL);
    g_option_context_add_main_entries(oc, extra, NULL);
    int rc = cli_parse(oc, argc, argv);
    if (!rc && *argc != 2)
        rc = cli_usage_error(oc, one_arg);
    if (!rc && (!o->output || !o->vae))
        rc = cli_usage_error(oc, "--vae and --output are required");
    if (!rc && o->bit_depth && o->bit_depth != 8 && o->bit_depth != 16)
        rc = cli_usage_error(oc, "--bit-depth must be 8 or 16");
    g_option_context_free(oc);
    if (rc)
        cli_options_clear(o);
    return rc;
}

int cli_cmd_encode(int argc, char **argv)
{
    options o;
    cli_options_init(&o); /* the defaults, which the help prints */
    GPtrArray *help = g_ptr_array_new_with_free_func(g_free);
    const GOptionEntry entries[] = {
        {"sample", 0, 0, G_OPTION_ARG_NONE, &o.sample,
         "sample the posterior (with --seed) instead of taking its mean", NULL},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &o.seed,
         cli_help(help, "seed for --sample (default: %" G_GINT64_FORMAT ")", o.seed), "N"},
        OPT_END,
    };
    GOptionContext *oc = g_option_context_new("IMAGE.png - encode an image to VAE latents");
    g_option_context_set_description(
        oc, "The latents are written raw (not multiplied by the scaling factor) as tensor\n"
            "'latent' (1, C, H/f, W/f), with the VAE's scaling_factor in the metadata.\n\n"
            "Example:\n  dit encode --vae ./sd-vae photo.png -o photo.safetensors\n");
    int rc = parse_vae_command(oc, entries, &o, &argc, &argv, "encode takes one IMAGE");
    g_ptr_array_free(help, TRUE);
    if (rc)
        return rc;
    loaded l;
    png_data img = {0};
    GError *err = NULL;
    float *mean = NULL, *logvar = NULL;
    if ((rc = cli_load_all(&o, false, true, &l)))
        goto done;
    if (!png_load(argv[1], &img, &err)) {
        fprintf(stderr, "dit: %s\n", err->message);
        g_error_free(err);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    const dit_vae_info *vi = dit_vae_config(l.vae);
    const int f = vi->downscale, h = img.height / f, w = img.width / f, L = vi->latent_channels;
    const size_t n = (size_t)L * h * w;
    mean = g_malloc(n * sizeof *mean);
    logvar = g_malloc(n * sizeof *logvar);
    dit_status st = dit_vae_encode(l.ctx, l.vae, 1, img.height, img.width, img.rgb, mean, logvar);
    if (st) {
        fprintf(stderr, "dit: %s\n", dit_last_error(l.ctx));
        rc = cli_status_exit(st);
        goto done;
    }
    if (o.sample) {
        float *noise = g_malloc(n * sizeof *noise);
        dit_randn((uint64_t)o.seed, 3, 0, n, noise);
        for (size_t i = 0; i < n; i++)
            mean[i] += expf(0.5f * logvar[i]) * noise[i];
        g_free(noise);
    }
    rc = dit_save_tensor(l.ctx, o.output, "latent", mean, 4, (int64_t[]){1, L, h, w},
                         vi->scaling_factor) == DIT_OK
             ? 0
             : EXIT_BAD_INPUT;
    if (rc)
        fprintf(stderr, "dit: %s\n", dit_last_error(l.ctx));
done:
    g_free(mean), g_free(logvar);
    png_data_clear(&img);
    cli_loaded_clear(&l);
    cli_options_clear(&o);
    return rc;
}

int cli_cmd_decode(int argc, char **argv)
{
    options o;
    cli_options_init(&o);
    GPtrArray *help = g_ptr_array_new_with_free_func(g_free);
    const GOptionEntry entries[] = {
        {"bit-depth", 0, 0, G_OPTION_ARG_INT, &o.bit_depth,
         cli_help(help, "8 or 16 (default: %d)", CLI_BIT_DEPTH), "N"},
        OPT_END,
    };
    GOptionContext *oc = g_option_context_new("LATENT.safetensors - decode VAE latents to a PNG");
    g_option_context_set_description(
        oc, "LATENT holds tensor 'latent' (B, C, h, w) as 'dit encode' writes it (raw,\n"
            "not scaled); batches become numbered files.\n\n"
            "Example:\n  dit decode --vae ./sd-vae photo.safetensors -o back.png\n");
    int rc = parse_vae_command(oc, entries, &o, &argc, &argv, "decode takes one LATENT file");
    g_ptr_array_free(help, TRUE);
    if (rc)
        return rc;
    loaded l;
    float *lat = NULL, *img = NULL;
    int64_t shape[4];
    if ((rc = cli_load_all(&o, false, true, &l)))
        goto done;
    if (dit_load_tensor(l.ctx, argv[1], "latent", &lat, shape) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(l.ctx));
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    const dit_vae_info *vi = dit_vae_config(l.vae);
    if (shape[0] <= 0 || shape[2] <= 0 || shape[3] <= 0) {
        fprintf(stderr,
                "dit: %s: tensor 'latent' of shape (%lld, %lld, %lld, %lld) is empty: "
                "there is nothing to decode\n",
                argv[1], (long long)shape[0], (long long)shape[1], (long long)shape[2],
                (long long)shape[3]);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    if (shape[1] != vi->latent_channels) {
        fprintf(stderr, "dit: %s has %lld latent channels but the VAE takes %d\n", argv[1],
                (long long)shape[1], vi->latent_channels);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    const int B = (int)shape[0], h = (int)shape[2], w = (int)shape[3], f = vi->downscale;
    img = g_malloc((size_t)B * 3 * h * f * w * f * sizeof *img);
    dit_status st = dit_vae_decode(l.ctx, l.vae, B, h, w, lat, img);
    if (st) {
        fprintf(stderr, "dit: %s\n", dit_last_error(l.ctx));
        rc = cli_status_exit(st);
        goto done;
    }
    rc =
        cli_write_images(&o, img, NULL, B, h * f, w * f, o.bit_depth ? o.bit_depth : CLI_BIT_DEPTH);
done:
    g_free(lat), g_free(img);
    cli_loaded_clear(&l);
    cli_options_clear(&o);
    return rc;
}
