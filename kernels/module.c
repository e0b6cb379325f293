/* The CUDA backend as a module (libdit-cuda.so): the one symbol libdit
 * looks up after opening it (core/device.c). */
#include "dit-cuda.h"

__attribute__((visibility("default"))) const dit_cuda_api *dit_cuda_module_api(void)
{
    static const dit_cuda_api api = {
        .version = DIT_CUDA_API_VERSION,
        .available = dit_cuda_available,
        .backend_new = dit_cuda_backend_new,
        .backend_free = dit_cuda_backend_free,
        .set_precision = dit_cuda_set_precision,
        .sync = dit_cuda_sync,
        .alloc = dit_cuda_alloc,
        .free = dit_cuda_free,
        .upload = dit_cuda_upload,
        .download = dit_cuda_download,
        .memset0 = dit_cuda_memset0,
    };
    return &api;
}
