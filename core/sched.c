/* Noise schedules and samplers, step for step as diffusers computes them
 * (DDPM, DDIM, DPM-Solver++ 2M, Euler), plus the seed article's x0 "cold
 * diffusion" loop on its flipped cosine alpha-bar schedule.
 *
 * The schedule is built in double (diffusers builds it in float32, which moves
 * trajectories by up to ~8e-6 of max|x|; the goldens use float64 schedules);
 * the Euler / DPM sigmas are rounded to float32 as diffusers stores them. */
#include "internal/sched.h"
#include "internal/json.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const dit_sampler_names[DIT_SAMPLER_COUNT] = {"ddpm", "ddim", "dpm++2m", "euler",
                                                          "cold"};
const char *const dit_schedule_names[DIT_SCHEDULE_COUNT] = {"linear", "scaled_linear",
                                                            "squaredcos_cap_v2", "cosine_alphabar"};
const char *const dit_spacing_names[DIT_SPACING_COUNT] = {"leading", "trailing", "linspace"};
const char *const dit_prediction_names[DIT_PREDICTION_COUNT] = {"epsilon", "sample",
                                                                "v_prediction"};

void dit_sched_config_default(dit_sched_config *c)
{
    memset(c, 0, sizeof *c);
    c->sampler = DIT_SAMPLER_DDIM;
    c->schedule = DIT_SCHEDULE_LINEAR;
    c->spacing = DIT_SPACING_LEADING;
    c->prediction = DIT_PRED_EPSILON;
    c->train_steps = 1000;
    c->beta_start = 1e-4; /* the official DiT betas */
    c->beta_end = 0.02;
    c->variance = DIT_VAR_FIXED_SMALL;
}

void dit_sched_config_use_sampler(dit_sched_config *c, dit_sampler sampler)
{
    c->sampler = sampler;
    if (sampler == DIT_SAMPLER_COLD)
        c->schedule = DIT_SCHEDULE_COSINE_ALPHABAR;
    else if (c->schedule == DIT_SCHEDULE_COSINE_ALPHABAR)
        c->schedule = DIT_SCHEDULE_LINEAR;
}

static double cos_alpha_bar(double t)
{
    const double c = cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
}

/* alphas_cumprod (T; T + 1 for cosine_alphabar) */
static void make_alphas_cumprod(const dit_sched_config *c, double *ac)
{
    const int T = c->train_steps;
    if (c->schedule == DIT_SCHEDULE_COSINE_ALPHABAR) {
        /* the seed article: T + 1 points on [0, T + 1], normalised, flipped;
         * index 0 is (almost) pure noise */
        const int steps = T + 1;
        const double a0 = cos_alpha_bar(0.0);
        for (int i = 0; i <= T; i++) {
            const double x = (double)(T - i) * (double)steps / (double)(steps - 1);
            ac[i] = cos_alpha_bar(x / steps) / a0;
        }
        return;
    }
    double acc = 1.0;
    for (int i = 0; i < T; i++) {
        double beta;
        const double f = T > 1 ? (double)i / (T - 1) : 0.0;
        if (c->schedule == DIT_SCHEDULE_LINEAR) {
            beta = c->beta_start + (c->beta_end - c->beta_start) * f;
        } else if (c->schedule == DIT_SCHEDULE_SCALED_LINEAR) {
            const double r = sqrt(c->beta_start) + (sqrt(c->beta_end) - sqrt(c->beta_start)) * f;
            beta = r * r;
        } else { /* squaredcos_cap_v2 */
            beta = 1.0 - cos_alpha_bar((double)(i + 1) / T) / cos_alpha_bar((double)i / T);
            beta = beta < 0.999 ? beta : 0.999;
        }
        acc *= 1.0 - beta;
        ac[i] = acc;
    }
}

/* numpy's round(): half to even */
static double round_even(double x) { return nearbyint(x); }

/* numpy's linspace(a, b, m)[j]: a + j * step with step = (b - a) / (m - 1),
 * the last point exactly b */
static double np_linspace(double a, double b, int m, int j)
{
    if (m == 1)
        return a;
    if (j == m - 1)
        return b;
    return a + j * ((b - a) / (m - 1));
}

/* numpy's arange(L, 0, -r)[k]: it extrapolates from its first two elements,
 * L + k * ((L - r) - L) */
