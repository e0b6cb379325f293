/* Op-by-op parity of the CUDA backend (kernels/) against the CPU backend
 * (core/backend-cpu.c, the oracle): every op of the dit_backend table, on
 * fixed-seed random inputs with odd sizes, in the style of ggml's
 * test-backend-ops.
 *
 * Map of this file. To add an op: write a case in section 3 and register
 * it in section 4 (and, for a new member of dit_backend, name it in OPS in
 * section 1: the build fails until you do).
 *   1. The op list. OPS names every member of dit_backend, checked against
 *      the struct's size at compile time. Before looking for a device the
 *      test checks that the CUDA table fills every op the CPU table has and
 *      that every op has at least one row in section 4. These checks need
 *      no GPU and run everywhere.
 *   2. The harness. A buffer lives on both sides: a host copy the CPU op
 *      works on, and a device copy with a guard region on either side
 *      (a NaN around inputs, a finite pattern around outputs: see
 *      SENTINEL). Outputs start as the NaN (an element the kernel forgets
 *      stays NaN), accumulated outputs start
 *      random and equal on both sides. After both ops ran: every guard
 *      must come back bit-for-bit, every input unchanged, and every output
 *      is compared: non-finite values element by element first (both NaN,
 *      or the same infinity), then the normalised error max|cuda - cpu| /
 *      max|cpu| against the row's limit.
 *   3. The cases: one function per op. A case makes its buffers, calls the
 *      CPU op on host pointers and the CUDA op on device pointers with the
 *      same arguments; the harness does the rest. A case whose op the CUDA
 *      table leaves NULL reports "not supported" and is skipped.
 *   4. The table: {name, ops covered, shape, precision, limit, case} rows,
 *      run in order. fp32 rows allow 1e-5, TF32 rows 2e-3, BF16 rows 1e-2.
 *   5. main: the device-free checks, then exit 77 (skip) when there is no
 *      CUDA device, else every row, then the verdict in the exit code.
 *
 * Built twice: test-parity against the real backend (suite gpu; exits 77
 * without a device), and test-parity-emu against the same kernels compiled
 * for the CPU emulator in tests/gpu/emu (suite unit; runs everywhere). */
#include "dit-cuda.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- 1. the op list --------------------------------------------------------- */

/* clang-format off */
#define OPS(X)                                                                              \
    X(linear)                                                                               \
    X(attention)                                                                            \
    X(attention_scratch)                                                                    \
    X(layernorm_modulate)                                                                   \
    X(gelu_tanh)                                                                            \
    X(silu)                                                                                 \
    X(patchify)                                                                             \
    X(unpatchify)                                                                           \
    X(gated_add)                                                                            \
    X(add_rows)                                                                             \
    X(add_embedding)                                                                        \
    X(copy_tokens)                                                                          \
    X(cross_attention)                                                                      \
    X(timestep_embedding)                                                                   \
    X(pos_embed_2d)                                                                         \
    X(conv2d)                                                                               \
    X(conv2d_scratch)                                                                       \
    X(group_norm)                                                                           \
    X(spatial_attention)                                                                    \
    X(spatial_attention_scratch)                                                            \
    X(add_act)                                                                              \
    X(affine)                                                                               \
    X(tanh_clamp)                                                                           \
    X(rms_norm)                                                                             \
    X(attention_bias)                                                                       \
    X(mul)                                                                                  \
    X(attention_train)                                                                      \
    X(attention_backward)                                                                   \
    X(layernorm_modulate_train)                                                             \
    X(layernorm_modulate_backward)                                                          \
    X(linear_backward)                                                                      \
    X(act_backward)                                                                         \
    X(gated_add_backward)                                                                   \
    X(unpatchify_backward)                                                                  \
    X(cross_attention_backward)                                                             \
    X(add_embedding_backward)                                                               \
    X(adamw)                                                                                \
    X(ema_update)                                                                           \
    X(sum_squares)
/* clang-format on */

#define COUNT_OP(op) +1
enum { N_OPS = 0 OPS(COUNT_OP) };
/* Every member after name and n_threads is an op pointer; OPS must list
 * them all (a new op in core/internal/backend.h fails here until it is listed). */
_Static_assert(sizeof(dit_backend) ==
                   offsetof(dit_backend, linear) + N_OPS * sizeof(void (*)(void)),
               "OPS does not list every op of dit_backend");

typedef struct {
    const char *name;
    bool cpu, cuda;
} op_info;

#define OP_INFO(op) {#op, cpu->op != NULL, cuda->op != NULL},

/* ---- 2. the harness ----------------------------------------------------------- */

enum { KIND_IN, KIND_OUT, KIND_SCRATCH };
#define GUARD_BYTES 256 /* each side; keeps the data 256-byte aligned */
/* Guard patterns. Around inputs and scratch a quiet NaN, so that an
 * out-of-bounds read poisons the output; around outputs a finite value no
 * op computes, because NaN arithmetic keeps its operand's payload: an
 * in-place op writing f(guard) over a NaN guard would leave it bit-for-bit
 * as it was. Outputs themselves start as the NaN. */
#define SENTINEL 0x7fc0deadu     /* quiet NaN */
#define SENTINEL_OUT 0xf0e1d2c3u /* -5.59e29 */
#define MAX_BUFS 16

typedef struct {
    const char *name;
    int kind;
    size_t n_host, n_dev; /* elements (4 bytes each); differ only for scratch */
    void *host;
    void *init;              /* device contents before the op, for inputs */
    unsigned char *dev_base; /* guard | data | guard */
} pbuf;

typedef struct {
    const dit_backend *cpu, *dev;
    uint64_t rng;
    pbuf bufs[MAX_BUFS];
    int n_bufs;
    bool broken; /* a setup step failed */
} tcase;

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of host memory\n");
        exit(1);
    }
    return p;
}

