/* dit_ctx_set_device("cuda") on a GPU this build cannot serve, through the
 * CUDA emulator (emu/): a compute capability older than the oldest machine
 * code, or a device without a loadable kernel image, is refused with a
 * message naming the GPU, and "auto" falls back to the CPU; a GPU it can
 * serve is taken. */
#include "common.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void expect(const char *what, bool usable, const char *needle)
{
    dit_ctx *ctx = dit_ctx_new();
    const dit_status st = dit_ctx_set_device(ctx, "cuda");
    printf("%-28s cuda: %s %s\n", what, dit_status_name(st), st ? dit_last_error(ctx) : "");
    if (usable) {
        CHECK(st == DIT_OK && strcmp(dit_ctx_device(ctx), "cuda") == 0, "%s: %s", what,
              dit_last_error(ctx));
    } else {
        CHECK(st == DIT_ERR_UNSUPPORTED, "%s: status %s", what, dit_status_name(st));
        CHECK(strstr(dit_last_error(ctx), "CPU emulator") && strstr(dit_last_error(ctx), needle),
              "%s: the message names the GPU and '%s': %s", what, needle, dit_last_error(ctx));
        CHECK(strcmp(dit_ctx_device(ctx), "cpu") == 0, "%s: the device changed", what);
        dit_ctx *a = dit_ctx_new();
        CHECK(dit_ctx_set_device(a, "auto") == DIT_OK && strcmp(dit_ctx_device(a), "cpu") == 0,
              "%s: auto falls back to the CPU", what);
        dit_ctx_free(a);
    }
    dit_ctx_free(ctx);
}

int main(void)
{
    expect("a Hopper-like device", true, NULL);
    g_setenv("DIT_EMU_CC", "7.0", TRUE);
    expect("compute capability 7.0", false, "compute capability 7.0");
    g_setenv("DIT_EMU_CC", "7.5", TRUE);
    expect("compute capability 7.5", true, NULL);
    g_unsetenv("DIT_EMU_CC");
    g_setenv("DIT_EMU_NO_IMAGE", "1", TRUE);
    expect("no kernel image", false, "no kernel image");
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
