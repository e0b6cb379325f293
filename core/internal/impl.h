/* libdit internals: context, backend op table, arenas, model layout.
 * Applications include only dit.h; tests and backends include this. */
#ifndef DIT_IMPL_H
#define DIT_IMPL_H

#include "../dit.h"

#include <stdarg.h>
#include <stdbool.h>

#define DIT_ERROR_LEN 1024

/* ---- backend op table ----------------------------------------------------
 * Model code calls only these. Pointers are host memory for the CPU backend
 * and device memory for a device backend. An op a backend does not provide is
 * NULL; callers report that as DIT_ERR_UNSUPPORTED, never crash.
 * "stride" arguments are the distance in floats between consecutive batch
 * rows of a per-sample vector (adaLN chunks live inside one (B, 6D) row). */
typedef struct dit_backend dit_backend;

/* Activation fused into a linear op's epilogue (cuBLASLt has the same). */
typedef enum { DIT_ACT_NONE = 0, DIT_ACT_GELU_TANH, DIT_ACT_SILU, DIT_ACT_RELU } dit_act;

/* A 2-D convolution: in (B, Cin, H, W) -> out (B, Cout, Ho, Wo), weight
 * (Cout, Cin, k, k). With up2 the input is read as its nearest-neighbour 2x
 * upsampling (2H x 2W) without materialising it. Padding is given for top and
 * left; bottom and right follow from Ho, Wo (asymmetric pads allowed: the
 * VAE downsampler pads (0, 1, 0, 1)). */
typedef struct {
    int B, Cin, H, W;
    int Cout, k, stride, pad_top, pad_left;
    int Ho, Wo;
    bool up2;
} dit_conv_desc;

/* conv2d's im2col scratch, the same for every backend: bands of output rows
 * holding near 16M floats (a wide N for the GEMM, a bounded buffer); a 1x1
 * stride-1 conv needs none. */
#define DIT_CONV_BAND_FLOATS ((size_t)16 << 20)

static inline bool dit_conv_is_pointwise(const dit_conv_desc *d)
{
    return d->k == 1 && d->stride == 1 && d->pad_top == 0 && d->pad_left == 0 && !d->up2 &&
           d->Ho == d->H && d->Wo == d->W;
}

static inline int dit_conv_band_rows(const dit_conv_desc *d)
{
    size_t per_row = (size_t)d->Cin * d->k * d->k * d->Wo;
    size_t rows = per_row ? DIT_CONV_BAND_FLOATS / per_row : 1;
    rows = rows < 1 ? 1 : rows;
    return rows > (size_t)d->Ho ? d->Ho : (int)rows;
}

static inline size_t dit_conv_scratch_floats(const dit_conv_desc *d)
{
    return dit_conv_is_pointwise(d) ? 0
                                    : (size_t)d->Cin * d->k * d->k * d->Wo * dit_conv_band_rows(d);
}
/* spatial attention's scratch, the same for every backend: chunks of query
 * rows whose (rows, N) score block holds near DIT_CONV_BAND_FLOATS */
static inline int dit_spatial_chunk_rows(int N)
{
    size_t rows = N ? DIT_CONV_BAND_FLOATS / (size_t)N : 1;
    rows = rows < 1 ? 1 : rows;
    return rows > (size_t)N ? N : (int)rows;
}

struct dit_backend {
    const char *name;
    int n_threads;

