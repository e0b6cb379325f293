/* The DiT dialog (GTK3); see dialog.h.
 *
 * Layout: settings on the left in a two-column grid (label, widget), the
 * preview and a progress bar on the right. Numbers that GIMP shows as scale
 * entries (strength, guidance) are a GtkScale and a GtkSpinButton sharing
 * one GtkAdjustment. */
#include "dialog.h"

#include <glib/gi18n-lib.h>
#include <stdlib.h>
#include <string.h>

#include "dit.h"

#ifdef GDK_WINDOWING_X11
#include <gdk/gdkx.h>
#endif

#define PREVIEW_SIZE 256

struct _DitDialog {
    GtkWidget *dialog;
    GtkWidget *settings; /* the grid, locked while running */
    GtkWidget *ok, *cancel;
    GtkWidget *mode;         /* NULL without mode_choice */
    GtkWidget *model_combo;  /* the library's models, chosen paths, "Other ..." */
    GtkWidget *model_label;  /* what will be loaded */
    gboolean model_updating; /* the combo is being set from code */
    GtkWidget *klass;        /* GtkComboBoxText with entry */
    GtkEntryCompletion *completion;
    GtkWidget *class_row[2]; /* label, combo: a class model's */
    /* a text model's instead: the prompt (a GtkTextView over the recent
     * prompts' combo) and the negative prompt (an entry), labels and controls */
    GtkWidget *prompt_rows[4];
    GtkWidget *prompt, *negative, *recent;
    gboolean recent_updating; /* the recent combo is being set from code */
    gchar recent_prompts[DIT_RECENT_PROMPTS][sizeof((DitValues *)0)->recent_prompts[0]];
    gboolean text_model; /* the chosen model takes a prompt */
    GtkAdjustment *steps, *strength, *guidance, *seed, *grow;
    GtkWidget *strength_row[2];
    GtkWidget *inpaint_rows[16]; /* label, control: rows that only inpaint uses */
    gint n_inpaint_rows;
    GtkAdjustment *feather, *resample_jump, *resample_count;
    GtkAdjustment *variations, *detail, *expand;
    GtkAdjustment *guidance_from, *guidance_to;
    GtkAdjustment *border[4]; /* outpaint: top, left, bottom, right; NULL otherwise */
    GtkWidget *colour_match;
    GtkWidget *sampler;
    GtkWidget *device;
    GtkWidget *mask_mode;
    GtkWidget *device_note; /* what the chosen device will run */
    gboolean cuda_usable;
    GtkWidget *preview;   /* GtkImage */
    GtkWidget *progress;  /* GtkProgressBar */
    gchar *model;         /* "" = default */
    gchar *default_model; /* may be NULL */
    gchar *title;         /* as the caller gave it */
    gint32 base_mode;     /* the caller's mode (generate stays generate) */
    DitLabelsFunc labels_func;
    gpointer labels_data;
    guint64 parent_xid;
};

static const gchar *const device_ids[] = {"auto", "cpu", "cpu-bf16", "cuda"};

/* ---- device ------------------------------------------------------------------ */

/* One line under the Device row: where the work runs and in which precision,
 * with the rates libdit measured on this machine (dit_cpu_get_caps). */
static void show_device(DitDialog *d)
{
    const gchar *id = gtk_combo_box_get_active_id(GTK_COMBO_BOX(d->device));
    dit_cpu_caps c;
    dit_cpu_get_caps(&c);
    const gboolean is_auto = !g_strcmp0(id, "auto");
    const double fp32_rate =
        strcmp(c.fp32_library, "oneDNN") == 0 ? c.gflops_onednn_fp32 : c.gflops_openblas;
    gchar *text;
    if (!g_strcmp0(id, "cuda") || (is_auto && d->cuda_usable))
        text = d->cuda_usable ? g_strdup(_("Runs on the CUDA GPU"))
                              : g_strdup_printf(_("No usable CUDA GPU here: %s"),
                                                dit_build_has_cuda() ? _("no device found")
                                                                     : _("no CUDA in this build"));
    else if (!g_strcmp0(id, "cpu-bf16") && !c.bf16)
        text = g_strdup_printf(_("bf16 cannot run here: %s"), c.bf16_why);
    else if (!g_strcmp0(id, "cpu-bf16") || (is_auto && c.bf16_faster))
        text = g_strdup_printf(_("CPU, bf16 products, %.0f GFLOP/s measured (fp32: %.0f)"),
                               c.gflops_onednn_bf16, fp32_rate);
    else {
        gchar *base = g_strdup_printf(_("CPU, fp32 products on %s, %.0f GFLOP/s measured"),
                                      c.fp32_library, fp32_rate);
        text = is_auto && c.bf16
                   ? g_strconcat(base, _("; bf16 is not faster on this processor"), NULL)
                   : g_strdup(base);
        g_free(base);
    }
    gtk_label_set_text(GTK_LABEL(d->device_note), text);
    g_free(text);
}

static void on_device_changed(GtkComboBox *combo, DitDialog *d) { show_device(d); }

/* ---- model and labels ------------------------------------------------------ */

static void fill_labels(DitDialog *d)
{
    const gchar *path = d->model[0] ? d->model : d->default_model;
    gchar **labels = path && d->labels_func ? d->labels_func(path, d->labels_data) : NULL;
    GtkComboBoxText *combo = GTK_COMBO_BOX_TEXT(d->klass);
    GtkEntry *entry = GTK_ENTRY(gtk_bin_get_child(GTK_BIN(combo)));
    gchar *keep = g_strdup(gtk_entry_get_text(entry));
    gtk_combo_box_text_remove_all(combo);
    for (gint i = 0; labels && labels[i]; i++)
        gtk_combo_box_text_append_text(combo, labels[i]);
    gtk_entry_set_text(entry, keep);
    /* what an empty field means: class 0, by its name where there is one */
    gchar *first = labels && labels[0] ? g_strndup(labels[0], strcspn(labels[0], ",")) : NULL;
    gchar *placeholder = first ? g_strdup_printf(_("%s (class 0)"), first) : g_strdup(_("class 0"));
    gtk_entry_set_placeholder_text(entry, placeholder);
    g_free(placeholder);
    g_free(first);
    gtk_widget_set_tooltip_text(d->klass,
                                labels ? _("Type a class name to search the model's labels, or "
                                           "a class number")
                                       : _("This model has no label list: type a class number"));
    g_free(keep);
    g_strfreev(labels);
}

