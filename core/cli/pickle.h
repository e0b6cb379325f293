/* The subset of Python's pickle that a torch.save state dict needs, read
 * by a small machine that runs none of the file's code (pickle.c), and the
 * values it builds. */
#ifndef DIT_CLI_PICKLE_H
#define DIT_CLI_PICKLE_H

#include "internal/safetensors.h"
#include "zip-read.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_TUPLE,
    V_LIST,
    V_DICT,
    V_GLOBAL,
    V_STORAGE,
    V_TENSOR,
    V_MARK
} vkind;

typedef struct value value;
struct value {
    vkind kind;
    gint64 i; /* int, bool */
    double f;
    char *s;          /* str; global "module.name"; storage key */
    GPtrArray *items; /* tuple, list; dict: k0, v0, k1, v1, ... */
    st_dtype dtype;   /* storage, tensor */
    value *storage;   /* tensor */
    gint64 offset;    /* tensor storage offset, elements */
    int ndim;
    gint64 shape[8], stride[8];
};

typedef struct {
    GPtrArray *all; /* every value, freed at the end */
    GPtrArray *stack;
    GPtrArray *memo; /* index -> value */
    const uint8_t *p, *end, *start;
    char err[256];
} vm;

/* frees one value (the machine's `all` array owns every value it made) */
void vfree(gpointer p);
/* Runs the pickle m->p .. m->end; false with the reason in m->err. On
 * success the one value left is m->stack->pdata[0]. */
bool run_pickle(vm *m);

#endif
