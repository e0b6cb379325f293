/* dit models add PATH | remove NAME: `add` builds a pipeline folder
 * (transformer/, vae/, scheduler/, and a text model's text_encoder/ and
 * tokenizer/, labels.txt, manifest.json) beside the library under a
 * temporary name, checks that it loads and samples one step, then renames
 * it into place: a refused add leaves the library as it was. The user's
 * files are hard-linked or copied, never moved. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* dst = a copy of src, streamed (a T5 shard is 5 GB: never whole in memory) */
static bool copy_file(const char *src, const char *dst, GError **err)
{
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    bool ok = in && out;
    static char buf[1 << 20];
    for (size_t n; ok && (n = fread(buf, 1, sizeof buf, in)) > 0;)
        ok = fwrite(buf, 1, n, out) == n;
    ok = ok && !ferror(in);
    const int saved = errno;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        ok = false;
    if (!ok)
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(saved), "copying %s to %s: %s", src,
                    dst, g_strerror(saved));
    return ok;
}

/* dst = src: a hard link where the file system allows it, else a copy. A
 * symbolic link is followed (AT_SYMLINK_FOLLOW): huggingface-cli's folders
 * hold relative links into its cache, which would dangle in the library. */
static bool link_or_copy(const char *src, const char *dst, GError **err)
{
    if (linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0)
        return true;
    return copy_file(src, dst, err);
}

/* every regular file of dir (not sub-folders) into dst_dir */
static bool link_folder_files(const char *dir, const char *dst_dir, GError **err)
{
    GDir *d = g_dir_open(dir, 0, err);
    bool ok = d != NULL && g_mkdir_with_parents(dst_dir, 0755) == 0;
    for (const char *e; ok && (e = g_dir_read_name(d));) {
        char *src = g_build_filename(dir, e, NULL), *dst = g_build_filename(dst_dir, e, NULL);
        if (g_file_test(src, G_FILE_TEST_IS_REGULAR))
            ok = link_or_copy(src, dst, err);
        g_free(src), g_free(dst);
    }
    if (d)
        g_dir_close(d);
    return ok;
}

/* removes dir and everything under it (a folder add made, or the library's) */
static void remove_tree(const char *path)
{
    if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
        GDir *d = g_dir_open(path, 0, NULL);
        for (const char *e; d && (e = g_dir_read_name(d));) {
            char *p = g_build_filename(path, e, NULL);
            remove_tree(p);
            g_free(p);
        }
        if (d)
            g_dir_close(d);
        g_rmdir(path);
    } else {
        g_unlink(path);
    }
}

/* a weights file or a folder (diffusers model or pipeline) as dst/sub/ */
static int take_component(const char *src, const char *dst, const char *sub)
{
    GError *err = NULL;
    char *dir = g_build_filename(dst, sub, NULL);
    bool ok = g_mkdir_with_parents(dir, 0755) == 0;
    if (ok && g_file_test(src, G_FILE_TEST_IS_DIR)) {
        char *inner = g_build_filename(src, sub, NULL);
        ok = link_folder_files(g_file_test(inner, G_FILE_TEST_IS_DIR) ? inner : src, dir, &err);
        g_free(inner);
    } else if (ok) {
        char *base = g_path_get_basename(src);
        const bool diffusers = strcmp(base, "diffusion_pytorch_model.safetensors") == 0;
        char *to = g_build_filename(dir, diffusers ? base : "model.safetensors", NULL);
        ok = link_or_copy(src, to, &err);
        char *sdir = g_path_get_dirname(src), *cfg = g_build_filename(sdir, "config.json", NULL);
        if (ok && diffusers && g_file_test(cfg, G_FILE_TEST_IS_REGULAR)) {
            char *cto = g_build_filename(dir, "config.json", NULL);
            ok = link_or_copy(cfg, cto, &err);
            g_free(cto);
        }
        g_free(sdir), g_free(cfg), g_free(to), g_free(base);
    }
    if (!ok)
        fprintf(stderr, "dit: models add: %s: %s\n", src, err ? err->message : g_strerror(errno));
    g_clear_error(&err);
    g_free(dir);
    return ok ? 0 : EXIT_BAD_INPUT;
}

