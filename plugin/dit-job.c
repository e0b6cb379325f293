/* One DiT run for an image editor; see dit-job.h. No GIMP, no GTK here. */
#include "dit-job.h"

#include <glib/gi18n-lib.h>
#include <math.h>
#include <string.h>

#include "dit.h"

G_DEFINE_QUARK(dit - job - error - quark, ditgimp_job_error)

struct _DitJob {
    dit_ctx *ctx;
    dit_model *model;   /* a class model, or */
    dit_pixart *pixart; /* a text model, with */
    dit_text_pair text; /* its prompts' encodings */
    dit_vae *vae;
    gchar **labels; /* NULL-terminated, or NULL */
    gchar *label;   /* for layer names: the class's, or the prompt shortened */
    dit_pipeline_params params;
    gint unit, native; /* VAE factor x patch; native side in pixels */
    gint detail;       /* work at up to this many pixels on the longer side (0: native) */
    gint factor;       /* image pixels per latent pixel */
    gint latent_c;

    /* the run; set by ditgimp_job_start, owned by the job */
    gfloat *rgb, *mask, *result;
    gint width, height; /* the crop */
    gint mw, mh;        /* model-space size */
    GThread *thread;
    volatile int cancel;
    dit_status status;
    gchar *error; /* the core's message when status != DIT_OK */

    /* shared with the worker under lock */
    GMutex lock;
    gint step, total;
    gboolean done;
    gfloat *latent; /* (latent_c, mh / f, mw / f), the latest step's */
    gboolean latent_new;
};

/* ---- model, labels -------------------------------------------------------- */

gchar *ditgimp_job_default_model(void) { return dit_default_model_path(); }

gchar **ditgimp_job_labels_for_model(const gchar *model_path)
{
    /* a library name, as the Model field may hold, or a path */
    gchar *path = dit_model_resolve(model_path);
    gchar **labels = dit_labels_for_model(path ? path : model_path, 0);
    g_free(path);
    return labels;
}

/* a number, or a label (whole, or one of its comma-separated synonyms), any
 * case; as the dit CLI's --class */
static gboolean resolve_class(DitJob *job, const gchar *name, GError **error)
{
    const gint nc = dit_model_config(job->model)->num_classes;
    gint id = 0;
    switch (dit_labels_resolve(job->labels, nc, name, &id)) {
    case DIT_CLASS_OK: break;
    case DIT_CLASS_UNCONDITIONAL:
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("This model is unconditional (it has no classes): leave the class empty"));
        return FALSE;
    case DIT_CLASS_OUT_OF_RANGE:
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Class %s is out of range: this model has classes 0 to %d "
                      "(%d means no class)"),
                    name, nc - 1, nc);
        return FALSE;
    case DIT_CLASS_UNKNOWN:
        if (job->labels) {
            gchar *some = dit_labels_summary(job->labels, nc, 12);
            g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                        _("Unknown class '%s': it is not one of this model's labels (%s)"), name,
                        some);
            dit_free(some);
        } else {
            g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                        _("Unknown class '%s': this model has no label list, give a class "
                          "number"),
                        name);
        }
        return FALSE;
    }
    job->params.class_id = id;
    const gchar *label = nc == 0                                                ? _("unconditional")
                         : job->labels && id < (gint)g_strv_length(job->labels) ? job->labels[id]
                                                                                : NULL;
    job->label = label ? g_strdup(label) : g_strdup_printf("%d", id);
    return TRUE;
}

/* The prompt on one line (runs of white space one space), cut after about
 * `max` characters at a word where one ends late enough, with "…". */
static gchar *short_prompt(const gchar *prompt, glong max)
{
    GString *s = g_string_new(NULL);
    for (const gchar *p = prompt; *p; p++) {
        if (!g_ascii_isspace(*p))
            g_string_append_c(s, *p);
        else if (s->len && s->str[s->len - 1] != ' ')
            g_string_append_c(s, ' ');
    }
    if (s->len && s->str[s->len - 1] == ' ')
        g_string_truncate(s, s->len - 1);
    if (g_utf8_strlen(s->str, -1) <= max)
        return g_string_free(s, FALSE);
    gsize cut = g_utf8_offset_to_pointer(s->str, max) - s->str;
    const gchar *space = g_strrstr_len(s->str, (gssize)cut + 1, " ");
    if (space && g_utf8_strlen(s->str, space - s->str) >= max / 2)
        cut = space - s->str;
    while (cut > 0 && strchr(" ,;:.-", s->str[cut - 1]))
        cut--;
    g_string_truncate(s, cut);
    g_string_append(s, "…");
    return g_string_free(s, FALSE);
}

