/* GET /v1/jobs/{id}/events: the job's events as Server-Sent Events (WHATWG
 * HTML §9.2): `id:` is the events table's id, so a client reconnecting with
 * Last-Event-ID gets exactly what it missed, from the store, not from memory.
 * A comment line every heartbeat period keeps proxies and our own connection
 * timeout from closing an idle stream; the stream ends once the job is
 * terminal and every event was sent, when the server stops, or within
 * SSE_WAIT_MS of the client closing its socket (looked for between waits,
 * not left to the next heartbeat's failed write), so a closed stream frees
 * its place under --max-sse-streams at once.
 *
 * Not here: producing events (the store writes them with each transition).
 * The reader blocks in its connection's own thread (thread per connection). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server/http/http_internal.h"

#define SSE_BATCH 64    /* events read from the store per query */
#define SSE_WAIT_MS 500 /* longest wait for a change before re-checking */

typedef struct sse {
    http_server *s;
    char id[JOBS_ID_MAX];
    int64_t last;
    uint64_t seen;
    time_t last_write;
    char *pending;
    size_t len, off;
    int done;
    int fd; /* the connection's socket, -1 if MHD did not say */
} sse;

/* The client closed (or reset) its end: a peek reads end-of-file or an error.
 * Bytes the client sent after its request are left in place. */
static int client_gone(int fd) {
    if (fd < 0) return 0;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int fetch(sse *x) {
    job j;
    int terminal = 0;
    if (jobs_get(x->s->store, x->id, &j, NULL) == 0) {
        terminal = job_state_terminal(j.state);
        job_clear(&j);
    }
    jobs_event *ev;
    int n;
    if (jobs_events(x->s->store, x->id, x->last, SSE_BATCH, &ev, &n, NULL) != 0) return 0;
    size_t cap = 0;
    for (int i = 0; i < n; i++) cap += strlen(ev[i].data_json) + 96;
    x->pending = n ? malloc(cap + 1) : NULL;
    x->len = x->off = 0;
    for (int i = 0; x->pending && i < n; i++) {
        x->len += (size_t)snprintf(x->pending + x->len, cap + 1 - x->len,
                                   "id: %lld\nevent: %s\ndata: %s\n\n", (long long)ev[i].id,
                                   ev[i].type, ev[i].data_json);
        x->last = ev[i].id;
    }
    jobs_events_free(ev, n);
    /* State was read first: if it was terminal, its event is in this batch. */
    if (n == 0 && terminal) x->done = 1;
    return x->pending != NULL;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    sse *x = cls;
    for (;;) {
        if (x->pending && x->off < x->len) {
            size_t n = x->len - x->off < max ? x->len - x->off : max;
            memcpy(buf, x->pending + x->off, n);
            x->off += n;
            return (ssize_t)n;
        }
        free(x->pending);
        x->pending = NULL;
        if (x->done || x->s->stopping) return MHD_CONTENT_READER_END_OF_STREAM;
        if (fetch(x)) {
            x->last_write = time(NULL);
            continue;
        }
        if (x->done) continue;
        x->seen = jobs_wait(x->s->store, x->seen, SSE_WAIT_MS);
        if (client_gone(x->fd)) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (time(NULL) - x->last_write >= x->s->cfg.sse_heartbeat_s) {
            x->pending = strdup(": heartbeat\n\n");
            x->len = x->pending ? strlen(x->pending) : 0, x->off = 0;
            x->last_write = time(NULL);
        }
    }
}

static void sse_free(void *cls) {
    sse *x = cls;
    free(x->pending);
    free(x);
}

enum MHD_Result http_events(http_server *s, struct MHD_Connection *c, http_req *r) {
    job j;
    cnet_error err = {0};
    int rc = strlen(r->params[0]) < JOBS_ID_MAX ? jobs_get(s->store, r->params[0], &j, &err)
                                                : cnet_fail(&err, CNET_ENOTFOUND, "no such job");
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    job_clear(&j);
    const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    int64_t after = 0;
    if (last) {
        if (!*last || strspn(last, "0123456789") != strlen(last) || strlen(last) > 18)
            return http_reply_error(s, c, r, 400, "invalid_header", "Last-Event-ID",
                                    "Last-Event-ID must be an event id");
        after = atoll(last);
    }
    sse *x = calloc(1, sizeof *x);
    if (!x) return MHD_NO;
    x->s = s, x->last = after, x->last_write = time(NULL);
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    x->fd = fd ? fd->connect_fd : -1;
    snprintf(x->id, sizeof x->id, "%.39s", r->params[0]);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, x, sse_free);
    if (!resp) {
        free(x);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    return http_reply_response(s, c, r, 200, resp);
}
