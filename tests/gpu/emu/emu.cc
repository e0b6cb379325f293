/* The CPU emulator behind tests/gpu/emu's headers: the runtime calls
 * (memory, streams, errors), the block scheduler that runs CUDA threads as
 * fibers, and a reference cuBLAS GEMM.
 *
 * Why: most of our machines have no GPU, yet the kernels' indexing,
 * barriers, shuffles, launch shapes and every cuBLAS layout (transposes,
 * leading dimensions, batch strides) can be checked on the CPU. The
 * emulated parity test runs the whole CUDA backend through this against the
 * CPU backend on every CI run (and under ASan, where an out-of-bounds read
 * by a kernel is reported). What it cannot show: speed, real races between
 * warps (threads run one at a time, in order), shared-memory limits, and
 * the numerics of the real expf/tanhf and of cuBLAS's tensor-core paths;
 * the real parity test on a GPU covers those.
 *
 * Scheduling: each thread of a block is a fiber with its own stack. The
 * scheduler resumes every runnable fiber in turn; a fiber runs until it
 * finishes or waits at a barrier (__syncthreads: all live threads of the
 * block; a shuffle: all live lanes of its warp). When every live thread
 * (lane) has arrived, the barrier opens. If no fiber can run and no barrier
 * can open, the kernel diverged at a barrier: the emulator says so and
 * aborts (a GPU would hang or misbehave). */
#include "cublas_v2.h"
#include "cuda_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

/* ---- runtime ------------------------------------------------------------- */

static cudaError_t last_error = cudaSuccess;

static cudaError_t set_error(cudaError_t e)
{
    if (e != cudaSuccess && last_error == cudaSuccess)
        last_error = e;
    return e;
}

extern "C" {

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return "no error (emulated)";
    case cudaErrorInvalidValue:
        return "invalid argument (emulated)";
    case cudaErrorMemoryAllocation:
        return "out of memory (emulated)";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument (emulated)";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected (emulated)";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal (emulated)";
    case cudaErrorNoKernelImageForDevice:
        return "no kernel image is available for execution on the device (emulated)";
    default:
        return "unspecified launch failure (emulated)";
    }
}

cudaError_t cudaGetLastError(void)
{
    const cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void)
{
    return last_error;
}

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (device != 0)
        return set_error(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "CPU emulator");
    const char *cc = getenv("DIT_EMU_CC");
    prop->major = 9, prop->minor = 0;
    if (cc && *cc)
        sscanf(cc, "%d.%d", &prop->major, &prop->minor);
    return cudaSuccess;
}

cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr, const void *func)
{
    const char *no_image = getenv("DIT_EMU_NO_IMAGE");
    if (!func || (no_image && *no_image == '1'))
        return set_error(cudaErrorNoKernelImageForDevice);
    attr->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int *device)
{
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
    *s = (cudaStream_t)malloc(1);
    return *s ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    free(s);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    (void)s;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    /* 256-byte aligned, as cudaMalloc's */
    *p = aligned_alloc(256, (bytes + 255) / 256 * 256);
    return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}

cudaError_t cudaFree(void *p)
{
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    return cudaMalloc(p, bytes);
}

cudaError_t cudaFreeHost(void *p)
{
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    (void)kind;
    if (bytes && (!dst || !src))
        return set_error(cudaErrorInvalidValue);
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s)
{
    (void)s;
    return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void *dst, int value, size_t bytes)
{
    if (bytes && !dst)
        return set_error(cudaErrorInvalidValue);
    memset(dst, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s)
{
    (void)s;
    return cudaMemset(dst, value, bytes);
}

} /* extern "C" */

/* ---- block scheduler -------------------------------------------------------- */

