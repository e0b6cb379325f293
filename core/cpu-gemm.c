/* The CPU's matrix products: OpenBLAS, oneDNN fp32 or oneDNN bf16, as the
 * backend table says (internal/cpu-gemm.h). OpenBLAS 0.3.21 runs old
 * kernels on processors newer than itself (its AVX2 kernels on Zen 5, its
 * SSE3 "Prescott" ones on some Xeons), so which fp32 library is faster is
 * measured here, once per process, not assumed. */
#include "internal/cpu-gemm.h"
#include "internal/impl.h"

#include <cblas.h>
#include <glib.h>
#include <stdint.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef DIT_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

/* OpenBLAS exports this; with the OpenMP build it shares libgomp's pool. */
extern void openblas_set_num_threads(int n) __attribute__((weak));

static bool in_parallel(void)
{
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return false;
#endif
}

static void openblas_gemm(const dit_backend *be, bool ta, bool tb, int M, int N, int K, float alpha,
                          const float *A, int lda, const float *B, int ldb, float beta, float *C,
                          int ldc)
{
    static int current = -1; /* only ever set outside parallel regions */
    if (!in_parallel() && openblas_set_num_threads && current != be->n_threads) {
        openblas_set_num_threads(be->n_threads);
        current = be->n_threads;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

#ifdef DIT_HAVE_ONEDNN

/* oneDNN takes its thread count from OpenMP's; inside a region it runs on
 * the calling thread. */
static int enter_threads(int n)
{
#ifdef _OPENMP
    const int old = omp_get_max_threads();
    if (!omp_in_parallel() && old != n)
        omp_set_num_threads(n);
    return old;
#else
    return n;
#endif
}

static void leave_threads(int old)
{
#ifdef _OPENMP
    if (!omp_in_parallel() && omp_get_max_threads() != old)
        omp_set_num_threads(old);
#endif
}

static void onednn_sgemm(const dit_backend *be, bool ta, bool tb, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                         int ldc)
{
    const int old = enter_threads(be->n_threads);
    dnnl_status_t s =
        dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    leave_threads(old);
    if (s != dnnl_success) /* only for arguments cblas_sgemm takes too */
        openblas_gemm(be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static dnnl_engine_t engine; /* set once by the probe */

/* round to nearest even, as torch and oneDNN do; NaN stays NaN */
static inline uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* dst (rows, cols) dense = src (rows, cols; ld apart) in bf16 */
static void convert_rows(uint16_t *dst, const float *src, int rows, int cols, int ld)
{
#pragma omp parallel for if (!in_parallel() && (size_t)rows * cols > (1u << 16))
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * ld;
        uint16_t *d = dst + (size_t)r * cols;
#pragma omp simd
        for (int c = 0; c < cols; c++)
            d[c] = to_bf16(s[c]);
    }
}

/* A growable per-thread buffer: a product's activation operands in bf16.
 * Kept under a thread key whose destructor frees it when the thread ends
 * (a caller's short-lived threads, not only OpenMP's lasting ones). */
typedef struct {
    uint16_t *data;
    size_t cap;
} bf16_buf;
enum { SCRATCH_BUFS = 3 }; /* A, B, oneDNN's scratchpad */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    bf16_buf *bufs = p;
    for (int i = 0; i < SCRATCH_BUFS; i++)
        free(bufs[i].data);
    free(bufs);
}

static void scratch_key_make(void) { pthread_key_create(&scratch_key, scratch_free); }

static uint16_t *scratch_get(int which, size_t n)
{
    pthread_once(&scratch_once, scratch_key_make);
    bf16_buf *bufs = pthread_getspecific(scratch_key);
    if (!bufs) {
        if (!(bufs = calloc(SCRATCH_BUFS, sizeof *bufs)) ||
            pthread_setspecific(scratch_key, bufs) != 0) {
            free(bufs);
            return NULL;
        }
    }
    bf16_buf *b = &bufs[which];
    if (b->cap < n) {
        uint16_t *p = realloc(b->data, n * sizeof *p);
        if (!p)
            return NULL;
        b->data = p, b->cap = n;
    }
    return b->data;
}

/* Strides of op(X) (rows, cols) for X stored with leading dimension ld */
static void op_strides(bool trans, int ld, dnnl_dims_t strides)
{
    strides[0] = trans ? 1 : ld;
    strides[1] = trans ? ld : 1;
}

/* ---- bf16 copies of weights, by the address of their fp32 original -------
 * In the layout the product wants: a matmul's B in the primitive's own
 * blocked layout (md), a convolution's A plain. A weight keeps every layout
 * it was asked in (one or two in practice): a copy handed to one thread is
 * never freed under it by another that wants a different layout. */
enum { MAX_LAYOUTS = 4 };
typedef struct {
    int rows, cols, ld; /* op(X) rows x cols, X stored ld apart */
    bool trans;
    int n;
    dnnl_memory_desc_t md[MAX_LAYOUTS];
    void *data[MAX_LAYOUTS];
    /* held: the fp32 original's whole pages, given back to the system and
     * made inaccessible (a stray fp32 read faults instead of reading zeros);
     * data[0] is then the weight's only copy */
    void *released;
    size_t released_bytes;
} weight_copy;
static GMutex weights_lock;
static GHashTable *weights; /* const float * -> weight_copy * */

static void weight_copy_free(gpointer p)
{
    weight_copy *w = p;
    for (int i = 0; i < w->n; i++)
        free(w->data[i]);
    if (w->released) /* the block is the caller's again, zeros where released */
        mprotect(w->released, w->released_bytes, PROT_READ | PROT_WRITE);
    g_free(w);
}

/* src (rows x cols in src_md) reordered into md */
static void *reorder_weight(const void *src, const dnnl_memory_desc_t *src_md,
                            const dnnl_memory_desc_t *md)
{
    void *data = malloc(dnnl_memory_desc_get_size(md));
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_stream_t s = NULL;
    bool ok = data &&
              dnnl_reorder_primitive_desc_create(&rpd, src_md, engine, md, engine, NULL) == 0 &&
              dnnl_primitive_create(&r, rpd) == 0 &&
              dnnl_memory_create(&from, src_md, engine, (void *)src) == 0 &&
              dnnl_memory_create(&to, md, engine, data) == 0 &&
              dnnl_stream_create(&s, engine, dnnl_stream_default_flags) == 0;
    if (ok) {
        const dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        ok = dnnl_primitive_execute(r, s, 2, args) == 0 && dnnl_stream_wait(s) == 0;
    }
    dnnl_stream_destroy(s);
    dnnl_memory_destroy(from), dnnl_memory_destroy(to);
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
    if (!ok) {
        free(data);
        return NULL;
    }
    return data;
}

static bool weight_fp32_md(dnnl_memory_desc_t *md, bool trans, int ld, int rows, int cols)
{
    dnnl_dims_t dims = {rows, cols}, strides;
    op_strides(trans, ld, strides);
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dnnl_f32, strides) == 0;
}

/* Adds the layout md of weight X to w (made from the fp32 original, or from
 * the held copy when the original was given back); locked */
static const void *weight_add_layout(weight_copy *w, const float *X, const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t src_md;
    void *data = NULL;
    if (w->n == MAX_LAYOUTS)
        return NULL;
    if (w->released)
        data = reorder_weight(w->data[0], &w->md[0], md);
    else if (weight_fp32_md(&src_md, w->trans, w->ld, w->rows, w->cols))
        data = reorder_weight(X, &src_md, md);
    if (data)
        w->md[w->n] = *md, w->data[w->n++] = data;
    return data;
}

/* The copy of weight X (op(X): rows x cols, stored ld apart) in layout md,
 * made at the first call in that layout */
static const void *weight_bf16(const float *X, bool trans, int ld, int rows, int cols,
                               const dnnl_memory_desc_t *md)
{
    g_mutex_lock(&weights_lock);
    if (!weights)
        weights = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, weight_copy_free);
    weight_copy *w = g_hash_table_lookup(weights, X);
    const bool same = w && w->rows == rows && w->cols == cols && w->ld == ld && w->trans == trans;
    if (w && !same && w->released)
        g_error("a bf16-held weight used as a %dx%d matrix, held as %dx%d", rows, cols, w->rows,
                w->cols);
    if (!same) {
        w = g_new0(weight_copy, 1);
        w->rows = rows, w->cols = cols, w->ld = ld, w->trans = trans;
        g_hash_table_replace(weights, (gpointer)X, w);
    }
    const void *data = NULL;
    for (int i = 0; i < w->n && !data; i++)
        if (dnnl_memory_desc_equal(&w->md[i], md))
            data = w->data[i];
    if (!data)
        data = weight_add_layout(w, X, md);
    g_mutex_unlock(&weights_lock);
    return data;
}

