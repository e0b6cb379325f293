/* Benchmark (not a test): the PixArt transformer, PixArt-α-XL/2-512-shaped
 * (width 1152, 16 heads of 72, captions of 4096 channels from T5-XXL, latent
 * 64 x 64 = 1024 image tokens, learned sigma; DIT_BENCH_PIXART_DEPTH blocks
 * of the 28, default 4), fixed-seed weights, batch 2 (a guided step) with
 * 120 caption tokens, 17 of them padding. Prints the GEMM peak of this run,
 * our forward in fp32 and (where the CPU has it) bf16 products, and
 * diffusers' PixArtTransformer2DModel on the same weights, inputs and
 * threads, fp32 and under torch.autocast bf16: the ratio (> 1: we are
 * faster) and how far the outputs are apart. With DIT_BENCH_SAMPLE_STEPS=N
 * also one whole 512x512 text-to-image of N DPM-Solver++ steps (guidance
 * 4.5, the caption rows as prompt and negative side, an SD-VAE-shaped
 * decoder) against diffusers' PixArtAlphaPipeline given the same
 * embeddings, in each precision. */
#include "bench-util.h"
#include "common.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, L = 120, PAD = 17, LAT = 64, CAP = 4096 };
static const int64_t D = 1152;

static void add(tensor_list *tl, const char *name, int64_t rows, int64_t cols, float std)
{
    float *v = random_floats((size_t)(rows * (cols ? cols : 1)), std);
    tl_add(tl, name, ST_F32, cols ? 2 : 1, (int64_t[]){rows, cols}, v);
    free(v);
}

static void add_linear(tensor_list *tl, const char *prefix, int64_t rows, int64_t cols)
{
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    add(tl, name, rows, cols, 0.02f);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add(tl, name, rows, 0, 0.02f);
}

