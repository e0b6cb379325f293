/* The GIMP-version-independent half of the plug-in; see dit-plugin.h.
 * GLib, GEGL/babl, GTK and ui/ only: no libgimp here. */
#include "dit-plugin.h"

#include <glib/gi18n-lib.h>
#include <locale.h>
#include <stddef.h>
#include <string.h>

#include "dit.h"

/* ---- procedures -------------------------------------------------------------- */

/* clang-format off */
const DitProc dit_procs[DIT_MODE_COUNT] = {
    [DIT_MODE_INPAINT] = {
        DIT_PROC_INPAINT, DIT_MODE_INPAINT,
        N_("Regenerate the selection with a Diffusion Transformer"),
        N_("Fills the selected part of the active layer with new content of a class, "
           "sampled by a DiT on the selection and its surroundings. The result is a new "
           "layer above the active one; outside the selection it is the active layer's "
           "pixels, unchanged. Soft selections blend softly. Needs a selection."),
        N_("DiT _Inpaint..."), N_("DiT Inpaint"),
    },
    [DIT_MODE_IMG2IMG] = {
        DIT_PROC_IMG2IMG, DIT_MODE_IMG2IMG,
        N_("Re-imagine the layer with a Diffusion Transformer"),
        N_("Re-imagines the active layer (or the part inside the selection's bounds) as the "
           "chosen class: strength 0 keeps the image, 1 starts from noise. The result is a "
           "new layer above the active one with the source's alpha; pixels outside the "
           "selection stay unchanged."),
        N_("DiT _Image to Image..."), N_("DiT Image to Image"),
    },
    [DIT_MODE_GENERATE] = {
        DIT_PROC_GENERATE, DIT_MODE_GENERATE,
        N_("Generate an image of a class with a Diffusion Transformer"),
        N_("Samples a new image of the chosen class at the model's resolution, scaled to "
           "the image's size, into a new layer above the active one."),
        N_("DiT _Generate..."), N_("DiT Generate"),
    },
    [DIT_MODE_OUTPAINT] = {
        DIT_PROC_OUTPAINT, DIT_MODE_OUTPAINT,
        N_("Grow the canvas and fill it with a Diffusion Transformer"),
        N_("Grows the image's canvas by the given pixels on each side and fills the new border "
           "(and whatever the active layer leaves fully transparent) with content of a class "
           "that continues the layer. The result is a new layer above the active one, the size "
           "of the grown layer; the layer's own pixels stay unchanged at their new place. One "
           "undo step takes back the new layer and the canvas size."),
        N_("DiT _Outpaint..."), N_("DiT Outpaint"),
    },
};
/* clang-format on */

const DitProc *ditgimp_proc_lookup(const gchar *name, gboolean *full)
{
    for (gint i = 0; name && i < DIT_MODE_COUNT; i++) {
        const gsize n = strlen(dit_procs[i].name);
        if (strncmp(name, dit_procs[i].name, n) != 0)
            continue;
        const gboolean twin = i != DIT_MODE_OUTPAINT && strcmp(name + n, DIT_PROC_FULL_SUFFIX) == 0;
        if (name[n] && !twin)
            continue;
        if (full)
            *full = twin || i == DIT_MODE_OUTPAINT;
        return &dit_procs[i];
    }
    return NULL;
}

/* ---- arguments ----------------------------------------------------------------- */

/* "" (the model's default) first, then the core's samplers in enum order;
 * test-job checks that the two lists agree */
static const DitChoice sampler_choices[] = {
    {"default", N_("Model default"), ""},
    {"ddpm", "ddpm", "ddpm"},
    {"ddim", "ddim", "ddim"},
    {"dpm++2m", "dpm++2m", "dpm++2m"},
    {"euler", "euler", "euler"},
    {"cold", "cold", "cold"},
    {NULL, NULL, NULL},
};

G_STATIC_ASSERT(G_N_ELEMENTS(sampler_choices) == DIT_SAMPLER_COUNT + 2);

static const DitChoice device_choices[] = {
    {"auto", N_("Automatic"), "auto"},
    {"cpu", N_("CPU"), "cpu"},
    {"cpu-bf16", N_("CPU, bf16"), "cpu-bf16"},
    {"cuda", N_("CUDA GPU"), "cuda"},
    {NULL, NULL, NULL},
};

static const DitChoice mask_mode_choices[] = {
    {"regenerate", N_("Regenerate, blend by the selection"), "regenerate"},
    {"differential", N_("Selection is per-pixel strength"), "differential"},
    {NULL, NULL, NULL},
};

G_STATIC_ASSERT(G_N_ELEMENTS(mask_mode_choices) == DIT_MASK_MODE_COUNT + 1);

