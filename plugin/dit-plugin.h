/* What the two GIMP glue files share: everything of a plug-in run that does
 * not call libgimp. dit-gimp.c (libgimp 2.10) and dit-gimp3.c (libgimp 3.0)
 * only translate between GIMP's objects and the plain data below; this file
 * (GLib, GEGL/babl, GTK and ui/, never libgimp) does the rest:
 *
 *   the procedure table     names, menu path, documentation, dialog titles
 *   the argument table      name, type, range, choices, DitValues field:
 *                           the 2.10 GimpParamDef array and the 3.0 typed
 *                           GimpProcedure arguments are both built from it
 *   DitSource               what a glue file reads from GIMP: the facts the
 *                           input check needs, sizes, selection bounds and
 *                           GeglBuffers of the drawable and the selection
 *   ditgimp_run          checks, loads the model, reads the region,
 *                           samples in the worker (progress, dialog, cancel)
 *                           and returns the new layer's pixels and name
 *   DitOutput               what the glue writes into the new layer
 *
 * Both GIMPs hand out GEGL buffers and babl formats, so the pixel work
 * (formats, precision, alpha, bit-identical pixels outside the selection)
 * lives here once. */
#ifndef DIT_PLUGIN_H
#define DIT_PLUGIN_H

#include <gegl.h>
#include <glib.h>

#include "dialog.h"
#include "dit-job.h"
#include "values.h"

G_BEGIN_DECLS

/* ---- procedures ------------------------------------------------------------ */

#define DIT_PROC_INPAINT "plug-in-dit-inpaint"
#define DIT_PROC_IMG2IMG "plug-in-dit-img2img"
#define DIT_PROC_GENERATE "plug-in-dit-generate"
#define DIT_PROC_OUTPAINT "plug-in-dit-outpaint"
/* GIMP 2.10: the twin of a first-wave procedure that takes every argument
 * (its Script-Fu wants them all, in order, so the first ones keep theirs) */
#define DIT_PROC_FULL_SUFFIX "-full"
#define DIT_MENU_PATH "<Image>/Filters/Generic/DiT"
#define DIT_AUTHORS "gimp-dit authors"
#define DIT_COPYRIGHT "gimp-dit authors (MIT)"
#define DIT_DATE "2025"

/* context around an inpaint selection: this fraction of its longer side */
#define DIT_CONTEXT_PAD 0.2

typedef struct {
    const gchar *name; /* PDB name */
    DitMode mode;
    const gchar *blurb;      /* N_(): translate with _() when registering */
    const gchar *help;       /* N_() */
    const gchar *menu_label; /* N_() */
    const gchar *title;      /* N_(): the dialog's title */
} DitProc;

/* Indexed by DitMode. */
extern const DitProc dit_procs[DIT_MODE_COUNT];

/* The procedure called `name` (or its DIT_PROC_FULL_SUFFIX twin: *full
 * says which; full may be NULL), or NULL. */
const DitProc *ditgimp_proc_lookup(const gchar *name, gboolean *full);

/* ---- arguments ---------------------------------------------------------------- */

/* The arguments after run-mode, image and drawable(s), in PDB order; one
 * name per setting everywhere (PDB, GimpProcedureConfig, DitValues, CLI). */
typedef enum {
    DIT_ARG_STRING, /* free text */
    DIT_ARG_CHOICE, /* a string from `choices` (a GimpChoice in GIMP 3) */
    DIT_ARG_INT,
    DIT_ARG_DOUBLE,
} DitArgType;

typedef struct {
    const gchar *nick;  /* the GIMP 3 choice nick */
    const gchar *label; /* N_() */
    const gchar *value; /* what DitValues holds (and GIMP 2.10 takes) */
} DitChoice;

typedef struct {
    const gchar *name;
    DitArgType type;
    const gchar *nick;        /* a short label (GIMP 3's argument nick) */
    const gchar *blurb;       /* what it does, its default and range */
    const gchar *blurb3;      /* GIMP 3's, where it differs (choice nicks), or NULL */
    gdouble min, max;         /* INT and DOUBLE */
    const DitChoice *choices; /* CHOICE: NULL-nick-terminated */
    guint modes;              /* DIT_ARG_IN(mode) of the procedures that take it */
    gsize offset;             /* of the DitValues field */
    gsize size;               /* of a string field */
    /* added after GIMP 2.10's first procedures (inpaint, img2img, generate)
     * were published: their Script-Fu takes every argument in order, so an
     * argument added to them would break every existing call. GIMP 2.10 has
     * it in their DIT_PROC_FULL_SUFFIX twins (and in outpaint, which is
     * new); GIMP 3 takes named arguments with defaults, so there it is in
     * the procedures themselves. */
    gboolean added_later;
    /* GIMP 3 only: GIMP 2.10's -full twins and outpaint keep the lists
     * their callers were written for too (a text model's prompt reaches
     * GIMP 2.10's procedures through `class`) */
    gboolean gimp3_only;
} DitArg;

#define DIT_ARG_IN(mode) (1u << (mode))

extern const DitArg dit_args[];
extern const gint dit_n_args;

gboolean ditgimp_arg_applies(const DitArg *arg, DitMode mode);
/* an argument of GIMP 2.10's procedure for mode, or of its full twin
 * (never a gimp3_only one) */
gboolean ditgimp_arg_applies2(const DitArg *arg, DitMode mode, gboolean full);
/* How many of them GIMP 2.10's procedure (or its full twin) takes. */
gint ditgimp_arg_count2(DitMode mode, gboolean full);

