/* dit convert: a PyTorch .pt checkpoint -> .safetensors + config.json,
 * through convert.c's reader, which runs none of the file's code. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int dit_cmd_convert(int argc, char **argv)
{
    char *output = NULL, *key = NULL;
    int heads = 0;
    GOptionEntry entries[] = {
        {"output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "output .safetensors", "FILE"},
        {"key", 0, 0, G_OPTION_ARG_STRING, &key,
         "take the state dict under this key of the checkpoint (default: the top level, else ema, "
         "model, state_dict)",
         "KEY"},
        {"heads", 0, 0, G_OPTION_ARG_INT, &heads,
         "record num_attention_heads in the metadata (needed when the width does not tell)", "N"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *oc = g_option_context_new("CHECKPOINT.pt - convert a PyTorch checkpoint");
    g_option_context_set_description(
        oc, "Reads a torch.save() zip without running it: only the pickle opcodes and\n"
            "globals a state dict of tensors needs are accepted; anything else is refused.\n"
            "Tensors keep their names and dtypes; run 'dit info' on the result. 'dit\n"
            "generate -m X.pt' converts on the fly.\n\n"
            "Example:\n  dit convert DiT-XL-2-256x256.pt -o DiT-XL-2-256.safetensors\n");
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = cli_parse(oc, &argc, &argv);
    if (rc) {
        /* the message is out */
    } else if (argc != 2 || !output) {
        fprintf(stderr, "dit: convert needs one CHECKPOINT and --output\n");
        rc = EXIT_USAGE;
    }
    g_option_context_free(oc);
    if (!rc)
        rc = dit_convert_pt(argv[1], output, key, heads, false);
    g_free(output), g_free(key);
    return rc;
}