#define FIELD(f) offsetof(DitValues, f), sizeof(((DitValues *)0)->f)
#define ALL_MODES (DIT_ARG_IN(DIT_MODE_COUNT) - 1)
#define EDIT_MODES (ALL_MODES & ~DIT_ARG_IN(DIT_MODE_GENERATE))
#define OUTPAINT_ONLY DIT_ARG_IN(DIT_MODE_OUTPAINT)

/* defaults: ditui_values_init (ui/values.c), the one place that sets them */
/* clang-format off */
const DitArg dit_args[] = {
    {"model", DIT_ARG_STRING, "Model",
     "DiT model: a .safetensors file, a diffusers folder or a pipeline folder with "
     "transformer/ and vae/, a PixArt one being a text model (\"\" = the embedded default "
     "model)", NULL,
     0, 0, NULL, ALL_MODES, FIELD(model), FALSE, FALSE},
    {"class", DIT_ARG_STRING, "Class",
     "Class id or label name, any case (\"\" = class 0); for a text model (PixArt) the "
     "prompt where `prompt` is \"\"", NULL,
     0, 0, NULL, ALL_MODES, FIELD(class_name), FALSE, FALSE},
    {"steps", DIT_ARG_INT, "Steps",
     "Sampling steps (1 - 1000, 0 = the model's default; default 20)", NULL,
     0, 1000, NULL, ALL_MODES, FIELD(steps), FALSE, FALSE},
    {"strength", DIT_ARG_DOUBLE, "Strength",
     "0 keeps the image, 1 starts from noise (0 - 1; default 1.0 inpaint, 0.75 img2img)", NULL,
     0.0, 1.0, NULL, EDIT_MODES, FIELD(strength), FALSE, FALSE},
    {"guidance", DIT_ARG_DOUBLE, "Guidance",
     "Classifier-free guidance scale (0 - 100, <= 1 = off; default 4.0, which a text model "
     "runs as its 4.5)", NULL,
     0.0, 100.0, NULL, ALL_MODES, FIELD(guidance), FALSE, FALSE},
    {"guidance-from", DIT_ARG_DOUBLE, "Guidance from",
     "Guide only from this noise level (timestep / training steps, 0 - 1; default 0)", NULL,
     0.0, 1.0, NULL, ALL_MODES, FIELD(guidance_from), TRUE, FALSE},
    {"guidance-to", DIT_ARG_DOUBLE, "Guidance to",
     "... up to this one; the other steps run without guidance, half the work (0 - 1; "
     "default 1)", NULL,
     0.0, 1.0, NULL, ALL_MODES, FIELD(guidance_to), TRUE, FALSE},
    {"seed", DIT_ARG_INT, "Seed",
     "Noise seed (0 - 2147483647; -1 = random, named in the new layer)", NULL,
     -1, G_MAXINT32, NULL, ALL_MODES, FIELD(seed), FALSE, FALSE},
    {"sampler", DIT_ARG_CHOICE, "Sampler",
     "ddpm, ddim, dpm++2m, euler or cold (\"\" = the model's default)",
     "default (the model's), ddpm, ddim, dpm++2m, euler or cold",
     0, 0, sampler_choices, ALL_MODES, FIELD(sampler), FALSE, FALSE},
    {"grow", DIT_ARG_INT, "Grow",
     "Inpaint: grow the mask by N latent pixels (0 - 64; default 0)", NULL,
     0, 64, NULL, EDIT_MODES, FIELD(grow), FALSE, FALSE},
    {"device", DIT_ARG_CHOICE, "Device",
     "auto, cpu, cpu-bf16 or cuda (default auto: the GPU where usable, else the CPU, in bf16 "
     "only where the CPU measured it faster)", NULL,
     0, 0, device_choices, ALL_MODES, FIELD(device), FALSE, FALSE},
    {"mask-mode", DIT_ARG_CHOICE, "Mask mode",
     "Inpaint: regenerate (remake where the selection is above 0, blend by its value) or "
     "differential (the selection's value is how much each pixel may change) (default "
     "differential)", NULL,
     0, 0, mask_mode_choices, EDIT_MODES, FIELD(mask_mode), TRUE, FALSE},
    {"expand", DIT_ARG_INT, "Expand",
     "Inpaint: grow the selection outward by this many pixels first, its soft edge kept "
     "(0 - 1024; default 0)", NULL,
     0, 1024, NULL, EDIT_MODES, FIELD(expand), TRUE, FALSE},
    {"feather", DIT_ARG_INT, "Feather",
     "Inpaint: soften the selection's edge this many pixels inward (-1 - 1024; default -1: a "
     "fifth of the selection's shorter side)", NULL,
     -1, 1024, NULL, EDIT_MODES, FIELD(feather), TRUE, FALSE},
    {"colour-match", DIT_ARG_INT, "Colour match",
     "Inpaint: 1 moves the result's colour at the selection's edge to the surroundings' "
     "(0 - 1; default 0)", NULL,
     0, 1, NULL, EDIT_MODES, FIELD(colour_match), TRUE, FALSE},
    {"resample-jump", DIT_ARG_INT, "Resample jump",
     "Inpaint: harmonise by going back this many steps after every as many (0 - 1000; "
     "default 0, off)", NULL,
     0, 1000, NULL, EDIT_MODES, FIELD(resample_jump), TRUE, FALSE},
    {"resample-count", DIT_ARG_INT, "Resample count",
     "Inpaint: run each block of steps this many times, each extra time at its steps' cost "
     "(1 - 20; default 1)", NULL,
     1, 20, NULL, EDIT_MODES, FIELD(resample_count), TRUE, FALSE},
    {"variations", DIT_ARG_INT, "Variations",
     "Results from seeds seed, seed + 1, ...: more than 1 gives a layer group with one layer "
     "per seed (1 - 16; default 1)", NULL,
     1, 16, NULL, ALL_MODES, FIELD(variations), TRUE, FALSE},
    {"detail", DIT_ARG_INT, "Detail",
     "Work at the region's own size up to this many pixels on its longer side: sampled at the "
     "model's size first, then refined in model-size windows (0 - 4096; default 0, the "
     "model's size)", NULL,
     0, 4096, NULL, ALL_MODES, FIELD(detail), TRUE, FALSE},
    {"top", DIT_ARG_INT, "Top",
     "Outpaint: grow the canvas this many pixels at the top (0 - 4096; default 64)", NULL,
     0, 4096, NULL, OUTPAINT_ONLY, FIELD(top), TRUE, FALSE},
    {"left", DIT_ARG_INT, "Left",
     "Outpaint: grow the canvas this many pixels on the left (0 - 4096; default 64)", NULL,
     0, 4096, NULL, OUTPAINT_ONLY, FIELD(left), TRUE, FALSE},
    {"bottom", DIT_ARG_INT, "Bottom",
     "Outpaint: grow the canvas this many pixels at the bottom (0 - 4096; default 64)", NULL,
     0, 4096, NULL, OUTPAINT_ONLY, FIELD(bottom), TRUE, FALSE},
    {"right", DIT_ARG_INT, "Right",
     "Outpaint: grow the canvas this many pixels on the right (0 - 4096; default 64; all four "
     "0: fill only the layer's transparent pixels)", NULL,
     0, 4096, NULL, OUTPAINT_ONLY, FIELD(right), TRUE, FALSE},
    {"prompt", DIT_ARG_STRING, "Prompt",
     "A text model (PixArt): what to paint, in words (\"\" = the class string is the prompt)",
     NULL, 0, 0, NULL, ALL_MODES, FIELD(prompt), TRUE, TRUE},
    {"negative-prompt", DIT_ARG_STRING, "Negative prompt",
     "A text model: what to steer away from (\"\" = nothing)", NULL,
     0, 0, NULL, ALL_MODES, FIELD(negative_prompt), TRUE, TRUE},
};
/* clang-format on */
const gint dit_n_args = G_N_ELEMENTS(dit_args);

