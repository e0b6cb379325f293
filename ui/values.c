/* Defaults of DitValues; see values.h. */
#include "values.h"

#include <string.h>

void ditui_values_init(DitValues *v, DitMode mode)
{
    memset(v, 0, sizeof *v);
    v->version = DIT_VALUES_VERSION;
    v->mode = mode;
    v->steps = 20;
    v->strength = mode == DIT_MODE_IMG2IMG ? 0.75 : 1.0;
    v->guidance = 4.0;
    v->seed = -1;
    v->grow = 0;
    ditui_values_set_string(v->device, sizeof v->device, "auto");
    /* libdit's choice for editors (DIT_INPAINT_MASK_MODE, DIT_INPAINT_FEATHER) */
    ditui_values_set_string(v->mask_mode, sizeof v->mask_mode, "differential");
    v->feather = -1;
    v->colour_match = 0;
    v->resample_jump = 0;
    v->resample_count = 1;
    v->variations = 1;
    v->guidance_from = 0.0, v->guidance_to = 1.0;
    v->top = v->left = v->bottom = v->right = 64;
}

void ditui_values_set_string(gchar *field, gsize size, const gchar *src)
{
    g_strlcpy(field, src ? src : "", size);
}
