/* CPU emulator of CUDA C++ device code, enough for kernels/: the .cu files
 * compile unchanged with g++ against this header (tests/gpu/emu/
 * kernels-emu.cc). A launch runs every block of the grid in turn; the
 * threads of a block are fibers (ucontext) on one OS thread, switched at
 * __syncthreads and at warp shuffles, so barriers, shared memory and
 * shuffles behave as on a GPU, in one fixed order. Barrier divergence (some
 * threads waiting where others never arrive) aborts with a message instead
 * of hanging. __shared__ variables become function statics: one block runs
 * at a time, so that is one copy per block, as on a GPU. */
#ifndef DIT_EMU_CUDA_RUNTIME_H
#define DIT_EMU_CUDA_RUNTIME_H

#include "cuda_runtime_api.h"

#ifdef __cplusplus
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <tuple>
#include <utility>

namespace emu
{
extern uint3 thread_idx, block_idx;
extern dim3 block_dim, grid_dim;
extern uint64_t warp_slot[1024];
/* Runs body once per thread of every block; launch errors go to
 * cudaGetLastError as on a GPU. */
void run(dim3 grid, dim3 block, const std::function<void()> &body);
void syncthreads();
/* barrier of the calling thread's warp (its live lanes) */
void warp_barrier();

inline unsigned linear_tid()
{
    return thread_idx.x + block_dim.x * (thread_idx.y + block_dim.y * thread_idx.z);
}

template <typename T> inline T exchange(T v, unsigned src_lane)
{
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a type wider than 64 bits");
    const unsigned me = linear_tid();
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    warp_slot[me] = bits;
    warp_barrier();
    const uint64_t got = warp_slot[(me & ~31u) + src_lane];
    warp_barrier(); /* nobody overwrites a slot before every lane has read it */
    T r;
    memcpy(&r, &got, sizeof r);
    return r;
}

template <typename... P, typename... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, A... args)
{
    std::tuple<P...> t(static_cast<P>(args)...);
    run(grid, block, [&]() { std::apply(kernel, t); });
}
} // namespace emu

#define threadIdx (::emu::thread_idx)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __syncthreads() ::emu::syncthreads()
#define __syncwarp(...) ::emu::warp_barrier()

template <typename T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    (void)mask;
    const unsigned lane = ::emu::linear_tid() & 31u;
    unsigned src = lane ^ (unsigned)lane_mask;
    /* a source in a later width-group gives the caller's own value */
    if ((src & ~(unsigned)(width - 1)) > (lane & ~(unsigned)(width - 1)))
        src = lane;
    return ::emu::exchange(v, src & 31u);
}

template <typename T> inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32)
{
    (void)mask;
    const unsigned lane = ::emu::linear_tid() & 31u;
    const unsigned src = (lane & ~(unsigned)(width - 1)) + ((unsigned)src_lane % (unsigned)width);
    return ::emu::exchange(v, src);
}

inline float atomicAdd(float *p, float v)
{
    const float old = *p;
    *p = old + v;
    return old;
}

inline double atomicAdd(double *p, double v)
{
    const double old = *p;
    *p = old + v;
    return old;
}

#define DIT_LAUNCH(k, grid, block, stream, ...)                                                    \
    ((void)(stream), ::emu::launch(k, dim3(grid), dim3(block), __VA_ARGS__))

#endif /* __cplusplus */

#endif
