/* kernels/ compiled for the CPU emulator: the .cu files, unchanged, as one
 * C++ translation unit against this folder's cuda_runtime.h (which defines
 * DIT_LAUNCH and the device built-ins). Kernel and helper names are unique
 * across kernels/, which this unity build checks. */
#include "../../../kernels/activation.cu"
#include "../../../kernels/backward.cu"
#include "../../../kernels/elementwise.cu"
#include "../../../kernels/embed.cu"
#include "../../../kernels/image.cu"
#include "../../../kernels/linear.cu"
#include "../../../kernels/norm.cu"
#include "../../../kernels/optim.cu"
#include "../../../kernels/patch.cu"
#include "../../../kernels/tokens.cu"