/* "NAME: DiT, 32x32 pixels, 10 classes" from the model's config (no
 * weights read), "NAME: text model (PixArt), ..."; the name alone where it
 * does not load */
static gchar *describe_model(const gchar *name, const gchar *model)
{
    gchar *path = dit_model_resolve(model);
    dit_ctx *ctx = dit_ctx_new();
    dit_config c;
    gchar *text = NULL;
    int side = 0;
    if (path && dit_is_pixart(path))
        text = g_strdup_printf(_("%s: text model (PixArt), paints what the prompt says"), name);
    else if (path && ctx && dit_model_peek(ctx, path, &c, &side) == DIT_OK)
        text = g_strdup_printf(_("%s: DiT, %dx%d pixels, %d classes"), name, side, side,
                               c.num_classes);
    dit_ctx_free(ctx);
    g_free(path);
    return text ? text : g_strdup(name);
}

static void show_model(DitDialog *d)
{
    gchar *text;
    if (d->model[0]) {
        gchar *base = g_path_get_basename(d->model);
        text = describe_model(base, d->model);
        g_free(base);
    } else if (d->default_model) {
        text = describe_model(_("Default model"), d->default_model);
    } else {
        text = g_strdup(_("No default model installed: choose one"));
    }
    gtk_label_set_text(GTK_LABEL(d->model_label), text);
    gchar *path = d->model[0] ? dit_model_resolve(d->model) : g_strdup(d->default_model);
    gtk_widget_set_tooltip_text(d->model_label, path);
    g_free(path);
    g_free(text);
}

/* ---- a text model's prompt ----------------------------------------------- */

static gboolean model_is_text(DitDialog *d)
{
    gchar *path = d->model[0] ? dit_model_resolve(d->model) : g_strdup(d->default_model);
    const gboolean text = path && dit_is_pixart(path);
    g_free(path);
    return text;
}

/* the prompt rows for a text model, the class row otherwise; guidance
 * moves between the two kinds' defaults where it was left at one */
static void show_model_kind(DitDialog *d)
{
    const gboolean text = model_is_text(d);
    for (gsize i = 0; i < G_N_ELEMENTS(d->class_row); i++)
        gtk_widget_set_visible(d->class_row[i], !text);
    for (gsize i = 0; i < G_N_ELEMENTS(d->prompt_rows); i++)
        gtk_widget_set_visible(d->prompt_rows[i], text);
    const gdouble g = gtk_adjustment_get_value(d->guidance);
    if (text && !d->text_model && g == DIT_VALUES_GUIDANCE)
        gtk_adjustment_set_value(d->guidance, DIT_TEXT_GUIDANCE);
    else if (!text && d->text_model && g == DIT_TEXT_GUIDANCE)
        gtk_adjustment_set_value(d->guidance, DIT_VALUES_GUIDANCE);
    d->text_model = text;
}

/* "Recent prompts…", then each on one line, shortened */
static void fill_recent(DitDialog *d)
{
    GtkComboBoxText *combo = GTK_COMBO_BOX_TEXT(d->recent);
    d->recent_updating = TRUE;
    gtk_combo_box_text_remove_all(combo);
    gtk_combo_box_text_append(combo, "", _("Recent prompts…"));
    gint n = 0;
    for (gint i = 0; i < DIT_RECENT_PROMPTS; i++) {
        if (!d->recent_prompts[i][0])
            continue;
        gchar *line = g_strdelimit(g_strdup(d->recent_prompts[i]), "\t\r\n", ' ');
        if (g_utf8_strlen(line, -1) > 60) {
            gchar *cut = g_utf8_substring(line, 0, 59);
            g_free(line);
            line = g_strconcat(cut, "…", NULL);
            g_free(cut);
        }
        gchar *id = g_strdup_printf("%d", i);
        gtk_combo_box_text_append(combo, id, line);
        g_free(id), g_free(line);
        n++;
    }
    gtk_combo_box_set_active(GTK_COMBO_BOX(combo), 0);
    gtk_widget_set_sensitive(d->recent, n > 0);
    d->recent_updating = FALSE;
}

/* a recent prompt chosen: into the prompt box, and the combo back to its title */
static void on_recent_changed(GtkComboBox *combo, DitDialog *d)
{
    const gchar *id = gtk_combo_box_get_active_id(combo);
    if (d->recent_updating || !id || !*id)
        return;
    const gint i = CLAMP(atoi(id), 0, DIT_RECENT_PROMPTS - 1);
    gtk_text_buffer_set_text(gtk_text_view_get_buffer(GTK_TEXT_VIEW(d->prompt)),
                             d->recent_prompts[i], -1);
    d->recent_updating = TRUE;
    gtk_combo_box_set_active(combo, 0);
    d->recent_updating = FALSE;
    gtk_widget_grab_focus(d->prompt);
}

static void set_model(DitDialog *d, const gchar *path)
{
    g_free(d->model);
    d->model = g_strdup(path ? path : "");
    show_model(d);
    fill_labels(d);
    show_model_kind(d);
}

/* The Model combo: "" (the default model), the library's models by name,
 * files and folders chosen in this dialog by path, then the two "Other"
 * entries that open a chooser. */
#define OTHER_FOLDER "\x01folder"
#define OTHER_FILE "\x01file"

/* the entry for model (a name or a path), added before the "Other" ones
 * when missing, made active */
static void select_model_entry(DitDialog *d, const gchar *model)
{
    GtkComboBox *combo = GTK_COMBO_BOX(d->model_combo);
    d->model_updating = TRUE;
    if (!gtk_combo_box_set_active_id(combo, model)) {
        const gint others =
            gtk_tree_model_iter_n_children(gtk_combo_box_get_model(combo), NULL) - 2;
        gchar *base = g_path_get_basename(model);
        gtk_combo_box_text_insert(GTK_COMBO_BOX_TEXT(combo), others, model, base);
        g_free(base);
        gtk_combo_box_set_active_id(combo, model);
    }
    d->model_updating = FALSE;
}