/* the float rule every front end shares (dit_range_of), in our words */
static gboolean check_float(const gchar *name, const gchar *label, gdouble value, GError **error)
{
    const dit_range *r = dit_range_of(name);
    if (dit_in_range(r, value))
        return TRUE;
    gchar range[64];
    dit_range_format(r, range, sizeof range);
    g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT, _("%s must be in %s, not %g"), label,
                range, value);
    return FALSE;
}

static gboolean check_values(DitJob *job, const DitValues *v, GError **error)
{
    dit_pipeline_params *p = &job->params;
    if (v->mode < 0 || v->mode >= DIT_MODE_COUNT) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT, _("Unknown mode %d"), v->mode);
        return FALSE;
    }
    /* outpaint: the plug-in hands over the grown layer and its border as the mask */
    p->task = v->mode == DIT_MODE_INPAINT || v->mode == DIT_MODE_OUTPAINT ? DIT_TASK_INPAINT
              : v->mode == DIT_MODE_IMG2IMG                               ? DIT_TASK_IMG2IMG
                                                                          : DIT_TASK_GENERATE;
    if (v->steps < 0 || v->steps > 1000) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Steps must be between 1 and 1000 (0 for the model's default), not %d"),
                    v->steps);
        return FALSE;
    }
    if (v->steps > 0)
        p->steps = v->steps;
    if (!check_float("strength", _("Strength"), v->strength, error) ||
        !check_float("guidance", _("Guidance"), v->guidance, error))
        return FALSE;
    p->strength = (float)v->strength;
    /* a text model's own default where the user left ours */
    p->guidance =
        job->pixart && v->guidance == DIT_VALUES_GUIDANCE ? DIT_TEXT_GUIDANCE : (float)v->guidance;
    if (!(v->guidance_from >= 0 && v->guidance_from <= 1 && v->guidance_to >= 0 &&
          v->guidance_to <= 1)) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("The guidance interval must lie between 0 and 1, not %g to %g"),
                    v->guidance_from, v->guidance_to);
        return FALSE;
    }
    p->guidance_from = (float)v->guidance_from, p->guidance_to = (float)v->guidance_to;
    if (v->grow < 0 || v->grow > 64) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Grow must be between 0 and 64 latent pixels, not %d"), v->grow);
        return FALSE;
    }
    p->grow = v->grow;
    gint mode = -1;
    for (gint i = 0; i < DIT_MASK_MODE_COUNT; i++)
        if (g_ascii_strcasecmp(v->mask_mode, dit_mask_mode_names[i]) == 0)
            mode = i;
    if (mode < 0 && v->mask_mode[0]) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Unknown mask mode '%s': use regenerate or differential"), v->mask_mode);
        return FALSE;
    }
    p->mask_mode = mode < 0 ? DIT_MASK_REGENERATE : (dit_mask_mode)mode;
    if (v->feather < -1 || v->feather > 1024 || v->colour_match < 0 || v->colour_match > 1 ||
        v->resample_jump < 0 || v->resample_jump > 1000 || v->resample_count < 1 ||
        v->resample_count > 20) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Feather must be -1 (automatic) or 0 - 1024 pixels, colour match 0 or 1, "
                      "resample jump "
                      "0 - 1000 steps and resample count 1 - 20"));
        return FALSE;
    }
    p->feather = v->feather;
    p->colour_match = v->colour_match != 0;
    p->resample_jump = v->resample_jump, p->resample_count = v->resample_count;
    if (v->sampler[0]) {
        gint found = -1;
        for (gint i = 0; i < DIT_SAMPLER_COUNT; i++)
            if (g_ascii_strcasecmp(v->sampler, dit_sampler_names[i]) == 0)
                found = i;
        if (found < 0) {
            GString *list = g_string_new(NULL);
            for (gint i = 0; i < DIT_SAMPLER_COUNT; i++) /* the names are not NULL-terminated */
                g_string_append_printf(list, "%s%s", i ? ", " : "", dit_sampler_names[i]);
            g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                        _("Unknown sampler '%s': use one of %s, or an empty string for the "
                          "model's default"),
                        v->sampler, list->str);
            g_string_free(list, TRUE);
            return FALSE;
        }
        dit_sched_config_use_sampler(&p->sched, (dit_sampler)found);
    }
    if (v->variations < 1 || v->variations > 16) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Variations must be between 1 and 16, not %d"), v->variations);
        return FALSE;
    }
    if (v->expand < 0 || v->expand > 1024) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Expand must be between 0 and 1024 pixels, not %d"), v->expand);
        return FALSE;
    }
    if (v->detail < 0 || v->detail > 4096) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("Detail must be between 0 and 4096 pixels, not %d"), v->detail);
        return FALSE;
    }
    job->detail = v->detail;
    p->detail_strength = v->detail > 0 ? DIT_DETAIL_STRENGTH : 0.0f;
    /* one batch: image k from seed + k, as that seed alone (named by it) */
    p->batch = v->variations;
    p->seed_per_image = TRUE;
    if (v->seed > G_MAXINT32 - (v->variations - 1)) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("The seeds of %d variations from %d go past %d: choose a smaller seed"),
                    v->variations, v->seed, G_MAXINT32);
        return FALSE;
    }
    if (v->seed < 0)
        p->seed = (guint64)g_random_int_range(0, G_MAXINT32 - 16);
    else
        p->seed = (guint64)v->seed;
    return TRUE;
}

