/* Every CPU backend op: against PyTorch references from gen.py where the op
 * has a PyTorch twin (embeddings, GELU, LayerNorm, attention), and against
 * naive double-precision loops written from the definition otherwise
 * (linear, conv-as-patchify, unpatchify, modulate, gated add). */
#include "common.h"
#include "internal/fastmath.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;

/* Fixed-seed normals (xorshift64* + Box-Muller): failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return ((rng_state * 0x2545f4914f6cdd1dull) >> 11) * (1.0 / 9007199254740992.0);
}
static float *randn(size_t n, double std)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        double u1 = uniform() + 1e-12, u2 = uniform();
        v[i] = (float)(std * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
    }
    return v;
}

/* T5's attention (scale 1, a per-head bias, padded keys) at two scales,
 * PixArt's cross-attention to a padded caption, and the gated GELU's
 * product, against float64 PyTorch. */
static void test_text_encoder_ops(dit_ctx *ctx, const dit_backend *be, const st_file *f)
{
    size_t n;
    int64_t shape[8];
    float *qkv = read_tensor(ctx, f, "abias_qkv", &n, shape, NULL);     // (B, T, 3, H, hd)
    float *bias = read_tensor(ctx, f, "abias_bias", NULL, NULL, NULL);  // (H, T, T)
    float *maskf = read_tensor(ctx, f, "abias_mask", NULL, NULL, NULL); // (B, T)
    float *y_t5 = read_tensor(ctx, f, "abias_t5_y", NULL, NULL, NULL);  // (B, T, H*hd)
    float *y_s035 = read_tensor(ctx, f, "abias_s035_y", NULL, NULL, NULL);
    CHECK(qkv && bias && maskf && y_t5 && y_s035,
          "ops fixture lacks the abias_* tensors (regenerate with gen.py)");
    if (qkv && bias && maskf && y_t5 && y_s035) {
        const int B = (int)shape[0], T = (int)shape[1], H = 3, hd = (int)shape[2] / 3 / H;
        const size_t n_out = (size_t)B * T * H * hd;
        int32_t *mask = malloc((size_t)B * T * sizeof *mask);
        for (int i = 0; i < B * T; i++)
            mask[i] = maskf[i] != 0.0f;
        float *out = malloc(n_out * sizeof *out);
        float *probs = malloc((size_t)B * H * T * T * sizeof *probs);
        be->attention_bias(be, out, qkv, bias, mask, B, T, H, hd, 1.0f, probs);
        CHECK(compare_rel("attention_bias (T5: scale 1, bias, padding)", out, y_t5, n_out, 1e-5),
              "attention_bias t5");
        be->attention_bias(be, out, qkv, NULL, mask, B, T, H, hd, 0.35f, probs);
        CHECK(
            compare_rel("attention_bias (scale 0.35, no bias, padding)", out, y_s035, n_out, 1e-5),
            "attention_bias scale");
        free(mask);
        free(out);
        free(probs);
    }
    free(qkv);
    free(bias);
    free(maskf);
    free(y_t5);
    free(y_s035);

    float *xq = read_tensor(ctx, f, "xattn_q", &n, shape, NULL);      // (B, Tq, H*hd)
    float *xkv = read_tensor(ctx, f, "xattn_kv", NULL, NULL, NULL);   // (B, Tk, 2, H, hd)
    float *xmf = read_tensor(ctx, f, "xattn_mask", NULL, NULL, NULL); // (B, Tk)
    float *xy = read_tensor(ctx, f, "xattn_y", NULL, NULL, NULL);
    CHECK(xq && xkv && xmf && xy, "ops fixture lacks the xattn_* tensors");
    if (xq && xkv && xmf && xy) {
        const int B = 2, Tq = 6, Tk = 5, H = 2, hd = 8;
        int32_t mask[2 * 5];
        for (int i = 0; i < B * Tk; i++)
            mask[i] = xmf[i] != 0.0f;
        float *out = malloc(n * sizeof *out), *probs = malloc((size_t)B * H * Tq * Tk * 4);
        be->cross_attention(be, out, xq, xkv, mask, B, Tq, Tk, H, hd, probs);
        CHECK(compare_rel("cross_attention, padded keys", out, xy, n, 1e-5), "xattn");
        free(out), free(probs);
    }
    free(xq), free(xkv), free(xmf), free(xy);

    float *a = read_tensor(ctx, f, "mul_a", &n, NULL, NULL);
    float *b = read_tensor(ctx, f, "mul_b", NULL, NULL, NULL);
    float *y = read_tensor(ctx, f, "mul_y", NULL, NULL, NULL);
    CHECK(a && b && y, "ops fixture lacks mul_a / mul_b / mul_y");
    if (a && b && y) {
        float *out = malloc(n * sizeof *out);
        be->mul(be, out, a, b, n);
        CHECK(compare_rel("mul", out, y, n, 1e-6), "mul");
        be->mul(be, a, a, b, n); /* in place, as the gated GELU runs it */
        CHECK(compare_rel("mul, in place", a, y, n, 1e-6), "mul in place");
        free(out);
    }
    free(a);
    free(b);
    free(y);
}