static gchar *choose_model_path(DitDialog *d, gboolean folder)
{
    GtkWidget *chooser = gtk_file_chooser_dialog_new(
        folder ? _("Choose a model folder") : _("Choose a model file"), GTK_WINDOW(d->dialog),
        folder ? GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER : GTK_FILE_CHOOSER_ACTION_OPEN, _("_Cancel"),
        GTK_RESPONSE_CANCEL, _("_Open"), GTK_RESPONSE_ACCEPT, NULL);
    if (!folder) {
        GtkFileFilter *filter = gtk_file_filter_new();
        gtk_file_filter_set_name(filter, _("Safetensors models (*.safetensors)"));
        gtk_file_filter_add_pattern(filter, "*.safetensors");
        gtk_file_chooser_add_filter(GTK_FILE_CHOOSER(chooser), filter);
    }
    gchar *path = gtk_dialog_run(GTK_DIALOG(chooser)) == GTK_RESPONSE_ACCEPT
                      ? gtk_file_chooser_get_filename(GTK_FILE_CHOOSER(chooser))
                      : NULL;
    gtk_widget_destroy(chooser);
    return path;
}

static void on_model_changed(GtkComboBox *combo, DitDialog *d)
{
    const gchar *id = gtk_combo_box_get_active_id(combo);
    if (d->model_updating || !id)
        return;
    if (strcmp(id, OTHER_FOLDER) == 0 || strcmp(id, OTHER_FILE) == 0) {
        gchar *path = choose_model_path(d, strcmp(id, OTHER_FOLDER) == 0);
        /* picking the default model's folder means "the default" */
        if (path && g_strcmp0(path, d->default_model) == 0)
            g_free(path), path = g_strdup("");
        select_model_entry(d, path ? path : d->model);
        if (path)
            set_model(d, path);
        g_free(path);
        return;
    }
    set_model(d, id);
}

static GtkWidget *model_combo_new(DitDialog *d)
{
    GtkComboBoxText *combo = GTK_COMBO_BOX_TEXT(gtk_combo_box_text_new());
    d->model_combo = GTK_WIDGET(combo);
    if (d->default_model)
        gtk_combo_box_text_append(combo, "", _("Default model"));
    gchar **names = dit_model_library_names();
    for (gsize i = 0; names && names[i]; i++) {
        /* the embedded default is the entry above */
        gchar *path = dit_model_resolve(names[i]);
        if (g_strcmp0(path, d->default_model) != 0)
            gtk_combo_box_text_append(combo, names[i], names[i]);
        g_free(path);
    }
    dit_labels_free(names);
    gtk_combo_box_text_append(combo, OTHER_FOLDER, _("Other folder…"));
    gtk_combo_box_text_append(combo, OTHER_FILE, _("Other file…"));
    gtk_widget_set_hexpand(d->model_combo, TRUE);
    gtk_widget_set_tooltip_text(d->model_combo,
                                _("A model of the library (dit models list), or a model folder "
                                  "or .safetensors file of your own"));
    select_model_entry(d, d->model);
    g_signal_connect(combo, "changed", G_CALLBACK(on_model_changed), d);
    return d->model_combo;
}

/* type-ahead: a label matches when it contains the typed text, any case */
static gboolean match_anywhere(GtkEntryCompletion *completion, const gchar *key, GtkTreeIter *iter,
                               gpointer user_data)
{
    GtkTreeModel *model = gtk_entry_completion_get_model(completion);
    gchar *text = NULL;
    gtk_tree_model_get(model, iter, 0, &text, -1);
    gboolean hit = FALSE;
    if (text && key) {
        gchar *a = g_utf8_casefold(text, -1), *b = g_utf8_casefold(key, -1);
        hit = strstr(a, b) != NULL;
        g_free(a), g_free(b);
    }
    g_free(text);
    return hit;
}

/* ---- mode -------------------------------------------------------------------- */

static gint32 current_mode(DitDialog *d)
{
    if (!d->mode)
        return d->base_mode;
    return gtk_combo_box_get_active(GTK_COMBO_BOX(d->mode)) == 1 ? DIT_MODE_IMG2IMG
                                                                 : DIT_MODE_INPAINT;
}

static void update_mode_widgets(DitDialog *d)
{
    const gint32 m = current_mode(d);
    for (int i = 0; i < 2; i++)
        gtk_widget_set_visible(d->strength_row[i], m != DIT_MODE_GENERATE);
    for (int i = 0; i < d->n_inpaint_rows; i++) {
        gtk_widget_set_sensitive(d->inpaint_rows[i],
                                 m == DIT_MODE_INPAINT || m == DIT_MODE_OUTPAINT);
        gtk_widget_set_visible(d->inpaint_rows[i], m != DIT_MODE_GENERATE);
    }
}

static void on_mode_changed(GtkComboBox *combo, DitDialog *d)
{
    /* each mode starts from its own strength default */
    gtk_adjustment_set_value(d->strength, current_mode(d) == DIT_MODE_IMG2IMG ? 0.75 : 1.0);
    update_mode_widgets(d);
}

static void on_randomise(GtkButton *button, DitDialog *d)
{
    gtk_adjustment_set_value(d->seed, g_random_int_range(0, G_MAXINT32));
}

/* ---- construction -------------------------------------------------------------- */

static GtkWidget *add_label(GtkGrid *grid, gint row, const gchar *text, GtkWidget *target)
{
    GtkWidget *label = gtk_label_new_with_mnemonic(text);
    gtk_label_set_xalign(GTK_LABEL(label), 0.0f);
    if (target)
        gtk_label_set_mnemonic_widget(GTK_LABEL(label), target);
    gtk_grid_attach(grid, label, 0, row, 1, 1);
    return label;
}

