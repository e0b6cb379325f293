/* Trainer: a short run learns (loss falls on a fixed batch), N steps straight
 * equal N/2 + checkpoint + resume + N/2 bit for bit, and a checkpoint cut
 * at any byte is refused while the complete one still loads. */
#include "common.h"
#include "internal/train.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static const dit_config tiny = {.in_channels = 1,
                                .sample_size = 8,
                                .patch_size = 2,
                                .hidden_size = 32,
                                .depth = 2,
                                .num_heads = 2,
                                .mlp_hidden = 64,
                                .num_classes = 3,
                                .freq_dim = 32};

static dit_trainer *new_trainer(dit_ctx *ctx, dit_model **m, dit_objective obj)
{
    CHECK(dit_model_create(ctx, &tiny, m) == DIT_OK, "%s", dit_last_error(ctx));
    dit_model_init_weights(*m, 11, 0.5f);
    dit_train_config tc;
    dit_train_config_default(&tc);
    tc.batch = 4, tc.lr = 3e-3, tc.warmup = 2, tc.grad_clip = 1.0, tc.ema_decay = 0.9;
    tc.objective = obj;
    if (obj == DIT_OBJ_X0_L1) {
        tc.sched.schedule = DIT_SCHEDULE_COSINE_ALPHABAR;
        tc.sched.train_steps = 50;
    }
    tc.seed = 5;
    dit_trainer *tr = NULL;
    CHECK(dit_trainer_new(ctx, *m, &tc, &tr) == DIT_OK, "%s", dit_last_error(ctx));
    return tr;
}

/* data for step s: a function of s only */
static void batch(int64_t s, float *imgs, int32_t *labels)
{
    dit_randn(99, (uint32_t)s, 0, 4 * 64, imgs);
    for (int b = 0; b < 4; b++)
        labels[b] = (int32_t)((s + b) % 3);
}

static bool same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    char *dir = tmpdir_new();
    float imgs[4 * 64];
    int32_t labels[4];

    /* learning: 60 steps on one fixed batch bring the loss down */
    for (int o = 0; o < 2; o++) {
        dit_model *m = NULL;
        dit_trainer *tr = new_trainer(ctx, &m, o ? DIT_OBJ_X0_L1 : DIT_OBJ_EPS_MSE);
        batch(0, imgs, labels);
        double first = 0, last = 0;
        for (int s = 0; s < 60; s++) {
            float l;
            CHECK(dit_trainer_step(ctx, tr, imgs, labels, &l) == DIT_OK, "%s", dit_last_error(ctx));
            if (s < 10)
                first += l / 10;
            if (s >= 50)
                last += l / 10;
        }
        printf("%s: mean loss of steps 1-10 %.4f, of steps 51-60 %.4f\n", o ? "x0_l1" : "eps_mse",
               first, last);
        CHECK(last < 0.8 * first, "the loss did not fall");
        dit_trainer_free(tr);
        dit_model_free(m);
    }

    /* resume: 8 straight vs 4 + save + load + 4 */
    dit_model *ma = NULL, *mb = NULL;
    dit_trainer *a = new_trainer(ctx, &ma, DIT_OBJ_X0_L1),
                *b = new_trainer(ctx, &mb, DIT_OBJ_X0_L1);
    for (int s = 0; s < 8; s++) {
        batch(s, imgs, labels);
        dit_trainer_step(ctx, a, imgs, labels, NULL);
    }
    for (int s = 0; s < 4; s++) {
        batch(s, imgs, labels);
        dit_trainer_step(ctx, b, imgs, labels, NULL);
    }
    char *ckpt = g_build_filename(dir, "ckpt.safetensors", NULL);
    CHECK(dit_trainer_save(ctx, b, ckpt) == DIT_OK, "%s", dit_last_error(ctx));
    dit_trainer_free(b);
    dit_model_free(mb);
    dit_trainer *r = NULL;
    CHECK(dit_trainer_load(ctx, ckpt, &r) == DIT_OK, "%s", dit_last_error(ctx));
    if (r) {
        CHECK(dit_trainer_step_count(r) == 4, "resumed at step %lld",
              (long long)dit_trainer_step_count(r));
        for (int64_t s = dit_trainer_step_count(r); s < 8; s++) {
            batch(s, imgs, labels);
            dit_trainer_step(ctx, r, imgs, labels, NULL);
        }
        const size_t n = dit_trainer_model(r)->param_floats;
        const bool w = same(dit_trainer_model(r)->params, ma->params, n);
        const bool e = same(dit_trainer_ema(r), dit_trainer_ema(a), n);
        printf("8 steps straight vs 4 + resume + 4: weights %s, EMA %s\n",
               w ? "identical" : "DIFFER", e ? "identical" : "DIFFER");
        CHECK(w && e, "resume is not bit-identical");
    }

    /* a checkpoint cut at any byte is refused; the complete one still loads */
    char *bytes = NULL;
    gsize len = 0;
    g_file_get_contents(ckpt, &bytes, &len, NULL);
    /* every byte through the JSON header and a little past it, then ~500
     * evenly spaced cuts through the tensor data */
    char *cut_path = g_build_filename(dir, "cut.safetensors", NULL);
    const gsize header_end = len >= 8 ? 8 + (gsize)((const guint8 *)bytes)[0] +
                                            ((gsize)((const guint8 *)bytes)[1] << 8) +
                                            ((gsize)((const guint8 *)bytes)[2] << 16)
                                      : 0;
    const gsize stride = len / 500 > 0 ? len / 500 : 1;
    int n_cuts = 0;
    for (gsize cut = 0; cut < len;) {
        g_file_set_contents(cut_path, bytes, (gssize)cut, NULL);
        dit_trainer *t = NULL;
        dit_status st = dit_trainer_load(ctx, cut_path, &t);
        if (cut == 0 || cut == header_end || cut == len - 1)
            printf("checkpoint cut at byte %zu of %zu -> %s: %s\n", (size_t)cut, (size_t)len,
                   dit_status_name(st), dit_last_error(ctx));
        CHECK(st != DIT_OK && !t && strstr(dit_last_error(ctx), "cut.safetensors"),
              "a checkpoint cut at byte %zu was accepted", (size_t)cut);
        dit_trainer_free(t);
        n_cuts++;
        const gsize next = cut < header_end + 64 ? cut + 1 : cut + stride;
        cut = next >= len && cut < len - 1 ? len - 1 : next; /* the last byte too */
    }
    printf("%d truncations refused (every byte up to %zu, then every %zu)\n", n_cuts,
           (size_t)header_end + 64, (size_t)stride);
    dit_trainer *t = NULL;
    CHECK(dit_trainer_load(ctx, ckpt, &t) == DIT_OK, "the complete checkpoint no longer loads");
    dit_trainer_free(t);
    /* a model file is not a checkpoint */
    char *other = fixture_path("dit_official_p8.safetensors");
    CHECK(dit_trainer_load(ctx, other, &t) == DIT_ERR_FORMAT &&
              strstr(dit_last_error(ctx), "not a dit training checkpoint"),
          "%s", dit_last_error(ctx));
    g_free(other);
    g_free(bytes);
    g_free(cut_path);
    g_free(ckpt);
    dit_trainer_free(r);
    dit_trainer_free(a);
    dit_model_free(ma);
    tmpdir_remove(dir);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