gboolean ditgimp_arg_applies(const DitArg *arg, DitMode mode)
{
    return (arg->modes & DIT_ARG_IN(mode)) != 0;
}

gboolean ditgimp_arg_applies2(const DitArg *arg, DitMode mode, gboolean full)
{
    return ditgimp_arg_applies(arg, mode) && !arg->gimp3_only && (full || !arg->added_later);
}

gint ditgimp_arg_count2(DitMode mode, gboolean full)
{
    gint n = 0;
    for (gint i = 0; i < dit_n_args; i++)
        n += ditgimp_arg_applies2(&dit_args[i], mode, full);
    return n;
}

gdouble ditgimp_arg_get_number(const DitArg *arg, const DitValues *v)
{
    const guint8 *p = (const guint8 *)v + arg->offset;
    if (arg->type == DIT_ARG_INT)
        return *(const gint32 *)p;
    if (arg->type == DIT_ARG_DOUBLE)
        return *(const gdouble *)p;
    return 0.0;
}

void ditgimp_arg_set_number(const DitArg *arg, DitValues *v, gdouble x)
{
    guint8 *p = (guint8 *)v + arg->offset;
    if (arg->type == DIT_ARG_INT)
        *(gint32 *)p = (gint32)x;
    else if (arg->type == DIT_ARG_DOUBLE)
        *(gdouble *)p = x;
}

