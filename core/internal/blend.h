/* Mask shaping and blending for inpainting (core/blend.c): masks are (H, W)
 * in [0, 1], 1 = regenerate; images (3, H, W) in [-1, 1]. */
#ifndef DIT_BLEND_H
#define DIT_BLEND_H

#include <stdbool.h>

/* d (H, W): each pixel's distance in pixels (8-neighbour chamfer) to the
 * nearest unselected pixel (mask 0), or with `to_selected` to the nearest
 * selected one (mask > 0); 1e30 where there is none */
void blend_distance(const float *mask, int H, int W, bool to_selected, float *d);

/* out = mask softened `feather` pixels inward: each value times
 * smoothstep(distance to the unselected / feather); 0 stays 0 */
void blend_feather(const float *mask, int H, int W, int feather, float *out);

/* DIT_FEATHER_AUTO's width: a fifth of the shorter side of the bounding
 * box of the mask's selected pixels, at least 1; 0 for an empty mask */
int blend_auto_feather(const float *mask, int H, int W);

/* Colour match of B generated images (B, 3, H, W) to the source around the
 * mask: the mean colour of each one's pixels in a ring `ring` pixels wide
 * inside the mask's edge is moved to the source's mean in the ring outside,
 * fully at the edge and fading to nothing 4 rings inward. Only selected
 * pixels change. scratch: 2 H W floats. */
void blend_match_colour(float *gen, int B, const float *src, const float *mask, int H, int W,
                        int ring, float *scratch);

#endif
