/* libdit: a Diffusion Transformer (Peebles & Xie 2023) in plain C.
 *
 * Public API. Every handle is opaque; every call that can fail returns a
 * dit_status and leaves a human-readable message in its context
 * (dit_last_error). The library never exits, aborts or prints on bad input.
 *
 * Ownership: each handle is freed by its own call, and NULL is accepted
 * there: dit_ctx_new / dit_ctx_free, dit_model_load / dit_model_free,
 * dit_vae_load / dit_vae_free, dit_labels_read and dit_labels_for_model /
 * dit_labels_free. Strings the library allocates for the caller
 * (dit_default_model_path, dit_labels_summary) go to dit_free; the tensor of
 * dit_load_tensor to free(). Everything else the library returns (configs,
 * names, dit_last_error) belongs to its owner and lives as long as it does.
 * A model or VAE is not tied to a context: it may be used by several
 * contexts (one thread each) and freed before or after them. A context that
 * ran it on the GPU keeps a device copy keyed by a version that no other
 * model ever gets, frees that copy itself, and never reads the host model
 * again until it is passed in anew.
 * Getters are named dit_<object>_<property> (dit_model_config,
 * dit_vae_config, dit_ctx_threads, dit_ctx_device).
 *
 * Tensors cross this API as plain float arrays in NCHW order:
 *   latents   (B, C, H, W)
 *   timesteps (B)          float, the diffusion step (0 .. 999 for DiT)
 *   labels    (B)          class id; num_classes is the null class (CFG)
 */
#ifndef DIT_H
#define DIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DIT_COMPILATION) && defined(__GNUC__)
#define DIT_API __attribute__((visibility("default")))
#else
#define DIT_API
#endif

#define DIT_VERSION "0.1.0"

typedef enum {
    DIT_OK = 0,
    DIT_ERR_INVALID_ARG, /* caller passed something the API does not accept */
    DIT_ERR_IO,          /* a file could not be opened, read or mapped */
    DIT_ERR_FORMAT,      /* a file is malformed (safetensors, JSON, ...) */
    DIT_ERR_MODEL,       /* tensors or config do not describe a model we run */
    DIT_ERR_NOMEM,       /* an allocation failed or a size overflowed */
    DIT_ERR_UNSUPPORTED, /* valid, but not something this build can do */
    DIT_ERR_BACKEND,     /* the compute backend failed */
    DIT_CANCELLED,       /* the caller's cancel flag stopped the work; outputs untouched */
} dit_status;

typedef struct dit_ctx dit_ctx;
typedef struct dit_model dit_model;
typedef struct dit_vae dit_vae;

/* Which checkpoint family a model's tensor names came from. The families
 * also differ numerically (timestep embedding divisor, norm2 eps). */
typedef enum {
    DIT_NAMING_OFFICIAL = 0,  /* facebookresearch/DiT state dict */
    DIT_NAMING_DIFFUSERS = 1, /* diffusers DiTTransformer2DModel */
} dit_naming;

/* How a block sees the timestep and class (the variants the DiT paper
 * compares, section 3.2). Every variant keeps the patch embedding, the
 * t/y embedders and the MLPs; they differ in the blocks and the final layer:
 *   ADALN_ZERO  shift, scale and a zero-initialised gate per sub-layer,
 *               regressed from c = t_emb + y_emb (official DiT)
 *   ADALN       shift and scale only (no gates)
 *   IN_CONTEXT  t_emb and y_emb are two more tokens of the sequence (dropped
 *               after the last block); plain LayerNorms
 *   CROSS_ATTN  each block cross-attends to the tokens (t_emb, y_emb)
 *               between self-attention and MLP; plain LayerNorms
 * The token variants end in a plain LayerNorm + linear (no adaLN). A model
 * with num_classes == 0 is unconditional (time only): no label table, the
 * only label is 0, and the token variants carry t_emb alone. */
typedef enum {
    DIT_COND_ADALN_ZERO = 0,
    DIT_COND_ADALN,
    DIT_COND_IN_CONTEXT,
    DIT_COND_CROSS_ATTN,
    DIT_COND_COUNT
} dit_conditioning;

typedef struct {
    int in_channels;           /* latent channels, 4 for the SD VAE */
    int out_channels;          /* 2 * in_channels when learn_sigma */
    int learn_sigma;           /* output holds (eps, variance) halves */
    int sample_size;           /* native latent side (32 for 256 px) */
    int patch_size;            /* 2, 4 or 8 */
    int hidden_size;           /* D */
    int depth;                 /* number of transformer blocks */
    int num_heads;             /* D / num_heads = head dim (72 for XL) */
    int mlp_hidden;            /* MLP inner width, 4 * D for DiT */
    int num_classes;           /* label table has num_classes + 1 rows; 0 = unconditional */
    int freq_dim;              /* sinusoidal timestep embedding width, 256 */
    int freq_shift;            /* divisor is half - freq_shift: 0 official, 1 diffusers */
    float norm1_eps;           /* LayerNorm eps before attention */
    float norm2_eps;           /* LayerNorm eps before the MLP */
    float norm_final_eps;      /* LayerNorm eps of the final layer */
    float interpolation_scale; /* diffusers pos-embed scale, 1 for DiT */
    int per_block_embedder;    /* diffusers: each block owns its t/y embedder */
    dit_naming naming;
    dit_conditioning conditioning; /* DIT_COND_ADALN_ZERO for every released DiT */
} dit_config;

/* ---- context ------------------------------------------------------------ */