const gchar *ditgimp_arg_get_string(const DitArg *arg, const DitValues *v)
{
    if (arg->type != DIT_ARG_STRING && arg->type != DIT_ARG_CHOICE)
        return NULL;
    return (const gchar *)v + arg->offset;
}

void ditgimp_arg_set_string(const DitArg *arg, DitValues *v, const gchar *s)
{
    if (arg->type == DIT_ARG_STRING || arg->type == DIT_ARG_CHOICE)
        ditui_values_set_string((gchar *)v + arg->offset, arg->size, s);
}

const gchar *ditgimp_arg_get_nick(const DitArg *arg, const DitValues *v)
{
    const gchar *value = ditgimp_arg_get_string(arg, v);
    if (arg->type != DIT_ARG_CHOICE)
        return value;
    for (const DitChoice *c = arg->choices; c->nick; c++)
        if (g_ascii_strcasecmp(c->value, value) == 0)
            return c->nick;
    return arg->choices[0].nick;
}

void ditgimp_arg_set_nick(const DitArg *arg, DitValues *v, const gchar *nick)
{
    if (arg->type != DIT_ARG_CHOICE) {
        ditgimp_arg_set_string(arg, v, nick);
        return;
    }
    for (const DitChoice *c = arg->choices; c->nick; c++)
        if (nick && strcmp(c->nick, nick) == 0) {
            ditgimp_arg_set_string(arg, v, c->value);
            return;
        }
    ditgimp_arg_set_string(arg, v, arg->choices[0].value);
}

/* ---- strings ------------------------------------------------------------------------ */

const gchar *ditgimp_locale_dir(void)
{
    const gchar *env = g_getenv("DIT_LOCALEDIR");
    return env && *env ? env : DIT_LOCALEDIR;
}

void ditgimp_init_i18n(void)
{
    setlocale(LC_ALL, "");
    bindtextdomain(GETTEXT_PACKAGE, ditgimp_locale_dir());
    bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
    textdomain(GETTEXT_PACKAGE);
}

const gchar *ditgimp_progress_label(DitMode mode)
{
    switch (mode) {
    case DIT_MODE_IMG2IMG: return _("DiT: re-imagining the layer");
    case DIT_MODE_GENERATE: return _("DiT: generating");
    case DIT_MODE_OUTPAINT: return _("DiT: outpainting");
    default: return _("DiT: inpainting the selection");
    }
}

/* ---- the source --------------------------------------------------------------------- */

void ditgimp_source_clear(DitSource *src)
{
    g_clear_object(&src->pixels);
    g_clear_object(&src->selection);
}

gboolean ditgimp_source_check(const DitSource *src, DitMode mode, GError **error)
{
    if (src->indexed) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("DiT does not work on indexed images: convert the image to RGB or "
                      "grayscale first (Image > Mode)"));
        return FALSE;
    }
    if (mode == DIT_MODE_GENERATE)
        return TRUE;
    if (!src->is_layer || !src->pixels) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("DiT works on layers: select a layer, not a channel or a layer mask"));
        return FALSE;
    }
    if (src->is_group) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("DiT cannot work on a layer group: select one of its layers"));
        return FALSE;
    }
    if (mode == DIT_MODE_INPAINT && src->selection_empty) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Inpainting needs a selection: select the region to regenerate first"));
        return FALSE;
    }
    if (mode != DIT_MODE_OUTPAINT && !src->selection_empty && !src->has_sel) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("The selection does not overlap the active layer"));
        return FALSE;
    }
    return TRUE;
}

DitRegion ditgimp_source_region(const DitSource *src, DitMode mode, const DitJob *job)
{
    DitRegion r = {0, 0, src->layer_w, src->layer_h, FALSE};
    if (mode == DIT_MODE_GENERATE) {
        r.w = src->image_w, r.h = src->image_h;
        return r;
    }
    if (!src->has_sel || mode == DIT_MODE_OUTPAINT) /* outpaint: the layer it grows */
        return r;
    const gint x = src->sel.x, y = src->sel.y, w = src->sel.width, h = src->sel.height;
    r.selection = TRUE;
    if (mode == DIT_MODE_IMG2IMG) {
        r.x = x, r.y = y, r.w = w, r.h = h;
    } else if (job) {
        ditgimp_job_context_rect(job, x, y, w, h, r.w, r.h, DIT_CONTEXT_PAD, &r.x, &r.y, &r.w,
                                 &r.h);
    } else { /* preview before the model is loaded: the same padding, no unit */
        const gint pad = (gint)(DIT_CONTEXT_PAD * MAX(w, h) + 0.999);
        const gint x1 = MIN(r.w, x + w + pad), y1 = MIN(r.h, y + h + pad);
        r.x = MAX(0, x - pad), r.y = MAX(0, y - pad);
        r.w = x1 - r.x, r.h = y1 - r.y;
    }
    return r;
}

