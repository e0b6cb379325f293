/* Gradients of the whole DiT training step against central finite
 * differences: every parameter tensor is probed (a few elements each) on a
 * tiny model with random weights everywhere (adaLN-Zero's zeros would hide
 * most of the backward pass). */
#include "common.h"
#include "internal/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static double loss_at(dit_ctx *ctx, dit_trainer *tr, const float *x, const float *t,
                      const int32_t *y, const float *target)
{
    float l;
    dit_trainer_grad(ctx, tr, x, t, y, target, NULL, &l);
    return l;
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    dit_ctx_set_threads(ctx, 1);
    dit_config c = {.in_channels = 2,
                    .sample_size = 8,
                    .patch_size = 2,
                    .hidden_size = 32,
                    .depth = 2,
                    .num_heads = 2,
                    .mlp_hidden = 64,
                    .num_classes = 3,
                    .freq_dim = 16,
                    .learn_sigma = 0};
    dit_model *m = NULL;
    CHECK(dit_model_create(ctx, &c, &m) == DIT_OK, "%s", dit_last_error(ctx));
    if (!m)
        return 1;
    dit_randn(7, 0, 0, m->param_floats, m->params);
    for (size_t i = 0; i < m->param_floats; i++)
        m->params[i] *= 0.2f;
    dit_train_config tc;
    dit_train_config_default(&tc);
    tc.batch = 2;
    dit_trainer *tr = NULL;
    CHECK(dit_trainer_new(ctx, m, &tc, &tr) == DIT_OK, "%s", dit_last_error(ctx));
    const size_t n_in = (size_t)2 * 2 * 8 * 8;
    float *x = malloc(n_in * sizeof *x), *target = malloc(n_in * sizeof *target);
    dit_randn(1, 1, 0, n_in, x);
    dit_randn(1, 2, 0, n_in, target);
    float t[2] = {3.0f, 617.0f};
    int32_t y[2] = {1, 3};

    float l0;
    dit_trainer_grad(ctx, tr, x, t, y, target, NULL, &l0);
    float *grads = malloc(m->param_floats * sizeof *grads);
    memcpy(grads, dit_trainer_grads(tr), m->param_floats * sizeof *grads);
    printf("loss %.6f\n", (double)l0);

    /* probe a few elements of every tensor (the block layout: each field) */
    struct {
        const char *name;
        float *p;
        size_t n;
    } probes[] = {
        {"x_embedder.proj.weight", m->x_embed_w, (size_t)32 * 8},
        {"x_embedder.proj.bias", m->x_embed_b, 32},
        {"t_embedder.mlp.0.weight", m->emb.t_mlp0_w, (size_t)32 * 16},
        {"t_embedder.mlp.2.weight", m->emb.t_mlp2_w, (size_t)32 * 32},
        {"t_embedder.mlp.2.bias", m->emb.t_mlp2_b, 32},
        {"y_embedder.embedding_table", m->emb.y_table, (size_t)4 * 32},
        {"blocks.0.adaLN_modulation.1.weight", m->blocks[0].ada_w, (size_t)192 * 32},
        {"blocks.0.adaLN_modulation.1.bias", m->blocks[0].ada_b, 192},
        {"blocks.0.attn.qkv.weight", m->blocks[0].qkv_w, (size_t)96 * 32},
        {"blocks.1.attn.qkv.bias", m->blocks[1].qkv_b, 96},
        {"blocks.1.attn.proj.weight", m->blocks[1].proj_w, (size_t)32 * 32},
        {"blocks.0.mlp.fc1.weight", m->blocks[0].fc1_w, (size_t)64 * 32},
        {"blocks.1.mlp.fc1.bias", m->blocks[1].fc1_b, 64},
        {"blocks.1.mlp.fc2.weight", m->blocks[1].fc2_w, (size_t)32 * 64},
        {"final_layer.adaLN_modulation.1.weight", m->final_ada_w, (size_t)64 * 32},
        {"final_layer.linear.weight", m->final_w, (size_t)8 * 32},
        {"final_layer.linear.bias", m->final_b, 8},
    };
    const double h = 1e-3;
    int checked = 0;
    double worst = 0;
    for (size_t pi = 0; pi < sizeof probes / sizeof probes[0]; pi++) {
        for (int k = 0; k < 6; k++) {
            const size_t i = (size_t)(k * 7919 + 13) % probes[pi].n;
            float *p = probes[pi].p + i;
            const float keep = *p;
            *p = keep + (float)h;
            const double lp = loss_at(ctx, tr, x, t, y, target);
            *p = keep - (float)h;
            const double lm = loss_at(ctx, tr, x, t, y, target);
            *p = keep;
            const double fd = (lp - lm) / (2 * h);
            const double an = grads[p - m->params];
            const double err = fabs(fd - an) / fmax(fmax(fabs(fd), fabs(an)), 1e-2);
            worst = fmax(worst, err);
            checked++;
            if (err > 2e-2) {
                printf("%s[%zu]: analytic %.6g finite-difference %.6g  NOT OK\n", probes[pi].name,
                       i, an, fd);
                failures++;
            }
        }
    }
    printf("%d gradient probes, worst relative error %.2e\n", checked, worst);
    CHECK(worst < 2e-2, "gradients disagree with finite differences");
    /* the null label's row gets gradient, an unused label's row none */
    const float *gy = grads + (m->emb.y_table - m->params);
    double used = 0, unused = 0;
    for (int i = 0; i < 32; i++) {
        used += fabs(gy[1 * 32 + i]) + fabs(gy[3 * 32 + i]);
        unused += fabs(gy[0 * 32 + i]) + fabs(gy[2 * 32 + i]);
    }
    CHECK(used > 0 && unused == 0, "label rows: used %g unused %g", used, unused);
    free(x), free(target), free(grads);
    dit_trainer_free(tr);
    dit_model_free(m);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
