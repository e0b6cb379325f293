/* JSON texts that must be one object: config.json, scheduler configs,
 * safetensors headers and the metadata of our checkpoints. */
#pragma once

#include "impl.h"

#include <json-glib/json-glib.h>

/* Parses `text` (len bytes, or -1 up to its NUL) and returns its root
 * object, owned by *parser (g_object_unref it, also on error: it is NULL
 * then). NULL with DIT_ERR_FORMAT "SRC: not valid JSON: ..." or "SRC: not a
 * JSON object" set on ctx. */
JsonObject *dit_json_object(dit_ctx *ctx, const char *src, const char *text, gssize len,
                            JsonParser **parser);
/* The same for the file at path: NULL with *st DIT_ERR_IO (it cannot be
 * read) or DIT_ERR_FORMAT, the message on ctx. */
JsonObject *dit_json_file(dit_ctx *ctx, const char *path, JsonParser **parser, dit_status *st);
