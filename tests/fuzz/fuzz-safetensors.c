/* safetensors header + layout validation, then reading every tensor */
#include "fuzz-common.h"
#include "internal/safetensors.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    dit_ctx *ctx = dit_ctx_new();
    st_file *f = NULL;
    if (st_open(ctx, path, &f) == DIT_OK) {
        for (size_t i = 0; i < f->n; i++) {
            const st_tensor *t = &f->tensors[i];
            if (t->n_elements > (1u << 20))
                continue;
            float *buf = malloc((t->n_elements ? t->n_elements : 1) * sizeof *buf);
            st_read_f32(ctx, f, t, buf);
            free(buf);
        }
        (void)st_meta(f, "config");
        st_close(f);
    }
    /* the same bytes as a model: config resolution and the loader's checks */
    dit_model *m = NULL;
    if (dit_model_load(ctx, path, &m) == DIT_OK)
        dit_model_free(m);
    dit_vae *v = NULL;
    if (dit_vae_load(ctx, path, &v) == DIT_OK)
        dit_vae_free(v);
    dit_ctx_free(ctx);
    close(fd);
    return 0;
}