bool dit_cpu_gemm_is_held(const float *X)
{
    g_mutex_lock(&weights_lock);
    const weight_copy *w = weights ? g_hash_table_lookup(weights, X) : NULL;
    const bool held = w && w->released;
    g_mutex_unlock(&weights_lock);
    return held;
}

void dit_cpu_gemm_forget(const void *p, size_t bytes)
{
    const char *lo = p, *hi = lo + bytes;
    g_mutex_lock(&weights_lock);
    if (weights) {
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, weights);
        while (g_hash_table_iter_next(&it, &key, NULL))
            if ((const char *)key >= lo && (const char *)key < hi)
                g_hash_table_iter_remove(&it);
    }
    g_mutex_unlock(&weights_lock);
}

/* ---- matmul primitives, made once per shape ------------------------------ */

typedef struct {
    int bf16, packed_b;
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
} mm_key;

typedef struct {
    mm_key key;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t a_md, b_md, c_md; /* b_md: the primitive's layout */
    dnnl_memory_desc_t scratch_md;       /* the caller's scratchpad */
} mm_entry;

static GMutex prims_lock;
static GHashTable *prims; /* mm_key -> mm_entry */

static guint mm_hash(gconstpointer p)
{
    const unsigned char *b = p;
    guint h = 2166136261u;
    for (size_t i = 0; i < sizeof(mm_key); i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static gboolean mm_equal(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, sizeof(mm_key)) == 0;
}

static void mm_entry_free(gpointer p)
{
    mm_entry *e = p;
    dnnl_primitive_destroy(e->prim);
    g_free(e);
}

static mm_entry *mm_create(const mm_key *k)
{
    const dnnl_data_type_t in = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t a_dims = {k->M, k->K}, b_dims = {k->K, k->N}, c_dims = {k->M, k->N};
    dnnl_dims_t a_str, b_str, c_str = {k->ldc, 1};
    /* bf16 activations are converted densely, fp32 ones used in place */
    op_strides(k->ta, k->bf16 ? (k->ta ? k->M : k->K) : k->lda, a_str);
    op_strides(k->tb, k->bf16 ? (k->tb ? k->K : k->N) : k->ldb, b_str);
    mm_entry *e = g_new0(mm_entry, 1);
    e->key = *k;
    dnnl_matmul_desc_t mm;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool ok =
        dnnl_memory_desc_init_by_strides(&e->a_md, 2, a_dims, in, a_str) == 0 &&
        (k->packed_b ? dnnl_memory_desc_init_by_tag(&e->b_md, 2, b_dims, in, dnnl_format_tag_any)
                     : dnnl_memory_desc_init_by_strides(&e->b_md, 2, b_dims, in, b_str)) == 0 &&
        dnnl_memory_desc_init_by_strides(&e->c_md, 2, c_dims, dnnl_f32, c_str) == 0 &&
        dnnl_matmul_desc_init(&mm, &e->a_md, &e->b_md, NULL, &e->c_md) == 0 &&
        dnnl_primitive_attr_create(&attr) == 0 &&
        /* Debian's oneDNN shares a library scratchpad between primitives
         * run at once (no DNNL_ENABLE_CONCURRENT_EXEC), and we run them at
         * once: Winograd's sixteen products, attention's heads */
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == 0;
    if (ok && k->alpha != 1.0f)
        ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha) == 0;
    if (ok && k->beta != 0.0f)
        ok = dnnl_post_ops_create(&po) == 0 && dnnl_post_ops_append_sum(po, k->beta) == 0 &&
             dnnl_primitive_attr_set_post_ops(attr, po) == 0;
    ok = ok && dnnl_primitive_desc_create(&pd, &mm, attr, engine, NULL) == 0 &&
         dnnl_primitive_create(&e->prim, pd) == 0;
    if (ok && k->packed_b)
        e->b_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (ok)
        e->scratch_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        mm_entry_free(e);
        return NULL;
    }
    return e;
}

