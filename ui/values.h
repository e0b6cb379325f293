/* The settings of one DiT run, shared by the GTK3 dialog and the plug-ins.
 *
 * Plain C with fixed-size strings, so a plug-in can store the struct as it
 * is (GIMP 2.10's gimp_set_data); no GTK, no GIMP. One name per setting
 * everywhere: the PDB arguments, the dit CLI flags and these fields agree. */
#ifndef DIT_UI_VALUES_H
#define DIT_UI_VALUES_H

#include <glib.h>

G_BEGIN_DECLS

/* bump when the layout below changes: stored values of another version are
 * dropped and the defaults used instead */
#define DIT_VALUES_VERSION 5

/* the guidance a run starts from; a text model takes DIT_TEXT_GUIDANCE
 * (4.5, diffusers' PixArt pipelines') where this one is left */
#define DIT_VALUES_GUIDANCE 4.0

/* the prompts the dialog offers again, newest first */
#define DIT_RECENT_PROMPTS 5

typedef enum {
    DIT_MODE_INPAINT = 0, /* regenerate the selection, keep the rest */
    DIT_MODE_IMG2IMG,     /* re-imagine the layer (or the selection's bounds) */
    DIT_MODE_GENERATE,    /* a new image of a class, no source */
    DIT_MODE_OUTPAINT,    /* grow the canvas (or fill the transparent pixels) */
    DIT_MODE_COUNT
} DitMode;

typedef struct {
    gint32 version;                  /* DIT_VALUES_VERSION */
    gint32 mode;                     /* DitMode; the procedure's own */
    gchar model[1024];               /* "": the embedded default model */
    gchar class_name[256];           /* class id or label name; "": class 0 */
    gint32 steps;                    /* 20 (1 .. 1000; 0: the model's default) */
    gdouble strength;                /* 1.0 inpaint, 0.75 img2img (0 .. 1) */
    gdouble guidance;                /* 4.0 (0 .. 100; <= 1 turns guidance off) */
    gint32 seed;                     /* -1: a new random seed each run (-1 .. 2^31 - 1) */
    gchar sampler[32];               /* "": the model's default; ddpm, ddim, dpm++2m, euler, cold */
    gint32 grow;                     /* 0: grow the inpaint mask by N latent pixels (0 .. 64) */
    gchar device[16];                /* "auto", "cpu", "cpu-bf16" or "cuda" */
    gchar mask_mode[16];             /* inpaint: "regenerate" or "differential" (dit_mask_mode) */
    gint32 feather;                  /* inpaint: -1 (a fifth of the selection's shorter side), or
                              soften the selection's edge N pixels inward */
    gint32 colour_match;             /* inpaint: 0: 1 matches the colour at the edge */
    gint32 resample_jump;            /* inpaint: 0 (off): harmonise, N steps back */
    gint32 resample_count;           /* inpaint: 1: each block of steps run N times */
    gint32 variations;               /* 1: results from seed, seed + 1, ... (1 .. 16) */
    gint32 top, left, bottom, right; /* outpaint: 64: grow the canvas (0 .. 4096 px) */
    gint32 detail; /* 0 (the model's size): work at up to N px on the longer side (0 .. 4096) */
    gint32 expand; /* inpaint: 0: grow the selection outward by N px first (0 .. 1024) */
    gdouble guidance_from, guidance_to; /* 0 and 1: guide at these noise levels only */
    /* a text model (PixArt): what to paint; "": the class string is the
     * prompt (GIMP 2.10's procedures take no prompt argument) */
    gchar prompt[2048];
    gchar negative_prompt[1024]; /* a text model: what to steer away from; "": nothing */
    gchar recent_prompts[DIT_RECENT_PROMPTS][2048]; /* the dialog's last prompts; "": unused */
} DitValues;

/* The defaults above for a mode. */
void ditui_values_init(DitValues *v, DitMode mode);

/* Copies src into a fixed-size field, truncating (never inside a UTF-8
 * character); NULL gives "". */
void ditui_values_set_string(gchar *field, gsize size, const gchar *src);

/* Puts prompt first in v->recent_prompts (moved up when it is there
 * already, the oldest dropped); an empty prompt changes nothing. */
void ditui_values_remember_prompt(DitValues *v, const gchar *prompt);

G_END_DECLS

#endif