static void test_against_pytorch(dit_ctx *ctx, const dit_backend *be)
{
    char *path = fixture_path("ops.io.safetensors");
    st_file *f = NULL;
    if (st_open(ctx, path, &f) != DIT_OK) {
        CHECK(false, "%s (regenerate with tests/golden/gen.py)", dit_last_error(ctx));
        g_free(path);
        return;
    }
    size_t n;
    int64_t shape[8];

    float *t = read_tensor(ctx, f, "temb_t", &n, NULL, NULL);
    float *ref_off = read_tensor(ctx, f, "temb_official", NULL, shape, NULL);
    float *ref_dif = read_tensor(ctx, f, "temb_diffusers", NULL, NULL, NULL);
    if (t && ref_off && ref_dif) {
        int F = (int)shape[1];
        float *out = malloc(n * F * sizeof *out);
        be->timestep_embedding(be, out, t, (int)n, F, 0);
        CHECK(compare_rel("timestep embedding (official)", out, ref_off, n * F, 1e-5), "temb");
        /* the other family's divisor must be visibly different */
        CHECK(!compare_rel("  official vs diffusers (must differ)", out, ref_dif, n * F, 1e-5),
              "divisors indistinguishable");
        be->timestep_embedding(be, out, t, (int)n, F, 1);
        CHECK(compare_rel("timestep embedding (diffusers)", out, ref_dif, n * F, 1e-5), "temb");
        free(out);
    }
    free(t);
    free(ref_off);
    free(ref_dif);

    static const struct {
        const char *name;
        int gh, gw, D;
        float base;
    } pos[] = {{"pos_h8_w12_d96", 8, 12, 96, 4}, {"pos_h4_w4_d128", 4, 4, 128, 4}};
    for (size_t i = 0; i < G_N_ELEMENTS(pos); i++) {
        float *ref = read_tensor(ctx, f, pos[i].name, &n, NULL, NULL);
        if (!ref) {
            CHECK(false, "missing %s", pos[i].name);
            continue;
        }
        float *out = malloc(n * sizeof *out);
        CHECK(n == (size_t)pos[i].gh * pos[i].gw * pos[i].D, "%s size", pos[i].name);
        be->pos_embed_2d(be, out, pos[i].gh, pos[i].gw, pos[i].D, pos[i].base, pos[i].base, 1.0f);
        CHECK(compare_rel(pos[i].name, out, ref, n, 1e-5), "%s", pos[i].name);
        free(out);
        free(ref);
    }

    float *gx = read_tensor(ctx, f, "gelu_x", &n, NULL, NULL);
    float *gy = read_tensor(ctx, f, "gelu_tanh_y", NULL, NULL, NULL);
    if (gx && gy) {
        be->gelu_tanh(be, gx, gx, n);
        CHECK(compare_rel("gelu (tanh)", gx, gy, n, 1e-6), "gelu");
    }
    free(gx);
    free(gy);
    /* on the negative side tanh and erf GELU differ by ~3e-3 of max|y|, so
     * this row tells the two approximations apart */
    gx = read_tensor(ctx, f, "gelu_neg_x", &n, NULL, NULL);
    gy = read_tensor(ctx, f, "gelu_tanh_neg_y", NULL, NULL, NULL);
    if (gx && gy) {
        be->gelu_tanh(be, gx, gx, n);
        CHECK(compare_rel("gelu (tanh), x in [-5, 0]", gx, gy, n, 1e-5), "gelu neg");
    }
    CHECK(gx && gy, "ops fixture lacks gelu_neg_x / gelu_tanh_neg_y");
    free(gx);
    free(gy);

    float *lx = read_tensor(ctx, f, "ln_x", &n, shape, NULL);
    float *ly = read_tensor(ctx, f, "ln_y", NULL, NULL, NULL);
    if (lx && ly) {
        float *out = malloc(n * sizeof *out);
        be->layernorm_modulate(be, out, lx, NULL, NULL, 0, (int)shape[0], (int)shape[1],
                               (int)shape[2], 1e-6f);
        CHECK(compare_rel("layernorm (no affine)", out, ly, n, 1e-5), "ln");
        free(out);
    }
    free(lx);
    free(ly);

    float *rx = read_tensor(ctx, f, "rms_x", &n, shape, NULL);
    float *rw = read_tensor(ctx, f, "rms_w", NULL, NULL, NULL);
    float *ry = read_tensor(ctx, f, "rms_y", NULL, NULL, NULL);
    CHECK(rx && rw && ry, "ops fixture lacks rms_x / rms_w / rms_y (regenerate with gen.py)");
    if (rx && rw && ry) {
        const int D = (int)shape[2], R = (int)(n / D);
        float *out = malloc(n * sizeof *out);
        be->rms_norm(be, out, rx, rw, R, D, 1e-6f);
        CHECK(compare_rel("rms_norm (T5)", out, ry, n, 1e-5), "rms");
        be->rms_norm(be, rx, rx, rw, R, D, 1e-6f); /* in place */
        CHECK(compare_rel("rms_norm (T5), in place", rx, ry, n, 1e-5), "rms in place");
        free(out);
    }
    free(rx);
    free(rw);
    free(ry);

    test_text_encoder_ops(ctx, be, f);

    float *qkv = read_tensor(ctx, f, "attn_qkv", &n, shape, NULL);
    float *ao = read_tensor(ctx, f, "attn_out", NULL, NULL, NULL);
    if (qkv && ao) {
        int B = (int)shape[0], T = (int)shape[1], H = 2, hd = (int)shape[2] / 3 / H;
        float *out = malloc((size_t)B * T * H * hd * sizeof *out);
        float *scratch = malloc(be->attention_scratch(be, B, T, H) * sizeof *scratch);
        be->attention(be, out, qkv, B, T, H, hd, scratch);
        CHECK(compare_rel("attention (2 heads x 72)", out, ao, (size_t)B * T * H * hd, 1e-5),
              "attn");
        free(out);
        free(scratch);
    }
    free(qkv);
    free(ao);
    st_close(f);
    g_free(path);
}

