/* dit calibrate-cache: measure how much each block's outputs change from
 * step to step, for --cache (dit_cache_calibrate). */
#include "cli.h"

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>

enum { DEFAULT_SAMPLES = 4 };

void cli_add_cache_entries(GOptionContext *oc, options *o, GPtrArray *keep)
{
    GOptionEntry entries[] = {
        {"cache", 0, 0, G_OPTION_ARG_STRING, &o->cache,
         cli_help(keep,
                  "compute only this share of the blocks' attention and MLP outputs, reusing "
                  "the last step's for the rest, where the model's calibration (dit "
                  "calibrate-cache) says they change least; %g is the measured choice "
                  "(default: 1, all)",
                  (double)DIT_CACHE_BUDGET),
         "SHARE"},
        {"cache-profile", 0, 0, G_OPTION_ARG_FILENAME, &o->cache_profile,
         "the calibration --cache follows (default: the model's, from dit calibrate-cache)",
         "FILE"},
        OPT_END,
    };
    g_option_context_add_main_entries(oc, entries, NULL);
}

/* --cache and --cache-profile into p (the profile kept in l); an exit code */
int cli_cache_params(const options *o, loaded *l, dit_pipeline_params *p)
{
    if (!o->cache) {
        if (o->cache_profile)
            fprintf(stderr, "dit: --cache-profile does nothing without --cache\n");
        return o->cache_profile ? EXIT_USAGE : 0;
    }
    char *end;
    const double share = g_ascii_strtod(o->cache, &end);
    if (end == o->cache || *end || !(share > 0 && share <= 1)) {
        fprintf(stderr, "dit: --cache '%s' must be a share in (0, 1], e.g. %g\n", o->cache,
                (double)DIT_CACHE_BUDGET);
        return EXIT_USAGE;
    }
    p->cache_budget = (float)share;
    char *own = o->cache_profile ? NULL : dit_cache_profile_path(l->model_path);
    const char *path = o->cache_profile ? o->cache_profile : own;
    if (path && (o->cache_profile || g_file_test(path, G_FILE_TEST_EXISTS))) {
        if (dit_cache_profile_load(l->ctx, path, &l->cache_profile) != DIT_OK) {
            fprintf(stderr, "dit: --cache: %s\n", dit_last_error(l->ctx));
            g_free(own);
            return EXIT_BAD_INPUT;
        }
        p->cache_profile = l->cache_profile;
    } else if (!o->quiet && share < 1) {
        fprintf(stderr, "dit: --cache: this model has no calibration (dit calibrate-cache -m MODEL "
                        "writes it); skipping whole steps evenly\n");
    }
    g_free(own);
    return 0;
}

