/* Device selection and device memory for a context. The only file of core
 * that knows the CUDA backend (kernels/dit-cuda.h): built with DIT_HAVE_CUDA
 * when meson found CUDA, and against tests/gpu's emulator for the parity
 * tests; without it every device path reports DIT_ERR_UNSUPPORTED. */
#include "internal/cpu-gemm.h"
#include "internal/impl.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef DIT_HAVE_CUDA
#include "dit-cuda.h"

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#ifndef DIT_CUDA_LINKED
#include <dlfcn.h>
#endif

static const dit_cuda_api *cuda_module;
static char cuda_module_why[768];

/* Opens the CUDA backend module (kernels/dit-cuda.h): $DIT_CUDA_MODULE
 * alone when set, else where meson installs it, else where this build made
 * it. A module that does not load (CUDA's libraries missing) leaves the
 * reason for dit_ctx_set_device("cuda"). The emulator tests link the
 * backend in instead (DIT_CUDA_LINKED). */
static void open_cuda_module(void)
{
#ifdef DIT_CUDA_LINKED
    cuda_module = dit_cuda_module_api();
#else
    const char *env = getenv("DIT_CUDA_MODULE");
    const char *const paths[] = {env && *env ? env : DIT_CUDA_MODULE_INSTALLED,
                                 env && *env ? NULL : DIT_CUDA_MODULE_BUILT};
    snprintf(cuda_module_why, sizeof cuda_module_why, "%s is not installed (nor at %s)", paths[0],
             paths[1] ? paths[1] : "another place");
    for (size_t i = 0; i < 2 && !cuda_module; i++) {
        if (!paths[i] || (i > 0 && access(paths[i], F_OK) != 0))
            continue;
        void *h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            snprintf(cuda_module_why, sizeof cuda_module_why, "%s", dlerror());
            continue;
        }
        const dit_cuda_api *(*get)(void) =
            (const dit_cuda_api *(*)(void))dlsym(h, DIT_CUDA_MODULE_SYMBOL);
        const dit_cuda_api *api = get ? get() : NULL;
        if (!api || api->version != DIT_CUDA_API_VERSION) {
            snprintf(cuda_module_why, sizeof cuda_module_why,
                     "%s is not a CUDA module of this gimp-dit", paths[i]);
            dlclose(h);
            continue;
        }
        cuda_module = api; /* kept open for the life of the process */
    }
#endif
}

static const dit_cuda_api *cuda_api(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, open_cuda_module);
    return cuda_module;
}
#endif

/* Frees the weights and arena on the device (not the backend). */
static void release_memory(dit_ctx *ctx)
{
    dit_device *d = &ctx->dev;
    dit_device_free(d->params);
    dit_device_free(d->arena);
    dit_model_clone_free(d->model);
    d->params = NULL, d->arena = NULL, d->model = NULL, d->host = NULL;
    d->arena_floats = 0, d->host_version = 0;
    dit_device_free(d->vae_params);
    free(d->vae);
    d->vae_params = NULL, d->vae = NULL, d->vae_id = 0;
    dit_device_free(d->pixart_params);
    d->pixart_params = NULL, d->pixart_id = 0;
}

bool dit_build_has_cuda(void)
{
#ifdef DIT_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

void dit_device_release(dit_ctx *ctx)
{
    release_memory(ctx);
#ifdef DIT_HAVE_CUDA
    if (ctx->dev.be)
        cuda_api()->backend_free(ctx->dev.be);
#endif
    ctx->dev.be = NULL;
    ctx->be = &ctx->cpu;
}

dit_status dit_ctx_set_device(dit_ctx *ctx, const char *device)
{
    if (!ctx)
        return DIT_ERR_INVALID_ARG;
    if (!device || strcasecmp(device, "cpu") == 0) {
        ctx->be = &ctx->cpu; /* device memory is kept for a switch back */
        return DIT_OK;
    }
    const bool want = strcasecmp(device, "cuda") == 0;
    if (!want && strcasecmp(device, "auto") != 0)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "device must be cpu, cuda or auto, not '%s'",
                         device);
#ifdef DIT_HAVE_CUDA
    if (ctx->dev.be) {
        ctx->be = ctx->dev.be;
        return DIT_OK;
    }
    char why[1024] = "";
    const dit_cuda_api *api = cuda_api();
    if (!api)
        snprintf(why, sizeof why, "the CUDA backend of this build could not be loaded: %s",
                 cuda_module_why);
    if (!api || !api->available(why, sizeof why)) {
        if (!want) { /* auto: no device is not an error */
            ctx->be = &ctx->cpu;
            return DIT_OK;
        }
        return dit_error(ctx, DIT_ERR_UNSUPPORTED, "%s", why[0] ? why : "no usable CUDA device");
    }
    ctx->dev.be = api->backend_new(0);
    if (!ctx->dev.be) {
        if (!want)
            return DIT_OK;
        return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                         "a CUDA device is present but the backend could not be set up "
                         "(stream or cuBLAS handle)");
    }
    cuda_api()->set_precision(ctx->dev.be, (dit_cuda_precision)ctx->dev.precision);
    ctx->be = ctx->dev.be;
    return DIT_OK;
#else
    if (!want)
        return DIT_OK;
    return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                     "this build of libdit has no CUDA backend (configure with -Dcuda=enabled "
                     "and nvcc on PATH)");
#endif
}

const char *dit_ctx_device(const dit_ctx *ctx)
{
    return ctx && dit_on_device(ctx) ? "cuda" : "cpu";
}

static const char *const precision_names[] = {"fp32", "tf32", "bf16"};
#ifdef DIT_HAVE_CUDA
_Static_assert(DIT_CUDA_FP32 == 0 && DIT_CUDA_TF32 == 1 && DIT_CUDA_BF16 == 2,
               "precision_names follows dit_cuda_precision");