/* ---- pixels ---------------------------------------------------------------------------- */

/* R'G'B'A float in the space of `format` (a drawable's own colour space) */
static const Babl *float_format(const Babl *format)
{
    return babl_format_with_space("R'G'B'A float", format);
}

/* The region as RGBA floats (h, w, 4) in [0, 1]. */
static gfloat *read_rgba(const DitSource *src, const DitRegion *r)
{
    gsize bytes;
    if (!g_size_checked_mul(&bytes, (gsize)r->w * r->h, 4 * sizeof(gfloat)))
        return NULL;
    gfloat *rgba = g_try_malloc(bytes);
    if (rgba)
        gegl_buffer_get(src->pixels, GEGL_RECTANGLE(r->x, r->y, r->w, r->h), 1.0,
                        float_format(src->format), rgba, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    return rgba;
}

/* The selection over the region as (h, w) floats in [0, 1], grown by
 * `expand` pixels. */
static gfloat *read_mask(const DitSource *src, const DitRegion *r, gint expand)
{
    gfloat *mask = g_try_malloc((gsize)r->w * r->h * sizeof *mask);
    if (!mask)
        return NULL;
    gegl_buffer_get(src->selection,
                    GEGL_RECTANGLE(r->x + src->off_x, r->y + src->off_y, r->w, r->h), 1.0,
                    babl_format("Y float"), mask, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    for (gsize i = 0; i < (gsize)r->w * r->h; i++)
        mask[i] = CLAMP(mask[i], 0.0f, 1.0f);
    if (expand > 0) {
        gfloat *grown = g_try_malloc((gsize)r->w * r->h * sizeof *grown);
        if (!grown || dit_mask_expand(NULL, mask, r->h, r->w, expand, grown) != DIT_OK) {
            g_free(grown), g_free(mask);
            return NULL;
        }
        g_free(mask);
        mask = grown;
    }
    return mask;
}

/* A small RGB picture of the region for the dialog's preview. */
static guint8 *read_preview(const DitSource *src, const DitRegion *r, gint *pw, gint *ph)
{
    const gdouble s = MIN(1.0, 256.0 / MAX(r->w, r->h));
    *pw = MAX(1, (gint)(r->w * s)), *ph = MAX(1, (gint)(r->h * s));
    guint8 *rgb = g_malloc((gsize)*pw * *ph * 3);
    gegl_buffer_get(src->pixels, GEGL_RECTANGLE((gint)(r->x * s), (gint)(r->y * s), *pw, *ph), s,
                    babl_format_with_space("R'G'B' u8", src->format), rgb, GEGL_AUTO_ROWSTRIDE,
                    GEGL_ABYSS_NONE);
    return rgb;
}

void ditgimp_output_clear(DitOutput *out)
{
    g_clear_pointer(&out->name, g_free);
    g_clear_pointer(&out->layer_names, g_strfreev);
    g_clear_pointer(&out->pixels, g_free);
    g_clear_object(&out->canvas);
}

void ditgimp_output_write(const DitOutput *out, gint k, GeglBuffer *layer, const Babl *layer_format)
{
    const DitRegion *r = &out->region;
    if (out->canvas)
        gegl_buffer_copy(out->canvas, NULL, GEGL_ABYSS_NONE, layer, NULL);
    const Babl *format = out->generated ? float_format(layer_format) : out->format;
    gegl_buffer_set(layer, GEGL_RECTANGLE(r->x, r->y, r->w, r->h), 0, format,
                    out->pixels + (gsize)k * out->result_bytes, GEGL_AUTO_ROWSTRIDE);
}

/* each of out->count results (3, r.h, r.w) in the source's own format where
 * the mask is > 0, the source's bytes elsewhere; alpha is the source's */
static gboolean compose_edit(const DitSource *src, const DitRegion *r, const gfloat *result,
                             const gfloat *rgba, const gfloat *mask, DitOutput *out, GError **error)
{
    const gsize n = (gsize)r->w * r->h;
    const Babl *native = src->format;
    const gint bpp = babl_format_get_bytes_per_pixel(native);
    out->result_bytes = n * bpp;
    guint8 *orig = g_try_malloc(n * bpp), *pixels = g_try_malloc(out->count * n * bpp);
    gfloat *px = g_try_malloc(n * 4 * sizeof *px);
    if (!orig || !pixels || !px) {
        g_free(orig), g_free(pixels), g_free(px);
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT, _("Out of memory"));
        return FALSE;
    }
    gegl_buffer_get(src->pixels, GEGL_RECTANGLE(r->x, r->y, r->w, r->h), 1.0, native, orig,
                    GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    for (gint k = 0; k < out->count; k++) {
        const gfloat *res = result + (gsize)k * 3 * n;
        guint8 *dst = pixels + (gsize)k * n * bpp;
        for (gsize i = 0; i < n; i++) {
            for (gint c = 0; c < 3; c++)
                px[4 * i + c] = (res[c * n + i] + 1.0f) * 0.5f;
            px[4 * i + 3] = rgba[4 * i + 3]; /* the source's alpha */
        }
        babl_process(babl_fish(float_format(native), native), px, dst, (long)n);
        for (gsize i = 0; i < n; i++)
            if (mask && mask[i] == 0.0f)
                memcpy(dst + i * bpp, orig + i * bpp, bpp);
    }
    g_free(orig), g_free(px);
    out->format = native;
    out->pixels = pixels;
    return TRUE;
}

/* each of out->count results (3, h, w) as opaque R'G'B'A float */
static gboolean compose_generated(const DitRegion *r, const gfloat *result, DitOutput *out,
                                  GError **error)
{
    const gsize n = (gsize)r->w * r->h;
    gfloat *px = g_try_malloc(out->count * n * 4 * sizeof *px);
    if (!px) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT, _("Out of memory"));
        return FALSE;
    }
    for (gint k = 0; k < out->count; k++)
        for (gsize i = 0; i < n; i++) {
            const gfloat *res = result + (gsize)k * 3 * n;
            gfloat *p = px + ((gsize)k * n + i) * 4;
            for (gint c = 0; c < 3; c++)
                p[c] = (res[c * n + i] + 1.0f) * 0.5f;
            p[3] = 1.0f;
        }
    out->generated = TRUE;
    out->format = babl_format("R'G'B'A float");
    out->result_bytes = n * 4 * sizeof *px;
    out->pixels = (guint8 *)px;
    return TRUE;
}