/* a row of the settings only inpaint uses: label | control */
static void add_inpaint_row(DitDialog *d, GtkGrid *grid, gint *row, const gchar *text,
                            GtkWidget *control, const gchar *tooltip)
{
    g_assert(d->n_inpaint_rows + 2 <= (gint)G_N_ELEMENTS(d->inpaint_rows));
    gtk_widget_set_tooltip_text(control, tooltip);
    d->inpaint_rows[d->n_inpaint_rows++] = add_label(grid, *row, text, control);
    d->inpaint_rows[d->n_inpaint_rows++] = control;
    gtk_widget_set_halign(control, GTK_ALIGN_START);
    gtk_grid_attach(grid, control, 1, (*row)++, 1, 1);
}

static GtkWidget *int_spin(GtkAdjustment *adj)
{
    GtkWidget *spin = gtk_spin_button_new(adj, 0.0, 0);
    gtk_spin_button_set_numeric(GTK_SPIN_BUTTON(spin), TRUE);
    return spin;
}

/* the feather spin shows -1 as "auto" and reads it back */
static gboolean feather_output(GtkSpinButton *spin, gpointer data)
{
    const gint v = (gint)gtk_adjustment_get_value(gtk_spin_button_get_adjustment(spin));
    if (v >= 0)
        return FALSE;
    gtk_entry_set_text(GTK_ENTRY(spin), _("auto"));
    return TRUE;
}

static gint feather_input(GtkSpinButton *spin, gdouble *value, gpointer data)
{
    const gchar *text = gtk_entry_get_text(GTK_ENTRY(spin));
    if (g_ascii_strcasecmp(text, "auto") != 0 && strcmp(text, _("auto")) != 0)
        return FALSE;
    *value = -1;
    return TRUE;
}

/* grow, soft selection, feather, colour match, resampling */
static void add_inpaint_rows(DitDialog *d, GtkGrid *grid, gint *row, const DitValues *values)
{
    d->grow = gtk_adjustment_new(values->grow, 0, 64, 1, 4, 0);
    add_inpaint_row(d, grid, row, _("G_row mask:"), int_spin(d->grow),
                    _("Grow the inpainted area by this many latent pixels so the new content "
                      "blends in"));

    d->mask_mode = gtk_combo_box_text_new();
    const gchar *mask_mode_names[] = {_("Regenerate, blend by the selection"),
                                      _("Selection is per-pixel strength")};
    G_STATIC_ASSERT(G_N_ELEMENTS(mask_mode_names) == DIT_MASK_MODE_COUNT);
    for (gint i = 0; i < DIT_MASK_MODE_COUNT; i++)
        gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(d->mask_mode), dit_mask_mode_names[i],
                                  mask_mode_names[i]);
    if (!gtk_combo_box_set_active_id(GTK_COMBO_BOX(d->mask_mode), values->mask_mode))
        gtk_combo_box_set_active(GTK_COMBO_BOX(d->mask_mode), 0);
    add_inpaint_row(d, grid, row, _("Sof_t selection:"), d->mask_mode,
                    _("How a feathered or partial selection is used: remake every selected "
                      "pixel and blend by the selection, or let each pixel change only as much "
                      "as it is selected"));

    d->expand = gtk_adjustment_new(values->expand, 0, 1024, 1, 8, 0);
    add_inpaint_row(d, grid, row, _("Expand selection b_y (px):"), int_spin(d->expand),
                    _("Grow the selection outward by this many pixels first, its soft edge "
                      "kept, so the new content reaches a little past it"));

    d->feather = gtk_adjustment_new(values->feather, -1, 1024, 1, 8, 0);
    GtkWidget *feather = int_spin(d->feather);
    gtk_spin_button_set_numeric(GTK_SPIN_BUTTON(feather), FALSE); /* takes "auto" */
    g_signal_connect(feather, "output", G_CALLBACK(feather_output), NULL);
    g_signal_connect(feather, "input", G_CALLBACK(feather_input), NULL);
    add_inpaint_row(d, grid, row, _("_Feather edge (px):"), feather,
                    _("Soften the selection's edge this many pixels inward; pixels outside the "
                      "selection stay as they are (auto, below 0: a fifth of the selection's "
                      "shorter side)"));

    d->colour_match = gtk_check_button_new_with_mnemonic(_("Match the colo_ur at the edge"));
    gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(d->colour_match), values->colour_match != 0);
    add_inpaint_row(d, grid, row, _("Colour:"), d->colour_match,
                    _("Move the new content's colour at the selection's edge to the colour "
                      "around it"));

    d->resample_jump = gtk_adjustment_new(values->resample_jump, 0, 1000, 1, 5, 0);
    add_inpaint_row(d, grid, row, _("Resample _jump:"), int_spin(d->resample_jump),
                    _("Harmonise with the surroundings: after every this many steps go back "
                      "as many and run them again (0: off)"));
    d->resample_count = gtk_adjustment_new(values->resample_count, 1, 20, 1, 2, 0);
    add_inpaint_row(d, grid, row, _("Resample cou_nt:"), int_spin(d->resample_count),
                    _("How many times each block of steps runs; each extra time costs those "
                      "steps again"));
}

/* a text model's prompt (with the recent ones) and negative prompt, in
 * place of the class row */
