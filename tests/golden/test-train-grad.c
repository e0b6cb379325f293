/* Training gradients against PyTorch autograd (train_grad.io.safetensors):
 * a tiny official DiT with random weights everywhere, one batch, eps-MSE and
 * x0-L1 losses; every parameter gradient within 1e-4 of its max. */
#include "common.h"
#include "dit-train.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    char *path = fixture_path("train_grad.io.safetensors");
    tensor_list all;
    if (!tl_load(ctx, path, &all)) {
        fprintf(stderr, "%s (regenerate with tests/golden/gen.py)\n", dit_last_error(ctx));
        return 1;
    }
    /* the weights: every tensor that is not an input, a loss or a gradient */
    tensor_list w = {0};
    for (size_t i = 0; i < all.n; i++) {
        const char *n = all.t[i].name;
        if (strchr(n, '/') || !strcmp(n, "x") || !strcmp(n, "t") || !strcmp(n, "y") ||
            !strcmp(n, "target") || g_str_has_prefix(n, "loss"))
            continue;
        tl_add(&w, n, ST_F32, all.t[i].ndim, all.t[i].shape, all.t[i].data);
    }
    tl_set_meta(&w, "num_attention_heads", "2");
    char *dir = tmpdir_new();
    char *mpath = g_build_filename(dir, "m.safetensors", NULL);
    dit_model *m = NULL;
    CHECK(tl_write(ctx, &w, mpath) == DIT_OK && dit_model_load(ctx, mpath, &m) == DIT_OK, "%s",
          dit_last_error(ctx));
    if (!m)
        return 1;
    m->pos_embed = NULL; /* the frozen table equals the computed one; gradients do not flow */
    const float *x = tl_data(&all, "x", NULL), *tt = tl_data(&all, "t", NULL);
    const float *yf = tl_data(&all, "y", NULL), *target = tl_data(&all, "target", NULL);
    int32_t y[2] = {(int32_t)lrintf(yf[0]), (int32_t)lrintf(yf[1])};
    static const struct {
        const char *prefix, *loss;
        dit_objective obj;
    } losses[] = {{"grad_mse/", "loss_mse", DIT_OBJ_EPS_MSE}, {"grad_l1/", "loss_l1", DIT_OBJ_X0_L1}};
    for (size_t k = 0; k < G_N_ELEMENTS(losses); k++) {
        dit_train_config tc;
        dit_train_config_default(&tc);
        tc.batch = 2;
        tc.objective = losses[k].obj;
        dit_trainer *tr = NULL;
        CHECK(dit_trainer_new(ctx, m, &tc, &tr) == DIT_OK, "%s", dit_last_error(ctx));
        float loss;
        dit_trainer_grad(ctx, tr, x, tt, y, target, NULL, &loss);
        const float ref_loss = tl_data(&all, losses[k].loss, NULL)[0];
        printf("%s: ours %.7f, PyTorch %.7f\n", losses[k].loss, (double)loss, (double)ref_loss);
        CHECK(fabsf(loss - ref_loss) <= 1e-5f * fabsf(ref_loss), "%s differs", losses[k].loss);
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
            CHECK(compare_rel(label, g, all.t[i].data, n, 1e-4), "%s", label);
            tensors++;
        }
        CHECK(tensors >= 31, "only %d gradient tensors compared", tensors);
        dit_trainer_free(tr);
    }
    dit_model_free(m);
    tl_free(&w);
    tl_free(&all);
    tmpdir_remove(dir);
    g_free(mpath);
    g_free(path);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
