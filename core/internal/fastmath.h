/* Plain-C math that the compiler can vectorise (no libm calls, no
 * intrinsics), for the element-wise loops of the CPU backend. */
#ifndef DIT_FASTMATH_H
#define DIT_FASTMATH_H

#include "impl.h"

#include <stdint.h>
#include <string.h>

/* e^x, relative error < 2e-7 on [-87, 88] (tests/golden/test-ops.c measures
 * it); inputs outside are clamped, so the result is always finite:
 * e^x = 2^n * e^r with n = round(x / ln 2), |r| <= ln2 / 2, and e^r from the
 * degree-7 polynomial of the Cephes expf. */
static inline float dit_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float round_shift = 12582912.0f; /* 1.5 * 2^23: x + it rounds to an integer */
    float n = (x * 1.44269504088896341f + round_shift) - round_shift;
    float r = x - n * 0.693359375f; /* ln 2 split in two for an exact product */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* The scalar activations, shared by the element-wise loops and the conv
 * epilogues (backend-cpu.c, conv-winograd.c). */
static inline float gelu_tanh_1(float v)
{
    /* 0.5 v (1 + tanh(u)) = v * sigmoid(2u), u = sqrt(2/pi) (v + 0.044715 v^3) */
    const float k2 = 2.0f * 0.7978845608028654f;
    return v / (1.0f + dit_expf(-k2 * (v + 0.044715f * v * v * v)));
}

static inline float silu_1(float v) { return v / (1.0f + dit_expf(-v)); }

static inline float relu_1(float v) { return v > 0.0f ? v : 0.0f; }

static inline float act_1(float v, dit_act act)
{
    return act == DIT_ACT_GELU_TANH ? gelu_tanh_1(v)
           : act == DIT_ACT_SILU    ? silu_1(v)
           : act == DIT_ACT_RELU    ? relu_1(v)
                                    : v;
}

#endif
