/* Loading named weights into one parameter block. A model describes its
 * layout once, in a function that is run twice: first to count floats and
 * expected tensors (base == NULL), then to point its fields into the block and
 * list the (name, shape, destination) of every tensor it expects. The loader
 * then checks the file against that list: missing, wrong-shaped, non-finite
 * and unexpected tensors are errors that name the file and the tensor. */
#ifndef DIT_WEIGHTS_H
#define DIT_WEIGHTS_H

#include "safetensors.h"

enum {
    WL_OPTIONAL = 1,   /* may be absent from the file */
    WL_BUFFER = 2,     /* a fixed buffer (pos_embed), not counted as a parameter */
    WL_ACCEPT_1X1 = 4, /* a (C, C) weight may come as a (C, C, 1, 1) 1x1 conv */
};

typedef struct {
    char name[192];
    int ndim;
    int64_t shape[4];
    float *dst;
    int flags;
} weight_expect;

/* A weight the CPU's matrix products read, as op(X) rows x cols stored ld
 * apart (internal/cpu-gemm.h): what a model loaded for bf16 on the CPU
 * holds in bf16 only, once every tensor inside it is read. */
typedef struct {
    const float *w;
    bool trans;
    int rows, cols, ld;
    size_t loaded; /* floats read into it so far */
} weight_matrix;

typedef struct {
    float *base;         /* NULL while counting */
    size_t used;         /* floats handed out so far */
    weight_expect *list; /* NULL while counting */
    size_t n;
    weight_matrix *mats; /* NULL unless wl_load fills it */
    size_t n_mats;
} weight_layout;

/* n floats of the block, 64-byte aligned; NULL while counting */
float *wl_take(weight_layout *L, size_t n);
void wl_want(weight_layout *L, float *dst, int flags, int ndim, const int64_t *shape,
             const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* <prefix><name>.weight (rows, cols) and .bias (rows); a linear's weight,
 * so also a wl_linear_matrix */
void wl_want_linear(weight_layout *L, float *w, float *b, int64_t rows, int64_t cols,
                    const char *prefix, const char *name);

/* w (rows, cols) read as a linear's weight: out = in . w^T */
void wl_linear_matrix(weight_layout *L, const float *w, int64_t rows, int64_t cols);
/* w (cout, cin, k, k) read as a convolution's (cout, cin k k) operand */
void wl_conv_matrix(weight_layout *L, const float *w, int64_t cout, int64_t cin_k_k);

typedef void (*wl_layout_fn)(weight_layout *L, void *model);

typedef struct {
    float *params;   /* the block; caller frees with dit_free_aligned */
    size_t floats;   /* size of the block, padding included */
    size_t n_params; /* elements loaded, buffers excluded */
    char dtype[8];   /* "F32", "F16", "BF16", "F64" or "mixed" */
    size_t held;     /* bytes of fp32 given back: matrices held in bf16 */
} wl_result;

/* Runs layout twice, allocates the block, loads and checks every tensor.
 * On a context that runs bf16 products on the CPU, each matrix is held in
 * bf16 only as soon as it is read (dit_cpu_gemm_hold_bf16), so the fp32
 * block is never resident whole. The mapped file's pages are given back
 * tensor by tensor (st_release).
 * `what` names the model in messages ("official DiT with 28 blocks");
 * `ignorable` (may be NULL) accepts file tensors we know and skip; it gets
 * the model as `user`. */
dit_status wl_load(dit_ctx *ctx, const st_file *f, wl_layout_fn layout, void *model,
                   const char *what, bool (*ignorable)(const char *name, const void *user),
                   wl_result *out);
/* The same over the shards of one model: each tensor from the file that
 * holds it, every tensor of every file expected or ignorable. */
dit_status wl_load_files(dit_ctx *ctx, const st_file *const *files, int nf, wl_layout_fn layout,
                         void *model, const char *what,
                         bool (*ignorable)(const char *name, const void *user), wl_result *out);

/* The weight files of a model folder: <stem>.safetensors, or the shards
 * <stem>.safetensors.index.json lists (each a plain file name inside the
 * folder), each opened. stem: "model" (transformers), "diffusion_pytorch_model"
 * (diffusers). */
typedef struct {
    st_file **f;
    int n;
} st_files;
dit_status st_open_model_files(dit_ctx *ctx, const char *dir, const char *stem, st_files *out);
/* A component's folder (g_free): path/sub for a pipeline folder that has
 * one ("transformer", "text_encoder"), else path itself */
char *dit_component_dir(const char *path, const char *sub);
void st_files_close(st_files *files);

/* Where a model's files are: a .safetensors file (with config.json beside it
 * when it is diffusion_pytorch_model.safetensors), a diffusers model folder,
 * or a pipeline folder whose `subfolder` (transformer, vae) holds the model. */
typedef struct {
    char *weights; /* .safetensors */
    char *config;  /* config.json or NULL */
} model_files;

dit_status find_model_files(dit_ctx *ctx, const char *path, const char *subfolder,
                            model_files *out);
void model_files_clear(model_files *f);
/* The start of dit_model_load / dit_vae_load: checks the arguments (`fn`
 * names the call), clears *out and the error, finds the files and opens the
 * weights. On error nothing is left to free. */
dit_status open_model_files(dit_ctx *ctx, const char *fn, const char *path, const char *subfolder,
                            void *out, model_files *files, st_file **f);

/* The tensors (names, shapes; dst unset) an AutoencoderKL described by info
 * has in info->naming, for tools that write models. Free *list. */
dit_status vae_expected_tensors(dit_ctx *ctx, const dit_vae_info *info, weight_expect **list,
                                size_t *n);

#endif
