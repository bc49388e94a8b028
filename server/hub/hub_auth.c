/* Token discovery, endpoint choice and redaction (see hub_auth.h). */
#include "server/hub/hub_auth.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Strips surrounding whitespace and checks the token can go into a header. */
static int token_clean(char *t, const char *source, cnet_error *err) {
    size_t n = strlen(t);
    while (n && isspace((unsigned char)t[n - 1])) t[--n] = '\0';
    size_t lead = 0;
    while (lead < n && isspace((unsigned char)t[lead])) lead++;
    memmove(t, t + lead, n - lead + 1);
    for (char *p = t; *p; p++)
        if (!isgraph((unsigned char)*p))
            return cnet_fail(err, CNET_EINVAL,
                             "the Hugging Face token from %s contains a space or control "
                             "character; it must be a single line",
                             source);
    return 0;
}

/* Reads a token file into a new string. Returns 1 when read, 0 when the file
 * does not exist and !must_exist, negative on error. */
static int token_read_file(const char *path, int must_exist, char **token, cnet_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT && !must_exist) return 0;
        return cnet_fail(err, CNET_EIO, "cannot read the Hugging Face token file %s: %s", path,
                         strerror(errno));
    }
    char *buf = calloc(1, HUB_TOKEN_MAX + 1);
    if (!buf) {
        fclose(f);
        return cnet_fail(err, CNET_ENOMEM, "reading %s: out of memory", path);
    }
    size_t n = fread(buf, 1, HUB_TOKEN_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > HUB_TOKEN_MAX) {
        hub_token_free(buf);
        return cnet_fail(err, bad ? CNET_EIO : CNET_ELIMIT,
                         "cannot use the Hugging Face token file %s: %s", path,
                         bad ? "read error" : "larger than 4096 bytes");
    }
    *token = buf;
    return 1;
}

static void default_hf_home(char *out, size_t cap) {
    const char *home = env("HF_HOME");
    if (home) {
        snprintf(out, cap, "%s", home);
        return;
    }
    const char *xdg = env("XDG_CACHE_HOME");
    if (xdg) {
        snprintf(out, cap, "%s/huggingface", xdg);
        return;
    }
    const char *user_home = env("HOME");
    struct passwd *pw = user_home ? NULL : getpwuid(getuid());
    snprintf(out, cap, "%s/.cache/huggingface", user_home ? user_home : pw ? pw->pw_dir : "");
}

int hub_token_find(char **token, char *source, size_t source_cap, cnet_error *err) {
    *token = NULL;
    snprintf(source, source_cap, "none");
    const char *v = env("HF_TOKEN");
    if (v) {
        snprintf(source, source_cap, "HF_TOKEN");
        *token = strdup(v);
        if (!*token) return cnet_fail(err, CNET_ENOMEM, "copying HF_TOKEN: out of memory");
    } else {
        char path[4096];
        const char *file = env("HF_TOKEN_FILE");
        int rc;
        if (file) {
            snprintf(source, source_cap, "HF_TOKEN_FILE (%s)", file);
            rc = token_read_file(file, 1, token, err);
        } else {
            const char *p = env("HF_TOKEN_PATH");
            if (p) {
                snprintf(path, sizeof path, "%s", p);
            } else {
                char hf_home[4000];
                default_hf_home(hf_home, sizeof hf_home);
                snprintf(path, sizeof path, "%s/token", hf_home);
            }
            snprintf(source, source_cap, "%s", path);
            rc = token_read_file(path, 0, token, err);
        }
        if (rc < 0) return rc;
        if (rc == 0) {
            snprintf(source, source_cap, "none");
            return 0;
        }
    }
    int rc = token_clean(*token, source, err);
    if (rc == 0 && !**token) rc = cnet_fail(err, CNET_EINVAL, "the token from %s is empty", source);
    if (rc != 0) {
        hub_token_free(*token);
        *token = NULL;
    }
    return rc;
}

void hub_token_free(char *token) {
    if (!token) return;
    OPENSSL_cleanse(token, strlen(token));
    free(token);
}

/* 1 if the authority of an http:// URL (after the scheme) is a loopback host. */
static int loopback_authority(const char *a) {
    static const char *const hosts[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        size_t n = strlen(hosts[i]);
        if (strncasecmp(a, hosts[i], n) == 0 && (a[n] == '\0' || a[n] == ':' || a[n] == '/'))
            return 1;
    }
    return 0;
}

int hub_endpoint_resolve(const char *explicit_url, char out[HUB_ENDPOINT_MAX], int *plain_http,
                         cnet_error *err) {
    const char *url = explicit_url && *explicit_url ? explicit_url : env("HF_ENDPOINT");
    const char *from = explicit_url && *explicit_url ? "--endpoint" : "HF_ENDPOINT";
    if (!url) url = HUB_DEFAULT_ENDPOINT, from = "the default";
    size_t n = strlen(url);
    while (n && url[n - 1] == '/') n--;
    if (n == 0 || n >= HUB_ENDPOINT_MAX)
        return cnet_fail(err, CNET_EINVAL, "endpoint from %s is empty or too long", from);
    for (size_t i = 0; i < n; i++)
        if (!isgraph((unsigned char)url[i]))
            return cnet_fail(err, CNET_EINVAL,
                             "endpoint from %s contains a space or control "
                             "character",
                             from);
    *plain_http = 0;
    if (strncasecmp(url, "http://", 7) == 0) {
        if (!loopback_authority(url + 7))
            return cnet_fail(err, CNET_EINVAL,
                             "endpoint '%.*s' (from %s) uses plain http; only https is allowed, "
                             "except http to 127.0.0.1, localhost or [::1]",
                             (int)n, url, from);
        *plain_http = 1;
    } else if (strncasecmp(url, "https://", 8) != 0 || n == 8) {
        return cnet_fail(err, CNET_EINVAL, "endpoint '%.*s' (from %s) is not an https:// URL",
                         (int)n, url, from);
    }
    memcpy(out, url, n);
    out[n] = '\0';
    return 0;
}

void hub_redact(char *s) {
    for (char *p = s; *p; p++) {
        size_t keep = 0;
        if (strncmp(p, "hf_", 3) == 0)
            keep = 3;
        else if (strncasecmp(p, "Bearer ", 7) == 0)
            keep = 7;
        if (!keep) continue;
        size_t n = 0;
        while (isalnum((unsigned char)p[keep + n]) || p[keep + n] == '_' || p[keep + n] == '-' ||
               p[keep + n] == '.')
            n++;
        if ((keep == 3 && n >= 10) || (keep == 7 && n >= 3)) {
            memcpy(p + keep, "***", 3);
            memmove(p + keep + 3, p + keep + n, strlen(p + keep + n) + 1);
            p += keep + 2;
        }
    }
}