/* The VAE ops against PyTorch: conv2d (3x3 pad 1; the downsampler's
 * (0,1,0,1) pad + stride 2; 1x1), nearest 2x read through a conv, GroupNorm
 * (+ SiLU), and single-head spatial attention. */
static void test_image_ops(dit_ctx *ctx, const dit_backend *be)
{
    char *path = fixture_path("ops.io.safetensors");
    st_file *f = NULL;
    if (st_open(ctx, path, &f) != DIT_OK) {
        CHECK(false, "%s", dit_last_error(ctx));
        g_free(path);
        return;
    }
    int64_t xs[8], ws[8];
    size_t n;
    float *x = read_tensor(ctx, f, "conv_x", NULL, xs, NULL);
    float *w3 = read_tensor(ctx, f, "conv3_w", NULL, ws, NULL);
    float *b3 = read_tensor(ctx, f, "conv3_b", NULL, NULL, NULL);
    float *y3 = read_tensor(ctx, f, "conv3_y", &n, NULL, NULL);
    float *y3s2 = read_tensor(ctx, f, "conv3s2_y", NULL, NULL, NULL);
    float *w1 = read_tensor(ctx, f, "conv1_w", NULL, NULL, NULL);
    float *b1 = read_tensor(ctx, f, "conv1_b", NULL, NULL, NULL);
    float *y1 = read_tensor(ctx, f, "conv1_y", NULL, NULL, NULL);
    float *yup = read_tensor(ctx, f, "up_y", NULL, NULL, NULL);
    if (x && w3 && b3 && y3 && y3s2 && w1 && b1 && y1 && yup) {
        const int B = (int)xs[0], C = (int)xs[1], H = (int)xs[2], W = (int)xs[3];
        const int Co = (int)ws[0];
        float *out = malloc((size_t)B * Co * 4 * H * W * sizeof *out);
        dit_conv_desc d = {.B = B,
                           .Cin = C,
                           .H = H,
                           .W = W,
                           .Cout = Co,
                           .k = 3,
                           .stride = 1,
                           .pad_top = 1,
                           .pad_left = 1,
                           .Ho = H,
                           .Wo = W};
        float *scratch = malloc((be->conv2d_scratch(be, &d) + 1) * sizeof *scratch);
        be->conv2d(be, out, x, w3, b3, &d, DIT_ACT_NONE, scratch);
        CHECK(compare_rel("conv2d 3x3 pad 1", out, y3, (size_t)B * Co * H * W, 1e-5), "conv3");
        free(scratch);
        d = (dit_conv_desc){.B = B,
                            .Cin = C,
                            .H = H,
                            .W = W,
                            .Cout = Co,
                            .k = 3,
                            .stride = 2,
                            .Ho = (H + 1 - 3) / 2 + 1,
                            .Wo = (W + 1 - 3) / 2 + 1};
        scratch = malloc((be->conv2d_scratch(be, &d) + 1) * sizeof *scratch);
        be->conv2d(be, out, x, w3, b3, &d, DIT_ACT_NONE, scratch);
        CHECK(compare_rel("conv2d 3x3 pad (0,1,0,1) stride 2", out, y3s2,
                          (size_t)B * Co * d.Ho * d.Wo, 1e-5),
              "conv3s2");
        free(scratch);
        d = (dit_conv_desc){
            .B = B, .Cin = C, .H = H, .W = W, .Cout = Co, .k = 1, .stride = 1, .Ho = H, .Wo = W};
        be->conv2d(be, out, x, w1, b1, &d, DIT_ACT_NONE, NULL);
        CHECK(compare_rel("conv2d 1x1", out, y1, (size_t)B * Co * H * W, 1e-5), "conv1");
        /* nearest 2x through an identity 1x1 conv reading the input upsampled */
        float *eye = calloc((size_t)C * C, sizeof *eye);
        for (int c = 0; c < C; c++)
            eye[c * C + c] = 1.0f;
        d = (dit_conv_desc){.B = B,
                            .Cin = C,
                            .H = H,
                            .W = W,
                            .Cout = C,
                            .k = 1,
                            .stride = 1,
                            .Ho = 2 * H,
                            .Wo = 2 * W,
                            .up2 = true};
        scratch = malloc((be->conv2d_scratch(be, &d) + 1) * sizeof *scratch);
        be->conv2d(be, out, x, eye, NULL, &d, DIT_ACT_NONE, scratch);
        CHECK(compare_rel("nearest 2x (read by conv)", out, yup, (size_t)B * C * 4 * H * W, 0),
              "up");
        free(scratch);
        free(eye);
        free(out);
    } else {
        CHECK(false, "ops fixture lacks the conv references");
    }
    free(x), free(w3), free(b3), free(y3), free(y3s2), free(w1), free(b1), free(y1), free(yup);

    float *gx = read_tensor(ctx, f, "gn_x", &n, xs, NULL);
    float *gw = read_tensor(ctx, f, "gn_w", NULL, NULL, NULL);
    float *gb = read_tensor(ctx, f, "gn_b", NULL, NULL, NULL);
    float *gy = read_tensor(ctx, f, "gn_y", NULL, NULL, NULL);
    float *gsy = read_tensor(ctx, f, "gn_silu_y", NULL, NULL, NULL);
    if (gx && gw && gb && gy && gsy) {
        float *out = malloc(n * sizeof *out);
        const int B = (int)xs[0], C = (int)xs[1], HW = (int)(xs[2] * xs[3]);
        be->group_norm(be, out, gx, gw, gb, B, C, HW, 4, 1e-6f, DIT_ACT_NONE);
        CHECK(compare_rel("group norm (4 groups)", out, gy, n, 1e-5), "gn");
        be->group_norm(be, out, gx, gw, gb, B, C, HW, 4, 1e-6f, DIT_ACT_SILU);
        CHECK(compare_rel("group norm + silu", out, gsy, n, 1e-5), "gn silu");
        memcpy(out, gx, n * sizeof *out); /* in place, as the VAE uses it */
        be->group_norm(be, out, out, gw, gb, B, C, HW, 4, 1e-6f, DIT_ACT_SILU);
        CHECK(compare_rel("group norm + silu in place", out, gsy, n, 1e-5), "gn in place");
        free(out);
    } else {
        CHECK(false, "ops fixture lacks the group norm references");
    }
    free(gx), free(gw), free(gb), free(gy), free(gsy);

    static const char *const names[8] = {"sattn_wq", "sattn_bq", "sattn_wk", "sattn_bk",
                                         "sattn_wv", "sattn_bv", "sattn_wo", "sattn_bo"};
    float *p[8];
    bool all = true;
    for (int i = 0; i < 8; i++)
        all = (p[i] = read_tensor(ctx, f, names[i], NULL, NULL, NULL)) && all;
    float *sx = read_tensor(ctx, f, "sattn_x", &n, xs, NULL);
    float *sy = read_tensor(ctx, f, "sattn_y", NULL, NULL, NULL);
    if (all && sx && sy) {
        const int B = (int)xs[0], C = (int)xs[1], H = (int)xs[2], W = (int)xs[3], N = H * W;
        float *q = malloc(n * sizeof *q), *k = malloc(n * sizeof *k), *v = malloc(n * sizeof *v);
        float *o = malloc(n * sizeof *o), *y = malloc(n * sizeof *y);
        float *scratch = malloc(be->spatial_attention_scratch(be, N) * sizeof *scratch);
        dit_conv_desc d = {
            .B = B, .Cin = C, .H = H, .W = W, .Cout = C, .k = 1, .stride = 1, .Ho = H, .Wo = W};
        be->conv2d(be, q, sx, p[0], p[1], &d, DIT_ACT_NONE, NULL);
        be->conv2d(be, k, sx, p[2], p[3], &d, DIT_ACT_NONE, NULL);
        be->conv2d(be, v, sx, p[4], p[5], &d, DIT_ACT_NONE, NULL);
        be->spatial_attention(be, o, q, k, v, B, C, N, scratch);
        be->conv2d(be, y, o, p[6], p[7], &d, DIT_ACT_NONE, NULL);
        be->add_act(be, y, sx, n, DIT_ACT_NONE);
        CHECK(compare_rel("spatial attention (1 head, 35 pos)", y, sy, n, 1e-5), "sattn");
        free(q), free(k), free(v), free(o), free(y), free(scratch);
    } else {
        CHECK(false, "ops fixture lacks the spatial attention references");
    }
    for (int i = 0; i < 8; i++)
        free(p[i]);
    free(sx), free(sy);
    st_close(f);
    g_free(path);
}