/* names first, so a typo is an input error even where CUDA is missing */
static gboolean check_device(const gchar *device, GError **error)
{
    static const gchar *const known[] = {"auto", "cpu", "cpu-bf16", "cuda"};
    if (!device || !*device)
        return TRUE;
    for (gsize i = 0; i < G_N_ELEMENTS(known); i++)
        if (g_ascii_strcasecmp(device, known[i]) == 0)
            return TRUE;
    g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                _("Unknown device '%s': use auto, cpu, cpu-bf16 or cuda"), device);
    return FALSE;
}

/* the device, then its precision: "auto" picks bf16 on a CPU only where it
 * measured faster (dit_ctx_set_precision), "cpu-bf16" asks for it */
static gboolean select_device(dit_ctx *ctx, const gchar *device, GError **error)
{
    const gboolean bf16 = device && g_ascii_strcasecmp(device, "cpu-bf16") == 0;
    const gchar *where = bf16 ? "cpu" : device && *device ? device : "auto";
    if (dit_ctx_set_device(ctx, where) != DIT_OK) {
        if (!dit_build_has_cuda())
            g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL,
                        _("This build of gimp-dit has no CUDA backend: use the CPU device"));
        else
            g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL,
                        _("No usable CUDA device (%s): use the CPU device"), dit_last_error(ctx));
        return FALSE;
    }
    const gchar *precision = bf16                                     ? "bf16"
                             : g_ascii_strcasecmp(where, "auto") == 0 ? "auto"
                                                                      : "fp32";
    if (dit_ctx_set_precision(ctx, precision) != DIT_OK) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL, "%s", dit_last_error(ctx));
        return FALSE;
    }
    return TRUE;
}

/* a class model (DiT): a prompt is refused, as the CLI's --prompt is */
static gboolean load_class_model(DitJob *job, const gchar *path, const DitValues *v, GError **error)
{
    if (v->prompt[0] || v->negative_prompt[0]) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("This model takes a class, not a prompt: a prompt needs a text model "
                      "(PixArt)"));
        return FALSE;
    }
    if (dit_model_load(job->ctx, path, &job->model) != DIT_OK) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL, _("Could not load the model: %s"),
                    dit_last_error(job->ctx));
        return FALSE;
    }
    return TRUE;
}

/* a text model (PixArt): the prompts encoded first, so the T5 is freed
 * before the transformer loads; GIMP 2.10's prompt comes as the class */
static gboolean load_text_model(DitJob *job, const gchar *path, const DitValues *v, GError **error)
{
    gchar *prompt = g_strstrip(g_strdup(v->prompt[0] ? v->prompt : v->class_name));
    gboolean ok = FALSE;
    if (!*prompt)
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT,
                    _("This is a text model: type a prompt"));
    else if (dit_text_model_check(job->ctx, path) != DIT_OK)
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL, _("Could not load the model: %s"),
                    dit_last_error(job->ctx));
    else if (dit_text_pair_encode(job->ctx, path, prompt,
                                  v->negative_prompt[0] ? v->negative_prompt : NULL, 0, NULL,
                                  &job->text) != DIT_OK)
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL, _("Could not encode the prompt: %s"),
                    dit_last_error(job->ctx));
    else if (dit_pixart_load(job->ctx, path, &job->pixart) != DIT_OK)
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL, _("Could not load the model: %s"),
                    dit_last_error(job->ctx));
    else
        ok = TRUE;
    if (ok)
        job->label = short_prompt(prompt, 40);
    g_free(prompt);
    return ok;
}

