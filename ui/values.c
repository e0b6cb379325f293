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
    v->guidance = DIT_VALUES_GUIDANCE;
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
    if (size == 0)
        return;
    if (g_strlcpy(field, src ? src : "", size) < size)
        return;
    /* cut: drop a character the last byte left incomplete */
    gchar *end = field + strlen(field);
    gchar *last = g_utf8_find_prev_char(field, end);
    if (last && g_utf8_get_char_validated(last, end - last) == (gunichar)-2)
        *last = '\0';
}

void ditui_values_remember_prompt(DitValues *v, const gchar *prompt)
{
    if (!prompt || !*prompt)
        return;
    gchar kept[DIT_RECENT_PROMPTS][sizeof v->recent_prompts[0]];
    gint n = 0;
    ditui_values_set_string(kept[n++], sizeof kept[0], prompt);
    for (gint i = 0; i < DIT_RECENT_PROMPTS && n < DIT_RECENT_PROMPTS; i++)
        if (v->recent_prompts[i][0] && strcmp(v->recent_prompts[i], kept[0]) != 0)
            memcpy(kept[n++], v->recent_prompts[i], sizeof kept[0]);
    memset(v->recent_prompts, 0, sizeof v->recent_prompts);
    memcpy(v->recent_prompts, kept, n * sizeof kept[0]);
}
