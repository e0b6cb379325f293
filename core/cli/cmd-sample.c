/* dit generate | img2img | inpaint | outpaint: one implementation, the
 * task decides which inputs it takes (outpaint is inpainting of a grown
 * canvas, outpaint.c). */
#include "cli.h"
#include "png-io.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* inpaint regenerates the masked region from noise unless --strength says */
static const float inpaint_strength = 1.0f;

/* The sampling options into oc; the help texts print the defaults from
 * cli_options_init and libdit's pipeline defaults, kept in keep. */
static void add_sampling_entries(GOptionContext *oc, options *o, bool source, bool outpaint,
                                 GPtrArray *keep)
{
    options d;
    cli_options_init(&d);
    dit_pipeline_params lib;
    dit_pipeline_params_default(&lib, NULL, NULL);
    GOptionEntry common[] = {
        OPT_MODEL(o),
        OPT_VAE(o),
        {"class", 'c', 0, G_OPTION_ARG_STRING, &o->class_name,
         cli_help(keep, "class id or label name (default: %d)", lib.class_id), "CLASS"},
        {"labels", 0, 0, G_OPTION_ARG_FILENAME, &o->labels,
         "label list, one name per line (default: the model's)", "FILE"},
        {"steps", 's', 0, G_OPTION_ARG_INT, &o->steps,
         cli_help(keep, "sampling steps (default: the model's, %d for DiT)", lib.steps), "N"},
        {"sampler", 0, 0, G_OPTION_ARG_STRING, &o->sampler,
         "ddpm, ddim, dpm++2m, euler or cold (default: the model's)", "NAME"},
        {"schedule", 0, 0, G_OPTION_ARG_STRING, &o->schedule,
         "linear, scaled_linear, squaredcos_cap_v2 or cosine_alphabar", "NAME"},
        {"prediction", 0, 0, G_OPTION_ARG_STRING, &o->prediction, "epsilon, sample or v_prediction",
         "TYPE"},
        {"spacing", 0, 0, G_OPTION_ARG_STRING, &o->spacing, "leading, trailing or linspace",
         "NAME"},
        {"guidance", 'g', 0, G_OPTION_ARG_DOUBLE, &o->guidance,
         cli_help(keep, "classifier-free guidance scale, 1 = off (default: %g, %g for PixArt)",
                  d.guidance, (double)DIT_TEXT_GUIDANCE),
         "G"},
        {"guidance-interval", 0, 0, G_OPTION_ARG_STRING, &o->guidance_interval,
         "guide only at noise levels (timestep / training steps) FROM to TO, e.g. 0.2,0.8; "
         "the other steps run the conditional row alone, half the work (default: 0,1: all)",
         "FROM,TO"},
        {"guidance-channels", 0, 0, G_OPTION_ARG_INT, &o->guidance_channels,
         "guide only the first N latent channels (3 = official DiT; default: all)", "N"},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &o->seed,
         cli_help(keep, "noise seed; negative = random (default: %" G_GINT64_FORMAT ")", d.seed),
         "N"},
        {"batch", 'b', 0, G_OPTION_ARG_INT, &o->batch,
         cli_help(keep, "images to make (default: %d)", d.batch), "N"},
        {"detail", 0, 0, G_OPTION_ARG_INT, &o->detail,
         cli_help(keep,
                  "work at the source's size up to PX on the longer side, sampling at the "
                  "model's size first and refining at %g in model-size windows (default: 0, "
                  "the model's size)",
                  (double)DIT_DETAIL_STRENGTH),
         "PX"},
        {"variations", 0, 0, G_OPTION_ARG_INT, &o->variations,
         "N images (1..16) from seeds SEED, SEED + 1, ...: each as --seed would make it alone",
         "N"},
        {"grid", 0, 0, G_OPTION_ARG_NONE, &o->grid,
         "with --batch: one grid image instead of numbered files", NULL},
        {"tile", 0, 0, G_OPTION_ARG_INT, &o->tile,
         "VAE tile size in pixels for large images (default: off)", "PX"},
        {"bit-depth", 0, 0, G_OPTION_ARG_INT, &o->bit_depth,
         cli_help(keep, "8 or 16 bits per channel (default: the input's, else %d)", CLI_BIT_DEPTH),
         "N"},
        {"progress", 0, 0, G_OPTION_ARG_STRING, &o->progress,
         "auto, bar, json or none (default: auto: a bar on a terminal)", "MODE"},
        OPT_THREADS(o),
        OPT_DEVICE(o),
        OPT_PRECISION(o),
        OPT_OUTPUT(o),
        OPT_QUIET(o),
        OPT_END,
    };
    g_option_context_add_main_entries(oc, common, NULL);
    cli_add_cache_entries(oc, o, keep);
    if (source) {
        GOptionEntry src[] = {
            {"input", 'i', 0, G_OPTION_ARG_FILENAME, &o->input, "source PNG", "FILE"},
            {"strength", 0, 0, G_OPTION_ARG_STRING, &o->strength,
             cli_help(keep,
                      "0 keeps the input, 1 starts from noise (default: %g img2img, %g inpaint)",
                      lib.strength, inpaint_strength),
             "S"},
            {"resize", 0, 0, G_OPTION_ARG_STRING, &o->resize,
             "resize (default): scale to the model's size and back; crop: work on the centre crop "
             "of that size; pad: pad to a valid size; none: the image's own size",
             "POLICY"},
            {"grow", 0, 0, G_OPTION_ARG_INT, &o->grow,
             cli_help(keep, "inpaint: grow the mask by N latent pixels (default: %d)", d.grow),
             "N"},
            {"mask-mode", 0, 0, G_OPTION_ARG_STRING, &o->mask_mode,
             cli_help(keep,
                      "inpaint: regenerate (remake where the mask is above 0, blend by it) or "
                      "differential (the mask is each pixel's strength) (default: %s)",
                      dit_mask_mode_names[DIT_INPAINT_MASK_MODE]),
             "MODE"},
            {"expand", 0, 0, G_OPTION_ARG_INT, &o->expand,
             "inpaint: grow the mask outward by PX pixels first, its soft edge kept (default: 0)",
             "PX"},
            {"feather", 0, 0, G_OPTION_ARG_INT, &o->feather,
             cli_help(keep,
                      "inpaint: soften the mask's edge N pixels inward; -1: a fifth of the "
                      "mask's shorter side (default: %d)",
                      d.feather),
             "PX"},
            {"colour-match", 0, 0, G_OPTION_ARG_NONE, &o->colour_match,
             "inpaint: move the result's colour at the mask's edge to the source's around it",
             NULL},
            {"resample-jump", 0, 0, G_OPTION_ARG_INT, &o->resample_jump,
             cli_help(keep,
                      "inpaint: harmonise by going back N steps in noise after every N steps "
                      "(default: %d, off)",
                      lib.resample_jump),
             "N"},
            {"resample-count", 0, 0, G_OPTION_ARG_INT, &o->resample_count,
             cli_help(keep,
                      "inpaint: run each block of --resample-jump steps this many times; "
                      "each extra time costs those steps again (default: %d)",
                      lib.resample_count),
             "N"},
            OPT_END,
        };
        g_option_context_add_main_entries(oc, src, NULL);
        GOptionEntry mask[] = {
            {"mask", 0, 0, G_OPTION_ARG_FILENAME, &o->mask,
             "inpaint: mask PNG, white/opaque = regenerate (alpha if present, else gray)", "FILE"},
            OPT_END,
        };
        GOptionEntry sides[] = {
            {"extend", 0, 0, G_OPTION_ARG_INT, &o->extend,
             "grow the canvas by PX on every side (default: none, only the transparent pixels "
             "are filled)",
             "PX"},
            {"top", 0, 0, G_OPTION_ARG_INT, &o->border[0], "grow the top by PX", "PX"},
            {"left", 0, 0, G_OPTION_ARG_INT, &o->border[1], "grow the left side by PX", "PX"},
            {"bottom", 0, 0, G_OPTION_ARG_INT, &o->border[2], "grow the bottom by PX", "PX"},
            {"right", 0, 0, G_OPTION_ARG_INT, &o->border[3], "grow the right side by PX", "PX"},
            OPT_END,
        };
        g_option_context_add_main_entries(oc, outpaint ? sides : mask, NULL);
    } else {
        GOptionEntry gen[] = {
            {"width", 'W', 0, G_OPTION_ARG_INT, &o->width, "width in pixels (default: the model's)",
             "PX"},
            {"height", 'H', 0, G_OPTION_ARG_INT, &o->height,
             "height in pixels (default: the model's)", "PX"},
            OPT_END,
        };
        g_option_context_add_main_entries(oc, gen, NULL);
    }
}

