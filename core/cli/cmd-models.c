/* dit models list | show NAME | add PATH | remove NAME: the model library
 * (dit_model_library_dirs), the user's folder first. A name found in two
 * folders is the first one's; the other is listed as hidden by it. `add`
 * builds a pipeline folder (transformer/, vae/, scheduler/, labels.txt,
 * manifest.json) beside the library under a temporary name, checks that it
 * loads and samples one step, then renames it into place: a refused add
 * leaves the library as it was. The user's files are hard-linked or copied,
 * never moved. */
#include "cli.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

guint64 cli_disk_size(const char *path)
{
    GStatBuf sb;
    if (g_stat(path, &sb) != 0)
        return 0;
    if (!S_ISDIR(sb.st_mode))
        return (guint64)sb.st_size;
    guint64 total = 0;
    GDir *d = g_dir_open(path, 0, NULL);
    for (const char *e; d && (e = g_dir_read_name(d));) {
        char *p = g_build_filename(path, e, NULL);
        total += cli_disk_size(p);
        g_free(p);
    }
    if (d)
        g_dir_close(d);
    return total;
}

static bool has_vae_folder(const char *folder)
{
    char *vae = g_build_filename(folder, "vae", NULL);
    const bool yes = g_file_test(vae, G_FILE_TEST_IS_DIR);
    g_free(vae);
    return yes;
}

/* g_ptr_array_sort hands the comparator pointers to the elements */
static gint compare_names(gconstpointer a, gconstpointer b)
{
    return g_strcmp0(*(const char *const *)a, *(const char *const *)b);
}

typedef struct {
    char *name, *path;
    gboolean hidden; /* the same name earlier in the search order */
} entry;

static GPtrArray *library_entries(void)
{
    GPtrArray *list = g_ptr_array_new();
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
    char **dirs = dit_model_library_dirs();
    for (size_t i = 0; dirs[i]; i++) {
        GDir *d = g_dir_open(dirs[i], 0, NULL);
        GPtrArray *names = g_ptr_array_new();
        for (const char *e; d && (e = g_dir_read_name(d));)
            g_ptr_array_add(names, (char *)e);
        g_ptr_array_sort(names, compare_names);
        for (guint k = 0; k < names->len; k++) {
            const char *n = names->pdata[k];
            char *p = g_build_filename(dirs[i], n, NULL);
            /* dot-folders are an add in progress */
            if (n[0] == '.' || !g_file_test(p, G_FILE_TEST_IS_DIR)) {
                g_free(p);
                continue;
            }
            entry *en = g_new0(entry, 1);
            en->name = g_strdup(n), en->path = p;
            en->hidden = g_hash_table_contains(seen, en->name);
            g_hash_table_add(seen, en->name);
            g_ptr_array_add(list, en);
        }
        g_ptr_array_free(names, TRUE);
        if (d)
            g_dir_close(d);
    }
    g_strfreev(dirs);
    g_hash_table_destroy(seen);
    return list;
}

static void entries_free(GPtrArray *list)
{
    for (guint i = 0; i < list->len; i++) {
        entry *en = list->pdata[i];
        g_free(en->name), g_free(en->path), g_free(en);
    }
    g_ptr_array_free(list, TRUE);
}

static int models_list(void)
{
    dit_ctx *ctx = dit_ctx_new();
    GPtrArray *list = library_entries();
    printf("%-20s %-24s %-9s %-8s %-4s %10s  %s\n", "NAME", "KIND", "PIXELS", "CLASSES", "VAE",
           "ON DISK", "WHERE");
    for (guint i = 0; i < list->len; i++) {
        const entry *en = list->pdata[i];
        dit_config c;
        char kind[64], pixels[24], classes[16];
        const bool vae = has_vae_folder(en->path);
        int side = 0;
        dit_pixart_config pc;
        if (dit_is_pixart(en->path) && dit_pixart_peek(ctx, en->path, &pc, &side) == DIT_OK) {
            snprintf(kind, sizeof kind, "PixArt text, patch %d", pc.patch_size);
            snprintf(pixels, sizeof pixels, "%dx%d", side, side);
            snprintf(classes, sizeof classes, "prompt");
        } else if (dit_model_peek(ctx, en->path, &c, &side) == DIT_OK) {
            snprintf(kind, sizeof kind, "DiT %s, patch %d", dit_conditioning_name(c.conditioning),
                     c.patch_size);
            snprintf(pixels, sizeof pixels, "%dx%d", side, side);
            snprintf(classes, sizeof classes, "%d", c.num_classes);
        } else {
            snprintf(kind, sizeof kind, "(does not load)");
            snprintf(pixels, sizeof pixels, "-");
            snprintf(classes, sizeof classes, "-");
        }
        printf("%-20s %-24s %-9s %-8s %-4s %9.1fM  %s%s\n", en->name, kind, pixels, classes,
               vae ? "yes" : "no", (double)cli_disk_size(en->path) / (1 << 20), en->path,
               en->hidden ? "  (hidden by the one above)" : "");
    }
    if (list->len == 0)
        printf("(no models: the library folders are empty)\n");
    entries_free(list);
    dit_ctx_free(ctx);
    return 0;
}

