/* Activations: GELU (tanh approximation), SiLU and ReLU, element-wise, with
 * the formulas of backend-cpu.c (act_apply in common.cuh). Their backward
 * is in backward.cu; the fused forms live in the ops that use them (linear
 * epilogue, GroupNorm + SiLU, add_act). */
#include "common.cuh"

/* ---- kernels ------------------------------------------------------------- */

/* out (n) = act(in (n)); out may equal in */
__global__ void act_kernel(float *out, const float *in, size_t n, int act)
{
    GRID_STRIDE(i, n)
    out[i] = act_apply(in[i], act);
}

/* ---- launchers ------------------------------------------------------------ */

extern "C" cudaError_t dit_cu_act(cudaStream_t stream, float *out, const float *in, size_t n,
                                  int act)
{
    if (n == 0 || (act == ACT_NONE && out == in))
        return cudaSuccess;
    DIT_LAUNCH(act_kernel, ew_grid(n), EW_BLOCK, stream, out, in, n, act);
    return cudaGetLastError();
}
