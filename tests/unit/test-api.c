/* The rules dit.h states, read back through the public API: the pipeline
 * defaults its comment documents, class resolution (the one rule the CLI,
 * the plug-ins and the dialog share), the sampler/schedule pairing, and the
 * CUDA-build query against what dit_ctx_set_device answers. */
#include "common.h"

#include <glib.h>

#include <math.h>
#include <string.h>

static int failures;

static void pipeline_defaults(dit_ctx *ctx)
{
    dit_model *m = NULL;
    char *path = fixture_path("dit_official_p2.safetensors"); /* no scheduler of its own */
    CHECK(dit_model_load(ctx, path, &m) == DIT_OK, "%s", dit_last_error(ctx));
    g_free(path);
    if (!m)
        return;
    CHECK(dit_model_scheduler_json(m) == NULL, "the fixture names a scheduler");
    dit_pipeline_params p;
    dit_pipeline_params_default(&p, m, NULL);
    CHECK(p.task == DIT_TASK_GENERATE, "task %d", p.task);
    CHECK(p.sched.sampler == DIT_SAMPLER_DPMPP_2M, "sampler %s",
          dit_sampler_names[p.sched.sampler]);
    CHECK(p.steps == 20, "steps %d", p.steps);
    CHECK(p.sched.schedule == DIT_SCHEDULE_LINEAR, "schedule %s",
          dit_schedule_names[p.sched.schedule]);
    CHECK(p.sched.train_steps == 1000 && p.sched.beta_start == 1e-4 && p.sched.beta_end == 0.02,
          "betas %g..%g over %d", p.sched.beta_start, p.sched.beta_end, p.sched.train_steps);
    CHECK(p.sched.prediction == DIT_PRED_EPSILON, "prediction %d", p.sched.prediction);
    CHECK(p.sched.spacing == DIT_SPACING_LEADING, "spacing %d", p.sched.spacing);
    CHECK(p.guidance == 4.0f && p.guidance_channels == 0, "guidance %g on %d channels",
          (double)p.guidance, p.guidance_channels);
    CHECK(p.strength == 0.75f, "strength %g", (double)p.strength);
    CHECK(p.class_id == 0 && p.seed == 0 && p.batch == 1 && p.grow == 0,
          "class %d seed %llu batch %d grow %d", p.class_id, (unsigned long long)p.seed, p.batch,
          p.grow);
    dit_model_free(m);
}