static int models_show(const char *name)
{
    char *path = dit_model_resolve(name);
    if (!path) {
        fprintf(stderr, "dit: no model '%s' in the library (dit models list)\n", name);
        return EXIT_BAD_INPUT;
    }
    dit_ctx *ctx = dit_ctx_new();
    dit_config c;
    int rc = 0;
    int side = 0;
    dit_pixart_config pc;
    if (dit_is_pixart(path) && dit_pixart_peek(ctx, path, &pc, &side) == DIT_OK) {
        printf("name:        %s\npath:        %s\n", name, path);
        printf("model:       PixArt (text), patch %d, width %d, depth %d, captions of %d\n",
               pc.patch_size, pc.hidden_size, pc.depth, pc.caption_channels);
        printf("makes:       %dx%d pixels%s\n", side, side,
               has_vae_folder(path) ? " (through its VAE)" : "");
        printf("prompt:      up to %d tokens\n", dit_text_default_len(path));
        printf("on disk:     %.1f MiB\n", (double)cli_disk_size(path) / (1 << 20));
    } else if (dit_model_peek(ctx, path, &c, &side) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
        rc = EXIT_MODEL;
    } else {
        const bool vae = has_vae_folder(path);
        printf("name:        %s\npath:        %s\n", name, path);
        printf("model:       DiT, %s, patch %d, width %d, depth %d\n",
               dit_conditioning_name(c.conditioning), c.patch_size, c.hidden_size, c.depth);
        printf("makes:       %dx%d pixels, %d channels%s\n", side, side, vae ? 3 : c.in_channels,
               vae ? " (through its VAE)" : "");
        printf("classes:     %d\n", c.num_classes);
        printf("on disk:     %.1f MiB\n", (double)cli_disk_size(path) / (1 << 20));
        char *card = g_build_filename(path, "README.md", NULL), *text = NULL;
        if (g_file_get_contents(card, &text, NULL, NULL))
            printf("\n%s", text);
        g_free(text);
        g_free(card);
    }
    dit_ctx_free(ctx);
    g_free(path);
    return rc;
}

int cli_cmd_models(int argc, char **argv)
{
    char *name = NULL, *vae = NULL;
    int heads = 0;
    GOptionContext *oc =
        g_option_context_new("list | show NAME | add PATH | remove NAME - the model library");
    g_option_context_set_description(
        oc, "Models live in named folders: the user's $XDG_DATA_HOME/gimp-dit/models first,\n"
            "then the installed share/gimp-dit/models. A name works wherever a model is\n"
            "taken (--model NAME, the plug-ins' Model field).\n\n"
            "add takes an official DiT .pt (converted without running it), a .safetensors,\n"
            "a diffusers model folder or a pipeline folder (transformer/, vae/,\n"
            "scheduler/); --vae adds a VAE folder or file. Files are hard-linked or\n"
            "copied, never moved; 1000-class models get ImageNet's labels. The model must\n"
            "load and sample one step before it is added. remove deletes a model of your\n"
            "library (not the files it was added from).\n\n"
            "Examples:\n  dit models list\n  dit models show default\n"
            "  dit models add DiT-XL-2-256x256.pt --vae sd-vae-ft-ema --name dit-xl-256\n"
            "  dit models remove dit-xl-256\n");
    GOptionEntry entries[] = {
        {"name", 0, 0, G_OPTION_ARG_STRING, &name,
         "add: the name in the library (default: the file or folder name)", "NAME"},
        {"vae", 0, 0, G_OPTION_ARG_FILENAME, &vae,
         "add: the VAE the DiT's latents need (folder or .safetensors)", "PATH"},
        {"heads", 0, 0, G_OPTION_ARG_INT, &heads,
         "add: a .pt's attention heads, where its width does not tell (as dit convert)", "N"},
        OPT_END,
    };
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = cli_parse(oc, &argc, &argv);
    const char *verb = argc >= 2 ? argv[1] : "";
    const int want = strcmp(verb, "list") == 0 ? 2 : 3;
    const bool known = strcmp(verb, "list") == 0 || strcmp(verb, "show") == 0 ||
                       strcmp(verb, "add") == 0 || strcmp(verb, "remove") == 0;
    if (!rc && (!known || argc != want))
        rc = cli_usage_error(oc, "models takes 'list', 'show NAME', 'add PATH' or 'remove NAME'");
    g_option_context_free(oc);
    if (!rc) {
        if (strcmp(verb, "list") == 0)
            rc = models_list();
        else if (strcmp(verb, "show") == 0)
            rc = models_show(argv[2]);
        else if (strcmp(verb, "add") == 0)
            rc = cli_models_add(argv[2], name, vae, heads);
        else
            rc = cli_models_remove(argv[2]);
    }
    g_free(name), g_free(vae);
    return rc;
}