/* A context owns the compute backend, the activation arena and the last
 * error message. One context per thread of use. NULL only on OOM. */
DIT_API dit_ctx *dit_ctx_new(void);
DIT_API void dit_ctx_free(dit_ctx *ctx);
DIT_API const char *dit_last_error(const dit_ctx *ctx);
/* Number of CPU threads for our loops and for BLAS; 0 means the default:
 * $OMP_NUM_THREADS when set, else all cores. */
DIT_API dit_status dit_ctx_set_threads(dit_ctx *ctx, int n_threads);
DIT_API int dit_ctx_threads(const dit_ctx *ctx);
/* Cap on memory (bytes, 0 = none; default from $DIT_MEMORY_LIMIT, e.g.
 * "4G"): a model whose parameters, or work whose activations, would need
 * more is refused before allocating, with both sizes in the message (and
 * for activations a hint at tiling or a smaller batch). Without a cap, a
 * model's parameters are checked against the memory the system has
 * available. */
DIT_API dit_status dit_ctx_set_memory_limit(dit_ctx *ctx, size_t bytes);
/* Compute device (any case): "cpu" (the default), "cuda" or "auto" (CUDA when this
 * build has the CUDA backend and a device is usable, else the CPU). "cuda"
 * without either is DIT_ERR_UNSUPPORTED with the reason in dit_last_error;
 * anything else is DIT_ERR_INVALID_ARG. On failure the device is unchanged.
 * The DiT forward, the VAE and training run on the device (weights
 * uploaded once per model; a trainer keeps its whole state there). */
DIT_API dit_status dit_ctx_set_device(dit_ctx *ctx, const char *device);
/* Whether this build of libdit has the CUDA backend at all (whether a GPU is
 * usable is dit_ctx_set_device("cuda")'s answer). */
DIT_API bool dit_build_has_cuda(void);
/* Whether this build of libdit has oneDNN for the CPU's matrix products. */
DIT_API bool dit_build_has_onednn(void);
/* What the CPU's matrix products run on here. The rates are measured once
 * per process on a DiT-shaped product (about 20 ms, at the first call of
 * this or of any product); 0 where not available. */
typedef struct {
    const char *isa;          /* as oneDNN sees the processor ("avx512_core_bf16",
                                 "avx2", ...; after $ONEDNN_MAX_CPU_ISA), "none" */
    const char *fp32_library; /* "OpenBLAS" or "oneDNN": the faster, or $DIT_CPU_GEMM */
    bool bf16;                /* bf16 products can run here */
    bool bf16_faster;         /* ... and are faster than fp32: "auto" picks bf16 */
    double gflops_openblas, gflops_onednn_fp32, gflops_onednn_bf16;
    char bf16_why[192]; /* why not, when !bf16 */
} dit_cpu_caps;
DIT_API void dit_cpu_get_caps(dit_cpu_caps *caps);
/* The active device: "cpu" or "cuda". */
DIT_API const char *dit_ctx_device(const dit_ctx *ctx);
/* Matrix-multiply precision (any case): "fp32" (the default), "tf32",
 * "bf16" or "auto". On the CUDA device tf32 and bf16 use tensor cores:
 * cuBLAS rounds the inputs of each product to that format and accumulates
 * in fp32 (about 1e-3 and 1e-2 relative). On the CPU, bf16 runs the
 * products (linear, attention, convolution) on bf16 inputs with fp32
 * accumulation through oneDNN, as torch.autocast does, with a bf16 copy of
 * each weight made at its first use; element-wise ops, norms and softmax
 * stay fp32. It needs oneDNN and a processor with bf16 dot products: where
 * they are missing and the CPU is the active device, "bf16" is
 * DIT_ERR_UNSUPPORTED with the reason (dit_cpu_get_caps). The CPU has no
 * tf32 and computes fp32 for it. "auto" picks bf16 on a CPU where bf16
 * measured faster than fp32, else fp32. Training on the CPU runs in fp32
 * only. Holds for the device selected now and later. Anything else is
 * DIT_ERR_INVALID_ARG; on an error the precision stays as it was. */
DIT_API dit_status dit_ctx_set_precision(dit_ctx *ctx, const char *precision);
/* "fp32", "tf32" or "bf16" ("auto" as it was resolved) */
DIT_API const char *dit_ctx_precision(const dit_ctx *ctx);
DIT_API const char *dit_status_name(dit_status status);

/* ---- value ranges ----------------------------------------------------------
 * The valid range of every float setting the CLI, the plug-ins, the
 * pipeline and the trainer take, by the CLI option's name: "strength",
 * "guidance", "eta", "lr", "ema", "clip", "dropout", "label-std",
 * "mlp-ratio", "weight-decay". NaN and infinities are never in range. */
typedef struct {
    const char *name;
    double lo, hi;
    bool lo_open, hi_open; /* (lo, ... / ..., hi) instead of [lo, ... / ..., hi] */
} dit_range;
/* The row of `name`, or NULL; dit_range_at(i) walks the table (NULL past it). */
DIT_API const dit_range *dit_range_of(const char *name);
DIT_API const dit_range *dit_range_at(int i);
DIT_API bool dit_in_range(const dit_range *r, double v);
/* "[0, 1)" */
DIT_API void dit_range_format(const dit_range *r, char *buf, size_t size);
/* DIT_OK when v is in the named range, else DIT_ERR_INVALID_ARG with
 * "NAME must be in [lo, hi], got V" */
DIT_API dit_status dit_check_range(dit_ctx *ctx, const char *name, double v);