static void add_prompt_rows(DitDialog *d, GtkGrid *grid, gint *row, const DitValues *values)
{
    memcpy(d->recent_prompts, values->recent_prompts, sizeof d->recent_prompts);
    d->prompt = gtk_text_view_new();
    gtk_text_view_set_wrap_mode(GTK_TEXT_VIEW(d->prompt), GTK_WRAP_WORD_CHAR);
    gtk_text_view_set_accepts_tab(GTK_TEXT_VIEW(d->prompt), FALSE);
    gtk_text_view_set_left_margin(GTK_TEXT_VIEW(d->prompt), 6);
    gtk_text_view_set_right_margin(GTK_TEXT_VIEW(d->prompt), 6);
    gtk_text_view_set_top_margin(GTK_TEXT_VIEW(d->prompt), 4);
    gtk_text_buffer_set_text(gtk_text_view_get_buffer(GTK_TEXT_VIEW(d->prompt)),
                             values->prompt[0] ? values->prompt : values->recent_prompts[0], -1);
    GtkWidget *scroll = gtk_scrolled_window_new(NULL, NULL);
    gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(scroll), GTK_POLICY_NEVER,
                                   GTK_POLICY_AUTOMATIC);
    gtk_scrolled_window_set_shadow_type(GTK_SCROLLED_WINDOW(scroll), GTK_SHADOW_IN);
    gtk_scrolled_window_set_min_content_height(GTK_SCROLLED_WINDOW(scroll), 72);
    gtk_container_add(GTK_CONTAINER(scroll), d->prompt);
    gtk_widget_set_tooltip_text(scroll, _("Describe the picture in words (in English): what it "
                                          "shows, its look and its light"));
    d->recent = gtk_combo_box_text_new();
    gtk_widget_set_tooltip_text(d->recent, _("Put one of the last prompts back in the box"));
    fill_recent(d);
    g_signal_connect(d->recent, "changed", G_CALLBACK(on_recent_changed), d);
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
    gtk_box_pack_start(GTK_BOX(box), scroll, TRUE, TRUE, 0);
    gtk_box_pack_start(GTK_BOX(box), d->recent, FALSE, FALSE, 0);
    d->prompt_rows[0] = add_label(grid, *row, _("_What to paint (prompt):"), d->prompt);
    gtk_widget_set_valign(d->prompt_rows[0], GTK_ALIGN_START);
    d->prompt_rows[1] = box;
    gtk_grid_attach(grid, box, 1, (*row)++, 1, 1);

    d->negative = gtk_entry_new();
    gtk_entry_set_text(GTK_ENTRY(d->negative), values->negative_prompt);
    gtk_entry_set_activates_default(GTK_ENTRY(d->negative), TRUE);
    gtk_entry_set_placeholder_text(GTK_ENTRY(d->negative), _("nothing"));
    gtk_widget_set_tooltip_text(d->negative, _("What the picture should not show, e.g. "
                                               "“blurry, text”; empty: nothing"));
    d->prompt_rows[2] = add_label(grid, *row, _("_Keep out (negative prompt):"), d->negative);
    d->prompt_rows[3] = d->negative;
    gtk_grid_attach(grid, d->negative, 1, (*row)++, 1, 1);
}

/* variations; outpaint: how far the canvas grows on each side */
static void add_result_rows(DitDialog *d, GtkGrid *grid, gint *row, const DitValues *values)
{
    d->variations = gtk_adjustment_new(CLAMP(values->variations, 1, 16), 1, 16, 1, 4, 0);
    GtkWidget *spin = int_spin(d->variations);
    gtk_widget_set_tooltip_text(spin, _("How many results, from the seed and the seeds after "
                                        "it; more than one gives a layer group"));
    gtk_widget_set_halign(spin, GTK_ALIGN_START);
    add_label(grid, *row, _("_Variations:"), spin);
    gtk_grid_attach(grid, spin, 1, (*row)++, 1, 1);
    d->detail = gtk_adjustment_new(CLAMP(values->detail, 0, 4096), 0, 4096, 16, 256, 0);
    spin = int_spin(d->detail);
    gtk_widget_set_tooltip_text(spin, _("Keep detail in a large region: work at its own size up "
                                        "to this many pixels on the longer side, sampling at "
                                        "the model's size first and refining in model-size "
                                        "windows (0: the model's size; each window costs a "
                                        "model evaluation per refining step)"));
    gtk_widget_set_halign(spin, GTK_ALIGN_START);
    add_label(grid, *row, _("Deta_il up to (px):"), spin);
    gtk_grid_attach(grid, spin, 1, (*row)++, 1, 1);
    if (values->mode != DIT_MODE_OUTPAINT)
        return;
    const gint32 sides[4] = {values->top, values->left, values->bottom, values->right};
    const gchar *names[4] = {_("top"), _("left"), _("bottom"), _("right")};
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    for (int i = 0; i < 4; i++) {
        d->border[i] = gtk_adjustment_new(CLAMP(sides[i], 0, 4096), 0, 4096, 8, 64, 0);
        GtkWidget *side = int_spin(d->border[i]);
        gtk_box_pack_start(GTK_BOX(box), gtk_label_new(names[i]), FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(box), side, FALSE, FALSE, 0);
        if (i == 0)
            add_label(grid, *row, _("E_xtend canvas (px):"), side);
    }
    gtk_widget_set_tooltip_text(box, _("Grow the canvas by this many pixels on each side and "
                                       "fill the new border; all 0 fills only the layer's "
                                       "transparent pixels"));
    gtk_grid_attach(grid, box, 1, (*row)++, 1, 1);
}

/* guidance only between two noise levels */
static void add_interval_row(DitDialog *d, GtkGrid *grid, gint row, const DitValues *values)
{
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    d->guidance_from = gtk_adjustment_new(CLAMP(values->guidance_from, 0, 1), 0, 1, 0.05, 0.1, 0);
    d->guidance_to = gtk_adjustment_new(CLAMP(values->guidance_to, 0, 1), 0, 1, 0.05, 0.1, 0);
    GtkWidget *from = gtk_spin_button_new(d->guidance_from, 0.0, 2);
    GtkWidget *to = gtk_spin_button_new(d->guidance_to, 0.0, 2);
    gtk_box_pack_start(GTK_BOX(box), from, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(box), gtk_label_new(_("to")), FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(box), to, FALSE, FALSE, 0);
    gtk_widget_set_tooltip_text(box, _("Guide only while the noise level (1 at the start, 0 at "
                                       "the end) is in this range; the other steps run without "
                                       "guidance at half the work (0 to 1: every step)"));
    add_label(grid, row, _("Guidance _between:"), from);
    gtk_grid_attach(grid, box, 1, row, 1, 1);
}

/* label | scale + spin sharing one adjustment; returns the box */
static GtkWidget *add_scale(GtkGrid *grid, gint row, const gchar *text, GtkAdjustment *adj,
                            gint digits, const gchar *tooltip, GtkWidget **label_out)
{
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    GtkWidget *scale = gtk_scale_new(GTK_ORIENTATION_HORIZONTAL, adj);
    GtkWidget *spin = gtk_spin_button_new(adj, 0.0, digits);
    gtk_scale_set_draw_value(GTK_SCALE(scale), FALSE);
    gtk_widget_set_hexpand(scale, TRUE);
    gtk_widget_set_size_request(scale, 160, -1);
    gtk_spin_button_set_numeric(GTK_SPIN_BUTTON(spin), TRUE);
    gtk_box_pack_start(GTK_BOX(box), scale, TRUE, TRUE, 0);
    gtk_box_pack_start(GTK_BOX(box), spin, FALSE, FALSE, 0);
    gtk_widget_set_tooltip_text(box, tooltip);
    GtkWidget *label = add_label(grid, row, text, spin);
    gtk_grid_attach(grid, box, 1, row, 1, 1);
    if (label_out)
        *label_out = label;
    return box;
}

