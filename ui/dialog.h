/* The DiT dialog: GTK3 widgets for every DitValues field plus a preview of
 * the region being sampled. It knows nothing of GIMP: a plug-in (or a test)
 * gives it the starting values, a function that lists a model's class
 * labels, and RGB buffers to show while sampling runs. For a text model
 * (PixArt) a prompt box with the recent prompts and a negative-prompt
 * entry take the class field's place.
 *
 * Typical use (GIMP 2.10 plug-in):
 *
 *   DitDialog *d = ditui_dialog_new (_("DiT Inpaint"), &vals, TRUE,
 *                                  default_model, labels_for_model, NULL);
 *   ditui_dialog_set_preview (d, rgb, w, h, w * 3);   // the source region
 *   if (ditui_dialog_run (d) == GTK_RESPONSE_OK) {
 *       ditui_dialog_get_values (d, &vals);
 *       ditui_dialog_set_running (d, TRUE);            // Cancel now stops sampling
 *       ...                                          // set_progress / set_preview per step
 *   }
 *   ditui_dialog_destroy (d);
 */
#ifndef DIT_UI_DIALOG_H
#define DIT_UI_DIALOG_H

#include <gtk/gtk.h>

#include "values.h"

G_BEGIN_DECLS

typedef struct _DitDialog DitDialog;

/* The class labels of the model at `model_path` ("" is never passed: the
 * default model's path is); a NULL-terminated array the dialog frees with
 * g_strfreev, or NULL when the model has no label list. */
typedef gchar **(*DitLabelsFunc)(const gchar *model_path, gpointer user_data);

/*   values        the starting values (mode picks the procedure's defaults)
 *   mode_choice   show the inpaint / img2img switch (FALSE for generate)
 *   default_model the embedded model's path, shown when values->model is "";
 *                 NULL when no default model is installed
 *   labels_func   may be NULL: the class entry then takes ids and names */
DitDialog *ditui_dialog_new(const gchar *title, const DitValues *values, gboolean mode_choice,
                            const gchar *default_model, DitLabelsFunc labels_func,
                            gpointer user_data);
void ditui_dialog_destroy(DitDialog *dialog);

/* The GtkDialog itself, e.g. to connect "response" while running. */
GtkWidget *ditui_dialog_get_widget(DitDialog *dialog);

/* Shows the dialog and waits for OK (GTK_RESPONSE_OK), Cancel or close. */
gint ditui_dialog_run(DitDialog *dialog);

/* The values as the widgets hold them now; a text model's prompt goes
 * first among the recent prompts (a class model's prompts are ""). */
void ditui_dialog_get_values(DitDialog *dialog, DitValues *values);

/* Shows packed 8-bit RGB (h rows of `rowstride` bytes) scaled to fit the
 * preview area; NULL clears it. */
void ditui_dialog_set_preview(DitDialog *dialog, const guint8 *rgb, gint width, gint height,
                              gint rowstride);

/* fraction in [0, 1]; text may be NULL. */
void ditui_dialog_set_progress(DitDialog *dialog, gdouble fraction, const gchar *text);

/* While running, the settings are locked, OK is off and Cancel (or closing
 * the window) emits "response" for the caller to stop the work. */
void ditui_dialog_set_running(DitDialog *dialog, gboolean running);

/* After a run whose result the caller kept (done_text says which, in the
 * progress bar and the title): the settings unlocked, the seed a new random one, OK relabelled "Run again
 * with a new seed" and Cancel "Close"; waits. TRUE to run again with the
 * values the widgets then hold. */
gboolean ditui_dialog_run_again(DitDialog *dialog, const gchar *done_text);

/* Keeps the dialog above a foreign X11 window (GIMP's image window); a
 * no-op on other windowing systems or for 0. */
void ditui_dialog_set_transient_for_xid(DitDialog *dialog, guint64 xid);

G_END_DECLS

#endif
