/* Who may hold a connection, and for how long it may take to send a request.
 *
 * Caps, each answered over HTTP with Retry-After and `Connection: close`
 * rather than a TCP reset (RFC 6585 §4 for 429, RFC 9110 §15.6.4 for 503):
 *   - per client (--max-connections-per-ip): a client's connections beyond its
 *     oldest N get 429. The client is the peer address, or, when the peer is
 *     the --trusted-proxy, the rightmost X-Forwarded-For entry (the address
 *     the proxy saw; entries left of it are the client's own claims);
 *   - request connections (--max-connections): beyond the oldest N, 503;
 *   - event streams (--max-sse-streams), counted apart, so streams cannot
 *     lock requests out nor requests streams: a stream over the cap gets 503.
 * Only a peer that opens more than HTTP_OVER_CAP_FACTOR times its cap (and
 * the daemon beyond every cap plus HTTP_CONNECTION_SPARE) is refused at
 * accept, so a flood costs a thread per connection only up to a bound.
 *
 * Read deadlines, whole-phase rather than per read (MHD's connection timeout
 * restarts with every byte): a request line and headers must arrive within
 * --header-timeout of the connection opening (or of the previous response
 * on a kept-alive connection), a body within --body-timeout of its headers
 * plus one second per HTTP_BODY_MIN_RATE bytes received, the scheme of
 * Apache's mod_reqtimeout (RequestReadTimeout header=…,MinRate body=…). A
 * watchdog thread shuts down the socket of a connection past its deadline;
 * MHD then sees the close and ends it. A handler's own time (a generate, an
 * event stream) is not bounded here.
 *
 * The socket is shut down only while MHD still holds it open: MHD reports a
 * connection closed (which takes it off the list under s->conns.mu) before
 * it closes the descriptor (libmicrohttpd 0.9.75 daemon.c,
 * MHD_cleanup_connections), and the watchdog shuts sockets down under the
 * same lock, so a descriptor number reused by a newer connection is never hit.
 *
 * Not here: what a request asks for (http_server.c routes it). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "server/http/http_internal.h"

#define HTTP_OVER_CAP_FACTOR 2   /* a peer's connections past this many times its cap: reset */
#define HTTP_CONNECTION_SPARE 16 /* connections beyond the caps that are answered 503 */
#define HTTP_BODY_MIN_RATE 8192  /* body bytes per second that extend the body deadline by 1 s */
#define HTTP_WATCHDOG_MS 100     /* how often deadlines are checked */
#define HTTP_XFF_MAX 1024        /* bytes of X-Forwarded-For looked at */

struct http_conn {
    http_conn *next, *prev;
    int fd;
    uint64_t seq;                         /* accept order: older connections are served first */
    char peer[INET6_ADDRSTRLEN];          /* the socket's remote address */
    char client[INET6_ADDRSTRLEN];        /* peer, or the trusted proxy's forwarded address */
    int sse;                              /* the current request is an event stream */
    http_conn_phase phase;                /* what the deadline bounds */
    uint64_t phase_start_us, deadline_us; /* deadline 0: none */
    int shut;                             /* the watchdog shut the socket down */
};

static uint64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void address_text(const struct sockaddr *addr, char out[INET6_ADDRSTRLEN]) {
    snprintf(out, INET6_ADDRSTRLEN, "?");
    if (addr && addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, out, INET6_ADDRSTRLEN);
    else if (addr && addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, out, INET6_ADDRSTRLEN);
}

/* Sets k's deadline for its phase; caller holds s->conns.mu. */
static void set_deadline(http_server *s, http_conn *k, int64_t received) {
    uint64_t now = mono_us();
    if (k->phase == HTTP_PHASE_HEADERS)
        k->deadline_us = now + (uint64_t)s->cfg.header_timeout_s * 1000000;
    else if (k->phase == HTTP_PHASE_BODY)
        k->deadline_us = k->phase_start_us + (uint64_t)s->cfg.body_timeout_s * 1000000 +
                         (uint64_t)received * 1000000 / HTTP_BODY_MIN_RATE;
    else
        k->deadline_us = 0;
}