/* against double-precision loops: a small odd shape (one sgemm), and a
 * tall one that the CPU backend splits into row bands across threads */
static void test_linear(const dit_backend *be)
{
    static const int shapes[2][3] = {{37, 19, 23}, {1500, 21, 33}}; /* M, K, N: odd on purpose */
    static const struct {
        const char *label;
        bool bias;
        dit_act act;
    } variants[] = {
        {"linear", false, DIT_ACT_NONE},
        {"linear + bias", true, DIT_ACT_NONE},
        {"linear + bias + gelu(tanh) epilogue", true, DIT_ACT_GELU_TANH},
        {"linear + silu epilogue", false, DIT_ACT_SILU},
    };
    for (int s = 0; s < 2; s++) {
        const int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        float *in = randn((size_t)M * K, 1), *w = randn((size_t)N * K, 1), *b = randn(N, 1);
        float *out = malloc((size_t)M * N * sizeof *out);
        float *ref = malloc((size_t)M * N * sizeof *ref);
        for (size_t v = 0; v < G_N_ELEMENTS(variants); v++) {
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    double acc = variants[v].bias ? b[n] : 0;
                    for (int k = 0; k < K; k++)
                        acc += (double)in[m * K + k] * w[n * K + k];
                    if (variants[v].act == DIT_ACT_GELU_TANH)
                        acc = 0.5 * acc *
                              (1 + tanh(sqrt(2 / M_PI) * (acc + 0.044715 * acc * acc * acc)));
                    else if (variants[v].act == DIT_ACT_SILU)
                        acc = acc / (1 + exp(-acc));
                    ref[m * N + n] = (float)acc;
                }
            memset(out, 0x7f, (size_t)M * N * sizeof *out); /* garbage must be overwritten */
            be->linear(be, out, in, w, variants[v].bias ? b : NULL, M, K, N, variants[v].act);
            char label[96];
            snprintf(label, sizeof label, "%s (%dx%d->%d)", variants[v].label, M, K, N);
            CHECK(compare_rel(label, out, ref, (size_t)M * N, 1e-5), "%s", label);
        }
        free(in), free(w), free(b), free(out), free(ref);
    }
}

