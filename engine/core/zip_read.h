/* A read-only view of a zip archive held in memory (an mmap'd file): the
 * central directory's entries, each resolved to where its bytes lie.
 *
 * Follows PKWARE's APPNOTE.TXT (6.3): the end-of-central-directory record
 * found by scanning back over at most a 64 KiB comment, the ZIP64 locator and
 * record when a count or offset is saturated, central headers, ZIP64 extra
 * fields (0x0001), and each entry's local header, whose name must equal
 * the directory's and whose own name and extra lengths place the data. This is the layout
 * torch.save writes (PyTorchFileWriter: every entry stored, data aligned to 64 bytes).
 *
 * Not here: compression (an entry that is not stored is listed with its
 * method and refused by zip_entry_data), encryption, multi-disk archives,
 * writing. Every length and offset is checked against the buffer before it
 * is used; a malformed archive is an error naming the file, never a read
 * outside the buffer.
 *
 * Errors: CNET_EFORMAT (malformed or unsupported archive), CNET_ELIMIT (too
 * many entries), CNET_ENOMEM. */
#ifndef CNET_ZIP_READ_H
#define CNET_ZIP_READ_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

/* More entries than any torch checkpoint has (one per storage + a few). */
#define ZIP_MAX_ENTRIES 1000000
/* The longest entry name accepted (torch's are "<archive>/data/<n>"). */
#define ZIP_MAX_NAME 4096

typedef struct zip_entry {
    char *name;      /* owned by the zip_archive, NUL-terminated */
    uint64_t offset; /* of the data in the buffer, checked */
    uint64_t size;   /* compressed size == stored size for method 0 */
    uint16_t method; /* 0 stored, 8 deflate, ... */
} zip_entry;

typedef struct zip_archive {
    const char *path; /* borrowed, for messages */
    const unsigned char *buf;
    size_t len;
    int n;
    zip_entry *entries; /* in central directory order */
} zip_archive;

/* 1 when buf starts with a zip local header or an empty archive's EOCD. */
int zip_is_zip(const void *buf, size_t len);
/* Reads the directory of the archive in buf[0, len) (borrowed: it must
 * outlive z). On failure *z holds nothing to free. */
int zip_open(zip_archive *z, const char *path, const void *buf, size_t len, cnet_error *err);
void zip_close(zip_archive *z);
/* NULL when absent. */
const zip_entry *zip_find(const zip_archive *z, const char *name);
/* The bytes of a stored entry; CNET_EFORMAT naming the entry and its method
 * when it is compressed. */
int zip_entry_data(const zip_archive *z, const zip_entry *e, const unsigned char **data,
                   cnet_error *err);

#endif
