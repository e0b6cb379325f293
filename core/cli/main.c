/* dit: the command-line face of libdit.
 *
 *   dit generate | img2img | inpaint | outpaint | encode | decode | encode-text | info | labels |
 *       convert | train | validate | calibrate-cache
 *
 * One file per command (cmd-*.c; convert.c is the .pt reader behind convert);
 * cli.h has the exit codes (0 ok, 1 usage, 2 bad input, 3 model error, 4
 * cancelled) and what the commands share. Outputs are written atomically. */
#include "cli.h"

#include <locale.h>
#include <signal.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} subcommand;

static const subcommand subcommands[] = {
    {"generate", "make images of a class", cli_cmd_generate},
    {"img2img", "re-imagine an image (strength 0..1)", cli_cmd_img2img},
    {"inpaint", "fill the masked region of an image", cli_cmd_inpaint},
    {"outpaint", "grow an image's canvas (or fill its transparent pixels)", cli_cmd_outpaint},
    {"encode", "image -> VAE latents (.safetensors)", cli_cmd_encode},
    {"decode", "VAE latents -> image", cli_cmd_decode},
    {"encode-text", "a prompt through the T5 encoder -> .safetensors", cli_cmd_encode_text},
    {"info", "describe a model: family, naming, config, parameters", cli_cmd_info},
    {"labels", "list a model's classes", cli_cmd_labels},
    {"models", "the model library: list, show NAME", cli_cmd_models},
    {"convert", "PyTorch .pt checkpoint -> safetensors + config.json", dit_cmd_convert},
    {"train", "train a class-conditional DiT (Fashion-MNIST or an image folder)", dit_cmd_train},
    {"validate", "sample grid, class agreement, held-out losses, loss curve", dit_cmd_validate},
    {"calibrate-cache", "measure a model's block outputs for --cache", cli_cmd_calibrate_cache},
};

static void print_usage(FILE *out)
{
    fprintf(out, "Usage: dit COMMAND [OPTIONS...]\n\nCommands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(subcommands); i++)
        fprintf(out, "  %-15s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out, "\n'dit COMMAND --help' describes one command.\n"
                 "  --version  print the version\n\n"
                 "Exit codes: 0 ok, 1 usage, 2 bad input, 3 model error, 4 cancelled.\n");
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    /* a full disk or a file-size limit must be an error message, not a signal */
    signal(SIGXFSZ, SIG_IGN);
    cli_signals_init();
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