/* linear_backward on a tall shape (row bands, the weight gradient's long
 * reduction, the bias's column sums) against double loops; dw and db add
 * into what they hold */
static void test_linear_backward(const dit_backend *be)
{
    const int M = 1500, K = 21, N = 33;
    float *x = randn((size_t)M * K, 1), *w = randn((size_t)N * K, 1), *dy = randn((size_t)M * N, 1);
    float *dx = malloc((size_t)M * K * sizeof *dx), *dw = randn((size_t)N * K, 1);
    float *db = randn(N, 1);
    float *rdx = malloc((size_t)M * K * sizeof *rdx), *rdw = malloc((size_t)N * K * sizeof *rdw);
    float *rdb = malloc(N * sizeof *rdb);
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) {
            double acc = 0;
            for (int n = 0; n < N; n++)
                acc += (double)dy[m * N + n] * w[n * K + k];
            rdx[m * K + k] = (float)acc;
        }
    for (int n = 0; n < N; n++) {
        double acc_b = db[n];
        for (int m = 0; m < M; m++)
            acc_b += dy[m * N + n];
        rdb[n] = (float)acc_b;
        for (int k = 0; k < K; k++) {
            double acc = dw[n * K + k];
            for (int m = 0; m < M; m++)
                acc += (double)dy[m * N + n] * x[m * K + k];
            rdw[n * K + k] = (float)acc;
        }
    }
    memset(dx, 0x7f, (size_t)M * K * sizeof *dx);
    be->linear_backward(be, dx, dw, db, dy, x, w, M, K, N, NULL, DIT_ACT_NONE);
    CHECK(compare_rel("linear backward dx (1500x21->33)", dx, rdx, (size_t)M * K, 1e-5), "dx");
    CHECK(compare_rel("linear backward dw (1500x21->33)", dw, rdw, (size_t)N * K, 1e-5), "dw");
    CHECK(compare_rel("linear backward db (1500x21->33)", db, rdb, (size_t)N, 1e-5), "db");
    /* through x = gelu(pre): dx becomes (dy . w) * gelu'(pre) */
    float *pre = randn((size_t)M * K, 2);
    for (size_t i = 0; i < (size_t)M * K; i++) {
        const double v = pre[i], k = sqrt(2 / M_PI), th = tanh(k * (v + 0.044715 * v * v * v));
        rdx[i] = (float)(rdx[i] * (0.5 * (1 + th) +
                                   0.5 * v * (1 - th * th) * k * (1 + 3 * 0.044715 * v * v)));
    }
    be->linear_backward(be, dx, NULL, NULL, dy, x, w, M, K, N, pre, DIT_ACT_GELU_TANH);
    CHECK(
        compare_rel("linear backward dx through gelu (1500x21->33)", dx, rdx, (size_t)M * K, 1e-5),
        "dx through gelu");
    free(x), free(w), free(dy), free(dx), free(dw), free(db), free(rdx), free(rdw), free(rdb);
    free(pre);
}

