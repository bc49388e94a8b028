/* Temporary folders and whole-file helpers for tests (see lib_fs.h). */
#define _XOPEN_SOURCE 700
#include "tests/lib/lib_fs.h"

#include <errno.h>
#include <ftw.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tmpdir_make(char *buf, size_t size, const char *prefix) {
    const char *base = getenv("TMPDIR");
    if ((size_t)snprintf(buf, size, "%s/%sXXXXXX", base && *base ? base : "/tmp", prefix) >= size)
        return -1;
    return mkdtemp(buf) ? 0 : -1;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

int tmpdir_remove(const char *path) { return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS); }

int file_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

char *file_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) break;
        char *bigger = realloc(buf, 2 * cap + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger, cap *= 2;
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    if (n) *n = len;
    return buf;
}

int file_touch_json(const char *dir, const char *sub, const char *leaf) {
    char path[3 * PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (mkdir(dir, 0700) && errno != EEXIST) return -1;
    if (mkdir(path, 0700) && errno != EEXIST) return -1;
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, leaf);
    return file_write(path, "{}", 2);
}

int shell_run(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

int file_sha256_hex(const char *path, char hex[65]) {
    size_t n;
    char *bytes = file_read(path, &n);
    if (!bytes) return -1;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((unsigned char *)bytes, n, d);
    free(bytes);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) sprintf(hex + 2 * i, "%02x", d[i]);
    return 0;
}
