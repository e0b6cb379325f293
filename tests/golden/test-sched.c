/* Schedulers step by step against diffusers' step() (and the seed article's
 * cold loop written in gen.py): for every case in sched.io.safetensors the
 * timestep list must match exactly, and every intermediate latent within
 * 1e-5 of max|x| at that step. Then Philox noise against gen.py's own
 * implementation, bit for bit. */
#include "common.h"
#include "internal/sched.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STEP_TOL 1e-5

static int failures;

static float *get(dit_ctx *ctx, st_file *f, const char *cs, const char *what, size_t *n,
                  int64_t *shape, int *ndim)
{
    char *name = g_strdup_printf("%s/%s", cs, what);
    float *p = st_find(f, name) ? read_tensor(ctx, f, name, n, shape, ndim) : NULL;
    g_free(name);
    return p;
}

static void run_case(dit_ctx *ctx, st_file *f, const char *cs, const char *json)
{
    JsonParser *parser = json_parser_new();
    json_parser_load_from_data(parser, json, -1, NULL);
    JsonObject *o = json_node_get_object(json_parser_get_root(parser));
    dit_sched_config c;
    dit_sched_config_default(&c);
    const bool cold = g_str_has_prefix(cs, "cold/");
    int steps;
    if (cold) {
        c.sampler = DIT_SAMPLER_COLD;
        c.schedule = DIT_SCHEDULE_COSINE_ALPHABAR;
        c.prediction = DIT_PRED_SAMPLE;
        c.train_steps = (int)json_object_get_int_member(o, "T");
        steps = c.train_steps;
    } else {
        CHECK(dit_sched_config_from_json(ctx, cs, json, &c) == DIT_OK, "%s: %s", cs,
              dit_last_error(ctx));
        steps = (int)json_object_get_int_member(o, "_num_inference_steps");
        if (json_object_has_member(o, "_step_kwargs")) {
            JsonObject *kw = json_object_get_object_member(o, "_step_kwargs");
            c.eta = json_object_get_double_member_with_default(kw, "eta", 0.0);
        }
    }
    size_t nx = 0, nt = 0, nm = 0;
    int64_t mshape[8];
    int mdim = 0;
    float *ts = get(ctx, f, cs, "timesteps", &nt, NULL, NULL);
    float *x_init = get(ctx, f, cs, "x_init", &nx, NULL, NULL);
    float *mout = get(ctx, f, cs, "model_out", &nm, mshape, &mdim);
    float *xs = get(ctx, f, cs, "x", NULL, NULL, NULL);
    float *noise = get(ctx, f, cs, "noise", NULL, NULL, NULL);
    float *scaled = get(ctx, f, cs, "scaled_in", NULL, NULL, NULL);
    float *final = cold ? get(ctx, f, cs, "final", NULL, NULL, NULL) : NULL;
    dit_scheduler *s = NULL;
    if (!ts || !x_init || !mout || !xs || (int)nt != steps ||
        dit_sched_new(ctx, &c, steps, nx, &s) != DIT_OK) {
        CHECK(false, "%s: cannot set up (%s)", cs, dit_last_error(ctx));
        goto out;
    }
    /* the timestep list, exactly */
    for (int k = 0; k < steps; k++)
        CHECK(dit_sched_timestep(s, k) == ts[k], "%s: timestep %d is %g, diffusers %g", cs, k,
              dit_sched_timestep(s, k), (double)ts[k]);
    if (json_object_has_member(o, "_init_noise_sigma")) {
        const double want = json_object_get_double_member(o, "_init_noise_sigma");
        CHECK(fabs(dit_sched_init_noise_sigma(s) - want) <= 1e-5 * want,
              "%s: init_noise_sigma %g, diffusers %g", cs, dit_sched_init_noise_sigma(s), want);
    }
    const size_t per_out = nm / (size_t)steps; /* n or 2n (learned variance) */
    float *x = malloc(nx * sizeof *x), *xin = malloc(nx * sizeof *xin);
    memcpy(x, x_init, nx * sizeof *x);
    double worst = 0;
    for (int k = 0; k < steps; k++) {
        if (scaled) {
            dit_sched_scale_input(s, k, x, xin, nx);
            double mx = 0, d = 0;
            for (size_t i = 0; i < nx; i++) {
                mx = fmax(mx, fabs(scaled[k * nx + i]));
                d = fmax(d, fabs(xin[i] - scaled[k * nx + i]));
            }
            CHECK(d <= STEP_TOL * mx, "%s: scale_model_input at step %d off by %g", cs, k, d / mx);
        }
        const float *nz = noise && dit_sched_needs_noise(s, k) ? noise + (size_t)k * nx : NULL;
        if (dit_sched_step(ctx, s, k, mout + (size_t)k * per_out, x, nz, x) != DIT_OK) {
            CHECK(false, "%s step %d: %s", cs, k, dit_last_error(ctx));
            break;
        }
        const float *ref = cold && k == steps - 1 ? final : xs + (size_t)k * nx;
        if (!ref)
            break;
        double mx = 0, d = 0;
        for (size_t i = 0; i < nx; i++) {
            mx = fmax(mx, fabs(ref[i]));
            d = fmax(d, fabs(x[i] - ref[i]));
        }
        worst = fmax(worst, mx > 0 ? d / mx : d);
        if (d > STEP_TOL * mx) {
            CHECK(false, "%s: step %d (t=%g) off by %.3e of max|x| %.3g", cs, k, (double)ts[k],
                  d / mx, mx);
            break;
        }
    }
    printf("%-48s %2d steps, worst step error %.2e  %s\n", cs, steps, worst,
           worst <= STEP_TOL ? "OK" : "NOT OK");
    free(x), free(xin);
out:
    dit_sched_free(s);
    free(ts), free(x_init), free(mout), free(xs), free(noise), free(scaled), free(final);
    g_object_unref(parser);
}