static const mm_entry *mm_get(const mm_key *k)
{
    enum { MAX_PRIMITIVES = 1024 }; /* shapes seen: a few dozen per model */
    g_mutex_lock(&prims_lock);
    if (!prims)
        prims = g_hash_table_new_full(mm_hash, mm_equal, NULL, mm_entry_free);
    mm_entry *e = g_hash_table_lookup(prims, k);
    if (!e) {
        if (g_hash_table_size(prims) >= MAX_PRIMITIVES)
            g_hash_table_remove_all(prims);
        if ((e = mm_create(k)))
            g_hash_table_insert(prims, &e->key, e);
    }
    g_mutex_unlock(&prims_lock);
    return e;
}

/* C = alpha op(A) op(B) + beta C through oneDNN's matmul primitive, fp32 or
 * on bf16 copies; false when oneDNN cannot run it (the caller then does) */
static bool onednn_matmul(const dit_backend *be, bool bf16, bool ta, bool tb, int M, int N, int K,
                          float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                          float *C, int ldc, dit_gemm_weight weight)
{
    static __thread dnnl_stream_t stream; /* one per thread, kept */
    if (!engine || (!stream && dnnl_stream_create(&stream, engine, dnnl_stream_default_flags)))
        return false;
    mm_key k;
    memset(&k, 0, sizeof k); /* the padding is hashed too */
    k.bf16 = bf16, k.packed_b = bf16 && weight == DIT_GEMM_WEIGHT_B;
    k.ta = ta, k.tb = tb, k.M = M, k.N = N, k.K = K, k.lda = lda, k.ldb = ldb, k.ldc = ldc;
    k.alpha = alpha, k.beta = beta;
    const mm_entry *e = mm_get(&k);
    if (!e)
        return false;
    const void *a = A, *b = B;
    if (bf16) {
        const int a_rows = ta ? K : M, a_cols = ta ? M : K;
        if (weight == DIT_GEMM_WEIGHT_A) {
            a = weight_bf16(A, ta, lda, M, K, &e->a_md);
        } else if ((a = scratch_get(0, (size_t)M * K))) {
            convert_rows((uint16_t *)a, A, a_rows, a_cols, lda);
        }
        if (weight == DIT_GEMM_WEIGHT_B) {
            b = weight_bf16(B, tb, ldb, K, N, &e->b_md);
        } else if ((b = scratch_get(1, (size_t)K * N))) {
            convert_rows((uint16_t *)b, B, tb ? N : K, tb ? K : N, ldb);
        }
        if (!a || !b)
            return false;
    }
    /* in uint16 units: the per-thread buffers hold the scratchpad too */
    const size_t scratch_bytes = dnnl_memory_desc_get_size(&e->scratch_md);
    void *pad = scratch_bytes ? scratch_get(2, (scratch_bytes + 1) / 2) : NULL;
    if (scratch_bytes && !pad)
        return false;
    dnnl_memory_t am = NULL, bm = NULL, cm = NULL, sm = NULL;
    bool ok = dnnl_memory_create(&am, &e->a_md, engine, (void *)a) == 0 &&
              dnnl_memory_create(&bm, &e->b_md, engine, (void *)b) == 0 &&
              dnnl_memory_create(&cm, &e->c_md, engine, C) == 0 &&
              dnnl_memory_create(&sm, &e->scratch_md, engine, pad) == 0;
    if (ok) {
        const dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, am},
                                        {DNNL_ARG_WEIGHTS, bm},
                                        {DNNL_ARG_DST, cm},
                                        {DNNL_ARG_SCRATCHPAD, sm}};
        const int old = enter_threads(be->n_threads);
        ok = dnnl_primitive_execute(e->prim, stream, 4, args) == 0 && dnnl_stream_wait(stream) == 0;
        leave_threads(old);
    }
    dnnl_memory_destroy(am), dnnl_memory_destroy(bm), dnnl_memory_destroy(cm);
    dnnl_memory_destroy(sm);
    return ok;
}

