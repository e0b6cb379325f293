/* A small fuzzing driver for builds without libFuzzer (gcc, CI): runs every
 * seed file, then mutates seeds (bit flips, interesting bytes, truncation,
 * duplication, insertion, digit changes) for a bounded time with a fixed
 * PRNG seed, so a failure reproduces. The sanitizer build turns any memory
 * error into a test failure.
 *   standalone SECONDS SEED_FILE... */
#include "fuzz-common.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t next(void)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static size_t mutate(uint8_t *buf, size_t size, size_t cap)
{
    const int ops = 1 + (int)(next() % 8);
    for (int k = 0; k < ops; k++) {
        const size_t at = size ? next() % size : 0;
        switch (next() % 7) {
        case 0:
            if (size)
                buf[at] ^= (uint8_t)(1u << (next() % 8));
            break;
        case 1:
            if (size) {
                static const uint8_t v[] = {0, 0xff, 0x7f, 0x80, '0', '9', '"', '{', '['};
                buf[at] = v[next() % sizeof v];
            }
            break;
        case 2:
            if (size)
                size = at;
            break; /* truncate */
        case 3: {
            size_t n = next() % 16;
            if (size + n <= cap && at + n <= size) {
                memmove(buf + at + n, buf + at, size - at);
                size += n;
            }
        } break; /* duplicate */
        case 4: {
            size_t n = 1 + next() % 8;
            if (size + n <= cap) {
                memmove(buf + at + n, buf + at, size - at);
                for (size_t i = 0; i < n; i++)
                    buf[at + i] = (uint8_t)next();
                size += n;
            }
        } break;
        case 5:
            if (size && buf[at] >= '0' && buf[at] <= '9')
                buf[at] = (uint8_t)('0' + next() % 10);
            break;
        default:
            if (size >= 8) {
                size_t a = next() % (size - 4);
                memcpy(buf + a, buf + next() % (size - 4), 4);
            }
            break;
        }
    }
    return size;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SECONDS SEED_FILE...\n", argv[0]);
        return 1;
    }
    const double seconds = atof(argv[1]);
    GPtrArray *seeds = g_ptr_array_new();
    GArray *sizes = g_array_new(FALSE, FALSE, sizeof(gsize));
    for (int i = 2; i < argc; i++) {
        char *d = NULL;
        gsize n = 0;
        if (!g_file_get_contents(argv[i], &d, &n, NULL) || n > (8u << 20)) {
            g_free(d);
            continue;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)d, n);
        g_ptr_array_add(seeds, d);
        g_array_append_val(sizes, n);
    }
    if (seeds->len == 0) {
        fprintf(stderr, "no seed files\n");
        return 1;
    }
    const size_t cap = 9u << 20;
    uint8_t *buf = malloc(cap);
    long execs = 0;
    const gint64 end = g_get_monotonic_time() + (gint64)(seconds * 1e6);
    while (g_get_monotonic_time() < end) {
        const guint s = (guint)(next() % seeds->len);
        size_t n = g_array_index(sizes, gsize, s);
        memcpy(buf, seeds->pdata[s], n);
        n = mutate(buf, n, cap);
        LLVMFuzzerTestOneInput(buf, n);
        execs++;
    }
    printf("%u seeds, %ld mutated inputs in %.0f s (%.0f execs/s), no crash\n", seeds->len, execs,
           seconds, execs / (seconds > 0 ? seconds : 1));
    free(buf);
    for (guint i = 0; i < seeds->len; i++)
        g_free(seeds->pdata[i]);
    g_ptr_array_free(seeds, TRUE);
    g_array_free(sizes, TRUE);
    return 0;
}
