/* IDX image + label files (Fashion-MNIST's format); the first byte splits
 * the input into the two files */
#include "data.h"
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const size_t cut = size > 1 ? 1 + (size_t)data[0] * (size - 1) / 255 : 1;
    char ip[64], lp[64];
    int fi = fuzz_file(data + 1, cut - 1, ip, sizeof ip);
    int fl = fuzz_file(data + cut, size - cut, lp, sizeof lp);
    dataset d;
    GError *err = NULL;
    if (fi >= 0 && fl >= 0) {
        if (dataset_load_idx(ip, lp, 32, &d, &err))
            dataset_clear(&d);
        else
            g_clear_error(&err);
    }
    if (fi >= 0)
        close(fi);
    if (fl >= 0)
        close(fl);
    return 0;
}