/* sha256 of a file, streamed */
static char *file_sha256(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
    guchar buf[1 << 16];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;)
        g_checksum_update(c, buf, (gssize)n);
    fclose(f);
    char *hex = g_strdup(g_checksum_get_string(c));
    g_checksum_free(c);
    return hex;
}

/* "files": [{"path": ..., "bytes": ..., "sha256": ...}] of folder, recursively */
static void manifest_files(GString *json, const char *root, const char *rel, bool *first)
{
    char *dir = rel ? g_build_filename(root, rel, NULL) : g_strdup(root);
    GDir *d = g_dir_open(dir, 0, NULL);
    for (const char *e; d && (e = g_dir_read_name(d));) {
        char *r = rel ? g_build_filename(rel, e, NULL) : g_strdup(e);
        char *p = g_build_filename(root, r, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR)) {
            manifest_files(json, root, r, first);
        } else if (strcmp(r, "manifest.json") != 0) {
            char *sum = file_sha256(p), *esc = g_strescape(r, NULL);
            g_string_append_printf(json,
                                   "%s\n    {\"path\": \"%s\", \"bytes\": %" G_GUINT64_FORMAT
                                   ", \"sha256\": \"%s\"}",
                                   *first ? "" : ",", esc, cli_disk_size(p), sum ? sum : "");
            *first = false;
            g_free(sum), g_free(esc);
        }
        g_free(p), g_free(r);
    }
    if (d)
        g_dir_close(d);
    g_free(dir);
}

static bool write_manifest(const char *dir, const char *name, const char *source,
                           const char *vae_source, const dit_config *c, int side, bool vae)
{
    GString *j = g_string_new("{\n");
    char *esrc = g_strescape(source, NULL), *evae = g_strescape(vae_source ? vae_source : "", NULL);
    g_string_append_printf(j, "  \"name\": \"%s\",\n  \"architecture\": \"%s\",\n", name,
                           dit_is_pixart(dir) ? "PixArt" : "DiT");
    g_string_append_printf(j, "  \"conditioning\": \"%s\",\n  \"patch_size\": %d,\n",
                           dit_conditioning_name(c->conditioning), c->patch_size);
    g_string_append_printf(j, "  \"hidden_size\": %d,\n  \"depth\": %d,\n", c->hidden_size,
                           c->depth);
    g_string_append_printf(j, "  \"resolution\": %d,\n  \"channels\": %d,\n", side,
                           vae ? 3 : c->in_channels);
    g_string_append_printf(j, "  \"classes\": %d,\n  \"vae\": %s,\n", c->num_classes,
                           vae ? "true" : "false");
    g_string_append_printf(j, "  \"source\": \"%s\",\n  \"vae_source\": \"%s\",\n", esrc, evae);
    char stamp[32];
    const time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    g_string_append_printf(j, "  \"added\": \"%s\",\n  \"files\": [", stamp);
    bool first = true;
    manifest_files(j, dir, NULL, &first);
    g_string_append(j, "\n  ]\n}\n");
    char *path = g_build_filename(dir, "manifest.json", NULL);
    const bool ok = g_file_set_contents(path, j->str, (gssize)j->len, NULL);
    g_free(path), g_free(esrc), g_free(evae);
    g_string_free(j, TRUE);
    return ok;
}

static bool one_step_cb(void *user, int step, int total, const float *latent)
{
    (void)user, (void)step, (void)total, (void)latent;
    return true;
}

/* libdit's message with the temporary folder dir shown as what was added */
static char *message_for(dit_ctx *ctx, const char *dir, const char *src)
{
    char **parts = g_strsplit(dit_last_error(ctx), dir, -1);
    char *msg = g_strjoinv(src, parts);
    g_strfreev(parts);
    return msg;
}

/* one generated step of p at side x side (channels per pixel) is finite;
 * an exit code with the reason printed */
static int sample_one_step(dit_ctx *ctx, dit_pipeline_params *p, int side, int channels)
{
    p->task = DIT_TASK_GENERATE;
    p->steps = 1;
    const size_t n = (size_t)channels * side * side;
    float *out = malloc(n * sizeof *out);
    dit_status st =
        out ? dit_pipeline_run(ctx, p, NULL, NULL, side, side, one_step_cb, NULL, NULL, out)
            : DIT_ERR_NOMEM;
    for (size_t i = 0; !st && i < n; i++)
        st = isfinite(out[i]) ? DIT_OK : DIT_ERR_MODEL;
    free(out);
    if (!st)
        return 0;
    fprintf(stderr, "dit: models add: one sampling step failed: %s\n",
            dit_last_error(ctx)[0] ? dit_last_error(ctx) : "non-finite output");
    return EXIT_MODEL;
}