static void class_rule(void)
{
    char *labels[] = {"T-shirt/top", "Trouser", "tabby, tabby cat", NULL};
    static const struct {
        const char *name;
        int num_classes;
        bool with_labels;
        dit_class_result want;
        int id;
    } rows[] = {
        {NULL, 3, true, DIT_CLASS_OK, 0},
        {"", 3, true, DIT_CLASS_OK, 0},
        {"2", 3, true, DIT_CLASS_OK, 2},
        {"3", 3, true, DIT_CLASS_OK, 3}, /* the null class */
        {"4", 3, true, DIT_CLASS_OUT_OF_RANGE, 0},
        {"-1", 3, true, DIT_CLASS_OUT_OF_RANGE, 0},
        {"99999999999999999999", 3, true, DIT_CLASS_OUT_OF_RANGE, 0},
        {"trouser", 3, true, DIT_CLASS_OK, 1},
        {"TABBY CAT", 3, true, DIT_CLASS_OK, 2},
        {"Unicorn", 3, true, DIT_CLASS_UNKNOWN, 0},
        {"Trouser", 3, false, DIT_CLASS_UNKNOWN, 0},
        {"1", 3, false, DIT_CLASS_OK, 1},
        {"", 0, false, DIT_CLASS_OK, 0}, /* unconditional: its only label */
        {NULL, 0, false, DIT_CLASS_OK, 0},
        {"0", 0, false, DIT_CLASS_UNCONDITIONAL, 0},
        {"Trouser", 0, true, DIT_CLASS_UNCONDITIONAL, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int id = -7;
        dit_class_result r = dit_labels_resolve(rows[i].with_labels ? labels : NULL,
                                                rows[i].num_classes, rows[i].name, &id);
        CHECK(r == rows[i].want && (r != DIT_CLASS_OK || id == rows[i].id),
              "class '%s' of %d: result %d id %d, want %d id %d",
              rows[i].name ? rows[i].name : "(null)", rows[i].num_classes, r, id, rows[i].want,
              rows[i].id);
    }
    char *s = dit_labels_summary(labels, 3, 2);
    CHECK(strcmp(s, "T-shirt/top, Trouser, ... (3 in all)") == 0, "summary '%s'", s);
    dit_free(s);
    s = dit_labels_summary(labels, 3, 5);
    CHECK(strcmp(s, "T-shirt/top, Trouser, tabby") == 0, "summary '%s'", s);
    dit_free(s);
}

static void sampler_rule(void)
{
    dit_sched_config c = {.schedule = DIT_SCHEDULE_SCALED_LINEAR};
    dit_sched_config_use_sampler(&c, DIT_SAMPLER_COLD);
    CHECK(c.sampler == DIT_SAMPLER_COLD && c.schedule == DIT_SCHEDULE_COSINE_ALPHABAR,
          "cold: schedule %s", dit_schedule_names[c.schedule]);
    dit_sched_config_use_sampler(&c, DIT_SAMPLER_DDIM);
    CHECK(c.sampler == DIT_SAMPLER_DDIM && c.schedule == DIT_SCHEDULE_LINEAR,
          "ddim after cold: schedule %s", dit_schedule_names[c.schedule]);
    c.schedule = DIT_SCHEDULE_SQUAREDCOS;
    dit_sched_config_use_sampler(&c, DIT_SAMPLER_EULER);
    CHECK(c.schedule == DIT_SCHEDULE_SQUAREDCOS, "euler kept %s", dit_schedule_names[c.schedule]);
}

static void cuda_query(dit_ctx *ctx)
{
    dit_status st = dit_ctx_set_device(ctx, "cuda");
    if (!dit_build_has_cuda())
        CHECK(st == DIT_ERR_UNSUPPORTED && strstr(dit_last_error(ctx), "no CUDA backend"),
              "a build without CUDA: %s (%s)", dit_status_name(st), dit_last_error(ctx));
    else
        CHECK(st == DIT_OK || !strstr(dit_last_error(ctx), "no CUDA backend"),
              "a CUDA build says it has none: %s", dit_last_error(ctx));
    CHECK(dit_ctx_set_device(ctx, "cpu") == DIT_OK, "%s", dit_last_error(ctx));
    printf("CUDA backend in this build: %s\n", dit_build_has_cuda() ? "yes" : "no");
}

/* every row of the float table: its ends, just past them, NaN and the
 * infinities; and the message names the option and the range */
static void range_table(dit_ctx *ctx)
{
    int rows = 0;
    for (const dit_range *r; (r = dit_range_at(rows)); rows++) {
        const double width = r->hi - r->lo, eps = width * 1e-6;
        CHECK(dit_range_of(r->name) == r, "%s: not found by name", r->name);
        CHECK(dit_in_range(r, r->lo + width / 2), "%s: midpoint refused", r->name);
        CHECK(dit_in_range(r, r->lo) == !r->lo_open, "%s: lower end", r->name);
        CHECK(dit_in_range(r, r->hi) == !r->hi_open, "%s: upper end", r->name);
        CHECK(!dit_in_range(r, r->lo - eps) && !dit_in_range(r, r->hi + eps), "%s: outside",
              r->name);
        CHECK(!dit_in_range(r, NAN) && !dit_in_range(r, INFINITY) && !dit_in_range(r, -INFINITY),
              "%s: non-finite accepted", r->name);
        CHECK(dit_check_range(ctx, r->name, NAN) == DIT_ERR_INVALID_ARG &&
                  strstr(dit_last_error(ctx), r->name) && strstr(dit_last_error(ctx), "must be in"),
              "%s: message '%s'", r->name, dit_last_error(ctx));
        CHECK(dit_check_range(ctx, r->name, r->lo + width / 2) == DIT_OK, "%s", r->name);
    }
    CHECK(rows >= 10, "only %d rows", rows);
    CHECK(dit_check_range(ctx, "strength", -0.5) == DIT_ERR_INVALID_ARG &&
              strcmp(dit_last_error(ctx), "strength must be in [0, 1], got -0.5") == 0,
          "strength -0.5: '%s'", dit_last_error(ctx));
    CHECK(dit_range_of("nonsense") == NULL, "an unknown name has a range");
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    pipeline_defaults(ctx);
    class_rule();
    sampler_rule();
    cuda_query(ctx);
    range_table(ctx);
    dit_ctx_free(ctx);
    printf(failures ? "FAILED\n" : "OK\n");
    return failures ? 1 : 0;
}
