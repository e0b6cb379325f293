/* The plug-in's GIMP-free half (plugin/dit-job.c) on the golden test model:
 * class resolution, value checks, the context crop, compositing that keeps
 * unmasked pixels bit for bit, and cancelling.
 *
 *   test-job SRCDIR
 *
 * The model is a pipeline folder assembled in a temporary directory:
 * transformer/ = tests/golden/dit_diffusers_p2, vae/ = tests/golden/vae_kl
 * (links, the fixtures are not touched), labels.txt = Fashion-MNIST's.
 * The text model beside it: transformer/ = tests/golden/pixart_tiny's,
 * text_encoder/ and tokenizer/ = tests/golden/t5_tiny, vae/ = vae_kl; its
 * prompts are cached under a temporary $XDG_CACHE_HOME.
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dit-job.h"
#include "dit.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            printf("ok: ");                                                                        \
        } else {                                                                                   \
            printf("FAIL: ");                                                                      \
            failures++;                                                                            \
        }                                                                                          \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

static DitValues values(const char *model, DitMode mode, const char *cls)
{
    DitValues v;
    ditui_values_init(&v, mode);
    ditui_values_set_string(v.model, sizeof v.model, model);
    ditui_values_set_string(v.class_name, sizeof v.class_name, cls);
    v.steps = 4;
    v.seed = 5;
    return v;
}

/* ditgimp_job_new must refuse v with a message containing `needle` */
static void refuses(const char *what, const DitValues *v, const char *needle)
{
    GError *err = NULL;
    DitJob *job = ditgimp_job_new(v, &err);
    CHECK(!job && err && strstr(err->message, needle), "%s refused: %s", what,
          err ? err->message : "(accepted)");
    ditgimp_job_free(job);
    g_clear_error(&err);
}

static void test_values(const char *model)
{
    GError *err = NULL;
    DitValues v = values(model, DIT_MODE_INPAINT, "dress");
    DitJob *job = ditgimp_job_new(&v, &err);
    CHECK(job && strcmp(ditgimp_job_label(job), "Dress") == 0 && ditgimp_job_seed(job) == 5,
          "class 'dress' is label 'Dress', seed 5");
    CHECK(job && ditgimp_job_unit(job) == 4, "unit = VAE factor 2 x patch 2 = %d",
          job ? ditgimp_job_unit(job) : -1);
    ditgimp_job_free(job);
    g_clear_error(&err);

    v = values(model, DIT_MODE_IMG2IMG, "9");
    job = ditgimp_job_new(&v, &err);
    CHECK(job && strcmp(ditgimp_job_label(job), "Ankle boot") == 0, "class 9 is 'Ankle boot'");
    ditgimp_job_free(job);

    v = values(model, DIT_MODE_INPAINT, "");
    v.seed = -1;
    job = ditgimp_job_new(&v, &err);
    CHECK(job && ditgimp_job_seed(job) >= 0, "seed -1 becomes a random seed (%d)",
          job ? ditgimp_job_seed(job) : -1);
    ditgimp_job_free(job);

    /* a model of the library by name: the embedded default is "default" */
    v = values("default", DIT_MODE_INPAINT, "dress");
    job = ditgimp_job_new(&v, &err);
    CHECK(job && strcmp(ditgimp_job_label(job), "Dress") == 0,
          "the library's 'default' by name: %s", job ? "loaded" : err->message);
    ditgimp_job_free(job);
    g_clear_error(&err);

    v = values(model, DIT_MODE_INPAINT, "Unicorn");
    refuses("an unknown class", &v, "Unknown class 'Unicorn'");
    v = values(model, DIT_MODE_INPAINT, "11");
    refuses("class 11 of 10", &v, "out of range");
    v = values(model, DIT_MODE_INPAINT, "1");
    ditui_values_set_string(v.sampler, sizeof v.sampler, "bogus");
    refuses("an unknown sampler", &v, "Unknown sampler 'bogus'");
    v = values(model, DIT_MODE_INPAINT, "1");
    ditui_values_set_string(v.device, sizeof v.device, "cuda");
    refuses("the cuda device", &v, "use the CPU device"); /* no backend, or no device here */
    /* the CPU in bf16 where the processor can, else refused with the
     * reason; "auto" (no GPU here) takes bf16 only where it measured faster */
    dit_cpu_caps caps;
    dit_cpu_get_caps(&caps);
    const struct {
        const char *device, *precision;
    } devices[] = {{"cpu", "fp32"},
                   {"cpu-bf16", caps.bf16 ? "bf16" : NULL},
                   {"auto", caps.bf16_faster ? "bf16" : "fp32"}};
    for (size_t i = 0; i < G_N_ELEMENTS(devices); i++) {
        v = values(model, DIT_MODE_INPAINT, "1");
        ditui_values_set_string(v.device, sizeof v.device, devices[i].device);
        if (!devices[i].precision) {
            refuses("bf16 on this CPU", &v, "bf16 on the CPU cannot run here");
            continue;
        }
        job = ditgimp_job_new(&v, &err);
        CHECK(job && strcmp(ditgimp_job_precision(job), devices[i].precision) == 0,
              "device %s runs in %s (%s)", devices[i].device, devices[i].precision,
              job ? ditgimp_job_precision(job) : err->message);
        ditgimp_job_free(job);
        g_clear_error(&err);
    }
    v = values(model, DIT_MODE_INPAINT, "1");
    ditui_values_set_string(v.device, sizeof v.device, "gpu");
    refuses("an unknown device", &v, "use auto, cpu, cpu-bf16 or cuda");
    v = values(model, DIT_MODE_INPAINT, "1");
    v.strength = 1.5;
    refuses("strength 1.5", &v, "Strength");
    v.strength = -0.5;
    refuses("strength -0.5", &v, "Strength must be in [0, 1]");
    v.strength = NAN;
    refuses("strength NaN", &v, "Strength must be in [0, 1]");
    v.strength = 1.0;
    v.guidance = INFINITY;
    refuses("guidance inf", &v, "Guidance must be in [0, 100]");
    v.guidance = 4.0;
    v = values(model, DIT_MODE_INPAINT, "1");
    v.steps = 5000;
    refuses("5000 steps", &v, "Steps");
    v = values("/nonexistent", DIT_MODE_INPAINT, "1");
    refuses("a missing model", &v, "Could not load the model");
}