/* A text model: the transformer, the VAE and the tokenizer load, the
 * encoder's files are whole (its config and every tensor's header: loading
 * 4.7 B parameters to check them would take minutes), and one step samples
 * from an all-zero caption. cfg: its shape as a DiT config. */
static int verify_text_model(const char *dir, const char *src, dit_config *cfg, int *side)
{
    dit_ctx *ctx = dit_ctx_new();
    dit_pixart *m = NULL;
    dit_vae *v = NULL;
    dit_tokenizer *tok = NULL;
    dit_t5_config tc;
    int rc = 0;
    dit_sched_config sc;
    if (dit_text_model_check(ctx, dir) || dit_text_encoder_peek(ctx, dir, &tc) ||
        dit_pixart_load(ctx, dir, &m) || dit_vae_load(ctx, dir, &v) ||
        dit_tokenizer_load(ctx, dir, &tok) || dit_sched_config_from_folder(ctx, dir, &sc)) {
        char *msg = message_for(ctx, dir, src);
        fprintf(stderr, "dit: models add: %s does not load as a text model: %s\n", src, msg);
        g_free(msg);
        rc = EXIT_MODEL;
    }
    const int L = dit_text_default_len(dir);
    float *zeros = rc ? NULL : calloc((size_t)L * tc.d_model, sizeof *zeros);
    int32_t *ones = rc ? NULL : malloc((size_t)L * sizeof *ones);
    for (int j = 0; ones && j < L; j++)
        ones[j] = 1;
    if (!rc) {
        const dit_pixart_config *pc = dit_pixart_get_config(m);
        memset(cfg, 0, sizeof *cfg);
        cfg->in_channels = pc->in_channels, cfg->patch_size = pc->patch_size;
        cfg->hidden_size = pc->hidden_size, cfg->depth = pc->depth;
        cfg->sample_size = pc->sample_size;
        *side = pc->sample_size * dit_vae_config(v)->downscale;
        dit_pipeline_params p;
        dit_pipeline_params_default(&p, NULL, v);
        p.pixart = m, p.guidance = 1.0f, p.text_len = L, p.text_dim = tc.d_model;
        p.prompt_embeds = zeros, p.prompt_mask = ones;
        rc = sample_one_step(ctx, &p, *side, 3);
    }
    free(zeros), free(ones);
    dit_tokenizer_free(tok);
    dit_pixart_free(m);
    dit_vae_free(v);
    dit_ctx_free(ctx);
    return rc;
}

/* the folder loads as a pipeline, its VAE fits, and one step samples */
static int verify_model(const char *dir, const char *src, dit_config *cfg, int *side, bool *has_vae)
{
    if (dit_is_pixart(dir)) {
        *has_vae = true;
        return verify_text_model(dir, src, cfg, side);
    }
    dit_ctx *ctx = dit_ctx_new();
    dit_model *m = NULL;
    dit_vae *v = NULL;
    int rc = 0;
    char *vdir = g_build_filename(dir, "vae", NULL);
    *has_vae = g_file_test(vdir, G_FILE_TEST_IS_DIR);
    g_free(vdir);
    if (dit_model_load(ctx, dir, &m) != DIT_OK || (*has_vae && dit_vae_load(ctx, dir, &v))) {
        char *msg = message_for(ctx, dir, src);
        fprintf(stderr, "dit: models add: %s does not load%s: %s\n", src,
                m ? " with that VAE" : " as a DiT", msg);
        g_free(msg);
        rc = EXIT_MODEL;
    }
    if (!rc) {
        *cfg = *dit_model_config(m);
        const int lat = v ? dit_vae_config(v)->latent_channels : 0;
        const int f = v ? dit_vae_config(v)->downscale : 1;
        *side = cfg->sample_size * f;
        if (v && lat != cfg->in_channels) {
            fprintf(stderr,
                    "dit: models add: the VAE's latents have %d channels, the DiT takes %d: "
                    "they do not fit together\n",
                    lat, cfg->in_channels);
            rc = EXIT_MODEL;
        } else if (!v && cfg->in_channels != 1 && cfg->in_channels != 3) {
            fprintf(stderr,
                    "dit: models add: this DiT works on %d-channel latents: give its VAE "
                    "with --vae (e.g. an sd-vae-ft-ema or sd-vae-ft-mse folder)\n",
                    cfg->in_channels);
            rc = EXIT_MODEL;
        }
    }
    if (!rc) {
        dit_pipeline_params p;
        dit_pipeline_params_default(&p, m, v);
        rc = sample_one_step(ctx, &p, *side, v ? 3 : cfg->in_channels);
    }
    dit_model_free(m);
    dit_vae_free(v);
    dit_ctx_free(ctx);
    return rc;
}

