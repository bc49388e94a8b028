/* Loading and checking the bearer token (see auth.h). */
#include "server/http/auth.h"

#include "api/api.h"

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

/* given equals token, compared on SHA-256 digests in constant time. */
static int same_token(const char *given, size_t n, const char *token) {
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)given, n, a);
    SHA256((const unsigned char *)token, strlen(token), b);
    return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

/* RFC 7617 credentials "user:password" (base64): the token is the
 * password, or the user (clients that take one secret put it either side). */
static auth_result check_basic(const char *b64, const char *token) {
    unsigned char *raw = NULL;
    size_t n = 0;
    api_error e;
    if (strlen(b64) > AUTH_BASIC_MAX ||
        api_base64_decode(b64, strlen(b64), "Authorization", &raw, &n, &e))
        return AUTH_WRONG;
    const unsigned char *colon = memchr(raw, ':', n);
    int ok = 0;
    if (colon) {
        const size_t user = (size_t)(colon - raw);
        const int pass_ok = same_token((const char *)colon + 1, n - user - 1, token);
        const int user_ok = same_token((const char *)raw, user, token);
        ok = pass_ok | user_ok;
    }
    OPENSSL_cleanse(raw, n);
    free(raw);
    return ok ? AUTH_OK : AUTH_WRONG;
}

auth_result auth_check(const char *header, const char *token) {
    if (header && strncasecmp(header, "Basic ", 6) == 0) {
        const char *b64 = header + 6;
        while (*b64 == ' ') b64++;
        return check_basic(b64, token);
    }
    if (!header || strncasecmp(header, "Bearer ", 7) != 0) return AUTH_MISSING;
    const char *given = header + 7;
    while (*given == ' ') given++;
    return same_token(given, strlen(given), token) ? AUTH_OK : AUTH_WRONG;
}
