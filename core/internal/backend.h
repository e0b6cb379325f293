/* The backend contract: the op table every compute backend fills, and the
 * one way to add an op.
 *
 * Model code (DiT forward, VAE, trainer, text encoder) calls only these ops,
 * through ctx->be. Pointers are host memory for the CPU backend and device
 * memory for a device backend. The CPU table (core/backend-cpu.c) is the
 * plain reference every other backend is tested against; the CUDA table
 * lives in kernels/backend-cuda.c.
 *
 * Every op is optional for a backend: NULL means "not provided". Each entry
 * point names the ops it calls in a list (DIT_FORWARD_OPS in model.c,
 * DIT_VAE_OPS in vae.c, DIT_TRAIN_OPS in train.c) and checks them once,
 * before any work, with DIT_BACKEND_REQUIRE: a missing op is
 * DIT_ERR_UNSUPPORTED naming the op and the backend, never a crash midway.
 *
 * "stride" arguments are the distance in floats between consecutive batch
 * rows of a per-sample vector (adaLN chunks live inside one (B, 6D) row).
 *
 * ---- To add an op `foo`, in this order ------------------------------------
 *  1. Here: a member `foo` in its section of struct dit_backend, with a shape
 *     comment for every tensor argument (`x (B, T, D)`), what may alias, and
 *     whether gradients accumulate (+=) or are written (=).
 *  2. core/backend-cpu.c: `cpu_foo`, plain C (OpenMP pragmas at most), and
 *     `.foo = cpu_foo` in the table at the end of the file.
 *  3. kernels/<family>.cu: the kernel(s) and an `extern "C" cudaError_t
 *     dit_cu_foo(cudaStream_t stream, ...)` launcher that checks its size
 *     assumptions and launches through DIT_LAUNCH. A new .cu file also goes
 *     into kernels/meson.build (kernels_cu_sources) and into the unity list
 *     of tests/gpu/emu/kernels-emu.cc (the CPU emulator compiles it there).
 *  4. kernels/kernels.h: the launcher's prototype.
 *  5. kernels/backend-cuda.c: `cuda_foo` calling CHECK(dit_cu_foo(
 *     stream_of(be), ...)), and `.foo = cuda_foo` in its table.
 *  6. tests/gpu/test-parity.c: name it in OPS (section 1; the build fails
 *     until you do), write `case_foo` (section 3: buffers, the CPU op on
 *     host pointers, the CUDA op on device pointers), and one or more rows
 *     in section 4 with odd sizes. `meson test -C build parity-emu` runs them
 *     here through the emulator; the gpu suite on a real GPU.
 *  7. tests/golden/gen.py: the reference from PyTorch (or the reference
 *     library) written into ops.io.safetensors, with a perturbation that
 *     proves the row sensitive; tests/golden/test-ops.c: a row comparing the
 *     CPU op to it. Regenerate with gen.py (tests/golden/README.md), never
 *     by hand.
 *  8. A backward op also gets a finite-difference row in
 *     tests/unit/test-op-grad.c.
 *  9. The entry point that calls it: add `X(foo)` to its ops list (see
 *     above), so a backend without it is refused up front.
 * -------------------------------------------------------------------------- */
#ifndef DIT_BACKEND_H
#define DIT_BACKEND_H

