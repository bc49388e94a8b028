/* Content hashes the Hub keys files by: SHA-256 (LFS oid) and the git blob
 * SHA-1 (oid of a regular file: sha1("blob <len>\0" + data)), both computed
 * in one streamed pass over the file, never loading it whole.
 * Not a general digest API. Reference: HUB.md §4 step B and §8 test vectors;
 * huggingface_hub utils/sha.py (git_hash, sha_fileobj). */
#ifndef CNET_HUB_HASH_H
#define CNET_HUB_HASH_H

#include <stddef.h>

#include "engine/core/error.h"

#define HUB_SAMPLE_BYTES 512 /* the preupload "sample": first bytes of the file */

typedef struct hub_file_hash {
    long long size;
    char sha256[65];                        /* hex */
    char git_sha1[41];                      /* hex, git blob id */
    unsigned char sample[HUB_SAMPLE_BYTES]; /* first min(size, 512) bytes */
    size_t sample_len;
} hub_file_hash;

/* Hashes the file at path. Fails (CNET_EIO) naming the file when it cannot be
 * opened or read, or when its size changes while it is read. */
int hub_hash_file(const char *path, hub_file_hash *out, cnet_error *err);

/* The same two hashes of a memory buffer (hex out, 65 and 41 bytes). */
void hub_hash_mem(const void *data, size_t n, char sha256[65], char git_sha1[41]);

#endif
