/* The valid range of every float setting, in one table: the CLI checks its
 * options, the plug-ins their arguments and the pipeline and trainer their
 * params against the same rows, so no two front ends can disagree. */
#include "internal/impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* name (the CLI option), lo, hi, lo open, hi open */
/* clang-format off */
static const dit_range ranges[] = {
    {"strength", 0, 1, false, false},
    {"guidance", 0, 100, false, false},
    {"eta", 0, 1, false, false},
    {"lr", 0, 1, true, false},
    {"ema", 0, 1, false, true},
    {"clip", 0, 1e6, false, false},
    {"dropout", 0, 1, false, true},
    {"label-std", 0, 100, false, false},
    {"mlp-ratio", 0, 64, true, false},
    {"weight-decay", 0, 1, false, false},
};
/* clang-format on */

const dit_range *dit_range_of(const char *name)
{
    for (size_t i = 0; name && i < sizeof ranges / sizeof ranges[0]; i++)
        if (strcmp(ranges[i].name, name) == 0)
            return &ranges[i];
    return NULL;
}

const dit_range *dit_range_at(int i)
{
    return i >= 0 && (size_t)i < sizeof ranges / sizeof ranges[0] ? &ranges[i] : NULL;
}

bool dit_in_range(const dit_range *r, double v)
{
    if (!isfinite(v))
        return false;
    return (r->lo_open ? v > r->lo : v >= r->lo) && (r->hi_open ? v < r->hi : v <= r->hi);
}

void dit_range_format(const dit_range *r, char *buf, size_t size)
{
    snprintf(buf, size, "%c%g, %g%c", r->lo_open ? '(' : '[', r->lo, r->hi, r->hi_open ? ')' : ']');
}

dit_status dit_check_range(dit_ctx *ctx, const char *name, double v)
{
    const dit_range *r = dit_range_of(name);
    if (!r)
        return dit_error(ctx, DIT_ERR_INVALID_ARG, "no range is known for '%s'", name);
    if (dit_in_range(r, v))
        return DIT_OK;
    char range[64];
    dit_range_format(r, range, sizeof range);
    return dit_error(ctx, DIT_ERR_INVALID_ARG, "%s must be in %s, got %g", name, range, v);
}