static void on_realize(GtkWidget *widget, DitDialog *d)
{
#ifdef GDK_WINDOWING_X11
    GdkDisplay *display = gtk_widget_get_display(widget);
    if (d->parent_xid && GDK_IS_X11_DISPLAY(display)) {
        GdkWindow *parent = gdk_x11_window_foreign_new_for_display(display, (Window)d->parent_xid);
        if (parent) {
            gdk_window_set_transient_for(gtk_widget_get_window(widget), parent);
            g_object_unref(parent);
        }
    }
#endif
}

DitDialog *ditui_dialog_new(const gchar *title, const DitValues *values, gboolean mode_choice,
                            const gchar *default_model, DitLabelsFunc labels_func,
                            gpointer user_data)
{
    DitDialog *d = g_new0(DitDialog, 1);
    d->model = g_strdup(values->model);
    d->default_model = g_strdup(default_model);
    d->title = g_strdup(title);
    d->base_mode = values->mode;
    d->labels_func = labels_func;
    d->labels_data = user_data;

    d->dialog = gtk_dialog_new_with_buttons(title, NULL, 0, _("_Cancel"), GTK_RESPONSE_CANCEL,
                                            _("_OK"), GTK_RESPONSE_OK, NULL);
    d->ok = gtk_dialog_get_widget_for_response(GTK_DIALOG(d->dialog), GTK_RESPONSE_OK);
    d->cancel = gtk_dialog_get_widget_for_response(GTK_DIALOG(d->dialog), GTK_RESPONSE_CANCEL);
    gtk_dialog_set_default_response(GTK_DIALOG(d->dialog), GTK_RESPONSE_OK);
    gtk_window_set_resizable(GTK_WINDOW(d->dialog), FALSE);
    g_signal_connect(d->dialog, "realize", G_CALLBACK(on_realize), d);

    GtkWidget *content = gtk_dialog_get_content_area(GTK_DIALOG(d->dialog));
    GtkWidget *hbox = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 12);
    gtk_container_set_border_width(GTK_CONTAINER(hbox), 12);
    gtk_box_pack_start(GTK_BOX(content), hbox, TRUE, TRUE, 0);

    GtkGrid *grid = GTK_GRID(gtk_grid_new());
    d->settings = GTK_WIDGET(grid);
    gtk_grid_set_row_spacing(grid, 6);
    gtk_grid_set_column_spacing(grid, 12);
    gtk_box_pack_start(GTK_BOX(hbox), d->settings, TRUE, TRUE, 0);
    gint row = 0;

    /* mode */
    if (mode_choice) {
        d->mode = gtk_combo_box_text_new();
        gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(d->mode), _("Inpaint the selection"));
        gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(d->mode), _("Image to image"));
        gtk_combo_box_set_active(GTK_COMBO_BOX(d->mode), values->mode == DIT_MODE_IMG2IMG ? 1 : 0);
        gtk_widget_set_tooltip_text(d->mode,
                                    _("Inpaint regenerates the selected pixels and keeps the "
                                      "rest; image to image re-imagines the whole region"));
        add_label(grid, row, _("_Mode:"), d->mode);
        gtk_grid_attach(grid, d->mode, 1, row++, 1, 1);
    }

    /* model: one of the library, or a folder or .safetensors file; what it
     * is on the line below */
    GtkWidget *mcombo = model_combo_new(d);
    add_label(grid, row, _("_Model:"), mcombo);
    gtk_grid_attach(grid, mcombo, 1, row++, 1, 1);
    d->model_label = gtk_label_new(NULL);
    gtk_label_set_xalign(GTK_LABEL(d->model_label), 0.0f);
    gtk_label_set_ellipsize(GTK_LABEL(d->model_label), PANGO_ELLIPSIZE_MIDDLE);
    gtk_style_context_add_class(gtk_widget_get_style_context(d->model_label), "dim-label");
    gtk_grid_attach(grid, d->model_label, 1, row++, 1, 1);

    /* class with type-ahead */
    d->klass = gtk_combo_box_text_new_with_entry();
    GtkEntry *entry = GTK_ENTRY(gtk_bin_get_child(GTK_BIN(d->klass)));
    gtk_entry_set_text(entry, values->class_name);
    gtk_entry_set_activates_default(entry, TRUE);
    d->completion = gtk_entry_completion_new();
    gtk_entry_completion_set_model(d->completion, gtk_combo_box_get_model(GTK_COMBO_BOX(d->klass)));
    gtk_entry_completion_set_text_column(d->completion, 0);
    gtk_entry_completion_set_match_func(d->completion, match_anywhere, NULL, NULL);
    gtk_entry_completion_set_minimum_key_length(d->completion, 1);
    gtk_entry_set_completion(entry, d->completion);
    d->class_row[0] = add_label(grid, row, _("C_lass:"), d->klass);
    d->class_row[1] = d->klass;
    gtk_grid_attach(grid, d->klass, 1, row++, 1, 1);
    add_prompt_rows(d, grid, &row, values);

    /* numbers */
    d->steps = gtk_adjustment_new(CLAMP(values->steps > 0 ? values->steps : 20, 1, 1000), 1, 1000,
                                  1, 10, 0);
    add_scale(grid, row++, _("_Steps:"), d->steps, 0,
              _("Denoising steps: more is slower and usually cleaner"), NULL);
    d->strength = gtk_adjustment_new(values->strength, 0.0, 1.0, 0.01, 0.1, 0);
    d->strength_row[1] =
        add_scale(grid, row++, _("St_rength:"), d->strength, 2,
                  _("0 keeps the image, 1 starts from pure noise"), &d->strength_row[0]);
    d->guidance = gtk_adjustment_new(values->guidance, 0.0, 20.0, 0.1, 1.0, 0);
    add_scale(grid, row++, _("_Guidance:"), d->guidance, 1,
              _("Classifier-free guidance: how strongly the class or the prompt is followed (1 = "
                "off)"),
              NULL);
    add_interval_row(d, grid, row++, values);

    /* seed + randomise */
    GtkWidget *sbox = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    d->seed = gtk_adjustment_new(values->seed, -1, G_MAXINT32, 1, 100, 0);
    GtkWidget *seed_spin = gtk_spin_button_new(d->seed, 0.0, 0);
    gtk_spin_button_set_numeric(GTK_SPIN_BUTTON(seed_spin), TRUE);
    gtk_widget_set_hexpand(seed_spin, TRUE);
    gtk_widget_set_tooltip_text(seed_spin, _("The noise seed; -1 picks a new one each run"));
    GtkWidget *rnd = gtk_button_new_with_mnemonic(_("R_andomise"));
    gtk_widget_set_tooltip_text(rnd, _("Pick a new random seed"));
    g_signal_connect(rnd, "clicked", G_CALLBACK(on_randomise), d);
    gtk_box_pack_start(GTK_BOX(sbox), seed_spin, TRUE, TRUE, 0);
    gtk_box_pack_start(GTK_BOX(sbox), rnd, FALSE, FALSE, 0);
    add_label(grid, row, _("S_eed:"), seed_spin);
    gtk_grid_attach(grid, sbox, 1, row++, 1, 1);

    /* sampler: the model's default, then the core's names in enum order */
    d->sampler = gtk_combo_box_text_new();
    gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(d->sampler), "", _("Model default"));
    for (int i = 0; i < DIT_SAMPLER_COUNT; i++)
        gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(d->sampler), dit_sampler_names[i],
                                  dit_sampler_names[i]);
    if (!gtk_combo_box_set_active_id(GTK_COMBO_BOX(d->sampler), values->sampler))
        gtk_combo_box_set_active(GTK_COMBO_BOX(d->sampler), 0);
    add_label(grid, row, _("Sam_pler:"), d->sampler);
    gtk_grid_attach(grid, d->sampler, 1, row++, 1, 1);

    /* device */
    d->device = gtk_combo_box_text_new();
    const gchar *device_names[] = {_("Automatic"), _("CPU"), _("CPU, bf16"), _("CUDA GPU")};
    G_STATIC_ASSERT(G_N_ELEMENTS(device_names) == G_N_ELEMENTS(device_ids));
    for (gsize i = 0; i < G_N_ELEMENTS(device_ids); i++)
        gtk_combo_box_text_append(GTK_COMBO_BOX_TEXT(d->device), device_ids[i], device_names[i]);
    if (!gtk_combo_box_set_active_id(GTK_COMBO_BOX(d->device), values->device))
        gtk_combo_box_set_active(GTK_COMBO_BOX(d->device), 0);
    add_label(grid, row, _("_Device:"), d->device);
    gtk_grid_attach(grid, d->device, 1, row++, 1, 1);
    dit_ctx *probe = dit_ctx_new();
    d->cuda_usable = probe && dit_ctx_set_device(probe, "cuda") == DIT_OK;
    dit_ctx_free(probe);
    d->device_note = gtk_label_new("");
    gtk_label_set_xalign(GTK_LABEL(d->device_note), 0.0f);
    gtk_label_set_line_wrap(GTK_LABEL(d->device_note), TRUE);
    gtk_label_set_max_width_chars(GTK_LABEL(d->device_note), 48);
    gtk_style_context_add_class(gtk_widget_get_style_context(d->device_note), "dim-label");
    gtk_grid_attach(grid, d->device_note, 1, row++, 1, 1);
    show_device(d);
    g_signal_connect(d->device, "changed", G_CALLBACK(on_device_changed), d);

    add_result_rows(d, grid, &row, values);
    add_inpaint_rows(d, grid, &row, values);

    /* preview + progress */
    GtkWidget *vbox = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
    GtkWidget *frame = gtk_frame_new(_("Preview"));
    d->preview = gtk_image_new();
    gtk_widget_set_size_request(d->preview, PREVIEW_SIZE, PREVIEW_SIZE);
    gtk_container_add(GTK_CONTAINER(frame), d->preview);
    d->progress = gtk_progress_bar_new();
    gtk_progress_bar_set_show_text(GTK_PROGRESS_BAR(d->progress), TRUE);
    gtk_progress_bar_set_text(GTK_PROGRESS_BAR(d->progress), _("Ready"));
    gtk_box_pack_start(GTK_BOX(vbox), frame, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(vbox), d->progress, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(hbox), vbox, FALSE, FALSE, 0);

    if (d->mode)
        g_signal_connect(d->mode, "changed", G_CALLBACK(on_mode_changed), d);

    gtk_widget_show_all(hbox);
    show_model(d);
    fill_labels(d);
    show_model_kind(d);
    update_mode_widgets(d);
    return d;
}

