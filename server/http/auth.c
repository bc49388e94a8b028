/* Loading and checking the bearer token (see auth.h). */
#include "server/http/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int set_token(char *token, const char *src, size_t n, const char *from, cnet_error *err) {
    while (n && (src[n - 1] == '\n' || src[n - 1] == '\r' || src[n - 1] == ' ')) n--;
    if (n > AUTH_TOKEN_MAX)
        return cnet_fail(err, CNET_ELIMIT, "token from %s is longer than %d bytes", from,
                         AUTH_TOKEN_MAX);
    if (n < AUTH_TOKEN_MIN)
        return cnet_fail(err, CNET_EINVAL, "token from %s is shorter than %d bytes", from,
                         AUTH_TOKEN_MIN);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)src[i] <= 0x20 || (unsigned char)src[i] >= 0x7f)
            return cnet_fail(err, CNET_EINVAL, "token from %s has a non-printable character", from);
    memcpy(token, src, n);
    token[n] = '\0';
    return 0;
}

static int read_token_file(const char *path, char *token, cnet_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "token file %s: %s", path, strerror(errno));
    char buf[AUTH_TOKEN_MAX + 8];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0) return cnet_fail(err, CNET_EIO, "token file %s: %s", path, strerror(errno));
    return set_token(token, buf, (size_t)n, path, err);
}

int auth_load_token(const char *token_file, const char *data_dir, char *token, int *generated,
                    cnet_error *err) {
    *generated = 0;
    if (token_file) return read_token_file(token_file, token, err);
    const char *env = getenv("CNET_TOKEN");
    if (env && *env) return set_token(token, env, strlen(env), "CNET_TOKEN", err);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/token", data_dir) >= sizeof path)
        return cnet_fail(err, CNET_ELIMIT, "data dir path too long");
    if (access(path, F_OK) == 0) return read_token_file(path, token, err);
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) return cnet_fail(err, CNET_EIO, "no random bytes");
    for (int i = 0; i < 32; i++) sprintf(token + 2 * i, "%02x", raw[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "creating %s: %s", path, strerror(errno));
    int ok = write(fd, token, 64) == 64 && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    close(fd);
    if (!ok) {
        unlink(path);
        return cnet_fail(err, CNET_EIO, "writing %s", path);
    }
    *generated = 1;
    return 0;
}

auth_result auth_check(const char *header, const char *token) {
    if (!header || strncasecmp(header, "Bearer ", 7) != 0) return AUTH_MISSING;
    const char *given = header + 7;
    while (*given == ' ') given++;
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)given, strlen(given), a);
    SHA256((const unsigned char *)token, strlen(token), b);
    return CRYPTO_memcmp(a, b, sizeof a) == 0 ? AUTH_OK : AUTH_WRONG;
}