static double np_arange_down(double L, double r, int k)
{
    const double d = (L - r) - L;
    return L + k * d;
}

/* The train-step indices diffusers' set_timesteps picks (n of them,
 * descending); `extra` > 0 asks for n + extra points and drops the last
 * `extra` (the DPM-Solver convention). The arithmetic is numpy's, so the
 * rounding ties land the same way. */
static void spaced_timesteps(const dit_sched_config *c, int n, int extra, double *ts)
{
    const int T = c->train_steps, m = n + extra;
    for (int k = 0; k < n; k++) {
        double t;
        if (c->spacing == DIT_SPACING_LINSPACE) {
            t = round_even(np_linspace(0.0, T - 1, m, m - 1 - k));
        } else if (c->spacing == DIT_SPACING_LEADING) {
            const int ratio = T / m;
            t = (double)((m - 1 - k) * ratio) + c->steps_offset;
        } else { /* trailing: rint(arange(T, 0, -T / n)) - 1 */
            t = round_even(np_arange_down(T, (double)T / n, k)) - 1.0;
        }
        ts[k] = t;
    }
}

static double ac_at(const dit_scheduler *s, int t)
{
    return t >= 0 ? s->alphas_cumprod[t] : s->final_alpha_cumprod;
}

/* np.interp of the training sigmas at a (possibly fractional) timestep */
static double sigma_at(const dit_scheduler *s, double t)
{
    const int T = s->cfg.train_steps;
    if (t <= 0)
        return s->train_sigmas[0];
    if (t >= T - 1)
        return s->train_sigmas[T - 1];
    const int i = (int)floor(t);
    const double f = t - i;
    return s->train_sigmas[i] * (1.0 - f) + s->train_sigmas[i + 1] * f;
}

dit_status dit_sched_new(dit_ctx *ctx, const dit_sched_config *c, int steps, size_t numel,
                         dit_scheduler **out)
{
    *out = NULL;
    if (c->train_steps < 2 || c->train_steps > 100000)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "train_steps %d is out of range (2..100000)",
                         c->train_steps);
    if (steps < 1 || steps > c->train_steps)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "steps must be 1..%d (the schedule's training steps), got %d",
                         c->train_steps, steps);
    if ((unsigned)c->sampler >= DIT_SAMPLER_COUNT || (unsigned)c->schedule >= DIT_SCHEDULE_COUNT ||
        (unsigned)c->spacing >= DIT_SPACING_COUNT ||
        (unsigned)c->prediction >= DIT_PREDICTION_COUNT)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "unknown sampler, schedule, spacing or prediction");
    if ((c->sampler == DIT_SAMPLER_COLD) != (c->schedule == DIT_SCHEDULE_COSINE_ALPHABAR))
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "the cold sampler and the cosine_alphabar schedule go together (got %s "
                         "with %s)",
                         dit_sampler_names[c->sampler], dit_schedule_names[c->schedule]);
    if (c->schedule <= DIT_SCHEDULE_SCALED_LINEAR &&
        !(c->beta_start > 0 && c->beta_end > c->beta_start && c->beta_end < 1))
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "betas must satisfy 0 < start < end < 1");
    if (c->eta < 0 || c->eta > 1)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "eta must be in [0, 1], got %g", c->eta);

    dit_scheduler *s = calloc(1, sizeof *s);
    const int T = c->train_steps;
    if (s) {
        s->alphas_cumprod = calloc((size_t)T + 1, sizeof(double));
        s->train_sigmas = calloc((size_t)T, sizeof(double));
        s->timesteps = calloc((size_t)steps, sizeof(double));
        s->sigmas = calloc((size_t)steps + 1, sizeof(double));
        s->prev_x0 = calloc(numel ? numel : 1, sizeof(float));
    }
    if (!s || !s->alphas_cumprod || !s->train_sigmas || !s->timesteps || !s->sigmas ||
        !s->prev_x0) {
        dit_sched_free(s);
        return dit_error(ctx, DIT_ERR_NOMEM, "out of memory for the scheduler");
    }
    s->cfg = *c;
    s->n = steps;
    s->numel = numel;
    make_alphas_cumprod(c, s->alphas_cumprod);
    s->final_alpha_cumprod = c->set_alpha_to_one ? 1.0 : s->alphas_cumprod[0];
    s->init_noise_sigma = 1.0;
    for (int i = 0; i < T; i++) {
        const double a = s->alphas_cumprod[i];
        s->train_sigmas[i] = sqrt((1.0 - a) / a);
    }

    switch (c->sampler) {
    case DIT_SAMPLER_DDPM:
    case DIT_SAMPLER_DDIM: spaced_timesteps(c, steps, 0, s->timesteps); break;
    case DIT_SAMPLER_DPMPP_2M:
        spaced_timesteps(c, steps, c->spacing == DIT_SPACING_TRAILING ? 0 : 1, s->timesteps);
        for (int k = 0; k < steps; k++)
            s->sigmas[k] = (double)(float)sigma_at(s, s->timesteps[k]);
        s->sigmas[steps] = 0.0; /* final_sigmas_type "zero" */
        break;
    case DIT_SAMPLER_EULER: {
        if (c->spacing == DIT_SPACING_LINSPACE) { /* np.linspace(0, T - 1, n)[::-1], float32 */
            for (int k = 0; k < steps; k++)
                s->timesteps[k] = (double)(float)np_linspace(0.0, T - 1, steps, steps - 1 - k);
        } else if (c->spacing == DIT_SPACING_LEADING) {
            const int ratio = T / steps;
            for (int k = 0; k < steps; k++)
                s->timesteps[k] = (double)((steps - 1 - k) * ratio) + c->steps_offset;
        } else {
            for (int k = 0; k < steps; k++)
                s->timesteps[k] = round_even(np_arange_down(T, (double)T / steps, k)) - 1.0;
        }
        double max_sigma = 0;
        for (int k = 0; k < steps; k++) {
            s->sigmas[k] = (double)(float)sigma_at(s, s->timesteps[k]);
            max_sigma = s->sigmas[k] > max_sigma ? s->sigmas[k] : max_sigma;
        }
        s->sigmas[steps] = 0.0;
        s->init_noise_sigma = c->spacing == DIT_SPACING_LEADING
                                  ? (double)sqrtf((float)(max_sigma * max_sigma) + 1.0f)
                                  : max_sigma;
        break;
    }
    case DIT_SAMPLER_COLD:
        /* n evenly spaced indices from 0 to T - 1; with n == T every index, as
         * the article's loop */
        for (int k = 0; k < steps; k++)
            s->timesteps[k] =
                steps == 1 ? (double)(T - 1) : round_even((double)(T - 1) * k / (steps - 1));
        break;
    default: break;
    }
    *out = s;
    return DIT_OK;
}

