/* Launchers of the CUDA kernels in the kernels/ .cu files, for backend-cuda.c.
 *
 * Each launcher queues its kernel(s) on `stream`, checks its size
 * assumptions (an impossible shape returns cudaErrorInvalidValue before
 * anything is launched), checks the launch with cudaGetLastError straight
 * after it, and returns that status. Empty shapes launch nothing and
 * return cudaSuccess. Layouts are those of the dit_backend op of the same
 * name (core/internal/backend.h); all pointers are device memory. `act` is a
 * dit_act value. Plain C prototypes: the .cu files define them extern "C". */
#ifndef DIT_KERNELS_H
#define DIT_KERNELS_H

#include <cuda_runtime_api.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- linear.cu: matmul epilogue, batched attention ---- */
/* x (rows, n) = act(x + bias (n)); bias may be NULL */
/* cudaSuccess when the current device can load this build's kernels */
cudaError_t dit_cu_check_image(void);
cudaError_t dit_cu_bias_act(cudaStream_t stream, float *x, const float *bias, size_t rows, int n,
                            int act);
/* Largest head dim the fused attention takes. */
#define DIT_CU_FLASH_MAX_HD 128
/* out (B, T, H*hd) = softmax(Q K^T / sqrt(hd)) V, qkv (B, T, 3, H, hd):
 * one fused kernel, online softmax; hd <= DIT_CU_FLASH_MAX_HD */
cudaError_t dit_cu_attention_flash(cudaStream_t stream, float *out, const float *qkv, int B, int T,
                                   int H, int hd);
/* each of rows rows of x (rows, cols) replaced by its softmax */
cudaError_t dit_cu_softmax_rows(cudaStream_t stream, float *x, size_t rows, int cols);
/* rows of x (H, T, T) for one sample: + bias (H, T, T; may be NULL), keys
 * where key_mask (T; may be NULL) is 0 out, softmax */
cudaError_t dit_cu_masked_softmax_rows(cudaStream_t stream, float *x, const float *bias,
                                       const int *key_mask, size_t rows, int cols);

/* ---- norm.cu: LayerNorm + adaLN modulate ---- */
/* layernorm_modulate; with mean and rstd (B*T) also keeps the statistics
 * (layernorm_modulate_train); shift and scale both or neither */
cudaError_t dit_cu_layernorm_modulate(cudaStream_t stream, float *out, const float *x,
                                      const float *shift, const float *scale, int stride, int B,
                                      int T, int D, float eps, float *mean, float *rstd);
/* rms_norm: out (R, D) = x * weight / sqrt(mean x^2 + eps); weight may be NULL */
cudaError_t dit_cu_rms_norm(cudaStream_t stream, float *out, const float *x, const float *weight,
                            int R, int D, float eps);

/* ---- activation.cu ---- */
/* out (n) = act(in (n)); out may equal in */
cudaError_t dit_cu_act(cudaStream_t stream, float *out, const float *in, size_t n, int act);

/* ---- image.cu: conv2d pieces, GroupNorm (+ activation) ---- */
/* col (Cin*k*k, rows*Wo): im2col of output rows [oy0, oy0 + rows) of one
 * sample in (Cin, H, W), read nearest-upsampled to (2H, 2W) when up2 */
cudaError_t dit_cu_im2col(cudaStream_t stream, float *col, const float *in, int Cin, int H, int W,
                          int k, int stride, int pad_top, int pad_left, int Wo, int up2, int oy0,
                          int rows);
/* x (B, C, HW) = act(x + bias[c]); bias may be NULL */
cudaError_t dit_cu_bias_act_channels(cudaStream_t stream, float *x, const float *bias, int B, int C,
                                     size_t HW, int act);
/* scratch (scratch_doubles; may be NULL): the per-slice statistics that let
 * a group spread over many blocks (see image.cu) */
cudaError_t dit_cu_group_norm(cudaStream_t stream, float *out, const float *in, const float *gamma,
                              const float *beta, int B, int C, int HW, int groups, float eps,
                              int act, double *scratch, size_t scratch_doubles);

/* ---- patch.cu ---- */
cudaError_t dit_cu_patchify(cudaStream_t stream, float *out, const float *x, int B, int C, int H,
                            int W, int p);
cudaError_t dit_cu_unpatchify(cudaStream_t stream, float *out, const float *tokens, int B, int C,
                              int H, int W, int p);
