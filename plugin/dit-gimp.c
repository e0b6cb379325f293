/* dit-gimp: the GIMP 2.10 plug-in. The only file of gimp-dit that includes
 * libgimp; a GIMP 3 port replaces this file and keeps dit-job.c and ui/.
 *
 * Procedures (Filters > Generic > DiT):
 *   plug-in-dit-inpaint   regenerate the selection of the active layer
 *   plug-in-dit-img2img   re-imagine the layer (or the selection's bounds)
 *   plug-in-dit-generate  a new layer of the image's size showing a class
 * Each writes a NEW layer above the active one, inside one undo group, and
 * returns it; the active layer is never modified. Pixels where the
 * selection is 0 are the source layer's, bit for bit, in any precision.
 *
 * Libgimp is used from the main thread only: sampling runs in a worker
 * (dit-job.c) that the main loop polls for progress and previews. GIMP
 * 2.10 does not tell a plug-in that its progress was cancelled: it kills
 * the plug-in, which is harmless here because nothing is written to the
 * image before sampling has finished. The dialog's Cancel stops sampling
 * within one step. */
#include <libgimp/gimp.h>

#include <glib/gi18n-lib.h>
#include <locale.h>
#include <string.h>

#include "dialog.h"
#include "dit-job.h"

#define PROC_INPAINT "plug-in-dit-inpaint"
#define PROC_IMG2IMG "plug-in-dit-img2img"
#define PROC_GENERATE "plug-in-dit-generate"
#define MENU_PATH "<Image>/Filters/Generic/DiT"

/* context around an inpaint selection: this fraction of its longer side */
#define CONTEXT_PAD 0.2

/* ---- i18n ------------------------------------------------------------------- */

/* $DIT_LOCALEDIR (an uninstalled build: the build tree's po/ output), else
 * the install prefix's locale dir */
static const gchar *locale_dir(void)
{
    const gchar *env = g_getenv("DIT_LOCALEDIR");
    return env && *env ? env : DIT_LOCALEDIR;
}

static void init_i18n(void)
{
    setlocale(LC_ALL, "");
    bindtextdomain(GETTEXT_PACKAGE, locale_dir());
    bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
    textdomain(GETTEXT_PACKAGE);
}

/* ---- registration --------------------------------------------------------------- */

/* run-mode, image, drawable, then ours: one name per setting everywhere */
#define ARG_RUN_MODE {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }"}
#define ARG_IMAGE {GIMP_PDB_IMAGE, "image", "Input image"}
#define ARG_DRAWABLE {GIMP_PDB_DRAWABLE, "drawable", "The layer to work on; the new layer goes above it"}
#define ARG_MODEL {GIMP_PDB_STRING, "model", "DiT model: a .safetensors file, a diffusers folder or a pipeline folder with transformer/ and vae/ (\"\" = the embedded default model)"}
#define ARG_CLASS {GIMP_PDB_STRING, "class", "Class id or label name, any case (\"\" = class 0)"}
#define ARG_STEPS {GIMP_PDB_INT32, "steps", "Sampling steps (1 - 1000, 0 = the model's default; default 20)"}
#define ARG_STRENGTH {GIMP_PDB_FLOAT, "strength", "0 keeps the image, 1 starts from noise (0 - 1; default 1.0 inpaint, 0.75 img2img)"}
#define ARG_GUIDANCE {GIMP_PDB_FLOAT, "guidance", "Classifier-free guidance scale (0 - 100, <= 1 = off; default 4.0)"}
#define ARG_SEED {GIMP_PDB_INT32, "seed", "Noise seed (0 - 2147483647; -1 = random, named in the new layer)"}
#define ARG_SAMPLER {GIMP_PDB_STRING, "sampler", "ddpm, ddim, dpm++2m, euler or cold (\"\" = the model's default)"}
#define ARG_GROW {GIMP_PDB_INT32, "grow", "Inpaint: grow the mask by N latent pixels (0 - 64; default 0)"}
#define ARG_DEVICE {GIMP_PDB_STRING, "device", "auto, cpu or cuda (default auto)"}