void dit_sched_free(dit_scheduler *s)
{
    if (!s)
        return;
    free(s->alphas_cumprod);
    free(s->train_sigmas);
    free(s->timesteps);
    free(s->sigmas);
    free(s->prev_x0);
    free(s);
}

double dit_sched_timestep(const dit_scheduler *s, int k) { return s->timesteps[k]; }

bool dit_sched_needs_noise(const dit_scheduler *s, int k)
{
    switch (s->cfg.sampler) {
    case DIT_SAMPLER_DDPM: return s->timesteps[k] > 0;
    case DIT_SAMPLER_DDIM: return s->cfg.eta > 0;
    default: return false;
    }
}

void dit_sched_scale_input(const dit_scheduler *s, int k, const float *x, float *out, size_t n)
{
    if (s->cfg.sampler != DIT_SAMPLER_EULER) {
        if (out != x)
            memcpy(out, x, n * sizeof *out);
        return;
    }
    const double sig = s->sigmas[k];
    const double scale = 1.0 / sqrt(sig * sig + 1.0);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(x[i] * scale);
}

/* x0 from a model output given alpha-bar (DDPM/DDIM/cold conventions) */
static double to_x0(dit_prediction p, double x, double m, double a)
{
    switch (p) {
    case DIT_PRED_EPSILON: return (x - sqrt(1.0 - a) * m) / sqrt(a);
    case DIT_PRED_V: return sqrt(a) * x - sqrt(1.0 - a) * m;
    default: return m;
    }
}

/* DPM-Solver++ works on (alpha_t, sigma_t) from sigma = sqrt((1 - a) / a) */
static void alpha_sigma(double sigma, double *alpha_t, double *sigma_t)
{
    *alpha_t = 1.0 / sqrt(sigma * sigma + 1.0);
    *sigma_t = sigma * *alpha_t;
}

