/* The collectives over Open MPI (MPI-3's non-blocking MPI_Iallreduce and
 * MPI_Ireduce_scatter in place, MPI_Iallgatherv in place, MPI_Igatherv,
 * MPI_Ibcast, MPI_Ibarrier; MPI_Abort on MPI_COMM_WORLD); see comm.h. Built
 * when the Makefile finds Open MPI (CNET_HAVE_MPI), else comm_single.c.
 *
 * MPI is initialised only under a launcher (dist_launched): a lone process
 * never starts MPI's runtime, so `cnet train` without mpirun behaves and
 * costs exactly as without MPI. MPI_THREAD_FUNNELED: only the thread that
 * called dist_comm_init calls MPI (the decode threads and OpenMP's never
 * do). Errors stay MPI_ERRORS_ARE_FATAL (the default): a collective with a
 * dead peer ends the run through mpirun rather than returning.
 *
 * Every collective is the non-blocking call waited on with MPI_Test until c->timeout_s: a live rank
 * never waits forever for one that hangs. On the timeout each waiting rank
 * sends every other one a note (DIST_TAG_WAITING, its collective's number),
 * listens DIST_GRACE_S for theirs, and aborts the run naming the ranks it
 * did not hear from; a rank still computing or stopped sends none. */
#ifdef CNET_HAVE_MPI
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/dist/comm.h"

/* MPI counts are ints: larger buffers go in pieces of this many elements. */
#define DIST_MPI_PIECE ((size_t)1 << 28)
/* The point-to-point tag of the notes ranks send when a collective timed
 * out, and how long each listens for the others' notes. */
#define DIST_TAG_WAITING 7301
#define DIST_GRACE_S 3.0
/* Polls of MPI_Test before a wait starts sleeping between them, and the
 * sleep: a quick collective is not slowed, a long wait burns no core. */
#define DIST_SPIN_POLLS 1000
#define DIST_POLL_SLEEP_NS 200000L

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void poll_sleep(void) {
    const struct timespec ts = {0, DIST_POLL_SLEEP_NS};
    nanosleep(&ts, NULL);
}

/* After `what` waited c->timeout_s: tell the others, hear theirs, abort
 * naming the silent ranks. */
static _Noreturn void timed_out(dist_comm *c, const char *what) {
    long long mine = c->n_collectives, theirs;
    char *heard = calloc((size_t)c->size, 1);
    MPI_Request *sent = calloc((size_t)c->size, sizeof *sent);
    if (!heard || !sent) dist_comm_abort(c, 1, "a collective timed out (out of memory naming who)");
    heard[c->rank] = 1;
    int n_sent = 0, n_heard = 1;
    for (int r = 0; r < c->size; r++)
        if (r != c->rank)
            MPI_Isend(&mine, 1, MPI_LONG_LONG, r, DIST_TAG_WAITING, MPI_COMM_WORLD,
                      &sent[n_sent++]);
    for (const double t0 = mono_s(); n_heard < c->size && mono_s() - t0 < DIST_GRACE_S;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, DIST_TAG_WAITING, MPI_COMM_WORLD, &flag, &st);
        if (!flag) {
            poll_sleep();
            continue;
        }
        MPI_Recv(&theirs, 1, MPI_LONG_LONG, st.MPI_SOURCE, DIST_TAG_WAITING, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        n_heard += !heard[st.MPI_SOURCE];
        heard[st.MPI_SOURCE] = 1;
    }
    char why[1024];
    int at = snprintf(why, sizeof why,
                      "cnet train: %s (collective %lld) waited %.0f s for the other ranks "
                      "(CNET_DIST_TIMEOUT); not answering (stopped, hung or far slower):",
                      what, mine, c->timeout_s);
    for (int r = 0; r < c->size && at < (int)sizeof why - 16; r++)
        if (!heard[r]) at += snprintf(why + at, sizeof why - (size_t)at, " rank %d", r);
    if (n_heard == c->size) snprintf(why + at, sizeof why - (size_t)at, " none (all waiting)");
    dist_comm_abort(c, 1, why);
}