static uint64_t next_u64(tcase *t)
{
    /* splitmix64 */
    uint64_t z = (t->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [lo, hi) */
static float uniform(tcase *t, float lo, float hi)
{
    return lo + (hi - lo) * (float)((next_u64(t) >> 40) * (1.0 / 16777216.0));
}

static void fill_pattern(void *p, size_t bytes, uint32_t s)
{
    for (size_t i = 0; i + 4 <= bytes; i += 4)
        memcpy((char *)p + i, &s, 4);
}

static void fill_sentinel(void *p, size_t bytes) { fill_pattern(p, bytes, SENTINEL); }

static uint32_t guard_of(const pbuf *b) { return b->kind == KIND_OUT ? SENTINEL_OUT : SENTINEL; }

static pbuf *pb_new(tcase *t, const char *name, int kind, size_t n_host, size_t n_dev)
{
    if (t->n_bufs == MAX_BUFS) {
        fprintf(stderr, "MAX_BUFS too small\n");
        exit(1);
    }
    pbuf *b = &t->bufs[t->n_bufs++];
    memset(b, 0, sizeof *b);
    b->name = name;
    b->kind = kind;
    b->n_host = n_host;
    b->n_dev = n_dev;
    b->host = xmalloc(n_host * 4);
    b->init = xmalloc(n_dev * 4);
    fill_sentinel(b->host, n_host * 4);
    fill_sentinel(b->init, n_dev * 4);
    b->dev_base = dit_cuda_alloc(n_dev * 4 + 2 * GUARD_BYTES);
    if (!b->dev_base)
        t->broken = true;
    return b;
}

/* Copies host contents (the first n_dev elements) plus guards to the device. */
static void pb_upload(tcase *t, pbuf *b)
{
    if (!b->dev_base)
        return;
    const size_t bytes = b->n_dev * 4 + 2 * GUARD_BYTES;
    unsigned char *img = xmalloc(bytes);
    fill_pattern(img, GUARD_BYTES, guard_of(b));
    fill_pattern(img + bytes - GUARD_BYTES, GUARD_BYTES, guard_of(b));
    fill_sentinel(img + GUARD_BYTES, b->n_dev * 4);
    if (b->kind != KIND_SCRATCH)
        memcpy(img + GUARD_BYTES, b->host, b->n_dev * 4);
    memcpy(b->init, img + GUARD_BYTES, b->n_dev * 4);
    if (dit_cuda_upload(b->dev_base, img, bytes) != DIT_OK)
        t->broken = true;
    free(img);
}

/* an input of n floats uniform in [lo, hi) */
static pbuf *in_range(tcase *t, const char *name, size_t n, float lo, float hi)
{
    pbuf *b = pb_new(t, name, KIND_IN, n, n);
    for (size_t i = 0; i < n; i++)
        ((float *)b->host)[i] = uniform(t, lo, hi);
    pb_upload(t, b);
    return b;
}

static pbuf *in_f(tcase *t, const char *name, size_t n, float scale)
{
    return in_range(t, name, n, -scale, scale);
}

/* an input of n floats copied from host data */
static pbuf *in_copy(tcase *t, const char *name, const float *data, size_t n)
{
    pbuf *b = pb_new(t, name, KIND_IN, n, n);
    memcpy(b->host, data, n * 4);
    pb_upload(t, b);
    return b;
}

/* n int32 labels in [0, classes) */
static pbuf *in_labels(tcase *t, const char *name, size_t n, int classes)
{
    pbuf *b = pb_new(t, name, KIND_IN, n, n);
    for (size_t i = 0; i < n; i++)
        ((int32_t *)b->host)[i] = (int32_t)(next_u64(t) % (uint64_t)classes);
    pb_upload(t, b);
    return b;
}

/* an output written by the op: starts as the NaN sentinel on both sides */
static pbuf *out_f(tcase *t, const char *name, size_t n)
{
    pbuf *b = pb_new(t, name, KIND_OUT, n, n);
    pb_upload(t, b);
    return b;
}

/* an output the op reads and updates (+=, in place): random, equal on both sides */
static pbuf *acc_f(tcase *t, const char *name, size_t n, float scale)
{
    pbuf *b = pb_new(t, name, KIND_OUT, n, n);
    for (size_t i = 0; i < n; i++)
        ((float *)b->host)[i] = uniform(t, -scale, scale);
    pb_upload(t, b);
    return b;
}

/* scratch sized per side by the backends' own *_scratch ops */
static pbuf *scratch_f(tcase *t, size_t n_host, size_t n_dev)
{
    pbuf *b = pb_new(t, "scratch", KIND_SCRATCH, n_host, n_dev);
    pb_upload(t, b);
    return b;
}

static float *H(pbuf *b) { return b ? (float *)b->host : NULL; }

static float *D(pbuf *b) { return b ? (float *)(void *)(b->dev_base + GUARD_BYTES) : NULL; }

static int32_t *HI(pbuf *b) { return (int32_t *)b->host; }

static int32_t *DI(pbuf *b) { return (int32_t *)(void *)(b->dev_base + GUARD_BYTES); }

typedef struct {
    double err, ref; /* worst normalised error over the outputs, and its max|ref| */
    int bad;         /* failed checks */
    uint64_t hash;   /* FNV-1a of the device's outputs: runs must agree bit for bit */
} verdict;

static bool same_nonfinite(float a, float b) { return (isnan(a) && isnan(b)) || a == b; }

/* Downloads every buffer and runs the checks of section 2's comment. */
static verdict finish(tcase *t, double tol)
{
    verdict v = {0, 0, 0, 0xcbf29ce484222325ull};
    char why[256];
    if (dit_cuda_sync(t->dev, why, sizeof why) != DIT_OK) {
        printf("      backend error: %s\n", why);
        v.bad++;
    }
    for (int i = 0; i < t->n_bufs; i++) {
        pbuf *b = &t->bufs[i];
        const size_t bytes = b->n_dev * 4 + 2 * GUARD_BYTES;
        unsigned char *img = xmalloc(bytes), *guard = xmalloc(GUARD_BYTES);
        fill_pattern(guard, GUARD_BYTES, guard_of(b));
        if (dit_cuda_download(img, b->dev_base, bytes) != DIT_OK) {
            printf("      %s: download failed\n", b->name);
            v.bad++;
            free(img);
            free(guard);
            continue;
        }
        if (memcmp(img, guard, GUARD_BYTES) ||
            memcmp(img + bytes - GUARD_BYTES, guard, GUARD_BYTES)) {
            printf("      %s: guard region overwritten (write out of bounds)\n", b->name);
            v.bad++;
        }
        const float *dev = (const float *)(void *)(img + GUARD_BYTES);
        if (b->kind == KIND_IN && memcmp(dev, b->init, b->n_dev * 4)) {
            printf("      %s: input changed on the device\n", b->name);
            v.bad++;
        }
        if (b->kind == KIND_OUT) {
            for (size_t j = 0; j < b->n_dev * 4; j++)
                v.hash = (v.hash ^ ((const unsigned char *)dev)[j]) * 0x100000001b3ull;
            const float *ref = b->host;
            double err = 0, mref = 0;
            int shown = 0;
            for (size_t j = 0; j < b->n_dev; j++) {
                if (!isfinite(ref[j]) || !isfinite(dev[j])) {
                    if (!same_nonfinite(ref[j], dev[j])) {
                        if (shown++ < 3)
                            printf("      %s[%zu]: cpu %g, cuda %g\n", b->name, j, ref[j], dev[j]);
                        v.bad += shown == 1;
                    }
                    continue;
                }
                const double d = fabs((double)dev[j] - ref[j]);
                err = d > err ? d : err;
                mref = fabs(ref[j]) > mref ? fabs(ref[j]) : mref;
            }
            const double ne = err / (mref > 0 ? mref : 1.0);
            if (ne > tol) {
                printf("      %s: max|cuda - cpu| %.3g, max|cpu| %.3g: %.3g > %.0e\n", b->name, err,
                       mref, ne, tol);
                v.bad++;
            }
            if (ne >= v.err) {
                v.err = ne;
                v.ref = mref;
            }
        }
        free(img);
        free(guard);
    }
    return v;
}

static void release(tcase *t)
{
    for (int i = 0; i < t->n_bufs; i++) {
        free(t->bufs[i].host);
        free(t->bufs[i].init);
        dit_cuda_free(t->bufs[i].dev_base);
    }
    t->n_bufs = 0;
}

/* ---- 3. the cases --------------------------------------------------------------
 * p[] holds the row's shape; each case says what its entries mean. A case
 * returns CASE_RAN, or CASE_UNSUPPORTED when the CUDA table lacks its op. */

enum { CASE_RAN = 0, CASE_UNSUPPORTED = 1 };
#define NEED(op)                                                                                   \
    do {                                                                                           \
        if (!t->dev->op)                                                                           \
            return CASE_UNSUPPORTED;                                                               \
    } while (0)

typedef int (*case_fn)(tcase *t, const int *p);

/* p: M, K, N, act, with bias */
static int case_linear(tcase *t, const int *p)
{
    NEED(linear);
    const int M = p[0], K = p[1], N = p[2];
    const dit_act act = (dit_act)p[3];
    pbuf *in = in_f(t, "in", (size_t)M * K, 1.0f), *w = in_f(t, "w", (size_t)N * K, 0.2f);
    pbuf *b = p[4] ? in_f(t, "bias", (size_t)N, 0.5f) : NULL, *out = out_f(t, "out", (size_t)M * N);
    t->cpu->linear(t->cpu, H(out), H(in), H(w), H(b), M, K, N, act);
    t->dev->linear(t->dev, D(out), D(in), D(w), D(b), M, K, N, act);
    return CASE_RAN;
}

/* p: B, T, H, hd */
static int case_attention(tcase *t, const int *p)
{
    NEED(attention);
    NEED(attention_scratch);
    const int B = p[0], T = p[1], Hh = p[2], hd = p[3];
    pbuf *qkv = in_f(t, "qkv", (size_t)B * T * 3 * Hh * hd, 1.5f);
    pbuf *out = out_f(t, "out", (size_t)B * T * Hh * hd);
    pbuf *s = scratch_f(t, t->cpu->attention_scratch(t->cpu, B, T, Hh),
                        t->dev->attention_scratch(t->dev, B, T, Hh));
    t->cpu->attention(t->cpu, H(out), H(qkv), B, T, Hh, hd, H(s));
    t->dev->attention(t->dev, D(out), D(qkv), B, T, Hh, hd, D(s));
    return CASE_RAN;
}

/* p: B, T, H, hd */
static int case_attention_train(tcase *t, const int *p)
{
    NEED(attention_train);
    const int B = p[0], T = p[1], Hh = p[2], hd = p[3];
    pbuf *qkv = in_f(t, "qkv", (size_t)B * T * 3 * Hh * hd, 1.5f);
    pbuf *out = out_f(t, "out", (size_t)B * T * Hh * hd);
    pbuf *probs = out_f(t, "probs", (size_t)B * Hh * T * T);
    t->cpu->attention_train(t->cpu, H(out), H(qkv), B, T, Hh, hd, H(probs));
    t->dev->attention_train(t->dev, D(out), D(qkv), B, T, Hh, hd, D(probs));
    return CASE_RAN;
}

/* p: B, T, H, hd; probs from the CPU's attention_train, the same on both sides */
static int case_attention_backward(tcase *t, const int *p)
{
    NEED(attention_backward);
    NEED(attention_scratch);
    const int B = p[0], T = p[1], Hh = p[2], hd = p[3];
    const size_t nq = (size_t)B * T * 3 * Hh * hd, no = (size_t)B * T * Hh * hd;
    const size_t np = (size_t)B * Hh * T * T;
    pbuf *qkv = in_f(t, "qkv", nq, 1.5f);
    float *o = xmalloc(no * 4), *pr = xmalloc(np * 4);
    t->cpu->attention_train(t->cpu, o, H(qkv), B, T, Hh, hd, pr);
    pbuf *probs = in_copy(t, "probs", pr, np);
    free(o);
    free(pr);
    pbuf *dout = in_f(t, "dout", no, 1.0f), *dqkv = out_f(t, "dqkv", nq);
    pbuf *s = scratch_f(t, t->cpu->attention_scratch(t->cpu, B, T, Hh),
                        t->dev->attention_scratch(t->dev, B, T, Hh));
    t->cpu->attention_backward(t->cpu, H(dqkv), H(dout), H(qkv), H(probs), B, T, Hh, hd, H(s));
    t->dev->attention_backward(t->dev, D(dqkv), D(dout), D(qkv), D(probs), B, T, Hh, hd, D(s));
    return CASE_RAN;
}

/* p: B, T, D, modulated; shift and scale are chunks 0 and 1 of a (B, 3D) row */
static int case_layernorm_modulate(tcase *t, const int *p)
{
    NEED(layernorm_modulate);
    const int B = p[0], T = p[1], Dm = p[2], stride = 3 * Dm;
    pbuf *x = in_range(t, "x", (size_t)B * T * Dm, -1.0f, 3.0f);
    pbuf *ada = in_f(t, "ada", (size_t)B * stride, 1.0f),
         *out = out_f(t, "out", (size_t)B * T * Dm);
    const float *hs = p[3] ? H(ada) : NULL, *hc = p[3] ? H(ada) + Dm : NULL;
    const float *ds = p[3] ? D(ada) : NULL, *dc = p[3] ? D(ada) + Dm : NULL;
    t->cpu->layernorm_modulate(t->cpu, H(out), H(x), hs, hc, stride, B, T, Dm, 1e-6f);
    t->dev->layernorm_modulate(t->dev, D(out), D(x), ds, dc, stride, B, T, Dm, 1e-6f);
    return CASE_RAN;
}

/* p: B, T, D, modulated */
static int case_layernorm_modulate_train(tcase *t, const int *p)
{
    NEED(layernorm_modulate_train);
    const int B = p[0], T = p[1], Dm = p[2], stride = 3 * Dm;
    const size_t rows = (size_t)B * T;
    pbuf *x = in_range(t, "x", rows * Dm, -1.0f, 3.0f);
    pbuf *ada = in_f(t, "ada", (size_t)B * stride, 1.0f), *out = out_f(t, "out", rows * Dm);
    pbuf *mean = out_f(t, "mean", rows), *rstd = out_f(t, "rstd", rows);
    const float *hs = p[3] ? H(ada) : NULL, *hc = p[3] ? H(ada) + Dm : NULL;
    const float *ds = p[3] ? D(ada) : NULL, *dc = p[3] ? D(ada) + Dm : NULL;
    t->cpu->layernorm_modulate_train(t->cpu, H(out), H(x), hs, hc, stride, B, T, Dm, 1e-6f, H(mean),
                                     H(rstd));
    t->dev->layernorm_modulate_train(t->dev, D(out), D(x), ds, dc, stride, B, T, Dm, 1e-6f, D(mean),
                                     D(rstd));
    return CASE_RAN;
}

/* p: B, T, D, with scale, with dshift/dscale; the statistics from the CPU's
 * train op; dshift, dscale are chunks 0 and 1 of a (B, 3D) gradient row */
static int case_layernorm_modulate_backward(tcase *t, const int *p)
{
    NEED(layernorm_modulate_backward);
    const int B = p[0], T = p[1], Dm = p[2], stride = 3 * Dm;
    const size_t rows = (size_t)B * T;
    pbuf *x = in_range(t, "x", rows * Dm, -1.0f, 3.0f);
    float *o = xmalloc(rows * Dm * 4), *mu = xmalloc(rows * 4), *rs = xmalloc(rows * 4);
    t->cpu->layernorm_modulate_train(t->cpu, o, H(x), NULL, NULL, 0, B, T, Dm, 1e-6f, mu, rs);
    pbuf *mean = in_copy(t, "mean", mu, rows), *rstd = in_copy(t, "rstd", rs, rows);
    free(o);
    free(mu);
    free(rs);
    pbuf *scale = p[3] ? in_f(t, "scale", (size_t)B * stride, 1.0f) : NULL;
    pbuf *dout = in_f(t, "dout", rows * Dm, 1.0f), *dx = acc_f(t, "dx", rows * Dm, 1.0f);
    pbuf *dmod = p[4] ? acc_f(t, "dshift|dscale", (size_t)B * stride, 1.0f) : NULL;
    t->cpu->layernorm_modulate_backward(t->cpu, H(dx), p[4] ? H(dmod) : NULL,
                                        p[4] ? H(dmod) + Dm : NULL, H(dout), H(x), H(mean), H(rstd),
                                        H(scale), stride, B, T, Dm);
    t->dev->layernorm_modulate_backward(t->dev, D(dx), p[4] ? D(dmod) : NULL,
                                        p[4] ? D(dmod) + Dm : NULL, D(dout), D(x), D(mean), D(rstd),
                                        D(scale), stride, B, T, Dm);
    return CASE_RAN;
}

/* out = act(x) for x in [-12, 12] (the clamped exp's tails too), out of
 * place or in place (p[1]); GELU and SiLU share a signature */
typedef void (*act_op)(const dit_backend *be, float *out, const float *x, size_t n);

static int act_case(tcase *t, const int *p, act_op cpu_op, act_op dev_op)
{
    const size_t n = (size_t)p[0];
    if (p[1]) {
        pbuf *x = acc_f(t, "x", n, 12.0f);
        cpu_op(t->cpu, H(x), H(x), n);
        dev_op(t->dev, D(x), D(x), n);
    } else {
        pbuf *x = in_f(t, "x", n, 12.0f), *out = out_f(t, "out", n);
        cpu_op(t->cpu, H(out), H(x), n);
        dev_op(t->dev, D(out), D(x), n);
    }
    return CASE_RAN;
}

/* p: n, in place */
static int case_gelu_tanh(tcase *t, const int *p)
{
    NEED(gelu_tanh);
    return act_case(t, p, t->cpu->gelu_tanh, t->dev->gelu_tanh);
}

static int case_silu(tcase *t, const int *p)
{
    NEED(silu);
    return act_case(t, p, t->cpu->silu, t->dev->silu);
}

/* p: B, C, H, W, patch */
static int case_patchify(tcase *t, const int *p)
{
    NEED(patchify);
    const int B = p[0], C = p[1], Hh = p[2], W = p[3], ps = p[4];
    pbuf *x = in_f(t, "x", (size_t)B * C * Hh * W, 1.0f);
    pbuf *out = out_f(t, "out", (size_t)B * (Hh / ps) * (W / ps) * C * ps * ps);
    t->cpu->patchify(t->cpu, H(out), H(x), B, C, Hh, W, ps);
    t->dev->patchify(t->dev, D(out), D(x), B, C, Hh, W, ps);
    return CASE_RAN;
}

/* p: B, C, H, W, patch; pixels outside the patch grid stay untouched (NaN) */
static int case_unpatchify(tcase *t, const int *p)
{
    NEED(unpatchify);
    const int B = p[0], C = p[1], Hh = p[2], W = p[3], ps = p[4];
    pbuf *tok = in_f(t, "tokens", (size_t)B * (Hh / ps) * (W / ps) * C * ps * ps, 1.0f);
    pbuf *out = out_f(t, "out", (size_t)B * C * Hh * W);
    t->cpu->unpatchify(t->cpu, H(out), H(tok), B, C, Hh, W, ps);
    t->dev->unpatchify(t->dev, D(out), D(tok), B, C, Hh, W, ps);
    return CASE_RAN;
}

/* p: B, C, H, W, patch */
static int case_unpatchify_backward(tcase *t, const int *p)
{
    NEED(unpatchify_backward);
    const int B = p[0], C = p[1], Hh = p[2], W = p[3], ps = p[4];
    pbuf *dout = in_f(t, "dout", (size_t)B * C * Hh * W, 1.0f);
    pbuf *dtok = out_f(t, "dtokens", (size_t)B * (Hh / ps) * (W / ps) * C * ps * ps);
    t->cpu->unpatchify_backward(t->cpu, H(dtok), H(dout), B, C, Hh, W, ps);
    t->dev->unpatchify_backward(t->dev, D(dtok), D(dout), B, C, Hh, W, ps);
    return CASE_RAN;
}

/* p: B, T, D, gated; the gate is chunk 2 of a (B, 6D) row */
static int case_gated_add(tcase *t, const int *p)
{
    NEED(gated_add);
    const int B = p[0], T = p[1], Dm = p[2], stride = 6 * Dm;
    pbuf *x = acc_f(t, "x", (size_t)B * T * Dm, 1.0f), *y = in_f(t, "y", (size_t)B * T * Dm, 1.0f);
    pbuf *ada = p[3] ? in_f(t, "ada", (size_t)B * stride, 1.0f) : NULL;
    t->cpu->gated_add(t->cpu, H(x), H(y), ada ? H(ada) + 2 * Dm : NULL, stride, B, T, Dm);
    t->dev->gated_add(t->dev, D(x), D(y), ada ? D(ada) + 2 * Dm : NULL, stride, B, T, Dm);
    return CASE_RAN;
}

/* p: B, T, D, gated (0: gate and dgate NULL) */
static int case_gated_add_backward(tcase *t, const int *p)
{
    NEED(gated_add_backward);
    const int B = p[0], T = p[1], Dm = p[2], stride = 6 * Dm;
    const size_t n = (size_t)B * T * Dm;
    pbuf *dx = in_f(t, "dx", n, 1.0f), *y = in_f(t, "y", n, 1.0f);
    pbuf *ada = in_f(t, "ada", (size_t)B * stride, 1.0f);
    pbuf *dada = acc_f(t, "dgate", (size_t)B * stride, 1.0f), *dy = out_f(t, "dy", n);
    const bool g = p[3];
    t->cpu->gated_add_backward(t->cpu, H(dy), g ? H(dada) + 5 * Dm : NULL, H(dx), H(y),
                               g ? H(ada) + 5 * Dm : NULL, stride, B, T, Dm);
    t->dev->gated_add_backward(t->dev, D(dy), g ? D(dada) + 5 * Dm : NULL, D(dx), D(y),
                               g ? D(ada) + 5 * Dm : NULL, stride, B, T, Dm);
    return CASE_RAN;
}

/* p: B, T, D */
static int case_add_rows(tcase *t, const int *p)
{
    NEED(add_rows);
    const int B = p[0], T = p[1], Dm = p[2];
    pbuf *x = acc_f(t, "x", (size_t)B * T * Dm, 1.0f), *pos = in_f(t, "pos", (size_t)T * Dm, 1.0f);
    t->cpu->add_rows(t->cpu, H(x), H(pos), B, T, Dm);
    t->dev->add_rows(t->dev, D(x), D(pos), B, T, Dm);
    return CASE_RAN;
}

/* p: B, D, classes, a given (0: NULL, the table rows alone) */
static int case_add_embedding(tcase *t, const int *p)
{
    NEED(add_embedding);
    const int B = p[0], Dm = p[1], nc = p[2];
    pbuf *a = in_f(t, "a", (size_t)B * Dm, 1.0f), *table = in_f(t, "table", (size_t)nc * Dm, 1.0f);
    pbuf *label = in_labels(t, "label", (size_t)B, nc), *out = out_f(t, "out", (size_t)B * Dm);
    t->cpu->add_embedding(t->cpu, H(out), p[3] ? H(a) : NULL, H(table), HI(label), B, Dm);
    t->dev->add_embedding(t->dev, D(out), p[3] ? D(a) : NULL, D(table), DI(label), B, Dm);
    return CASE_RAN;
}

/* p: B, out_T, out_at, in_T, in_at, n, D; rows outside the copy keep their values */
static int case_copy_tokens(tcase *t, const int *p)
{
    NEED(copy_tokens);
    const int B = p[0], oT = p[1], oat = p[2], iT = p[3], iat = p[4], n = p[5], Dm = p[6];
    pbuf *in = in_f(t, "in", (size_t)B * iT * Dm, 1.0f);
    pbuf *out = acc_f(t, "out", (size_t)B * oT * Dm, 1.0f);
    t->cpu->copy_tokens(t->cpu, H(out), oT, oat, H(in), iT, iat, n, B, Dm);
    t->dev->copy_tokens(t->dev, D(out), oT, oat, D(in), iT, iat, n, B, Dm);
    return CASE_RAN;
}

/* p: B, Tq, Tk, H, hd, with a key mask (random 0/1, so some rows have no key
 * left) */
static int case_cross_attention(tcase *t, const int *p)
{
    NEED(cross_attention);
    const int B = p[0], Tq = p[1], Tk = p[2], Hh = p[3], hd = p[4];
    pbuf *q = in_f(t, "q", (size_t)B * Tq * Hh * hd, 1.5f);
    pbuf *kv = in_f(t, "kv", (size_t)B * Tk * 2 * Hh * hd, 1.5f);
    pbuf *mask = p[5] ? in_labels(t, "key_mask", (size_t)B * Tk, 2) : NULL;
    pbuf *out = out_f(t, "out", (size_t)B * Tq * Hh * hd);
    pbuf *probs = out_f(t, "probs", (size_t)B * Hh * Tq * Tk);
    t->cpu->cross_attention(t->cpu, H(out), H(q), H(kv), mask ? HI(mask) : NULL, B, Tq, Tk, Hh, hd,
                            H(probs));
    t->dev->cross_attention(t->dev, D(out), D(q), D(kv), mask ? DI(mask) : NULL, B, Tq, Tk, Hh, hd,
                            D(probs));
    return CASE_RAN;
}

/* p: B, Tq, Tk, H, hd; probs from the CPU's forward on both sides */
static int case_cross_attention_backward(tcase *t, const int *p)
{
    NEED(cross_attention_backward);
    NEED(cross_attention);
    const int B = p[0], Tq = p[1], Tk = p[2], Hh = p[3], hd = p[4];
    const size_t nq = (size_t)B * Tq * Hh * hd, nkv = (size_t)B * Tk * 2 * Hh * hd;
    const size_t np = (size_t)B * Hh * Tq * Tk;
    pbuf *q = in_f(t, "q", nq, 1.5f), *kv = in_f(t, "kv", nkv, 1.5f);
    float *o = xmalloc(nq * 4), *pr = xmalloc(np * 4);
    t->cpu->cross_attention(t->cpu, o, H(q), H(kv), NULL, B, Tq, Tk, Hh, hd, pr);
    pbuf *probs = in_copy(t, "probs", pr, np);
    free(o);
    free(pr);
    pbuf *dout = in_f(t, "dout", nq, 1.0f);
    pbuf *dq = out_f(t, "dq", nq), *dkv = out_f(t, "dkv", nkv);
    t->cpu->cross_attention_backward(t->cpu, H(dq), H(dkv), H(dout), H(q), H(kv), H(probs), B, Tq,
                                     Tk, Hh, hd);
    t->dev->cross_attention_backward(t->dev, D(dq), D(dkv), D(dout), D(q), D(kv), D(probs), B, Tq,
                                     Tk, Hh, hd);
    return CASE_RAN;
}

/* p: B, D, classes (fewer than B: labels repeat) */
static int case_add_embedding_backward(tcase *t, const int *p)
{
    NEED(add_embedding_backward);
    const int B = p[0], Dm = p[1], nc = p[2];
    pbuf *dc = in_f(t, "dc", (size_t)B * Dm, 1.0f), *label = in_labels(t, "label", (size_t)B, nc);
    pbuf *dtable = acc_f(t, "dtable", (size_t)nc * Dm, 1.0f);
    t->cpu->add_embedding_backward(t->cpu, H(dtable), H(dc), HI(label), B, Dm);
    t->dev->add_embedding_backward(t->dev, D(dtable), D(dc), DI(label), B, Dm);
    return CASE_RAN;
}

/* p: B, F, shift; t in [0, 1000) */
static int case_timestep_embedding(tcase *t, const int *p)
{
    NEED(timestep_embedding);
    const int B = p[0], F = p[1];
    pbuf *ts = in_range(t, "t", (size_t)B, 0.0f, 1000.0f), *out = out_f(t, "out", (size_t)B * F);
    t->cpu->timestep_embedding(t->cpu, H(out), H(ts), B, F, p[2]);
    t->dev->timestep_embedding(t->dev, D(out), D(ts), B, F, p[2]);
    return CASE_RAN;
}

/* p: gh, gw, D, base_h, base_w, interp * 100 */
static int case_pos_embed_2d(tcase *t, const int *p)
{
    NEED(pos_embed_2d);
    const int gh = p[0], gw = p[1], Dm = p[2];
    const float bh = (float)p[3], bw = (float)p[4], interp = (float)p[5] / 100.0f;
    pbuf *out = out_f(t, "out", (size_t)gh * gw * Dm);
    t->cpu->pos_embed_2d(t->cpu, H(out), gh, gw, Dm, bh, bw, interp);
    t->dev->pos_embed_2d(t->dev, D(out), gh, gw, Dm, bh, bw, interp);
    return CASE_RAN;
}

/* p: B, Cin, H, W, Cout, k, stride, pad_top, pad_left, Ho, Wo, up2, act, with bias */
static int case_conv2d(tcase *t, const int *p)
{
    NEED(conv2d);
    NEED(conv2d_scratch);
    const dit_conv_desc d = {.B = p[0],
                             .Cin = p[1],
                             .H = p[2],
                             .W = p[3],
                             .Cout = p[4],
                             .k = p[5],
                             .stride = p[6],
                             .pad_top = p[7],
                             .pad_left = p[8],
                             .Ho = p[9],
                             .Wo = p[10],
                             .up2 = p[11] != 0};
    const dit_act act = (dit_act)p[12];
    pbuf *in = in_f(t, "in", (size_t)d.B * d.Cin * d.H * d.W, 1.0f);
    pbuf *w = in_f(t, "w", (size_t)d.Cout * d.Cin * d.k * d.k, 0.3f);
    pbuf *b = p[13] ? in_f(t, "bias", (size_t)d.Cout, 0.5f) : NULL;
    pbuf *out = out_f(t, "out", (size_t)d.B * d.Cout * d.Ho * d.Wo);
    pbuf *s = scratch_f(t, t->cpu->conv2d_scratch(t->cpu, &d), t->dev->conv2d_scratch(t->dev, &d));
    t->cpu->conv2d(t->cpu, H(out), H(in), H(w), H(b), &d, act, H(s));
    t->dev->conv2d(t->dev, D(out), D(in), D(w), D(b), &d, act, D(s));
    return CASE_RAN;
}

/* p: B, C, HW, groups, act, in place */
static int case_group_norm(tcase *t, const int *p)
{
    NEED(group_norm);
    const int B = p[0], C = p[1], HW = p[2], g = p[3];
    const dit_act act = (dit_act)p[4];
    const size_t n = (size_t)B * C * HW;
    pbuf *gamma = in_range(t, "gamma", (size_t)C, 0.5f, 1.5f),
         *beta = in_f(t, "beta", (size_t)C, 0.5f);
    if (p[5]) {
        pbuf *x = acc_f(t, "x", n, 2.0f);
        t->cpu->group_norm(t->cpu, H(x), H(x), H(gamma), H(beta), B, C, HW, g, 1e-6f, act);
        t->dev->group_norm(t->dev, D(x), D(x), D(gamma), D(beta), B, C, HW, g, 1e-6f, act);
    } else {
        pbuf *in = in_range(t, "in", n, -1.0f, 3.0f), *out = out_f(t, "out", n);
        t->cpu->group_norm(t->cpu, H(out), H(in), H(gamma), H(beta), B, C, HW, g, 1e-6f, act);
        t->dev->group_norm(t->dev, D(out), D(in), D(gamma), D(beta), B, C, HW, g, 1e-6f, act);
    }
    return CASE_RAN;
}

/* p: B, C, N */
static int case_spatial_attention(tcase *t, const int *p)
{
    NEED(spatial_attention);
    NEED(spatial_attention_scratch);
    const int B = p[0], C = p[1], N = p[2];
    const size_t n = (size_t)B * C * N;
    pbuf *q = in_f(t, "q", n, 1.0f), *k = in_f(t, "k", n, 1.0f), *v = in_f(t, "v", n, 1.0f);
    pbuf *out = out_f(t, "out", n);
    pbuf *s = scratch_f(t, t->cpu->spatial_attention_scratch(t->cpu, N),
                        t->dev->spatial_attention_scratch(t->dev, N));
    t->cpu->spatial_attention(t->cpu, H(out), H(q), H(k), H(v), B, C, N, H(s));
    t->dev->spatial_attention(t->dev, D(out), D(q), D(k), D(v), B, C, N, D(s));
    return CASE_RAN;
}

/* p: n, act */
static int case_add_act(tcase *t, const int *p)
{
    NEED(add_act);
    const size_t n = (size_t)p[0];
    pbuf *x = acc_f(t, "x", n, 6.0f), *y = in_f(t, "y", n, 6.0f);
    t->cpu->add_act(t->cpu, H(x), H(y), n, (dit_act)p[1]);
    t->dev->add_act(t->dev, D(x), D(y), n, (dit_act)p[1]);
    return CASE_RAN;
}

/* p: n, in place */
static int case_affine(tcase *t, const int *p)
{
    NEED(affine);
    const size_t n = (size_t)p[0];
    if (p[1]) {
        pbuf *x = acc_f(t, "x", n, 3.0f);
        t->cpu->affine(t->cpu, H(x), H(x), n, 0.18215f, -0.25f);
        t->dev->affine(t->dev, D(x), D(x), n, 0.18215f, -0.25f);
    } else {
        pbuf *x = in_f(t, "x", n, 3.0f), *out = out_f(t, "out", n);
        t->cpu->affine(t->cpu, H(out), H(x), n, 1.0f / 0.18215f, 0.5f);
        t->dev->affine(t->dev, D(out), D(x), n, 1.0f / 0.18215f, 0.5f);
    }
    return CASE_RAN;
}

/* p: n, m */
static int case_tanh_clamp(tcase *t, const int *p)
{
    NEED(tanh_clamp);
    const size_t n = (size_t)p[0];
    pbuf *x = in_f(t, "x", n, 10.0f), *out = out_f(t, "out", n);
    t->cpu->tanh_clamp(t->cpu, H(out), H(x), n, (float)p[1]);
    t->dev->tanh_clamp(t->dev, D(out), D(x), n, (float)p[1]);
    return CASE_RAN;
}

/* p: R, D, with weight, in place */
static int case_rms_norm(tcase *t, const int *p)
{
    NEED(rms_norm);
    const int R = p[0], Dm = p[1];
    const size_t n = (size_t)R * Dm;
    const float *wh = NULL, *wd = NULL;
    if (p[2]) {
        pbuf *w = in_f(t, "weight", (size_t)Dm, 2.0f);
        wh = H(w);
        wd = D(w);
    }
    if (p[3]) {
        pbuf *x = acc_f(t, "x", n, 5.0f);
        t->cpu->rms_norm(t->cpu, H(x), H(x), wh, R, Dm, 1e-6f);
        t->dev->rms_norm(t->dev, D(x), D(x), wd, R, Dm, 1e-6f);
    } else {
        pbuf *x = in_f(t, "x", n, 5.0f), *out = out_f(t, "out", n);
        t->cpu->rms_norm(t->cpu, H(out), H(x), wh, R, Dm, 1e-6f);
        t->dev->rms_norm(t->dev, D(out), D(x), wd, R, Dm, 1e-6f);
    }
    return CASE_RAN;
}

/* p: B, T, H, hd, with bias, with key mask, scale x 1000 */
static int case_attention_bias(tcase *t, const int *p)
{
    NEED(attention_bias);
    const int B = p[0], T = p[1], Hh = p[2], hd = p[3];
    pbuf *qkv = in_f(t, "qkv", (size_t)B * T * 3 * Hh * hd, 1.5f);
    pbuf *bias = p[4] ? in_f(t, "bias", (size_t)Hh * T * T, 3.0f) : NULL;
    pbuf *mask = p[5] ? in_labels(t, "key_mask", (size_t)B * T, 2) : NULL;
    pbuf *out = out_f(t, "out", (size_t)B * T * Hh * hd);
    pbuf *probs = scratch_f(t, (size_t)B * Hh * T * T, (size_t)B * Hh * T * T);
    const float scale = (float)p[6] / 1000.0f;
    t->cpu->attention_bias(t->cpu, H(out), H(qkv), bias ? H(bias) : NULL, mask ? HI(mask) : NULL, B,
                           T, Hh, hd, scale, H(probs));
    t->dev->attention_bias(t->dev, D(out), D(qkv), bias ? D(bias) : NULL, mask ? DI(mask) : NULL, B,
                           T, Hh, hd, scale, D(probs));
    return CASE_RAN;
}

/* p: n, in place */
static int case_mul(tcase *t, const int *p)
{
    NEED(mul);
    const size_t n = (size_t)p[0];
    pbuf *b = in_f(t, "b", n, 3.0f);
    if (p[1]) {
        pbuf *a = acc_f(t, "a", n, 3.0f);
        t->cpu->mul(t->cpu, H(a), H(a), H(b), n);
        t->dev->mul(t->dev, D(a), D(a), D(b), n);
    } else {
        pbuf *a = in_f(t, "a", n, 3.0f), *out = out_f(t, "out", n);
        t->cpu->mul(t->cpu, H(out), H(a), H(b), n);
        t->dev->mul(t->dev, D(out), D(a), D(b), n);
    }
    return CASE_RAN;
}

/* p: M, K, N, with dx, with dw, with db, act (x = act(pre), dx through it) */
static int case_linear_backward(tcase *t, const int *p)
{
    NEED(linear_backward);
    const int M = p[0], K = p[1], N = p[2];
    const dit_act act = (dit_act)p[6];
    pbuf *dy = in_f(t, "dy", (size_t)M * N, 1.0f), *x = in_f(t, "x", (size_t)M * K, 1.0f);
    pbuf *w = in_f(t, "w", (size_t)N * K, 0.2f);
    pbuf *pre = act != DIT_ACT_NONE ? in_f(t, "pre", (size_t)M * K, 4.0f) : NULL;
    pbuf *dx = p[3] ? out_f(t, "dx", (size_t)M * K) : NULL;
    pbuf *dw = p[4] ? acc_f(t, "dw", (size_t)N * K, 1.0f) : NULL;
    pbuf *db = p[5] ? acc_f(t, "db", (size_t)N, 1.0f) : NULL;
    t->cpu->linear_backward(t->cpu, H(dx), H(dw), H(db), H(dy), H(x), H(w), M, K, N, H(pre), act);
    t->dev->linear_backward(t->dev, D(dx), D(dw), D(db), D(dy), D(x), D(w), M, K, N, D(pre), act);
    return CASE_RAN;
}

/* p: n, act, dx aliases dy */
static int case_act_backward(tcase *t, const int *p)
{
    NEED(act_backward);
    const size_t n = (size_t)p[0];
    const dit_act act = (dit_act)p[1];
    pbuf *pre = in_f(t, "pre", n, 6.0f);
    if (p[2]) {
        pbuf *d = acc_f(t, "dy=dx", n, 1.0f);
        t->cpu->act_backward(t->cpu, H(d), H(pre), H(d), n, act);
        t->dev->act_backward(t->dev, D(d), D(pre), D(d), n, act);
    } else {
        pbuf *dy = in_f(t, "dy", n, 1.0f), *dx = out_f(t, "dx", n);
        t->cpu->act_backward(t->cpu, H(dx), H(pre), H(dy), n, act);
        t->dev->act_backward(t->dev, D(dx), D(pre), D(dy), n, act);
    }
    return CASE_RAN;
}

/* p: n, step */
static int case_adamw(tcase *t, const int *p)
{
    NEED(adamw);
    const size_t n = (size_t)p[0];
    pbuf *par = acc_f(t, "p", n, 1.0f), *g = in_f(t, "g", n, 0.1f);
    pbuf *m = acc_f(t, "m", n, 0.01f);
    pbuf *v = pb_new(t, "v", KIND_OUT, n, n);
    for (size_t i = 0; i < n; i++) /* second moments are >= 0 */
        H(v)[i] = uniform(t, 0.0f, 1e-3f);
    pb_upload(t, v);
    t->cpu->adamw(t->cpu, H(par), H(g), H(m), H(v), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, p[1]);
    t->dev->adamw(t->dev, D(par), D(g), D(m), D(v), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, p[1]);
    return CASE_RAN;
}

/* p: n */
/* p: n */
static int case_sum_squares(tcase *t, const int *p)
{
    NEED(sum_squares);
    const size_t n = (size_t)p[0];
    pbuf *x = in_f(t, "x", n, 1.0f), *out = out_f(t, "out", 1);
    t->cpu->sum_squares(t->cpu, H(out), H(x), n);
    t->dev->sum_squares(t->dev, D(out), D(x), n);
    return CASE_RAN;
}

static int case_ema_update(tcase *t, const int *p)
{
    NEED(ema_update);
    const size_t n = (size_t)p[0];
    pbuf *ema = acc_f(t, "ema", n, 1.0f), *par = in_f(t, "p", n, 1.0f);
    t->cpu->ema_update(t->cpu, H(ema), H(par), n, 0.9999f);
    t->dev->ema_update(t->dev, D(ema), D(par), n, 0.9999f);
    return CASE_RAN;
}

/* ---- 4. the table --------------------------------------------------------------- */

#define FP32 DIT_CUDA_FP32, 1e-5
#define TF32 DIT_CUDA_TF32, 2e-3
#define BF16 DIT_CUDA_BF16, 1e-2
enum { NONE = DIT_ACT_NONE, GELU = DIT_ACT_GELU_TANH, SILU = DIT_ACT_SILU, RELU = DIT_ACT_RELU };

typedef struct {
    const char *name;
    const char *ops; /* the dit_backend members the row exercises, comma-separated */
    int p[16];
    dit_cuda_precision precision;
    double tol;
    case_fn fn;
} prow;

/* clang-format off */
static const prow rows[] = {
    /* linear: M, K, N, act, bias */
    {"linear 37x129->67 gelu+bias", "linear", {37, 129, 67, GELU, 1}, FP32, case_linear},
    {"linear 3x257->1153 (few rows)", "linear", {3, 257, 1153, NONE, 0}, FP32, case_linear},
    {"linear 64x72->216 silu", "linear", {64, 72, 216, SILU, 0}, FP32, case_linear},
    {"linear 101x96->130 relu+bias", "linear", {101, 96, 130, RELU, 1}, FP32, case_linear},
    {"linear 77x384->200 gelu tf32", "linear", {77, 384, 200, GELU, 1}, TF32, case_linear},
    {"linear 77x384->200 gelu bf16", "linear", {77, 384, 200, GELU, 1}, BF16, case_linear},
    /* attention: B, T, H, hd */
    {"attention 2x77 h3 hd72 (XL)", "attention,attention_scratch", {2, 77, 3, 72}, FP32, case_attention},
    {"attention 1x64 h2 hd64", "attention,attention_scratch", {1, 64, 2, 64}, FP32, case_attention},
    {"attention 2x33 h2 hd17", "attention,attention_scratch", {2, 33, 2, 17}, FP32, case_attention},
    {"attention 1x40 h2 hd128", "attention,attention_scratch", {1, 40, 2, 128}, FP32, case_attention},
    {"attention 1x1 h1 hd8", "attention,attention_scratch", {1, 1, 1, 8}, FP32, case_attention},
    {"attention 1x19 h2 hd160 (cuBLAS)", "attention,attention_scratch", {1, 19, 2, 160}, FP32, case_attention},
    {"attention 1x19 h2 hd160 bf16", "attention,attention_scratch", {1, 19, 2, 160}, BF16, case_attention},
    {"attention_train 2x45 h3 hd24", "attention_train", {2, 45, 3, 24}, FP32, case_attention_train},
    {"attention_train 1x70 h2 hd72 bf16", "attention_train", {1, 70, 2, 72}, BF16, case_attention_train},
    {"attention_backward 2x37 h3 hd24", "attention_backward,attention_scratch", {2, 37, 3, 24}, FP32, case_attention_backward},
    {"attention_backward 1x50 h2 hd72", "attention_backward,attention_scratch", {1, 50, 2, 72}, FP32, case_attention_backward},
    {"attention_backward 1x50 h2 hd72 tf32", "attention_backward,attention_scratch", {1, 50, 2, 72}, TF32, case_attention_backward},
    /* layernorm: B, T, D, modulated (backward: with scale, with dshift/dscale) */
    {"layernorm_modulate 2x37x1152", "layernorm_modulate", {2, 37, 1152, 1}, FP32, case_layernorm_modulate},
    {"layernorm_modulate 3x5x77", "layernorm_modulate", {3, 5, 77, 1}, FP32, case_layernorm_modulate},
    {"layernorm (plain) 2x9x40", "layernorm_modulate", {2, 9, 40, 0}, FP32, case_layernorm_modulate},
    {"layernorm_modulate_train 2x21x333", "layernorm_modulate_train", {2, 21, 333, 1}, FP32, case_layernorm_modulate_train},
    {"layernorm_modulate_train 1x7x64 plain", "layernorm_modulate_train", {1, 7, 64, 0}, FP32, case_layernorm_modulate_train},
    {"layernorm_modulate_backward 2x19x131", "layernorm_modulate_backward", {2, 19, 131, 1, 1}, FP32, case_layernorm_modulate_backward},
    {"layernorm_modulate_backward 3x4x1040", "layernorm_modulate_backward", {3, 4, 1040, 1, 1}, FP32, case_layernorm_modulate_backward},
    {"layernorm_backward 2x5x48 no mod", "layernorm_modulate_backward", {2, 5, 48, 0, 0}, FP32, case_layernorm_modulate_backward},
    /* activations */
    {"gelu_tanh 100003", "gelu_tanh", {100003, 0}, FP32, case_gelu_tanh},
    {"gelu_tanh 4097 in place", "gelu_tanh", {4097, 1}, FP32, case_gelu_tanh},
    {"silu 4097", "silu", {4097, 0}, FP32, case_silu},
    {"silu 999 in place", "silu", {999, 1}, FP32, case_silu},
    {"add_act 5000 silu", "add_act", {5000, SILU}, FP32, case_add_act},
    {"add_act 777 none", "add_act", {777, NONE}, FP32, case_add_act},
    {"add_act 513 gelu", "add_act", {513, GELU}, FP32, case_add_act},
    {"act_backward 3001 gelu", "act_backward", {3001, GELU, 0}, FP32, case_act_backward},
    {"act_backward 3001 silu in place", "act_backward", {3001, SILU, 1}, FP32, case_act_backward},
    {"act_backward 1000 relu", "act_backward", {1000, RELU, 0}, FP32, case_act_backward},
    /* patches: B, C, H, W, p */
    {"patchify 2x4x32x32 p2", "patchify", {2, 4, 32, 32, 2}, FP32, case_patchify},
    {"patchify 1x3x10x14 p4 (ragged)", "patchify", {1, 3, 10, 14, 4}, FP32, case_patchify},
    {"patchify 2x5x9x9 p3", "patchify", {2, 5, 9, 9, 3}, FP32, case_patchify},
    {"unpatchify 2x8x16x16 p2", "unpatchify", {2, 8, 16, 16, 2}, FP32, case_unpatchify},
    {"unpatchify 1x3x10x14 p4 (ragged)", "unpatchify", {1, 3, 10, 14, 4}, FP32, case_unpatchify},
    {"unpatchify_backward 2x4x8x8 p2", "unpatchify_backward", {2, 4, 8, 8, 2}, FP32, case_unpatchify_backward},
    {"unpatchify_backward 1x3x10x14 p4", "unpatchify_backward", {1, 3, 10, 14, 4}, FP32, case_unpatchify_backward},
    /* residuals and rows: B, T, D */
    {"gated_add 3x17x65", "gated_add", {3, 17, 65, 1}, FP32, case_gated_add},
    {"gated_add 2x9x33 ungated", "gated_add", {2, 9, 33, 0}, FP32, case_gated_add},
    {"gated_add_backward 3x17x65", "gated_add_backward", {3, 17, 65, 1}, FP32, case_gated_add_backward},
    {"gated_add_backward 2x9x33 ungated", "gated_add_backward", {2, 9, 33, 0}, FP32, case_gated_add_backward},
    {"copy_tokens 3x(2+16)x40 join", "copy_tokens", {3, 18, 2, 16, 0, 16, 40}, FP32, case_copy_tokens},
    {"copy_tokens 2x18->1 row 1 split", "copy_tokens", {2, 1, 0, 18, 1, 1, 24}, FP32, case_copy_tokens},
    {"cross_attention 2x17 to 2, 3x24", "cross_attention", {2, 17, 2, 3, 24}, FP32, case_cross_attention},
    {"cross_attention 3x5 to 1, 2x8", "cross_attention", {3, 5, 1, 2, 8}, FP32, case_cross_attention},
    {"cross_attention 2x37 to 13 masked, 3x24", "cross_attention", {2, 37, 13, 3, 24, 1}, FP32, case_cross_attention},
    {"cross_attention_backward 2x17 to 2, 3x24", "cross_attention_backward", {2, 17, 2, 3, 24}, FP32, case_cross_attention_backward},
    {"cross_attention_backward 3x5 to 1, 2x8", "cross_attention_backward", {3, 5, 1, 2, 8}, FP32, case_cross_attention_backward},
    {"add_rows 2x37x72", "add_rows", {2, 37, 72}, FP32, case_add_rows},
    /* embeddings */
    {"add_embedding 5x96 of 11", "add_embedding", {5, 96, 11, 1}, FP32, case_add_embedding},
    {"add_embedding 4x40 of 3, rows alone", "add_embedding", {4, 40, 3, 0}, FP32, case_add_embedding},
    {"add_embedding_backward 7x33 of 3", "add_embedding_backward", {7, 33, 3}, FP32, case_add_embedding_backward},
    {"timestep_embedding 5x256", "timestep_embedding", {5, 256, 0}, FP32, case_timestep_embedding},
    {"timestep_embedding 3x255 shift 1", "timestep_embedding", {3, 255, 1}, FP32, case_timestep_embedding},
    {"pos_embed_2d 16x16x1152", "pos_embed_2d", {16, 16, 1152, 16, 16, 100}, FP32, case_pos_embed_2d},
    {"pos_embed_2d 7x9x98 interp 1.5", "pos_embed_2d", {7, 9, 98, 8, 8, 150}, FP32, case_pos_embed_2d},
    /* conv2d: B, Cin, H, W, Cout, k, stride, pad_top, pad_left, Ho, Wo, up2, act, bias */
    {"conv2d 3x3 2x5x13x11->7 silu", "conv2d,conv2d_scratch", {2, 5, 13, 11, 7, 3, 1, 1, 1, 13, 11, 0, SILU, 1}, FP32, case_conv2d},
    {"conv2d 1x1 2x6x9x10->5", "conv2d,conv2d_scratch", {2, 6, 9, 10, 5, 1, 1, 0, 0, 9, 10, 0, NONE, 1}, FP32, case_conv2d},
    {"conv2d down s2 pad(0,1,0,1) 13x12", "conv2d,conv2d_scratch", {1, 4, 13, 12, 6, 3, 2, 0, 0, 6, 6, 0, NONE, 1}, FP32, case_conv2d},
    {"conv2d up2 3x3 7x5->14x10 gelu", "conv2d,conv2d_scratch", {1, 3, 7, 5, 4, 3, 1, 1, 1, 14, 10, 1, GELU, 0}, FP32, case_conv2d},
    {"conv2d 3x3 1x256x7x5->256 (CPU: Winograd)", "conv2d,conv2d_scratch", {1, 256, 7, 5, 256, 3, 1, 1, 1, 7, 5, 0, SILU, 1}, FP32, case_conv2d},
    {"conv2d up2 3x3 256x3x4->256 (CPU: Winograd)", "conv2d,conv2d_scratch", {1, 256, 3, 4, 256, 3, 1, 1, 1, 6, 8, 1, GELU, 0}, FP32, case_conv2d},
    {"conv2d 3x3 2x16x12x12->24 bf16", "conv2d,conv2d_scratch", {2, 16, 12, 12, 24, 3, 1, 1, 1, 12, 12, 0, NONE, 1}, BF16, case_conv2d},
    /* group norm: B, C, HW, groups, act, in place */
    {"group_norm 2x64x49 g32 silu", "group_norm", {2, 64, 49, 32, SILU, 0}, FP32, case_group_norm},
    {"group_norm 1x12x100 g3", "group_norm", {1, 12, 100, 3, NONE, 0}, FP32, case_group_norm},
    {"group_norm 2x16x3001 g4 slices", "group_norm", {2, 16, 3001, 4, SILU, 0}, FP32, case_group_norm},
    {"group_norm 1x8x9000 g2 slices in place", "group_norm", {1, 8, 9000, 2, NONE, 1}, FP32,
     case_group_norm},
    {"group_norm 2x32x81 g8 silu in place", "group_norm", {2, 32, 81, 8, SILU, 1}, FP32, case_group_norm},
    /* spatial attention: B, C, N */
    {"spatial_attention 2x24x49", "spatial_attention,spatial_attention_scratch", {2, 24, 49}, FP32, case_spatial_attention},
    {"spatial_attention 1x64x300", "spatial_attention,spatial_attention_scratch", {1, 64, 300}, FP32, case_spatial_attention},
    {"spatial_attention 1x64x300 bf16", "spatial_attention,spatial_attention_scratch", {1, 64, 300}, BF16, case_spatial_attention},
    /* image element-wise */
    {"affine 3001", "affine", {3001, 0}, FP32, case_affine},
    {"affine 1025 in place", "affine", {1025, 1}, FP32, case_affine},
    {"tanh_clamp 2049 m3", "tanh_clamp", {2049, 3}, FP32, case_tanh_clamp},
    /* text encoder: R, D, with weight, in place */
    {"rms_norm 37x64", "rms_norm", {37, 64, 1, 0}, FP32, case_rms_norm},
    {"rms_norm 5x4096 in place", "rms_norm", {5, 4096, 1, 1}, FP32, case_rms_norm},
    {"rms_norm 3x77 no weight", "rms_norm", {3, 77, 0, 0}, FP32, case_rms_norm},
    {"attention_bias 2x23 h3 hd16 (T5)", "attention_bias", {2, 23, 3, 16, 1, 1, 1000}, FP32, case_attention_bias},
    {"attention_bias 1x40 h2 hd64 no mask", "attention_bias", {1, 40, 2, 64, 1, 0, 1000}, FP32, case_attention_bias},
    {"attention_bias 3x9 h1 hd8 scaled, no bias", "attention_bias", {3, 9, 1, 8, 0, 1, 354}, FP32, case_attention_bias},
    {"mul 1000003", "mul", {1000003, 0}, FP32, case_mul},
    {"mul 77 in place", "mul", {77, 1}, FP32, case_mul},
    /* training */
    {"linear_backward 37x65->29", "linear_backward", {37, 65, 29, 1, 1, 1}, FP32, case_linear_backward},
    {"linear_backward 37x65->29 through gelu", "linear_backward", {37, 65, 29, 1, 1, 1, DIT_ACT_GELU_TANH}, FP32, case_linear_backward},
    {"linear_backward 600x24->40 through silu", "linear_backward", {600, 24, 40, 1, 1, 1, DIT_ACT_SILU}, FP32, case_linear_backward},
    {"linear_backward 2100x24->40 (bands)", "linear_backward", {2100, 24, 40, 1, 1, 1}, FP32, case_linear_backward},
    {"linear_backward 3x40->50 no dx", "linear_backward", {3, 40, 50, 0, 1, 1}, FP32, case_linear_backward},
    {"linear_backward 20x33->17 dx only", "linear_backward", {20, 33, 17, 1, 0, 0}, FP32, case_linear_backward},
    {"linear_backward 37x65->29 bf16", "linear_backward", {37, 65, 29, 1, 1, 1}, BF16, case_linear_backward},
    {"adamw 10007 step 1", "adamw", {10007, 1}, FP32, case_adamw},
    {"adamw 999 step 57", "adamw", {999, 57}, FP32, case_adamw},
    {"ema_update 5003", "ema_update", {5003}, FP32, case_ema_update},
    {"sum_squares 100003", "sum_squares", {100003}, FP32, case_sum_squares},
    {"sum_squares 1000003 (parts)", "sum_squares", {1000003}, FP32, case_sum_squares},
    {"sum_squares 7", "sum_squares", {7}, FP32, case_sum_squares},
};
/* clang-format on */

#define N_ROWS ((int)(sizeof rows / sizeof rows[0]))

/* Whether comma-separated list names op. */
static bool lists(const char *list, const char *op)
{
    const size_t n = strlen(op);
    for (const char *s = list; s && *s;) {
        const char *e = strchr(s, ',');
        const size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == n && strncmp(s, op, n) == 0)
            return true;
        s = e ? e + 1 : NULL;
    }
    return false;
}

/* ---- 5. main --------------------------------------------------------------------- */

static const char *precision_name(dit_cuda_precision p)
{
    return p == DIT_CUDA_TF32 ? "tf32" : p == DIT_CUDA_BF16 ? "bf16" : "fp32";
}

/* The device-free checks of section 1; returns the number of failures. */
static int check_tables(const dit_backend *cpu, const dit_backend *cuda)
{
    const op_info ops[] = {OPS(OP_INFO)};
    int failures = 0, provided = 0, covered = 0;
    for (int i = 0; i < N_OPS; i++) {
        if (ops[i].cpu && !ops[i].cuda) {
            printf("FAIL: the CUDA table lacks %s, which the CPU table has\n", ops[i].name);
            failures++;
        }
        provided += ops[i].cuda;
        bool has_row = false;
        for (int r = 0; r < N_ROWS && !has_row; r++)
            has_row = lists(rows[r].ops, ops[i].name);
        if (!has_row) {
            printf("FAIL: no parity row exercises %s\n", ops[i].name);
            failures++;
        }
        covered += has_row;
    }
    for (int r = 0; r < N_ROWS; r++) {
        /* every name a row claims must be an op */
        char buf[128];
        snprintf(buf, sizeof buf, "%s", rows[r].ops);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            bool known = false;
            for (int i = 0; i < N_OPS; i++)
                known |= strcmp(tok, ops[i].name) == 0;
            if (!known) {
                printf("FAIL: row '%s' names no op '%s'\n", rows[r].name, tok);
                failures++;
            }
        }
    }
    printf("op table: %d ops; CUDA provides %d, parity rows cover %d (%d rows)\n", N_OPS, provided,
           covered, N_ROWS);
    return failures;
}

