/* Text encodings the Hub protocol needs: base64 (preupload samples, inline
 * commit files) and URL percent-encoding (revisions, file paths).
 * Not a general URL library: it only encodes what cnet puts into Hub URLs.
 * Reference: HUB.md §1 (revision encoded with no safe characters, file paths
 * keep '/'), RFC 3986 unreserved characters. */
#ifndef CNET_HUB_ENCODE_H
#define CNET_HUB_ENCODE_H

#include <stddef.h>

/* Base64 of n bytes into a new NUL-terminated string (caller frees); NULL on
 * allocation failure. */
char *hub_base64(const unsigned char *data, size_t n);

/* Percent-encodes s into out (cap bytes, NUL-terminated). keep_slash keeps
 * '/' literal (file paths); otherwise it becomes %2F (revisions).
 * Returns 0, or -1 when out is too small. */
int hub_url_encode(const char *s, int keep_slash, char *out, size_t cap);

#endif