#endif
enum { PRECISION_BF16 = 2 };

/* "auto": bf16 on a CPU whose bf16 products measured faster than its fp32
 * ones, else fp32 (on the GPU too: tf32 and bf16 are the user's call) */
static int auto_precision(const dit_ctx *ctx)
{
    return !dit_on_device(ctx) && dit_cpu_bf16_faster() ? PRECISION_BF16 : 0;
}

dit_status dit_ctx_set_precision(dit_ctx *ctx, const char *precision)
{
    if (!ctx)
        return DIT_ERR_INVALID_ARG;
    int p = -1;
    for (int i = 0; precision && i < 3; i++)
        if (strcasecmp(precision, precision_names[i]) == 0)
            p = i;
    if (precision && strcasecmp(precision, "auto") == 0)
        p = auto_precision(ctx);
    if (p < 0)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "precision must be fp32, tf32, bf16 or auto, not '%s'",
                         precision ? precision : "(null)");
    char why[256];
    if (p == PRECISION_BF16 && !dit_on_device(ctx) && !dit_cpu_bf16_supported(why, sizeof why))
        return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                         "bf16 on the CPU cannot run here: %s; use fp32 (or auto)", why);
    ctx->dev.precision = p;
    /* the CPU has no tf32: it computes fp32 there */
    ctx->cpu.gemm_bf16 = p == PRECISION_BF16 && dit_cpu_bf16_supported(NULL, 0);
#ifdef DIT_HAVE_CUDA
    if (ctx->dev.be)
        cuda_api()->set_precision(ctx->dev.be, (dit_cuda_precision)p);
#endif
    return DIT_OK;
}

const char *dit_ctx_precision(const dit_ctx *ctx)
{
    return precision_names[ctx ? ctx->dev.precision : 0];
}

#ifdef DIT_HAVE_CUDA

void *dit_device_alloc(dit_ctx *ctx, size_t bytes)
{
    void *p = cuda_api()->alloc(bytes);
    if (!p)
        dit_error(ctx, DIT_ERR_NOMEM, "cannot allocate %.1f MiB of device memory",
                  (double)bytes / (1 << 20));
    return p;
}

void dit_device_free(void *dev)
{
    if (dev)
        cuda_api()->free(dev);
}

dit_status dit_device_upload(dit_ctx *ctx, void *dst_dev, const void *src, size_t bytes)
{
    dit_status st = cuda_api()->upload(dst_dev, src, bytes);
    return st ? dit_error(ctx, st, "copy of %zu bytes to the device failed", bytes) : DIT_OK;
}

dit_status dit_device_download(dit_ctx *ctx, void *dst, const void *src_dev, size_t bytes)
{
    dit_status st = cuda_api()->download(dst, src_dev, bytes);
    return st ? dit_error(ctx, st, "copy of %zu bytes from the device failed", bytes) : DIT_OK;
}

dit_status dit_device_memset0(dit_ctx *ctx, void *dst_dev, size_t bytes)
{
    dit_status st = cuda_api()->memset0(dst_dev, bytes);
    return st ? dit_error(ctx, st, "clearing %zu bytes on the device failed", bytes) : DIT_OK;
}

dit_status dit_device_sync(dit_ctx *ctx)
{
    char why[512] = "";
    dit_status st = cuda_api()->sync(ctx->be, why, sizeof why);
    return st ? dit_error(ctx, st, "CUDA: %s", why[0] ? why : dit_status_name(st)) : DIT_OK;
}

#else /* no CUDA build: nothing selects a device, so none of these is reached */

void *dit_device_alloc(dit_ctx *ctx, size_t bytes)
{
    dit_error(ctx, DIT_ERR_UNSUPPORTED, "this build of libdit has no CUDA backend");
    return NULL;
}

void dit_device_free(void *dev) { (void)dev; }

dit_status dit_device_upload(dit_ctx *ctx, void *dst_dev, const void *src, size_t bytes)
{
    return dit_error(ctx, DIT_ERR_UNSUPPORTED, "this build of libdit has no CUDA backend");
}

dit_status dit_device_download(dit_ctx *ctx, void *dst, const void *src_dev, size_t bytes)
{
    return dit_error(ctx, DIT_ERR_UNSUPPORTED, "this build of libdit has no CUDA backend");
}

dit_status dit_device_memset0(dit_ctx *ctx, void *dst_dev, size_t bytes)
{
    return dit_error(ctx, DIT_ERR_UNSUPPORTED, "this build of libdit has no CUDA backend");
}

dit_status dit_device_sync(dit_ctx *ctx)
{
    return dit_error(ctx, DIT_ERR_UNSUPPORTED, "this build of libdit has no CUDA backend");
}

#endif

void dit_device_arena_release(dit_ctx *ctx)
{
    dit_device_free(ctx->dev.arena);
    ctx->dev.arena = NULL, ctx->dev.arena_floats = 0;
}

dit_status dit_device_arena_reserve(dit_ctx *ctx, size_t n_floats)
{
    dit_device *d = &ctx->dev;
    if (n_floats <= d->arena_floats)
        return DIT_OK;
    size_t bytes;
    if (!dit_mul_size(n_floats, sizeof(float), &bytes))
        return dit_error(ctx, DIT_ERR_NOMEM, "device arena size overflows");
    dit_status st = dit_check_budget(ctx, bytes, "this step's activations");
    if (st)
        return st;
    dit_device_free(d->arena); /* before the new one: device memory is scarce */
    d->arena = NULL, d->arena_floats = 0;
    if (!(d->arena = dit_device_alloc(ctx, bytes)))
        return DIT_ERR_NOMEM;
    d->arena_floats = n_floats;
    return DIT_OK;
}