size_t dit_cpu_gemm_hold_bf16(const float *X, bool trans, int ld, int rows, int cols)
{
    /* in the layout the products will ask for: a linear's B (trans) in
     * the matmul primitive's blocked one, which oneDNN picks from N and K
     * alone (the same for 1 to 4096 rows), a convolution's A plain */
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {rows, cols}, strides;
    op_strides(false, cols, strides);
    if (!engine || dnnl_memory_desc_init_by_strides(&md, 2, dims, dnnl_bf16, strides))
        return 0;
    if (trans) {
        mm_key k;
        memset(&k, 0, sizeof k);
        k.bf16 = k.packed_b = 1, k.tb = 1, k.M = 64, k.N = cols, k.K = rows;
        k.lda = rows, k.ldb = ld, k.ldc = cols, k.alpha = 1.0f;
        const mm_entry *e = mm_get(&k);
        if (!e)
            return 0;
        md = e->b_md;
    }
    if (!weight_bf16(X, trans, ld, rows, cols, &md))
        return 0;
    /* the whole pages inside the original */
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)X + page - 1) & ~(page - 1);
    const uintptr_t hi = ((uintptr_t)(X + (size_t)(trans ? cols : rows) * ld)) & ~(page - 1);
    if (hi <= lo)
        return 0;
    g_mutex_lock(&weights_lock);
    weight_copy *w = g_hash_table_lookup(weights, X);
    /* inaccessible first: were the pages dropped and the protection then
     * refused, the fp32 weight would silently read as zeros */
    if (w && !w->released && mprotect((void *)lo, hi - lo, PROT_NONE) == 0) {
        w->released = (void *)lo, w->released_bytes = hi - lo;
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    const size_t given = w && w->released ? w->released_bytes : 0;
    g_mutex_unlock(&weights_lock);
    return given;
}