/* ---- models ------------------------------------------------------------- */

/* Load a DiT from a .safetensors file, or from a diffusers folder (the model
 * folder itself, or a pipeline folder with transformer/). Config comes from
 * config.json beside the weights, else from __metadata__, else is inferred
 * from tensor shapes. */
DIT_API dit_status dit_model_load(dit_ctx *ctx, const char *path, dit_model **out);
/* The config dit_model_load would use, from the same files, checked the
 * same way, without reading the weights (for listing models); *pixels (may
 * be NULL): the side of the images it makes, through the pipeline folder's
 * VAE (vae/config.json) where it has one. */
DIT_API dit_status dit_model_peek(dit_ctx *ctx, const char *path, dit_config *out, int *pixels);
DIT_API void dit_model_free(dit_model *model);
DIT_API const dit_config *dit_model_config(const dit_model *model);
DIT_API size_t dit_model_param_count(const dit_model *model);
/* dtype of the stored weights ("F32", "F16", "BF16" or "mixed"). */
DIT_API const char *dit_model_source_dtype(const dit_model *model);
DIT_API const char *dit_naming_name(dit_naming naming);
/* "adaln-zero", "adaln", "in-context", "cross-attn" */
DIT_API const char *dit_conditioning_name(dit_conditioning cond);
/* The id of a conditioning name (any case, '_' for '-'), or -1. */
DIT_API int dit_conditioning_from_name(const char *name);

/* One denoiser evaluation.
 *   x      (B, in_channels, H, W)   H, W multiples of patch_size
 *   t      (B)                      timesteps
 *   y      (B)                      labels in [0, num_classes]
 *   out    (B, out_channels, H, W)
 * Scratch memory is sized before the first op and kept in ctx. */
DIT_API dit_status dit_model_forward(dit_ctx *ctx, const dit_model *model, int batch, int height,
                                     int width, const float *x, const float *t, const int32_t *y,
                                     float *out);

/* FLOPs of one forward (multiply-add = 2), for benchmarks. */
DIT_API double dit_model_forward_flops(const dit_config *cfg, int batch, int height, int width);

/* ---- sampling ---------------------------------------------------------------
 * Each array of names below is in the order of its enum. */
typedef enum {
    DIT_SAMPLER_DDPM = 0, /* ancestral; learned variance with learned-sigma models */
    DIT_SAMPLER_DDIM,     /* eta 0: deterministic */
    DIT_SAMPLER_DPMPP_2M, /* DPM-Solver++ 2M, the fast default at 15-25 steps */
    DIT_SAMPLER_EULER,
    DIT_SAMPLER_COLD, /* the seed article's x0 loop on cosine_alphabar */
    DIT_SAMPLER_COUNT
} dit_sampler;

typedef enum {
    DIT_SCHEDULE_LINEAR = 0,      /* official DiT: betas 1e-4 .. 0.02 */
    DIT_SCHEDULE_SCALED_LINEAR,   /* sqrt-linear, Stable Diffusion */
    DIT_SCHEDULE_SQUAREDCOS,      /* squaredcos_cap_v2 (Nichol & Dhariwal) */
    DIT_SCHEDULE_COSINE_ALPHABAR, /* the seed article: cosine alpha-bar, flipped */
    DIT_SCHEDULE_COUNT
} dit_schedule;

typedef enum {
    DIT_SPACING_LEADING = 0,
    DIT_SPACING_TRAILING,
    DIT_SPACING_LINSPACE,
    DIT_SPACING_COUNT
} dit_spacing;

typedef enum {
    DIT_PRED_EPSILON = 0,
    DIT_PRED_SAMPLE, /* x0 */
    DIT_PRED_V,
    DIT_PREDICTION_COUNT
} dit_prediction;

typedef enum { DIT_VAR_FIXED_SMALL = 0, DIT_VAR_LEARNED_RANGE } dit_variance;

DIT_API extern const char *const dit_sampler_names[DIT_SAMPLER_COUNT];
DIT_API extern const char *const dit_schedule_names[DIT_SCHEDULE_COUNT];
DIT_API extern const char *const dit_spacing_names[DIT_SPACING_COUNT];
DIT_API extern const char *const dit_prediction_names[DIT_PREDICTION_COUNT];

typedef struct {
    dit_sampler sampler;
    dit_schedule schedule;
    dit_spacing spacing;
    dit_prediction prediction;
    dit_variance variance; /* DDPM only */
    int train_steps;       /* 1000 for DiT */
    double beta_start, beta_end;
    int steps_offset;
    bool set_alpha_to_one; /* DDIM's final alpha; DiT uses false */
    double eta;            /* DDIM */
} dit_sched_config;

/* Chooses a sampler and the schedule that goes with it: the cold sampler
 * runs on cosine_alphabar (and only there), so picking it moves the schedule
 * there, and picking another sampler moves a cosine_alphabar schedule back to
 * linear. Any other schedule is kept. */
DIT_API void dit_sched_config_use_sampler(dit_sched_config *c, dit_sampler sampler);

/* Reads a diffusers scheduler_config.json (or our own "scheduler" metadata,
 * which may also name a "sampler") over the fields already in *c. */
DIT_API dit_status dit_sched_config_from_json(dit_ctx *ctx, const char *source, const char *json,
                                              dit_sched_config *c);
/* The scheduler a model file or pipeline folder names (its
 * scheduler/scheduler_config.json or "scheduler" metadata), or NULL. */
DIT_API const char *dit_model_scheduler_json(const dit_model *model);

