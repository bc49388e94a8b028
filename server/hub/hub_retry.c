/* Retry decisions and backoff delays (see hub_retry.h). */
#include "server/hub/hub_retry.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int hub_retry_status(long status, const char *body) {
    switch (status) {
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
        return 1;
    case 409:
        return body && strstr(body, "another conflicting operation is in progress") != NULL;
    }
    return 0;
}

/* Reads the integer after "<key>=" in a ';'-separated header value. */
static int field(const char *v, char key, long *out) {
    for (const char *p = v; (p = strchr(p, ';')) != NULL; p++) {
        const char *q = p + 1;
        while (*q == ' ') q++;
        if (q[0] == key && q[1] == '=' && isdigit((unsigned char)q[2])) {
            *out = strtol(q + 2, NULL, 10);
            return 0;
        }
    }
    return -1;
}

int hub_ratelimit_parse(const char *value, long *remaining, long *reset_s) {
    if (!value) return -1;
    return field(value, 'r', remaining) == 0 && field(value, 't', reset_s) == 0 ? 0 : -1;
}

double hub_retry_delay(int attempt, long status, const char *retry_after, const char *ratelimit) {
    double backoff = HUB_BACKOFF_BASE_S;
    for (int i = 0; i < attempt && backoff < HUB_BACKOFF_MAX_S; i++) backoff *= 2;
    if (backoff > HUB_BACKOFF_MAX_S) backoff = HUB_BACKOFF_MAX_S;
    double wait = -1;
    long remaining, reset_s;
    if (status == 429 && hub_ratelimit_parse(ratelimit, &remaining, &reset_s) == 0 &&
        remaining == 0)
        wait = (double)reset_s + 1;
    else if (retry_after) {
        /* Only delta-seconds; an HTTP-date falls back to the backoff. */
        char *end;
        long s = strtol(retry_after, &end, 10);
        if (end != retry_after && *end == '\0' && s >= 0) wait = (double)s;
    }
    if (wait < 0) return backoff;
    return wait > HUB_RETRY_AFTER_MAX_S ? HUB_RETRY_AFTER_MAX_S : wait;
}
