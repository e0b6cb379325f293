/* safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {str: str}}, then the byte buffer. Every tensor is validated against the
 * file before any byte of it is used. */
#ifndef DIT_SAFETENSORS_H
#define DIT_SAFETENSORS_H

#include "impl.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u * 1000u * 1000u)

typedef enum {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_F64,
    ST_I64,
    ST_U64,
    ST_F8_E4M3,
    ST_F8_E5M2,
    ST_N_DTYPES
} st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t n_elements;
    size_t begin, end; /* byte range inside the data buffer */
} st_tensor;

typedef struct {
    char *path;
    void *map;
    size_t map_size;
    const uint8_t *data; /* start of the byte buffer */
    size_t data_size;
    st_tensor *tensors; /* (n) in header order */
    size_t n;
    char **meta_keys; /* __metadata__, kept verbatim */
    char **meta_values;
    size_t n_meta;
} st_file;

const char *st_dtype_name(st_dtype dtype);
size_t st_dtype_size(st_dtype dtype);

dit_status st_open(dit_ctx *ctx, const char *path, st_file **out);
void st_close(st_file *file);
const st_tensor *st_find(const st_file *file, const char *name);
const char *st_meta(const st_file *file, const char *key);
/* Copies a F32/F16/BF16/F64 tensor into dst as f32, n_elements floats. */
dit_status st_read_f32(dit_ctx *ctx, const st_file *file, const st_tensor *tensor, float *dst);
/* Gives the mapped file pages wholly inside t back (they count in the
 * process's resident memory while mapped); read again, they come back from
 * the file. For a loader done with t. */
void st_release(const st_file *f, const st_tensor *t);
/* "(a, b, c)" */
void st_shape_str(const int64_t *shape, int ndim, char *buf, size_t len);

/* Writing: tensors are given as f32 data and stored in `dtype` (F32, F16 or
 * BF16), or as raw bytes of any dtype. The file appears atomically: temp
 * file, fsync, rename. */
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data; /* f32 values, converted to dtype on write */
    const void *raw;   /* or: bytes already in dtype, written as they are */
} st_write_tensor;

dit_status st_write(dit_ctx *ctx, const char *path, const st_write_tensor *tensors, size_t n,
                    const char *const *meta_keys, const char *const *meta_values, size_t n_meta);

#endif