void http_conn_set_phase(http_server *s, http_conn *k, http_conn_phase phase, int64_t received) {
    if (!k) return;
    pthread_mutex_lock(&s->conns.mu);
    if (k->phase != phase) k->phase_start_us = mono_us();
    k->phase = phase;
    set_deadline(s, k, received);
    if (phase == HTTP_PHASE_HEADERS) { /* between requests: no stream, no forwarded client */
        k->sse = 0;
        memcpy(k->client, k->peer, sizeof k->client);
    }
    pthread_mutex_unlock(&s->conns.mu);
}

enum MHD_Result http_conn_accept(void *cls, const struct sockaddr *addr, socklen_t len) {
    (void)len;
    http_server *s = cls;
    char peer[INET6_ADDRSTRLEN];
    address_text(addr, peer);
    if (s->conns.proxy[0] && strcmp(peer, s->conns.proxy) == 0) return MHD_YES;
    int n = 0;
    pthread_mutex_lock(&s->conns.mu);
    for (http_conn *k = s->conns.head; k; k = k->next) n += strcmp(k->peer, peer) == 0;
    pthread_mutex_unlock(&s->conns.mu);
    return n < HTTP_OVER_CAP_FACTOR * s->cfg.max_per_ip ? MHD_YES : MHD_NO;
}

void http_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode code) {
    http_server *s = cls;
    http_conn *k = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (!k) return;
        pthread_mutex_lock(&s->conns.mu);
        if (k->prev)
            k->prev->next = k->next;
        else
            s->conns.head = k->next;
        if (k->next) k->next->prev = k->prev;
        pthread_mutex_unlock(&s->conns.mu);
        free(k);
        *socket_context = NULL;
        return;
    }
    k = calloc(1, sizeof *k);
    if (!k) return; /* http_conn_admit answers 503 to a connection without one */
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *addr =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    k->fd = fd ? fd->connect_fd : -1;
    address_text(addr ? addr->client_addr : NULL, k->peer);
    memcpy(k->client, k->peer, sizeof k->client);
    k->phase = HTTP_PHASE_HEADERS;
    k->phase_start_us = mono_us();
    pthread_mutex_lock(&s->conns.mu);
    set_deadline(s, k, 0);
    k->seq = ++s->conns.next_seq;
    k->next = s->conns.head;
    if (k->next) k->next->prev = k;
    s->conns.head = k;
    pthread_mutex_unlock(&s->conns.mu);
    *socket_context = k;
}

http_conn *http_conn_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

typedef struct xff {
    char last[HTTP_XFF_MAX]; /* the value of the last X-Forwarded-For header */
    int n;
} xff;

static enum MHD_Result take_xff(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value) {
    (void)kind;
    xff *x = cls;
    if (key && value && strcasecmp(key, "X-Forwarded-For") == 0) {
        snprintf(x->last, sizeof x->last, "%s", value);
        x->n++;
    }
    return MHD_YES;
}

/* The client a trusted proxy forwards for: the rightmost entry of the last
 * X-Forwarded-For header, an IPv4 or IPv6 address. 0 ok, -1 if malformed. */
static int forwarded_client(struct MHD_Connection *c, char out[INET6_ADDRSTRLEN], int *present) {
    xff x = {.n = 0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, take_xff, &x);
    *present = x.n > 0;
    if (!x.n) return 0;
    char *entry = strrchr(x.last, ',');
    entry = entry ? entry + 1 : x.last;
    entry += strspn(entry, " \t");
    entry[strcspn(entry, " \t")] = '\0';
    unsigned char raw[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, entry, raw) == 1)
        return inet_ntop(AF_INET, raw, out, INET6_ADDRSTRLEN) ? 0 : -1;
    if (inet_pton(AF_INET6, entry, raw) == 1)
        return inet_ntop(AF_INET6, raw, out, INET6_ADDRSTRLEN) ? 0 : -1;
    return -1;
}