dit_status dit_sched_step(dit_ctx *ctx, dit_scheduler *s, int k, const float *model_out,
                          const float *x, const float *noise, float *x_out)
{
    const dit_sched_config *c = &s->cfg;
    const size_t n = s->numel;
    if (k < 0 || k >= s->n)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "step %d outside 0..%d", k, s->n - 1);
    if (dit_sched_needs_noise(s, k) && !noise)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "step %d of %s needs noise", k,
                         dit_sampler_names[c->sampler]);
    const int t = (int)s->timesteps[k];

    switch (c->sampler) {
    case DIT_SAMPLER_DDIM: {
        /* prev = t - T / n, whatever the spacing (as diffusers) */
        const int prev = t - c->train_steps / s->n;
        const double a = ac_at(s, t), ap = ac_at(s, prev), b = 1.0 - a;
        const double var = (1.0 - ap) / b * (1.0 - a / ap);
        const double std = c->eta * sqrt(var);
        const double dir = sqrt(1.0 - ap - std * std);
        for (size_t i = 0; i < n; i++) {
            const double xi = x[i], m = model_out[i];
            double x0, eps;
            if (c->prediction == DIT_PRED_EPSILON) {
                x0 = (xi - sqrt(b) * m) / sqrt(a);
                eps = m;
            } else if (c->prediction == DIT_PRED_SAMPLE) {
                x0 = m;
                eps = (xi - sqrt(a) * x0) / sqrt(b);
            } else {
                x0 = sqrt(a) * xi - sqrt(b) * m;
                eps = sqrt(a) * m + sqrt(b) * xi;
            }
            double v = sqrt(ap) * x0 + dir * eps;
            if (c->eta > 0)
                v += std * noise[i];
            x_out[i] = (float)v;
        }
        return DIT_OK;
    }
    case DIT_SAMPLER_DDPM: {
        /* prev = the next timestep in the list; -1 after the last */
        const int prev = k + 1 < s->n ? (int)s->timesteps[k + 1] : -1;
        const double a = s->alphas_cumprod[t], ap = prev >= 0 ? s->alphas_cumprod[prev] : 1.0;
        const double b = 1.0 - a, bp = 1.0 - ap, cur_a = a / ap, cur_b = 1.0 - cur_a;
        const double cx0 = sqrt(ap) * cur_b / b, cx = sqrt(cur_a) * bp / b;
        double var = bp / b * cur_b;
        var = var < 1e-20 ? 1e-20 : var;
        const bool learned = c->variance == DIT_VAR_LEARNED_RANGE;
        for (size_t i = 0; i < n; i++) {
            const double xi = x[i];
            const double x0 = to_x0(c->prediction, xi, model_out[i], a);
            double v = cx0 * x0 + cx * xi;
            if (t > 0) {
                double sd;
                if (learned) { /* model_out holds the variance half after the n values */
                    const double frac = (model_out[n + i] + 1.0) / 2.0;
                    const double logv = frac * log(cur_b) + (1.0 - frac) * log(var);
                    sd = exp(0.5 * logv);
                } else {
                    sd = sqrt(var);
                }
                v += sd * noise[i];
            }
            x_out[i] = (float)v;
        }
        return DIT_OK;
    }
    case DIT_SAMPLER_DPMPP_2M: {
        double as, ss, at, st;
        alpha_sigma(s->sigmas[k], &as, &ss);
        alpha_sigma(s->sigmas[k + 1], &at, &st);
        /* final sigma 0: log(0) = -inf, exp(-h) = 0, as torch computes it */
        const double lam_t = log(at) - log(st), lam_s = log(as) - log(ss);
        const double h = lam_t - lam_s;
        const double emh = exp(-h);
        const bool last = k == s->n - 1;
        const bool first_order = s->lower_order_nums < 1 || last; /* final_sigmas zero */
        double r0 = 0, D1c = 0;
        if (!first_order) {
            double a1, s1;
            alpha_sigma(s->sigmas[k - 1], &a1, &s1);
            const double lam_s1 = log(a1) - log(s1);
            r0 = (lam_s - lam_s1) / h;
            D1c = 0.5 * (1.0 / r0);
        }
        for (size_t i = 0; i < n; i++) {
            const double xi = (float)x[i];
            double x0;
            if (c->prediction == DIT_PRED_EPSILON)
                x0 = (xi - ss * model_out[i]) / as;
            else if (c->prediction == DIT_PRED_V)
                x0 = as * xi - ss * model_out[i];
            else
                x0 = model_out[i];
            double v;
            if (s->sigmas[k + 1] == 0.0) { /* the final step lands on x0 */
                v = x0;
            } else {
                v = (st / ss) * xi - at * (emh - 1.0) * x0;
                if (!first_order) /* midpoint: - 0.5 alpha_t (e^-h - 1) D1, D1 = (m0 - m1) / r0 */
                    v -= at * (emh - 1.0) * D1c * (x0 - s->prev_x0[i]);
            }
            s->prev_x0[i] = (float)x0;
            x_out[i] = (float)v;
        }
        if (s->lower_order_nums < 2)
            s->lower_order_nums++;
        return DIT_OK;
    }
    case DIT_SAMPLER_EULER: {
        const double sig = s->sigmas[k], dt = s->sigmas[k + 1] - sig;
        for (size_t i = 0; i < n; i++) {
            const double xi = x[i], m = model_out[i];
            double x0;
            if (c->prediction == DIT_PRED_EPSILON)
                x0 = xi - sig * m;
            else if (c->prediction == DIT_PRED_V)
                x0 = m * (-sig / sqrt(sig * sig + 1.0)) + xi / (sig * sig + 1.0);
            else
                x0 = m;
            x_out[i] = (float)(xi + (xi - x0) / sig * dt);
        }
        return DIT_OK;
    }
    case DIT_SAMPLER_COLD: {
        if (k == s->n - 1) { /* the last evaluation is the answer */
            for (size_t i = 0; i < n; i++)
                x_out[i] = (float)to_x0(c->prediction, x[i], model_out[i], s->alphas_cumprod[t]);
            return DIT_OK;
        }
        const double a = s->alphas_cumprod[t];
        const double a1 = s->alphas_cumprod[(int)s->timesteps[k + 1]];
        for (size_t i = 0; i < n; i++) {
            const double xi = x[i];
            const double x0 = to_x0(c->prediction, xi, model_out[i], a);
            const double eps = (xi - sqrt(a) * x0) / (sqrt(1.0 - a) + 1e-4);
            const double rep1 = sqrt(a) * x0 + sqrt(1.0 - a) * eps;
            const double rep2 = sqrt(a1) * x0 + sqrt(1.0 - a1) * eps;
            x_out[i] = (float)(xi + (rep2 - rep1));
        }
        return DIT_OK;
    }
    default: return dit_error(ctx, DIT_ERR_INVALID_ARG, "unknown sampler");
    }
}