/* the text model's encodings and the pipeline folder's scheduler */
static gboolean text_params(DitJob *job, const gchar *path, GError **error)
{
    dit_pipeline_params_use_text(&job->params, job->pixart, &job->text);
    if (dit_sched_config_from_folder(job->ctx, path, &job->params.sched) == DIT_OK)
        return TRUE;
    g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL, _("Could not load the model: %s"),
                dit_last_error(job->ctx));
    return FALSE;
}

/* the context on its device and threads, and the model's path */
static gchar *job_setup(DitJob *job, const DitValues *v, GError **error)
{
    job->ctx = dit_ctx_new();
    if (!job->ctx) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL, _("Out of memory"));
        return NULL;
    }
    if (!select_device(job->ctx, v->device, error))
        return NULL;
    /* all cores, unless OMP_NUM_THREADS says otherwise (dit_ctx's 0 means
     * all cores whatever the environment says) */
    const gchar *omp = g_getenv("OMP_NUM_THREADS");
    const gint64 threads = omp ? g_ascii_strtoll(omp, NULL, 10) : 0;
    if (threads > 0 && threads < 1024)
        dit_ctx_set_threads(job->ctx, (int)threads);
    /* a path, or the name of a model of the library */
    gchar *path = !v->model[0] ? ditgimp_job_default_model() : dit_model_resolve(v->model);
    if (v->model[0] && !path) /* the loader says what is wrong with it */
        path = g_strdup(v->model);
    if (!path)
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL,
                    _("No model was given and the default model is not installed: choose a "
                      "model folder or file"));
    return path;
}

DitJob *ditgimp_job_new(const DitValues *v, GError **error)
{
    if (!check_device(v->device, error))
        return NULL;
    DitJob *job = g_new0(DitJob, 1);
    g_mutex_init(&job->lock);
    gchar *path = job_setup(job, v, error);
    gchar *vae_dir = path ? g_build_filename(path, "vae", NULL) : NULL;
    gboolean ok = path && (dit_is_pixart(path) ? load_text_model(job, path, v, error)
                                               : load_class_model(job, path, v, error));
    /* a pipeline folder brings its VAE; otherwise the model works on pixels */
    if (ok && g_file_test(vae_dir, G_FILE_TEST_IS_DIR) &&
        dit_vae_load(job->ctx, vae_dir, &job->vae) != DIT_OK) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL, _("Could not load the VAE: %s"),
                    dit_last_error(job->ctx));
        ok = FALSE;
    }
    if (ok) {
        const dit_config *cfg = job->model ? dit_model_config(job->model) : NULL;
        const dit_pixart_config *pc = job->pixart ? dit_pixart_get_config(job->pixart) : NULL;
        job->labels = cfg ? dit_labels_for_model(path, cfg->num_classes) : NULL;
        dit_pipeline_params_default(&job->params, job->model, job->vae);
        job->factor = job->vae ? dit_vae_config(job->vae)->downscale : 1;
        job->unit = job->factor * (cfg ? cfg->patch_size : pc->patch_size);
        job->native = (cfg ? cfg->sample_size : pc->sample_size) * job->factor;
        job->latent_c = cfg ? cfg->in_channels : pc->in_channels;
        ok = (!job->pixart || text_params(job, path, error)) && check_values(job, v, error) &&
             (job->pixart || resolve_class(job, v->class_name, error));
    }
    g_free(vae_dir);
    g_free(path);
    if (!ok) {
        ditgimp_job_free(job);
        return NULL;
    }
    return job;
}

void ditgimp_job_free(DitJob *job)
{
    if (!job)
        return;
    if (job->thread) {
        job->cancel = 1;
        g_thread_join(job->thread);
    }
    dit_model_free(job->model);
    dit_pixart_free(job->pixart);
    dit_text_pair_clear(&job->text);
    dit_vae_free(job->vae);
    dit_ctx_free(job->ctx);
    g_strfreev(job->labels);
    g_free(job->label);
    g_free(job->rgb), g_free(job->mask), g_free(job->result), g_free(job->latent);
    g_free(job->error);
    g_mutex_clear(&job->lock);
    g_free(job);
}

gint32 ditgimp_job_seed(const DitJob *job) { return (gint32)job->params.seed; }

const gchar *ditgimp_job_precision(const DitJob *job) { return dit_ctx_precision(job->ctx); }

const gchar *ditgimp_job_label(const DitJob *job) { return job->label; }