/* Waits for req (a collective `what`) up to c->timeout_s. */
static void wait_collective(dist_comm *c, MPI_Request *req, const char *what) {
    const double t0 = mono_s();
    for (long polls = 0;; polls++) {
        int done = 0;
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done) return;
        if (polls < DIST_SPIN_POLLS) continue;
        if (mono_s() - t0 > c->timeout_s) timed_out(c, what);
        poll_sleep();
    }
}

int dist_has_mpi(void) { return 1; }

int dist_comm_init(dist_comm *c, cnet_error *err) {
    *c = (dist_comm){.rank = 0, .size = 1};
    const int rc = dist_timeout_from_env(&c->timeout_s, err);
    if (rc || !dist_launched()) return rc;
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
        MPI_Request req;
        c->n_collectives++;
        if (MPI_Iallreduce(MPI_IN_PLACE, buf + at, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                           &req) != MPI_SUCCESS)
            return cnet_fail(err, CNET_EIO, "rank %d: MPI_Iallreduce of %d floats failed", c->rank,
                             count);
        wait_collective(c, &req, "a gradient sum");
    }
    return 0;
}

int dist_reduce_scatter_sum(dist_comm *c, float *buf, const int *counts, cnet_error *err) {
    if (c->size == 1) return 0;
    MPI_Request req;
    c->n_collectives++;
    if (MPI_Ireduce_scatter(MPI_IN_PLACE, buf, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req) !=
        MPI_SUCCESS)
        return cnet_fail(err, CNET_EIO, "rank %d: MPI_Ireduce_scatter (%d floats here) failed",
                         c->rank, counts[c->rank]);
    wait_collective(c, &req, "a gradient reduce-scatter");
    return 0;
}

int dist_allgather(dist_comm *c, void *buf, const int *counts, const int *displs, cnet_error *err) {
    if (c->size == 1) return 0;
    MPI_Request req;
    c->n_collectives++;
    if (MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_BYTE,
                        MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        return cnet_fail(err, CNET_EIO, "rank %d: MPI_Iallgatherv (%d bytes here) failed", c->rank,
                         counts[c->rank]);
    wait_collective(c, &req, "a weight all-gather");
    return 0;
}

int dist_gather(dist_comm *c, const void *send, void *recv, const int *counts, const int *displs,
                int root, cnet_error *err) {
    if (c->size == 1) {
        if (counts[0] > 0 && (char *)recv + displs[0] != send)
            memmove((char *)recv + displs[0], send, (size_t)counts[0]);
        return 0;
    }
    MPI_Request req;
    c->n_collectives++;
    if (MPI_Igatherv(send, counts[c->rank], MPI_BYTE, recv, counts, displs, MPI_BYTE, root,
                     MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        return cnet_fail(err, CNET_EIO, "rank %d: MPI_Igatherv of %d bytes to rank %d failed",
                         c->rank, counts[c->rank], root);
    wait_collective(c, &req, "a gather of the optimizer state");
    return 0;
}

int dist_broadcast(dist_comm *c, void *buf, size_t bytes, int root, cnet_error *err) {
    for (size_t at = 0; c->size > 1 && at < bytes; at += DIST_MPI_PIECE) {
        const int count = (int)(bytes - at < DIST_MPI_PIECE ? bytes - at : DIST_MPI_PIECE);
        MPI_Request req;
        c->n_collectives++;
        if (MPI_Ibcast((char *)buf + at, count, MPI_BYTE, root, MPI_COMM_WORLD, &req) !=
            MPI_SUCCESS)
            return cnet_fail(err, CNET_EIO, "rank %d: MPI_Ibcast of %d bytes from rank %d failed",
                             c->rank, count, root);
        wait_collective(c, &req, "a broadcast");
    }
    return 0;
}

int dist_barrier(dist_comm *c, cnet_error *err) {
    if (c->size == 1) return 0;
    MPI_Request req;
    c->n_collectives++;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        return cnet_fail(err, CNET_EIO, "rank %d: MPI_Ibarrier failed", c->rank);
    wait_collective(c, &req, "a barrier");
    return 0;
}

_Noreturn void dist_comm_abort(dist_comm *c, int code, const char *why) {
    fprintf(stderr, "rank %d: %s\n", c->rank, why);
    fflush(stderr);
    if (c->mpi) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
#endif
