/* Reuse of block outputs across sampling steps.
 *
 * Each DiT block adds two branch outputs to its residual stream: attention
 * and MLP, each scaled by a gate that follows the step. From one step to
 * the next most of them change little, and how little depends on the block
 * and the noise level far more than on the image (SmoothCache, Liu et al.
 * 2024). So a run may take a branch's output, before its gate, from the last
 * step that computed it:
 *
 *   store     (depth, 2, rows, Ts, D)   one slot per branch, backend memory
 *   plan      (steps, depth, 2)         1: reuse the slot, fixed before step 0
 *   profile   (depth, 2, n) rates        relative change per unit of noise
 *                                        level, measured by dit_cache_calibrate
 *
 * With a profile, a branch reuses while the change it has accumulated
 * since its last compute (rate x level step, summed) stays below alpha,
 * alpha bisected so that the run computes at most the budget's share; with
 * none, whole steps are skipped at a uniform rate (FORA, Selvaraju et al.
 * 2024). The store is allocated before the first step, never in the loop. */
#include "internal/impl.h"
#include "internal/json.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dit_cache_profile {
    int depth;
    int n;        /* measured level intervals */
    float *level; /* (n) mid-level of each interval, descending */
    float *rate;  /* (depth * 2, n) */
    int samples, steps;
};

void dit_cache_profile_free(dit_cache_profile *prof)
{
    if (!prof)
        return;
    free(prof->level), free(prof->rate), free(prof);
}

dit_cache_profile *dit_cache_profile_alloc(int depth, int n)
{
    dit_cache_profile *prof = calloc(1, sizeof *prof);
    if (!prof)
        return NULL;
    prof->depth = depth, prof->n = n;
    prof->level = calloc((size_t)n, sizeof *prof->level);
    prof->rate = calloc((size_t)n * depth * 2, sizeof *prof->rate);
    if (!prof->level || !prof->rate) {
        dit_cache_profile_free(prof);
        return NULL;
    }
    return prof;
}

void dit_cache_profile_set(dit_cache_profile *prof, int interval, float level, const double *rate,
                           int samples, int steps)
{
    prof->level[interval] = level;
    for (int i = 0; i < prof->depth * 2; i++)
        prof->rate[(size_t)i * prof->n + interval] = (float)rate[i];
    prof->samples = samples, prof->steps = steps;
}

int dit_cache_profile_depth(const dit_cache_profile *prof) { return prof ? prof->depth : 0; }

/* branch i's rate at `level`, linear between the measured mid-levels */
static double rate_at(const dit_cache_profile *prof, int i, double level)
{
    const float *lv = prof->level, *r = prof->rate + (size_t)i * prof->n;
    if (level >= lv[0])
        return r[0];
    for (int j = 1; j < prof->n; j++)
        if (level >= lv[j]) {
            const double u = (lv[j - 1] - level) / (lv[j - 1] - lv[j] + 1e-12);
            return (1.0 - u) * r[j - 1] + u * r[j];
        }
    return r[prof->n - 1];
}

/* The plan for threshold alpha; returns the branches it computes */
static long plan_for(const dit_cache_profile *prof, const double *level, const double *weight,
                     int start, int steps, double alpha, uint8_t *plan)
{
    const int nb = prof->depth * 2;
    long computed = 0;
    for (int i = 0; i < nb; i++) {
        double acc = 0;
        for (int k = start; k < steps; k++) {
            uint8_t reuse = 0;
            if (k > start) {
                const double dl = fabs(level[k - 1] - level[k]);
                acc += rate_at(prof, i, 0.5 * (level[k - 1] + level[k])) * dl;
                reuse = acc * weight[k] <= alpha;
            }
            if (!reuse)
                acc = 0, computed++;
            plan[(size_t)k * nb + i] = reuse;
        }
    }
    return computed;
}

void dit_cache_plan_build(const dit_cache_profile *prof, int depth, float budget,
                          const double *level, const double *weight, int start, int steps,
                          uint8_t *plan)
{
    const int nb = depth * 2;
    memset(plan, 0, (size_t)steps * nb);
    const int run = steps - start;
    if (run <= 0 || budget >= 1.0f)
        return;
    if (!prof) { /* whole steps, evenly: step j of the run computes when j * budget
                    passes a whole number */
        for (int j = 1; j < run; j++) {
            const bool compute =
                floor(j * (double)budget + 1e-9) > floor((j - 1) * (double)budget + 1e-9);
            memset(plan + (size_t)(start + j) * nb, !compute, (size_t)nb);
        }
        return;
    }
    const long allowed = (long)floor((double)budget * run * nb + 1e-9);
    double lo = 0, hi = 1;
    while (plan_for(prof, level, weight, start, steps, hi, plan) > allowed && hi < 1e12)
        hi *= 4;
    for (int it = 0; it < 60; it++) { /* the smallest alpha within the budget */
        const double mid = 0.5 * (lo + hi);
        if (plan_for(prof, level, weight, start, steps, mid, plan) > allowed)
            lo = mid;
        else
            hi = mid;
    }
    plan_for(prof, level, weight, start, steps, hi, plan);
}