/* ---- pipelines ----------------------------------------------------------------
 * One entry point for generate, img2img and inpaint, used by the CLI and the
 * GIMP plug-in alike. Images are (3, H, W) floats in [-1, 1] (RGB), masks
 * (H, W) in [0, 1] where 1 means "regenerate" (soft edges allowed). */
typedef enum { DIT_TASK_GENERATE = 0, DIT_TASK_IMG2IMG, DIT_TASK_INPAINT } dit_task;

/* What an inpaint mask's values mean.
 *   REGENERATE: every pixel where the mask is above 0 is made anew from the
 *     step the strength names; the result is blended over the source by the
 *     mask (soft edges fade, partial values blend two images).
 *   DIFFERENTIAL: the mask is each pixel's own strength: a pixel at value s
 *     follows the source, noised to each step's level, until the noise falls
 *     to s x strength of the way, and is denoised freely from there; so a
 *     pixel at 0.3 changes a little, one at 1 fully, and a feathered edge
 *     has no seam. Blended over the source by the mask as well.
 * With a mask of only 0 and 1 on a pixel-space model the two give the same
 * result (with a VAE, latent pixels the mask covers in part differ). */
typedef enum { DIT_MASK_REGENERATE = 0, DIT_MASK_DIFFERENTIAL, DIT_MASK_MODE_COUNT } dit_mask_mode;
DIT_API extern const char *const dit_mask_mode_names[DIT_MASK_MODE_COUNT];

/* a model's measured step-to-step change of every block (block cache) */
typedef struct dit_cache_profile dit_cache_profile;
/* a text-conditioned transformer (below, "text: the PixArt transformer") */
typedef struct dit_pixart dit_pixart;

typedef struct {
    dit_task task;
    const dit_model *model;
    const dit_vae *vae; /* NULL: the model works on pixels (in_channels 3 or 1) */
    dit_sched_config sched;
    int steps;      /* model evaluations for a full run */
    float guidance; /* classifier-free guidance scale; <= 1 skips the null row */
    /* guide only at the steps whose noise level (timestep / train_steps) is
     * in [guidance_from, guidance_to]; elsewhere the step runs the
     * conditional rows alone, half the model's work. Default 0 and 1: every
     * step; from > to: none. */
    float guidance_from, guidance_to;
    int guidance_channels; /* guide the first N latent channels; 0 = all (diffusers),
                               3 = the official DiT sampler */
    float strength;        /* img2img / inpaint: 0 returns the input, 1 starts from noise */
    int class_id;          /* 0 .. num_classes - 1, or num_classes for unconditional */
    uint64_t seed;
    int batch;               /* images to make; each gets its own noise */
    bool seed_per_image;     /* image b draws every noise from seed + b, as a run of batch 1
                                with that seed would (variations, each named by its seed);
                                false: one stream over the whole batch */
    int grow;                /* inpaint: grow the latent mask by this many latent pixels */
    dit_mask_mode mask_mode; /* inpaint: what the mask's values mean */
    int feather;             /* inpaint: soften the mask's edge this many pixels inward;
                                DIT_FEATHER_AUTO: a fifth of the shorter side of the mask's
                                bounding box */
    bool colour_match;       /* inpaint: move the result's colour at the mask's edge to the
                                source's around it (a mean shift fading inward) */
    /* inpaint: harmonising resampling (RePaint): every resample_jump steps,
     * noise the latent back by that many steps and run them again,
     * resample_count - 1 times; each pass adds resample_jump model
     * evaluations. 0 (or count <= 1): off. */
    int resample_jump, resample_count;
    const float *init_noise; /* optional (batch, C, h, w) initial noise instead of seed */
    /* detail at the image's own size, for images well above the model's
     * native size (more than 1.25x on a side): each image is sampled at
     * native size first, then upscaled and refined at this strength (at most
 * the run's own strength for img2img and inpaint) in
     * native-size windows that overlap by half, their predictions blended
     * every step (MultiDiffusion), so a large region gets the detail of
     * native-size samples instead of an upscaled one. Each refinement adds
     * int(steps x detail_strength) evaluations of every window. 0: off, the
     * image is sampled at the size it comes in. */
    float detail_strength;
    /* reuse of block outputs across steps: the share of the blocks'
     * attention and MLP evaluations a run computes; the rest take the
     * output of the last step that computed them (before the gate, which
     * follows the step). 1: every one, the default. With cache_profile (the
     * model's calibration, dit_cache_calibrate) each block reuses where it
     * changes least; without, whole steps are skipped at an even rate.
     * cache_plan, when set, is the plan itself ((steps, depth, 2) bytes,
     * 1 = reuse) and the other two are not read. Never in the detail pass's
     * windows. */
    float cache_budget;
    const dit_cache_profile *cache_profile;
    const uint8_t *cache_plan;
    /* a text model instead of `model` (which is then NULL): the PixArt
     * transformer, the prompt's encoding (text_len, caption_channels) with
     * its mask (text_len), and for guidance the negative side's (the
     * encoding of "" or a negative prompt; diffusers' PixArt pipelines pad
     * both to the same length). class_id is not read; no block cache. */
    const dit_pixart *pixart;
    int text_len, text_dim; /* text_dim: the encodings' width, the caption width */
    const float *prompt_embeds, *negative_embeds;
    const int32_t *prompt_mask, *negative_mask;
} dit_pipeline_params;

