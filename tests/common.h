/* Helpers shared by the C tests: fixture paths, io files, comparisons. */
#ifndef DIT_TESTS_COMMON_H
#define DIT_TESTS_COMMON_H

#include "internal/safetensors.h"

#include <stdbool.h>
#include <stdio.h>

/* $G_TEST_SRCDIR/golden/<name> (the tests' source folder). Free with g_free. */
char *fixture_path(const char *name);
/* A fresh private temporary folder; removed with its files by tmpdir_remove. */
char *tmpdir_new(void);
void tmpdir_remove(char *dir);

/* Reads tensor `name` of an open file as f32 into a new buffer (free()). */
float *read_tensor(dit_ctx *ctx, const st_file *f, const char *name, size_t *n, int64_t *shape,
                   int *ndim);

/* Prints "label: max|diff| = a, max|ref| = b, ratio = a/b  OK|NOT OK" and
 * returns whether every value is finite and max|diff| <= rel * max|ref|. */
bool compare_rel(const char *label, const float *ours, const float *ref, size_t n, double rel);

/* Whether bf16 products must run here: oneDNN is built, the kernel's CPU
 * flags have avx512_bf16 or amx_bf16, and $ONEDNN_MAX_CPU_ISA does not cap
 * oneDNN below them. Judged without asking libdit. */
bool test_cpu_bf16_expected(void);
/* The precision a golden test runs in: $DIT_TEST_PRECISION ("bf16"; unset:
 * fp32), set on ctx. Returns 0 to go on, 77 to skip where this machine
 * cannot run it (no oneDNN, or a processor without bf16, real or through
 * $ONEDNN_MAX_CPU_ISA), 1 where it should and does not. */
int test_precision_from_env(dit_ctx *ctx);
/* compare_rel against an fp32 reference fixture. Under bf16 products the
 * ratio must lie in the bf16 band instead: at most 2e-2, and at least 5e-5,
 * so that a run that silently stayed fp32 fails too. */
/* whether test_precision_from_env turned bf16 products on */
bool test_bf16_products(void);
bool compare_ref(const char *label, const float *ours, const float *ref, size_t n, double rel);
/* the same with the bf16 band's upper end given (a fixture whose reference
 * library is itself further off in bf16, measured and said where used) */
bool compare_ref_band(const char *label, const float *ours, const float *ref, size_t n, double rel,
                      double bf16_hi);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#endif

/* An editable copy of a safetensors file's tensors (as f32) and metadata,
 * for building variants of fixtures: drop, add, change, write. */
typedef struct {
    st_write_tensor *t; /* names and data owned by the list */
    size_t n;
    char **meta_keys, **meta_values;
    size_t n_meta;
} tensor_list;

bool tl_load(dit_ctx *ctx, const char *path, tensor_list *tl);
float *tl_data(tensor_list *tl, const char *name, size_t *n);
bool tl_drop(tensor_list *tl, const char *name);
void tl_add(tensor_list *tl, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
            const float *data);
bool tl_set_shape(tensor_list *tl, const char *name, int ndim, const int64_t *shape);
void tl_set_meta(tensor_list *tl, const char *key, const char *value);
dit_status tl_write(dit_ctx *ctx, const tensor_list *tl, const char *path);
void tl_free(tensor_list *tl);