static void test_rng(dit_ctx *ctx)
{
    char *path = fixture_path("ops.io.safetensors");
    st_file *f = NULL;
    if (st_open(ctx, path, &f) != DIT_OK) {
        CHECK(false, "%s", dit_last_error(ctx));
        g_free(path);
        return;
    }
    static const struct {
        const char *name;
        uint64_t seed;
        uint32_t stream;
    } cases[] = {{"rng_seed42_stream7", 42, 7}, {"rng_bigseed_stream0", 0x0123456789abcdefULL, 0}};
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        size_t n = 0;
        float *ref = read_tensor(ctx, f, cases[i].name, &n, NULL, NULL);
        if (!ref) {
            CHECK(false, "no %s", cases[i].name);
            continue;
        }
        float *ours = malloc(n * sizeof *ours);
        dit_randn(cases[i].seed, cases[i].stream, 0, n, ours);
        const bool same = memcmp(ours, ref, n * sizeof *ours) == 0;
        printf("Philox normals %-22s %zu values %s\n", cases[i].name, n,
               same ? "bit-identical to gen.py  OK" : "differ  NOT OK");
        CHECK(same, "%s differs from gen.py's Philox", cases[i].name);
        free(ours);
        free(ref);
    }
    st_close(f);
    g_free(path);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    char *path = fixture_path("sched.io.safetensors");
    st_file *f = NULL;
    if (st_open(ctx, path, &f) != DIT_OK) {
        fprintf(stderr, "%s (regenerate with tests/golden/gen.py)\n", dit_last_error(ctx));
        return 1;
    }
    int cases = 0;
    for (size_t i = 0; i < f->n_meta; i++) {
        if (!strchr(f->meta_keys[i], '/'))
            continue; /* case names look like sampler/schedule/... */
        run_case(ctx, f, f->meta_keys[i], f->meta_values[i]);
        cases++;
    }
    printf("%d scheduler cases\n", cases);
    CHECK(cases >= 30, "only %d scheduler cases in the fixture", cases);
    st_close(f);
    g_free(path);
    test_rng(ctx);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
