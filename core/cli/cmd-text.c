/* dit encode-text: a prompt through the T5 tokenizer and encoder into a
 * .safetensors (prompt_embeds, prompt_attention_mask), for scripts and for
 * checking an encoder against another implementation. */
#include "cli.h"

#include <stdlib.h>

enum { DEFAULT_MAX_LENGTH = 120 }; /* PixArt-alpha's; PixArt-Sigma uses 300 */

/* the tokenizer of a model folder: --tokenizer, else the folder's own
 * (spiece.model beside config.json, or a pipeline's tokenizer/) */
static int load_text_model(const options *o, const char *tokenizer, dit_ctx *ctx,
                           dit_tokenizer **tok, dit_text_encoder **enc)
{
    if (!o->model) {
        fprintf(stderr, "dit: encode-text needs -m, a T5 encoder folder or a pipeline folder "
                        "with text_encoder/ and tokenizer/\n");
        return EXIT_USAGE;
    }
    if (dit_tokenizer_load(ctx, tokenizer ? tokenizer : o->model, tok) != DIT_OK ||
        dit_text_encoder_load(ctx, o->model, enc) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
        return strstr(dit_last_error(ctx), "no such file") ? EXIT_BAD_INPUT : EXIT_MODEL;
    }
    return 0;
}

int cli_cmd_encode_text(int argc, char **argv)
{
    options o;
    cli_options_init(&o);
    char *prompt = NULL, *tokenizer = NULL;
    int max_length = DEFAULT_MAX_LENGTH;
    gboolean no_cache = FALSE;
    GPtrArray *keep = g_ptr_array_new_with_free_func(g_free);
    GOptionEntry entries[] = {
        {"model", 'm', 0, G_OPTION_ARG_FILENAME, &o.model,
         "a T5 encoder folder (config.json, model.safetensors or shards with their index) or a "
         "pipeline folder with text_encoder/ and tokenizer/",
         "PATH"},
        {"tokenizer", 0, 0, G_OPTION_ARG_FILENAME, &tokenizer,
         "spiece.model, or a folder holding it (default: the model folder's)", "PATH"},
        {"prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt, "the text to encode", "TEXT"},
        {"max-length", 0, 0, G_OPTION_ARG_INT, &max_length,
         cli_help(keep, "tokens, padded or cut, EOS included (default: %d)", DEFAULT_MAX_LENGTH),
         "N"},
        {"no-cache", 0, 0, G_OPTION_ARG_NONE, &no_cache,
         "encode even when the prompt cache holds the result, and store nothing", NULL},
        OPT_THREADS(&o),
        OPT_DEVICE(&o),
        OPT_PRECISION(&o),
        OPT_OUTPUT(&o),
        OPT_QUIET(&o),
        OPT_END,
    };
    GOptionContext *oc = g_option_context_new("- a prompt through the T5 encoder");
    g_option_context_add_main_entries(oc, entries, NULL);
    char *cache = dit_text_cache_dir();
    char *desc = g_strdup_printf(
        "Writes prompt_embeds (1, N, d_model) and prompt_attention_mask (1, N) as F32.\n"
        "Embeddings are kept in %s, keyed by the encoder's\nconfig and weights, the prompt and "
        "N.\n\nExample:\n  dit encode-text -m ./t5-v1_1-xxl -p \"a red fox in the snow\" -o "
        "fox.safetensors\n",
        cache);
    g_option_context_set_description(oc, desc);
    int rc = cli_parse(oc, &argc, &argv);
    if (!rc && !prompt)
        rc = cli_usage_error(oc, "--prompt is required");
    if (!rc && !o.output)
        rc = cli_usage_error(oc, "-o is required");
    if (!rc && (max_length < 1 || max_length > 4096))
        rc = cli_usage_error(oc, "--max-length must be 1..4096");
    g_option_context_free(oc);
    g_ptr_array_free(keep, TRUE);
    g_free(desc);
    loaded l = {0};
    dit_tokenizer *tok = NULL;
    dit_text_encoder *enc = NULL;
    float *emb = NULL;
    int32_t *mask = NULL;
    if (rc || (rc = cli_load_all(&o, false, false, &l)) ||
        (rc = load_text_model(&o, tokenizer, l.ctx, &tok, &enc)))
        goto done;
    const int d = dit_text_encoder_config(enc)->d_model;
    emb = g_malloc((size_t)max_length * d * sizeof *emb);
    mask = g_malloc((size_t)max_length * sizeof *mask);
    bool hit = false;
    const double t0 = cli_now();
    dit_status st =
        dit_text_embed(l.ctx, tok, enc, prompt, max_length, no_cache ? "" : cache, emb, mask, &hit);
    if (!st)
        st = dit_save_text_embedding(l.ctx, o.output, emb, mask, max_length, d, prompt);
    if (st) {
        fprintf(stderr, "dit: %s\n", dit_last_error(l.ctx));
        rc = cli_status_exit(st);
        goto done;
    }
    int n = 0;
    for (int i = 0; i < max_length; i++)
        n += mask[i] != 0;
    if (!o.quiet)
        fprintf(stderr, "%d of %d tokens, %s in %.2f s -> %s\n", n, max_length,
                hit ? "from the prompt cache" : "encoded", cli_now() - t0, o.output);
done:
    g_free(emb), g_free(mask), g_free(prompt), g_free(tokenizer), g_free(cache);
    dit_tokenizer_free(tok);
    dit_text_encoder_free(enc);
    cli_loaded_clear(&l);
    cli_options_clear(&o);
    return rc;
}
