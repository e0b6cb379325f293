/* A reader for the zip files torch.save writes (stored entries only),
 * mapped read-only; every offset is checked against the file's size. */
#ifndef DIT_CLI_ZIP_READ_H
#define DIT_CLI_ZIP_READ_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- zip (stored entries only, as torch.save writes them) ------------------ */

typedef struct {
    char *name;
    uint64_t offset; /* of the data */
    uint64_t size;
} zip_entry;

typedef struct {
    const uint8_t *map;
    size_t size;
    zip_entry *entries;
    size_t n;
} zip_file;

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

void zip_close(zip_file *z);
bool zip_open(const char *path, zip_file *z, GError **err);
/* the entry whose name ends in suffix (one '/' before it), or NULL */
const zip_entry *zip_find_suffix(const zip_file *z, const char *suffix);

#endif
