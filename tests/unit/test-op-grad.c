/* Every backward op of the CPU backend against central finite differences
 * of its forward. For an op out = f(in_1, ..., in_k), the scalar
 * L = sum(w * out) with fixed random w has dL/d in_i = backward(dout = w);
 * each input is probed at its largest-gradient element and a few others.
 * float32 forward, h = 1e-2 (smooth ops): agreement within 1e-3 of the
 * input's largest gradient (a sign or index slip shows as O(1)). */
#include "common.h"
#include "internal/impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static const dit_backend *be;

#define MAX_IN 4
typedef struct op_case op_case;
struct op_case {
    const char *name;
    int n_in;
    const char *in_name[MAX_IN];
    float *in[MAX_IN];
    size_t n[MAX_IN];
    size_t n_out;
    int p[8]; /* shape parameters */
    void (*forward)(const op_case *c, float *out);
    /* fills grad[i] (zeroed, size n[i]) from dout (n_out) */
    void (*backward)(const op_case *c, const float *dout, float **grad);
};

static float *randn(size_t n, uint32_t stream, float scale)
{
    float *v = malloc(n * sizeof *v);
    dit_randn(42, stream, 0, n, v);
    for (size_t i = 0; i < n; i++)
        v[i] *= scale;
    return v;
}

static double weighted(const op_case *c, const float *w, float *out)
{
    c->forward(c, out);
    double s = 0;
    for (size_t i = 0; i < c->n_out; i++)
        s += (double)w[i] * out[i];
    return s;
}

static void check_op(op_case *c)
{
    float *w = randn(c->n_out, 900, 1.0f), *out = malloc(c->n_out * sizeof *out);
    float *grad[MAX_IN];
    for (int i = 0; i < c->n_in; i++)
        grad[i] = calloc(c->n[i], sizeof(float));
    c->backward(c, w, grad);
    double worst = 0;
    for (int i = 0; i < c->n_in; i++) {
        size_t arg = 0;
        double gmax = 0;
        for (size_t j = 0; j < c->n[i]; j++)
            if (fabs(grad[i][j]) > gmax)
                gmax = fabs(grad[i][j]), arg = j;
        CHECK(gmax > 0, "%s: gradient of %s is all zero", c->name, c->in_name[i]);
        const size_t probes[4] = {arg, 0, c->n[i] / 2, c->n[i] - 1};
        for (int k = 0; k < 4; k++) {
            const size_t j = probes[k];
            const float old = c->in[i][j], h = 1e-2f;
            c->in[i][j] = old + h;
            const double lp = weighted(c, w, out);
            c->in[i][j] = old - h;
            const double lm = weighted(c, w, out);
            c->in[i][j] = old;
            const double fd = (lp - lm) / (2.0 * h), err = fabs(fd - grad[i][j]) / gmax;
            if (err > 1e-3)
                printf("  %s d/d%s[%zu]: backward %.6g, finite difference %.6g  NOT OK\n", c->name,
                       c->in_name[i], j, (double)grad[i][j], fd);
            worst = fmax(worst, err);
        }
    }
    printf("%-40s worst |fd - backward| / max|grad| = %.2e %s\n", c->name, worst,
           worst <= 1e-3 ? "OK" : "NOT OK");
    CHECK(worst <= 1e-3, "%s", c->name);
    for (int i = 0; i < c->n_in; i++) {
        free(grad[i]);
        free(c->in[i]);
    }
    free(w);
    free(out);
}

/* ---- the ops: forward and backward wrappers -------------------------------- */

static void apply_act(dit_act act, float *out, const float *in, size_t n)
{
    if (act == DIT_ACT_GELU_TANH)
        be->gelu_tanh(be, out, in, n);
    else
        be->silu(be, out, in, n);
}