typedef enum { POL_RESIZE, POL_CROP, POL_PAD, POL_NONE } policy;

/* The model-space image and mask for a task: the source read and placed by
 * the resize policy (generate: only the size). */
typedef struct {
    png_data src;     /* the source (img2img, inpaint) */
    float *mask;      /* (SH, SW) inpaint mask, or NULL */
    float *work_img;  /* (3, H, W) the source in model space */
    float *work_mask; /* (H, W) */
    int H, W, depth;
    policy pol;
    int ox, oy; /* crop/pad placement in the source */
} sample_work;

static void sample_work_clear(sample_work *w)
{
    png_data_clear(&w->src);
    g_free(w->mask), g_free(w->work_img), g_free(w->work_mask);
}

static int prepare_source(const options *o, const loaded *l, dit_task task, sample_work *w)
{
    GError *err = NULL;
    int rc = 0;
    /* sizes: the model's native size in pixels and the unit sizes must divide */
    const int f = l->vae ? dit_vae_config(l->vae)->downscale : 1;
    const int patch = l->pixart ? dit_pixart_get_config(l->pixart)->patch_size
                                : dit_model_config(l->model)->patch_size;
    const int sample = l->pixart ? dit_pixart_get_config(l->pixart)->sample_size
                                 : dit_model_config(l->model)->sample_size;
    const int unit = f * patch, native = sample * f;
    w->H = o->height ? o->height : native, w->W = o->width ? o->width : native;
    w->depth = o->bit_depth ? o->bit_depth : CLI_BIT_DEPTH;
    w->pol = POL_RESIZE;
    if (task != DIT_TASK_GENERATE) {
        if (!png_load(o->input, &w->src, &err)) {
            fprintf(stderr, "dit: %s\n", err->message);
            g_error_free(err);
            return EXIT_BAD_INPUT;
        }
        if (!o->bit_depth)
            w->depth = w->src.bit_depth == 16 ? 16 : 8;
        if (o->resize && (rc = cli_pick_name("--resize", o->resize,
                                             (const char *const[]){"resize", "crop", "pad", "none"},
                                             4, (int *)&w->pol)))
            return rc;
        if (o->outpaint) {
            int border[4];
            for (int i = 0; i < 4; i++)
                border[i] = o->border[i] != INT_MIN ? o->border[i] : o->extend;
            if ((rc = cli_outpaint_source(border, &w->src, &w->mask)))
                return rc;
        } else if (task == DIT_TASK_INPAINT) {
            int mh, mw;
            if (!png_load_mask(o->mask, &w->mask, &mh, &mw, &err)) {
                fprintf(stderr, "dit: %s\n", err->message);
                g_error_free(err);
                return EXIT_BAD_INPUT;
            }
            if (mh != w->src.height || mw != w->src.width) {
                fprintf(stderr, "dit: the mask is %dx%d but the image is %dx%d\n", mw, mh,
                        w->src.width, w->src.height);
                return EXIT_BAD_INPUT;
            }
        }
        if (w->mask && o->expand) {
            if (o->expand < 0 || o->expand > 1024) {
                fprintf(stderr, "dit: --expand must be 0..1024 pixels, got %d\n", o->expand);
                return EXIT_BAD_INPUT;
            }
            float *grown = g_malloc((size_t)w->src.height * w->src.width * sizeof *grown);
            if (dit_mask_expand(l->ctx, w->mask, w->src.height, w->src.width, o->expand, grown) !=
                DIT_OK) {
                fprintf(stderr, "dit: %s\n", dit_last_error(l->ctx));
                g_free(grown);
                return EXIT_BAD_INPUT;
            }
            g_free(w->mask);
            w->mask = grown;
        }
        const int SH = w->src.height, SW = w->src.width;
        switch (w->pol) {
        case POL_RESIZE: { /* keep the aspect; the longer side becomes the native size
                              (--detail: the source's, up to that many pixels) */
            const int longer = SH > SW ? SH : SW;
            const int side =
                o->detail > native ? (longer < o->detail ? longer : o->detail) : native;
            const double s = (double)(side > native ? side : native) / longer;
            w->H = (int)lround(SH * s / unit) * unit;
            w->W = (int)lround(SW * s / unit) * unit;
            w->H = w->H < unit ? unit : w->H, w->W = w->W < unit ? unit : w->W;
            break;
        }
        case POL_CROP: { /* centred on the w->mask's bounding box (inpaint), else the image */
            w->H = SH < native ? SH / unit * unit : native;
            w->W = SW < native ? SW / unit * unit : native;
            int cy = SH / 2, cx = SW / 2;
            if (w->mask) {
                int y0 = SH, y1 = -1, x0 = SW, x1 = -1;
                for (int y = 0; y < SH; y++)
                    for (int x = 0; x < SW; x++)
                        if (w->mask[(size_t)y * SW + x] > 0.0f) {
                            y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
                            x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                        }
                if (y1 >= 0)
                    cy = (y0 + y1 + 1) / 2, cx = (x0 + x1 + 1) / 2;
            }
            w->oy = cy - w->H / 2, w->ox = cx - w->W / 2;
            w->oy = w->oy < 0 ? 0 : w->oy + w->H > SH ? SH - w->H : w->oy;
            w->ox = w->ox < 0 ? 0 : w->ox + w->W > SW ? SW - w->W : w->ox;
            break;
        }
        case POL_PAD:
            w->H = (SH + unit - 1) / unit * unit, w->W = (SW + unit - 1) / unit * unit;
            break;
        case POL_NONE: w->H = SH, w->W = SW; break;
        }
        if (w->H < unit || w->W < unit) {
            fprintf(stderr, "dit: the image (%dx%d) is smaller than one %d-pixel unit\n", SW, SH,
                    unit);
            return EXIT_BAD_INPUT;
        }
        /* the model-space image (and w->mask) */
        w->work_img = g_malloc((size_t)3 * w->H * w->W * sizeof(float));
        w->work_mask = w->mask ? g_malloc((size_t)w->H * w->W * sizeof(float)) : NULL;
        if (w->pol == POL_RESIZE) {
            dit_image_resize(l->ctx, w->src.rgb, 3, SH, SW, w->work_img, w->H, w->W);
            if (w->mask) {
                dit_image_resize(l->ctx, w->mask, 1, SH, SW, w->work_mask, w->H, w->W);
                for (size_t i = 0; i < (size_t)w->H * w->W; i++) /* keep values in [0, 1] */
                    w->work_mask[i] = w->work_mask[i] < 0   ? 0
                                      : w->work_mask[i] > 1 ? 1
                                                            : w->work_mask[i];
            }
        } else {
            for (int y = 0; y < w->H; y++)
                for (int x = 0; x < w->W; x++) {
                    /* crop: offset; pad/none: clamp to the edge */
                    int sy = y + w->oy, sx = x + w->ox;
                    sy = sy < SH ? sy : SH - 1, sx = sx < SW ? sx : SW - 1;
                    for (int c = 0; c < 3; c++)
                        w->work_img[((size_t)c * w->H + y) * w->W + x] =
                            w->src.rgb[((size_t)c * SH + sy) * SW + sx];
                    if (w->mask)
                        w->work_mask[(size_t)y * w->W + x] =
                            y + w->oy < SH && x + w->ox < SW ? w->mask[(size_t)sy * SW + sx] : 0.0f;
                }
        }
    } else if (w->H % unit || w->W % unit || w->H <= 0 || w->W <= 0) {
        fprintf(stderr, "dit: --width/--height must be positive multiples of %d\n", unit);
        return EXIT_BAD_INPUT;
    }

    return 0;
}