gboolean ditgimp_job_is_text(const DitJob *job) { return job->pixart != NULL; }

gint ditgimp_job_unit(const DitJob *job) { return job->unit; }

gint ditgimp_job_count(const DitJob *job) { return job->params.batch; }

void ditgimp_job_context_rect(const DitJob *job, gint x, gint y, gint w, gint h, gint layer_w,
                              gint layer_h, gdouble pad_fraction, gint *cx, gint *cy, gint *cw,
                              gint *ch)
{
    gint pad = (gint)ceil(pad_fraction * MAX(w, h));
    pad = MAX(pad, job->unit);
    const gint x0 = MAX(0, x - pad), y0 = MAX(0, y - pad);
    const gint x1 = MIN(layer_w, x + w + pad), y1 = MIN(layer_h, y + h + pad);
    *cx = x0, *cy = y0, *cw = x1 - x0, *ch = y1 - y0;
}

/* ---- the worker ------------------------------------------------------------- */

static bool on_step(void *user, int step, int total, const float *latent)
{
    DitJob *job = user;
    g_mutex_lock(&job->lock);
    job->step = step;
    job->total = total;
    if (job->latent && latent) { /* none while a detail run samples at native size */
        const gsize n = (gsize)job->latent_c * (job->mh / job->factor) * (job->mw / job->factor);
        memcpy(job->latent, latent, n * sizeof *job->latent);
        job->latent_new = TRUE;
    }
    g_mutex_unlock(&job->lock);
    return !job->cancel;
}

static gpointer worker(gpointer data)
{
    DitJob *job = data;
    const gint H = job->height, W = job->width, MH = job->mh, MW = job->mw;
    const gboolean inpaint = job->params.task == DIT_TASK_INPAINT;
    const gint B = job->params.batch;
    const gsize model_n = (gsize)3 * MH * MW, crop_n = (gsize)3 * H * W;
    gfloat *work_img = NULL, *work_mask = NULL, *out = NULL, *result = NULL;
    dit_status st = DIT_OK;

    out = g_try_malloc(B * model_n * sizeof *out);
    result = g_try_malloc(B * crop_n * sizeof *result);
    if (job->rgb)
        work_img = g_try_malloc((gsize)3 * MH * MW * sizeof *work_img);
    if (inpaint)
        work_mask = g_try_malloc((gsize)MH * MW * sizeof *work_mask);
    if (!out || !result || (job->rgb && !work_img) || (inpaint && !work_mask)) {
        st = DIT_ERR_NOMEM;
        job->error = g_strdup(_("Out of memory"));
        goto done;
    }
    if (work_img && (st = dit_image_resize(job->ctx, job->rgb, 3, H, W, work_img, MH, MW)))
        goto fail;
    if (work_mask) {
        if ((st = dit_image_resize(job->ctx, job->mask, 1, H, W, work_mask, MH, MW)))
            goto fail;
        for (gsize i = 0; i < (gsize)MH * MW; i++) /* resampling may overshoot [0, 1] */
            work_mask[i] = CLAMP(work_mask[i], 0.0f, 1.0f);
    }
    st = dit_pipeline_run(job->ctx, &job->params, work_img, work_mask, MH, MW, on_step, job,
                          &job->cancel, out);
    if (st)
        goto fail;
    for (gint b = 0; b < B; b++) {
        gfloat *res = result + b * crop_n;
        if ((st = dit_image_resize(job->ctx, out + b * model_n, 3, MH, MW, res, H, W)))
            goto fail;
        /* outside the mask: the source, bit for bit */
        if (job->rgb && job->mask)
            dit_image_composite(res, res, job->rgb, job->mask, 3, H, W);
    }
    goto done;
fail:
    job->error = g_strdup(dit_last_error(job->ctx));
done:
    g_free(work_img), g_free(work_mask), g_free(out);
    job->status = st;
    if (st == DIT_OK)
        job->result = result;
    else
        g_free(result);
    g_mutex_lock(&job->lock);
    job->done = TRUE;
    g_mutex_unlock(&job->lock);
    return NULL;
}