#include "../dit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
    /* CPU tables: the library of fp32 matrix products (a dit_gemm_lib) and
     * whether they take bf16 inputs (internal/cpu-gemm.h); unused elsewhere */
    int gemm_lib;
    bool gemm_bf16;

    /* out (M, N) = act(in (M, K) . w (N, K)^T + bias (N)); bias may be NULL */
    void (*linear)(const dit_backend *be, float *out, const float *in, const float *w,
                   const float *bias, int M, int K, int N, dit_act act);
    /* out (B, T, H*hd) = softmax(Q K^T / sqrt(hd)) V per head,
     * qkv (B, T, 3, H, hd); scratch: attention_scratch floats */
    void (*attention)(const dit_backend *be, float *out, const float *qkv, int B, int T, int H,
                      int hd, float *scratch);
    size_t (*attention_scratch)(const dit_backend *be, int B, int T, int H);
    /* out (B, T, D) = LN(x) * (1 + scale[b]) + shift[b]; LN without affine.
     * shift, scale: per-sample vectors of D, `stride` floats apart; NULL = plain LN */
    void (*layernorm_modulate)(const dit_backend *be, float *out, const float *x,
                               const float *shift, const float *scale, int stride, int B, int T,
                               int D, float eps);
    /* out (n) = GELU(x), tanh approximation; out may equal x */
    void (*gelu_tanh)(const dit_backend *be, float *out, const float *x, size_t n);
    /* out (n) = x * sigmoid(x); out may equal x */
    void (*silu)(const dit_backend *be, float *out, const float *x, size_t n);
    /* out (B, T, C*p*p) from x (B, C, H, W); token order row-major over the
     * (H/p, W/p) grid, vector order (c, ky, kx) = conv weight (D, C, p, p) */
    void (*patchify)(const dit_backend *be, float *out, const float *x, int B, int C, int H, int W,
                     int p);
    /* out (B, C, H, W) from tokens (B, T, p*p*C), vector order (ky, kx, c) */
    void (*unpatchify)(const dit_backend *be, float *out, const float *tokens, int B, int C, int H,
                       int W, int p);
    /* x (B, T, D) += gate[b] (D) * y (B, T, D); gate NULL means 1 */
    void (*gated_add)(const dit_backend *be, float *x, const float *y, const float *gate,
                      int stride, int B, int T, int D);
    /* x (B, T, D) += pos (T, D) */
    void (*add_rows)(const dit_backend *be, float *x, const float *pos, int B, int T, int D);
    /* out (B, D) = a (B, D) + table[label[b]] (rows of D); a NULL = zeros */
    void (*add_embedding)(const dit_backend *be, float *out, const float *a, const float *table,
                          const int32_t *label, int B, int D);
    /* out (B, out_T, D) rows [out_at, out_at + n) = in (B, in_T, D) rows
     * [in_at, in_at + n) for every b: joins and splits token sequences */
    void (*copy_tokens)(const dit_backend *be, float *out, int out_T, int out_at, const float *in,
                        int in_T, int in_at, int n, int B, int D);
    /* out (B, Tq, H*hd) = softmax(q k^T / sqrt(hd)) v per head, q (B, Tq, H, hd),
     * kv (B, Tk, 2, H, hd); keys where key_mask (B, Tk) is 0 take no weight
     * (NULL: every key; a row with none left is 0: PixArt's padded captions);
     * probs (B, H, Tq, Tk) is written (backward reads it) */
    void (*cross_attention)(const dit_backend *be, float *out, const float *q, const float *kv,
                            const int32_t *key_mask, int B, int Tq, int Tk, int H, int hd,
                            float *probs);
    /* out (B, F): [cos(t f_i), sin(t f_i)], f_i = exp(-ln(1e4) i / (F/2 - shift)) */
    void (*timestep_embedding)(const dit_backend *be, float *out, const float *t, int B, int F,
                               int shift);
    /* out (gh*gw, D): first D/2 channels encode the column, last D/2 the row;
     * position = index * base / grid / interp (diffusers' interpolation) */
    void (*pos_embed_2d)(const dit_backend *be, float *out, int gh, int gw, int D, float base_h,
                         float base_w, float interp);

    /* ---- image ops (VAE) ---- */
    /* out = act(conv(in) + bias); bias may be NULL; scratch: conv2d_scratch floats */
    void (*conv2d)(const dit_backend *be, float *out, const float *in, const float *w,
                   const float *bias, const dit_conv_desc *d, dit_act act, float *scratch);
    size_t (*conv2d_scratch)(const dit_backend *be, const dit_conv_desc *d);
    /* out (B, C, HW) = act(GroupNorm(in) * gamma (C) + beta (C)); out may equal in */
    void (*group_norm)(const dit_backend *be, float *out, const float *in, const float *gamma,
                       const float *beta, int B, int C, int HW, int groups, float eps, dit_act act);
    /* out (C, N) = V (C, N) . softmax(Q^T K / sqrt(C))^T for each of B
     * samples; q, k, v channel-first as in NCHW; scratch: spatial_attention_scratch */
    void (*spatial_attention)(const dit_backend *be, float *out, const float *q, const float *k,
                              const float *v, int B, int C, int N, float *scratch);
    size_t (*spatial_attention_scratch)(const dit_backend *be, int N);
    /* x (n) = act(x + y) */
    void (*add_act)(const dit_backend *be, float *x, const float *y, size_t n, dit_act act);
    /* out (n) = a * in + b; out may equal in */
    void (*affine)(const dit_backend *be, float *out, const float *in, size_t n, float a, float b);
    /* out (n) = m * tanh(in / m): TAESD's soft latent clamp */
    void (*tanh_clamp)(const dit_backend *be, float *out, const float *in, size_t n, float m);

    /* ---- text encoder ops ---- */
    /* out (R, D) = x * weight (D) / sqrt(mean_d x^2 + eps): T5's RMSNorm (no
     * mean, no bias); the mean of squares is accumulated in double; weight
     * NULL means 1; out may equal x */
    void (*rms_norm)(const dit_backend *be, float *out, const float *x, const float *weight, int R,
                     int D, float eps);
    /* out (B, T, H*hd) = softmax(scale Q K^T + bias[h] (T, T)) V per head, qkv
     * (B, T, 3, H, hd); bias (H, T, T) may be NULL; keys where key_mask (B, T)
     * is 0 take no weight (NULL: every key; a row with none left is 0).
     * probs (B, H, T, T) is scratch. T5's self-attention: scale 1, a learned
     * relative-position bias, the padding mask. */
    void (*attention_bias)(const dit_backend *be, float *out, const float *qkv, const float *bias,
                           const int32_t *key_mask, int B, int T, int H, int hd, float scale,
                           float *probs);
    /* out (n) = a * b; out may equal a or b (T5's gated GELU) */
    void (*mul)(const dit_backend *be, float *out, const float *a, const float *b, size_t n);

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
    void (*linear_backward)(const dit_backend *be, float *dx, float *dw, float *db, const float *dy,
                            const float *x, const float *w, int M, int K, int N, const float *pre,
                            dit_act act);
    /* dx (n) = dy * act'(pre); dx may alias dy */
    void (*act_backward)(const dit_backend *be, float *dx, const float *pre, const float *dy,
                         size_t n, dit_act act);
    /* x = x_in + gate * y: dy = gate * dx; dgate (B vectors, stride) += sum_t dx * y;
     * gate NULL means 1 (dy = dx, no dgate) */
    void (*gated_add_backward)(const dit_backend *be, float *dy, float *dgate, const float *dx,
                               const float *y, const float *gate, int stride, int B, int T, int D);
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

/* ---- required ops ---------------------------------------------------------
 * One present/absent flag per op an entry point calls. */
typedef struct {
    const char *name;
    bool present;
} dit_op_presence;

#define DIT_OP_PRESENCE_(op) {#op, be_->op != NULL},
/* Refuses with DIT_ERR_UNSUPPORTED ("the CUDA backend has no op 'foo',
 * which WHAT needs") when backend `be` lacks one of the ops of OPS_LIST, an
 * X-macro list: #define DIT_FORWARD_OPS(X) X(linear) X(attention) ... */
#define DIT_BACKEND_REQUIRE(ctx, be, what, OPS_LIST)                                               \
    __extension__({                                                                                \
        const dit_backend *be_ = (be);                                                             \
        const dit_op_presence ops_[] = {OPS_LIST(DIT_OP_PRESENCE_)};                               \
        dit_backend_require((ctx), be_, (what), ops_, sizeof ops_ / sizeof ops_[0]);               \
    })
dit_status dit_backend_require(dit_ctx *ctx, const dit_backend *be, const char *what,
                               const dit_op_presence *ops, size_t n);

#endif
