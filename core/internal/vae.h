/* The VAE as it lives in memory: weights placed in one parameter block by
 * the layout walk. Shared by loading (vae-load.c: config, naming, tensor
 * names, weights) and execution (vae.c: encode, decode, tiling). */
#ifndef DIT_VAE_H
#define DIT_VAE_H

#include "weights.h"

#define MAX_LEVELS 8
#define MAX_RES 8
#define MAX_TINY_LAYERS 64
#define VAE_GN_EPS 1e-6f

typedef struct {
    float *w; /* (cout, cin, k, k) */
    float *b; /* (cout) or NULL */
    int cin, cout, k;
} conv_w;

typedef struct {
    float *w, *b; /* (c) GroupNorm affine */
    int c;
} norm_w;

typedef struct {
    norm_w norm1, norm2;
    conv_w conv1, conv2;
    conv_w shortcut; /* w NULL when cin == cout */
} resnet_w;

typedef struct {
    norm_w norm;
    conv_w q, k, v, out; /* (c, c, 1, 1) linears over channels */
} attn_w;

typedef struct {
    resnet_w res[2];
    attn_w attn;
    bool has_attn;
} mid_w;

typedef struct {
    conv_w conv_in;
    resnet_w res[MAX_LEVELS][MAX_RES];
    conv_w resample[MAX_LEVELS]; /* down (encoder) / up (decoder) conv */
    mid_w mid;
    norm_w norm_out;
    conv_w conv_out;
} kl_coder;

typedef enum { TL_CONV, TL_BLOCK, TL_UPSAMPLE, TL_RELU } tiny_kind;

typedef struct {
    tiny_kind kind;
    int index;   /* position in the upstream Sequential */
    conv_w conv; /* TL_CONV; stride 2 when it has no bias in the encoder */
    int stride;
    bool bias;         /* TL_CONV has a bias */
    conv_w c1, c2, c3; /* TL_BLOCK */
    conv_w skip;       /* TL_BLOCK, w NULL for identity */
    bool has_skip;
} tiny_layer;

typedef struct {
    tiny_layer layers[MAX_TINY_LAYERS];
    int n;
} tiny_coder;

struct dit_vae {
    dit_vae_info info;
    char path[512];
    char prefix[32]; /* "first_stage_model." in full LDM checkpoints */
    float *params;
    size_t param_floats; /* size of that block, padding included */
    size_t n_params;
    bool weights_held; /* bf16 copies only: loaded for bf16 on the CPU */
    kl_coder enc, dec;
    conv_w quant, post_quant;
    tiny_coder tenc, tdec;
    int tile_sample; /* 0: no tiling */
    float tile_overlap;
    uint64_t id; /* unique per load: which VAE a device copy belongs to */
};

/* The layout walk of v's kind (KL or tiny): counts, places or names its
 * weights; execution re-runs it to point a copy at device memory. */
wl_layout_fn vae_layout(const dit_vae *v);

#endif
