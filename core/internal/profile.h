/* DIT_PROFILE=1 in the environment: wall time per kind of op, printed on
 * stderr, to see where a forward or a training step goes. Off, each timed
 * call costs one branch. CPU only: device ops are asynchronous, so host
 * timings would mislead. */
#ifndef DIT_PROFILE_H
#define DIT_PROFILE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DIT_PROFILE_SLOTS 16

typedef struct {
    bool on;
    int n_slots;
    const char *const *names; /* n_slots */
    double ms[DIT_PROFILE_SLOTS];
    double t0;
} dit_profile;

static inline double dit_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline bool dit_profile_enabled(void)
{
    const char *v = getenv("DIT_PROFILE");
    return v && *v && strcmp(v, "0") != 0;
}

#define DIT_TIMED(prof, slot, call)                                                                \
    do {                                                                                           \
        if ((prof)->on)                                                                            \
            (prof)->t0 = dit_wall_ms();                                                            \
        call;                                                                                      \
        if ((prof)->on)                                                                            \
            (prof)->ms[slot] += dit_wall_ms() - (prof)->t0;                                        \
    } while (0)

/* "title (total ms): name ms, name ms, ..." with each slot divided by div */
static inline void dit_profile_print(const dit_profile *pr, const char *title, double div)
{
    double total = 0;
    for (int i = 0; i < pr->n_slots; i++)
        total += pr->ms[i];
    fprintf(stderr, "%s (%.1f ms):", title, total / div);
    for (int i = 0; i < pr->n_slots; i++)
        fprintf(stderr, " %s %.1f%s", pr->names[i], pr->ms[i] / div,
                i + 1 < pr->n_slots ? "," : "\n");
}

#endif