void ditui_dialog_destroy(DitDialog *d)
{
    if (!d)
        return;
    gtk_widget_destroy(d->dialog);
    g_object_unref(d->completion);
    g_free(d->model);
    g_free(d->default_model);
    g_free(d->title);
    g_free(d);
}

GtkWidget *ditui_dialog_get_widget(DitDialog *d) { return d->dialog; }

gint ditui_dialog_run(DitDialog *d)
{
    gtk_widget_show(d->dialog);
    return gtk_dialog_run(GTK_DIALOG(d->dialog));
}

/* a text model's prompts, remembered among the recent ones; "" for a
 * class model (which refuses a prompt) */
static void get_prompts(DitDialog *d, DitValues *v)
{
    GtkTextBuffer *buf = gtk_text_view_get_buffer(GTK_TEXT_VIEW(d->prompt));
    GtkTextIter a, b;
    gtk_text_buffer_get_bounds(buf, &a, &b);
    gchar *prompt = g_strstrip(gtk_text_buffer_get_text(buf, &a, &b, FALSE));
    gchar *negative = g_strstrip(g_strdup(gtk_entry_get_text(GTK_ENTRY(d->negative))));
    ditui_values_set_string(v->prompt, sizeof v->prompt, d->text_model ? prompt : "");
    ditui_values_set_string(v->negative_prompt, sizeof v->negative_prompt,
                            d->text_model ? negative : "");
    /* the class field is hidden: an empty prompt must not become its text */
    if (d->text_model && !*prompt)
        v->class_name[0] = '\0';
    G_STATIC_ASSERT(sizeof d->recent_prompts == sizeof v->recent_prompts);
    memcpy(v->recent_prompts, d->recent_prompts, sizeof v->recent_prompts);
    ditui_values_remember_prompt(v, v->prompt);
    memcpy(d->recent_prompts, v->recent_prompts, sizeof d->recent_prompts);
    fill_recent(d);
    g_free(prompt), g_free(negative);
}

