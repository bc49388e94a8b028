/* Zip directory reader over a memory buffer; see zip_read.h. Field offsets
 * are APPNOTE.TXT 4.3.7 (local header), 4.3.12 (central header), 4.3.14-16
 * (ZIP64 end record and locator), 4.3.16 (end of central directory), 4.5.3
 * (the ZIP64 extended information extra field). */
#include "engine/core/zip_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZIP_SIG_LOCAL 0x04034b50u
#define ZIP_SIG_CENTRAL 0x02014b50u
#define ZIP_SIG_EOCD 0x06054b50u
#define ZIP_SIG_EOCD64 0x06064b50u
#define ZIP_SIG_LOCATOR64 0x07064b50u
#define ZIP_EOCD_LEN 22u
#define ZIP_LOCATOR64_LEN 20u
#define ZIP_EOCD64_LEN 56u
#define ZIP_CENTRAL_LEN 46u
#define ZIP_LOCAL_LEN 30u
#define ZIP_MAX_COMMENT 0xffffu
#define ZIP_EXTRA_ZIP64 0x0001u

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16;
}
static uint64_t rd64(const unsigned char *p) {
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* 1 when [off, off + n) lies inside [0, len). */
static int in_bounds(uint64_t off, uint64_t n, size_t len) { return off <= len && n <= len - off; }

int zip_is_zip(const void *buf, size_t len) {
    return len >= 4 && (rd32(buf) == ZIP_SIG_LOCAL || rd32(buf) == ZIP_SIG_EOCD);
}

/* Where the central directory is and how many entries it holds. */
static int find_directory(const zip_archive *z, uint64_t *cd_off, uint64_t *cd_size,
                          uint64_t *count, cnet_error *err) {
    const unsigned char *b = z->buf;
    if (z->len < ZIP_EOCD_LEN)
        return cnet_fail(err, CNET_EFORMAT, "%s: %zu bytes is too short for a zip archive", z->path,
                         z->len);
    size_t lowest =
        z->len - ZIP_EOCD_LEN > ZIP_MAX_COMMENT ? z->len - ZIP_EOCD_LEN - ZIP_MAX_COMMENT : 0;
    size_t eocd = z->len - ZIP_EOCD_LEN + 1;
    do {
        eocd--;
        if (rd32(b + eocd) == ZIP_SIG_EOCD && eocd + ZIP_EOCD_LEN + rd16(b + eocd + 20) == z->len)
            break;
    } while (eocd > lowest);
    if (rd32(b + eocd) != ZIP_SIG_EOCD)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: no end-of-central-directory record (truncated zip archive?)",
                         z->path);
    if (rd16(b + eocd + 4) != 0 || rd16(b + eocd + 6) != 0)
        return cnet_fail(err, CNET_EFORMAT, "%s: multi-disk zip archives are not supported",
                         z->path);
    *count = rd16(b + eocd + 10);
    *cd_size = rd32(b + eocd + 12);
    *cd_off = rd32(b + eocd + 16);
    if (*count != 0xffff && *cd_size != 0xffffffffu && *cd_off != 0xffffffffu) return 0;
    /* ZIP64: the locator sits right before the end record */
    if (eocd < ZIP_LOCATOR64_LEN || rd32(b + eocd - ZIP_LOCATOR64_LEN) != ZIP_SIG_LOCATOR64)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: saturated end record without a ZIP64 locator before it", z->path);
    uint64_t e64 = rd64(b + eocd - ZIP_LOCATOR64_LEN + 8);
    if (!in_bounds(e64, ZIP_EOCD64_LEN, z->len) || rd32(b + e64) != ZIP_SIG_EOCD64)
        return cnet_fail(err, CNET_EFORMAT, "%s: ZIP64 end record offset %llu is not one", z->path,
                         (unsigned long long)e64);
    *count = rd64(b + e64 + 32);
    *cd_size = rd64(b + e64 + 40);
    *cd_off = rd64(b + e64 + 48);
    return 0;
}

/* Replaces the saturated 32-bit fields of a central header by the values of
 * its ZIP64 extra field, in APPNOTE's order (size, compressed size, offset). */
static int apply_zip64(const zip_archive *z, const unsigned char *extra, uint32_t extra_len,
                       uint64_t *usize, uint64_t *csize, uint64_t *local, const char *name,
                       cnet_error *err) {
    uint64_t *fields[3] = {usize, csize, local};
    for (uint32_t at = 0; at + 4 <= extra_len;) {
        uint16_t id = rd16(extra + at), n = rd16(extra + at + 2);
        if (at + 4 + n > extra_len) break;
        if (id == ZIP_EXTRA_ZIP64) {
            uint32_t k = 0;
            for (int f = 0; f < 3; f++) {
                if (*fields[f] != 0xffffffffu) continue;
                if (k + 8 > n)
                    return cnet_fail(err, CNET_EFORMAT, "%s: entry '%s': short ZIP64 extra field",
                                     z->path, name);
                *fields[f] = rd64(extra + at + 4 + k);
                k += 8;
            }
            return 0;
        }
        at += 4u + n;
    }
    if (*usize == 0xffffffffu || *csize == 0xffffffffu || *local == 0xffffffffu)
        return cnet_fail(err, CNET_EFORMAT, "%s: entry '%s': saturated size without ZIP64 field",
                         z->path, name);
    return 0;
}