/* linear: in (M, K), w (N, K), b (N); p = M, K, N */
static void linear_f(const op_case *c, float *out)
{
    be->linear(be, out, c->in[0], c->in[1], c->in[2], c->p[0], c->p[1], c->p[2], DIT_ACT_NONE);
}
static void linear_b(const op_case *c, const float *dout, float **g)
{
    be->linear_backward(be, g[0], g[1], g[2], dout, c->in[0], c->in[1], c->p[0], c->p[1], c->p[2],
                        NULL, DIT_ACT_NONE);
}

/* linear after an activation: pre (M, K), w (N, K), b (N); out = act(pre) . w^T + b;
 * the backward's fused path gives the gradient at pre; p = M, K, N, act */
static void act_linear_f(const op_case *c, float *out)
{
    const size_t n = (size_t)c->p[0] * c->p[1];
    float *x = malloc(n * sizeof *x);
    apply_act((dit_act)c->p[3], x, c->in[0], n);
    be->linear(be, out, x, c->in[1], c->in[2], c->p[0], c->p[1], c->p[2], DIT_ACT_NONE);
    free(x);
}
static void act_linear_b(const op_case *c, const float *dout, float **g)
{
    const size_t n = (size_t)c->p[0] * c->p[1];
    float *x = malloc(n * sizeof *x);
    apply_act((dit_act)c->p[3], x, c->in[0], n);
    be->linear_backward(be, g[0], g[1], g[2], dout, x, c->in[1], c->p[0], c->p[1], c->p[2],
                        c->in[0], (dit_act)c->p[3]);
    free(x);
}

/* act: pre (n); p = n, act */
static void act_f(const op_case *c, float *out)
{
    apply_act((dit_act)c->p[1], out, c->in[0], c->n[0]);
}
static void act_b(const op_case *c, const float *dout, float **g)
{
    be->act_backward(be, g[0], c->in[0], dout, c->n[0], (dit_act)c->p[1]);
}

/* layernorm_modulate: x (B, T, D), mod (B, 2D) = shift | scale; p = B, T, D, modulated */
static void ln_f(const op_case *c, float *out)
{
    const int B = c->p[0], T = c->p[1], D = c->p[2];
    const float *mod = c->p[3] ? c->in[1] : NULL;
    be->layernorm_modulate(be, out, c->in[0], mod, mod ? mod + D : NULL, 2 * D, B, T, D, 1e-6f);
}
static void ln_b(const op_case *c, const float *dout, float **g)
{
    const int B = c->p[0], T = c->p[1], D = c->p[2];
    float *h = malloc((size_t)B * T * D * sizeof *h), *mean = malloc((size_t)B * T * sizeof *mean),
          *rstd = malloc((size_t)B * T * sizeof *rstd);
    const float *mod = c->p[3] ? c->in[1] : NULL;
    be->layernorm_modulate_train(be, h, c->in[0], mod, mod ? mod + D : NULL, 2 * D, B, T, D, 1e-6f,
                                 mean, rstd);
    be->layernorm_modulate_backward(be, g[0], mod ? g[1] : NULL, mod ? g[1] + D : NULL, dout,
                                    c->in[0], mean, rstd, mod ? mod + D : NULL, 2 * D, B, T, D);
    free(h), free(mean), free(rstd);
}

/* attention: qkv (B, T, 3D); p = B, T, H, hd */
static void att_f(const op_case *c, float *out)
{
    float *probs = malloc((size_t)c->p[0] * c->p[2] * c->p[1] * c->p[1] * sizeof *probs);
    be->attention_train(be, out, c->in[0], c->p[0], c->p[1], c->p[2], c->p[3], probs);
    free(probs);
}
static void att_b(const op_case *c, const float *dout, float **g)
{
    const int B = c->p[0], T = c->p[1], H = c->p[2], hd = c->p[3];
    float *probs = malloc((size_t)B * H * T * T * sizeof *probs);
    float *o = malloc(c->n_out * sizeof *o);
    float *scratch = malloc(be->attention_scratch(be, B, T, H) * sizeof *scratch);
    be->attention_train(be, o, c->in[0], B, T, H, hd, probs);
    be->attention_backward(be, g[0], dout, c->in[0], probs, B, T, H, hd, scratch);
    free(probs), free(o), free(scratch);
}