    /* out (M, N) = act(in (M, K) . w (N, K)^T + bias (N)); bias may be NULL */
    void (*linear)(const dit_backend *be, float *out, const float *in, const float *w,
                   const float *bias, int M, int K, int N, dit_act act);
    /* out (B, T, H*hd) = softmax(Q K^T / sqrt(hd)) V per head,
     * qkv (B, T, 3, H, hd); scratch: attention_scratch floats */
    void (*attention)(const dit_backend *be, float *out, const float *qkv, int B, int T,
                      int H, int hd, float *scratch);
    size_t (*attention_scratch)(const dit_backend *be, int B, int T, int H);
    /* out (B, T, D) = LN(x) * (1 + scale[b]) + shift[b]; LN without affine.
     * shift, scale: per-sample vectors of D, `stride` floats apart; NULL = plain LN */
    void (*layernorm_modulate)(const dit_backend *be, float *out, const float *x,
                               const float *shift, const float *scale, int stride,
                               int B, int T, int D, float eps);
    /* out (n) = GELU(x), tanh approximation; out may equal x */
    void (*gelu_tanh)(const dit_backend *be, float *out, const float *x, size_t n);
    /* out (n) = x * sigmoid(x); out may equal x */
    void (*silu)(const dit_backend *be, float *out, const float *x, size_t n);
    /* out (B, T, C*p*p) from x (B, C, H, W); token order row-major over the
     * (H/p, W/p) grid, vector order (c, ky, kx) = conv weight (D, C, p, p) */
    void (*patchify)(const dit_backend *be, float *out, const float *x, int B, int C, int H,
                     int W, int p);
    /* out (B, C, H, W) from tokens (B, T, p*p*C), vector order (ky, kx, c) */
    void (*unpatchify)(const dit_backend *be, float *out, const float *tokens, int B, int C,
                       int H, int W, int p);
    /* x (B, T, D) += gate[b] (D) * y (B, T, D); gate NULL means 1 */
    void (*gated_add)(const dit_backend *be, float *x, const float *y, const float *gate,
                      int stride, int B, int T, int D);
    /* x (B, T, D) += pos (T, D) */
    void (*add_rows)(const dit_backend *be, float *x, const float *pos, int B, int T, int D);
    /* out (B, D) = a (B, D) + table[label[b]] (rows of D); a NULL = zeros */
    void (*add_embedding)(const dit_backend *be, float *out, const float *a,
                          const float *table, const int32_t *label, int B, int D);
    /* out (B, out_T, D) rows [out_at, out_at + n) = in (B, in_T, D) rows
     * [in_at, in_at + n) for every b: joins and splits token sequences */
    void (*copy_tokens)(const dit_backend *be, float *out, int out_T, int out_at, const float *in,
                        int in_T, int in_at, int n, int B, int D);
    /* out (B, Tq, H*hd) = softmax(q k^T / sqrt(hd)) v per head, q (B, Tq, H, hd),
     * kv (B, Tk, 2, H, hd); probs (B, H, Tq, Tk) is written (backward reads it) */
    void (*cross_attention)(const dit_backend *be, float *out, const float *q, const float *kv,
                            int B, int Tq, int Tk, int H, int hd, float *probs);
    /* out (B, F): [cos(t f_i), sin(t f_i)], f_i = exp(-ln(1e4) i / (F/2 - shift)) */
    void (*timestep_embedding)(const dit_backend *be, float *out, const float *t, int B,
                               int F, int shift);
    /* out (gh*gw, D): first D/2 channels encode the column, last D/2 the row;
     * position = index * base / grid / interp (diffusers' interpolation) */
    void (*pos_embed_2d)(const dit_backend *be, float *out, int gh, int gw, int D,
                         float base_h, float base_w, float interp);

    /* ---- image ops (VAE) ---- */
    /* out = act(conv(in) + bias); bias may be NULL; scratch: conv2d_scratch floats */
    void (*conv2d)(const dit_backend *be, float *out, const float *in, const float *w,
                   const float *bias, const dit_conv_desc *d, dit_act act, float *scratch);
    size_t (*conv2d_scratch)(const dit_backend *be, const dit_conv_desc *d);
    /* out (B, C, HW) = act(GroupNorm(in) * gamma (C) + beta (C)); out may equal in */
    void (*group_norm)(const dit_backend *be, float *out, const float *in, const float *gamma,
                       const float *beta, int B, int C, int HW, int groups, float eps,
                       dit_act act);
    /* out (C, N) = V (C, N) . softmax(Q^T K / sqrt(C))^T for each of B
     * samples; q, k, v channel-first as in NCHW; scratch: spatial_attention_scratch */
    void (*spatial_attention)(const dit_backend *be, float *out, const float *q,
                              const float *k, const float *v, int B, int C, int N,
                              float *scratch);
    size_t (*spatial_attention_scratch)(const dit_backend *be, int N);
    /* x (n) = act(x + y) */
    void (*add_act)(const dit_backend *be, float *x, const float *y, size_t n, dit_act act);
    /* out (n) = a * in + b; out may equal in */
    void (*affine)(const dit_backend *be, float *out, const float *in, size_t n, float a,
                   float b);
    /* out (n) = m * tanh(in / m): TAESD's soft latent clamp */
    void (*tanh_clamp)(const dit_backend *be, float *out, const float *in, size_t n, float m);

