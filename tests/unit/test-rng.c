/* Philox4x32-10 against Random123's known-answer vectors, and the normal
 * noise built on it: offsets, thread-count independence, moments. */
#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int failures;

int main(void)
{
    /* Random123 kat_vectors, philox4x32 with 10 rounds */
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        dit_philox4x32_10(kat[i].ctr, kat[i].key, out);
        bool ok = memcmp(out, kat[i].out, sizeof out) == 0;
        printf("philox KAT %zu: %08x %08x %08x %08x  %s\n", i, out[0], out[1], out[2], out[3],
               ok ? "OK" : "NOT OK");
        CHECK(ok, "KAT %zu", i);
    }

    const size_t n = 1 << 20;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    dit_randn(42, 7, 0, n, a);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    dit_randn(42, 7, 0, n, b);
    CHECK(memcmp(a, b, n * sizeof *a) == 0, "1 thread and 2 threads give different noise");
    dit_randn(42, 7, 5, 10, b); /* an offset draw is the same elements */
    CHECK(memcmp(a + 5, b, 10 * sizeof *a) == 0, "offset draw differs");
    dit_randn(43, 7, 0, 16, b);
    CHECK(memcmp(a, b, 16 * sizeof *a) != 0, "another seed gives the same noise");
    dit_randn(42, 8, 0, 16, b);
    CHECK(memcmp(a, b, 16 * sizeof *a) != 0, "another stream gives the same noise");
    double m = 0, v = 0, m4 = 0;
    for (size_t i = 0; i < n; i++)
        m += a[i];
    m /= n;
    for (size_t i = 0; i < n; i++) {
        const double d = a[i] - m;
        v += d * d;
        m4 += d * d * d * d;
    }
    v /= n;
    m4 /= n;
    printf("normal noise, 2^20 samples: mean %.5f var %.5f kurtosis %.4f\n", m, v, m4 / (v * v));
    /* 5 standard errors: 1/sqrt(n) ~ 0.001 for the mean, sqrt(2/n) ~ 0.0014 for the var */
    CHECK(fabs(m) < 0.005 && fabs(v - 1) < 0.007 && fabs(m4 / (v * v) - 3) < 0.03, "moments off");
    free(a);
    free(b);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