/* feather: a fifth of the shorter side of the mask's bounding box */
#define DIT_FEATHER_AUTO (-1)
/* The inpaint settings the dit tool and the plug-in start from, chosen from
 * the blend benchmark (README, Blending): the seam at 1.0x the real images'
 * step where regenerate without feather leaves 2.3x. The library's own
 * defaults stay regenerate without feather, today's results bit for bit. */
#define DIT_INPAINT_MASK_MODE DIT_MASK_DIFFERENTIAL
#define DIT_INPAINT_FEATHER DIT_FEATHER_AUTO

/* the cache budget the README recommends for 50 steps or more, measured
 * by tests/bench/bench-cache.c (README, Fewer FLOPs per image) */
#define DIT_CACHE_BUDGET 0.5f

/* the refinement strength the dit tool and the plug-in use for detail */
#define DIT_DETAIL_STRENGTH 0.4f

/* Defaults for a model: task generate, DPM-Solver++ 2M for 20 steps on the
 * linear schedule (1000 training steps, betas 1e-4 .. 0.02, epsilon
 * prediction, leading spacing), guidance 4 on every latent channel
 * (guidance_channels 0, as diffusers), strength 0.75 (callers use 1 for
 * inpaint), class 0, seed 0, batch 1, grow 0, mask mode regenerate, no
 * feather, no colour match, no resampling. The
 * model's own scheduler (a pipeline folder's scheduler/ or the file's
 * "scheduler" metadata) replaces the sampler settings; for the cold sampler the steps become
 * min(train_steps, 50). */
DIT_API void dit_pipeline_params_default(dit_pipeline_params *p, const dit_model *model,
                                         const dit_vae *vae);

/* Called after every step; `latent` is the current (batch, C, h, w) latent
 * (NULL while a detail run samples at another size than the caller's).
 * Return false to cancel (same as setting *cancel). */
typedef bool (*dit_progress_fn)(void *user, int step, int total, const float *latent);

/*   image (3, H, W): the source for img2img / inpaint (NULL for generate)
 *   mask  (H, W): inpaint only
 *   height, width: the image's size, or the size to generate; multiples of
 *         the VAE factor times the patch size
 *   out   (batch, 3, H, W)
 * Pixels where the mask is 0 come back bit-identical to the input. */
DIT_API dit_status dit_pipeline_run(dit_ctx *ctx, const dit_pipeline_params *params,
                                    const float *image, const float *mask, int height, int width,
                                    dit_progress_fn progress, void *user,
                                    const volatile int *cancel, float *out);

/* ---- text: the T5 tokenizer ---------------------------------------------------
 * A SentencePiece model (T5's spiece.model) through libsentencepiece, giving
 * the ids transformers' T5Tokenizer gives: special tokens written in the
 * prompt (</s>, <pad>, <unk>, <extra_id_N>) kept whole, the rest encoded by
 * SentencePiece, cut to max_len - 1 ids, then EOS, then padding. */
typedef struct dit_tokenizer dit_tokenizer;
/* path: a spiece.model, or a folder holding one (or tokenizer/spiece.model,
 * a pipeline folder); its tokenizer_config.json's extra_ids (default 100)
 * add the <extra_id_N> tokens. DIT_ERR_UNSUPPORTED in a build without
 * libsentencepiece. */
DIT_API dit_status dit_tokenizer_load(dit_ctx *ctx, const char *path, dit_tokenizer **out);
DIT_API void dit_tokenizer_free(dit_tokenizer *tok);
/* pieces plus extra ids: the ids it gives are below this */
DIT_API int dit_tokenizer_vocab_size(const dit_tokenizer *tok);
/* ids (max_len), and mask (max_len, may be NULL) 1 on the tokens and EOS;
 * *n_tokens (may be NULL) how many that is. The text must be UTF-8. */
DIT_API dit_status dit_tokenize(dit_ctx *ctx, const dit_tokenizer *tok, const char *text,
                                int max_len, int32_t *ids, int32_t *mask, int *n_tokens);

/* ---- text: the T5 encoder ------------------------------------------------------
 * T5 v1.1's encoder (transformers' T5EncoderModel, what PixArt conditions
 * on): a folder with config.json and model.safetensors, or the shards
 * model.safetensors.index.json lists; a pipeline folder's text_encoder/. */
typedef struct dit_text_encoder dit_text_encoder;
typedef struct {
    int vocab_size, d_model, d_kv, num_heads, d_ff, num_layers;
    int num_buckets, max_distance; /* the relative-position bias */
    float eps;                     /* RMSNorm */
} dit_t5_config;
DIT_API dit_status dit_text_encoder_load(dit_ctx *ctx, const char *path, dit_text_encoder **out);
DIT_API void dit_text_encoder_free(dit_text_encoder *enc);
DIT_API const dit_t5_config *dit_text_encoder_config(const dit_text_encoder *enc);
/* its config, and every weight file present with its tensors' headers
 * readable, without loading the weights */
DIT_API dit_status dit_text_encoder_peek(dit_ctx *ctx, const char *path, dit_t5_config *cfg);
/* out (B, L, d_model): the encoder's last hidden state for ids (B, L) with
 * the padding mask (B, L; NULL: every token counts) */
DIT_API dit_status dit_text_encode(dit_ctx *ctx, const dit_text_encoder *enc, const int32_t *ids,
                                   const int32_t *mask, int B, int L, float *out);

/* A prompt's embedding emb (max_len, d_model) and mask (max_len): from the
 * cache when this encoder (its config and weights) embedded this prompt at
 * this length before, else tokenized, encoded and stored there. cache_dir
 * NULL: dit_text_cache_dir(); "": no cache. *hit (may be NULL): whether it
 * came from the cache. The tokenizer's ids must fit the encoder's
 * vocabulary. */