/* The command line of one sampling command into o; an exit code. */
static int parse_sampling(dit_task task, int *argc, char ***argv, options *o)
{
    char *param = g_strdup_printf(task == DIT_TASK_GENERATE  ? "- make images of a class"
                                  : task == DIT_TASK_IMG2IMG ? "- re-imagine an image"
                                  : o->outpaint ? "- grow an image's canvas and fill it"
                                                : "- fill the masked region of an image");
    GOptionContext *oc = g_option_context_new(param);
    g_free(param);
    static const char *const examples[] = {
        "Examples:\n"
        "  dit generate --class 3 --steps 20 --seed 1 -o out.png\n"
        "  dit generate -m ./DiT-XL-2-256 --class 'golden retriever' -g 4 -b 4 --grid -o "
        "dogs.png\n",
        "Examples:\n"
        "  dit img2img -i photo.png --strength 0.6 --class 5 -o new.png\n"
        "  dit img2img -m ./DiT-XL-2-256 -i cat.png --class tabby --resize crop -o tabby.png\n",
        "Examples:\n"
        "  dit inpaint -i photo.png --mask hole.png --class 2 -o filled.png\n"
        "  dit inpaint -i photo.png --mask hole.png --grow 1 --sampler ddim --steps 50 -o "
        "out.png\n",
        "Examples:\n"
        "  dit outpaint -i photo.png --extend 64 --class 2 -o wider.png\n"
        "  dit outpaint -i photo.png --right 128 --feather 16 -o out.png\n"
        "  dit outpaint -i cutout.png -o filled.png   (fills the transparent pixels)\n",
    };
    g_option_context_set_description(oc, examples[o->outpaint ? 3 : task]);
    GPtrArray *help = g_ptr_array_new_with_free_func(g_free);
    add_sampling_entries(oc, o, task != DIT_TASK_GENERATE, o->outpaint, help);
    cli_add_text_entries(oc, o);
    int rc = cli_parse(oc, argc, argv);
    if (!rc && *argc > 1)
        rc = cli_usage_error(oc, "unexpected argument (images go with --input)");
    if (!rc && !o->output)
        rc = cli_usage_error(oc, "--output is required");
    if (!rc && task != DIT_TASK_GENERATE && !o->input)
        rc = cli_usage_error(oc, "--input is required");
    if (!rc && task == DIT_TASK_INPAINT && !o->outpaint && !o->mask)
        rc = cli_usage_error(oc, "inpaint needs --mask");
    if (!rc && (o->variations < 0 || o->variations > 16))
        rc = cli_usage_error(oc, "--variations must be 1..16");
    if (!rc && o->variations && o->batch != 1)
        rc = cli_usage_error(oc, "--variations and --batch do not go together");
    if (!rc && o->bit_depth && o->bit_depth != 8 && o->bit_depth != 16)
        rc = cli_usage_error(oc, "--bit-depth must be 8 or 16");
    g_option_context_free(oc);
    g_ptr_array_free(help, TRUE);
    return rc;
}