/* ---- the store ---------------------------------------------------------- */

dit_status dit_block_cache_init(dit_ctx *ctx, dit_block_cache *bc, const dit_model *model, int rows,
                                int H, int W)
{
    const dit_config *c = dit_model_config(model);
    const size_t T = (size_t)(H / c->patch_size) * (size_t)(W / c->patch_size);
    const size_t Ts = T + (c->conditioning == DIT_COND_IN_CONTEXT ? dit_cond_tokens(c) : 0);
    memset(bc, 0, sizeof *bc);
    bc->depth = c->depth, bc->rows = rows;
    bc->slot = (size_t)rows * Ts * c->hidden_size;
    size_t bytes = 0;
    if (!dit_mul_size(bc->slot * sizeof(float), (size_t)c->depth * 2, &bytes))
        return dit_error(ctx, DIT_ERR_NOMEM, "the block cache's size overflows");
    dit_status st = dit_check_budget(ctx, bytes, "the block cache");
    if (st)
        return st;
    bc->on_device = dit_on_device(ctx);
    bc->store = bc->on_device ? dit_device_alloc(ctx, bytes) : dit_alloc_aligned(bytes);
    bc->valid = calloc((size_t)c->depth * 2, sizeof *bc->valid);
    if (!bc->store || !bc->valid) {
        dit_block_cache_release(bc);
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory for the block cache (%zu MiB)",
                         bytes >> 20);
    }
    return DIT_OK;
}

void dit_block_cache_release(dit_block_cache *bc)
{
    if (bc->on_device)
        dit_device_free(bc->store);
    else
        dit_free_aligned(bc->store);
    free(bc->valid), free(bc->prev), free(bc->host);
    memset(bc, 0, sizeof *bc);
}

void dit_block_cache_invalidate(dit_block_cache *bc)
{
    if (bc->valid)
        memset(bc->valid, 0, (size_t)bc->depth * 2 * sizeof *bc->valid);
}

float *dit_block_cache_slot(dit_block_cache *bc, int branch, int rows, bool *reuse)
{
    *reuse = bc->plan && bc->plan[branch] && bc->valid[branch] >= rows;
    if (*reuse) {
        bc->reused++;
    } else {
        bc->computed++;
        bc->valid[branch] = rows;
    }
    return bc->store + (size_t)branch * bc->slot;
}

/* ---- calibration: each branch's change since the last step -------------- */

dit_status dit_block_cache_measure(dit_ctx *ctx, dit_block_cache *bc, int rows, double *change,
                                   bool *measured)
{
    *measured = false;
    const int nb = bc->depth * 2;
    const size_t n = bc->slot / (size_t)bc->rows * (size_t)rows; /* the rows this step ran */
    if (!bc->prev) {
        bc->prev = malloc((size_t)nb * bc->slot * sizeof *bc->prev);
        bc->host = bc->on_device ? malloc(bc->slot * sizeof *bc->host) : NULL;
        if (!bc->prev || (bc->on_device && !bc->host))
            return dit_error(ctx, DIT_ERR_NOMEM, "out of memory for the cache calibration");
        bc->have_prev = false;
    }
    double scale = 0; /* the branches' mean squared norm: changes on one scale */
    for (int i = 0; i < nb; i++) {
        const float *cur = bc->store + (size_t)i * bc->slot;
        if (bc->on_device) {
            dit_status st = dit_device_download(ctx, bc->host, cur, n * sizeof(float));
            if (st)
                return st;
            cur = bc->host;
        }
        float *prev = bc->prev + (size_t)i * bc->slot;
        double diff = 0, norm = 0;
        for (size_t j = 0; j < n; j++) {
            const double d = (double)cur[j] - prev[j];
            diff += d * d, norm += (double)prev[j] * prev[j];
        }
        change[i] = diff, scale += norm / nb;
        memcpy(prev, cur, n * sizeof *prev);
    }
    for (int i = 0; i < nb; i++)
        change[i] = bc->have_prev ? sqrt(change[i] / (scale > 1e-30 ? scale : 1e-30)) : 0.0;
    *measured = bc->have_prev; /* nothing to compare with at the first step */
    bc->have_prev = true;
    return DIT_OK;
}

/* ---- files ---------------------------------------------------------------- */