DIT_API dit_status dit_text_embed(dit_ctx *ctx, const dit_tokenizer *tok,
                                  const dit_text_encoder *enc, const char *prompt, int max_len,
                                  const char *cache_dir, float *emb, int32_t *mask, bool *hit);
/* $XDG_CACHE_HOME/gimp-dit/prompts (g_free) */
DIT_API char *dit_text_cache_dir(void);
/* prompt_embeds (1, L, d) and prompt_attention_mask (1, L), F32, with the
 * prompt in the metadata: diffusers' names for what PixArt encodes */
DIT_API dit_status dit_save_text_embedding(dit_ctx *ctx, const char *path, const float *emb,
                                           const int32_t *mask, int L, int d, const char *prompt);

/* A text model's two conditionings: the prompt's and the negative side's
 * encodings (len, dim) and masks (len), as dit_pipeline_params takes them. */
typedef struct {
    int len, dim;
    float *prompt, *negative;
    int32_t *prompt_mask, *negative_mask;
} dit_text_pair;
/* The prompt and the negative prompt (NULL: "") encoded for a pipeline
 * folder's text model as diffusers' PixArt pipelines do without
 * clean_caption: lower-cased and stripped, tokenized to max_len (EOS, then
 * padding), T5-encoded with the mask. Each comes from the prompt cache when
 * there (cache_dir as dit_text_embed); only when one is missing are the
 * tokenizer and the encoder loaded, and they are freed before this returns,
 * so the transformer never shares memory with them. max_len 0: the
 * pipeline's own (dit_text_default_len). */
DIT_API dit_status dit_text_pair_encode(dit_ctx *ctx, const char *folder, const char *prompt,
                                        const char *negative, int max_len, const char *cache_dir,
                                        dit_text_pair *out);
DIT_API void dit_text_pair_clear(dit_text_pair *t);
/* A pipeline folder's text model fits together: the encoder's width is the
 * transformer's caption width (configs only, no weights read; before the
 * encoder runs). */
DIT_API dit_status dit_text_model_check(dit_ctx *ctx, const char *folder);
/* p runs the text model m on the encodings of t (p->model becomes NULL) */
DIT_API void dit_pipeline_params_use_text(dit_pipeline_params *p, const dit_pixart *m,
                                          const dit_text_pair *t);
/* a pipeline folder's scheduler/scheduler_config.json into *c; DIT_OK and
 * *c unchanged when the folder has none */
DIT_API dit_status dit_sched_config_from_folder(dit_ctx *ctx, const char *folder,
                                                dit_sched_config *c);
/* 300 tokens for a PixArtSigmaPipeline folder (model_index.json), else 120
 * (PixArt-α) */
DIT_API int dit_text_default_len(const char *folder);

/* ---- text: the PixArt transformer -----------------------------------------
 * PixArt-α / PixArt-Σ (diffusers' PixArtTransformer2DModel): a DiT whose
 * blocks cross-attend to a T5 caption, with one timestep MLP shared by every
 * block ("adaLN-single"). A folder with config.json and
 * diffusion_pytorch_model.safetensors (or its shards' index), or a pipeline
 * folder's transformer/. */
typedef struct {
    int hidden_size, num_heads, depth, mlp_hidden;
    int patch_size, in_channels, out_channels, sample_size; /* sample_size in latent pixels */
    int caption_channels;                                   /* the T5's d_model */
    float interpolation_scale, norm_eps;
    bool additional_conditions; /* the α 1024 models: resolution and aspect ratio embedded */
} dit_pixart_config;
typedef struct {
    const float *x;              /* (B, in_channels, H, W) latents */
    const float *t;              /* (B) timesteps */
    const float *caption;        /* (B, L, caption_channels) the T5's output */
    const int32_t *caption_mask; /* (B, L) 1 = token, 0 = padding; NULL: all tokens */
    const float *resolution;     /* (B, 2) image height, width in pixels (additional conditions) */
    const float *aspect_ratio;   /* (B) height / width (additional conditions) */
} dit_pixart_inputs;
/* diffusers' PixArt pipelines' default guidance scale */
#define DIT_TEXT_GUIDANCE 4.5f
/* whether path holds a PixArt transformer (a pipeline folder's
 * transformer/config.json, or the folder's config.json, names
 * PixArtTransformer2DModel): a text model, not a class-conditional DiT */
DIT_API bool dit_is_pixart(const char *path);
DIT_API dit_status dit_pixart_load(dit_ctx *ctx, const char *path, dit_pixart **out);
/* the config alone (no weights read) and the pixel side through the
 * pipeline folder's VAE (pixels may be NULL) */
DIT_API dit_status dit_pixart_peek(dit_ctx *ctx, const char *path, dit_pixart_config *out,
                                   int *pixels);
DIT_API void dit_pixart_free(dit_pixart *m);
DIT_API const dit_pixart_config *dit_pixart_get_config(const dit_pixart *m);
/* out (B, out_channels, H, W): the noise (and variance) prediction */
DIT_API dit_status dit_pixart_forward(dit_ctx *ctx, const dit_pixart *m, int B, int H, int W, int L,
                                      const dit_pixart_inputs *in, float *out);

/* ---- block cache -----------------------------------------------------------
 * dit_cache_calibrate measures, on `samples` generations with p's settings
 * (seeds p->seed + i, classes p->class_id + i modulo the classes, every
 * block computed), how much each block's attention and MLP outputs change
 * per unit of noise level; the profile drives cache_budget's plans. */
