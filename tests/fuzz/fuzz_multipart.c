/* libFuzzer target: the multipart/form-data generate request parser
 * (server/http/http_form.c) behind a real libmicrohttpd connection, since its
 * post processor reads the boundary from the connection's Content-Type. The
 * input is that header's value, a newline, then the body; a daemon without a
 * listen socket (driven here with MHD_run, no threads) is handed one end of a
 * socket pair per input, the request is written to the other end, and the
 * access handler collects the body and parses it as the generate route does.
 * Beyond the sanitizers: a refusal carries a 4xx/5xx status and a code, and
 * an accepted body is a JSON object. Corpus: tests/fuzz/corpus/multipart,
 * dictionary multipart.dict. */
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/http/http_internal.h"

#define FUZZ_FORM_INPUT_MAX (256 << 10) /* bytes of one input; more are skipped */
#define FUZZ_FORM_TYPE_MAX 512          /* bytes of the Content-Type value; more are skipped */
#define FUZZ_FORM_ROUNDS 100000         /* MHD_run rounds before a request counts as stuck */

typedef struct call {
    char *body;
    size_t len, cap;
    int handled;
} call;

static struct MHD_Daemon *daemon_once;
static call current;

static void fail(const char *what) {
    fprintf(stderr, "fuzz: %s\n", what);
    abort();
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)cls, (void)url, (void)method, (void)version;
    call *k = &current;
    if (!*con_cls) { /* headers only: ask for the body */
        *con_cls = k;
        return MHD_YES;
    }
    if (*upload_size) {
        if (k->len + *upload_size > k->cap) {
            k->cap = 2 * (k->len + *upload_size);
            if (!(k->body = realloc(k->body, k->cap))) fail("out of memory");
        }
        memcpy(k->body + k->len, upload, *upload_size);
        k->len += *upload_size, *upload_size = 0;
        return MHD_YES;
    }
    json_t *req = NULL;
    unsigned char *image = NULL;
    size_t image_len = 0;
    api_error e = {0};
    const int rc = http_form_parse(c, k->body ? k->body : "", k->len, &req, &image, &image_len, &e);
    if (rc && (e.status < 400 || e.status > 599 || !e.code[0])) fail("a refusal without a status");
    if (!rc && !json_is_object(req)) fail("an accepted body that is not a JSON object");
    json_decref(req);
    free(image);
    k->handled = 1;
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    const enum MHD_Result q = MHD_queue_response(c, rc ? (unsigned)e.status : 200, resp);
    MHD_destroy_response(resp);
    return q;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    daemon_once =
        MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, on_request, NULL, MHD_OPTION_END);
    if (!daemon_once) fail("cannot start a libmicrohttpd daemon");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl || size > FUZZ_FORM_INPUT_MAX) return 0;
    const size_t ct_len = (size_t)(nl - data), body_len = size - ct_len - 1;
    char head[FUZZ_FORM_TYPE_MAX + 256];
    if (ct_len > FUZZ_FORM_TYPE_MAX || memchr(data, '\r', ct_len) || memchr(data, '\0', ct_len))
        return 0;
    const int head_len =
        snprintf(head, sizeof head,
                 "POST /v1/generate HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
                 "Content-Type: %.*s\r\nContent-Length: %zu\r\n\r\n",
                 (int)ct_len, (const char *)data, body_len);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) fail("socketpair");
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (MHD_add_connection(daemon_once, sv[0], (struct sockaddr *)&addr, sizeof addr) != MHD_YES)
        fail("MHD_add_connection");
    current.len = 0, current.handled = 0;
    size_t sent = 0;
    const size_t total = (size_t)head_len + body_len;
    char answer[512];
    int answered = 0; /* libmicrohttpd answered (a malformed head) or closed */
    for (int round = 0; round < FUZZ_FORM_ROUNDS && !current.handled && !answered; round++) {
        while (sent < total) {
            const char *p =
                sent < (size_t)head_len ? head + sent : (const char *)nl + 1 + (sent - head_len);
            const size_t n = sent < (size_t)head_len ? (size_t)head_len - sent : total - sent;
            const ssize_t w = send(sv[1], p, n, MSG_NOSIGNAL); /* the server may have closed */
            if (w <= 0) break;
            sent += (size_t)w;
        }
        MHD_run(daemon_once);
        answered = read(sv[1], answer, sizeof answer) >= 0;
    }
    if (!current.handled && !answered) fail("the request was neither handled nor answered");
    close(sv[1]);
    for (int round = 0; round < 4; round++) MHD_run(daemon_once);
    return 0;
}
