/* Training gradients against PyTorch autograd (tests/golden/gen.py):
 *   train_grad.io.safetensors          official DiT (adaLN-Zero), eps-MSE and x0-L1
 *   train_variant_*.io.safetensors     adaLN, in-context, cross-attention,
 *                                      unconditional, and a learned-sigma model
 *                                      with the official hybrid loss (eps-MSE + VLB);
 *                                      one block, eps-MSE only (the fixture budget)
 * Tiny models with random weights everywhere, one batch of 2. Every file:
 * the loss within 1e-5, every parameter gradient within 1e-4 of its max; the
 * variant files also the inference forward (dit_model_forward) within 1e-4. */
#include "common.h"
#include "internal/train.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static bool is_io(const char *n)
{
    return strchr(n, '/') || !strcmp(n, "x") || !strcmp(n, "t") || !strcmp(n, "y") ||
           !strcmp(n, "target") || !strcmp(n, "x_start") || !strcmp(n, "out") ||
           g_str_has_prefix(n, "loss");
}

/* file, its conditioning, classes, learned sigma, and the least number of
 * gradient tensors each loss must compare */
typedef struct {
    const char *file;
    dit_conditioning cond;
    int num_classes, learn_sigma, min_tensors;
} fixture;

static void run(dit_ctx *ctx, const fixture *fx)
{
    char *path = fixture_path(fx->file);
    tensor_list all;
    if (!tl_load(ctx, path, &all)) {
        CHECK(false, "%s (regenerate with tests/golden/gen.py)", dit_last_error(ctx));
        g_free(path);
        return;
    }
    printf("== %s\n", fx->file);
    /* the weights: every tensor that is not an input, output, loss or gradient */
    tensor_list w = {0};
    for (size_t i = 0; i < all.n; i++)
        if (!is_io(all.t[i].name))
            tl_add(&w, all.t[i].name, ST_F32, all.t[i].ndim, all.t[i].shape, all.t[i].data);
    tl_set_meta(&w, "num_attention_heads", "2");
    char *dir = tmpdir_new();
    char *mpath = g_build_filename(dir, "m.safetensors", NULL);
    dit_model *m = NULL;
    CHECK(tl_write(ctx, &w, mpath) == DIT_OK && dit_model_load(ctx, mpath, &m) == DIT_OK, "%s",
          dit_last_error(ctx));
    if (!m)
        goto out;
    /* the loader tells the variant from the tensors alone (no conditioning key) */
    CHECK(m->cfg.conditioning == fx->cond && m->cfg.num_classes == fx->num_classes &&
              m->cfg.learn_sigma == fx->learn_sigma,
          "%s: loaded as %s, %d classes, learn_sigma %d", fx->file,
          dit_conditioning_name(m->cfg.conditioning), m->cfg.num_classes, m->cfg.learn_sigma);
    m->pos_embed = NULL; /* the frozen table equals the computed one; gradients do not flow */
    size_t nx = 0;
    const float *x = tl_data(&all, "x", &nx), *tt = tl_data(&all, "t", NULL);
    const float *yf = tl_data(&all, "y", NULL), *target = tl_data(&all, "target", NULL);
    const float *x_start = tl_data(&all, "x_start", NULL), *ref_out = tl_data(&all, "out", NULL);
    int32_t y[2] = {(int32_t)lrintf(yf[0]), (int32_t)lrintf(yf[1])};
    const int S = m->cfg.sample_size;

    if (ref_out) { /* the inference forward of the same model */
        const size_t n_out = (size_t)2 * m->cfg.out_channels * S * S;
        float *out = malloc(n_out * sizeof *out);
        CHECK(dit_model_forward(ctx, m, 2, S, S, x, tt, y, out) == DIT_OK, "%s",
              dit_last_error(ctx));
        CHECK(compare_rel("forward", out, ref_out, n_out, 1e-4), "%s: forward", fx->file);
        free(out);
    }
    static const struct {
        const char *prefix, *loss;
        dit_objective obj;
    } losses[] = {{"grad_mse/", "loss_mse", DIT_OBJ_EPS_MSE},
                  {"grad_l1/", "loss_l1", DIT_OBJ_X0_L1},
                  {"grad_hybrid/", "loss_hybrid", DIT_OBJ_EPS_MSE}};
    int n_losses = 0;
    for (size_t k = 0; k < G_N_ELEMENTS(losses); k++) {
        const float *ref_loss = tl_data(&all, losses[k].loss, NULL);
        if (!ref_loss)
            continue;
        n_losses++;
        dit_train_config tc;
        dit_train_config_default(&tc); /* linear 1e-4..0.02, 1000 levels: the official DiT's */
        tc.batch = 2;
        tc.objective = losses[k].obj;
        dit_trainer *tr = NULL;
        CHECK(dit_trainer_new(ctx, m, &tc, &tr) == DIT_OK, "%s", dit_last_error(ctx));
        if (!tr)
            continue;
        float loss = NAN;
        CHECK(dit_trainer_grad(ctx, tr, x, tt, y, target, x_start, &loss) == DIT_OK, "%s",
              dit_last_error(ctx));
        printf("%s: ours %.7f, PyTorch %.7f\n", losses[k].loss, (double)loss, (double)ref_loss[0]);
        CHECK(fabsf(loss - ref_loss[0]) <= 1e-5f * fabsf(ref_loss[0]), "%s differs",
              losses[k].loss);
        int tensors = 0;
        for (size_t i = 0; i < all.n; i++) {
            if (!g_str_has_prefix(all.t[i].name, losses[k].prefix))
                continue;
            const char *name = all.t[i].name + strlen(losses[k].prefix);
            size_t n = 0;
            const float *p = dit_model_find(m, name, &n);
            if (!p) {
                CHECK(false, "no parameter %s", name);
                continue;
            }
            const float *g = dit_trainer_grads(tr) + (p - m->params);
            char label[96];
            snprintf(label, sizeof label, "%s%s", losses[k].prefix, name);
            double max_ref = 0;
            for (size_t j = 0; j < n; j++)
                max_ref = fmax(max_ref, fabs(all.t[i].data[j]));
            if (max_ref == 0) { /* (one token: its softmax weight is 1, queries get nothing) */
                double max_ours = 0;
                for (size_t j = 0; j < n; j++)
                    max_ours = fmax(max_ours, fabs(g[j]));
                CHECK(max_ours == 0, "%s: PyTorch's gradient is 0, ours %g", label, max_ours);
            } else {
                CHECK(compare_rel(label, g, all.t[i].data, n, 1e-4), "%s", label);
            }
            tensors++;
        }
        CHECK(tensors >= fx->min_tensors, "only %d gradient tensors compared", tensors);
        dit_trainer_free(tr);
    }
    CHECK(n_losses > 0, "%s holds no loss", fx->file);
    if (fx->cond == DIT_COND_ADALN_ZERO && !fx->learn_sigma && fx->num_classes) {
        /* bf16 activations: the same gradients to bf16 accuracy, but not the same bits */
        dit_train_config tc;
        dit_train_config_default(&tc);
        tc.batch = 2;
        dit_trainer *t32 = NULL, *t16 = NULL;
        dit_trainer_new(ctx, m, &tc, &t32);
        tc.bf16_activations = true;
        dit_trainer_new(ctx, m, &tc, &t16);
        float l32 = 0, l16 = 0;
        if (t32 && t16 && dit_trainer_grad(ctx, t32, x, tt, y, target, NULL, &l32) == DIT_OK &&
            dit_trainer_grad(ctx, t16, x, tt, y, target, NULL, &l16) == DIT_OK) {
            const size_t n = m->param_floats;
            CHECK(compare_rel("bf16 activations: gradient block vs fp32", dit_trainer_grads(t16),
                              dit_trainer_grads(t32), n, 2e-2),
                  "bf16 activations drift too far");
            CHECK(memcmp(dit_trainer_grads(t16), dit_trainer_grads(t32), n * sizeof(float)) != 0,
                  "bf16 activations changed nothing");
            printf("loss fp32 %.7f, bf16 activations %.7f\n", (double)l32, (double)l16);
        } else {
            CHECK(false, "%s", dit_last_error(ctx));
        }
        dit_trainer_free(t32);
        dit_trainer_free(t16);
    }
out:
    dit_model_free(m);
    tl_free(&w);
    tl_free(&all);
    tmpdir_remove(dir);
    g_free(mpath);
    g_free(path);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    static const fixture fixtures[] = {
        {"train_grad.io.safetensors", DIT_COND_ADALN_ZERO, 3, 0, 31},
        {"train_variant_adaln.io.safetensors", DIT_COND_ADALN, 3, 0, 21},
        {"train_variant_in_context.io.safetensors", DIT_COND_IN_CONTEXT, 3, 0, 17},
        {"train_variant_cross_attn.io.safetensors", DIT_COND_CROSS_ATTN, 3, 0, 23},
        {"train_variant_uncond.io.safetensors", DIT_COND_ADALN_ZERO, 0, 0, 20},
        {"train_variant_uncond_cross_attn.io.safetensors", DIT_COND_CROSS_ATTN, 0, 0, 22},
        {"train_variant_hybrid.io.safetensors", DIT_COND_ADALN_ZERO, 3, 1, 21},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(fixtures); i++)
        run(ctx, &fixtures[i]);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
