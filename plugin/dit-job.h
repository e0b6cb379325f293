/* One DiT run for an image editor, free of any editor API: the plug-ins
 * (dit-plugin.c, for dit-gimp.c and dit-gimp3.c) read pixels and the
 * selection, hand them here as planar floats, and write the result back.
 *
 *   job = ditgimp_job_new (&values, &error);       model, VAE, labels, class, seed
 *                                                  (a text model: prompts, then model)
 *   ditgimp_job_context_rect (job, ...);           selection bounds -> crop
 *   ditgimp_job_start (job, rgb, mask, w, h, ...); sampling in a worker thread
 *   while (!ditgimp_job_poll (job, &step, &total)) ... ditgimp_job_preview (...)
 *   result = ditgimp_job_finish (job, &error);     (count, 3, h, w) floats in [-1, 1]
 *
 * Inside the worker: the crop is resized to the model's native size (aspect
 * kept, multiples of VAE factor x patch), sampled with dit_pipeline_run,
 * resized back and composited with the mask at the crop's own resolution,
 * so every pixel where the mask is 0 is the source's, bit for bit. */
#ifndef DIT_PLUGIN_JOB_H
#define DIT_PLUGIN_JOB_H

#include <glib.h>

#include "values.h"

G_BEGIN_DECLS

#define DIT_JOB_ERROR (ditgimp_job_error_quark())
GQuark ditgimp_job_error_quark(void);

typedef enum {
    DIT_JOB_ERROR_INPUT,     /* a setting or the pixels handed in are not usable */
    DIT_JOB_ERROR_MODEL,     /* the model could not be found, loaded or run */
    DIT_JOB_ERROR_CANCELLED, /* the user stopped it; nothing was produced */
} DitJobError;

typedef struct _DitJob DitJob;

/* The embedded model: $DIT_DEFAULT_MODEL, else models/default under the
 * installed data dir, else under the source tree's data/ (uninstalled
 * builds). NULL when none exists. */
gchar *ditgimp_job_default_model(void);

/* The class labels of a model (labels.txt beside it or in its folder; the
 * ImageNet list for a 1000-class model), or NULL. Cheap: reads no weights. */
gchar **ditgimp_job_labels_for_model(const gchar *model_path);

/* Loads the model (values->model, "" = the default), its VAE (the pipeline
 * folder's vae/) and labels, and checks every value: class, sampler, device,
 * steps, strength, guidance, grow. A negative seed is replaced by a random
 * one (ditgimp_job_seed).
 *
 * A text model (a PixArt pipeline folder, dit_is_pixart) takes
 * values->prompt, or where that is empty the class string (GIMP 2.10's
 * procedures have no prompt argument), and values->negative_prompt; both
 * are encoded first (the prompt cache, or the folder's T5, freed again
 * before the transformer loads). Its guidance is DIT_TEXT_GUIDANCE where
 * values->guidance is DIT_VALUES_GUIDANCE, its scheduler the folder's. A
 * text model without a prompt and a class model given one are refused. */
DitJob *ditgimp_job_new(const DitValues *values, GError **error);
void ditgimp_job_free(DitJob *job);

gint32 ditgimp_job_seed(const DitJob *job);
/* The precision of its products: "fp32", "bf16" (the device's choice) */
const gchar *ditgimp_job_precision(const DitJob *job);
/* What the result shows, for layer names: the class's label (else its
 * number), or a text model's prompt on one line, shortened to about 40
 * characters ("…" where cut). */
const gchar *ditgimp_job_label(const DitJob *job);
/* TRUE for a text model (PixArt) */
gboolean ditgimp_job_is_text(const DitJob *job);
/* VAE factor x patch size: model sizes are multiples of it. */
gint ditgimp_job_unit(const DitJob *job);
/* How many results a run gives: the variations, image k from seed + k. */
gint ditgimp_job_count(const DitJob *job);

/* The region to sample for a selection's bounds (x, y, w, h) inside a layer
 * of layer_w x layer_h: the bounds plus `pad_fraction` of their longer side
 * on each side (at least one model unit), clamped to the layer. */
void ditgimp_job_context_rect(const DitJob *job, gint x, gint y, gint w, gint h, gint layer_w,
                              gint layer_h, gdouble pad_fraction, gint *cx, gint *cy, gint *cw,
                              gint *ch);

/* Starts the worker. rgb (3, height, width) in [-1, 1] is the source
 * (NULL for generate); mask (height, width) in [0, 1] marks what may change
 * (NULL: everything). The job takes ownership of both buffers. */
gboolean ditgimp_job_start(DitJob *job, gfloat *rgb, gfloat *mask, gint width, gint height,
                           GError **error);

/* TRUE once the worker has finished (or failed). step/total: sampling steps
 * done so far and in all (0/0 before the first step). */
gboolean ditgimp_job_poll(DitJob *job, gint *step, gint *total);

/* A new preview of the current latent as packed 8-bit RGB (rowstride
 * 3 * width; free with g_free), or FALSE when nothing new came since the
 * last call. */
gboolean ditgimp_job_preview(DitJob *job, guint8 **rgb, gint *width, gint *height);

/* Asks the worker to stop; it does within one sampling step. */
void ditgimp_job_cancel(DitJob *job);

/* Waits for the worker; returns the composited results (ditgimp_job_count,
 * 3, height, width) in
 * [-1, 1] (g_free it), or NULL with the error (DIT_JOB_ERROR_CANCELLED when
 * cancelled). */
gfloat *ditgimp_job_finish(DitJob *job, GError **error);

G_END_DECLS

#endif