    /* ---- training: forward variants that keep what backward needs, and the
     * backward ops. Gradients of parameters accumulate (+=); gradients of
     * activations are written (=) unless noted. ---- */
    /* attention as above, keeping probs (B, H, T, T) */
    void (*attention_train)(const dit_backend *be, float *out, const float *qkv, int B, int T,
                            int H, int hd, float *probs);
    /* dqkv (B, T, 3D) from dout (B, T, D); scratch: attention_scratch floats */
    void (*attention_backward)(const dit_backend *be, float *dqkv, const float *dout,
                               const float *qkv, const float *probs, int B, int T, int H, int hd,
                               float *scratch);
    /* layernorm_modulate keeping mean, rstd (B*T) */
    void (*layernorm_modulate_train)(const dit_backend *be, float *out, const float *x,
                                     const float *shift, const float *scale, int stride, int B,
                                     int T, int D, float eps, float *mean, float *rstd);
    /* dx (B,T,D) += ...; dshift, dscale (B vectors, stride apart) += */
    void (*layernorm_modulate_backward)(const dit_backend *be, float *dx, float *dshift,
                                        float *dscale, const float *dout, const float *x,
                                        const float *mean, const float *rstd, const float *scale,
                                        int stride, int B, int T, int D);
    /* dx (M, K) = dy . w (NULL: skip); dw (N, K) += dy^T . x; db (N) += sum dy.
     * With pre (M, K), where x = act(pre), dx is the gradient at pre instead:
     * (dy . w) * act'(pre), the activation's backward fused in */
    void (*linear_backward)(const dit_backend *be, float *dx, float *dw, float *db,
                            const float *dy, const float *x, const float *w, int M, int K, int N,
                            const float *pre, dit_act act);
    /* dx (n) = dy * act'(pre); dx may alias dy */
    void (*act_backward)(const dit_backend *be, float *dx, const float *pre, const float *dy,
                         size_t n, dit_act act);
    /* x = x_in + gate * y: dy = gate * dx; dgate (B vectors, stride) += sum_t dx * y;
     * gate NULL means 1 (dy = dx, no dgate) */
    void (*gated_add_backward)(const dit_backend *be, float *dy, float *dgate, const float *dx,
                               const float *y, const float *gate, int stride, int B, int T,
                               int D);
    /* dtokens (B, T, p*p*C) from dout (B, C, H, W) */
    void (*unpatchify_backward)(const dit_backend *be, float *dtokens, const float *dout, int B,
                                int C, int H, int W, int p);
    /* dq (B, Tq, D) and dkv (B, Tk, 2D) written, from dout (B, Tq, D) */
    void (*cross_attention_backward)(const dit_backend *be, float *dq, float *dkv,
                                     const float *dout, const float *q, const float *kv,
                                     const float *probs, int B, int Tq, int Tk, int H, int hd);
    /* dtable[label[b]] += dc[b] */
    void (*add_embedding_backward)(const dit_backend *be, float *dtable, const float *dc,
                                   const int32_t *label, int B, int D);
    /* AdamW (decoupled weight decay) on n parameters; step counts from 1 */
    void (*adamw)(const dit_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step);
    /* ema = decay * ema + (1 - decay) * p */
    void (*ema_update)(const dit_backend *be, float *ema, const float *p, size_t n, float decay);
    /* out[0] = sum x^2 over n (accumulated in double): the gradient norm for clipping */
    void (*sum_squares)(const dit_backend *be, float *out, const float *x, size_t n);
};

const dit_backend *dit_backend_cpu(void);

/* ---- context ------------------------------------------------------------- */

/* Device state of a context (core/device.c): the device backend and the
 * device memory the DiT forward works in. All NULL/0 on the CPU. */
typedef struct {
    dit_backend *be;      /* owned; NULL until a device is selected */
    float *arena;         /* device activations (+ x, t, y, pos, out) */
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
    uint64_t vae_id; /* which VAE: ids are unique per load */
    int precision;   /* index into device.c's names: dit_cuda_precision's order */
} dit_device;

struct dit_ctx {
    char error[DIT_ERROR_LEN];
    int n_threads;     /* resolved, >= 1 */
    dit_backend cpu;   /* the CPU op table with this context's thread count */
    const dit_backend *be; /* the active backend: &cpu or dev.be */
    dit_device dev;
    float *arena;      /* activations, grown only before a forward starts */
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
    float *xq_w;   /* (D, D) */
    float *xq_b;   /* (D) */
    float *xkv_w;  /* (2D, D) rows k | v */
    float *xkv_b;  /* (2D) */
    float *xproj_w; /* (D, D) */
    float *xproj_b; /* (D) */
} dit_block_weights;

struct dit_model {
    dit_config cfg;
    char *scheduler_json; /* from scheduler/scheduler_config.json or metadata, or NULL */
    float *params;     /* every parameter, one allocation */
    size_t param_floats; /* size of that block, padding included */
    size_t n_params;
    char source_dtype[8];
    uint64_t version;  /* new on every change of params: see dit_model_touch */

    float *x_embed_w;  /* (D, C, p, p) x_embedder.proj */
    float *x_embed_b;  /* (D) */
    float *pos_embed;  /* (T0, D) stored table for the native grid, or NULL */
    dit_embedder_weights emb; /* official: shared by all blocks and the final layer */
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
static inline float *dit_mod_at(float *mod, int offset)
{
    return offset < 0 ? NULL : mod + offset;
}
static inline bool dit_final_adaln(const dit_config *c)
{
    return c->conditioning == DIT_COND_ADALN_ZERO || c->conditioning == DIT_COND_ADALN;
}
/* conditioning tokens (t_emb, and y_emb when class-conditional) */
static inline int dit_cond_tokens(const dit_config *c)
{
    return c->num_classes > 0 ? 2 : 1;
}

/* A copy of m's description whose weight pointers point into `base` (a
 * block laid out like m->params, e.g. on the device) at the same offsets;
 * it owns neither the block nor m's scheduler text. NULL on OOM. */
dit_model *dit_model_clone_at(const dit_model *m, float *base);
void dit_model_clone_free(dit_model *clone);

/* Whoever writes a model's params (loader, init, optimizer step, resume)
 * calls this, so device copies of the weights are uploaded again. */
void dit_model_touch(dit_model *m);

/* f16/bf16 -> f32 */
float dit_f16_to_f32(uint16_t h);
float dit_bf16_to_f32(uint16_t h);
uint16_t dit_f32_to_f16(float f);
uint16_t dit_f32_to_bf16(float f);

#endif
