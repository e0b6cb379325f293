/* dit-gimp3: the GIMP 3 plug-in, the libgimp-3.0 twin of dit-gimp.c (GIMP
 * 2.10). Same procedures, arguments, defaults, ranges, menu path, layer
 * names and errors; both files only translate between GIMP and
 * dit-plugin.c (the run) and ui/ (the dialog).
 *
 * Procedures (Filters > Generic > DiT), GimpImageProcedures of a
 * GimpPlugIn subclass; their arguments after run-mode, image and drawables
 * come from dit_args (dit-plugin.c): typed and bounded, sampler and device
 * as GimpChoice nicks (sampler "default" is 2.10's ""):
 *   plug-in-dit-inpaint   regenerate the selection of the selected layer
 *   plug-in-dit-img2img   re-imagine the layer (or the selection's bounds)
 *   plug-in-dit-generate  a new layer of the image's size showing a class
 *   plug-in-dit-outpaint  grow the canvas and fill the border
 * A text model (PixArt) takes the named prompt and negative-prompt (GIMP 3
 * only: GIMP 2.10's procedures take its prompt as `class`).
 * Each writes a NEW layer above the source, inside one undo group, and
 * returns it. DiT works on one layer: several selected drawables are a
 * calling error.
 *
 * GIMP 3 hands the run a GimpProcedureConfig that already holds the last
 * used values (interactive and with-last-vals runs) and stores them again
 * after a successful interactive run; the dialog (ui/, GTK 3 like
 * libgimpui-3.0) edits them. As in 2.10, cancelling GIMP's progress bar
 * ends the plug-in, which writes nothing before sampling has finished; the
 * dialog's Cancel stops sampling within one step.
 *
 * Translations: the gimp-dit catalogues installed beside the binary
 * (dit-gimp3/locale/, GIMP 3's place for them), or $DIT_LOCALEDIR. */
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include <glib/gi18n-lib.h>
#include <string.h>

#include "dit-plugin.h"

#define PLUG_IN_BINARY "dit-gimp3"
/* the aux argument (stored with the last values) behind the dialog's recent prompts */
#define RECENT_PROMPTS "recent-prompts"

#define DIT_TYPE_GIMP3 (dit_gimp3_get_type())
G_DECLARE_FINAL_TYPE(DitGimp3, dit_gimp3, DIT, GIMP3, GimpPlugIn)

struct _DitGimp3 {
    GimpPlugIn parent_instance;
};

G_DEFINE_TYPE(DitGimp3, dit_gimp3, GIMP_TYPE_PLUG_IN)

static GimpValueArray *run(GimpProcedure *procedure, GimpRunMode run_mode, GimpImage *image,
                           GimpDrawable **drawables, GimpProcedureConfig *config,
                           gpointer run_data);

/* ---- registration --------------------------------------------------------------- */

static GList *query_procedures(GimpPlugIn *plug_in)
{
    GList *list = NULL;
    for (gint m = 0; m < DIT_MODE_COUNT; m++)
        list = g_list_append(list, g_strdup(dit_procs[m].name));
    return list;
}

/* dit_args as typed GimpProcedure arguments; defaults from ditui_values_init */
static void add_arguments(GimpProcedure *procedure, DitMode mode)
{
    DitValues def;
    ditui_values_init(&def, mode);
    for (gint i = 0; i < dit_n_args; i++) {
        const DitArg *a = &dit_args[i];
        if (!ditgimp_arg_applies(a, mode))
            continue;
        const gchar *blurb = a->blurb3 ? a->blurb3 : a->blurb;
        switch (a->type) {
        case DIT_ARG_INT:
            gimp_procedure_add_int_argument(procedure, a->name, a->nick, blurb, (gint)a->min,
                                            (gint)a->max, (gint)ditgimp_arg_get_number(a, &def),
                                            G_PARAM_READWRITE);
            break;
        case DIT_ARG_DOUBLE:
            gimp_procedure_add_double_argument(procedure, a->name, a->nick, blurb, a->min, a->max,
                                               ditgimp_arg_get_number(a, &def), G_PARAM_READWRITE);
            break;
        case DIT_ARG_CHOICE: {
            GimpChoice *choice = gimp_choice_new();
            for (gint k = 0; a->choices[k].nick; k++)
                gimp_choice_add(choice, a->choices[k].nick, k, _(a->choices[k].label), NULL);
            gimp_procedure_add_choice_argument(procedure, a->name, a->nick, blurb, choice,
                                               ditgimp_arg_get_nick(a, &def), G_PARAM_READWRITE);
            break;
        }
        case DIT_ARG_STRING:
            gimp_procedure_add_string_argument(procedure, a->name, a->nick, blurb,
                                               ditgimp_arg_get_string(a, &def), G_PARAM_READWRITE);
            break;
        }
    }
}