char *dit_cache_profile_path(const char *model_path)
{
    if (!model_path)
        return NULL;
    if (g_file_test(model_path, G_FILE_TEST_IS_DIR))
        return g_build_filename(model_path, "dit-cache.json", NULL);
    char *base = g_strdup(model_path);
    char *dot = strrchr(base, '.'), *slash = strrchr(base, '/');
    if (dot && (!slash || dot > slash))
        *dot = '\0';
    char *path = g_strconcat(base, ".cache.json", NULL);
    g_free(base);
    return path;
}

dit_status dit_cache_profile_save(dit_ctx *ctx, const dit_cache_profile *prof, const char *path)
{
    if (!prof || !path)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_cache_profile_save: NULL argument");
    GString *s = g_string_new("{\n  \"format\": \"gimp-dit block cache profile 1\",\n");
    g_string_append_printf(s, "  \"depth\": %d,\n  \"samples\": %d,\n  \"steps\": %d,\n",
                           prof->depth, prof->samples, prof->steps);
    g_string_append(s, "  \"level\": [");
    for (int j = 0; j < prof->n; j++)
        g_string_append_printf(s, "%s%.6g", j ? ", " : "", (double)prof->level[j]);
    g_string_append(s, "],\n  \"rate\": [");
    for (int i = 0; i < prof->depth * 2; i++) {
        g_string_append_printf(s, "%s\n    [", i ? "," : "");
        for (int j = 0; j < prof->n; j++)
            g_string_append_printf(s, "%s%.6g", j ? ", " : "",
                                   (double)prof->rate[(size_t)i * prof->n + j]);
        g_string_append(s, "]");
    }
    g_string_append(s, "\n  ]\n}\n");
    GError *err = NULL; /* a temporary file renamed over the target: never half written */
    const bool ok = g_file_set_contents(path, s->str, (gssize)s->len, &err);
    g_string_free(s, TRUE);
    if (!ok) {
        dit_status st = dit_error(ctx, DIT_ERR_IO, "%s", err->message);
        g_error_free(err);
        return st;
    }
    return DIT_OK;
}

/* n finite non-negative numbers of a JSON array into out */
static bool read_numbers(JsonArray *a, int n, float *out, bool descending)
{
    if (!a || (int)json_array_get_length(a) != n)
        return false;
    for (int j = 0; j < n; j++) {
        JsonNode *v = json_array_get_element(a, (guint)j);
        if (!JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) == G_TYPE_STRING ||
            json_node_get_value_type(v) == G_TYPE_BOOLEAN)
            return false;
        out[j] = (float)json_node_get_double(v);
        if (!isfinite(out[j]) || out[j] < 0 || (descending && j && out[j] >= out[j - 1]))
            return false;
    }
    return true;
}

dit_status dit_cache_profile_load(dit_ctx *ctx, const char *path, dit_cache_profile **out)
{
    if (!path || !out)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "dit_cache_profile_load: NULL argument");
    *out = NULL;
    JsonParser *parser = NULL;
    dit_status st;
    JsonObject *o = dit_json_file(ctx, path, &parser, &st);
    if (!o)
        return st;
    JsonArray *level =
        json_object_has_member(o, "level") ? json_object_get_array_member(o, "level") : NULL;
    JsonArray *rate =
        json_object_has_member(o, "rate") ? json_object_get_array_member(o, "rate") : NULL;
    const gint64 depth =
        json_object_has_member(o, "depth") ? json_object_get_int_member(o, "depth") : 0;
    const int n = level ? (int)json_array_get_length(level) : 0;
    dit_cache_profile *prof = NULL;
    if (depth < 1 || depth > 4096 || n < 1 || n > 100000 || !rate ||
        (gint64)json_array_get_length(rate) != 2 * depth ||
        !(prof = dit_cache_profile_alloc((int)depth, n))) {
        st = dit_error(ctx, DIT_ERR_FORMAT,
                       "%s: not a block cache profile (needs depth, level [n] and rate "
                       "[2 x depth][n])",
                       path);
        goto out;
    }
    bool ok = read_numbers(level, n, prof->level, true);
    for (int i = 0; ok && i < 2 * (int)depth; i++) {
        JsonNode *row = json_array_get_element(rate, (guint)i);
        ok = JSON_NODE_HOLDS_ARRAY(row) &&
             read_numbers(json_node_get_array(row), n, prof->rate + (size_t)i * n, false);
    }
    if (!ok) {
        st = dit_error(ctx, DIT_ERR_FORMAT,
                       "%s: levels must descend and every value be a finite number >= 0", path);
        goto out;
    }
    prof->samples =
        json_object_has_member(o, "samples") ? (int)json_object_get_int_member(o, "samples") : 0;
    prof->steps =
        json_object_has_member(o, "steps") ? (int)json_object_get_int_member(o, "steps") : 0;
    *out = prof, prof = NULL;
out:
    dit_cache_profile_free(prof);
    g_object_unref(parser);
    return st;
}
