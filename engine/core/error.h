/* Status codes and the error message that travels with them.
 *
 * Library code returns 0 on success or a negative CNET_E* code, and fills a
 * cnet_error whose message names the thing that was wrong (file, key, field,
 * expected vs got). Callers may pass NULL when they do not want the message.
 * No function in engine/, kernels/, api/ or server/ calls exit() or abort():
 * only main does (server/cli/main.c); running out of memory is an error
 * like any other (a backend records it, see engine/core/backend.h). */
#ifndef CNET_ERROR_H
#define CNET_ERROR_H

enum {
    CNET_OK = 0,
    CNET_EINVAL = -1,    /* bad argument or bad input data */
    CNET_EIO = -2,       /* read/write/open failed */
    CNET_ENOMEM = -3,    /* allocation failed */
    CNET_EFORMAT = -4,   /* a file's contents are malformed */
    CNET_ENOTFOUND = -5, /* a named file, key or field is missing */
    CNET_ELIMIT = -6,    /* a size limit was exceeded */
    CNET_EBACKEND = -7,  /* the compute backend reported a failure */
};

#define CNET_ERROR_MSG_MAX 1024

typedef struct cnet_error {
    int code;
    char msg[CNET_ERROR_MSG_MAX];
} cnet_error;

/* Records code and a printf-style message in err (if non-NULL); returns code,
 * so callers can write `return cnet_fail(err, CNET_EIO, "...", ...);`. */
int cnet_fail(cnet_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with more context ("loading unet: ..."). */
int cnet_error_prefix(cnet_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