DIT_API dit_status dit_cache_calibrate(dit_ctx *ctx, const dit_pipeline_params *p, int height,
                                       int width, int samples, dit_progress_fn progress, void *user,
                                       const volatile int *cancel, dit_cache_profile **out);
/* JSON; written to a temporary file renamed over path */
DIT_API dit_status dit_cache_profile_save(dit_ctx *ctx, const dit_cache_profile *prof,
                                          const char *path);
DIT_API dit_status dit_cache_profile_load(dit_ctx *ctx, const char *path, dit_cache_profile **out);
DIT_API void dit_cache_profile_free(dit_cache_profile *prof);
/* blocks the profile was measured on (0 for NULL) */
DIT_API int dit_cache_profile_depth(const dit_cache_profile *prof);
/* Where a model's profile lives: dit-cache.json inside a model folder,
 * NAME.cache.json beside a model file NAME.ext; g_free the result. */
DIT_API char *dit_cache_profile_path(const char *model_path);
/* The plan a generation (or img2img at p's strength) with p would follow:
 * *plan (steps, depth, 2) bytes, 1 = reuse (free()), and the share of
 * branch evaluations it computes. */
DIT_API dit_status dit_cache_plan(dit_ctx *ctx, const dit_pipeline_params *p, uint8_t **plan,
                                  double *computed);

/* ---- images ---------------------------------------------------------------- */

/* Resample planar (C, H, W) floats to (C, H2, W2): triangle filter, area-like
 * when shrinking. */
DIT_API dit_status dit_image_resize(dit_ctx *ctx, const float *src, int C, int H, int W, float *dst,
                                    int H2, int W2);
/* out = mask * generated + (1 - mask) * source per pixel, and exactly source
 * where mask is 0; mask (H, W), images (C, H, W); out may alias either. */
DIT_API void dit_image_composite(float *out, const float *generated, const float *source,
                                 const float *mask, int C, int H, int W);

/* An inpaint mask (H, W) grown by `px` pixels: each value the largest
 * within px pixels (a square), so a selection's edge moves outward with
 * its softness kept (Krita's "grow"); out may not alias mask; ctx may be
 * NULL. */
DIT_API dit_status dit_mask_expand(dit_ctx *ctx, const float *mask, int H, int W, int px,
                                   float *out);

/* The canvas grown by top, left, bottom, right pixels (each >= 0): src
 * (C, H, W) at offset (top, left) of dst (C, H + top + bottom, W + left +
 * right), the new border filled with the nearest edge pixel (what an
 * outpaint encodes there before the mask regenerates it). */
DIT_API void dit_image_extend(const float *src, int C, int H, int W, int top, int left, int bottom,
                              int right, float *dst);

/* One float tensor in a .safetensors file (latents for dit encode/decode);
 * saving records the VAE scaling factor in the metadata. Free *out. */
DIT_API dit_status dit_save_tensor(dit_ctx *ctx, const char *path, const char *name,
                                   const float *data, int ndim, const int64_t *shape,
                                   float scaling_factor);
DIT_API dit_status dit_load_tensor(dit_ctx *ctx, const char *path, const char *name, float **out,
                                   int64_t shape[4]);

/* ---- noise ----------------------------------------------------------------
 * Normal noise from Philox4x32-10: element i of `stream` under `seed` is a
 * pure function of the three, whatever the thread count or backend. Streams
 * the pipeline uses: 0 initial noise, 1 img2img/inpaint source noise,
 * 1000 + k noise of a stochastic sampler at step k, 2000 + k inpaint blend
 * noise at step k, 3 VAE posterior samples. */
DIT_API void dit_randn(uint64_t seed, uint32_t stream, size_t first, size_t n, float *out);
DIT_API void dit_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* ---- data files: the default model, class labels ----------------------------
 * Looked up in $DIT_DEFAULT_MODEL (model only), the installed data folder
 * (PREFIX/share/gimp-dit) and, for an uninstalled build, the source tree's
 * data/. Label lists are NULL-terminated, one class per entry; an entry may
 * hold comma-separated synonyms ("tabby, tabby cat"). */

/* A folder path to free with dit_free, or NULL when no default model is found. */
DIT_API char *dit_default_model_path(void);
/* The model library: folders of named models (a pipeline folder, a
 * diffusers model folder, or a folder holding one .safetensors), searched
 * in this order: the user's ($XDG_DATA_HOME/gimp-dit/models), the
 * installed one (PREFIX/share/gimp-dit/models), and for an uninstalled
 * build the source tree's data/models. NULL-terminated; free with
 * dit_labels_free. */
DIT_API char **dit_model_library_dirs(void);
/* The names of the library's models, each once (the first folder that has
 * it), folder by folder in search order, sorted within one. NULL-terminated;
 * free with dit_labels_free. */
DIT_API char **dit_model_library_names(void);
/* What a --model argument names: the path itself when it exists, else the
 * first library folder of that name (a name is one path component); NULL
 * when neither. Free with dit_free. */
DIT_API char *dit_model_resolve(const char *name_or_path);
/* One label per line (stripped, trailing empty lines dropped); NULL when the
 * file cannot be read or is empty. Free with dit_labels_free. */
DIT_API char **dit_labels_read(const char *path);
/* labels.txt in the model folder (or beside a model file), else ImageNet's
 * list for a 1000-class model; num_classes <= 0 reads it from the folder's
 * config.json. NULL when there are none. */