/* dit_expf against exp in double over the whole clamped range */
static void test_expf(void)
{
    double worst = 0, at = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -87.0f + 175.0f * (float)i / 2000000.0f;
        double rel = fabs(dit_expf(x) - exp((double)x)) / exp((double)x);
        if (rel > worst)
            worst = rel, at = x;
    }
    printf("dit_expf max relative error %.2e at x = %.4f\n", worst, at);
    CHECK(worst < 3e-7, "dit_expf relative error %.2e", worst);
    CHECK(isfinite(dit_expf(1000.0f)) && dit_expf(-1000.0f) >= 0.0f, "dit_expf clamps");
}

/* patchify then linear must equal a stride-p convolution (the official
 * x_embedder is nn.Conv2d(C, D, kernel_size=p, stride=p)) */
static void test_patch_embed(const dit_backend *be)
{
    const int B = 2, C = 3, H = 8, W = 12, p = 4, D = 5, gh = H / p, gw = W / p, T = gh * gw;
    float *x = randn((size_t)B * C * H * W, 1), *w = randn((size_t)D * C * p * p, 1);
    float *tok = malloc((size_t)B * T * C * p * p * sizeof *tok);
    float *out = malloc((size_t)B * T * D * sizeof *out),
          *ref = malloc((size_t)B * T * D * sizeof *ref);
    be->patchify(be, tok, x, B, C, H, W, p);
    be->linear(be, out, tok, w, NULL, B * T, C * p * p, D, DIT_ACT_NONE);
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < gh; gy++)
            for (int gx = 0; gx < gw; gx++)
                for (int d = 0; d < D; d++) {
                    double s = 0;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < p; ky++)
                            for (int kx = 0; kx < p; kx++)
                                s += (double)w[((d * C + c) * p + ky) * p + kx] *
                                     x[((b * C + c) * H + gy * p + ky) * W + gx * p + kx];
                    ref[((size_t)b * T + gy * gw + gx) * D + d] = (float)s;
                }
    CHECK(compare_rel("patchify + linear == conv stride p", out, ref, (size_t)B * T * D, 1e-5),
          "patch embed");
    free(x), free(w), free(tok), free(out), free(ref);
}

