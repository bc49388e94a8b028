/* `cnet serve`: the REST service. Opens the data dir (one server per dir,
 * held by a lock file, with the SQLite store; with a PostgreSQL store
 * (--store postgres://... or $CNET_STORE) several nodes share one --data on
 * shared storage and one queue), the bearer token, the job store (rescuing
 * jobs a previous process left running; on a shared store only those whose
 * lease expired), one engine per --device with a pool worker
 * running the job runner on it (server/workers/worker.h, server/workers/runner.h; without
 * --device: one per visible GPU, else one on the CPU), starts
 * the HTTP server and then waits for SIGTERM/SIGINT, rescuing expired leases
 * every tick like redis' serverCron.
 *
 * Shutdown (SIGTERM/SIGINT): waiting generate requests are refused (503)
 * and the running one stops at its next step,
 * each pool asks its running job to stop at the next step boundary — a
 * training job writes a checkpoint and goes back to the queue without using
 * up an attempt — then HTTP stops and the engines close. `--device none`
 * runs no engine: jobs stay queued (for tests that drive jobs themselves). */
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

#include "engine/core/backend.h"
#include "server/http/auth.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"
#include "server/http/http.h"
#include "server/workers/runner.h"
#include "server/workers/serve_devices.h"

#define SERVE_TICK_S 5              /* seconds between rescues of expired leases */
#define SERVE_DEVICES_MAX 8         /* --device given more often → usage error */
#define SERVE_CONNECTIONS_MAX 10000 /* a connection cap above → usage error (a thread each) */
#define SERVE_LEASE_MAX_S 86400     /* --lease above → usage error */

typedef struct serve_opts {
    http_config http;
    const char *token_file;
    char models[4096];
    const char *devices[SERVE_DEVICES_MAX];
    int n_devices;          /* 0: serve_default_devices */
    int no_engine;          /* --device none */
    const char *store;      /* --store, else $CNET_STORE; NULL: DATA/jobs.db */
    long long lease_s;      /* --lease; 0: JOBS_DEFAULT_LEASE_MS */
    long long memory_limit; /* --memory-limit; 0: the physical memory (runner_fits) */
} serve_opts;

static void usage(void) {
    printf("usage: cnet serve [options]\n"
           "  --listen ADDR             IPv4 address to bind (default 127.0.0.1)\n"
           "  --port N                  port (default %d; 0 picks a free one)\n"
           "  --data DIR                data dir: jobs, datasets, token (default ./data)\n"
           "  --models DIR              base models (default DATA/models)\n"
           "  --data-root DIR           datasets may also be given as paths under DIR\n"
           "  --device D                cpu, cuda or cuda:N: one engine worker per --device\n"
           "                            (repeatable; default: one per visible GPU, else cpu);\n"
           "                            none: run no jobs\n"
           "  --token-file FILE         bearer token (else $CNET_TOKEN, else DATA/token)\n"
           "  --store URL               job store: postgres://... shared by several nodes on\n"
           "                            one --data (else $CNET_STORE, else DATA/jobs.db)\n"
           "  --lease S                 seconds a job's lease lasts unrenewed before another\n"
           "                            worker or node may take it over (default %d)\n"
           "  --memory-limit BYTES      claim only jobs whose estimated memory need (base\n"
           "                            weights, plus the trained ControlNet's state for\n"
           "                            training) is at most BYTES; others stay queued for\n"
           "                            another node (default: this machine's physical\n"
           "                            memory)\n"
           "  --queue-cap N             queued jobs before 429 (default %d)\n"
           "  --upload-max BYTES        dataset archive size cap (default %lld)\n"
           "  --disk-floor BYTES        free space below which uploads get 507 (default %lld)\n"
           "  --dataset-max-entries N   archive entries cap (default %lld)\n"
           "  --dataset-max-bytes BYTES unpacked size cap (default %lld)\n"
           "  --dataset-max-ratio N     compression ratio cap (default %lld)\n"
           "  --sse-heartbeat S         seconds between SSE heartbeats (default %d)\n"
           "  --generate-timeout S      seconds a synchronous generate may run before it stops\n"
           "                            at its next step and answers 504 (default %d)\n"
           "  --generate-memory BYTES   memory generate requests may hold at once; more get\n"
           "                            503 + Retry-After (default %lld)\n"
           "  --max-connections N       request connections; more get 503 (default %d)\n"
           "  --max-connections-per-ip N  connections per client; more get 429 (default %d)\n"
           "  --max-sse-streams N       event streams, counted apart; more get 503 (default %d)\n"
           "  --trusted-proxy ADDR      honour X-Forwarded-For only from this IPv4 address\n"
           "  --header-timeout S        seconds to send a request's headers, in all (default %d)\n"
           "  --body-timeout S          seconds to send a body, +1 per 8 KiB sent (default %d)\n",
           JOBS_DEFAULT_LEASE_MS / 1000, HTTP_DEFAULT_PORT, HTTP_QUEUE_CAP, HTTP_UPLOAD_MAX,
           HTTP_DISK_FLOOR, (long long)UPLOAD_DEFAULT_LIMITS.max_entries,
           (long long)UPLOAD_DEFAULT_LIMITS.max_bytes, (long long)UPLOAD_DEFAULT_LIMITS.max_ratio,
           HTTP_SSE_HEARTBEAT_S, HTTP_GENERATE_TIMEOUT_S, HTTP_GENERATE_MEMORY,
           HTTP_CONNECTION_LIMIT, HTTP_PER_IP_LIMIT, HTTP_SSE_LIMIT, HTTP_HEADER_TIMEOUT_S,
           HTTP_BODY_TIMEOUT_S);
}

