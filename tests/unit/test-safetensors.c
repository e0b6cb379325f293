/* safetensors reader: a table of malformed files, each of which must fail
 * with its own message naming the file (and tensor), plus a write/read round
 * trip through every stored dtype. Runs under ASan in the sanitizer build. */
#include "common.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int failures;

typedef struct {
    const char *name;
    const char *header;  /* JSON text; NULL = raw bytes below */
    size_t data_len;     /* bytes of (zero) data after the header */
    long long len_field; /* header length to write; -1 = the real length */
    const char *raw;     /* with header == NULL: the whole file */
    size_t raw_len;
    const char *expect[2]; /* substrings of the error message */
} bad_case;

#define T1(extra) "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}" extra "}"

/* clang-format off */
static const bad_case cases[] = {
    {"empty file", NULL, 0, -1, "", 0, {"too short", NULL}},
    {"truncated length field", NULL, 0, -1, "\x10\0\0", 3, {"too short", NULL}},
    {"header longer than file", T1(""), 8, 4096, NULL, 0, {"longer than the file", NULL}},
    {"huge header", T1(""), 8, 200000000LL, NULL, 0, {"100 MB", NULL}},
    {"truncated data", T1(""), 4, -1, NULL, 0, {"run past the end", "'a'"}},
    {"overlapping offsets",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12, -1, NULL, 0, {"overlap", NULL}},
    {"hole between tensors",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
     12, -1, NULL, 0, {"unindexed bytes", "'b'"}},
    {"trailing bytes", T1(""), 16, -1, NULL, 0, {"after the last tensor", NULL}},
    {"unknown dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1,
     NULL, 0, {"unknown dtype 'F33'", "'a'"}},
    {"shape/size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
     -1, NULL, 0, {"needs 12 bytes", "'a'"}},
    {"non-UTF-8 name", "{\"\xff\xfe\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     8, -1, NULL, 0, {"UTF-8", NULL}},
    {"not JSON", "{\"a\": oops}", 0, -1, NULL, 0, {"not valid JSON", NULL}},
    {"header not an object", "[1, 2]", 0, -1, NULL, 0, {"start with '{'", NULL}},
    {"negative dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
     -1, NULL, 0, {"shape entry 0", "'a'"}},
    {"offsets reversed", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, -1,
     NULL, 0, {"end before they begin", NULL}},
    {"missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, -1, NULL, 0,
     {"data_offsets", "'a'"}},
    {"fractional offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.5]}}", 8,
     -1, NULL, 0, {"not non-negative integers", NULL}},
    {"element count overflow",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
     "\"data_offsets\":[0,8]}}",
     8, -1, NULL, 0, {"overflows", NULL}},
    {"too many dimensions",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, -1,
     NULL, 0, {"9 dimensions", NULL}},
    {"empty tensor name", "{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1,
     NULL, 0, {"empty name", NULL}},
    {"metadata not strings", T1(",\"__metadata__\":{\"k\":3}"), 8, -1, NULL, 0,
     {"__metadata__ entry 'k'", NULL}},
    {"tensor entry not an object", "{\"a\":[0,8]}", 8, -1, NULL, 0, {"not a JSON object", "'a'"}},
    {"offsets past end, huge", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],"
     "\"data_offsets\":[18446744073709551615,18446744073709551615]}}", 0, -1, NULL, 0,
     {"data_offsets", "'a'"}},
};
/* clang-format on */

static char *write_case(const char *dir, size_t index, const bad_case *c)
{
    char *path = g_strdup_printf("%s/case-%02zu.safetensors", dir, index);
    GByteArray *bytes = g_byte_array_new();
    if (c->header) {
        size_t hl = strlen(c->header);
        unsigned long long field = c->len_field >= 0 ? (unsigned long long)c->len_field : hl;
        for (int i = 0; i < 8; i++) {
            guint8 b = (guint8)(field >> (8 * i));
            g_byte_array_append(bytes, &b, 1);
        }
        g_byte_array_append(bytes, (const guint8 *)c->header, (guint)hl);
        guint8 zero = 0;
        for (size_t i = 0; i < c->data_len; i++)
            g_byte_array_append(bytes, &zero, 1);
    } else {
        g_byte_array_append(bytes, (const guint8 *)c->raw, (guint)c->raw_len);
    }
    if (!g_file_set_contents(path, (const char *)bytes->data, bytes->len, NULL)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    g_byte_array_free(bytes, TRUE);
    return path;
}

static void test_bad_files(dit_ctx *ctx, const char *dir)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const bad_case *c = &cases[i];
        char *path = write_case(dir, i, c);
        st_file *f = NULL;
        dit_status st = st_open(ctx, path, &f);
        const char *msg = dit_last_error(ctx);
        bool ok = st == DIT_ERR_FORMAT && f == NULL && strstr(msg, path);
        for (int k = 0; k < 2; k++)
            if (c->expect[k] && !strstr(msg, c->expect[k]))
                ok = false;
        printf("%-28s -> %s: %s  %s\n", c->name, dit_status_name(st), msg, ok ? "OK" : "NOT OK");
        CHECK(ok, "case '%s'", c->name);
        st_close(f);
        g_free(path);
    }
    /* same table through the public model loader: still no crash, same status */
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *path = g_strdup_printf("%s/case-%02zu.safetensors", dir, i);
        dit_model *m = NULL;
        dit_status st = dit_model_load(ctx, path, &m);
        CHECK(st == DIT_ERR_FORMAT && m == NULL, "dit_model_load on '%s' gave %s", cases[i].name,
              dit_status_name(st));
        g_free(path);
    }
    CHECK(G_N_ELEMENTS(cases) >= 12, "the table needs at least 12 cases");
}

