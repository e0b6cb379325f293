/* dit: the command-line face of libdit.
 * Exit codes: 0 ok, 1 usage, 2 bad input, 3 model error. */
#include "dit.h"

#include <glib.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_USAGE = 1, EXIT_BAD_INPUT = 2, EXIT_MODEL = 3 };

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} subcommand;

static int usage_error(GOptionContext *oc, const char *msg)
{
    fprintf(stderr, "dit: %s\n\n", msg);
    char *help = g_option_context_get_help(oc, TRUE, NULL);
    fputs(help, stderr);
    g_free(help);
    return EXIT_USAGE;
}

static void print_config_text(const char *path, const dit_model *m)
{
    const dit_config *c = dit_model_config(m);
    size_t n = dit_model_param_count(m);
    printf("model:            %s\n", path);
    printf("family:           DiT (adaLN-Zero, class-conditional)\n");
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
    printf("num_classes:      %d (+1 null class for guidance)\n", c->num_classes);
    printf("timestep embed:   %d, divisor half-%d\n", c->freq_dim, c->freq_shift);
    printf("norm eps:         %g / %g / %g (attn / mlp / final)\n", (double)c->norm1_eps,
           (double)c->norm2_eps, (double)c->norm_final_eps);
}

static void print_config_json(const char *path, const dit_model *m)
{
    const dit_config *c = dit_model_config(m);
    char *quoted = g_strescape(path, NULL);
    printf("{\"model\": \"%s\", \"family\": \"dit\", \"naming\": \"%s\", \"dtype\": \"%s\", "
           "\"parameters\": %zu, \"in_channels\": %d, \"out_channels\": %d, "
           "\"learn_sigma\": %s, \"sample_size\": %d, \"patch_size\": %d, "
           "\"hidden_size\": %d, \"depth\": %d, \"num_heads\": %d, \"mlp_hidden\": %d, "
           "\"num_classes\": %d, \"freq_dim\": %d, \"freq_shift\": %d}\n",
           quoted, dit_naming_name(c->naming), dit_model_source_dtype(m),
           dit_model_param_count(m), c->in_channels, c->out_channels,
           c->learn_sigma ? "true" : "false", c->sample_size, c->patch_size, c->hidden_size,
           c->depth, c->num_heads, c->mlp_hidden, c->num_classes, c->freq_dim, c->freq_shift);
    g_free(quoted);
}

static int cmd_info(int argc, char **argv)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *oc = g_option_context_new("MODEL - describe a DiT model");
    g_option_context_set_description(
        oc, "MODEL is a .safetensors file (official DiT or diffusers naming) or a diffusers\n"
            "folder (config.json + diffusion_pytorch_model.safetensors, or a pipeline\n"
            "folder with transformer/).\n\n"
            "Examples:\n"
            "  dit info DiT-XL-2-256.safetensors\n"
            "  dit info --json ./dit-pipeline/\n");
    g_option_context_add_main_entries(oc, entries, NULL);
    GError *err = NULL;
    if (!g_option_context_parse(oc, &argc, &argv, &err)) {
        int rc = usage_error(oc, err->message);
        g_error_free(err);
        g_option_context_free(oc);
        return rc;
    }
    if (argc != 2) {
        int rc = usage_error(oc, argc < 2 ? "info needs a MODEL" : "info takes one MODEL");
        g_option_context_free(oc);
        return rc;
    }
    g_option_context_free(oc);

    dit_ctx *ctx = dit_ctx_new();
    if (!ctx) {
        fprintf(stderr, "dit: out of memory\n");
        return EXIT_MODEL;
    }
    dit_model *m = NULL;
    dit_status st = dit_model_load(ctx, argv[1], &m);
    int rc = 0;
    if (st != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
        rc = st == DIT_ERR_IO ? EXIT_BAD_INPUT : EXIT_MODEL;
    } else if (json) {
        print_config_json(argv[1], m);
    } else {
        print_config_text(argv[1], m);
    }
    dit_model_free(m);
    dit_ctx_free(ctx);
    return rc;
}

static const subcommand subcommands[] = {
    {"info", "describe a model: family, naming, config, parameters", cmd_info},
};

static void print_usage(FILE *out)
{
    fprintf(out, "Usage: dit COMMAND [OPTIONS...]\n\nCommands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(subcommands); i++)
        fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out, "\n'dit COMMAND --help' describes one command.\n"
                 "  --version  print the version\n");
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("dit %s\n", DIT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(subcommands); i++)
        if (strcmp(argv[1], subcommands[i].name) == 0) {
            char *name = g_strdup_printf("dit %s", argv[1]);
            argv[1] = name; /* GOption shows argv[0] in its help */
            int rc = subcommands[i].run(argc - 1, argv + 1);
            g_free(name);
            return rc;
        }
    fprintf(stderr, "dit: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return EXIT_USAGE;
}