/* ---- outpaint ------------------------------------------------------------------------------ */

/* The source for outpaint: the layer on its extent grown by `border` (top,
 * left, bottom, right), the new border the nearest edge pixel, and as its
 * selection the border and every fully transparent pixel, which come out
 * opaque. The layer's own pixels keep their bytes. FALSE (with the error)
 * when there is nothing to fill. */
static gboolean grow_source(const DitSource *src, const gint border[4], DitSource *grown,
                            GError **error)
{
    const gint top = border[0], left = border[1], W = src->layer_w, H = src->layer_h;
    const gint W2 = W + left + border[3], H2 = H + top + border[2];
    const gsize n = (gsize)W2 * H2;
    const Babl *native = src->format;
    const gint bpp = babl_format_get_bytes_per_pixel(native);
    gfloat *fl = g_try_malloc(n * 4 * sizeof *fl), *mask = g_try_malloc(n * sizeof *mask);
    guint8 *bytes = g_try_malloc(n * bpp), *filled = g_try_malloc(n * bpp);
    gboolean ok = fl && mask && bytes && filled;
    if (!ok)
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Out of memory growing the layer to %d x %d"), W2, H2);
    gint x0 = W2, y0 = H2, x1 = -1, y1 = -1;
    if (ok) {
        const GeglRectangle *all = GEGL_RECTANGLE(-left, -top, W2, H2);
        gegl_buffer_get(src->pixels, all, 1.0, float_format(native), fl, GEGL_AUTO_ROWSTRIDE,
                        GEGL_ABYSS_CLAMP);
        gegl_buffer_get(src->pixels, all, 1.0, native, bytes, GEGL_AUTO_ROWSTRIDE,
                        GEGL_ABYSS_CLAMP);
        for (gint y = 0; y < H2; y++)
            for (gint x = 0; x < W2; x++) {
                const gsize i = (gsize)y * W2 + x;
                const gboolean inside = y >= top && y < top + H && x >= left && x < left + W;
                mask[i] = !inside || fl[4 * i + 3] <= 0.0f ? 1.0f : 0.0f;
                if (mask[i] > 0) {
                    fl[4 * i + 3] = 1.0f;
                    x0 = MIN(x0, x), y0 = MIN(y0, y), x1 = MAX(x1, x), y1 = MAX(y1, y);
                }
            }
        babl_process(babl_fish(float_format(native), native), fl, filled, (long)n);
        for (gsize i = 0; i < n; i++)
            if (mask[i] > 0)
                memcpy(bytes + i * bpp, filled + i * bpp, bpp);
    }
    if (ok && x1 < 0) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Nothing to outpaint: grow the canvas on at least one side, or use a layer "
                      "with transparent pixels"));
        ok = FALSE;
    }
    if (ok) {
        *grown = *src;
        grown->pixels = gegl_buffer_new(GEGL_RECTANGLE(0, 0, W2, H2), native);
        gegl_buffer_set(grown->pixels, NULL, 0, native, bytes, GEGL_AUTO_ROWSTRIDE);
        grown->selection = gegl_buffer_new(GEGL_RECTANGLE(0, 0, W2, H2), babl_format("Y float"));
        gegl_buffer_set(grown->selection, NULL, 0, babl_format("Y float"), mask,
                        GEGL_AUTO_ROWSTRIDE);
        grown->off_x = grown->off_y = 0; /* the selection is the grown layer's own */
        grown->layer_w = W2, grown->layer_h = H2;
        grown->selection_empty = FALSE, grown->has_sel = TRUE;
        grown->sel = (GeglRectangle){x0, y0, x1 - x0 + 1, y1 - y0 + 1};
    }
    g_free(fl), g_free(mask), g_free(bytes), g_free(filled);
    return ok;
}