/* --guidance not given (a value no one types; NaN would hide a typed "nan") */
#define GUIDANCE_UNSET DBL_MAX

/* The pipeline's parameters from the options; an exit code. */
static int sampling_params(const options *o, loaded *l, dit_task task, int class_id,
                           dit_pipeline_params *p)
{
    int rc;
    dit_pipeline_params_default(p, l->model, l->vae);
    p->task = task;
    p->class_id = class_id;
    if (o->guidance == GUIDANCE_UNSET) /* not given: the model family's default */
        p->guidance = l->pixart ? DIT_TEXT_GUIDANCE : p->guidance;
    else
        p->guidance = (float)o->guidance;
    if (l->pixart && (rc = cli_text_params(l, p)))
        return rc;
    p->guidance_channels = o->guidance_channels;
    if (o->guidance_interval) {
        char *end;
        const double from = g_ascii_strtod(o->guidance_interval, &end);
        const double to = *end == ',' ? g_ascii_strtod(end + 1, &end) : NAN;
        if (*end || !(from >= 0 && from <= 1 && to >= 0 && to <= 1)) {
            fprintf(stderr, "dit: --guidance-interval '%s' must be FROM,TO with both in [0, 1]\n",
                    o->guidance_interval);
            return EXIT_BAD_INPUT;
        }
        p->guidance_from = (float)from, p->guidance_to = (float)to;
    }
    p->batch = o->variations ? o->variations : o->batch;
    p->seed_per_image = o->variations > 0;
    if (o->detail < 0 || o->detail > 16384) {
        fprintf(stderr, "dit: --detail must be 0..16384 pixels, got %d\n", o->detail);
        return EXIT_BAD_INPUT;
    }
    p->detail_strength = o->detail > 0 ? DIT_DETAIL_STRENGTH : 0.0f;
    if ((rc = cli_cache_params(o, l, p)))
        return rc;
    p->grow = o->grow;
    if (o->steps != INT_MIN)
        p->steps = o->steps;
    if (task == DIT_TASK_INPAINT)
        p->strength = inpaint_strength;
    if (o->strength) {
        char *end;
        const double v = g_ascii_strtod(o->strength, &end);
        if (end == o->strength || *end) {
            fprintf(stderr, "dit: --strength '%s' is not a number\n", o->strength);
            return EXIT_USAGE;
        }
        if ((rc = cli_check_float("strength", v)))
            return rc;
        p->strength = (float)v;
    }
    if ((rc = cli_check_float("guidance", p->guidance)))
        return rc;
    int sampler = p->sched.sampler, schedule = p->sched.schedule, pred = p->sched.prediction,
        spacing = p->sched.spacing, mask_mode = DIT_INPAINT_MASK_MODE;
    if ((rc = cli_pick_name("--mask-mode", o->mask_mode, dit_mask_mode_names, DIT_MASK_MODE_COUNT,
                            &mask_mode)) ||
        (rc = cli_pick_name("--sampler", o->sampler, dit_sampler_names, DIT_SAMPLER_COUNT,
                            &sampler)) ||
        (rc = cli_pick_name("--schedule", o->schedule, dit_schedule_names, DIT_SCHEDULE_COUNT,
                            &schedule)) ||
        (rc = cli_pick_name("--prediction", o->prediction, dit_prediction_names,
                            DIT_PREDICTION_COUNT, &pred)) ||
        (rc = cli_pick_name("--spacing", o->spacing, dit_spacing_names, DIT_SPACING_COUNT,
                            &spacing)))
        return rc;
    dit_sched_config_use_sampler(&p->sched, (dit_sampler)sampler);
    if (o->schedule) /* the user's own choice, even against the sampler's */
        p->sched.schedule = schedule;
    p->sched.prediction = pred, p->sched.spacing = spacing;
    p->mask_mode = (dit_mask_mode)mask_mode;
    p->feather = o->feather;
    p->colour_match = o->colour_match;
    p->resample_jump = o->resample_jump, p->resample_count = o->resample_count;
    if (o->seed < 0) {
        p->seed = g_random_int() | (uint64_t)g_random_int() << 32;
        if (!o->quiet)
            fprintf(stderr, "seed %" G_GUINT64_FORMAT "\n", (guint64)p->seed);
    } else {
        p->seed = (uint64_t)o->seed;
    }
    if (o->variations && !o->quiet)
        fprintf(stderr,
                "variations: seeds %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT ", in order\n",
                (guint64)p->seed, (guint64)(p->seed + (uint64_t)o->variations - 1));

    return 0;
}