void ditui_dialog_get_values(DitDialog *d, DitValues *v)
{
    v->version = DIT_VALUES_VERSION;
    v->mode = current_mode(d);
    ditui_values_set_string(v->model, sizeof v->model, d->model);
    GtkEntry *entry = GTK_ENTRY(gtk_bin_get_child(GTK_BIN(d->klass)));
    gchar *cls = g_strstrip(g_strdup(gtk_entry_get_text(entry)));
    ditui_values_set_string(v->class_name, sizeof v->class_name, cls);
    g_free(cls);
    get_prompts(d, v);
    v->steps = (gint32)gtk_adjustment_get_value(d->steps);
    v->strength = gtk_adjustment_get_value(d->strength);
    v->guidance = gtk_adjustment_get_value(d->guidance);
    v->guidance_from = gtk_adjustment_get_value(d->guidance_from);
    v->guidance_to = gtk_adjustment_get_value(d->guidance_to);
    v->seed = (gint32)gtk_adjustment_get_value(d->seed);
    v->grow = (gint32)gtk_adjustment_get_value(d->grow);
    v->feather = (gint32)gtk_adjustment_get_value(d->feather);
    v->colour_match = gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(d->colour_match));
    v->resample_jump = (gint32)gtk_adjustment_get_value(d->resample_jump);
    v->resample_count = (gint32)gtk_adjustment_get_value(d->resample_count);
    v->variations = (gint32)gtk_adjustment_get_value(d->variations);
    v->detail = (gint32)gtk_adjustment_get_value(d->detail);
    v->expand = (gint32)gtk_adjustment_get_value(d->expand);
    gint32 *sides[4] = {&v->top, &v->left, &v->bottom, &v->right};
    for (int i = 0; i < 4; i++)
        if (d->border[i])
            *sides[i] = (gint32)gtk_adjustment_get_value(d->border[i]);
    const gchar *sampler = gtk_combo_box_get_active_id(GTK_COMBO_BOX(d->sampler));
    ditui_values_set_string(v->sampler, sizeof v->sampler, sampler);
    const gchar *device = gtk_combo_box_get_active_id(GTK_COMBO_BOX(d->device));
    ditui_values_set_string(v->device, sizeof v->device, device ? device : "auto");
    const gchar *mask_mode = gtk_combo_box_get_active_id(GTK_COMBO_BOX(d->mask_mode));
    ditui_values_set_string(v->mask_mode, sizeof v->mask_mode,
                            mask_mode ? mask_mode : "regenerate");
}

void ditui_dialog_set_preview(DitDialog *d, const guint8 *rgb, gint width, gint height,
                              gint rowstride)
{
    if (!rgb || width <= 0 || height <= 0) {
        gtk_image_clear(GTK_IMAGE(d->preview));
        return;
    }
    GBytes *bytes = g_bytes_new(rgb, (gsize)rowstride * height);
    GdkPixbuf *src =
        gdk_pixbuf_new_from_bytes(bytes, GDK_COLORSPACE_RGB, FALSE, 8, width, height, rowstride);
    g_bytes_unref(bytes);
    const double s = (double)PREVIEW_SIZE / MAX(width, height);
    const gint w = MAX(1, (gint)(width * s + 0.5)), h = MAX(1, (gint)(height * s + 0.5));
    /* small latents are shown as blocks, photos smoothly */
    GdkPixbuf *scaled =
        gdk_pixbuf_scale_simple(src, w, h, s >= 4.0 ? GDK_INTERP_NEAREST : GDK_INTERP_BILINEAR);
    gtk_image_set_from_pixbuf(GTK_IMAGE(d->preview), scaled);
    g_object_unref(scaled);
    g_object_unref(src);
}

void ditui_dialog_set_progress(DitDialog *d, gdouble fraction, const gchar *text)
{
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(d->progress), CLAMP(fraction, 0.0, 1.0));
    if (text)
        gtk_progress_bar_set_text(GTK_PROGRESS_BAR(d->progress), text);
}

void ditui_dialog_set_running(DitDialog *d, gboolean running)
{
    gtk_widget_set_sensitive(d->settings, !running);
    gtk_widget_set_sensitive(d->ok, !running);
}

gboolean ditui_dialog_run_again(DitDialog *d, const gchar *done_text)
{
    ditui_dialog_set_running(d, FALSE);
    ditui_dialog_set_progress(d, 1.0, done_text);
    /* the title says it too, where a glance at the window list finds it */
    gchar *title = g_strdup_printf("%s: %s", d->title, done_text);
    gtk_window_set_title(GTK_WINDOW(d->dialog), title);
    g_free(title);
    gtk_button_set_label(GTK_BUTTON(d->ok), _("Run again wit_h a new seed"));
    gtk_button_set_label(GTK_BUTTON(d->cancel), _("_Close"));
    gtk_adjustment_set_value(d->seed, g_random_int_range(0, G_MAXINT32 - 16));
    return gtk_dialog_run(GTK_DIALOG(d->dialog)) == GTK_RESPONSE_OK;
}

void ditui_dialog_set_transient_for_xid(DitDialog *d, guint64 xid)
{
    d->parent_xid = xid;
    if (gtk_widget_get_realized(d->dialog))
        on_realize(d->dialog, d);
}