static int parse_opts(int argc, char **argv, serve_opts *o) {
    http_config *h = &o->http;
    *h = (http_config){.listen = "127.0.0.1",
                       .port = HTTP_DEFAULT_PORT,
                       .data_dir = "./data",
                       .queue_cap = HTTP_QUEUE_CAP,
                       .upload_max = HTTP_UPLOAD_MAX,
                       .disk_floor = HTTP_DISK_FLOOR,
                       .dataset = UPLOAD_DEFAULT_LIMITS,
                       .sse_heartbeat_s = HTTP_SSE_HEARTBEAT_S,
                       .generate_timeout_s = HTTP_GENERATE_TIMEOUT_S,
                       .generate_memory = HTTP_GENERATE_MEMORY}; /* caps, deadlines: 0 = default */
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long long x = 0;
        int rc = 0;
        if (cli_is_help(a)) {
            usage();
            return 1;
        }
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) != 0 ||
            !(v = cli_value(argc, argv, &i, eq ? eq + 1 : NULL, &err))) {
            fprintf(stderr, "cnet serve: %s (cnet serve --help)\n",
                    err.msg[0] ? err.msg : "unexpected argument");
            return 2;
        }
        char flag[CLI_FLAG_MAX]; /* the name alone: cli_flag(, , NULL) is for flags without a value
                                  */
        snprintf(flag, sizeof flag, "%.*s", (int)strcspn(a, "="), a);
        a = flag;
        if (cli_flag(a, "listen", NULL))
            h->listen = v;
        else if (cli_flag(a, "data", NULL))
            h->data_dir = v;
        else if (cli_flag(a, "models", NULL))
            h->models_dir = v;
        else if (cli_flag(a, "data-root", NULL))
            h->data_root = v;
        else if (cli_flag(a, "token-file", NULL))
            o->token_file = v;
        else if (cli_flag(a, "store", NULL))
            o->store = v;
        else if (cli_flag(a, "lease", NULL))
            rc = cli_long(a, v, 1, SERVE_LEASE_MAX_S, &o->lease_s, &err);
        else if (cli_flag(a, "device", NULL) && !strcmp(v, "none"))
            o->no_engine = 1;
        else if (cli_flag(a, "device", NULL) && o->n_devices == SERVE_DEVICES_MAX) {
            fprintf(stderr, "cnet serve: at most %d --device options\n", SERVE_DEVICES_MAX);
            return 2;
        } else if (cli_flag(a, "device", NULL))
            o->devices[o->n_devices++] = v;
        else if (cli_flag(a, "port", NULL))
            rc = cli_long(a, v, 0, 65535, &x, &err), h->port = (int)x;
        else if (cli_flag(a, "queue-cap", NULL))
            rc = cli_long(a, v, 1, 1000000, &x, &err), h->queue_cap = (int)x;
        else if (cli_flag(a, "upload-max", NULL))
            rc = cli_long(a, v, 1, INT64_MAX, &x, &err), h->upload_max = x;
        else if (cli_flag(a, "disk-floor", NULL))
            rc = cli_long(a, v, 0, INT64_MAX, &x, &err), h->disk_floor = x;
        else if (cli_flag(a, "dataset-max-entries", NULL))
            rc = cli_long(a, v, 1, INT64_MAX, &x, &err), h->dataset.max_entries = x;
        else if (cli_flag(a, "dataset-max-bytes", NULL))
            rc = cli_long(a, v, 1, INT64_MAX, &x, &err), h->dataset.max_bytes = x;
        else if (cli_flag(a, "dataset-max-ratio", NULL))
            rc = cli_long(a, v, 1, INT64_MAX, &x, &err), h->dataset.max_ratio = x;
        else if (cli_flag(a, "sse-heartbeat", NULL))
            rc = cli_long(a, v, 1, 3600, &x, &err), h->sse_heartbeat_s = (int)x;
        else if (cli_flag(a, "generate-timeout", NULL))
            rc = cli_double(a, v, 0.001, 86400, &h->generate_timeout_s, &err);
        else if (cli_flag(a, "memory-limit", NULL))
            rc = cli_long(a, v, 1, INT64_MAX, &o->memory_limit, &err);
        else if (cli_flag(a, "generate-memory", NULL))
            rc = cli_long(a, v, 1, INT64_MAX, &x, &err), h->generate_memory = x;
        else if (cli_flag(a, "max-connections", NULL))
            rc = cli_long(a, v, 1, SERVE_CONNECTIONS_MAX, &x, &err), h->max_connections = (int)x;
        else if (cli_flag(a, "max-connections-per-ip", NULL))
            rc = cli_long(a, v, 1, SERVE_CONNECTIONS_MAX, &x, &err), h->max_per_ip = (int)x;
        else if (cli_flag(a, "max-sse-streams", NULL))
            rc = cli_long(a, v, 1, SERVE_CONNECTIONS_MAX, &x, &err), h->max_sse = (int)x;
        else if (cli_flag(a, "trusted-proxy", NULL))
            h->trusted_proxy = v;
        else if (cli_flag(a, "header-timeout", NULL))
            rc = cli_long(a, v, 1, 3600, &x, &err), h->header_timeout_s = (int)x;
        else if (cli_flag(a, "body-timeout", NULL))
            rc = cli_long(a, v, 1, 86400, &x, &err), h->body_timeout_s = (int)x;
        else
            rc = cnet_fail(&err, CNET_EINVAL, "unknown option %s", a);
        if (rc) {
            fprintf(stderr, "cnet serve: %s (cnet serve --help)\n", err.msg);
            return 2;
        }
    }
    if (!o->store && getenv("CNET_STORE") && *getenv("CNET_STORE")) o->store = getenv("CNET_STORE");
    if (o->store && !jobs_is_url(o->store)) {
        fprintf(stderr,
                "cnet serve: --store %s: expected a postgres:// or postgresql:// URL (the "
                "SQLite store is DATA/jobs.db, the default)\n",
                o->store);
        return 2;
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

/* What a running server holds, torn down in order by serve_shutdown. */
typedef struct serve_parts {
    jobs_store *store;
    http_server *srv;
    worker *engines[SERVE_DEVICES_MAX];
    pool *pools[SERVE_DEVICES_MAX];
    runner_config runners[SERVE_DEVICES_MAX];
    int n_engines;
} serve_parts;

/* Waiting generates are refused first, then each pool stops its job at a
 * step boundary (checkpoint, back to the queue), then HTTP and the engines. */
static void serve_shutdown(serve_parts *p) {
    for (int i = 0; i < p->n_engines; i++) worker_refuse(p->engines[i]);
    for (int i = 0; i < p->n_engines; i++) pool_stop(p->pools[i]);
    http_stop(p->srv);
    for (int i = 0; i < p->n_engines; i++) worker_close(p->engines[i]);
    jobs_close(p->store);
}

int cmd_serve(int argc, char **argv) {
    serve_opts o = {0};
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    http_config *h = &o.http;
    umask(077); /* the job store, job files and uploads are the server user's alone */
    if (mkdir(h->data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "cnet serve: mkdir %s: %s\n", h->data_dir, strerror(errno));
        return 1;
    }
    /* a shared store's nodes share the data dir on purpose */
    int lock = o.store ? -1 : lock_data_dir(h->data_dir);
    if (lock < 0 && !o.store) return 1;
    char token[AUTH_TOKEN_MAX + 1], db[4200], jobs_dir[4200];
    int generated = 0;
    cnet_error err = {0};
    jobs_store *store = NULL;
    snprintf(db, sizeof db, "%s/jobs.db", h->data_dir);
    snprintf(jobs_dir, sizeof jobs_dir, "%s/jobs", h->data_dir);
    int rescued = 0;
    if (auth_load_token(o.token_file, h->data_dir, token, &generated, &err) ||
        jobs_open(&store, o.store ? o.store : db, jobs_dir, &err) ||
        jobs_rescue(store, 1, &rescued, &err)) {
        fprintf(stderr, "cnet serve: %s\n", err.msg);
        jobs_close(store);
        if (lock >= 0) close(lock);
        return 1;
    }
    h->token = token;
    /* Signals are taken by sigtimedwait below; no other thread sees them
     * (the engine and pool threads started after this inherit the mask). */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    serve_parts p = {.store = store};
    char datasets_dir[4200], inputs_dir[4200];
    snprintf(datasets_dir, sizeof datasets_dir, "%s/datasets", h->data_dir);
    snprintf(inputs_dir, sizeof inputs_dir, "%s/inputs", h->data_dir);
    char defaults[SERVE_DEVICES_MAX][SERVE_DEVICE_NAME_MAX];
    if (!o.no_engine && !o.n_devices) {
        const int gpus = cnet_backend_cuda_count();
        o.n_devices = serve_default_devices(gpus, defaults, SERVE_DEVICES_MAX);
        for (int i = 0; i < o.n_devices; i++) o.devices[i] = defaults[i];
        if (gpus > 0)
            printf("cnet: no --device given: %d GPU%s visible, one engine on each of %d\n", gpus,
                   gpus == 1 ? "" : "s", o.n_devices);
        else
            printf("cnet: no --device given and no GPU visible: one engine on the CPU\n");
    }
    for (int i = 0; !o.no_engine && i < o.n_devices; i++) {
        if ((rc = worker_open(&p.engines[i], o.devices[i], &err))) break;
        p.n_engines = i + 1;
    }
    h->engines = p.engines, h->n_engines = p.n_engines;
    if (!rc) rc = http_start(&p.srv, h, store, &err);
    if (!rc) { /* the claims' events name this node: host:port */
        char host[JOBS_NODE_MAX - 8] = "";
        gethostname(host, sizeof host - 1);
        char node[JOBS_NODE_MAX];
        snprintf(node, sizeof node, "%s:%d", host, http_port(p.srv));
        jobs_set_node(store, node);
    }
    /* no --memory-limit: the machine's physical memory, which every job's
     * weights pass through whatever its device */
    if (!o.memory_limit)
        o.memory_limit = (long long)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGE_SIZE);
    for (int i = 0; !rc && i < p.n_engines; i++) {
        p.runners[i] = (runner_config){.engine = p.engines[i],
                                       .models_dir = h->models_dir,
                                       .jobs_dir = jobs_dir,
                                       .datasets_dir = datasets_dir,
                                       .data_root = h->data_root,
                                       .inputs_dir = inputs_dir,
                                       .memory_limit = o.memory_limit};
        const pool_config pc = {.lease_ms = o.lease_s * 1000,
                                .can_claim = runner_can_claim,
                                .prefer = runner_prefers,
                                .fits = runner_fits,
                                .data_dir = h->data_dir,
                                .models_dir = h->models_dir};
        rc = pool_start(&p.pools[i], store, runner_run, &p.runners[i], &pc, &err);
    }
    if (rc) {
        fprintf(stderr, "cnet serve: %s\n", err.msg);
        serve_shutdown(&p);
        if (lock >= 0) close(lock);
        return 1;
    }
    printf("cnet: listening on http://%s:%d (data %s, models %s, %s job store)\n", h->listen,
           http_port(p.srv), h->data_dir, h->models_dir, jobs_backend_name(store));
    if (rescued)
        printf("cnet: %d job(s) left running by a previous process were requeued\n", rescued);
    if (generated)
        printf("cnet: generated API token (stored in %s/token, mode 0600): %s\n", h->data_dir,
               token);
    for (int i = 0; i < p.n_engines; i++)
        printf("cnet: engine %d on %s runs jobs and generate requests\n", i,
               worker_device(p.engines[i]));
    if (!p.n_engines) printf("cnet: --device none: accepted jobs stay queued\n");
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
    serve_shutdown(&p);
    if (lock >= 0) close(lock);
    return 0;
}