DIT_API char **dit_labels_for_model(const char *model_path, int num_classes);
/* The class whose label, or one of its synonyms, is `name` (any case);
 * -1 when none is. */
DIT_API int dit_labels_lookup(char *const *labels, int num_classes, const char *name);

/* What a class string means on a model: the one rule the CLI, the plug-ins
 * and the dialog share (each words the outcome in its own language). */
typedef enum {
    DIT_CLASS_OK = 0,        /* *class_id is set */
    DIT_CLASS_UNCONDITIONAL, /* a class was given, but the model has none */
    DIT_CLASS_OUT_OF_RANGE,  /* a number outside 0 .. num_classes */
    DIT_CLASS_UNKNOWN,       /* not a number and not one of the labels */
} dit_class_result;
/* Resolves `name` for a model with num_classes classes and these labels
 * (may be NULL):
 *   NULL or ""            class 0 (for an unconditional model, its only label 0)
 *   "0" .. "num_classes"  that class; num_classes is the null class (no class)
 *   a label or synonym    that class (any case)
 * A non-empty name on an unconditional model (num_classes 0) is refused. */
DIT_API dit_class_result dit_labels_resolve(char *const *labels, int num_classes, const char *name,
                                            int *class_id);
/* "a, b, c, ... (N in all)": the first `max` labels (their first synonym),
 * for messages that name the valid choices; free with dit_free. */
DIT_API char *dit_labels_summary(char *const *labels, int num_classes, int max);
DIT_API void dit_labels_free(char **labels);
DIT_API void dit_free(void *p);

/* ---- VAE ------------------------------------------------------------------
 * Images cross this API as (B, 3, H, W) floats in [-1, 1]; latents as
 * (B, latent_channels, H / f, W / f) with f = dit_vae_info().downscale.
 * encode/decode work on raw latents, as diffusers' encode()/decode() do: the
 * caller applies (z - shift_factor) * scaling_factor for the DiT and undoes
 * it before decoding. */

typedef enum {
    DIT_VAE_KL = 0,   /* AutoencoderKL (Stable Diffusion VAE) */
    DIT_VAE_TINY = 1, /* AutoencoderTiny (TAESD) */
} dit_vae_kind;

typedef enum {
    DIT_VAE_NAMING_DIFFUSERS = 0,     /* encoder.down_blocks.N.resnets.M... */
    DIT_VAE_NAMING_DIFFUSERS_OLD = 1, /* attention as query/key/value/proj_attn */
    DIT_VAE_NAMING_LDM = 2,   /* Stable Diffusion: first_stage_model.encoder.down.N.block.M */
    DIT_VAE_NAMING_TAESD = 3, /* original taesd: encoder.N / decoder.N Sequential indices */
} dit_vae_naming;

typedef struct {
    dit_vae_kind kind;
    dit_vae_naming naming;
    int in_channels, out_channels, latent_channels;
    int downscale;    /* image pixels per latent pixel, per side */
    int n_levels;     /* len(block_out_channels) */
    int block_out[8]; /* block_out_channels */
    int layers_per_block;
    int norm_groups;
    float scaling_factor; /* 0.18215 for the SD VAE, 1 for TAESD */
    float shift_factor;   /* 0 when the config has none */
    int mid_attention;    /* mid blocks carry self-attention */
    int use_quant_conv, use_post_quant_conv;
    int tiny_enc_blocks[8], tiny_dec_blocks[8]; /* TAESD blocks per level */
} dit_vae_info;

/* Load from a diffusers folder (config.json + diffusion_pytorch_model.safetensors,
 * or a pipeline folder with vae/), or one .safetensors (diffusers, LDM or
 * taesd naming; config then from __metadata__ or inferred). */
DIT_API dit_status dit_vae_load(dit_ctx *ctx, const char *path, dit_vae **out);
DIT_API void dit_vae_free(dit_vae *vae);
DIT_API const dit_vae_info *dit_vae_config(const dit_vae *vae);
DIT_API size_t dit_vae_param_count(const dit_vae *vae);

/* Tiled encode/decode as diffusers' enable_tiling(): tiles of tile_sample
 * image pixels overlapping by `overlap` (0.25 in diffusers), blended
 * linearly. tile_sample 0 turns tiling off (the default). Tiling applies
 * only when the input is larger than one tile. */
DIT_API dit_status dit_vae_set_tiling(dit_ctx *ctx, dit_vae *vae, int tile_sample, float overlap);

/*   image (B, in_channels, H, W) in [-1, 1], H and W multiples of downscale
 *   mean, logvar (B, latent_channels, H/f, W/f); logvar may be NULL and is
 *   all zeros for TAESD, which has no posterior variance */
DIT_API dit_status dit_vae_encode(dit_ctx *ctx, const dit_vae *vae, int batch, int height,
                                  int width, const float *image, float *mean, float *logvar);
/*   latent (B, latent_channels, h, w) -> image (B, out_channels, h*f, w*f) */
DIT_API dit_status dit_vae_decode(dit_ctx *ctx, const dit_vae *vae, int batch, int height,
                                  int width, const float *latent, float *image);

/* FLOPs and activation memory of one untiled call, for benchmarks and memory
 * budgets; height/width are the input's (latent for decode, image for encode). */
DIT_API double dit_vae_flops(const dit_vae *vae, int batch, int height, int width, bool decode);
DIT_API size_t dit_vae_activation_bytes(const dit_vae *vae, int batch, int height, int width,
                                        bool decode);

#ifdef __cplusplus
}
#endif
#endif
