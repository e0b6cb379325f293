/* Winograd F(2x2, 3x3) for the CPU backend's 3x3 'same' convolutions
 * (core/conv-winograd.c). backend-cpu.c asks winograd_applies per conv and,
 * where it says yes, sizes the scratch with winograd_scratch and runs
 * conv2d_winograd in place of im2col + GEMM. */
#ifndef DIT_CONV_WINOGRAD_H
#define DIT_CONV_WINOGRAD_H

#include "impl.h"

/* Whether d is a shape Winograd takes (3x3, stride 1, padding 1, at least 8
 * channels) and the selection rule picks it: by default from 256 channels in
 * and out; DIT_CONV=im2col or =winograd overrides; never for bf16 products. */
bool winograd_applies(const dit_backend *be, const dit_conv_desc *d);
/* floats of scratch conv2d_winograd needs for d */
size_t winograd_scratch(const dit_backend *be, const dit_conv_desc *d);
/* out (B, Cout, Ho, Wo) = act(conv3x3(in (B, Cin, H, W), w (Cout, Cin, 3, 3)) + bias (Cout)),
 * bias may be NULL; scratch holds winograd_scratch(be, d) floats. */
void conv2d_winograd(const dit_backend *be, float *out, const float *in, const float *w,
                     const float *bias, const dit_conv_desc *d, dit_act act, float *scratch);

#endif
