/* cnet_error helpers: formatting of the message that accompanies a status. */
#include "engine/core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cnet_fail(cnet_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int cnet_error_prefix(cnet_error *err, const char *fmt, ...) {
    if (!err) return 0;
    char prefix[CNET_ERROR_MSG_MAX], old[CNET_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation of an over-long message is acceptable. */
    size_t len = strlen(prefix);
    if (len > sizeof err->msg - 3) len = sizeof err->msg - 3;
    memcpy(err->msg, prefix, len);
    memcpy(err->msg + len, ": ", 2);
    size_t rest = sizeof err->msg - len - 3;
    size_t old_len = strnlen(old, rest);
    memcpy(err->msg + len + 2, old, old_len);
    err->msg[len + 2 + old_len] = '\0';
    return err->code;
}