cudaError_t dit_cu_unpatchify_backward(cudaStream_t stream, float *dtokens, const float *dout,
                                       int B, int C, int H, int W, int p);

/* ---- embed.cu ---- */
cudaError_t dit_cu_timestep_embedding(cudaStream_t stream, float *out, const float *t, int B, int F,
                                      int shift);
cudaError_t dit_cu_pos_embed_2d(cudaStream_t stream, float *out, int gh, int gw, int D,
                                float base_h, float base_w, float interp);
cudaError_t dit_cu_add_embedding(cudaStream_t stream, float *out, const float *a,
                                 const float *table, const int32_t *label, int B, int D);

/* ---- elementwise.cu: element-wise ops and row adds ---- */
cudaError_t dit_cu_gated_add(cudaStream_t stream, float *x, const float *y, const float *gate,
                             int stride, int B, int T, int D);
cudaError_t dit_cu_add_rows(cudaStream_t stream, float *x, const float *pos, int B, int T, int D);
cudaError_t dit_cu_add_act(cudaStream_t stream, float *x, const float *y, size_t n, int act);
cudaError_t dit_cu_mul(cudaStream_t stream, float *out, const float *a, const float *b, size_t n);
cudaError_t dit_cu_affine(cudaStream_t stream, float *out, const float *in, size_t n, float a,
                          float b);
cudaError_t dit_cu_tanh_clamp(cudaStream_t stream, float *out, const float *in, size_t n, float m);

/* ---- backward.cu: training backward ops ---- */
cudaError_t dit_cu_layernorm_modulate_backward(cudaStream_t stream, float *dx, float *dshift,
                                               float *dscale, const float *dout, const float *x,
                                               const float *mean, const float *rstd,
                                               const float *scale, int stride, int B, int T, int D);
/* db (N) += column sums of dy (M, N) */
/* scratch (scratch_doubles; may be NULL): band sums that spread tall dy
 * over many blocks */
cudaError_t dit_cu_col_sum_add(cudaStream_t stream, float *db, const float *dy, int M, int N,
                               double *scratch, size_t scratch_doubles);
cudaError_t dit_cu_act_backward(cudaStream_t stream, float *dx, const float *pre, const float *dy,
                                size_t n, int act);
cudaError_t dit_cu_gated_add_backward(cudaStream_t stream, float *dy, float *dgate, const float *dx,
                                      const float *y, const float *gate, int stride, int B, int T,
                                      int D);
cudaError_t dit_cu_add_embedding_backward(cudaStream_t stream, float *dtable, const float *dc,
                                          const int32_t *label, int B, int D);
/* rows of dS (rows, T) hold dP on entry, dS = P * (dP - rowsum(dP * P)) * scale on exit */
cudaError_t dit_cu_softmax_backward(cudaStream_t stream, float *dS, const float *P, size_t rows,
                                    int T, float scale);

/* ---- optim.cu ---- */
/* c1, c2: the bias corrections 1 - beta^step, computed by the caller */
cudaError_t dit_cu_adamw(cudaStream_t stream, float *p, const float *g, float *m, float *v,
                         size_t n, float lr, float beta1, float beta2, float eps, float wd,
                         float c1, float c2);
/* out[0] = sum x^2 over n, in double, deterministic */
cudaError_t dit_cu_sum_squares(cudaStream_t stream, float *out, const float *x, size_t n,
                               double *scratch, size_t scratch_doubles);
cudaError_t dit_cu_ema_update(cudaStream_t stream, float *ema, const float *p, size_t n,
                              float decay);

/* ---- tokens.cu: conditioning-token ops ---- */
cudaError_t dit_cu_copy_tokens(cudaStream_t stream, float *out, int out_T, int out_at,
                               const float *in, int in_T, int in_at, int n, int B, int D);
cudaError_t dit_cu_cross_attention(cudaStream_t stream, float *out, const float *q, const float *kv,
                                   const int32_t *key_mask, int B, int Tq, int Tk, int H, int hd,
                                   float *probs);
cudaError_t dit_cu_cross_attention_backward(cudaStream_t stream, float *dq, float *dkv,
                                            const float *dout, const float *q, const float *kv,
                                            const float *probs, int B, int Tq, int Tk, int H,
                                            int hd);

#ifdef __cplusplus
}
#endif

#endif
