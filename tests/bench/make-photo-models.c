/* Writes, with fixed-seed weights, the downloads "Photo models" in the
 * README names, in their real layouts, for the photo-models test:
 *   DIR/sd-vae-ft-ema/      an SD-VAE-shaped AutoencoderKL diffusers folder
 *   DIR/DiT-XL-2-256/       a facebook/DiT-XL-2-256-style pipeline folder:
 *                           transformer/ (DiT-XL/2, DEPTH blocks), vae/ (hard
 *                           links to the VAE above), scheduler/
 * The official .pt checkpoints come from make-dit-pt.py.
 * usage: make-photo-models DIR DEPTH */
#include "bench-util.h"
#include "common.h"

#include <glib/gstdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make-photo-models DIR DEPTH\n");
        return 2;
    }
    dit_ctx *ctx = dit_ctx_new();
    char *vae = g_build_filename(argv[1], "sd-vae-ft-ema", NULL);
    char *repo = g_build_filename(argv[1], "DiT-XL-2-256", NULL);
    char *tr = g_build_filename(repo, "transformer", NULL),
         *rv = g_build_filename(repo, "vae", NULL);
    char *sch = g_build_filename(repo, "scheduler", NULL);
    bool ok = g_mkdir_with_parents(vae, 0755) == 0 && g_mkdir_with_parents(tr, 0755) == 0 &&
              g_mkdir_with_parents(rv, 0755) == 0 && g_mkdir_with_parents(sch, 0755) == 0 &&
              bench_write_sd_vae(ctx, vae) && bench_write_dit_xl(ctx, tr, atoi(argv[2]));
    static const char *const files[] = {"config.json", "diffusion_pytorch_model.safetensors"};
    for (int i = 0; ok && i < 2; i++) {
        char *from = g_build_filename(vae, files[i], NULL),
             *to = g_build_filename(rv, files[i], NULL);
        ok = link(from, to) == 0;
        g_free(from), g_free(to);
    }
    char *cfg = g_build_filename(sch, "scheduler_config.json", NULL);
    ok = ok && g_file_set_contents(cfg,
                                   "{\"_class_name\": \"DDIMScheduler\", \"beta_schedule\": "
                                   "\"linear\", \"beta_start\": 0.0001, \"beta_end\": 0.02, "
                                   "\"num_train_timesteps\": 1000}\n",
                                   -1, NULL);
    if (!ok)
        fprintf(stderr, "make-photo-models: %s\n", dit_last_error(ctx));
    g_free(cfg), g_free(vae), g_free(repo), g_free(tr), g_free(rv), g_free(sch);
    dit_ctx_free(ctx);
    return ok ? 0 : 1;
}