/* Reads the central header at *at into e and advances *at. */
static int read_entry(zip_archive *z, uint64_t *at, uint64_t cd_end, zip_entry *e,
                      cnet_error *err) {
    const unsigned char *b = z->buf, *h = b + *at;
    if (*at + ZIP_CENTRAL_LEN > cd_end || rd32(h) != ZIP_SIG_CENTRAL)
        return cnet_fail(err, CNET_EFORMAT, "%s: central directory entry %d is malformed", z->path,
                         z->n);
    uint32_t name_len = rd16(h + 28), extra_len = rd16(h + 30), comment_len = rd16(h + 32);
    if (*at + ZIP_CENTRAL_LEN + name_len + extra_len + comment_len > cd_end)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: central directory entry %d runs past the directory", z->path, z->n);
    if (name_len == 0 || name_len > ZIP_MAX_NAME)
        return cnet_fail(err, CNET_EFORMAT, "%s: entry %d has a name of %u bytes", z->path, z->n,
                         name_len);
    if (!(e->name = malloc(name_len + 1))) return cnet_fail(err, CNET_ENOMEM, "%s", z->path);
    memcpy(e->name, h + ZIP_CENTRAL_LEN, name_len);
    e->name[name_len] = 0;
    if (memchr(e->name, 0, name_len))
        return cnet_fail(err, CNET_EFORMAT, "%s: entry %d has a NUL byte in its name", z->path,
                         z->n);
    if (rd16(h + 8) & 1)
        return cnet_fail(err, CNET_EFORMAT, "%s: entry '%s' is encrypted", z->path, e->name);
    e->method = rd16(h + 10);
    uint64_t csize = rd32(h + 20), usize = rd32(h + 24), local = rd32(h + 42);
    int rc = apply_zip64(z, h + ZIP_CENTRAL_LEN + name_len, extra_len, &usize, &csize, &local,
                         e->name, err);
    if (rc) return rc;
    if (e->method == 0 && csize != usize)
        return cnet_fail(err, CNET_EFORMAT, "%s: stored entry '%s' has sizes %llu and %llu",
                         z->path, e->name, (unsigned long long)csize, (unsigned long long)usize);
    if (!in_bounds(local, ZIP_LOCAL_LEN, z->len) || rd32(b + local) != ZIP_SIG_LOCAL)
        return cnet_fail(err, CNET_EFORMAT, "%s: entry '%s': no local header at offset %llu",
                         z->path, e->name, (unsigned long long)local);
    /* the local header must name the entry its directory record names, as
     * Python's zipfile (torch.load's reader) checks: an archive whose two
     * views differ would show a scanner other bytes than it gives us */
    uint32_t local_name = rd16(b + local + 26);
    if (local_name != name_len || !in_bounds(local + ZIP_LOCAL_LEN, name_len, z->len) ||
        memcmp(b + local + ZIP_LOCAL_LEN, e->name, name_len) != 0)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: entry '%s': its local header at offset %llu names another entry",
                         z->path, e->name, (unsigned long long)local);
    uint64_t data = local + ZIP_LOCAL_LEN + local_name + rd16(b + local + 28);
    if (!in_bounds(data, csize, z->len))
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: entry '%s': %llu bytes at offset %llu run past the end of the file "
                         "(%zu bytes)",
                         z->path, e->name, (unsigned long long)csize, (unsigned long long)data,
                         z->len);
    e->offset = data;
    e->size = csize;
    *at += ZIP_CENTRAL_LEN + name_len + extra_len + comment_len;
    return 0;
}

int zip_open(zip_archive *z, const char *path, const void *buf, size_t len, cnet_error *err) {
    memset(z, 0, sizeof *z);
    z->path = path;
    z->buf = buf;
    z->len = len;
    uint64_t cd_off = 0, cd_size = 0, count = 0;
    int rc = find_directory(z, &cd_off, &cd_size, &count, err);
    if (rc) return rc;
    if (!in_bounds(cd_off, cd_size, len))
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: central directory (%llu bytes at %llu) lies outside the file", path,
                         (unsigned long long)cd_size, (unsigned long long)cd_off);
    if (count > ZIP_MAX_ENTRIES || count > cd_size / ZIP_CENTRAL_LEN + 1)
        return cnet_fail(err, count > ZIP_MAX_ENTRIES ? CNET_ELIMIT : CNET_EFORMAT,
                         "%s: %llu entries (the directory has room for %llu; limit %d)", path,
                         (unsigned long long)count, (unsigned long long)(cd_size / ZIP_CENTRAL_LEN),
                         ZIP_MAX_ENTRIES);
    if (count && !(z->entries = calloc(count, sizeof *z->entries)))
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    uint64_t at = cd_off;
    for (uint64_t i = 0; i < count; i++) {
        rc = read_entry(z, &at, cd_off + cd_size, &z->entries[z->n], err);
        z->n++;
        if (rc) {
            zip_close(z);
            return rc;
        }
    }
    return 0;
}

void zip_close(zip_archive *z) {
    for (int i = 0; i < z->n; i++) free(z->entries[i].name);
    free(z->entries);
    memset(z, 0, sizeof *z);
}

const zip_entry *zip_find(const zip_archive *z, const char *name) {
    for (int i = 0; i < z->n; i++)
        if (strcmp(z->entries[i].name, name) == 0) return &z->entries[i];
    return NULL;
}

int zip_entry_data(const zip_archive *z, const zip_entry *e, const unsigned char **data,
                   cnet_error *err) {
    if (e->method != 0)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: entry '%s' is compressed (zip method %u); torch.save stores its "
                         "entries uncompressed: re-save the file with torch.save",
                         z->path, e->name, e->method);
    *data = z->buf + e->offset;
    return 0;
}
