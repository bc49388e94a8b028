/* `cnet serve`: the REST service. Opens the data dir (one server per dir,
 * held by a lock file), the bearer token, the job store (rescuing jobs a
 * previous process left running), starts the HTTP server and then waits for
 * SIGTERM/SIGINT, rescuing expired leases every tick like redis' serverCron.
 *
 * What it is not (yet): it starts no engine pool. Until the engine's job
 * runner exists, accepted jobs stay queued; nothing pretends to run them. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include "server/auth.h"
#include "server/commands.h"
#include "server/http.h"

#define SERVE_TICK_S 5 /* seconds between rescues of expired leases */

typedef struct serve_opts {
    http_config http;
    const char *token_file;
    char models[4096];
} serve_opts;

static void usage(void) {
    printf("usage: cnet serve [options]\n"
           "  --listen ADDR             IPv4 address to bind (default 127.0.0.1)\n"
           "  --port N                  port (default %d; 0 picks a free one)\n"
           "  --data DIR                data dir: jobs, datasets, token (default ./data)\n"
           "  --models DIR              base models (default DATA/models)\n"
           "  --data-root DIR           datasets may also be given as paths under DIR\n"
           "  --token-file FILE         bearer token (else $CNET_TOKEN, else DATA/token)\n"
           "  --queue-cap N             queued jobs before 429 (default %d)\n"
           "  --upload-max BYTES        dataset archive size cap (default %lld)\n"
           "  --disk-floor BYTES        free space below which uploads get 507 (default %lld)\n"
           "  --dataset-max-entries N   archive entries cap (default %lld)\n"
           "  --dataset-max-bytes BYTES unpacked size cap (default %lld)\n"
           "  --dataset-max-ratio N     compression ratio cap (default %lld)\n"
           "  --sse-heartbeat S         seconds between SSE heartbeats (default %d)\n",
           HTTP_DEFAULT_PORT, HTTP_QUEUE_CAP, HTTP_UPLOAD_MAX, HTTP_DISK_FLOOR,
           (long long)DATASET_DEFAULT_LIMITS.max_entries,
           (long long)DATASET_DEFAULT_LIMITS.max_bytes, (long long)DATASET_DEFAULT_LIMITS.max_ratio,
           HTTP_SSE_HEARTBEAT_S);
}

static int parse_int(const char *opt, const char *v, long long lo, long long hi, int64_t *out) {
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || errno || *end || x < lo || x > hi) {
        fprintf(stderr, "cnet serve: %s needs an integer in %lld..%lld\n", opt, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_opts(int argc, char **argv, serve_opts *o) {
    http_config *h = &o->http;
    *h = (http_config){.listen = "127.0.0.1",
                       .port = HTTP_DEFAULT_PORT,
                       .data_dir = "./data",
                       .queue_cap = HTTP_QUEUE_CAP,
                       .upload_max = HTTP_UPLOAD_MAX,
                       .disk_floor = HTTP_DISK_FLOOR,
                       .dataset = DATASET_DEFAULT_LIMITS,
                       .sse_heartbeat_s = HTTP_SSE_HEARTBEAT_S};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t x = 0;
        int rc = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 1;
        }
        if (!v) {
            fprintf(stderr, "cnet serve: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--listen"))
            h->listen = v;
        else if (!strcmp(a, "--data"))
            h->data_dir = v;
        else if (!strcmp(a, "--models"))
            h->models_dir = v;
        else if (!strcmp(a, "--data-root"))
            h->data_root = v;
        else if (!strcmp(a, "--token-file"))
            o->token_file = v;
        else if (!strcmp(a, "--port"))
            rc = parse_int(a, v, 0, 65535, &x), h->port = (int)x;
        else if (!strcmp(a, "--queue-cap"))
            rc = parse_int(a, v, 1, 1000000, &x), h->queue_cap = (int)x;
        else if (!strcmp(a, "--upload-max"))
            rc = parse_int(a, v, 1, INT64_MAX, &h->upload_max);
        else if (!strcmp(a, "--disk-floor"))
            rc = parse_int(a, v, 0, INT64_MAX, &h->disk_floor);
        else if (!strcmp(a, "--dataset-max-entries"))
            rc = parse_int(a, v, 1, INT64_MAX, &h->dataset.max_entries);
        else if (!strcmp(a, "--dataset-max-bytes"))
            rc = parse_int(a, v, 1, INT64_MAX, &h->dataset.max_bytes);
        else if (!strcmp(a, "--dataset-max-ratio"))
            rc = parse_int(a, v, 1, INT64_MAX, &h->dataset.max_ratio);
        else if (!strcmp(a, "--sse-heartbeat"))
            rc = parse_int(a, v, 1, 3600, &x), h->sse_heartbeat_s = (int)x;
        else {
            fprintf(stderr, "cnet serve: unknown option %s (cnet serve --help)\n", a);
            return 2;
        }
        if (rc) return 2;
        i++;
    }
    if (!h->models_dir) {
        snprintf(o->models, sizeof o->models, "%s/models", h->data_dir);
        h->models_dir = o->models;
    }
    return 0;
}

/* One server per data dir: a second would break the rescue-all at start-up. */
static int lock_data_dir(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/cnet.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "cnet serve: %s: %s\n", path,
                fd < 0 ? strerror(errno) : "another cnet serve uses this data dir");
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

int cmd_serve(int argc, char **argv) {
    serve_opts o = {0};
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    http_config *h = &o.http;
    if (mkdir(h->data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "cnet serve: mkdir %s: %s\n", h->data_dir, strerror(errno));
        return 1;
    }
    int lock = lock_data_dir(h->data_dir);
    if (lock < 0) return 1;
    char token[AUTH_TOKEN_MAX + 1], db[4200], jobs_dir[4200];
    int generated = 0;
    cnet_error err = {0};
    jobs_store *store = NULL;
    http_server *srv = NULL;
    snprintf(db, sizeof db, "%s/jobs.db", h->data_dir);
    snprintf(jobs_dir, sizeof jobs_dir, "%s/jobs", h->data_dir);
    int rescued = 0;
    if (auth_load_token(o.token_file, h->data_dir, token, &generated, &err) ||
        jobs_open(&store, db, jobs_dir, &err) || jobs_rescue(store, 1, &rescued, &err)) {
        fprintf(stderr, "cnet serve: %s\n", err.msg);
        jobs_close(store);
        close(lock);
        return 1;
    }
    h->token = token;
    /* Signals are taken by sigtimedwait below; no other thread sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (http_start(&srv, h, store, &err)) {
        fprintf(stderr, "cnet serve: %s\n", err.msg);
        jobs_close(store);
        close(lock);
        return 1;
    }
    printf("cnet: listening on http://%s:%d (data %s, models %s)\n", h->listen, http_port(srv),
           h->data_dir, h->models_dir);
    if (rescued)
        printf("cnet: %d job(s) left running by a previous process were requeued\n", rescued);
    if (generated)
        printf("cnet: generated API token (stored in %s/token, mode 0600): %s\n", h->data_dir,
               token);
    printf("cnet: no engine runner is registered yet: accepted jobs stay queued\n");
    fflush(stdout);
    for (;;) {
        struct timespec tick = {.tv_sec = SERVE_TICK_S};
        int sig = sigtimedwait(&stop, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) break;
        if (jobs_rescue(store, 0, &rescued, &err))
            fprintf(stderr, "cnet serve: rescue: %s\n", err.msg);
    }
    printf("cnet: stopping\n");
    fflush(stdout);
    http_stop(srv);
    jobs_close(store);
    close(lock);
    return 0;
}