namespace emu {

uint3 thread_idx, block_idx;
dim3 block_dim, grid_dim;
uint64_t warp_slot[1024];

namespace {

enum state { RUNNABLE, AT_SYNC, AT_WARP, DONE };

struct fiber {
    ucontext_t ctx;
    state st;
    uint3 tid;
    void *fake_stack; /* ASan's, while switched away */
};

const size_t STACK_BYTES = 128 * 1024; /* kernels keep little on the stack */
std::vector<fiber> fibers;
std::vector<char *> stacks;
ucontext_t sched_ctx;
int cur = -1;
const std::function<void()> *body;
int block_arrived;
std::vector<int> warp_arrived;
#if EMU_ASAN
const void *sched_stack_bottom;
size_t sched_stack_size;
void *sched_fake_stack;
#endif

/* Leave the current fiber for the scheduler; returns when resumed. */
void to_scheduler()
{
    fiber &f = fibers[(size_t)cur];
#if EMU_ASAN
    __sanitizer_start_switch_fiber(&f.fake_stack, sched_stack_bottom, sched_stack_size);
#endif
    swapcontext(&f.ctx, &sched_ctx);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(f.fake_stack, NULL, NULL);
#endif
}

void fiber_entry()
{
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &sched_stack_bottom, &sched_stack_size);
#endif
    (*body)();
    fibers[(size_t)cur].st = DONE;
#if EMU_ASAN
    /* this fiber's stack is finished with: NULL tells ASan to drop it */
    __sanitizer_start_switch_fiber(NULL, sched_stack_bottom, sched_stack_size);
#endif
    /* returning resumes uc_link, the scheduler */
}

void resume(size_t i)
{
    cur = (int)i;
    thread_idx = fibers[i].tid;
#if EMU_ASAN
    __sanitizer_start_switch_fiber(&sched_fake_stack, stacks[i], STACK_BYTES);
#endif
    swapcontext(&sched_ctx, &fibers[i].ctx);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(sched_fake_stack, NULL, NULL);
#endif
    cur = -1;
}

void run_block(size_t n)
{
    const size_t nwarps = (n + 31) / 32;
    for (size_t i = 0; i < n; i++) {
        fiber &f = fibers[i];
        f.st = RUNNABLE;
        f.fake_stack = NULL;
        f.tid.x = (unsigned)(i % block_dim.x);
        f.tid.y = (unsigned)(i / block_dim.x % block_dim.y);
        f.tid.z = (unsigned)(i / ((size_t)block_dim.x * block_dim.y));
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = stacks[i];
        f.ctx.uc_stack.ss_size = STACK_BYTES;
        f.ctx.uc_link = &sched_ctx;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    block_arrived = 0;
    warp_arrived.assign(nwarps, 0);
    for (;;) {
        bool progress = false;
        for (size_t i = 0; i < n; i++) {
            if (fibers[i].st == RUNNABLE) {
                resume(i);
                progress = true;
            }
        }
        size_t live = 0;
        std::vector<size_t> live_in_warp(nwarps, 0);
        for (size_t i = 0; i < n; i++) {
            if (fibers[i].st != DONE) {
                live++;
                live_in_warp[i / 32]++;
            }
        }
        if (live == 0)
            return;
        if (block_arrived > 0 && (size_t)block_arrived == live) {
            for (size_t i = 0; i < n; i++)
                if (fibers[i].st == AT_SYNC)
                    fibers[i].st = RUNNABLE;
            block_arrived = 0;
            progress = true;
        }
        for (size_t w = 0; w < nwarps; w++) {
            if (warp_arrived[w] > 0 && (size_t)warp_arrived[w] == live_in_warp[w]) {
                for (size_t i = w * 32; i < n && i < w * 32 + 32; i++)
                    if (fibers[i].st == AT_WARP)
                        fibers[i].st = RUNNABLE;
                warp_arrived[w] = 0;
                progress = true;
            }
        }
        if (!progress) {
            fprintf(stderr,
                    "cuda emulator: block (%u,%u,%u) of %u threads is stuck: %d at "
                    "__syncthreads, the rest at warp barriers or finished (barrier "
                    "divergence)\n",
                    block_idx.x, block_idx.y, block_idx.z, (unsigned)n, block_arrived);
            abort();
        }
    }
}

void free_stacks()
{
    for (char *st : stacks)
        free(st);
    stacks.clear();
}

} // namespace

void syncthreads()
{
    if (cur < 0) {
        fprintf(stderr, "cuda emulator: __syncthreads outside a kernel\n");
        abort();
    }
    fibers[(size_t)cur].st = AT_SYNC;
    block_arrived++;
    to_scheduler();
}

void warp_barrier()
{
    if (cur < 0) {
        fprintf(stderr, "cuda emulator: warp operation outside a kernel\n");
        abort();
    }
    fibers[(size_t)cur].st = AT_WARP;
    warp_arrived[(size_t)cur / 32]++;
    to_scheduler();
}

void run(dim3 grid, dim3 block, const std::function<void()> &k)
{
    const size_t n = (size_t)block.x * block.y * block.z;
    if (n == 0 || n > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    if (cur >= 0) {
        fprintf(stderr, "cuda emulator: launch from inside a kernel\n");
        abort();
    }
    if (stacks.empty())
        atexit(free_stacks);
    while (stacks.size() < n) {
        char *st = static_cast<char *>(malloc(STACK_BYTES));
        if (!st) {
            fprintf(stderr, "cuda emulator: out of memory for thread stacks\n");
            abort();
        }
        stacks.push_back(st);
    }
    if (fibers.size() < n)
        fibers.resize(n);
    block_dim = block;
    grid_dim = grid;
    body = &k;
    /* DIT_EMU_BLOCK_ORDER=reverse: the last block first, as a GPU may
     * schedule them; a kernel whose result depends on the order shows */
    static const int reverse = getenv("DIT_EMU_BLOCK_ORDER") &&
                               strcmp(getenv("DIT_EMU_BLOCK_ORDER"), "reverse") == 0;
    const size_t blocks = (size_t)grid.x * grid.y * grid.z;
    for (size_t i = 0; i < blocks; i++) {
        const size_t b = reverse ? blocks - 1 - i : i;
        block_idx.x = (unsigned)(b % grid.x);
        block_idx.y = (unsigned)(b / grid.x % grid.y);
        block_idx.z = (unsigned)(b / grid.x / grid.y);
        run_block(n);
    }
    body = NULL;
}

} // namespace emu

/* ---- cuBLAS --------------------------------------------------------------------- */

struct emu_blas {
    int unused;
};

/* x rounded to nearest even with `bits` explicit mantissa bits kept */
static float round_mantissa(float x, int bits)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) /* inf, nan */
        return x;
    const int drop = 23 - bits;
    const uint32_t half = 1u << (drop - 1), lsb = (u >> drop) & 1u;
    u = (u + half - 1 + lsb) & ~((1u << drop) - 1);
    memcpy(&x, &u, sizeof x);
    return x;
}