/* ---- sampling ---------------------------------------------------------------------------- */

typedef struct {
    DitJob *job;
    DitDialog *dialog;
    DitProgressFunc progress;
    gpointer progress_data;
    GMainLoop *loop;
    gint last_step;
} Poll;

static void report(const Poll *p, gdouble fraction)
{
    if (p->progress)
        p->progress(fraction, p->progress_data);
}

static gboolean on_poll(gpointer data)
{
    Poll *p = data;
    gint step, total;
    const gboolean done = ditgimp_job_poll(p->job, &step, &total);
    if (step != p->last_step && total > 0) {
        p->last_step = step;
        const gdouble f = (gdouble)step / total;
        report(p, 0.05 + 0.9 * f);
        if (p->dialog) {
            gchar *text = g_strdup_printf(_("Step %d of %d"), step, total);
            ditui_dialog_set_progress(p->dialog, f, text);
            g_free(text);
        }
    }
    guint8 *rgb;
    gint w, h;
    if (p->dialog && ditgimp_job_preview(p->job, &rgb, &w, &h)) {
        ditui_dialog_set_preview(p->dialog, rgb, w, h, w * 3);
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
    ditgimp_job_cancel(job);
}

/* Samples and waits in a main loop, keeping the progress and the dialog up
 * to date. The job owns rgb and mask. */
static gfloat *sample(Poll *p, gfloat *rgb, gfloat *mask, gint w, gint h, GError **error)
{
    if (!ditgimp_job_start(p->job, rgb, mask, w, h, error))
        return NULL;
    p->loop = g_main_loop_new(NULL, FALSE);
    p->last_step = -1;
    gulong handler = 0;
    if (p->dialog)
        handler = g_signal_connect(ditui_dialog_get_widget(p->dialog), "response",
                                   G_CALLBACK(on_running_response), p->job);
    g_timeout_add(50, on_poll, p);
    g_main_loop_run(p->loop);
    g_main_loop_unref(p->loop);
    if (handler)
        g_signal_handler_disconnect(ditui_dialog_get_widget(p->dialog), handler);
    return ditgimp_job_finish(p->job, error);
}

/* "DiT Dress seed 7" (a text model: "DiT a red tulip seed 7"), or with
 * variations the group's "DiT Dress × 4" and one name per seed */
static void name_results(DitOutput *out, const DitJob *job)
{
    const gchar *cls = ditgimp_job_label(job);
    const gint32 seed = ditgimp_job_seed(job);
    if (out->count == 1) {
        out->name = g_strdup_printf(_("DiT %s seed %d"), cls, seed);
        return;
    }
    out->name = g_strdup_printf(_("DiT %s × %d"), cls, out->count);
    out->layer_names = g_new0(gchar *, out->count + 1);
    for (gint k = 0; k < out->count; k++)
        out->layer_names[k] = g_strdup_printf(_("DiT %s seed %d"), cls, seed + k);
}

gboolean ditgimp_run(const DitValues *v, const DitSource *src, DitDialog *dialog,
                     DitProgressFunc progress, gpointer progress_data, DitOutput *out,
                     GError **error)
{
    const DitMode mode = (DitMode)v->mode;
    memset(out, 0, sizeof *out);
    if (!ditgimp_source_check(src, mode, error))
        return FALSE;
    /* outpaint is inpainting of the grown layer */
    DitSource grown = {0};
    const gint border[4] = {v->top, v->left, v->bottom, v->right};
    if (mode == DIT_MODE_OUTPAINT && !grow_source(src, border, &grown, error))
        return FALSE;
    const DitSource *work = mode == DIT_MODE_OUTPAINT ? &grown : src;
    const DitMode task = mode == DIT_MODE_OUTPAINT ? DIT_MODE_INPAINT : mode;
    if (dialog)
        ditui_dialog_set_progress(dialog, 0.0, _("Loading the model…"));
    while (dialog && g_main_context_iteration(NULL, FALSE))
        ; /* show "loading" before the main thread blocks in the loader */
    Poll p = {ditgimp_job_new(v, error), dialog, progress, progress_data, NULL, -1};
    if (!p.job) {
        ditgimp_source_clear(&grown);
        return FALSE;
    }
    report(&p, 0.05);

    const DitRegion r = ditgimp_source_region(work, task, p.job);
    gfloat *rgba = NULL, *rgb = NULL, *mask = NULL;
    if (task != DIT_MODE_GENERATE) {
        const gsize n = (gsize)r.w * r.h;
        rgba = read_rgba(work, &r);
        rgb = rgba ? g_try_malloc(n * 3 * sizeof *rgb) : NULL;
        mask = r.selection ? read_mask(work, &r, v->expand) : NULL;
        if (!rgba || !rgb || (r.selection && !mask)) {
            g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                        _("Out of memory reading a %d x %d region"), r.w, r.h);
            g_free(rgba), g_free(rgb), g_free(mask);
            ditgimp_job_free(p.job);
            ditgimp_source_clear(&grown);
            return FALSE;
        }
        for (gsize i = 0; i < n; i++) /* [0, 1] RGBA -> planar [-1, 1] RGB */
            for (gint c = 0; c < 3; c++)
                rgb[c * n + i] = rgba[4 * i + c] * 2.0f - 1.0f;
    }
    /* the job owns rgb and mask from here; the mask stays readable until it is freed */
    gfloat *result = sample(&p, rgb, mask, r.w, r.h, error);
    gboolean ok = result != NULL;
    if (ok) {
        out->region = r;
        out->count = ditgimp_job_count(p.job);
        name_results(out, p.job);
        ok = task == DIT_MODE_GENERATE ? compose_generated(&r, result, out, error)
                                       : compose_edit(work, &r, result, rgba, mask, out, error);
        g_free(result);
    }
    if (ok && mode == DIT_MODE_OUTPAINT) {
        out->canvas = g_object_ref(grown.pixels);
        memcpy(out->border, border, sizeof border);
    }
    report(&p, 1.0);
    g_free(rgba);
    ditgimp_job_free(p.job); /* frees rgb and mask */
    ditgimp_source_clear(&grown);
    if (!ok)
        ditgimp_output_clear(out);
    return ok;
}