static void test_rect(const char *model)
{
    DitValues v = values(model, DIT_MODE_INPAINT, "1");
    DitJob *job = ditgimp_job_new(&v, NULL);
    gint x, y, w, h;
    ditgimp_job_context_rect(job, 100, 50, 40, 20, 1000, 1000, 0.2, &x, &y, &w, &h);
    CHECK(x == 92 && y == 42 && w == 56 && h == 36, "40x20 at (100,50) padded by 8: %d,%d %dx%d", x,
          y, w, h);
    ditgimp_job_context_rect(job, 2, 3, 40, 20, 50, 30, 0.2, &x, &y, &w, &h);
    CHECK(x == 0 && y == 0 && w == 50 && h == 30, "clamped to a 50x30 layer: %d,%d %dx%d", x, y, w,
          h);
    ditgimp_job_context_rect(job, 10, 10, 2, 2, 100, 100, 0.2, &x, &y, &w, &h);
    CHECK(x == 6 && y == 6 && w == 10 && h == 10,
          "a tiny selection gets one model unit: %d,%d %dx%d", x, y, w, h);
    ditgimp_job_free(job);
}

/* a 37x23 crop, mask = a soft disc: the result equals the source wherever
 * the mask is 0, bit for bit, and differs where it is 1 */
static void test_inpaint(const char *model, DitMode mode, const char *prompt)
{
    const gint W = 37, H = 23;
    const gsize n = (gsize)W * H;
    gfloat *rgb = g_new(gfloat, 3 * n), *mask = g_new(gfloat, n);
    gfloat *src = g_new(gfloat, 3 * n), *m = g_new(gfloat, n);
    for (gsize i = 0; i < 3 * n; i++)
        rgb[i] = sinf(0.37f * i) * 0.9f;
    for (gint yy = 0; yy < H; yy++)
        for (gint xx = 0; xx < W; xx++) {
            const float d = hypotf(xx - 18.0f, yy - 11.0f);
            mask[yy * W + xx] = d < 5 ? 1.0f : d < 8 ? (8 - d) / 3 : 0.0f;
        }
    memcpy(src, rgb, 3 * n * sizeof *src);
    memcpy(m, mask, n * sizeof *m);
    DitValues v = values(model, mode, prompt ? "" : "2");
    ditui_values_set_string(v.prompt, sizeof v.prompt, prompt);
    GError *err = NULL;
    DitJob *job = ditgimp_job_new(&v, &err);
    gboolean started = job && ditgimp_job_start(job, rgb, mask, W, H, &err);
    gint step = 0, total = 0;
    while (started && !ditgimp_job_poll(job, &step, &total))
        g_usleep(1000);
    guint8 *prev = NULL;
    gint pw = 0, ph = 0;
    const gboolean has_preview = started && ditgimp_job_preview(job, &prev, &pw, &ph);
    gfloat *out = started ? ditgimp_job_finish(job, &err) : NULL;
    CHECK(out != NULL, "%s%s ran: %s", mode == DIT_MODE_INPAINT ? "inpaint" : "img2img",
          prompt ? " from a prompt" : "", err ? err->message : "ok");
    CHECK(step == total && total > 0, "progress reached %d of %d steps", step, total);
    CHECK(has_preview && pw > 0 && ph > 0, "a %dx%d latent preview", pw, ph);
    long outside = 0, same = 0, inside = 0, changed = 0;
    for (gsize i = 0; out && i < n; i++)
        for (gint c = 0; c < 3; c++) {
            const gfloat a = src[c * n + i], b = out[c * n + i];
            if (m[i] == 0.0f) {
                outside++;
                same += memcmp(&a, &b, sizeof a) == 0;
            } else if (m[i] == 1.0f) {
                inside++;
                changed += a != b;
            }
        }
    CHECK(out && outside > 0 && same == outside, "%ld of %ld unmasked samples bit-identical", same,
          outside);
    CHECK(out && inside > 0 && changed > inside * 9 / 10, "%ld of %ld masked samples changed",
          changed, inside);
    g_free(out), g_free(prev), g_free(src), g_free(m);
    g_clear_error(&err);
    ditgimp_job_free(job);
}

