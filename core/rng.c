/* Counter-based normal noise: Philox4x32-10 (Salmon et al., "Parallel random
 * numbers: as easy as 1, 2, 3", SC'11) + Box-Muller. Element i of stream s
 * under seed k depends only on (k, s, i), so the noise is the same for any
 * thread count, batch split or backend. */
#include "internal/impl.h"

#include <math.h>

static void philox_round(uint32_t ctr[4], const uint32_t key[2])
{
    const uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0];
    const uint64_t p1 = (uint64_t)0xCD9E8D57u * ctr[2];
    const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    const uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    const uint32_t c1 = ctr[1], c3 = ctr[3];
    ctr[0] = hi1 ^ c1 ^ key[0];
    ctr[1] = lo1;
    ctr[2] = hi0 ^ c3 ^ key[1];
    ctr[3] = lo0;
}

void dit_philox4x32_10(const uint32_t counter[4], const uint32_t key_in[2], uint32_t out[4])
{
    uint32_t ctr[4] = {counter[0], counter[1], counter[2], counter[3]};
    uint32_t key[2] = {key_in[0], key_in[1]};
    for (int r = 0; r < 10; r++) {
        if (r > 0) { /* bump the key between rounds (Weyl sequence) */
            key[0] += 0x9E3779B9u;
            key[1] += 0xBB67AE85u;
        }
        philox_round(ctr, key);
    }
    out[0] = ctr[0], out[1] = ctr[1], out[2] = ctr[2], out[3] = ctr[3];
}

void dit_randn(uint64_t seed, uint32_t stream, size_t first, size_t n, float *out)
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
#pragma omp parallel for schedule(static)
    for (size_t j = first / 4 * 4; j < first + n; j += 4) {
        const uint64_t block = j / 4;
        const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), stream, 0};
        uint32_t u[4];
        dit_philox4x32_10(ctr, key, u);
        double z[4];
        for (int p = 0; p < 2; p++) {
            const double u1 = (u[2 * p] + 0.5) / 4294967296.0;
            const double u2 = (u[2 * p + 1] + 0.5) / 4294967296.0;
            const double r = sqrt(-2.0 * log(u1));
            z[2 * p] = r * cos(2.0 * M_PI * u2);
            z[2 * p + 1] = r * sin(2.0 * M_PI * u2);
        }
        for (int q = 0; q < 4; q++) {
            const size_t i = j + (size_t)q;
            if (i >= first && i < first + n)
                out[i - first] = (float)z[q];
        }
    }
}