gboolean ditgimp_job_start(DitJob *job, gfloat *rgb, gfloat *mask, gint width, gint height,
                           GError **error)
{
    job->rgb = rgb, job->mask = mask;
    job->width = width, job->height = height;
    if (job->thread || width <= 0 || height <= 0 ||
        (job->params.task != DIT_TASK_GENERATE && !rgb) ||
        (job->params.task == DIT_TASK_INPAINT && !mask)) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT, _("Nothing to work on"));
        return FALSE;
    }
    /* the model's native size, aspect kept: the longer side becomes native
     * (with detail: the crop's own, up to job->detail pixels) */
    const gint unit = job->unit, longer = MAX(width, height);
    const gint side = job->detail > job->native ? MIN(longer, job->detail) : job->native;
    const double s = (double)MAX(side, job->native) / longer;
    job->mh = MAX(unit, (gint)lround(height * s / unit) * unit);
    job->mw = MAX(unit, (gint)lround(width * s / unit) * unit);
    job->latent = g_try_malloc((gsize)job->latent_c * (job->mh / job->factor) *
                               (job->mw / job->factor) * sizeof *job->latent);
    job->thread = g_thread_try_new("dit-sampling", worker, job, error);
    return job->thread != NULL;
}

gboolean ditgimp_job_poll(DitJob *job, gint *step, gint *total)
{
    g_mutex_lock(&job->lock);
    const gboolean done = job->done;
    if (step)
        *step = job->step;
    if (total)
        *total = job->total;
    g_mutex_unlock(&job->lock);
    return done;
}

void ditgimp_job_cancel(DitJob *job) { job->cancel = 1; }

static guint8 to_u8(float v) /* [-1, 1] -> 0..255 */
{
    const float x = (v + 1.0f) * 127.5f;
    return x <= 0.0f ? 0 : x >= 255.0f ? 255 : (guint8)(x + 0.5f);
}

gboolean ditgimp_job_preview(DitJob *job, guint8 **rgb_out, gint *width, gint *height)
{
    if (!job->latent)
        return FALSE;
    const gint C = job->latent_c, h = job->mh / job->factor, w = job->mw / job->factor;
    const gsize hw = (gsize)h * w;
    g_mutex_lock(&job->lock);
    if (!job->latent_new) {
        g_mutex_unlock(&job->lock);
        return FALSE;
    }
    gfloat *x = g_memdup2(job->latent, C * hw * sizeof *x);
    job->latent_new = FALSE;
    g_mutex_unlock(&job->lock);

    guint8 *rgb = g_malloc(3 * hw);
    if (!job->vae) { /* pixel-space model: the latent is the image */
        for (gsize i = 0; i < hw; i++)
            for (gint c = 0; c < 3; c++)
                rgb[3 * i + c] = to_u8(x[(C >= 3 ? c : 0) * hw + i]);
    } else if (C == 4) {
        /* a linear look at the Stable Diffusion VAE's (scaled) latent space:
         * the usual approximate latent -> RGB factors */
        static const float f[4][3] = {{0.298f, 0.207f, 0.208f},
                                      {0.187f, 0.286f, 0.173f},
                                      {-0.158f, 0.189f, 0.264f},
                                      {-0.184f, -0.271f, -0.473f}};
        for (gsize i = 0; i < hw; i++)
            for (gint c = 0; c < 3; c++) {
                float v = 0;
                for (gint k = 0; k < 4; k++)
                    v += f[k][c] * x[k * hw + i];
                rgb[3 * i + c] = to_u8(v);
            }
    } else { /* anything else: the first channels, stretched */
        for (gint c = 0; c < 3; c++) {
            const gfloat *ch = x + MIN(c, C - 1) * hw;
            float lo = ch[0], hi = ch[0];
            for (gsize i = 1; i < hw; i++)
                lo = MIN(lo, ch[i]), hi = MAX(hi, ch[i]);
            const float s = hi > lo ? 2.0f / (hi - lo) : 0.0f;
            for (gsize i = 0; i < hw; i++)
                rgb[3 * i + c] = to_u8((ch[i] - lo) * s - 1.0f);
        }
    }
    g_free(x);
    *rgb_out = rgb, *width = w, *height = h;
    return TRUE;
}

gfloat *ditgimp_job_finish(DitJob *job, GError **error)
{
    if (!job->thread) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_INPUT, _("Nothing to work on"));
        return NULL;
    }
    g_thread_join(job->thread);
    job->thread = NULL;
    if (job->status == DIT_CANCELLED) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_CANCELLED, _("Cancelled"));
        return NULL;
    }
    if (job->status != DIT_OK) {
        g_set_error(error, DIT_JOB_ERROR, DIT_JOB_ERROR_MODEL, _("Sampling failed: %s"),
                    job->error ? job->error : dit_status_name(job->status));
        return NULL;
    }
    gfloat *r = job->result;
    job->result = NULL;
    return r;
}