static const GimpParamDef edit_args[] = {
    ARG_RUN_MODE, ARG_IMAGE, ARG_DRAWABLE, ARG_MODEL, ARG_CLASS, ARG_STEPS,
    ARG_STRENGTH, ARG_GUIDANCE, ARG_SEED, ARG_SAMPLER, ARG_GROW, ARG_DEVICE,
};
static const GimpParamDef generate_args[] = {
    ARG_RUN_MODE, ARG_IMAGE, ARG_DRAWABLE, ARG_MODEL, ARG_CLASS,
    ARG_STEPS, ARG_GUIDANCE, ARG_SEED, ARG_SAMPLER, ARG_DEVICE,
};
static const GimpParamDef return_args[] = {
    {GIMP_PDB_LAYER, "layer", "The new layer"},
};

static void query(void)
{
    static const struct {
        const gchar *name, *blurb, *help, *label;
        const GimpParamDef *args;
        gint n_args;
    } procs[] = {
        {PROC_INPAINT, N_("Regenerate the selection with a Diffusion Transformer"),
         N_("Fills the selected part of the active layer with new content of a class, "
         "sampled by a DiT on the selection and its surroundings. The result is a new "
         "layer above the active one; outside the selection it is the active layer's "
         "pixels, unchanged. Soft selections blend softly. Needs a selection."),
         N_("DiT _Inpaint..."), edit_args, G_N_ELEMENTS(edit_args)},
        {PROC_IMG2IMG, N_("Re-imagine the layer with a Diffusion Transformer"),
         N_("Re-imagines the active layer (or the part inside the selection's bounds) as the "
         "chosen class: strength 0 keeps the image, 1 starts from noise. The result is a "
         "new layer above the active one with the source's alpha; pixels outside the "
         "selection stay unchanged."),
         N_("DiT _Image to Image..."), edit_args, G_N_ELEMENTS(edit_args)},
        {PROC_GENERATE, N_("Generate an image of a class with a Diffusion Transformer"),
         N_("Samples a new image of the chosen class at the model's resolution, scaled to "
         "the image's size, into a new layer above the active one."),
         N_("DiT _Generate..."), generate_args, G_N_ELEMENTS(generate_args)},
    };
    gimp_plugin_domain_register(GETTEXT_PACKAGE, locale_dir());
    for (gsize i = 0; i < G_N_ELEMENTS(procs); i++) {
        gimp_install_procedure(procs[i].name, procs[i].blurb, procs[i].help, "gimp-dit authors",
                               "gimp-dit authors (MIT)", "2025", procs[i].label, "*",
                               GIMP_PLUGIN, procs[i].n_args, G_N_ELEMENTS(return_args),
                               procs[i].args, return_args);
        gimp_plugin_menu_register(procs[i].name, MENU_PATH);
    }
}

/* ---- values ------------------------------------------------------------------------ */

static DitMode mode_of(const gchar *proc)
{
    if (strcmp(proc, PROC_IMG2IMG) == 0)
        return DIT_MODE_IMG2IMG;
    if (strcmp(proc, PROC_GENERATE) == 0)
        return DIT_MODE_GENERATE;
    return DIT_MODE_INPAINT;
}

/* the last values of this procedure, or the defaults */
static void load_values(const gchar *proc, DitMode mode, DitValues *v)
{
    DitValues stored;
    dit_values_init(v, mode);
    if (gimp_get_data_size(proc) == (gint)sizeof stored && gimp_get_data(proc, &stored) &&
        stored.version == DIT_VALUES_VERSION)
        *v = stored;
    /* NUL-terminate whatever came back */
    v->model[sizeof v->model - 1] = v->class_name[sizeof v->class_name - 1] = '\0';
    v->sampler[sizeof v->sampler - 1] = v->device[sizeof v->device - 1] = '\0';
    v->mode = mode;
}