static float round_input(float x, cublasComputeType_t ct)
{
    if (ct == CUBLAS_COMPUTE_32F_FAST_TF32)
        return round_mantissa(x, 10);
    if (ct == CUBLAS_COMPUTE_32F_FAST_16BF)
        return round_mantissa(x, 7);
    return x;
}

static int max1(int a)
{
    return a > 1 ? a : 1;
}

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    *h = new emu_blas();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
    (void)s;
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS:
        return "CUBLAS_STATUS_SUCCESS (emulated)";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "CUBLAS_STATUS_INVALID_VALUE (emulated)";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "CUBLAS_STATUS_NOT_SUPPORTED (emulated)";
    default:
        return "CUBLAS_STATUS_INTERNAL_ERROR (emulated)";
    }
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta,
                                          cublasOperation_t tb, int m, int n, int k,
                                          const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long sA, const void *B,
                                          cudaDataType Btype, int ldb, long long sB,
                                          const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long sC, int batch, cublasComputeType_t ct,
                                          cublasGemmAlgo_t algo)
{
    (void)algo;
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    /* the argument checks cuBLAS documents for gemmEx */
    if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < max1(ta == CUBLAS_OP_N ? m : k) ||
        ldb < max1(tb == CUBLAS_OP_N ? k : n) || ldc < max1(m))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (Atype != CUDA_R_32F || Btype != CUDA_R_32F || Ctype != CUDA_R_32F ||
        (ct != CUBLAS_COMPUTE_32F && ct != CUBLAS_COMPUTE_32F_FAST_TF32 &&
         ct != CUBLAS_COMPUTE_32F_FAST_16BF))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    for (int bi = 0; bi < batch; bi++) {
        const float *a = (const float *)A + bi * sA, *b = (const float *)B + bi * sB;
        float *c = (float *)C + bi * sC;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float acc = 0.0f; /* fp32 accumulation, as cuBLAS */
                for (int l = 0; l < k; l++) {
                    const float av = ta == CUBLAS_OP_N ? a[i + (size_t)l * lda] : a[l + (size_t)i * lda];
                    const float bv = tb == CUBLAS_OP_N ? b[l + (size_t)j * ldb] : b[j + (size_t)l * ldb];
                    acc += round_input(av, ct) * round_input(bv, ct);
                }
                float *cij = c + i + (size_t)j * ldc;
                /* beta == 0: C is not read (it may hold NaN), as in BLAS */
                *cij = be == 0.0f ? al * acc : al * acc + be * *cij;
            }
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                            int lda, const void *B, cudaDataType Btype, int ldb, const void *beta,
                            void *C, cudaDataType Ctype, int ldc, cublasComputeType_t ct,
                            cublasGemmAlgo_t algo)
{
    return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb,
                                      0, beta, C, Ctype, ldc, 0, 1, ct, algo);
}

} /* extern "C" */