static GimpProcedure *create_procedure(GimpPlugIn *plug_in, const gchar *name)
{
    gboolean full;
    const DitProc *p = ditgimp_proc_lookup(name, &full);
    if (!p || (full && p->mode != DIT_MODE_OUTPAINT)) /* GIMP 3 has no -full twins */
        return NULL;
    GimpProcedure *procedure =
        gimp_image_procedure_new(plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN, run, (gpointer)p, NULL);
    /* indexed images too: the plug-in says what to do about them */
    gimp_procedure_set_image_types(procedure, "*");
    gimp_procedure_set_sensitivity_mask(procedure, p->mode == DIT_MODE_GENERATE
                                                       ? GIMP_PROCEDURE_SENSITIVE_DRAWABLE |
                                                             GIMP_PROCEDURE_SENSITIVE_NO_DRAWABLES
                                                       : GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
    gimp_procedure_set_menu_label(procedure, _(p->menu_label));
    gimp_procedure_add_menu_path(procedure, DIT_MENU_PATH);
    gimp_procedure_set_documentation(procedure, _(p->blurb), _(p->help), name);
    gimp_procedure_set_attribution(procedure, DIT_AUTHORS, DIT_COPYRIGHT, DIT_DATE);
    add_arguments(procedure, p->mode);
    /* kept with the last values, not a PDB argument: what the dialog offers again */
    gimp_procedure_add_string_array_aux_argument(procedure, RECENT_PROMPTS, "Recent prompts",
                                                 "The dialog's last prompts, newest first",
                                                 G_PARAM_READWRITE);
    gimp_procedure_add_layer_return_value(procedure, "layer", "Layer",
                                          "The new layer (with variations, their layer group)",
                                          FALSE, G_PARAM_READWRITE);
    return procedure;
}

/* GIMP 3 binds the gimp-dit domain to the catalogues installed beside the
 * binary (dit-gimp3/locale/, the GIMP 3 way). An uninstalled build
 * ($DIT_LOCALEDIR: the build tree's po/) or a plug-in folder without them
 * binds the domain itself, to the install prefix's locale dir. */
static gboolean set_i18n(GimpPlugIn *plug_in, const gchar *procedure_name, gchar **gettext_domain,
                         gchar **catalog_dir)
{
    const gchar *env = g_getenv("DIT_LOCALEDIR");
    gchar *dir = g_path_get_dirname(gimp_get_progname());
    gchar *locale = g_build_filename(dir, "locale", NULL);
    const gboolean beside = g_file_test(locale, G_FILE_TEST_IS_DIR);
    g_free(locale);
    g_free(dir);
    if ((env && *env) || !beside) {
        ditgimp_init_i18n();
        return FALSE;
    }
    *gettext_domain = g_strdup(GETTEXT_PACKAGE);
    *catalog_dir = g_strdup("locale");
    return TRUE;
}

static void dit_gimp3_class_init(DitGimp3Class *klass)
{
    GimpPlugInClass *plug_in_class = GIMP_PLUG_IN_CLASS(klass);
    plug_in_class->query_procedures = query_procedures;
    plug_in_class->create_procedure = create_procedure;
    plug_in_class->set_i18n = set_i18n;
}

static void dit_gimp3_init(DitGimp3 *self) {}

/* ---- values: GimpProcedureConfig <-> DitValues ------------------------------------- */

static void values_from_config(GimpProcedureConfig *config, DitMode mode, DitValues *v)
{
    ditui_values_init(v, mode);
    for (gint i = 0; i < dit_n_args; i++) {
        const DitArg *a = &dit_args[i];
        if (!ditgimp_arg_applies(a, mode))
            continue;
        if (a->type == DIT_ARG_INT) {
            gint x;
            g_object_get(config, a->name, &x, NULL);
            ditgimp_arg_set_number(a, v, x);
        } else if (a->type == DIT_ARG_DOUBLE) {
            gdouble x;
            g_object_get(config, a->name, &x, NULL);
            ditgimp_arg_set_number(a, v, x);
        } else {
            gchar *s = NULL;
            g_object_get(config, a->name, &s, NULL);
            ditgimp_arg_set_nick(a, v, s);
            g_free(s);
        }
    }
    gchar **recent = NULL;
    g_object_get(config, RECENT_PROMPTS, &recent, NULL);
    for (gint i = 0; recent && recent[i] && i < DIT_RECENT_PROMPTS; i++)
        ditui_values_set_string(v->recent_prompts[i], sizeof v->recent_prompts[i], recent[i]);
    g_strfreev(recent);
}

/* the dialog's values, for GIMP to store as the last used ones */
static void values_to_config(const DitValues *v, GimpProcedureConfig *config, DitMode mode)
{
    for (gint i = 0; i < dit_n_args; i++) {
        const DitArg *a = &dit_args[i];
        if (!ditgimp_arg_applies(a, mode))
            continue;
        if (a->type == DIT_ARG_INT)
            g_object_set(config, a->name, (gint)ditgimp_arg_get_number(a, v), NULL);
        else if (a->type == DIT_ARG_DOUBLE)
            g_object_set(config, a->name, ditgimp_arg_get_number(a, v), NULL);
        else
            g_object_set(config, a->name, ditgimp_arg_get_nick(a, v), NULL);
    }
    const gchar *recent[DIT_RECENT_PROMPTS + 1] = {NULL};
    for (gint i = 0, n = 0; i < DIT_RECENT_PROMPTS; i++)
        if (v->recent_prompts[i][0])
            recent[n++] = v->recent_prompts[i];
    g_object_set(config, RECENT_PROMPTS, recent, NULL);
}

/* ---- GIMP -> DitSource ------------------------------------------------------------------ */

static void read_source(GimpImage *image, GimpDrawable *drawable, DitSource *src)
{
    memset(src, 0, sizeof *src);
    src->indexed = gimp_image_get_base_type(image) == GIMP_INDEXED ||
                   (drawable && gimp_drawable_is_indexed(drawable));
    src->image_w = gimp_image_get_width(image), src->image_h = gimp_image_get_height(image);
    src->selection_empty = gimp_selection_is_empty(image);
    if (!drawable)
        return;
    GimpItem *item = GIMP_ITEM(drawable);
    src->is_layer = gimp_item_is_layer(item);
    src->is_group = gimp_item_is_group(item);
    src->layer_w = gimp_drawable_get_width(drawable);
    src->layer_h = gimp_drawable_get_height(drawable);
    gint x, y, w, h;
    src->has_sel = !src->selection_empty && gimp_drawable_mask_intersect(drawable, &x, &y, &w, &h);
    if (src->has_sel)
        src->sel = (GeglRectangle){x, y, w, h};
    gimp_drawable_get_offsets(drawable, &src->off_x, &src->off_y);
    src->format = gimp_drawable_get_format(drawable);
    src->pixels = gimp_drawable_get_buffer(drawable);
    src->selection = gimp_drawable_get_buffer(GIMP_DRAWABLE(gimp_image_get_selection(image)));
}

/* ---- the new layer -------------------------------------------------------------------------- */

/* Result k as a new layer named `name`, not yet in the image: a copy of
 * `drawable`, a new layer of the image's size (generate) or of the grown
 * layer's (outpaint, at the drawable's offsets before the canvas grew) */
static GimpLayer *result_layer(GimpImage *image, GimpDrawable *drawable, const DitOutput *out,
                               gint k, const gchar *name, gint off_x, gint off_y)
{
    const gboolean gray = gimp_image_get_base_type(image) == GIMP_GRAY;
    GimpLayer *layer;
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
        layer = gimp_layer_copy(GIMP_LAYER(drawable));
    }
    gimp_item_set_name(GIMP_ITEM(layer), name);
    gimp_item_set_visible(GIMP_ITEM(layer), TRUE);
    GeglBuffer *buf = gimp_drawable_get_buffer(GIMP_DRAWABLE(layer));
    ditgimp_output_write(out, k, buf, gimp_drawable_get_format(GIMP_DRAWABLE(layer)));
    g_object_unref(buf);
    return layer;
}

