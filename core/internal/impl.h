/* libdit internals: context, arenas, device state, model layout; the op
 * table is in backend.h. Applications include only dit.h. */
#ifndef DIT_IMPL_H
#define DIT_IMPL_H

#include "../dit.h"

#include <stdarg.h>
#include <stdbool.h>

#include "backend.h"

#define DIT_ERROR_LEN 1024

/* ---- context ------------------------------------------------------------- */

/* Device state of a context (core/device.c): the device backend and the
 * device memory the DiT forward works in. All NULL/0 on the CPU. */
typedef struct {
    dit_backend *be; /* owned; NULL until a device is selected */
    float *arena;    /* device activations (+ x, t, y, pos, out) */
    size_t arena_floats;
    /* the weights of one model, uploaded once: `params` is one device
     * allocation of param_floats, `model` a copy of the host model whose
     * pointers are rebased into it (blocks: its own array) */
    float *params;
    dit_model *model;
    const dit_model *host; /* which model, at which version */
    uint64_t host_version;
    /* the weights of one VAE, the same way: `vae` is a copy of the host VAE
     * (a flat struct) whose pointers point into vae_params */
    float *vae_params;
    dit_vae *vae;
    uint64_t vae_id;      /* which VAE: ids are unique per load */
    float *pixart_params; /* a PixArt transformer's parameter block, the same way */
    uint64_t pixart_id;
    int precision; /* index into device.c's names: dit_cuda_precision's order */
} dit_device;

struct dit_ctx {
    char error[DIT_ERROR_LEN];
    int n_threads;         /* resolved, >= 1 */
    dit_backend cpu;       /* the CPU op table with this context's thread count */
    const dit_backend *be; /* the active backend: &cpu or dev.be */
    dit_device dev;
    float *arena; /* activations, grown only before a forward starts */
    size_t arena_floats;
    size_t memory_limit; /* bytes of activations allowed; 0 = no limit */
    /* the last computed position table (gh*gw, D) and what it was made for */
    float *pos_table;
    int pos_gh, pos_gw, pos_dim;
    float pos_base, pos_interp;
};

/* Sets the context's message and returns status, so callers can
 * `return dit_error(ctx, DIT_ERR_FORMAT, "...")`. */