static void test_cancel(const char *model)
{
    const gint W = 16, H = 16;
    gfloat *rgb = g_new0(gfloat, 3 * W * H), *mask = g_new(gfloat, W * H);
    for (gint i = 0; i < W * H; i++)
        mask[i] = 1.0f;
    DitValues v = values(model, DIT_MODE_INPAINT, "1");
    v.steps = 50;
    GError *err = NULL;
    DitJob *job = ditgimp_job_new(&v, &err);
    ditgimp_job_cancel(job); /* before the first step: stops at once */
    gboolean started = ditgimp_job_start(job, rgb, mask, W, H, &err);
    gfloat *out = started ? ditgimp_job_finish(job, &err) : NULL;
    gint step = -1, total = -1;
    ditgimp_job_poll(job, &step, &total);
    CHECK(started && !out && g_error_matches(err, DIT_JOB_ERROR, DIT_JOB_ERROR_CANCELLED),
          "a cancelled job gives no result and the error '%s'", err ? err->message : "(none)");
    CHECK(step == 0, "it stopped before the first of 50 steps (step %d)", step);
    g_clear_error(&err);
    ditgimp_job_free(job);
}

/* one 16x16 generation; g_free the (3, 16, 16) result */
static gfloat *generate16(const DitValues *v)
{
    GError *err = NULL;
    DitJob *job = ditgimp_job_new(v, &err);
    gfloat *out = job && ditgimp_job_start(job, NULL, NULL, 16, 16, &err)
                      ? ditgimp_job_finish(job, &err)
                      : NULL;
    if (!out)
        printf("generate: %s\n", err ? err->message : "?");
    g_clear_error(&err);
    ditgimp_job_free(job);
    return out;
}

