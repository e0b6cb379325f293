/* config.json beside real weights (DiT and VAE), and scheduler JSON */
#include "fuzz-common.h"
#include "dit.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir_dit, *dir_vae;

static void setup(void)
{
    if (dir_dit)
        return;
    /* G_TEST_SRCDIR/golden has the tiny fixtures */
    const char *src = g_getenv("G_TEST_SRCDIR");
    char *wd = g_build_filename(src ? src : "tests", "golden", "dit_diffusers_p2",
                                "diffusion_pytorch_model.safetensors", NULL);
    char *wv = g_build_filename(src ? src : "tests", "golden", "vae_kl",
                                "diffusion_pytorch_model.safetensors", NULL);
    dir_dit = g_dir_make_tmp("fuzz-dit-XXXXXX", NULL);
    dir_vae = g_dir_make_tmp("fuzz-vae-XXXXXX", NULL);
    char *ld = g_build_filename(dir_dit, "diffusion_pytorch_model.safetensors", NULL);
    char *lv = g_build_filename(dir_vae, "diffusion_pytorch_model.safetensors", NULL);
    if (symlink(wd, ld) || symlink(wv, lv))
        abort();
    g_free(wd), g_free(wv), g_free(ld), g_free(lv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    dit_ctx *ctx = dit_ctx_new();
    const char *dirs[2] = {dir_dit, dir_vae};
    for (int k = 0; k < 2; k++) {
        char *cfg = g_build_filename(dirs[k], "config.json", NULL);
        g_file_set_contents(cfg, (const char *)data, (gssize)size, NULL);
        if (k == 0) {
            dit_model *m = NULL;
            if (dit_model_load(ctx, dirs[k], &m) == DIT_OK)
                dit_model_free(m);
        } else {
            dit_vae *v = NULL;
            if (dit_vae_load(ctx, dirs[k], &v) == DIT_OK)
                dit_vae_free(v);
        }
        g_free(cfg);
    }
    char *text = g_strndup((const char *)data, size); /* scheduler configs are strings */
    dit_sched_config c;
    memset(&c, 0, sizeof c);
    dit_sched_config_from_json(ctx, "fuzz", text, &c);
    g_free(text);
    dit_ctx_free(ctx);
    return 0;
}