static bool write_pixart(dit_ctx *ctx, const char *dir, int depth)
{
    tensor_list tl = {0};
    float *v = random_floats((size_t)(D * 4 * 2 * 2), 0.02f);
    tl_add(&tl, "pos_embed.proj.weight", ST_F32, 4, (int64_t[]){D, 4, 2, 2}, v);
    free(v);
    add(&tl, "pos_embed.proj.bias", D, 0, 0.02f);
    add_linear(&tl, "adaln_single.emb.timestep_embedder.linear_1", D, 256);
    add_linear(&tl, "adaln_single.emb.timestep_embedder.linear_2", D, D);
    add_linear(&tl, "adaln_single.linear", 6 * D, D);
    add_linear(&tl, "caption_projection.linear_1", D, CAP);
    add_linear(&tl, "caption_projection.linear_2", D, D);
    static const char *const lin[] = {"attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                                      "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"};
    char name[160];
    for (int l = 0; l < depth; l++) {
        snprintf(name, sizeof name, "transformer_blocks.%d.scale_shift_table", l);
        add(&tl, name, 6, D, 0.1f);
        for (size_t k = 0; k < G_N_ELEMENTS(lin); k++) {
            snprintf(name, sizeof name, "transformer_blocks.%d.%s", l, lin[k]);
            add_linear(&tl, name, D, D);
        }
        snprintf(name, sizeof name, "transformer_blocks.%d.ff.net.0.proj", l);
        add_linear(&tl, name, 4 * D, D);
        snprintf(name, sizeof name, "transformer_blocks.%d.ff.net.2", l);
        add_linear(&tl, name, D, 4 * D);
    }
    add(&tl, "scale_shift_table", 2, D, 0.1f);
    add_linear(&tl, "proj_out", 2 * 2 * 8, D);
    char *wpath = g_build_filename(dir, "diffusion_pytorch_model.safetensors", NULL);
    char *cpath = g_build_filename(dir, "config.json", NULL);
    char *cfg = g_strdup_printf(
        "{\"_class_name\": \"PixArtTransformer2DModel\", \"num_attention_heads\": 16, "
        "\"attention_head_dim\": 72, \"in_channels\": 4, \"out_channels\": 8, \"num_layers\": "
        "%d, \"cross_attention_dim\": 1152, \"caption_channels\": 4096, \"sample_size\": 64, "
        "\"patch_size\": 2, \"norm_type\": \"ada_norm_single\", \"activation_fn\": "
        "\"gelu-approximate\", \"num_embeds_ada_norm\": 1000, \"attention_bias\": true, "
        "\"norm_elementwise_affine\": false, \"norm_eps\": 1e-6, \"interpolation_scale\": null, "
        "\"use_additional_conditions\": false}\n",
        depth);
    const bool ok =
        tl_write(ctx, &tl, wpath) == DIT_OK && g_file_set_contents(cpath, cfg, -1, NULL);
    tl_free(&tl);
    g_free(wpath), g_free(cpath), g_free(cfg);
    return ok;
}

/* best of iters forwards, ms */
static double time_forward(dit_ctx *ctx, const dit_pixart *m, const dit_pixart_inputs *in,
                           float *out, int iters)
{
    double best = 1e30;
    for (int i = -1; i < iters; i++) { /* one warm-up */
        const double t0 = now_ms();
        if (dit_pixart_forward(ctx, m, B, LAT, LAT, L, in, out) != DIT_OK) {
            fprintf(stderr, "forward: %s\n", dit_last_error(ctx));
            return -1;
        }
        const double ms = now_ms() - t0;
        if (i >= 0 && ms < best)
            best = ms;
    }
    return best;
}

/* one whole text-to-image of `steps` steps at 512 x 512 after a 2-step
 * warm-up, ms; -1 on error */
static double time_sample(dit_ctx *ctx, const dit_pixart *m, const dit_vae *vae, const float *cap,
                          const int32_t *mask, int steps)
{
    dit_pipeline_params p;
    dit_pipeline_params_default(&p, NULL, vae);
    p.pixart = m, p.text_len = L, p.text_dim = CAP, p.steps = steps, p.guidance = DIT_TEXT_GUIDANCE;
    p.prompt_embeds = cap, p.prompt_mask = mask;
    p.negative_embeds = cap + (size_t)L * CAP, p.negative_mask = mask + L;
    float *img = malloc((size_t)3 * 512 * 512 * sizeof *img);
    /* a 2-step warm-up first, as the reference script runs one */
    p.steps = 2;
    dit_status st = dit_pipeline_run(ctx, &p, NULL, NULL, 512, 512, NULL, NULL, NULL, img);
    p.steps = steps;
    const double t0 = now_ms();
    if (!st)
        st = dit_pipeline_run(ctx, &p, NULL, NULL, 512, 512, NULL, NULL, NULL, img);
    const double ms = now_ms() - t0;
    free(img);
    if (st)
        fprintf(stderr, "sample: %s\n", dit_last_error(ctx));
    return st ? -1 : ms;
}

/* the forward's FLOPs: products of the blocks, the attention, the caption */
static double forward_flops(int depth)
{
    const double T = (LAT / 2) * (LAT / 2), BT = B * T, BL = B * L, Dd = (double)D;
    const double block = 2 * BT * Dd * Dd * (4 + 2 + 8) + 2 * BL * Dd * 2 * Dd +
                         4 * B * T * T * Dd + 4 * B * T * L * Dd;
    return depth * block + 2 * BL * Dd * (CAP + Dd);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const int depth = env_int("DIT_BENCH_PIXART_DEPTH", 4), iters = env_int("DIT_BENCH_ITERS", 3);
    const int steps = env_int("DIT_BENCH_SAMPLE_STEPS", 0);
    const char *device, *precision;
    dit_ctx *ctx = bench_ctx_new(&device, &precision);
    if (!ctx)
        return 1;
    char *dir = tmpdir_new();
    double t0 = now_ms();
    if (!write_pixart(ctx, dir, depth))
        return 1;
    printf("wrote a PixArt-α-XL/2-512-shaped transformer, %d of 28 blocks, in %.1f s\n", depth,
           (now_ms() - t0) / 1e3);
    char *vae_dir = g_build_filename(dir, "vae", NULL);
    if (steps > 0 && (g_mkdir(vae_dir, 0700) || !bench_write_sd_vae(ctx, vae_dir)))
        return 1;
    const size_t nx = (size_t)B * 4 * LAT * LAT, nout = 2 * nx, ncap = (size_t)B * L * CAP;
    float *x = random_floats(nx, 1.0f), *cap = random_floats(ncap, 0.2f);
    float t[B] = {500.0f, 500.0f}, maskf[B * L];
    int32_t mask[B * L];
    for (int i = 0; i < B * L; i++)
        mask[i] = i % L < L - PAD, maskf[i] = (float)mask[i];
    char *inp = g_build_filename(dir, "input.safetensors", NULL);
    tensor_list io = {0};
    tl_add(&io, "x", ST_F32, 4, (int64_t[]){B, 4, LAT, LAT}, x);
    tl_add(&io, "t", ST_F32, 1, (int64_t[]){B}, t);
    tl_add(&io, "cap", ST_F32, 3, (int64_t[]){B, L, CAP}, cap);
    tl_add(&io, "cap_mask", ST_F32, 2, (int64_t[]){B, L}, maskf);
    if (tl_write(ctx, &io, inp) != DIT_OK)
        return 1;
    tl_free(&io);
    const dit_pixart_inputs in = {x, t, cap, mask, NULL, NULL};
    const double flops = forward_flops(depth);
    float *out = malloc(nout * sizeof *out);
    const char *modes[] = {"fp32", "bf16"};
    double ours[2] = {0, 0}, sample[2] = {0, 0};
    char *ours_path = g_build_filename(dir, "ours.safetensors", NULL);
    for (int m = 0; m < 2; m++) {
        if (m == 1 && dit_ctx_set_precision(ctx, "bf16") != DIT_OK) {
            printf("bf16: %s\n", dit_last_error(ctx));
            break;
        }
        const double peak = bench_peak(ctx);
        dit_pixart *model = NULL;
        t0 = now_ms();
        if (dit_pixart_load(ctx, dir, &model) != DIT_OK) {
            fprintf(stderr, "load: %s\n", dit_last_error(ctx));
            return 1;
        }
        printf("libdit %s: loaded in %.1f s", modes[m], (now_ms() - t0) / 1e3);
        ours[m] = time_forward(ctx, model, &in, out, iters);
        printf(", forward %d x %d tokens + %d caption tokens %.0f ms = %.0f GFLOP/s", B,
               (LAT / 2) * (LAT / 2), L, ours[m], flops / (ours[m] * 1e6));
        print_share_of_peak(flops / (ours[m] * 1e6), peak);
        printf(", peak RSS so far %.0f MiB\n", peak_rss_mib());
        if (steps > 0) {
            dit_vae *vae = NULL;
            if (dit_vae_load(ctx, vae_dir, &vae) != DIT_OK) {
                fprintf(stderr, "vae: %s\n", dit_last_error(ctx));
                return 1;
            }
            sample[m] = time_sample(ctx, model, vae, cap, mask, steps);
            printf("libdit %s: sample 512x512, %d steps, guidance, VAE decode: %.1f s, peak RSS "
                   "so far %.0f MiB\n",
                   modes[m], steps, sample[m] / 1e3, peak_rss_mib());
            dit_vae_free(vae);
        }
        if (m == 0) {
            tensor_list o = {0};
            tl_add(&o, "out", ST_F32, 4, (int64_t[]){B, 8, LAT, LAT}, out);
            tl_write(ctx, &o, ours_path);
            tl_free(&o);
        }
        dit_pixart_free(model);
    }
    char threads_s[16], iters_s[16];
    snprintf(threads_s, sizeof threads_s, "%d", dit_ctx_threads(ctx));
    snprintf(iters_s, sizeof iters_s, "%d", iters);
    for (int m = 0; m < 2; m++) {
        if (ours[m] <= 0)
            continue;
        const char *args[] = {"--model",     dir,         "--input", inp,       "--ours",
                              ours_path,     "--threads", threads_s, "--iters", iters_s,
                              "--precision", modes[m],    NULL};
        char *json = run_reference("torch_pixart_ref.py", args);
        if (!json)
            break;
        printf("diffusers PixArtTransformer2DModel %s: %s", modes[m], json);
        const double ms = json_number(json, "ms_min"); /* best against our best */
        if (ms > 0)
            printf("%s ratio vs diffusers%s: %.2fx %s\n", modes[m], m ? " under autocast" : "",
                   ms / ours[m], ms >= ours[m] ? "(libdit faster)" : "(diffusers faster)");
        g_free(json);
        if (steps <= 0 || sample[m] <= 0)
            continue;
        char steps_s[16];
        snprintf(steps_s, sizeof steps_s, "%d", steps);
        const char *sargs[] = {
            "--model", dir,         "--input", inp,           "--vae",  vae_dir, "--sample-steps",
            steps_s,   "--threads", threads_s, "--precision", modes[m], NULL};
        json = run_reference("torch_pixart_ref.py", sargs);
        if (!json)
            break;
        printf("diffusers PixArtAlphaPipeline %s: %s", modes[m], json);
        const double sms = json_number(json, "sample_ms");
        if (sms > 0)
            printf("%s sample ratio vs diffusers: %.2fx %s\n", modes[m], sms / sample[m],
                   sms >= sample[m] ? "(libdit faster)" : "(diffusers faster)");
        g_free(json);
    }
    g_free(ours_path), g_free(inp), g_free(vae_dir);
    free(x), free(cap), free(out);
    tmpdir_remove(dir);
    dit_ctx_free(ctx);
    return 0;
}
