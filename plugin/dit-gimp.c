/* dit-gimp: the GIMP 2.10 plug-in. One of the two files of gimp-dit that
 * include libgimp (dit-gimp3.c is the GIMP 3 one); both only translate
 * between GIMP and dit-plugin.c, which does the run, and ui/, the dialog.
 *
 * Procedures (Filters > Generic > DiT):
 *   plug-in-dit-inpaint   regenerate the selection of the active layer
 *   plug-in-dit-img2img   re-imagine the layer (or the selection's bounds)
 *   plug-in-dit-generate  a new layer of the image's size showing a class
 *   plug-in-dit-outpaint  grow the canvas and fill the border
 * Each writes a NEW layer above the active one (with variations, a layer
 * group of them), inside one undo group, and returns it; the active layer
 * is never modified. Pixels where the selection is 0 are the source
 * layer's, bit for bit, in any precision. The first three keep the
 * argument lists their Script-Fu callers were written for; their "-full"
 * twins (not in the menus) take the arguments added since, except GIMP 3's
 * prompt and negative-prompt: a text model's prompt comes as `class` here
 * (the dialog sets both, kept with the last values).
 *
 * Libgimp is used from the main thread only: sampling runs in a worker
 * (dit-job.c) that the main loop polls for progress and previews. GIMP
 * 2.10 does not tell a plug-in that its progress was cancelled: it kills
 * the plug-in, which is harmless here because nothing is written to the
 * image before sampling has finished. The dialog's Cancel stops sampling
 * within one step. */
#include <libgimp/gimp.h>

#include <glib/gi18n-lib.h>
#include <string.h>

#include "dit-plugin.h"

/* ---- registration --------------------------------------------------------------- */

/* run-mode, image, drawable, then dit_args (dit-plugin.c) in order */
static const GimpParamDef head_args[] = {
    {GIMP_PDB_INT32, "run-mode",
     "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }"},
    {GIMP_PDB_IMAGE, "image", "Input image"},
    {GIMP_PDB_DRAWABLE, "drawable", "The layer to work on; the new layer goes above it"},
};
static const GimpParamDef return_args[] = {
    {GIMP_PDB_LAYER, "layer", "The new layer (with variations, their layer group)"},
};

/* The PDB arguments of a procedure; g_free the array (the strings are static). */
static GimpParamDef *param_defs(DitMode mode, gboolean full, gint *n)
{
    GimpParamDef *defs = g_new(GimpParamDef, G_N_ELEMENTS(head_args) + dit_n_args);
    *n = G_N_ELEMENTS(head_args);
    memcpy(defs, head_args, sizeof head_args);
    for (gint i = 0; i < dit_n_args; i++) {
        const DitArg *a = &dit_args[i];
        if (!ditgimp_arg_applies2(a, mode, full))
            continue;
        defs[*n].type = a->type == DIT_ARG_INT      ? GIMP_PDB_INT32
                        : a->type == DIT_ARG_DOUBLE ? GIMP_PDB_FLOAT
                                                    : GIMP_PDB_STRING;
        defs[*n].name = (gchar *)a->name;
        defs[*n].description = (gchar *)a->blurb;
        (*n)++;
    }
    return defs;
}

static void query(void)
{
    gimp_plugin_domain_register(GETTEXT_PACKAGE, ditgimp_locale_dir());
    for (gint m = 0; m < DIT_MODE_COUNT; m++) {
        const DitProc *p = &dit_procs[m];
        const gboolean first_wave = p->mode != DIT_MODE_OUTPAINT;
        for (gint full = !first_wave; full <= 1; full++) {
            gint n;
            GimpParamDef *defs = param_defs(p->mode, full, &n);
            gchar *name =
                g_strconcat(p->name, full && first_wave ? DIT_PROC_FULL_SUFFIX : "", NULL);
            gimp_install_procedure(name, p->blurb, p->help, DIT_AUTHORS, DIT_COPYRIGHT, DIT_DATE,
                                   full && first_wave ? NULL : p->menu_label, "*", GIMP_PLUGIN, n,
                                   G_N_ELEMENTS(return_args), defs, return_args);
            if (!full || !first_wave)
                gimp_plugin_menu_register(name, DIT_MENU_PATH);
            g_free(name);
            g_free(defs);
        }
    }
}

/* ---- values ------------------------------------------------------------------------ */

/* the last values of this procedure, or the defaults */
static void load_values(const gchar *proc, DitMode mode, DitValues *v)
{
    DitValues stored;
    ditui_values_init(v, mode);
    if (gimp_get_data_size(proc) == (gint)sizeof stored && gimp_get_data(proc, &stored) &&
        stored.version == DIT_VALUES_VERSION)
        *v = stored;
    /* NUL-terminate whatever came back */
    v->model[sizeof v->model - 1] = v->class_name[sizeof v->class_name - 1] = '\0';
    v->sampler[sizeof v->sampler - 1] = v->device[sizeof v->device - 1] = '\0';
    v->mask_mode[sizeof v->mask_mode - 1] = '\0';
    v->prompt[sizeof v->prompt - 1] = v->negative_prompt[sizeof v->negative_prompt - 1] = '\0';
    for (gint i = 0; i < DIT_RECENT_PROMPTS; i++)
        v->recent_prompts[i][sizeof v->recent_prompts[i] - 1] = '\0';
    v->mode = mode;
}

