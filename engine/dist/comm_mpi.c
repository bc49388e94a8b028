/* The collectives over Open MPI (MPI-3: MPI_Allreduce in place,
 * MPI_Bcast, MPI_Barrier, MPI_Abort on MPI_COMM_WORLD); see comm.h. Built
 * when the Makefile finds Open MPI (CNET_HAVE_MPI), else comm_single.c.
 *
 * MPI is initialised only under a launcher (dist_launched): a lone process
 * never starts MPI's runtime, so `cnet train` without mpirun behaves and
 * costs exactly as without MPI. MPI_THREAD_FUNNELED: only the thread that
 * called dist_comm_init calls MPI (the decode threads and OpenMP's never
 * do). Errors stay MPI_ERRORS_ARE_FATAL (the default): a collective with a
 * dead peer ends the run through mpirun rather than returning. */
#ifdef CNET_HAVE_MPI
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/dist/comm.h"

/* MPI counts are ints: larger buffers go in pieces of this many elements. */
#define DIST_MPI_PIECE ((size_t)1 << 28)

int dist_has_mpi(void) { return 1; }

int dist_comm_init(dist_comm *c, cnet_error *err) {
    *c = (dist_comm){.rank = 0, .size = 1};
    if (!dist_launched()) return 0;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return cnet_fail(err, CNET_EIO, "MPI_Init_thread failed");
    c->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    if (provided < MPI_THREAD_FUNNELED)
        return cnet_fail(err, CNET_EINVAL, "MPI gives thread level %d, cnet needs FUNNELED",
                         provided);
    if (c->size > DIST_MAX_RANKS)
        return cnet_fail(err, CNET_ELIMIT, "%d ranks: at most %d", c->size, DIST_MAX_RANKS);
    return 0;
}

void dist_comm_free(dist_comm *c) {
    if (c->mpi) MPI_Finalize();
    c->mpi = 0;
}

int dist_allreduce_sum(dist_comm *c, float *buf, size_t n, cnet_error *err) {
    for (size_t at = 0; c->size > 1 && at < n; at += DIST_MPI_PIECE) {
        const int count = (int)(n - at < DIST_MPI_PIECE ? n - at : DIST_MPI_PIECE);
        if (MPI_Allreduce(MPI_IN_PLACE, buf + at, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) !=
            MPI_SUCCESS)
            return cnet_fail(err, CNET_EIO, "rank %d: MPI_Allreduce of %d floats failed", c->rank,
                             count);
    }
    return 0;
}

int dist_broadcast(dist_comm *c, void *buf, size_t bytes, int root, cnet_error *err) {
    for (size_t at = 0; c->size > 1 && at < bytes; at += DIST_MPI_PIECE) {
        const int count = (int)(bytes - at < DIST_MPI_PIECE ? bytes - at : DIST_MPI_PIECE);
        if (MPI_Bcast((char *)buf + at, count, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS)
            return cnet_fail(err, CNET_EIO, "rank %d: MPI_Bcast of %d bytes from rank %d failed",
                             c->rank, count, root);
    }
    return 0;
}

int dist_barrier(dist_comm *c, cnet_error *err) {
    if (c->size > 1 && MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS)
        return cnet_fail(err, CNET_EIO, "rank %d: MPI_Barrier failed", c->rank);
    return 0;
}

_Noreturn void dist_comm_abort(dist_comm *c, int code, const char *why) {
    fprintf(stderr, "rank %d: %s\n", c->rank, why);
    fflush(stderr);
    if (c->mpi) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
#endif