int http_conn_admit(http_server *s, struct MHD_Connection *c, http_conn *k, int stream,
                    api_error *e) {
    if (!k) return api_fail(e, 503, "unavailable", NULL, "out of memory for a new connection"), -1;
    char client[INET6_ADDRSTRLEN];
    memcpy(client, k->peer, sizeof client);
    if (s->conns.proxy[0] && strcmp(k->peer, s->conns.proxy) == 0) {
        int present = 0;
        if (forwarded_client(c, client, &present) != 0)
            return api_fail(e, 400, "invalid_header", "X-Forwarded-For",
                            "the last X-Forwarded-For entry from the trusted proxy is not an "
                            "IP address"),
                   -1;
        if (!present) memcpy(client, k->peer, sizeof client);
    }
    int same = 0, requests = 0, streams = 0;
    pthread_mutex_lock(&s->conns.mu);
    memcpy(k->client, client, sizeof k->client);
    for (http_conn *o = s->conns.head; o; o = o->next) {
        if (o == k) continue;
        same += o->seq < k->seq && strcmp(o->client, client) == 0;
        requests += o->seq < k->seq && !o->sse;
        streams += o->sse;
    }
    int rc = 0;
    if (same >= s->cfg.max_per_ip)
        rc = api_fail(e, 429, "too_many_connections", NULL,
                      "%s holds %d connections, the limit per client; retry later", client, same);
    else if (stream && streams >= s->cfg.max_sse)
        rc = api_fail(e, 503, "too_many_streams", NULL,
                      "the server holds its %d event streams; retry later", s->cfg.max_sse);
    else if (!stream && requests >= s->cfg.max_connections)
        rc = api_fail(e, 503, "too_many_connections", NULL,
                      "the server holds its %d request connections; retry later",
                      s->cfg.max_connections);
    k->sse = stream && !rc;
    pthread_mutex_unlock(&s->conns.mu);
    return rc ? -1 : 0;
}

unsigned http_conn_daemon_limit(const http_config *cfg) {
    return (unsigned)(cfg->max_connections + cfg->max_sse + HTTP_CONNECTION_SPARE);
}

static void *watchdog(void *arg) {
    http_server *s = arg;
    pthread_mutex_lock(&s->conns.mu);
    while (s->conns.watching) {
        uint64_t now = mono_us();
        for (http_conn *k = s->conns.head; k; k = k->next) {
            if (k->shut || !k->deadline_us || now < k->deadline_us || k->fd < 0) continue;
            /* Both directions: MHD's thread, polling the socket, reads the end. */
            shutdown(k->fd, SHUT_RDWR);
            k->shut = 1;
            fprintf(stderr, "http: closed a connection from %s: its %s took over %d s\n", k->client,
                    k->phase == HTTP_PHASE_BODY ? "body" : "request headers",
                    k->phase == HTTP_PHASE_BODY ? s->cfg.body_timeout_s : s->cfg.header_timeout_s);
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += HTTP_WATCHDOG_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->conns.wake, &s->conns.mu, &until);
    }
    pthread_mutex_unlock(&s->conns.mu);
    return NULL;
}

int http_conns_start(http_server *s, cnet_error *err) {
    http_conns *cs = &s->conns;
    if (s->cfg.trusted_proxy) {
        struct in_addr a;
        if (inet_pton(AF_INET, s->cfg.trusted_proxy, &a) != 1)
            return cnet_fail(err, CNET_EINVAL, "--trusted-proxy %s is not an IPv4 address",
                             s->cfg.trusted_proxy);
        inet_ntop(AF_INET, &a, cs->proxy, sizeof cs->proxy);
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&cs->mu, NULL);
    pthread_cond_init(&cs->wake, &ca);
    pthread_condattr_destroy(&ca);
    cs->watching = 1;
    int rc = pthread_create(&cs->watchdog, NULL, watchdog, s);
    if (rc) {
        cs->watching = 0;
        pthread_cond_destroy(&cs->wake);
        pthread_mutex_destroy(&cs->mu);
        return cnet_fail(err, CNET_EIO, "starting the connection watchdog: %s", strerror(rc));
    }
    return 0;
}

void http_conns_stop(http_server *s) {
    http_conns *cs = &s->conns;
    if (!cs->watching) return;
    pthread_mutex_lock(&cs->mu);
    cs->watching = 0;
    pthread_cond_signal(&cs->wake);
    pthread_mutex_unlock(&cs->mu);
    pthread_join(cs->watchdog, NULL);
}

void http_conns_free(http_server *s) {
    pthread_cond_destroy(&s->conns.wake);
    pthread_mutex_destroy(&s->conns.mu);
}