/* Writes the run's results above `drawable` (or at the top): one new
 * layer, or a layer group of the variations; outpaint grows the canvas
 * first. Selected, as one undo step. */
static GimpLayer *write_layer(GimpImage *image, GimpDrawable *drawable, const DitOutput *out)
{
    GimpLayer *parent = NULL;
    gint position = 0, off_x = 0, off_y = 0;
    if (drawable && gimp_item_is_layer(GIMP_ITEM(drawable))) {
        parent = GIMP_LAYER(gimp_item_get_parent(GIMP_ITEM(drawable)));
        position = gimp_image_get_item_position(image, GIMP_ITEM(drawable));
        gimp_drawable_get_offsets(drawable, &off_x, &off_y);
    }
    const gint *b = out->border; /* top, left, bottom, right */
    gimp_image_undo_group_start(image);
    if (b[0] || b[1] || b[2] || b[3])
        gimp_image_resize(image, gimp_image_get_width(image) + b[1] + b[3],
                          gimp_image_get_height(image) + b[0] + b[2], b[1], b[0]);
    GimpLayer *top;
    if (out->count == 1) {
        top = result_layer(image, drawable, out, 0, out->name, off_x, off_y);
        gimp_image_insert_layer(image, top, parent, position);
    } else {
        top = GIMP_LAYER(gimp_group_layer_new(image, out->name));
        gimp_image_insert_layer(image, top, parent, position);
        for (gint k = 0; k < out->count; k++) /* the first seed on top */
            gimp_image_insert_layer(
                image, result_layer(image, drawable, out, k, out->layer_names[k], off_x, off_y),
                top, k);
    }
    const GimpLayer *selected[] = {top, NULL};
    gimp_image_set_selected_layers(image, selected);
    gimp_image_undo_group_end(image);
    return top;
}

