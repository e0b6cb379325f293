/* One JSON object from a text, with the loaders' error messages. */
#include "internal/json.h"

JsonObject *dit_json_object(dit_ctx *ctx, const char *src, const char *text, gssize len,
                            JsonParser **parser)
{
    GError *err = NULL;
    JsonParser *p = json_parser_new();
    *parser = NULL;
    if (!json_parser_load_from_data(p, text, len, &err)) {
        dit_error(ctx, DIT_ERR_FORMAT, "%s: not valid JSON: %s", src, err->message);
        g_error_free(err);
        g_object_unref(p);
        return NULL;
    }
    JsonNode *root = json_parser_get_root(p);
    if (!root || JSON_NODE_TYPE(root) != JSON_NODE_OBJECT) {
        dit_error(ctx, DIT_ERR_FORMAT, "%s: not a JSON object", src);
        g_object_unref(p);
        return NULL;
    }
    *parser = p;
    return json_node_get_object(root);
}

JsonObject *dit_json_file(dit_ctx *ctx, const char *path, JsonParser **parser, dit_status *st)
{
    char *text = NULL;
    gsize len = 0;
    GError *err = NULL;
    *parser = NULL;
    if (!g_file_get_contents(path, &text, &len, &err)) {
        *st = dit_error(ctx, DIT_ERR_IO, "%s", err->message);
        g_error_free(err);
        return NULL;
    }
    JsonObject *o = dit_json_object(ctx, path, text, (gssize)len, parser);
    g_free(text);
    *st = o ? DIT_OK : DIT_ERR_FORMAT;
    return o;
}