int cli_cmd_calibrate_cache(int argc, char **argv)
{
    options o;
    cli_options_init(&o);
    int samples = DEFAULT_SAMPLES;
    GPtrArray *keep = g_ptr_array_new_with_free_func(g_free);
    GOptionEntry entries[] = {
        OPT_MODEL(&o),
        OPT_VAE(&o),
        {"samples", 'n', 0, G_OPTION_ARG_INT, &samples,
         cli_help(keep, "generations to measure on, classes in turn (default: %d)",
                  DEFAULT_SAMPLES),
         "N"},
        {"steps", 's', 0, G_OPTION_ARG_INT, &o.steps,
         "sampling steps (default: the model's); the profile serves any step count", "N"},
        {"sampler", 0, 0, G_OPTION_ARG_STRING, &o.sampler,
         "ddpm, ddim, dpm++2m, euler or cold (default: the model's)", "NAME"},
        {"guidance", 'g', 0, G_OPTION_ARG_DOUBLE, &o.guidance,
         cli_help(keep, "classifier-free guidance scale (default: %g)", o.guidance), "G"},
        {"class", 'c', 0, G_OPTION_ARG_STRING, &o.class_name,
         "the first sample's class; the others follow it (default: 0)", "CLASS"},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &o.seed, "the first sample's seed (default: 0)", "N"},
        {"progress", 0, 0, G_OPTION_ARG_STRING, &o.progress,
         "auto, bar, json or none (default: auto: a bar on a terminal)", "MODE"},
        OPT_THREADS(&o),
        OPT_DEVICE(&o),
        OPT_PRECISION(&o),
        {"output", 'o', 0, G_OPTION_ARG_FILENAME, &o.output,
         "where to write the profile (default: beside the model, where --cache looks: "
         "dit-cache.json in a model folder, NAME.cache.json beside NAME.safetensors)",
         "FILE"},
        OPT_QUIET(&o),
        OPT_END,
    };
    GOptionContext *oc = g_option_context_new("- measure a model's block outputs for --cache");
    g_option_context_add_main_entries(oc, entries, NULL);
    g_option_context_set_description(
        oc, "Runs N generations computing every block and records, per block and branch\n"
            "(attention, MLP), how much its output changes per unit of noise level. --cache\n"
            "SHARE then reuses the outputs that change least. Minutes for a large model.\n\n"
            "Example:\n  dit calibrate-cache -m ./DiT-XL-2-256 -n 8\n"
            "  dit generate -m ./DiT-XL-2-256 --cache 0.5 -c 207 -o dog.png\n");
    int rc = cli_parse(oc, &argc, &argv);
    if (!rc && (samples < 1 || samples > 256))
        rc = cli_usage_error(oc, "--samples must be 1..256");
    g_option_context_free(oc);
    g_ptr_array_free(keep, TRUE);
    loaded l = {0};
    dit_cache_profile *prof = NULL;
    char *path = NULL;
    if (rc || (rc = cli_load_all(&o, true, true, &l)))
        goto done;
    int class_id = 0, sampler = -1;
    if ((rc = cli_resolve_class(&o, &l, &class_id)) ||
        (rc = cli_check_float("guidance", o.guidance)))
        goto done;
    dit_pipeline_params p;
    dit_pipeline_params_default(&p, l.model, l.vae);
    sampler = p.sched.sampler;
    if ((rc =
             cli_pick_name("--sampler", o.sampler, dit_sampler_names, DIT_SAMPLER_COUNT, &sampler)))
        goto done;
    dit_sched_config_use_sampler(&p.sched, (dit_sampler)sampler);
    if (o.steps != INT_MIN)
        p.steps = o.steps;
    p.guidance = (float)o.guidance, p.class_id = class_id;
    p.seed = o.seed < 0 ? 0 : (uint64_t)o.seed;
    path = o.output ? g_strdup(o.output) : dit_cache_profile_path(l.model_path);
    const dit_config *c = dit_model_config(l.model);
    const int f = l.vae ? dit_vae_config(l.vae)->downscale : 1, side = c->sample_size * f;
    if (!o.quiet)
        fprintf(stderr, "calibrating %s: %d samples of %d steps at %dx%d -> %s\n", l.model_path,
                samples, p.steps, side, side, path);
    progress_state ps = {cli_progress_mode(&o), cli_now(), "calibrate"};
    cli_catch_interrupts(true);
    dit_status st = dit_cache_calibrate(l.ctx, &p, side, side, samples, cli_on_progress, &ps,
                                        &cli_cancel, &prof);
    cli_catch_interrupts(false);
    if (ps.mode == 1)
        fprintf(stderr, "\n");
    if (!st)
        st = dit_cache_profile_save(l.ctx, prof, path);
    if (st) {
        fprintf(stderr, "dit: %s%s\n", dit_last_error(l.ctx),
                st == DIT_CANCELLED ? " (nothing written)" : "");
        rc = cli_status_exit(st);
        goto done;
    }
    if (!o.quiet) {
        p.cache_profile = prof;
        for (int i = 0; i < 3; i++) { /* what a few budgets would compute, for orientation */
            static const float budgets[] = {0.7f, DIT_CACHE_BUDGET, 0.35f};
            uint8_t *plan = NULL;
            double share = 1;
            p.cache_budget = budgets[i];
            if (dit_cache_plan(l.ctx, &p, &plan, &share) == DIT_OK)
                fprintf(stderr, "--cache %g: %d steps compute %.0f%% of the block outputs\n",
                        (double)budgets[i], p.steps, 100 * share);
            free(plan);
        }
        fprintf(stderr, "wrote %s\n", path);
    }
done:
    dit_cache_profile_free(prof);
    g_free(path);
    cli_loaded_clear(&l);
    cli_options_clear(&o);
    return rc;
}
