/* dialog-shot: opens the DiT dialog (ui/ only, no GIMP) and either saves a
 * screenshot of it or prints its texts.
 *
 *   dialog-shot --png OUT.png [--photo PHOTO] [--labels FILE] [--default-model DIR]
 *               [--model DIR] [--prompt TEXT] [--negative TEXT] [--recent TEXT ...]
 *       shows the dialog (needs a display, e.g. xvfb-run), waits until it is
 *       drawn and renders the window into OUT.png; --model picks a model
 *       other than the default (a text model shows its prompt box, filled
 *       with --prompt, the --recent prompts offered below it, and the
 *       negative prompt)
 *   dialog-shot --texts [--visible-only] [--labels FILE] [--model DIR] ...
 *       prints every label, button, frame and tooltip text, one per line, in
 *       the language of the environment (LANGUAGE=zh_CN ...); with
 *       --visible-only those of the rows shown for the model only
 *   dialog-shot --grab XID --png OUT.png
 *       saves what another program's X11 window shows (the dialog opened by
 *       the plug-in inside GIMP) into OUT.png
 *
 * Translations come from $DIT_LOCALEDIR (the build tree's po/) when set. */
#include <glib/gi18n-lib.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "dialog.h"

#ifdef GDK_WINDOWING_X11
#include <gdk/gdkx.h>
#endif

static gchar **labels_from_file(const gchar *path, gpointer user_data)
{
    gchar *text = NULL;
    const gchar *file = user_data;
    if (!file || !g_file_get_contents(file, &text, NULL, NULL))
        return NULL;
    gchar **lines = g_strsplit(g_strstrip(text), "\n", -1);
    g_free(text);
    return lines;
}

static void print_texts(GtkWidget *w, gpointer data)
{
    const gboolean *visible_only = data;
    if (*visible_only && !gtk_widget_is_toplevel(w) && !gtk_widget_get_visible(w))
        return;
    const gchar *tip = gtk_widget_get_tooltip_text(w);
    if (GTK_IS_LABEL(w) && *gtk_label_get_text(GTK_LABEL(w)))
        printf("%s\n", gtk_label_get_text(GTK_LABEL(w)));
    if (GTK_IS_PROGRESS_BAR(w) && gtk_progress_bar_get_text(GTK_PROGRESS_BAR(w)))
        printf("%s\n", gtk_progress_bar_get_text(GTK_PROGRESS_BAR(w)));
    if (GTK_IS_COMBO_BOX_TEXT(w) && !gtk_combo_box_get_has_entry(GTK_COMBO_BOX(w))) {
        gchar *t = gtk_combo_box_text_get_active_text(GTK_COMBO_BOX_TEXT(w));
        if (t)
            printf("%s\n", t);
        g_free(t);
        /* every entry, in order: "items: a | b | c" */
        GtkTreeModel *m = gtk_combo_box_get_model(GTK_COMBO_BOX(w));
        GtkTreeIter it;
        printf("items:");
        for (gboolean ok = gtk_tree_model_get_iter_first(m, &it); ok;
             ok = gtk_tree_model_iter_next(m, &it)) {
            gchar *item = NULL;
            gtk_tree_model_get(m, &it, 0, &item, -1);
            printf(" %s%s", item ? item : "", gtk_tree_model_iter_n_children(m, NULL) ? " |" : "");
            g_free(item);
        }
        printf("\n");
    }
    if (GTK_IS_SPIN_BUTTON(w)) {
        double lo, hi;
        gtk_spin_button_get_range(GTK_SPIN_BUTTON(w), &lo, &hi);
        printf("range: %g - %g\n", lo, hi);
    } else if (GTK_IS_ENTRY(w) && gtk_entry_get_placeholder_text(GTK_ENTRY(w))) {
        printf("placeholder: %s\n", gtk_entry_get_placeholder_text(GTK_ENTRY(w)));
    }
    if (tip)
        printf("%s\n", tip);
    g_free((gchar *)tip);
    if (GTK_IS_CONTAINER(w))
        gtk_container_forall(GTK_CONTAINER(w), print_texts, data);
}

