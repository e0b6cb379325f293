/* Schedulers: set up with a config and a step count, then step by index k
 * (0 .. steps - 1), exactly as the pipeline loop drives them. */
#ifndef DIT_SCHED_H
#define DIT_SCHED_H

#include "impl.h"

typedef struct dit_scheduler {
    dit_sched_config cfg;
    int n;                  /* inference steps */
    size_t numel;           /* latent elements per step */
    double *alphas_cumprod; /* (train_steps [+ 1 for cosine_alphabar]) */
    double final_alpha_cumprod;
    double *train_sigmas; /* (train_steps) sqrt((1 - a) / a) */
    double *timesteps;    /* (n) what the model sees */
    double *sigmas;       /* (n + 1) Euler / DPM-Solver */
    double init_noise_sigma;
    float *prev_x0; /* (numel) DPM-Solver++ 2M's previous data prediction */
    int lower_order_nums;
} dit_scheduler;

void dit_sched_config_default(dit_sched_config *c);
dit_status dit_sched_new(dit_ctx *ctx, const dit_sched_config *c, int steps, size_t numel,
                         dit_scheduler **out);
void dit_sched_free(dit_scheduler *s);
double dit_sched_timestep(const dit_scheduler *s, int k);
double dit_sched_init_noise_sigma(const dit_scheduler *s);
bool dit_sched_needs_noise(const dit_scheduler *s, int k);
/* Euler divides by sqrt(sigma^2 + 1); the others copy */
void dit_sched_scale_input(const dit_scheduler *s, int k, const float *x, float *out, size_t n);
/* model_out: numel values (2 * numel for DDPM learned_range: mean | variance) */
dit_status dit_sched_step(dit_ctx *ctx, dit_scheduler *s, int k, const float *model_out,
                          const float *x, const float *noise, float *x_out);
/* Forgets what multistep samplers keep of earlier steps: the next step is
 * first order, as after a jump back in noise level */
void dit_sched_restart(dit_scheduler *s);
/* x at step `from`'s noise level (or clean, from = steps) taken to the
 * noisier level of step `to` < from with fresh noise: the forward process
 * between the two, for any sampler whose noising is a x0 + b noise */
void dit_sched_renoise(const dit_scheduler *s, int from, int to, const float *noise, float *x,
                       size_t n);
/* x0 noised to step k's level (img2img start, inpaint blend) */
void dit_sched_add_noise(const dit_scheduler *s, int k, const float *x0, const float *noise,
                         float *out, size_t n);

#endif