/* x at step k's level is a x0 + b noise; clean (a = 1, b = 0) at k = steps */
static void noise_coefs(const dit_scheduler *s, int k, double *a, double *b)
{
    const dit_sched_config *c = &s->cfg;
    if (k >= s->n) {
        *a = 1.0, *b = 0.0;
    } else if (c->sampler == DIT_SAMPLER_EULER) { /* sigma space */
        *a = 1.0, *b = s->sigmas[k];
    } else if (c->sampler == DIT_SAMPLER_DPMPP_2M) {
        alpha_sigma(s->sigmas[k], a, b);
    } else {
        const double ac = s->alphas_cumprod[(int)s->timesteps[k]];
        *a = sqrt(ac), *b = sqrt(1.0 - ac);
    }
}

void dit_sched_add_noise(const dit_scheduler *s, int k, const float *x0, const float *noise,
                         float *out, size_t n)
{
    double sa, sb;
    noise_coefs(s, k, &sa, &sb);
    if (s->cfg.sampler == DIT_SAMPLER_EULER) { /* as diffusers rounds it */
        for (size_t i = 0; i < n; i++)
            out[i] = (float)(x0[i] + noise[i] * sb);
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(sa * x0[i] + sb * noise[i]);
}

void dit_sched_renoise(const dit_scheduler *s, int from, int to, const float *noise, float *x,
                       size_t n)
{
    double a_from, b_from, a_to, b_to;
    noise_coefs(s, from, &a_from, &b_from);
    noise_coefs(s, to, &a_to, &b_to);
    /* x_to = r x_from + q noise keeps a x0 + b noise: a_to = r a_from and
     * b_to^2 = r^2 b_from^2 + q^2 */
    const double r = a_to / a_from, q2 = b_to * b_to - r * r * b_from * b_from;
    const double q = q2 > 0 ? sqrt(q2) : 0.0;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(r * x[i] + q * noise[i]);
}

void dit_sched_restart(dit_scheduler *s) { s->lower_order_nums = 0; }

double dit_sched_init_noise_sigma(const dit_scheduler *s) { return s->init_noise_sigma; }

static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (g_ascii_strcasecmp(names[i], s) == 0)
            return i;
    return -1;
}