/* unpatchify: tokens (B, h, w, p, q, c) -> (B, c, h*p, w*q), the einsum
 * nhwpqc->nchpwq of both reference implementations */
static void test_unpatchify(const dit_backend *be)
{
    const int B = 2, C = 3, H = 4, W = 6, p = 2, gh = H / p, gw = W / p;
    size_t n = (size_t)B * C * H * W;
    float *tok = randn(n, 1), *out = malloc(n * sizeof *out), *ref = malloc(n * sizeof *ref);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < gh; h++)
            for (int w = 0; w < gw; w++)
                for (int py = 0; py < p; py++)
                    for (int qx = 0; qx < p; qx++)
                        for (int c = 0; c < C; c++)
                            ref[(((size_t)b * C + c) * H + h * p + py) * W + w * p + qx] =
                                tok[((((size_t)b * gh + h) * gw + w) * p + py) * p * C + qx * C +
                                    c];
    be->unpatchify(be, out, tok, B, C, H, W, p);
    CHECK(compare_rel("unpatchify (nhwpqc->nchpwq)", out, ref, n, 0), "unpatchify");
    free(tok), free(out), free(ref);
}

/* modulate with per-sample shift/scale `stride` apart, then the gated add */
static void test_modulate_and_gate(const dit_backend *be)
{
    const int B = 3, T = 5, D = 72, stride = 6 * D;
    size_t n = (size_t)B * T * D;
    float *x = randn(n, 2), *mod = randn((size_t)B * stride, 1), *y = randn(n, 1);
    float *out = malloc(n * sizeof *out), *ref = malloc(n * sizeof *ref);
    for (int r = 0; r < B * T; r++) {
        const float *xr = x + (size_t)r * D, *sh = mod + (r / T) * stride, *sc = sh + D;
        double mean = 0, var = 0;
        for (int i = 0; i < D; i++)
            mean += xr[i];
        mean /= D;
        for (int i = 0; i < D; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        var /= D;
        for (int i = 0; i < D; i++)
            ref[(size_t)r * D + i] =
                (float)((xr[i] - mean) / sqrt(var + 1e-6) * (1 + sc[i]) + sh[i]);
    }
    be->layernorm_modulate(be, out, x, mod, mod + D, stride, B, T, D, 1e-6f);
    CHECK(compare_rel("layernorm + adaLN modulate", out, ref, n, 1e-5), "modulate");

    const float *gate = mod + 2 * D;
    for (size_t i = 0; i < n; i++) {
        int r = (int)(i / D), c = (int)(i % D);
        ref[i] = x[i] + gate[(r / T) * stride + c] * y[i];
    }
    memcpy(out, x, n * sizeof *out);
    be->gated_add(be, out, y, gate, stride, B, T, D);
    CHECK(compare_rel("gated residual add", out, ref, n, 1e-6), "gate");
    free(x), free(mod), free(y), free(out), free(ref);
}

static void test_silu_and_embedding(const dit_backend *be)
{
    const int B = 3, D = 8, rows = 4;
    float *a = randn((size_t)B * D, 3), *table = randn((size_t)rows * D, 1);
    int32_t labels[3] = {3, 0, 2};
    float out[24], ref[24];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++)
            ref[b * D + i] = a[b * D + i] + table[labels[b] * D + i];
    be->add_embedding(be, out, a, table, labels, B, D);
    CHECK(compare_rel("label embedding add", out, ref, 24, 0), "embedding");
    for (int i = 0; i < 24; i++)
        ref[i] = (float)(a[i] / (1 + exp(-(double)a[i])));
    be->silu(be, out, a, 24);
    CHECK(compare_rel("silu", out, ref, 24, 1e-6), "silu");
    free(a), free(table);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    dit_ctx_set_threads(ctx, 2); /* the tall linears split into bands across threads */
    const dit_backend *be = &ctx->cpu;
    test_against_pytorch(ctx, be);
    test_image_ops(ctx, be);
    test_linear(be);
    test_linear_backward(be);
    test_expf();
    test_patch_embed(be);
    test_unpatchify(be);
    test_modulate_and_gate(be);
    test_silu_and_embedding(be);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