static int run_sampling(dit_task task, bool outpaint, int argc, char **argv)
{
    options o;
    cli_options_init(&o);
    o.outpaint = outpaint;
    o.text_ok = true;
    o.guidance = GUIDANCE_UNSET;
    static const char *const names[] = {"generate", "img2img", "inpaint", "outpaint"};
    int rc = parse_sampling(task, &argc, &argv, &o);
    if (rc) {
        cli_options_clear(&o);
        return rc;
    }

    loaded l;
    sample_work wk = {0};
    float *outimg = NULL, *final = NULL;
    if ((rc = cli_load_all(&o, true, true, &l)))
        goto done;
    int class_id = 0;
    if (!l.pixart && (rc = cli_resolve_class(&o, &l, &class_id)))
        goto done;

    dit_pipeline_params p;
    if ((rc = sampling_params(&o, &l, task, class_id, &p)))
        goto done;
    if ((rc = prepare_source(&o, &l, task, &wk)))
        goto done;
    const png_data src = wk.src;
    const float *mask = wk.mask;
    const int H = wk.H, W = wk.W, depth = wk.depth, ox = wk.ox, oy = wk.oy;
    const policy pol = wk.pol;
    const int B = p.batch;
    if (B < 1 || B > 256) {
        fprintf(stderr, "dit: batch must be 1..256, got %d\n", B);
        rc = EXIT_BAD_INPUT;
        goto done;
    }
    if (task == DIT_TASK_IMG2IMG && p.strength == 0.0f) { /* the input, as it is */
        final = g_malloc((size_t)B * 3 * src.height * src.width * sizeof(float));
        for (int b = 0; b < B; b++)
            memcpy(final + (size_t)b * 3 * src.height * src.width, src.rgb,
                   (size_t)3 * src.height * src.width * sizeof(float));
        rc = cli_write_images(&o, final, src.alpha, B, src.height, src.width, depth);
        goto done;
    }
    outimg = g_malloc((size_t)B * 3 * H * W * sizeof(float));
    progress_state ps = {cli_progress_mode(&o), cli_now(), names[outpaint ? 3 : task]};
    cli_catch_interrupts(true);
    dit_status st = dit_pipeline_run(l.ctx, &p, wk.work_img, wk.work_mask, H, W, cli_on_progress,
                                     &ps, &cli_cancel, outimg);
    cli_catch_interrupts(false);
    if (st != DIT_OK) {
        if (ps.mode == 1)
            fprintf(stderr, "\n");
        fprintf(stderr, "dit: %s%s\n", dit_last_error(l.ctx),
                st == DIT_CANCELLED ? " (nothing written)" : "");
        rc = cli_status_exit(st);
        goto done;
    }

    if (task == DIT_TASK_GENERATE) {
        rc = cli_write_images(&o, outimg, NULL, B, H, W, depth);
        goto done;
    }
    /* back to the source's size; outside the mask, the source bit for bit */
    const int SH = src.height, SW = src.width;
    const size_t sn = (size_t)3 * SH * SW;
    final = g_malloc((size_t)B * sn * sizeof(float));
    float *tmp = pol == POL_RESIZE ? g_malloc((size_t)3 * SH * SW * sizeof(float)) : NULL;
    for (int b = 0; b < B; b++) {
        float *dst = final + (size_t)b * sn;
        const float *gen = outimg + (size_t)b * 3 * H * W;
        memcpy(dst, src.rgb, sn * sizeof *dst);
        if (pol == POL_RESIZE) {
            dit_image_resize(l.ctx, gen, 3, H, W, tmp, SH, SW);
            if (mask)
                dit_image_composite(dst, tmp, src.rgb, mask, 3, SH, SW);
            else
                memcpy(dst, tmp, sn * sizeof *dst);
        } else {
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < H && y + oy < SH; y++)
                    for (int x = 0; x < W && x + ox < SW; x++) {
                        const size_t si = ((size_t)c * SH + y + oy) * SW + x + ox;
                        const float g = gen[((size_t)c * H + y) * W + x];
                        const float m = mask ? mask[(size_t)(y + oy) * SW + x + ox] : 1.0f;
                        dst[si] = m == 0.0f ? src.rgb[si] : m * g + (1.0f - m) * src.rgb[si];
                    }
        }
    }
    g_free(tmp);
    rc = cli_write_images(&o, final, src.alpha, B, SH, SW, depth);

done:
    sample_work_clear(&wk);
    g_free(outimg), g_free(final);
    cli_loaded_clear(&l);
    cli_options_clear(&o);
    return rc;
}

int cli_cmd_generate(int argc, char **argv)
{
    return run_sampling(DIT_TASK_GENERATE, false, argc, argv);
}
int cli_cmd_img2img(int argc, char **argv)
{
    return run_sampling(DIT_TASK_IMG2IMG, false, argc, argv);
}
int cli_cmd_inpaint(int argc, char **argv)
{
    return run_sampling(DIT_TASK_INPAINT, false, argc, argv);
}
int cli_cmd_outpaint(int argc, char **argv)
{
    return run_sampling(DIT_TASK_INPAINT, true, argc, argv);
}