dit_status dit_sched_config_from_json(dit_ctx *ctx, const char *src, const char *json,
                                      dit_sched_config *c)
{
    dit_status st = DIT_OK;
    /* diffusers writes lambda_min_clipped as a bare -Infinity, which is not
     * JSON: read such values as null */
    if (!json || !g_utf8_validate(json, -1, NULL))
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: scheduler config is not valid UTF-8", src);
    GRegex *inf = g_regex_new(":\\s*-?(Infinity|NaN)", 0, 0, NULL);
    char *clean = g_regex_replace_literal(inf, json, -1, 0, ": null", 0, NULL);
    g_regex_unref(inf);
    if (!clean)
        return dit_error(ctx, DIT_ERR_FORMAT, "%s: scheduler config cannot be read", src);
    JsonParser *parser;
    JsonObject *o = dit_json_object(ctx, src, clean, -1, &parser);
    if (!o) {
        g_free(clean);
        return DIT_ERR_FORMAT;
    }
    static const struct {
        const char *cls;
        dit_sampler sampler;
    } classes[] = {{"DDPMScheduler", DIT_SAMPLER_DDPM},
                   {"DDIMScheduler", DIT_SAMPLER_DDIM},
                   {"DPMSolverMultistepScheduler", DIT_SAMPLER_DPMPP_2M},
                   {"EulerDiscreteScheduler", DIT_SAMPLER_EULER}};
    const char *cls = json_object_get_string_member_with_default(o, "_class_name", "");
    for (size_t i = 0; i < G_N_ELEMENTS(classes); i++)
        if (strcmp(cls, classes[i].cls) == 0)
            c->sampler = classes[i].sampler;
    const char *str;
    int idx;
    if ((str = json_object_get_string_member_with_default(o, "sampler", NULL)) &&
        (idx = name_index(dit_sampler_names, DIT_SAMPLER_COUNT, str)) >= 0)
        c->sampler = (dit_sampler)idx;
    if ((str = json_object_get_string_member_with_default(o, "beta_schedule", NULL))) {
        if ((idx = name_index(dit_schedule_names, DIT_SCHEDULE_COUNT, str)) < 0)
            st = dit_error(ctx, DIT_ERR_UNSUPPORTED, "%s: beta_schedule '%s' is not supported", src,
                           str);
        else
            c->schedule = (dit_schedule)idx;
    }
    if ((str = json_object_get_string_member_with_default(o, "prediction_type", NULL))) {
        if ((idx = name_index(dit_prediction_names, DIT_PREDICTION_COUNT, str)) < 0)
            st = dit_error(ctx, DIT_ERR_UNSUPPORTED, "%s: prediction_type '%s' is not supported",
                           src, str);
        else
            c->prediction = (dit_prediction)idx;
    }
    if ((str = json_object_get_string_member_with_default(o, "timestep_spacing", NULL)) &&
        (idx = name_index(dit_spacing_names, DIT_SPACING_COUNT, str)) >= 0)
        c->spacing = (dit_spacing)idx;
    if ((str = json_object_get_string_member_with_default(o, "variance_type", NULL)))
        c->variance =
            strcmp(str, "learned_range") == 0 ? DIT_VAR_LEARNED_RANGE : DIT_VAR_FIXED_SMALL;
    if (json_object_has_member(o, "num_train_timesteps"))
        c->train_steps = (int)json_object_get_int_member(o, "num_train_timesteps");
    if (json_object_has_member(o, "beta_start"))
        c->beta_start = json_object_get_double_member(o, "beta_start");
    if (json_object_has_member(o, "beta_end"))
        c->beta_end = json_object_get_double_member(o, "beta_end");
    if (json_object_has_member(o, "steps_offset"))
        c->steps_offset = (int)json_object_get_int_member(o, "steps_offset");
    if (json_object_has_member(o, "set_alpha_to_one"))
        c->set_alpha_to_one = json_object_get_boolean_member(o, "set_alpha_to_one");
    g_object_unref(parser);
    g_free(clean);
    return st;
}