int main(int argc, char **argv)
{
    /* optional argument: run only rows whose name contains it */
    const char *only = argc > 1 ? argv[1] : NULL;
    dit_backend cpu = *dit_backend_cpu();
#ifdef _OPENMP
    cpu.n_threads = omp_get_max_threads();
#endif
    int failures = check_tables(&cpu, dit_cuda_op_table());

    char why[256];
    if (!dit_cuda_available(why, sizeof why)) {
        printf("%s: skipping the device rows\n", why);
        return failures ? 1 : 77;
    }
    dit_backend *dev = dit_cuda_backend_new(0);
    if (!dev) {
        printf("FAIL: a CUDA device is present but the backend could not be created\n");
        return 1;
    }
#ifdef DIT_CUDA_EMU
    printf("device: the CPU emulator of tests/gpu/emu (no GPU involved)\n");
#endif
    int ran = 0, unsupported = 0, failed = 0;
    for (int r = 0; r < N_ROWS; r++) {
        const prow *row = &rows[r];
        if (only && !strstr(row->name, only))
            continue;
        tcase t = {.cpu = &cpu, .dev = dev, .rng = 0x5eed0000u + (uint64_t)r};
        dit_cuda_set_precision(dev, row->precision);
        const int rc = row->fn(&t, row->p);
        if (rc == CASE_UNSUPPORTED) {
            printf("  %-40s not supported [cuda]\n", row->name);
            unsupported++;
            release(&t);
            continue;
        }
        verdict v = {0, 0, 1, 0};
        if (t.broken)
            printf("      setup failed (device memory)\n");
        else
            v = finish(&t, row->tol);
        printf("  %-40s %s err %.2e (limit %.0e) %s  hash %016llx\n", row->name,
               precision_name(row->precision), v.err, row->tol, v.bad ? "FAIL" : "OK",
               (unsigned long long)v.hash);
        if (v.bad) {
            printf("      shape {");
            for (int i = 0; i < 16 && (i == 0 || row->p[i] || row->p[i - 1]); i++)
                printf("%s%d", i ? ", " : "", row->p[i]);
            printf("}, seed %#llx\n", (unsigned long long)(0x5eed0000u + (uint64_t)r));
        }
        ran++;
        failed += v.bad != 0;
        release(&t);
    }
    dit_cuda_backend_free(dev);
    printf("parity: %d rows ran, %d failed, %d not supported\n", ran, failed, unsupported);
    return failures || failed ? 1 : 0;
}
