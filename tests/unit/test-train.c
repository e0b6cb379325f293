/* Trainer: a short run learns (loss falls on a fixed batch), N steps straight
 * equal N/2 + checkpoint + resume + N/2 bit for bit, a checkpoint cut at any
 * byte is refused while the complete one still loads, and two ranks (threads
 * with an all-reduce between them) each on half of every batch train as one
 * process on the whole batch does. */
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

/* ---- two ranks in one process: threads, and an all-reduce through a
 * shared buffer between two barriers (what MPI_Allreduce gives) */
typedef struct {
    GMutex lock;
    GCond cond;
    int arrived, generation;
    float *sum;
    size_t n;
} exchange;

static void barrier(exchange *x)
{
    g_mutex_lock(&x->lock);
    const int gen = x->generation;
    if (++x->arrived == 2) {
        x->arrived = 0, x->generation++;
        g_cond_broadcast(&x->cond);
    } else {
        while (gen == x->generation)
            g_cond_wait(&x->cond, &x->lock);
    }
    g_mutex_unlock(&x->lock);
}

typedef struct {
    exchange *x;
    int rank;
} rank_link;

/* rank 0 writes its part, rank 1 adds its own (rank order: the same float
 * sum on both), both read the result */
static dit_status all_sum(void *user, float *data, size_t n)
{
    rank_link *r = user;
    exchange *x = r->x;
    if (r->rank == 0) {
        g_mutex_lock(&x->lock);
        x->sum = g_renew(float, x->sum, n), x->n = n;
        memcpy(x->sum, data, n * sizeof *data);
        g_mutex_unlock(&x->lock);
    }
    barrier(x);
    if (r->rank == 1)
        for (size_t i = 0; i < n; i++)
            x->sum[i] += data[i];
    barrier(x);
    memcpy(data, x->sum, n * sizeof *data);
    barrier(x);
    return DIT_OK;
}

typedef struct {
    dit_ctx *ctx;
    dit_trainer *tr;
    rank_link link;
    int steps;
    float loss[8];
    bool ok;
} rank_run;

static gpointer rank_thread(gpointer data)
{
    rank_run *r = data;
    float imgs[4 * 64];
    int32_t labels[4];
    r->ok = true;
    for (int s = 0; s < r->steps; s++) {
        batch(s, imgs, labels); /* the global batch; this rank takes its half */
        const int b0 = 2 * r->link.rank;
        r->ok &=
            dit_trainer_step(r->ctx, r->tr, imgs + b0 * 64, labels + b0, &r->loss[s]) == DIT_OK;
    }
    return NULL;
}

static void data_parallel(dit_ctx *ctx)
{
    enum { STEPS = 6 };
    dit_model *m1 = NULL, *mr[2] = {NULL, NULL};
    dit_trainer *one = new_trainer(ctx, &m1, DIT_OBJ_EPS_MSE);
    float imgs[4 * 64], loss1[STEPS];
    int32_t labels[4];
    for (int s = 0; s < STEPS; s++) {
        batch(s, imgs, labels);
        dit_trainer_step(ctx, one, imgs, labels, &loss1[s]);
    }
    exchange x = {0};
    g_mutex_init(&x.lock), g_cond_init(&x.cond);
    rank_run runs[2];
    GThread *threads[2];
    for (int k = 0; k < 2; k++) {
        runs[k] = (rank_run){.ctx = dit_ctx_new(), .link = {&x, k}, .steps = STEPS};
        dit_ctx_set_threads(runs[k].ctx, 1);
        runs[k].tr = new_trainer(runs[k].ctx, &mr[k], DIT_OBJ_EPS_MSE);
        const dit_train_parallel par = {k, 2, all_sum, &runs[k].link};
        CHECK(dit_trainer_set_parallel(runs[k].ctx, runs[k].tr, &par) == DIT_OK, "%s",
              dit_last_error(runs[k].ctx));
    }
    const dit_train_parallel bad = {0, 3, all_sum, NULL};
    CHECK(dit_trainer_set_parallel(ctx, one, &bad) == DIT_ERR_INVALID_ARG,
          "a batch of 4 over 3 ranks was accepted");
    for (int k = 0; k < 2; k++)
        threads[k] = g_thread_new("rank", rank_thread, &runs[k]);
    for (int k = 0; k < 2; k++)
        g_thread_join(threads[k]);
    double dl = 0, dw = 0, mw = 0;
    for (int s = 0; s < STEPS; s++)
        dl = fmax(dl, fabs((double)runs[0].loss[s] - loss1[s]) / fabs((double)loss1[s]));
    const size_t n = m1->param_floats;
    for (size_t i = 0; i < n; i++) {
        dw = fmax(dw, fabs((double)mr[0]->params[i] - m1->params[i]));
        mw = fmax(mw, fabs((double)m1->params[i]));
    }
    const bool ranks_agree =
        same(mr[0]->params, mr[1]->params, n) && same(runs[0].loss, runs[1].loss, STEPS);
    printf("2 ranks x 2 samples vs 1 process x 4, %d steps: losses %.2e apart (relative), "
           "weights %.2e of max; the two ranks %s\n",
           STEPS, dl, dw / mw, ranks_agree ? "bit for bit equal" : "DIFFER");
    CHECK(runs[0].ok && runs[1].ok, "a rank's step failed");
    CHECK(ranks_agree, "the ranks' weights or losses differ");
    CHECK(dl <= 1e-6 && dw <= 1e-5 * mw, "data-parallel training is not one process's");
    for (int k = 0; k < 2; k++) {
        dit_trainer_free(runs[k].tr), dit_model_free(mr[k]);
        dit_ctx_free(runs[k].ctx);
    }
    dit_trainer_free(one), dit_model_free(m1);
    g_free(x.sum);
    g_mutex_clear(&x.lock), g_cond_clear(&x.cond);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    data_parallel(ctx);
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
