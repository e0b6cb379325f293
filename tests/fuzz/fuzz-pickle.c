/* torch.save zips and the pickle subset of dit convert */
#include "fuzz-common.h"
#include "dit.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <stdbool.h>

int dit_convert_pt(const char *in, const char *output, const char *key, int heads, bool quiet);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *out;
    if (!out) {
        char *dir = g_dir_make_tmp("fuzz-pt-XXXXXX", NULL);
        out = g_build_filename(dir, "out.safetensors", NULL);
        g_free(dir);
    }
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    FILE *saved = stderr; /* the converter reports to stderr: keep the run quiet */
    stderr = fopen("/dev/null", "w");
    dit_convert_pt(path, out, NULL, 0, true);
    fclose(stderr);
    stderr = saved;
    g_unlink(out);
    close(fd);
    return 0;
}
