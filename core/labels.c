/* Data files the CLI and the plug-ins both need: where the embedded default
 * model lives and a model's class labels (one per line, synonyms separated
 * by commas as in ImageNet's list). */
#include "internal/impl.h"

#include <glib.h>
#include <json-glib/json-glib.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef DIT_DATADIR
#define DIT_DATADIR "/usr/local/share/gimp-dit"
#endif

/* installed first, then the source tree's data/ for uninstalled builds */
static const char *const data_dirs[] = {DIT_DATADIR,
#ifdef DIT_SOURCE_DATADIR
                                        DIT_SOURCE_DATADIR
#endif
};

char **dit_model_library_dirs(void)
{
    GPtrArray *dirs = g_ptr_array_new();
    g_ptr_array_add(dirs, g_build_filename(g_get_user_data_dir(), "gimp-dit", "models", NULL));
    for (size_t i = 0; i < G_N_ELEMENTS(data_dirs); i++)
        g_ptr_array_add(dirs, g_build_filename(data_dirs[i], "models", NULL));
    g_ptr_array_add(dirs, NULL);
    return (char **)g_ptr_array_free(dirs, FALSE);
}

/* a library name: one path component, not "." or ".." */
static bool is_model_name(const char *s)
{
    return s && *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

char *dit_model_resolve(const char *name_or_path)
{
    if (!name_or_path || !*name_or_path)
        return NULL;
    if (g_file_test(name_or_path, G_FILE_TEST_EXISTS))
        return g_strdup(name_or_path);
    if (!is_model_name(name_or_path))
        return NULL;
    char **dirs = dit_model_library_dirs();
    char *found = NULL;
    for (size_t i = 0; dirs[i] && !found; i++) {
        char *p = g_build_filename(dirs[i], name_or_path, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR))
            found = p;
        else
            g_free(p);
    }
    g_strfreev(dirs);
    return found;
}

/* g_ptr_array_sort hands the comparator pointers to the elements */
static gint compare_names(gconstpointer a, gconstpointer b)
{
    return g_strcmp0(*(const char *const *)a, *(const char *const *)b);
}

char **dit_model_library_names(void)
{
    GPtrArray *names = g_ptr_array_new();
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    char **dirs = dit_model_library_dirs();
    for (size_t i = 0; dirs[i]; i++) {
        GDir *d = g_dir_open(dirs[i], 0, NULL);
        GPtrArray *here = g_ptr_array_new_with_free_func(g_free);
        for (const char *e; d && (e = g_dir_read_name(d));) {
            char *p = g_build_filename(dirs[i], e, NULL);
            /* dot-folders are `dit models add`'s work in progress */
            if (e[0] != '.' && g_file_test(p, G_FILE_TEST_IS_DIR))
                g_ptr_array_add(here, g_strdup(e));
            g_free(p);
        }
        if (d)
            g_dir_close(d);
        g_ptr_array_sort(here, compare_names);
        for (guint k = 0; k < here->len; k++) {
            const char *n = here->pdata[k];
            if (!g_hash_table_contains(seen, n)) {
                g_hash_table_add(seen, g_strdup(n));
                g_ptr_array_add(names, g_strdup(n));
            }
        }
        g_ptr_array_free(here, TRUE);
    }
    g_strfreev(dirs);
    g_hash_table_destroy(seen);
    g_ptr_array_add(names, NULL);
    return (char **)g_ptr_array_free(names, FALSE);
}

char *dit_default_model_path(void)
{
    const char *env = g_getenv("DIT_DEFAULT_MODEL");
    if (env && *env)
        return g_strdup(env);
    /* the installed or source one: a user's folder named "default" is a
     * model of their own, reached by name */
    for (size_t i = 0; i < G_N_ELEMENTS(data_dirs); i++) {
        char *p = g_build_filename(data_dirs[i], "models", "default", NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR))
            return p;
        g_free(p);
    }
    return NULL;
}

char **dit_labels_read(const char *path)
{
    char *text = NULL;
    if (!path || !g_file_get_contents(path, &text, NULL, NULL))
        return NULL;
    char **lines = g_strsplit(text, "\n", -1);
    g_free(text);
    /* strip each line (\r too); drop trailing empty lines */
    int n = 0;
    for (int i = 0; lines[i]; i++) {
        g_strstrip(lines[i]);
        n = lines[i][0] ? i + 1 : n;
    }
    for (int i = n; lines[i]; i++) {
        g_free(lines[i]);
        lines[i] = NULL;
    }
    if (n == 0) {
        g_strfreev(lines);
        return NULL;
    }
    return lines;
}