/* another client's X11 window, as it is on screen, into a PNG */
static int grab_window(const gchar *id, const gchar *out)
{
#ifdef GDK_WINDOWING_X11
    GdkDisplay *display = gdk_display_get_default();
    const guint64 xid = g_ascii_strtoull(id, NULL, 0);
    if (!GDK_IS_X11_DISPLAY(display) || xid == 0) {
        fprintf(stderr, "dialog-shot: --grab needs an X11 display and a window id\n");
        return 2;
    }
    GdkWindow *window = gdk_x11_window_foreign_new_for_display(display, (Window)xid);
    if (!window) {
        fprintf(stderr, "dialog-shot: no window %s\n", id);
        return 1;
    }
    const int w = gdk_window_get_width(window), h = gdk_window_get_height(window);
    GdkPixbuf *pb = gdk_pixbuf_get_from_window(window, 0, 0, w, h);
    GError *err = NULL;
    const int rc = pb && gdk_pixbuf_save(pb, out, "png", &err, NULL) ? 0 : 1;
    if (rc)
        fprintf(stderr, "dialog-shot: cannot grab %s into %s: %s\n", id, out,
                err ? err->message : "no pixels");
    else
        printf("dialog-shot: window %s, %dx%d -> %s\n", id, w, h, out);
    g_clear_error(&err);
    g_clear_object(&pb);
    g_object_unref(window);
    return rc;
#else
    fprintf(stderr, "dialog-shot: --grab needs GTK with X11\n");
    return 2;
#endif
}

typedef struct {
    GtkWidget *window;
    const gchar *out;
    int rc;
    int tries;
} Shot;

static gboolean take_shot(gpointer data)
{
    Shot *s = data;
    /* wait until the window is mapped and has its final size */
    if (!gtk_widget_get_mapped(s->window) && ++s->tries < 100)
        return G_SOURCE_CONTINUE;
    const int w = gtk_widget_get_allocated_width(s->window);
    const int h = gtk_widget_get_allocated_height(s->window);
    cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(surface);
    gtk_widget_draw(s->window, cr);
    cairo_destroy(cr);
    s->rc = cairo_surface_write_to_png(surface, s->out) == CAIRO_STATUS_SUCCESS ? 0 : 1;
    if (s->rc)
        fprintf(stderr, "dialog-shot: cannot write %s\n", s->out);
    else
        printf("dialog-shot: %dx%d -> %s\n", w, h, s->out);
    cairo_surface_destroy(surface);
    gtk_main_quit();
    return G_SOURCE_REMOVE;
}