/* DitValues fields through the table. Numbers as doubles (INT fields
 * round-trip exactly); strings as DitValues holds them; choices as nicks
 * (a value no choice has gives the first nick). */
gdouble ditgimp_arg_get_number(const DitArg *arg, const DitValues *v);
void ditgimp_arg_set_number(const DitArg *arg, DitValues *v, gdouble x);
const gchar *ditgimp_arg_get_string(const DitArg *arg, const DitValues *v);
void ditgimp_arg_set_string(const DitArg *arg, DitValues *v, const gchar *s);
const gchar *ditgimp_arg_get_nick(const DitArg *arg, const DitValues *v);
void ditgimp_arg_set_nick(const DitArg *arg, DitValues *v, const gchar *nick);

/* ---- strings ---------------------------------------------------------------------- */

/* $DIT_LOCALEDIR (an uninstalled build: the build tree's po/), else the
 * install prefix's locale dir */
const gchar *ditgimp_locale_dir(void);
/* binds the gimp-dit domain to ditgimp_locale_dir() */
void ditgimp_init_i18n(void);

/* GIMP's progress bar label for a run */
const gchar *ditgimp_progress_label(DitMode mode);

/* ---- the source ------------------------------------------------------------------- */

typedef struct {
    /* facts for the input check */
    gboolean indexed;         /* the image or the drawable */
    gboolean is_layer;        /* not a channel or a layer mask */
    gboolean is_group;        /* a layer group */
    gboolean selection_empty; /* the image has no selection */
    gboolean has_sel;         /* a selection that overlaps the drawable */
    GeglRectangle sel;        /* its bounds in drawable coordinates */
    gint layer_w, layer_h;    /* the drawable's size */
    gint image_w, image_h;
    /* pixels (the glue owns the references; ditgimp_source_clear drops them) */
    GeglBuffer *pixels;    /* the drawable's (NULL: generate without one) */
    const Babl *format;    /* its native format */
    GeglBuffer *selection; /* the image's selection channel */
    gint off_x, off_y;     /* the drawable's offsets in the image */
} DitSource;

void ditgimp_source_clear(DitSource *src);

/* The documented refusals: indexed image, not a layer, layer group, no
 * selection for inpaint, a selection beside the layer. */
gboolean ditgimp_source_check(const DitSource *src, DitMode mode, GError **error);

/* ---- one run ------------------------------------------------------------------------- */

/* The rectangle of the drawable a run reads and writes. */
typedef struct {
    gint x, y, w, h;
    gboolean selection; /* a selection limits what changes */
} DitRegion;

/* The region before the model is known (the dialog's preview) or with it
 * (job: the context is padded to whole model units). */
DitRegion ditgimp_source_region(const DitSource *src, DitMode mode, const DitJob *job);

typedef struct {
    DitRegion region;    /* generate: 0, 0 and the image's size; outpaint: in
                             the grown layer */
    gchar *name;         /* the new layer's, e.g. "DiT Dress seed 7"; with
                             variations the group's, "DiT Dress × 4" */
    gint count;          /* results: 1, or the variations */
    gchar **layer_names; /* count > 1: each result's, "DiT Dress seed 7" ... */
    gboolean generated;  /* a new layer of the image's size, not a copy */
    const Babl *format;  /* of pixels: the source's native format (edit) or
                             R'G'B'A float, to be put in the new layer's space
                             (generate; see ditgimp_output_write) */
    guint8 *pixels;      /* count results of region.w x region.h pixels */
    gsize result_bytes;  /* of one result */
    /* outpaint: the canvas grows by border (top, left, bottom, right); the
     * new layer is canvas (the source layer on its grown extent, the border
     * filled) with the region written over it */
    gint border[4];
    GeglBuffer *canvas;
} DitOutput;

void ditgimp_output_clear(DitOutput *out);

/* Writes result k's pixels into a new layer's buffer (outpaint: the canvas
 * first); layer_format is the new layer's own format. */
void ditgimp_output_write(const DitOutput *out, gint k, GeglBuffer *layer,
                          const Babl *layer_format);

typedef void (*DitProgressFunc)(gdouble fraction, gpointer user_data);

/* One run with the values (v->mode says which): checks the source, loads
 * the model, reads the region, samples in a worker thread while reporting
 * progress (0.05 .. 0.95, then 1.0) and updating the dialog (may be NULL;
 * its Cancel stops sampling within one step), and fills `out`. Nothing is
 * written to GIMP here. FALSE with the error on failure
 * (DIT_JOB_ERROR_CANCELLED when cancelled). */
gboolean ditgimp_run(const DitValues *v, const DitSource *src, DitDialog *dialog,
                     DitProgressFunc progress, gpointer progress_data, DitOutput *out,
                     GError **error);

/* ---- the dialog ---------------------------------------------------------------------- */

/* Opens a display for the dialog (gtk_init_check); FALSE with the
 * documented error when there is none. */
gboolean ditgimp_gtk_init(GError **error);

/* The dialog for v->mode's procedure, with the source region as its
 * preview (src may be NULL). */
DitDialog *ditgimp_dialog_new(const DitValues *v, const DitSource *src);

/* Runs the dialog: TRUE on OK with the values in v, the dialog then locked
 * for running; FALSE when cancelled. */
gboolean ditgimp_dialog_ask(DitDialog *dialog, DitValues *v);

/* After a run the glue has written (out names its result): TRUE when the
 * user asks for another with a new seed, the values in v and the dialog
 * locked again. Never for outpaint, which would grow the canvas again. */
gboolean ditgimp_dialog_again(DitDialog *dialog, const DitOutput *out, DitValues *v);

G_END_DECLS

#endif
