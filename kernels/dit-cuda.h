/* The CUDA backend of libdit: a dit_backend op table whose ops run on one
 * CUDA stream, plus the device memory they work on.
 *
 * Every pointer an op of this table takes is device memory (dit_cuda_alloc),
 * integer arrays (labels) and per-sample scalars (timesteps) included. Ops
 * are queued on the backend's stream and return at once; a failed launch or
 * cuBLAS call is kept (the first one wins) and reported by dit_cuda_sync.
 * Memory kinds are kept apart from the op table (as ggml's buffer types are):
 * device buffers and the blocking copies to and from them.
 *
 * Without a usable device (no driver, no GPU: cudaGetDeviceCount fails or
 * finds none) dit_cuda_available says why and dit_cuda_backend_new returns
 * NULL; nothing else here may be called then. */
#ifndef DIT_CUDA_H
#define DIT_CUDA_H

#include "internal/impl.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Whether a CUDA device can be used; if not, why (into why[len]). */
bool dit_cuda_available(char *why, size_t len);

/* A backend on device `device` with its own stream and cuBLAS handle (bound
 * to that stream); NULL if there is no such device or setup failed (the
 * reason is printed nowhere: ask dit_cuda_available). The returned table
 * must not be copied: its ops find their stream through the pointer they
 * are given. */
dit_backend *dit_cuda_backend_new(int device);
void dit_cuda_backend_free(dit_backend *be);

/* The op table as filled in, for checks that need no device (which ops are
 * provided); its ops must only be called through dit_cuda_backend_new's. */
const dit_backend *dit_cuda_op_table(void);

/* Matmul precision (linear, conv2d, the cuBLAS attentions and their
 * backward). Storage stays fp32; TF32 and BF16 let cuBLAS round the inputs
 * to that format on the tensor cores and accumulate in fp32. */
typedef enum {
    DIT_CUDA_FP32 = 0, /* plain fp32 (the default) */
    DIT_CUDA_TF32,     /* CUBLAS_COMPUTE_32F_FAST_TF32 */
    DIT_CUDA_BF16,     /* CUBLAS_COMPUTE_32F_FAST_16BF */
} dit_cuda_precision;

void dit_cuda_set_precision(dit_backend *be, dit_cuda_precision p);

/* Waits for the backend's stream; returns the first error of any op since
 * the last call (and clears it), with its message in why[len] (why may be
 * NULL). DIT_OK when everything ran. */
dit_status dit_cuda_sync(const dit_backend *be, char *why, size_t len);

/* ---- device memory (on the device current for this thread: the last
 * dit_cuda_backend_new's) ---- */
/* 256-byte aligned; NULL on failure or bytes == 0 */
void *dit_cuda_alloc(size_t bytes);
void dit_cuda_free(void *dev);
/* Blocking copies: they wait for the ops queued before them on the
 * backend's stream (the stream is a blocking one, ordered with the legacy
 * default stream these use). */
dit_status dit_cuda_upload(void *dst_dev, const void *src_host, size_t bytes);
dit_status dit_cuda_download(void *dst_host, const void *src_dev, size_t bytes);
dit_status dit_cuda_memset0(void *dst_dev, size_t bytes);

/* ---- the module ------------------------------------------------------------
 * The backend is built as its own shared module, libdit-cuda.so
 * (kernels/module.c), which libdit opens at run time: the CLI and the
 * plug-ins have no CUDA library among their dependencies and start on any
 * machine; only the module needs CUDA's runtime and cuBLAS. Its one
 * exported symbol returns the functions above. */
#define DIT_CUDA_API_VERSION 1
typedef struct {
    int version; /* DIT_CUDA_API_VERSION */
    bool (*available)(char *why, size_t len);
    dit_backend *(*backend_new)(int device);
    void (*backend_free)(dit_backend *be);
    void (*set_precision)(dit_backend *be, dit_cuda_precision p);
    dit_status (*sync)(const dit_backend *be, char *why, size_t len);
    void *(*alloc)(size_t bytes);
    void (*free)(void *dev);
    dit_status (*upload)(void *dst_dev, const void *src_host, size_t bytes);
    dit_status (*download)(void *dst_host, const void *src_dev, size_t bytes);
    dit_status (*memset0)(void *dst_dev, size_t bytes);
} dit_cuda_api;
#define DIT_CUDA_MODULE_SYMBOL "dit_cuda_module_api"
const dit_cuda_api *dit_cuda_module_api(void);

#ifdef __cplusplus
}
#endif

#endif