/* cross_attention: q (B, Tq, D), kv (B, Tk, 2D); p = B, Tq, Tk, H, hd */
static void xatt_f(const op_case *c, float *out)
{
    const int B = c->p[0], Tq = c->p[1], Tk = c->p[2], H = c->p[3];
    float *probs = malloc((size_t)B * H * Tq * Tk * sizeof *probs);
    be->cross_attention(be, out, c->in[0], c->in[1], NULL, B, Tq, Tk, H, c->p[4], probs);
    free(probs);
}
static void xatt_b(const op_case *c, const float *dout, float **g)
{
    const int B = c->p[0], Tq = c->p[1], Tk = c->p[2], H = c->p[3], hd = c->p[4];
    float *probs = malloc((size_t)B * H * Tq * Tk * sizeof *probs), *o = malloc(c->n_out * 4);
    be->cross_attention(be, o, c->in[0], c->in[1], NULL, B, Tq, Tk, H, hd, probs);
    be->cross_attention_backward(be, g[0], g[1], dout, c->in[0], c->in[1], probs, B, Tq, Tk, H, hd);
    free(probs), free(o);
}

/* gated_add: out = x + gate * y; x, y (B, T, D), gate (B, D); p = B, T, D, gated */
static void gadd_f(const op_case *c, float *out)
{
    memcpy(out, c->in[0], c->n_out * sizeof *out);
    be->gated_add(be, out, c->in[1], c->p[3] ? c->in[2] : NULL, c->p[2], c->p[0], c->p[1], c->p[2]);
}
static void gadd_b(const op_case *c, const float *dout, float **g)
{
    memcpy(g[0], dout, c->n_out * sizeof *dout); /* the residual: identity */
    be->gated_add_backward(be, g[1], c->p[3] ? g[2] : NULL, dout, c->in[1],
                           c->p[3] ? c->in[2] : NULL, c->p[2], c->p[0], c->p[1], c->p[2]);
}

/* unpatchify: tokens (B, T, p*p*C) -> (B, C, H, W); p = B, C, H, W, patch */
static void unp_f(const op_case *c, float *out)
{
    be->unpatchify(be, out, c->in[0], c->p[0], c->p[1], c->p[2], c->p[3], c->p[4]);
}
static void unp_b(const op_case *c, const float *dout, float **g)
{
    be->unpatchify_backward(be, g[0], dout, c->p[0], c->p[1], c->p[2], c->p[3], c->p[4]);
}

/* add_embedding: out = a + table[label]; a (B, D), table (classes, D); p = B, D */
static const int32_t labels[6] = {2, 0, 2, 1, 2, 0};
static void emb_f(const op_case *c, float *out)
{
    be->add_embedding(be, out, c->in[0], c->in[1], labels, c->p[0], c->p[1]);
}
static void emb_b(const op_case *c, const float *dout, float **g)
{
    memcpy(g[0], dout, c->n_out * sizeof *dout);
    be->add_embedding_backward(be, g[1], dout, labels, c->p[0], c->p[1]);
}

/* copy_tokens (in-context join): out (B, n + T, D) = (ctx (B, n, D), x (B, T, D));
 * its backward is the split. p = B, n, T, D */