static void values_from_params(DitMode mode, const GimpParam *param, DitValues *v)
{
    gint i = 3;
    dit_values_set_string(v->model, sizeof v->model, param[i++].data.d_string);
    dit_values_set_string(v->class_name, sizeof v->class_name, param[i++].data.d_string);
    v->steps = param[i++].data.d_int32;
    if (mode != DIT_MODE_GENERATE)
        v->strength = param[i++].data.d_float;
    v->guidance = param[i++].data.d_float;
    v->seed = param[i++].data.d_int32;
    dit_values_set_string(v->sampler, sizeof v->sampler, param[i++].data.d_string);
    if (mode != DIT_MODE_GENERATE)
        v->grow = param[i++].data.d_int32;
    dit_values_set_string(v->device, sizeof v->device, param[i++].data.d_string);
}

/* ---- checks ---------------------------------------------------------------------------- */

static gboolean check_input(gint32 image, gint32 drawable, DitMode mode, GError **error)
{
    if (gimp_image_base_type(image) == GIMP_INDEXED || gimp_drawable_is_indexed(drawable)) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("DiT does not work on indexed images: convert the image to RGB or "
                      "grayscale first (Image > Mode)"));
        return FALSE;
    }
    if (mode == DIT_MODE_GENERATE)
        return TRUE;
    if (!gimp_item_is_layer(drawable)) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("DiT works on layers: select a layer, not a channel or a layer mask"));
        return FALSE;
    }
    if (gimp_item_is_group(drawable)) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("DiT cannot work on a layer group: select one of its layers"));
        return FALSE;
    }
    if (mode == DIT_MODE_INPAINT && gimp_selection_is_empty(image)) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Inpainting needs a selection: select the region to regenerate first"));
        return FALSE;
    }
    gint x, y, w, h;
    if (!gimp_selection_is_empty(image) && !gimp_drawable_mask_intersect(drawable, &x, &y, &w, &h)) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("The selection does not overlap the active layer"));
        return FALSE;
    }
    return TRUE;
}

/* ---- pixels ---------------------------------------------------------------------------- */

/* The region of the layer to work on (drawable coordinates) before the
 * model is known: the selection's bounds, padded for inpainting; the whole
 * layer for img2img without a selection. */
typedef struct {
    gint x, y, w, h;
    gboolean selection; /* a selection limits what changes */
} Region;

static Region region_of(gint32 image, gint32 drawable, DitMode mode, const DitJob *job)
{
    Region r = {0, 0, gimp_drawable_width(drawable), gimp_drawable_height(drawable), FALSE};
    if (mode == DIT_MODE_GENERATE) {
        r.w = gimp_image_width(image), r.h = gimp_image_height(image);
        return r;
    }
    gint x, y, w, h;
    if (gimp_selection_is_empty(image) || !gimp_drawable_mask_intersect(drawable, &x, &y, &w, &h))
        return r;
    r.selection = TRUE;
    if (mode == DIT_MODE_IMG2IMG) {
        r.x = x, r.y = y, r.w = w, r.h = h;
    } else if (job) {
        dit_job_context_rect(job, x, y, w, h, r.w, r.h, CONTEXT_PAD, &r.x, &r.y, &r.w, &r.h);
    } else { /* preview before the model is loaded: the same padding, no unit */
        const gint pad = (gint)(CONTEXT_PAD * MAX(w, h) + 0.999);
        const gint x1 = MIN(r.w, x + w + pad), y1 = MIN(r.h, y + h + pad);
        r.x = MAX(0, x - pad), r.y = MAX(0, y - pad);
        r.w = x1 - r.x, r.h = y1 - r.y;
    }
    return r;
}

/* R'G'B'A float in the drawable's own colour space */
static const Babl *float_format(gint32 drawable)
{
    return babl_format_with_space("R'G'B'A float", gimp_drawable_get_format(drawable));
}