/* the library folder called name, in search order; NULL when none */
static char *library_find(const char *name)
{
    char **dirs = dit_model_library_dirs();
    char *found = NULL;
    for (size_t i = 0; dirs[i] && !found; i++) {
        found = g_build_filename(dirs[i], name, NULL);
        if (!g_file_test(found, G_FILE_TEST_IS_DIR))
            g_clear_pointer(&found, g_free);
    }
    g_strfreev(dirs);
    return found;
}

/* a library name from a file or folder name: its stem, [A-Za-z0-9._-] */
static char *name_from_path(const char *path)
{
    char *base = g_path_get_basename(path);
    char *dot = strrchr(base, '.');
    if (dot && dot != base && g_file_test(path, G_FILE_TEST_IS_REGULAR))
        *dot = '\0';
    for (char *q = base; *q; q++)
        if (!g_ascii_isalnum(*q) && *q != '-' && *q != '_' && *q != '.')
            *q = '-';
    return base;
}

/* "N classes", in a static buffer */
static const char *classes_text(int n)
{
    static char buf[32];
    snprintf(buf, sizeof buf, "%d classes", n);
    return buf;
}

int cli_models_add(const char *src, const char *name_opt, const char *vae, int heads)
{
    if (!g_file_test(src, G_FILE_TEST_EXISTS)) {
        fprintf(stderr, "dit: models add: %s: no such file or folder\n", src);
        return EXIT_BAD_INPUT;
    }
    if (vae && !g_file_test(vae, G_FILE_TEST_EXISTS)) {
        fprintf(stderr, "dit: models add: --vae %s: no such file or folder\n", vae);
        return EXIT_BAD_INPUT;
    }
    char *name = name_opt ? g_strdup(name_opt) : name_from_path(src);
    char *taken = *name && !strchr(name, '/') ? library_find(name) : NULL;
    if (!*name || strchr(name, '/') || name[0] == '.' || taken) {
        if (taken)
            fprintf(stderr, "dit: models add: a model named '%s' exists (%s): choose --name\n",
                    name, taken);
        else
            fprintf(stderr, "dit: models add: '%s' is not a usable name\n", name);
        g_free(taken), g_free(name);
        return EXIT_BAD_INPUT;
    }
    char **dirs = dit_model_library_dirs();
    char *tmpl = g_strdup_printf("%s/.%s.adding-XXXXXX", dirs[0], name);
    int rc = g_mkdir_with_parents(dirs[0], 0755) == 0 && g_mkdtemp(tmpl) ? 0 : EXIT_BAD_INPUT;
    if (rc)
        fprintf(stderr, "dit: models add: cannot write in %s: %s\n", dirs[0], g_strerror(errno));
    const bool pt = g_str_has_suffix(src, ".pt") || g_str_has_suffix(src, ".pth");
    if (!rc && pt) {
        char *tdir = g_build_filename(tmpl, "transformer", NULL);
        char *out = g_build_filename(tdir, "model.safetensors", NULL);
        g_mkdir_with_parents(tdir, 0755);
        rc = dit_convert_pt(src, out, NULL, heads, true);
        g_free(out), g_free(tdir);
    } else if (!rc) {
        rc = take_component(src, tmpl, "transformer");
    }
    /* a pipeline folder brings its VAE, scheduler and labels (a text
     * model's: its encoder, tokenizer and model_index.json too) */
    const char *with[] = {"vae", "scheduler", "text_encoder", "tokenizer"};
    for (size_t i = 0; !rc && !pt && g_file_test(src, G_FILE_TEST_IS_DIR) && i < 4; i++) {
        char *part = g_build_filename(src, with[i], NULL);
        if (g_file_test(part, G_FILE_TEST_IS_DIR) && !(i == 0 && vae))
            rc = take_component(part, tmpl, with[i]);
        g_free(part);
    }
    if (!rc && vae)
        rc = take_component(vae, tmpl, "vae");
    char *index = g_build_filename(src, "model_index.json", NULL);
    char *index_to = g_build_filename(tmpl, "model_index.json", NULL);
    if (!rc && g_file_test(index, G_FILE_TEST_IS_REGULAR) && !link_or_copy(index, index_to, NULL))
        rc = EXIT_BAD_INPUT;
    g_free(index), g_free(index_to);
    char *src_dir = g_file_test(src, G_FILE_TEST_IS_DIR) ? g_strdup(src) : g_path_get_dirname(src);
    char *labels_src = g_build_filename(src_dir, "labels.txt", NULL);
    g_free(src_dir);
    char *labels_dst = g_build_filename(tmpl, "labels.txt", NULL);
    if (!rc && g_file_test(labels_src, G_FILE_TEST_IS_REGULAR))
        link_or_copy(labels_src, labels_dst, NULL);
    dit_config cfg;
    int side = 0;
    bool has_vae = false;
    if (!rc)
        rc = verify_model(tmpl, src, &cfg, &side, &has_vae);
    /* 1000 classes and no list of its own: ImageNet's, from libdit's data */
    char **labels =
        !rc && !dit_is_pixart(tmpl) ? dit_labels_for_model(tmpl, cfg.num_classes) : NULL;
    if (labels && !g_file_test(labels_dst, G_FILE_TEST_EXISTS)) {
        char *text = g_strjoinv("\n", labels);
        g_file_set_contents(labels_dst, text, -1, NULL);
        g_free(text);
    }
    dit_labels_free(labels);
    char *final = g_build_filename(dirs[0], name, NULL);
    if (!rc && !write_manifest(tmpl, name, src, vae, &cfg, side, has_vae)) {
        fprintf(stderr, "dit: models add: cannot write the manifest in %s\n", tmpl);
        rc = EXIT_BAD_INPUT;
    }
    if (!rc && g_rename(tmpl, final) != 0) {
        fprintf(stderr, "dit: models add: %s: %s\n", final, g_strerror(errno));
        rc = EXIT_BAD_INPUT;
    }
    if (rc && g_file_test(tmpl, G_FILE_TEST_IS_DIR))
        remove_tree(tmpl);
    if (!rc)
        printf("added '%s': %s%s, %dx%d pixels, %s, %s VAE -> %s\n", name,
               dit_is_pixart(final) ? "PixArt" : "DiT ",
               dit_is_pixart(final) ? " (text)" : dit_conditioning_name(cfg.conditioning), side,
               side, dit_is_pixart(final) ? "prompts" : classes_text(cfg.num_classes),
               has_vae ? "with its" : "no", final);
    g_free(final), g_free(labels_src), g_free(labels_dst), g_free(tmpl), g_free(name);
    g_strfreev(dirs);
    return rc;
}

int cli_models_remove(const char *name)
{
    char **dirs = dit_model_library_dirs();
    char *path = g_build_filename(dirs[0], name, NULL);
    int rc = 0;
    if (strchr(name, '/') || name[0] == '.' || !g_file_test(path, G_FILE_TEST_IS_DIR)) {
        char *other = strchr(name, '/') ? NULL : library_find(name);
        if (other)
            fprintf(stderr, "dit: models remove: '%s' is not in your library (%s) but at %s\n",
                    name, dirs[0], other);
        else
            fprintf(stderr, "dit: models remove: no model '%s' in your library (%s)\n", name,
                    dirs[0]);
        g_free(other);
        rc = EXIT_BAD_INPUT;
    } else {
        remove_tree(path);
        printf("removed '%s' (%s)\n", name, path);
    }
    g_free(path);
    g_strfreev(dirs);
    return rc;
}
