/* A real `cnet serve` for tests: started on 127.0.0.1 with --port 0 and a
 * temp data dir, its printed port parsed, stopped with a signal at the end;
 * and a libcurl client for it. With $CNET_TEST_STORE (lib_store.h) the
 * server uses that PostgreSQL job store. */
#ifndef CNET_TEST_LIB_SERVER_H
#define CNET_TEST_LIB_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#include "engine/image/image.h"

#define SERVER_TEST_TOKEN "test-token-0123456789abcdef"
/* cnet serve --lease under $CNET_TEST_STORE (seconds). */
#define SERVER_TEST_PG_LEASE_S "5"

typedef struct test_server {
    pid_t pid;
    int port;
    char data[512];
} test_server;

/* Starts $BUILD/cnet serve --port 0 --data data [extra args..., NULL] with
 * CNET_TOKEN=SERVER_TEST_TOKEN. Without a --device among extra, --device none
 * is added: no engine runs jobs, so tests see them stay queued. 0 ok. */
int server_start(test_server *s, const char *data, const char *const *extra);
/* Sends sig and waits up to timeout_ms; returns the exit status, or -1 if it
 * had to be killed, or 128+signal if a signal ended it. */
int server_stop(test_server *s, int sig, int timeout_ms);

typedef struct http_resp {
    long status;
    char *body; /* NUL-terminated, owned */
    size_t len;
    char headers[4096];
} http_resp;

/* One request. token: NULL sends no Authorization. headers: NULL-terminated
 * extra lines. chunked: send the body with Transfer-Encoding: chunked. */
int http_do(const test_server *s, const char *method, const char *path, const char *token,
            const char *const *headers, const void *body, size_t len, int chunked, http_resp *r);
void http_resp_free(http_resp *r);
/* The value of a response header (case-insensitive name) into out; 0 if found. */
int http_header(const http_resp *r, const char *name, char *out, size_t size);

/* Sends "METHOD PATH" with the test token, extra header lines (each ending
 * in \r\n, or ""), Content-Length: content_length and the first sent bytes
 * of body on a raw socket, which is returned open (the test may walk away
 * from the request or cut it short); -1 on failure. */
int http_send_raw(const test_server *s, const char *method_path, const char *headers,
                  size_t content_length, const void *body, size_t sent);

/* Seconds on the monotonic clock. */
double test_now_s(void);
/* system(cmd) with its stdout and stderr discarded. */
int run_quiet(const char *cmd);
/* Whether PNG (or JPEG) bytes decode to want's size and pixels; why says
 * what was compared. */
int png_same_pixels(const image_rgb8 *want, const void *png, size_t len, char *why, size_t cap);

#endif
