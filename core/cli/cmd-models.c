/* dit models list | show NAME: the model library (dit_model_library_dirs),
 * the user's folder first. A name found in two folders is the first one's;
 * the other is listed as hidden by it. */
#include "cli.h"

#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>

/* bytes of the regular files under path (a file: its size) */
static guint64 disk_size(const char *path)
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
        total += disk_size(p);
        g_free(p);
    }
    if (d)
        g_dir_close(d);
    return total;
}

/* the pixel side the model makes: its sample size times the VAE's factor
 * (2 per level of vae/config.json's block_out_channels), 1 without a VAE */
static int pixel_side(const char *folder, const dit_config *c, bool *has_vae)
{
    char *vae = g_build_filename(folder, "vae", "config.json", NULL);
    char *text = NULL;
    *has_vae = g_file_get_contents(vae, &text, NULL, NULL);
    int factor = 1;
    if (*has_vae) {
        const char *b = strstr(text, "\"block_out_channels\"");
        const char *open = b ? strchr(b, '[') : NULL, *close = open ? strchr(open, ']') : NULL;
        int levels = 1;
        for (const char *q = open; q && q < close; q++)
            levels += *q == ',';
        factor = 1 << (levels - 1);
    }
    g_free(text);
    g_free(vae);
    return c->sample_size * factor;
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
        g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
        for (guint k = 0; k < names->len; k++) {
            /* sorted pointers to the names: compare what they point to */
            const char *n = names->pdata[k];
            char *p = g_build_filename(dirs[i], n, NULL);
            if (!g_file_test(p, G_FILE_TEST_IS_DIR)) {
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
        bool vae = false;
        if (dit_model_peek(ctx, en->path, &c) == DIT_OK) {
            snprintf(kind, sizeof kind, "DiT %s, patch %d", dit_conditioning_name(c.conditioning),
                     c.patch_size);
            const int side = pixel_side(en->path, &c, &vae);
            snprintf(pixels, sizeof pixels, "%dx%d", side, side);
            snprintf(classes, sizeof classes, "%d", c.num_classes);
        } else {
            snprintf(kind, sizeof kind, "(does not load)");
            snprintf(pixels, sizeof pixels, "-");
            snprintf(classes, sizeof classes, "-");
        }
        printf("%-20s %-24s %-9s %-8s %-4s %9.1fM  %s%s\n", en->name, kind, pixels, classes,
               vae ? "yes" : "no", (double)disk_size(en->path) / (1 << 20), en->path,
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
    if (dit_model_peek(ctx, path, &c) != DIT_OK) {
        fprintf(stderr, "dit: %s\n", dit_last_error(ctx));
        rc = EXIT_MODEL;
    } else {
        bool vae = false;
        const int side = pixel_side(path, &c, &vae);
        printf("name:        %s\npath:        %s\n", name, path);
        printf("model:       DiT, %s, patch %d, width %d, depth %d\n",
               dit_conditioning_name(c.conditioning), c.patch_size, c.hidden_size, c.depth);
        printf("makes:       %dx%d pixels, %d channels%s\n", side, side, vae ? 3 : c.in_channels,
               vae ? " (through its VAE)" : "");
        printf("classes:     %d\n", c.num_classes);
        printf("on disk:     %.1f MiB\n", (double)disk_size(path) / (1 << 20));
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
    GOptionContext *oc = g_option_context_new("list | show NAME - the model library");
    g_option_context_set_description(
        oc, "Models live in named folders: the user's $XDG_DATA_HOME/gimp-dit/models first,\n"
            "then the installed share/gimp-dit/models. A name works wherever a model is\n"
            "taken (--model NAME, the plug-ins' Model field).\n\n"
            "Examples:\n  dit models list\n  dit models show default\n");
    GOptionEntry entries[] = {OPT_END};
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = cli_parse(oc, &argc, &argv);
    if (!rc && (argc < 2 || (strcmp(argv[1], "list") == 0 && argc != 2) ||
                (strcmp(argv[1], "show") == 0 && argc != 3) ||
                (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "show") != 0)))
        rc = cli_usage_error(oc, "models takes 'list' or 'show NAME'");
    g_option_context_free(oc);
    if (rc)
        return rc;
    return strcmp(argv[1], "list") == 0 ? models_list() : models_show(argv[2]);
}
