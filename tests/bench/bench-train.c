/* Benchmark (not a test): training steps/s of the embedded model's DiT
 * (32x32x1, patch 4, width 128, depth 6, 4 heads, 10 classes; x0-L1 on the
 * flipped cosine schedule, AdamW, batch 128) on random data, against
 * torch_train_ref.py (the same architecture in PyTorch) with the same
 * threads and batch. Environment: DIT_BENCH_STEPS (20), DIT_THREADS,
 * DIT_BENCH_DEVICE and DIT_BENCH_PRECISION (bench-util.h), DIT_TORCH_PYTHON. */
#include "bench-util.h"
#include "common.h"
#include "internal/train.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    const int steps = env_int("DIT_BENCH_STEPS", 20), B = 128;
    const char *device, *precision;
    dit_ctx *ctx = bench_ctx_new(&device, &precision);
    if (!ctx)
        return 1;
    const int threads = dit_ctx_threads(ctx);
    dit_config c = {.in_channels = 1,
                    .sample_size = 32,
                    .patch_size = 4,
                    .hidden_size = 128,
                    .depth = 6,
                    .num_heads = 4,
                    .mlp_hidden = 512,
                    .num_classes = 10,
                    .freq_dim = 256};
    dit_model *m = NULL;
    if (dit_model_create(ctx, &c, &m) != DIT_OK)
        return 1;
    dit_model_init_weights(m, 0, 0.5f);
    dit_train_config tc;
    dit_train_config_default(&tc);
    tc.objective = DIT_OBJ_X0_L1;
    tc.sched.schedule = DIT_SCHEDULE_COSINE_ALPHABAR;
    tc.sched.train_steps = 500;
    tc.batch = B, tc.lr = 3e-4, tc.ema_decay = 0.999, tc.grad_clip = 1.0; /* dit train's */
    dit_trainer *tr = NULL;
    if (dit_trainer_new(ctx, m, &tc, &tr) != DIT_OK)
        return 1;
    float *imgs = random_floats((size_t)B * 1024, 1.0f);
    int32_t labels[128];
    for (int b = 0; b < B; b++)
        labels[b] = b % 10;
    dit_trainer_step(ctx, tr, imgs, labels, NULL); /* warm-up */
    const double t0 = now_ms();
    for (int s = 0; s < steps; s++)
        dit_trainer_step(ctx, tr, imgs, labels, NULL);
    const double sps = steps / ((now_ms() - t0) / 1e3);
    printf("libdit training: %zu parameters, batch %d, %s, %s: %.3f steps/s = %.0f img/s\n",
           dit_model_param_count(m), B, bench_where(ctx), precision, sps, sps * B);
    char th[16], st[16], bs[16];
    snprintf(th, sizeof th, "%d", threads);
    snprintf(st, sizeof st, "%d", steps);
    snprintf(bs, sizeof bs, "%d", B);
    const char *args[] = {"--threads",   th,        "--steps", st,         "--warmup",
                          "1",           "--batch", bs,        "--device", device,
                          "--precision", precision, NULL};
    char *json = run_reference("torch_train_ref.py", args);
    if (json) {
        const double tsps = json_number(json, "steps_per_s");
        printf("PyTorch reference: %s", json);
        printf("ratio vs PyTorch (same architecture, batch, %s): %.2fx %s\n",
               strcmp(device, "cpu") == 0 ? "threads" : "device", sps / tsps,
               sps >= tsps ? "(libdit faster)" : "(PyTorch faster)");
        g_free(json);
    }
    free(imgs);
    dit_trainer_free(tr);
    dit_model_free(m);
    dit_ctx_free(ctx);
    return 0;
}
