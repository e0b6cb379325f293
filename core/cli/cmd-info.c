/* dit info | labels: describe a model, list its classes. */
#include "cli.h"

#include <stdlib.h>

static void print_config_text(const char *path, const dit_model *m)
{
    const dit_config *c = dit_model_config(m);
    size_t n = dit_model_param_count(m);
    printf("model:            %s\n", path);
    printf("family:           DiT (%s, %s)\n", dit_conditioning_name(c->conditioning),
           c->num_classes ? "class-conditional" : "unconditional");
    printf("naming:           %s\n", dit_naming_name(c->naming));
    printf("weights dtype:    %s (computed in f32)\n", dit_model_source_dtype(m));
    printf("parameters:       %zu (%.1f MiB as f32)\n", n, (double)n * 4 / (1 << 20));
    printf("in_channels:      %d\n", c->in_channels);
    printf("out_channels:     %d%s\n", c->out_channels, c->learn_sigma ? " (learned sigma)" : "");
    printf("sample_size:      %d (latent side; %d px with an 8x VAE)\n", c->sample_size,
           c->sample_size * 8);
    printf("patch_size:       %d\n", c->patch_size);
    printf("hidden_size:      %d\n", c->hidden_size);
    printf("depth:            %d\n", c->depth);
    printf("num_heads:        %d (head dim %d)\n", c->num_heads, c->hidden_size / c->num_heads);
    printf("mlp_hidden:       %d\n", c->mlp_hidden);
    if (c->num_classes)
        printf("num_classes:      %d (+1 null class for guidance)\n", c->num_classes);
    else
        printf("num_classes:      0 (unconditional: label 0 only, no guidance)\n");
    printf("timestep embed:   %d, divisor half-%d\n", c->freq_dim, c->freq_shift);
    printf("norm eps:         %g / %g / %g (attn / mlp / final)\n", (double)c->norm1_eps,
           (double)c->norm2_eps, (double)c->norm_final_eps);
    if (dit_model_scheduler_json(m))
        printf("scheduler:        %s\n", dit_model_scheduler_json(m));
}

static void print_config_json(const char *path, const dit_model *m)
{
    const dit_config *c = dit_model_config(m);
    char *quoted = g_strescape(path, NULL);
    printf("{\"model\": \"%s\", \"family\": \"dit\", \"naming\": \"%s\", \"dtype\": \"%s\", "
           "\"parameters\": %zu, \"in_channels\": %d, \"out_channels\": %d, "
           "\"learn_sigma\": %s, \"sample_size\": %d, \"patch_size\": %d, "
           "\"hidden_size\": %d, \"depth\": %d, \"num_heads\": %d, \"mlp_hidden\": %d, "
           "\"num_classes\": %d, \"freq_dim\": %d, \"freq_shift\": %d, "
           "\"conditioning\": \"%s\"}\n",
           quoted, dit_naming_name(c->naming), dit_model_source_dtype(m), dit_model_param_count(m),
           c->in_channels, c->out_channels, c->learn_sigma ? "true" : "false", c->sample_size,
           c->patch_size, c->hidden_size, c->depth, c->num_heads, c->mlp_hidden, c->num_classes,
           c->freq_dim, c->freq_shift, dit_conditioning_name(c->conditioning));
    g_free(quoted);
}

/* --device: what the CPU's products run on and whether CUDA is usable */
static int print_devices(gboolean json)
{
    dit_ctx *ctx = dit_ctx_new();
    if (!ctx)
        return EXIT_MODEL;
    dit_cpu_caps c;
    dit_cpu_get_caps(&c);
    const bool cuda = dit_ctx_set_device(ctx, "cuda") == DIT_OK;
    char *cuda_why = g_strescape(cuda ? "" : dit_last_error(ctx), NULL);
    dit_ctx_set_device(ctx, "cpu");
    dit_ctx_set_precision(ctx, "auto");
    const char *auto_precision = dit_ctx_precision(ctx);
    if (json) {
        char *why = g_strescape(c.bf16_why, NULL);
        printf("{\"cpu_isa\": \"%s\", \"threads\": %d, \"onednn\": %s, \"fp32_library\": \"%s\", "
               "\"gflops_openblas\": %.1f, \"gflops_onednn_fp32\": %.1f, "
               "\"gflops_onednn_bf16\": %.1f, \"bf16\": %s, \"bf16_why\": \"%s\", "
               "\"auto_precision_cpu\": \"%s\", \"cuda_backend\": %s, \"cuda_device\": %s, "
               "\"cuda_why\": \"%s\"}\n",
               c.isa, dit_ctx_threads(ctx), dit_build_has_onednn() ? "true" : "false",
               c.fp32_library, c.gflops_openblas, c.gflops_onednn_fp32, c.gflops_onednn_bf16,
               c.bf16 ? "true" : "false", why, auto_precision,
               dit_build_has_cuda() ? "true" : "false", cuda ? "true" : "false", cuda_why);
        g_free(why);
    } else {
        printf("cpu:              %s (as oneDNN sees it), %d threads\n", c.isa,
               dit_ctx_threads(ctx));
        printf("fp32 products:    %s, %.0f GFLOP/s measured (OpenBLAS %.0f", c.fp32_library,
               c.fp32_library[0] == 'o' ? c.gflops_onednn_fp32 : c.gflops_openblas,
               c.gflops_openblas);
        if (dit_build_has_onednn())
            printf(", oneDNN %.0f", c.gflops_onednn_fp32);
        printf(")\n");
        if (c.bf16)
            printf("bf16 products:    yes, %.0f GFLOP/s measured: %s\n", c.gflops_onednn_bf16,
                   c.bf16_faster ? "faster than fp32" : "not faster than fp32 here");
        else
            printf("bf16 products:    no: %s\n", c.bf16_why);
        printf("--precision auto: %s on the CPU\n", auto_precision);
        printf("cuda:             %s\n", cuda                   ? "a usable device"
                                         : dit_build_has_cuda() ? dit_last_error(ctx)
                                                                : "not in this build");
    }
    g_free(cuda_why);
    dit_ctx_free(ctx);
    return 0;
}