static void test_missing_file(dit_ctx *ctx, const char *dir)
{
    char *path = g_strdup_printf("%s/does-not-exist.safetensors", dir);
    st_file *f = NULL;
    dit_status st = st_open(ctx, path, &f);
    CHECK(st == DIT_ERR_IO && strstr(dit_last_error(ctx), "does-not-exist"), "%s",
          dit_last_error(ctx));
    g_free(path);
}

static void test_round_trip(dit_ctx *ctx, const char *dir)
{
    /* values chosen to exercise rounding, subnormals and the extremes */
    float src[12] = {0.0f,  -0.0f,    1.0f,          -2.5f,       3.14159265f, 65504.0f,
                     1e-7f, -6.1e-5f, 1.0009765625f, 0.33333334f, 1e30f,       -1e-30f};
    st_write_tensor ts[3] = {
        {"x.f32", ST_F32, 2, {3, 4}, src, NULL},
        {"x.f16", ST_F16, 1, {12}, src, NULL},
        {"x.bf16", ST_BF16, 3, {2, 3, 2}, src, NULL},
    };
    const char *keys[] = {"note", "num_attention_heads"};
    const char *vals[] = {"héllo \"quoted\"", "4"};
    char *path = g_strdup_printf("%s/round.safetensors", dir);
    dit_status st = st_write(ctx, path, ts, 3, keys, vals, 2);
    CHECK(st == DIT_OK, "write: %s", dit_last_error(ctx));
    st_file *f = NULL;
    st = st_open(ctx, path, &f);
    CHECK(st == DIT_OK, "read back: %s", dit_last_error(ctx));
    if (st != DIT_OK) {
        g_free(path);
        return;
    }
    CHECK(f->n == 3 && f->n_meta == 2, "3 tensors and 2 metadata entries, got %zu, %zu", f->n,
          f->n_meta);
    CHECK(st_meta(f, "note") && strcmp(st_meta(f, "note"), vals[0]) == 0, "metadata kept");
    CHECK(((uintptr_t)f->data & 7) == 0, "data starts 8-byte aligned");
    float back[12];
    const st_tensor *t = st_find(f, "x.f32");
    CHECK(t && t->ndim == 2 && t->shape[1] == 4, "shape kept");
    if (t && st_read_f32(ctx, f, t, back) == DIT_OK)
        CHECK(memcmp(back, src, sizeof src) == 0, "f32 is bit-exact");
    /* f16: exactly representable values survive, 1/3 rounds to nearest even,
     * 1e30 overflows to inf as torch.half() does */
    t = st_find(f, "x.f16");
    if (t && st_read_f32(ctx, f, t, back) == DIT_OK) {
        CHECK(back[2] == 1.0f && back[3] == -2.5f && back[5] == 65504.0f, "f16 exact values");
        CHECK(back[8] == 1.0009765625f, "f16 keeps 1 + 2^-10");
        CHECK(back[9] == 0.333251953125f, "f16 rounds 1/3 to 0.333251953125, got %.12g",
              (double)back[9]);
        CHECK(fabsf(back[6] - 1.1920929e-07f) < 1e-12f, "f16 subnormal 1e-7 -> 2^-23, got %g",
              (double)back[6]);
        CHECK(isinf(back[10]), "f16 overflow to inf");
        CHECK(signbit(back[1]) && back[1] == 0.0f, "f16 keeps -0");
    }
    t = st_find(f, "x.bf16");
    if (t && st_read_f32(ctx, f, t, back) == DIT_OK) {
        CHECK(back[4] == 3.140625f, "bf16 rounds pi to 3.140625, got %.9g", (double)back[4]);
        CHECK(fabsf(back[10] - 1e30f) / 1e30f < 4e-3f, "bf16 keeps range");
    }
    st_close(f);
    g_free(path);
}

int main(void)
{
    dit_ctx *ctx = dit_ctx_new();
    char *dir = tmpdir_new();
    test_bad_files(ctx, dir);
    test_missing_file(ctx, dir);
    test_round_trip(ctx, dir);
    tmpdir_remove(dir);
    dit_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