static void values_from_params(DitMode mode, gboolean full, const GimpParam *param, DitValues *v)
{
    gint i = G_N_ELEMENTS(head_args);
    for (gint k = 0; k < dit_n_args; k++) {
        const DitArg *a = &dit_args[k];
        if (!ditgimp_arg_applies2(a, mode, full))
            continue;
        const GimpParam *p = &param[i++];
        if (a->type == DIT_ARG_INT)
            ditgimp_arg_set_number(a, v, p->data.d_int32);
        else if (a->type == DIT_ARG_DOUBLE)
            ditgimp_arg_set_number(a, v, p->data.d_float);
        else /* 2.10 takes the values themselves, "" for the model's sampler */
            ditgimp_arg_set_string(a, v, p->data.d_string);
    }
}

/* ---- GIMP -> DitSource ------------------------------------------------------------------ */

static void read_source(gint32 image, gint32 drawable, DitSource *src)
{
    memset(src, 0, sizeof *src);
    src->indexed = gimp_image_base_type(image) == GIMP_INDEXED ||
                   (drawable != -1 && gimp_drawable_is_indexed(drawable));
    src->image_w = gimp_image_width(image), src->image_h = gimp_image_height(image);
    src->selection_empty = gimp_selection_is_empty(image);
    if (drawable == -1 || !gimp_item_is_valid(drawable))
        return;
    src->is_layer = gimp_item_is_layer(drawable);
    src->is_group = gimp_item_is_group(drawable);
    src->layer_w = gimp_drawable_width(drawable), src->layer_h = gimp_drawable_height(drawable);
    gint x, y, w, h;
    src->has_sel = !src->selection_empty && gimp_drawable_mask_intersect(drawable, &x, &y, &w, &h);
    if (src->has_sel)
        src->sel = (GeglRectangle){x, y, w, h};
    gimp_drawable_offsets(drawable, &src->off_x, &src->off_y);
    src->format = gimp_drawable_get_format(drawable);
    src->pixels = gimp_drawable_get_buffer(drawable);
    src->selection = gimp_drawable_get_buffer(gimp_image_get_selection(image));
}

/* ---- the new layer -------------------------------------------------------------------------- */

/* Result k as a new layer named `name`, not yet in the image: a copy of
 * `drawable`, a new layer of the image's size (generate) or of the grown
 * layer's (outpaint, at the drawable's offsets before the canvas grew) */
static gint32 result_layer(gint32 image, gint32 drawable, const DitOutput *out, gint k,
                           const gchar *name, gint off_x, gint off_y)
{
    const gboolean gray = gimp_image_base_type(image) == GIMP_GRAY;
    gint32 layer;
    if (out->canvas) {
        const GeglRectangle *e = gegl_buffer_get_extent(out->canvas);
        layer = gimp_layer_new(image, name, e->width, e->height, gimp_drawable_type(drawable),
                               100.0, GIMP_LAYER_MODE_NORMAL);
        gimp_layer_set_offsets(layer, off_x, off_y);
    } else if (out->generated) {
        layer =
            gimp_layer_new(image, name, out->region.w, out->region.h,
                           gray ? GIMP_GRAY_IMAGE : GIMP_RGB_IMAGE, 100.0, GIMP_LAYER_MODE_NORMAL);
    } else {
        layer = gimp_layer_copy(drawable);
    }
    gimp_item_set_name(layer, name);
    gimp_item_set_visible(layer, TRUE);
    GeglBuffer *buf = gimp_drawable_get_buffer(layer);
    ditgimp_output_write(out, k, buf, gimp_drawable_get_format(layer));
    g_object_unref(buf);
    return layer;
}

/* Writes the run's results above `drawable` (or at the top): one new
 * layer, or a layer group of the variations; outpaint grows the canvas
 * first. The active item, as one undo step. */
