/* A thin C face of Debian's libsentencepiece (core/spm.cc): load a model,
 * encode a piece of text into ids. Only built with -Dsentencepiece. */
#ifndef DIT_SPM_H
#define DIT_SPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dit_spm dit_spm;

/* NULL with the reason in err */
dit_spm *dit_spm_load(const char *path, char *err, size_t err_len);
void dit_spm_free(dit_spm *spm);
int dit_spm_size(const dit_spm *spm);
/* the model's own ids of its control pieces, -1 where it has none */
int dit_spm_eos(const dit_spm *spm);
int dit_spm_pad(const dit_spm *spm);
int dit_spm_unk(const dit_spm *spm);
/* text[0 .. len) -> *ids (malloc, *n of them); false with err */
bool dit_spm_encode(const dit_spm *spm, const char *text, size_t len, int32_t **ids, int *n,
                    char *err, size_t err_len);

#endif
