/* Streamed SHA-256 and git blob SHA-1 over files (see hub_hash.h). */
#include "server/hub/hub_hash.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUB_HASH_CHUNK (1 << 20) /* bytes read per call while hashing */

static void to_hex(const unsigned char *d, unsigned n, char *out) {
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) out[2 * i] = hex[d[i] >> 4], out[2 * i + 1] = hex[d[i] & 15];
    out[2 * n] = '\0';
}

typedef struct hashes {
    EVP_MD_CTX *sha256, *sha1;
} hashes;

static int hashes_begin(hashes *h, long long size) {
    h->sha256 = EVP_MD_CTX_new();
    h->sha1 = EVP_MD_CTX_new();
    if (!h->sha256 || !h->sha1 || !EVP_DigestInit_ex(h->sha256, EVP_sha256(), NULL) ||
        !EVP_DigestInit_ex(h->sha1, EVP_sha1(), NULL))
        return -1;
    char head[64];
    int n = snprintf(head, sizeof head, "blob %lld", size);
    return EVP_DigestUpdate(h->sha1, head, (size_t)n + 1) ? 0 : -1; /* + the NUL */
}

static int hashes_update(hashes *h, const void *d, size_t n) {
    return EVP_DigestUpdate(h->sha256, d, n) && EVP_DigestUpdate(h->sha1, d, n) ? 0 : -1;
}

static void hashes_end(hashes *h, char sha256[65], char git_sha1[41]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(h->sha256, md, &n);
    to_hex(md, n, sha256);
    EVP_DigestFinal_ex(h->sha1, md, &n);
    to_hex(md, n, git_sha1);
}

static void hashes_free(hashes *h) {
    EVP_MD_CTX_free(h->sha256);
    EVP_MD_CTX_free(h->sha1);
}

void hub_hash_mem(const void *data, size_t n, char sha256[65], char git_sha1[41]) {
    hashes h;
    if (hashes_begin(&h, (long long)n) == 0 && hashes_update(&h, data, n) == 0)
        hashes_end(&h, sha256, git_sha1);
    hashes_free(&h);
}

int hub_hash_file(const char *path, hub_file_hash *out, cnet_error *err) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cnet_fail(err, CNET_EIO, "cannot stat %s: %s", path, strerror(e));
    }
    unsigned char *buf = malloc(HUB_HASH_CHUNK);
    hashes h;
    int rc = 0;
    if (!buf || hashes_begin(&h, (long long)st.st_size) != 0) {
        rc = cnet_fail(err, CNET_ENOMEM, "hashing %s: out of memory", path);
        goto done;
    }
    long long total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, HUB_HASH_CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = cnet_fail(err, CNET_EIO, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0) break;
        if (out->sample_len < HUB_SAMPLE_BYTES) {
            size_t take = HUB_SAMPLE_BYTES - out->sample_len;
            if (take > (size_t)n) take = (size_t)n;
            memcpy(out->sample + out->sample_len, buf, take);
            out->sample_len += take;
        }
        hashes_update(&h, buf, (size_t)n);
        total += n;
    }
    if (total != (long long)st.st_size) {
        rc = cnet_fail(err, CNET_EIO, "%s changed while being hashed (%lld bytes, expected %lld)",
                       path, total, (long long)st.st_size);
        goto done;
    }
    out->size = total;
    hashes_end(&h, out->sha256, out->git_sha1);
done:
    if (buf) hashes_free(&h);
    free(buf);
    close(fd);
    return rc;
}
