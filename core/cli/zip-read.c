/* The zip container of torch.save checkpoints (see zip-read.h). */
#include "zip-read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void zip_close(zip_file *z)
{
    for (size_t i = 0; i < z->n; i++)
        g_free(z->entries[i].name);
    g_free(z->entries);
    if (z->map)
        munmap((void *)z->map, z->size);
    memset(z, 0, sizeof *z);
}

bool zip_open(const char *path, zip_file *z, GError **err)
{
    memset(z, 0, sizeof *z);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: cannot open: %s", path,
                    g_strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    z->size = (size_t)sb.st_size;
    if (z->size < 22) {
        close(fd);
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "%s: too short to be a torch.save zip (legacy non-zip .pt files are not "
                    "supported)",
                    path);
        return false;
    }
    void *m = mmap(NULL, z->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_IO, "%s: cannot mmap", path);
        return false;
    }
    z->map = m;
    const uint8_t *b = z->map;
    /* end of central directory: the last 22..65557 bytes */
    size_t eocd = SIZE_MAX;
    for (size_t i = z->size - 22 + 1; i-- > 0 && z->size - i <= 22 + 65535;)
        if (rd32(b + i) == 0x06054b50) {
            eocd = i;
            break;
        }
#define BAD(...)                                                                                   \
    do {                                                                                           \
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, __VA_ARGS__);                           \
        zip_close(z);                                                                              \
        return false;                                                                              \
    } while (0)
    if (eocd == SIZE_MAX)
        BAD("%s: not a zip file (torch.save writes zips since PyTorch 1.6)", path);
    uint64_t count = rd16(b + eocd + 10), cd_size = rd32(b + eocd + 12),
             cd_off = rd32(b + eocd + 16);
    if ((count == 0xffff || cd_off == 0xffffffffu) && eocd >= 20 &&
        rd32(b + eocd - 20) == 0x07064b50) { /* zip64 */
        uint64_t rec = rd64(b + eocd - 20 + 8);
        if (z->size < 56 || rec > z->size - 56 || rd32(b + rec) != 0x06064b50)
            BAD("%s: broken zip64 directory", path);
        count = rd64(b + rec + 32), cd_size = rd64(b + rec + 40), cd_off = rd64(b + rec + 48);
    }
    if (cd_off > z->size || cd_size > z->size - cd_off || count > 1000000)
        BAD("%s: zip directory out of range (truncated file?)", path);
    z->entries = g_new0(zip_entry, count ? count : 1);
    uint64_t p = cd_off;
    for (uint64_t i = 0; i < count; i++) {
        if (z->size < 46 || p > z->size - 46 || rd32(b + p) != 0x02014b50)
            BAD("%s: broken zip directory entry %llu", path, (unsigned long long)i);
        const uint16_t method = rd16(b + p + 10), nlen = rd16(b + p + 28), xlen = rd16(b + p + 30),
                       clen = rd16(b + p + 32);
        uint64_t csize = rd32(b + p + 20), usize = rd32(b + p + 24), loc = rd32(b + p + 42);
        if (p + 46 + nlen + xlen > z->size)
            BAD("%s: zip entry name out of range", path);
        /* zip64 extra field: the 0xffffffff fields, in order */
        for (uint64_t x = p + 46 + nlen; x + 4 <= p + 46 + nlen + xlen;) {
            const uint16_t id = rd16(b + x), len = rd16(b + x + 2);
            uint64_t q = x + 4;
            if (id == 0x0001) {
                if (usize == 0xffffffffu && q + 8 <= x + 4 + len)
                    usize = rd64(b + q), q += 8;
                if (csize == 0xffffffffu && q + 8 <= x + 4 + len)
                    csize = rd64(b + q), q += 8;
                if (loc == 0xffffffffu && q + 8 <= x + 4 + len)
                    loc = rd64(b + q);
            }
            x += 4 + (uint64_t)len;
        }
        zip_entry *e = &z->entries[z->n++];
        e->name = g_strndup((const char *)b + p + 46, nlen);
        if (method != 0)
            BAD("%s: entry '%s' is compressed (method %u); torch.save stores entries "
                "uncompressed",
                path, e->name, method);
        if (csize != usize || z->size < 30 || loc > z->size - 30 || rd32(b + loc) != 0x04034b50)
            BAD("%s: entry '%s' has a bad local header", path, e->name);
        const uint64_t data = loc + 30 + rd16(b + loc + 26) + rd16(b + loc + 28);
        if (data > z->size || usize > z->size - data)
            BAD("%s: entry '%s' runs past the end of the file (truncated?)", path, e->name);
        e->offset = data;
        e->size = usize;
        p += 46 + (uint64_t)nlen + xlen + clen;
    }
#undef BAD
    return true;
}

const zip_entry *zip_find_suffix(const zip_file *z, const char *suffix)
{
    const size_t sl = strlen(suffix);
    for (size_t i = 0; i < z->n; i++) {
        const size_t nl = strlen(z->entries[i].name);
        if (nl >= sl && strcmp(z->entries[i].name + nl - sl, suffix) == 0 &&
            (nl == sl || z->entries[i].name[nl - sl - 1] == '/'))
            return &z->entries[i];
    }
    return NULL;
}