static void test_text(const char *text, const char *model)
{
    GError *err = NULL;
    DitValues v = values(text, DIT_MODE_INPAINT, "");
    ditui_values_set_string(v.prompt, sizeof v.prompt, "a red tulip");
    DitJob *job = ditgimp_job_new(&v, &err);
    CHECK(job && ditgimp_job_is_text(job) && strcmp(ditgimp_job_label(job), "a red tulip") == 0,
          "a text model from its prompt, named by it: %s",
          job ? ditgimp_job_label(job) : err->message);
    CHECK(job && ditgimp_job_unit(job) == 4, "unit = VAE factor 2 x patch 2 = %d",
          job ? ditgimp_job_unit(job) : -1);
    ditgimp_job_free(job);
    g_clear_error(&err);

    /* GIMP 2.10: the prompt comes as the class */
    v = values(text, DIT_MODE_INPAINT, "  A red tulip ");
    job = ditgimp_job_new(&v, &err);
    CHECK(job && strcmp(ditgimp_job_label(job), "A red tulip") == 0,
          "an empty prompt takes the class string: %s",
          job ? ditgimp_job_label(job) : err->message);
    ditgimp_job_free(job);
    g_clear_error(&err);

    v = values(text, DIT_MODE_INPAINT, "Dress");
    ditui_values_set_string(v.prompt, sizeof v.prompt,
                            "a red tulip in a glass vase on a wooden table,\n  morning light");
    job = ditgimp_job_new(&v, &err);
    CHECK(job && strcmp(ditgimp_job_label(job), "a red tulip in a glass vase on a wooden…") == 0,
          "a long prompt (the class beside it unused) on one line, cut at a word: %s",
          job ? ditgimp_job_label(job) : err->message);
    ditgimp_job_free(job);
    g_clear_error(&err);

    v = values(text, DIT_MODE_INPAINT, " ");
    refuses("a text model without a prompt", &v, "This is a text model: type a prompt");
    v = values(model, DIT_MODE_INPAINT, "Dress");
    ditui_values_set_string(v.prompt, sizeof v.prompt, "a red tulip");
    refuses("a prompt for a class model", &v, "This model takes a class, not a prompt");
    v = values(model, DIT_MODE_INPAINT, "Dress");
    ditui_values_set_string(v.negative_prompt, sizeof v.negative_prompt, "blurry");
    refuses("a negative prompt for a class model", &v, "This model takes a class, not a prompt");

    /* guidance: our default means the text models' 4.5 */
    v = values(text, DIT_MODE_GENERATE, "");
    ditui_values_set_string(v.prompt, sizeof v.prompt, "a red tulip");
    gfloat *def = generate16(&v);
    v.guidance = DIT_TEXT_GUIDANCE;
    gfloat *text45 = generate16(&v);
    v.guidance = 3.0;
    gfloat *g3 = generate16(&v);
    v.guidance = DIT_VALUES_GUIDANCE;
    ditui_values_set_string(v.negative_prompt, sizeof v.negative_prompt, "blurry");
    gfloat *neg = generate16(&v);
    const gsize bytes = 3 * 16 * 16 * sizeof(gfloat);
    CHECK(def && text45 && memcmp(def, text45, bytes) == 0,
          "guidance left at %g runs at DIT_TEXT_GUIDANCE (%g), bit for bit", DIT_VALUES_GUIDANCE,
          DIT_TEXT_GUIDANCE);
    CHECK(def && g3 && memcmp(def, g3, bytes) != 0, "guidance 3 gives another image");
    CHECK(def && neg && memcmp(def, neg, bytes) != 0, "a negative prompt gives another image");
    g_free(def), g_free(text45), g_free(g3), g_free(neg);
}

/* the dialog's memory of prompts and the fields' UTF-8-safe truncation */
static void test_prompt_values(void)
{
    DitValues v;
    ditui_values_init(&v, DIT_MODE_INPAINT);
    const char *const said[] = {"a", "b", "c", "b", "d", "e", "f", ""};
    for (gsize i = 0; i < G_N_ELEMENTS(said); i++)
        ditui_values_remember_prompt(&v, said[i]);
    GString *got = g_string_new(NULL);
    for (gint i = 0; i < DIT_RECENT_PROMPTS; i++)
        g_string_append_printf(got, "%s;", v.recent_prompts[i]);
    CHECK(strcmp(got->str, "f;e;d;b;c;") == 0,
          "recent prompts: newest first, a repeat moved up, five kept: %s", got->str);
    g_string_free(got, TRUE);
    gchar field[6];
    ditui_values_set_string(field, sizeof field, "tulpe\xc3\xa9");
    CHECK(strcmp(field, "tulpe") == 0, "a cut string ends before a character, not inside one");
    ditui_values_set_string(field, sizeof field, "tul\xc3\xa9x");
    CHECK(strcmp(field, "tul\xc3\xa9") == 0, "a character that fits is kept");
}

