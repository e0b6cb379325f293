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
