/* The collectives of a build without MPI: a group of one process, where a
 * sum, a broadcast, an all-gather and a barrier leave everything as it is
 * (a reduce-scatter's slice and a gather's piece are this rank's own, moved
 * where the call puts them); see comm.h.
 * With Open MPI present comm_mpi.c is the implementation instead (the
 * Makefile defines CNET_HAVE_MPI). */
#ifndef CNET_HAVE_MPI
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dist/comm.h"

int dist_has_mpi(void) { return 0; }

int dist_comm_init(dist_comm *c, cnet_error *err) {
    *c = (dist_comm){.rank = 0, .size = 1};
    const int rc = dist_timeout_from_env(&c->timeout_s, err);
    if (rc) return rc;
    if (dist_launched())
        return cnet_fail(err, CNET_EINVAL,
                         "started by an MPI launcher, but cnet was built without MPI: install "
                         "libopenmpi-dev and rebuild");
    return 0;
}

void dist_comm_free(dist_comm *c) { (void)c; }

int dist_allreduce_sum(dist_comm *c, float *buf, size_t n, cnet_error *err) {
    (void)c, (void)buf, (void)n, (void)err;
    return 0;
}

int dist_reduce_scatter_sum(dist_comm *c, float *buf, const int *counts, cnet_error *err) {
    (void)c, (void)buf, (void)counts, (void)err; /* the one slice is already at buf */
    return 0;
}

int dist_allgather(dist_comm *c, void *buf, const int *counts, const int *displs, cnet_error *err) {
    (void)c, (void)buf, (void)counts, (void)displs, (void)err;
    return 0;
}

int dist_gather(dist_comm *c, const void *send, void *recv, const int *counts, const int *displs,
                int root, cnet_error *err) {
    (void)root, (void)err;
    if (counts[c->rank] > 0 && (char *)recv + displs[c->rank] != send)
        memmove((char *)recv + displs[c->rank], send, (size_t)counts[c->rank]);
    return 0;
}

int dist_broadcast(dist_comm *c, void *buf, size_t bytes, int root, cnet_error *err) {
    (void)c, (void)buf, (void)bytes, (void)root, (void)err;
    return 0;
}

int dist_barrier(dist_comm *c, cnet_error *err) {
    (void)c, (void)err;
    return 0;
}

_Noreturn void dist_comm_abort(dist_comm *c, int code, const char *why) {
    fprintf(stderr, "rank %d: %s\n", c->rank, why);
    exit(code);
}
#endif
