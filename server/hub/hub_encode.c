/* Base64 and percent-encoding for Hub requests (see hub_encode.h). */
#include "server/hub/hub_encode.h"

#include <openssl/evp.h>
#include <stdlib.h>

char *hub_base64(const unsigned char *data, size_t n) {
    size_t out_len = 4 * ((n + 2) / 3) + 1;
    char *out = malloc(out_len);
    if (!out) return NULL;
    /* EVP_EncodeBlock takes an int length; callers stay far below 2 GiB
     * (HUB_INLINE_MAX), so encode in blocks of a multiple of 3 bytes anyway. */
    const size_t block = 3 * (1 << 20);
    size_t o = 0;
    for (size_t i = 0; i < n; i += block) {
        size_t len = n - i < block ? n - i : block;
        o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, data + i, (int)len);
    }
    out[o] = '\0';
    return out;
}

static int unreserved(unsigned char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

int hub_url_encode(const char *s, int keep_slash, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p) || (keep_slash && *p == '/')) {
            if (o + 1 >= cap) return -1;
            out[o++] = (char)*p;
        } else {
            if (o + 3 >= cap) return -1;
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (o >= cap) return -1;
    out[o] = '\0';
    return 0;
}