int cli_cmd_info(int argc, char **argv)
{
    gboolean json = FALSE, devices = FALSE;
    char *model_opt = NULL;
    GOptionEntry entries[] = {
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL},
        {"device", 0, 0, G_OPTION_ARG_NONE, &devices,
         "describe this machine instead: the CPU's instruction set, which library runs the "
         "products and how fast (measured), whether bf16 can run, what --precision auto picks, "
         "and whether a CUDA device is usable",
         NULL},
        {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model_opt,
         "the MODEL, as every other command takes it", "PATH"},
        OPT_END,
    };
    GOptionContext *oc =
        g_option_context_new("MODEL - describe a DiT model (or --device: this machine)");
    g_option_context_set_description(
        oc, "MODEL is a .safetensors file (official DiT or diffusers naming) or a diffusers\n"
            "folder (config.json + diffusion_pytorch_model.safetensors, or a pipeline\n"
            "folder with transformer/).\n\n"
            "Examples:\n"
            "  dit info DiT-XL-2-256.safetensors\n"
            "  dit info --json ./dit-pipeline/\n"
            "  dit info --device\n");
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = cli_parse(oc, &argc, &argv);
    const int given = (argc - 1) + (model_opt != NULL);
    if (!rc && devices && given == 0) {
        g_option_context_free(oc);
        return print_devices(json);
    }
    if (!rc && given != 1)
        rc = cli_usage_error(oc, given < 1 ? "info needs a MODEL" : "info takes one MODEL");
    g_option_context_free(oc);
    if (rc) {
        g_free(model_opt);
        return rc;
    }
    const char *path = model_opt ? model_opt : argv[1];
    dit_ctx *ctx = dit_ctx_new();
    dit_model *m = NULL;
    dit_status st = dit_model_load(ctx, path, &m);
    if (st != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
        rc = st == DIT_ERR_IO ? EXIT_BAD_INPUT : EXIT_MODEL;
    } else if (json) {
        print_config_json(path, m);
    } else {
        print_config_text(path, m);
    }
    dit_model_free(m);
    dit_ctx_free(ctx);
    g_free(model_opt);
    return rc;
}

int cli_cmd_labels(int argc, char **argv)
{
    options o;
    cli_options_init(&o);
    GOptionEntry entries[] = {
        OPT_MODEL(&o),
        {"labels", 0, 0, G_OPTION_ARG_FILENAME, &o.labels, "label list, one name per line", "FILE"},
        OPT_END,
    };
    GOptionContext *oc = g_option_context_new("- list a model's classes (id and name)");
    g_option_context_set_description(
        oc, "Example:\n  dit labels -m ./DiT-XL-2-256 | grep -i retriever\n");
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = cli_parse(oc, &argc, &argv);
    g_option_context_free(oc);
    if (rc) {
        cli_options_clear(&o);
        return rc;
    }
    loaded l;
    if (!(rc = cli_load_all(&o, true, false, &l))) {
        const int nc = dit_model_config(l.model)->num_classes;
        for (int i = 0; i < nc; i++)
            printf("%d\t%s\n", i, l.labels && l.labels[i] ? l.labels[i] : "");
        printf("%d\t(unconditional)\n", nc);
    }
    cli_loaded_clear(&l);
    cli_options_clear(&o);
    return rc;
}
