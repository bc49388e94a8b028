/* `cnet bench --task serve`: generate throughput and latency of a real
 * `cnet serve` on loopback (server/bench/bench_serve.c). The command line is
 * server/cli/cmd_bench.c's. */
#ifndef CNET_BENCH_SERVE_H
#define CNET_BENCH_SERVE_H

#define BENCH_SERVE_DEFAULT_REQUESTS 32
#define BENCH_SERVE_MAX_REQUESTS 10000
#define BENCH_SERVE_DEFAULT_STEPS 10

/* What `cnet bench --task serve` was asked. */
typedef struct bench_serve_opts {
    const char *model; /* a pipeline folder with controlnet/; NULL: a fresh tiny model */
    int requests;      /* per client level, 1..BENCH_SERVE_MAX_REQUESTS */
    int steps;         /* DDIM steps of each request, 1..API_GENERATE_STEPS_MAX */
    int json;          /* one JSON object per level instead of a table */
} bench_serve_opts;

/* Starts this binary's `serve`, times the levels on stdout (errors on
 * stderr) and stops it. Returns the exit status: 0 ok, 1 failure. */
int bench_serve_run(const bench_serve_opts *o);

#endif