int main(int argc, char **argv)
{
    gchar *png = NULL, *photo = NULL, *labels = NULL, *model = NULL, *grab = NULL;
    gchar *class_name = NULL, *pick = NULL, *prompt = NULL, *negative = NULL;
    gchar **recent = NULL;
    gboolean texts = FALSE, visible_only = FALSE;
    GOptionEntry entries[] = {
        {"png", 0, 0, G_OPTION_ARG_FILENAME, &png, "save a screenshot", "FILE"},
        {"photo", 0, 0, G_OPTION_ARG_FILENAME, &photo, "show this picture as the preview", "FILE"},
        {"labels", 0, 0, G_OPTION_ARG_FILENAME, &labels, "class labels, one per line", "FILE"},
        {"default-model", 0, 0, G_OPTION_ARG_FILENAME, &model, "the default model's folder", "DIR"},
        {"texts", 0, 0, G_OPTION_ARG_NONE, &texts,
         "print the dialog's texts (labels, tooltips, placeholders, spin ranges)", NULL},
        {"class", 0, 0, G_OPTION_ARG_STRING, &class_name, "the Class field (default Sneaker)",
         "TEXT"},
        {"grab", 0, 0, G_OPTION_ARG_STRING, &grab, "save this X11 window instead", "XID"},
        {"model", 0, 0, G_OPTION_ARG_FILENAME, &pick, "the chosen model (default: the default)",
         "DIR"},
        {"prompt", 0, 0, G_OPTION_ARG_STRING, &prompt, "a text model's prompt", "TEXT"},
        {"negative", 0, 0, G_OPTION_ARG_STRING, &negative, "its negative prompt", "TEXT"},
        {"recent", 0, 0, G_OPTION_ARG_STRING_ARRAY, &recent, "a recent prompt (repeatable)",
         "TEXT"},
        {"visible-only", 0, 0, G_OPTION_ARG_NONE, &visible_only,
         "--texts: only the shown widgets' texts", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    setlocale(LC_ALL, "");
    const gchar *dir = g_getenv("DIT_LOCALEDIR");
    bindtextdomain(GETTEXT_PACKAGE, dir && *dir ? dir : DIT_LOCALEDIR);
    bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
    GError *err = NULL;
    if (!gtk_init_with_args(&argc, &argv, "- show the DiT dialog", entries, NULL, &err)) {
        fprintf(stderr, "dialog-shot: %s\n", err ? err->message : "cannot open a display");
        return 77; /* no display: skip */
    }
    if (grab && png) {
        const int rc = grab_window(grab, png);
        g_free(grab), g_free(png), g_free(photo), g_free(labels), g_free(model), g_free(class_name);
        return rc;
    }
    if (!png && !texts) {
        fprintf(stderr, "dialog-shot: give --png FILE or --texts\n");
        return 2;
    }

    DitValues v;
    ditui_values_init(&v, DIT_MODE_INPAINT);
    ditui_values_set_string(v.class_name, sizeof v.class_name, class_name ? class_name : "Sneaker");
    v.seed = 1234;
    ditui_values_set_string(v.model, sizeof v.model, pick);
    for (gint i = recent ? (gint)g_strv_length(recent) - 1 : -1; i >= 0; i--)
        ditui_values_remember_prompt(&v, recent[i]); /* the first given is the newest */
    ditui_values_set_string(v.prompt, sizeof v.prompt, prompt);
    ditui_values_set_string(v.negative_prompt, sizeof v.negative_prompt, negative);
    DitDialog *d = ditui_dialog_new(_("DiT Inpaint"), &v, TRUE, model, labels_from_file, labels);
    if (photo) {
        GdkPixbuf *pb = gdk_pixbuf_new_from_file(photo, &err);
        if (!pb) {
            fprintf(stderr, "dialog-shot: %s\n", err->message);
            return 2;
        }
        if (gdk_pixbuf_get_has_alpha(pb) || gdk_pixbuf_get_bits_per_sample(pb) != 8) {
            fprintf(stderr, "dialog-shot: --photo takes an 8-bit RGB picture without alpha\n");
            return 2;
        }
        ditui_dialog_set_preview(d, gdk_pixbuf_get_pixels(pb), gdk_pixbuf_get_width(pb),
                                 gdk_pixbuf_get_height(pb), gdk_pixbuf_get_rowstride(pb));
        g_object_unref(pb);
    }

    int rc = 0;
    GtkWidget *window = ditui_dialog_get_widget(d);
    if (texts) {
        printf("%s\n", gtk_window_get_title(GTK_WINDOW(window)));
        print_texts(window, &visible_only);
    }
    if (png) {
        Shot s = {window, png, 1, 0};
        gtk_widget_show(window);
        g_timeout_add(300, take_shot, &s);
        gtk_main();
        rc = s.rc;
    }
    ditui_dialog_destroy(d);
    g_free(png), g_free(photo), g_free(labels), g_free(model), g_free(class_name);
    g_free(pick), g_free(prompt), g_free(negative);
    g_strfreev(recent);
    return rc;
}
