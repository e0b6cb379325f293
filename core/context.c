/* Context, error messages, aligned allocation, size arithmetic, half floats. */
#include "internal/impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static int default_threads(void)
{
    /* honour OMP_NUM_THREADS, as OpenBLAS and libgomp do */
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (end != env && n > 0 && n <= 1024)
            return (int)n;
    }
#ifdef _OPENMP
    int n = omp_get_num_procs();
    return n > 0 ? n : 1;
#else
    return 1;
#endif
}

dit_ctx *dit_ctx_new(void)
{
    dit_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->cpu = *dit_backend_cpu();
    ctx->be = &ctx->cpu;
    dit_ctx_set_threads(ctx, 0);
    /* DIT_MEMORY_LIMIT=4G (or M, K, bytes) caps activation memory */
    const char *lim = getenv("DIT_MEMORY_LIMIT");
    if (lim && *lim) {
        char *end;
        double v = strtod(lim, &end);
        const double mul = *end == 'G' || *end == 'g'   ? 1073741824.0
                           : *end == 'M' || *end == 'm' ? 1048576.0
                           : *end == 'K' || *end == 'k' ? 1024.0
                                                        : 1.0;
        if (v > 0)
            ctx->memory_limit = (size_t)(v * mul);
    }
    return ctx;
}

void dit_ctx_free(dit_ctx *ctx)
{
    if (!ctx)
        return;
    dit_device_release(ctx);
    dit_free_aligned(ctx->arena);
    dit_free_aligned(ctx->pos_table);
    free(ctx);
}

const char *dit_last_error(const dit_ctx *ctx) { return ctx ? ctx->error : "no context"; }

dit_status dit_ctx_set_threads(dit_ctx *ctx, int n_threads)
{
    if (!ctx)
        return DIT_ERR_INVALID_ARG;
    if (n_threads < 0)
        return dit_error(ctx, DIT_ERR_INVALID_ARG,
                         "thread count must be >= 0 (0 = all cores), got %d", n_threads);
    ctx->n_threads = n_threads ? n_threads : default_threads();
    ctx->cpu.n_threads = ctx->n_threads;
    return DIT_OK;
}

int dit_ctx_threads(const dit_ctx *ctx) { return ctx ? ctx->n_threads : 0; }

const char *dit_status_name(dit_status status)
{
    switch (status) {
    case DIT_OK: return "ok";
    case DIT_ERR_INVALID_ARG: return "invalid argument";
    case DIT_ERR_IO: return "I/O error";
    case DIT_ERR_FORMAT: return "malformed file";
    case DIT_ERR_MODEL: return "model error";
    case DIT_ERR_NOMEM: return "out of memory";
    case DIT_ERR_UNSUPPORTED: return "unsupported";
    case DIT_ERR_BACKEND: return "backend error";
    case DIT_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

dit_status dit_error(dit_ctx *ctx, dit_status status, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
        va_end(ap);
    }
    return status;
}

void dit_clear_error(dit_ctx *ctx)
{
    if (ctx)
        ctx->error[0] = '\0';
}

/* the one memory-limit rule: bytes against ctx's limit, with advice after */
static dit_status over_limit(dit_ctx *ctx, size_t bytes, const char *what, const char *advice)
{
    if (ctx->memory_limit && bytes > ctx->memory_limit)
        return dit_error(ctx, DIT_ERR_NOMEM,
                         "%s would need %.1f MiB, over the memory limit of %.1f MiB%s", what,
                         bytes / 1048576.0, ctx->memory_limit / 1048576.0, advice);
    return DIT_OK;
}

dit_status dit_check_budget(dit_ctx *ctx, size_t bytes, const char *what)
{
    return over_limit(ctx, bytes, what,
                      ": use a smaller image or batch, or VAE tiling (--tile 512)");
}

/* bytes the system could still give us (MemAvailable), or 0 when unknown */
static size_t available_memory(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return (size_t)kib * 1024;
}

dit_status dit_check_held(dit_ctx *ctx, bool held, const char *what, const char *done)
{
    const bool saved = strcmp(done, "run") != 0;
    if (!held || (!saved && ctx->be == &ctx->cpu && ctx->cpu.gemm_bf16))
        return DIT_OK;
    return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                     "%s was loaded for bf16 on the CPU and keeps its weights in bf16 only, so it "
                     "cannot be %s %s; load it again %s",
                     what, done, saved ? "from this copy" : "on another device or precision",
                     saved ? "with precision fp32" : "after choosing them");
}

dit_status dit_check_weights_memory(dit_ctx *ctx, size_t bytes, const char *what)
{
    dit_status st = over_limit(ctx, bytes, what, " (DIT_MEMORY_LIMIT)");
    if (st)
        return st;
    const size_t avail = ctx->memory_limit ? 0 : available_memory();
    if (avail && bytes > avail)
        return dit_error(
            ctx, DIT_ERR_NOMEM,
            "%s would need %.1f MiB, more than the %.1f MiB this machine has available", what,
            bytes / 1048576.0, avail / 1048576.0);
    return DIT_OK;
}

dit_status dit_ctx_set_memory_limit(dit_ctx *ctx, size_t bytes)
{
    if (!ctx)
        return DIT_ERR_INVALID_ARG;
    ctx->memory_limit = bytes;
    return DIT_OK;
}

dit_status dit_arena_reserve(dit_ctx *ctx, size_t n_floats)
{
    if (n_floats <= ctx->arena_floats)
        return DIT_OK;
    size_t bytes;
    if (!dit_mul_size(n_floats, sizeof(float), &bytes))
        return dit_error(ctx, DIT_ERR_NOMEM, "activation arena size overflows");
    dit_status st = dit_check_budget(ctx, bytes, "this step's activations");
    if (st)
        return st;
    float *p = dit_alloc_aligned(bytes);
    if (!p)
        return dit_error(ctx, DIT_ERR_NOMEM, "cannot allocate %.1f MiB of activations",
                         (double)bytes / (1 << 20));
    dit_free_aligned(ctx->arena);
    ctx->arena = p;
    ctx->arena_floats = n_floats;
    return DIT_OK;
}

bool dit_mul_size(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }

bool dit_add_size(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }

void *dit_alloc_aligned(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = 64;
    if (posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    return p;
}

void dit_free_aligned(void *p) { free(p); }

/* IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
float dit_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp - 15 + 127) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float dit_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Round to nearest even, as torch's .half() does. */
uint16_t dit_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) /* inf / nan */
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10)
            return (uint16_t)sign;
        man |= 0x800000;
        int shift = 14 - exp;
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | (uint32_t)exp << 10 | man >> 13;
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
        half++; /* may carry into the exponent, which is still correct */
    return (uint16_t)half;
}

uint16_t dit_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

dit_status dit_backend_require(dit_ctx *ctx, const dit_backend *be, const char *what,
                               const dit_op_presence *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!ops[i].present)
            return dit_error(ctx, DIT_ERR_UNSUPPORTED,
                             "the %s backend has no op '%s', which %s needs", be->name, ops[i].name,
                             what);
    return DIT_OK;
}