dit_status dit_error(dit_ctx *ctx, dit_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void dit_clear_error(dit_ctx *ctx);

/* Ensure the arena holds n floats; the only allocation on the forward path.
 * Refused, before allocating, when it exceeds the context's memory limit. */
dit_status dit_arena_reserve(dit_ctx *ctx, size_t n_floats);
/* A model or VAE loaded while the context ran bf16 products on the CPU holds
 * its matrices in bf16 only (wl_load): it runs on that path alone. An
 * error naming `what` and what was asked (`done`: "run", "saved") when
 * held and the context is not on it now; DIT_OK otherwise. */
dit_status dit_check_held(dit_ctx *ctx, bool held, const char *what, const char *done);
/* Weights (a model's or a VAE's parameters) against the memory limit, or
 * when there is none against the memory the system has available. */
dit_status dit_check_weights_memory(dit_ctx *ctx, size_t bytes, const char *what);
/* The same budget check for other large buffers (training activations). */
dit_status dit_check_budget(dit_ctx *ctx, size_t bytes, const char *what);

/* ---- device memory of the active backend (core/device.c) -------------------
 * Reached only when ctx->be != &ctx->cpu. Without a CUDA build these fail
 * with DIT_ERR_UNSUPPORTED (they are never reached then). */
static inline bool dit_on_device(const dit_ctx *ctx) { return ctx->be != &ctx->cpu; }
/* Ensure the device arena holds n floats (under the memory limit). */
dit_status dit_device_arena_reserve(dit_ctx *ctx, size_t n_floats);
/* One device allocation of `bytes`; NULL on failure (message in ctx). */
void *dit_device_alloc(dit_ctx *ctx, size_t bytes);
void dit_device_free(void *dev);
dit_status dit_device_upload(dit_ctx *ctx, void *dst_dev, const void *src, size_t bytes);
dit_status dit_device_download(dit_ctx *ctx, void *dst, const void *src_dev, size_t bytes);
/* Zeroes device memory (ordered after the ops queued so far). */
dit_status dit_device_memset0(dit_ctx *ctx, void *dst_dev, size_t bytes);
/* Waits for the device; the first op error since the last sync as a status
 * with its message in ctx. */
dit_status dit_device_sync(dit_ctx *ctx);
/* Frees the device weights, arena and backend (dit_ctx_free). */
void dit_device_release(dit_ctx *ctx);

/* Overflow-checked size arithmetic: false on overflow. */
bool dit_mul_size(size_t a, size_t b, size_t *out);
bool dit_add_size(size_t a, size_t b, size_t *out);

/* 64-byte aligned allocations for parameters and activations. */
void *dit_alloc_aligned(size_t bytes);
void dit_free_aligned(void *p);

/* ---- model layout -------------------------------------------------------- */

/* The t/y conditioning embedder, official names t_embedder.mlp.{0,2},
 * y_embedder.embedding_table. */
typedef struct {
    float *t_mlp0_w; /* (D, F) */
    float *t_mlp0_b; /* (D) */
    float *t_mlp2_w; /* (D, D) */
    float *t_mlp2_b; /* (D) */
    float *y_table;  /* (num_classes + 1, D); NULL when unconditional */
} dit_embedder_weights;

/* One DiT block, official names blocks.N.* */
typedef struct {
    const dit_embedder_weights *emb; /* shared (official) or own (diffusers) */
    dit_embedder_weights own_emb;
    float *ada_w;  /* (6D, D) adaLN_modulation.1 ((4D, D) for adaLN; NULL for token variants) */
    float *ada_b;  /* (6D) */
    float *qkv_w;  /* (3D, D) attn.qkv, rows q | k | v, each (H, hd) */
    float *qkv_b;  /* (3D) */
    float *proj_w; /* (D, D) attn.proj */
    float *proj_b; /* (D) */
    float *fc1_w;  /* (Dm, D) mlp.fc1 */
    float *fc1_b;  /* (Dm) */
    float *fc2_w;  /* (D, Dm) mlp.fc2 */
    float *fc2_b;  /* (D) */
    /* cross-attention variant only (cross_attn.{q,kv,proj}) */
    float *xq_w;    /* (D, D) */
    float *xq_b;    /* (D) */
    float *xkv_w;   /* (2D, D) rows k | v */
    float *xkv_b;   /* (2D) */
    float *xproj_w; /* (D, D) */
    float *xproj_b; /* (D) */
} dit_block_weights;

struct dit_model {
    dit_config cfg;
    char *scheduler_json; /* from scheduler/scheduler_config.json or metadata, or NULL */
    float *params;        /* every parameter, one allocation */
    size_t param_floats;  /* size of that block, padding included */
    size_t n_params;
    bool weights_held; /* bf16 copies only: loaded for bf16 on the CPU */
    char source_dtype[8];
    uint64_t version; /* new on every change of params: see dit_model_touch */

    float *x_embed_w;          /* (D, C, p, p) x_embedder.proj */
    float *x_embed_b;          /* (D) */
    float *pos_embed;          /* (T0, D) stored table for the native grid, or NULL */
    dit_embedder_weights emb;  /* official: shared by all blocks and the final layer */
    dit_block_weights *blocks; /* (depth) */
    float *final_ada_w; /* (2D, D) final_layer.adaLN_modulation.1: shift | scale (adaLN variants) */
    float *final_ada_b; /* (2D) */
    float *final_w;     /* (p*p*Cout, D) final_layer.linear */
    float *final_b;     /* (p*p*Cout) */
};

/* The adaLN chunk width of a block: 6D (shift, scale, gate x2), 4D (no
 * gates) or 0 (token variants), in units of D. */
static inline int dit_block_mod_chunks(const dit_config *c)
{
    return c->conditioning == DIT_COND_ADALN_ZERO ? 6 : c->conditioning == DIT_COND_ADALN ? 4 : 0;
}
/* Offsets in floats of a block's adaLN chunks inside its (B, stride) mod
 * rows; -1 = absent (no gates for adaLN, nothing for the token variants). */
typedef struct {
    int shift1, scale1, gate1, shift2, scale2, gate2, stride;
} dit_mod_layout;
static inline dit_mod_layout dit_block_mod_layout(const dit_config *c)
{
    const int D = c->hidden_size;
    switch (dit_block_mod_chunks(c)) {
    case 6: return (dit_mod_layout){0, D, 2 * D, 3 * D, 4 * D, 5 * D, 6 * D};
    case 4: return (dit_mod_layout){0, D, -1, 2 * D, 3 * D, -1, 4 * D};
    default: return (dit_mod_layout){-1, -1, -1, -1, -1, -1, 0};
    }
}
static inline float *dit_mod_at(float *mod, int offset) { return offset < 0 ? NULL : mod + offset; }
static inline bool dit_final_adaln(const dit_config *c)
{
    return c->conditioning == DIT_COND_ADALN_ZERO || c->conditioning == DIT_COND_ADALN;
}
/* conditioning tokens (t_emb, and y_emb when class-conditional) */
static inline int dit_cond_tokens(const dit_config *c) { return c->num_classes > 0 ? 2 : 1; }

/* A copy of m's description whose weight pointers point into `base` (a
 * block laid out like m->params, e.g. on the device) at the same offsets;
 * it owns neither the block nor m's scheduler text. NULL on OOM. */
dit_model *dit_model_clone_at(const dit_model *m, float *base);
void dit_model_clone_free(dit_model *clone);

/* DIT_ERR_UNSUPPORTED (naming the op) unless the active backend has every op
 * the DiT forward / the VAE calls; the pipeline checks both before step 1. */
dit_status dit_model_check_backend(dit_ctx *ctx);
dit_status dit_vae_check_backend(dit_ctx *ctx);

/* Whoever writes a model's params (loader, init, optimizer step, resume)
 * calls this, so device copies of the weights are uploaded again. */
void dit_model_touch(dit_model *m);

/* ---- block-output reuse across steps (core/cache.c) -----------------------
 * One slot per block and branch (attention, MLP): its output before the
 * gate, (rows, Ts, D), in the active backend's memory. */
typedef struct {
    int depth, rows;       /* rows: the most a slot holds */
    size_t slot;           /* floats per slot */
    float *store;          /* (depth, 2, rows, Ts, D) */
    bool on_device;        /* store is device memory */
    int *valid;            /* (depth * 2) rows a slot holds now (0: nothing) */
    const uint8_t *plan;   /* (depth * 2) this step's: 1 = reuse; NULL computes all */
    long computed, reused; /* branch evaluations so far */
    float *prev, *host;    /* calibration: the last step's outputs, a download buffer */
    bool have_prev;
} dit_block_cache;

dit_status dit_block_cache_init(dit_ctx *ctx, dit_block_cache *bc, const dit_model *model, int rows,
                                int H, int W);
void dit_block_cache_release(dit_block_cache *bc);
/* nothing held (the latent jumped: resampling) */
void dit_block_cache_invalidate(dit_block_cache *bc);
/* Branch `branch` (2 x block + 0 attention / 1 MLP) of a forward of `rows`
 * rows: its slot, and whether it holds the output to reuse (the plan says
 * so and the slot has those rows); else the forward writes it there. */
float *dit_block_cache_slot(dit_block_cache *bc, int branch, int rows, bool *reuse);
/* Calibration, after a forward that computed every branch: change[i] =
 * |now - before| / |before| of each branch since the last call; *measured
 * false at the first call (nothing before). */
dit_status dit_block_cache_measure(dit_ctx *ctx, dit_block_cache *bc, int rows, double *change,
                                   bool *measured);
/* The plan of a run of steps start .. steps - 1 (bytes (steps, depth, 2),
 * 1 = reuse): with a profile, alpha bisected to the budget; without, whole
 * steps at the budget's rate. level (steps): each step's noise level. */
void dit_cache_plan_build(const dit_cache_profile *prof, int depth, float budget,
                          const double *level, const double *weight, int start, int steps,
                          uint8_t *plan);
dit_cache_profile *dit_cache_profile_alloc(int depth, int n);
void dit_cache_profile_set(dit_cache_profile *prof, int interval, float level, const double *rate,
                           int samples, int steps);
/* The forward with a block cache (NULL: dit_model_forward) */
dit_status dit_model_forward_cached(dit_ctx *ctx, const dit_model *model, int B, int H, int W,
                                    const float *x, const float *t, const int32_t *y, float *out,
                                    dit_block_cache *cache);

/* a hex SHA-256 of the encoder's config and weights (the prompt cache's key) */
const char *dit_text_encoder_fingerprint(const dit_text_encoder *enc);
/* every op the T5 encoder calls (core/t5.c) */
#define DIT_T5_OPS(X) X(linear) X(rms_norm) X(attention_bias) X(mul) X(add_act) X(add_embedding)
/* Frees the device arena (a later forward allocates what it needs): after
 * the T5 encoder, whose weights it held for the call. No-op on the CPU. */
void dit_device_arena_release(dit_ctx *ctx);
/* 2 per level of a pipeline folder's vae/config.json block_out_channels; 1
 * without one */
int dit_folder_vae_factor(const char *path);
/* A T5 encoder's config and its prompt-cache fingerprint (what
 * dit_text_encoder_fingerprint gives once loaded) from its files' headers,
 * without loading the weights. path as dit_text_encoder_load takes. */
dit_status dit_t5_peek(dit_ctx *ctx, const char *path, dit_t5_config *cfg, char fp[65]);
/* Carves n floats (rounded up to 16: 64-byte steps) from a buffer at
 * base + *used into *dst (dst may be NULL: counting only; base NULL: a
 * layout pass that only sizes). Returns the floats used so far. */
static inline size_t dit_carve(float **dst, float *base, size_t *used, size_t n)
{
    if (dst)
        *dst = base ? base + *used : NULL;
    *used += (n + 15) & ~(size_t)15;
    return *used;
}
/* The 2-D sin-cos table (gh*gw, D) for a grid whose native side is `base`
 * tokens, computed on the CPU and kept in ctx until another is asked for
 * (every sampling step reuses it). */
dit_status dit_position_table(dit_ctx *ctx, int gh, int gw, int D, float base, float interp,
                              const float **out);
/* every op the PixArt transformer calls (core/pixart.c) */
/* clang-format off */
#define DIT_PIXART_OPS(X)                                                                   \
    X(linear) X(attention) X(attention_scratch) X(cross_attention) X(layernorm_modulate)   \
    X(silu) X(patchify) X(unpatchify) X(gated_add) X(add_rows) X(copy_tokens)              \
    X(timestep_embedding)
/* clang-format on */

/* f16/bf16 -> f32 */
float dit_f16_to_f32(uint16_t h);
float dit_bf16_to_f32(uint16_t h);
uint16_t dit_f32_to_f16(float f);
uint16_t dit_f32_to_bf16(float f);

#endif