static gchar *make_model(const char *srcdir)
{
    gchar *root = g_dir_make_tmp("dit-job-XXXXXX", NULL);
    gchar *t = g_build_filename(srcdir, "tests", "golden", "dit_diffusers_p2", NULL);
    gchar *v = g_build_filename(srcdir, "tests", "golden", "vae_kl", NULL);
    gchar *l = g_build_filename(srcdir, "data", "labels", "fashion-mnist.txt", NULL);
    gchar *tl = g_build_filename(root, "transformer", NULL);
    gchar *vl = g_build_filename(root, "vae", NULL);
    gchar *ll = g_build_filename(root, "labels.txt", NULL);
    gchar *labels = NULL;
    gsize len = 0;
    if (!root || symlink(t, tl) || symlink(v, vl) || !g_file_get_contents(l, &labels, &len, NULL) ||
        !g_file_set_contents(ll, labels, (gssize)len, NULL)) {
        fprintf(stderr, "test-job: cannot assemble the test model in %s\n", root);
        g_free(root);
        root = NULL;
    }
    g_free(t), g_free(v), g_free(l), g_free(tl), g_free(vl), g_free(ll), g_free(labels);
    return root;
}

/* the tiny text model: a pipeline folder of links to the golden fixtures */
static gchar *make_text_model(const char *srcdir)
{
    gchar *root = g_dir_make_tmp("dit-job-text-XXXXXX", NULL);
    const char *const links[][2] = {{"transformer", "pixart_tiny/transformer"},
                                    {"text_encoder", "t5_tiny"},
                                    {"tokenizer", "t5_tiny"},
                                    {"vae", "vae_kl"}};
    gboolean ok = root != NULL;
    for (gsize i = 0; ok && i < G_N_ELEMENTS(links); i++) {
        gchar *t = g_build_filename(srcdir, "tests", "golden", links[i][1], NULL);
        gchar *l = g_build_filename(root, links[i][0], NULL);
        ok = symlink(t, l) == 0;
        g_free(t), g_free(l);
    }
    if (!ok) {
        fprintf(stderr, "test-job: cannot assemble the text model in %s\n", root);
        g_free(root);
        root = NULL;
    }
    return root;
}

/* rm -r, for the folders this test made */
static void remove_tree(const char *path)
{
    GDir *dir = g_file_test(path, G_FILE_TEST_IS_SYMLINK) ? NULL : g_dir_open(path, 0, NULL);
    const gchar *name;
    while (dir && (name = g_dir_read_name(dir))) {
        gchar *p = g_build_filename(path, name, NULL);
        remove_tree(p);
        g_free(p);
    }
    if (dir)
        g_dir_close(dir);
    g_remove(path);
}

static void remove_model(const char *root)
{
    const char *const names[] = {"transformer", "vae", "labels.txt"};
    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        gchar *p = g_build_filename(root, names[i], NULL);
        g_unlink(p);
        g_free(p);
    }
    g_rmdir(root);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test-job SRCDIR\n");
        return 2;
    }
    g_setenv("OMP_NUM_THREADS", "1", FALSE);
    gchar *model = make_model(argv[1]);
    gchar *text = make_text_model(argv[1]);
    gchar *cache = g_dir_make_tmp("dit-job-cache-XXXXXX", NULL);
    if (!model || !text || !cache)
        return 1;
    g_setenv("XDG_CACHE_HOME", cache, TRUE); /* the prompt cache */
    test_values(model);
    test_rect(model);
    test_inpaint(model, DIT_MODE_INPAINT, NULL);
    test_inpaint(model, DIT_MODE_IMG2IMG, NULL);
    test_cancel(model);
    test_text(text, model);
    test_inpaint(text, DIT_MODE_INPAINT, "a red tulip");
    test_prompt_values();
    remove_model(model);
    remove_tree(text);
    remove_tree(cache);
    g_free(model), g_free(text), g_free(cache);
    printf("%s\n", failures ? "FAILED" : "PASS");
    return failures ? 1 : 0;
}