static void join_f(const op_case *c, float *out)
{
    const int B = c->p[0], n = c->p[1], T = c->p[2], D = c->p[3];
    be->copy_tokens(be, out, n + T, 0, c->in[0], n, 0, n, B, D);
    be->copy_tokens(be, out, n + T, n, c->in[1], T, 0, T, B, D);
}
static void join_b(const op_case *c, const float *dout, float **g)
{
    const int B = c->p[0], n = c->p[1], T = c->p[2], D = c->p[3];
    be->copy_tokens(be, g[0], n, 0, dout, n + T, 0, n, B, D);
    be->copy_tokens(be, g[1], T, 0, dout, n + T, n, T, B, D);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    dit_ctx_set_threads(ctx, 1);
    be = &ctx->cpu;
    /* clang-format off */
    op_case cases[] = {
        {.name = "linear 5x12->7", .n_in = 3, .in_name = {"x", "w", "b"}, .n = {60, 84, 7},
         .n_out = 35, .p = {5, 12, 7}, .forward = linear_f, .backward = linear_b},
        {.name = "gelu then linear 6x10->5", .n_in = 3, .in_name = {"pre", "w", "b"},
         .n = {60, 50, 5}, .n_out = 30, .p = {6, 10, 5, DIT_ACT_GELU_TANH},
         .forward = act_linear_f, .backward = act_linear_b},
        {.name = "silu then linear 4x9->6", .n_in = 3, .in_name = {"pre", "w", "b"},
         .n = {36, 54, 6}, .n_out = 24, .p = {4, 9, 6, DIT_ACT_SILU},
         .forward = act_linear_f, .backward = act_linear_b},
        {.name = "gelu_tanh 200", .n_in = 1, .in_name = {"x"}, .n = {200}, .n_out = 200,
         .p = {200, DIT_ACT_GELU_TANH}, .forward = act_f, .backward = act_b},
        {.name = "silu 200", .n_in = 1, .in_name = {"x"}, .n = {200}, .n_out = 200,
         .p = {200, DIT_ACT_SILU}, .forward = act_f, .backward = act_b},
        {.name = "layernorm_modulate 2x3x16", .n_in = 2, .in_name = {"x", "shift|scale"},
         .n = {96, 64}, .n_out = 96, .p = {2, 3, 16, 1}, .forward = ln_f, .backward = ln_b},
        {.name = "layernorm plain 2x3x16", .n_in = 1, .in_name = {"x"}, .n = {96}, .n_out = 96,
         .p = {2, 3, 16, 0}, .forward = ln_f, .backward = ln_b},
        {.name = "attention 2x5, 2 heads of 4", .n_in = 1, .in_name = {"qkv"}, .n = {2 * 5 * 24},
         .n_out = 2 * 5 * 8, .p = {2, 5, 2, 4}, .forward = att_f, .backward = att_b},
        {.name = "cross_attention 2x5 to 2, 2 heads of 4", .n_in = 2, .in_name = {"q", "kv"},
         .n = {2 * 5 * 8, 2 * 2 * 16}, .n_out = 2 * 5 * 8, .p = {2, 5, 2, 2, 4},
         .forward = xatt_f, .backward = xatt_b},
        {.name = "gated_add 2x3x8", .n_in = 3, .in_name = {"x", "y", "gate"}, .n = {48, 48, 16},
         .n_out = 48, .p = {2, 3, 8, 1}, .forward = gadd_f, .backward = gadd_b},
        {.name = "add (ungated) 2x3x8", .n_in = 2, .in_name = {"x", "y"}, .n = {48, 48},
         .n_out = 48, .p = {2, 3, 8, 0}, .forward = gadd_f, .backward = gadd_b},
        {.name = "unpatchify 2x3x4x6 p2", .n_in = 1, .in_name = {"tokens"}, .n = {144},
         .n_out = 144, .p = {2, 3, 4, 6, 2}, .forward = unp_f, .backward = unp_b},
        {.name = "add_embedding 6x8 of 3", .n_in = 2, .in_name = {"a", "table"}, .n = {48, 24},
         .n_out = 48, .p = {6, 8}, .forward = emb_f, .backward = emb_b},
        {.name = "copy_tokens join 2x(2+3)x4", .n_in = 2, .in_name = {"ctx", "x"}, .n = {16, 24},
         .n_out = 40, .p = {2, 2, 3, 4}, .forward = join_f, .backward = join_b},
    };
    /* clang-format on */
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        op_case *c = &cases[k];
        for (int i = 0; i < c->n_in; i++)
            c->in[i] = randn(c->n[i], (uint32_t)(10 * k + i), 0.7f);
        check_op(c);
    }
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
