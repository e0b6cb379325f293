/* Training: backward passes, AdamW, EMA, checkpoints. Internal API used by
 * `dit train` / `dit validate` and the tests. */
#ifndef DIT_TRAIN_H
#define DIT_TRAIN_H

#include "sched.h"
#include "weights.h"

typedef enum {
    DIT_OBJ_EPS_MSE = 0, /* official DiT (epsilon, MSE) */
    DIT_OBJ_X0_L1,       /* the seed article: predict x0, L1 */
    DIT_OBJ_V_MSE,
    DIT_OBJ_COUNT
} dit_objective;

extern const char *const dit_objective_names[DIT_OBJ_COUNT];

typedef struct {
    dit_objective objective;
    dit_sched_config sched; /* schedule and train_steps for the noise levels */
    int batch;
    double lr;
    int warmup; /* linear warm-up steps */
    double beta1, beta2, eps, weight_decay;
    double grad_clip; /* global norm; 0 = off */
    double ema_decay;
    bool ema_warmup;       /* decay min(ema_decay, (1 + step) / (10 + step)) */
    bool bf16_activations; /* round the saved activations to bfloat16 (autocast numerics) */
    double class_dropout;  /* share of labels replaced by the null class */
    uint64_t seed;
} dit_train_config;

void dit_train_config_default(dit_train_config *c);

/* New model with the official DiT initialisation (xavier-uniform linears,
 * adaLN and final layer zero), label table std `label_std`. */
dit_status dit_model_create(dit_ctx *ctx, const dit_config *cfg, dit_model **out);
void dit_model_init_weights(dit_model *m, uint64_t seed, float label_std);
/* floats of the parameter block a config needs (0 if the config is invalid) */
size_t dit_config_param_floats(const dit_config *cfg);
/* Writes `params` (a block laid out like m->params, e.g. the EMA copy) in the
 * official naming. */
dit_status dit_model_save(dit_ctx *ctx, const dit_model *m, const float *params, const char *path,
                          st_dtype dtype, const char *const *meta_keys,
                          const char *const *meta_values, size_t n_meta);

/* The parameter a checkpoint name (in the model's naming) refers to, inside
 * m->params; NULL if the model has no such tensor. */
float *dit_model_find(dit_model *m, const char *name, size_t *count);

typedef struct dit_trainer dit_trainer;

dit_status dit_trainer_new(dit_ctx *ctx, dit_model *model, const dit_train_config *cfg,
                           dit_trainer **out);
void dit_trainer_free(dit_trainer *tr);
/* One optimisation step on a batch: images (B, C, H, W) in [-1, 1] at the
 * model's native size, labels (B). Noise, timesteps and label dropout come
 * from the seed and the step number. */
dit_status dit_trainer_step(dit_ctx *ctx, dit_trainer *tr, const float *images,
                            const int32_t *labels, float *loss);
/* Loss without an update, at given timesteps (validation): images (B,...),
 * labels (B), t (B) train-step indices, noise from (seed, stream). */
dit_status dit_trainer_eval_loss(dit_ctx *ctx, dit_trainer *tr, const float *images,
                                 const int32_t *labels, const int32_t *t, uint32_t stream,
                                 float *loss_per_sample);
/* Gradients of the mean loss for a given noisy input (tests): fills
 * the trainer's gradient block, returns the loss. x_start (the clean
 * images; NULL: none) adds the VLB term for learned-sigma models, which
 * then needs integer timesteps. */
dit_status dit_trainer_grad(dit_ctx *ctx, dit_trainer *tr, const float *x_noisy, const float *t,
                            const int32_t *labels, const float *target, const float *x_start,
                            float *loss);
float *dit_trainer_grads(dit_trainer *tr); /* same layout as model->params */

/* Data parallelism: `size` processes (ranks) train one model on one global
 * batch of cfg.batch, rank r on samples [r B/size, (r+1) B/size): each step
 * it is handed only those images and labels, draws their noise, timesteps
 * and label dropout from the same counters one process would (the sample's
 * index in the global batch), and after its backward `all_sum` adds the
 * gradients (and the loss) of every rank in place, host memory, n floats,
 * the same sum on every rank (an all-reduce: MPI, NCCL, or threads in a
 * test); the update that follows is then the same everywhere. size 1 or a
 * NULL all_sum: one process. cfg.batch must divide by size. */
typedef struct {
    int rank, size;
    dit_status (*all_sum)(void *user, float *data, size_t n);
    void *user;
} dit_train_parallel;
dit_status dit_trainer_set_parallel(dit_ctx *ctx, dit_trainer *tr, const dit_train_parallel *p);
float *dit_trainer_ema(dit_trainer *tr);
int64_t dit_trainer_step_count(const dit_trainer *tr);
dit_model *dit_trainer_model(dit_trainer *tr);
const dit_train_config *dit_trainer_config(const dit_trainer *tr);

/* Checkpoint: weights, EMA, AdamW moments, step, config; atomic write. */
dit_status dit_trainer_save(dit_ctx *ctx, const dit_trainer *tr, const char *path);
dit_status dit_trainer_load(dit_ctx *ctx, const char *path, dit_trainer **out);

#endif