static gint32 write_layer(gint32 image, gint32 drawable, const DitOutput *out)
{
    gint32 parent = -1;
    gint position = 0, off_x = 0, off_y = 0;
    if (drawable != -1 && gimp_item_is_layer(drawable)) {
        parent = gimp_item_get_parent(drawable);
        position = gimp_image_get_item_position(image, drawable);
        gimp_drawable_offsets(drawable, &off_x, &off_y);
    }
    const gint *b = out->border; /* top, left, bottom, right */
    gimp_image_undo_group_start(image);
    if (b[0] || b[1] || b[2] || b[3])
        gimp_image_resize(image, gimp_image_width(image) + b[1] + b[3],
                          gimp_image_height(image) + b[0] + b[2], b[1], b[0]);
    gint32 top;
    if (out->count == 1) {
        top = result_layer(image, drawable, out, 0, out->name, off_x, off_y);
        gimp_image_insert_layer(image, top, parent > 0 ? parent : 0, position);
    } else {
        top = gimp_layer_group_new(image);
        gimp_item_set_name(top, out->name);
        gimp_image_insert_layer(image, top, parent > 0 ? parent : 0, position);
        for (gint k = 0; k < out->count; k++) /* the first seed on top */
            gimp_image_insert_layer(
                image, result_layer(image, drawable, out, k, out->layer_names[k], off_x, off_y),
                top, k);
    }
    gimp_image_set_active_layer(image, top);
    gimp_image_undo_group_end(image);
    return top;
}

static void on_progress(gdouble fraction, gpointer user_data) { gimp_progress_update(fraction); }

/* ---- entry point -------------------------------------------------------------------------------- */

static void run(const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals,
                GimpParam **return_vals)
{
    static GimpParam values[2];
    static gchar *message = NULL;
    GimpPDBStatusType status = GIMP_PDB_SUCCESS;
    GError *error = NULL;
    gint32 layer = -1;

    ditgimp_init_i18n();
    gegl_init(NULL, NULL);
    *nreturn_vals = 1;
    *return_vals = values;
    values[0].type = GIMP_PDB_STATUS;

    gboolean full = FALSE;
    const DitProc *proc = ditgimp_proc_lookup(name, &full);
    const GimpRunMode run_mode = nparams > 0 ? param[0].data.d_int32 : GIMP_RUN_NONINTERACTIVE;
    if (!proc || nparams < 3) {
        values[0].data.d_status = GIMP_PDB_CALLING_ERROR;
        return;
    }
    const DitMode mode = proc->mode;
    const gint expected = G_N_ELEMENTS(head_args) + ditgimp_arg_count2(mode, full);
    const gint32 image = param[1].data.d_image, drawable = param[2].data.d_drawable;

    DitValues v;
    DitSource src;
    DitDialog *dialog = NULL;
    read_source(image, drawable, &src);
    load_values(name, mode, &v);
    switch (run_mode) {
    case GIMP_RUN_INTERACTIVE:
        /* say what is wrong before asking for settings */
        if (!ditgimp_source_check(&src, mode, &error) || !ditgimp_gtk_init(&error)) {
            status = GIMP_PDB_EXECUTION_ERROR;
            break;
        }
        dialog = ditgimp_dialog_new(&v, &src);
        ditui_dialog_set_transient_for_xid(dialog,
                                           (guint64)(guint32)gimp_progress_get_window_handle());
        if (!ditgimp_dialog_ask(dialog, &v)) {
            status = GIMP_PDB_CANCEL;
            break;
        }
        /* GIMP stays usable while the dialog is open: take the selection as it is now */
        ditgimp_source_clear(&src);
        read_source(image, drawable, &src);
        break;
    case GIMP_RUN_NONINTERACTIVE:
        if (nparams != expected) {
            status = GIMP_PDB_CALLING_ERROR;
            break;
        }
        ditui_values_init(&v, mode);
        values_from_params(mode, full, param, &v);
        break;
    case GIMP_RUN_WITH_LAST_VALS: break;
    default: status = GIMP_PDB_CALLING_ERROR;
    }

    if (status == GIMP_PDB_SUCCESS) {
        DitOutput out;
        if (ditgimp_source_check(&src, (DitMode)v.mode, &error)) /* no progress bar for a refusal */
            gimp_progress_init(ditgimp_progress_label((DitMode)v.mode));
        /* interactive: each kept result may be followed by another, new seed */
        while (!error && ditgimp_run(&v, &src, dialog, on_progress, NULL, &out, &error)) {
            layer = write_layer(image, drawable, &out);
            gimp_displays_flush();
            const gboolean again = ditgimp_dialog_again(dialog, &out, &v);
            ditgimp_output_clear(&out);
            if (!again)
                break;
            ditgimp_source_clear(&src);
            read_source(image, drawable, &src);
            gimp_progress_init(ditgimp_progress_label((DitMode)v.mode));
        }
        if (layer == -1)
            status = g_error_matches(error, DIT_JOB_ERROR, DIT_JOB_ERROR_CANCELLED)
                         ? GIMP_PDB_CANCEL
                         : GIMP_PDB_EXECUTION_ERROR;
        else if (error) { /* a run after a kept one: the kept ones stay */
            if (!g_error_matches(error, DIT_JOB_ERROR, DIT_JOB_ERROR_CANCELLED))
                gimp_message(error->message);
            g_clear_error(&error);
        }
    }
    ditui_dialog_destroy(dialog);
    ditgimp_source_clear(&src);

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