/* ---- the dialog ------------------------------------------------------------------------ */

gboolean ditgimp_gtk_init(GError **error)
{
    if (gtk_init_check(NULL, NULL))
        return TRUE;
    g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                _("There is no display for the dialog: run it non-interactively"));
    return FALSE;
}

static gchar **labels_for_dialog(const gchar *model_path, gpointer user_data)
{
    return ditgimp_job_labels_for_model(model_path);
}

DitDialog *ditgimp_dialog_new(const DitValues *v, const DitSource *src)
{
    const DitMode mode = (DitMode)v->mode;
    gchar *def = ditgimp_job_default_model();
    const gboolean mode_choice = mode == DIT_MODE_INPAINT || mode == DIT_MODE_IMG2IMG;
    DitDialog *d =
        ditui_dialog_new(_(dit_procs[mode].title), v, mode_choice, def, labels_for_dialog, NULL);
    g_free(def);
    if (src && src->pixels && mode != DIT_MODE_GENERATE) {
        const DitRegion r = ditgimp_source_region(src, mode, NULL);
        gint w, h;
        guint8 *rgb = read_preview(src, &r, &w, &h);
        ditui_dialog_set_preview(d, rgb, w, h, w * 3);
        g_free(rgb);
    }
    return d;
}

gboolean ditgimp_dialog_again(DitDialog *dialog, const DitOutput *out, DitValues *v)
{
    if (!dialog || v->mode == DIT_MODE_OUTPAINT)
        return FALSE;
    gchar *done = g_strdup_printf(_("Kept “%s”"), out->name);
    const gboolean again = ditui_dialog_run_again(dialog, done);
    g_free(done);
    if (!again)
        return FALSE;
    ditui_dialog_get_values(dialog, v);
    ditui_dialog_set_running(dialog, TRUE);
    return TRUE;
}

gboolean ditgimp_dialog_ask(DitDialog *dialog, DitValues *v)
{
    if (ditui_dialog_run(dialog) != GTK_RESPONSE_OK)
        return FALSE;
    ditui_dialog_get_values(dialog, v);
    ditui_dialog_set_running(dialog, TRUE);
    return TRUE;
}