/* num_classes from a folder's config.json without loading weights; 0 if unknown */
static int config_num_classes(const char *model_path)
{
    if (!g_file_test(model_path, G_FILE_TEST_IS_DIR))
        return 0;
    const char *const rel[] = {"transformer/config.json", "config.json"};
    int n = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(rel) && n <= 0; i++) {
        char *p = g_build_filename(model_path, rel[i], NULL);
        JsonParser *parser = json_parser_new();
        if (json_parser_load_from_file(parser, p, NULL)) {
            JsonNode *root = json_parser_get_root(parser);
            JsonObject *o =
                root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
            if (o && json_object_has_member(o, "num_classes"))
                n = (int)json_object_get_int_member(o, "num_classes");
            else if (o && json_object_has_member(o, "num_embeds_ada_norm"))
                n = (int)json_object_get_int_member(o, "num_embeds_ada_norm");
        }
        g_object_unref(parser);
        g_free(p);
    }
    return n > 0 ? n : 0;
}

char **dit_labels_for_model(const char *model_path, int num_classes)
{
    if (!model_path || !*model_path)
        return NULL;
    char *dir = g_file_test(model_path, G_FILE_TEST_IS_DIR) ? g_strdup(model_path)
                                                            : g_path_get_dirname(model_path);
    char *p = g_build_filename(dir, "labels.txt", NULL);
    char **labels = dit_labels_read(p);
    g_free(p);
    g_free(dir);
    if (num_classes <= 0)
        num_classes = config_num_classes(model_path);
    for (size_t i = 0; !labels && num_classes == 1000 && i < G_N_ELEMENTS(data_dirs); i++) {
        p = g_build_filename(data_dirs[i], "labels", "imagenet.txt", NULL);
        labels = dit_labels_read(p);
        g_free(p);
    }
    return labels;
}

int dit_labels_lookup(char *const *labels, int num_classes, const char *name)
{
    for (int i = 0; labels && name && labels[i] && i < num_classes; i++) {
        if (g_ascii_strcasecmp(labels[i], name) == 0)
            return i;
        char **syn = g_strsplit(labels[i], ",", -1);
        bool hit = false;
        for (int k = 0; syn[k] && !hit; k++)
            hit = g_ascii_strcasecmp(g_strstrip(syn[k]), name) == 0;
        g_strfreev(syn);
        if (hit)
            return i;
    }
    return -1;
}

dit_class_result dit_labels_resolve(char *const *labels, int num_classes, const char *name,
                                    int *class_id)
{
    *class_id = 0;
    if (!name || !*name)
        return DIT_CLASS_OK;
    if (num_classes <= 0)
        return DIT_CLASS_UNCONDITIONAL;
    char *end;
    errno = 0;
    const long v = strtol(name, &end, 10);
    if (end != name && *end == '\0') {
        if (errno || v < 0 || v > num_classes)
            return DIT_CLASS_OUT_OF_RANGE;
        *class_id = (int)v;
        return DIT_CLASS_OK;
    }
    const int found = dit_labels_lookup(labels, num_classes, name);
    if (found < 0)
        return DIT_CLASS_UNKNOWN;
    *class_id = found;
    return DIT_CLASS_OK;
}

char *dit_labels_summary(char *const *labels, int num_classes, int max)
{
    GString *s = g_string_new(NULL);
    int n = 0;
    while (labels && labels[n] && n < num_classes)
        n++;
    for (int i = 0; i < n && i < max; i++) {
        const char *comma = strchr(labels[i], ',');
        const int len = comma ? (int)(comma - labels[i]) : (int)strlen(labels[i]);
        g_string_append_printf(s, "%s%.*s", i ? ", " : "", len, labels[i]);
    }
    if (n > max)
        g_string_append_printf(s, ", ... (%d in all)", n);
    return g_string_free(s, FALSE);
}

void dit_labels_free(char **labels) { g_strfreev(labels); }

void dit_free(void *p) { g_free(p); }