#else /* no oneDNN: dit_cpu_gemm_fp32_lib never picks it and bf16 is refused */

void dit_cpu_gemm_forget(const void *p, size_t bytes) { (void)p, (void)bytes; }

size_t dit_cpu_gemm_hold_bf16(const float *X, bool trans, int ld, int rows, int cols)
{
    (void)X, (void)trans, (void)ld, (void)rows, (void)cols;
    return 0;
}

bool dit_cpu_gemm_is_held(const float *X)
{
    (void)X;
    return false;
}

#endif

/* ---- which library, measured once ---------------------------------------- */

typedef struct {
    dit_gemm_lib fp32;
    bool bf16_ok, bf16_faster;
    double rate[3]; /* GFLOP/s: OpenBLAS, oneDNN fp32, oneDNN bf16 */
    char isa[32];
    char why[160]; /* why bf16 cannot run */
} gemm_probe;

static gemm_probe probe;

#ifdef DIT_HAVE_ONEDNN
static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

/* best of three runs of fn on the probe's shape, in GFLOP/s */
static double time_gemm(dit_backend *be, int lib, const float *A, const float *W, float *C)
{
    enum { M = 256, K = 512, N = 1024 };
    double best = 0;
    for (int rep = 0; rep < 4; rep++) {
        const gint64 t0 = g_get_monotonic_time();
        if (lib == 0)
            openblas_gemm(be, false, true, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
        else if (!onednn_matmul(be, lib == 2, false, true, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N,
                                DIT_GEMM_WEIGHT_B)) {
            if (lib == 2)
                return 0;
            onednn_sgemm(be, false, true, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
        }
        const double s = (double)(g_get_monotonic_time() - t0) * 1e-6;
        const double rate = 2.0 * M * N * K / (s > 1e-9 ? s : 1e-9) * 1e-9;
        if (rep > 0 && rate > best) /* the first run warms caches and JIT */
            best = rate;
    }
    return best;
}

static void measure(void)
{
    const char *isa = isa_name(dnnl_get_effective_cpu_isa());
    snprintf(probe.isa, sizeof probe.isa, "%s", isa);
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
        engine = NULL;
    /* bf16 matmul runs on AVX-512 BF16 (and AMX); oneDNN 2.6 has no
     * emulated path for older processors */
    probe.bf16_ok = engine && dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core_bf16 &&
                    dnnl_get_effective_cpu_isa() != dnnl_cpu_isa_avx2_vnni;
    if (!probe.bf16_ok)
        snprintf(probe.why, sizeof probe.why,
                 "this processor has no bf16 dot products as oneDNN sees it (instruction set "
                 "%s; bf16 needs avx512_core_bf16 or AMX)",
                 isa);
    enum { M = 256, K = 512, N = 1024 };
    float *A = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
    float *C = malloc(sizeof(float) * M * N);
    const char *forced = g_getenv("DIT_CPU_GEMM");
    if (A && W && C) {
        for (size_t i = 0; i < (size_t)M * K; i++)
            A[i] = (float)(i % 17) * 0.0625f - 0.5f;
        for (size_t i = 0; i < (size_t)N * K; i++)
            W[i] = (float)(i % 13) * 0.0625f - 0.375f;
        dit_backend be = {.name = "probe", .n_threads = 1};
#ifdef _OPENMP
        be.n_threads = omp_get_max_threads();
#endif
        probe.rate[0] = time_gemm(&be, 0, A, W, C);
        probe.rate[1] = time_gemm(&be, 1, A, W, C);
        if (probe.bf16_ok)
            probe.rate[2] = time_gemm(&be, 2, A, W, C);
        dit_cpu_gemm_forget(W, sizeof(float) * N * K);
    }
    free(A), free(W), free(C);
    /* a margin, so that machines where the two are close keep one choice
     * from run to run (results differ between libraries by rounding) */
    probe.fp32 = probe.rate[1] > 1.25 * probe.rate[0] ? DIT_GEMM_ONEDNN : DIT_GEMM_OPENBLAS;
    if (forced && strcmp(forced, "openblas") == 0)
        probe.fp32 = DIT_GEMM_OPENBLAS;
    else if (forced && strcmp(forced, "onednn") == 0)
        probe.fp32 = DIT_GEMM_ONEDNN;
    probe.bf16_faster = probe.bf16_ok && probe.rate[2] > 1.15 * probe.rate[probe.fp32];
}
#else
static void measure(void)
{
    snprintf(probe.isa, sizeof probe.isa, "none");
    snprintf(probe.why, sizeof probe.why,
             "this build of libdit has no oneDNN (configure with -Donednn=enabled and "
             "libdnnl-dev installed)");
    probe.fp32 = DIT_GEMM_OPENBLAS;
}
#endif

static void probe_once(void)
{
    static gsize done = 0;
    if (g_once_init_enter(&done)) {
        measure();
        g_once_init_leave(&done, 1);
    }
}

dit_gemm_lib dit_cpu_gemm_fp32_lib(void)
{
    probe_once();
    return probe.fp32;
}

const char *dit_cpu_gemm_lib_name(dit_gemm_lib lib)
{
    return lib == DIT_GEMM_ONEDNN ? "oneDNN" : "OpenBLAS";
}

bool dit_cpu_bf16_supported(char *why, size_t why_len)
{
    probe_once();
    if (!probe.bf16_ok && why && why_len)
        snprintf(why, why_len, "%s", probe.why);
    return probe.bf16_ok;
}

bool dit_cpu_bf16_faster(void)
{
    probe_once();
    return probe.bf16_faster;
}

void dit_cpu_gemm(const dit_backend *be, bool trans_a, bool trans_b, int M, int N, int K,
                  float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc, dit_gemm_weight weight)
{
    if (M <= 0 || N <= 0)
        return;
#ifdef DIT_HAVE_ONEDNN
    if (be->gemm_bf16 && K > 0) {
        if (onednn_matmul(be, true, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                          weight))
            return;
        /* a held weight has no fp32 to fall back on (its pages fault) */
        const float *w = weight == DIT_GEMM_WEIGHT_A ? A : weight == DIT_GEMM_WEIGHT_B ? B : NULL;
        if (w && dit_cpu_gemm_is_held(w))
            g_error("a bf16 product with a weight held in bf16 only failed (out of memory?); "
                    "it has no fp32 copy to fall back on");
    }
    const int lib = be->gemm_lib == DIT_GEMM_AUTO ? (int)dit_cpu_gemm_fp32_lib() : be->gemm_lib;
    if (lib == DIT_GEMM_ONEDNN) {
        if (K == 0 || !onednn_matmul(be, false, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                                     beta, C, ldc, weight))
            onednn_sgemm(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#else
    (void)weight;
#endif
    openblas_gemm(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

bool dit_build_has_onednn(void)
{
#ifdef DIT_HAVE_ONEDNN
    return true;
#else
    return false;
#endif
}

void dit_cpu_get_caps(dit_cpu_caps *caps)
{
    if (!caps)
        return;
    probe_once();
    memset(caps, 0, sizeof *caps);
    caps->isa = probe.isa;
    caps->fp32_library = dit_cpu_gemm_lib_name(probe.fp32);
    caps->bf16 = probe.bf16_ok;
    caps->bf16_faster = probe.bf16_faster;
    caps->gflops_openblas = probe.rate[0];
    caps->gflops_onednn_fp32 = probe.rate[1];
    caps->gflops_onednn_bf16 = probe.rate[2];
    if (!probe.bf16_ok)
        snprintf(caps->bf16_why, sizeof caps->bf16_why, "%s", probe.why);
}
