/* Device helpers shared by the kernels/ .cu files: launch macro, grid sizing, block
 * reductions and the activations, written to the same formulas as the CPU
 * reference (core/backend-cpu.c), which every kernel here must match.
 *
 * Numerics: no fast-math anywhere (expf, tanhf, sqrt are the accurate
 * ones); reductions that the CPU does in double (norm statistics, the
 * softmax-backward dot, bias gradients) are done in double here too. */
#ifndef DIT_COMMON_CUH
#define DIT_COMMON_CUH

#include <cuda_runtime.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* Queue kernel k on grid x block in stream. The CPU emulator of
 * tests/gpu/emu defines its own before including this file. */
#ifndef DIT_LAUNCH
#define DIT_LAUNCH(k, grid, block, stream, ...) k<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

#define DIT_FULL_MASK 0xffffffffu

/* dit_act (core/internal/backend.h); backend-cuda.c asserts the values agree */
enum { ACT_NONE = 0, ACT_GELU_TANH = 1, ACT_SILU = 2, ACT_RELU = 3 };

/* Threads per block of the element-wise kernels. */
#define EW_BLOCK 256

/* Blocks for a grid-stride loop over n items: enough to fill the device,
 * never more than the items need. */
static inline unsigned ew_grid(size_t n)
{
    size_t g = (n + EW_BLOCK - 1) / EW_BLOCK;
    return g > 65536 ? 65536u : (unsigned)g;
}

/* The grid-stride loop of an element-wise kernel: i over [0, n). */
#define GRID_STRIDE(i, n)                                                                 \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);              \
         i += (size_t)gridDim.x * blockDim.x)

/* e^x with the argument clamped to [-87, 88] as dit_expf (core/internal/fastmath.h)
 * does, so results stay finite where the CPU's do; NaN passes through. */
static __device__ __forceinline__ float exp_clamped(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    return expf(x);
}

/* act(v) as backend-cpu.c's gelu_tanh_1 / silu_1 / relu_1 */
static __device__ __forceinline__ float act_apply(float v, int act)
{
    switch (act) {
    case ACT_GELU_TANH: {
        /* 0.5 v (1 + tanh(u)) = v * sigmoid(2u), u = sqrt(2/pi) (v + 0.044715 v^3) */
        const float k2 = 2.0f * 0.7978845608028654f;
        return v / (1.0f + exp_clamped(-k2 * (v + 0.044715f * v * v * v)));
    }
    case ACT_SILU:
        return v / (1.0f + exp_clamped(-v));
    case ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    default:
        return v;
    }
}

template <typename T>
static __device__ __forceinline__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(DIT_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(DIT_FULL_MASK, v, o));
    return v;
}

/* Sum over the block, returned to every thread. blockDim.x must be a
 * multiple of 32; every thread of the block must call it. The butterfly
 * leaves bitwise the same value in every lane. */
template <typename T>
static __device__ T block_sum(T v)
{
    __shared__ T part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* a previous call's readers are done with part */
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    return warp_sum(lane < nw ? part[lane] : (T)0);
}

static __device__ float block_max(float v)
{
    __shared__ float part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    return warp_max(lane < nw ? part[lane] : -INFINITY);
}

#endif