/* Reads the region as RGBA floats (h, w, 4) in [0, 1]. */
static gfloat *read_rgba(gint32 drawable, const Region *r)
{
    gfloat *rgba = g_try_malloc((gsize)r->w * r->h * 4 * sizeof *rgba);
    if (!rgba)
        return NULL;
    GeglBuffer *buf = gimp_drawable_get_buffer(drawable);
    gegl_buffer_get(buf, GEGL_RECTANGLE(r->x, r->y, r->w, r->h), 1.0, float_format(drawable),
                    rgba, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    g_object_unref(buf);
    return rgba;
}

/* The selection over the region as (h, w) floats in [0, 1]. */
static gfloat *read_mask(gint32 image, gint32 drawable, const Region *r)
{
    gint ox, oy;
    gimp_drawable_offsets(drawable, &ox, &oy);
    gfloat *mask = g_try_malloc((gsize)r->w * r->h * sizeof *mask);
    if (!mask)
        return NULL;
    GeglBuffer *sel = gimp_drawable_get_buffer(gimp_image_get_selection(image));
    gegl_buffer_get(sel, GEGL_RECTANGLE(r->x + ox, r->y + oy, r->w, r->h), 1.0,
                    babl_format("Y float"), mask, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    g_object_unref(sel);
    for (gsize i = 0; i < (gsize)r->w * r->h; i++)
        mask[i] = CLAMP(mask[i], 0.0f, 1.0f);
    return mask;
}

/* A small RGB picture of the region for the dialog's preview. */
static guint8 *read_preview(gint32 drawable, const Region *r, gint *pw, gint *ph)
{
    const gdouble s = MIN(1.0, 256.0 / MAX(r->w, r->h));
    *pw = MAX(1, (gint)(r->w * s)), *ph = MAX(1, (gint)(r->h * s));
    guint8 *rgb = g_malloc((gsize)*pw * *ph * 3);
    GeglBuffer *buf = gimp_drawable_get_buffer(drawable);
    gegl_buffer_get(buf, GEGL_RECTANGLE((gint)(r->x * s), (gint)(r->y * s), *pw, *ph), s,
                    babl_format_with_space("R'G'B' u8", gimp_drawable_get_format(drawable)), rgb,
                    GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    g_object_unref(buf);
    return rgb;
}

/* ---- running ----------------------------------------------------------------------------- */

typedef struct {
    DitJob *job;
    DitDialog *dialog;
    GMainLoop *loop;
    gint last_step;
} Poll;

static gboolean on_poll(gpointer data)
{
    Poll *p = data;
    gint step, total;
    const gboolean done = dit_job_poll(p->job, &step, &total);
    if (step != p->last_step && total > 0) {
        p->last_step = step;
        const gdouble f = (gdouble)step / total;
        gimp_progress_update(0.05 + 0.9 * f);
        if (p->dialog) {
            gchar *text = g_strdup_printf(_("Step %d of %d"), step, total);
            dit_dialog_set_progress(p->dialog, f, text);
            g_free(text);
        }
    }
    guint8 *rgb;
    gint w, h;
    if (p->dialog && dit_job_preview(p->job, &rgb, &w, &h)) {
        dit_dialog_set_preview(p->dialog, rgb, w, h, w * 3);
        g_free(rgb);
    }
    if (done) {
        g_main_loop_quit(p->loop);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

/* the dialog's Cancel (or its close button) while sampling */
static void on_running_response(GtkDialog *dialog, gint response, gpointer job)
{
    dit_job_cancel(job);
}

/* Samples and waits, keeping GIMP's progress and the dialog up to date. */
static gfloat *sample(DitJob *job, DitDialog *dialog, gfloat *rgb, gfloat *mask, gint w, gint h,
                      GError **error)
{
    if (!dit_job_start(job, rgb, mask, w, h, error))
        return NULL;
    Poll p = {job, dialog, g_main_loop_new(NULL, FALSE), -1};
    gulong handler = 0;
    if (dialog)
        handler = g_signal_connect(dit_dialog_get_widget(dialog), "response",
                                   G_CALLBACK(on_running_response), job);
    g_timeout_add(50, on_poll, &p);
    g_main_loop_run(p.loop);
    g_main_loop_unref(p.loop);
    if (handler)
        g_signal_handler_disconnect(dit_dialog_get_widget(dialog), handler);
    return dit_job_finish(job, error);
}

/* ---- the new layer -------------------------------------------------------------------------- */

/* Inserts `layer` above `drawable` (or at the top) as the active layer,
 * as one undo step. */
static void insert_layer(gint32 image, gint32 drawable, gint32 layer)
{
    gint32 parent = -1;
    gint position = 0;
    if (drawable != -1 && gimp_item_is_layer(drawable)) {
        parent = gimp_item_get_parent(drawable);
        position = gimp_image_get_item_position(image, drawable);
    }
    gimp_image_undo_group_start(image);
    gimp_image_insert_layer(image, layer, parent > 0 ? parent : 0, position);
    gimp_image_set_active_layer(image, layer);
    gimp_image_undo_group_end(image);
}

/* Writes result (3, r.h, r.w) into a copy of the layer: converted to the
 * layer's own format where the mask is > 0, the source's bytes elsewhere. */
static gint32 write_edit(gint32 image, gint32 drawable, const Region *r, const gchar *name,
                         const gfloat *result, const gfloat *rgba, const gfloat *mask,
                         GError **error)
{
    const gsize n = (gsize)r->w * r->h;
    const Babl *native = gimp_drawable_get_format(drawable);
    const gint bpp = babl_format_get_bytes_per_pixel(native);
    guint8 *orig = g_try_malloc(n * bpp), *out = g_try_malloc(n * bpp);
    gfloat *px = g_try_malloc(n * 4 * sizeof *px);
    if (!orig || !out || !px) {
        g_free(orig), g_free(out), g_free(px);
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT, _("Out of memory"));
        return -1;
    }
    /* the layer, as it is, is the new layer's starting point */
    gint32 layer = gimp_layer_copy(drawable);
    gimp_item_set_name(layer, name);
    gimp_item_set_visible(layer, TRUE);

    GeglBuffer *src = gimp_drawable_get_buffer(drawable);
    gegl_buffer_get(src, GEGL_RECTANGLE(r->x, r->y, r->w, r->h), 1.0, native, orig,
                    GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    g_object_unref(src);
    for (gsize i = 0; i < n; i++) {
        for (gint c = 0; c < 3; c++)
            px[4 * i + c] = (result[c * n + i] + 1.0f) * 0.5f;
        px[4 * i + 3] = rgba[4 * i + 3]; /* the source's alpha */
    }
    babl_process(babl_fish(float_format(drawable), native), px, out, (long)n);
    for (gsize i = 0; i < n; i++)
        if (mask && mask[i] == 0.0f)
            memcpy(out + i * bpp, orig + i * bpp, bpp);
    GeglBuffer *dst = gimp_drawable_get_buffer(layer);
    gegl_buffer_set(dst, GEGL_RECTANGLE(r->x, r->y, r->w, r->h), 0, native, out,
                    GEGL_AUTO_ROWSTRIDE);
    g_object_unref(dst);
    g_free(orig), g_free(out), g_free(px);

    insert_layer(image, drawable, layer);
    gimp_drawable_update(layer, r->x, r->y, r->w, r->h);
    return layer;
}

/* A new opaque layer of the image's size holding result (3, h, w). */
static gint32 write_generated(gint32 image, gint32 drawable, const Region *r, const gchar *name,
                              const gfloat *result)
{
    const gboolean gray = gimp_image_base_type(image) == GIMP_GRAY;
    gint32 layer = gimp_layer_new(image, name, r->w, r->h, gray ? GIMP_GRAY_IMAGE : GIMP_RGB_IMAGE,
                                  100.0, GIMP_LAYER_MODE_NORMAL);
    const gsize n = (gsize)r->w * r->h;
    gfloat *px = g_malloc(n * 4 * sizeof *px);
    for (gsize i = 0; i < n; i++) {
        for (gint c = 0; c < 3; c++)
            px[4 * i + c] = (result[c * n + i] + 1.0f) * 0.5f;
        px[4 * i + 3] = 1.0f;
    }
    GeglBuffer *dst = gimp_drawable_get_buffer(layer);
    gegl_buffer_set(dst, GEGL_RECTANGLE(0, 0, r->w, r->h), 0, float_format(layer), px,
                    GEGL_AUTO_ROWSTRIDE);
    g_object_unref(dst);
    g_free(px);
    insert_layer(image, drawable, layer);
    gimp_drawable_update(layer, 0, 0, r->w, r->h);
    return layer;
}

/* ---- one run ----------------------------------------------------------------------------------- */

static const gchar *progress_label(DitMode mode)
{
    switch (mode) {
    case DIT_MODE_IMG2IMG: return _("DiT: re-imagining the layer");
    case DIT_MODE_GENERATE: return _("DiT: generating");
    default: return _("DiT: inpainting the selection");
    }
}

static gint32 process(gint32 image, gint32 drawable, const DitValues *v, DitDialog *dialog,
                      GError **error)
{
    const DitMode mode = (DitMode)v->mode;
    if (!check_input(image, drawable, mode, error))
        return -1;
    gimp_progress_init(progress_label(mode));
    if (dialog)
        dit_dialog_set_progress(dialog, 0.0, _("Loading the model…"));
    while (dialog && g_main_context_iteration(NULL, FALSE))
        ; /* show "loading" before the main thread blocks in the loader */
    DitJob *job = dit_job_new(v, error);
    if (!job)
        return -1;
    gimp_progress_update(0.05);

    const Region r = region_of(image, drawable, mode, job);
    gfloat *rgba = NULL, *rgb = NULL, *mask = NULL, *result = NULL;
    gint32 layer = -1;
    if (mode != DIT_MODE_GENERATE) {
        const gsize n = (gsize)r.w * r.h;
        rgba = read_rgba(drawable, &r);
        rgb = rgba ? g_try_malloc(n * 3 * sizeof *rgb) : NULL;
        mask = r.selection ? read_mask(image, drawable, &r) : NULL;
        if (!rgba || !rgb || (r.selection && !mask)) {
            g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                        _("Out of memory reading a %d x %d region"), r.w, r.h);
            g_free(rgba), g_free(rgb), g_free(mask);
            dit_job_free(job);
            return -1;
        }
        for (gsize i = 0; i < n; i++) /* [0, 1] RGBA -> planar [-1, 1] RGB */
            for (gint c = 0; c < 3; c++)
                rgb[c * n + i] = rgba[4 * i + c] * 2.0f - 1.0f;
    }
    /* the job owns rgb and mask from here; the mask stays readable until it is freed */
    result = sample(job, dialog, rgb, mask, r.w, r.h, error);
    if (result) {
        gchar *name = g_strdup_printf(_("DiT %s seed %d"), dit_job_class_label(job),
                                      dit_job_seed(job));
        if (mode == DIT_MODE_GENERATE)
            layer = write_generated(image, drawable, &r, name, result);
        else
            layer = write_edit(image, drawable, &r, name, result, rgba, mask, error);
        g_free(name);
        g_free(result);
    }
    gimp_progress_update(1.0);
    g_free(rgba);
    dit_job_free(job); /* frees rgb and mask */
    return layer;
}

/* ---- the dialog ------------------------------------------------------------------------------- */

static gchar **labels_for_dialog(const gchar *model_path, gpointer user_data)
{
    return dit_job_labels_for_model(model_path);
}

/* Shows the dialog; NULL when it was cancelled (or, with *error set, when
 * there is no display to show it on). */
static DitDialog *open_dialog(const gchar *proc, gint32 image, gint32 drawable, DitValues *v,
                              GError **error)
{
    static const gchar *const titles[] = {N_("DiT Inpaint"), N_("DiT Image to Image"),
                                          N_("DiT Generate")};
    if (!gtk_init_check(NULL, NULL)) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("There is no display for the dialog: run it non-interactively"));
        return NULL;
    }
    gchar *def = dit_job_default_model();
    DitDialog *d = dit_dialog_new(_(titles[v->mode]), v, v->mode != DIT_MODE_GENERATE, def,
                                  labels_for_dialog, NULL);
    g_free(def);
    dit_dialog_set_transient_for_xid(d, (guint64)(guint32)gimp_progress_get_window_handle());
    if (v->mode != DIT_MODE_GENERATE) {
        const Region r = region_of(image, drawable, v->mode, NULL);
        gint w, h;
        guint8 *rgb = read_preview(drawable, &r, &w, &h);
        dit_dialog_set_preview(d, rgb, w, h, w * 3);
        g_free(rgb);
    }
    if (dit_dialog_run(d) != GTK_RESPONSE_OK) {
        dit_dialog_destroy(d);
        return NULL;
    }
    dit_dialog_get_values(d, v);
    dit_dialog_set_running(d, TRUE);
    return d;
}

/* ---- entry point -------------------------------------------------------------------------------- */

static void run(const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals,
                GimpParam **return_vals)
{
    static GimpParam values[2];
    static gchar *message = NULL;
    GimpPDBStatusType status = GIMP_PDB_SUCCESS;
    GError *error = NULL;
    gint32 layer = -1;

    init_i18n();
    gegl_init(NULL, NULL);
    *nreturn_vals = 1;
    *return_vals = values;
    values[0].type = GIMP_PDB_STATUS;

    const DitMode mode = mode_of(name);
    const gint expected = mode == DIT_MODE_GENERATE ? G_N_ELEMENTS(generate_args)
                                                    : G_N_ELEMENTS(edit_args);
    const GimpRunMode run_mode = nparams > 0 ? param[0].data.d_int32 : GIMP_RUN_NONINTERACTIVE;
    if (nparams < 3) {
        values[0].data.d_status = GIMP_PDB_CALLING_ERROR;
        return;
    }
    const gint32 image = param[1].data.d_image, drawable = param[2].data.d_drawable;

    DitValues v;
    DitDialog *dialog = NULL;
    load_values(name, mode, &v);
    switch (run_mode) {
    case GIMP_RUN_INTERACTIVE:
        /* say what is wrong before asking for settings */
        if (!check_input(image, drawable, mode, &error)) {
            status = GIMP_PDB_EXECUTION_ERROR;
            break;
        }
        dialog = open_dialog(name, image, drawable, &v, &error);
        if (!dialog)
            status = error ? GIMP_PDB_EXECUTION_ERROR : GIMP_PDB_CANCEL;
        break;
    case GIMP_RUN_NONINTERACTIVE:
        if (nparams != expected) {
            status = GIMP_PDB_CALLING_ERROR;
            break;
        }
        dit_values_init(&v, mode);
        values_from_params(mode, param, &v);
        break;
    case GIMP_RUN_WITH_LAST_VALS:
        break;
    default:
        status = GIMP_PDB_CALLING_ERROR;
    }

    if (status == GIMP_PDB_SUCCESS) {
        layer = process(image, drawable, &v, dialog, &error);
        if (layer == -1)
            status = g_error_matches(error, DIT_JOB_ERROR, DIT_JOB_ERROR_CANCELLED)
                         ? GIMP_PDB_CANCEL
                         : GIMP_PDB_EXECUTION_ERROR;
    }
    dit_dialog_destroy(dialog);

    if (status == GIMP_PDB_SUCCESS) {
        if (run_mode == GIMP_RUN_INTERACTIVE)
            gimp_set_data(name, &v, sizeof v);
        if (run_mode != GIMP_RUN_NONINTERACTIVE)
            gimp_displays_flush();
        *nreturn_vals = 2;
        values[1].type = GIMP_PDB_LAYER;
        values[1].data.d_layer = layer;
    } else if (error) {
        /* GIMP shows it: a message box in the UI, the batch error in Script-Fu */
        g_free(message);
        message = g_strdup(error->message);
        *nreturn_vals = 2;
        values[1].type = GIMP_PDB_STRING;
        values[1].data.d_string = message;
    }
    g_clear_error(&error);
    values[0].data.d_status = status;
}

const GimpPlugInInfo PLUG_IN_INFO = {
    NULL,  /* init */
    NULL,  /* quit */
    query, /* query */
    run,   /* run */
};

MAIN()