static void on_progress(gdouble fraction, gpointer user_data) { gimp_progress_update(fraction); }

/* ---- running ---------------------------------------------------------------------------------- */

static GimpValueArray *fail(GimpProcedure *procedure, GError *error)
{
    const GimpPDBStatusType status = g_error_matches(error, DIT_JOB_ERROR, DIT_JOB_ERROR_CANCELLED)
                                         ? GIMP_PDB_CANCEL
                                         : GIMP_PDB_EXECUTION_ERROR;
    if (status == GIMP_PDB_CANCEL)
        g_clear_error(&error);
    return gimp_procedure_new_return_values(procedure, status, error);
}

static GimpValueArray *run(GimpProcedure *procedure, GimpRunMode run_mode, GimpImage *image,
                           GimpDrawable **drawables, GimpProcedureConfig *config, gpointer run_data)
{
    const DitProc *proc = run_data;
    const DitMode mode = proc->mode;
    GError *error = NULL;

    /* one drawable; generate also runs with none (its layer goes on top) */
    const gsize n = drawables ? gimp_core_object_array_get_length((GObject **)drawables) : 0;
    if (n > 1 || (n == 0 && mode != DIT_MODE_GENERATE)) {
        g_set_error(&error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("DiT works on one layer at a time: select exactly one layer "
                      "(%d are selected)"),
                    (gint)n);
        return gimp_procedure_new_return_values(procedure, GIMP_PDB_CALLING_ERROR, error);
    }
    GimpDrawable *drawable = n ? drawables[0] : NULL;
    gegl_init(NULL, NULL);

    DitValues v;
    DitSource src;
    DitDialog *dialog = NULL;
    values_from_config(config, mode, &v);
    read_source(image, drawable, &src);
    if (run_mode == GIMP_RUN_INTERACTIVE) {
        /* say what is wrong before asking for settings */
        if (!ditgimp_source_check(&src, mode, &error) || !ditgimp_gtk_init(&error)) {
            ditgimp_source_clear(&src);
            return fail(procedure, error);
        }
        gimp_ui_init(PLUG_IN_BINARY);
        dialog = ditgimp_dialog_new(&v, &src);
        gimp_window_set_transient(GTK_WINDOW(ditui_dialog_get_widget(dialog)));
        if (!ditgimp_dialog_ask(dialog, &v)) {
            ditui_dialog_destroy(dialog);
            ditgimp_source_clear(&src);
            return gimp_procedure_new_return_values(procedure, GIMP_PDB_CANCEL, NULL);
        }
        values_to_config(&v, config, mode); /* GIMP keeps them after a successful run */
        /* GIMP stays usable while the dialog is open: take the selection as it is now */
        ditgimp_source_clear(&src);
        read_source(image, drawable, &src);
    }

    DitOutput out;
    GimpLayer *layer = NULL;
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
        values_to_config(&v, config, mode);
        ditgimp_source_clear(&src);
        read_source(image, drawable, &src);
        gimp_progress_init(ditgimp_progress_label((DitMode)v.mode));
    }
    ditui_dialog_destroy(dialog);
    ditgimp_source_clear(&src);
    if (!layer)
        return fail(procedure, error);
    /* a run after a kept one failed or was cancelled: the kept ones stay */
    if (error && !g_error_matches(error, DIT_JOB_ERROR, DIT_JOB_ERROR_CANCELLED))
        gimp_message(error->message);
    g_clear_error(&error);

    /* GIMP 3 flushes the displays after an interactive run itself */
    GimpValueArray *ret = gimp_procedure_new_return_values(procedure, GIMP_PDB_SUCCESS, NULL);
    GIMP_VALUES_SET_LAYER(ret, 1, layer);
    return ret;
}

GIMP_MAIN(DIT_TYPE_GIMP3)
