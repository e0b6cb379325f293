/* training checkpoints (dit train --resume) */
#include "internal/train.h"
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    dit_ctx *ctx = dit_ctx_new();
    dit_trainer *tr = NULL;
    if (dit_trainer_load(ctx, path, &tr) == DIT_OK)
        dit_trainer_free(tr);
    dit_ctx_free(ctx);
    close(fd);
    return 0;
}
