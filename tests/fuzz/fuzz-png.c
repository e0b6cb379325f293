/* PNG loading (images and masks) */
#include "fuzz-common.h"
#include "png-io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    png_data d;
    GError *err = NULL;
    if (png_load(path, &d, &err))
        png_data_clear(&d);
    else
        g_clear_error(&err);
    float *mask = NULL;
    int h, w;
    if (png_load_mask(path, &mask, &h, &w, &err))
        g_free(mask);
    else
        g_clear_error(&err);
    close(fd);
    return 0;
}
