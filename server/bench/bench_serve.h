/* `cnet bench --task serve`: generate throughput and latency of a real
 * `cnet serve` on loopback (server/bench/bench_serve.c). */
#ifndef CNET_BENCH_SERVE_H
#define CNET_BENCH_SERVE_H

/* argv[0] is "bench"; returns the exit status (0 ok, 1 failure, 2 usage). */
int bench_serve(int argc, char **argv);
void bench_serve_usage(void *file);

#endif
